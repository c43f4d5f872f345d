//! PyTorch checkpoints (`.bin` / `.pt`, zip and legacy formats) read by a restricted pickle
//! machine that executes nothing, and written so `torch.load(weights_only=True)` loads them.
//!
//! Reading: [`read`] maps the file, unpickles it with an allowlist of globals (anything else is
//! refused by name with [`Error::Unsafe`]), and returns lazy tensors viewing the mapped storages
//! (tensors of one torch storage share one core `Storage`, views keep their offset and strides).
//! Nested containers are flattened with `.`; non-tensor leaves go to `Checkpoint::extras`.
//!
//! Writing: [`write()`] produces a zip checkpoint like `torch.save`'s (STORED, 64-byte aligned
//! records, protocol-2 pickle using only opcodes and globals the safe loader accepts).

mod archive;
mod flatten;
pub mod globals;
mod legacy;
mod opcodes;
pub mod pickle;
mod rebuild;
pub mod scan;
mod writer;
pub mod zip;

use std::path::Path;
use std::sync::Arc;

use ckpt_core::{Buffer, Checkpoint, Error, Format, Result, Storage};

pub use pickle::ScanReport;
pub use writer::{archive_folder, check_limits, write, write_to};

/// What to read from a checkpoint.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// Read only this entry of the root dict (e.g. `state_dict`; a dotted path reaches deeper);
    /// tensor names are then relative to it.
    pub key: Option<String>,
}

/// The unpickled object tree of a checkpoint and the storages backing its tensors.
pub(crate) struct Unpickled<'p> {
    machine: pickle::Machine<'p>,
    root: pickle::Value,
    /// `storages[i]` backs the pickle's storage `i`.
    storages: Vec<Arc<Storage>>,
}

fn load<'p>(path: &'p Path, buffer: &Arc<Buffer>) -> Result<(Unpickled<'p>, Format)> {
    let bytes = buffer.bytes();
    if zip::is_zip(bytes) {
        Ok((archive::load(path, buffer)?, Format::TorchZip))
    } else if legacy::is_legacy(bytes) {
        Ok((legacy::load(path, buffer)?, Format::TorchLegacy))
    } else {
        Err(Error::invalid(
            path,
            "not a PyTorch checkpoint (neither a zip archive nor the legacy magic number)",
        ))
    }
}

/// Reads a torch checkpoint (zip or legacy format) without executing anything from it.
pub fn read(path: &Path, opts: &ReadOptions) -> Result<Checkpoint> {
    read_buffer(path, Buffer::map(path)?, opts)
}

/// [`read`] for bytes already in memory (`label` names them in errors); used by the fuzzers.
pub fn read_bytes(label: &Path, bytes: Vec<u8>, opts: &ReadOptions) -> Result<Checkpoint> {
    read_buffer(label, Buffer::owned(label, bytes), opts)
}

fn read_buffer(path: &Path, buffer: Arc<Buffer>, opts: &ReadOptions) -> Result<Checkpoint> {
    let (u, format) = load(path, &buffer)?;
    let flat = flatten::flatten(&u.machine, &u.root, &u.storages, opts.key.as_deref(), path)?;
    let mut ckpt = Checkpoint::new(format, vec![path.to_path_buf()]);
    ckpt.tensors = flat.tensors;
    ckpt.extras = flat.extras;
    Ok(ckpt)
}

/// The keys of the checkpoint's root dict (empty when the root is not a dict), e.g. to decide
/// whether to read only its `state_dict` entry.
pub fn top_level_keys(path: &Path) -> Result<Vec<String>> {
    let buffer = Buffer::map(path)?;
    let (u, _) = load(path, &buffer)?;
    Ok(flatten::top_level_keys(&u.machine, &u.root))
}

/// Whether `torch.load(weights_only=False)` would unpickle something from this file, judged by
/// its content whatever its name: a zip archive holding a pickle record, a legacy tar archive,
/// a legacy checkpoint or any pickle stream (see [`scan::scan_file`]).
pub fn is_torch_file(path: &Path) -> bool {
    path.is_file() && scan::scan_file(path, false).is_some()
}

/// Every global and call target the file's pickles name, in order, found without executing or
/// resolving anything, by the static scanner of `ckpt scan` ([`scan::scan_file`]): every pickle
/// record of a zip archive (`data.pkl` first), the five pickles of a legacy checkpoint, or a
/// plain pickle stream. A file that cannot be scanned to the end is an error.
pub fn scan(path: &Path) -> Result<ScanReport> {
    let s = scan::scan_file(path, true).expect("an explicit path is always scanned");
    match s.error {
        Some(e) => Err(e),
        None => Ok(s.report),
    }
}
/// Every global the checkpoint's pickles name (`module.name`, in order), without executing them.
pub fn scan_globals(path: &Path) -> Result<Vec<String>> {
    Ok(scan(path)?.globals)
}
