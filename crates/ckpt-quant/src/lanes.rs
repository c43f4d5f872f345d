//! Candidate-parallel versions of ggml's scale searches (make_qkx2_quants, make_qx_quants).
//!
//! Each search tries a series of candidate inverse scales over the same few values and keeps the
//! best. The sums inside one candidate are sequential (and must stay so to be bit-exact), but the
//! candidates are independent, so they are evaluated [`LANES`] at a time: lane k runs exactly the
//! scalar loop of candidate k, same operations in the same order, which lets the compiler put the
//! lanes in one SIMD register without changing a single rounding. The sequential "is it better
//! than the best so far" walk then runs over the finished candidates in their original order.
//!
//! make_qkx2_quants moves `min` to the winner's least-squares min, which changes the later
//! candidates; a group evaluated before such a win is discarded from that point and the search
//! resumes with the new `min`, so the result is the scalar loop's exactly.

use crate::k_quants::nearest_int;

/// Candidates evaluated together (8 f32 = one AVX2 register).
pub(crate) const LANES: usize = 8;
/// The longest group these searches handle (ggml's K-quant sub-blocks have 16 or 32 values).
pub(crate) const MAX_GROUP: usize = 32;

/// Levels of LANES candidates for the values x[i] - min, with the three weighted sums of
/// make_qkx2_quants' inner loop; `levels[i][k]` is candidate k's level of value i (as f32).
#[inline(always)]
fn qkx2_candidate_sums(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    min: f32,
    iscale: &[f32; LANES],
    levels: &mut [[f32; LANES]; MAX_GROUP],
) -> [[f32; LANES]; 3] {
    let mut sum_l = [0f32; LANES];
    let mut sum_l2 = [0f32; LANES];
    let mut sum_xl = [0f32; LANES];
    for ((&xi, &w), lv) in x.iter().zip(weights).zip(levels.iter_mut()) {
        let shifted = xi - min;
        for k in 0..LANES {
            let l = nearest_int(iscale[k] * shifted).clamp(0, nmax) as f32;
            lv[k] = l;
            let wl = w * l;
            sum_l[k] += wl;
            sum_l2[k] += wl * l;
            sum_xl[k] += wl * xi;
        }
    }
    [sum_l, sum_l2, sum_xl]
}

/// Weighted error of LANES (scale, min) reconstructions: sum of w * |d| (MAD) or w * d^2 with
/// d = scale * level + min - x.
#[inline(always)]
fn qkx2_candidate_errors<const MAD: bool>(
    x: &[f32],
    weights: &[f32],
    levels: &[[f32; LANES]; MAX_GROUP],
    scale: &[f32; LANES],
    min: &[f32; LANES],
) -> [f32; LANES] {
    let mut error = [0f32; LANES];
    for ((&xi, &w), lv) in x.iter().zip(weights).zip(levels.iter()) {
        for k in 0..LANES {
            let diff = scale[k] * lv[k] + min[k] - xi;
            let e = if MAD { diff.abs() } else { diff * diff };
            error[k] += w * e;
        }
    }
    error
}

/// make_qkx2_quants (see `k_quants::make_qkx2_quants_scalar`) for `x.len() <= MAX_GROUP`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_qkx2_quants<const MAD: bool>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        #[allow(clippy::too_many_arguments)]
        unsafe fn avx2<const MAD: bool>(
            nmax: i32,
            x: &[f32],
            weights: &[f32],
            levels: &mut [u8],
            rmin: f32,
            rdelta: f32,
            nstep: i32,
        ) -> (f32, f32) {
            qkx2_body::<MAD>(nmax, x, weights, levels, rmin, rdelta, nstep)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the lanes then fill one register.
            return unsafe { avx2::<MAD>(nmax, x, weights, levels, rmin, rdelta, nstep) };
        }
    }
    qkx2_body::<MAD>(nmax, x, weights, levels, rmin, rdelta, nstep)
}

