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
