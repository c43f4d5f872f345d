//! `ckpt convert --sentence-transformers-dense-modules` (EmbeddingGemma's 2_Dense/3_Dense):
//! compared byte for byte with what convert_hf_to_gguf.py wrote with and without the flag
//! (tests/fixtures/dense-modules, scripts/gen-dense-modules-fixtures.py).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/dense-modules")
        .join(p)
}

fn ckpt(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .unwrap()
}

macro_rules! ckpt {
    ($($a:expr),* $(,)?) => { ckpt(&[$(std::ffi::OsStr::new($a)),*]) };
}

/// Converts the fixture folder and compares the output with the converter's file `expected`.
fn check(outtype: &str, flag: bool, expected: &str) {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out.gguf");
    let src = fixture("tiny-embeddinggemma");
    let o = if flag {
        ckpt!(
            "convert",
            &src,
            &out,
            "--outtype",
            outtype,
            "--sentence-transformers-dense-modules"
        )
    } else {
        ckpt!("convert", &src, &out, "--outtype", outtype)
    };
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = std::fs::read(&out).unwrap();
    let want = std::fs::read(fixture(expected)).unwrap();
    assert!(
        got == want,
        "{expected}: ckpt wrote {} bytes, the converter {} (first difference at byte {:?})",
        got.len(),
        want.len(),
        got.iter().zip(&want).position(|(a, b)| a != b)
    );
}

#[test]
fn dense_modules_match_convert_hf_to_gguf() {
    check("f16", true, "tiny-embeddinggemma.dense.f16.gguf");
    check("f32", true, "tiny-embeddinggemma.dense.f32.gguf");
}

/// bf16 rounds the float32 Dense weights like the model's; q8_0 quantizes `dense_3.weight`
/// (32 inputs) and keeps `dense_2.weight` (8 inputs, not a whole Q8_0 block) in F16.
#[test]
fn dense_modules_match_convert_hf_to_gguf_bf16_q8_0() {
    check("bf16", true, "tiny-embeddinggemma.dense.bf16.gguf");
    check("q8_0", true, "tiny-embeddinggemma.dense.q8_0.gguf");
}

#[test]
fn without_the_flag_the_dense_modules_are_left_out() {
    check("f16", false, "tiny-embeddinggemma.f16.gguf");
    check("f32", false, "tiny-embeddinggemma.f32.gguf");
}

#[test]
fn dense_modules_flag_is_refused_off_gguf() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("out.safetensors");
    let o = ckpt!(
        "convert",
        &fixture("tiny-embeddinggemma/model.safetensors"),
        &out,
        "--sentence-transformers-dense-modules"
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--sentence-transformers-dense-modules"),
        "{err}"
    );
    assert!(!out.exists());
}

/// `ckpt diff` of the folder against the converter's GGUFs compares the Dense weights too, named
/// by module folder and labelled with their stored type; against a GGUF converted without them,
/// the folder's modules are not reported as missing.
#[test]
fn diff_compares_the_dense_modules() {
    let src = fixture("tiny-embeddinggemma");
    let diff = |gguf: &str| {
        let o = ckpt!("diff", "--json", &src, &fixture(gguf));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
        (o.status.code(), v)
    };
    let dense = |v: &serde_json::Value| -> Vec<(String, String)> {
        v["compared"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["name"].as_str().unwrap().contains("_Dense/"))
            .map(|d| {
                let name = d["name"].as_str().unwrap().to_string();
                (name, d["dtype_b"].as_str().unwrap().to_string())
            })
            .collect()
    };
    let (code, v) = diff("tiny-embeddinggemma.dense.f32.gguf");
    assert_eq!(code, Some(0), "f32 holds the folder's values exactly: {v}");
    assert_eq!(
        dense(&v),
        [
            ("2_Dense/linear.weight".to_string(), "F32".to_string()),
            ("3_Dense/linear.weight".to_string(), "F32".to_string())
        ]
    );
    let (code, v) = diff("tiny-embeddinggemma.dense.f16.gguf");
    assert_eq!(code, Some(1), "f16 rounding is a difference: {v}");
    assert!(dense(&v).iter().all(|(_, t)| t == "F16"), "{v}");
    let (code, v) = diff("tiny-embeddinggemma.f32.gguf");
    assert_eq!(code, Some(0), "{v}");
    assert!(dense(&v).is_empty(), "{v}");
    assert_eq!(v["only_in_a"].as_array().map(Vec::len), Some(0), "{v}");
}
