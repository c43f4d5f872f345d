//! End-to-end tests of `ckpt convert` / `ckpt inspect` on the reference checkpoints written by
//! torch 2.15 and safetensors 0.8 (tests/fixtures/torch, see its README).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ckpt_core::Checkpoint;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch")
}

fn ckpt(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(args)
        .output()
        .expect("run ckpt")
}

fn ok(args: &[&str]) -> Output {
    let out = ckpt(args);
    assert!(
        out.status.success(),
        "ckpt {args:?} failed ({:?}):\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn read(p: &Path) -> Checkpoint {
    ckpt_safetensors::read(p).unwrap_or_else(|e| panic!("{e}"))
}

/// Same names, dtypes, shapes and identical bytes (the fixtures README's comparison rule).
fn assert_same_tensors(got: &Checkpoint, want: &Checkpoint, what: &str) {
    let g: BTreeMap<_, _> = got.tensors.iter().map(|t| (t.name.clone(), t)).collect();
    let w: BTreeMap<_, _> = want.tensors.iter().map(|t| (t.name.clone(), t)).collect();
    assert_eq!(
        g.keys().collect::<Vec<_>>(),
        w.keys().collect::<Vec<_>>(),
        "{what}: tensor names"
    );
    for (name, wt) in &w {
        let gt = g[name];
        assert_eq!(gt.dtype, wt.dtype, "{what}: dtype of {name}");
        assert_eq!(gt.shape, wt.shape, "{what}: shape of {name}");
        assert!(
            gt.bytes().unwrap() == wt.bytes().unwrap(),
            "{what}: bytes of {name}"
        );
    }
}

fn convert_and_compare(src: &str, expected: &str, extra: &[&str]) -> Checkpoint {
    let dir = tmp();
    let out = dir.path().join("out.safetensors");
    let src_path = fixtures().join(src);
    let mut args = vec!["convert", src_path.to_str().unwrap(), out.to_str().unwrap()];
    args.extend_from_slice(extra);
    ok(&args);
    let got = read(&out);
    assert_same_tensors(&got, &read(&fixtures().join(expected)), src);
    assert_eq!(got.metadata.get("format").map(String::as_str), Some("pt"));
    got
}

#[test]
fn every_valid_torch_file_gives_the_expected_tensors() {
    for (src, expected) in [
        ("all_dtypes.bin", "all_dtypes.expected.safetensors"),
        (
            "all_dtypes_legacy.bin",
            "all_dtypes_legacy.expected.safetensors",
        ),
        ("legacy_float8.bin", "legacy_float8.expected.safetensors"),
        ("extra_dtypes.bin", "extra_dtypes.expected.safetensors"),
        ("parameters.bin", "parameters.expected.safetensors"),
        (
            "pickle_protocol4.bin",
            "pickle_protocol4.expected.safetensors",
        ),
        ("big_endian.bin", "big_endian.expected.safetensors"),
        (
            "no_byteorder_record.bin",
            "no_byteorder_record.expected.safetensors",
        ),
        (
            "shared_partial_views.bin",
            "shared_partial_views.expected.safetensors",
        ),
        (
            "training_checkpoint.pt",
            "training_checkpoint.expected-all.safetensors",
        ),
    ] {
        convert_and_compare(src, expected, &[]);
    }
}

#[test]
fn shared_tensors_are_deduplicated_like_convert_py() {
    let got = convert_and_compare(
        "shared_tensors.bin",
        "shared_tensors.expected.safetensors",
        &[],
    );
    let want = read(&fixtures().join("shared_tensors.expected.safetensors"));
    assert_eq!(
        got.metadata, want.metadata,
        "format=pt plus the dropped -> kept entries"
    );
    assert_eq!(got.metadata["model.embed_tokens.weight"], "lm_head.weight");
    convert_and_compare(
        "shared_tensors.bin",
        "shared_tensors.expected-all.safetensors",
        &["--materialize-shared"],
    );
}

#[test]
fn nested_checkpoint_key_selects_the_state_dict() {
    convert_and_compare(
        "training_checkpoint.pt",
        "training_checkpoint.expected.safetensors",
        &["--key", "state_dict"],
    );
    let out = ckpt(&[
        "inspect",
        fixtures().join("training_checkpoint.pt").to_str().unwrap(),
        "--key",
        "nope",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("state_dict"),
        "error lists the available keys"
    );
}

#[test]
fn non_tensor_values_are_reported_by_inspect() {
    let out = ok(&[
        "inspect",
        fixtures().join("training_checkpoint.pt").to_str().unwrap(),
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures().join("training_checkpoint.non_tensor.json")).unwrap(),
    )
    .unwrap();
    for (k, val) in want.as_object().unwrap() {
        let got = &v["values"][k];
        let same = got == val || (got.as_f64().is_some() && got.as_f64() == val.as_f64());
        assert!(same, "value {k}: got {got}, want {val}");
    }
    assert_eq!(v["tensors"].as_array().unwrap().len(), 35);
}

fn check_sharded(max: &str, expected_dir: &str) {
    let dir = tmp();
    let out = dir.path().join("model");
    ok(&[
        "convert",
        fixtures().join("sharded").to_str().unwrap(),
        out.to_str().unwrap(),
        "--max-shard-size",
        max,
    ]);
    let want_dir = fixtures().join(expected_dir);
    let mut want_files: Vec<String> = std::fs::read_dir(&want_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want_files.sort();
    for f in &want_files {
        assert!(out.join(f).exists(), "missing {f}");
        if f.ends_with(".safetensors") {
            assert_same_tensors(&read(&out.join(f)), &read(&want_dir.join(f)), f);
            assert_eq!(
                read(&out.join(f))
                    .metadata
                    .get("format")
                    .map(String::as_str),
                Some("pt")
            );
        }
    }
    let idx = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p.join("model.safetensors.index.json")).unwrap())
            .unwrap()
    };
    let (g, w) = (idx(&out), idx(&want_dir));
    assert_eq!(g["weight_map"], w["weight_map"]);
    assert_eq!(g["metadata"]["total_size"], w["metadata"]["total_size"]);
    // Non-weight files of the folder come along.
    assert!(out.join("config.json").exists());
    assert!(!out.join("pytorch_model.bin.index.json").exists());
}

