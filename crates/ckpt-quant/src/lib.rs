//! ggml quantization types: one table of kernels, bit-exact with ggml's reference algorithms
//! (x86-64 build of llama.cpp 0c1e57098), and llama-quantize's per-tensor type choice.
//!
//! * [`kernels`] / [`quantize`] / [`dequantize`]: every type ckpt reads or writes, row-parallel
//!   (rows are independent, so the bytes never depend on the thread count).
//! * [`quantize_gguf`] (+ [`plan_quantization`] for a dry run): GGUF -> GGUF exactly like
//!   `llama-quantize`, including `--imatrix`, `--pure`, `--output-tensor-type`,
//!   `--token-embedding-type`, `--leave-output-tensor`, `--allow-requantize`.
//! * [`parse_ftype`], [`Ftype`]: llama-quantize's type names;
//!   [`pipeline::quantize_writer_with_progress`]: the same per-tensor decisions for converters
//!   that quantize in one step.
//!
//! Module per family (private but for [`float`], [`imatrix`] and [`pipeline`]): `float`
//! (F32/F16/BF16), `legacy` (Q4_0..Q8_0), `k_quants` (Q2_K..Q8_K), `iq` (IQ4_NL/IQ4_XS),
//! `iq_lattice_quants` (IQ3_XXS/IQ3_S, IQ2_XXS/IQ2_XS/IQ2_S, IQ1_S/IQ1_M, on the lattices of
//! `iq_lattice`, tables in the generated `iq_grids`), `ternary` (TQ1_0/TQ2_0), `fp4`
//! (MXFP4/NVFP4), `select` (type choice), `pipeline` (the GGUF rewrite), `imatrix` (importance
//! matrices), `validate` (NaN/Inf checks).
//!
//! ```
//! use std::path::Path;
//! use ckpt_quant::{parse_ftype, quantize_gguf, QuantizeOptions};
//!
//! let dir = Path::new(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../tests/fixtures/gguf/quant-vectors"
//! ));
//! // `llama-quantize --pure quant-vectors.f32.gguf OUT Q4_K_M`, byte for byte.
//! let tmp = tempfile::tempdir().unwrap();
//! let out = tmp.path().join("q4_k_m.gguf");
//! let mut opts = QuantizeOptions::new(parse_ftype("q4_k_m")?);
//! opts.pure = true;
//! let report = quantize_gguf(&dir.join("quant-vectors.f32.gguf"), &out, &opts)?;
//! assert_eq!(report.outputs, vec![out.clone()]);
//! assert!(std::fs::read(&out).unwrap() == std::fs::read(dir.join("quant-vectors.Q4_K_M.gguf")).unwrap());
//!
//! // The row kernels directly: Q8_0 blocks of 32 values, 34 bytes each.
//! let row: Vec<f32> = (0..64).map(|i| i as f32 / 8.0).collect();
//! let q = ckpt_quant::quantize(ckpt_core::GgmlType::Q8_0, &row, 64, None)?;
//! assert_eq!(q.len(), 2 * 34);
//! let back = ckpt_quant::dequantize(ckpt_core::GgmlType::Q8_0, &q, 64)?;
//! assert!(row.iter().zip(&back).all(|(a, b)| (a - b).abs() < 0.05));
//! # Ok::<(), ckpt_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod float;
mod fp4;
mod ftype;
pub mod imatrix;
mod iq;
mod iq_grids;
mod iq_lattice;
mod iq_lattice_quants;
mod k4_lanes;
mod k_quants;
mod lanes;
mod legacy;
mod options;
pub mod pipeline;
mod select;
mod ternary;
mod validate;

use ckpt_core::{Error, GgmlType, Result};
use rayon::prelude::*;

/// Quantizes whole blocks of f32 into `dst` (exactly `len / block_size * type_size` bytes).
pub(crate) type QuantizeRowFn = fn(src: &[f32], dst: &mut [u8]);
/// Like [`QuantizeRowFn`] for one whole row, guided by that row's importance weights.
pub(crate) type QuantizeRowWeightedFn = fn(src: &[f32], dst: &mut [u8], importance: &[f32]);
/// Expands whole blocks back to f32.
pub(crate) type DequantizeRowFn = fn(src: &[u8], dst: &mut [f32]);

