//! The one byte <-> f32 codec: little-endian F32, F16, BF16 and F64 elements to f32 and back,
//! and FP8 (F8_E4M3, F8_E5M2) elements to f32.
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
//!
//! FP8 is only ever widened, and only torch reads it (`convert_hf_to_gguf.py` dequantizes FP8
//! checkpoints with torch too), so its bits are torch's under every rule: every number is exact in
//! f32; an E4M3 NaN (`S.1111.111`) becomes `sign | 0x7FF0_0000`; an E5M2 value widens as the f16
//! `bits << 8` does with the quiet bit set (c10's `fp8e5m2_to_fp32_value`). [`cast_f8`] gives
//! torch's direct casts to F16 and BF16.

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

/// Whether `d` is an FP8 type [`decode`] widens (F8_E4M3, F8_E5M2).
pub fn is_f8(d: DType) -> bool {
    matches!(d, DType::F8E4M3 | DType::F8E5M2)
}

/// F8_E4M3 (torch's `float8_e4m3fn`: bias 7, no infinities, `S.1111.111` is NaN) bits -> f32 bits.
const fn e4m3_bits(b: u8) -> u32 {
    let sign = ((b & 0x80) as u32) << 24;
    let (e, m) = (((b >> 3) & 0xF) as u32, (b & 7) as u32);
    if e == 0xF && m == 7 {
        return sign | 0x7FF0_0000;
    }
    if e == 0 {
        if m == 0 {
            return sign;
        }
        // m * 2^-9: normalise on the leading bit of the 3-bit mantissa
        let p = 31 - m.leading_zeros();
        return sign | ((127 - 9 + p) << 23) | ((m - (1 << p)) << (23 - p));
    }
    sign | ((e + 127 - 7) << 23) | (m << 20)
}

/// F8_E5M2 (torch's `float8_e5m2`: the top byte of an f16) bits -> f32 bits; a NaN is made quiet.
const fn e5m2_bits(b: u8) -> u32 {
    let sign = ((b & 0x80) as u32) << 24;
    let (e, m) = (((b >> 2) & 0x1F) as u32, (b & 3) as u32);
    if e == 0x1F {
        return if m == 0 {
            sign | 0x7F80_0000
        } else {
            sign | 0x7FC0_0000 | (m << 21)
        };
    }
    if e == 0 {
        if m == 0 {
            return sign;
        }
        let p = 31 - m.leading_zeros();
        return sign | ((127 - 16 + p) << 23) | ((m - (1 << p)) << (23 - p));
    }
    sign | ((e + 127 - 15) << 23) | (m << 21)
}

const fn f8_table(e4m3: bool) -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = if e4m3 {
            e4m3_bits(i as u8)
        } else {
            e5m2_bits(i as u8)
        };
        i += 1;
    }
    t
}

static E4M3_TO_F32: [u32; 256] = f8_table(true);
static E5M2_TO_F32: [u32; 256] = f8_table(false);

/// F8_E4M3 bits -> f32, as torch's `.float()`.
#[inline]
pub fn e4m3_to_f32(b: u8) -> f32 {
    f32::from_bits(E4M3_TO_F32[b as usize])
}

/// F8_E5M2 bits -> f32, as torch's `.float()`.
#[inline]
pub fn e5m2_to_f32(b: u8) -> f32 {
    f32::from_bits(E5M2_TO_F32[b as usize])
}

/// torch's `.to(to)` of FP8 elements (`from` is F8_E4M3 or F8_E5M2; `to` F32, F16 or BF16): c10
/// goes through `float`; to F16 a NaN keeps its top payload bits, quiet (`c10::Half`), to BF16 every
/// NaN becomes `0x7FC0` (`c10::BFloat16`'s scalar rounding, which torch uses for FP8 sources).
/// Every FP8 number is exact in all three. Returns `Err` naming the dtype it cannot handle.
pub fn cast_f8(from: DType, to: DType, src: &[u8], dst: &mut [u8]) -> Result<(), DType> {
    let table = match from {
        DType::F8E4M3 => &E4M3_TO_F32,
        DType::F8E5M2 => &E5M2_TO_F32,
        other => return Err(other),
    };
    let wide = |b: &u8| f32::from_bits(table[*b as usize]);
    match to {
        DType::F32 => dst
            .as_chunks_mut::<4>()
            .0
            .iter_mut()
            .zip(src)
            .for_each(|(d, b)| *d = wide(b).to_le_bytes()),
        DType::F16 => dst
            .as_chunks_mut::<2>()
            .0
            .iter_mut()
            .zip(src)
            .for_each(|(d, b)| *d = f32_to_f16_bits(wide(b), Nan::Quiet).to_le_bytes()),
        DType::BF16 => dst
            .as_chunks_mut::<2>()
            .0
            .iter_mut()
            .zip(src)
            .for_each(|(d, b)| {
                let x = wide(b);
                let h = if x.is_nan() {
                    0x7FC0
                } else {
                    (x.to_bits() >> 16) as u16
                };
                *d = h.to_le_bytes()
            }),
        other => return Err(other),
    }
    Ok(())
}

