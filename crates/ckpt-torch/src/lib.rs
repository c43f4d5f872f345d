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
pub mod pickle;
mod rebuild;
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

/// Whether the file looks like a torch checkpoint (by its first bytes; nothing is unpickled
/// beyond the legacy magic number).
pub fn is_torch_file(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 512];
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(_) => return false,
        }
    }
    let head = &head[..n];
    if zip::is_zip(head) {
        // The first local header's name: a torch record inside the archive's folder.
        let name_len = head
            .get(26..28)
            .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
            .unwrap_or(0);
        let Some(name) = head
            .get(30..30 + name_len)
            .and_then(|b| std::str::from_utf8(b).ok())
        else {
            return false;
        };
        return match name.split_once('/') {
            Some((_, rest)) => {
                matches!(
                    rest,
                    "data.pkl" | "version" | ".format_version" | "byteorder" | ".data/version"
                ) || rest.starts_with("data/")
            }
            None => false,
        };
    }
    legacy::is_legacy(head)
}

/// Every global and call target the checkpoint's pickles name, in order, found without
/// executing or resolving anything (for `ckpt scan`). TorchScript archives, which [`read`]
/// refuses, are scanned too (`data.pkl` then `constants.pkl`).
pub fn scan(path: &Path) -> Result<ScanReport> {
    let buffer = Buffer::map(path)?;
    let bytes = buffer.bytes();
    let mut report = ScanReport::default();
    if zip::is_zip(bytes) {
        let archive = archive::TorchArchive::open(path, bytes)?;
        let (pickle, label) = archive.pickle()?;
        report = pickle::scan(path, &label, pickle, 0)?.0;
        if archive.is_torchscript() {
            // TorchScript keeps a second pickle of constants next to its code.
            let (constants, label) = archive.pickle_record("constants.pkl")?;
            let part = pickle::scan(path, &label, constants, 0)?.0;
            report.globals.extend(part.globals);
            report.calls.extend(part.calls);
        }
    } else if legacy::is_legacy(bytes) {
        let mut pos = 0;
        for label in legacy::PICKLE_LABELS {
            let (part, end) = pickle::scan(path, label, bytes, pos)?;
            report.globals.extend(part.globals);
            report.calls.extend(part.calls);
            pos = end;
        }
    } else {
        return Err(Error::invalid(
            path,
            "not a PyTorch checkpoint (neither a zip archive nor the legacy magic number)",
        ));
    }
    Ok(report)
}

/// Every global the checkpoint's pickles name (`module.name`, in order), without executing them.
pub fn scan_globals(path: &Path) -> Result<Vec<String>> {
    Ok(scan(path)?.globals)
}
