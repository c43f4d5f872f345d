//! The one byte <-> f32 codec: little-endian F32, F16, BF16 and F64 elements to f32 and back.
//!
//! Numbers are converted the same way by every tool ckpt matches (widening is exact, narrowing
//! rounds to nearest even, overflow goes to infinity, subnormals are kept). They differ only in
//! the bits a NaN gets, and those are compared byte for byte too, so each caller names the tool
//! it matches with a [`Nan`] rule:
//!
//! | rule | f32 -> f16 | f16 -> f32 | used for |
//! |---|---|---|---|
//! | [`Nan::Ggml`] | `sign \| 0x7E00` (payload dropped) | quiet bit set, payload kept | llama-quantize, ggml rows |
//! | [`Nan::Quiet`] | quiet bit set, top 10 payload bits kept | quiet bit set, payload kept | torch-style casts, GGUF export |
//! | [`Nan::Numpy`] | top 10 payload bits kept as they are (1 if all zero), not quieted | payload kept, not quieted | `convert_hf_to_gguf.py` (numpy `astype`) |
//!
//! BF16 is the same under every rule: round to nearest even on the top 16 bits, a NaN keeps its
//! top bits with the quiet bit set (ggml's `GGML_FP32_TO_BF16`, `half`, numpy's ml_dtypes); BF16
//! widening is a shift. F64 narrows with Rust's `as f32` (round to nearest even, like torch's
//! `.float()` and numpy's `astype`).

use crate::DType;

/// Which tool's NaN bits a conversion reproduces (numbers convert the same under every rule).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Nan {
    /// ggml's reference row converters: narrowing writes the canonical `sign | 0x7E00`.
    Ggml,
    /// IEEE hardware conversion (F16C, `half`): the quiet bit is set, the payload's top bits kept.
    Quiet,
    /// numpy's `astype`: the payload's top bits are kept without setting the quiet bit.
    Numpy,
}

/// f32 -> IEEE binary16 bits, round to nearest even, NaN bits by `nan`.
#[inline]
pub fn f32_to_f16_bits(x: f32, nan: Nan) -> u16 {
    if x.is_nan() {
        let bits = x.to_bits();
        let sign = ((bits >> 16) & 0x8000) as u16;
        return match nan {
            Nan::Ggml => sign | 0x7E00,
            Nan::Quiet => half::f16::from_f32(x).to_bits(),
            Nan::Numpy => sign | 0x7C00 | (((bits & 0x7F_FFFF) >> 13) as u16).max(1),
        };
    }
    half::f16::from_f32(x).to_bits()
}

/// binary16 bits -> f32 (exact for numbers), NaN bits by `nan`.
#[inline]
pub fn f16_bits_to_f32(h: u16, nan: Nan) -> f32 {
    if nan == Nan::Numpy && h & 0x7C00 == 0x7C00 && h & 0x3FF != 0 {
        return f32::from_bits(
            ((h as u32 & 0x8000) << 16) | 0x7F80_0000 | ((h as u32 & 0x3FF) << 13),
        );
    }
    half::f16::from_bits(h).to_f32()
}

/// f32 -> bfloat16 bits: round to nearest even on the top 16 bits; a NaN keeps its top bits and
/// is made quiet (bit 6 of the result). The same for every tool.
#[inline]
pub fn f32_to_bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    if bits & 0x7FFF_FFFF > 0x7F80_0000 {
        return ((bits >> 16) | 64) as u16;
    }
    (bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16) as u16
}

/// bfloat16 bits -> f32 (exact).
#[inline]
pub fn bf16_bits_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Whether [`decode`] and [`encode`] handle `d` (F32, F16, BF16 and F64).
pub fn is_float(d: DType) -> bool {
    matches!(d, DType::F32 | DType::F16 | DType::BF16 | DType::F64)
}

/// Values converted at a time by the batched f16 paths (so `half` can use F16C).
const BATCH: usize = 1024;

