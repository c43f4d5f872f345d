//! Whole-file IQ quantization against llama-quantize: tests/fixtures/iq/expected.json records
//! (scripts/gen-iq-fixtures.py) what the pinned llama-quantize writes for every IQ file type on
//! the tiny Llama fixture, with and without the fixture imatrix, or that it refuses and on which
//! tensor. ckpt must write the same bytes and refuse in the same places.

use crate::common;

use std::path::{Path, PathBuf};

use ckpt_quant::{parse_ftype, quantize_gguf, QuantizeOptions};
use common::fixtures;
use sha2::{Digest, Sha256};

fn repo_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn expected() -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(repo_fixtures().join("iq/expected.json")).unwrap())
        .unwrap()
}

/// Empty when `produced` is byte-identical to the reference; else what differs.
fn differences(produced: &Path, want: &serde_json::Value) -> Vec<String> {
    let bytes = std::fs::read(produced).unwrap();
    if sha256_hex(&bytes) == want["sha256"].as_str().unwrap() {
        return Vec::new();
    }
    let mut problems = vec![format!("size {} (expected {})", bytes.len(), want["size"])];
    let data_offset = want["data_offset"].as_u64().unwrap() as usize;
    if bytes.get(..data_offset).map(sha256_hex).as_deref() != want["header_sha256"].as_str() {
        problems.push("header (KVs / tensor infos) differs".into());
    }
    for t in want["tensors"].as_array().unwrap() {
        let start = data_offset + t["offset"].as_u64().unwrap() as usize;
        let data = bytes.get(start..start + t["nbytes"].as_u64().unwrap() as usize);
        if data.map(sha256_hex).as_deref() != t["sha256"].as_str() {
            problems.push(format!("tensor {} ({}) differs", t["name"], t["type"]));
        }
    }
    problems
}

fn run(with_imatrix: bool, only: &[&str]) {
    let key = if with_imatrix {
        "with_imatrix"
    } else {
        "without_imatrix"
    };
    let all = expected();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for ftype in only {
        let want = &all[key][*ftype];
        assert!(want.is_object(), "{ftype} {key} missing from expected.json");
        let out = tmp.path().join(format!("{ftype}.gguf"));
        let mut opts = QuantizeOptions::new(parse_ftype(ftype).unwrap());
        if with_imatrix {
            opts.imatrix = Some(repo_fixtures().join("gguf-imatrix/imatrix.gguf"));
            // llama-quantize was given the path "imatrix.gguf" and records it verbatim
            opts.imatrix_label = Some("imatrix.gguf".into());
        }
        let result = quantize_gguf(&fixtures().join("tiny-llama-spm.f16.gguf"), &out, &opts);
        if want["refused"] == true {
            let tensor = want["tensor"].as_str().unwrap();
            let ty = want["target_type"].as_str().unwrap();
            match result {
                Ok(_) => {
                    failures.push(format!("{ftype} {key}: llama-quantize refuses, ckpt wrote"))
                }
                Err(e) => {
                    let msg = e.to_string();
                    if e.kind() != ckpt_core::ErrorKind::Usage
                        || !msg.contains(&format!("tensor {tensor} becomes {ty}"))
                        || !msg.contains("importance matrix")
                    {
                        failures.push(format!(
                            "{ftype} {key}: expected a refusal naming {tensor} -> {ty}, got ({:?}) {msg}",
                            e.kind()
                        ));
                    }
                }
            }
            if out.exists() {
                failures.push(format!("{ftype} {key}: output written despite the refusal"));
            }
            continue;
        }
        match result {
            Err(e) => failures.push(format!("{ftype} {key}: {e}")),
            Ok(_) => {
                let problems = differences(&out, want);
                if !problems.is_empty() {
                    failures.push(format!("{ftype} {key}:\n  {}", problems.join("\n  ")));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn iq4_files_match_llama_quantize() {
    run(false, &["IQ4_NL", "IQ4_XS"]);
    run(true, &["IQ4_NL", "IQ4_XS"]);
}

#[test]
fn iq3_files_match_llama_quantize() {
    run(false, &["IQ3_S", "IQ3_M"]);
    run(true, &["IQ3_S", "IQ3_M", "IQ3_XS", "IQ3_XXS"]);
}

#[test]
fn iq2_files_match_llama_quantize() {
    run(true, &["IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M"]);
}

#[test]
fn iq1_files_match_llama_quantize() {
    run(true, &["IQ1_S", "IQ1_M"]);
}

#[test]
fn low_bit_types_are_refused_without_an_imatrix_where_llama_quantize_refuses() {
    run(
        false,
        &[
            "IQ3_XS", "IQ3_XXS", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ1_S", "IQ1_M",
        ],
    );
}

#[test]
fn tensors_already_of_an_imatrix_type_are_refused_without_an_imatrix() {
    // llama-quantize refuses `IQ2_XXS.gguf -> IQ2_XXS` without --imatrix (offending tensor
    // blk.0.attn_k.weight, already IQ2_XXS), with or without --allow-requantize
    let tmp = tempfile::tempdir().unwrap();
    let first = tmp.path().join("iq2_xxs.gguf");
    let mut opts = QuantizeOptions::new(parse_ftype("IQ2_XXS").unwrap());
    opts.imatrix = Some(repo_fixtures().join("gguf-imatrix/imatrix.gguf"));
    quantize_gguf(&fixtures().join("tiny-llama-spm.f16.gguf"), &first, &opts).unwrap();
    let out = tmp.path().join("again.gguf");
    for allow_requantize in [false, true] {
        let mut opts = QuantizeOptions::new(parse_ftype("IQ2_XXS").unwrap());
        opts.allow_requantize = allow_requantize;
        let err = quantize_gguf(&first, &out, &opts).unwrap_err();
        assert_eq!(err.kind(), ckpt_core::ErrorKind::Usage, "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains("tensor blk.0.attn_k.weight becomes IQ2_XXS")
                && msg.contains("importance matrix"),
            "{msg}"
        );
        assert!(!out.exists());
    }
}
