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


TESTHUB = Path(os.environ.get("CKPT_TESTHUB_BIN", ROOT / "target" / "debug" / "ckpt-testhub"))


class FakeHub:
    """The fake Hugging Face Hub of crate ckpt-testhub as a process on 127.0.0.1 (built by
    scripts/test.sh: `cargo build -p ckpt-testhub`). ``mode`` is ``download`` (pull, remote
    inspect: LFS files redirect to a CDN host that answers range requests) or ``upload`` (push:
    preupload, LFS batch, commits). ``repos`` maps ``ORG/NAME`` to a fixture folder."""

    def __init__(self, mode, repos):
        if not TESTHUB.exists():
            pytest.fail(f"{TESTHUB} is missing: build it with `cargo build -p ckpt-testhub`")
        args = [str(TESTHUB), mode]
        for repo, folder in repos.items():
            args += ["--repo", f"{repo}={folder}"]
        self._p = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        first = json.loads(self._p.stdout.readline())
        self.endpoint = first["endpoint"]
        self.token = first["token"]

    def ask(self, command):
        """One command (``requests``, ``clear``, ``files REPO REV``, ``commits``) → its JSON answer."""
        self._p.stdin.write(command + "\n")
        self._p.stdin.flush()
        return json.loads(self._p.stdout.readline())

    def env(self, cache):
        """Client settings for this Hub (huggingface_hub's names), with ``cache`` as HF_HOME/hub."""
        e = {
            "HF_ENDPOINT": self.endpoint,
            "HF_HOME": str(cache / "home"),
            "HF_HUB_CACHE": str(cache),
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_OFFLINE": "0",
        }
        if self.token:
            e["HF_TOKEN"] = self.token
        return e

    def close(self):
        self._p.stdin.close()
        self._p.wait(timeout=30)


@pytest.fixture
def fake_hub():
    """Starts fake Hubs: ``fake_hub(mode, {repo: folder})``; all are stopped after the test."""
    hubs = []

    def start(mode, repos):
        h = FakeHub(mode, repos)
        hubs.append(h)
        return h

    yield start
    for h in hubs:
        h.close()


def python_with(script, *args, env):
    """Runs ``script`` in a fresh interpreter (this venv's, whose huggingface_hub reads its
    settings from the environment at import); returns stdout."""
    import sys

    e = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    e.update(env)
    p = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, env=e)
    if p.returncode != 0:
        raise AssertionError(f"python failed:\n{p.stdout}\n{p.stderr}")
    return p.stdout
