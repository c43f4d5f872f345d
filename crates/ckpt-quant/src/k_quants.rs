//! The 256-element super-block "K" types Q2_K..Q6_K (+ Q8_K dequantization), ported from
//! ggml-quants.c's `_ref` rows: same f32 operations in the same order, no fused multiply-add.

// Index loops mirror ggml's C loops one to one, which keeps the port easy to audit.
#![allow(clippy::needless_range_loop)]

use crate::float::{read_f16, write_f16};

pub const QK_K: usize = 256;
/// A group whose largest magnitude is below this is treated as all zeros.
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round half to even via the 1.5*2^23 trick; well defined (and then
/// clamped by callers) even for inf/NaN, unlike `round() as i32`.
pub(crate) fn nearest_int(f: f32) -> i32 {
    let val = f + 12582912.0f32;
    (val.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// make_qkx2_quants: asymmetric (scale, min) search used by Q2_K, Q4_K and Q5_K without imatrix.
/// Fills `levels` with values in 0..=nmax and returns (scale, -min) with -min >= 0.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    if x.len() > crate::lanes::MAX_GROUP {
        return make_qkx2_quants_scalar(nmax, x, weights, levels, rmin, rdelta, nstep, use_mad);
    }
    if use_mad {
        crate::lanes::make_qkx2_quants::<true>(nmax, x, weights, levels, rmin, rdelta, nstep)
    } else {
        crate::lanes::make_qkx2_quants::<false>(nmax, x, weights, levels, rmin, rdelta, nstep)
    }
}

/// The one-candidate-at-a-time make_qkx2_quants, line by line as in ggml (the reference the
/// candidate-parallel version is tested against).
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants_scalar(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        levels.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let error_of = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * levels[i] as f32 + min - x[i];
        best_error += weights[i] * error_of(diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut aux = [0u8; 32];
    let aux = &mut aux[..n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            aux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                cur_error += weights[i] * error_of(diff);
            }
            if cur_error < best_error {
                levels.copy_from_slice(aux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// make_qx_quants with rmse_type 1: symmetric scale search; `levels` get l + nmax (0 for an
/// all-zero group). `qw` replaces the x^2 weights when given (imatrix path).
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [i8], qw: Option<&[f32]>) -> f32 {
    if x.len() > crate::lanes::MAX_GROUP {
        return make_qx_quants_scalar(nmax, x, levels, qw);
    }
    crate::lanes::make_qx_quants(nmax, x, levels, qw)
}

/// make_qx_quants one candidate at a time, as in ggml (reference for the parallel version).
pub(crate) fn make_qx_quants_scalar(
    nmax: i32,
    x: &[f32],
    levels: &mut [i8],
    qw: Option<&[f32]>,
) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        levels.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let weight = |i: usize| match qw {
        Some(q) => q[i],
        None => x[i] * x[i],
    };
    let mut iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        levels[i] = (l + nmax) as i8;
        let w = weight(i);
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1f32 * is as f32) / max;
        sumlx = 0.0;
        suml2 = 0.0;
        for i in 0..n {
            let lf = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1) as f32;
            let w = weight(i);
            sumlx += w * x[i] * lf;
            suml2 += w * lf * lf;
        }
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for i in 0..n {
                let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
                levels[i] = (nmax + l) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// make_q3_quants (do_rmse): symmetric levels refined by coordinate descent; used by Q3_K.
fn make_q3_quants(nmax: i32, x: &[f32], levels: &mut [i8]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        levels.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).clamp(-nmax, nmax - 1);
        levels[i] = l as i8;
        let w = x[i] * x[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = x[i] * x[i];
            let cur = levels[i] as f32;
            let mut slx = sumlx - w * x[i] * cur;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * cur * cur;
                let new_l = nearest_int(x[i] * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != levels[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        levels[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    for l in levels.iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Packs 2-bit levels: byte 32h+l holds elements 128h+l, +32, +64, +96 (Q2_K and Q3_K).
fn pack_2bit(levels: &[u8], qs: &mut [u8]) {
    for h in 0..QK_K / 128 {
        for l in 0..32 {
            let b = 128 * h + l;
            qs[32 * h + l] =
                levels[b] | (levels[b + 32] << 2) | (levels[b + 64] << 4) | (levels[b + 96] << 6);
        }
    }
}

// ---- Q2_K: `scales[16]` | `qs[64]` | d | dmin ----

pub fn quantize_row_q2_k(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(84)) {
        let mut levels = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut weights = [0f32; 16];
        let mut max_scale = 0.0f32;
        let mut max_min = 0.0f32;
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            for l in 0..16 {
                weights[l] = xs[l].abs();
            }
            let (s, m) = make_qkx2_quants(
                3,
                xs,
                &weights,
                &mut levels[16 * j..16 * j + 16],
                -0.5,
                0.1,
                15,
                true,
            );
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        let (sc, rest) = y.split_at_mut(16);
        let (qs, dd) = rest.split_at_mut(64);
        let d = if max_scale > 0.0 {
            let iscale = 15.0f32 / max_scale;
            for j in 0..16 {
                sc[j] = nearest_int(iscale * scales[j]) as u8;
            }
            write_f16(&mut dd[0..2], max_scale / 15.0)
        } else {
            sc.iter_mut().for_each(|s| *s = 0);
            write_f16(&mut dd[0..2], 0.0)
        };
        let dmin = if max_min > 0.0 {
            let iscale = 15.0f32 / max_min;
            for j in 0..16 {
                sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
            }
            write_f16(&mut dd[2..4], max_min / 15.0)
        } else {
            write_f16(&mut dd[2..4], 0.0)
        };
        for j in 0..16 {
            let dl = d * (sc[j] & 0xF) as f32;
            if dl == 0.0 {
                continue;
            }
            let dm = dmin * (sc[j] >> 4) as f32;
            for ii in 0..16 {
                let l = nearest_int((x[16 * j + ii] + dm) / dl);
                levels[16 * j + ii] = l.clamp(0, 3) as u8;
            }
        }
        pack_2bit(&levels, qs);
    }
}

pub fn dequantize_row_q2_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(84).zip(dst.chunks_exact_mut(QK_K)) {
        let sc = &b[0..16];
        let qs = &b[16..80];
        let d = read_f16(&b[80..82]);
        let min = read_f16(&b[82..84]);
        let mut out = 0;
        let mut is = 0;
        for h in 0..2 {
            let q = &qs[32 * h..32 * h + 32];
            for shift in [0u32, 2, 4, 6] {
                for half in 0..2 {
                    let s = sc[is];
                    is += 1;
                    let dl = d * (s & 0xF) as f32;
                    let ml = min * (s >> 4) as f32;
                    for l in 0..16 {
                        y[out] = dl * ((q[16 * half + l] >> shift) & 3) as f32 - ml;
                        out += 1;
                    }
                }
            }
        }
    }
}

// ---- Q3_K: `hmask[32]` | `qs[64]` | `scales[12]` | d ----

/// The 6-bit scale j (biased by 32) of a Q3_K block.
fn q3_scale(scales: &[u8], j: usize) -> i32 {
    let low = if j < 8 {
        scales[j] & 0xF
    } else {
        scales[j - 8] >> 4
    };
    let high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    (low | (high << 4)) as i32
}

pub fn quantize_row_q3_k(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(110)) {
        let mut levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut max_scale = 0.0f32;
        let mut amax = 0.0f32;
        for j in 0..16 {
            scales[j] =
                make_q3_quants(4, &x[16 * j..16 * j + 16], &mut levels[16 * j..16 * j + 16]);
            let scale = scales[j].abs();
            if scale > amax {
                amax = scale;
                max_scale = scales[j];
            }
        }
        let (hmask, rest) = y.split_at_mut(32);
        let (qs, rest) = rest.split_at_mut(64);
        let (sc, dd) = rest.split_at_mut(12);
        sc.iter_mut().for_each(|s| *s = 0);
        let d = if max_scale != 0.0 {
            let iscale = -32.0f32 / max_scale;
            for j in 0..16 {
                // int8_t l = nearest_int(...): truncated to 8 bits before the clamp
                let l = (nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32;
                let l = l as u8;
                if j < 8 {
                    sc[j] = l & 0xF;
                } else {
                    sc[j - 8] |= (l & 0xF) << 4;
                }
                sc[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
            }
            write_f16(dd, 1.0 / iscale)
        } else {
            write_f16(dd, 0.0)
        };
        requantize_and_pack_q3_k(x, sc, d, &mut levels, hmask, qs);
    }
}

pub fn dequantize_row_q3_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(110).zip(dst.chunks_exact_mut(QK_K)) {
        let hmask = &b[0..32];
        let qs = &b[32..96];
        let sc = &b[96..108];
        let d_all = read_f16(&b[108..110]);
        let mut out = 0;
        let mut is = 0;
        let mut m = 1u8;
        for h in 0..2 {
            let q = &qs[32 * h..32 * h + 32];
            for shift in [0u32, 2, 4, 6] {
                for half in 0..2 {
                    let dl = d_all * (q3_scale(sc, is) - 32) as f32;
                    is += 1;
                    for l in 0..16 {
                        let i = 16 * half + l;
                        let low = ((q[i] >> shift) & 3) as i32;
                        let sub = if hmask[i] & m != 0 { 0 } else { 4 };
                        y[out] = dl * (low - sub) as f32;
                        out += 1;
                    }
                }
                m = m.wrapping_shl(1);
            }
        }
    }
}

// ---- Q4_K / Q5_K shared scale packing: d | dmin | `scales[12]` ----

/// get_scale_min_k4: the 6-bit (scale, min) of sub-block j.
fn scale_min_k4(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        let d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d, m)
    }
}

/// Quantizes the 8 sub-block scales and mins to 6 bits (max/63 each) and writes d, dmin and
/// `scales[12]`; returns (d, dmin) as read back from fp16.
#[inline(always)]
pub(crate) fn pack_scales_k4(scales: &[f32; 8], mins: &[f32; 8], head: &mut [u8]) -> (f32, f32) {
    let mut max_scale = 0.0f32;
    let mut max_min = 0.0f32;
    for j in 0..8 {
        if scales[j] > max_scale {
            max_scale = scales[j];
        }
        if mins[j] > max_min {
            max_min = mins[j];
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let sc = &mut head[4..16];
    sc.iter_mut().for_each(|s| *s = 0);
    for j in 0..8 {
        // uint8_t ls = nearest_int(...): truncated to 8 bits, then MIN(63, ls)
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let d = write_f16(&mut head[0..2], max_scale / 63.0);
    let dmin = write_f16(&mut head[2..4], max_min / 63.0);
    (d, dmin)
}

#[cfg(test)]
/// Shared body of Q4_K and Q5_K: per 32-element sub-block make_qkx2_quants, 6-bit scales, then
/// requantization with the stored scales. Writes the 16-byte head, returns the levels.
fn quantize_k4_levels(x: &[f32], head: &mut [u8], nmax: i32, rmin: f32, nstep: i32) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut weights = [0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let mut sum_x2 = 0.0f32;
        for &v in xs {
            sum_x2 += v * v;
        }
        let av_x = (sum_x2 / 32.0).sqrt();
        for l in 0..32 {
            weights[l] = av_x + xs[l].abs();
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            &mut levels[32 * j..32 * j + 32],
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let (d, dmin) = pack_scales_k4(&scales, &mins, head);
    requantize_k4(x, head, d, dmin, nmax, &mut levels);
    levels
}

#[inline(always)]
pub(crate) fn requantize_k4(
    x: &[f32],
    head: &[u8],
    d: f32,
    dmin: f32,
    nmax: i32,
    levels: &mut [u8; QK_K],
) {
    for j in 0..8 {
        let (sc, m) = scale_min_k4(j, &head[4..16]);
        let dl = d * sc as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = dmin * m as f32;
        for ii in 0..32 {
            let l = nearest_int((x[32 * j + ii] + dm) / dl);
            levels[32 * j + ii] = l.clamp(0, nmax) as u8;
        }
    }
}

pub fn quantize_row_q4_k(src: &[f32], dst: &mut [u8]) {
    crate::k4_lanes::quantize_rows(
        src,
        dst,
        crate::k4_lanes::K4Format {
            block_bytes: 144,
            nmax: 15,
            rmin: -1.0,
            nstep: 20,
            pack: pack_q4_k,
        },
    );
}

#[cfg(test)]
/// Q4_K one super-block at a time with the candidate-parallel search (the reference the
/// sub-block-parallel [`quantize_row_q4_k`] is tested against).
pub fn quantize_row_q4_k_blockwise(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(144)) {
        let levels = quantize_k4_levels(x, &mut y[0..16], 15, -1.0, 20);
        pack_q4_k(&levels, &mut y[16..144]);
    }
}

pub(crate) fn pack_q4_k(levels: &[u8; QK_K], qs: &mut [u8]) {
    for c in 0..4 {
        for l in 0..32 {
            qs[32 * c + l] = levels[64 * c + l] | (levels[64 * c + 32 + l] << 4);
        }
    }
}

pub fn dequantize_row_q4_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(144).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[0..2]);
        let min = read_f16(&b[2..4]);
        let sc = &b[4..16];
        let qs = &b[16..144];
        for c in 0..4 {
            let (s1, m1) = scale_min_k4(2 * c, sc);
            let (s2, m2) = scale_min_k4(2 * c + 1, sc);
            let (d1, m1) = (d * s1 as f32, min * m1 as f32);
            let (d2, m2) = (d * s2 as f32, min * m2 as f32);
            let q = &qs[32 * c..32 * c + 32];
            for l in 0..32 {
                y[64 * c + l] = d1 * (q[l] & 0xF) as f32 - m1;
                y[64 * c + 32 + l] = d2 * (q[l] >> 4) as f32 - m2;
            }
        }
    }
}

pub fn quantize_row_q5_k(src: &[f32], dst: &mut [u8]) {
    crate::k4_lanes::quantize_rows(
        src,
        dst,
        crate::k4_lanes::K4Format {
            block_bytes: 176,
            nmax: 31,
            rmin: -0.5,
            nstep: 15,
            pack: pack_q5_k,
        },
    );
}

#[cfg(test)]
/// Q5_K one super-block at a time (reference for [`quantize_row_q5_k`]).
pub fn quantize_row_q5_k_blockwise(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(176)) {
        let levels = quantize_k4_levels(x, &mut y[0..16], 31, -0.5, 15);
        pack_q5_k(&levels, &mut y[16..176]);
    }
}

pub(crate) fn pack_q5_k(levels: &[u8; QK_K], tail: &mut [u8]) {
    let (qh, ql) = tail.split_at_mut(32);
    qh.iter_mut().for_each(|h| *h = 0);
    for c in 0..4 {
        for j in 0..32 {
            let mut l1 = levels[64 * c + j];
            if l1 > 15 {
                l1 -= 16;
                qh[j] |= 1 << (2 * c);
            }
            let mut l2 = levels[64 * c + j + 32];
            if l2 > 15 {
                l2 -= 16;
                qh[j] |= 2 << (2 * c);
            }
            ql[32 * c + j] = l1 | (l2 << 4);
        }
    }
}

pub fn dequantize_row_q5_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(176).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[0..2]);
        let min = read_f16(&b[2..4]);
        let sc = &b[4..16];
        let qh = &b[16..48];
        let qs = &b[48..176];
        for c in 0..4 {
            let (s1, m1) = scale_min_k4(2 * c, sc);
            let (s2, m2) = scale_min_k4(2 * c + 1, sc);
            let (d1, m1) = (d * s1 as f32, min * m1 as f32);
            let (d2, m2) = (d * s2 as f32, min * m2 as f32);
            let (u1, u2) = (1u8 << (2 * c), 2u8 << (2 * c));
            let ql = &qs[32 * c..32 * c + 32];
            for l in 0..32 {
                let hi1 = if qh[l] & u1 != 0 { 16 } else { 0 };
                let hi2 = if qh[l] & u2 != 0 { 16 } else { 0 };
                y[64 * c + l] = d1 * ((ql[l] & 0xF) + hi1) as f32 - m1;
                y[64 * c + 32 + l] = d2 * ((ql[l] >> 4) + hi2) as f32 - m2;
            }
        }
    }
}

