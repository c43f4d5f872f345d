//! The lattice ("i-quant") types IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S and IQ1_M:
//! quantization as ggml's `quantize_iq*` (the searches in ggml's operation order, f32 throughout,
//! no fused multiply-add) and dequantization as its `dequantize_row_iq*`.
//!
//! IQ2_XXS, IQ2_XS and IQ1_S have no kernel without importance weights (ggml asserts on one);
//! the others fall back to x^2 (or ggml's other) weights.

// Index loops mirror ggml's C loops one to one, which keeps the port easy to audit.
#![allow(clippy::needless_range_loop)]

use std::cmp::Ordering;

use crate::float::{f32_to_f16_bits, read_f16, write_f16};
use crate::iq_grids::{
    IQ1S_GRID, IQ2S_GRID, IQ2XS_GRID, IQ2XXS_GRID, IQ3S_GRID, IQ3XXS_GRID, KMASK_IQ2XS,
    KSIGNS_IQ2XS,
};
use crate::iq_lattice::{lattice2, lattice3, Grid2, Lattice};
use crate::k_quants::{make_qp_quants, nearest_int, GROUP_MAX_EPS, QK_K};

const GROUP_MAX_EPS_IQ3_XXS: f32 = 1e-8;
const GROUP_MAX_EPS_IQ2_S: f32 = 1e-8;
const GROUP_MAX_EPS_IQ1_M: f32 = 1e-7;
const GROUP_MAX_EPS_IQ1_S: f32 = 1e-12;
const IQ1S_DELTA: f32 = 0.125;
const IQ1M_DELTA: f32 = 0.125;

pub(crate) const IQ2_XXS_BYTES: usize = 66;
pub(crate) const IQ2_XS_BYTES: usize = 74;
pub(crate) const IQ2_S_BYTES: usize = 82;
pub(crate) const IQ3_XXS_BYTES: usize = 98;
pub(crate) const IQ3_S_BYTES: usize = 110;
pub(crate) const IQ1_S_BYTES: usize = 50;
pub(crate) const IQ1_M_BYTES: usize = 56;

/// ggml's MAX(a, b) macro: `a > b ? a : b`.
#[inline]
fn cmax(a: f32, b: f32) -> f32 {
    if a > b {
        a
    } else {
        b
    }
}

fn sum_sq(x: &[f32]) -> f32 {
    let mut s = 0.0f32;
    for &v in x {
        s += v * v;
    }
    s
}

/// iq2_find_best_neighbour / iq3_find_best_neighbour: the listed grid point nearest to `xval`
/// at `scale` (weighted squared distance); writes its levels to `l`.
fn best_neighbour<const D: usize>(
    lat: &Lattice<D>,
    list: &[u16],
    xval: &[f32],
    weight: &[f32],
    scale: f32,
    l: &mut [u8],
) -> usize {
    let mut best_d2 = f32::MAX;
    let mut index = None;
    for &j in list {
        let pg = &lat.grid[j as usize];
        let mut d2 = 0.0f32;
        for i in 0..D {
            let q = pg[i] as f32;
            let diff = scale * q - xval[i];
            d2 += weight[i] * diff * diff;
        }
        if d2 < best_d2 {
            best_d2 = d2;
            index = Some(j as usize);
        }
    }
    // ggml aborts when nothing compares smaller (only NaN distances do that)
    let index = index.unwrap_or(list[0] as usize);
    let pg = &lat.grid[index];
    for i in 0..D {
        l[i] = ((pg[i] - 1) / 2) as u8;
    }
    index
}

/// The lattice levels of `x` at inverse scale `id`: clamp(nearest_int((id*x - 1)/2), 0, kmax-1).
#[inline]
fn level(id: f32, x: f32, kmax: i32) -> u8 {
    nearest_int(0.5f32 * (id * x - 1.0)).clamp(0, kmax - 1) as u8
}

fn pack_levels(l: &[u8], bits: u32) -> usize {
    let mut u = 0usize;
    for (i, &v) in l.iter().enumerate() {
        u |= (v as usize) << (bits as usize * i);
    }
    u
}

/// The grid index of levels `l` (ggml aborts when they are off the grid; only NaN gets there).
fn grid_index<const D: usize>(lat: &Lattice<D>, l: &[u8], bits: u32) -> usize {
    lat.map[pack_levels(l, bits)].max(0) as usize
}

/// Makes every group of 8 have an even number of negative values by flipping the least important
/// one (IQ2_XXS, IQ2_XS, IQ3_XXS store 7 sign bits per 8 values). Fills `xval` with |x| (one maybe
/// negated) and returns the 7-bit sign patterns.
fn even_signs(xb: &[f32], weight: &[f32], xval: &mut [f32], signs: &mut [u8]) {
    for k in 0..xb.len() / 8 {
        let mut nflip = 0;
        let mut s = 0u8;
        for i in 0..8 {
            let v = xb[8 * k + i];
            if v >= 0.0 {
                xval[8 * k + i] = v;
            } else {
                xval[8 * k + i] = -v;
                nflip += 1;
                s |= 1 << i;
            }
        }
        if nflip % 2 == 1 {
            let mut imin = 0;
            let mut min = weight[8 * k] * xb[8 * k] * xb[8 * k];
            for i in 1..8 {
                let ax = weight[8 * k + i] * xb[8 * k + i] * xb[8 * k + i];
                if ax < min {
                    min = ax;
                    imin = i;
                }
            }
            xval[8 * k + imin] = -xval[8 * k + imin];
            s ^= 1 << imin;
        }
        signs[k] = s & 127;
    }
}

/// All 8 sign bits per group of 8 (IQ2_S, IQ3_S).
fn full_signs(xb: &[f32], xval: &mut [f32], signs: &mut [u8]) {
    for k in 0..xb.len() / 8 {
        let mut s = 0u8;
        for i in 0..8 {
            let v = xb[8 * k + i];
            if v >= 0.0 {
                xval[8 * k + i] = v;
            } else {
                xval[8 * k + i] = -v;
                s |= 1 << i;
            }
        }
        signs[k] = s;
    }
}

