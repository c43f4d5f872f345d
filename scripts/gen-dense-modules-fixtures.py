#!/usr/bin/env python3
"""Reference files for `ckpt convert --sentence-transformers-dense-modules` (issue #17):
a tiny EmbeddingGemma (Gemma3TextModel) sentence-transformers folder with 2_Dense/3_Dense
projections, and what the pinned convert_hf_to_gguf.py writes for it with and without the flag.

    /work/fullenv/venv/bin/python scripts/gen-dense-modules-fixtures.py \
        --llama-cpp /work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp

Writes tests/fixtures/dense-modules/:
  tiny-embeddinggemma/            config.json of ../arch-tables/embeddinggemma, the tiny
                                  SentencePiece tokenizer of ../gguf/tiny-llama-spm, weights
                                  (element i = (i % 13) * 0.125, float32), modules.json,
                                  1_Pooling (mean), 2_Dense (8 -> 32), 3_Dense (32 -> 8),
                                  Normalize (no folder); the Dense weights are float32
                                  `linear.weight`
  tiny-embeddinggemma.{f16,f32}.gguf         converter without the flag
  tiny-embeddinggemma.dense.{f16,f32,bf16,q8_0}.gguf
                                  converter with --sentence-transformers-dense-modules
The converter runs in tests/fixtures/dense-modules with the model folder given relatively
(general.name comes from it), with the gguf-py of the same tree first on PYTHONPATH.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

ROOT = Path(__file__).resolve().parent.parent
FIX = ROOT / "tests" / "fixtures"
OUT = FIX / "dense-modules"
MODEL = "tiny-embeddinggemma"
IDENTITY = "torch.nn.modules.linear.Identity"


def dense(d: Path, in_f: int, out_f: int, seed: int) -> None:
    d.mkdir()
    (d / "config.json").write_text(json.dumps(
        {"in_features": in_f, "out_features": out_f, "bias": False, "activation_function": IDENTITY}, indent=2) + "\n")
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((out_f, in_f)).astype(np.float32)
    save_file({"linear.weight": w}, str(d / "model.safetensors"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llama-cpp", type=Path, default=Path(os.environ.get(
        "LLAMA_CPP_SRC", "/work/fullenv/sdist/llama_cpp_python-0.3.36/vendor/llama.cpp")))
    args = ap.parse_args()
    llama = args.llama_cpp.resolve()
    env = dict(os.environ, PYTHONPATH=str(llama / "gguf-py"))

    OUT.mkdir(exist_ok=True)
    m = OUT / MODEL
    if m.exists():
        shutil.rmtree(m)
    m.mkdir()
    case = FIX / "arch-tables" / "embeddinggemma"
    shutil.copyfile(case / "config.json", m / "config.json")
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copyfile(FIX / "gguf" / "tiny-llama-spm" / f, m / f)
    tensors = json.loads((case / "hf_tensors.json").read_text())
    arrays = {n: ((np.arange(int(np.prod(s))) % 13) * 0.125).astype(np.float32).reshape(s) for n, s in tensors}
    save_file(arrays, str(m / "model.safetensors"))
    hidden = json.loads((m / "config.json").read_text())["hidden_size"]
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 4, "name": "4", "path": "4_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (m / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    (m / "1_Pooling").mkdir()
    (m / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": hidden, "pooling_mode_cls_token": False, "pooling_mode_mean_tokens": True,
         "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False,
         "pooling_mode_weightedmean_tokens": False, "pooling_mode_lasttoken": False,
         "include_prompt": True}, indent=2) + "\n")
    dense(m / "2_Dense", hidden, 4 * hidden, 2)
    dense(m / "3_Dense", 4 * hidden, hidden, 3)

    flag_on = ["--sentence-transformers-dense-modules"]
    runs = [(outtype, flag, infix) for outtype in ("f16", "f32") for flag, infix in (([], ""), (flag_on, ".dense"))]
    # bf16 and q8_0 with the flag only (without it they hold nothing the other cases do not show)
    runs += [(outtype, flag_on, ".dense") for outtype in ("bf16", "q8_0")]
    for outtype, flag, infix in runs:
        out = f"{MODEL}{infix}.{outtype}.gguf"
        cmd = [sys.executable, str(llama / "convert_hf_to_gguf.py"), MODEL, *flag,
               "--outtype", outtype, "--outfile", out]
        subprocess.run(cmd, cwd=OUT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