/// What ckpt can do with one ggml type (the row kernels behind [`quantize`] and [`dequantize`]).
pub struct QuantKernels {
    /// The ggml type these kernels read and write.
    pub(crate) ty: GgmlType,
    /// None for types ckpt can read but not produce (Q8_K, NVFP4), and for the types ggml
    /// quantizes only with importance weights (IQ2_XXS, IQ2_XS, IQ1_S).
    pub(crate) quantize_row: Option<QuantizeRowFn>,
    /// The imatrix variant (None for the float types, which ignore importance weights).
    pub(crate) quantize_row_weighted: Option<QuantizeRowWeightedFn>,
    /// Expands whole blocks of this type back to f32.
    pub(crate) dequantize_row: DequantizeRowFn,
}

macro_rules! kernels {
    ($ty:ident, $q:expr, $dq:expr) => {
        QuantKernels {
            ty: GgmlType::$ty,
            quantize_row: $q,
            quantize_row_weighted: None,
            dequantize_row: $dq,
        }
    };
    ($ty:ident, $q:expr, $qw:expr, $dq:expr) => {
        QuantKernels {
            ty: GgmlType::$ty,
            quantize_row: Some($q),
            quantize_row_weighted: Some($qw),
            dequantize_row: $dq,
        }
    };
    // only with importance weights
    ($ty:ident, weighted_only $qw:expr, $dq:expr) => {
        QuantKernels {
            ty: GgmlType::$ty,
            quantize_row: None,
            quantize_row_weighted: Some($qw),
            dequantize_row: $dq,
        }
    };
}

static KERNELS: &[QuantKernels] = &[
    kernels!(
        F32,
        Some(float::quantize_row_f32),
        float::dequantize_row_f32
    ),
    kernels!(
        F16,
        Some(float::quantize_row_f16),
        float::dequantize_row_f16
    ),
    kernels!(
        BF16,
        Some(float::quantize_row_bf16),
        float::dequantize_row_bf16
    ),
    kernels!(
        Q4_0,
        legacy::quantize_row_q4_0,
        legacy::quantize_row_q4_0_weighted,
        legacy::dequantize_row_q4_0
    ),
    kernels!(
        Q4_1,
        legacy::quantize_row_q4_1,
        legacy::quantize_row_q4_1_weighted,
        legacy::dequantize_row_q4_1
    ),
    kernels!(
        Q5_0,
        legacy::quantize_row_q5_0,
        legacy::quantize_row_q5_0_weighted,
        legacy::dequantize_row_q5_0
    ),
    kernels!(
        Q5_1,
        legacy::quantize_row_q5_1,
        legacy::quantize_row_q5_1_weighted,
        legacy::dequantize_row_q5_1
    ),
    kernels!(
        Q8_0,
        legacy::quantize_row_q8_0,
        legacy::quantize_row_q8_0_weighted,
        legacy::dequantize_row_q8_0
    ),
    kernels!(
        Q2_K,
        k_quants::quantize_row_q2_k,
        k_quants::quantize_row_q2_k_weighted,
        k_quants::dequantize_row_q2_k
    ),
    kernels!(
        Q3_K,
        k_quants::quantize_row_q3_k,
        k_quants::quantize_row_q3_k_weighted,
        k_quants::dequantize_row_q3_k
    ),
    kernels!(
        Q4_K,
        k_quants::quantize_row_q4_k,
        k_quants::quantize_row_q4_k_weighted,
        k_quants::dequantize_row_q4_k
    ),
    kernels!(
        Q5_K,
        k_quants::quantize_row_q5_k,
        k_quants::quantize_row_q5_k_weighted,
        k_quants::dequantize_row_q5_k
    ),
    kernels!(
        Q6_K,
        k_quants::quantize_row_q6_k,
        k_quants::quantize_row_q6_k_weighted,
        k_quants::dequantize_row_q6_k
    ),
    kernels!(Q8_K, None, k_quants::dequantize_row_q8_k),
    kernels!(
        IQ4_NL,
        iq::quantize_row_iq4_nl,
        iq::quantize_row_iq4_nl_weighted,
        iq::dequantize_row_iq4_nl
    ),
    kernels!(
        IQ4_XS,
        iq::quantize_row_iq4_xs,
        iq::quantize_row_iq4_xs_weighted,
        iq::dequantize_row_iq4_xs
    ),
    kernels!(
        IQ3_XXS,
        iq_lattice_quants::quantize_row_iq3_xxs,
        iq_lattice_quants::quantize_row_iq3_xxs_weighted,
        iq_lattice_quants::dequantize_row_iq3_xxs
    ),
    kernels!(
        IQ3_S,
        iq_lattice_quants::quantize_row_iq3_s,
        iq_lattice_quants::quantize_row_iq3_s_weighted,
        iq_lattice_quants::dequantize_row_iq3_s
    ),
    kernels!(
        IQ2_XXS,
        weighted_only iq_lattice_quants::quantize_row_iq2_xxs_weighted,
        iq_lattice_quants::dequantize_row_iq2_xxs
    ),
    kernels!(
        IQ2_XS,
        weighted_only iq_lattice_quants::quantize_row_iq2_xs_weighted,
        iq_lattice_quants::dequantize_row_iq2_xs
    ),
    kernels!(
        IQ2_S,
        iq_lattice_quants::quantize_row_iq2_s,
        iq_lattice_quants::quantize_row_iq2_s_weighted,
        iq_lattice_quants::dequantize_row_iq2_s
    ),
    kernels!(
        IQ1_S,
        weighted_only iq_lattice_quants::quantize_row_iq1_s_weighted,
        iq_lattice_quants::dequantize_row_iq1_s
    ),
    kernels!(
        IQ1_M,
        iq_lattice_quants::quantize_row_iq1_m,
        iq_lattice_quants::quantize_row_iq1_m_weighted,
        iq_lattice_quants::dequantize_row_iq1_m
    ),
    kernels!(
        TQ1_0,
        Some(ternary::quantize_row_tq1_0),
        ternary::dequantize_row_tq1_0
    ),
    kernels!(
        TQ2_0,
        Some(ternary::quantize_row_tq2_0),
        ternary::dequantize_row_tq2_0
    ),
    kernels!(
        MXFP4,
        Some(fp4::quantize_row_mxfp4),
        fp4::dequantize_row_mxfp4
    ),
    kernels!(NVFP4, None, fp4::dequantize_row_nvfp4),
];