// ---- Q6_K: `ql[128]` | `qh[64]` | `scales[16]` (int8) | d ----

pub fn quantize_row_q6_k(src: &[f32], dst: &mut [u8]) {
    crate::k4_lanes::quantize_q6_k_rows(src, dst, None);
}

#[cfg(test)]
/// Q6_K one sub-block search at a time (reference for [`quantize_row_q6_k`]).
pub fn quantize_row_q6_k_blockwise(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(QK_K).zip(dst.chunks_exact_mut(210)) {
        quantize_block_q6_k(x, y, None);
    }
}

#[cfg(test)]
/// One Q6_K super-block; `qw` (the imatrix slice) replaces the x^2 weights of make_qx_quants.
fn quantize_block_q6_k(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let mut levels = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for ib in 0..16 {
        let w = qw.map(|q| &q[16 * ib..16 * ib + 16]);
        let scale = make_qx_quants(
            32,
            &x[16 * ib..16 * ib + 16],
            &mut levels[16 * ib..16 * ib + 16],
            w,
        );
        scales[ib] = scale;
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        y.iter_mut().for_each(|b| *b = 0);
        return;
    }
    let iscale = -128.0f32 / max_scale;
    let d = write_f16(&mut y[208..210], 1.0 / iscale);
    for ib in 0..16 {
        y[192 + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    for j in 0..16 {
        let dl = d * (y[192 + j] as i8) as f32;
        if dl == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / dl).clamp(-32, 31);
            levels[16 * j + ii] = (l + 32) as i8;
        }
    }
    pack_q6_k(&levels, &mut y[0..192]);
}

