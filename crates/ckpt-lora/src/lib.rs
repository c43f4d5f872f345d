//! ckpt-lora: PEFT LoRA adapters.
//!
//! - [`merge`]: adapters merged into their base model with PEFT's `merge_and_unload` math, written
//!   as a model folder ([`merge::merge_lora`]) or converted on to GGUF
//!   ([`merge::merge_lora_to_gguf`]) by ckpt-convert's folder writer.
//! - [`to_gguf`]: an adapter folder to a GGUF LoRA adapter ([`to_gguf::adapter_to_gguf`]), as
//!   llama.cpp's `convert_lora_to_gguf.py` writes it (for `llama-cli --lora` and Ollama's
//!   `ADAPTER`).
//!
//! # Example: merging a LoRA adapter into its base model
//!
//! ```
//! # fn main() -> ckpt_core::Result<()> {
//! use std::path::Path;
//!
//! use ckpt_lora::merge::{merge_lora, MergeOptions};
//!
//! let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/lora/f32"));
//! let tmp = tempfile::tempdir().unwrap();
//! let out = tmp.path().join("merged");
//!
//! let adapter = (fixtures.join("a_lora/adapter"), 1.0);
//! let report = merge_lora(&fixtures.join("base-llama"), &[adapter], &out, &MergeOptions::default())?;
//! // The adapter targets the four attention projections: each received W + s·B·A.
//! for m in ["q_proj", "k_proj", "v_proj", "o_proj"] {
//!     assert!(report.merged.iter().any(|t| t.ends_with(&format!("self_attn.{m}.weight"))));
//! }
//! assert!(report.replaced.is_empty());
//! assert!(out.join("model.safetensors").is_file());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod merge;
pub mod to_gguf;
