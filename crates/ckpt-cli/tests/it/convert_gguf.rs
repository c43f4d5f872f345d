//! `ckpt convert --to gguf` reproduces llama.cpp's convert_hf_to_gguf.py (and, for quantized
//! outtypes, convert + llama-quantize) byte for byte; hashes come from the fixture manifest.

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

/// The manifest holds Python NaN literals (not JSON), so look the hash up textually.
fn manifest_sha(name: &str) -> String {
    let text = std::fs::read_to_string(fx("manifest.json")).unwrap();
    let at = text
        .find(&format!("\"path\": \"{name}\""))
        .unwrap_or_else(|| panic!("{name} not in the manifest"));
    let rest = &text[at..];
    let sha = &rest[rest.find("\"sha256\": \"").unwrap() + 11..];
    sha[..64].to_string()
}

fn convert(model: &str, out: &Path, extra: &[&str]) {
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(fx(model))
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{model} {extra:?}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
}

#[test]
fn spm_llama_every_outtype_matches_the_reference_converter() {
    let work = tempfile::tempdir().unwrap();
    for t in ["f32", "f16", "bf16", "q8_0"] {
        let out = work.path().join(format!("m.{t}.gguf"));
        convert("tiny-llama-spm", &out, &["--outtype", t]);
        assert_eq!(
            sha256(&out),
            manifest_sha(&format!("tiny-llama-spm.{t}.gguf")),
            "{t}"
        );
    }
}

#[test]
fn bpe_smollm_tokenizer_matches_the_reference_converter() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("smol.gguf");
    convert("tiny-smol-bpe", &out, &["--to", "gguf", "--outtype", "f16"]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(fx("tiny-smol-bpe.f16.gguf")).unwrap()
    );
}

#[test]
fn one_step_quantization_equals_convert_then_quantize() {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("q.gguf");
    convert("tiny-llama-spm", &out, &["--outtype", "q4_k_m"]);
    assert_eq!(
        sha256(&out),
        manifest_sha("tiny-llama-spm.f16-to-Q4_K_M.gguf"),
        "through an F16 intermediate"
    );
    let out = work.path().join("qb.gguf");
    convert(
        "tiny-llama-spm",
        &out,
        &["--outtype", "Q4_K_M", "--intermediate", "bf16"],
    );
    assert_eq!(
        sha256(&out),
        manifest_sha("tiny-llama-spm.Q4_K_M.gguf"),
        "bf16 widens exactly, like the f32 input"
    );
    let left: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 2, "no intermediate left behind: {left:?}");
}

/// A bf16 weight too large for f16 becomes infinity in the F16 intermediate: the one-step
/// quantizer (which takes the cast's values, not F16 bytes) refuses it at the same element, with
/// the same words, as llama-quantize's check of the staged file does, and writes nothing.
#[test]
fn one_step_refuses_what_quantizing_the_f16_file_refuses() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    std::fs::create_dir(&model).unwrap();
    for e in std::fs::read_dir(fx("tiny-llama-spm")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), model.join(e.file_name())).unwrap();
    }
    // model.layers.0.mlp.up_proj.weight [768, 256] bf16: element (5, 9) = 2^20 (> 65504)
    let st = model.join("model.safetensors");
    let mut bytes = std::fs::read(&st).unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    let t = &header["model.layers.0.mlp.up_proj.weight"];
    assert_eq!(t["dtype"], "BF16");
    let start = 8 + n + t["data_offsets"][0].as_u64().unwrap() as usize;
    let element = 5 * 256 + 9;
    bytes[start + 2 * element..start + 2 * element + 2]
        .copy_from_slice(&((2f32.powi(20).to_bits() >> 16) as u16).to_le_bytes());
    std::fs::write(&st, bytes).unwrap();
    let ckpt = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .args(args)
            .output()
            .unwrap()
    };
    let (f16, q, one) = (
        work.path().join("f16.gguf"),
        work.path().join("q.gguf"),
        work.path().join("one.gguf"),
    );
    let r = ckpt(&[
        "convert".as_ref(),
        model.as_os_str(),
        f16.as_os_str(),
        "--outtype".as_ref(),
        "f16".as_ref(),
    ]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let two_step = ckpt(&[
        "quantize".as_ref(),
        f16.as_os_str(),
        q.as_os_str(),
        "q4_k_m".as_ref(),
    ]);
    let one_step = ckpt(&[
        "convert".as_ref(),
        model.as_os_str(),
        one.as_os_str(),
        "--outtype".as_ref(),
        "q4_k_m".as_ref(),
    ]);
    let want = format!(
        "tensor blk.0.ffn_up.weight has invalid data: NaN or infinity in F16 element/block {element}"
    );
    for (what, r) in [("quantize", &two_step), ("one step", &one_step)] {
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(3), "{what}: {err}");
        assert!(err.contains(&want), "{what}: {err}");
    }
    assert!(!q.exists() && !one.exists());
}

