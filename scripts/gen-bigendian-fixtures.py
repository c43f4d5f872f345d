#!/usr/bin/env python3
"""Reference files for `ckpt convert --bigendian`: the pinned llama.cpp converters run with
--bigendian, written to tests/fixtures/bigendian/.

  examples/tiny-llama (80 KB model)      -> tiny-llama.{f16,bf16,q8_0}.be.gguf   (stored whole)
  tests/fixtures/gguf/tiny-llama-spm     -> tiny-llama-spm.{f16,q8_0}.be.header + manifest.json
                                            (6.8 / 3.6 MB: header bytes and sha256 only)
  PEFT adapters of tests/fixtures/lora   -> lora/<case>.be.gguf                   (stored whole)
  tests/fixtures/vision/tiny-gemma3-vision -> mmproj-tiny-gemma3-vision.f16.be.gguf (--mmproj)
  tests/fixtures/convert-split/tiny-split -> split/<case>/tiny-0000N-of-0000M.gguf (--split-max-*)
  examples/tiny-llama + a LoRA adapter made here (merge/adapter, PEFT save_pretrained)
                                         -> merge/tiny-llama-merged.f16.be.gguf: PEFT's
                                            merge_and_unload() saved with the base's config and
                                            tokenizer files, converted with --bigendian

Run from anywhere:

    /work/fullenv/venv/bin/python scripts/gen-bigendian-fixtures.py \
        --llama-cpp /work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp

Each converter runs with the gguf-py of the same tree first on PYTHONPATH, in the folder holding
the model folder, which is given by its relative name (general.name comes from it). The manifest
also records what gguf-py's GGUFReader says of every file (byte order, tensor types).
"""
import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = FIX / "bigendian"

# (output name, folder to run in, model folder given relatively, outtype, stored whole)
MODELS = [
    ("tiny-llama.f16.be.gguf", ROOT / "examples", "tiny-llama", "f16", True),
    ("tiny-llama.bf16.be.gguf", ROOT / "examples", "tiny-llama", "bf16", True),
    ("tiny-llama.q8_0.be.gguf", ROOT / "examples", "tiny-llama", "q8_0", True),
    ("tiny-llama-spm.f16.be.gguf", FIX / "gguf", "tiny-llama-spm", "f16", False),
    ("tiny-llama-spm.q8_0.be.gguf", FIX / "gguf", "tiny-llama-spm", "q8_0", False),
    ("mmproj-tiny-gemma3-vision.f16.be.gguf", FIX / "vision", "tiny-gemma3-vision", "f16", True),
]

# Split outputs of tests/fixtures/convert-split/tiny-split: (case, converter arguments).
SPLITS = [
    ("f16-tensors-7", ["--outtype", "f16", "--split-max-tensors", "7"]),
    ("bf16-size-8K-no-first", ["--outtype", "bf16", "--split-max-size", "8K", "--no-tensor-first-split"]),
]

# The merge reference: base, LoRA settings, the merged folder's name (general.name comes from
# it; `ckpt merge-lora --out DIR/tiny-llama-merged.gguf` converts a folder of that name) and
# the output type.
MERGE_BASE = ROOT / "examples" / "tiny-llama"
MERGE_FOLDER = "tiny-llama-merged"
MERGE_OUTTYPE = "f16"
MERGE_LORA = dict(r=2, lora_alpha=2, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0)
# What `ckpt merge-lora` copies from the base besides the weights.
MERGE_COPIED = ["config.json", "generation_config.json", "tokenizer.model", "tokenizer_config.json"]

# (case, adapter, base (relative to tests/fixtures), outtype)
ADAPTERS = [
    ("llama-a-f32", "lora/f32/a_lora/adapter", "lora/f32/base-llama", "f32"),
    ("llama-a-q8_0", "lora/f32/a_lora/adapter", "lora/f32/base-llama", "q8_0"),
    ("llama-a-bf16adapter-bf16", "lora/bf16/a_lora_bf16_adapter/adapter", "lora/bf16/base-llama", "bf16"),
    ("llama-a-bf16adapter-f16", "lora/bf16/a_lora_bf16_adapter/adapter", "lora/bf16/base-llama", "f16"),
]


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def describe(path: Path, gguf) -> dict:
    r = gguf.GGUFReader(str(path))
    return {
        "size": path.stat().st_size,
        "sha256": sha256(path),
        "data_offset": int(r.data_offset),
        "byte_order": r.endianess.name,
        "tensor_types": sorted({t.tensor_type.name for t in r.tensors}),
        "tensors": len(r.tensors),
    }


