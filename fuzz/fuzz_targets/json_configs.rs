#![no_main]
//! The JSON loaders: adapter_config.json and *.index.json.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ckpt_lora::merge::AdapterConfig::parse_str(text, Path::new("adapter_config.json"));
        let _ = ckpt_convert::source::parse_index(text, Path::new("model.safetensors.index.json"));
    }
});
