#![no_main]
//! The safetensors header parser, in full-file and header-only modes.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let p = Path::new("fuzz.safetensors");
    let _ = ckpt_safetensors::parse_header(data, Some(data.len() as u64), p);
    if let Ok(h) = ckpt_safetensors::parse_header(data, None, p) {
        // A header that parses describes offsets that fit in u64 arithmetic.
        let _ = h.file_len();
    }
});
