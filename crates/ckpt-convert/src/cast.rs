//! Float casts between F64/F32/F16/BF16, round-to-nearest-even like torch's `.to(dtype)`, and
//! torch's exact widening of FP8 (F8_E4M3, F8_E5M2) to F32/F16/BF16.

use std::sync::Arc;

use ckpt_core::codec::{self, Nan};
use ckpt_core::{DType, Error, Result, Tensor};
use rayon::prelude::*;

/// The float dtypes `--dtype` converts between; other dtypes (ints, bool) pass through, and FP8
/// is only ever widened ([`cast_tensor`]).
pub fn is_castable(d: DType) -> bool {
    matches!(d, DType::F64 | DType::F32 | DType::F16 | DType::BF16)
}

/// Parses `f32|f16|bf16` (and the torch spellings: `float32`, `fp16`, `half`, `bfloat16`, …),
/// case-insensitive; anything else is an [`Error::Usage`].
pub fn parse_float_dtype(s: &str) -> Result<DType> {
    match s.to_ascii_lowercase().as_str() {
        "f32" | "float32" | "fp32" => Ok(DType::F32),
        "f16" | "float16" | "fp16" | "half" => Ok(DType::F16),
        "bf16" | "bfloat16" => Ok(DType::BF16),
        other => Err(Error::Usage(format!(
            "unknown dtype '{other}' (expected f32, f16 or bf16)"
        ))),
    }
}

const CHUNK: usize = 1 << 16;

/// Widens little-endian bytes of `from` to f32 (exact for F16/BF16; RNE for F64). Fails when
/// `from` is not a float dtype or the output cannot be allocated.
pub fn to_f32(from: DType, bytes: &[u8]) -> Result<Vec<f32>> {
    let unit = from.elem_size().unwrap_or(1);
    let n = bytes.len() / unit;
    let mut out: Vec<f32> = Vec::new();
    out.try_reserve_exact(n).map_err(|_| {
        Error::Unsupported(format!(
            "{} bytes of memory for {n} floats could not be allocated",
            n * 4
        ))
    })?;
    out.resize(n, 0.0);
    out.par_chunks_mut(CHUNK)
        .enumerate()
        .try_for_each(|(ci, dst)| {
            let src = &bytes[ci * CHUNK * unit..][..dst.len() * unit];
            codec::decode(from, src, dst, Nan::Quiet)
                .map_err(|other| Error::Unsupported(format!("cannot read {other} as floats")))
        })?;
    Ok(out)
}

/// Converts little-endian bytes from one float dtype to another.
pub(crate) fn convert_bytes(from: DType, to: DType, bytes: &[u8]) -> Result<Vec<u8>> {
    if from == to {
        return Ok(bytes.to_vec());
    }
    if codec::is_f8(from) {
        return widen_f8(from, to, bytes);
    }
    let from_unit = from.elem_size().unwrap();
    let to_unit = to.elem_size().unwrap();
    let n = bytes.len() / from_unit;
    let mut out = ckpt_core::tensor::try_buffer(n * to_unit, "cast")?;
    out.resize(n * to_unit, 0);
    out.par_chunks_mut(CHUNK * to_unit)
        .enumerate()
        .try_for_each(|(ci, dst)| {
            let count = dst.len() / to_unit;
            let src = &bytes[ci * CHUNK * from_unit..][..count * from_unit];
            // Through f32 like torch: c10::Half and c10::BFloat16 are built from float.
            let mut wide = vec![0f32; count];
            codec::decode(from, src, &mut wide, Nan::Quiet)
                .map_err(|other| Error::Unsupported(format!("cannot read {other} as floats")))?;
            codec::encode(to, &wide, dst, Nan::Quiet)
                .map_err(|other| Error::Unsupported(format!("cannot cast to {other}")))
        })?;
    Ok(out)
}

/// torch's `.to(to)` of FP8 bytes ([`codec::cast_f8`]).
fn widen_f8(from: DType, to: DType, bytes: &[u8]) -> Result<Vec<u8>> {
    let to_unit = match to {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        other => {
            return Err(Error::Unsupported(format!(
                "{from} can be cast to F32, F16 or BF16, not {other}"
            )))
        }
    };
    let mut out = ckpt_core::tensor::try_buffer(bytes.len() * to_unit, "cast")?;
    out.resize(bytes.len() * to_unit, 0);
    out.par_chunks_mut(CHUNK * to_unit)
        .zip(bytes.par_chunks(CHUNK))
        .try_for_each(|(dst, src)| {
            codec::cast_f8(from, to, src, dst)
                .map_err(|other| Error::Unsupported(format!("cannot cast {from} to {other}")))
        })?;
    Ok(out)
}

/// A lazy tensor that reads `src` and casts it when its bytes are asked for (F8_E4M3 and F8_E5M2
/// are widened; other FP8 kinds, ints and bool pass through).
pub fn cast_tensor(src: &Tensor, to: DType) -> Tensor {
    if src.dtype == to || !(is_castable(src.dtype) || (codec::is_f8(src.dtype) && is_castable(to)))
    {
        return src.clone();
    }
    let inner = Arc::new(src.clone());
    let from = src.dtype;
    Tensor::computed(src.name.clone(), to, src.shape.clone(), move || {
        let bytes = inner.bytes()?;
        let out = convert_bytes(from, to, &bytes);
        drop(bytes);
        inner.release();
        out
    })
}

/// A lazy f32 (or `to`) tensor holding the dequantized values of a ggml block-quantized tensor,
/// expanded exactly as ggml's dequantize_row_* functions do.
pub fn dequantize_tensor(src: &Tensor, to: DType) -> Tensor {
    let DType::Ggml(g) = src.dtype else {
        return cast_tensor(src, to);
    };
    let inner = Arc::new(src.clone());
    let n = src.numel() as usize;
    Tensor::computed(src.name.clone(), to, src.shape.clone(), move || {
        let bytes = inner.bytes()?;
        let values = ckpt_quant::dequantize(g, &bytes, n)
            .map_err(|e| Error::Unsupported(format!("tensor '{}': {e}", inner.name)))?;
        drop(bytes);
        inner.release();
        let raw: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        convert_bytes(DType::F32, to, &raw)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_f16_rounds_to_nearest_even() {
        let xs = [
            1.0f32,
            65504.0,
            70000.0,
            5.96e-8,
            -0.0,
            f32::INFINITY,
            1.0 + 1.0 / 2048.0,
        ];
        let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        let out = convert_bytes(DType::F32, DType::F16, &bytes).unwrap();
        let back: Vec<u16> = out
            .chunks(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        assert_eq!(
            back,
            vec![0x3c00, 0x7bff, 0x7c00, 0x0001, 0x8000, 0x7c00, 0x3c00]
        );
    }
}
