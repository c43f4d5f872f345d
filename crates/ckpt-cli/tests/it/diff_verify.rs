//! `ckpt diff` and `ckpt verify` on the reference fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(p)
}

fn ckpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs a Python check with `args`, feeding `stdin` (a `ckpt diff --json` report); it must succeed.
fn run_python_check(py: &std::ffi::OsStr, script: &str, args: &[&str], stdin: &[u8]) {
    use std::io::Write;
    let mut child = Command::new(py)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn diff_of_a_conversion_is_same() {
    let r = ckpt(&[
        "diff",
        s(&fx("torch/all_dtypes.bin")),
        s(&fx("torch/all_dtypes.expected.safetensors")),
    ]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );
    assert!(String::from_utf8_lossy(&r.stdout)
        .starts_with("same: 16 tensors compared, 16 byte-identical"));
    let r = ckpt(&[
        "diff",
        s(&fx("torch/sharded")),
        s(&fx("torch/sharded.expected")),
    ]);
    assert_eq!(r.status.code(), Some(0));
}

#[test]
fn diff_reports_what_a_merge_changed() {
    let r = ckpt(&[
        "diff",
        "--json",
        s(&fx("lora/f32/base-llama")),
        s(&fx("lora/f32/a_lora/expected-merged")),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["different"], 8);
    assert_eq!(v["identical_bytes"], 13);
    let changed: Vec<&str> = v["compared"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| !d["bytes_identical"].as_bool().unwrap())
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert!(
        changed.iter().all(|n| n.contains("self_attn")),
        "{changed:?}"
    );
}

#[test]
fn diff_with_nothing_in_common_says_so_briefly() {
    let r = ckpt(&[
        "diff",
        s(&fx("lora/f32/base-llama")),
        s(&fx("torch/all_dtypes.bin")),
    ]);
    assert_eq!(r.status.code(), Some(1));
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(out.starts_with("nothing in common"), "{out}");
    assert!(out.lines().count() < 5);
    let r = ckpt(&["diff", s(&fx("lora/f32/base-llama")), "/nonexistent/model"]);
    assert_eq!(r.status.code(), Some(2), "errors exit with 2");
}

/// The numbers agree with numpy computing the same statistics.
#[test]
fn diff_numbers_match_numpy() {
    let Some(py) = std::env::var_os("CKPT_PYTHON") else {
        eprintln!("skipped: set CKPT_PYTHON (scripts/test.sh does)");
        return;
    };
    let (a, b) = (fx("lora/f32/base-llama"), fx("lora/bf16/base-llama"));
    let r = ckpt(&["diff", "--json", "--tolerance", "1", s(&a), s(&b)]);
    assert_eq!(r.status.code(), Some(0));
    let script = r#"
import json, sys, numpy as np
from safetensors import safe_open
a, b, report = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
with open(b + "/model.safetensors", "rb") as fh:
    data = fh.read()
n = int.from_bytes(data[:8], "little"); hdr = json.loads(data[8:8+n])
for d in report["compared"]:
    name = d["name"]
    with safe_open(a + "/model.safetensors", framework="np") as f:
        x = f.get_tensor(name).astype(np.float64).ravel()
    s, e = hdr[name]["data_offsets"]
    bits = np.frombuffer(data[8+n+s:8+n+e], dtype=np.uint16).astype(np.uint32) << 16
    y = bits.view(np.float32).astype(np.float64)
    err = np.abs(x - y)
    rmse = np.sqrt(np.mean((x - y) ** 2))
    cos = np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))
    assert err.max() == d["max_abs_error"], (name, err.max(), d["max_abs_error"])
    assert abs(rmse - d["rmse"]) <= 1e-12 * max(rmse, 1e-30), (name, rmse, d["rmse"])
    assert abs(cos - d["cosine_similarity"]) <= 1e-12, (name, cos, d["cosine_similarity"])
print("ok", len(report["compared"]))
"#;
    run_python_check(&py, script, &[s(&a), s(&b)], &r.stdout);
}

#[test]
fn verify_checks_shards_hashes_and_values() {
    let r = ckpt(&["verify", s(&fx("torch/sharded"))]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );

    let work = tempfile::tempdir().unwrap();
    // A shard missing from a sharded folder.
    let broken = work.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for e in std::fs::read_dir(fx("torch/sharded.expected")).unwrap() {
        let p = e.unwrap().path();
        if !p.ends_with("model-00003-of-00006.safetensors") {
            std::fs::copy(&p, broken.join(p.file_name().unwrap())).unwrap();
        }
    }
    let r = ckpt(&["verify", s(&broken)]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stdout).contains("model-00003-of-00006.safetensors"));

    // A Hugging Face cache snapshot whose blob does not hash to its name.
    let blobs = work.path().join("models--org--m/blobs");
    let snap = work.path().join("models--org--m/snapshots/abc");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::create_dir_all(&snap).unwrap();
    let good = fx("torch/all_dtypes.expected.safetensors");
    let bytes = std::fs::read(&good).unwrap();
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(blobs.join(&hex), &bytes).unwrap();
    std::os::unix::fs::symlink(format!("../../blobs/{hex}"), snap.join("model.safetensors"))
        .unwrap();
    let r = ckpt(&["verify", "--json", s(&snap.join("model.safetensors"))]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["files"][0]["expected_sha256"], hex);
    assert_eq!(r.status.code(), Some(0));
    let wrong = "0".repeat(64);
    std::fs::rename(blobs.join(&hex), blobs.join(&wrong)).unwrap();
    std::fs::remove_file(snap.join("model.safetensors")).unwrap();
    std::os::unix::fs::symlink(
        format!("../../blobs/{wrong}"),
        snap.join("model.safetensors"),
    )
    .unwrap();
    let r = ckpt(&["verify", s(&snap.join("model.safetensors"))]);
    assert_eq!(r.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&r.stdout).contains("does not match"));

    // The dtype fixture holds +-inf on purpose.
    let r = ckpt(&["verify", "--scan-values", "--json", s(&good)]);
    assert_eq!(r.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let scanned: Vec<&str> = v["non_finite"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["tensor"].as_str().unwrap())
        .collect();
    assert!(
        scanned.contains(&"dtypes.float32") && scanned.contains(&"dtypes.bfloat16"),
        "{scanned:?}"
    );
}