fn sums_qx_q2(weight: &[f32], xval: &[f32], l: &[u8]) -> (f32, f32) {
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for i in 0..l.len() {
        let w = weight[i];
        let q = (2 * l[i] as i32 + 1) as f32;
        sumqx += w * xval[i] * q;
        sumq2 += w * q * q;
    }
    (sumqx, sumq2)
}

/// The scale search shared by IQ2_XS, IQ2_S, IQ3_XXS and IQ3_S for one block of `n` values in
/// groups of `D`: tries `(2*kmax - 1 + is*step) / max` for `is` in `-nis..=nis`, keeps the best
/// levels, then re-fits groups that were off the grid (all groups when `refit_all`).
#[allow(clippy::too_many_arguments)]
fn lattice_search<const D: usize>(
    lat: &Lattice<D>,
    bits: u32,
    kmax: i32,
    nis: i32,
    step: f32,
    refit_all: bool,
    on_grid_init: bool,
    xval: &[f32],
    weight: &[f32],
    waux: &[f32],
    max: f32,
    l: &mut [u8],
) -> f32 {
    let n = xval.len();
    let ngroups = n / D;
    let mut laux = [0u8; 32];
    let mut on_grid = [on_grid_init; 8];
    let mut on_grid_aux = [true; 8];
    let mut best = 0.0f32;
    let mut scale = max / (2 * kmax - 1) as f32;
    for is in -nis..=nis {
        let id = ((2 * kmax - 1) as f32 + is as f32 * step) / max;
        let this_scale = 1.0 / id;
        for k in 0..ngroups {
            for i in 0..D {
                laux[D * k + i] = level(id, xval[D * k + i], kmax);
            }
            let u = pack_levels(&laux[D * k..D * k + D], bits);
            let m = lat.map[u];
            on_grid_aux[k] = true;
            if m < 0 {
                on_grid_aux[k] = false;
                best_neighbour(
                    lat,
                    lat.neighbours_of(m),
                    &xval[D * k..],
                    &waux[D * k..],
                    this_scale,
                    &mut laux[D * k..D * k + D],
                );
            }
        }
        let (sumqx, sumq2) = sums_qx_q2(weight, xval, &laux[..n]);
        if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
            scale = sumqx / sumq2;
            best = scale * sumqx;
            l[..n].copy_from_slice(&laux[..n]);
            on_grid[..ngroups].copy_from_slice(&on_grid_aux[..ngroups]);
        }
    }
    let n_not_on_grid = on_grid[..ngroups].iter().filter(|&&g| !g).count();
    if n_not_on_grid > 0 && scale > 0.0 {
        let id = 1.0 / scale;
        for k in 0..ngroups {
            if !refit_all && on_grid[k] {
                continue;
            }
            for i in 0..D {
                l[D * k + i] = level(id, xval[D * k + i], kmax);
            }
            let u = pack_levels(&l[D * k..D * k + D], bits);
            let m = lat.map[u];
            if m < 0 {
                best_neighbour(
                    lat,
                    lat.neighbours_of(m),
                    &xval[D * k..],
                    &waux[D * k..],
                    scale,
                    &mut l[D * k..D * k + D],
                );
            }
        }
        let (sumqx, sumq2) = sums_qx_q2(weight, xval, &l[..n]);
        if sumq2 > 0.0 {
            scale = sumqx / sumq2;
        }
    }
    scale
}

fn weights_imatrix(qw: &[f32], xb: &[f32], sigma2: f32, weight: &mut [f32]) {
    for i in 0..xb.len() {
        weight[i] = qw[i] * (sigma2 + xb[i] * xb[i]).sqrt();
    }
}

fn weights_sq(xb: &[f32], weight: &mut [f32]) {
    for i in 0..xb.len() {
        weight[i] = xb[i] * xb[i];
    }
}

// ---------------------------------------------------------------- IQ2_XXS

fn quantize_block_iq2_xxs(x: &[f32], y: &mut [u8], qw: &[f32]) {
    let lat = lattice2(Grid2::Xxs);
    const KMAXQ: i32 = 3;
    let mut q2 = [0u32; 16];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let sigma2 = sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; 32];
    let mut waux = [0f32; 32];
    let mut xval = [0f32; 32];
    let mut l = [0u8; 32];
    let mut laux = [0u8; 32];
    let mut signs = [0u8; 4];
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        weights_imatrix(&qw[32 * ib..], xb, sigma2, &mut weight);
        for i in 0..32 {
            waux[i] = weight[i].sqrt();
        }
        even_signs(xb, &weight, &mut xval, &mut signs);
        let mut max = xval[0];
        for i in 1..32 {
            max = cmax(max, xval[i]);
        }
        if max < GROUP_MAX_EPS {
            scales[ib] = 0.0;
            continue;
        }
        let mut scale = make_qp_quants(KMAXQ + 1, &xval, &mut l, &weight);
        let eff_max = scale * KMAXQ as f32;
        if eff_max <= 0.0 {
            scales[ib] = 0.0;
            continue;
        }
        let mut best = 0.0f32;
        for is in -6i32..=6 {
            let id = ((2 * KMAXQ - 1) as f32 + is as f32 * 0.1f32) / eff_max;
            let this_scale = 1.0 / id;
            for k in 0..4 {
                for i in 0..8 {
                    laux[8 * k + i] = level(id, xval[8 * k + i], KMAXQ);
                }
                let m = lat.map[pack_levels(&laux[8 * k..8 * k + 8], 2)];
                if m < 0 {
                    best_neighbour(
                        lat,
                        lat.neighbours_of(m),
                        &xval[8 * k..],
                        &waux[8 * k..],
                        this_scale,
                        &mut laux[8 * k..8 * k + 8],
                    );
                }
            }
            let (sumqx, sumq2) = sums_qx_q2(&weight, &xval, &laux);
            if sumq2 > 0.0 && sumqx * sumqx > best * sumq2 {
                scale = sumqx / sumq2;
                best = scale * sumqx;
                l = laux;
            }
        }
        if scale > 0.0 {
            let id = 1.0 / scale;
            for k in 0..4 {
                let mut lk = [0u8; 8];
                for i in 0..8 {
                    lk[i] = level(id, xval[8 * k + i], KMAXQ);
                }
                let m = lat.map[pack_levels(&lk, 2)];
                let gi = if m < 0 {
                    best_neighbour(
                        lat,
                        lat.neighbours_of(m),
                        &xval[8 * k..],
                        &waux[8 * k..],
                        scale,
                        &mut l[8 * k..8 * k + 8],
                    )
                } else {
                    m as usize
                };
                let pg = &lat.grid[gi];
                for i in 0..8 {
                    l[8 * k + i] = ((pg[i] - 1) / 2) as u8;
                }
            }
            let (sumqx, sumq2) = sums_qx_q2(&weight, &xval, &l);
            if sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        if scale < 0.0 {
            scale = -scale;
            for s in signs.iter_mut() {
                *s = !*s & 127;
            }
        }
        for k in 0..4 {
            let gi = grid_index(lat, &l[8 * k..8 * k + 8], 2) as u32;
            q2[2 * ib] |= gi << (8 * k);
            q2[2 * ib + 1] |= (signs[k] as u32) << (7 * k);
        }
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    y.fill(0);
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    write_f16(&mut y[0..2], d);
    let id = 1.0 / d;
    for ib in 0..8 {
        let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u32;
        q2[2 * ib + 1] |= l << 28;
    }
    for (i, w) in q2.iter().enumerate() {
        y[2 + 4 * i..6 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
}

pub fn quantize_row_iq2_xxs_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ2_XXS_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq2_xxs(x, y, qw);
    }
}