/// Widens the little-endian `from` elements of `src` into `dst` (as many as both hold). Returns
/// `Err(from)` for a dtype that is not F32/F16/BF16/F64. `src` need not be aligned.
pub fn decode(from: DType, src: &[u8], dst: &mut [f32], nan: Nan) -> Result<(), DType> {
    match from {
        DType::F32 => dst
            .iter_mut()
            .zip(src.as_chunks::<4>().0)
            .for_each(|(d, b)| *d = f32::from_le_bytes(*b)),
        DType::F16 => {
            use half::slice::HalfFloatSliceExt;
            let mut tmp = [half::f16::ZERO; BATCH];
            for (s, d) in src.chunks(2 * BATCH).zip(dst.chunks_mut(BATCH)) {
                let n = (s.len() / 2).min(d.len());
                let (t, d) = (&mut tmp[..n], &mut d[..n]);
                t.iter_mut()
                    .zip(s.as_chunks::<2>().0)
                    .for_each(|(h, b)| *h = half::f16::from_bits(u16::from_le_bytes(*b)));
                t.convert_to_f32_slice(d);
                // A fold rather than `any` so the common NaN-free case stays one vectorised pass.
                if nan == Nan::Numpy && t.iter().fold(false, |seen, h| seen | h.is_nan()) {
                    d.iter_mut()
                        .zip(t.iter())
                        .for_each(|(x, h)| *x = f16_bits_to_f32(h.to_bits(), nan));
                }
            }
        }
        DType::BF16 => dst
            .iter_mut()
            .zip(src.as_chunks::<2>().0)
            .for_each(|(d, b)| *d = bf16_bits_to_f32(u16::from_le_bytes(*b))),
        DType::F64 => dst
            .iter_mut()
            .zip(src.as_chunks::<8>().0)
            .for_each(|(d, b)| *d = f64::from_le_bytes(*b) as f32),
        other => return Err(other),
    }
    Ok(())
}

