"""pull, push and remote inspect against the fake Hub of crate ckpt-testhub (a local process on
127.0.0.1, reached through HF_ENDPOINT like huggingface_hub): the same reports as the `ckpt`
command line, the same cache layout as huggingface_hub's snapshot_download and the same commit
as huggingface_hub's upload_folder."""

import json
import os
import shutil
from pathlib import Path

import pytest

import ckpt
from conftest import FIX, cli_json, python_with, read

SHARDED = FIX / "remote" / "sharded"
REPO = "org/tiny"


def use_env(monkeypatch, env):
    """This process's Hub settings (ckpt reads them at each call) = ``env``."""
    for k in list(os.environ):
        if k.startswith("HF_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


def tree(root):
    """Everything under ``root``: relative path → ("link", target) / ("file", bytes) / "dir"."""
    out = {}
    for p in sorted(Path(root).rglob("*")):
        rel = str(p.relative_to(root))
        if p.is_symlink():
            out[rel] = ("link", os.readlink(p))
        elif p.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = ("file", p.read_bytes())
    return out


def with_root(value, old, new):
    """``value`` (a JSON document) with the path prefix ``old`` replaced by ``new``."""
    return json.loads(json.dumps(value).replace(json.dumps(str(old))[1:-1], json.dumps(str(new))[1:-1]))


def test_pull_matches_cli_and_huggingface_hub_cache(tmp, fake_hub, monkeypatch):
    hub = fake_hub("download", {REPO: SHARDED})
    ours, cli_cache, theirs = tmp / "ours", tmp / "cli", tmp / "theirs"
    use_env(monkeypatch, hub.env(ours))
    events = []
    rep = ckpt.pull(REPO, progress=events.append)

    # The files, where huggingface_hub puts them.
    snap = ours / "models--org--tiny" / "snapshots" / rep["commit"]
    assert Path(rep["snapshot"]) == snap
    assert sorted(f["path"] for f in rep["files"]) == sorted(p.name for p in SHARDED.iterdir())
    for f in rep["files"]:
        assert read(snap / f["path"]) == read(SHARDED / f["path"]), f["path"]
        assert f["downloaded"] and not f["cached"]
    assert rep["downloaded_bytes"] == sum(p.stat().st_size for p in SHARDED.iterdir())

    # The command line's report for the same pull (into its own cache).
    theirs_cli = cli_json("pull", REPO, env=hub.env(cli_cache))
    assert rep == with_root(theirs_cli, cli_cache, ours)

    # huggingface_hub's snapshot_download against the same server: the same cache, link for
    # link and byte for byte (blobs named by sha256 / git sha1, relative snapshot links, refs).
    out = python_with(
        "from huggingface_hub import snapshot_download; print(snapshot_download('org/tiny'))",
        env=hub.env(theirs),
    )
    assert Path(out.strip()) == theirs / "models--org--tiny" / "snapshots" / rep["commit"]
    # huggingface_hub >= 2 also caches the repository listing (trees/COMMIT.json), an
    # optimisation it re-fetches when absent; ckpt does not write it (yet).
    theirs_tree = {k: v for k, v in tree(theirs / "models--org--tiny").items() if not k.startswith("trees")}
    assert tree(ours / "models--org--tiny") == theirs_tree
    # And huggingface_hub, offline, finds everything in ckpt's cache.
    out = python_with(
        "from huggingface_hub import snapshot_download; print(snapshot_download('org/tiny', local_files_only=True))",
        env=hub.env(ours),
    )
    assert Path(out.strip()) == snap

    # Progress: one "download" event per chunk, bytes over all files up to the total.
    downloads = [e for e in events if e["event"] == "download"]
    assert downloads, events[:5]
    assert {e["file"] for e in downloads} == {f["path"] for f in rep["files"]}
    assert downloads[-1]["bytes"] == downloads[-1]["total"] == rep["downloaded_bytes"]
    assert all(a["bytes"] <= b["bytes"] for a, b in zip(downloads, downloads[1:]))

    # Again: everything is cached, nothing downloaded.
    again = ckpt.pull(REPO)
    assert again["downloaded_bytes"] == 0 and all(f["cached"] for f in again["files"])


def test_pull_local_dir_and_patterns_match_cli(tmp, fake_hub, monkeypatch):
    hub = fake_hub("download", {REPO: SHARDED})
    use_env(monkeypatch, hub.env(tmp / "cache"))
    rep = ckpt.pull(REPO, local_dir=tmp / "py", allow_patterns="*.json", revision="main")
    theirs = cli_json("pull", REPO, "--local-dir", tmp / "cli", "--include", "*.json", "--revision", "main",
                      env=hub.env(tmp / "cache2"))
    assert rep == with_root(theirs, tmp / "cli", tmp / "py")
    assert [f["path"] for f in rep["files"]] == ["model.safetensors.index.json"]
    assert read(tmp / "py" / "model.safetensors.index.json") == read(SHARDED / "model.safetensors.index.json")
    assert not (tmp / "cache").exists()
    # huggingface_hub finds the local dir up to date (its metadata files are ours).
    hub.ask("clear")
    python_with(
        "import sys; from huggingface_hub import snapshot_download;"
        " snapshot_download('org/tiny', local_dir=sys.argv[1], allow_patterns='*.json')",
        tmp / "py",
        env=hub.env(tmp / "cache3"),
    )
    assert not [r for r in hub.ask("requests") if "/resolve/" in r["path"] or r["host"] == "cdn"]


def test_inspect_hf_uri_reads_headers_with_range_requests(tmp, fake_hub, monkeypatch):
    hub = fake_hub("download", {REPO: SHARDED})
    cache = tmp / "cache"
    use_env(monkeypatch, hub.env(cache))
    rep = ckpt.inspect(f"hf://{REPO}")
    cdn = [r for r in hub.ask("requests") if r["host"] == "cdn"]
    hub.ask("clear")
    assert rep == cli_json("inspect", f"hf://{REPO}", env=hub.env(cache))
    # Only the headers were read: every CDN request asked for a byte range.
    assert cdn and all(r["range"] and r["range"].startswith("bytes=") for r in cdn), cdn
    assert not cache.exists(), "inspect downloads nothing"
    local = ckpt.inspect(SHARDED)
    assert rep["parameters"] == local["parameters"]
    assert rep["total_parameters"] == local["total_parameters"]
    assert rep["commit"] == "c0ffee0000000000000000000000000000000001"
    with pytest.raises(ckpt.CkptError) as e:
        ckpt.inspect("hf://org/missing")
    assert "org/missing" in str(e.value)


def model_folder(root):
    """A small model folder to upload: an LFS safetensors file and two JSON files."""
    root.mkdir()
    shutil.copy(FIX / "torch" / "all_dtypes.expected.safetensors", root / "model.safetensors")
    (root / "config.json").write_text('{"model_type": "llama"}\n')
    (root / "generation_config.json").write_text('{"do_sample": false}\n')
    return root


def commit_of(hub):
    """The one commit the Hub received, without what depends on the server's address."""
    (c,) = hub.ask("commits")
    return {k: c[k] for k in ("repo", "revision", "create_pr", "summary", "entries")}


@pytest.mark.parametrize("create_pr", [False, True], ids=["commit", "pr"])
def test_push_matches_cli_and_upload_folder(tmp, fake_hub, monkeypatch, create_pr):
    local = model_folder(tmp / "model")
    start = tmp / "start"
    start.mkdir()
    (start / ".gitattributes").write_text("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
    hubs = [fake_hub("upload", {"org/model": start}) for _ in range(3)]
    ours, cli_hub, theirs = hubs

    use_env(monkeypatch, ours.env(tmp / "c1"))
    events = []
    rep = ckpt.push(local, "org/model", commit_message="Add weights", create_pr=create_pr, progress=events.append)
    flags = ["--create-pr"] if create_pr else []
    theirs_cli = cli_json("push", local, "org/model", "-m", "Add weights", *flags, env=cli_hub.env(tmp / "c2"))
    assert json.loads(json.dumps(rep).replace(ours.endpoint, "HUB")) == json.loads(
        json.dumps(theirs_cli).replace(cli_hub.endpoint, "HUB")
    )
    if create_pr:
        assert rep["pull_request"]["revision"] == "refs/pr/1"

    python_with(
        "import sys; from huggingface_hub import HfApi;"
        " HfApi().upload_folder(folder_path=sys.argv[1], repo_id='org/model',"
        " commit_message='Add weights', create_pr=sys.argv[2] == '1')",
        local,
        "1" if create_pr else "0",
        env=theirs.env(tmp / "c3"),
    )
    # The same commit (paths, LFS oids, sizes) as the command line's and upload_folder's, and
    # the same files on the Hub afterwards.
    assert commit_of(ours) == commit_of(cli_hub) == commit_of(theirs)
    rev = "refs/pr/1" if create_pr else "main"
    files = ours.ask(f"files org/model {rev}")
    assert files == theirs.ask(f"files org/model {rev}")
    assert {k for k in files} >= {"model.safetensors", "config.json", "generation_config.json"}
    assert files["model.safetensors"]["lfs"]

    # Progress: hashing then uploading, bytes up to the total.
    stages = [e["event"] for e in events]
    assert "hash" in stages and "upload" in stages, stages
    assert stages.index("hash") < stages.index("upload")
    up = [e for e in events if e["event"] == "upload"]
    assert up[-1]["bytes"] == up[-1]["total"] > 0


def test_push_then_pull_round_trip(tmp, fake_hub, monkeypatch):
    local = model_folder(tmp / "model")
    start = tmp / "start"
    start.mkdir()
    (start / "README.md").write_text("# old\n")
    hub = fake_hub("upload", {"org/model": start})
    use_env(monkeypatch, hub.env(tmp / "cache"))
    ckpt.push(local, "org/model", commit_message="v1")
    pulled = ckpt.pull("org/model")
    snap = Path(pulled["snapshot"])
    for name in ("model.safetensors", "config.json", "generation_config.json"):
        assert read(snap / name) == read(local / name), name
    assert ckpt.load_file(snap / "model.safetensors").keys() == ckpt.load_file(local / "model.safetensors").keys()
