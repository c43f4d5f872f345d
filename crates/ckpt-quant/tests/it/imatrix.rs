//! `--imatrix` quantization against llama-quantize's outputs (shared/fixtures/gguf-imatrix),
//! checked through the sha256 values in tests/fixtures/gguf-imatrix/expected.json.

use crate::common;

use std::path::{Path, PathBuf};

use ckpt_quant::{parse_ftype, quantize_gguf, QuantizeOptions};
use common::fixtures;
use sha2::{Digest, Sha256};

fn imatrix_dir() -> PathBuf {
    fixtures().join("../gguf-imatrix")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Empty when `produced` is byte-identical to the reference; else what differs.
fn differences(produced: &Path, expected: &serde_json::Value) -> Vec<String> {
    let bytes = std::fs::read(produced).unwrap();
    if sha256_hex(&bytes) == expected["sha256"].as_str().unwrap() {
        return Vec::new();
    }
    let mut problems = vec![format!(
        "size {} (expected {})",
        bytes.len(),
        expected["size"]
    )];
    let data_offset = expected["data_offset"].as_u64().unwrap() as usize;
    if bytes.get(..data_offset).map(sha256_hex).as_deref() != expected["header_sha256"].as_str() {
        problems.push("header (KVs / tensor infos) differs".into());
    }
    for t in expected["tensors"].as_array().unwrap() {
        let start = data_offset + t["offset"].as_u64().unwrap() as usize;
        let data = bytes.get(start..start + t["nbytes"].as_u64().unwrap() as usize);
        if data.map(sha256_hex).as_deref() != t["sha256"].as_str() {
            problems.push(format!("tensor {} ({}) differs", t["name"], t["type"]));
        }
    }
    problems
}

fn check_all(imatrix_file: &str) {
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(imatrix_dir().join("expected.json")).unwrap())
            .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for (ftype, want) in expected["files"].as_object().unwrap() {
        let out = tmp.path().join(format!("{ftype}.gguf"));
        let mut opts = QuantizeOptions::new(parse_ftype(ftype).unwrap());
        opts.imatrix = Some(imatrix_dir().join(imatrix_file));
        // llama-quantize was given the path "imatrix.gguf" and records it verbatim
        opts.imatrix_label = Some("imatrix.gguf".into());
        let report =
            quantize_gguf(&fixtures().join("tiny-llama-spm.f16.gguf"), &out, &opts).unwrap();
        assert!(
            report.tensors.iter().any(|t| t.used_imatrix),
            "{ftype}: imatrix unused"
        );
        let problems = differences(&out, want);
        if !problems.is_empty() {
            failures.push(format!(
                "{ftype} from {imatrix_file}:\n  {}",
                problems.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn gguf_imatrix_outputs_are_byte_identical() {
    check_all("imatrix.gguf");
}

#[test]
fn legacy_dat_imatrix_gives_the_same_files() {
    check_all("imatrix.dat");
}

#[test]
fn metadata_records_the_matrix() {
    let m =
        ckpt_quant::imatrix::ImportanceMatrix::load(&imatrix_dir().join("imatrix.dat"), "x.dat")
            .unwrap();
    assert_eq!(m.entries.len(), 28);
    assert_eq!(m.chunk_count, 8);
    assert_eq!(m.datasets, vec!["calib.txt".to_string()]);
    let keys: Vec<String> = m.metadata_kvs().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "quantize.imatrix.file",
            "quantize.imatrix.dataset",
            "quantize.imatrix.entries_count",
            "quantize.imatrix.chunks_count"
        ]
    );
}

#[test]
fn corrupt_imatrix_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.dat");
    let full = std::fs::read(imatrix_dir().join("imatrix.dat")).unwrap();
    std::fs::write(&bad, &full[..100]).unwrap();
    let err = ckpt_quant::imatrix::ImportanceMatrix::load(&bad, "bad.dat")
        .err()
        .expect("truncated file refused")
        .to_string();
    assert!(
        err.contains("truncated") && err.contains("bad.dat"),
        "{err}"
    );
}