/// Values converted at a time by the batched f16 paths (so `half` can use F16C).
/// BF16 or F32 elements (little-endian) straight to F16 bytes, giving exactly what widening to
/// f32 and [`encode`]ing to F16 under `nan` gives, in one pass and without an f32 buffer (the
/// inner loop of an HF -> F16 conversion). `false` (nothing written) for other source types or
/// when the lengths disagree.
pub fn narrow_to_f16_le(from: DType, src: &[u8], dst: &mut [u8], nan: Nan) -> bool {
    let n = dst.len() / 2;
    let width = match from {
        DType::BF16 => 2,
        DType::F32 => 4,
        _ => return false,
    };
    if !dst.len().is_multiple_of(2) || src.len() != n * width {
        return false;
    }
    let dst = dst.as_chunks_mut::<2>().0;
    let one = |i: usize| -> [u8; 2] {
        let x = if width == 2 {
            bf16_bits_to_f32(u16::from_le_bytes([src[2 * i], src[2 * i + 1]]))
        } else {
            f32::from_le_bytes(src[4 * i..4 * i + 4].try_into().unwrap())
        };
        f32_to_f16_bits(x, nan).to_le_bytes()
    };
    #[allow(unused_mut)]
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if f16c::has_avx2() {
        // SAFETY: the CPU has AVX2 and F16C (checked just above).
        done = unsafe { f16c::narrow(width, src, dst, &one) };
    }
    for (i, d) in dst.iter_mut().enumerate().skip(done) {
        *d = one(i);
    }
    true
}

const BATCH: usize = 1024;

/// Widens the little-endian `from` elements of `src` into `dst` (as many as both hold). Returns
/// `Err(from)` for a dtype that is not F32/F16/BF16/F64/F8_E4M3/F8_E5M2. `src` need not be
/// aligned. FP8 widens as torch does whatever `nan` says (see the module documentation).
pub fn decode(from: DType, src: &[u8], dst: &mut [f32], nan: Nan) -> Result<(), DType> {
    match from {
        DType::F8E4M3 => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, b)| *d = e4m3_to_f32(*b)),
        DType::F8E5M2 => dst
            .iter_mut()
            .zip(src)
            .for_each(|(d, b)| *d = e5m2_to_f32(*b)),
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

/// One value through f16 and back, NaN bits by `nan` both ways.
#[inline]
fn round_f16_scalar(x: f32, nan: Nan) -> f32 {
    f16_bits_to_f32(f32_to_f16_bits(x, nan), nan)
}

#[cfg(target_arch = "x86_64")]
mod f16c {
    use std::arch::x86_64::*;

    use super::{round_f16_scalar, Nan};

