//! The non-linear 4-bit types IQ4_NL and IQ4_XS (ggml `quantize_iq4_nl` / `quantize_iq4_xs` with
//! their `ntry = 7` scale search, and `dequantize_row_iq4_*`).

// Index loops mirror ggml's C loops one to one, which keeps the port easy to audit.
#![allow(clippy::needless_range_loop)]

use crate::float::{read_f16, write_f16};
use crate::k_quants::{nearest_int, GROUP_MAX_EPS, QK_K};

/// ggml's `kvalues_iq4nl`: the 16 non-uniform levels shared by IQ4_NL and IQ4_XS.
pub(crate) const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

/// best_index_int8: the level of `values` (sorted ascending) nearest to `x`, ties to the upper.
#[inline]
fn best_index(values: &[i8; 16], x: f32) -> u8 {
    if x <= values[0] as f32 {
        return 0;
    }
    if x >= values[15] as f32 {
        return 15;
    }
    let (mut ml, mut mu) = (0usize, 15usize);
    while mu - ml > 1 {
        let mav = (ml + mu) / 2;
        if x < values[mav] as f32 {
            mu = mav;
        } else {
            ml = mav;
        }
    }
    if x - (values[mu - 1] as f32) < values[mu] as f32 - x {
        (mu - 1) as u8
    } else {
        mu as u8
    }
}

/// The per-32 scale search of quantize_row_iq4_nl_impl (ntry = 7): fills `l` and returns the scale.
fn iq4_block_scale(xb: &[f32], weight: &[f32], l: &mut [u8]) -> f32 {
    let values = &KVALUES_IQ4NL;
    let mut amax = 0.0f32;
    let mut max = 0.0f32;
    for &v in xb {
        let ax = v.abs();
        if ax > amax {
            amax = ax;
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        return 0.0;
    }
    let ntry = 7i32;
    let v0 = values[0] as f32;
    let mut d = -max / v0;
    let mut id = 1.0 / d;
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for j in 0..xb.len() {
        let al = id * xb[j];
        let li = best_index(values, al);
        l[j] = li;
        let q = values[li as usize] as f32;
        let w = weight[j];
        sumqx += w * q * xb[j];
        sumq2 += w * q * q;
    }
    d = if sumq2 > 0.0 { sumqx / sumq2 } else { 0.0 };
    let mut best = d * sumqx;
    for itry in -ntry..=ntry {
        id = (itry + values[0] as i32) as f32 / max;
        sumqx = 0.0;
        sumq2 = 0.0;
        for j in 0..xb.len() {
            let al = id * xb[j];
            let q = values[best_index(values, al) as usize] as f32;
            let w = weight[j];
            sumqx += w * q * xb[j];
            sumq2 += w * q * q;
        }
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            d = sumqx / sumq2;
            best = d * sumqx;
        }
    }
    d
}

/// sigma2 of quantize_row_iq4_nl_impl: 2 * sum(x^2) / super-block size.
fn iq4_sigma2(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s * (2.0f32 / x.len() as f32)
}

fn iq4_weights(xb: &[f32], qw: Option<&[f32]>, sigma2: f32, weight: &mut [f32]) {
    match qw {
        Some(qw) => {
            for j in 0..xb.len() {
                weight[j] = qw[j] * (sigma2 + xb[j] * xb[j]).sqrt();
            }
        }
        None => {
            for j in 0..xb.len() {
                weight[j] = xb[j] * xb[j];
            }
        }
    }
}

fn pack_nibbles(l: &[u8], q4: &mut [u8]) {
    for i in 0..l.len() / 32 {
        for j in 0..16 {
            q4[16 * i + j] = l[32 * i + j] | (l[32 * i + 16 + j] << 4);
        }
    }
}

/// One IQ4_NL block (d:f16 | qs[16]).
fn quantize_block_iq4_nl(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let sigma2 = iq4_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0u8; 32];
    iq4_weights(x, qw, sigma2, &mut weight);
    let scale = iq4_block_scale(x, &weight, &mut l);
    write_f16(&mut y[0..2], scale);
    let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
    for j in 0..32 {
        l[j] = best_index(&KVALUES_IQ4NL, id * x[j]);
    }
    pack_nibbles(&l, &mut y[2..18]);
}

