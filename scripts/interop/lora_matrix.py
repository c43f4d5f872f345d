#!/usr/bin/env python3
"""LoRA adapters for every architecture: ckpt's `convert ADAPTER out.gguf --base BASE` against
llama.cpp's convert_lora_to_gguf.py.

    lora_matrix.py CKPT_BINARY LLAMA_CPP_SRC [--arch ARCH ...] [--outtype T]

For each architecture of arch_matrix.py (its tiny random models), a PEFT adapter on every linear
layer (`target_modules="all-linear"`, random non-zero weights) is converted by both tools. Prints
one line per architecture:
  ok ARCH           byte-identical files
  refused ARCH      both refuse (the script fails, ckpt exits non-zero): the reason is printed
  script-bug ARCH   the script writes something that is not an adapter (ckpt's adapter is kept)
  DIFF/… ARCH       anything else (then the script exits non-zero)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import arch_matrix  # noqa: E402  (the tiny models)


def make_adapter(base: Path, out: Path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    except Exception:
        model = AutoModel.from_pretrained(base, dtype=torch.float32)
    peft_model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear"))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in sorted(peft_model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    peft_model.save_pretrained(out)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("ckpt")
    ap.add_argument("llama_cpp", type=Path)
    ap.add_argument("--arch", action="append")
    ap.add_argument("--outtype", default="f32")
    args = ap.parse_args()
    archs = args.arch or [a for a in arch_matrix.ALL_ARCHS if "+" not in a]
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            work = Path(tmp) / arch
            base = work / "base"
            try:
                arch_matrix.build_model(arch, base)
                make_adapter(base, work / "adapter")
            except Exception as e:  # transformers/peft cannot build it: not a converter question
                print(f"skip {arch}: {type(e).__name__}: {str(e)[:120]}")
                continue
            ref, ours = work / "ref.gguf", work / "ours.gguf"
            py = subprocess.run([sys.executable, str(args.llama_cpp / "convert_lora_to_gguf.py"), "--base", str(base),
                                 "--outtype", args.outtype, "--outfile", str(ref), str(work / "adapter")],
                                capture_output=True, text=True)
            ck = subprocess.run([args.ckpt, "convert", "-q", str(work / "adapter"), str(ours), "--base", str(base),
                                 "--outtype", args.outtype], capture_output=True, text=True)
            if py.returncode == 0 and ck.returncode == 0:
                from gguf import GGUFReader

                kind = GGUFReader(str(ref)).fields["general.type"].contents()
                if kind != "adapter":
                    # Mistral3Model delegates write() to an inner model class, so the script
                    # converts the base model's own weights and never sees the adapter.
                    print(f"script-bug {arch}: convert_lora_to_gguf.py wrote general.type={kind}, not an adapter")
                elif ref.read_bytes() == ours.read_bytes():
                    print(f"ok {arch}")
                else:
                    bad += 1
                    print(f"DIFF {arch}: " + "; ".join(arch_matrix.compare(ref, ours)[:6]))
            elif py.returncode != 0 and ck.returncode != 0:
                why = (py.stderr.strip().splitlines() or ["?"])[-1][:160]
                print(f"refused {arch}: script: {why} | ckpt: {ck.stderr.strip()[:200]}")
            elif py.returncode != 0:
                # ckpt writes an adapter the script cannot: not byte-checkable
                why = (py.stderr.strip().splitlines() or ["?"])[-1][:160]
                print(f"ckpt-only {arch}: script fails: {why}")
            else:
                bad += 1
                print(f"REFUSED-BY-CKPT {arch}: {ck.stderr.strip()[:300]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
