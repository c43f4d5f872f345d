//! GGUF -> HF -> GGUF round trips on the converter's own outputs (tests/fixtures/gguf), and the
//! exported tensors against the original HF checkpoints.

use std::path::{Path, PathBuf};

use ckpt_core::DType;
use ckpt_export::{gguf_to_hf, ExportOptions};
use ckpt_gguf::GgufValue;
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

pub(crate) fn f32s(t: &ckpt_core::Tensor) -> Vec<f32> {
    let b = t.bytes().unwrap();
    match t.dtype {
        DType::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        DType::F16 => b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        DType::BF16 => b
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => panic!("unexpected dtype {other} for {}", t.name),
    }
}

/// Keys whose values must survive GGUF -> HF -> GGUF. `general.name` etc. come from the folder
/// name and are not part of the model.
fn key_matters(key: &str, arch: &str) -> bool {
    key == "general.architecture"
        || key == "general.file_type"
        || key.starts_with(&format!("{arch}."))
        || key.starts_with("tokenizer.")
}

/// Exports `gguf`, converts the folder back to f16 GGUF and compares tensors and KVs.
fn round_trip(name: &str, pre_tokenizer: Option<&str>) -> (tempfile::TempDir, PathBuf) {
    let original_path = fixtures().join(format!("{name}.f16.gguf"));
    let tmp = tempfile::tempdir().unwrap();
    // The converter derives general.name from the folder name; keep it the same.
    let folder = tmp.path().join(name);
    let report = gguf_to_hf(&original_path, &folder, &ExportOptions::default()).unwrap();
    assert_eq!(report.hf_architecture.as_deref(), Some("LlamaForCausalLM"));
    assert!(folder.join("config.json").is_file());

    let exported = ckpt_safetensors::read(&folder.join("model.safetensors")).unwrap();
    let back_path = tmp.path().join("back.gguf");
    let opts = HfToGgufOptions {
        outtype: OutType::F16,
        pre_tokenizer: pre_tokenizer.map(str::to_string),
        ..Default::default()
    };
    convert_hf_to_gguf(&folder, &exported, &back_path, &opts).unwrap();

    let original = ckpt_gguf::open_split(&original_path).unwrap();
    let back = ckpt_gguf::open_split(&back_path).unwrap();
    let mut a: Vec<_> = original.tensors();
    let mut b: Vec<_> = back.tensors();
    a.sort_by(|x, y| x.name.cmp(&y.name));
    b.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(
        a.iter().map(|t| &t.name).collect::<Vec<_>>(),
        b.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.dtype, &x.shape), (y.dtype, &y.shape), "{}", x.name);
        assert!(
            x.bytes().unwrap() == y.bytes().unwrap(),
            "tensor {} differs after the round trip",
            x.name
        );
    }
    let arch = original
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap()
        .to_string();
    let pick = |kvs: &[(String, GgufValue)]| -> Vec<(String, GgufValue)> {
        let mut v: Vec<_> = kvs
            .iter()
            .filter(|(k, _)| key_matters(k, &arch))
            .cloned()
            .collect();
        v.sort_by(|x, y| x.0.cmp(&y.0));
        v
    };
    let (ka, mut kb) = (pick(original.kvs()), pick(back.kvs()));
    // The exported folder has a tokenizer.json whose pair template (BOS $A BOS $B, as in
    // transformers' Llama tokenizers) makes the converter state add_sep_token = false; the
    // original folder had no tokenizer.json. Only that exact extra key is tolerated.
    if !ka.iter().any(|(k, _)| k == "tokenizer.ggml.add_sep_token") {
        kb.retain(|(k, v)| !(k == "tokenizer.ggml.add_sep_token" && *v == GgufValue::Bool(false)));
    }
    for (x, y) in ka.iter().zip(&kb) {
        assert_eq!(x.0, y.0, "KV keys differ");
        assert!(
            x.1 == y.1,
            "KV {} differs: {:?} vs {:?}",
            x.0,
            ckpt_gguf::describe_value(&x.1, 4),
            ckpt_gguf::describe_value(&y.1, 4)
        );
    }
    assert_eq!(
        ka.len(),
        kb.len(),
        "KV key sets differ: {:?} vs {:?}",
        ka.iter().map(|k| &k.0).collect::<Vec<_>>(),
        kb.iter().map(|k| &k.0).collect::<Vec<_>>()
    );
    (tmp, folder)
}

