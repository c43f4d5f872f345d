#![no_main]
//! The GGUF reader: incremental header parsing (as remote inspect uses it) and a full open with
//! every tensor view validated.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = ckpt_gguf::parse_header(data);
    let buffer = ckpt_core::Buffer::owned(Path::new("fuzz.gguf"), data.to_vec());
    if let Ok(f) = ckpt_gguf::GgufFile::from_buffer(buffer, &Default::default()) {
        for (k, v) in &f.kvs {
            let _ = (k.len(), ckpt_gguf::describe_value(v, 8));
        }
    }
});
