//! The two calls this crate makes into ckpt-torch.

use std::io::Write;
use std::path::Path;

use ckpt_core::{Checkpoint, Error, Result, Tensor};

pub fn read(path: &Path, key: Option<&str>) -> Result<Checkpoint> {
    ckpt_torch::read(path, &ckpt_torch::ReadOptions { key: key.map(str::to_string) })
}

pub fn write_to(_w: &mut dyn Write, _archive: &str, _tensors: &[Tensor], _on_tensor: &mut dyn FnMut(u64)) -> Result<()> {
    Err(Error::Unsupported("torch writer pending".into()))
}