/// The exported tensors against the original HF checkpoint (bf16). The GGUF stored matrices as
/// f16 and norms as f32, so each exported value is the bf16 original rounded to f16: equal
/// within half an f16 ulp (2^-11 relative) for normal values, and within the f16 subnormal
/// step (2^-24) absolutely below 2^-14.
fn compare_with_original(folder: &Path, original_folder: &str) {
    let exported = ckpt_safetensors::read(&folder.join("model.safetensors")).unwrap();
    let original =
        ckpt_safetensors::read(&fixtures().join(original_folder).join("model.safetensors"))
            .unwrap();
    let mut names_a: Vec<_> = exported.tensors.iter().map(|t| t.name.clone()).collect();
    let mut names_b: Vec<_> = original.tensors.iter().map(|t| t.name.clone()).collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b);
    for t in &original.tensors {
        let e = exported.get(&t.name).unwrap();
        assert_eq!(e.shape, t.shape, "{}", t.name);
        let (x, y) = (f32s(t), f32s(e));
        for (i, (a, b)) in x.iter().zip(&y).enumerate() {
            let tol = (a.abs() * 2f32.powi(-11)).max(2f32.powi(-24));
            assert!(
                (a - b).abs() <= tol,
                "{}[{i}]: original {a}, exported {b}",
                t.name
            );
        }
    }
}

#[test]
fn spm_llama_round_trip() {
    let (_tmp, folder) = round_trip("tiny-llama-spm", None);
    compare_with_original(&folder, "tiny-llama-spm");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(config["num_key_value_heads"], 2);
    assert_eq!(config["rms_norm_eps"], 1e-5);
    assert_eq!(config["rope_theta"], 10000.0);
    assert!(folder.join("tokenizer.model").is_file());
    // tokenizer.json: byte-fallback BPE with merges from the scores; BOS added, text round-trips.
    let tok = tokenizers::Tokenizer::from_file(folder.join("tokenizer.json")).unwrap();
    let text = "Hello world, the quick brown fox 🚀";
    let enc = tok.encode(text, true).unwrap();
    assert_eq!(enc.get_ids()[0], 1, "BOS first");
    assert!(
        enc.get_ids().len() < text.chars().count(),
        "merges applied: {:?}",
        enc.get_tokens()
    );
    assert!(
        enc.get_tokens().iter().any(|t| t.starts_with("<0x")),
        "byte fallback for the emoji: {:?}",
        enc.get_tokens()
    );
    assert_eq!(tok.decode(enc.get_ids(), true).unwrap(), text);
}

#[test]
fn bpe_smol_round_trip() {
    let (_tmp, folder) = round_trip("tiny-smol-bpe", None);
    compare_with_original(&folder, "tiny-smol-bpe");
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["tie_word_embeddings"], true);
    assert!(ckpt_safetensors::read(&folder.join("model.safetensors"))
        .unwrap()
        .get("lm_head.weight")
        .is_none());
    // The rebuilt tokenizer.json tokenizes like the original one.
    let ours = tokenizers::Tokenizer::from_file(folder.join("tokenizer.json")).unwrap();
    let theirs =
        tokenizers::Tokenizer::from_file(fixtures().join("tiny-smol-bpe/tokenizer.json")).unwrap();
    for text in [
        "Hello world, it's 2024!",
        "<|im_start|>user\nhi<|im_end|>",
        "  spaces\tand\nnewlines ünïcödé 🚀",
    ] {
        assert_eq!(
            ours.encode(text, true).unwrap().get_ids(),
            theirs.encode(text, true).unwrap().get_ids(),
            "{text:?}"
        );
    }
}