    /// [`super::round_through`] to F16, eight values at a time with the F16C conversions (IEEE
    /// round to nearest even both ways, as `half` and numpy convert numbers); a group holding a
    /// NaN goes through the scalar rule for its bits.
    #[target_feature(enable = "avx,f16c")]
    pub(super) fn round_f16(vals: &mut [f32], nan: Nan) {
        let mut groups = vals.chunks_exact_mut(8);
        for g in &mut groups {
            // SAFETY: `g` holds exactly 8 f32s; unaligned loads and stores.
            unsafe {
                let x = _mm256_loadu_ps(g.as_ptr());
                if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x)) != 0 {
                    g.iter_mut().for_each(|x| *x = round_f16_scalar(*x, nan));
                    continue;
                }
                let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
                _mm256_storeu_ps(g.as_mut_ptr(), _mm256_cvtph_ps(h));
            }
        }
        groups
            .into_remainder()
            .iter_mut()
            .for_each(|x| *x = round_f16_scalar(*x, nan));
    }

    pub(super) fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c")
    }

    /// Eight elements at a time with the hardware's round-to-nearest-even narrowing (the same
    /// numbers as `half`); a group holding a NaN goes through `one`, so NaN bits follow the
    /// caller's rule. Returns how many elements were written (a multiple of 8).
    #[target_feature(enable = "avx2,f16c")]
    pub(super) fn narrow(
        width: usize,
        src: &[u8],
        dst: &mut [[u8; 2]],
        one: &dyn Fn(usize) -> [u8; 2],
    ) -> usize {
        let n = dst.len() / 8 * 8;
        for i in (0..n).step_by(8) {
            let x = if width == 2 {
                // SAFETY: src holds 2 * dst.len() bytes, so 16 from 2 * i are in bounds.
                let h = unsafe { _mm_loadu_si128(src.as_ptr().add(2 * i) as *const __m128i) };
                _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
            } else {
                // SAFETY: src holds 4 * dst.len() bytes, so 32 from 4 * i are in bounds.
                unsafe { _mm256_loadu_ps(src.as_ptr().add(4 * i) as *const f32) }
            };
            if _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_UNORD_Q>(x, x)) != 0 {
                for (j, d) in dst[i..i + 8].iter_mut().enumerate() {
                    *d = one(i + j);
                }
                continue;
            }
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(x);
            // SAFETY: dst[i..i + 8] is 16 bytes in bounds.
            unsafe { _mm_storeu_si128(dst.as_mut_ptr().add(i) as *mut __m128i, h) };
        }
        n
    }
}