pub(crate) fn pack_q6_k(levels: &[i8; QK_K], out: &mut [u8]) {
    let (ql, qh) = out.split_at_mut(128);
    let lv = |i: usize| levels[i] as u8;
    for h in 0..2 {
        let b = 128 * h;
        for l in 0..32 {
            let (q1, q2, q3, q4) = (lv(b + l), lv(b + l + 32), lv(b + l + 64), lv(b + l + 96));
            ql[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4);
            ql[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4);
            qh[32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
        }
    }
}

pub fn dequantize_row_q6_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(210).zip(dst.chunks_exact_mut(QK_K)) {
        let d = read_f16(&b[208..210]);
        for h in 0..2 {
            let ql = &b[64 * h..64 * h + 64];
            let qh = &b[128 + 32 * h..128 + 32 * h + 32];
            let sc = &b[192 + 8 * h..192 + 8 * h + 8];
            let y = &mut y[128 * h..128 * h + 128];
            for l in 0..32 {
                let is = l / 16;
                let q1 = ((ql[l] & 0xF) | ((qh[l] & 3) << 4)) as i32 - 32;
                let q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
                let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
                let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
                y[l] = d * (sc[is] as i8) as f32 * q1 as f32;
                y[l + 32] = d * (sc[is + 2] as i8) as f32 * q2 as f32;
                y[l + 64] = d * (sc[is + 4] as i8) as f32 * q3 as f32;
                y[l + 96] = d * (sc[is + 6] as i8) as f32 * q4 as f32;
            }
        }
    }
}

