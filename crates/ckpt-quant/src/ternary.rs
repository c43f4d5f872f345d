//! Dequantization of the ternary types TQ1_0 and TQ2_0 (values -1, 0, +1 times an fp16 scale).

use crate::float::read_f16;

/// TQ1_0: qs[48] (5 trits per byte, base-3 fixed point) | qh[4] (4 trits per byte) | d:f16.
pub fn dequantize_row_tq1_0(src: &[u8], dst: &mut [f32]) {
    const POW3: [u8; 5] = [1, 3, 9, 27, 81];
    // a trit is recovered by scaling the byte by 3^n (mod 256) and taking the top "digit"
    let trit = |byte: u8, n: usize| ((byte.wrapping_mul(POW3[n]) as u16 * 3) >> 8) as i32 - 1;
    for (b, y) in src.chunks_exact(54).zip(dst.chunks_exact_mut(256)) {
        let qs = &b[0..48];
        let qh = &b[48..52];
        let d = read_f16(&b[52..54]);
        let mut out = 0;
        for (start, width) in [(0usize, 32usize), (32, 16)] {
            for n in 0..5 {
                for m in 0..width {
                    y[out] = trit(qs[start + m], n) as f32 * d;
                    out += 1;
                }
            }
        }
        for n in 0..4 {
            for &h in qh {
                y[out] = trit(h, n) as f32 * d;
                out += 1;
            }
        }
    }
}

/// TQ2_0: qs[64] (2 bits per value, four 32-value planes per 32 bytes) | d:f16; value = q - 1.
pub fn dequantize_row_tq2_0(src: &[u8], dst: &mut [f32]) {
    for (b, y) in src.chunks_exact(66).zip(dst.chunks_exact_mut(256)) {
        let d = read_f16(&b[64..66]);
        let mut out = 0;
        for j in (0..64).step_by(32) {
            for l in 0..4 {
                for m in 0..32 {
                    let q = ((b[j + m] >> (2 * l)) & 3) as i32 - 1;
                    y[out] = q as f32 * d;
                    out += 1;
                }
            }
        }
    }
}
