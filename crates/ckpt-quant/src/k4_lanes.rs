//! Q4_K / Q5_K super-blocks with their sub-blocks' scale searches run side by side.
//!
//! A K4 super-block quantizes its eight 32-value sub-blocks independently with ggml's
//! make_qkx2_quants (use_mad = false). Lane k of the vectors here is sub-block k (of one or two
//! consecutive super-blocks): every lane runs exactly the scalar loop of its sub-block, the same
//! operations in the same order, and the "is this candidate better" decisions become per-lane
//! selects. Unlike putting candidates in lanes ([`crate::lanes`]), no work is thrown away when a
//! winning candidate moves the min, and the accumulators of different lanes are independent.
//! `k_quants::make_qkx2_quants_scalar` is the reference the tests compare with, bit for bit.

// Lane loops `for k in 0..N` are what the compiler turns into one vector operation each.
#![allow(clippy::needless_range_loop)]

use crate::k_quants::{nearest_int, QK_K};

/// Values per sub-block.
const SUB: usize = 32;

/// make_qkx2_quants (use_mad = false, 32 values) for N groups at once: `x[i][k]` is value i of
/// group k, `w` its weight. Returns per lane the scale, the -min, the (inverse scale, min) whose
/// rounding gave the kept levels, and whether the group was flat (max == min: all levels 0).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn qkx2_groups<const N: usize>(
    nmax: i32,
    x: &[[f32; N]; SUB],
    w: &[[f32; N]; SUB],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> ([f32; N], [f32; N], [f32; N], [f32; N], [bool; N]) {
    let mut min = x[0];
    let mut max = x[0];
    let mut sum_w = w[0];
    let mut sum_x = [0f32; N];
    for k in 0..N {
        sum_x[k] = sum_w[k] * x[0][k];
    }
    for i in 1..SUB {
        for k in 0..N {
            let v = x[i][k];
            min[k] = if v < min[k] { v } else { min[k] };
            max[k] = if v > max[k] { v } else { max[k] };
            sum_w[k] += w[i][k];
            sum_x[k] += w[i][k] * v;
        }
    }
    let mut flat = [false; N];
    // 1 for a lane whose group is not flat
    let mut live = [0u32; N];
    for k in 0..N {
        if min[k] > 0.0 {
            min[k] = 0.0;
        }
        flat[k] = max[k] == min[k];
        live[k] = (max[k] != min[k]) as u32;
    }
    let fmax = nmax as f32;
    // the first try: nmax / (max - min)
    let mut iscale = [0f32; N];
    let mut scale = [0f32; N];
    for k in 0..N {
        iscale[k] = fmax / (max[k] - min[k]);
        scale[k] = 1.0 / iscale[k];
    }
    let mut best_error = [0f32; N];
    for i in 0..SUB {
        for k in 0..N {
            let l = nearest_int(iscale[k] * (x[i][k] - min[k])).clamp(0, nmax) as f32;
            let diff = scale[k] * l + min[k] - x[i][k];
            best_error[k] += w[i][k] * (diff * diff);
        }
    }
    let mut best_iscale = iscale;
    let mut best_min = min;
    let mut levels = [[0f32; N]; SUB];
    for is in 0..=nstep.max(0) {
        if nstep < 1 {
            break;
        }
        let step = rmin + rdelta * is as f32 + fmax;
        for k in 0..N {
            iscale[k] = step / (max[k] - min[k]);
        }
        let mut sum_l = [0f32; N];
        let mut sum_l2 = [0f32; N];
        let mut sum_xl = [0f32; N];
        for i in 0..SUB {
            for k in 0..N {
                let xi = x[i][k];
                let l = nearest_int(iscale[k] * (xi - min[k])).clamp(0, nmax) as f32;
                levels[i][k] = l;
                let wl = w[i][k] * l;
                sum_l[k] += wl;
                sum_l2[k] += wl * l;
                sum_xl[k] += wl * xi;
            }
        }
        let mut this_scale = [0f32; N];
        let mut this_min = [0f32; N];
        let mut det = [0f32; N];
        for k in 0..N {
            det[k] = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            let s = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / det[k];
            let m = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / det[k];
            let clipped = m > 0.0;
            this_scale[k] = if clipped { sum_xl[k] / sum_l2[k] } else { s };
            this_min[k] = if clipped { 0.0 } else { m };
        }
        let mut error = [0f32; N];
        for i in 0..SUB {
            for k in 0..N {
                let diff = this_scale[k] * levels[i][k] + this_min[k] - x[i][k];
                error[k] += w[i][k] * (diff * diff);
            }
        }
        // branch-free selects (all-ones masks), so the lanes stay in one register
        for k in 0..N {
            let better = ((det[k] > 0.0) as u32) & ((error[k] < best_error[k]) as u32) & live[k];
            let m = 0u32.wrapping_sub(better);
            best_error[k] = select(m, error[k], best_error[k]);
            scale[k] = select(m, this_scale[k], scale[k]);
            best_iscale[k] = select(m, iscale[k], best_iscale[k]);
            best_min[k] = select(m, min[k], best_min[k]);
            min[k] = select(m, this_min[k], min[k]);
        }
    }
    let mut neg_min = [0f32; N];
    for k in 0..N {
        if flat[k] {
            scale[k] = 0.0;
        }
        neg_min[k] = -min[k];
    }
    (scale, neg_min, best_iscale, best_min, flat)
}

