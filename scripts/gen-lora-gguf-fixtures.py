#!/usr/bin/env python3
"""Regenerates tests/fixtures/lora-gguf: GGUF LoRA adapters written by llama.cpp's own
convert_lora_to_gguf.py, which `ckpt convert ADAPTER out.gguf --base BASE` must reproduce byte for
byte.

Run with the full reference environment (torch, transformers, peft, gguf-py of the pinned llama.cpp):

    /work/fullenv/venv/bin/python scripts/gen-lora-gguf-fixtures.py \
        [--llama-cpp /work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp]

It writes, under tests/fixtures/lora-gguf/:
  base-qwen2/config.json, base-gemma2/config.json   tiny random base models (config only: the
                                                    converter reads nothing else of the base)
  qwen2-lora/     PEFT adapter (safetensors) on every linear module of a tiny Qwen2
  gemma2-lora/    PEFT adapter saved as adapter_model.bin (torch order), attention + embedding
  GPT2-124M-Chat-lora-v2/   the GPT-2 adapter of ../lora with a model card (general.* metadata)
  expected/<case>.gguf   convert_lora_to_gguf.py's output for each case in CASES
  cases.json      the cases: adapter, base, outtype, output
The llama cases use the adapters of tests/fixtures/lora (written by transformers/peft, see its README).
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "lora-gguf"
LORA = ROOT / "tests" / "fixtures" / "lora"

# (case, adapter dir relative to tests/fixtures, base dir relative to tests/fixtures, outtype)
CASES = [
    ("llama-a-f32", "lora/f32/a_lora/adapter", "lora/f32/base-llama", "f32"),
    ("llama-a-bf16adapter-f16", "lora/bf16/a_lora_bf16_adapter/adapter", "lora/bf16/base-llama", "f16"),
    ("llama-a-bf16adapter-bf16", "lora/bf16/a_lora_bf16_adapter/adapter", "lora/bf16/base-llama", "bf16"),
    ("llama-a-q8_0", "lora/f32/a_lora/adapter", "lora/f32/base-llama", "q8_0"),
    ("llama-embedding-f32", "lora/f32/f_embedding/adapter", "lora/f32/base-llama", "f32"),
    ("gpt2-fan-in-fan-out-f32", "lora/f32/e_gpt2_fan_in_fan_out/adapter", "lora/f32/base-gpt2", "f32"),
    ("gpt2-model-card-f16", "lora-gguf/GPT2-124M-Chat-lora-v2", "lora/f32/base-gpt2", "f16"),
    ("qwen2-all-linear-f32", "lora-gguf/qwen2-lora", "lora-gguf/base-qwen2", "f32"),
    ("qwen2-all-linear-q8_0", "lora-gguf/qwen2-lora", "lora-gguf/base-qwen2", "q8_0"),
    ("gemma2-bin-f16", "lora-gguf/gemma2-lora", "lora-gguf/base-gemma2", "f16"),
]


def tiny_configs():
    from transformers import Gemma2Config, Qwen2Config

    qwen2 = Qwen2Config(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
        tie_word_embeddings=True, architectures=["Qwen2ForCausalLM"],
    )
    gemma2 = Gemma2Config(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=128,
        architectures=["Gemma2ForCausalLM"],
    )
    return {"qwen2": qwen2, "gemma2": gemma2}


def randomize(model, seed):
    """Non-zero LoRA weights, as if trained (PEFT initialises B to zero)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if "lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)


def make_adapters():
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    configs = tiny_configs()
    for arch, cfg in configs.items():
        base_dir = OUT / f"base-{arch}"
        base_dir.mkdir(parents=True, exist_ok=True)
        cfg.save_pretrained(base_dir)
    specs = {
        "qwen2": dict(
            r=8, lora_alpha=16, lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        ),
        "gemma2": dict(
            r=4, lora_alpha=8, lora_dropout=0.0,
            target_modules=["q_proj", "k_proj", "v_proj", "embed_tokens"],
        ),
    }
    for seed, (arch, kwargs) in enumerate(specs.items()):
        model = AutoModelForCausalLM.from_config(configs[arch])
        peft_model = get_peft_model(model, LoraConfig(**kwargs))
        randomize(peft_model, 100 + seed)
        out = OUT / f"{arch}-lora"
        peft_model.save_pretrained(out, safe_serialization=(arch != "gemma2"))
        # The model card PEFT writes names library versions; the converter reads it only for
        # metadata, and a card-less adapter keeps the fixture stable.
        (out / "README.md").unlink(missing_ok=True)
        cfg_path = out / "adapter_config.json"
        ac = json.loads(cfg_path.read_text())
        ac["base_model_name_or_path"] = f"../base-{arch}"
        cfg_path.write_text(json.dumps(ac, indent=2, sort_keys=True) + "\n")
        # embedding layers saved in full (save_embedding_layers="auto") are dropped by the
        # converter; keep the fixture small by not saving them at all.


CARD = """---
base_model: openai-community/gpt2
library_name: peft
license: mit
tags:
- lora
- trl
datasets:
- HuggingFaceH4/ultrachat_200k
language:
- en
---
# GPT-2 chat LoRA
"""


def make_card_adapter():
    """An adapter with a model card and a folder name gguf-py's metadata heuristics parse
    (size label, finetune, version, the redundant "lora"), on the GPT-2 adapter of ../lora."""
    import shutil

    out = OUT / "GPT2-124M-Chat-lora-v2"
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(LORA / "f32" / "e_gpt2_fan_in_fan_out" / "adapter", out)
    (out / "README.md").write_text(CARD)


def convert(llama_cpp: Path):
    exp = OUT / "expected"
    exp.mkdir(parents=True, exist_ok=True)
    fixtures = ROOT / "tests" / "fixtures"
    rows = []
    for case, adapter, base, outtype in CASES:
        out = exp / f"{case}.gguf"
        cmd = [
            sys.executable, str(llama_cpp / "convert_lora_to_gguf.py"),
            "--base", str(fixtures / base), "--outtype", outtype, "--outfile", str(out),
            str(fixtures / adapter),
        ]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows.append({"case": case, "adapter": adapter, "base": base, "outtype": outtype,
                     "output": f"lora-gguf/expected/{case}.gguf"})
    (OUT / "cases.json").write_text(json.dumps(rows, indent=2) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, default=Path(os.environ.get(
        "LLAMA_CPP_SRC", "/work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp")))
    ap.add_argument("--skip-adapters", action="store_true", help="keep the committed PEFT adapters")
    args = ap.parse_args()
    if not args.skip_adapters:
        make_adapters()
        make_card_adapter()
    convert(args.llama_cpp)


if __name__ == "__main__":
    main()
