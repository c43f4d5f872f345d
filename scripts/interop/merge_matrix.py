#!/usr/bin/env python3
"""`ckpt merge-lora` against PEFT's `merge_and_unload()` on the tiny models of the dense families.

    merge_matrix.py CKPT_BINARY [--arch ARCH ...]

For each architecture (default: the dense families below, each as stored — bfloat16 — and with
`+f32src`), the tiny random model of arch_matrix.py gets a PEFT LoRA adapter on every linear layer
(`target_modules="all-linear"`: attention, MLP, and LFM2's short-conv `in_proj`/`out_proj`; A and
B random non-zero), which PEFT merges (`PeftModel.from_pretrained(base).merge_and_unload()`,
`save_pretrained`) and ckpt merges (`ckpt merge-lora --base B --adapter A --out O`). The merged
folders must hold the same tensor names, dtypes and shapes; a tensor the adapter leaves alone must
be byte-identical, a changed one within the rounding of the matmul (tests/fixtures/lora's
tolerances: f32 1e-5 x the tensor's largest magnitude, bf16 1 ulp). Prints one line per case:
  ok CASE (N merged tensors)     agreement
  skip CASE                      transformers/peft cannot build or merge it
  DIFF CASE / REFUSED CASE       a difference, or ckpt refused (the script then exits non-zero)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import arch_matrix  # noqa: E402  (the tiny models)

DENSE = [
    "SmolLM3ForCausalLM", "GraniteForCausalLM", "Olmo2ForCausalLM", "Olmo3ForCausalLM", "CohereForCausalLM",
    "Cohere2ForCausalLM", "Glm4ForCausalLM", "Exaone4ForCausalLM", "Lfm2ForCausalLM", "Ernie4_5_ForCausalLM",
    "StableLmForCausalLM", "HunYuanDenseV1ForCausalLM", "SeedOssForCausalLM", "ApertusForCausalLM",
]


def load_model(path: Path, dtype):
    from transformers import AutoModel, AutoModelForCausalLM

    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    except Exception:
        return AutoModel.from_pretrained(path, dtype=dtype)


def stored_dtype(base: Path):
    import torch
    from safetensors import safe_open

    files = sorted(base.glob("*.safetensors"))
    with safe_open(str(files[0]), "pt") as f:
        return next(f.get_tensor(k).dtype for k in f.keys() if f.get_tensor(k).dtype in (torch.float32, torch.bfloat16, torch.float16))


def make_adapter(base: Path, out: Path, dtype) -> list[str]:
    """An all-linear adapter with random A and B; returns the targeted module names."""
    import torch
    from peft import LoraConfig, get_peft_model

    model = load_model(base, dtype)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(peft_model.named_parameters()):
            if "lora_A" in name:
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) / p.shape[1] ** 0.5)
            elif "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.05)
    peft_model.save_pretrained(out)
    return sorted({n.split(".lora_A")[0] for n, _ in peft_model.named_parameters() if ".lora_A" in n})


def peft_merge(base: Path, adapter: Path, out: Path, dtype) -> None:
    from peft import PeftModel

    PeftModel.from_pretrained(load_model(base, dtype), str(adapter)).merge_and_unload().save_pretrained(out)


def tensors(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def ulps(a, b):
    """bf16 ulp distance per element (sign-magnitude order)."""
    import torch

    x = a.view(torch.int16).to(torch.int32) & 0xFFFF
    y = b.view(torch.int16).to(torch.int32) & 0xFFFF

    def key(v):
        return torch.where(v >= 0x8000, 0x8000 - v, v)

    return (key(x) - key(y)).abs()


def compare(ours: dict, ref: dict, base: dict) -> tuple[list[str], int]:
    import torch

    problems, merged = [], 0
    if sorted(ours) != sorted(ref):
        problems.append(f"names: only ckpt {sorted(set(ours) - set(ref))[:4]}, only PEFT {sorted(set(ref) - set(ours))[:4]}")
    for name in sorted(set(ours) & set(ref)):
        a, b = ours[name], ref[name]
        if a.dtype != b.dtype or a.shape != b.shape:
            problems.append(f"{name}: ckpt {a.dtype} {tuple(a.shape)}, PEFT {b.dtype} {tuple(b.shape)}")
            continue
        if torch.equal(a.view(torch.uint8) if a.dim() else a, b.view(torch.uint8) if b.dim() else b):
            if name in base and not torch.equal(base[name], b):
                merged += 1
            continue
        if name in base and torch.equal(base[name], b):
            problems.append(f"{name}: the adapter leaves it alone but ckpt changed it")
            continue
        merged += 1
        if b.dtype == torch.float32:
            err = (a - b).abs().max().item()
            limit = 1e-5 * b.abs().max().item()
            if err > limit:
                problems.append(f"{name}: off by {err:.3g} (limit {limit:.3g})")
        elif b.dtype == torch.bfloat16:
            worst = ulps(a, b).max().item()
            if worst > 1:
                problems.append(f"{name}: off by {worst} bf16 ulp")
        else:
            problems.append(f"{name}: {b.dtype} differs")
    return problems, merged


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("--arch", action="append")
    args = ap.parse_args()
    cases = args.arch or [c for a in DENSE for c in (a, a + "+f32src")]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            work = Path(tmp) / case
            base, adapter = work / "base", work / "adapter"
            try:
                arch_matrix.build_model(case, base)
                dtype = stored_dtype(base)
                targets = make_adapter(base, adapter, dtype)
                peft_merge(base, adapter, work / "peft", dtype)
            except Exception as e:  # transformers/peft cannot build it: not a merge question
                print(f"skip {case}: {type(e).__name__}: {str(e)[:160]}")
                continue
            r = subprocess.run([args.ckpt, "merge-lora", "-q", "--base", str(base), "--adapter", str(adapter),
                                "--out", str(work / "ours")], capture_output=True, text=True)
            if r.returncode != 0:
                bad += 1
                print(f"REFUSED {case}: {r.stderr.strip()[:300]}")
                continue
            problems, merged = compare(tensors(work / "ours"), tensors(work / "peft"), tensors(base))
            if problems:
                bad += 1
                print(f"DIFF {case}: " + "; ".join(problems[:6]))
            elif merged == 0:
                bad += 1
                print(f"DIFF {case}: PEFT changed no tensor (the check would prove nothing)")
            else:
                kinds = sorted({t.rsplit(".", 1)[-1] for t in targets})
                print(f"ok {case} ({merged} merged tensors; modules {', '.join(kinds)})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