pub fn dequantize_row_iq2_xxs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ2_XXS_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = read_f16(&b[0..2]);
        for ib in 0..8 {
            let q = &b[2 + 8 * ib..10 + 8 * ib];
            let aux1 = u32::from_le_bytes([q[4], q[5], q[6], q[7]]);
            let db = d * (0.5f32 + (aux1 >> 28) as f32) * 0.25f32;
            for l in 0..4 {
                let grid = IQ2XXS_GRID[q[l] as usize].to_le_bytes();
                let signs = KSIGNS_IQ2XS[((aux1 >> (7 * l)) & 127) as usize];
                for j in 0..8 {
                    let s = if signs & KMASK_IQ2XS[j] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    y[32 * ib + 8 * l + j] = db * grid[j] as f32 * s;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- IQ2_XS and IQ2_S

/// The 16-value sub-block search of IQ2_XS / IQ2_S; returns (scale, levels, signs).
fn iq2_sub_block(
    lat: &Lattice<8>,
    xb: &[f32],
    weight: &[f32],
    parity_signs: bool,
    eps: f32,
) -> Option<(f32, [u8; 16], [u8; 2])> {
    let mut waux = [0f32; 16];
    for i in 0..16 {
        waux[i] = weight[i].sqrt();
    }
    let mut xval = [0f32; 16];
    let mut signs = [0u8; 2];
    if parity_signs {
        even_signs(xb, weight, &mut xval, &mut signs);
    } else {
        full_signs(xb, &mut xval, &mut signs);
    }
    let mut max = xval[0];
    for i in 1..16 {
        max = cmax(max, xval[i]);
    }
    if max < eps {
        return None;
    }
    let mut l = [0u8; 16];
    let mut scale = lattice_search(
        lat, 2, 3, 9, 0.1f32, false, true, &xval, weight, &waux, max, &mut l,
    );
    if scale < 0.0 {
        scale = -scale;
        for s in signs.iter_mut() {
            *s = if parity_signs { !*s & 127 } else { !*s };
        }
    }
    Some((scale, l, signs))
}

fn quantize_block_iq2_xs(x: &[f32], y: &mut [u8], qw: &[f32]) {
    let lat = lattice2(Grid2::Xs);
    let mut q2 = [0u16; 32];
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let sigma2 = sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; 16];
    for ib in 0..16 {
        let xb = &x[16 * ib..16 * ib + 16];
        weights_imatrix(&qw[16 * ib..], xb, sigma2, &mut weight);
        let Some((scale, l, signs)) = iq2_sub_block(lat, xb, &weight, true, GROUP_MAX_EPS) else {
            scales[ib] = 0.0;
            continue;
        };
        for k in 0..2 {
            let gi = grid_index(lat, &l[8 * k..8 * k + 8], 2) as u16;
            q2[2 * ib + k] = gi | ((signs[k] as u16) << 9);
        }
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    y.fill(0);
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    write_f16(&mut y[0..2], d);
    let id = 1.0 / d;
    for (i, w) in q2.iter().enumerate() {
        y[2 + 2 * i..4 + 2 * i].copy_from_slice(&w.to_le_bytes());
    }
    for ib in 0..16 {
        let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
        y[66 + ib / 2] |= l << (4 * (ib % 2));
    }
}

pub fn quantize_row_iq2_xs_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ2_XS_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq2_xs(x, y, qw);
    }
}

pub fn dequantize_row_iq2_xs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ2_XS_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = read_f16(&b[0..2]);
        let scales = &b[66..74];
        for ib in 0..8 {
            let db = [
                d * (0.5f32 + (scales[ib] & 0xf) as f32) * 0.25f32,
                d * (0.5f32 + (scales[ib] >> 4) as f32) * 0.25f32,
            ];
            for l in 0..4 {
                let o = 2 + 2 * (4 * ib + l);
                let q = u16::from_le_bytes([b[o], b[o + 1]]);
                let grid = IQ2XS_GRID[(q & 511) as usize].to_le_bytes();
                let signs = KSIGNS_IQ2XS[(q >> 9) as usize];
                for j in 0..8 {
                    let s = if signs & KMASK_IQ2XS[j] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    y[32 * ib + 8 * l + j] = db[l / 2] * grid[j] as f32 * s;
                }
            }
        }
    }
}