// ---- importance-matrix variants (ggml's quantize_row_*_impl; one whole row at a time) ----

/// make_qkx3_quants: like make_qkx2_quants with its own weights and a finer, wider search.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx3_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max <= min {
        levels.iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_mad = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        levels[i] = l as u8;
        let diff = scale * levels[i] as f32 + min - x[i];
        best_mad += weights[i] * (diff * diff);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut aux = [0u8; 32];
    let aux = &mut aux[..n];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let v = iscale * (x[i] - min);
            // MIN(v, nmax) keeps inf/huge values in nearest_int's range; NaN fails v > 0
            let l = if v > 0.0 {
                nearest_int(if v < nmax as f32 { v } else { nmax as f32 })
            } else {
                0
            };
            aux[i] = l as u8;
            let w = weights[i];
            let lf = l as f32;
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut mad = 0.0f32;
            for i in 0..n {
                let diff = this_scale * aux[i] as f32 + this_min - x[i];
                mad += weights[i] * (diff * diff);
            }
            if mad < best_mad {
                levels.copy_from_slice(aux);
                best_mad = mad;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// make_qp_quants: quantizes non-negative values (sub-block scales or mins) to 0..=nmax with a
/// weighted search; returns the scale.
pub(crate) fn make_qp_quants(nmax: i32, x: &[f32], levels: &mut [u8], weights: &[f32]) -> f32 {
    let n = x.len();
    let mut max = 0.0f32;
    for &v in x {
        max = if max > v { max } else { v };
    }
    if max < GROUP_MAX_EPS {
        levels.iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    for i in 0..n {
        levels[i] = nearest_int(iscale * x[i]) as u8;
    }
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for i in 0..n {
        let diff = x[i] - scale * levels[i] as f32;
        best_mse += weights[i] * diff * diff;
    }
    for is in -4i32..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1f32 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for i in 0..n {
            let l = nearest_int(iscale_is * x[i]).min(nmax);
            let diff = x[i] - scale_is * l as f32;
            mse += weights[i] * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    let mut sumlx = 0.0f32;
    let mut suml2 = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * x[i]).min(nmax);
        levels[i] = l as u8;
        let w = weights[i];
        let lf = l as f32;
        sumlx += w * x[i] * lf;
        suml2 += w * lf * lf;
    }
    for _ in 0..5 {
        let mut n_changed = 0;
        for i in 0..n {
            let w = weights[i];
            let cur = levels[i] as f32;
            let mut slx = sumlx - w * x[i] * cur;
            let mut sl2 = suml2 - w * cur * cur;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(x[i] * sl2 / slx).min(nmax);
                if new_l != levels[i] as i32 {
                    let nl = new_l as f32;
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        levels[i] = new_l as u8;
                        sumlx = slx;
                        suml2 = sl2;
                        n_changed += 1;
                    }
                }
            }
        }
        if n_changed == 0 {
            break;
        }
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

fn sum_of_squares(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// weights[l] = qw[l] * sqrt(sigma2 + x[l]^2), the imatrix weighting shared by most types.
fn importance_weights(qw: &[f32], x: &[f32], sigma2: f32, out: &mut [f32]) {
    for l in 0..x.len() {
        out[l] = qw[l] * (sigma2 + x[l] * x[l]).sqrt();
    }
}

pub fn quantize_row_q2_k_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw_block) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(84))
        .zip(importance.chunks_exact(QK_K))
    {
        let mut levels = [0u8; QK_K];
        let mut scales = [0f32; 16];
        let mut mins = [0f32; 16];
        let mut sw = [0f32; 16];
        let mut weight = [0f32; 16];
        let sigma2 = sum_of_squares(x) / QK_K as f32;
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            importance_weights(&qw_block[16 * j..16 * j + 16], xs, sigma2, &mut weight);
            for &w in &weight {
                sw[j] += w;
            }
            let (s, m) = make_qkx3_quants(
                3,
                xs,
                &weight,
                &mut levels[16 * j..16 * j + 16],
                -0.9,
                0.05,
                36,
            );
            scales[j] = s;
            mins[j] = m;
        }
        let mut ls = [0u8; 16];
        let mut lm = [0u8; 16];
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        let (sc, rest) = y.split_at_mut(16);
        let (qs, dd) = rest.split_at_mut(64);
        let dm = write_f16(&mut dd[0..2], dm);
        let mm = write_f16(&mut dd[2..4], mm);
        for j in 0..16 {
            sc[j] = ls[j] | (lm[j] << 4);
        }
        for j in 0..16 {
            let dl = dm * (sc[j] & 0xF) as f32;
            if dl == 0.0 {
                continue;
            }
            let m = mm * (sc[j] >> 4) as f32;
            for ii in 0..16 {
                levels[16 * j + ii] = nearest_int((x[16 * j + ii] + m) / dl).clamp(0, 3) as u8;
            }
        }
        pack_2bit(&levels, qs);
    }
}

