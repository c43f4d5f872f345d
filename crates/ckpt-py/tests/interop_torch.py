"""ckpt.load_file / ckpt.save_file against torch.load / torch.save (opt-in: run by
scripts/interop-full.sh, whose venv has torch; not collected by the normal pytest run)."""

import numpy as np
import pytest
import torch

import ckpt
from conftest import FIX

TORCH = FIX / "torch"


def tbytes(t):
    t = t.detach().contiguous()
    return t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


def nbytes(a):
    return np.ascontiguousarray(a).tobytes()


@pytest.mark.parametrize(
    "case", ["all_dtypes", "all_dtypes_legacy", "big_endian", "extra_dtypes", "parameters", "shared_partial_views", "no_byteorder_record"]
)
def test_load_file_equals_torch_load(case):
    path = TORCH / f"{case}.bin"
    ref = torch.load(path, weights_only=True, map_location="cpu")
    ours = ckpt.load_file(path)
    flat = {}

    def walk(prefix, v):
        if isinstance(v, torch.Tensor):
            flat[prefix] = v
        elif isinstance(v, dict):
            for k, x in v.items():
                walk(f"{prefix}.{k}" if prefix else str(k), x)

    walk("", ref)
    assert set(flat) == set(ours)
    for k, t in flat.items():
        assert tuple(t.shape) == ours[k].shape or ours[k].dtype == np.uint8, k
        assert tbytes(t) == nbytes(ours[k]), k


def test_save_file_loads_in_torch_and_back(tmp_path):
    import ml_dtypes

    rng = np.random.default_rng(0)
    arrays = {
        "w": rng.standard_normal((4, 6)).astype(np.float32),
        "h": rng.standard_normal((3,)).astype(np.float16),
        "b": rng.standard_normal((2, 2)).astype(ml_dtypes.bfloat16),
        "i": np.arange(7, dtype=np.int64),
        "m": np.array([True, False]),
    }
    ckpt.save_file(arrays, tmp_path / "ours.bin")
    loaded = torch.load(tmp_path / "ours.bin", weights_only=True)
    assert set(loaded) == set(arrays)
    for k, a in arrays.items():
        assert tbytes(loaded[k]) == nbytes(a), k
        assert tuple(loaded[k].shape) == a.shape
    torch.save({k: v.clone() for k, v in loaded.items()}, tmp_path / "torch.bin")
    back = ckpt.load_file(tmp_path / "torch.bin")
    for k, a in arrays.items():
        assert nbytes(back[k]) == nbytes(a) and back[k].dtype == a.dtype, k
