//! ckpt-cli's integration tests, one binary (one link) for all of them.

mod bigendian;
mod convert_gguf;
mod convert_split;
mod convert_torch;
mod convert_views;
mod crash_safety;
mod dense_modules;
mod diff_verify;
mod export_cli;
mod hostile;
mod inspect_gguf;
mod lora_gguf;
mod merge_lora;
mod newcomer;
mod ollama_cli;
mod push_cli;
mod quantize;
mod readme;
mod remote_cli;
mod scan_cli;
mod toolbox;
mod vision;
