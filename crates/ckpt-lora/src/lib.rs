//! ckpt-lora: PEFT LoRA adapters.
//!
//! - [`merge`]: adapters merged into their base model with PEFT's `merge_and_unload` math, written
//!   as a model folder (or converted on to GGUF) by ckpt-convert's folder writer.
//! - [`to_gguf`]: an adapter folder to a GGUF LoRA adapter, as llama.cpp's
//!   `convert_lora_to_gguf.py` writes it (for `llama-cli --lora` and Ollama's `ADAPTER`).

pub mod merge;
pub mod to_gguf;

pub use merge::{
    merge_lora, merge_lora_to_gguf, Adapter, AdapterConfig, MergeOptions, MergeReport,
};
pub use to_gguf::{adapter_to_gguf, is_adapter_dir, AdapterReport, LoraToGgufOptions};
