#![no_main]
//! The zip end-record search and layout checks (one end record, records tiling the file, local
//! names), seeded with torch's and Python's layouts and the layout attacks of the hostile corpus
//! (two archives, overlaps, junk, renamed local headers); then the whole scan of the same bytes
//! (`ckpt scan`'s dispatch between zip, tar and pickle streams, and the zip's pickle records).
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(z) = ckpt_torch::zip::ZipArchive::parse(Path::new("fuzz.zip"), data) {
        for e in z.entries() {
            let _ = z.data(e);
        }
    }
    if let Some(s) = ckpt_torch::scan::scan_bytes(Path::new("fuzz.zip"), data, true) {
        let _ = s.error.map(|e| e.to_string());
    }
});
