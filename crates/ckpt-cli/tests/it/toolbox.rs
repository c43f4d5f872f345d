//! llama-quantize's advanced options (`--tensor-type`, `--override-kv`, `--prune-layers`,
//! `--keep-split`, `--include/--exclude-weights`, positional NTHREADS) and llama-gguf-split
//! (`--split`, `--merge`, and split output from `convert` / `quantize`), byte for byte against the
//! files the real tools wrote (tests/fixtures/toolbox/expected.json, by
//! scripts/gen-toolbox-fixtures.py), plus the atomicity of split outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use sha2::Digest;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn f16() -> PathBuf {
    fixtures().join("gguf/tiny-llama-spm.f16.gguf")
}

fn sha256(p: &Path) -> String {
    sha2::Sha256::digest(std::fs::read(p).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn ckpt_in(dir: &Path, args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run ckpt")
}

/// The files of a scratch folder that a case wrote (everything but its inputs), sorted.
fn written(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "imatrix.gguf")
        .collect();
    names.sort();
    names
}

/// Runs every case of expected.json whose ckpt command starts with `command` and returns the
/// failures.
fn run_cases(command: &str) -> usize {
    let expected: Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("toolbox/expected.json")).unwrap(),
    )
    .unwrap();
    // {SPLIT}: the first shard of the 16-tensor split of the f16 fixture, made by ckpt (its bytes
    // are the case split-t16).
    let split_dir = tempfile::tempdir().unwrap();
    let out = ckpt_in(
        split_dir.path(),
        &[
            "gguf-split".into(),
            "--split-max-tensors".into(),
            "16".into(),
            f16().to_string_lossy().into_owned(),
            "p".into(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let split = split_dir.path().join("p-00001-of-00003.gguf");
    let mut n = 0;
    for (name, case) in expected["cases"].as_object().unwrap() {
        let args: Vec<&str> = case["ckpt"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        if args[0] != command {
            continue;
        }
        n += 1;
        let work = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixtures().join("gguf-imatrix/imatrix.gguf"),
            work.path().join("imatrix.gguf"),
        )
        .unwrap();
        let args: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("{F16}", &f16().to_string_lossy())
                    .replace(
                        "{HF}",
                        &fixtures().join("gguf/tiny-llama-spm").to_string_lossy(),
                    )
                    .replace("{IMATRIX}", "imatrix.gguf")
                    .replace("{SPLIT}", &split.to_string_lossy())
                    .replace("{OUT}", ".")
            })
            .collect();
        let out = ckpt_in(work.path(), &args);
        assert!(
            out.status.success(),
            "{name}: ckpt {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: Vec<(String, String)> = case["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["file"].as_str().unwrap().to_string(),
                    o["sha256"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let names: Vec<String> = want.iter().map(|w| w.0.clone()).collect();
        assert_eq!(written(work.path()), names, "{name}: files written");
        for (file, sha) in &want {
            assert_eq!(
                &sha256(&work.path().join(file)),
                sha,
                "{name}: {file} differs from the reference tool's"
            );
        }
    }
    n
}

#[test]
fn gguf_split_and_merge_match_llama_gguf_split() {
    assert_eq!(run_cases("gguf-split"), 3);
}

#[test]
fn quantize_options_match_llama_quantize() {
    assert_eq!(run_cases("quantize"), 13);
}

/// With a llama-quantize --outtype the quantized file is split as llama-gguf-split splits it
/// (the converter's own types split as convert_hf_to_gguf.py does: convert_split.rs).
#[test]
fn convert_quantized_writes_the_split_llama_gguf_split_makes() {
    assert_eq!(run_cases("convert"), 1);
}

#[test]
fn merged_files_and_ckpt_splits_read_back() {
    let work = tempfile::tempdir().unwrap();
    let s = |a: &[&str]| -> Vec<String> { a.iter().map(|x| x.to_string()).collect() };
    let f = f16().to_string_lossy().into_owned();
    assert!(ckpt_in(
        work.path(),
        &s(&["gguf-split", "--split-max-tensors", "7", &f, "m"])
    )
    .status
    .success());
    // Any shard opens the whole set; the merged file (split.count = 0) opens as one file.
    let set = ckpt_gguf::open_split(&work.path().join("m-00003-of-00006.gguf")).unwrap();
    assert_eq!(set.shards.len(), 6);
    let merged = work.path().join("merged.gguf");
    let out = ckpt_in(
        work.path(),
        &s(&[
            "gguf-split",
            "--merge",
            "m-00001-of-00006.gguf",
            "merged.gguf",
        ]),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let one = ckpt_gguf::open_split(&merged).unwrap();
    assert_eq!(one.shards.len(), 1);
    let original = ckpt_gguf::GgufFile::open(&f16()).unwrap();
    for (a, b) in one.tensors().iter().zip(original.tensors()) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.bytes().unwrap(), b.bytes().unwrap(), "{}", a.name);
    }
    // Like llama-gguf-split, --merge refuses an existing output and a shard that is not the first.
    let again = ckpt_in(
        work.path(),
        &s(&[
            "gguf-split",
            "--merge",
            "m-00001-of-00006.gguf",
            "merged.gguf",
        ]),
    );
    assert_eq!(
        again.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    let second = ckpt_in(
        work.path(),
        &s(&["gguf-split", "--merge", "m-00002-of-00006.gguf", "x.gguf"]),
    );
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("00001-of-00006"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // --dry-run writes nothing.
    let before = written(work.path());
    let dry = ckpt_in(
        work.path(),
        &s(&["gguf-split", "--dry-run", "--split-max-size", "2M", &f, "d"]),
    );
    assert!(dry.status.success());
    assert!(String::from_utf8_lossy(&dry.stdout).starts_with("n_split: 4\n"));
    assert_eq!(written(work.path()), before);
}

#[test]
fn a_failed_split_leaves_no_shard() {
    let work = tempfile::tempdir().unwrap();
    // A NaN in the last tensor of the input: llama-quantize's validation fails while the last
    // shard is written; the shards already complete must not appear either.
    let file = ckpt_gguf::GgufFile::open(&f16()).unwrap();
    let last = file.tensor_infos.last().unwrap();
    let at = (file.data_offset + last.offset) as usize;
    let mut bytes = std::fs::read(f16()).unwrap();
    let nan: &[u8] = match last.ggml_type {
        ckpt_core::GgmlType::F32 => &[0, 0, 0xc0, 0x7f],
        _ => &[0, 0x7e],
    };
    bytes[at..at + nan.len()].copy_from_slice(nan);
    let input = work.path().join("nan.gguf");
    std::fs::write(&input, bytes).unwrap();
    let s = |a: &[&str]| -> Vec<String> { a.iter().map(|x| x.to_string()).collect() };
    let out = ckpt_in(
        work.path(),
        &s(&[
            "quantize",
            "--split-max-tensors",
            "10",
            "nan.gguf",
            "q.gguf",
            "q8_0",
        ]),
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(written(work.path()), vec!["nan.gguf".to_string()]);
}

#[test]
fn option_errors_are_usage_errors() {
    let work = tempfile::tempdir().unwrap();
    let f = f16().to_string_lossy().into_owned();
    for args in [
        vec![
            "quantize",
            "--tensor-type",
            "attn_q",
            &f,
            "o.gguf",
            "q4_k_m",
        ],
        vec![
            "quantize",
            "--tensor-type",
            "attn_q=q9_9",
            &f,
            "o.gguf",
            "q4_k_m",
        ],
        vec![
            "quantize",
            "--override-kv",
            "a=u32:1",
            &f,
            "o.gguf",
            "q4_k_m",
        ],
        vec![
            "quantize",
            "--override-kv",
            "a=bool:yes",
            &f,
            "o.gguf",
            "q4_k_m",
        ],
        vec!["quantize", "--prune-layers", "1,x", &f, "o.gguf", "q4_k_m"],
        vec![
            "quantize",
            "--include-weights",
            "a",
            "--exclude-weights",
            "b",
            &f,
            "o.gguf",
            "q4_k_m",
        ],
        vec![
            "quantize",
            "--keep-split",
            "--split-max-tensors",
            "3",
            &f,
            "o.gguf",
            "q8_0",
        ],
        vec!["quantize", "--split-max-size", "5T", &f, "o.gguf", "q8_0"],
        vec!["gguf-split", "--split-max-size", "0G", &f, "o"],
        vec![
            "gguf-split",
            "--merge",
            "--split-max-tensors",
            "3",
            &f,
            "o.gguf",
        ],
    ] {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = ckpt_in(work.path(), &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(written(work.path()).is_empty(), "{args:?}");
    }
}
