"""Shared helpers: the repository's fixtures and the built `ckpt` command line, whose output
(JSON and file bytes) the Python functions are compared with."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
FIX = ROOT / "tests" / "fixtures"
CLI = Path(os.environ.get("CKPT_BIN", ROOT / "target" / "debug" / "ckpt"))


def cli(*args, env=None, check=True):
    """Runs the ckpt binary; returns (exit code, stdout)."""
    if not CLI.exists():
        pytest.fail(f"{CLI} is missing: build it with `cargo build -p ckpt-cli`")
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"ckpt {' '.join(map(str, args))} exited {p.returncode}: {p.stderr}")
    return p.returncode, p.stdout


def cli_json(*args, **kw):
    code, out = cli(*args, "--json", **kw)
    return json.loads(out)


def read(p):
    return Path(p).read_bytes()


@pytest.fixture
def tmp(tmp_path):
    return tmp_path
