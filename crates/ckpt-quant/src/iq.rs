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
    #[cfg(target_arch = "x86_64")]
    {
        if avx512::available() {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { avx512::quantize_block_iq4_nl(x, y, qw) };
        }
        if avx2::available() {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2::quantize_block_iq4_nl(x, y, qw) };
        }
    }
    quantize_block_iq4_nl_scalar(x, y, qw)
}

/// [`quantize_block_iq4_nl`] one candidate and one value at a time, as in ggml.
fn quantize_block_iq4_nl_scalar(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
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
    #[cfg(target_arch = "x86_64")]
    {
        if avx512::available() {
            // SAFETY: the CPU supports AVX-512F (checked just above).
            return unsafe { avx512::quantize_block_iq4_xs(x, y, qw) };
        }
        if avx2::available() {
            // SAFETY: the CPU supports AVX2 (checked just above).
            return unsafe { avx2::quantize_block_iq4_xs(x, y, qw) };
        }
    }
    quantize_block_iq4_xs_scalar(x, y, qw)
}

/// [`quantize_block_iq4_xs`] one candidate and one value at a time, as in ggml.
fn quantize_block_iq4_xs_scalar(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
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

/// The 16 candidates of the scale search evaluated in the 16 lanes of one AVX-512 register:
/// lane 0 is the plain -max / values[0] start, lane c >= 1 the try itry = c - 8. Each lane runs the
/// scalar loop of its candidate (same operations, same order); `best_index` becomes a branchless
/// binary search over the level table held in a register, with the same tie rule. The "better
/// than the best so far" walk then runs over the finished sums in the original order.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{iq4_sigma2, iq4_weights, pack_nibbles, KVALUES_IQ4NL};
    use crate::float::write_f16;
    use crate::k_quants::{nearest_int, GROUP_MAX_EPS, QK_K};

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
    }

    const fn table_f32() -> [f32; 16] {
        let mut t = [0f32; 16];
        let mut i = 0;
        while i < 16 {
            t[i] = KVALUES_IQ4NL[i] as f32;
            i += 1;
        }
        t
    }
    static TABLE: [f32; 16] = table_f32();

    #[inline]
    #[target_feature(enable = "avx512f")]
    fn table() -> __m512 {
        // SAFETY: TABLE holds 16 f32.
        unsafe { _mm512_loadu_ps(TABLE.as_ptr()) }
    }

    /// best_index_int8 of 16 values at once (indices 0..=15 as i32 lanes).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn best_index(al: __m512, tbl: __m512) -> __m512i {
        let one = _mm512_set1_epi32(1);
        // ml = the largest k with !(al < values[k]) (0 when none): values[ml] <= al < values[ml+1]
        let mut ml = _mm512_setzero_si512();
        for step in [8, 4, 2, 1] {
            let cand = _mm512_add_epi32(ml, _mm512_set1_epi32(step));
            let v = _mm512_permutexvar_ps(cand, tbl);
            let ge = _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(al, v);
            ml = _mm512_mask_mov_epi32(ml, ge, cand);
        }
        // scalar: below values[0] -> 0, above values[15] -> 15, else the nearer of the bracket
        // values[mu - 1] <= al < values[mu] (ties to mu); the clamp gives the same for the ends.
        let mu = _mm512_min_epi32(_mm512_add_epi32(ml, one), _mm512_set1_epi32(15));
        let lo = _mm512_permutexvar_ps(_mm512_sub_epi32(mu, one), tbl);
        let hi = _mm512_permutexvar_ps(mu, tbl);
        let take_lo =
            _mm512_cmp_ps_mask::<_CMP_LT_OQ>(_mm512_sub_ps(al, lo), _mm512_sub_ps(hi, al));
        _mm512_mask_sub_epi32(mu, take_lo, mu, one)
    }

    /// iq4_block_scale: the scale of one 32-value block (levels are recomputed by the callers).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn block_scale(xb: &[f32], weight: &[f32]) -> f32 {
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
        let v0 = KVALUES_IQ4NL[0] as f32;
        let d0 = -max / v0;
        let mut ids = [0f32; 16];
        ids[0] = 1.0 / d0;
        for (c, id) in ids.iter_mut().enumerate().skip(1) {
            let itry = c as i32 - 8;
            *id = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
        }
        let tbl = table();
        // SAFETY: ids holds 16 f32.
        let id = unsafe { _mm512_loadu_ps(ids.as_ptr()) };
        let mut sumqx = _mm512_setzero_ps();
        let mut sumq2 = _mm512_setzero_ps();
        for (&xj, &wj) in xb.iter().zip(weight) {
            let x = _mm512_set1_ps(xj);
            let al = _mm512_mul_ps(id, x);
            let q = _mm512_permutexvar_ps(best_index(al, tbl), tbl);
            let wq = _mm512_mul_ps(_mm512_set1_ps(wj), q);
            sumqx = _mm512_add_ps(sumqx, _mm512_mul_ps(wq, x));
            sumq2 = _mm512_add_ps(sumq2, _mm512_mul_ps(wq, q));
        }
        let (mut sx, mut s2) = ([0f32; 16], [0f32; 16]);
        // SAFETY: both hold 16 f32.
        unsafe {
            _mm512_storeu_ps(sx.as_mut_ptr(), sumqx);
            _mm512_storeu_ps(s2.as_mut_ptr(), sumq2);
        }
        let mut d = if s2[0] > 0.0 { sx[0] / s2[0] } else { 0.0 };
        let mut best = d * sx[0];
        for c in 1..16 {
            if s2[c] > 0.0 && sx[c] * sx[c] > best * s2[c] {
                d = sx[c] / s2[c];
                best = d * sx[c];
            }
        }
        d
    }

    /// best_index of `id * x[j]` for 16 values.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn levels16(x: &[f32], id: f32, out: &mut [u8]) {
        let tbl = table();
        // SAFETY: x holds at least 16 f32 (callers pass 16-value halves of a block).
        let v = unsafe { _mm512_loadu_ps(x.as_ptr()) };
        let idx = best_index(_mm512_mul_ps(_mm512_set1_ps(id), v), tbl);
        let mut lanes = [0i32; 16];
        // SAFETY: lanes holds 16 i32.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), idx) };
        for (o, &l) in out.iter_mut().zip(&lanes) {
            *o = l as u8;
        }
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn quantize_block_iq4_nl(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
        let sigma2 = iq4_sigma2(x);
        let mut weight = [0f32; 32];
        let mut l = [0u8; 32];
        iq4_weights(x, qw, sigma2, &mut weight);
        let scale = block_scale(x, &weight);
        write_f16(&mut y[0..2], scale);
        let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        levels16(&x[..16], id, &mut l[..16]);
        levels16(&x[16..32], id, &mut l[16..]);
        pack_nibbles(&l, &mut y[2..18]);
    }

    #[target_feature(enable = "avx512f")]
    pub(super) fn quantize_block_iq4_xs(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
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
            let d = block_scale(xb, &weight);
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
            let (xb, lb) = (&x[32 * ib..32 * ib + 32], &mut l[32 * ib..32 * ib + 32]);
            levels16(&xb[..16], idl, &mut lb[..16]);
            levels16(&xb[16..], idl, &mut lb[16..]);
            let lu = (ls + 32) as u8;
            scales_l[ib / 2] |= (lu & 0xF) << (4 * (ib % 2));
            scales_h |= ((lu >> 4) as u16) << (2 * ib);
        }
        y[2..4].copy_from_slice(&scales_h.to_le_bytes());
        y[4..8].copy_from_slice(&scales_l);
        pack_nibbles(&l, &mut y[8..136]);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn best_index_matches_the_scalar_search() {
            if !available() {
                return;
            }
            for chunk in super::super::test_support::probes().chunks(16) {
                let mut buf = [0f32; 16];
                buf[..chunk.len()].copy_from_slice(chunk);
                let mut got = [0u8; 16];
                // SAFETY: checked available() above.
                unsafe { levels16(&buf, 1.0, &mut got) };
                for (v, g) in buf.iter().zip(got) {
                    assert_eq!(g, super::super::best_index(&KVALUES_IQ4NL, 1.0 * v), "{v}");
                }
            }
        }

        #[test]
        fn blocks_match_the_scalar_kernels() {
            if !available() {
                return;
            }
            // SAFETY (both closures): checked available() above.
            super::super::test_support::blocks_match_the_scalar_kernels(
                "AVX-512",
                |x, y, w| unsafe { quantize_block_iq4_xs(x, y, w) },
                |x, y, w| unsafe { quantize_block_iq4_nl(x, y, w) },
            );
        }
    }
}

