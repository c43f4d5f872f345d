//! Integration tests of ckpt-core, one binary (link once).

mod atomic_output;
