#![no_main]
//! The zip reader: end-of-directory records (incl. zip64), central directory, local headers.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(z) = ckpt_torch::zip::ZipArchive::parse(Path::new("fuzz.zip"), data) {
        for e in z.entries() {
            let _ = z.data(e);
        }
    }
});
