//! Integration tests of ckpt-quant, one binary (link once).

mod common;
mod imatrix;
mod iq_files;
mod iq_kernels;
mod kernels;
mod pipeline;
mod python_interop;
