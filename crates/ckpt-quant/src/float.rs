//! Element-wise float targets: F32 (identity), F16 and BF16, rounded exactly like ggml's reference
//! row converters (`ggml_fp32_to_fp16_row`, `ggml_fp32_to_bf16_row_ref`).

/// f32 -> IEEE binary16 bits with round-to-nearest-even, subnormals and overflow to infinity, like
/// ggml's software converter. NaN becomes `sign | 0x7E00` (ggml drops the payload; `half` keeps it).
pub fn f32_to_f16_bits(x: f32) -> u16 {
    if x.is_nan() {
        let sign = ((x.to_bits() >> 16) & 0x8000) as u16;
        return sign | 0x7E00;
    }
    half::f16::from_f32(x).to_bits()
}

/// binary16 bits -> f32 (exact).
pub fn f16_bits_to_f32(h: u16) -> f32 {
    half::f16::from_bits(h).to_f32()
}

/// f32 -> bfloat16 bits: round-to-nearest-even on the top 16 bits; NaN keeps its top bits and is
/// forced quiet (bit 6 of the result), as ggml's `GGML_FP32_TO_BF16` does.
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7fff_ffff > 0x7f80_0000 {
        return ((bits >> 16) | 64) as u16;
    }
    (bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

pub fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

pub fn quantize_row_f32(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src.iter().zip(dst.chunks_exact_mut(4)) {
        out.copy_from_slice(&x.to_le_bytes());
    }
}

pub fn dequantize_row_f32(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(4).zip(dst.iter_mut()) {
        *y = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

pub fn quantize_row_f16(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src.iter().zip(dst.chunks_exact_mut(2)) {
        out.copy_from_slice(&f32_to_f16_bits(*x).to_le_bytes());
    }
}

pub fn dequantize_row_f16(src: &[u8], dst: &mut [f32]) {
    use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};
    // The input may be unaligned: gather 256 values at a time, then widen them with half's
    // slice conversion (F16C when available; widening is exact either way).
    const CHUNK: usize = 256;
    let mut bits = [0u16; CHUNK];
    for (src, dst) in src.chunks(2 * CHUNK).zip(dst.chunks_mut(CHUNK)) {
        let n = (src.len() / 2).min(dst.len());
        for (h, b) in bits.iter_mut().zip(src.chunks_exact(2)) {
            *h = u16::from_le_bytes([b[0], b[1]]);
        }
        let halves: &[half::f16] = bits[..n].reinterpret_cast();
        halves.convert_to_f32_slice(&mut dst[..n]);
    }
}

pub fn quantize_row_bf16(src: &[f32], dst: &mut [u8]) {
    for (x, out) in src.iter().zip(dst.chunks_exact_mut(2)) {
        out.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes());
    }
}

pub fn dequantize_row_bf16(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(2).zip(dst.iter_mut()) {
        *y = bf16_bits_to_f32(u16::from_le_bytes([b[0], b[1]]));
    }
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
    fn f16_rounding_matches_ieee_rne() {
        // halfway between 1.0 and the next f16 (1 + 2^-10) rounds to even (1.0)
        assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11)), 0x3C00);
        // 3/4 of the way rounds up
        assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-12)), 0x3C01);
        // smallest subnormal and half of it (ties to even -> 0)
        assert_eq!(f32_to_f16_bits(2f32.powi(-24)), 0x0001);
        assert_eq!(f32_to_f16_bits(2f32.powi(-25)), 0x0000);
        assert_eq!(f32_to_f16_bits(-65520.0), 0xFC00);
        assert_eq!(f32_to_f16_bits(f32::from_bits(0xFFC0_1234)), 0xFE00);
        assert_eq!(f32_to_f16_bits(f32::NAN), 0x7E00);
    }

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

    #[test]
    fn bf16_rounding_and_nan() {
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F80_8000)), 0x3F80); // tie -> even
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F81_8000)), 0x3F82); // tie -> even (up)
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7F80_0001)), 0x7FC0); // signalling NaN made quiet
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7F7F_FFFF)), 0x7F80); // overflow to inf
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x0000_8000)), 0x0000); // subnormal kept, RNE
    }
}
