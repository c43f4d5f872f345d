#!/usr/bin/env python3
"""Writes tests/fixtures/toolbox/expected.json: what llama-quantize (with its advanced options) and
llama-gguf-split (built from the pinned llama.cpp) write from the small GGUF fixtures, recorded by
sha256 and size per output file, next to the `ckpt` command that must reproduce each byte for byte.

usage: gen-toolbox-fixtures.py LLAMA_BIN_DIR
  e.g. /work/llama-build/bin (holding llama-quantize and llama-gguf-split); plain python3 will do.

Inputs (all committed): tests/fixtures/gguf/tiny-llama-spm.f16.gguf (convert_hf_to_gguf.py's
output for tests/fixtures/gguf/tiny-llama-spm), tests/fixtures/gguf-imatrix/imatrix.gguf (copied
into the scratch folder so `quantize.imatrix.file` is recorded as "imatrix.gguf"). Every case runs
in a fresh scratch folder; placeholders in the ckpt commands: {F16} the f16 GGUF, {HF} the HF
folder, {IMATRIX} imatrix.gguf, {OUT} the scratch folder, {SPLIT} the first shard of the
--split-max-tensors 16 split of {F16} (case split-t16, made by ckpt in the test).
"""

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "toolbox" / "expected.json"
F16 = ROOT / "tests" / "fixtures" / "gguf" / "tiny-llama-spm.f16.gguf"
IMATRIX = ROOT / "tests" / "fixtures" / "gguf-imatrix" / "imatrix.gguf"