/// `a` where `mask` is all ones, `b` where it is zero.
#[inline(always)]
fn select(mask: u32, a: f32, b: f32) -> f32 {
    f32::from_bits((a.to_bits() & mask) | (b.to_bits() & !mask))
}

/// S consecutive super-blocks (N = 8 * S sub-blocks) of Q4_K or Q5_K: `x` holds S * 256 values;
/// `emit(s, x, scales, mins, levels)` gets super-block s's values, its sub-blocks' scales and
/// -mins, and the levels the searches kept.
#[inline(always)]
fn k4_superblocks<const S: usize, const N: usize>(
    x: &[f32],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    mut emit: impl FnMut(usize, &[f32], &[f32; 8], &[f32; 8], &mut [u8; QK_K]),
) {
    debug_assert_eq!(N, 8 * S);
    debug_assert_eq!(x.len(), S * QK_K);
    let mut xt = [[0f32; N]; SUB];
    for k in 0..N {
        for i in 0..SUB {
            xt[i][k] = x[SUB * k + i];
        }
    }
    let mut sum_x2 = [0f32; N];
    for i in 0..SUB {
        for k in 0..N {
            sum_x2[k] += xt[i][k] * xt[i][k];
        }
    }
    let mut wt = [[0f32; N]; SUB];
    for k in 0..N {
        let av_x = (sum_x2[k] / 32.0).sqrt();
        for i in 0..SUB {
            wt[i][k] = av_x + xt[i][k].abs();
        }
    }
    let (scale, neg_min, best_iscale, best_min, flat) =
        qkx2_groups::<N>(nmax, &xt, &wt, rmin, 0.1, nstep);
    for s in 0..S {
        let xs = &x[QK_K * s..QK_K * (s + 1)];
        let mut scales = [0f32; 8];
        let mut mins = [0f32; 8];
        let mut levels = [0u8; QK_K];
        for j in 0..8 {
            let k = 8 * s + j;
            scales[j] = scale[k];
            mins[j] = neg_min[k];
            let (is, m) = (best_iscale[k], best_min[k]);
            let flat = flat[k];
            for (l, &v) in levels[SUB * j..SUB * (j + 1)]
                .iter_mut()
                .zip(&xs[SUB * j..SUB * (j + 1)])
            {
                *l = if flat {
                    0
                } else {
                    nearest_int(is * (v - m)).clamp(0, nmax) as u8
                };
            }
        }
        emit(s, xs, &scales, &mins, &mut levels);
    }
}

/// How one K4 type stores a super-block: its size, search parameters and level packing.
#[derive(Clone, Copy)]
pub(crate) struct K4Format {
    pub block_bytes: usize,
    pub nmax: i32,
    pub rmin: f32,
    pub nstep: i32,
    /// Writes the 256 levels after the 16-byte head.
    pub pack: fn(&[u8; QK_K], &mut [u8]),
}

