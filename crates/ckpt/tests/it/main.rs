//! Integration tests of ckpt, one binary (link once).

mod api;
