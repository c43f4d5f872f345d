//! ggml_validate_row_data: llama-quantize refuses tensors whose values (or block scales) are
//! NaN or infinite, both when loading its input and after quantizing.

use ckpt_core::GgmlType;

use crate::float::f16_bits_to_f32;

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_bits_to_f32(u16::from_le_bytes([b[at], b[at + 1]]))
}

/// The index of the first little-endian u16 whose `exponent` bits are all set. Runs of 256
/// values are tested with a branch-free reduction (one vector loop) and only a run with a hit is
/// searched value by value.
fn first_all_ones_exponent(data: &[u8], exponent: u16) -> Option<usize> {
    const RUN: usize = 512;
    let bad = |b: &[u8]| u16::from_le_bytes([b[0], b[1]]) & exponent == exponent;
    for (r, run) in data.chunks(RUN).enumerate() {
        let hit = run.chunks_exact(2).fold(false, |acc, b| acc | bad(b));
        if hit {
            return run.chunks_exact(2).position(bad).map(|i| r * RUN / 2 + i);
        }
    }
    None
}

/// The index of the first element or block whose value or scale is not finite, if any.
/// Types without scales to check (MXFP4's power-of-two exponent, integers) always pass.
pub fn first_invalid_block(t: GgmlType, data: &[u8]) -> Option<usize> {
    use GgmlType::*;
    let elems = |size: usize, f: &dyn Fn(&[u8]) -> f32| {
        data.chunks_exact(size).position(|b| !f(b).is_finite())
    };
    // byte offsets of the fp16 scales inside one block
    let scales: &[usize] = match t {
        F32 => return elems(4, &|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        // half floats are NaN or infinite exactly when their exponent bits are all ones; testing
        // the bits directly lets a whole F16 tensor be scanned without widening each value
        F16 => return first_all_ones_exponent(data, 0x7C00),
        BF16 => return first_all_ones_exponent(data, 0x7F80),
        F64 => {
            return data
                .chunks_exact(8)
                .position(|b| !f64::from_le_bytes(b.try_into().unwrap()).is_finite())
        }
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL => &[0],
        Q4_1 | Q5_1 => &[0, 2],
        Q2_K => &[80, 82],
        Q3_K => &[108],
        Q4_K | Q5_K => &[0, 2],
        Q6_K => &[208],
        TQ1_0 => &[52],
        TQ2_0 => &[64],
        IQ4_XS => &[0],
        Q8_K => {
            return data
                .chunks_exact(292)
                .position(|b| !f32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_finite())
        }
        _ => return None,
    };
    data.chunks_exact(t.type_size())
        .position(|b| scales.iter().any(|&at| !f16_at(b, at).is_finite()))
}

/// The index of the first value that is NaN or infinite: for values widened from F32, F16 or
/// BF16 elements, the element [`first_invalid_block`] finds in their bytes. Runs of values are
/// tested with a branch-free reduction and only a run with a hit is searched.
pub fn first_non_finite(values: &[f32]) -> Option<usize> {
    const RUN: usize = 256;
    let bad = |x: &f32| x.to_bits() & 0x7F80_0000 == 0x7F80_0000;
    for (r, run) in values.chunks(RUN).enumerate() {
        if run.iter().fold(false, |acc, x| acc | bad(x)) {
            return run.iter().position(bad).map(|i| r * RUN + i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_float_bit_test_agrees_with_widening() {
        for bits in 0..=u16::MAX {
            let b = bits.to_le_bytes();
            let f16_bad = !f16_bits_to_f32(bits).is_finite();
            let bf16_bad = !crate::float::bf16_bits_to_f32(bits).is_finite();
            assert_eq!(
                first_invalid_block(GgmlType::F16, &b).is_some(),
                f16_bad,
                "{bits:#06x}"
            );
            assert_eq!(
                first_invalid_block(GgmlType::BF16, &b).is_some(),
                bf16_bad,
                "{bits:#06x}"
            );
        }
    }

    #[test]
    fn non_finite_values_are_the_invalid_elements() {
        let mut v = vec![0.5f32; 1000];
        assert_eq!(first_non_finite(&v), None);
        for (at, x) in [
            (999, f32::NAN),
            (300, f32::NEG_INFINITY),
            (7, f32::INFINITY),
        ] {
            v[at] = x;
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            assert_eq!(first_non_finite(&v), Some(at));
            assert_eq!(first_invalid_block(GgmlType::F32, &bytes), Some(at));
        }
        assert_eq!(
            first_non_finite(&[f32::MAX, -f32::MAX, f32::MIN_POSITIVE]),
            None
        );
    }

    #[test]
    fn finds_nan_scales_and_values() {
        let mut q = crate::quantize(GgmlType::Q4_K, &[0.5; 512], 256, None).unwrap();
        assert_eq!(first_invalid_block(GgmlType::Q4_K, &q), None);
        q[144 + 2..144 + 4].copy_from_slice(&0x7E00u16.to_le_bytes()); // dmin of block 1 = NaN
        assert_eq!(first_invalid_block(GgmlType::Q4_K, &q), Some(1));
        let f = [1.0f32, f32::INFINITY]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>();
        assert_eq!(first_invalid_block(GgmlType::F32, &f), Some(1));
    }
}
