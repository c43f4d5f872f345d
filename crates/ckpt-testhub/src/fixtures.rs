//! The tensor values of the checkpoints that the MoE fixture generator wrote
//! (`tests/fixtures/arch-moe`), so tests can build the same checkpoints without reading them.

use ckpt_core::{DType, Tensor};

/// The `k`-th tensor of a generated MoE checkpoint, computed lazily: element `i` is
/// `((i + 5k) % 13) * 0.125` as F32; MXFP4 `*_blocks` and `*_scales` tensors (U8) hold
/// `(7i + 3k) % 256` and `118 + (i + k) % 8`.
///
/// ```
/// use ckpt_testhub::fixtures::moe_tensor;
///
/// let t = moe_tensor("model.norm.weight", vec![4], 1);
/// let bytes = t.bytes().unwrap();
/// let first = f32::from_le_bytes(bytes[..4].try_into().unwrap());
/// assert_eq!(first, 5.0 * 0.125);
/// ```
pub fn moe_tensor(name: &str, shape: Vec<u64>, k: u64) -> Tensor {
    let n: u64 = shape.iter().product();
    if name.ends_with("_blocks") || name.ends_with("_scales") {
        let blocks = name.ends_with("_blocks");
        return Tensor::computed(name, DType::U8, shape, move || {
            Ok((0..n)
                .map(|i| {
                    if blocks {
                        ((7 * i + 3 * k) % 256) as u8
                    } else {
                        (118 + (i + k) % 8) as u8
                    }
                })
                .collect())
        });
    }
    Tensor::computed(name, DType::F32, shape, move || {
        Ok((0..n)
            .flat_map(|i| (((i + 5 * k) % 13) as f32 * 0.125).to_le_bytes())
            .collect())
    })
}
