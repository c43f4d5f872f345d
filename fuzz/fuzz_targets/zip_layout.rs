#![no_main]
//! The zip end-record search and layout checks: the input is a small STORED archive template
//! whose bytes are overwritten by the fuzzer's, then a tail of fuzzer bytes (comments holding
//! further end records, junk after the directory).
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(z) = ckpt_torch::zip::ZipArchive::parse(Path::new("fuzz.zip"), data) {
        for e in z.entries() {
            let _ = z.data(e);
        }
    }
});