#[inline(always)]
fn qkx2_body<const MAD: bool>(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    levels: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
) -> (f32, f32) {
    let n = x.len();
    debug_assert!(n <= MAX_GROUP && weights.len() >= n && levels.len() >= n);
    let weights = &weights[..n];
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
        levels[..n].iter_mut().for_each(|l| *l = 0);
        return (0.0, -min);
    }
    // Candidate 0 is the plain nmax / (max - min) start, candidate j >= 1 is search step j - 1.
    let n_candidates = if nstep < 1 { 1 } else { nstep as usize + 2 };
    let mut scale = 0.0f32;
    let mut best_error = 0.0f32;
    // the candidate whose levels are kept: (inverse scale, min it was applied to)
    let mut best_levels = (0.0f32, min);
    let mut group_levels = [[0f32; LANES]; MAX_GROUP];
    let mut next = 0;
    while next < n_candidates {
        let count = LANES.min(n_candidates - next);
        let mut iscale = [0f32; LANES];
        for (k, slot) in iscale.iter_mut().enumerate().take(count) {
            let c = next + k;
            *slot = if c == 0 {
                nmax as f32 / (max - min)
            } else {
                (rmin + rdelta * (c - 1) as f32 + nmax as f32) / (max - min)
            };
        }
        let [sum_l, sum_l2, sum_xl] =
            qkx2_candidate_sums(nmax, x, weights, min, &iscale, &mut group_levels);
        let mut this_scale = [0f32; LANES];
        let mut this_min = [0f32; LANES];
        let mut usable = [false; LANES];
        for k in 0..count {
            if next + k == 0 {
                this_scale[k] = 1.0 / iscale[k];
                this_min[k] = min;
                usable[k] = true;
                continue;
            }
            let det = sum_w * sum_l2[k] - sum_l[k] * sum_l[k];
            if det > 0.0 {
                let mut s = (sum_w * sum_xl[k] - sum_x * sum_l[k]) / det;
                let mut m = (sum_l2[k] * sum_x - sum_l[k] * sum_xl[k]) / det;
                if m > 0.0 {
                    m = 0.0;
                    s = sum_xl[k] / sum_l2[k];
                }
                this_scale[k] = s;
                this_min[k] = m;
                usable[k] = true;
            }
        }
        let error = qkx2_candidate_errors::<MAD>(x, weights, &group_levels, &this_scale, &this_min);
        let (first, group_min) = (next, min);
        next = first + count;
        for k in 0..count {
            if first + k == 0 {
                best_error = error[k];
                scale = this_scale[k];
                best_levels = (iscale[k], group_min);
                continue;
            }
            if usable[k] && error[k] < best_error {
                best_error = error[k];
                scale = this_scale[k];
                best_levels = (iscale[k], group_min);
                if this_min[k].to_bits() != min.to_bits() {
                    // later candidates of this group used the old min: redo them
                    min = this_min[k];
                    next = first + k + 1;
                    break;
                }
            }
        }
    }
    let (iscale, applied_to) = best_levels;
    for (l, &xi) in levels.iter_mut().zip(x) {
        *l = nearest_int(iscale * (xi - applied_to)).clamp(0, nmax) as u8;
    }
    (scale, -min)
}

/// make_qx_quants (see `k_quants::make_qx_quants_scalar`) for `x.len() <= MAX_GROUP`.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], levels: &mut [i8], qw: Option<&[f32]>) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        unsafe fn avx2(nmax: i32, x: &[f32], levels: &mut [i8], qw: Option<&[f32]>) -> f32 {
            qx_body(nmax, x, levels, qw)
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2 (checked just above); the lanes then fill one register.
            return unsafe { avx2(nmax, x, levels, qw) };
        }
    }
    qx_body(nmax, x, levels, qw)
}

/// The 19 candidates of make_qx_quants: the plain -nmax / max start, then is = -9..=9 without 0.
const QX_CANDIDATES: usize = 19;

fn qx_step(candidate: usize) -> i32 {
    match candidate {
        0 => 0,
        c if c <= 9 => c as i32 - 10,
        c => c as i32 - 9,
    }
}

#[inline(always)]
fn qx_body(nmax: i32, x: &[f32], levels: &mut [i8], qw: Option<&[f32]>) -> f32 {
    let n = x.len();
    debug_assert!(n <= MAX_GROUP && levels.len() >= n);
    let mut max = 0.0f32;
    let mut amax = 0.0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < crate::k_quants::GROUP_MAX_EPS {
        levels[..n].iter_mut().for_each(|l| *l = 0);
        return 0.0;
    }
    // w * x[i], the factor of sumlx that does not depend on the level (computed first in ggml too)
    let mut weight = [0f32; MAX_GROUP];
    let mut weighted_x = [0f32; MAX_GROUP];
    for i in 0..n {
        let w = match qw {
            Some(q) => q[i],
            None => x[i] * x[i],
        };
        weight[i] = w;
        weighted_x[i] = w * x[i];
    }
    let mut iscale = [0f32; 3 * LANES];
    let mut sumlx = [0f32; 3 * LANES];
    let mut suml2 = [0f32; 3 * LANES];
    for (c, slot) in iscale.iter_mut().enumerate().take(QX_CANDIDATES) {
        // is = 0 gives -(nmax + 0) / max, bit-identical to ggml's -nmax / max start
        *slot = -(nmax as f32 + 0.1f32 * qx_step(c) as f32) / max;
    }
    for g in 0..3 {
        let lanes = g * LANES..(g + 1) * LANES;
        let is: &[f32; LANES] = iscale[lanes.clone()].try_into().unwrap();
        let mut slx = [0f32; LANES];
        let mut sl2 = [0f32; LANES];
        for i in 0..n {
            let (xi, w, wx) = (x[i], weight[i], weighted_x[i]);
            for k in 0..LANES {
                let l = nearest_int(is[k] * xi).clamp(-nmax, nmax - 1) as f32;
                slx[k] += wx * l;
                sl2[k] += w * l * l;
            }
        }
        sumlx[lanes.clone()].copy_from_slice(&slx);
        suml2[lanes].copy_from_slice(&sl2);
    }
    let mut scale = if suml2[0] != 0.0 {
        sumlx[0] / suml2[0]
    } else {
        0.0
    };
    let mut best = scale * sumlx[0];
    let mut best_iscale = iscale[0];
    for c in 1..QX_CANDIDATES {
        if suml2[c] > 0.0 && sumlx[c] * sumlx[c] > best * suml2[c] {
            scale = sumlx[c] / suml2[c];
            best = scale * sumlx[c];
            best_iscale = iscale[c];
        }
    }
    for (l, &xi) in levels.iter_mut().zip(x) {
        *l = (nearest_int(best_iscale * xi).clamp(-nmax, nmax - 1) + nmax) as i8;
    }
    scale
}

