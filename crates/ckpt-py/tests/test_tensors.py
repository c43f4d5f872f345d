"""load_file / save_file against the reference libraries: safetensors' numpy API, gguf-py, and
the expected safetensors files torch wrote for the .bin fixtures."""

import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file as st_load, save_file as st_save

import ckpt
from conftest import FIX, cli, read

TORCH = FIX / "torch"
GG = FIX / "gguf"


def raw(a):
    """Bytes of an array, whatever its dtype (bf16 from ml_dtypes or safetensors' own)."""
    return np.ascontiguousarray(a).tobytes()


def st_reference(path):
    """{name: (dtype tag, shape, bytes)} straight from the safetensors header, for dtypes
    safetensors.numpy cannot return."""
    b = Path(path).read_bytes()
    n = int.from_bytes(b[:8], "little")
    header = json.loads(b[8 : 8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {k: (v["dtype"], v["shape"], b[base + v["data_offsets"][0] : base + v["data_offsets"][1]]) for k, v in header.items()}


ST_FILES = sorted(TORCH.glob("*.expected.safetensors"))


@pytest.mark.parametrize("path", ST_FILES, ids=lambda p: p.name)
def test_load_safetensors_like_reference(path):
    ours = ckpt.load_file(path)
    ref = st_reference(path)
    assert list(ours) == list(ref)
    for name, (dtype, shape, data) in ref.items():
        assert list(ours[name].shape) == shape or ours[name].dtype == np.uint8, name
        assert raw(ours[name]) == data, name
    try:
        theirs = st_load(str(path))
    except Exception:  # a dtype safetensors.numpy cannot give; the header check above covers it
        return
    for k, v in theirs.items():
        assert ours[k].dtype == v.dtype and ours[k].shape == v.shape, k
        assert raw(ours[k]) == raw(v), k


@pytest.mark.parametrize(
    "case", ["all_dtypes", "all_dtypes_legacy", "big_endian", "extra_dtypes", "parameters", "shared_partial_views", "no_byteorder_record"]
)
def test_load_bin_equals_what_torch_saved(case):
    # The .expected.safetensors were written from torch.load of the same .bin (shared tensors
    # kept once); every tensor there must be the same values here.
    ours = ckpt.load_file(TORCH / f"{case}.bin")
    ref = st_reference(TORCH / f"{case}.expected.safetensors")
    for name, (dtype, shape, data) in ref.items():
        assert raw(ours[name]) == data, name
        assert list(ours[name].shape) == shape, name


def test_load_is_zero_copy_and_read_only():
    t = ckpt.load_file(TORCH / "all_dtypes.expected.safetensors")
    a = t["dtypes.float32"]
    assert not a.flags.writeable
    with pytest.raises(ValueError):
        a[...] = 0
    base = a.base
    assert type(base).__name__ == "_Span" and type(base.file).__name__ == "MappedFile"
    del t
    assert a.tobytes() == st_reference(TORCH / "all_dtypes.expected.safetensors")["dtypes.float32"][2]  # the mapping outlives the dict


def test_load_gguf_like_gguf_py():
    from gguf import GGUFReader
    from gguf.quants import dequantize

    path = GG / "tiny-llama-spm.Q4_K_M.gguf"
    r = GGUFReader(str(path))
    raw_t = ckpt.load_file(path)
    deq = ckpt.load_file(path, dequantize=True)
    assert list(raw_t) == [t.name for t in r.tensors]
    for t in r.tensors:
        ref = np.asarray(t.data)
        assert raw(raw_t[t.name]) == raw(ref), t.name
        values = dequantize(ref, t.tensor_type).astype(np.float32)
        mine = deq[t.name]
        assert mine.shape == values.shape, t.name
        if mine.dtype == np.float32:
            np.testing.assert_array_equal(mine, values, err_msg=t.name)


def test_save_safetensors_byte_identical(tmp):
    import ml_dtypes

    rng = np.random.default_rng(0)
    tensors = {
        "b.weight": rng.standard_normal((5, 7)).astype(np.float32),
        "a.bias": rng.standard_normal((7,)).astype(np.float16),
        "c.ids": np.arange(12, dtype=np.int64).reshape(3, 4),
        "d.mask": np.array([True, False, True]),
        "e.bf16": rng.standard_normal((4, 4)).astype(ml_dtypes.bfloat16),
        "f.scalar": np.array(3.5, dtype=np.float64),
        "g.empty": np.zeros((0, 3), dtype=np.float32),
        "h.strided": np.arange(20, dtype=np.int32).reshape(4, 5)[:, ::2],
        "i.bigendian": np.arange(6, dtype=">f4"),
    }
    meta = {"format": "np"}  # one key: safetensors orders several by hash (differently per run)
    ckpt.save_file(tensors, tmp / "ours.safetensors", metadata=meta)
    st_save({k: np.ascontiguousarray(v.astype(v.dtype.newbyteorder("<"))) for k, v in tensors.items()},
            str(tmp / "ref.safetensors"), metadata=meta)
    assert read(tmp / "ours.safetensors") == read(tmp / "ref.safetensors")
    back = ckpt.load_file(tmp / "ours.safetensors")
    for k, v in tensors.items():
        np.testing.assert_array_equal(back[k].astype(np.float64) if v.dtype == ml_dtypes.bfloat16 else back[k], v.astype(np.float64) if v.dtype == ml_dtypes.bfloat16 else v)
    with pytest.raises(ckpt.UsageError):
        ckpt.save_file(tensors, tmp / "ours.safetensors", overwrite=False)
    ckpt.save_file({"x": tensors["c.ids"]}, tmp / "m.safetensors", metadata={"b": "2", "a": "1"})
    from safetensors import safe_open

    with safe_open(str(tmp / "m.safetensors"), "np") as f:
        assert f.metadata() == {"a": "1", "b": "2"}


def test_save_bin_reads_back_through_the_cli(tmp):
    rng = np.random.default_rng(1)
    tensors = {"w": rng.standard_normal((3, 8)).astype(np.float32), "n": np.arange(5, dtype=np.int64)}
    ckpt.save_file(tensors, tmp / "model.bin")
    # The CLI's (independently tested) .bin reader converts it to the bytes safetensors writes.
    cli("convert", "-q", tmp / "model.bin", tmp / "via-cli.safetensors")
    st_save(tensors, str(tmp / "ref.safetensors"))
    ours, ref = st_reference(tmp / "via-cli.safetensors"), st_reference(tmp / "ref.safetensors")
    assert ours == ref
    with pytest.raises(ckpt.UsageError):
        ckpt.save_file(tensors, tmp / "m2.bin", metadata={"a": "b"})


def test_bf16_without_ml_dtypes_is_uint16_with_a_warning(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)
    with pytest.warns(UserWarning, match="ml_dtypes"):
        t = ckpt.load_file(TORCH / "all_dtypes.expected.safetensors")
    assert t["dtypes.bfloat16"].dtype == np.uint16


def rss_kb():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_load_1gb_maps_instead_of_reading(tmp):
    n = 16
    per = (1 << 30) // n // 4  # float32 elements per tensor, 1 GiB in total
    header = {f"t{i:02d}": {"dtype": "F32", "shape": [per], "data_offsets": [i * per * 4, (i + 1) * per * 4]} for i in range(n)}
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path = tmp / "big.safetensors"
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h)
        f.truncate(8 + len(h) + n * per * 4)  # sparse zeros
    before = rss_kb()
    t = ckpt.load_file(path)
    grown = rss_kb() - before
    assert len(t) == n and t["t00"].nbytes == per * 4
    assert grown < 50 * 1024, f"RSS grew by {grown} kB before touching the arrays"
    # Touching one tensor (64 MiB) does read it: the measurement can see growth.
    assert float(t["t03"].sum()) == 0.0
    assert rss_kb() - before > 32 * 1024
