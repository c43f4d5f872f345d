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
    for k in 0..N {
        if min[k] > 0.0 {
            min[k] = 0.0;
        }
        flat[k] = max[k] == min[k];
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
        let mut usable = [false; N];
        for k in 0..N {
            let det = sum_w[k] * sum_l2[k] - sum_l[k] * sum_l[k];
            usable[k] = det > 0.0;
            let s = (sum_w[k] * sum_xl[k] - sum_x[k] * sum_l[k]) / det;
            let m = (sum_l2[k] * sum_x[k] - sum_l[k] * sum_xl[k]) / det;
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
        for k in 0..N {
            let better = usable[k] & !flat[k] & (error[k] < best_error[k]);
            best_error[k] = if better { error[k] } else { best_error[k] };
            scale[k] = if better { this_scale[k] } else { scale[k] };
            best_iscale[k] = if better { iscale[k] } else { best_iscale[k] };
            best_min[k] = if better { min[k] } else { best_min[k] };
            min[k] = if better { this_min[k] } else { min[k] };
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
                    let (ws_, wm) = make_qkx2_quants_scalar(
                        nmax, xs, &ws, &mut want, rmin, 0.1, nstep, false,
                    );
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
            }
        }
    }
}
