//! The 32-element "legacy" block types Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0 (ggml-quants.c `_ref` rows).
//!
//! The C code converts floats to `int8_t`/`uint8_t` with a plain cast. On x86-64 GCC emits
//! `cvttss2si` (truncate to int32, 0x80000000 for NaN/out-of-range) and keeps the low byte; the
//! reference files were made there, so `c_cast_u8` reproduces that instead of Rust's saturation.

use crate::float::{read_f16, write_f16};

pub const QK: usize = 32;

/// `(uint8_t)f` / `(int8_t)f` as compiled for x86-64: truncate to int32 (0x80000000 when NaN or
/// out of range), then keep the low byte.
pub(crate) fn c_cast_u8(f: f32) -> u8 {
    let in_range = (-2147483648.0..2147483648.0).contains(&f); // false for NaN too
    let i = if in_range { f as i32 } else { i32::MIN };
    i as u8
}

/// `MIN(limit, (int8_t)f)` stored into a `uint8_t`, as the Q4_x/Q5_0 quantizers write it.
fn clamped_cast(f: f32, limit: i32) -> u8 {
    let v = c_cast_u8(f) as i8 as i32;
    v.min(limit) as u8
}

/// The first element with the strictly largest magnitude, with its sign.
fn signed_abs_max(block: &[f32]) -> f32 {
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in block {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(block: &[f32]) -> (f32, f32) {
    let mut min = f32::MAX;
    let mut max = -f32::MAX;
    for &v in block {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn reciprocal_or_zero(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

pub fn quantize_row_q4_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(18)) {
        let d = signed_abs_max(x) / -8.0;
        let id = reciprocal_or_zero(d);
        write_f16(&mut y[0..2], d);
        for j in 0..QK / 2 {
            let lo = clamped_cast(x[j] * id + 8.5, 15);
            let hi = clamped_cast(x[j + QK / 2] * id + 8.5, 15);
            y[2 + j] = lo | (hi << 4);
        }
    }
}

pub fn dequantize_row_q4_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(&b[0..2]);
        for j in 0..QK / 2 {
            let x0 = (b[2 + j] & 0x0F) as i32 - 8;
            let x1 = (b[2 + j] >> 4) as i32 - 8;
            y[j] = x0 as f32 * d;
            y[j + QK / 2] = x1 as f32 * d;
        }
    }
}

pub fn quantize_row_q4_1(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(20)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = reciprocal_or_zero(d);
        write_f16(&mut y[0..2], d);
        write_f16(&mut y[2..4], min);
        for j in 0..QK / 2 {
            let lo = clamped_cast((x[j] - min) * id + 0.5, 15);
            let hi = clamped_cast((x[j + QK / 2] - min) * id + 0.5, 15);
            y[4 + j] = lo | (hi << 4);
        }
    }
}

pub fn dequantize_row_q4_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(20).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(&b[0..2]);
        let m = read_f16(&b[2..4]);
        for j in 0..QK / 2 {
            y[j] = (b[4 + j] & 0x0F) as f32 * d + m;
            y[j + QK / 2] = (b[4 + j] >> 4) as f32 * d + m;
        }
    }
}

/// Packs 32 five-bit quants: low nibbles like Q4_0, bit 4 of element j into bit j of `qh`.
fn pack_q5(lo: u8, hi: u8, j: usize, qs: &mut u8, qh: &mut u32) {
    *qs = (lo & 0x0F) | ((hi & 0x0F) << 4);
    *qh |= (((lo & 0x10) >> 4) as u32) << j;
    *qh |= (((hi & 0x10) >> 4) as u32) << (j + QK / 2);
}

pub fn quantize_row_q5_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(22)) {
        let d = signed_abs_max(x) / -16.0;
        let id = reciprocal_or_zero(d);
        write_f16(&mut y[0..2], d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            let lo = clamped_cast(x[j] * id + 16.5, 31);
            let hi = clamped_cast(x[j + QK / 2] * id + 16.5, 31);
            pack_q5(lo, hi, j, &mut y[6 + j], &mut qh);
        }
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

fn q5_element(b: &[u8], qh: u32, j: usize) -> (i32, i32) {
    let xh0 = ((qh >> j) << 4) & 0x10;
    let xh1 = (qh >> (j + 12)) & 0x10;
    let x0 = ((b[j] & 0x0F) as u32 | xh0) as i32;
    let x1 = ((b[j] >> 4) as u32 | xh1) as i32;
    (x0, x1)
}

pub fn dequantize_row_q5_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(22).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(&b[0..2]);
        let qh = u32::from_le_bytes([b[2], b[3], b[4], b[5]]);
        for j in 0..QK / 2 {
            let (x0, x1) = q5_element(&b[6..], qh, j);
            y[j] = (x0 - 16) as f32 * d;
            y[j + QK / 2] = (x1 - 16) as f32 * d;
        }
    }
}

pub fn quantize_row_q5_1(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(24)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = reciprocal_or_zero(d);
        write_f16(&mut y[0..2], d);
        write_f16(&mut y[2..4], min);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            // no clamp here in ggml: (uint8_t)(x + 0.5f)
            let lo = c_cast_u8((x[j] - min) * id + 0.5);
            let hi = c_cast_u8((x[j + QK / 2] - min) * id + 0.5);
            pack_q5(lo, hi, j, &mut y[8 + j], &mut qh);
        }
        y[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

pub fn dequantize_row_q5_1(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(24).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(&b[0..2]);
        let m = read_f16(&b[2..4]);
        let qh = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        for j in 0..QK / 2 {
            let (x0, x1) = q5_element(&b[8..], qh, j);
            y[j] = x0 as f32 * d + m;
            y[j + QK / 2] = x1 as f32 * d + m;
        }
    }
}

