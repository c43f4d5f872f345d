"""Every operation against the `ckpt` command line on the repository fixtures: same JSON
report, same output bytes; and against the reference outputs stored with the fixtures."""

import hashlib
import json
import os
import shutil
import threading
import time
from pathlib import Path

import pytest

import ckpt
from conftest import FIX, ROOT, cli, cli_json, read

TORCH = FIX / "torch"
GG = FIX / "gguf"


@pytest.mark.parametrize(
    "path",
    [
        TORCH / "all_dtypes.bin",
        TORCH / "all_dtypes.expected.safetensors",
        TORCH / "training_checkpoint.pt",
        TORCH / "sharded",
        GG / "tiny-llama-spm.Q4_K_M.gguf",
        ROOT / "examples" / "tiny-llama",
        FIX / "vision" / "mmproj-tiny-gemma3-vision.f16.gguf",
        GG / "split" / "tiny-llama-spm.Q2_K-split-00001-of-00003.gguf",
    ],
    ids=lambda p: p.name,
)
def test_inspect_matches_cli(path):
    assert ckpt.inspect(path) == cli_json("inspect", path)


def test_inspect_key_and_summary():
    p = TORCH / "training_checkpoint.pt"
    assert ckpt.inspect(p, key="state_dict") == cli_json("inspect", p, "--key", "state_dict")
    g = GG / "tiny-smol-bpe.f16.gguf"
    assert ckpt.inspect(g, summary=True) == cli_json("inspect", g, "--summary")


def _without(report, *keys):
    return {k: v for k, v in report.items() if k not in keys}


@pytest.mark.parametrize("case", ["all_dtypes", "big_endian", "pickle_protocol4", "parameters"])
def test_convert_bin_to_safetensors(tmp, case):
    src = TORCH / f"{case}.bin"
    ours = ckpt.convert(src, tmp / "py.safetensors")
    theirs = cli_json("convert", src, tmp / "cli.safetensors")
    assert read(tmp / "py.safetensors") == read(tmp / "cli.safetensors")
    # torch + safetensors' convert.py wrote the expected file.
    assert read(tmp / "py.safetensors") == read(TORCH / f"{case}.expected.safetensors")
    assert _without(ours, "output", "files") == _without(theirs, "output", "files")


def test_convert_options_and_folder(tmp):
    src = TORCH / "sharded"
    ckpt.convert(src, tmp / "py", to="bin", max_shard_size="24KB")
    cli("convert", "-q", src, tmp / "cli", "--to", "bin", "--max-shard-size", "24KB")
    names = sorted(p.name for p in (tmp / "cli").iterdir())
    assert names == sorted(p.name for p in (tmp / "py").iterdir())
    for n in names:
        assert read(tmp / "py" / n) == read(tmp / "cli" / n), n
    ckpt.convert(TORCH / "all_dtypes.expected.safetensors", tmp / "h.safetensors", dtype="f16")
    cli("convert", "-q", TORCH / "all_dtypes.expected.safetensors", tmp / "h2.safetensors", "--dtype", "f16")
    assert read(tmp / "h.safetensors") == read(tmp / "h2.safetensors")


def test_convert_to_gguf_matches_cli_and_llama_cpp(tmp):
    # general.name comes from the folder name, so convert a copy named as the reference's was.
    src = tmp / "tiny-llama-spm"
    shutil.copytree(GG / "tiny-llama-spm", src)
    events = []
    rep = ckpt.convert(src, tmp / "py.gguf", outtype="q8_0", progress=events.append)
    cli("convert", "-q", src, tmp / "cli.gguf", "--outtype", "q8_0")
    assert read(tmp / "py.gguf") == read(tmp / "cli.gguf")
    # convert_hf_to_gguf.py --outtype q8_0 wrote the stored reference.
    assert read(tmp / "py.gguf") == read(GG / "tiny-llama-spm.q8_0.gguf")
    assert rep["outtype"] == "Q8_0"
    kinds = {e["event"] for e in events}
    assert "start" in kinds and "advance" in kinds, events[:5]