#[test]
fn sharded_bin_folder_reshards_like_huggingface_hub() {
    check_sharded("24KB", "sharded.expected");
    check_sharded("15000", "sharded.expected-oversize");
}

#[test]
fn malicious_pickles_are_refused_and_never_executed() {
    for (file, global) in [
        ("malicious_os_system.bin", "os.system"),
        ("malicious_eval.bin", "eval"),
        ("malicious_eval_protocol4.bin", "builtins.eval"),
        ("malicious_subprocess.bin", "subprocess.call"),
        ("malicious_subprocess_py2name.bin", "commands.call"),
    ] {
        let work = tmp();
        let out_path = work.path().join("out.safetensors");
        for cmd in [
            vec![
                "convert".to_string(),
                fixtures().join(file).to_str().unwrap().to_string(),
                out_path.to_str().unwrap().to_string(),
            ],
            vec![
                "inspect".to_string(),
                fixtures().join(file).to_str().unwrap().to_string(),
            ],
        ] {
            let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
                .args(&cmd)
                .current_dir(work.path())
                .env("FIXTURE_MARKER_DIR", work.path())
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(
                out.status.code(),
                Some(4),
                "{file}: refused for safety, got {err}"
            );
            assert!(
                err.contains(global),
                "{file}: error names the global {global}: {err}"
            );
        }
        assert!(!out_path.exists(), "{file}: no output");
        let leftovers: Vec<_> = std::fs::read_dir(work.path()).unwrap().collect();
        assert!(
            leftovers.is_empty(),
            "{file}: nothing created (no marker, no temp file)"
        );
        assert!(!fixtures()
            .join(format!("pwned-{}.marker", "os-system"))
            .exists());
    }
}

