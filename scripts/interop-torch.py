#!/usr/bin/env python3
"""Checks that real torch loads the .bin files ckpt wrote, with the safe loader.

Usage: interop-torch.py DIR

DIR holds manifest.json (written by ckpt-torch's `torch_interop` test when CKPT_TORCH_PYTHON is
set), a list of cases {"bin": "x.bin", "expected": "x.expected.safetensors", "tied": [[a, b], ...]}.
For each case the .bin is loaded with torch.load(weights_only=True), with mmap=False and with
mmap=True, and compared tensor by tensor (names, dtype, shape, bytes) with the expected
safetensors file; every tied pair must share memory. Exits non-zero on the first difference.
"""
import json
import os
import sys

import torch
from safetensors.torch import load_file


def as_bytes(t):
    t = t.detach().contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def check(path, expected_path, tied, mmap):
    got = torch.load(path, weights_only=True, mmap=mmap, map_location="cpu")
    expected = load_file(expected_path)
    what = f"{os.path.basename(path)} (mmap={mmap})"
    if set(got) != set(expected):
        raise SystemExit(f"{what}: names differ: only in file {sorted(set(got) - set(expected))}, "
                         f"only expected {sorted(set(expected) - set(got))}")
    for name, e in expected.items():
        g = got[name]
        if g.dtype != e.dtype or tuple(g.shape) != tuple(e.shape):
            raise SystemExit(f"{what}: '{name}' is {g.dtype} {tuple(g.shape)}, expected {e.dtype} {tuple(e.shape)}")
        if as_bytes(g) != as_bytes(e):
            raise SystemExit(f"{what}: bytes of '{name}' differ")
    for a, b in tied:
        if got[a].untyped_storage().data_ptr() != got[b].untyped_storage().data_ptr():
            raise SystemExit(f"{what}: '{a}' and '{b}' should share storage")
    return len(expected)


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    root = sys.argv[1]
    with open(os.path.join(root, "manifest.json")) as f:
        cases = json.load(f)
    for case in cases:
        path = os.path.join(root, case["bin"])
        expected = os.path.join(root, case["expected"])
        for mmap in (False, True):
            n = check(path, expected, case.get("tied", []), mmap)
        print(f"ok  {case['bin']}: {n} tensors (weights_only=True, mmap off and on)")
    print(f"torch {torch.__version__}: {len(cases)} files load as expected")


if __name__ == "__main__":
    main()
