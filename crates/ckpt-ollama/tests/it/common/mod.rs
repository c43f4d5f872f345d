//! Shared test helpers: fixture paths and a minimal GGUF v3 writer for synthetic models.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/ollama")
        .join(name)
}

pub enum Kv<'a> {
    Str(&'a str),
    U32(u32),
    Bool(bool),
}

/// Writes a valid GGUF v3 file: the KVs, then F32 tensors (zeros) of the given ggml dims.
pub fn write_gguf(path: &Path, kvs: &[(&str, Kv)], tensors: &[(&str, &[u64])]) {
    let mut b: Vec<u8> = Vec::new();
    let put_str = |b: &mut Vec<u8>, s: &str| {
        b.extend_from_slice(&(s.len() as u64).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    };
    b.extend_from_slice(b"GGUF");
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    b.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
    for (k, v) in kvs {
        put_str(&mut b, k);
        match v {
            Kv::Str(s) => {
                b.extend_from_slice(&8u32.to_le_bytes());
                put_str(&mut b, s);
            }
            Kv::U32(x) => {
                b.extend_from_slice(&4u32.to_le_bytes());
                b.extend_from_slice(&x.to_le_bytes());
            }
            Kv::Bool(x) => {
                b.extend_from_slice(&7u32.to_le_bytes());
                b.push(u8::from(*x));
            }
        }
    }
    let mut offset = 0u64;
    let mut sizes = Vec::new();
    for (name, dims) in tensors {
        put_str(&mut b, name);
        b.extend_from_slice(&(dims.len() as u32).to_le_bytes());
        for d in *dims {
            b.extend_from_slice(&d.to_le_bytes());
        }
        b.extend_from_slice(&0u32.to_le_bytes()); // F32
        b.extend_from_slice(&offset.to_le_bytes());
        let size = dims.iter().product::<u64>() * 4;
        sizes.push(size);
        offset += size.div_ceil(32) * 32;
    }
    while !b.len().is_multiple_of(32) {
        b.push(0);
    }
    for size in sizes {
        let padded = size.div_ceil(32) * 32;
        b.extend(std::iter::repeat_n(0u8, padded as usize));
    }
    std::fs::write(path, b).unwrap();
}

/// A tiny llama-architecture F16-typed GGUF carrying `chat_template` (if any).
pub fn tiny_model(dir: &Path, file: &str, chat_template: Option<&str>, file_type: u32) -> PathBuf {
    let path = dir.join(file);
    let mut kvs = vec![
        ("general.architecture", Kv::Str("llama")),
        ("general.name", Kv::Str("tiny")),
        ("general.file_type", Kv::U32(file_type)),
        ("llama.block_count", Kv::U32(1)),
    ];
    if let Some(t) = chat_template {
        kvs.push(("tokenizer.chat_template", Kv::Str(t)));
    }
    write_gguf(
        &path,
        &kvs,
        &[("token_embd.weight", &[8, 4]), ("output_norm.weight", &[8])],
    );
    path
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    ckpt_ollama::store::hex(&sha2::Sha256::digest(data))
}
