//! `cargo run -p ckpt-export --example gguf_to_hf -- MODEL.gguf OUT_DIR [f32|f16|bf16]`: the
//! exporter without the CLI (used by scripts/interop/export_logits.py checks during development).

use std::path::Path;

use ckpt_core::DType;
use ckpt_export::{gguf_to_hf, ExportOptions};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 {
        eprintln!("usage: gguf_to_hf MODEL.gguf OUT_DIR [f32|f16|bf16]");
        std::process::exit(2);
    }
    let dtype = match args.get(2).map(String::as_str) {
        None => None,
        Some("f32") => Some(DType::F32),
        Some("f16") => Some(DType::F16),
        Some("bf16") => Some(DType::BF16),
        Some(other) => {
            eprintln!("unknown dtype {other}");
            std::process::exit(2);
        }
    };
    let opts = ExportOptions {
        dtype,
        overwrite: true,
        ..Default::default()
    };
    match gguf_to_hf(Path::new(&args[0]), Path::new(&args[1]), &opts) {
        Ok(report) => println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        ),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
