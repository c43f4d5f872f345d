//! Integration tests of ckpt-torch, one binary (link once).

mod common;
mod read_extra;
mod read_fixtures;
mod refuse;
mod write;
