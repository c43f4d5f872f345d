//! `ckpt diff`: are two checkpoints the same model? Per tensor: present on one side only, shape
//! or dtype differences, max abs error, RMSE, cosine similarity, and whether the bytes are
//! identical. Values are compared as f64, streaming through each tensor in chunks.

use std::collections::HashMap;

use ckpt_core::{codec, Checkpoint, DType, Error, Result, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;
use serde::Serialize;

/// The comparison of one tensor present on both sides.
#[derive(Debug, Clone, Serialize)]
pub struct TensorDiff {
    /// The tensor's name on side A.
    pub name: String,
    /// The other side's name when the two differ (HF ↔ GGUF mapping).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub other_name: Option<String>,
    /// Side A's dtype (`F32`, `BF16`, `Q4_K`, …).
    pub dtype_a: String,
    /// Side B's dtype.
    pub dtype_b: String,
    /// Side A's shape, outermost dimension first (PyTorch order).
    pub shape_a: Vec<u64>,
    /// Side B's shape.
    pub shape_b: Vec<u64>,
    /// Same dtype, same shape and the same data bytes (quantized GGUF tensors: the same
    /// dequantized values).
    pub bytes_identical: bool,
    /// The largest `|a - b|` over the elements (values read as f64; equal infinities and NaN
    /// against NaN count as equal, any other non-finite pair as an infinite error); `None` when
    /// values were not compared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_abs_error: Option<f64>,
    /// Root mean square of `a - b` over the elements finite on both sides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rmse: Option<f64>,
    /// Cosine similarity of the two tensors as vectors, over the elements finite on both sides
    /// (1 when both are all zeros).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cosine_similarity: Option<f64>,
    /// Why values were not compared (shape mismatch, non-numeric dtype…).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Bytes identical, or `max_abs_error` at most the report's tolerance.
    pub within_tolerance: bool,
    /// Every element differs by at most the rounding of the coarser float dtype of the two
    /// (bf16, f16 or f32 unit roundoff relative to the larger magnitude): a cast, not a change.
    pub within_rounding: bool,
}

/// The result of [`diff`] (the `--json` report of `ckpt diff`).
#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    /// The tensors present on both sides, in side A's order.
    pub compared: Vec<TensorDiff>,
    /// Names (side A's) with no counterpart in B.
    pub only_in_a: Vec<String>,
    /// Names (side B's) with no counterpart in A.
    pub only_in_b: Vec<String>,
    /// How many compared tensors are byte-identical.
    pub identical_bytes: usize,
    /// How many compared tensors are within `tolerance` (the byte-identical ones included).
    pub within_tolerance: usize,
    /// How many compared tensors are not within `tolerance` (shape mismatches and tensors whose
    /// values could not be compared included).
    pub different: usize,
    /// The max abs error allowed for a tensor to count as the same.
    pub tolerance: f64,
    /// Not the same, but only because of float rounding: names and shapes match and every
    /// differing tensor is `within_rounding` (then `suggested_tolerance` would make it the same).
    pub rounding_only: bool,
    /// The largest max abs error among the compared tensors, when `rounding_only`.
    pub suggested_tolerance: Option<f64>,
    /// True when every tensor is on both sides and within tolerance.
    pub same: bool,
}

/// How names of side B map to side A (identity unless converting between naming schemes).
pub type NameMap = HashMap<String, String>;

/// Reads a tensor's elements as f64 in chunks of `chunk` elements, calling `f` per chunk.
pub fn for_each_chunk(
    t: &Tensor,
    chunk: usize,
    mut f: impl FnMut(&[f64]) -> Result<()>,
) -> Result<()> {
    let bytes = t.bytes()?;
    let unit = t
        .dtype
        .elem_size()
        .ok_or_else(|| Error::Unsupported(format!("{} values cannot be compared", t.dtype)))?;
    let mut buf = Vec::with_capacity(chunk);
    for part in bytes.chunks(chunk * unit) {
        buf.clear();
        decode(t.dtype, part, &mut buf)?;
        f(&buf)?;
    }
    drop(bytes);
    t.release();
    Ok(())
}