def test_convert_gguf_to_hf(tmp):
    src = GG / "tiny-llama-spm.f16.gguf"
    ckpt.convert(src, tmp / "py")
    cli("convert", "-q", src, tmp / "cli")
    names = sorted(p.name for p in (tmp / "cli").iterdir())
    assert names == sorted(p.name for p in (tmp / "py").iterdir())
    for n in names:
        assert read(tmp / "py" / n) == read(tmp / "cli" / n), n


def test_quantize_matches_cli_and_llama_quantize(tmp):
    src = GG / "tiny-llama-spm.f16.gguf"
    rep = ckpt.quantize(src, tmp / "py.gguf", "Q4_K_M")
    theirs = cli_json("quantize", src, tmp / "cli.gguf", "Q4_K_M")
    assert read(tmp / "py.gguf") == read(tmp / "cli.gguf")
    # llama-quantize's output for the same input, known by its sha256 (manifest.json).
    files = json.loads((GG / "manifest.json").read_text())["files"]
    want = next(f["sha256"] for f in files if f["path"] == "tiny-llama-spm.f16-to-Q4_K_M.gguf")
    assert hashlib.sha256(read(tmp / "py.gguf")).hexdigest() == want
    assert _without(rep, "output", "outputs") == _without(theirs, "output", "outputs")
    assert rep["outputs"] == [str(tmp / "py.gguf")] and theirs["outputs"] == [str(tmp / "cli.gguf")]


def test_quantize_imatrix(tmp):
    src = GG / "tiny-llama-spm.f16.gguf"
    im = FIX / "gguf-imatrix" / "imatrix.gguf"
    if not im.exists():
        pytest.skip("no imatrix fixture")
    ckpt.quantize(src, tmp / "py.gguf", "Q4_K_M", imatrix=im)
    cli("quantize", "-q", src, tmp / "cli.gguf", "Q4_K_M", "--imatrix", im)
    assert read(tmp / "py.gguf") == read(tmp / "cli.gguf")


@pytest.mark.parametrize("case", ["a_lora", "c_dora"])
def test_merge_lora(tmp, case):
    base = FIX / "lora" / "f32" / "base-llama"
    adapter = FIX / "lora" / "f32" / case / "adapter"
    ckpt.merge_lora(base, adapter, tmp / "py")
    cli("merge-lora", "-q", "--base", base, "--adapter", adapter, "--out", tmp / "cli")
    names = sorted(p.name for p in (tmp / "cli").iterdir())
    assert names == sorted(p.name for p in (tmp / "py").iterdir())
    for n in names:
        assert read(tmp / "py" / n) == read(tmp / "cli" / n), n
    # weighted, as (folder, weight)
    ckpt.merge_lora(base, [(adapter, 0.5)], tmp / "pyw")
    cli("merge-lora", "-q", "--base", base, "--adapter", f"{adapter}:0.5", "--out", tmp / "cliw")
    assert read(tmp / "pyw" / "model.safetensors") == read(tmp / "cliw" / "model.safetensors")


def test_diff_and_verify():
    a, b = TORCH / "all_dtypes.bin", TORCH / "all_dtypes.expected.safetensors"
    assert ckpt.diff(a, b) == cli_json("diff", a, b)
    c = TORCH / "parameters.expected.safetensors"
    assert ckpt.diff(a, c) == cli_json("diff", a, c, check=False)
    g = GG / "tiny-llama-spm.q8_0.gguf"
    d = GG / "tiny-llama-spm"
    assert ckpt.diff(g, d, tolerance=0.1) == cli_json("diff", g, d, "--tolerance", "0.1", check=False)
    for p in (a, GG / "tiny-llama-spm", g):
        assert ckpt.verify(p) == cli_json("verify", p, check=False)
    assert ckpt.verify(b, scan_values=True) == cli_json("verify", b, "--scan-values", check=False)


def test_scan_matches_cli(tmp):
    hostile = FIX / "hostile"
    assert ckpt.scan(hostile) == cli_json("scan", hostile, check=False)
    clean = TORCH / "all_dtypes.bin"
    r = ckpt.scan([clean])
    assert r == cli_json("scan", clean) and r["clean_files"] == 1


