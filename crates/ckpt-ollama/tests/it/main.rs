//! Integration tests of ckpt-ollama, one binary (link once).

mod blob_streaming;
mod common;
mod cross_site;
mod derived;
mod gguf_header;
mod gotemplate;
mod modelfile;
mod python_interop;
mod server;
mod show_summary;
mod store;
mod templates;