fn decode(d: DType, b: &[u8], out: &mut Vec<f64>) -> Result<()> {
    macro_rules! each {
        ($n:expr, $conv:expr) => {
            out.extend(b.chunks_exact($n).map(|c| $conv(c.try_into().unwrap())))
        };
    }
    match d {
        DType::F32 => each!(4, |c| f32::from_le_bytes(c) as f64),
        DType::F64 => each!(8, f64::from_le_bytes),
        DType::F16 => each!(2, |c| f16::from_le_bytes(c).to_f64()),
        DType::BF16 => each!(2, |c| bf16::from_le_bytes(c).to_f64()),
        DType::F8E4M3 => each!(1, |c: [u8; 1]| codec::e4m3_to_f32(c[0]) as f64),
        DType::F8E5M2 => each!(1, |c: [u8; 1]| codec::e5m2_to_f32(c[0]) as f64),
        DType::I8 => each!(1, |c: [u8; 1]| c[0] as i8 as f64),
        DType::U8 | DType::Bool => each!(1, |c: [u8; 1]| c[0] as f64),
        DType::I16 => each!(2, |c| i16::from_le_bytes(c) as f64),
        DType::U16 => each!(2, |c| u16::from_le_bytes(c) as f64),
        DType::I32 => each!(4, |c| i32::from_le_bytes(c) as f64),
        DType::U32 => each!(4, |c| u32::from_le_bytes(c) as f64),
        DType::I64 => each!(8, |c| i64::from_le_bytes(c) as f64),
        DType::U64 => each!(8, |c| u64::from_le_bytes(c) as f64),
        other => {
            return Err(Error::Unsupported(format!(
                "{other} values cannot be compared"
            )))
        }
    }
    Ok(())
}

const CHUNK: usize = 1 << 16;

/// Unit roundoff of a float dtype (half the gap between 1 and the next number).
fn unit_roundoff(d: DType) -> Option<f64> {
    match d {
        DType::F8E5M2 => Some(2f64.powi(-3)),
        DType::F8E4M3 => Some(2f64.powi(-4)),
        DType::BF16 => Some(2f64.powi(-8)),
        DType::F16 => Some(2f64.powi(-11)),
        DType::F32 => Some(2f64.powi(-24)),
        DType::F64 => Some(2f64.powi(-53)),
        _ => None,
    }
}

/// (max abs error, rmse, cosine, every element within rounding of the coarser dtype).
fn compare_values(a: &Tensor, b: &Tensor) -> Result<(f64, f64, f64, bool)> {
    let u = match (unit_roundoff(a.dtype), unit_roundoff(b.dtype)) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    };
    let mut rounding = u.is_some();
    // Decode both sides chunk by chunk in lockstep.
    let (ab, bb) = (a.bytes()?, b.bytes()?);
    let (ua, ub) = (
        a.dtype.elem_size().unwrap_or(1),
        b.dtype.elem_size().unwrap_or(1),
    );
    let (mut max_err, mut sq, mut dot, mut na, mut nb) = (0f64, 0f64, 0f64, 0f64, 0f64);
    let mut finite = 0u64;
    let (mut xa, mut xb) = (Vec::with_capacity(CHUNK), Vec::with_capacity(CHUNK));
    for (ca, cb) in ab.chunks(CHUNK * ua).zip(bb.chunks(CHUNK * ub)) {
        xa.clear();
        xb.clear();
        decode(a.dtype, ca, &mut xa)?;
        decode(b.dtype, cb, &mut xb)?;
        for (&x, &y) in xa.iter().zip(&xb) {
            let d = x - y;
            // Equal values (equal infinities too) and NaN against NaN are the same element; NaN
            // against a number, or an infinity against anything else, is an unbounded error.
            let same = x == y || (x.is_nan() && y.is_nan());
            if !same && !d.is_finite() {
                max_err = f64::INFINITY;
                rounding = false;
            } else if !same {
                max_err = max_err.max(d.abs());
                if let Some(u) = u {
                    // f16's subnormals are spaced 2^-24 apart; allow half that gap below them.
                    let floor = if u >= 2f64.powi(-11) {
                        2f64.powi(-25)
                    } else {
                        0.0
                    };
                    if d.abs() > u * x.abs().max(y.abs()) + floor {
                        rounding = false;
                    }
                }
            }
            // RMSE and cosine similarity are over the elements finite on both sides (as
            // numpy's over the same values after masking the rest out).
            if x.is_finite() && y.is_finite() {
                finite += 1;
                sq += d * d;
                dot += x * y;
                na += x * x;
                nb += y * y;
            }
        }
    }
    drop((ab, bb));
    a.release();
    b.release();
    let n = finite.max(1) as f64;
    let cos = if na == 0.0 && nb == 0.0 {
        1.0
    } else if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        dot / (na.sqrt() * nb.sqrt())
    };
    Ok((
        max_err,
        (sq / n).sqrt(),
        cos,
        rounding && max_err.is_finite(),
    ))
}