/// The kernels of `t`, or None when ckpt can neither read nor write that type.
pub fn kernels(t: GgmlType) -> Option<&'static QuantKernels> {
    KERNELS.iter().find(|k| k.ty == t)
}

/// Types ckpt can quantize f32 data into (some only with an importance matrix, see
/// [`requires_importance`]).
pub fn quantizable_types() -> impl Iterator<Item = GgmlType> {
    KERNELS
        .iter()
        .filter(|k| k.quantize_row.is_some() || k.quantize_row_weighted.is_some())
        .map(|k| k.ty)
}

/// Whether ckpt can quantize into `t` at all.
pub(crate) fn can_quantize(t: GgmlType) -> bool {
    kernels(t).is_some_and(|k| k.quantize_row.is_some() || k.quantize_row_weighted.is_some())
}

/// ggml_quantize_requires_imatrix: types that ggml quantizes only with importance weights.
pub fn requires_importance(t: GgmlType) -> bool {
    kernels(t).is_some_and(|k| k.quantize_row.is_none() && k.quantize_row_weighted.is_some())
}

/// Types ckpt can expand to f32.
pub fn dequantizable_types() -> impl Iterator<Item = GgmlType> {
    KERNELS.iter().map(|k| k.ty)
}

/// Rows handed to one rayon task: enough work (~64K elements) to amortise scheduling.
fn rows_per_task(n_per_row: usize) -> usize {
    (65536 / n_per_row.max(1)).max(1)
}

/// Quantizes `src` (rows of `n_per_row` f32) to `t`, exactly as ggml_quantize_chunk does.
/// `imatrix`, when given, holds `n_per_row` importance weights shared by all rows.
pub fn quantize(
    t: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
) -> Result<Vec<u8>> {
    let row_bytes = check_quantize(t, src, n_per_row, imatrix)?;
    let mut out = vec![0u8; src.len() / n_per_row * row_bytes];
    quantize_into(t, src, n_per_row, imatrix, &mut out)?;
    Ok(out)
}

