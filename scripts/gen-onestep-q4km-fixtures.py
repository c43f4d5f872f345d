#!/usr/bin/env python3
"""Reference Q4_K_M files for `ckpt convert DIR out.gguf --outtype q4_k_m` (one step): the pinned
llama.cpp converter writes the tiny arch-tables model at --outtype f16 (ckpt's default
intermediate), then llama-quantize turns that into Q4_K_M.

usage: gen-onestep-q4km-fixtures.py LLAMA_CPP_SRC LLAMA_QUANTIZE [CASE ...]

Cases: hunyuan_tiktoken (tiktoken vocabulary, pre-tokenizer "hunyuan" given to the converter) and
nomic_bert_moe (stacked experts, XLM-RoBERTa vocabulary). The model folder is the one
scripts/gen-arch-fixtures.py builds for the case (same config, tokenizer files and weights, folder
named tiny-CASE). Writes tests/fixtures/onestep-q4km/CASE.Q4_K_M.json: the sha256 and size of
llama-quantize's whole file, its KVs (long arrays as a sha256 of their items, as in
arch-tables/expected.json) and tensors (name, type, shape, sha256 of the data) to say where a
difference is; the file itself is kept as CASE.Q4_K_M.gguf when it is under 100 kB
(nomic_bert_moe's 250048-token vocabulary makes it 10 MB). The test is
crates/ckpt-cli/tests/it/convert_gguf.rs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "onestep-q4km"
CASES = ["hunyuan_tiktoken", "nomic_bert_moe"]


def main() -> int:
    src = Path(sys.argv[1]).resolve()
    quantize = Path(sys.argv[2]).resolve()
    only = sys.argv[3:] or CASES
    spec = importlib.util.spec_from_file_location("gen_arch", ROOT / "scripts" / "gen-arch-fixtures.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    sys.path.insert(0, str(src / "gguf-py"))
    import numpy as np
    from gguf import GGUFReader

    OUT.mkdir(exist_ok=True)
    for case in only:
        d = gen.OUT / case
        expected = json.loads((d / "expected.json").read_text())
        tensors = json.loads((d / "hf_tensors.json").read_text())
        with tempfile.TemporaryDirectory() as tmp:
            m = Path(tmp) / f"tiny-{case}"
            pre = gen.model_folder(case, d, m, expected["tokenizer"], tensors) or expected["pre_tokenizer"]
            f16 = Path(tmp) / "out.f16.gguf"
            env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
            args = [str(m), "--outtype", "f16", "--outfile", str(f16)]
            cmd = [sys.executable, "-c", gen.CONVERTER_SHIM, str(src), pre] + args if pre else [sys.executable, str(src / "convert_hf_to_gguf.py")] + args
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            if p.returncode != 0:
                print(p.stdout[-3000:])
                raise SystemExit(f"{case}: converter failed")
            out = OUT / f"{case}.Q4_K_M.gguf"
            q = subprocess.run([str(quantize), str(f16), str(out), "Q4_K_M"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            if q.returncode != 0:
                print(q.stdout[-3000:])
                raise SystemExit(f"{case}: llama-quantize failed")
        r = GGUFReader(str(out))
        kvs = [[k, gen.field_json(f)] for k, f in r.fields.items() if not k.startswith("GGUF.")]
        ts = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
               "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()} for t in r.tensors]
        data = out.read_bytes()
        desc = {"case": case, "pre_tokenizer": pre, "file_sha256": hashlib.sha256(data).hexdigest(), "size": len(data),
                "command": f"convert_hf_to_gguf.py tiny-{case} --outtype f16 && llama-quantize tiny-{case}.f16.gguf {out.name} Q4_K_M",
                "kvs": kvs, "tensors": ts}
        (OUT / f"{case}.Q4_K_M.json").write_text(json.dumps(desc, indent=1, ensure_ascii=False) + "\n")
        if len(data) >= 100_000:
            out.unlink()
        print(f"{case}: {len(data)} bytes, {len(ts)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
