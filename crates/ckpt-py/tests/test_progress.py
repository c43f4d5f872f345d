"""Progress reporting: a callable gets event dicts from every long operation; progress=True
draws tqdm bars (tqdm is installed in the test venv)."""

import shutil

import pytest

import ckpt
from conftest import FIX

TORCH = FIX / "torch"
GG = FIX / "gguf"


def phases(events):
    """{phase: (announced total, bytes advanced)} from start/advance/finish events, checking
    that every phase is started before it advances and finished in the end. A start while a
    phase is open replaces it (the GGUF conversion starts with an unknown total, then starts
    again once it knows it), as the command line's bars do."""
    out, current = {}, None
    for e in events:
        if e["event"] == "start":
            assert current in (None, e["phase"]), f"{e} before {current} finished"
            current = e["phase"]
            out[current] = [e["total"], 0]
        elif e["event"] == "advance":
            assert current is not None, e
            out[current][1] += e["bytes"]
        elif e["event"] == "finish":
            assert current is not None, e
            current = None
    assert current is None, f"{current} never finished"
    return {k: tuple(v) for k, v in out.items()}


def test_convert_callback_counts_every_byte(tmp):
    events = []
    rep = ckpt.convert(TORCH / "all_dtypes.bin", tmp / "a.safetensors", progress=events.append)
    p = phases(events)
    assert p, events
    for phase, (total, done) in p.items():
        assert done == total > 0, (phase, total, done)
    assert rep["output"]


def test_convert_to_gguf_and_merge_lora_callbacks(tmp):
    src = tmp / "tiny-llama-spm"
    shutil.copytree(GG / "tiny-llama-spm", src)
    events = []
    ckpt.convert(src, tmp / "m.gguf", outtype="f16", progress=events.append)
    p = phases(events)
    assert any(done == total > 0 for total, done in p.values()), p

    events = []
    base = FIX / "lora" / "f32" / "base-llama"
    ckpt.merge_lora(base, FIX / "lora" / "f32" / "a_lora" / "adapter", tmp / "merged", progress=events.append)
    p = phases(events)
    assert p and all(done == total for total, done in p.values()), p


def test_ollama_create_status_events(tmp):
    events = []
    rep = ckpt.ollama.create("tiny", GG / "tiny-llama-spm.Q4_K_M.gguf", store=tmp / "store", progress=events.append)
    statuses = [e["status"] for e in events]
    assert statuses == rep["status"] and statuses[-1] == "success"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_callback_exception_does_not_stop_the_work(tmp):
    def boom(event):
        raise RuntimeError("progress callback failed")

    ckpt.convert(TORCH / "all_dtypes.bin", tmp / "a.safetensors", progress=boom)
    assert (tmp / "a.safetensors").exists()


def test_progress_must_be_callable(tmp):
    with pytest.raises(TypeError):
        ckpt.convert(TORCH / "all_dtypes.bin", tmp / "a.safetensors", progress="yes")


@pytest.fixture
def recorded_bars(monkeypatch):
    """The tqdm bars progress=True makes, recorded (desc, total, n at close) while still drawing
    to stderr as tqdm does."""
    import tqdm.auto

    made = []
    real = tqdm.auto.tqdm

    class Recording(real):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            made.append(self)
            self.closed_at = None

        def close(self):
            if getattr(self, "closed_at", None) is None:
                self.closed_at = self.n
            super().close()

    monkeypatch.setattr(tqdm.auto, "tqdm", Recording)
    return made


def test_tqdm_bars_for_convert(tmp, recorded_bars, capsys):
    ckpt.convert(TORCH / "all_dtypes.bin", tmp / "a.safetensors", progress=True)
    assert recorded_bars, "progress=True drew no tqdm bar"
    for bar in recorded_bars:
        assert bar.total and bar.closed_at == bar.total, (bar.desc, bar.total, bar.closed_at)
        assert bar.disable or bar.unit == "B"
    err = capsys.readouterr().err
    assert recorded_bars[0].desc in err, err[-500:]


def test_tqdm_status_bar_for_ollama_create(tmp, recorded_bars):
    # ollama.create: one bar whose postfix follows Ollama's status lines.
    rep = ckpt.ollama.create("tiny", GG / "tiny-llama-spm.Q4_K_M.gguf", store=tmp / "s", progress=True)
    assert [b.desc for b in recorded_bars] == ["ollama"]
    assert rep["status"][-1] in recorded_bars[0].postfix


def test_tqdm_bars_for_pull(tmp, fake_hub, monkeypatch, recorded_bars):
    import os

    hub = fake_hub("download", {"org/tiny": FIX / "remote" / "sharded"})
    for k in list(os.environ):
        if k.startswith("HF_"):
            monkeypatch.delenv(k)
    for k, v in hub.env(tmp / "cache").items():
        monkeypatch.setenv(k, v)
    rep = ckpt.pull("org/tiny", progress=True)
    (bar,) = recorded_bars
    assert bar.desc == "download"
    assert bar.total == bar.closed_at == rep["downloaded_bytes"]
