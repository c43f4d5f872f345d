//! Integration tests of ckpt-remote, one binary (link once).

mod hardening;
mod push;
mod python_interop;
mod remote;
