//! The table-driven architectures against what llama.cpp's convert_hf_to_gguf.py wrote for the
//! same tiny models (tests/fixtures/arch-tables, made by scripts/gen-arch-fixtures.py): the whole
//! f16 GGUF must be byte-identical. On a difference the KV list and tensor list are compared to
//! say where.

use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, DType, Format, Tensor};
use ckpt_gguf::{GgufFile, GgufValue};
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Element i of every tensor is (i % 13) * 0.125, as the generator wrote it.
fn tensor(name: &str, shape: Vec<u64>) -> Tensor {
    let n: u64 = shape.iter().product();
    Tensor::computed(name, DType::F32, shape, move || {
        Ok((0..n)
            .flat_map(|i| ((i % 13) as f32 * 0.125).to_le_bytes())
            .collect())
    })
}

fn value_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::String(s) => Value::from(s.as_str()),
        GgufValue::Bool(b) => Value::from(*b),
        GgufValue::F32(f) => Value::from(*f as f64),
        GgufValue::Array(a) => Value::Array(a.items.iter().map(value_json).collect()),
        other => other
            .as_i64()
            .map(Value::from)
            .unwrap_or_else(|| Value::from(format!("{other:?}"))),
    }
}

fn check(case: &str) {
    let fx = fixtures().join("arch-tables").join(case);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // The folder name becomes general.name: the generator's was tiny-CASE.
    let dir = tmp.path().join(format!("tiny-{case}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fx.join("config.json"), dir.join("config.json")).unwrap();
    let (tok_dir, files): (&str, &[&str]) = match expected["tokenizer"].as_str().unwrap() {
        "xlmr" => (
            "gguf/tiny-xlmr-unigram",
            &[
                "sentencepiece.bpe.model",
                "tokenizer.json",
                "tokenizer_config.json",
            ],
        ),
        "xlmrjson" => (
            "gguf/tiny-xlmr-unigram",
            &["tokenizer.json", "tokenizer_config.json"],
        ),
        // Written into the case folder by the generator.
        "wordpiece" => (
            "arch-tables/nomic_bert",
            &["tokenizer.json", "tokenizer_config.json"],
        ),
        // Written into the case folder by the generator (no tokenizer.json).
        "tiktoken" => (
            "arch-tables/hunyuan_tiktoken",
            &[
                "hy.tiktoken",
                "tokenizer_config.json",
                "generation_config.json",
            ],
        ),
        "bpe" => (
            "gguf/tiny-smol-bpe",
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
            ],
        ),
        _ => (
            "gguf/tiny-llama-spm",
            &["tokenizer.model", "tokenizer_config.json"],
        ),
    };
    for f in files {
        let own = fx.join(f);
        let src = if own.is_file() {
            own
        } else {
            fixtures().join(tok_dir).join(f)
        };
        std::fs::copy(src, dir.join(f)).unwrap();
    }
    if case == "glm4" || case == "glm4_mrope" {
        // GLM-4's converter needs the added token <|user|> (as the generator renamed it).
        let path = dir.join("tokenizer.json");
        let mut tok: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for t in tok["added_tokens"].as_array_mut().unwrap() {
            if t["content"] == "<repo_name>" {
                t["content"] = Value::from("<|user|>");
            }
        }
        let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
        let id = vocab.remove("<repo_name>").unwrap();
        vocab.insert("<|user|>".into(), id);
        std::fs::write(&path, serde_json::to_string(&tok).unwrap()).unwrap();
    }
    let list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(fx.join("hf_tensors.json")).unwrap())
            .unwrap();
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = list.into_iter().map(|(n, s)| tensor(&n, s)).collect();
    let out = tmp.path().join("out.gguf");
    if let Some(hash) = expected["pre_hash"].as_str() {
        // The converter did not know this vocabulary's fingerprint: ckpt must compute the same
        // one and refuse it the same way without the override.
        let err = convert_hf_to_gguf(
            &dir,
            &ck,
            &out,
            &HfToGgufOptions {
                outtype: OutType::F16,
                overwrite: true,
                ..Default::default()
            },
        )
        .err()
        .unwrap_or_else(|| panic!("{case}: an unknown fingerprint was accepted"))
        .to_string();
        assert!(
            err.contains(&format!("hash {hash}")),
            "{case}: expected the fingerprint {hash}, got: {err}"
        );
    }
    convert_hf_to_gguf(
        &dir,
        &ck,
        &out,
        &HfToGgufOptions {
            outtype: OutType::F16,
            overwrite: true,
            pre_tokenizer: expected["pre_tokenizer"].as_str().map(str::to_string),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let sha = hex(&Sha256::digest(std::fs::read(&out).unwrap()));
    if sha == expected["file_sha256"].as_str().unwrap() {
        return;
    }
    // Say where the files differ.
    let f = GgufFile::open(&out).unwrap();
    let ours: Vec<&str> = f.kvs.iter().map(|(k, _)| k.as_str()).collect();
    let theirs: Vec<&str> = expected["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| kv[0].as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "{case}: KV keys differ");
    for kv in expected["kvs"].as_array().unwrap() {
        let key = kv[0].as_str().unwrap();
        if let Some(v) = kv[1].get("value") {
            let got = &f.kvs.iter().find(|(k, _)| k == key).unwrap().1;
            assert_eq!(&value_json(got), v, "{case}: KV {key}");
        }
    }
    let names: Vec<String> = f.tensors().into_iter().map(|t| t.name.clone()).collect();
    let want: Vec<String> = expected["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, want, "{case}: tensor names differ");
    panic!("{case}: files differ (sha256 {sha}) although KVs and tensor names agree");
}

#[test]
fn smollm3_matches_the_converter() {
    check("smollm3");
}

#[test]
fn granite_drops_head_dim_and_writes_its_multipliers() {
    check("granite");
}

#[test]
fn olmo3_writes_its_sliding_window_pattern() {
    check("olmo3");
}

#[test]
fn seed_oss_maps_post_attention_layernorm_to_post_attention_norm() {
    check("seed_oss");
}

#[test]
fn stablelm_writes_its_own_key_list() {
    check("stablelm");
}

#[test]
fn command_r_takes_model_max_length_and_no_rope_scaling() {
    check("command_r");
}

#[test]
fn cohere2_rope_dims_come_from_rotary_pct() {
    check("cohere2");
}

#[test]
fn exaone4_writes_window_and_pattern() {
    check("exaone4");
}

#[test]
fn ernie4_5_writes_add_space_prefix_after_the_vocabulary() {
    check("ernie4_5");
}

/// Command R7B biases are all zero in released checkpoints and the converter drops them after
/// checking; ckpt does not read values while planning, so it refuses them, naming the tensor.
#[test]
fn glm4_takes_partial_rope_dims_and_eot_from_the_added_tokens() {
    check("glm4");
}

#[test]
fn glm4_with_mrope_sections_reorders_q_and_k_to_neox() {
    check("glm4_mrope");
}

#[test]
fn hunyuan_dense_scales_the_rope_base_by_alpha_and_uses_eod_as_eos() {
    check("hunyuan_dense");
}

#[test]
fn hunyuan_dense_builds_its_vocabulary_from_hy_tiktoken() {
    check("hunyuan_tiktoken");
}

/// The Python tokenizer module a Hunyuan folder ships is never run: a folder whose module would
/// fail (or do anything) converts the same, and one without hy.tiktoken is refused by name.
#[test]
fn hunyuan_tiktoken_folder_reads_no_code_and_needs_the_vocabulary_file() {
    let fx = fixtures().join("arch-tables/hunyuan_tiktoken");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-hunyuan_tiktoken");
    std::fs::create_dir(&dir).unwrap();
    for f in [
        "config.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        std::fs::copy(fx.join(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("tokenization_hy.py"), "raise SystemExit(1)\n").unwrap();
    let list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(fx.join("hf_tensors.json")).unwrap())
            .unwrap();
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = list.into_iter().map(|(n, s)| tensor(&n, s)).collect();
    let out = tmp.path().join("out.gguf");
    let opts = HfToGgufOptions {
        outtype: OutType::F16,
        overwrite: true,
        pre_tokenizer: Some("hunyuan".into()),
        ..Default::default()
    };
    let err = convert_hf_to_gguf(&dir, &ck, &out, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("neither tokenizer.json nor hy.tiktoken"),
        "{err}"
    );
    assert!(!out.exists());
    // A vocabulary whose size disagrees with config.json's is refused with both counts.
    let mut text = std::fs::read_to_string(fx.join("hy.tiktoken")).unwrap();
    text.push_str("QUJD 320\n");
    std::fs::write(dir.join("hy.tiktoken"), text).unwrap();
    let err = convert_hf_to_gguf(&dir, &ck, &out, &opts)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("321 tokens and 210 special tokens make 531") && err.contains("530"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn lfm2_squeezes_its_short_conv_kernels_and_lists_kv_heads_per_layer() {
    check("lfm2");
}

#[test]
fn cohere2_bias_is_refused_by_name() {
    let fx = fixtures().join("arch-tables/cohere2");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-cohere2");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fx.join("config.json"), dir.join("config.json")).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("gguf/tiny-smol-bpe").join(f), dir.join(f)).unwrap();
    }
    let mut list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(fx.join("hf_tensors.json")).unwrap())
            .unwrap();
    list.push(("model.layers.0.self_attn.q_proj.bias".into(), vec![8]));
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = list.into_iter().map(|(n, s)| tensor(&n, s)).collect();
    let err = convert_hf_to_gguf(
        &dir,
        &ck,
        &tmp.path().join("out.gguf"),
        &HfToGgufOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ckpt_core::Error::Unsupported(_)), "{err}");
    assert!(
        err.to_string()
            .contains("model.layers.0.self_attn.q_proj.bias"),
        "{err}"
    );
    assert!(!tmp.path().join("out.gguf").exists());
}

#[test]
fn nomic_bert_keeps_its_fused_qkv_and_swiglu_and_cuts_the_context_to_2048() {
    check("nomic_bert");
}

/// nomic-embed-text-v2-moe: "nomic-bert-moe", the experts' w1/w2 reshaped (w2 transposed per
/// expert), their shared bias dropped, the XLM-RoBERTa vocabulary with <mask> at 250001, and the
/// context of transformers' default 2048 less pad_token_id + 1.
#[test]
fn nomic_bert_moe_reshapes_its_experts_and_writes_the_xlmr_vocabulary() {
    check("nomic_bert_moe");
}

#[test]
fn xlm_roberta_writes_the_unigram_vocabulary_and_skips_the_padded_positions() {
    check("xlm_roberta");
}

#[test]
fn xlm_roberta_reads_the_unigram_vocabulary_from_tokenizer_json_alone() {
    check("xlm_roberta_json");
}

#[test]
fn embeddinggemma_maps_bare_decoder_names_and_keeps_the_config_window() {
    check("embeddinggemma");
}

/// nomic-embed-text's remote-code sizes (n_layer, …) that transformers' NomicBertConfig does not
/// read: the converter would write v1.5's 12 layers for a 2-layer model; ckpt refuses.
#[test]
fn nomic_bert_sizes_transformers_ignores_are_refused() {
    let fx = fixtures().join("arch-tables/nomic_bert");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-nomic");
    std::fs::create_dir(&dir).unwrap();
    let mut cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("config.json")).unwrap()).unwrap();
    cfg.as_object_mut().unwrap().remove("num_hidden_layers");
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fx.join(f), dir.join(f)).unwrap();
    }
    let list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(fx.join("hf_tensors.json")).unwrap())
            .unwrap();
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = list.into_iter().map(|(n, s)| tensor(&n, s)).collect();
    let err = convert_hf_to_gguf(
        &dir,
        &ck,
        &tmp.path().join("out.gguf"),
        &HfToGgufOptions {
            outtype: OutType::F16,
            pre_tokenizer: Some("bert-bge".into()),
            ..Default::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("n_layer is 2"), "{err}");
    assert!(!tmp.path().join("out.gguf").exists());
}
