#![no_main]
//! The zip end-record search and layout checks (one end record, records tiling the file, local
//! names), seeded with torch's and Python's layouts and the layout attacks of the hostile corpus
//! (two archives, overlaps, junk, renamed local headers).
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(z) = ckpt_torch::zip::ZipArchive::parse(Path::new("fuzz.zip"), data) {
        for e in z.entries() {
            let _ = z.data(e);
        }
    }
});
