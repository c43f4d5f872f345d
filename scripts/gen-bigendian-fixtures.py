#!/usr/bin/env python3
"""Reference files for `ckpt convert --bigendian`: the pinned llama.cpp converters run with
--bigendian, written to tests/fixtures/bigendian/.

  examples/tiny-llama (80 KB model)      -> tiny-llama.{f16,bf16,q8_0}.be.gguf   (stored whole)
  tests/fixtures/gguf/tiny-llama-spm     -> tiny-llama-spm.{f16,q8_0}.be.header + manifest.json
                                            (6.8 / 3.6 MB: header bytes and sha256 only)
  PEFT adapters of tests/fixtures/lora   -> lora/<case>.be.gguf                   (stored whole)
  tests/fixtures/vision/tiny-gemma3-vision -> mmproj-tiny-gemma3-vision.f16.be.gguf (--mmproj)
  tests/fixtures/convert-split/tiny-split -> split/<case>/tiny-0000N-of-0000M.gguf (--split-max-*)

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
    shutil.rmtree(scratch)
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
