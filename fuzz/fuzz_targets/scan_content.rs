#![no_main]
//! `ckpt scan` on arbitrary bytes as a file: content sniffing (zip, tar, legacy, plain pickle)
//! and the static pickle walk, as for a file met while walking a folder and one named explicitly.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = ckpt_torch::scan::scan_bytes(Path::new("fuzz.bin"), data, false);
    if let Some(s) = ckpt_torch::scan::scan_bytes(Path::new("fuzz.bin"), data, true) {
        let _ = s.error.map(|e| e.to_string());
    }
    let _ = ckpt_torch::scan::walk(data, 0);
});
