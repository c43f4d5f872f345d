//! Our converter output against the files llama.cpp's convert_hf_to_gguf.py wrote for the same
//! HF folders (tests/fixtures/gguf, see its README): stored files byte for byte, hash-only ones
//! through the manifest's whole-file sha256, with the first differing KV or tensor reported.

use std::path::{Path, PathBuf};

use ckpt_gguf::GgufFile;
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest_entry(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&python_json_to_json(&text)).unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == file)
        .cloned()
        .unwrap_or_else(|| panic!("{file} not in manifest"))
}

fn convert(model: &str, outtype: OutType, dir: &Path) -> PathBuf {
    let model_dir = fixtures().join(model);
    let checkpoint = ckpt_safetensors::read(&model_dir.join("model.safetensors")).unwrap();
    let out = dir.join(format!("{model}.out.gguf"));
    let opts = HfToGgufOptions {
        outtype,
        ..Default::default()
    };
    convert_hf_to_gguf(&model_dir, &checkpoint, &out, &opts).unwrap();
    out
}

/// The manifest was written by Python's json module, which emits bare NaN/Infinity; those
/// (outside strings) become null here since no check below uses them.
fn python_json_to_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        let word = ["-Infinity", "Infinity", "NaN"]
            .into_iter()
            .find(|w| rest.starts_with(w));
        match word {
            Some(w) => {
                out.push_str("null");
                rest = &rest[w.len()..];
            }
            None => {
                out.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    out
}

/// Explains the first difference between our file and the reference manifest entry.
fn describe_difference(ours: &Path, entry: &serde_json::Value) -> String {
    let mut msg = String::new();
    let file = match GgufFile::open(ours) {
        Ok(f) => f,
        Err(e) => return format!("our output does not parse: {e}"),
    };
    let bytes = std::fs::read(ours).unwrap();
    let kvs = entry["kv"].as_array().unwrap();
    let ours_kv = &file.kvs;
    for (i, want) in kvs.iter().enumerate() {
        let key = want["key"].as_str().unwrap();
        match ours_kv.get(i) {
            None => return format!("KV #{i} {key} is missing (we have {} KVs)", ours_kv.len()),
            Some((k, v)) if k != key => {
                return format!(
                    "KV #{i}: expected key {key}, we wrote {k} = {}",
                    ckpt_gguf::describe_value(v, 4)
                )
            }
            Some((_, v)) => {
                let encoded = ckpt_gguf::encode_value(v);
                if sha256_hex(&encoded) != want["value_sha256"].as_str().unwrap() {
                    return format!(
                        "KV {key}: value differs: expected {}, we wrote {}",
                        want.get("value")
                            .or(want.get("head"))
                            .unwrap_or(&serde_json::Value::Null),
                        ckpt_gguf::describe_value(v, 8)
                    );
                }
            }
        }
    }
    if ours_kv.len() != kvs.len() {
        msg += &format!(
            "we wrote {} KVs, reference has {}; extra: {}\n",
            ours_kv.len(),
            kvs.len(),
            ours_kv[kvs.len().min(ours_kv.len())..]
                .iter()
                .map(|(k, _)| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let data_offset = file.data_offset as usize;
    for (i, want) in entry["tensors"].as_array().unwrap().iter().enumerate() {
        let name = want["name"].as_str().unwrap();
        let Some(info) = file.tensor_infos.get(i) else {
            return msg + &format!("tensor #{i} {name} missing");
        };
        if info.name != name {
            return msg + &format!("tensor #{i}: expected {name}, we wrote {}", info.name);
        }
        let ty = info.ggml_type.name();
        if ty != want["type"].as_str().unwrap() {
            return msg + &format!("tensor {name}: type {ty}, expected {}", want["type"]);
        }
        let start = data_offset + info.offset as usize;
        let n = want["nbytes"].as_u64().unwrap() as usize;
        if sha256_hex(&bytes[start..start + n]) != want["data_sha256"].as_str().unwrap() {
            return msg + &format!("tensor {name}: data differs");
        }
    }
    msg + "no KV or tensor difference found (padding or layout?)"
}

fn assert_matches_reference(model: &str, outtype: OutType, reference: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = convert(model, outtype, dir.path());
    let ours = std::fs::read(&out).unwrap();
    let entry = manifest_entry(reference);
    let stored = fixtures().join(reference);
    if stored.is_file() {
        let want = std::fs::read(&stored).unwrap();
        if ours != want {
            panic!(
                "{reference}: output differs from the stored reference: {}",
                describe_difference(&out, &entry)
            );
        }
    }
    assert_eq!(
        ours.len() as u64,
        entry["size"].as_u64().unwrap(),
        "{reference}: size; {}",
        describe_difference(&out, &entry)
    );
    if sha256_hex(&ours) != entry["sha256"].as_str().unwrap() {
        let header = fixtures()
            .join("headers")
            .join(format!("{reference}.header"));
        let header_note = match std::fs::read(&header) {
            Ok(h) => match h.iter().zip(&ours).position(|(a, b)| a != b) {
                Some(at) => format!("header differs from {} at byte {at}", header.display()),
                None => "header bytes identical".to_string(),
            },
            Err(_) => String::new(),
        };
        panic!(
            "{reference}: sha256 differs ({header_note}): {}",
            describe_difference(&out, &entry)
        );
    }
}

#[test]
fn spm_llama_f16_is_byte_identical() {
    assert_matches_reference("tiny-llama-spm", OutType::F16, "tiny-llama-spm.f16.gguf");
}

#[test]
fn spm_llama_q8_0_is_byte_identical() {
    assert_matches_reference("tiny-llama-spm", OutType::Q8_0, "tiny-llama-spm.q8_0.gguf");
}

#[test]
fn spm_llama_f32_matches_manifest_hash() {
    assert_matches_reference("tiny-llama-spm", OutType::F32, "tiny-llama-spm.f32.gguf");
}

#[test]
fn spm_llama_bf16_matches_manifest_hash() {
    assert_matches_reference("tiny-llama-spm", OutType::BF16, "tiny-llama-spm.bf16.gguf");
}

#[test]
fn spm_llama_auto_picks_bf16_from_the_weights() {
    assert_matches_reference("tiny-llama-spm", OutType::Auto, "tiny-llama-spm.bf16.gguf");
}

#[test]
fn smollm_bpe_f16_is_byte_identical() {
    assert_matches_reference("tiny-smol-bpe", OutType::F16, "tiny-smol-bpe.f16.gguf");
}
