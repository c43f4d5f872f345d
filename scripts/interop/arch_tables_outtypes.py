#!/usr/bin/env python3
"""The cases of tests/fixtures/arch-tables in every output type: convert_hf_to_gguf.py against
`ckpt convert`, byte for byte (the normal test checks f16 only, from the stored expected.json).

    arch_tables_outtypes.py CKPT_BINARY LLAMA_CPP_SRC [CASE ...]

Each case's model folder is assembled exactly as scripts/gen-arch-fixtures.py assembles it for
the converter (its `model_folder`), then both tools write bf16, q8_0 and f32 GGUFs (with the
pre-tokenizer the generator gave the converter, when it needed one). Prints `ok CASE OUTTYPE`
or `DIFF ...`; exits non-zero on a difference.
"""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = ROOT / "tests" / "fixtures" / "arch-tables"


def main() -> int:
    ckpt, src, *only = sys.argv[1:]
    spec = importlib.util.spec_from_file_location("gen_arch_fixtures", ROOT / "scripts" / "gen-arch-fixtures.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    bad = 0
    for d in sorted(p for p in CASES.iterdir() if p.is_dir()):
        if only and d.name not in only:
            continue
        expected = json.loads((d / "expected.json").read_text())
        tensors = json.loads((d / "hf_tensors.json").read_text())
        with tempfile.TemporaryDirectory() as tmp:
            m = Path(tmp) / f"tiny-{d.name}"
            pre = gen.model_folder(d.name, d, m, expected["tokenizer"], tensors) or expected.get("pre_tokenizer")
            for outtype in ["bf16", "q8_0", "f32"]:
                ref, ours = Path(tmp) / f"ref.{outtype}.gguf", Path(tmp) / f"ours.{outtype}.gguf"
                args = [str(m), "--outtype", outtype, "--outfile", str(ref)]
                cmd = [sys.executable, "-c", gen.CONVERTER_SHIM, src, pre] + args if pre else [sys.executable, f"{src}/convert_hf_to_gguf.py"] + args
                p = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=f"{src}/gguf-py"))
                c = subprocess.run([ckpt, "convert", "-q", str(m), "--outfile", str(ours), "--outtype", outtype, "--force"]
                                   + (["--pre-tokenizer", pre] if pre else []), capture_output=True, text=True)
                if p.returncode != 0 or c.returncode != 0:
                    bad += 1
                    print(f"DIFF {d.name} {outtype}: converter rc {p.returncode} {p.stderr.strip()[-200:]} | ckpt rc {c.returncode} {c.stderr.strip()[-200:]}")
                elif ref.read_bytes() != ours.read_bytes():
                    bad += 1
                    print(f"DIFF {d.name} {outtype}: files differ")
                else:
                    print(f"ok {d.name} {outtype}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
