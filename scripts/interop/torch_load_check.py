"""Loads .bin files written by ckpt with torch.load(weights_only=True) and compares every tensor
with a reference safetensors file (same names, dtypes, shapes and bytes).

usage: torch_load_check.py OURS.bin REFERENCE.safetensors [OURS.bin REFERENCE.safetensors ...]
"""
import sys

import torch
from safetensors.torch import load_file


def raw(t):
    return t.contiguous().reshape(-1).view(torch.uint8)


def check(ours, ref):
    got = torch.load(ours, weights_only=True, map_location="cpu")
    want = load_file(ref)
    assert sorted(got) == sorted(want), f"{ours}: names differ: {sorted(set(got) ^ set(want))}"
    for name, w in want.items():
        g = got[name]
        assert g.dtype == w.dtype, f"{ours}: {name} dtype {g.dtype} != {w.dtype}"
        assert g.shape == w.shape, f"{ours}: {name} shape {tuple(g.shape)} != {tuple(w.shape)}"
        assert torch.equal(raw(g), raw(w)), f"{ours}: {name} bytes differ"
    # mmap loading goes through a different code path in torch
    got = torch.load(ours, weights_only=True, map_location="cpu", mmap=True)
    for name, w in want.items():
        assert torch.equal(raw(got[name]), raw(w)), f"{ours}: {name} differs with mmap=True"
    return len(want)


if __name__ == "__main__":
    args = sys.argv[1:]
    total = 0
    for ours, ref in zip(args[0::2], args[1::2]):
        n = check(ours, ref)
        total += n
        print(f"ok  {ours}: {n} tensors equal to {ref}")
    print(f"torch {torch.__version__}: {len(args) // 2} files, {total} tensors loaded with weights_only=True and equal")