#[test]
fn quantized_export_is_f32_and_dequantized_like_ggml() {
    let path = fixtures().join("tiny-llama-spm.Q4_K_M.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("out");
    gguf_to_hf(
        &path,
        &folder,
        &ExportOptions {
            max_shard_size: Some(2_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    let index: serde_json::Value = serde_json::from_slice(
        &std::fs::read(folder.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let map = index["weight_map"].as_object().unwrap();
    assert_eq!(map.len(), 39);
    let gguf = ckpt_gguf::open_split(&path).unwrap();
    let q = gguf
        .tensors()
        .into_iter()
        .find(|t| t.name == "blk.0.attn_v.weight")
        .unwrap();
    let expected = ckpt_quant::dequantize(
        q.dtype.to_ggml().unwrap(),
        &q.bytes().unwrap(),
        q.numel() as usize,
    )
    .unwrap();
    let file = map["model.layers.0.self_attn.v_proj.weight"]
        .as_str()
        .unwrap();
    let shard = ckpt_safetensors::read(&folder.join(file)).unwrap();
    let v = shard.get("model.layers.0.self_attn.v_proj.weight").unwrap();
    assert_eq!(v.dtype, DType::F32);
    assert_eq!(f32s(v), expected);
    // Exported values stay close to the original model (Q4_K/Q6_K error is a few percent of the range).
    let original =
        ckpt_safetensors::read(&fixtures().join("tiny-llama-spm/model.safetensors")).unwrap();
    let o = f32s(
        original
            .get("model.layers.0.self_attn.q_proj.weight")
            .unwrap(),
    );
    let file = map["model.layers.0.self_attn.q_proj.weight"]
        .as_str()
        .unwrap();
    let e = f32s(
        ckpt_safetensors::read(&folder.join(file))
            .unwrap()
            .get("model.layers.0.self_attn.q_proj.weight")
            .unwrap(),
    );
    let max = o.iter().fold(0f32, |m, x| m.max(x.abs()));
    let err = o
        .iter()
        .zip(&e)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        err < 0.15 * max,
        "max error {err} against max |w| {max}: the Q/K rows are probably misordered"
    );
}

#[test]
fn unknown_architecture_strict_and_lenient() {
    // Rewrite general.architecture of the small BPE GGUF to an unknown name.
    let src = ckpt_gguf::open_split(&fixtures().join("tiny-smol-bpe.f16.gguf")).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("odd.gguf");
    let mut w = ckpt_gguf::GgufWriter::new();
    w.add_kv("general.architecture", GgufValue::string("mystery"));
    for t in src.tensors() {
        w.add_tensor(t);
    }
    w.write(&path, false).unwrap();
    let err = gguf_to_hf(
        &path,
        &tmp.path().join("strict"),
        &ExportOptions {
            strict: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("mystery"), "{err}");
    assert!(!tmp.path().join("strict").exists());
    let report = gguf_to_hf(
        &path,
        &tmp.path().join("lenient"),
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(report.hf_architecture.is_none());
    assert!(!report.warnings.is_empty());
    assert!(!tmp.path().join("lenient/config.json").exists());
    let st = ckpt_safetensors::read(&tmp.path().join("lenient/model.safetensors")).unwrap();
    assert!(st.get("blk.0.attn_q.weight").is_some());
}

#[test]
fn existing_output_needs_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("x");
    let path = fixtures().join("tiny-smol-bpe.f16.gguf");
    gguf_to_hf(&path, &folder, &ExportOptions::default()).unwrap();
    assert!(gguf_to_hf(&path, &folder, &ExportOptions::default()).is_err());
    gguf_to_hf(
        &path,
        &folder,
        &ExportOptions {
            overwrite: true,
            dtype: Some(DType::BF16),
            ..Default::default()
        },
    )
    .unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(folder.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["torch_dtype"], "bfloat16");
    assert!(gguf_to_hf(
        &path,
        &folder,
        &ExportOptions {
            overwrite: true,
            dtype: Some(DType::I32),
            ..Default::default()
        }
    )
    .is_err());
}

#[test]
fn a_type_ckpt_cannot_dequantize_is_named_in_the_error() {
    let Some(unreadable) = ckpt_core::GgmlType::all().find(|t| {
        !matches!(
            t,
            ckpt_core::GgmlType::F32 | ckpt_core::GgmlType::F16 | ckpt_core::GgmlType::BF16
        ) && t.block_size() > 0
            && t.type_size() > 0
            && ckpt_quant::kernels(*t).is_none()
            && DType::from_ggml(*t) == DType::Ggml(*t)
    }) else {
        eprintln!("every ggml type can be dequantized; nothing to test");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("odd.gguf");
    let mut w = ckpt_gguf::GgufWriter::new();
    w.add_kv("general.architecture", GgufValue::string("llama"));
    let (bs, ts) = (unreadable.block_size() as u64, unreadable.type_size());
    w.add_tensor(ckpt_core::Tensor::computed(
        "blk.0.attn_v.weight",
        DType::Ggml(unreadable),
        vec![1, bs],
        move || Ok(vec![0u8; ts]),
    ));
    w.write(&path, false).unwrap();
    let err = gguf_to_hf(&path, &tmp.path().join("out"), &ExportOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(unreadable.name()) && err.contains("blk.0.attn_v.weight"),
        "{err}"
    );
    assert!(!tmp.path().join("out").exists());
}

#[test]
fn split_gguf_exports_every_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("out");
    let first = fixtures().join("split/tiny-llama-spm.Q2_K-split-00001-of-00003.gguf");
    let report = gguf_to_hf(
        &first,
        &folder,
        &ExportOptions {
            dtype: Some(DType::F16),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.tensor_count, 39);
    let st = ckpt_safetensors::read(&folder.join("model.safetensors")).unwrap();
    assert!(st.tensors.iter().all(|t| t.dtype == DType::F16));
    let original =
        ckpt_safetensors::read(&fixtures().join("tiny-llama-spm/model.safetensors")).unwrap();
    let mut names: Vec<_> = st.tensors.iter().map(|t| t.name.clone()).collect();
    let mut expected: Vec<_> = original.tensors.iter().map(|t| t.name.clone()).collect();
    names.sort();
    expected.sort();
    assert_eq!(names, expected);
}

/// README.md's export section (between the `export:start/end` markers) is the registry's: the
/// classes that export, and every refused one with the reason the export gives.
#[test]
fn readme_lists_the_exported_and_refused_architectures() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .unwrap();
    let start = readme.find("<!-- export:start -->").expect("start marker") + 21;
    let end = readme.find("<!-- export:end -->").expect("end marker");
    let mut want = String::from("\nExported: ");
    let exported: Vec<String> = ckpt_model::arch::registry()
        .iter()
        .filter(|a| a.exports())
        .map(|a| a.hf_names().join(" / "))
        .collect();
    want.push_str(&exported.join(", "));
    want.push_str(".\n\nRefused (exit 5, nothing written):\n\n");
    for (class, why) in ckpt_export::names::refused() {
        want.push_str(&format!("- {class}: {why}\n"));
    }
    assert!(
        readme[start..end] == want,
        "README.md's export section is out of date; it should read:\n{want}"
    );
}

/// The export goes through the same folder writer as every conversion: `.bin` shards written
/// directly, re-read and checked, with the same tensors as the safetensors export.
#[test]
fn bin_export_is_written_and_verified_by_the_common_folder_writer() {
    let path = fixtures().join("tiny-llama-spm.Q4_K_M.gguf");
    let tmp = tempfile::tempdir().unwrap();
    let (st, bin) = (tmp.path().join("st"), tmp.path().join("bin"));
    let st_report = gguf_to_hf(&path, &st, &ExportOptions::default()).unwrap();
    let bin_report = gguf_to_hf(
        &path,
        &bin,
        &ExportOptions {
            target: ckpt_export::Target::Bin,
            max_shard_size: Some(2_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(st_report.verified && bin_report.verified);
    assert!(bin.join("pytorch_model.bin.index.json").is_file());
    assert!(bin_report.files.iter().any(|f| f == "config.json"));
    assert!(!bin.join("model.safetensors").exists());
    let a = ckpt_convert::open(&st, &Default::default()).unwrap();
    let b = ckpt_convert::open(&bin, &Default::default()).unwrap();
    assert_eq!(a.tensors.len(), b.tensors.len());
    for t in &a.tensors {
        let u = b.tensors.iter().find(|u| u.name == t.name).unwrap();
        assert_eq!((t.dtype, &t.shape), (u.dtype, &u.shape), "{}", t.name);
        assert_eq!(t.bytes().unwrap(), u.bytes().unwrap(), "{}", t.name);
    }
}
