//! What a new user tripped over (issue #21): options the chosen output would ignore are refused,
//! flags known from llama.cpp's tools are accepted, fallbacks are summarised, `inspect --json`
//! is complete, `diff` labels stored types and recognises float rounding, help is not wrapped
//! when it is not shown on a terminal.

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
        .env_remove("COLUMNS")
        .output()
        .unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Exit 2, a message naming the flag, and nothing written.
fn assert_refused(args: &[&str], flag: &str, out: &Path) {
    let r = ckpt(args);
    assert_eq!(r.status.code(), Some(2), "{args:?}: {}", stderr(&r));
    assert!(
        stderr(&r).contains(flag) && stderr(&r).contains("does not apply"),
        "{args:?}: {}",
        stderr(&r)
    );
    assert!(!out.exists(), "{args:?} wrote {}", out.display());
}

#[test]
fn convert_refuses_options_the_output_ignores() {
    let work = tempfile::tempdir().unwrap();
    let model = fx("gguf/tiny-llama-spm");
    let gguf = fx("gguf/tiny-llama-spm.q8_0.gguf");
    let st = work.path().join("st");
    let g = work.path().join("m.gguf");
    let hf = work.path().join("hf");
    // The case: --outtype with a safetensors destination wrote bf16 safetensors.
    assert_refused(
        &["convert", s(&model), s(&st), "--outtype", "q8_0"],
        "--outtype",
        &st,
    );
    assert_refused(
        &["convert", s(&model), s(&st), "--intermediate", "bf16"],
        "--intermediate",
        &st,
    );
    assert_refused(
        &["convert", s(&model), s(&st), "--pre-tokenizer", "llama-bpe"],
        "--pre-tokenizer",
        &st,
    );
    assert_refused(&["convert", s(&model), s(&st), "--strict"], "--strict", &st);
    assert_refused(
        &["convert", s(&model), s(&st), "--verbose"],
        "--verbose",
        &st,
    );
    // --key on a source that is not a pickle.
    let bin = work.path().join("a.bin");
    let one = model.join("model.safetensors");
    assert_refused(
        &["convert", s(&one), s(&bin), "--key", "state_dict"],
        "--key",
        &bin,
    );
    // GGUF output: safetensors-only options.
    assert_refused(
        &["convert", s(&model), s(&g), "--dtype", "f16"],
        "--dtype",
        &g,
    );
    assert_refused(
        &["convert", s(&model), s(&g), "--max-shard-size", "1MB"],
        "--max-shard-size",
        &g,
    );
    assert_refused(
        &["convert", s(&model), s(&g), "--materialize-shared"],
        "--materialize-shared",
        &g,
    );
    assert_refused(
        &["convert", s(&model), s(&g), "--no-verify"],
        "--no-verify",
        &g,
    );
    assert_refused(&["convert", s(&model), s(&g), "--strict"], "--strict", &g);
    assert_refused(
        &[
            "convert",
            s(&model),
            s(&g),
            "--outtype",
            "f16",
            "--intermediate",
            "bf16",
        ],
        "--intermediate",
        &g,
    );
    assert_refused(
        &["convert", s(&model), "--outfile", s(&g), "--dtype", "bf16"],
        "--dtype",
        &g,
    );
    // GGUF -> Hugging Face export.
    assert_refused(
        &["convert", s(&gguf), s(&hf), "--outtype", "f16"],
        "--outtype",
        &hf,
    );
    assert_refused(
        &["convert", s(&gguf), s(&hf), "--key", "state_dict"],
        "--key",
        &hf,
    );
    assert_refused(
        &["convert", s(&gguf), s(&hf), "--materialize-shared"],
        "--materialize-shared",
        &hf,
    );
    assert_refused(
        &["convert", s(&gguf), s(&hf), "--no-verify"],
        "--no-verify",
        &hf,
    );
    // merge-lora.
    let merged = work.path().join("merged");
    assert_refused(
        &[
            "merge-lora",
            "--base",
            s(&model),
            "--adapter",
            s(&model),
            "--out",
            s(&merged),
            "--outtype",
            "q8_0",
        ],
        "--outtype",
        &merged,
    );
    assert_refused(
        &[
            "merge-lora",
            "--base",
            s(&model),
            "--adapter",
            s(&model),
            "--out",
            s(&merged),
            "--to",
            "gguf",
            "--max-shard-size",
            "1MB",
        ],
        "--max-shard-size",
        &merged,
    );
    // What still applies is accepted.
    let r = ckpt(&[
        "convert",
        s(&model),
        s(&g),
        "--outtype",
        "q4_k_m",
        "--intermediate",
        "bf16",
        "-q",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
}

#[test]
fn convert_accepts_outfile_like_convert_hf_to_gguf() {
    let work = tempfile::tempdir().unwrap();
    let model = fx("gguf/tiny-llama-spm");
    let a = work.path().join("a.gguf");
    let b = work.path().join("b.gguf");
    let r = ckpt(&[
        "convert",
        s(&model),
        "--outfile",
        s(&a),
        "--outtype",
        "q8_0",
    ]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = ckpt(&["convert", s(&model), s(&b), "--outtype", "q8_0"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // Both a DST and --outfile is ambiguous.
    let r = ckpt(&["convert", s(&model), s(&b), "--outfile", s(&a), "--force"]);
    assert_eq!(r.status.code(), Some(2));
    // Neither is a usage error too.
    let r = ckpt(&["convert", s(&model)]);
    assert_eq!(r.status.code(), Some(2));
    // Help says which convert_hf_to_gguf.py flag --outfile and --outtype correspond to.
    let help = stdout(&ckpt(&["convert", "--help"]));
    assert!(help.contains("convert_hf_to_gguf.py's --outfile"), "{help}");
    assert!(help.contains("convert_hf_to_gguf.py's --outtype"), "{help}");
}

#[test]
fn quantize_accepts_llama_quantize_positional_thread_count() {
    let work = tempfile::tempdir().unwrap();
    let input = fx("gguf/tiny-llama-spm.f16.gguf");
    let a = work.path().join("a.gguf");
    let b = work.path().join("b.gguf");
    let r = ckpt(&["quantize", s(&input), s(&a), "Q4_0", "2"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = ckpt(&["quantize", s(&input), s(&b), "Q4_0", "--threads", "1"]);
    assert!(r.status.success(), "{}", stderr(&r));
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    let r = ckpt(&[
        "quantize",
        s(&input),
        s(&a),
        "Q4_0",
        "2",
        "--threads",
        "3",
        "--force",
    ]);
    assert_eq!(r.status.code(), Some(2), "NTHREADS and --threads together");
    let r = ckpt(&["quantize", s(&input), s(&a), "Q4_0", "two", "--force"]);
    assert_eq!(r.status.code(), Some(2));
    let help = stdout(&ckpt(&["quantize", "--help"]));
    assert!(
        help.contains("llama-quantize's positional NTHREADS"),
        "{help}"
    );
}

/// tiny-smol-bpe's rows (8, 16) fit no block: all 15 quantizable tensors fall back to F16.
#[test]
fn fallbacks_are_summarised_by_type() {
    let work = tempfile::tempdir().unwrap();
    let input = fx("gguf/tiny-smol-bpe.f16.gguf");
    let out = work.path().join("q.gguf");
    let r = ckpt(&["quantize", s(&input), s(&out), "Q4_K_M"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let e = stderr(&r);
    assert!(e.contains("15 of 20 tensor(s)"), "{e}");
    assert!(e.contains("Q4_K -> F16: 12 tensor(s)"), "{e}");
    assert!(e.contains("Q6_K -> F16: 2 tensor(s)"), "{e}");
    assert!(e.contains("Q8_0 -> F16: 1 tensor(s)"), "{e}");
    assert!(
        e.lines().count() <= 5,
        "one line per type pair, not per tensor:\n{e}"
    );
    let r = ckpt(&[
        "quantize",
        s(&input),
        s(&out),
        "Q4_K_M",
        "--force",
        "--verbose",
    ]);
    let e = stderr(&r);
    assert_eq!(e.matches("does not fit").count(), 15, "{e}");
    assert!(e.contains("token_embd.weight"), "{e}");

    // The same through `convert --outtype q4_k_m`.
    let model = fx("gguf/tiny-smol-bpe");
    let g = work.path().join("m.gguf");
    let r = ckpt(&["convert", s(&model), s(&g), "--outtype", "q4_k_m"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let e = stderr(&r);
    assert!(e.contains("-> F16: "), "{e}");
    assert!(!e.contains("rows do not fit"), "{e}");
    assert!(e.lines().count() <= 6, "{e}");
    let r = ckpt(&[
        "convert",
        s(&model),
        s(&g),
        "--outtype",
        "q4_k_m",
        "--force",
        "-v",
    ]);
    assert_eq!(
        stderr(&r).matches("does not fit").count(),
        15,
        "{}",
        stderr(&r)
    );

    // The library hands the fallbacks over as data.
    let report = ckpt_quant::quantize_gguf(
        &input,
        &work.path().join("lib.gguf"),
        &ckpt_quant::QuantizeOptions::new(ckpt_quant::parse_ftype("Q4_K_M").unwrap()),
    )
    .unwrap();
    let summary = ckpt_quant::pipeline::fallback_summary(&report.tensors);
    assert_eq!(summary.iter().map(|c| c.count).sum::<usize>(), 15);
}

#[test]
fn inspect_json_is_never_truncated() {
    let input = fx("gguf/tiny-llama-spm.f16.gguf");
    let r = ckpt(&["inspect", "--json", s(&input)]);
    assert!(r.status.success(), "{}", stderr(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let tokens = &v["metadata"]["tokenizer.ggml.tokens"];
    let count = tokens["count"].as_u64().unwrap();
    assert!(count > 64, "the fixture has a real vocabulary");
    assert_eq!(tokens["value"].as_array().unwrap().len() as u64, count);
    assert!(tokens.get("truncated").is_none());
    // --summary may cut long arrays, and says so.
    let r = ckpt(&["inspect", "--json", "--summary", s(&input)]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let tokens = &v["metadata"]["tokenizer.ggml.tokens"];
    assert_eq!(tokens["value"].as_array().unwrap().len(), 64);
    assert_eq!(tokens["truncated"], true);
}

#[test]
fn diff_labels_gguf_tensors_with_their_stored_type() {
    let model = fx("gguf/tiny-llama-spm");
    let q8 = fx("gguf/tiny-llama-spm.q8_0.gguf");
    let r = ckpt(&["diff", "--json", s(&model), s(&q8)]);
    assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let q = v["compared"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "model.layers.0.self_attn.q_proj.weight")
        .unwrap();
    assert_eq!(q["dtype_b"], "Q8_0", "{q}");
    let norm = v["compared"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "model.norm.weight")
        .unwrap();
    assert_eq!(norm["dtype_b"], "F32", "{norm}");
    // Either side: the GGUF first.
    let r = ckpt(&["diff", "--all", s(&q8), s(&model)]);
    let text = stdout(&r);
    let line = text
        .lines()
        .find(|l| l.starts_with("model.layers.0.self_attn.q_proj.weight"))
        .unwrap();
    assert!(line.split_whitespace().nth(1) == Some("Q8_0"), "{line}");
    // Quantization error is not float rounding.
    assert!(!text.contains("within float rounding"), "{text}");
}

#[test]
fn diff_says_when_differences_are_float_rounding() {
    let work = tempfile::tempdir().unwrap();
    let src = fx("torch/sharded");
    let bf = work.path().join("bf16");
    let r = ckpt(&["convert", s(&src), s(&bf), "--dtype", "bf16", "-q"]);
    assert!(r.status.success(), "{}", stderr(&r));
    let r = ckpt(&["diff", s(&src), s(&bf)]);
    assert_eq!(r.status.code(), Some(1));
    let text = stdout(&r);
    let hint = text
        .lines()
        .find(|l| l.contains("within float rounding"))
        .unwrap_or_else(|| panic!("{text}"));
    // The suggested tolerance makes the diff pass.
    let tol = hint
        .split("--tolerance ")
        .nth(1)
        .unwrap()
        .split('`')
        .next()
        .unwrap();
    let r = ckpt(&["diff", s(&src), s(&bf), "--tolerance", tol]);
    assert_eq!(r.status.code(), Some(0), "{}", stdout(&r));
    let r = ckpt(&["diff", "--json", s(&src), s(&bf)]);
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["rounding_only"], true);
}

#[test]
fn help_is_not_wrapped_when_not_on_a_terminal() {
    // Output captured by a pipe: clap used to wrap at 100 columns.
    let r = ckpt(&["convert", "--help"]);
    let help = stdout(&r);
    assert!(
        help.lines().any(|l| l.contains("--outtype <OUTTYPE>")
            && l.contains("any llama-quantize type")
            && l.len() > 100),
        "{help}"
    );
    // COLUMNS still sets a width.
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["convert", "--help"])
        .env("COLUMNS", "80")
        .output()
        .unwrap();
    let help = stdout(&r);
    assert!(help.lines().all(|l| l.chars().count() <= 80), "{help}");
}

/// The library says the output exists (no flag names); the command line adds `--force`, exit 2,
/// for safetensors and GGUF output alike.
#[test]
fn existing_output_names_force_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tiny-llama");
    let st = dir.path().join("st");
    let gguf = dir.path().join("m.gguf");
    for out in [&st, &gguf] {
        std::fs::write(out, b"keep").unwrap();
    }
    for args in [
        vec!["convert", s(&tiny), s(&st)],
        vec!["convert", s(&tiny), s(&gguf), "--outtype", "q4_k_m"],
    ] {
        let r = ckpt(&args);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", stderr(&r));
        assert!(
            stderr(&r).contains("already exists (use --force to replace it)"),
            "{args:?}: {}",
            stderr(&r)
        );
    }
    assert_eq!(std::fs::read(&st).unwrap(), b"keep");
    assert_eq!(std::fs::read(&gguf).unwrap(), b"keep");
}

/// Typed options keep the command line's messages: the flag is named by the CLI.
#[test]
fn unknown_outtype_and_intermediate_name_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/tiny-llama");
    let out = dir.path().join("m.gguf");
    let r = ckpt(&["convert", s(&tiny), s(&out), "--outtype", "q9_z"]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("unknown --outtype 'q9_z' (f32, f16, bf16, q8_0, auto, or a llama-quantize type such as q4_k_m, q5_k_m, q6_k)"),
        "{}",
        stderr(&r)
    );
    let r = ckpt(&[
        "convert",
        s(&tiny),
        s(&out),
        "--outtype",
        "q4_k_m",
        "--intermediate",
        "q8_0",
    ]);
    assert_eq!(r.status.code(), Some(2), "{}", stderr(&r));
    assert!(
        stderr(&r).contains("--intermediate must be f16, bf16 or f32, not 'q8_0'"),
        "{}",
        stderr(&r)
    );
    assert!(!out.exists());
}
