//! Integration tests of ckpt-convert, one binary (link once).

mod fp8_casts;
