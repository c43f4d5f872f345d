//! ckpt-core: the pieces every ckpt format and command shares — element types, the lazy tensor
//! model, checkpoints as read, shard planning and crash-safe output.
//!
//! * [`DType`] / [`GgmlType`]: element types under their safetensors, torch and ggml names.
//! * [`Tensor`] over [`Storage`] / [`Buffer`]: a name, dtype and row-major shape whose bytes
//!   are read (or computed) only when a sink asks; [`Checkpoint`]: what every reader returns.
//! * [`atomic`]: outputs that appear only once complete; [`sniff`]: what a file is;
//!   [`hf`]: Hugging Face folder conventions; [`shard`]: shard planning; [`Error`]: the one
//!   error type, with an [`ErrorKind`] to match on.
//!
//! ```
//! use std::io::Write;
//! use std::path::Path;
//! use ckpt_core::atomic::AtomicFile;
//! use ckpt_core::sniff::{sniff_file, FileKind};
//! use ckpt_core::{Buffer, DType, Storage, Tensor};
//!
//! // A 2x2 F32 tensor viewing bytes held in memory.
//! let bytes: Vec<u8> = [1f32, 2.0, 3.0, 4.0].iter().flat_map(|x| x.to_le_bytes()).collect();
//! let storage = Storage::new(Buffer::owned("mem", bytes.clone()), 0, 16, "example")?;
//! let t = Tensor::contiguous("w", DType::F32, vec![2, 2], storage);
//! assert_eq!((t.numel(), t.nbytes()), (4, 16));
//!
//! // Written crash-safely: nothing is at `out` until commit.
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("w.bin");
//! let mut file = AtomicFile::create(&out, false)?;
//! file.write_all(&t.bytes()?).unwrap();
//! assert!(!out.exists());
//! file.commit()?;
//! assert_eq!(std::fs::read(&out).unwrap(), bytes);
//!
//! // Files are recognised by their first bytes.
//! let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"));
//! assert_eq!(sniff_file(&fixtures.join("torch/parameters.bin"))?, FileKind::TorchZip);
//! assert_eq!(sniff_file(&fixtures.join("gguf/tiny-llama-spm.f16.gguf"))?, FileKind::Gguf);
//! # Ok::<(), ckpt_core::Error>(())
//! ```

#![warn(missing_docs)]

pub mod atomic;
pub mod checkpoint;
pub mod codec;
pub mod dtype;
pub mod error;
pub mod hf;
pub mod pool;
pub mod progress;
pub mod shard;
pub mod sniff;
pub mod tensor;

pub use checkpoint::{Checkpoint, Format};
pub use dtype::{numel, DType, GgmlType};
pub use error::{Error, ErrorKind, Result};
pub use progress::{Progress, ProgressEvent, SharedProgress};
pub use tensor::{Buffer, RowFill, Storage, Tensor, TensorData, View};