/// IQ2_S: d:f16 | qs[32] grid low bytes | signs[32] | qh[8] | scales[8].
fn quantize_block_iq2_s(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let lat = lattice2(Grid2::S);
    y.fill(0);
    let mut scales = [0f32; 16];
    let mut max_scale = 0.0f32;
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; 16];
    for ib in 0..16 {
        let xb = &x[16 * ib..16 * ib + 16];
        match qw {
            Some(qw) => weights_imatrix(&qw[16 * ib..], xb, sigma2, &mut weight),
            None => {
                for i in 0..16 {
                    weight[i] = 0.25f32 * sigma2 + xb[i] * xb[i];
                }
            }
        }
        let Some((scale, l, signs)) = iq2_sub_block(lat, xb, &weight, false, GROUP_MAX_EPS_IQ2_S)
        else {
            scales[ib] = 0.0;
            continue;
        };
        for k in 0..2 {
            let gi = grid_index(lat, &l[8 * k..8 * k + 8], 2);
            let i8 = 2 * ib + k;
            y[2 + i8] = (gi & 255) as u8;
            y[66 + i8 / 4] |= ((gi >> 8) << (2 * (i8 % 4))) as u8;
            y[2 + 32 + i8] = signs[k];
        }
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    write_f16(&mut y[0..2], d * 0.9875f32);
    let id = 1.0 / d;
    for ib in 0..16 {
        let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
        if ib % 2 == 0 {
            y[74 + ib / 2] = l;
        } else {
            y[74 + ib / 2] |= l << 4;
        }
    }
}

pub fn quantize_row_iq2_s(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ2_S_BYTES))
    {
        quantize_block_iq2_s(x, y, None);
    }
}

pub fn quantize_row_iq2_s_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ2_S_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq2_s(x, y, Some(qw));
    }
}

pub fn dequantize_row_iq2_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ2_S_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = read_f16(&b[0..2]);
        let qs = &b[2..34];
        let signs = &b[34..66];
        let qh = &b[66..74];
        let scales = &b[74..82];
        for ib in 0..8 {
            let db = [
                d * (0.5f32 + (scales[ib] & 0xf) as f32) * 0.25f32,
                d * (0.5f32 + (scales[ib] >> 4) as f32) * 0.25f32,
            ];
            for l in 0..4 {
                let dl = db[l / 2];
                let idx = qs[4 * ib + l] as usize | (((qh[ib] as usize) << (8 - 2 * l)) & 0x300);
                let grid = IQ2S_GRID[idx].to_le_bytes();
                for j in 0..8 {
                    let s = if signs[4 * ib + l] & KMASK_IQ2XS[j] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    y[32 * ib + 8 * l + j] = dl * grid[j] as f32 * s;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- IQ3_XXS and IQ3_S

/// IQ3_XXS: d:f16 | qs[64] grid indices | 8 x u32 (7-bit signs x4 | 4-bit scale).
fn quantize_block_iq3_xxs(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let lat = lattice3(256);
    const KMAXQ: i32 = 8;
    let mut q3 = [0u8; 64];
    let mut sas = [0u32; 8];
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; 32];
    let mut waux = [0f32; 32];
    let mut xval = [0f32; 32];
    let mut signs = [0u8; 4];
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => weights_imatrix(&qw[32 * ib..], xb, sigma2, &mut weight),
            None => weights_sq(xb, &mut weight),
        }
        for i in 0..32 {
            waux[i] = weight[i].sqrt();
        }
        even_signs(xb, &weight, &mut xval, &mut signs);
        let mut max = xval[0];
        for i in 1..32 {
            max = cmax(max, xval[i]);
        }
        if max < GROUP_MAX_EPS_IQ3_XXS {
            scales[ib] = 0.0;
            continue;
        }
        let mut l = [0u8; 32];
        let mut scale = lattice_search(
            lat, 3, KMAXQ, 15, 0.2f32, false, true, &xval, &weight, &waux, max, &mut l,
        );
        if scale < 0.0 {
            scale = -scale;
            for s in signs.iter_mut() {
                *s = !*s & 127;
            }
        }
        for k in 0..8 {
            q3[8 * ib + k] = grid_index(lat, &l[4 * k..4 * k + 4], 3) as u8;
        }
        sas[ib] = signs[0] as u32
            | (signs[1] as u32) << 7
            | (signs[2] as u32) << 14
            | (signs[3] as u32) << 21;
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    y.fill(0);
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    write_f16(&mut y[0..2], d * 1.0125f32);
    let id = 1.0 / d;
    for ib in 0..8 {
        let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u32;
        sas[ib] |= l << 28;
    }
    y[2..66].copy_from_slice(&q3);
    for (i, w) in sas.iter().enumerate() {
        y[66 + 4 * i..70 + 4 * i].copy_from_slice(&w.to_le_bytes());
    }
}

/// The lattice_search variant of IQ3_XXS differs from IQ3_S only in its parameters; the
/// subtle part is the refit: IQ3_XXS (like IQ2_XS/IQ2_S) refits only groups that were off the
/// grid, IQ3_S refits all of them.
pub fn quantize_row_iq3_xxs(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ3_XXS_BYTES))
    {
        quantize_block_iq3_xxs(x, y, None);
    }
}

pub fn quantize_row_iq3_xxs_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ3_XXS_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq3_xxs(x, y, Some(qw));
    }
}

