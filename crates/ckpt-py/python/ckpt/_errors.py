"""The exceptions ckpt raises: one class per kind of failure of the Rust library.

The command line maps the same kinds to its exit codes (``ckpt --help``):

=====================  =========  ==============================================================
class                  exit code  when
=====================  =========  ==============================================================
``MismatchError``      1          a check after writing (or ``verify``) found a difference
``UsageError``         2          bad arguments, or the output exists and overwrite was not asked
``InvalidFileError``   3          malformed, truncated or inconsistent input
``UnsafeFileError``    4          input refused for safety (a pickle importing something outside
                                  the allowlist, a zip bomb); nothing was executed
``UnsupportedError``   5          valid input or a request ckpt does not support
``CkptIOError``        6          reading or writing a file failed
=====================  =========  ==============================================================
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "CkptError",
    "InvalidFileError",
    "UnsafeFileError",
    "UnsupportedError",
    "UsageError",
    "MismatchError",
    "CkptIOError",
]


class CkptError(Exception):
    """Base class of every error ckpt raises.

    Attributes:
        path: the file the error is about, when it names one (else ``None``).
        exit_code: the exit code the ``ckpt`` command line uses for this kind of error.
    """

    kind = "other"
    exit_code = 1

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        super().__init__(message)
        self.path = path


class InvalidFileError(CkptError):
    """The input is malformed, truncated or inconsistent (the message names the file and the
    tensor or byte offset)."""

    kind = "invalid"
    exit_code = 3


class UnsafeFileError(CkptError):
    """The input asks for something ckpt refuses for safety, e.g. a pickle importing a global
    outside the allowlist. Nothing from the file was executed."""

    kind = "unsafe"
    exit_code = 4


class UnsupportedError(CkptError):
    """Valid input, or a request, that ckpt does not support."""

    kind = "unsupported"
    exit_code = 5


class UsageError(CkptError, ValueError):
    """A wrong request: bad arguments, or an existing output without ``overwrite=True``. Also a
    :class:`ValueError`."""

    kind = "usage"
    exit_code = 2


class MismatchError(CkptError):
    """A check after writing found a difference."""

    kind = "mismatch"
    exit_code = 1


class CkptIOError(CkptError, OSError):
    """Reading or writing a file failed. Also an :class:`OSError`."""

    kind = "io"
    exit_code = 6

    def __init__(self, message: str, path: Optional[str] = None) -> None:
        # OSError's own constructor would read (errno, strerror) from the arguments.
        Exception.__init__(self, message)
        self.path = path
        self.filename = path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
