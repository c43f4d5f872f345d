"""Progress reporting: the native callback ``(event, phase, value, total)`` turned into what
the caller asked for (a callable, or tqdm bars with ``progress=True``)."""

from __future__ import annotations

import threading
from typing import Any, Callable, Union

ProgressEvent = dict
"""A progress event given to a ``progress=`` callable: a dict with

* ``event``: ``"start"`` (a phase begins: ``phase``, ``total``, 0 when not known yet; a start
  while a phase is open replaces it), ``"advance"`` (``bytes`` more done), ``"finish"`` (the
  phase ended); ``"download"``, ``"hash"``, ``"upload"`` for
  ``pull``/``push`` (``file``, ``bytes`` done over all files, ``total``); ``"status"`` for
  ``ollama.create`` (``status``: Ollama's status line, ``bytes``/``total`` when known).
"""

ProgressArg = Union[None, bool, Callable[[ProgressEvent], Any]]


class _Tqdm:
    """tqdm bars, one per phase, fed by the native events (thread-safe)."""

    def __init__(self) -> None:
        import tqdm  # noqa: F401  (checked by the caller)

        self._bar: Any = None
        self._lock = threading.Lock()

    def _new(self, desc: str, total: int) -> None:
        from tqdm.auto import tqdm

        if self._bar is not None:
            self._bar.close()
        self._bar = tqdm(total=total or None, desc=desc, unit="B", unit_scale=True, leave=False)

    def __call__(self, event: str, phase: str, value: int, total: int) -> None:
        with self._lock:
            if event == "start":
                self._new(phase, total)
            elif event == "advance":
                if self._bar is not None:
                    self._bar.update(value)
            elif event == "finish":
                self.close()
            elif event in ("download", "hash", "upload"):
                if self._bar is None or self._bar.desc != event:
                    self._new(event, total)
                if total and self._bar.total != total:
                    self._bar.total = total
                self._bar.update(value - self._bar.n)
            elif event == "status":
                if self._bar is None or self._bar.desc != "ollama":
                    self._new("ollama", 0)
                self._bar.set_postfix_str(phase)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _events(cb: Callable[[ProgressEvent], Any]) -> Callable[[str, str, int, int], None]:
    def native(event: str, phase: str, value: int, total: int) -> None:
        if event == "start":
            cb({"event": event, "phase": phase, "total": total})
        elif event == "advance":
            cb({"event": event, "bytes": value})
        elif event == "finish":
            cb({"event": event})
        elif event == "status":
            cb({"event": event, "status": phase, "bytes": value, "total": total})
        else:
            cb({"event": event, "file": phase, "bytes": value, "total": total})

    return native


def native_callback(progress: ProgressArg):
    """The callable handed to the native function, and a closer to call when it returns.

    ``None``/``False``: no progress. ``True``: tqdm bars if tqdm is installed (silently none
    otherwise). A callable: called with one :data:`ProgressEvent` dict per event, from the thread
    doing the work.
    """
    if progress is None or progress is False:
        return None, lambda: None
    if progress is True:
        try:
            bars = _Tqdm()
        except ImportError:
            return None, lambda: None
        return bars, bars.close
    if not callable(progress):
        raise TypeError("progress must be None, a bool or a callable taking one event dict")
    return _events(progress), lambda: None


def run(fn: Callable[..., Any], progress: ProgressArg, *args: Any, **kwargs: Any) -> Any:
    """Calls the native ``fn`` with ``progress=`` translated, closing bars at the end."""
    native, close = native_callback(progress)
    try:
        return fn(*args, progress=native, **kwargs)
    finally:
        close()


__all__ = ["ProgressEvent", "ProgressArg", "native_callback", "run"]