/// The 16 candidates of the scale search in the lanes of two AVX2 registers (candidates 0-7 and
/// 8-15, numbered as in [`avx512`]); each lane runs its candidate's scalar loop (same operations,
/// same order). The 16-level table is looked up as two 8-entry halves, picked by bit 3 of the
/// index; `best_index` is the same branchless binary search with the same tie rule.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{iq4_sigma2, iq4_weights, pack_nibbles, KVALUES_IQ4NL};
    use crate::float::write_f16;
    use crate::k_quants::{nearest_int, GROUP_MAX_EPS, QK_K};

    pub(super) fn available() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    const fn table_f32() -> [f32; 16] {
        let mut t = [0f32; 16];
        let mut i = 0;
        while i < 16 {
            t[i] = KVALUES_IQ4NL[i] as f32;
            i += 1;
        }
        t
    }
    static TABLE: [f32; 16] = table_f32();

    /// The level table as its two halves.
    #[derive(Clone, Copy)]
    struct Table {
        lo: __m256,
        hi: __m256,
    }

    #[inline]
    #[target_feature(enable = "avx2")]
    fn table() -> Table {
        // SAFETY: TABLE holds 16 f32.
        unsafe {
            Table {
                lo: _mm256_loadu_ps(TABLE.as_ptr()),
                hi: _mm256_loadu_ps(TABLE.as_ptr().add(8)),
            }
        }
    }

    /// `values[idx]` for eight indices in 0..=15.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn lookup(idx: __m256i, t: Table) -> __m256 {
        let a = _mm256_permutevar8x32_ps(t.lo, idx);
        let b = _mm256_permutevar8x32_ps(t.hi, idx);
        // bit 3 of the index moved to the sign bit picks the upper half
        _mm256_blendv_ps(a, b, _mm256_castsi256_ps(_mm256_slli_epi32::<28>(idx)))
    }

    /// best_index_int8 of 8 values at once (indices 0..=15 as i32 lanes).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn best_index(al: __m256, t: Table) -> __m256i {
        let one = _mm256_set1_epi32(1);
        // ml = the largest k with !(al < values[k]) (0 when none): values[ml] <= al < values[ml+1]
        let mut ml = _mm256_setzero_si256();
        for step in [8, 4, 2, 1] {
            let cand = _mm256_add_epi32(ml, _mm256_set1_epi32(step));
            let ge = _mm256_cmp_ps::<_CMP_NLT_UQ>(al, lookup(cand, t));
            ml = _mm256_castps_si256(_mm256_blendv_ps(
                _mm256_castsi256_ps(ml),
                _mm256_castsi256_ps(cand),
                ge,
            ));
        }
        // below values[0] -> 0, above values[15] -> 15, else the nearer of the bracket
        // values[mu - 1] <= al < values[mu] (ties to mu); the clamp gives the same for the ends.
        let mu = _mm256_min_epi32(_mm256_add_epi32(ml, one), _mm256_set1_epi32(15));
        let lo = lookup(_mm256_sub_epi32(mu, one), t);
        let hi = lookup(mu, t);
        let take_lo = _mm256_cmp_ps::<_CMP_LT_OQ>(_mm256_sub_ps(al, lo), _mm256_sub_ps(hi, al));
        // a true comparison is all ones: -1
        _mm256_add_epi32(mu, _mm256_castps_si256(take_lo))
    }

    /// iq4_block_scale: the scale of one 32-value block (levels are recomputed by the callers).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn block_scale(xb: &[f32], weight: &[f32]) -> f32 {
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
        let v0 = KVALUES_IQ4NL[0] as f32;
        let d0 = -max / v0;
        let mut ids = [0f32; 16];
        ids[0] = 1.0 / d0;
        for (c, id) in ids.iter_mut().enumerate().skip(1) {
            let itry = c as i32 - 8;
            *id = (itry + KVALUES_IQ4NL[0] as i32) as f32 / max;
        }
        let t = table();
        // SAFETY: ids holds 16 f32.
        let (id_a, id_b) = unsafe {
            (
                _mm256_loadu_ps(ids.as_ptr()),
                _mm256_loadu_ps(ids.as_ptr().add(8)),
            )
        };
        let (mut sx_a, mut s2_a) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let (mut sx_b, mut s2_b) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for (&xj, &wj) in xb.iter().zip(weight) {
            let x = _mm256_set1_ps(xj);
            let w = _mm256_set1_ps(wj);
            let q = lookup(best_index(_mm256_mul_ps(id_a, x), t), t);
            let wq = _mm256_mul_ps(w, q);
            sx_a = _mm256_add_ps(sx_a, _mm256_mul_ps(wq, x));
            s2_a = _mm256_add_ps(s2_a, _mm256_mul_ps(wq, q));
            let q = lookup(best_index(_mm256_mul_ps(id_b, x), t), t);
            let wq = _mm256_mul_ps(w, q);
            sx_b = _mm256_add_ps(sx_b, _mm256_mul_ps(wq, x));
            s2_b = _mm256_add_ps(s2_b, _mm256_mul_ps(wq, q));
        }
        let (mut sx, mut s2) = ([0f32; 16], [0f32; 16]);
        // SAFETY: both hold 16 f32.
        unsafe {
            _mm256_storeu_ps(sx.as_mut_ptr(), sx_a);
            _mm256_storeu_ps(sx.as_mut_ptr().add(8), sx_b);
            _mm256_storeu_ps(s2.as_mut_ptr(), s2_a);
            _mm256_storeu_ps(s2.as_mut_ptr().add(8), s2_b);
        }
        let mut d = if s2[0] > 0.0 { sx[0] / s2[0] } else { 0.0 };
        let mut best = d * sx[0];
        for c in 1..16 {
            if s2[c] > 0.0 && sx[c] * sx[c] > best * s2[c] {
                d = sx[c] / s2[c];
                best = d * sx[c];
            }
        }
        d
    }

    /// best_index of `id * x[j]` for 8 values.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn levels8(x: &[f32], id: f32, out: &mut [u8]) {
        assert!(x.len() >= 8 && out.len() >= 8);
        // SAFETY: x holds at least 8 f32 (asserted).
        let v = unsafe { _mm256_loadu_ps(x.as_ptr()) };
        let idx = best_index(_mm256_mul_ps(_mm256_set1_ps(id), v), table());
        let mut lanes = [0i32; 8];
        // SAFETY: lanes holds 8 i32.
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), idx) };
        for (o, &l) in out.iter_mut().zip(&lanes) {
            *o = l as u8;
        }
    }

    /// Levels of a 32-value block.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn levels32(x: &[f32], id: f32, out: &mut [u8]) {
        for (xs, o) in x.chunks_exact(8).zip(out.chunks_exact_mut(8)) {
            levels8(xs, id, o);
        }
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn quantize_block_iq4_nl(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
        let sigma2 = iq4_sigma2(x);
        let mut weight = [0f32; 32];
        let mut l = [0u8; 32];
        iq4_weights(x, qw, sigma2, &mut weight);
        let scale = block_scale(x, &weight);
        write_f16(&mut y[0..2], scale);
        let id = if scale != 0.0 { 1.0 / scale } else { 0.0 };
        levels32(x, id, &mut l);
        pack_nibbles(&l, &mut y[2..18]);
    }

    #[target_feature(enable = "avx2")]
    pub(super) fn quantize_block_iq4_xs(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
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
            let d = block_scale(xb, &weight);
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
            levels32(
                &x[32 * ib..32 * ib + 32],
                idl,
                &mut l[32 * ib..32 * ib + 32],
            );
            let lu = (ls + 32) as u8;
            scales_l[ib / 2] |= (lu & 0xF) << (4 * (ib % 2));
            scales_h |= ((lu >> 4) as u16) << (2 * ib);
        }
        y[2..4].copy_from_slice(&scales_h.to_le_bytes());
        y[4..8].copy_from_slice(&scales_l);
        pack_nibbles(&l, &mut y[8..136]);
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn best_index_matches_the_scalar_search() {
            if !available() {
                return;
            }
            for chunk in super::super::test_support::probes().chunks(8) {
                let mut buf = [0f32; 8];
                buf[..chunk.len()].copy_from_slice(chunk);
                let mut got = [0u8; 8];
                // SAFETY: checked available() above.
                unsafe { levels8(&buf, 1.0, &mut got) };
                for (v, g) in buf.iter().zip(got) {
                    assert_eq!(g, super::super::best_index(&KVALUES_IQ4NL, 1.0 * v), "{v}");
                }
            }
        }

        #[test]
        fn blocks_match_the_scalar_kernels() {
            if !available() {
                return;
            }
            // SAFETY (both closures): checked available() above.
            super::super::test_support::blocks_match_the_scalar_kernels(
                "AVX2",
                |x, y, w| unsafe { quantize_block_iq4_xs(x, y, w) },
                |x, y, w| unsafe { quantize_block_iq4_nl(x, y, w) },
            );
        }
    }
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

