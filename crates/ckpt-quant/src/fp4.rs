//! Dequantization of the 4-bit float (E2M1) types MXFP4 and NVFP4.

/// E2M1 values doubled (ggml's `kvalues_mxfp4`); the block scales carry the factor 1/2.
const KVALUES_E2M1: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml_e8m0_to_fp32_half: 2^(e-127) / 2, with the two smallest exponents as subnormals.
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 {
        0x0020_0000u32 << e
    } else {
        ((e as u32) - 1) << 23
    };
    f32::from_bits(bits)
}

/// best_index_mxfp4: the first level closest to `x` at scale `d`.
fn best_index_e2m1(x: f32, d: f32) -> u8 {
    let mut best = 0u8;
    let mut best_err = (KVALUES_E2M1[0] as f32 * d - x).abs();
    for i in 1..16u8 {
        let err = (KVALUES_E2M1[i as usize] as f32 * d - x).abs();
        if err < best_err {
            best = i;
            best_err = err;
        }
    }
    best
}

/// quantize_row_mxfp4_ref: a power-of-two scale from the block's largest magnitude, then the
/// nearest E2M1 level for every element.
pub fn quantize_row_mxfp4(src: &[f32], dst: &mut [u8]) {
    for (x, y) in src.chunks_exact(32).zip(dst.chunks_exact_mut(17)) {
        let mut amax = 0.0f32;
        for &v in x {
            if amax < v.abs() {
                amax = v.abs();
            }
        }
        // (uint8_t)(floorf(log2f(amax)) - 2 + 127), with x86-64's conversion semantics
        let e = if amax > 0.0 {
            crate::legacy::c_cast_u8(amax.log2().floor() - 2.0 + 127.0)
        } else {
            0
        };
        let d = e8m0_to_f32_half(e);
        y[0] = e;
        for j in 0..16 {
            y[1 + j] = best_index_e2m1(x[j], d) | (best_index_e2m1(x[j + 16], d) << 4);
        }
    }
}

/// MXFP4: e:u8 (E8M0 scale) | `qs[16]`; byte j holds element j (low nibble) and j+16 (high).
pub fn dequantize_row_mxfp4(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(17).zip(dst.chunks_exact_mut(32)) {
        let d = e8m0_to_f32_half(b[0]);
        for j in 0..16 {
            y[j] = KVALUES_E2M1[(b[1 + j] & 0xF) as usize] as f32 * d;
            y[j + 16] = KVALUES_E2M1[(b[1 + j] >> 4) as usize] as f32 * d;
        }
    }
}

/// Unsigned E4M3 (bias 7) scale times 1/2; 0 and 0x7F (NaN) decode to 0 like gguf-py.
fn ue4m3_to_f32_half(x: u8) -> f32 {
    if x == 0 || x == 0x7F {
        return 0.0;
    }
    let exp = ((x >> 3) & 0xF) as i32;
    let man = (x & 7) as f32;
    let value = if exp == 0 {
        man * 2f32.powi(-9)
    } else {
        (1.0 + man / 8.0) * 2f32.powi(exp - 7)
    };
    value * 0.5
}

/// NVFP4: 4 UE4M3 scales (one per 16 values) | `qs[32]`; each 16-value group takes 8 bytes, low
/// nibbles first, then high nibbles.
pub fn dequantize_row_nvfp4(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(36).zip(dst.chunks_exact_mut(64)) {
        for g in 0..4 {
            let d = ue4m3_to_f32_half(b[g]);
            let qs = &b[4 + 8 * g..12 + 8 * g];
            let y = &mut y[16 * g..16 * g + 16];
            for j in 0..8 {
                y[j] = d * KVALUES_E2M1[(qs[j] & 0xF) as usize] as f32;
                y[j + 8] = d * KVALUES_E2M1[(qs[j] >> 4) as usize] as f32;
            }
        }
    }
}