#[inline(always)]
fn rows_body<const S: usize, const N: usize>(src: &[f32], dst: &mut [u8], f: K4Format) {
    let bb = f.block_bytes;
    let mut src_groups = src.chunks_exact(S * QK_K);
    let mut dst_groups = dst.chunks_exact_mut(S * bb);
    for (x, y) in (&mut src_groups).zip(&mut dst_groups) {
        k4_superblocks::<S, N>(x, f.nmax, f.rmin, f.nstep, |s, xs, scales, mins, levels| {
            let y = &mut y[bb * s..bb * (s + 1)];
            let (d, dmin) = crate::k_quants::pack_scales_k4(scales, mins, &mut y[0..16]);
            crate::k_quants::requantize_k4(xs, &y[0..16], d, dmin, f.nmax, levels);
            (f.pack)(levels, &mut y[16..bb]);
        });
    }
    // the super-blocks left over when S > 1
    for (x, y) in src_groups
        .remainder()
        .chunks_exact(QK_K)
        .zip(dst_groups.into_remainder().chunks_exact_mut(bb))
    {
        k4_superblocks::<1, 8>(x, f.nmax, f.rmin, f.nstep, |_, xs, scales, mins, levels| {
            let (d, dmin) = crate::k_quants::pack_scales_k4(scales, mins, &mut y[0..16]);
            crate::k_quants::requantize_k4(xs, &y[0..16], d, dmin, f.nmax, levels);
            (f.pack)(levels, &mut y[16..bb]);
        });
    }
}

/// Quantizes rows (a whole number of super-blocks) to a K4 type: two super-blocks per 16-lane
/// pass with AVX-512, one per 8-lane pass otherwise.
pub(crate) fn quantize_rows(src: &[f32], dst: &mut [u8], f: K4Format) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(src: &[f32], dst: &mut [u8], f: K4Format) {
            rows_body::<2, 16>(src, dst, f)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(src: &[f32], dst: &mut [u8], f: K4Format) {
            rows_body::<1, 8>(src, dst, f)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { avx512(src, dst, f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(src, dst, f) };
        }
    }
    rows_body::<1, 8>(src, dst, f)
}

// ---- Q6_K: the 16 sub-blocks of one super-block in 16 lanes ----

/// Sums of make_qx_quants for two candidate inverse scales at once (independent accumulators).
#[inline(always)]
#[allow(clippy::type_complexity)]
fn qx_sums2(
    nmax: i32,
    x: &[[f32; 16]; 16],
    w: &[[f32; 16]; 16],
    wx: &[[f32; 16]; 16],
    is_a: &[f32; 16],
    is_b: &[f32; 16],
) -> ([f32; 16], [f32; 16], [f32; 16], [f32; 16]) {
    let (mut slx_a, mut sl2_a, mut slx_b, mut sl2_b) =
        ([0f32; 16], [0f32; 16], [0f32; 16], [0f32; 16]);
    for i in 0..16 {
        for k in 0..16 {
            let la = nearest_int(is_a[k] * x[i][k]).clamp(-nmax, nmax - 1) as f32;
            let lb = nearest_int(is_b[k] * x[i][k]).clamp(-nmax, nmax - 1) as f32;
            slx_a[k] += wx[i][k] * la;
            sl2_a[k] += w[i][k] * la * la;
            slx_b[k] += wx[i][k] * lb;
            sl2_b[k] += w[i][k] * lb * lb;
        }
    }
    (slx_a, sl2_a, slx_b, sl2_b)
}