/// Quantization error reported by `ckpt diff` equals numpy over gguf-py's dequantization.
#[test]
fn diff_of_a_quantization_matches_gguf_py() {
    let Some(py) = std::env::var_os("CKPT_PYTHON") else {
        eprintln!("skipped: set CKPT_PYTHON (scripts/test.sh does)");
        return;
    };
    let (a, b) = (
        fx("gguf/tiny-llama-spm.f16.gguf"),
        fx("gguf/tiny-llama-spm.Q4_K_M.gguf"),
    );
    let r = ckpt(&["diff", "--json", s(&a), s(&b)]);
    assert_eq!(r.status.code(), Some(1), "quantized differs");
    let script = r#"
import json, sys, numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize
report = json.loads(sys.stdin.read())
def load(path):
    out = {}
    for t in GGUFReader(path).tensors:
        out[t.name] = dequantize(t.data, t.tensor_type).astype(np.float64).ravel()
    return out
a, b = load(sys.argv[1]), load(sys.argv[2])
checked = 0
for d in report["compared"]:
    x, y = a[d["name"]], b[d["name"]]
    err = np.abs(x - y).max()
    rmse = np.sqrt(np.mean((x - y) ** 2))
    cos = np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))
    assert err == d["max_abs_error"], (d["name"], err, d["max_abs_error"])
    assert abs(rmse - d["rmse"]) <= 1e-9 * max(rmse, 1e-30), (d["name"], rmse, d["rmse"])
    assert abs(cos - d["cosine_similarity"]) <= 1e-9, (d["name"], cos, d["cosine_similarity"])
    checked += 1
assert checked == 39
print("ok", checked)
"#;
    run_python_check(&py, script, &[s(&a), s(&b)], &r.stdout);
}

/// Across naming schemes: a Hugging Face model and its GGUF conversion compare under HF names,
/// with llama.cpp's Q/K permutation undone.
#[test]
fn diff_hf_against_its_gguf() {
    let work = tempfile::tempdir().unwrap();
    let model = fx("gguf/tiny-llama-spm");
    let f32_gguf = work.path().join("m.f32.gguf");
    let r = ckpt(&["convert", s(&model), s(&f32_gguf), "--outtype", "f32"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = ckpt(&["diff", "--json", s(&model), s(&f32_gguf)]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "bf16 widened to f32 is exact: {}",
        String::from_utf8_lossy(&r.stdout)
    );
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["compared"].as_array().unwrap().len(), 39);
    assert!(v["compared"]
        .as_array()
        .unwrap()
        .iter()
        .any(|d| d["name"] == "model.layers.0.self_attn.q_proj.weight"));
    let r = ckpt(&["diff", s(&model), s(&fx("gguf/tiny-llama-spm.Q4_K_M.gguf"))]);
    assert_eq!(
        r.status.code(),
        Some(1),
        "quantization error is reported as a difference"
    );
}

/// A safetensors file of one F32 tensor `w` holding `values`.
fn f32_safetensors(path: &Path, values: &[f32]) {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{}],"data_offsets":[0,{}]}}}}"#,
        values.len(),
        values.len() * 4
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, bytes).unwrap();
}

/// Infinities that survive a cast are the same value on both sides, and NaN matches NaN; an
/// infinity against a number is an unbounded difference.
#[test]
fn diff_treats_equal_infinities_as_equal() {
    let work = tempfile::tempdir().unwrap();
    let a = work.path().join("a.safetensors");
    let values = [1.5, f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.1, -2.0];
    f32_safetensors(&a, &values);
    let half = work.path().join("half.safetensors");
    let r = ckpt(&["convert", "--dtype", "f16", s(&a), s(&half)]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = ckpt(&["diff", "--json", s(&a), s(&half)]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r.status.code(), Some(1), "{v}");
    assert_eq!(v["rounding_only"], true, "{v}");
    let d = &v["compared"][0];
    assert_eq!(d["within_rounding"], true, "{v}");
    // Over the three finite pairs: 0.1 is the only one f16 rounds.
    let e = (0.1f32 as f64) - 0.0999755859375; // the f16 nearest 0.1
    assert_eq!(d["max_abs_error"], e.abs(), "{v}");
    assert!(
        (d["rmse"].as_f64().unwrap() - (e * e / 3.0).sqrt()).abs() < 1e-15,
        "{v}"
    );
    let r = ckpt(&["diff", "--tolerance", "0.001", s(&a), s(&half)]);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&r.stdout)
    );

    let b = work.path().join("b.safetensors");
    let mut changed = values;
    changed[1] = 1.0;
    f32_safetensors(&b, &changed);
    let r = ckpt(&["diff", "--json", s(&a), s(&b)]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(r.status.code(), Some(1), "{v}");
    assert_eq!(v["compared"][0]["within_tolerance"], false, "{v}");
}
