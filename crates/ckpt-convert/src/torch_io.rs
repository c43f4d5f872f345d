//! The two calls this crate makes into ckpt-torch.

use std::io::Write;
use std::path::Path;

use ckpt_core::{Checkpoint, Result, Tensor};

pub fn read(path: &Path, key: Option<&str>) -> Result<Checkpoint> {
    ckpt_torch::read(
        path,
        &ckpt_torch::ReadOptions {
            key: key.map(str::to_string),
        },
    )
}

pub fn write_to(
    w: &mut dyn Write,
    archive: &str,
    tensors: &[Tensor],
    on_tensor: &mut dyn FnMut(u64),
) -> Result<()> {
    ckpt_torch::write_to(w, archive, tensors, on_tensor).map(|_| ())
}

/// Whether ckpt's torch reader would accept a checkpoint of these tensors (checked before writing).
pub fn check_limits(tensors: &[Tensor]) -> Result<()> {
    ckpt_torch::check_limits(tensors)
}