# name -> (reference steps, ckpt arguments). A step is (tool, args); "q" = llama-quantize,
# "s" = llama-gguf-split. Paths are relative to the scratch folder.
Q = ["{F16}"]
CASES = {
    "split-t16": (
        [("s", ["--split", "--split-max-tensors", "16", "{F16}", "s"])],
        ["gguf-split", "--split", "--split-max-tensors", "16", "{F16}", "{OUT}/s"],
    ),
    "split-2M-no-first": (
        [("s", ["--split-max-size", "2M", "--no-tensor-first-split", "{F16}", "s"])],
        ["gguf-split", "--split-max-size", "2M", "--no-tensor-first-split", "{F16}", "{OUT}/s"],
    ),
    "merge": (
        [
            ("s", ["--split-max-tensors", "16", "{F16}", "p"]),
            ("s", ["--merge", "p-00001-of-00003.gguf", "m.gguf"]),
        ],
        ["gguf-split", "--merge", "{SPLIT}", "{OUT}/m.gguf"],
    ),
    "tensor-type": (
        [("q", ["--tensor-type", "attn_v=q8_0", "--tensor-type", r"blk\.[01]\.ffn_down=Q5_0",
                "--tensor-type", "ATTN=q6_k", "{F16}", "o.gguf", "Q4_K_M"])],
        ["quantize", "--tensor-type", "attn_v=q8_0", "--tensor-type", r"blk\.[01]\.ffn_down=Q5_0",
         "--tensor-type", "ATTN=q6_k", "{F16}", "{OUT}/o.gguf", "Q4_K_M"],
    ),
    "tensor-type-pure": (
        [("q", ["--pure", "--tensor-type", "ffn=q8_0", "{F16}", "o.gguf", "Q4_0"])],
        ["quantize", "--pure", "--tensor-type", "ffn=q8_0", "{F16}", "{OUT}/o.gguf", "Q4_0"],
    ),
    "override-kv": (
        [("q", ["--override-kv", "general.name=str:hello", "--override-kv",
                "llama.context_length=int:-77", "--override-kv", "foo.f=float:1.5",
                "--override-kv", "foo.b=bool:false", "{F16}", "o.gguf", "Q4_K_M"])],
        ["quantize", "--override-kv", "general.name=str:hello", "--override-kv",
         "llama.context_length=int:-77", "--override-kv", "foo.f=float:1.5",
         "--override-kv", "foo.b=bool:false", "{F16}", "{OUT}/o.gguf", "Q4_K_M"],
    ),
    "prune-1-2": (
        [("q", ["--prune-layers", "1,2", "{F16}", "o.gguf", "Q4_K_M"])],
        ["quantize", "--prune-layers", "1,2", "{F16}", "{OUT}/o.gguf", "Q4_K_M"],
    ),
    "prune-0-q8_0": (
        [("q", ["--prune-layers", "0", "{F16}", "o.gguf", "Q8_0"])],
        ["quantize", "--prune-layers", "0", "{F16}", "{OUT}/o.gguf", "Q8_0"],
    ),
    "imatrix-include": (
        [("q", ["--imatrix", "imatrix.gguf", "--include-weights", "attn", "--include-weights",
                "ffn_up", "{F16}", "o.gguf", "Q4_K_M"])],
        ["quantize", "--imatrix", "{IMATRIX}", "--include-weights", "attn", "--include-weights",
         "ffn_up", "{F16}", "{OUT}/o.gguf", "Q4_K_M"],
    ),
    "imatrix-exclude-iq3_s": (
        [("q", ["--imatrix", "imatrix.gguf", "--exclude-weights", "ffn_down", "{F16}", "o.gguf",
                "IQ3_S"])],
        ["quantize", "--imatrix", "{IMATRIX}", "--exclude-weights", "ffn_down", "{F16}",
         "{OUT}/o.gguf", "IQ3_S"],
    ),
    "imatrix-prune": (
        [("q", ["--imatrix", "imatrix.gguf", "--prune-layers", "0,2", "{F16}", "o.gguf", "Q4_K_M"])],
        ["quantize", "--imatrix", "{IMATRIX}", "--prune-layers", "0,2", "{F16}", "{OUT}/o.gguf",
         "Q4_K_M"],
    ),
    "leave-output-token-embd": (
        [("q", ["--leave-output-tensor", "--token-embedding-type", "q8_0", "{F16}", "o.gguf",
                "Q4_K_M"])],
        ["quantize", "--leave-output-tensor", "--token-embedding-type", "q8_0", "{F16}",
         "{OUT}/o.gguf", "Q4_K_M"],
    ),
    "output-type-pure-threads": (
        [("q", ["--output-tensor-type", "q4_0", "--pure", "{F16}", "o.gguf", "Q5_K_S", "2"])],
        ["quantize", "--output-tensor-type", "q4_0", "--pure", "{F16}", "{OUT}/o.gguf", "Q5_K_S",
         "2"],
    ),
    "keep-split": (
        [
            ("s", ["--split-max-tensors", "16", "{F16}", "p"]),
            ("q", ["--keep-split", "--prune-layers", "3", "p-00001-of-00003.gguf", "k.gguf",
                   "Q4_K_M"]),
        ],
        ["quantize", "--keep-split", "--prune-layers", "3", "{SPLIT}", "{OUT}/k.gguf", "Q4_K_M"],
    ),
    "keep-split-single": (
        [("q", ["--keep-split", "{F16}", "k.gguf", "Q8_0"])],
        ["quantize", "--keep-split", "{F16}", "{OUT}/k.gguf", "Q8_0"],
    ),
    "quantize-split-1M": (
        [("q", ["{F16}", "q.gguf", "Q4_K_M"]), ("s", ["--split-max-size", "1M", "q.gguf", "o"])],
        ["quantize", "--split-max-size", "1M", "{F16}", "{OUT}/o.gguf", "Q4_K_M"],
    ),
    "convert-q4_k_m-split-t20": (
        [("q", ["--tensor-type", "attn_v=q8_0", "{F16}", "q.gguf", "Q4_K_M"]),
         ("s", ["--split-max-tensors", "20", "q.gguf", "o"])],
        ["convert", "{HF}", "{OUT}/o.gguf", "--outtype", "q4_k_m", "--tensor-type", "attn_v=q8_0",
         "--split-max-tensors", "20"],
    ),
}
# The files of the last step that are compared (glob in the scratch folder).
OUTPUTS = {
    "split-t16": "s-*.gguf", "split-2M-no-first": "s-*.gguf", "merge": "m.gguf",
    "keep-split": "k-*.gguf", "keep-split-single": "k-*.gguf", "quantize-split-1M": "o-*.gguf",
    "convert-q4_k_m-split-t20": "o-*.gguf",
}


def sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    bins = Path(sys.argv[1]).resolve()
    tools = {"q": bins / "llama-quantize", "s": bins / "llama-gguf-split"}
    result = {
        "note": "Outputs of llama-quantize / llama-gguf-split (pinned llama.cpp 0c1e57098) per case, "
        "by sha256; `ckpt` is the command that must write the same files (placeholders: see "
        "scripts/gen-toolbox-fixtures.py). Written by scripts/gen-toolbox-fixtures.py.",
        "cases": {},
    }
    for name, (steps, ckpt_args) in CASES.items():
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            shutil.copy(IMATRIX, tmp / "imatrix.gguf")
            for tool, args in steps:
                args = [str(F16) if a == "{F16}" else a for a in args]
                r = subprocess.run([str(tools[tool])] + args, cwd=tmp, capture_output=True, text=True)
                if r.returncode != 0:
                    print(f"{name}: {tool} failed:\n{r.stdout}\n{r.stderr}", file=sys.stderr)
                    return 1
            files = sorted(tmp.glob(OUTPUTS.get(name, "o.gguf")))
            if not files:
                print(f"{name}: no output", file=sys.stderr)
                return 1
            result["cases"][name] = {
                "reference": [[tools[t].name] + a for t, a in steps],
                "ckpt": ckpt_args,
                "outputs": [{"file": f.name, "size": f.stat().st_size, "sha256": sha(f)} for f in files],
            }
            print(name, [f.name for f in files])
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