pub fn dequantize_row_iq3_xxs(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ3_XXS_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = read_f16(&b[0..2]);
        let qs = &b[2..66];
        for ib in 0..8 {
            let o = 66 + 4 * ib;
            let aux = u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
            let db = d * (0.5f32 + (aux >> 28) as f32) * 0.5f32;
            for l in 0..4 {
                let signs = KSIGNS_IQ2XS[((aux >> (7 * l)) & 127) as usize];
                let g1 = IQ3XXS_GRID[qs[8 * ib + 2 * l] as usize].to_le_bytes();
                let g2 = IQ3XXS_GRID[qs[8 * ib + 2 * l + 1] as usize].to_le_bytes();
                let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
                for j in 0..4 {
                    let s1 = if signs & KMASK_IQ2XS[j] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    let s2 = if signs & KMASK_IQ2XS[j + 4] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    out[j] = db * g1[j] as f32 * s1;
                    out[j + 4] = db * g2[j] as f32 * s2;
                }
            }
        }
    }
}

/// IQ3_S: d:f16 | qs[64] | qh[8] | signs[32] | scales[4].
fn quantize_block_iq3_s(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let lat = lattice3(512);
    const KMAXQ: i32 = 8;
    y.fill(0);
    let mut scales = [0f32; 8];
    let mut max_scale = 0.0f32;
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; 32];
    let mut waux = [0f32; 32];
    let mut xval = [0f32; 32];
    let mut signs = [0u8; 4];
    // ggml advances its qs/signs pointers only past blocks it does not skip
    let (mut qs_at, mut signs_at) = (2usize, 2 + 64 + 8);
    for ib in 0..8 {
        let xb = &x[32 * ib..32 * ib + 32];
        match qw {
            Some(qw) => weights_imatrix(&qw[32 * ib..], xb, sigma2, &mut weight),
            None => weights_sq(xb, &mut weight),
        }
        for i in 0..32 {
            waux[i] = weight[i].sqrt();
        }
        full_signs(xb, &mut xval, &mut signs);
        let mut max = xval[0];
        for i in 1..32 {
            max = cmax(max, xval[i]);
        }
        if max == 0.0 {
            scales[ib] = 0.0;
            continue;
        }
        let mut l = [0u8; 32];
        let mut scale = lattice_search(
            lat, 3, KMAXQ, 9, 0.2f32, true, false, &xval, &weight, &waux, max, &mut l,
        );
        if scale < 0.0 {
            scale = -scale;
            for s in signs.iter_mut() {
                *s = !*s;
            }
        }
        for k in 0..8 {
            let gi = grid_index(lat, &l[4 * k..4 * k + 4], 3);
            y[qs_at + k] = (gi & 255) as u8;
            y[66 + ib] |= ((gi >> 8) << k) as u8;
        }
        qs_at += 8;
        y[signs_at..signs_at + 4].copy_from_slice(&signs);
        signs_at += 4;
        scales[ib] = scale;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let d = max_scale / 31.0;
    write_f16(&mut y[0..2], d * 1.033f32);
    let id = 1.0 / d;
    for ib in (0..8).step_by(2) {
        let l1 = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 15) as u8;
        let l2 = nearest_int(0.5f32 * (id * scales[ib + 1] - 1.0)).clamp(0, 15) as u8;
        y[106 + ib / 2] = l1 | (l2 << 4);
    }
}

pub fn quantize_row_iq3_s(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ3_S_BYTES))
    {
        quantize_block_iq3_s(x, y, None);
    }
}

pub fn quantize_row_iq3_s_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ3_S_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq3_s(x, y, Some(qw));
    }
}