pub fn quantize_row_q8_0(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK).zip(dst.chunks_exact_mut(34)) {
        let mut amax = 0.0f32;
        for &v in x {
            // MAX(a, b) = a > b ? a : b, NaN handling included
            amax = if amax > v.abs() { amax } else { v.abs() };
        }
        let d = amax / 127.0;
        let id = reciprocal_or_zero(d);
        write_f16(&mut y[0..2], d);
        for j in 0..QK {
            // roundf: ties away from zero
            y[2 + j] = c_cast_u8((x[j] * id).round());
        }
    }
}

pub fn dequantize_row_q8_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(34).zip(dst.chunks_exact_mut(QK)) {
        let d = read_f16(&b[0..2]);
        for j in 0..QK {
            y[j] = (b[2 + j] as i8) as f32 * d;
        }
    }
}

// ---- importance-matrix variants (quantize_row_*_impl): whole rows, sigma2 over the row ----

use crate::k_quants::{make_qkx3_quants, make_qx_quants};

/// Per-block weights qw * sqrt(sigma2 + x^2) with sigma2 = mean of x^2 over the whole row.
fn row_weighting(src: &[f32]) -> f32 {
    let mut sum_x2 = 0.0f32;
    for &v in src {
        sum_x2 += v * v;
    }
    sum_x2 / src.len() as f32
}

fn block_weights(x: &[f32], qw: &[f32], sigma2: f32) -> [f32; QK] {
    let mut w = [0f32; QK];
    for j in 0..QK {
        w[j] = qw[j] * (sigma2 + x[j] * x[j]).sqrt();
    }
    w
}

pub fn quantize_row_q4_0_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    let sigma2 = row_weighting(src);
    for ((x, y), qw) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(18))
        .zip(importance.chunks_exact(QK))
    {
        let w = block_weights(x, qw, sigma2);
        let mut levels = [0i8; QK];
        let d = make_qx_quants(8, x, &mut levels, Some(&w));
        write_f16(&mut y[0..2], d);
        for j in 0..QK / 2 {
            y[2 + j] = (levels[j] as u8) | ((levels[j + 16] as u8) << 4);
        }
    }
}

pub fn quantize_row_q5_0_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    let sigma2 = row_weighting(src);
    for ((x, y), qw) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(22))
        .zip(importance.chunks_exact(QK))
    {
        let w = block_weights(x, qw, sigma2);
        let mut levels = [0i8; QK];
        let d = make_qx_quants(16, x, &mut levels, Some(&w));
        write_f16(&mut y[0..2], d);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            pack_q5(
                levels[j] as u8,
                levels[j + 16] as u8,
                j,
                &mut y[6 + j],
                &mut qh,
            );
        }
        y[2..6].copy_from_slice(&qh.to_le_bytes());
    }
}

pub fn quantize_row_q4_1_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    let sigma2 = row_weighting(src);
    for ((x, y), qw) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(20))
        .zip(importance.chunks_exact(QK))
    {
        let w = block_weights(x, qw, sigma2);
        let mut levels = [0u8; QK];
        let (d, neg_min) = make_qkx3_quants(15, x, &w, &mut levels, -0.9, 0.05, 36);
        write_f16(&mut y[0..2], d);
        write_f16(&mut y[2..4], -neg_min);
        for j in 0..QK / 2 {
            y[4 + j] = levels[j] | (levels[j + 16] << 4);
        }
    }
}

pub fn quantize_row_q5_1_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    let sigma2 = row_weighting(src);
    for ((x, y), qw) in src
        .chunks_exact(QK)
        .zip(dst.chunks_exact_mut(24))
        .zip(importance.chunks_exact(QK))
    {
        let w = block_weights(x, qw, sigma2);
        let mut levels = [0u8; QK];
        let (d, neg_min) = make_qkx3_quants(31, x, &w, &mut levels, -0.9, 0.05, 36);
        write_f16(&mut y[0..2], d);
        write_f16(&mut y[2..4], -neg_min);
        let mut qh = 0u32;
        for j in 0..QK / 2 {
            pack_q5(levels[j], levels[j + 16], j, &mut y[8 + j], &mut qh);
        }
        y[4..8].copy_from_slice(&qh.to_le_bytes());
    }
}

/// Q8_0 has no imatrix variant in ggml: the weights are ignored.
pub fn quantize_row_q8_0_weighted(src: &[f32], dst: &mut [u8], _importance: &[f32]) {
    quantize_row_q8_0(src, dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_cast_semantics() {
        assert_eq!(c_cast_u8(f32::INFINITY), 0);
        assert_eq!(c_cast_u8(f32::NAN), 0);
        assert_eq!(c_cast_u8(-1.5), 0xFF);
        assert_eq!(c_cast_u8(300.7), 44);
        assert_eq!(clamped_cast(300.0, 15), 15); // (int8)300 = 44, then MIN(15, 44)
        assert_eq!(clamped_cast(200.0, 15), 0xC8); // (int8)200 = -56 passes MIN(15, -56)
    }
}
