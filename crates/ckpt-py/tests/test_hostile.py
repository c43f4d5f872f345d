"""Hostile pickles: refused with UnsafeFileError, nothing executed (their payloads would create
marker files in $FIXTURE_MARKER_DIR)."""

import json
import os
import pickle
import subprocess
import sys
import zipfile

import pytest

import ckpt
from conftest import FIX

HOSTILE = FIX / "hostile"
EXPECTED = json.loads((HOSTILE / "expected.json").read_text())
UNSAFE = sorted(n for n, e in EXPECTED.items() if e["exit_code"] == 4)


@pytest.fixture
def markers(tmp_path, monkeypatch):
    d = tmp_path / "markers"
    d.mkdir()
    monkeypatch.setenv("FIXTURE_MARKER_DIR", str(d))
    return d


@pytest.mark.parametrize("name", UNSAFE)
def test_unsafe_fixture_raises_and_never_executes(name, markers, tmp_path):
    path = HOSTILE / name
    with pytest.raises(ckpt.UnsafeFileError) as e:
        ckpt.load_file(path)
    assert e.value.exit_code == 4
    with pytest.raises(ckpt.UnsafeFileError):
        ckpt.convert(path, tmp_path / "out.safetensors")
    assert list(markers.iterdir()) == []


def _own_hostile(tmp_path, marker):
    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({"w": Evil()}, protocol=2)
    path = tmp_path / "evil.bin"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr("evil/data.pkl", payload)
        z.writestr("evil/byteorder", "little")
        z.writestr("evil/version", "3\n")
    return path, payload


def test_payload_is_live_but_ckpt_never_runs_it(tmp_path):
    marker = tmp_path / "pwned"
    path, payload = _own_hostile(tmp_path, marker)
    for fn in (ckpt.load_file, ckpt.inspect):
        with pytest.raises(ckpt.UnsafeFileError):
            fn(path)
    assert not marker.exists()
    scan = ckpt.scan(path)
    assert scan["dangerous_files"] == 1
    assert {"posix.system", "os.system"} & set(scan["files"][0]["dangerous"]), scan
    assert not marker.exists()
    # The control: plain pickle does run it (in a child process), so the check above can fail.
    subprocess.run([sys.executable, "-c", "import pickle,sys; pickle.loads(sys.stdin.buffer.read())"], input=payload, check=True)
    assert marker.exists()