/// make_qx_quants (rmse_type 1) of 16 groups of 16 values, lane k = group k: `x[i][k]` is value
/// i of group k; `qw` replaces the x^2 weights. Returns per lane the scale, the inverse scale
/// whose rounding gave the kept levels, and 1 where the group is not all zeros (else 0).
#[inline(always)]
fn qx_groups(
    nmax: i32,
    x: &[[f32; 16]; 16],
    qw: Option<&[[f32; 16]; 16]>,
) -> ([f32; 16], [f32; 16], [u32; 16]) {
    let mut max = [0f32; 16];
    let mut amax = [0f32; 16];
    for i in 0..16 {
        for k in 0..16 {
            let v = x[i][k];
            let gt = v.abs() > amax[k];
            amax[k] = if gt { v.abs() } else { amax[k] };
            max[k] = if gt { v } else { max[k] };
        }
    }
    let mut live = [0u32; 16];
    for k in 0..16 {
        // amax is never NaN (it only grows by `>`), so this is `!(amax < eps)`
        live[k] = (amax[k] >= crate::k_quants::GROUP_MAX_EPS) as u32;
    }
    let mut w = [[0f32; 16]; 16];
    let mut wx = [[0f32; 16]; 16];
    for i in 0..16 {
        for k in 0..16 {
            w[i][k] = match qw {
                Some(q) => q[i][k],
                None => x[i][k] * x[i][k],
            };
            wx[i][k] = w[i][k] * x[i][k];
        }
    }
    let fmax = nmax as f32;
    let iscale_of = |step: i32| {
        let mut is = [0f32; 16];
        for k in 0..16 {
            // step 0 gives -(nmax + 0) / max, bit-identical to ggml's -nmax / max start
            is[k] = -(fmax + 0.1f32 * step as f32) / max[k];
        }
        is
    };
    // the start and the first try (is = -9) together, then the other tries two by two
    let (is0, is1) = (iscale_of(0), iscale_of(-9));
    let (slx, sl2, slx1, sl21) = qx_sums2(nmax, x, &w, &wx, &is0, &is1);
    let mut scale = [0f32; 16];
    let mut best = [0f32; 16];
    for k in 0..16 {
        scale[k] = if sl2[k] != 0.0 { slx[k] / sl2[k] } else { 0.0 };
        best[k] = scale[k] * slx[k];
    }
    let mut best_is = is0;
    let mut consider = |is: &[f32; 16], slx: &[f32; 16], sl2: &[f32; 16]| {
        for k in 0..16 {
            let better = ((sl2[k] > 0.0) as u32) & ((slx[k] * slx[k] > best[k] * sl2[k]) as u32);
            let m = 0u32.wrapping_sub(better);
            let s = slx[k] / sl2[k];
            scale[k] = select(m, s, scale[k]);
            best[k] = select(m, s * slx[k], best[k]);
            best_is[k] = select(m, is[k], best_is[k]);
        }
    };
    consider(&is1, &slx1, &sl21);
    // is = -8..=9 without 0, in order
    let steps: [i32; 17] = [-8, -7, -6, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    let mut c = 0;
    while c < steps.len() {
        let a = iscale_of(steps[c]);
        if c + 1 < steps.len() {
            let b = iscale_of(steps[c + 1]);
            let (slx_a, sl2_a, slx_b, sl2_b) = qx_sums2(nmax, x, &w, &wx, &a, &b);
            consider(&a, &slx_a, &sl2_a);
            consider(&b, &slx_b, &sl2_b);
        } else {
            let (slx_a, sl2_a, _, _) = qx_sums2(nmax, x, &w, &wx, &a, &a);
            consider(&a, &slx_a, &sl2_a);
        }
        c += 2;
    }
    for k in 0..16 {
        if live[k] == 0 {
            scale[k] = 0.0;
        }
    }
    (scale, best_is, live)
}

/// One Q6_K super-block (see `k_quants::quantize_block_q6_k`, the reference).
#[inline(always)]
fn q6_k_block(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let mut xt = [[0f32; 16]; 16];
    for k in 0..16 {
        for i in 0..16 {
            xt[i][k] = x[16 * k + i];
        }
    }
    let mut qt = [[0f32; 16]; 16];
    if let Some(q) = qw {
        for k in 0..16 {
            for i in 0..16 {
                qt[i][k] = q[16 * k + i];
            }
        }
    }
    let (scales, best_is, live) = qx_groups(32, &xt, qw.map(|_| &qt));
    let mut max_scale = 0.0f32;
    let mut max_abs_scale = 0.0f32;
    for &scale in &scales {
        if scale.abs() > max_abs_scale {
            max_abs_scale = scale.abs();
            max_scale = scale;
        }
    }
    if max_abs_scale < crate::k_quants::GROUP_MAX_EPS {
        y.iter_mut().for_each(|b| *b = 0);
        return;
    }
    let iscale = -128.0f32 / max_scale;
    let d = crate::float::write_f16(&mut y[208..210], 1.0 / iscale);
    for ib in 0..16 {
        y[192 + ib] = nearest_int(iscale * scales[ib]).min(127) as i8 as u8;
    }
    let mut levels = [0i8; QK_K];
    for j in 0..16 {
        let dl = d * (y[192 + j] as i8) as f32;
        let xs = &x[16 * j..16 * j + 16];
        let ls = &mut levels[16 * j..16 * j + 16];
        if dl != 0.0 {
            for (l, &v) in ls.iter_mut().zip(xs) {
                *l = (nearest_int(v / dl).clamp(-32, 31) + 32) as i8;
            }
        } else if live[j] != 0 {
            // the search's levels stay where the stored scale is zero
            for (l, &v) in ls.iter_mut().zip(xs) {
                *l = (nearest_int(best_is[j] * v).clamp(-32, 31) + 32) as i8;
            }
        }
    }
    crate::k_quants::pack_q6_k(&levels, &mut y[0..192]);
}

#[inline(always)]
fn q6_k_rows_body(src: &[f32], dst: &mut [u8], importance: Option<&[f32]>) {
    for (b, (x, y)) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(210))
        .enumerate()
    {
        let qw = importance.map(|q| &q[(b * QK_K) % q.len()..][..QK_K]);
        q6_k_block(x, y, qw);
    }
}

