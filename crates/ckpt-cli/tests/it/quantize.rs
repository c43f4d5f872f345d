//! `ckpt quantize` reproduces llama-quantize's files byte for byte (hashes from the fixture
//! manifest), and rejects what llama-quantize rejects.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(p)
}

fn sha256(p: &Path) -> String {
    sha2::Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The whole-file sha256 the manifest records for `name` (found textually: the manifest holds
/// Python's NaN literals, which are not JSON).
fn manifest_sha(name: &str) -> String {
    let text = std::fs::read_to_string(fx("manifest.json")).unwrap();
    let at = text
        .find(&format!("\"path\": \"{name}\""))
        .unwrap_or_else(|| panic!("{name} not in the manifest"));
    let rest = &text[at..];
    let sha = &rest[rest.find("\"sha256\": \"").unwrap() + 11..];
    sha[..64].to_string()
}

#[test]
fn f16_to_q4_k_m_is_byte_identical_to_llama_quantize() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("q.gguf");
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("quantize")
        .arg(fx("tiny-llama-spm.f16.gguf"))
        .arg(&out)
        .arg("q4_k_m")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(
        sha256(&out),
        manifest_sha("tiny-llama-spm.f16-to-Q4_K_M.gguf")
    );
}

#[test]
fn pure_quant_vectors_are_byte_identical() {
    let work = tempfile::tempdir().unwrap();
    for t in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_S", "Q5_K_M", "Q6_K",
    ] {
        let out = work.path().join(format!("{t}.gguf"));
        let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .args(["quantize", "--pure", "--json"])
            .arg(fx("quant-vectors/quant-vectors.f32.gguf"))
            .arg(&out)
            .arg(t)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
        assert_eq!(v["ftype"], t);
        assert_eq!(
            sha256(&out),
            manifest_sha(&format!("quant-vectors/quant-vectors.{t}.gguf")),
            "{t}"
        );
    }
}

#[test]
fn bad_requests_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = work.path().join("x.gguf");
    let r = run(&[
        "quantize",
        fx("tiny-llama-spm.f16.gguf").to_str().unwrap(),
        out.to_str().unwrap(),
        "Q4_K_Q",
    ]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("Q4_K_M"),
        "lists the valid types"
    );
    let r = run(&[
        "quantize",
        fx("tiny-llama-spm.Q4_K_M.gguf").to_str().unwrap(),
        out.to_str().unwrap(),
        "Q8_0",
    ]);
    assert!(!r.status.success());
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("requantize"),
        "{}",
        String::from_utf8_lossy(&r.stderr)
    );
    assert!(!out.exists());
}

/// A model whose rows (8, 16) fit no block: every quantizable tensor takes llama.cpp's shape
/// fallback down to F16. Hashes of llama-quantize's own outputs (llama.cpp 0c1e57098, x86-64
/// build, `llama-quantize tiny-smol-bpe.f16.gguf OUT TYPE`), recorded on 2026-11-23.
#[test]
fn shape_fallbacks_match_llama_quantize() {
    let work = tempfile::tempdir().unwrap();
    for (t, want) in [
        (
            "Q4_K_M",
            "3ead336334116fd2f506ee6729685585745d3dfe8646b2931c38765a096e6297",
        ),
        (
            "Q4_0",
            "248b701435345413449eb97269bf2059831d3c2ff27aa82d659955f8b3762c92",
        ),
        (
            "Q8_0",
            "0356fa29ab6c16f778ab1cf7ade4a3a2542bc102ec95f7d0782b50477b160d0f",
        ),
        (
            "Q6_K",
            "16bd677cb96806434ccc19b031408d28e89b567e0b99d1fb72c315c485d4a20d",
        ),
        (
            "Q2_K",
            "b94cc1b4cb9df327f9e11f6ef89fc3da18dc1f0f020d02612c266cb35c648439",
        ),
    ] {
        let out = work.path().join(format!("{t}.gguf"));
        let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .arg("quantize")
            .arg(fx("tiny-smol-bpe.f16.gguf"))
            .arg(&out)
            .arg(t)
            .output()
            .unwrap();
        assert!(
            r.status.success(),
            "{t}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("-> F16: "),
            "fallbacks are reported"
        );
        assert_eq!(sha256(&out), want, "{t}");
    }
}

#[test]
fn pure_with_a_float_target_is_refused_not_ignored() {
    // llama.cpp's per-tensor mix exists only for quantized targets: `--pure` with F16 would
    // change nothing, so it is a usage error rather than a silent no-op.
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("x.gguf");
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("quantize")
        .arg(fx("tiny-llama-spm.f16.gguf"))
        .arg(&out)
        .args(["F16", "--pure"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("--pure has no effect when the target is"),
        "{stderr}"
    );
    assert!(!out.exists());
}
