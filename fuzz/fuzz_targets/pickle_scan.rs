#![no_main]
//! The pickle machine in scan mode (what `ckpt scan` runs) on a raw pickle stream.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = ckpt_torch::pickle::scan(Path::new("fuzz.pkl"), "data.pkl", data, 0);
});
