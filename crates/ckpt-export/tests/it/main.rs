//! Integration tests of ckpt-export, one binary (link once).

mod architectures;
mod dense_modules;
mod python_interop;
mod round_trip;
