#!/usr/bin/env python3
"""Generates tests/fixtures/torch/extra/: checkpoints written by real torch.save that exercise
pickle paths the shared fixtures do not (see the README written next to them).

Usage: gen-torch-extra-fixtures.py OUT_DIR   (needs torch and safetensors)
"""
import collections
import io
import json
import os
import sys
import zipfile

import torch
from safetensors.torch import save_file


class Tagged(torch.Tensor):
    pass


def rezip(src, dst, rename, edit_pickle):
    """Copies a torch zip record by record (STORED), renaming its folder and editing data.pkl."""
    old = os.path.splitext(os.path.basename(src))[0]
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                data = edit_pickle(data)
            zout.writestr(info.filename.replace(old + "/", rename + "/", 1), data)


def main(out):
    os.makedirs(out, exist_ok=True)
    os.chdir(out)

    # Parameters and tensors with Python attributes, torch.Size / device / bytes / set / complex /
    # dtype values, a dict referenced twice, a list of tensors.
    p = torch.nn.Parameter(torch.arange(6, dtype=torch.float32).reshape(2, 3))
    p.note = "hello"  # -> _rebuild_parameter_with_state
    t = torch.arange(4, dtype=torch.int16)
    t.scale = 2.0  # -> _rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, ...)
    cfg = {"k": 1}
    sd = collections.OrderedDict()
    sd["param"] = p
    sd["tensor_with_attr"] = t
    sd["meta"] = {
        "size": torch.Size([2, 3]),
        "device": torch.device("cpu"),
        "blob": b"\x00\xff",
        "set": {3},
        "c": complex(1, 2),
        "dtype": torch.float16,
        "cfg_a": cfg,
        "cfg_b": cfg,
        "nested": [[1, 2], [3]],
    }
    sd["list"] = [torch.ones(2), torch.tensor([True, False])]
    torch.save(sd, "odd_objects.pt")
    loaded = torch.load("odd_objects.pt", weights_only=True)
    flat = {
        "param": loaded["param"].detach(),
        "tensor_with_attr": loaded["tensor_with_attr"],
        "list.0": loaded["list"][0],
        "list.1": loaded["list"][1],
    }
    save_file({k: v.contiguous() for k, v in flat.items()}, "odd_objects.expected.safetensors", metadata={"format": "pt"})

    # A tensor subclass: its class is a global no allowlist has (torch refuses it too).
    torch.save({"x": torch.arange(3.0).as_subclass(Tagged)}, "tensor_subclass.pt")

    # An old GPU checkpoint: torch.cuda.*Storage classes and a cuda:0 location.
    torch.save({"w": torch.arange(6, dtype=torch.float32).reshape(3, 2), "h": torch.ones(3, dtype=torch.float16)}, "cpu_src.pt")

    def to_cuda(pkl):
        pkl = pkl.replace(b"ctorch\nFloatStorage\n", b"ctorch.cuda\nFloatStorage\n")
        pkl = pkl.replace(b"ctorch\nHalfStorage\n", b"ctorch.cuda\nHalfStorage\n")
        return pkl.replace(b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0")

    rezip("cpu_src.pt", "cuda_storages.pt", "cuda_storages", to_cuda)
    os.remove("cpu_src.pt")
    sd = torch.load("cuda_storages.pt", weights_only=True, map_location="cpu")
    save_file(sd, "cuda_storages.expected.safetensors", metadata={"format": "pt"})

    # Tensors the safe loader accepts but safetensors cannot hold: refused as unsupported.
    torch.save({"q": torch.quantize_per_tensor(torch.arange(4.0), 0.1, 0, torch.qint8)}, "quantized.pt")
    torch.save({"s": torch.arange(9.0).reshape(3, 3).to_sparse()}, "sparse.pt")

    # TorchScript archive: must be refused as such.
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), "torchscript.pt")

    print("written:", sorted(os.listdir(".")))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    main(sys.argv[1])