pub fn quantize_row_q3_k_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw_block) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(110))
        .zip(importance.chunks_exact(QK_K))
    {
        let mut levels = [0i8; QK_K];
        let mut scales = [0f32; 16];
        let mut sw = [0f32; 16];
        let mut weight = [0f32; 16];
        let sigma2 = 2.0 * sum_of_squares(x) / QK_K as f32;
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            importance_weights(&qw_block[16 * j..16 * j + 16], xs, sigma2, &mut weight);
            let mut sumw = 0.0f32;
            for &w in &weight {
                sumw += w;
            }
            sw[j] = sumw;
            scales[j] = make_qx_quants(4, xs, &mut levels[16 * j..16 * j + 16], Some(&weight));
        }
        let (hmask, rest) = y.split_at_mut(32);
        let (qs, rest) = rest.split_at_mut(64);
        let (sc, dd) = rest.split_at_mut(12);
        sc.iter_mut().for_each(|s| *s = 0);
        let mut ls = [0i8; 16];
        let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
        for j in 0..16 {
            let l = ls[j] as u8;
            if j < 8 {
                sc[j] = l & 0xF;
            } else {
                sc[j - 8] |= (l & 0xF) << 4;
            }
            sc[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        let d = write_f16(dd, d_block);
        requantize_and_pack_q3_k(x, sc, d, &mut levels, hmask, qs);
    }
}

