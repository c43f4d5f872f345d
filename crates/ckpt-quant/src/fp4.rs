//! Dequantization of the 4-bit float (E2M1) types MXFP4 and NVFP4.

/// E2M1 values doubled (ggml's `kvalues_mxfp4`); the block scales carry the factor 1/2.
const KVALUES_E2M1: [i8; 16] = [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

/// ggml_e8m0_to_fp32_half: 2^(e-127) / 2, with the two smallest exponents as subnormals.
fn e8m0_to_f32_half(e: u8) -> f32 {
    let bits = if e < 2 { 0x0020_0000u32 << e } else { ((e as u32) - 1) << 23 };
    f32::from_bits(bits)
}

/// MXFP4: e:u8 (E8M0 scale) | qs[16]; byte j holds element j (low nibble) and j+16 (high).
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
    let value = if exp == 0 { man * 2f32.powi(-9) } else { (1.0 + man / 8.0) * 2f32.powi(exp - 7) };
    value * 0.5
}

/// NVFP4: 4 UE4M3 scales (one per 16 values) | qs[32]; each 16-value group takes 8 bytes, low
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
