//! Integration tests of ckpt-gguf, one binary (link once).

mod bigendian;
mod common;
mod corrupt;
mod python_interop;
mod read_write;
mod writer;
