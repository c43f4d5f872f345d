//! A PEFT LoRA adapter folder to a GGUF adapter, as llama.cpp's `convert_lora_to_gguf.py`
//! writes it (the planning is [`ckpt_model::lora`]); the output appears only when complete.
//!
//! # Example
//!
//! ```
//! # fn main() -> ckpt_core::Result<()> {
//! use std::path::Path;
//!
//! use ckpt_lora::to_gguf::{adapter_to_gguf, LoraToGgufOptions};
//!
//! let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"));
//! let tmp = tempfile::tempdir().unwrap();
//! let out = tmp.path().join("adapter.gguf");
//!
//! // convert_lora_to_gguf.py's defaults: --outtype f32, little-endian.
//! let report = adapter_to_gguf(
//!     &fixtures.join("lora/f32/a_lora/adapter"),
//!     &fixtures.join("lora/f32/base-llama"),
//!     &out,
//!     &LoraToGgufOptions::default(),
//!     false,
//! )?;
//! assert_eq!(report.gguf_architecture, "llama");
//! assert_eq!(report.tensors, 2 * report.pairs);
//! // Byte for byte what the script wrote for the same adapter.
//! let reference = std::fs::read(fixtures.join("lora-gguf/expected/llama-a-f32.gguf")).unwrap();
//! assert!(std::fs::read(&out).unwrap() == reference);
//! # Ok(())
//! # }
//! ```

use std::path::{Path, PathBuf};

use ckpt_core::atomic::check_destination;
use ckpt_core::{Error, Result};
use serde::Serialize;

use ckpt_convert::source::{self, OpenOptions};

pub use ckpt_model::lora::LoraToGgufOptions;

/// Whether `dir` is a PEFT adapter folder: `adapter_config.json` and `adapter_model.safetensors`
/// or `adapter_model.bin`.
pub fn is_adapter_dir(dir: &Path) -> bool {
    dir.is_dir() && dir.join("adapter_config.json").is_file() && adapter_weights(dir).is_some()
}

/// The adapter's weights, the safetensors file first (the script's order).
pub(crate) fn adapter_weights(dir: &Path) -> Option<PathBuf> {
    ["adapter_model.safetensors", "adapter_model.bin"]
        .iter()
        .map(|n| dir.join(n))
        .find(|p| p.is_file())
}

/// What [`adapter_to_gguf`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    /// The GGUF written (with `dry_run`, the one that would be).
    pub output: PathBuf,
    /// Only planned (`--dry-run`): nothing was written.
    pub dry_run: bool,
    /// The base model's `architectures[0]`.
    pub hf_architecture: String,
    /// `general.architecture`.
    pub gguf_architecture: String,
    /// `adapter.lora.alpha`.
    pub alpha: f32,
    /// LoRA pairs written.
    pub pairs: usize,
    /// Tensors written.
    pub tensors: usize,
    /// File size.
    pub bytes: u64,
    /// Tensors stored in another type than asked.
    pub fallbacks: Vec<String>,
    /// Adapter tensors left out on purpose.
    pub dropped: Vec<String>,
    /// Deliberate differences from the script's output.
    pub warnings: Vec<String>,
}

/// Converts the adapter folder `adapter_dir` for the base model folder `base_dir` (only its
/// `config.json` is read) into the GGUF `out` (with `opts.dry_run`, only plans and checks the
/// destination). Fails when either folder lacks its files, when `out` exists and `overwrite`
/// is false, or when the adapter holds something a GGUF adapter cannot (see
/// [`ckpt_model::lora`]).
pub fn adapter_to_gguf(
    adapter_dir: &Path,
    base_dir: &Path,
    out: &Path,
    opts: &LoraToGgufOptions,
    overwrite: bool,
) -> Result<AdapterReport> {
    if !adapter_dir.join("adapter_config.json").is_file() {
        return Err(Error::invalid(
            adapter_dir,
            "not a PEFT adapter folder: no adapter_config.json",
        ));
    }
    let weights = adapter_weights(adapter_dir).ok_or_else(|| {
        Error::invalid(
            adapter_dir,
            "no adapter_model.safetensors or adapter_model.bin in the adapter folder",
        )
    })?;
    if !base_dir.join("config.json").is_file() {
        return Err(Error::invalid(
            base_dir,
            "the base model folder has no config.json (the adapter's architecture and tensor names come from it)",
        ));
    }
    let ckpt = source::open_file(&weights, &OpenOptions::default())?;
    let mut tensors = ckpt.tensors.clone();
    // safetensors' load_file yields names sorted; torch.load keeps the file's order.
    if weights.extension().is_some_and(|e| e == "safetensors") {
        tensors.sort_by(|a, b| a.name.cmp(&b.name));
    }
    let (writer, report) =
        ckpt_model::lora::plan_lora_to_gguf(base_dir, adapter_dir, &tensors, opts)?;
    if opts.dry_run {
        check_destination(out, overwrite)?;
    } else {
        writer.write(out, overwrite)?;
    }
    Ok(AdapterReport {
        dry_run: opts.dry_run,
        output: out.to_path_buf(),
        hf_architecture: report.hf_architecture,
        gguf_architecture: report.gguf_architecture,
        alpha: report.alpha,
        pairs: report.pairs,
        tensors: report.tensor_count,
        bytes: report.output_bytes,
        fallbacks: report.fallbacks,
        dropped: report.dropped,
        warnings: report.warnings,
    })
}