/// The inputs the vector kernels are checked on against the scalar ones.
#[cfg(test)]
mod test_support {
    use super::{KVALUES_IQ4NL, QK_K};

    /// Values around every level of the table (and its ends, NaN, infinities) for best_index.
    pub(super) fn probes() -> Vec<f32> {
        let mut probes: Vec<f32> = vec![
            f32::NEG_INFINITY,
            f32::INFINITY,
            f32::NAN,
            -0.0,
            0.0,
            f32::MIN_POSITIVE,
        ];
        for v in KVALUES_IQ4NL {
            for d in [-1.0f32, -0.5, -1e-6, 0.0, 1e-6, 0.5, 1.0] {
                probes.push(v as f32 + d);
            }
        }
        // the exact midpoints between neighbouring levels (the tie rule)
        for w in KVALUES_IQ4NL.windows(2) {
            probes.push((w[0] as f32 + w[1] as f32) / 2.0);
        }
        for i in 0..4000 {
            probes.push((i as f32 - 2000.0) * 0.0713);
        }
        probes
    }

    type Kernel<'a> = &'a dyn Fn(&[f32], &mut [u8], Option<&[f32]>);

    /// Super-blocks of several shapes (small, flat, tiny, zero-led, one-signed), with and without
    /// importance weights: `xs` and `nl` must give the scalar kernels' bytes.
    pub(super) fn blocks_match_the_scalar_kernels(
        what: &str,
        xs: impl Fn(&[f32], &mut [u8], Option<&[f32]>),
        nl: impl Fn(&[f32], &mut [u8], Option<&[f32]>),
    ) {
        let (xs, nl): (Kernel, Kernel) = (&xs, &nl);
        let mut s = 0x1234_5678u32;
        let mut next = move || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for round in 0..400 {
            let kind = round % 6;
            let x: Vec<f32> = (0..QK_K)
                .map(|i| {
                    let u = (next() >> 8) as f32 / (1u32 << 24) as f32;
                    match kind {
                        0 => (u - 0.5) * 0.05,
                        1 => u,
                        2 => ((i % 7) as f32 - 3.0) * 0.25,
                        3 => (u - 0.5) * 1e-12,
                        4 => {
                            if i % 32 == 0 {
                                0.0
                            } else {
                                (u - 0.3) * 3.0
                            }
                        }
                        _ => -u * 0.01,
                    }
                })
                .collect();
            let qw: Vec<f32> = (0..QK_K)
                .map(|_| (next() >> 8) as f32 / (1u32 << 24) as f32 + 0.01)
                .collect();
            for w in [None, Some(&qw[..])] {
                let (mut a, mut b) = ([0u8; 136], [0u8; 136]);
                xs(&x, &mut a, w);
                super::quantize_block_iq4_xs_scalar(&x, &mut b, w);
                assert_eq!(a, b, "{what} IQ4_XS round {round} weighted {}", w.is_some());
                for blk in 0..8 {
                    let r = 32 * blk..32 * blk + 32;
                    let (mut a, mut b) = ([0u8; 18], [0u8; 18]);
                    let wb = w.map(|w| &w[r.clone()]);
                    nl(&x[r.clone()], &mut a, wb);
                    super::quantize_block_iq4_nl_scalar(&x[r], &mut b, wb);
                    assert_eq!(a, b, "{what} IQ4_NL round {round} weighted {}", w.is_some());
                }
            }
        }
    }
}
