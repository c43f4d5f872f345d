#!/usr/bin/env python3
"""Regenerates tests/fixtures/convert-split: the split GGUFs that llama.cpp's own
convert_hf_to_gguf.py writes with --split-max-tensors / --split-max-size / --no-tensor-first-split
(gguf-py's GGUFWriter decides the shards), which `ckpt convert` must reproduce byte for byte.

    PYTHONPATH=$LLAMA/gguf-py /work/fullenv/venv/bin/python scripts/gen-convert-split-fixtures.py \
        [--llama-cpp /work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp]

It writes, under tests/fixtures/convert-split/:
  tiny-split/     a tiny LlamaForCausalLM (hidden 20, 2 layers, 2 heads, 1 KV head, FFN 24, tied
                  embeddings; f32 weights, element i of every tensor is ((i * 7 + k) % 23 - 11) / 64
                  with k the tensor's index in sorted-name order) with the 512-token SentencePiece
                  tokenizer of ../gguf/tiny-llama-spm. Hidden 20 makes tensor sizes that are not
                  multiples of the 32-byte alignment, so a size limit on unpadded bytes differs
                  from one on padded bytes.
  expected/CASE/  the converter's output files for each case of CASES (run in this folder, with
                  the model folder given as `tiny-split`, which becomes general.name)
  cases.json      the cases: converter arguments (the ckpt convert arguments are the same) and
                  the files written
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "convert-split"
SPM = ROOT / "tests" / "fixtures" / "gguf" / "tiny-llama-spm"

# case -> converter arguments after `tiny-split --outfile expected/CASE/OUTFILE`
CASES = {
    "tensors-7": ["--outtype", "f16", "--split-max-tensors", "7"],
    "size-5K": ["--outtype", "f16", "--split-max-size", "5K"],
    # a size limit in plain bytes where counting padded sizes would give other shards
    "size-bytes": ["--outtype", "f16", "--split-max-size", "2960"],
    "no-first-tensors-9": ["--outtype", "f16", "--split-max-tensors", "9", "--no-tensor-first-split"],
    "both-tensors-6-size-3K": ["--outtype", "f32", "--split-max-tensors", "6", "--split-max-size", "3K"],
    # the limit is never reached: one file, named as given, no split.* keys
    "single-tensors-100": ["--outtype", "f16", "--split-max-tensors", "100"],
    # --no-tensor-first-split alone: a metadata-only first shard and one with every tensor
    "no-first-only": ["--outtype", "q8_0", "--no-tensor-first-split"],
}
OUTFILE = "tiny.gguf"

CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "head_dim": 10,
    "hidden_act": "silu",
    "hidden_size": 20,
    "intermediate_size": 24,
    "max_position_embeddings": 256,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 2,
    "num_hidden_layers": 2,
    "num_key_value_heads": 1,
    "rms_norm_eps": 1e-05,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "float32",
    "vocab_size": 512,
}


def tensors() -> dict[str, list[int]]:
    h, f, v, hd, kv = 20, 24, 512, 10, 1
    t = {"model.embed_tokens.weight": [v, h], "model.norm.weight": [h]}
    for i in range(CONFIG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        t[p + "input_layernorm.weight"] = [h]
        t[p + "post_attention_layernorm.weight"] = [h]
        t[p + "self_attn.q_proj.weight"] = [h, h]
        t[p + "self_attn.k_proj.weight"] = [kv * hd, h]
        t[p + "self_attn.v_proj.weight"] = [kv * hd, h]
        t[p + "self_attn.o_proj.weight"] = [h, h]
        t[p + "mlp.gate_proj.weight"] = [f, h]
        t[p + "mlp.up_proj.weight"] = [f, h]
        t[p + "mlp.down_proj.weight"] = [h, f]
    return t


def write_safetensors(path: Path, shapes: dict[str, list[int]]) -> None:
    header, blobs, offset = {}, [], 0
    for k, (name, shape) in enumerate(sorted(shapes.items())):
        n = 1
        for d in shape:
            n *= d
        data = struct.pack(f"<{n}f", *[((i * 7 + k) % 23 - 11) / 64 for i in range(n)])
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as fp:
        fp.write(struct.pack("<Q", len(raw)))
        fp.write(raw)
        for b in blobs:
            fp.write(b)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", default="/work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp")
    args = ap.parse_args()
    llama = Path(args.llama_cpp)
    model = OUT / "tiny-split"
    if OUT.exists():
        shutil.rmtree(OUT)
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    for f in ["tokenizer.model", "tokenizer_config.json"]:
        shutil.copy(SPM / f, model / f)
    write_safetensors(model / "model.safetensors", tensors())
    env = dict(os.environ, PYTHONPATH=str(llama / "gguf-py"))
    cases = {}
    for name, extra in CASES.items():
        out = OUT / "expected" / name
        out.mkdir(parents=True)
        cmd = [sys.executable, str(llama / "convert_hf_to_gguf.py"), "tiny-split",
               "--outfile", f"expected/{name}/{OUTFILE}"] + extra
        r = subprocess.run(cmd, cwd=OUT, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"{name}: converter failed:\n{r.stdout}\n{r.stderr}", file=sys.stderr)
            return 1
        # --dry-run prints the plan (one file name per line) and writes nothing
        dry = subprocess.run(cmd + ["--dry-run"], cwd=OUT, env=env, capture_output=True, text=True)
        files = sorted(p.name for p in out.iterdir())
        cases[name] = {
            "converter": ["convert_hf_to_gguf.py", "tiny-split", "--outfile",
                          f"expected/{name}/{OUTFILE}"] + extra,
            "outfile": OUTFILE,
            "args": extra,
            "files": [{"file": f, "size": (out / f).stat().st_size} for f in files],
            "dry_run_prints": [Path(l).name for l in dry.stdout.split()],
        }
        print(name, files)
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