def test_ollama_create_matches_cli(tmp):
    src = GG / "tiny-llama-spm.Q4_K_M.gguf"
    store_py, store_cli = tmp / "py", tmp / "cli"
    rep = ckpt.ollama.create(
        "tiny:q4", src, parameters={"temperature": 0.5, "stop": ["</s>", "<s>"]}, system="Be brief.",
        store=store_py,
    )
    theirs = cli_json(
        "ollama", "create", "tiny:q4", "--from", src, "--param", "temperature=0.5",
        "--param", "stop=</s>", "--param", "stop=<s>", "--system", "Be brief.",
        env={"OLLAMA_MODELS": str(store_cli)},
    )
    assert rep == theirs  # the one report builder (ckpt::report) behind both
    files = sorted(str(p.relative_to(store_cli)) for p in store_cli.rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(store_py)) for p in store_py.rglob("*") if p.is_file())
    for f in files:
        assert read(store_py / f) == read(store_cli / f), f


MODELFILE = """FROM {src}
TEMPLATE \"\"\"{{{{ if .System }}}}<<SYS>>{{{{ .System }}}}<</SYS>>
{{{{ end }}}}[INST] {{{{ .Prompt }}}} [/INST]\"\"\"
SYSTEM \"\"\"Be brief.\"\"\"
PARAMETER temperature 0.5
PARAMETER stop "</s>"
PARAMETER stop "[INST]"
PARAMETER num_ctx 256
LICENSE \"\"\"MIT License\"\"\"
"""


def test_ollama_create_from_modelfile_matches_cli(tmp):
    mf = tmp / "Modelfile"
    mf.write_text(MODELFILE.format(src=GG / "tiny-llama-spm.Q4_K_M.gguf"))
    rep = ckpt.ollama.create("mf:latest", modelfile=mf, store=tmp / "py")
    theirs = cli_json("ollama", "create", "mf:latest", "-f", mf, env={"OLLAMA_MODELS": str(tmp / "cli")})
    assert rep == theirs
    files = sorted(str(p.relative_to(tmp / "cli")) for p in (tmp / "cli").rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(tmp / "py")) for p in (tmp / "py").rglob("*") if p.is_file())
    for f in files:
        assert read(tmp / "py" / f) == read(tmp / "cli" / f), f
    manifest = json.loads(read(tmp / "py" / "manifests" / "registry.ollama.ai" / "library" / "mf" / "latest"))
    kinds = [layer["mediaType"].rsplit(".", 1)[-1] for layer in manifest["layers"]]
    assert kinds == ["model", "template", "system", "params", "license"] or sorted(kinds) == sorted(
        ["model", "template", "system", "params", "license"]
    ), kinds
    params = json.loads(read(tmp / "py" / "blobs" / next(
        l["digest"].replace(":", "-") for l in manifest["layers"] if l["mediaType"].endswith("params"))))
    assert params == {"num_ctx": 256, "stop": ["</s>", "[INST]"], "temperature": 0.5}

    # The same model said with keyword arguments: the same manifest, digest for digest.
    kw = ckpt.ollama.create(
        "kw:latest", GG / "tiny-llama-spm.Q4_K_M.gguf",
        template="{{ if .System }}<<SYS>>{{ .System }}<</SYS>>\n{{ end }}[INST] {{ .Prompt }} [/INST]",
        system="Be brief.", parameters={"temperature": 0.5, "stop": ["</s>", "[INST]"], "num_ctx": 256},
        license="MIT License", store=tmp / "py",
    )
    assert kw["digest"] == rep["digest"]


def test_ollama_create_modelfile_with_quantize_matches_cli(tmp):
    mf = tmp / "Modelfile"
    mf.write_text(f"FROM {GG / 'tiny-llama-spm.f16.gguf'}\nPARAMETER temperature 0\n")
    rep = ckpt.ollama.create("q:8", modelfile=mf, quantize="q8_0", store=tmp / "py")
    theirs = cli_json("ollama", "create", "q:8", "-f", mf, "-q", "q8_0", env={"OLLAMA_MODELS": str(tmp / "cli")})
    assert rep == theirs
    assert any("quantizing" in s for s in rep["status"]), rep["status"]
    with pytest.raises(ckpt.UsageError):
        ckpt.ollama.create("x", modelfile=mf, system="no", store=tmp / "x")


