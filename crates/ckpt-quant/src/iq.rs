//! Dequantization of the non-linear 4-bit types IQ4_NL and IQ4_XS (ggml `dequantize_row_iq4_*`).

use crate::float::read_f16;

/// ggml's `kvalues_iq4nl`: the 16 non-uniform levels shared by IQ4_NL and IQ4_XS.
const KVALUES_IQ4NL: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

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
