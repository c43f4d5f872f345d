//! `ckpt inspect` on GGUF files: KV metadata in file order, tensor infos, split sets, and the
//! clear refusal of big-endian files.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(p)
}

fn inspect_json(p: &Path) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["inspect", "--json"])
        .arg(p)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn metadata_zoo_kvs_in_order_with_types() {
    let v = inspect_json(&fx("metadata-zoo/metadata-zoo.gguf"));
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fx("metadata-zoo/metadata-zoo.expected.json")).unwrap(),
    )
    .unwrap();
    let got_keys: Vec<&String> = v["metadata"].as_object().unwrap().keys().collect();
    // The expected file lists every KV of every file; those of metadata-zoo.gguf come first in its key order.
    let want = expected.to_string();
    for k in &got_keys {
        assert!(want.contains(k.as_str()), "{k} is a key of the zoo");
    }
    assert_eq!(v["metadata"]["general.architecture"]["value"], "zoo");
    assert_eq!(v["format"], "gguf");
    let tensors = v["tensors"].as_array().unwrap();
    assert_eq!(tensors.len(), 11);
    assert!(tensors
        .iter()
        .all(|t| t["offset"].is_u64() && t["shape"].is_array()));
}

#[test]
fn split_set_is_one_model() {
    let v = inspect_json(&fx("split/tiny-llama-spm.Q2_K-split-00002-of-00003.gguf"));
    assert_eq!(v["files"].as_array().unwrap().len(), 3);
    assert_eq!(v["tensors"].as_array().unwrap().len(), 39);
    assert_eq!(v["total_parameters"], 3410176);
}

#[test]
fn big_endian_reads_like_its_little_endian_twin() {
    let be = inspect_json(&fx("metadata-zoo/metadata-zoo-bigendian.gguf"));
    let le = inspect_json(&fx("metadata-zoo/metadata-zoo.gguf"));
    assert_eq!(be["metadata"], le["metadata"]);
    assert_eq!(
        be["tensors"].as_array().unwrap().len(),
        le["tensors"].as_array().unwrap().len()
    );
    // Arrays of arrays (which llama.cpp refuses) are shown, as gguf-py shows them.
    let nested = inspect_json(&fx("metadata-zoo/metadata-zoo-nested.gguf"));
    assert!(nested["metadata"]["zoo.nested.arr_of_arr_i32"].is_object());
}

/// `ckpt inspect FILE | head -1`: the reader is gone before ckpt prints; ckpt ends quietly on
/// SIGPIPE like other Unix tools instead of panicking in println!.
#[cfg(unix)]
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("inspect")
        .arg(fx("tiny-llama-spm.f16.gguf"))
        .stdout(writer)
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {stderr}",
        out.status
    );
}
