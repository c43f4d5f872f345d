"""The README's Python examples run as written (from a scratch folder holding `examples/`)."""

import sys
import types

import ckpt
from conftest import ROOT, read


def readme_python():
    """The ```python block of the README's Python section, split at its "# 2." and "# 3."."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("\n## Python\n") :]
    code = section[section.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    one, rest = code.split("\n# 2.", 1)
    two, three = rest.split("\n# 3.", 1)
    return one, "# 2." + two, "# 3." + three


def test_examples_1_and_2(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "ollama"))
    one, two, _ = readme_python()
    ns = {}
    exec(compile(one, "README.md#1", "exec"), ns)
    assert read(tmp_path / "tiny-Q4_K_M.gguf")[:4] == b"GGUF"
    assert (tmp_path / "ollama" / "manifests" / "registry.ollama.ai" / "library" / "tiny" / "q4").is_file()
    exec(compile(two, "README.md#2", "exec"), ns)
    saved = ckpt.load_file(tmp_path / "layer0.safetensors")
    assert saved and all("layers.0." in k for k in saved)
    src = ckpt.load_file(ROOT / "examples" / "tiny-llama" / "pytorch_model.bin")
    for k, v in saved.items():
        assert v.tobytes() == src[k].tobytes(), k


def test_example_3_ray_recipe_calls(monkeypatch, capsys):
    """The cluster recipe against a stand-in `ray` module that runs the tasks in this process: the
    calls and keywords it shows exist (the real-Ray run is test_batch.py's test_ray_recipe)."""
    calls = {}
    ray = types.ModuleType("ray")

    def init(**kw):
        calls["init"] = kw

    def remote(**options):
        calls["remote"] = options
        return lambda fn: types.SimpleNamespace(remote=fn)

    ray.init, ray.remote, ray.get = init, remote, lambda refs: refs
    monkeypatch.setitem(sys.modules, "ray", ray)
    _, _, three = readme_python()
    exec(compile(three, "README.md#3", "exec"), {})
    assert calls["init"] == {"address": "auto"}
    assert calls["remote"] == {"num_cpus": 2}
    out = capsys.readouterr().out
    assert "/shared/quants/qwen-Q4_K_M.gguf" in out and out.count("False") == 6  # no /shared here