/// Q6_K rows with each super-block's 16 scale searches side by side; `importance` (the imatrix
/// row, one weight per column) when given.
pub(crate) fn quantize_q6_k_rows(src: &[f32], dst: &mut [u8], importance: Option<&[f32]>) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(src: &[f32], dst: &mut [u8], importance: Option<&[f32]>) {
            q6_k_rows_body(src, dst, importance)
        }
        #[target_feature(enable = "avx2")]
        fn avx2(src: &[f32], dst: &mut [u8], importance: Option<&[f32]>) {
            q6_k_rows_body(src, dst, importance)
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { avx512(src, dst, importance) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2(src, dst, importance) };
        }
    }
    q6_k_rows_body(src, dst, importance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::k_quants::make_qkx2_quants_scalar;

    /// xorshift32 values: mostly weight-like, sometimes constant, one-signed or tiny groups.
    fn values(seed: u32, n: usize) -> Vec<f32> {
        let mut s = seed | 1;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            let kind = next() % 10;
            for _ in 0..SUB {
                let r = next();
                let u = (r >> 8) as f32 / (1u32 << 24) as f32;
                out.push(match kind {
                    0 => 0.0,
                    1 => -0.25,
                    2 => u * 0.1,
                    3 => -u,
                    4 => ((r % 7) as f32 - 3.0) * 0.5,
                    5 => (u - 0.5) * 1e-20,
                    6 => 0.125,
                    _ => (u - 0.5) * 0.05,
                });
            }
        }
        out
    }

    #[test]
    fn sub_block_lanes_match_the_scalar_search() {
        for &(nmax, rmin, nstep) in &[(15, -1.0f32, 20), (31, -0.5, 15), (15, -1.0, 0)] {
            for seed in 0..300u32 {
                let x = values(seed * 7919 + 1, 16 * SUB);
                let mut xt = [[0f32; 16]; SUB];
                let mut wt = [[0f32; 16]; SUB];
                for k in 0..16 {
                    for i in 0..SUB {
                        xt[i][k] = x[SUB * k + i];
                        wt[i][k] = x[SUB * k + i].abs() + 0.01 * (i as f32);
                    }
                }
                let (scale, neg_min, is, m, flat) =
                    qkx2_groups::<16>(nmax, &xt, &wt, rmin, 0.1, nstep);
                for k in 0..16 {
                    let xs = &x[SUB * k..SUB * (k + 1)];
                    let ws: Vec<f32> = (0..SUB).map(|i| wt[i][k]).collect();
                    let mut want = [0u8; SUB];
                    let (ws_, wm) =
                        make_qkx2_quants_scalar(nmax, xs, &ws, &mut want, rmin, 0.1, nstep, false);
                    assert_eq!(
                        (scale[k].to_bits(), neg_min[k].to_bits()),
                        (ws_.to_bits(), wm.to_bits()),
                        "{xs:?}"
                    );
                    let got: Vec<u8> = xs
                        .iter()
                        .map(|&v| {
                            if flat[k] {
                                0
                            } else {
                                nearest_int(is[k] * (v - m[k])).clamp(0, nmax) as u8
                            }
                        })
                        .collect();
                    assert_eq!(got, want, "{xs:?}");
                }
            }
        }
    }

    #[test]
    fn rows_match_the_blockwise_kernels() {
        use crate::k_quants::*;
        // 1, 2, 3 and 5 super-blocks: pairs and a left-over one
        for (seed, blocks) in [(1u32, 1usize), (2, 2), (3, 3), (4, 5), (5, 8)] {
            let x = values(seed, blocks * QK_K);
            for (bb, fast, slow) in [
                (
                    144,
                    quantize_row_q4_k as fn(&[f32], &mut [u8]),
                    quantize_row_q4_k_blockwise as fn(&[f32], &mut [u8]),
                ),
                (176, quantize_row_q5_k, quantize_row_q5_k_blockwise),
            ] {
                let mut a = vec![0u8; blocks * bb];
                let mut b = vec![0u8; blocks * bb];
                fast(&x, &mut a);
                slow(&x, &mut b);
                assert_eq!(a, b, "{blocks} super-blocks of {bb} bytes");
                // the same code compiled without the CPU-specific features, one super-block and
                // two at a time
                let f = if bb == 144 {
                    K4Format {
                        block_bytes: 144,
                        nmax: 15,
                        rmin: -1.0,
                        nstep: 20,
                        pack: pack_q4_k,
                    }
                } else {
                    K4Format {
                        block_bytes: 176,
                        nmax: 31,
                        rmin: -0.5,
                        nstep: 15,
                        pack: pack_q5_k,
                    }
                };
                rows_body::<1, 8>(&x, &mut a, f);
                assert_eq!(a, b, "portable, {blocks} super-blocks of {bb} bytes");
                rows_body::<2, 16>(&x, &mut a, f);
                assert_eq!(a, b, "portable pairs, {blocks} super-blocks of {bb} bytes");
            }
        }
    }

    #[test]
    fn q6_k_rows_match_the_blockwise_kernel() {
        use crate::k_quants::*;
        for (seed, blocks) in [(11u32, 1usize), (12, 3), (13, 8), (14, 16)] {
            let x = values(seed, blocks * QK_K);
            let qw: Vec<f32> = values(seed + 100, QK_K)
                .iter()
                .map(|v| v.abs() + 0.001)
                .collect();
            let mut a = vec![0u8; blocks * 210];
            let mut b = vec![0u8; blocks * 210];
            quantize_row_q6_k(&x, &mut a);
            quantize_row_q6_k_blockwise(&x, &mut b);
            assert_eq!(a, b, "{blocks} super-blocks");
            q6_k_rows_body(&x, &mut a, None);
            assert_eq!(a, b, "portable, {blocks} super-blocks");
            // weighted: one imatrix row of 256 columns, repeated per super-block
            let row: Vec<f32> = (0..blocks).flat_map(|_| qw.iter().copied()).collect();
            quantize_row_q6_k_weighted(&x, &mut a, &row);
            quantize_row_q6_k_weighted_blockwise(&x, &mut b, &row);
            assert_eq!(a, b, "{blocks} weighted super-blocks");
        }
    }
}
