//! Integration tests of ckpt-export, one binary (link once).

mod architectures;
mod python_interop;
mod round_trip;
