#![no_main]
//! `ckpt scan` on arbitrary bytes as a file: content sniffing (zip, tar, legacy, plain pickle)
//! and the static pickle walk, as for a file met while walking a folder and one named explicitly.
//! The input is also scanned with the tar header checksum of every 512-byte block made valid,
//! so mutations reach the legacy tar reader (member headers, PAX and GNU name records, links,
//! and the pickles and raw data of the `storages` / `tensors` / `pickle` members) instead of
//! stopping at the checksum.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// `data` with the ustar checksum field of every 512-byte block set to match the block.
fn with_tar_checksums(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    for block in out.chunks_exact_mut(512) {
        block[148..156].fill(b' ');
        let sum: u32 = block.iter().map(|&b| b as u32).sum();
        let field = format!("{sum:06o}\0 ");
        block[148..156].copy_from_slice(field.as_bytes());
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let _ = ckpt_torch::scan::scan_bytes(Path::new("fuzz.bin"), data, false);
    if let Some(s) = ckpt_torch::scan::scan_bytes(Path::new("fuzz.bin"), data, true) {
        let _ = s.error.map(|e| e.to_string());
    }
    let _ = ckpt_torch::scan::walk(data, 0);
    if data.len() >= 512 {
        let tar = with_tar_checksums(data);
        if let Some(s) = ckpt_torch::scan::scan_bytes(Path::new("fuzz.tar"), &tar, true) {
            let _ = s.error.map(|e| e.to_string());
        }
    }
});
