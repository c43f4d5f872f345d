//! Integration tests of ckpt-model, one binary (link once).

mod arch_moe;
mod arch_tables;
mod architectures;
mod bad_input;
mod fp8;
mod pre_hashes_source;
mod python_interop;
mod readme_architectures;
mod reference;
mod tokenizer_fingerprint;