#[cfg(test)]
mod tests {
    use crate::k_quants::{make_qkx2_quants_scalar, make_qx_quants_scalar};

    /// xorshift32 stream
    struct Words(u32);

    impl Words {
        fn next(&mut self) -> u32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 17;
            self.0 ^= self.0 << 5;
            self.0
        }

        /// Mostly realistic weights-like values, sometimes special cases that stress ties,
        /// constant groups, one-signed groups and non-finite values.
        fn group(&mut self, n: usize) -> Vec<f32> {
            let kind = self.next() % 8;
            (0..n)
                .map(|_| {
                    let r = self.next();
                    let u = (r >> 8) as f32 / (1u32 << 24) as f32; // [0, 1)
                    match kind {
                        0 => f32::from_bits(r),
                        1 => 0.25,
                        2 => u * 0.1,
                        3 => -u,
                        4 => ((r % 7) as f32 - 3.0) * 0.5,
                        _ => (u - 0.5) * 0.05,
                    }
                })
                .collect()
        }
    }

    #[test]
    fn qkx2_candidate_parallel_search_is_bit_identical_to_scalar() {
        let mut words = Words(12345);
        // (n, nmax, rmin, rdelta, nstep, mad): Q2_K, Q4_K, Q5_K and degenerate step counts
        let configs = [
            (16, 3, -0.5f32, 0.1f32, 15, true),
            (32, 15, -1.0, 0.1, 20, false),
            (32, 31, -0.5, 0.1, 15, false),
            (32, 15, -1.0, 0.1, 0, false),
            (24, 7, -0.9, 0.05, 6, true),
        ];
        for _ in 0..4000 {
            for &(n, nmax, rmin, rdelta, nstep, mad) in &configs {
                let x = words.group(n);
                let weights: Vec<f32> = if words.next().is_multiple_of(2) {
                    x.iter().map(|v| v.abs()).collect()
                } else {
                    words.group(n).iter().map(|v| v.abs() + 0.01).collect()
                };
                let mut want = vec![0u8; n];
                let mut got = vec![0u8; n];
                let (ws, wm) = make_qkx2_quants_scalar(
                    nmax, &x, &weights, &mut want, rmin, rdelta, nstep, mad,
                );
                let (gs, gm) = if mad {
                    super::make_qkx2_quants::<true>(
                        nmax, &x, &weights, &mut got, rmin, rdelta, nstep,
                    )
                } else {
                    super::make_qkx2_quants::<false>(
                        nmax, &x, &weights, &mut got, rmin, rdelta, nstep,
                    )
                };
                assert_eq!(
                    (gs.to_bits(), gm.to_bits()),
                    (ws.to_bits(), wm.to_bits()),
                    "{x:?}"
                );
                assert_eq!(got, want, "{x:?}");
            }
        }
    }

    #[test]
    fn qx_candidate_parallel_search_is_bit_identical_to_scalar() {
        let mut words = Words(777);
        for _ in 0..4000 {
            for &(n, nmax, with_qw) in &[
                (16, 32, false),
                (16, 4, true),
                (32, 8, true),
                (16, 32, true),
            ] {
                let x = words.group(n);
                let qw: Option<Vec<f32>> =
                    with_qw.then(|| words.group(n).iter().map(|v| v.abs()).collect());
                // NaN/Inf rows never reach the kernels (quantize_gguf refuses them first, like
                // llama-quantize's validation), and NaN payloads depend on operand order.
                if x.iter().chain(qw.iter().flatten()).any(|v| !v.is_finite()) {
                    continue;
                }
                let mut want = vec![0i8; n];
                let mut got = vec![0i8; n];
                let ws = make_qx_quants_scalar(nmax, &x, &mut want, qw.as_deref());
                let gs = super::make_qx_quants(nmax, &x, &mut got, qw.as_deref());
                assert_eq!(gs.to_bits(), ws.to_bits(), "{x:?}");
                assert_eq!(got, want, "{x:?}");
            }
        }
    }
}
