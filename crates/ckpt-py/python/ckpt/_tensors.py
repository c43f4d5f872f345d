"""``load_file`` / ``save_file``: checkpoints as dicts of numpy arrays, without torch."""

from __future__ import annotations

import os
import warnings
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import numpy as np

from . import _ckpt

PathLike = Union[str, "os.PathLike[str]"]

_PLAIN: Dict[str, str] = {
    "BOOL": "|b1",
    "U8": "|u1",
    "I8": "|i1",
    "U16": "<u2",
    "I16": "<i2",
    "F16": "<f2",
    "U32": "<u4",
    "I32": "<i4",
    "F32": "<f4",
    "U64": "<u8",
    "I64": "<i8",
    "F64": "<f8",
    "C64": "<c8",
}

# dtypes numpy lacks, as (raw storage type, ml_dtypes name).
_ML: Dict[str, Tuple[str, str]] = {
    "BF16": ("<u2", "bfloat16"),
    "F8_E4M3": ("|u1", "float8_e4m3fn"),
    "F8_E5M2": ("|u1", "float8_e5m2"),
    "F8_E8M0": ("|u1", "float8_e8m0fnu"),
    "F8_E4M3FNUZ": ("|u1", "float8_e4m3fnuz"),
    "F8_E5M2FNUZ": ("|u1", "float8_e5m2fnuz"),
}

# numpy dtype name -> safetensors dtype name, for save_file.
_SAVE: Dict[str, str] = {
    "bool": "BOOL",
    "uint8": "U8",
    "int8": "I8",
    "uint16": "U16",
    "int16": "I16",
    "float16": "F16",
    "uint32": "U32",
    "int32": "I32",
    "float32": "F32",
    "uint64": "U64",
    "int64": "I64",
    "float64": "F64",
    "complex64": "C64",
}
_SAVE.update({ml: st for st, (_, ml) in _ML.items()})


def _ml_dtype(name: str) -> Optional[np.dtype]:
    try:
        import ml_dtypes
    except ImportError:
        return None
    t = getattr(ml_dtypes, name, None)
    return None if t is None else np.dtype(t)


class _Span:
    """A tensor's bytes inside a mapped file, exposed through numpy's array interface. The
    array made from it keeps it (and so the mapping) alive as its ``base``."""

    __slots__ = ("file", "__array_interface__")

    def __init__(self, file: Any, offset: int, shape: tuple, typestr: str, strides) -> None:
        self.file = file
        self.__array_interface__ = {
            "version": 3,
            "shape": shape,
            "typestr": typestr,
            "data": (file.address + offset, True),
            "strides": None if strides is None else tuple(strides),
        }