pub fn dequantize_row_iq3_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ3_S_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = read_f16(&b[0..2]);
        let qs = &b[2..66];
        let qh = &b[66..74];
        let signs = &b[74..106];
        let scales = &b[106..110];
        for ib in 0..8 {
            let sc = if ib % 2 == 0 {
                scales[ib / 2] & 0xf
            } else {
                scales[ib / 2] >> 4
            };
            let db = d * (1 + 2 * sc as i32) as f32;
            let h = qh[ib] as usize;
            for l in 0..4 {
                let i1 = qs[8 * ib + 2 * l] as usize | ((h << (8 - 2 * l)) & 256);
                let i2 = qs[8 * ib + 2 * l + 1] as usize | ((h << (7 - 2 * l)) & 256);
                let g1 = IQ3S_GRID[i1].to_le_bytes();
                let g2 = IQ3S_GRID[i2].to_le_bytes();
                let s = signs[4 * ib + l];
                let out = &mut y[32 * ib + 8 * l..32 * ib + 8 * l + 8];
                for j in 0..4 {
                    let s1 = if s & KMASK_IQ2XS[j] != 0 { -1.0 } else { 1.0 };
                    let s2 = if s & KMASK_IQ2XS[j + 4] != 0 {
                        -1.0
                    } else {
                        1.0
                    };
                    out[j] = db * g1[j] as f32 * s1;
                    out[j + 4] = db * g2[j] as f32 * s2;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- IQ1_S and IQ1_M

/// qsort(pairs, iq1_sort_helper) on (value, index) pairs: glibc's qsort is a stable merge sort
/// and the comparator looks only at the value, so ties keep index order.
fn sorted_indices<const N: usize>(xb: &[f32]) -> [usize; N] {
    let mut idx = [0usize; N];
    for (j, v) in idx.iter_mut().enumerate() {
        *v = j;
    }
    if xb.iter().any(|v| v.is_nan()) {
        // no total order to reproduce; any order is as good (ggml's result is arbitrary too)
        idx.sort_by(|&a, &b| xb[a].total_cmp(&xb[b]));
    } else {
        idx.sort_by(|&a, &b| xb[a].partial_cmp(&xb[b]).unwrap_or(Ordering::Equal));
    }
    idx
}

/// iq1_find_best_neighbour2: the listed grid point nearest to `xb` at `scale`, the levels
/// mapped through `xx`; writes its levels to `l`.
fn iq1_best_neighbour(
    lat: &Lattice<8>,
    list: &[u16],
    xb: &[f32],
    weight: &[f32],
    scale: f32,
    xx: &[f32; 3],
    l: &mut [u8],
) -> usize {
    let mut best = f32::MAX;
    let mut index = None;
    for &j in list {
        let pg = &lat.grid[j as usize];
        let mut d2 = 0.0f32;
        for i in 0..8 {
            let q = xx[((pg[i] - 1) / 2) as usize];
            let w = weight[i];
            let diff = scale * q - xb[i];
            d2 += w * diff * diff;
        }
        if d2 < best {
            best = d2;
            index = Some(j as usize);
        }
    }
    let index = index.unwrap_or(list[0] as usize);
    let pg = &lat.grid[index];
    for i in 0..8 {
        l[i] = ((pg[i] - 1) / 2) as u8;
    }
    index
}

const X_P_S: [f32; 3] = [-1.0 + IQ1S_DELTA, IQ1S_DELTA, 1.0 + IQ1S_DELTA];
const X_M_S: [f32; 3] = [-1.0 - IQ1S_DELTA, -IQ1S_DELTA, 1.0 - IQ1S_DELTA];
const X_P_M: [f32; 3] = [-1.0 + IQ1M_DELTA, IQ1M_DELTA, 1.0 + IQ1M_DELTA];
const X_M_M: [f32; 3] = [-1.0 - IQ1M_DELTA, -IQ1M_DELTA, 1.0 - IQ1M_DELTA];

/// IQ1_S: d:f16 | qs[32] | qh u16[8] (3 high index bits x4 | 3-bit scale | shift sign).
fn quantize_block_iq1_s(x: &[f32], y: &mut [u8], qw: &[f32]) {
    let lat = lattice2(Grid2::Iq1);
    const BS: usize = 32;
    y.fill(0);
    let mut scales = [0f32; 8];
    let mut shifts = [0i8; 8];
    let mut qh = [0u16; 8];
    let mut max_scale = 0.0f32;
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; BS];
    let mut l = [0u8; BS];
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * ib + BS];
        weights_imatrix(&qw[BS * ib..], xb, sigma2, &mut weight);
        let mut max = xb[0].abs();
        for i in 1..BS {
            max = cmax(max, xb[i].abs());
        }
        if max < GROUP_MAX_EPS_IQ1_S {
            scales[ib] = 0.0;
            shifts[ib] = 1;
            continue;
        }
        let idx = sorted_indices::<BS>(xb);
        let mut sumx = [0f32; BS + 1];
        let mut sumw = [0f32; BS + 1];
        for j in 0..BS {
            let i = idx[j];
            sumx[j + 1] = sumx[j] + weight[i] * xb[i];
            sumw[j + 1] = sumw[j] + weight[i];
        }
        let mut best_score = -f32::MAX;
        let mut scale = max;
        let (mut besti1, mut besti2, mut best_shift) = (-1i32, -1i32, 0i8);
        for i1 in 0..=BS {
            for i2 in i1..=BS {
                for (xv, shift) in [(&X_P_S, 1i8), (&X_M_S, -1i8)] {
                    let sumqx = (sumx[i1] - sumx[0]) * xv[0]
                        + (sumx[i2] - sumx[i1]) * xv[1]
                        + (sumx[BS] - sumx[i2]) * xv[2];
                    let sumq2 = (sumw[i1] - sumw[0]) * xv[0] * xv[0]
                        + (sumw[i2] - sumw[i1]) * xv[1] * xv[1]
                        + (sumw[BS] - sumw[i2]) * xv[2] * xv[2];
                    if sumq2 > 0.0 && sumqx * sumqx > best_score * sumq2 {
                        scale = sumqx / sumq2;
                        best_score = scale * sumqx;
                        besti1 = i1 as i32;
                        besti2 = i2 as i32;
                        best_shift = shift;
                    }
                }
            }
        }
        if besti1 < 0 || besti2 < 0 || best_shift == 0 {
            scales[ib] = 0.0;
            shifts[ib] = 1;
            continue;
        }
        let (b1, b2) = (besti1 as usize, besti2 as usize);
        for j in 0..BS {
            l[idx[j]] = if j < b1 {
                0
            } else if j < b2 {
                1
            } else {
                2
            };
        }
        if scale < 0.0 {
            for v in l.iter_mut() {
                *v = 2 - *v;
            }
            scale = -scale;
            best_shift = -best_shift;
        }
        let xx = if best_shift == 1 { &X_P_S } else { &X_M_S };
        let mut index = [0usize; BS / 8];
        let mut all_on_grid = true;
        for k in 0..BS / 8 {
            let m = lat.map[pack_levels(&l[8 * k..8 * k + 8], 2)];
            index[k] = if m < 0 {
                all_on_grid = false;
                iq1_best_neighbour(
                    lat,
                    lat.neighbours_of(m),
                    &xb[8 * k..],
                    &weight[8 * k..],
                    scale,
                    xx,
                    &mut l[8 * k..8 * k + 8],
                )
            } else {
                m as usize
            };
        }
        if !all_on_grid {
            let mut sumqx = 0.0f32;
            let mut sumq2 = 0.0f32;
            for k in 0..BS / 8 {
                let pg = &lat.grid[index[k]];
                for j in 0..8 {
                    let w = weight[8 * k + j];
                    let q = xx[((pg[j] - 1) / 2) as usize];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if sumqx > 0.0 && sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        let mut h = 0u16;
        for k in 0..BS / 8 {
            y[2 + (BS / 8) * ib + k] = (index[k] & 255) as u8;
            h |= ((index[k] >> 8) << (3 * k)) as u16;
        }
        qh[ib] = h;
        scales[ib] = scale;
        shifts[ib] = best_shift;
        max_scale = cmax(max_scale, scale);
    }
    // with max_scale 0 ggml keeps what the loop wrote and d = 0
    if max_scale != 0.0 {
        let d = max_scale / 15.0;
        write_f16(&mut y[0..2], d * 1.125f32);
        let id = 1.0 / d;
        for ib in 0..QK_K / BS {
            let mut l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 7) as u16;
            if shifts[ib] == -1 {
                l |= 8;
            }
            qh[ib] |= l << 12;
        }
    }
    for (i, w) in qh.iter().enumerate() {
        y[34 + 2 * i..36 + 2 * i].copy_from_slice(&w.to_le_bytes());
    }
}

pub fn quantize_row_iq1_s_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ1_S_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq1_s(x, y, qw);
    }
}

