//! Dequantization of the ternary types TQ1_0 and TQ2_0 (values -1, 0, +1 times an fp16 scale).

use crate::float::read_f16;

/// `lroundf(f) + 1` as the C code computes a trit index (ties away from zero; x86-64 gives
/// LONG_MIN, truncated to int, for values out of range).
fn trit_index(f: f32) -> i32 {
    let l = if f.is_finite() && f.abs() < 9.2e18 {
        f.round() as i64
    } else {
        i64::MIN
    };
    (l as i32).wrapping_add(1)
}

/// amax of a 256-block with ggml's MAX macro, and the reciprocal scale.
fn ternary_scale(x: &[f32]) -> (f32, f32) {
    let mut amax = 0.0f32;
    for &v in x {
        amax = if amax > v.abs() { amax } else { v.abs() };
    }
    (amax, if amax != 0.0 { 1.0 / amax } else { 0.0 })
}

/// Packs trits base 3 (most significant first) and maps them to a byte fraction, rounding up.
fn pack_trits(values: impl Iterator<Item = i32>, extra_shift: bool) -> u8 {
    let mut q = 0u8;
    for xi in values {
        q = q.wrapping_mul(3).wrapping_add(xi as u8);
    }
    if extra_shift {
        q = q.wrapping_mul(3);
    }
    (q as u16 * 256).div_ceil(243) as u8
}

/// quantize_row_tq1_0_ref
pub fn quantize_row_tq1_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(256).zip(dst.chunks_exact_mut(54)) {
        let (d, id) = ternary_scale(x);
        crate::float::write_f16(&mut y[52..54], d);
        for m in 0..32 {
            y[m] = pack_trits((0..5).map(|n| trit_index(x[m + n * 32] * id)), false);
        }
        let x16 = &x[160..];
        for m in 0..16 {
            y[32 + m] = pack_trits((0..5).map(|n| trit_index(x16[m + n * 16] * id)), false);
        }
        let x4 = &x[240..];
        for j in 0..4 {
            y[48 + j] = pack_trits((0..4).map(|m| trit_index(x4[j + m * 4] * id)), true);
        }
    }
}

/// quantize_row_tq2_0_ref
pub fn quantize_row_tq2_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(256).zip(dst.chunks_exact_mut(66)) {
        let (d, id) = ternary_scale(x);
        crate::float::write_f16(&mut y[64..66], d);
        for (c, xc) in x.chunks_exact(128).enumerate() {
            for m in 0..32 {
                let mut q = 0u8;
                for n in 0..4 {
                    q = q.wrapping_add(((trit_index(xc[m + n * 32] * id) & 3) << (2 * n)) as u8);
                }
                y[32 * c + m] = q;
            }
        }
    }
}

/// TQ1_0: `qs[48]` (5 trits per byte, base-3 fixed point) | `qh[4]` (4 trits per byte) | d:f16.
pub fn dequantize_row_tq1_0(src: &[u8], dst: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    // a trit is recovered by scaling the byte by 3^n (mod 256) and taking the top "digit"
    let trit = |byte: u8, n: usize| ((byte.wrapping_mul(POW3[n]) as u16 * 3) >> 8) as i32 - 1;
    for (b, y) in src.chunks_exact(54).zip(dst.chunks_exact_mut(256)) {
        let qs = &b[0..48];
        let qh = &b[48..52];
        let d = read_f16(&b[52..54]);
        let mut out = 0;
        for (start, width) in [(0usize, 32usize), (32, 16)] {
            for n in 0..5 {
                for m in 0..width {
                    y[out] = trit(qs[start + m], n) as f32 * d;
                    out += 1;
                }
            }
        }
        for n in 0..4 {
            for &h in qh {
                y[out] = trit(h, n) as f32 * d;
                out += 1;
            }
        }
    }
}

/// TQ2_0: `qs[64]` (2 bits per value, four 32-value planes per 32 bytes) | d:f16; value = q - 1.
pub fn dequantize_row_tq2_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(66).zip(dst.chunks_exact_mut(256)) {
        let d = read_f16(&b[64..66]);
        let mut out = 0;
        for j in (0..64).step_by(32) {
            for l in 0..4 {
                for m in 0..32 {
                    let q = ((b[j + m] >> (2 * l)) & 3) as i32 - 1;
                    y[out] = q as f32 * d;
                    out += 1;
                }
            }
        }
    }
}