/// The tail shared by Q3_K's two quantizers: requantize with the stored 6-bit scales, then pack.
fn requantize_and_pack_q3_k(
    x: &[f32],
    sc: &[u8],
    d: f32,
    levels: &mut [i8; QK_K],
    hmask: &mut [u8],
    qs: &mut [u8],
) {
    for j in 0..16 {
        let dl = d * (q3_scale(sc, j) - 32) as f32;
        if dl == 0.0 {
            continue;
        }
        for ii in 0..16 {
            let l = nearest_int(x[16 * j + ii] / dl).clamp(-4, 3);
            levels[16 * j + ii] = (l + 4) as i8;
        }
    }
    hmask.iter_mut().for_each(|h| *h = 0);
    let mut low2 = [0u8; QK_K];
    for j in 0..QK_K {
        let mut l = levels[j] as u8;
        if l > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            l -= 4;
        }
        low2[j] = l;
    }
    pack_2bit(&low2, qs);
}

/// Shared body of the Q4_K/Q5_K imatrix variants: make_qkx3_quants per sub-block, scales and
/// mins through make_qp_quants, then the usual requantization.
fn quantize_k4_levels_weighted(
    x: &[f32],
    qw_block: &[f32],
    head: &mut [u8],
    nmax: i32,
) -> [u8; QK_K] {
    let mut levels = [0u8; QK_K];
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut sw = [0f32; 8];
    let mut weights = [0f32; 32];
    let sigma2 = 2.0 * sum_of_squares(x) / QK_K as f32;
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        importance_weights(&qw_block[32 * j..32 * j + 32], xs, sigma2, &mut weights);
        let mut sumw = 0.0f32;
        for &w in &weights {
            sumw += w;
        }
        sw[j] = sumw;
        let (s, m) = make_qkx3_quants(
            nmax,
            xs,
            &weights,
            &mut levels[32 * j..32 * j + 32],
            -0.9,
            0.05,
            36,
        );
        scales[j] = s;
        mins[j] = m;
    }
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    let sc = &mut head[4..16];
    sc.iter_mut().for_each(|s| *s = 0);
    for j in 0..8 {
        let (ls, lm) = (ls[j].min(63), lm[j].min(63));
        if j < 4 {
            sc[j] = ls;
            sc[j + 4] = lm;
        } else {
            sc[j + 4] = (ls & 0xF) | ((lm & 0xF) << 4);
            sc[j - 4] |= (ls >> 4) << 6;
            sc[j] |= (lm >> 4) << 6;
        }
    }
    let d = write_f16(&mut head[0..2], d_block);
    let dmin = write_f16(&mut head[2..4], m_block);
    requantize_k4(x, head, d, dmin, nmax, &mut levels);
    levels
}

