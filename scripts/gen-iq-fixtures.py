#!/usr/bin/env python3
"""Writes tests/fixtures/iq/expected.json: what llama-quantize (built from the pinned llama.cpp)
does with every IQ file type on the tiny Llama fixture, with and without the fixture imatrix.

usage: gen-iq-fixtures.py LLAMA_QUANTIZE
  e.g. /work/llama-build/bin/llama-quantize; run with a python that has the gguf package.

For each TYPE in IQ4_NL IQ4_XS IQ3_S IQ3_M IQ3_XS IQ3_XXS IQ2_XXS IQ2_XS IQ2_S IQ2_M IQ1_S IQ1_M:
  llama-quantize [--imatrix imatrix.gguf] tiny-llama-spm.f16.gguf OUT TYPE
run in a scratch folder holding a copy of tests/fixtures/gguf-imatrix/imatrix.gguf (so the
recorded `quantize.imatrix.file` is "imatrix.gguf"), input tests/fixtures/gguf/tiny-llama-spm.f16.gguf.
A run that succeeds is recorded by sha256 (whole file, header = bytes before the data section,
and each tensor's data with its type); the outputs themselves (about 1-2 MB each) are not kept.
A run that fails is recorded as refused, with the tensor llama-quantize names as offending.
"""

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from gguf import GGUFReader

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "iq" / "expected.json"
INPUT = ROOT / "tests" / "fixtures" / "gguf" / "tiny-llama-spm.f16.gguf"
IMATRIX = ROOT / "tests" / "fixtures" / "gguf-imatrix" / "imatrix.gguf"
FTYPES = [
    "IQ4_NL", "IQ4_XS", "IQ3_S", "IQ3_M", "IQ3_XS", "IQ3_XXS",
    "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M",
]


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def describe(path: Path) -> dict:
    data = path.read_bytes()
    r = GGUFReader(path)
    base = r.data_offset
    tensors = []
    for t in r.tensors:
        start = t.data_offset
        tensors.append(
            {
                "name": t.name,
                "type": t.tensor_type.name,
                "offset": start - base,
                "nbytes": int(t.n_bytes),
                "sha256": sha(data[start : start + int(t.n_bytes)]),
            }
        )
    return {
        "size": len(data),
        "sha256": sha(data),
        "data_offset": base,
        "header_sha256": sha(data[:base]),
        "tensors": tensors,
    }


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    exe = Path(sys.argv[1]).resolve()
    result = {
        "note": "What llama-quantize (pinned llama.cpp) does with each IQ file type on "
        "tests/fixtures/gguf/tiny-llama-spm.f16.gguf, without and with --imatrix imatrix.gguf "
        "(tests/fixtures/gguf-imatrix). Written by scripts/gen-iq-fixtures.py; outputs are "
        "recorded by sha256 only.",
        "without_imatrix": {},
        "with_imatrix": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copy(IMATRIX, tmp / "imatrix.gguf")
        for ftype in FTYPES:
            for key, extra in (("without_imatrix", []), ("with_imatrix", ["--imatrix", "imatrix.gguf"])):
                out = tmp / f"{ftype}.gguf"
                p = subprocess.run(
                    [str(exe), *extra, str(INPUT), out.name, ftype, "2"],
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                )
                if p.returncode == 0:
                    result[key][ftype] = describe(out)
                    print(f"{ftype} {key}: {result[key][ftype]['sha256']}")
                else:
                    m = re.search(r"offending tensor: (\S+)\s+- target type: (\S+)", p.stdout + p.stderr)
                    result[key][ftype] = {
                        "refused": True,
                        "tensor": m.group(1) if m else None,
                        "target_type": m.group(2).upper() if m else None,
                    }
                    print(f"{ftype} {key}: refused {result[key][ftype]}")
                out.unlink(missing_ok=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