/// Rounds `vals` in place to the precision of `to` (F32, F16 or BF16): each value becomes
/// exactly what [`encode`] then [`decode`] with the same `nan` rule would give, without the bytes
/// in between. Returns `Err(to)` for another dtype.
pub fn round_through(to: DType, vals: &mut [f32], nan: Nan) -> Result<(), DType> {
    match to {
        DType::F32 => {}
        DType::F16 => {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("f16c") {
                // SAFETY: the CPU has F16C (and so AVX).
                unsafe { f16c::round_f16(vals, nan) };
                return Ok(());
            }
            vals.iter_mut().for_each(|x| *x = round_f16_scalar(*x, nan));
        }
        DType::BF16 => vals
            .iter_mut()
            .for_each(|x| *x = bf16_bits_to_f32(f32_to_bf16_bits(*x))),
        other => return Err(other),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    /// The old two-step path: decode to f32, encode to F16.
    fn two_step(from: DType, src: &[u8], nan: Nan) -> Vec<u8> {
        let width = if from == DType::BF16 { 2 } else { 4 };
        let mut f = vec![0f32; src.len() / width];
        decode(from, src, &mut f, nan).unwrap();
        let mut out = vec![0u8; f.len() * 2];
        encode(DType::F16, &f, &mut out, nan).unwrap();
        out
    }

    #[test]
    fn narrow_to_f16_matches_decode_then_encode_for_every_bf16() {
        // Every bf16 bit pattern, NaNs included, at an odd length (a scalar tail).
        let src: Vec<u8> = (0..=u16::MAX)
            .chain([0x3f80, 0x7fc1, 0x0001])
            .flat_map(|b| b.to_le_bytes())
            .collect();
        for nan in [Nan::Ggml, Nan::Quiet, Nan::Numpy] {
            let mut out = vec![0u8; src.len()];
            assert!(narrow_to_f16_le(DType::BF16, &src, &mut out, nan));
            assert_eq!(out, two_step(DType::BF16, &src, nan), "{nan:?}");
        }
    }

    #[test]
    fn narrow_to_f16_matches_decode_then_encode_for_f32() {
        // Rounding ties, subnormal results, overflow, infinities, NaN payloads, and a sweep.
        let mut vals: Vec<u32> = vec![
            0x3380_0000,
            0x3380_0001,
            0x337f_ffff,
            0x477f_f000,
            0x477f_efff,
            0x477f_f001,
            0x7f80_0000,
            0xff80_0000,
            0x7f80_0001,
            0x7fc0_0000,
            0xffc0_1234,
            0x7f80_2000,
            0x0000_0001,
            0x8000_0000,
            0x3f80_1000,
            0x3f80_3000,
            0x3880_0000,
            0x387f_ffff,
        ];
        let mut x: u32 = 0x1234_5678;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            vals.push(x);
        }
        let src: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
        for nan in [Nan::Ggml, Nan::Quiet, Nan::Numpy] {
            let mut out = vec![0u8; src.len() / 2];
            assert!(narrow_to_f16_le(DType::F32, &src, &mut out, nan));
            assert_eq!(out, two_step(DType::F32, &src, nan), "{nan:?}");
        }
        let mut out = vec![0u8; 4];
        assert!(!narrow_to_f16_le(DType::F16, &[0; 4], &mut out, Nan::Numpy));
        assert!(!narrow_to_f16_le(DType::F32, &[0; 4], &mut out, Nan::Numpy));
    }

    use super::*;

    #[test]
    fn round_through_is_encode_then_decode() {
        // numbers around every f16 rounding edge (subnormals, overflow, halfway cases), NaNs
        // with and without payload bits, infinities
        let mut vals: Vec<f32> = Vec::new();
        let mut s = 0x1234_5678u32;
        for _ in 0..5000 {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            vals.push(f32::from_bits(s));
            // exponents from 2^-27 to 2^22: f16 subnormals, normals, overflow
            vals.push(f32::from_bits(
                (s & 0x807F_FFFF) | ((100 + (s >> 8) % 50) << 23),
            ));
        }
        for e in -30..17 {
            let base = 2f32.powi(e);
            vals.extend([base, -base, base * (1.0 + 2f32.powi(-11)), base * 1.000_123]);
        }
        vals.extend([
            65504.0,
            65519.0,
            65520.0,
            -65520.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::from_bits(0x7F80_0001),
            f32::from_bits(0xFFC0_2000),
        ]);
        for to in [DType::F32, DType::F16, DType::BF16] {
            for nan in [Nan::Ggml, Nan::Quiet, Nan::Numpy] {
                let mut bytes = vec![0u8; vals.len() * to.bits().unwrap() / 8];
                encode(to, &vals, &mut bytes, nan).unwrap();
                let mut want = vec![0f32; vals.len()];
                decode(to, &bytes, &mut want, nan).unwrap();
                let mut got = vals.clone();
                round_through(to, &mut got, nan).unwrap();
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{to} {nan:?}");
            }
        }
        assert_eq!(
            round_through(DType::F64, &mut [1.0], Nan::Numpy),
            Err(DType::F64)
        );
    }

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
    fn fp8_values() {
        // E4M3: max 448, smallest normal 2^-6, smallest subnormal 2^-9, NaN without infinity
        assert_eq!(e4m3_to_f32(0x7E), 448.0);
        assert_eq!(e4m3_to_f32(0xFE), -448.0);
        assert_eq!(e4m3_to_f32(0x08), 2f32.powi(-6));
        assert_eq!(e4m3_to_f32(0x01), 2f32.powi(-9));
        assert_eq!(e4m3_to_f32(0x07), 7.0 * 2f32.powi(-9));
        assert_eq!(e4m3_to_f32(0x38), 1.0);
        assert_eq!(e4m3_to_f32(0x80).to_bits(), 0x8000_0000);
        assert_eq!(e4m3_to_f32(0x7F).to_bits(), 0x7FF0_0000);
        assert_eq!(e4m3_to_f32(0xFF).to_bits(), 0xFFF0_0000);
        assert_eq!(e4m3_to_f32(0x78), 256.0); // 0x78..0x7E are numbers, not infinities
                                              // E5M2 is the top byte of an f16, NaNs made quiet
        for b in 0..=255u8 {
            let h = f16_bits_to_f32((b as u16) << 8, Nan::Quiet);
            assert_eq!(e5m2_to_f32(b).to_bits(), h.to_bits(), "{b:#04x}");
        }
        assert_eq!(e5m2_to_f32(0x7B), 57344.0);
        assert_eq!(e5m2_to_f32(0x01), 2f32.powi(-16));
        // decode and cast_f8 agree with the scalar functions, from unaligned buffers
        let all: Vec<u8> = (0..=255).collect();
        let mut wide = vec![0f32; 256];
        decode(DType::F8E4M3, &all, &mut wide, Nan::Numpy).unwrap();
        let mut bytes = vec![0u8; 4 * 256 + 1];
        cast_f8(DType::F8E4M3, DType::F32, &all, &mut bytes[1..]).unwrap();
        for (i, (w, b)) in wide.iter().zip(bytes[1..].chunks_exact(4)).enumerate() {
            assert_eq!(w.to_bits(), e4m3_to_f32(i as u8).to_bits());
            assert_eq!(b, w.to_le_bytes());
        }
        let mut bf = [0u8; 2];
        cast_f8(DType::F8E5M2, DType::BF16, &[0xFD], &mut bf).unwrap();
        assert_eq!(u16::from_le_bytes(bf), 0x7FC0);
        assert_eq!(
            cast_f8(DType::F8E5M2, DType::F64, &[0], &mut [0; 8]),
            Err(DType::F64)
        );
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