#[test]
fn broken_files_give_clear_errors_and_no_output() {
    for (file, code, needle) in [
        ("truncated_half.bin", 3, "truncated_half.bin"),
        ("truncated_half_legacy.bin", 3, "truncated_half_legacy.bin"),
        ("record_size_mismatch.bin", 3, "data/0"),
        ("zip_deflate.bin", 4, "compress"),
        ("unsupported_dtypes.bin", 5, "complex"),
    ] {
        let work = tmp();
        let out_path = work.path().join("out.safetensors");
        let out = ckpt(&[
            "convert",
            fixtures().join(file).to_str().unwrap(),
            out_path.to_str().unwrap(),
        ]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{file}: {err}");
        assert!(
            err.contains(needle),
            "{file}: error mentions {needle}: {err}"
        );
        assert!(!err.contains("panicked"), "{file}: {err}");
        assert_eq!(
            std::fs::read_dir(work.path()).unwrap().count(),
            0,
            "{file}: no output left"
        );
    }
}

#[test]
fn existing_output_needs_force_and_source_is_untouched() {
    let work = tmp();
    let src = work.path().join("src.bin");
    std::fs::copy(fixtures().join("all_dtypes.bin"), &src).unwrap();
    let before = std::fs::read(&src).unwrap();
    let out = work.path().join("out.safetensors");
    std::fs::write(&out, b"keep me").unwrap();
    let r = ckpt(&["convert", src.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    ok(&[
        "convert",
        src.to_str().unwrap(),
        out.to_str().unwrap(),
        "--force",
    ]);
    assert_same_tensors(
        &read(&out),
        &read(&fixtures().join("all_dtypes.expected.safetensors")),
        "forced",
    );
    let r = ckpt(&[
        "convert",
        src.to_str().unwrap(),
        src.to_str().unwrap(),
        "--force",
        "--to",
        "bin",
    ]);
    assert!(!r.status.success(), "refuses to overwrite its own source");
    assert_eq!(
        std::fs::read(&src).unwrap(),
        before,
        "source never modified"
    );
}

#[test]
fn bin_safetensors_round_trip_is_identical() {
    for name in ["all_dtypes", "extra_dtypes", "training_checkpoint"] {
        let work = tmp();
        let p = |n: &str| work.path().join(n).to_str().unwrap().to_string();
        let ext = if name == "training_checkpoint" {
            "pt"
        } else {
            "bin"
        };
        ok(&[
            "convert",
            fixtures().join(format!("{name}.{ext}")).to_str().unwrap(),
            &p("a.safetensors"),
        ]);
        ok(&["convert", &p("a.safetensors"), &p("b.bin")]);
        ok(&["convert", &p("b.bin"), &p("c.safetensors")]);
        assert_same_tensors(
            &read(work.path().join("c.safetensors").as_path()),
            &read(work.path().join("a.safetensors").as_path()),
            name,
        );
        // Our own .bin is a torch zip with the tensors in it.
        let inspect = ok(&["inspect", &p("b.bin"), "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
        assert_eq!(v["format"], "pytorch-zip");
    }
}

#[test]
fn dtype_cast_and_inspect_json() {
    let work = tmp();
    let out = work.path().join("h.safetensors");
    ok(&[
        "convert",
        fixtures()
            .join("sharded/pytorch_model-00001-of-00004.bin")
            .to_str()
            .unwrap(),
        out.to_str().unwrap(),
        "--dtype",
        "bf16",
    ]);
    let ck = read(&out);
    assert!(ck.tensors.iter().all(|t| t.dtype == ckpt_core::DType::BF16));
    let v: serde_json::Value =
        serde_json::from_slice(&ok(&["inspect", out.to_str().unwrap(), "--json"]).stdout).unwrap();
    assert_eq!(v["format"], "safetensors");
    assert!(v["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["dtype"] == "BF16"));
    let total: u64 = ck.tensors.iter().map(|t| t.numel()).sum();
    assert_eq!(v["total_parameters"], total);
    assert_eq!(v["parameters"]["BF16"], total);
}

/// The Python `safetensors` package (the reference implementation) loads what we write, and
/// numpy's float16/bfloat16-free cast agrees with ours.
#[test]
fn python_safetensors_reads_our_output() {
    let Some(py) = std::env::var_os("CKPT_PYTHON") else {
        eprintln!("skipped: set CKPT_PYTHON to a python with safetensors and numpy (scripts/test.sh does)");
        return;
    };
    let work = tmp();
    let out = work.path().join("o.safetensors");
    let half = work.path().join("h.safetensors");
    ok(&[
        "convert",
        fixtures().join("all_dtypes.bin").to_str().unwrap(),
        out.to_str().unwrap(),
    ]);
    ok(&[
        "convert",
        fixtures().join("sharded").to_str().unwrap(),
        half.to_str().unwrap(),
        "--dtype",
        "f16",
    ]);
    let script = r#"
import sys, numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
ours, ref, half, src = sys.argv[1:5]
with safe_open(ours, framework="np") as f:
    assert f.metadata() == {"format": "pt"}, f.metadata()
    names = sorted(f.keys())
with safe_open(ref, framework="np") as f:
    assert names == sorted(f.keys())
# numpy has no bf16/f8 dtypes: compare the numeric ones it can load
for name in names:
    if any(s in name for s in ("bfloat16", "float8", "complex")):
        continue
    with safe_open(ours, framework="np") as f, safe_open(ref, framework="np") as g:
        x, y = f.get_tensor(name), g.get_tensor(name)
        assert x.dtype == y.dtype and x.shape == y.shape and x.tobytes() == y.tobytes(), name
h = load_file(half)
import glob, os
from safetensors.numpy import load_file as lf
s = {}
for p in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
    s.update(lf(p))
for k, v in h.items():
    assert v.dtype == np.float16, k
    assert v.tobytes() == s[k].astype(np.float16).tobytes(), k
print("ok", len(names), len(h))
"#;
    let expected_sharded = fixtures().join("sharded.expected");
    let r = Command::new(py)
        .args([
            "-c",
            script,
            out.to_str().unwrap(),
            fixtures()
                .join("all_dtypes.expected.safetensors")
                .to_str()
                .unwrap(),
            half.to_str().unwrap(),
            expected_sharded.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn scan_lists_globals_and_flags_the_dangerous_ones() {
    let work = tmp();
    for (file, global) in [
        ("malicious_os_system.bin", "os.system"),
        ("malicious_eval_protocol4.bin", "builtins.eval"),
        ("malicious_subprocess_py2name.bin", "commands.call"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .args(["scan", "--json", fixtures().join(file).to_str().unwrap()])
            .current_dir(work.path())
            .env("FIXTURE_MARKER_DIR", work.path())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(4), "{file}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            v["files"][0]["dangerous"],
            serde_json::json!([global]),
            "{file}"
        );
        assert!(
            v["files"][0]["calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == global),
            "{file}: the call is reported"
        );
    }
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "nothing executed"
    );
    let out = ok(&[
        "scan",
        "--json",
        fixtures().join("all_dtypes.bin").to_str().unwrap(),
        fixtures().join("sharded").to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["dangerous_files"], 0);
    assert_eq!(
        v["files"].as_array().unwrap().len(),
        5,
        "a folder is scanned file by file"
    );
}
