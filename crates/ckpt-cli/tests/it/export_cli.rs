//! `ckpt convert MODEL.gguf OUT_DIR`: GGUF back to a Hugging Face folder, and back again to the
//! same GGUF tensors and metadata.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(p)
}

fn ckpt(args: &[&std::ffi::OsStr]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn gguf_to_hf_and_back() {
    let work = tempfile::tempdir().unwrap();
    let hf = work.path().join("tiny-llama-spm");
    let src = fx("tiny-llama-spm.f16.gguf");
    let r = ckpt(&["convert".as_ref(), src.as_os_str(), hf.as_os_str()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    for f in [
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ] {
        assert!(hf.join(f).exists(), "{f}");
    }
    let back = work.path().join("back.gguf");
    let r = ckpt(&[
        "convert".as_ref(),
        hf.as_os_str(),
        back.as_os_str(),
        "--outtype".as_ref(),
        "f16".as_ref(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = ckpt(&[
        "diff".as_ref(),
        fx("tiny-llama-spm.f16.gguf").as_os_str(),
        back.as_os_str(),
    ]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "same tensors after GGUF -> HF -> GGUF: {}",
        String::from_utf8_lossy(&r.stdout)
    );
    let meta = |p: &Path| -> serde_json::Value {
        let o = ckpt(&["inspect".as_ref(), "--json".as_ref(), p.as_os_str()]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["metadata"].clone()
    };
    let (a, b) = (meta(&fx("tiny-llama-spm.f16.gguf")), meta(&back));
    for key in [
        "general.architecture",
        "llama.block_count",
        "llama.embedding_length",
        "llama.attention.head_count_kv",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type",
        "tokenizer.chat_template",
        "tokenizer.ggml.bos_token_id",
    ] {
        assert_eq!(a[key], b[key], "{key}");
    }
    // The same into .bin shards.
    let bin = work.path().join("bin");
    let r = ckpt(&[
        "convert".as_ref(),
        fx("tiny-llama-spm.Q4_K_M.gguf").as_os_str(),
        bin.as_os_str(),
        "--to".as_ref(),
        "bin".as_ref(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(bin.join("pytorch_model.bin").exists() && bin.join("config.json").exists());
}