def _array(
    name: str, dtype: str, shape: list, nbytes: int, data: Any, offset: int, strides: Any, warned: set
) -> np.ndarray:
    shape_t = tuple(int(d) for d in shape)
    view_as: Optional[np.dtype] = None
    if dtype in _PLAIN:
        typestr = _PLAIN[dtype]
    elif dtype in _ML:
        typestr, ml_name = _ML[dtype]
        view_as = _ml_dtype(ml_name)
        if view_as is None:
            warned.add(dtype)
    else:
        # GGUF block-quantized types (without dequantize=True) and sub-byte floats: the raw
        # bytes, one row of the last dimension per row of bytes (as gguf-py's reader gives them).
        typestr = "|u1"
        outer = shape_t[:-1]
        rows = 1
        for d in outer:
            rows *= d
        shape_t = outer + (nbytes // rows if rows else 0,)
        strides = None
    if isinstance(data, bytearray):
        arr = np.frombuffer(data, dtype=np.dtype(typestr)).reshape(shape_t)
    else:
        arr = np.asarray(_Span(data, offset, shape_t, typestr, strides))
    if view_as is not None:
        arr = arr.view(view_as)
    return arr


def load_file(
    path: PathLike, *, key: Optional[str] = None, dequantize: bool = False
) -> Dict[str, np.ndarray]:
    """Loads every tensor of a checkpoint as numpy arrays, without torch and without executing
    anything from the file.

    Reads safetensors, PyTorch ``.bin``/``.pt`` (zip or legacy; through ckpt's restricted pickle
    reader, which refuses any global outside its allowlist with :class:`UnsafeFileError`),
    GGUF, a sharded ``*.index.json`` or a model folder.

    Arrays that are dense little-endian ranges (or strided views) of the file are zero-copy,
    **read-only** views of the memory-mapped file: nothing is read until they are touched, and
    each array keeps the mapping alive (``arr.base``). Arrays ckpt had to produce (byte-swapped
    big-endian data, dequantized GGUF tensors, compressed records) are ordinary writable arrays.

    Args:
        path: the file or folder.
        key: for a pickled training checkpoint, the entry to use (``"state_dict"``, ``"model"``).
        dequantize: GGUF block-quantized tensors (Q4_K, Q8_0, …) as float32 values. Without
            it they come back as raw ``uint8`` blocks of shape ``(*shape[:-1], row_bytes)``.

    bfloat16 and float8 tensors are ``ml_dtypes`` arrays when ml_dtypes is installed; otherwise
    the raw bit patterns as ``uint16``/``uint8``, with a warning.

    Returns:
        ``{name: array}`` in the file's order.
    """
    entries = _ckpt._load(os.fspath(path), key=key, dequantize=dequantize)
    warned: set = set()
    out = {e[0]: _array(*e, warned=warned) for e in entries}
    for dtype in sorted(warned):
        raw_type, ml_name = _ML[dtype]
        warnings.warn(
            f"{dtype} tensors are returned as raw {np.dtype(raw_type).name} bit patterns: "
            f"install ml_dtypes (pip install ml_dtypes) to get them as ml_dtypes.{ml_name}",
            stacklevel=2,
        )
    return out


def _save_dtype(name: str, arr: np.ndarray) -> str:
    st = _SAVE.get(arr.dtype.name)
    if st is None:
        raise _errors().UnsupportedError(
            f"tensor '{name}': dtype {arr.dtype} has no safetensors/torch counterpart"
        )
    return st


def _errors():
    from . import _errors as e

    return e


def _format_of(path: str, format: Optional[str]) -> str:
    if format is not None:
        if format not in ("safetensors", "bin"):
            raise _errors().UsageError(f"unknown format '{format}' (safetensors or bin)")
        return format
    lower = path.lower()
    if lower.endswith((".bin", ".pt", ".pth")):
        return "bin"
    return "safetensors"


def save_file(
    tensors: Mapping[str, Any],
    path: PathLike,
    metadata: Optional[Mapping[str, str]] = None,
    *,
    format: Optional[str] = None,
    overwrite: bool = True,
) -> None:
    """Writes numpy arrays as safetensors or as a PyTorch ``.bin`` (loadable with
    ``torch.load(weights_only=True)``), atomically: the file appears complete or not at all.

    Args:
        tensors: ``{name: array}``; anything ``numpy.asarray`` accepts. bfloat16/float8 come
            from ``ml_dtypes`` arrays.
        path: the output file.
        metadata: safetensors ``__metadata__`` (string to string); not allowed for ``.bin``.
        format: ``"safetensors"`` or ``"bin"``; by default from the extension (``.bin``, ``.pt``,
            ``.pth`` are torch, anything else safetensors).
        overwrite: replace an existing file (the default, like safetensors' ``save_file``);
            with ``False`` an existing file raises :class:`UsageError`.

    The safetensors layout is the reference writer's (tensors ordered by dtype width, then
    name), so the bytes equal ``safetensors.numpy.save_file``'s.
    """
    path_s = os.fspath(path)
    fmt = _format_of(path_s, format)
    if metadata is not None:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise _errors().UsageError("metadata must map str to str")
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise _errors().UsageError(f"tensor names must be str, not {type(name).__name__}")
        arr = np.asarray(value)
        st = _save_dtype(name, arr)
        if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and np.little_endian is False):
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        arr = np.ascontiguousarray(arr)
        address = arr.__array_interface__["data"][0] if arr.nbytes else 0
        entries.append((name, st, [int(d) for d in arr.shape], arr, address, int(arr.nbytes)))
    _ckpt._save(
        entries,
        path_s,
        None if metadata is None else dict(metadata),
        fmt,
        overwrite,
    )


__all__ = ["load_file", "save_file"]