pub fn quantize_row_q4_k_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(144))
        .zip(importance.chunks_exact(QK_K))
    {
        let levels = quantize_k4_levels_weighted(x, qw, &mut y[0..16], 15);
        pack_q4_k(&levels, &mut y[16..144]);
    }
}

pub fn quantize_row_q5_k_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(176))
        .zip(importance.chunks_exact(QK_K))
    {
        let levels = quantize_k4_levels_weighted(x, qw, &mut y[0..16], 31);
        pack_q5_k(&levels, &mut y[16..176]);
    }
}

pub fn quantize_row_q6_k_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    crate::k4_lanes::quantize_q6_k_rows(src, dst, Some(importance));
}

#[cfg(test)]
/// [`quantize_row_q6_k_weighted`] one sub-block search at a time (its reference).
pub fn quantize_row_q6_k_weighted_blockwise(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(210))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_q6_k(x, y, Some(qw));
    }
}

// ---- Q8_K (intermediate type): d:f32 | `qs[256]` int8 | `bsums[16]` int16 ----

pub fn dequantize_row_q8_k(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(292).zip(dst.chunks_exact_mut(QK_K)) {
        let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        for j in 0..QK_K {
            y[j] = d * (b[4 + j] as i8) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_is_ties_to_even_and_total() {
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(3.5), 4);
        assert_eq!(nearest_int(-2.5), -2);
        assert_eq!(nearest_int(-0.4), 0);
        // inf/NaN give some value without panicking; callers clamp it
        let _ = nearest_int(f32::INFINITY);
        let _ = nearest_int(f32::NAN);
    }
}
