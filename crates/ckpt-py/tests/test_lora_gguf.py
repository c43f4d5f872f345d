"""ckpt.convert of a PEFT LoRA adapter to a GGUF adapter (``base``, ``base_model_id``) and
``dry_run`` (adapters and models): the bytes of llama.cpp's convert_lora_to_gguf.py
(tests/fixtures/lora-gguf/expected, by scripts/gen-lora-gguf-fixtures.py), the sizes of the
scripts' real files, and the base's config.json pulled from the fake Hub of crate ckpt-testhub
(never the network)."""

import json
import os
import shutil

import pytest

import ckpt
from conftest import FIX, cli_json, read

CASES = json.loads((FIX / "lora-gguf" / "cases.json").read_text())


def use_env(monkeypatch, env):
    """This process's Hub settings (ckpt reads them at each call) = ``env``."""
    for k in list(os.environ):
        if k.startswith("HF_"):
            monkeypatch.delenv(k)
    for k, v in env.items():
        monkeypatch.setenv(k, v)


@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_adapter_with_base_is_the_scripts_file(tmp, case):
    out = tmp / "adapter.gguf"
    rep = ckpt.convert(FIX / case["adapter"], out, base=FIX / case["base"], outtype=case["outtype"])
    assert read(out) == read(FIX / case["output"]), "differs from convert_lora_to_gguf.py's output"
    assert rep["dry_run"] is False
    assert rep["bytes"] == out.stat().st_size
    # the command line's report for the same conversion
    cli_out = tmp / "cli.gguf"
    theirs = cli_json("convert", FIX / case["adapter"], cli_out, "--base", FIX / case["base"],
                      "--outtype", case["outtype"])
    assert json.dumps(rep).replace(str(out), "OUT") == json.dumps(theirs).replace(str(cli_out), "OUT")


def test_adapter_base_model_id_pulls_only_the_config(tmp, fake_hub, monkeypatch):
    hub = fake_hub("download", {"org/base-llama": FIX / "lora" / "f32" / "base-llama"})
    use_env(monkeypatch, hub.env(tmp / "cache"))
    out = tmp / "adapter.gguf"
    ckpt.convert(FIX / "lora/f32/a_lora/adapter", out, base_model_id="org/base-llama", outtype="f32")
    assert read(out) == read(FIX / "lora-gguf/expected/llama-a-f32.gguf")
    paths = [r["path"] for r in hub.ask("requests")]
    assert any(p.endswith("/config.json") for p in paths), paths
    assert not any("model.safetensors" in p for p in paths), f"the base's weights were downloaded: {paths}"
    # base_model_id wins over base, as in the script (a base without config.json is not read)
    out2 = tmp / "adapter2.gguf"
    ckpt.convert(FIX / "lora/f32/a_lora/adapter", out2, base=tmp, base_model_id="org/base-llama", outtype="f32")
    assert read(out2) == read(out)
    # a base the Hub does not have: an error naming it, nothing written
    missing = tmp / "missing.gguf"
    with pytest.raises(ckpt.CkptError, match="org/nope"):
        ckpt.convert(FIX / "lora/f32/a_lora/adapter", missing, base_model_id="org/nope")
    assert not missing.exists()


def test_adapter_dry_run_plans_the_scripts_file(tmp):
    out = tmp / "adapter.gguf"
    rep = ckpt.convert(FIX / "lora-gguf/qwen2-lora", out, base=FIX / "lora-gguf/base-qwen2", dry_run=True)
    assert rep["dry_run"] is True
    assert rep["bytes"] == (FIX / "lora-gguf/expected/qwen2-all-linear-f32.gguf").stat().st_size
    assert list(tmp.iterdir()) == []


def test_model_dry_run_plans_the_converters_file(tmp):
    # general.name comes from the folder's name: a copy under its own name
    model = tmp / "tiny-llama-spm"
    shutil.copytree(FIX / "gguf" / "tiny-llama-spm", model)
    out = tmp / "model.gguf"
    rep = ckpt.convert(model, out, outtype="f16", dry_run=True)
    assert rep["dry_run"] is True
    assert rep["bytes"] == (FIX / "gguf" / "tiny-llama-spm.f16.gguf").stat().st_size
    assert rep["shards"] == [{"path": str(out), "tensors": rep["tensors"], "bytes": rep["bytes"]}]
    assert not out.exists()
    with pytest.raises(ckpt.UsageError, match="llama-quantize output type"):
        ckpt.convert(model, out, outtype="q4_k_m", dry_run=True)
    assert not out.exists()


def test_options_that_do_not_apply_are_refused(tmp):
    adapter = FIX / "lora/f32/a_lora/adapter"
    with pytest.raises(ckpt.UsageError, match="dtype does not apply to a LoRA adapter"):
        ckpt.convert(adapter, tmp / "a.gguf", base=FIX / "lora/f32/base-llama", dtype="f16")
    with pytest.raises(ckpt.UsageError, match="outtype of a LoRA adapter"):
        ckpt.convert(adapter, tmp / "a.gguf", base=FIX / "lora/f32/base-llama", outtype="q4_k_m")
    with pytest.raises(ckpt.UsageError, match="base and base_model_id apply"):
        ckpt.convert(FIX / "gguf/tiny-llama-spm", tmp / "m.safetensors", base=FIX / "lora/f32/base-llama")
    with pytest.raises(ckpt.UsageError, match="dry_run applies to a GGUF output"):
        ckpt.convert(FIX / "gguf/tiny-llama-spm", tmp / "m.safetensors", dry_run=True)
    assert list(tmp.iterdir()) == []