/// Checks a [`quantize`] request; returns the bytes of one quantized row.
fn check_quantize(
    t: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
) -> Result<usize> {
    let k = kernels(t)
        .ok_or_else(|| Error::Unsupported(format!("ckpt cannot quantize to ggml type {t}")))?;
    if k.quantize_row.is_none() && k.quantize_row_weighted.is_none() {
        return Err(Error::Unsupported(format!(
            "ckpt can read {t} but cannot quantize to it"
        )));
    }
    if k.quantize_row.is_none() && imatrix.is_none() {
        return Err(Error::Usage(format!(
            "quantizing to {t} needs an importance matrix (ggml has no {t} quantization without one)"
        )));
    }
    if n_per_row == 0 || !n_per_row.is_multiple_of(t.block_size()) {
        return Err(Error::Usage(format!(
            "cannot quantize rows of {n_per_row} elements to {t}: the row length must be a multiple of its block size {}",
            t.block_size()
        )));
    }
    if !src.len().is_multiple_of(n_per_row) {
        return Err(Error::Usage(format!(
            "{} elements are not a whole number of {n_per_row}-element rows",
            src.len()
        )));
    }
    if let Some(w) = imatrix {
        if w.len() != n_per_row {
            return Err(Error::Usage(format!(
                "importance matrix has {} values but rows have {n_per_row} elements",
                w.len()
            )));
        }
    }
    Ok(n_per_row / t.block_size() * t.type_size())
}

/// [`quantize`] into a caller's buffer of exactly `src.len() / n_per_row` quantized rows, so a
/// band of rows can be quantized without allocating.
pub(crate) fn quantize_into(
    t: GgmlType,
    src: &[f32],
    n_per_row: usize,
    imatrix: Option<&[f32]>,
    dst: &mut [u8],
) -> Result<()> {
    let row_bytes = check_quantize(t, src, n_per_row, imatrix)?;
    if dst.len() != src.len() / n_per_row * row_bytes {
        return Err(Error::Usage(format!(
            "{} rows of {t} take {} bytes, the buffer has {}",
            src.len() / n_per_row,
            src.len() / n_per_row * row_bytes,
            dst.len()
        )));
    }
    let k = kernels(t).expect("checked");
    let per_task = rows_per_task(n_per_row);
    let weighted = imatrix.zip(k.quantize_row_weighted);
    dst.par_chunks_mut(row_bytes * per_task)
        .zip(src.par_chunks(n_per_row * per_task))
        .for_each(|(dst, src)| match weighted {
            Some((w, f)) => {
                for (d, s) in dst
                    .chunks_exact_mut(row_bytes)
                    .zip(src.chunks_exact(n_per_row))
                {
                    f(s, d, w);
                }
            }
            None => {
                if let Some(q) = k.quantize_row {
                    q(src, dst)
                }
            }
        });
    Ok(())
}

/// Expands `n` elements of type `t` stored in `bytes` to f32, exactly as ggml's dequantize_row_*.
pub fn dequantize(t: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let mut out = vec![0f32; n];
    dequantize_into(t, bytes, &mut out)?;
    Ok(out)
}

/// [`dequantize`] into a caller's buffer (`dst.len()` elements).
pub(crate) fn dequantize_into(t: GgmlType, bytes: &[u8], dst: &mut [f32]) -> Result<()> {
    let n = dst.len();
    let k = kernels(t)
        .ok_or_else(|| Error::Unsupported(format!("ckpt cannot dequantize ggml type {t}")))?;
    let (bs, ts) = (t.block_size(), t.type_size());
    if !n.is_multiple_of(bs) {
        return Err(Error::Usage(format!(
            "{n} elements are not a whole number of {t} blocks of {bs}"
        )));
    }
    if bytes.len() != n / bs * ts {
        return Err(Error::Usage(format!(
            "{n} elements of {t} take {} bytes, got {}",
            n / bs * ts,
            bytes.len()
        )));
    }
    let blocks_per_task = (65536 / bs).max(1);
    dst.par_chunks_mut(bs * blocks_per_task)
        .zip(bytes.par_chunks(ts * blocks_per_task))
        .for_each(|(dst, src)| (k.dequantize_row)(src, dst));
    Ok(())
}

pub use ftype::{parse_ftype, Ftype};
pub use options::{
    parse_ggml_type, parse_prune_layers, ImatrixWeights, KvOverride, KvOverrideValue,
    TensorTypeOverride,
};
pub use pipeline::{
    plan_quantization, quantize_gguf, quantize_gguf_with_progress, QuantizeOptions, QuantizeReport,
    TensorReport,
};