pub fn dequantize_row_iq1_s(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ1_S_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let d = read_f16(&b[0..2]);
        let qs = &b[2..34];
        for ib in 0..8 {
            let qh = u16::from_le_bytes([b[34 + 2 * ib], b[35 + 2 * ib]]);
            let dl = d * (2 * ((qh >> 12) & 7) as i32 + 1) as f32;
            let delta = if qh & 0x8000 != 0 {
                -IQ1S_DELTA
            } else {
                IQ1S_DELTA
            };
            for l in 0..4 {
                let idx = qs[4 * ib + l] as usize | ((((qh >> (3 * l)) & 7) as usize) << 8);
                let grid = IQ1S_GRID[idx].to_le_bytes();
                for j in 0..8 {
                    y[32 * ib + 8 * l + j] = dl * (grid[j] as i8 as f32 + delta);
                }
            }
        }
    }
}

/// IQ1_M's level values of group `k` (0 or 1 of a 16-value block) under shift choice `best_k`.
fn iq1m_levels(best_k: usize, k: usize) -> &'static [f32; 3] {
    let plus = if k == 0 {
        best_k < 2
    } else {
        best_k.is_multiple_of(2)
    };
    if plus {
        &X_P_M
    } else {
        &X_M_M
    }
}

/// IQ1_M: qs[32] | qh[16] (3 high index bits | shift sign, per group of 8) | scales u16[4]
/// (3-bit block scales, the f16 super-block scale spread over the top nibbles).
fn quantize_block_iq1_m(x: &[f32], y: &mut [u8], qw: Option<&[f32]>) {
    let lat = lattice2(Grid2::Iq1);
    const BS: usize = 16;
    const MASKS: [u8; 4] = [0x00, 0x80, 0x08, 0x88];
    y.fill(0);
    let mut scales = [0f32; 16];
    let mut shifts = [0usize; 16];
    let mut max_scale = 0.0f32;
    let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
    let mut weight = [0f32; BS];
    let mut l = [0u8; BS];
    let fill_weights = |ib: usize, xb: &[f32], weight: &mut [f32; BS]| match qw {
        Some(qw) => weights_imatrix(&qw[BS * ib..], xb, sigma2, weight),
        None => weights_sq(xb, weight),
    };
    for ib in 0..QK_K / BS {
        let xb = &x[BS * ib..BS * ib + BS];
        fill_weights(ib, xb, &mut weight);
        let mut max = xb[0].abs();
        for i in 1..BS {
            max = cmax(max, xb[i].abs());
        }
        if max < GROUP_MAX_EPS_IQ1_M {
            scales[ib] = 0.0;
            shifts[ib] = 0;
            continue;
        }
        let idx = sorted_indices::<BS>(xb);
        let mut best_score = -f32::MAX;
        let mut scale = max;
        let (mut besti1, mut besti2, mut best_k) = (-1i32, -1i32, -1i32);
        let mut px = [[0f32; BS + 1]; 2];
        let mut pw = [[0f32; BS + 1]; 2];
        for j in 0..BS {
            let i = idx[j];
            let h = if i < BS / 2 { 0 } else { 1 };
            px[h][j + 1] = px[h][j] + weight[i] * xb[i];
            px[1 - h][j + 1] = px[1 - h][j];
            pw[h][j + 1] = pw[h][j] + weight[i];
            pw[1 - h][j + 1] = pw[1 - h][j];
        }
        let txs = [px[0][BS], px[1][BS]];
        let tws = [pw[0][BS], pw[1][BS]];
        let (p2, m2) = (X_P_M[2], X_M_M[2]);
        let cp1 = X_P_M[0] * X_P_M[0] - X_P_M[1] * X_P_M[1];
        let cp2 = X_P_M[1] * X_P_M[1] - X_P_M[2] * X_P_M[2];
        let cm1 = X_M_M[0] * X_M_M[0] - X_M_M[1] * X_M_M[1];
        let cm2 = X_M_M[1] * X_M_M[1] - X_M_M[2] * X_M_M[2];
        for i1 in 0..=BS {
            for i2 in i1..=BS {
                let mut qx_p = [0f32; 2];
                let mut qx_m = [0f32; 2];
                let mut q2_p = [0f32; 2];
                let mut q2_m = [0f32; 2];
                for h in 0..2 {
                    let sx = px[h][i1] + px[h][i2];
                    qx_p[h] = txs[h] * p2 - sx;
                    qx_m[h] = txs[h] * m2 - sx;
                    q2_p[h] = tws[h] * p2 * p2 + pw[h][i1] * cp1 + pw[h][i2] * cp2;
                    q2_m[h] = tws[h] * m2 * m2 + pw[h][i1] * cm1 + pw[h][i2] * cm2;
                }
                let sumqx = [
                    qx_p[0] + qx_p[1],
                    qx_p[0] + qx_m[1],
                    qx_m[0] + qx_p[1],
                    qx_m[0] + qx_m[1],
                ];
                let sumq2 = [
                    q2_p[0] + q2_p[1],
                    q2_p[0] + q2_m[1],
                    q2_m[0] + q2_p[1],
                    q2_m[0] + q2_m[1],
                ];
                for k in 0..4 {
                    if sumq2[k] > 0.0 && sumqx[k] * sumqx[k] > best_score * sumq2[k] {
                        scale = sumqx[k] / sumq2[k];
                        best_score = scale * sumqx[k];
                        besti1 = i1 as i32;
                        besti2 = i2 as i32;
                        best_k = k as i32;
                    }
                }
            }
        }
        if besti1 < 0 || besti2 < 0 || best_k < 0 {
            scales[ib] = 0.0;
            shifts[ib] = 0;
            continue;
        }
        let (b1, b2) = (besti1 as usize, besti2 as usize);
        let mut best_k = best_k as usize;
        for j in 0..BS {
            l[idx[j]] = if j < b1 {
                0
            } else if j < b2 {
                1
            } else {
                2
            };
        }
        if scale < 0.0 {
            for v in l.iter_mut() {
                *v = 2 - *v;
            }
            scale = -scale;
            best_k = 3 - best_k;
        }
        let mut index = [0usize; 2];
        let mut all_on_grid = true;
        for k in 0..2 {
            let xx = iq1m_levels(best_k, k);
            let m = lat.map[pack_levels(&l[8 * k..8 * k + 8], 2)];
            index[k] = if m < 0 {
                all_on_grid = false;
                iq1_best_neighbour(
                    lat,
                    lat.neighbours_of(m),
                    &xb[8 * k..],
                    &weight[8 * k..],
                    scale,
                    xx,
                    &mut l[8 * k..8 * k + 8],
                )
            } else {
                m as usize
            };
        }
        if !all_on_grid {
            let mut sumqx = 0.0f32;
            let mut sumq2 = 0.0f32;
            for k in 0..2 {
                let xx = iq1m_levels(best_k, k);
                let pg = &lat.grid[index[k]];
                for j in 0..8 {
                    let w = weight[8 * k + j];
                    let q = xx[((pg[j] - 1) / 2) as usize];
                    sumqx += w * q * xb[8 * k + j];
                    sumq2 += w * q * q;
                }
            }
            if sumqx > 0.0 && sumq2 > 0.0 {
                scale = sumqx / sumq2;
            }
        }
        y[2 * ib] = (index[0] & 255) as u8;
        y[2 * ib + 1] = (index[1] & 255) as u8;
        y[32 + ib] = ((index[0] >> 8) | ((index[1] >> 8) << 4)) as u8;
        scales[ib] = scale;
        shifts[ib] = best_k;
        max_scale = cmax(max_scale, scale);
    }
    if max_scale == 0.0 {
        return;
    }
    let mut sc = [0u16; 4];
    let mut d = max_scale / 15.0;
    let id = 1.0 / d;
    let mut sumqx = 0.0f32;
    let mut sumq2 = 0.0f32;
    for ib in 0..QK_K / BS {
        let l = nearest_int(0.5f32 * (id * scales[ib] - 1.0)).clamp(0, 7);
        sc[ib / 4] |= (l as u16) << (3 * (ib % 4));
        y[32 + ib] |= MASKS[shifts[ib]];
        let xb = &x[BS * ib..BS * ib + BS];
        fill_weights(ib, xb, &mut weight);
        for k in 0..2 {
            let xx = iq1m_levels(shifts[ib], k);
            let gi = y[2 * ib + k] as usize + (((y[32 + ib] as usize) << (8 - 4 * k)) & 0x700);
            let pg = &lat.grid[gi];
            for j in 0..8 {
                let w = weight[8 * k + j];
                let q = xx[((pg[j] - 1) / 2) as usize] * (2 * l + 1) as f32;
                sumqx += w * q * xb[8 * k + j];
                sumq2 += w * q * q;
            }
        }
    }
    if sumq2 > 0.0 {
        d = sumqx / sumq2;
    }
    let s = f32_to_f16_bits(d * 1.1125f32);
    sc[0] |= (s & 0x000f) << 12;
    sc[1] |= (s & 0x00f0) << 8;
    sc[2] |= (s & 0x0f00) << 4;
    sc[3] |= s & 0xf000;
    for (i, w) in sc.iter().enumerate() {
        y[48 + 2 * i..50 + 2 * i].copy_from_slice(&w.to_le_bytes());
    }
}

