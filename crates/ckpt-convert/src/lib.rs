//! ckpt-convert: the source -> plan -> sink loop shared by every conversion command: opening
//! files and model folders, shared-tensor de-duplication, casts, sharding, verification.
//!
//! Entry points:
//! - [`open`] ([`source`]): a safetensors file, PyTorch `.bin`/`.pt` (zip or legacy pickle),
//!   GGUF, `*.index.json` or Hugging Face model folder as one [`ckpt_core::Checkpoint`];
//! - [`convert()`] ([`convert`](mod@convert)): safetensors ⇄ PyTorch `.bin`, as one file or a
//!   sharded model folder, each output re-read and checked before it is renamed into place;
//! - [`gguf::convert_to_gguf`]: a Hugging Face folder to GGUF like llama.cpp's
//!   `convert_hf_to_gguf.py`, optionally quantized like `llama-quantize` in the same pass;
//! - [`diff::diff`] and [`verify::verify`]: the `ckpt diff` and `ckpt verify` reports;
//! - [`cast`]: the dtype casts behind `--dtype` (torch's rounding).
//!
//! # Example: a PyTorch `.bin` with tied weights to safetensors
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use ckpt_convert::{convert, open, ConvertOptions, OpenOptions, Target};
//!
//! let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/torch"));
//! let tmp = tempfile::tempdir()?;
//! let out = tmp.path().join("model.safetensors");
//!
//! let opts = ConvertOptions { verify: true, ..Default::default() };
//! let report = convert(&fixtures.join("shared_tensors.bin"), &out, &opts)?;
//! assert_eq!(report.target, Target::Safetensors);
//! assert!(report.verified);
//! // Tensors sharing one storage are written once, like safetensors' convert.py does.
//! assert!(!report.dropped_shared.is_empty());
//!
//! // The same tensors as safetensors.torch.save_file wrote for this fixture.
//! let expected = open(&fixtures.join("shared_tensors.expected.safetensors"), &OpenOptions::default())?;
//! let written = open(&out, &OpenOptions::default())?;
//! let d = ckpt_convert::diff::diff(&expected, &written, &Default::default(), 0.0)?;
//! assert!(d.same && d.identical_bytes == expected.tensors.len());
//! assert_eq!(written.metadata, expected.metadata); // `format: pt` and the dropped -> kept names
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod cast;
pub mod convert;
pub mod diff;
pub mod gguf;
pub(crate) mod shared;
pub mod source;
mod torch_io;
pub mod verify;

pub use convert::{convert, ConvertOptions, ConvertReport, Target};
pub use source::{open, OpenOptions};
