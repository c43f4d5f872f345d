#!/usr/bin/env python3
"""EmbeddingGemma's sentence-transformers pipeline survives GGUF and back (issue #17).

The tiny EmbeddingGemma of tests/fixtures/dense-modules (Transformer, mean Pooling, 2_Dense,
3_Dense, Normalize) is converted with `ckpt convert --sentence-transformers-dense-modules` (or,
with --llama-cpp, by convert_hf_to_gguf.py with that flag) and exported back with
`ckpt convert MODEL.gguf OUT_DIR`; then sentence-transformers must give the same embeddings:

  f32  SentenceTransformer(original).encode(texts) == SentenceTransformer(exported).encode(texts),
       max |diff| 0
  f16  the same against the original with its matrices rounded to float16 (what the converter
       stores), both loaded in float32: max |diff| 0

The embeddings are computed with the original's tokenizer files in both folders: the fixture
pairs a Llama SentencePiece tokenizer (BOS 1, space prefix) with a Gemma 3 config (BOS 2), which
the converter records the Gemma way, so the exported tokenizer (what llama.cpp tokenizes with)
gives other ids for this fixture; whether the ids agree is printed. The original's config
gets `query_pre_attn_scalar` = head_dim first (the released model has it; llama.cpp's graph scales
queries by 1/sqrt(head_dim) and the export writes that), as scripts/interop/export_matrix.py does,
and its tokenizer the pad token of config.json's `pad_token_id` (sentence-transformers pads).

usage: st_dense_check.py CKPT_BINARY [--llama-cpp LLAMA_CPP_SRC] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "dense-modules" / "tiny-embeddinggemma"
TEXTS = [
    "hello world",
    "The quick brown fox jumps over the lazy dog.",
    "a",
    "sentence-transformers Dense modules, 2_Dense and 3_Dense",
]


def run(cmd: list[str], env: dict | None = None) -> None:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed (exit {p.returncode}): {p.stdout.strip()[-600:]}")


def to_gguf(ckpt: str, llama_cpp: Path | None, model: Path, outtype: str, out: Path) -> None:
    if llama_cpp is None:
        run([ckpt, "convert", "-q", str(model), str(out), "--outtype", outtype,
             "--sentence-transformers-dense-modules", "--force"])
    else:
        run([sys.executable, str(llama_cpp / "convert_hf_to_gguf.py"), str(model), "--outtype", outtype,
             "--outfile", str(out), "--sentence-transformers-dense-modules"],
            env=dict(os.environ, PYTHONPATH=str(llama_cpp / "gguf-py")))


def rounded_copy(src: Path, dst: Path) -> None:
    """`src` with every matrix of every safetensors file rounded to float16 and back (vectors
    stay float32, as the converter keeps them)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    for f in dst.rglob("*.safetensors"):
        tensors = load_file(str(f))
        save_file({k: (v.to(torch.float16).to(torch.float32) if v.dim() >= 2 else v) for k, v in tensors.items()},
                  str(f), metadata={"format": "pt"})


def encode(folder: Path):
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu", model_kwargs={"dtype": torch.float32})
    kinds = [type(m).__name__ for m in model]
    ids = [model.tokenizer(t)["input_ids"] for t in TEXTS]
    emb = model.encode(TEXTS, convert_to_tensor=True, batch_size=1).float()
    return kinds, ids, emb


def check(ckpt: str, llama_cpp: Path | None, work: Path, outtype: str) -> tuple[bool, str]:
    model = work / "tiny-embeddinggemma"
    if not model.exists():
        shutil.copytree(FIXTURE, model)
        cfg = json.loads((model / "config.json").read_text())
        cfg["query_pre_attn_scalar"] = cfg["head_dim"]
        (model / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
        # sentence-transformers pads its batches: the pad token is config.json's pad_token_id
        # (the GGUF's padding token, which the export writes back), absent from the fixture's
        # tokenizer_config.json.
        tok = json.loads((model / "tokenizer_config.json").read_text())
        tok["pad_token"] = tok["added_tokens_decoder"][str(cfg["pad_token_id"])]["content"]
        (model / "tokenizer_config.json").write_text(json.dumps(tok, indent=2) + "\n")
    gguf = work / f"dense.{outtype}.gguf"
    to_gguf(ckpt, llama_cpp, model, outtype, gguf)
    out = work / f"export-{outtype}"
    run([ckpt, "convert", "-q", str(gguf), str(out), "--force"])
    reference = model
    if outtype == "f16":
        reference = work / "original-rounded-f16"
        if not reference.exists():
            rounded_copy(model, reference)
    with_tok = work / f"export-{outtype}-original-tokenizer"
    if with_tok.exists():
        shutil.rmtree(with_tok)
    shutil.copytree(out, with_tok)
    for f in ["tokenizer.json", "tokenizer.model", "tokenizer_config.json"]:
        (with_tok / f).unlink(missing_ok=True)
        if (model / f).exists():
            shutil.copyfile(model / f, with_tok / f)
    ref_kinds, ref_ids, ref = encode(reference)
    _, exported_ids, _ = encode(out)
    kinds, ids, ours = encode(with_tok)
    if kinds != ref_kinds:
        return False, f"modules {kinds}, original {ref_kinds}"
    if ids != ref_ids:
        return False, f"token ids {ids}, original {ref_ids}"
    if ours.shape != ref.shape:
        return False, f"embedding shape {tuple(ours.shape)}, original {tuple(ref.shape)}"
    diff = (ours - ref).abs().max().item()
    if diff != 0:
        return False, f"embeddings differ: max |diff| {diff:g}"
    same = "the same" if exported_ids == ref_ids else "other"
    return True, (f"modules {' > '.join(kinds)}, {len(TEXTS)} texts, embeddings {tuple(ours.shape)} max |diff| 0"
                  f" (the exported tokenizer gives {same} ids)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="path to the ckpt binary")
    ap.add_argument("--llama-cpp", type=Path, help="export convert_hf_to_gguf.py's GGUF (llama.cpp source tree) instead of ckpt's")
    ap.add_argument("--keep", type=Path, help="keep the models, GGUFs and exports in this folder")
    args = ap.parse_args()
    ckpt = str(Path(args.ckpt).resolve())
    llama_cpp = args.llama_cpp.resolve() if args.llama_cpp else None
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="ckpt-st-dense-"))
    work.mkdir(parents=True, exist_ok=True)
    failures = 0
    try:
        for outtype in ["f32", "f16"]:
            try:
                ok, msg = check(ckpt, llama_cpp, work, outtype)
            except Exception as e:  # noqa: BLE001
                ok, msg = False, f"{type(e).__name__}: {e}"
            print(f"{'ok' if ok else 'FAIL'} {outtype}: {msg}", flush=True)
            failures += not ok
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