#[test]
fn gguf_py_reads_our_output() {
    let Some(py) = std::env::var_os("CKPT_PYTHON") else {
        eprintln!("skipped: set CKPT_PYTHON (scripts/test.sh does)");
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m.gguf");
    convert("tiny-llama-spm", &out, &["--outtype", "q8_0"]);
    let r = Command::new(py)
        .args(["-c", "import sys, gguf; r = gguf.GGUFReader(sys.argv[1]); assert len(r.tensors) == 39; assert r.fields['general.architecture'].contents() == 'llama'; print('ok')"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("m");
    std::fs::create_dir(&model).unwrap();
    for f in [
        "model.safetensors",
        "tokenizer.model",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fx("tiny-llama-spm").join(f), model.join(f)).unwrap();
    }
    let cfg = std::fs::read_to_string(fx("tiny-llama-spm/config.json"))
        .unwrap()
        .replace("LlamaForCausalLM", "FancyNewForCausalLM");
    std::fs::write(model.join("config.json"), cfg).unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(&model)
        .arg(work.path().join("x.gguf"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success());
    assert!(
        err.contains("FancyNewForCausalLM") && err.contains("LlamaForCausalLM"),
        "{err}"
    );
    assert!(!work.path().join("x.gguf").exists());
}

/// GPT-OSS as released (MXFP4 experts): `--outtype f16` keeps the experts MXFP4 and labels the
/// file MOSTLY_MXFP4_MOE; a one-step K-quant would requantize them, which llama-quantize refuses
/// ("requantizing from type mxfp4 is disabled"), and so does ckpt, writing nothing.
#[test]
fn an_mxfp4_gpt_oss_folder_keeps_its_experts_and_refuses_requantizing_them() {
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("tiny-gpt_oss_mxfp4");
    crate::ollama_cli::arch_moe_folder(&folder, "gpt_oss_mxfp4");
    let f16 = work.path().join("f16.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["--json", "convert"])
        .arg(&folder)
        .arg(&f16)
        .args(["--outtype", "f16"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f = ckpt_gguf::GgufFile::open(&f16).unwrap();
    let ft = f
        .kvs
        .iter()
        .find(|(k, _)| k == "general.file_type")
        .map(|(_, v)| format!("{v:?}"))
        .unwrap();
    assert!(ft.contains("38"), "MOSTLY_MXFP4_MOE: {ft}");
    let first = &f.tensors()[0];
    assert_eq!(first.name, "blk.0.ffn_down_exps.weight");
    assert_eq!(
        first.dtype,
        ckpt_core::DType::Ggml(ckpt_core::GgmlType::MXFP4)
    );

    let q4 = work.path().join("q4.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(&folder)
        .arg(&q4)
        .args(["--outtype", "q4_k_m"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ffn_down_exps.weight is already quantized (MXFP4)"),
        "{stderr}"
    );
    assert!(!q4.exists(), "nothing may be written");
}

/// `--split-max-size` reads as each real tool reads it: convert as convert_hf_to_gguf.py (plain
/// byte counts and K too, 0 = one file, "5.5G" refused), gguf-split and quantize as
/// llama-gguf-split (M or G only, the number as sscanf's %d reads it: "1.9M" is 1 M).
#[test]
fn split_sizes_read_as_the_real_tools_read_them() {
    let work = tempfile::tempdir().unwrap();
    let ckpt = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .current_dir(work.path())
            .args(args)
            .output()
            .unwrap()
    };
    let ok = |args: &[&str]| {
        let r = ckpt(args);
        assert!(
            r.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
    };
    let model = fx("tiny-llama-spm");
    let model = model.to_str().unwrap();
    ok(&["convert", model, "one.gguf", "--outtype", "f16"]);
    // 0 is no limit for the converter: the same single file
    ok(&[
        "convert",
        model,
        "zero.gguf",
        "--outtype",
        "f16",
        "--split-max-size",
        "0",
    ]);
    assert_eq!(
        sha256(&work.path().join("zero.gguf")),
        sha256(&work.path().join("one.gguf"))
    );
    // bytes (and K) for the converter; "1.9M" is 1 M for llama-gguf-split
    ok(&[
        "convert",
        model,
        "c.gguf",
        "--outtype",
        "f16",
        "--split-max-size",
        "1000K",
    ]);
    ok(&[
        "convert",
        model,
        "b.gguf",
        "--outtype",
        "f16",
        "--split-max-size",
        "1000000",
    ]);
    ok(&["gguf-split", "--split-max-size", "1.9M", "one.gguf", "s"]);
    ok(&[
        "quantize",
        "--split-max-size",
        "1.9M",
        "one.gguf",
        "q.gguf",
        "f16",
    ]);
    let mut names: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let shards: Vec<&String> = names.iter().filter(|n| n.starts_with("s-")).collect();
    assert!(shards.len() > 1, "{names:?}");
    // 1000K and 1000000 are the same limit for the converter (whose split is gguf-py's, not
    // llama-gguf-split's: tests/it/convert_split.rs)
    let converted: Vec<&String> = names.iter().filter(|n| n.starts_with("c-")).collect();
    assert!(converted.len() > 1, "{names:?}");
    for c in converted {
        let i = &c[1..];
        assert_eq!(
            sha256(&work.path().join(c)),
            sha256(&work.path().join(format!("b{i}"))),
            "b{i}"
        );
    }
    // quantize orders tensors as llama-quantize does: its own split, but split by 1 M too
    assert!(
        names.iter().any(|n| n.starts_with("q-00002-of-")),
        "{names:?}"
    );
    // what each tool refuses
    for args in [
        vec!["convert", model, "x.gguf", "--split-max-size", "5.5G"],
        vec!["convert", model, "x.gguf", "--split-max-size=-5M"],
        vec!["convert", model, "x.gguf", "--split-max-size", "5g"],
        vec!["gguf-split", "--split-max-size", "1000000", "one.gguf", "x"],
        vec!["gguf-split", "--split-max-size", "1K", "one.gguf", "x"],
        vec!["gguf-split", "--split-max-size", ".5G", "one.gguf", "x"],
        vec![
            "quantize",
            "--split-max-size=-1G",
            "one.gguf",
            "x.gguf",
            "q8_0",
        ],
    ] {
        let r = ckpt(&args);
        let err = String::from_utf8_lossy(&r.stderr);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("invalid split size"), "{args:?}: {err}");
        assert!(!work.path().join("x.gguf").exists());
    }
}

/// One-step `--outtype q4_k_m` of an arch-tables model (config, tokenizer files, weights element
/// i = (i % 13) * 0.125 as scripts/gen-arch-fixtures.py wrote them) against what the pinned
/// converter's f16 file became through llama-quantize Q4_K_M
/// (tests/fixtures/onestep-q4km, scripts/gen-onestep-q4km-fixtures.py): the whole file's
/// sha256, and on a difference the KV names and the tensors that differ.
fn one_step_q4_k_m_equals_llama_quantize(case: &str) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let fx = fixtures.join("arch-tables").join(case);
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures.join(format!("onestep-q4km/{case}.Q4_K_M.json")))
            .unwrap(),
    )
    .unwrap();
    let tables: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let work = tempfile::tempdir().unwrap();
    // The folder name becomes general.name: the generator's was tiny-CASE.
    let model = work.path().join(format!("tiny-{case}"));
    std::fs::create_dir(&model).unwrap();
    std::fs::copy(fx.join("config.json"), model.join("config.json")).unwrap();
    let (tok_dir, files): (PathBuf, &[&str]) = match tables["tokenizer"].as_str().unwrap() {
        "tiktoken" => (
            fx.clone(),
            &[
                "hy.tiktoken",
                "tokenizer_config.json",
                "generation_config.json",
            ],
        ),
        "xlmr" => (
            fixtures.join("gguf/tiny-xlmr-unigram"),
            &[
                "sentencepiece.bpe.model",
                "tokenizer.json",
                "tokenizer_config.json",
            ],
        ),
        other => panic!("{case}: tokenizer {other} is not set up by this test"),
    };
    for f in files {
        let own = fx.join(f);
        let src = if own.is_file() { own } else { tok_dir.join(f) };
        std::fs::copy(src, model.join(f)).unwrap();
    }
    let list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(fx.join("hf_tensors.json")).unwrap())
            .unwrap();
    let tensors: Vec<ckpt_core::Tensor> = list
        .into_iter()
        .map(|(name, shape)| {
            let n: u64 = shape.iter().product();
            ckpt_core::Tensor::computed(name, ckpt_core::DType::F32, shape, move || {
                Ok((0..n)
                    .flat_map(|i| ((i % 13) as f32 * 0.125).to_le_bytes())
                    .collect())
            })
        })
        .collect();
    ckpt_safetensors::write(
        &model.join("model.safetensors"),
        &tensors,
        &Default::default(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let out = work.path().join("out.gguf");
    let mut extra = vec!["--outtype", "q4_k_m"];
    if let Some(pre) = expected["pre_tokenizer"].as_str() {
        extra.extend(["--pre-tokenizer", pre]);
    }
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(&model)
        .arg(&out)
        .args(&extra)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{case}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let sha = sha256(&out);
    if sha == expected["file_sha256"].as_str().unwrap() {
        let stored = fixtures.join(format!("onestep-q4km/{case}.Q4_K_M.gguf"));
        if stored.is_file() {
            assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(stored).unwrap());
        }
        return;
    }
    // Say where the files differ.
    let f = ckpt_gguf::GgufFile::open(&out).unwrap();
    let ours: Vec<&str> = f.kvs.iter().map(|(k, _)| k.as_str()).collect();
    let theirs: Vec<&str> = expected["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| kv[0].as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "{case}: KV keys differ");
    let mut differ = Vec::new();
    let ours = f.tensors();
    for (i, want) in expected["tensors"].as_array().unwrap().iter().enumerate() {
        let name = want["name"].as_str().unwrap();
        let Some(t) = ours.get(i).filter(|t| t.name == name) else {
            differ.push(format!("#{i}: {name} expected"));
            continue;
        };
        let data: String = sha2::Sha256::digest(t.bytes().unwrap())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        if data != want["sha256"].as_str().unwrap() {
            differ.push(format!("{name} ({:?}, expected {})", t.dtype, want["type"]));
        }
    }
    panic!(
        "{case}: files differ (sha256 {sha}); tensors that differ: {}",
        if differ.is_empty() {
            "none (the KV values or layout)".to_string()
        } else {
            differ.join(", ")
        }
    );
}

/// Hunyuan with a tiktoken vocabulary (pre-tokenizer "hunyuan", as the converter was given).
#[test]
fn one_step_q4_k_m_of_hunyuan_tiktoken_equals_llama_quantize() {
    one_step_q4_k_m_equals_llama_quantize("hunyuan_tiktoken");
}

/// nomic-embed-text-v2-moe: stacked experts and the padded XLM-RoBERTa vocabulary.
#[test]
fn one_step_q4_k_m_of_nomic_bert_moe_equals_llama_quantize() {
    one_step_q4_k_m_equals_llama_quantize("nomic_bert_moe");
}
