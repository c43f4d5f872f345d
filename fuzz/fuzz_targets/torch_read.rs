#![no_main]
//! A whole torch checkpoint (zip or legacy) through the restricted pickle machine, then every
//! tensor's bytes (views, strides, byte order) materialised.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let opts = ckpt_torch::ReadOptions::default();
    if let Ok(ck) = ckpt_torch::read_bytes(Path::new("fuzz.bin"), data.to_vec(), &opts) {
        for t in &ck.tensors {
            if t.nbytes() < (1 << 24) {
                let _ = t.bytes();
            }
        }
    }
});
