#![allow(dead_code)]

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

pub fn zoo(name: &str) -> PathBuf {
    fixtures().join("metadata-zoo").join(name)
}

pub fn split_shard(i: usize) -> PathBuf {
    fixtures()
        .join("split")
        .join(format!("tiny-llama-spm.Q2_K-split-{i:05}-of-00003.gguf"))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Reads JSON written by Python, whose `json` module emits bare NaN / Infinity / -Infinity;
/// those become the strings "nan", "inf", "-inf" (as `ckpt_gguf::to_json` writes them).
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text.as_str();
    while let Some(c) = rest.chars().next() {
        if in_string {
            in_string = c != '"' || escaped;
            escaped = c == '\\' && !escaped;
        } else if c == '"' {
            in_string = true;
        } else {
            let replaced = [
                ("-Infinity", "\"-inf\""),
                ("Infinity", "\"inf\""),
                ("NaN", "\"nan\""),
            ]
            .into_iter()
            .find(|(word, _)| rest.starts_with(word));
            if let Some((word, with)) = replaced {
                out.push_str(with);
                rest = &rest[word.len()..];
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    serde_json::from_str(&out).unwrap()
}

/// The manifest entry of a fixture file (by its path relative to the fixture folder).
pub fn manifest_entry(rel: &str) -> serde_json::Value {
    let m = read_json(&fixtures().join("manifest.json"));
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == rel)
        .unwrap_or_else(|| panic!("{rel} not in manifest"))
        .clone()
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ckpt-gguf-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A progress receiver that records the running total after every advance, as
/// `(done, total)` pairs, so tests can check what the writer reported.
pub fn running_totals(
    log: std::sync::Arc<std::sync::Mutex<Vec<(u64, u64)>>>,
) -> ckpt_core::SharedProgress {
    let state = std::sync::Mutex::new((0u64, 0u64));
    std::sync::Arc::new(move |ev: ckpt_core::ProgressEvent<'_>| {
        let mut st = state.lock().unwrap();
        match ev {
            ckpt_core::ProgressEvent::Start { total, .. } => st.1 = total,
            ckpt_core::ProgressEvent::Advance { bytes } => {
                st.0 += bytes;
                log.lock().unwrap().push(*st);
            }
            _ => {}
        }
    })
}
