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
//!
//! Scanning: [`scan()`] / [`scan_globals`] list what a file's pickles import and call without
//! running them ([`scan`](mod@scan) is the static scanner behind `ckpt scan`, [`globals`] the
//! allowlist, [`zip`] the archive reader).
//!
//! ```
//! use std::path::Path;
//!
//! let src = Path::new(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../tests/fixtures/torch/parameters.bin"
//! ));
//! let ckpt = ckpt_torch::read(src, &ckpt_torch::ReadOptions::default())?;
//! // Every global the file names is on the allowlist.
//! for g in ckpt_torch::scan_globals(src)? {
//!     let (module, name) = g.rsplit_once('.').unwrap();
//!     assert!(ckpt_torch::globals::resolve(module, name).is_some(), "{g}");
//! }
//!
//! // Written back and read again, every tensor keeps its name, dtype, shape and bytes.
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("pytorch_model.bin");
//! ckpt_torch::write(&out, &ckpt.tensors, false)?;
//! let back = ckpt_torch::read(&out, &ckpt_torch::ReadOptions::default())?;
//! assert_eq!(back.tensors.len(), ckpt.tensors.len());
//! for t in &ckpt.tensors {
//!     let b = back.tensors.iter().find(|b| b.name == t.name).unwrap();
//!     assert_eq!((b.dtype, &b.shape), (t.dtype, &t.shape));
//!     assert_eq!(b.bytes()?, t.bytes()?);
//! }
//! # Ok::<(), ckpt_core::Error>(())
//! ```

#![warn(missing_docs)]

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
    } else if scan::is_tar(bytes) {
        Err(Error::Unsupported(format!(
            "{}: this is a legacy tar checkpoint (torch < 0.4), which ckpt does not read; load it \
             with a torch you trust and save it again (`ckpt scan` lists what it would import)",
            path.display()
        )))
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
/// record of a zip archive (`data.pkl` first), the five pickles of a legacy checkpoint, every
/// pickle of a legacy tar checkpoint (torch < 0.4), or a plain pickle stream. A file that cannot be scanned to the end is an error.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::{Machine, Mode, PersistentIds, MAX_MEMO, MAX_OBJECTS, MAX_VALUES};

    /// The `data.pkl` CPython's pickler (protocol 2, as `torch.save` uses it) writes for an
    /// OrderedDict state dict of `n` 2x2 float32 tensors, each in its own storage, with
    /// torch's persistent ids and `Tensor.__reduce_ex__` arguments (checked byte for byte
    /// against CPython below).
    fn torch_like_pickle(n: usize) -> Vec<u8> {
        let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01".to_vec();
        let mut memo = 2u32;
        let put = |p: &mut Vec<u8>, memo: &mut u32| {
            if *memo < 256 {
                p.extend([b'q', *memo as u8]);
            } else {
                p.push(b'r');
                p.extend(memo.to_le_bytes());
            }
            *memo += 1;
        };
        let get = |p: &mut Vec<u8>, i: u32| {
            if i < 256 {
                p.extend([b'h', i as u8]);
            } else {
                p.push(b'j');
                p.extend(i.to_le_bytes());
            }
        };
        let uni = |p: &mut Vec<u8>, s: &str| {
            p.push(b'X');
            p.extend((s.len() as u32).to_le_bytes());
            p.extend(s.as_bytes());
        };
        for batch in (0..n).collect::<Vec<_>>().chunks(1000) {
            if batch.len() > 1 {
                p.push(b'(');
            }
            for &i in batch {
                uni(
                    &mut p,
                    &format!("model.layers.{}.block.{}.weight", i / 10, i % 10),
                );
                put(&mut p, &mut memo);
                if i == 0 {
                    p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n");
                    put(&mut p, &mut memo);
                    p.extend(b"((");
                    uni(&mut p, "storage");
                    put(&mut p, &mut memo);
                    p.extend(b"ctorch\nFloatStorage\n");
                    put(&mut p, &mut memo);
                    uni(&mut p, "0");
                    put(&mut p, &mut memo);
                    uni(&mut p, "cpu");
                    put(&mut p, &mut memo);
                } else {
                    get(&mut p, 3);
                    p.extend(b"((");
                    get(&mut p, 4);
                    get(&mut p, 5);
                    uni(&mut p, &i.to_string());
                    put(&mut p, &mut memo);
                    get(&mut p, 7);
                }
                p.extend(b"K\x04t");
                put(&mut p, &mut memo);
                p.extend(b"QK\x00K\x02K\x02\x86");
                put(&mut p, &mut memo);
                p.extend(b"K\x02K\x01\x86");
                put(&mut p, &mut memo);
                p.push(0x89);
                get(&mut p, 0);
                p.extend(b")R");
                put(&mut p, &mut memo);
                p.push(b't');
                put(&mut p, &mut memo);
                p.push(b'R');
                put(&mut p, &mut memo);
            }
            p.push(if batch.len() > 1 { b'u' } else { b's' });
        }
        // The state dict's `_metadata` attribute, applied by BUILD.
        p.push(b'}');
        put(&mut p, &mut memo);
        uni(&mut p, "_metadata");
        put(&mut p, &mut memo);
        get(&mut p, 0);
        p.extend(b")R");
        put(&mut p, &mut memo);
        uni(&mut p, "");
        put(&mut p, &mut memo);
        p.push(b'}');
        put(&mut p, &mut memo);
        uni(&mut p, "version");
        put(&mut p, &mut memo);
        p.extend(b"K\x01sssb.");
        p
    }

    #[test]
    fn the_generator_writes_what_cpython_writes() {
        let Ok(python) = std::env::var("CKPT_PYTHON") else {
            eprintln!("skipped: CKPT_PYTHON is not set");
            return;
        };
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/torch_like_pickle.py");
        let out = std::env::temp_dir().join(format!("ckpt-torch-like-{}.pkl", std::process::id()));
        let st = std::process::Command::new(python)
            .arg(script)
            .arg("2501")
            .arg(&out)
            .status()
            .unwrap();
        assert!(st.success());
        let written = std::fs::read(&out).unwrap();
        let _ = std::fs::remove_file(&out);
        assert!(written == torch_like_pickle(2501));
    }

    /// A checkpoint of a million tensors, pickled as `torch.save` pickles it, is within every
    /// budget of the machine and of the flattening, with room to spare.
    #[test]
    fn a_million_tensors_fit_the_budgets() {
        let n = 1_000_000;
        let data = torch_like_pickle(n);
        let path = Path::new("big/data.pkl");
        let mut m = Machine::new(path, "big/data.pkl", Mode::Load, PersistentIds::Zip);
        let (root, _) = m.run(&data, 0).unwrap();
        eprintln!(
            "{n} tensors: {} bytes of pickle, {} values, {} containers, {} memo entries",
            data.len(),
            m.values,
            m.objects.len(),
            8 * n
        );
        // What it took, against the budgets (at least 2x headroom each).
        assert!(m.values * 2 < MAX_VALUES, "{} values", m.values);
        assert!(
            m.objects.len() * 2 < MAX_OBJECTS,
            "{} objects",
            m.objects.len()
        );
        assert!(8 * n * 2 < MAX_MEMO);
        assert_eq!(m.storages.len(), n);
        let buffer = Buffer::owned(path, vec![0u8; 16]);
        let storage = Storage::new(buffer, 0, 16, "data/0".to_string()).unwrap();
        let storages = vec![storage; n];
        let flat = flatten::flatten(&m, &root, &storages, None, path).unwrap();
        assert_eq!(flat.tensors.len(), n);
    }
}