def make_merge_adapter(adapter_dir: Path) -> None:
    """A LoRA adapter for examples/tiny-llama written by PEFT, with values that make the merge
    exact: lora_A and lora_B hold small integers times 2^-6 and the scale is 1, so every delta
    is k * 2^-12 (|k| <= 8), exactly representable in bf16, and base + delta is exact in f32.
    Every correct merger then rounds the same value once: the reference does not depend on
    how the matmul is summed."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(MERGE_BASE, dtype=torch.bfloat16)
    model = get_peft_model(base, LoraConfig(**MERGE_LORA))
    with torch.no_grad():
        for seed, (name, p) in enumerate(sorted(model.named_parameters())):
            if ".lora_A." in name or ".lora_B." in name:
                ints = (torch.arange(p.numel()) * 7 + seed) % 5 - 2
                p.copy_((ints.to(torch.float32) * 2.0**-6).reshape(p.shape))
    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    model.save_pretrained(adapter_dir)
    (adapter_dir / "README.md").unlink(missing_ok=True)
    cfg_path = adapter_dir / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = os.path.relpath(MERGE_BASE, adapter_dir)
    cfg["target_modules"] = sorted(cfg["target_modules"])  # a Python set: its order varies
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def peft_merge(adapter_dir: Path, out_dir: Path) -> None:
    """PEFT's merge_and_unload() of the adapter into the bf16 base, saved by transformers, with
    the base's config and tokenizer files (as ckpt merge-lora writes its folder); checks that
    every merged weight is the exact sum rounded once and that the merge changed something."""
    import torch
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(MERGE_BASE, dtype=torch.bfloat16)
    before = {k: v.clone() for k, v in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(out_dir)
    for f in MERGE_COPIED:
        shutil.copy(MERGE_BASE / f, out_dir / f)
    adapter = load_file(adapter_dir / "adapter_model.safetensors")
    saved = load_file(out_dir / "model.safetensors")
    changed = 0
    for k, w in saved.items():
        a = adapter.get(f"base_model.model.{k[: -len('.weight')]}.lora_A.weight")
        if a is None:
            assert torch.equal(w, before[k]), k
            continue
        b = adapter[f"base_model.model.{k[: -len('.weight')]}.lora_B.weight"]
        delta = (b.double() @ a.double()) * (MERGE_LORA["lora_alpha"] / MERGE_LORA["r"])
        exact = before[k].double() + delta
        assert torch.equal(exact.float().double(), exact), f"{k}: base + delta is not exact in f32"
        assert torch.equal(w, exact.float().to(torch.bfloat16)), f"{k}: PEFT's merge is not the exact sum"
        changed += int(not torch.equal(w, before[k]))
    assert changed == 3, changed


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, default=Path(os.environ.get(
        "LLAMA_CPP_SRC", "/work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp")))
    args = ap.parse_args()
    llama = args.llama_cpp.resolve()
    env = dict(os.environ, PYTHONPATH=str(llama / "gguf-py"))
    sys.path.insert(0, str(llama / "gguf-py"))
    import gguf

    OUT.mkdir(exist_ok=True)
    (OUT / "lora").mkdir(exist_ok=True)
    scratch = OUT / "scratch"
    scratch.mkdir(exist_ok=True)
    manifest = {"models": {}, "adapters": {}}
    for name, cwd, model, outtype, stored in MODELS:
        out = (OUT if stored else scratch) / name
        mmproj = ["--mmproj"] if name.startswith("mmproj-") else []
        cmd = [sys.executable, str(llama / "convert_hf_to_gguf.py"), model, *mmproj,
               "--outtype", outtype, "--bigendian", "--outfile", str(out)]
        subprocess.run(cmd, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = describe(out, gguf)
        d.update(source=str((cwd / model).relative_to(ROOT)), outtype=outtype, stored=stored,
                 mmproj=bool(mmproj),
                 command=f"PYTHONPATH=$LLAMA_CPP/gguf-py python $LLAMA_CPP/convert_hf_to_gguf.py {model} {' '.join(mmproj)} "
                         f"--outtype {outtype} --bigendian --outfile {name}  (in {cwd.relative_to(ROOT)})")
        if not stored:
            header = OUT / name.replace(".gguf", ".header")
            header.write_bytes(out.read_bytes()[: d["data_offset"]])
        manifest["models"][name] = d
    for case, adapter, base, outtype in ADAPTERS:
        name = f"{case}.be.gguf"
        out = OUT / "lora" / name
        cmd = [sys.executable, str(llama / "convert_lora_to_gguf.py"), "--base", str(FIX / base),
               "--outtype", outtype, "--bigendian", "--outfile", str(out), str(FIX / adapter)]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        d = describe(out, gguf)
        d.update(adapter=adapter, base=base, outtype=outtype, stored=True,
                 command=f"PYTHONPATH=$LLAMA_CPP/gguf-py python $LLAMA_CPP/convert_lora_to_gguf.py "
                         f"--base tests/fixtures/{base} --outtype {outtype} --bigendian "
                         f"--outfile lora/{name} tests/fixtures/{adapter}")
        manifest["adapters"][name] = d
    manifest["splits"] = {}
    split_src = FIX / "convert-split"
    for case, extra in SPLITS:
        folder = OUT / "split" / case
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        cmd = [sys.executable, str(llama / "convert_hf_to_gguf.py"), "tiny-split", *extra,
               "--bigendian", "--outfile", str(folder / "tiny.gguf")]
        subprocess.run(cmd, cwd=split_src, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        files = sorted(folder.iterdir())
        assert len(files) > 1, f"{case}: not split"
        manifest["splits"][case] = {
            "source": str((split_src / "tiny-split").relative_to(ROOT)),
            "args": extra,
            "outfile": "tiny.gguf",
            "files": [dict(file=f.name, **describe(f, gguf)) for f in files],
            "command": f"PYTHONPATH=$LLAMA_CPP/gguf-py python $LLAMA_CPP/convert_hf_to_gguf.py tiny-split "
                       f"{' '.join(extra)} --bigendian --outfile split/{case}/tiny.gguf  "
                       f"(in {split_src.relative_to(ROOT)})",
        }
    merge = OUT / "merge"
    merge.mkdir(exist_ok=True)
    adapter_dir = merge / "adapter"
    make_merge_adapter(adapter_dir)
    peft_merge(adapter_dir, scratch / MERGE_FOLDER)
    name = f"{MERGE_FOLDER}.{MERGE_OUTTYPE}.be.gguf"
    out = merge / name
    cmd = [sys.executable, str(llama / "convert_hf_to_gguf.py"), MERGE_FOLDER, "--outtype", MERGE_OUTTYPE,
           "--bigendian", "--outfile", str(out)]
    subprocess.run(cmd, cwd=scratch, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    d = describe(out, gguf)
    d.update(base=str(MERGE_BASE.relative_to(ROOT)), adapter=str(adapter_dir.relative_to(ROOT)),
             folder=MERGE_FOLDER, outtype=MERGE_OUTTYPE,
             command=f"PeftModel.from_pretrained(base, adapter).merge_and_unload().save_pretrained({MERGE_FOLDER}) "
                     f"+ the base's {', '.join(MERGE_COPIED)}; then PYTHONPATH=$LLAMA_CPP/gguf-py python "
                     f"$LLAMA_CPP/convert_hf_to_gguf.py {MERGE_FOLDER} --outtype {MERGE_OUTTYPE} --bigendian "
                     f"--outfile merge/{name}")
    manifest["merges"] = {name: d}
    shutil.rmtree(scratch)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