/// Narrows `src` into little-endian `to` elements in `dst` (as many as both hold). Returns
/// `Err(to)` for a dtype that is not F32/F16/BF16/F64. `dst` need not be aligned.
pub fn encode(to: DType, src: &[f32], dst: &mut [u8], nan: Nan) -> Result<(), DType> {
    match to {
        DType::F32 => dst
            .as_chunks_mut::<4>()
            .0
            .iter_mut()
            .zip(src)
            .for_each(|(d, x)| *d = x.to_le_bytes()),
        DType::F16 => {
            use half::slice::HalfFloatSliceExt;
            let mut tmp = [half::f16::ZERO; BATCH];
            for (s, d) in src.chunks(BATCH).zip(dst.chunks_mut(2 * BATCH)) {
                let d = d.as_chunks_mut::<2>().0;
                let n = s.len().min(d.len());
                let (s, t) = (&s[..n], &mut tmp[..n]);
                t.convert_from_f32_slice(s);
                d.iter_mut()
                    .zip(t.iter())
                    .for_each(|(o, h)| *o = h.to_bits().to_le_bytes());
                if nan != Nan::Quiet && s.iter().fold(false, |seen, x| seen | x.is_nan()) {
                    d.iter_mut()
                        .zip(s)
                        .filter(|(_, x)| x.is_nan())
                        .for_each(|(o, x)| *o = f32_to_f16_bits(*x, nan).to_le_bytes());
                }
            }
        }
        DType::BF16 => dst
            .as_chunks_mut::<2>()
            .0
            .iter_mut()
            .zip(src)
            .for_each(|(d, x)| *d = f32_to_bf16_bits(*x).to_le_bytes()),
        DType::F64 => dst
            .as_chunks_mut::<8>()
            .0
            .iter_mut()
            .zip(src)
            .for_each(|(d, x)| *d = (*x as f64).to_le_bytes()),
        other => return Err(other),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_rounding_matches_ieee_rne() {
        for nan in [Nan::Ggml, Nan::Quiet, Nan::Numpy] {
            // halfway between 1.0 and the next f16 (1 + 2^-10) rounds to even (1.0)
            assert_eq!(f32_to_f16_bits(1.0 + 2f32.powi(-11), nan), 0x3C00);
            assert_eq!(f32_to_f16_bits(1.0 + 3.0 * 2f32.powi(-12), nan), 0x3C01);
            assert_eq!(f32_to_f16_bits(2f32.powi(-24), nan), 0x0001);
            assert_eq!(f32_to_f16_bits(2f32.powi(-25), nan), 0x0000);
            assert_eq!(f32_to_f16_bits(-65520.0, nan), 0xFC00);
            assert_eq!(f32_to_f16_bits(70000.0, nan), 0x7C00);
        }
    }

    #[test]
    fn f16_nan_bits_by_rule() {
        let snan = f32::from_bits(0xFF80_2000); // signalling, payload only in bit 13
        let qnan = f32::from_bits(0xFFC0_1234);
        assert_eq!(f32_to_f16_bits(qnan, Nan::Ggml), 0xFE00);
        assert_eq!(f32_to_f16_bits(f32::NAN, Nan::Ggml), 0x7E00);
        assert_eq!(f32_to_f16_bits(snan, Nan::Quiet), 0xFE01);
        assert_eq!(f32_to_f16_bits(snan, Nan::Numpy), 0xFC01);
        // numpy keeps a NaN even when the kept payload bits are all zero
        assert_eq!(
            f32_to_f16_bits(f32::from_bits(0x7F80_0001), Nan::Numpy),
            0x7C01
        );
        // widening: numpy keeps a signalling NaN signalling, F16C/half make it quiet
        assert_eq!(f16_bits_to_f32(0x7C01, Nan::Numpy).to_bits(), 0x7F80_2000);
        assert_eq!(f16_bits_to_f32(0x7C01, Nan::Quiet).to_bits(), 0x7FC0_2000);
        assert_eq!(f16_bits_to_f32(0x7C01, Nan::Ggml).to_bits(), 0x7FC0_2000);
    }

    #[test]
    fn bf16_rounding_and_nan() {
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F80_8000)), 0x3F80); // tie -> even
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x3F81_8000)), 0x3F82); // tie -> even (up)
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7F80_0001)), 0x7FC0); // sNaN made quiet
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x7F7F_FFFF)), 0x7F80); // overflow to inf
        assert_eq!(f32_to_bf16_bits(f32::from_bits(0x0000_8000)), 0x0000); // subnormal, RNE
                                                                           // the same as `half`'s converter on every class of input
        for bits in (0..=u32::MAX).step_by(65_521) {
            let x = f32::from_bits(bits);
            assert_eq!(
                f32_to_bf16_bits(x),
                half::bf16::from_f32(x).to_bits(),
                "{bits:#x}"
            );
        }
    }

    #[test]
    fn batched_rows_match_scalar_conversions() {
        // every f16 bit pattern, from an unaligned buffer, over batch boundaries
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut bytes = vec![0u8];
        bytes.extend(all.iter().flat_map(|h| h.to_le_bytes()));
        for nan in [Nan::Ggml, Nan::Quiet, Nan::Numpy] {
            let mut wide = vec![0f32; all.len()];
            decode(DType::F16, &bytes[1..], &mut wide, nan).unwrap();
            for (h, w) in all.iter().zip(&wide) {
                assert_eq!(w.to_bits(), f16_bits_to_f32(*h, nan).to_bits(), "{h:#06x}");
            }
            // and back, into an unaligned buffer
            let xs: Vec<f32> = (0..5000u32)
                .map(|i| f32::from_bits(i.wrapping_mul(2_654_435_761)))
                .collect();
            let mut out = vec![0u8; 2 * xs.len() + 1];
            encode(DType::F16, &xs, &mut out[1..], nan).unwrap();
            for (x, b) in xs.iter().zip(out[1..].chunks_exact(2)) {
                let got = u16::from_le_bytes([b[0], b[1]]);
                assert_eq!(got, f32_to_f16_bits(*x, nan), "{:#x}", x.to_bits());
            }
        }
    }

    #[test]
    fn other_dtypes_are_refused() {
        let mut out = [0f32; 1];
        assert_eq!(
            decode(DType::I32, &[0; 4], &mut out, Nan::Quiet),
            Err(DType::I32)
        );
        assert_eq!(
            encode(DType::U8, &out, &mut [0; 1], Nan::Quiet),
            Err(DType::U8)
        );
    }
}