pub fn quantize_row_iq1_m(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ1_M_BYTES))
    {
        quantize_block_iq1_m(x, y, None);
    }
}

pub fn quantize_row_iq1_m_weighted(src: &[f32], dst: &mut [u8], importance: &[f32]) {
    for ((x, y), qw) in src
        .chunks_exact(QK_K)
        .zip(dst.chunks_exact_mut(IQ1_M_BYTES))
        .zip(importance.chunks_exact(QK_K))
    {
        quantize_block_iq1_m(x, y, Some(qw));
    }
}

pub fn dequantize_row_iq1_m(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src
        .chunks_exact(IQ1_M_BYTES)
        .zip(dst.chunks_exact_mut(QK_K))
    {
        let qs = &b[0..32];
        let qh = &b[32..48];
        let sc: [u16; 4] =
            std::array::from_fn(|i| u16::from_le_bytes([b[48 + 2 * i], b[49 + 2 * i]]));
        let bits =
            (sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) | (sc[3] & 0xf000);
        let d = crate::float::f16_bits_to_f32(bits);
        for ib in 0..8 {
            let s = sc[ib / 2] as i32;
            let dl1 = d * (2 * ((s >> (6 * (ib % 2))) & 0x7) + 1) as f32;
            let dl2 = d * (2 * ((s >> (6 * (ib % 2) + 3)) & 0x7) + 1) as f32;
            let h0 = qh[2 * ib] as usize;
            let h1 = qh[2 * ib + 1] as usize;
            let q = &qs[4 * ib..4 * ib + 4];
            let idx = [
                q[0] as usize | ((h0 << 8) & 0x700),
                q[1] as usize | ((h0 << 4) & 0x700),
                q[2] as usize | ((h1 << 8) & 0x700),
                q[3] as usize | ((h1 << 4) & 0x700),
            ];
            let delta = [
                if h0 & 0x08 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
                if h0 & 0x80 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
                if h1 & 0x08 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
                if h1 & 0x80 != 0 {
                    -IQ1S_DELTA
                } else {
                    IQ1S_DELTA
                },
            ];
            for l in 0..4 {
                let dl = if l < 2 { dl1 } else { dl2 };
                let grid = IQ1S_GRID[idx[l]].to_le_bytes();
                for j in 0..8 {
                    y[32 * ib + 8 * l + j] = dl * (grid[j] as i8 as f32 + delta[l]);
                }
            }
        }
    }
}
