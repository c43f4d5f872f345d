#!/usr/bin/env python3
"""Writes tests/fixtures/iq/vectors/: ggml's own quantization of a fixed set of rows into every IQ
type, with and without importance weights, for the kernel tests in
crates/ckpt-quant/tests/iq_kernels.rs.

usage: gen-iq-vectors.py LIBGGML_BASE_SO
  (the libggml-base.so of llama.cpp built from the pinned source, e.g.
   /work/llama-build/bin/libggml-base.so; run with a python that has numpy)

Files (little-endian):
  input.f32            8 rows x 512 f32 (seeded: Gaussian rows at different scales, outliers,
                       an all-zero row, a row with zero and near-zero 32-value sub-blocks,
                       repeated values)
  imatrix.f32          512 f32 importance weights (one per column)
  TYPE.bin             ggml_quantize_chunk(TYPE, input, 0, 8, 512, NULL)
  TYPE.imatrix.bin     ggml_quantize_chunk(TYPE, input, 0, 8, 512, imatrix)
IQ2_XXS, IQ2_XS and IQ1_S exist only with an imatrix (ggml asserts without one).
"""

import ctypes
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "iq" / "vectors"

TYPES = {
    "IQ2_XXS": (16, 66, True),
    "IQ2_XS": (17, 74, True),
    "IQ3_XXS": (18, 98, False),
    "IQ1_S": (19, 50, True),
    "IQ4_NL": (20, 18, False),
    "IQ3_S": (21, 110, False),
    "IQ2_S": (22, 82, False),
    "IQ4_XS": (23, 136, False),
    "IQ1_M": (29, 56, False),
}
NROWS, NPR = 8, 512


def make_input() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0x1C0DE)
    x = rng.standard_normal((NROWS, NPR)).astype(np.float32)
    x[1] *= 0.02
    x[2] *= 40.0
    x[3, ::37] *= 25.0  # outliers
    x[4] = 0.0  # all-zero row
    x[5, 32:64] = 0.0  # zero sub-blocks
    x[5, 256:288] = 1e-20
    x[5, 300:316] = 0.0
    x[6] = np.round(x[6] * 2) / 2  # many equal values
    x[7] = np.abs(x[7])  # one sign only
    imatrix = (rng.random(NPR) ** 3 * 10 + 1e-3).astype(np.float32)
    return x, imatrix


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    lib = ctypes.CDLL(sys.argv[1])
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_int64,
        ctypes.c_void_p,
    ]
    x, imatrix = make_input()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "input.f32").write_bytes(x.tobytes())
    (OUT / "imatrix.f32").write_bytes(imatrix.tobytes())
    for name, (tid, bsize, needs_im) in TYPES.items():
        for with_im in ([True] if needs_im else [False, True]):
            size = NROWS * NPR // (32 if name == "IQ4_NL" else 256) * bsize
            dst = ctypes.create_string_buffer(size)
            n = lib.ggml_quantize_chunk(
                tid,
                x.ctypes.data,
                dst,
                0,
                NROWS,
                NPR,
                imatrix.ctypes.data if with_im else None,
            )
            assert n == size, (name, n, size)
            suffix = ".imatrix.bin" if with_im else ".bin"
            (OUT / f"{name}{suffix}").write_bytes(dst.raw)
            print(f"{name}{suffix}: {size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
