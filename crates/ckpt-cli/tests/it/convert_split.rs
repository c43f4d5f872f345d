//! `ckpt convert … --split-max-tensors / --split-max-size / --no-tensor-first-split`, byte for
//! byte against the shards convert_hf_to_gguf.py wrote (tests/fixtures/convert-split, by
//! scripts/gen-convert-split-fixtures.py), and its `--dry-run` plan of them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/convert-split")
}

fn cases() -> Vec<(String, Value)> {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("cases.json")).unwrap())
            .unwrap();
    let cases: Vec<(String, Value)> = v
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    assert!(cases.len() >= 7, "cases.json lists the cases");
    cases
}

/// `ckpt [pre…] convert tiny-split OUT ARGS… [post…]` with OUT in `dir`.
fn convert(dir: &Path, case: &Value, pre: &[&str], post: &[&str]) -> Output {
    let args: Vec<&str> = case["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(pre)
        .arg("convert")
        .arg(fixtures().join("tiny-split"))
        .arg(dir.join(case["outfile"].as_str().unwrap()))
        .args(&args)
        .args(post)
        .output()
        .unwrap()
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn expected_files(case: &Value) -> Vec<(String, u64)> {
    case["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["file"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every case: the same files (names, count, bytes) as the converter's — which tensors go to
/// which shard (unpadded sizes, both limits, a tensor over the size limit alone in its shard),
/// the split.* keys of the first and later shards, the metadata-only first shard, and the single
/// file without split keys when everything fits.
#[test]
fn split_output_is_the_converters_byte_for_byte() {
    for (name, case) in cases() {
        let work = tempfile::tempdir().unwrap();
        let o = convert(work.path(), &case, &["-q"], &[]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let want = expected_files(&case);
        let names: Vec<String> = want.iter().map(|(f, _)| f.clone()).collect();
        assert_eq!(listing(work.path()), names, "{name}: files written");
        for (f, _) in &want {
            let ours = std::fs::read(work.path().join(f)).unwrap();
            let theirs = std::fs::read(fixtures().join("expected").join(&name).join(f)).unwrap();
            assert!(
                ours == theirs,
                "{name}/{f}: differs from convert_hf_to_gguf.py's shard ({} vs {} bytes)",
                ours.len(),
                theirs.len()
            );
        }
    }
}

/// `--dry-run` with split options plans the converter's shards: their names (what the
/// converter's own --dry-run prints), tensor counts and sizes equal to the real files', in the
/// JSON report and the human output; nothing is written.
#[test]
fn split_dry_run_plans_the_real_shards_and_writes_nothing() {
    for (name, case) in cases() {
        let work = tempfile::tempdir().unwrap();
        let o = convert(work.path(), &case, &["--json"], &["--dry-run"]);
        assert!(
            o.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(listing(work.path()).is_empty(), "{name}: wrote something");
        let report: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(report["dry_run"], true);
        let want = expected_files(&case);
        let shards = report["shards"].as_array().unwrap();
        let planned: Vec<(String, u64)> = shards
            .iter()
            .map(|s| {
                let p = PathBuf::from(s["path"].as_str().unwrap());
                assert_eq!(p.parent().unwrap(), work.path(), "{name}");
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    s["bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(planned, want, "{name}: planned files and sizes");
        let printed: Vec<&str> = case["dry_run_prints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let names: Vec<&str> = planned.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, printed, "{name}: the converter's --dry-run plan");
        // tensor counts: from the real files
        let mut total = 0;
        for (s, (f, _)) in shards.iter().zip(&want) {
            let n = ckpt_tensor_count(&fixtures().join("expected").join(&name).join(f));
            assert_eq!(s["tensors"].as_u64().unwrap(), n, "{name}/{f}");
            total += n;
        }
        assert_eq!(report["tensors"].as_u64().unwrap(), total, "{name}");
        assert_eq!(
            report["bytes"].as_u64().unwrap(),
            want.iter().map(|(_, b)| b).sum::<u64>(),
            "{name}"
        );

        // The human output names every shard with its size.
        let o = convert(work.path(), &case, &[], &["--dry-run"]);
        assert!(o.status.success(), "{name}");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("dry run, nothing written"), "{name}: {text}");
        if want.len() > 1 {
            for (f, _) in &want {
                assert!(text.contains(f.as_str()), "{name}: {f} missing in {text}");
            }
        }
        assert!(listing(work.path()).is_empty(), "{name}: wrote something");
    }
}

/// The tensor count in a GGUF header (bytes 8..16, after the magic and the version).
fn ckpt_tensor_count(p: &Path) -> u64 {
    let b = std::fs::read(p).unwrap();
    u64::from_le_bytes(b[8..16].try_into().unwrap())
}

/// Shards that exist are not replaced without --force, in a dry run as in a real one; a
/// llama-quantize type cannot combine both limits (llama-gguf-split takes one).
#[test]
fn split_output_refusals() {
    let (_, case) = cases().into_iter().find(|(n, _)| n == "tensors-7").unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("tiny-00002-of-00003.gguf"), b"keep").unwrap();
    for post in [&[][..], &["--dry-run"][..]] {
        let o = convert(work.path(), &case, &[], post);
        assert_eq!(o.status.code(), Some(2), "{post:?}");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("tiny-00002-of-00003.gguf"),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(listing(work.path()), vec!["tiny-00002-of-00003.gguf"]);
    }
    assert_eq!(
        std::fs::read(work.path().join("tiny-00002-of-00003.gguf")).unwrap(),
        b"keep"
    );
    let o = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(fixtures().join("tiny-split"))
        .arg(work.path().join("q.gguf"))
        .args([
            "--outtype",
            "q4_k_m",
            "--split-max-size",
            "5K",
            "--split-max-tensors",
            "3",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not both"));
    // quantize keeps llama-gguf-split's one limit
    let o = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args([
            "quantize",
            "--split-max-size",
            "1M",
            "--split-max-tensors",
            "3",
        ])
        .arg(fixtures().join("expected/single-tensors-100/tiny.gguf"))
        .arg(work.path().join("q.gguf"))
        .arg("q8_0")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot be used together"));
    assert_eq!(listing(work.path()), vec!["tiny-00002-of-00003.gguf"]);
}
