//! Element-wise float targets: F32 (identity), F16 and BF16, rounded exactly like ggml's reference
//! row converters (`ggml_fp32_to_fp16_row`, `ggml_fp32_to_bf16_row_ref`).

use ckpt_core::codec::{self, Nan};
use ckpt_core::DType;

#[cfg(test)]
pub(crate) use ckpt_core::codec::bf16_bits_to_f32;
pub use ckpt_core::codec::f32_to_bf16_bits;

/// f32 -> IEEE binary16 bits like ggml's software converter ([`Nan::Ggml`]: a NaN becomes
/// `sign | 0x7E00`, where `half` would keep the payload).
pub(crate) fn f32_to_f16_bits(x: f32) -> u16 {
    codec::f32_to_f16_bits(x, Nan::Ggml)
}

/// binary16 bits -> f32 (exact).
pub(crate) fn f16_bits_to_f32(h: u16) -> f32 {
    codec::f16_bits_to_f32(h, Nan::Ggml)
}

// The row converters cannot fail: the dtypes are fixed, so `codec`'s refusal cannot happen.

pub(crate) fn quantize_row_f32(src: &[f32], dst: &mut [u8]) {
    let _ = codec::encode(DType::F32, src, dst, Nan::Ggml);
}

pub(crate) fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    let _ = codec::decode(DType::F32, src, dst, Nan::Ggml);
}

pub(crate) fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    let _ = codec::encode(DType::F16, src, dst, Nan::Ggml);
}

pub(crate) fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    let _ = codec::decode(DType::F16, src, dst, Nan::Ggml);
}

pub(crate) fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    let _ = codec::encode(DType::BF16, src, dst, Nan::Ggml);
}

pub(crate) fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    let _ = codec::decode(DType::BF16, src, dst, Nan::Ggml);
}

/// Reads the little-endian fp16 at `b[0..2]` as f32.
pub(crate) fn read_f16(b: &[u8]) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]))
}

/// Writes `x` rounded to fp16 at `b[0..2]` and returns the rounded value as f32.
pub(crate) fn write_f16(b: &mut [u8], x: f32) -> f32 {
    let h = f32_to_f16_bits(x);
    b[..2].copy_from_slice(&h.to_le_bytes());
    f16_bits_to_f32(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_row_widening_matches_per_value_conversion() {
        // every finite and infinite f16, from an unaligned buffer, over chunk boundaries
        let finite: Vec<u16> = (0..=u16::MAX)
            .filter(|h| h & 0x7C00 != 0x7C00 || h & 0x3FF == 0)
            .collect();
        let mut bytes = vec![0u8];
        bytes.extend(finite.iter().flat_map(|h| h.to_le_bytes()));
        let mut got = vec![0f32; finite.len()];
        dequantize_row_f16(&bytes[1..], &mut got);
        for (h, g) in finite.iter().zip(&got) {
            assert_eq!(g.to_bits(), f16_bits_to_f32(*h).to_bits(), "{h:#06x}");
        }
    }
}