def test_ollama_create_template_text(tmp):
    src = GG / "tiny-llama-spm.Q4_K_M.gguf"
    tpl = "{{ .System }} {{ .Prompt }}"
    (tmp / "t.tmpl").write_text(tpl)
    rep = ckpt.ollama.create("t", src, template=tpl, store=tmp / "py")
    theirs = cli_json("ollama", "create", "t", "--from", src, "--template", tmp / "t.tmpl",
                      env={"OLLAMA_MODELS": str(tmp / "cli")})
    assert rep["digest"] == theirs["digest"]
    with pytest.raises(ckpt.UsageError):
        ckpt.ollama.create("t", src, template=tpl, template_file=tmp / "t.tmpl", store=tmp / "x")


@pytest.fixture
def no_such_repo_hub():
    """A Hub endpoint on 127.0.0.1 that answers every request 404 "Repository not found"."""
    import http.server

    class H(http.server.BaseHTTPRequestHandler):
        def _404(self):
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            body = b'{"error":"Repository not found"}'
            self.send_response(404)
            self.send_header("Content-Type", "application/json")
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_HEAD = do_POST = do_PUT = _404

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()


def test_pull_push_errors_map_like_cli(tmp, no_such_repo_hub, monkeypatch):
    env = {"HF_ENDPOINT": no_such_repo_hub, "HF_HUB_CACHE": str(tmp / "cache"), "HF_TOKEN": "hf_x"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ckpt.CkptError) as e:
        ckpt.pull("org/model", revision="main", cache_dir=tmp / "cache")
    code, _ = cli("pull", "org/model", "--revision", "main", env=env, check=False)
    assert e.value.exit_code == code != 0
    with pytest.raises(ckpt.CkptError) as e:
        ckpt.push(TORCH / "all_dtypes.bin", "org/model", commit_message="x")
    code, _ = cli("push", TORCH / "all_dtypes.bin", "org/model", "-m", "x", env=env, check=False)
    assert e.value.exit_code == code != 0


def test_error_classes(tmp):
    with pytest.raises(ckpt.CkptIOError) as e:
        ckpt.inspect(tmp / "missing.safetensors")
    assert isinstance(e.value, OSError) and e.value.exit_code == 6
    with pytest.raises(ckpt.InvalidFileError):
        ckpt.inspect(FIX / "hostile" / "st_overlap.safetensors")
    (tmp / "out.safetensors").write_bytes(b"x")
    with pytest.raises(ckpt.UsageError) as e:
        ckpt.convert(TORCH / "all_dtypes.bin", tmp / "out.safetensors")
    assert isinstance(e.value, ValueError) and "overwrite=True" in str(e.value)
    ckpt.convert(TORCH / "all_dtypes.bin", tmp / "out.safetensors", overwrite=True)
    with pytest.raises(ckpt.UsageError):
        ckpt.quantize(GG / "tiny-llama-spm.f16.gguf", tmp / "q.gguf", "Q9_X")
    with pytest.raises(ckpt.UsageError):
        ckpt.convert(TORCH / "all_dtypes.bin", tmp / "o.safetensors", outtype="q8_0")
    with pytest.raises(ckpt.UnsupportedError):
        ckpt.save_file({"x": __import__("numpy").zeros(2, dtype="complex128")}, tmp / "c.safetensors")


def test_gil_released_during_work(tmp):
    src = GG / "tiny-llama-spm.f16.gguf"
    done = threading.Event()

    def work():
        ckpt.quantize(src, tmp / "q.gguf", "Q6_K")
        done.set()

    t = threading.Thread(target=work)
    t0 = time.perf_counter()
    t.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    t.join()
    elapsed = time.perf_counter() - t0
    # With the GIL held for the whole call this thread would not run until it returned.
    assert ticks > 5 or elapsed < 0.05, (ticks, elapsed)


def test_progress_true_without_tqdm_is_silent(tmp, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "tqdm", None)
    ckpt.convert(TORCH / "all_dtypes.bin", tmp / "a.safetensors", progress=True)


def test_version_is_the_crate_version():
    cargo = (ROOT / "Cargo.toml").read_text()
    line = next(l for l in cargo.splitlines() if l.startswith("version = "))
    assert ckpt.__version__ == line.split('"')[1]
    from importlib.metadata import version

    assert version("ckpt") == ckpt.__version__