/// One IQ4_XS super-block (d:f16 | scales_h:u16 | scales_l[4] | qs[128]).
fn quantize_block_iq4_xs(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let sigma2 = iq4_sigma2(x);
    let mut weight = [0f32; 32];
    let mut l = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let mut amax_scale = 0.0f32;
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        iq4_weights(
            xb,
            qw.map(|q| &q[32 * ib..32 * ib + 32]),
            sigma2,
            &mut weight,
        );
        let d = iq4_block_scale(xb, &weight, &mut l[32 * ib..32 * ib + 32]);
        scales[ib] = d;
        if d.abs() > amax_scale {
            amax_scale = d.abs();
            max_scale = d;
        }
    }
    let d = -max_scale / 32.0;
    write_f16(&mut y[0..2], d);
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut scales_h = 0u16;
    let mut scales_l = [0u8; 4];
    for ib in 0..8 {
        let ls = nearest_int(id * scales[ib]).clamp(-32, 31);
        let dl = d * ls as f32;
        let idl = if dl != 0.0 { 1.0 / dl } else { 0.0 };
        for j in 0..32 {
            l[32 * ib + j] = best_index(&KVALUES_IQ4NL, idl * x[32 * ib + j]);
        }
        let lu = (ls + 32) as u8;
        scales_l[ib / 2] |= (lu & 0xF) << (4 * (ib % 2));
        scales_h |= ((lu >> 4) as u16) << (2 * ib);
    }
    y[2..4].copy_from_slice(&scales_h.to_le_bytes());
    y[4..8].copy_from_slice(&scales_l);
    pack_nibbles(&l, &mut y[8..136]);
}

pub fn quantize_row_iq4_nl(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(32).zip(dst.chunks_exact_mut(18)) {
        quantize_block_iq4_nl(x, y, None);
    }
}

pub fn quantize_row_iq4_nl_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(32)
        .zip(dst.chunks_exact_mut(18))
        .zip(importance.chunks_exact(32))
    {
        quantize_block_iq4_nl(x, y, Some(qw));
    }
}

pub fn quantize_row_iq4_xs(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(136)) {
        quantize_block_iq4_xs(x, y, None);
    }
}

pub fn quantize_row_iq4_xs_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(136))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq4_xs(x, y, Some(qw));
    }
}
/// IQ4_NL: d:f16 | `qs[16]`; like Q4_0's nibble order but through the level table.
pub fn dequantize_row_iq4_nl(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(18).zip(dst.chunks_exact_mut(32)) {
        let d = read_f16(&b[0..2]);
        for j in 0..16 {
            y[j] = d * KVALUES_IQ4NL[(b[2 + j] & 0xF) as usize] as f32;
            y[j + 16] = d * KVALUES_IQ4NL[(b[2 + j] >> 4) as usize] as f32;
        }
    }
}

/// IQ4_XS: d:f16 | scales_h:u16 | `scales_l[4]` | `qs[128]`; eight 32-element sub-blocks with 6-bit
/// scales biased by 32.
pub fn dequantize_row_iq4_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(136).zip(dst.chunks_exact_mut(256)) {
        let d = read_f16(&b[0..2]);
        let scales_h = u16::from_le_bytes([b[2], b[3]]) as i32;
        let scales_l = &b[4..8];
        let qs = &b[8..136];
        for ib in 0..8 {
            let ls = ((scales_l[ib / 2] as i32 >> (4 * (ib % 2))) & 0xF)
                | (((scales_h >> (2 * ib)) & 3) << 4);
            let dl = d * (ls - 32) as f32;
            let q = &qs[16 * ib..16 * ib + 16];
            let y = &mut y[32 * ib..32 * ib + 32];
            for j in 0..16 {
                y[j] = dl * KVALUES_IQ4NL[(q[j] & 0xF) as usize] as f32;
                y[j + 16] = dl * KVALUES_IQ4NL[(q[j] >> 4) as usize] as f32;
            }
        }
    }
}