/// Compares `b` against `a`. `b_to_a` maps B's names to A's (empty for the same naming).
///
/// Differences are the report, not errors; fails only when a tensor cannot be read, or is a
/// ggml type ckpt cannot dequantize.
pub fn diff(
    a: &Checkpoint,
    b: &Checkpoint,
    b_to_a: &NameMap,
    tolerance: f64,
) -> Result<DiffReport> {
    let a_by_name: HashMap<&str, &Tensor> =
        a.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut pairs: Vec<(&Tensor, &Tensor, Option<String>)> = Vec::new();
    let mut only_in_b = Vec::new();
    let mut matched_a = std::collections::HashSet::new();
    for tb in &b.tensors {
        let a_name = b_to_a
            .get(&tb.name)
            .map(String::as_str)
            .unwrap_or(tb.name.as_str());
        match a_by_name.get(a_name) {
            Some(ta) => {
                matched_a.insert(ta.name.as_str());
                let other = (a_name != tb.name).then(|| tb.name.clone());
                pairs.push((ta, tb, other));
            }
            None => only_in_b.push(tb.name.clone()),
        }
    }
    let only_in_a: Vec<String> = a
        .tensors
        .iter()
        .filter(|t| !matched_a.contains(t.name.as_str()))
        .map(|t| t.name.clone())
        .collect();
    // Keep A's order in the report.
    let order: HashMap<&str, usize> = a
        .tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.as_str(), i))
        .collect();
    pairs.sort_by_key(|(ta, _, _)| order[ta.name.as_str()]);

    let compared: Vec<TensorDiff> = pairs
        .par_iter()
        .map(|(ta, tb, other)| -> Result<TensorDiff> {
            let mut d = TensorDiff {
                name: ta.name.clone(),
                other_name: other.clone(),
                dtype_a: ta.dtype.to_string(),
                dtype_b: tb.dtype.to_string(),
                shape_a: ta.shape.clone(),
                shape_b: tb.shape.clone(),
                bytes_identical: false,
                max_abs_error: None,
                rmse: None,
                cosine_similarity: None,
                note: None,
                within_tolerance: false,
                within_rounding: false,
            };
            if ta.shape != tb.shape {
                d.note = Some("shapes differ".into());
                return Ok(d);
            }
            // Quantized GGUF tensors are compared by their dequantized values.
            let expand = |t: &Tensor| -> Result<Tensor> {
                match t.dtype {
                    DType::Ggml(g) if ckpt_quant::kernels(g).is_some() => {
                        Ok(crate::cast::dequantize_tensor(t, DType::F32))
                    }
                    DType::Ggml(g) => Err(Error::Unsupported(format!(
                        "tensor '{}' is {g}, which ckpt cannot dequantize",
                        t.name
                    ))),
                    _ => Ok(t.clone()),
                }
            };
            let (ea, eb) =
                if matches!(ta.dtype, DType::Ggml(_)) || matches!(tb.dtype, DType::Ggml(_)) {
                    (expand(ta)?, expand(tb)?)
                } else {
                    ((*ta).clone(), (*tb).clone())
                };
            let (ta, tb) = (&ea, &eb);
            if ta.dtype == tb.dtype && ta.first_difference(tb)?.is_none() {
                d.bytes_identical = true;
                d.within_tolerance = true;
                d.max_abs_error = Some(0.0);
                d.rmse = Some(0.0);
                d.cosine_similarity = Some(1.0);
                d.within_rounding = true;
                return Ok(d);
            }
            if ta.dtype.elem_size().is_none()
                || tb.dtype.elem_size().is_none()
                || ta.dtype == DType::C64
                || tb.dtype == DType::C64
            {
                d.note = Some("bytes differ; values of this dtype are not compared".into());
                return Ok(d);
            }
            match compare_values(ta, tb) {
                Ok((m, r, c, rounding)) => {
                    d.within_rounding = rounding;
                    d.max_abs_error = Some(m);
                    d.rmse = Some(r);
                    d.cosine_similarity = Some(c);
                    d.within_tolerance = m <= tolerance;
                }
                Err(e) => d.note = Some(e.to_string()),
            }
            Ok(d)
        })
        .collect::<Result<_>>()?;
    let identical_bytes = compared.iter().filter(|d| d.bytes_identical).count();
    let within_tolerance = compared.iter().filter(|d| d.within_tolerance).count();
    let different = compared.len() - within_tolerance;
    let same = different == 0 && only_in_a.is_empty() && only_in_b.is_empty();
    let rounding_only = !same
        && only_in_a.is_empty()
        && only_in_b.is_empty()
        && compared
            .iter()
            .all(|d| d.within_tolerance || d.within_rounding);
    let suggested_tolerance = rounding_only.then(|| {
        compared
            .iter()
            .filter_map(|d| d.max_abs_error)
            .fold(0f64, f64::max)
    });
    Ok(DiffReport {
        rounding_only,
        suggested_tolerance,
        compared,
        only_in_a,
        only_in_b,
        identical_bytes,
        within_tolerance,
        different,
        tolerance,
        same,
    })
}
