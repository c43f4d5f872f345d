//! HF -> GGUF (ckpt-model, f32) -> HF (ckpt-export) on small synthetic checkpoints of each
//! architecture: the exported tensors equal the original ones (names, shapes, values), and the
//! exported folder converts back to the same GGUF tensors.

use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, DType, Format, Tensor};
use ckpt_export::{gguf_to_hf, ExportOptions};
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use ckpt_testhub::fixtures::{moe_tensor, wordpiece_tokenizer_json};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

/// Distinct values in [-1, 1), multiples of 1/1024, different in every row and tensor, so a
/// misordered row or a wrong transpose cannot go unnoticed.
fn value(seed: u64, i: u64) -> f32 {
    ((i.wrapping_mul(7919).wrapping_add(seed * 104729)) % 2003) as f32 / 1024.0 - 0.978
}

fn checkpoint(tensors: &[(&str, Vec<u64>)]) -> Checkpoint {
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = tensors
        .iter()
        .enumerate()
        .map(|(seed, (name, shape))| {
            let n: u64 = shape.iter().product();
            let seed = seed as u64;
            Tensor::computed(*name, DType::F32, shape.clone(), move || {
                Ok((0..n).flat_map(|i| value(seed, i).to_le_bytes()).collect())
            })
        })
        .collect();
    ck
}

fn f32s(t: &Tensor) -> Vec<f32> {
    assert_eq!(t.dtype, DType::F32, "{}", t.name);
    t.bytes()
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

enum Vocab {
    SentencePiece,
    Bpe,
    /// The BPE vocabulary with `<repo_name>` renamed `<|user|>` (GLM-4's converter reads its eot
    /// from that added token), as scripts/gen-arch-fixtures.py does for the glm4 cases.
    BpeGlm,
}

/// Runs the full cycle; `norm_plus_one` tensors went through Gemma's +1 (exact to one f32 ulp of 1).
fn cycle(
    config: serde_json::Value,
    vocab: Vocab,
    tensors: &[(&str, Vec<u64>)],
    expect_hf_class: &str,
) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("model");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), config.to_string()).unwrap();
    match vocab {
        Vocab::SentencePiece => {
            std::fs::copy(
                fixtures().join("tiny-llama-spm/tokenizer.model"),
                model.join("tokenizer.model"),
            )
            .unwrap();
            std::fs::write(
                model.join("tokenizer_config.json"),
                r#"{"tokenizer_class": "LlamaTokenizer"}"#,
            )
            .unwrap();
        }
        Vocab::Bpe | Vocab::BpeGlm => {
            for f in ["tokenizer.json", "tokenizer_config.json"] {
                std::fs::copy(fixtures().join("tiny-smol-bpe").join(f), model.join(f)).unwrap();
            }
        }
    }
    if let Vocab::BpeGlm = vocab {
        let path = model.join("tokenizer.json");
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replace("<repo_name>", "<|user|>")).unwrap();
    }
    let ck = checkpoint(tensors);
    let gguf = tmp.path().join("a.gguf");
    let f32_opts = || HfToGgufOptions {
        outtype: OutType::F32,
        ..Default::default()
    };
    convert_hf_to_gguf(&model, &ck, &gguf, &f32_opts()).unwrap();

    let out = tmp.path().join("model-export");
    let report = gguf_to_hf(&gguf, &out, &ExportOptions::default()).unwrap();
    assert_eq!(report.hf_architecture.as_deref(), Some(expect_hf_class));
    let exported = ckpt_safetensors::read(&out.join("model.safetensors")).unwrap();
    let gguf_file = ckpt_gguf::open_split(&gguf).unwrap();
    let gguf_names: Vec<String> = gguf_file.tensors().iter().map(|t| t.name.clone()).collect();
    for original in &ck.tensors {
        let generated = gguf_names.iter().any(|n| n.starts_with("rope_factors"));
        let Some(e) = exported.get(&original.name) else {
            // The converter drops tied/unused heads by design; nothing else may go missing.
            assert!(
                original.name == "lm_head.weight" || original.name.ends_with(".attn.bias"),
                "{} missing (generated rope factors: {generated})",
                original.name
            );
            continue;
        };
        assert_eq!(e.shape, original.shape, "{}", original.name);
        let (a, b) = (f32s(original), f32s(e));
        let plus_one =
            expect_hf_class.starts_with("Gemma") && original.name.ends_with("norm.weight");
        let tol = if plus_one { f32::EPSILON } else { 0.0 };
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            assert!(
                (x - y).abs() <= tol,
                "{}[{i}]: original {x}, exported {y}",
                original.name
            );
        }
    }
    let back = tmp.path().join("b.gguf");
    // (An exported post-processor that adds special tokens changes the BPE fingerprint, as
    // ModernBERT's does: the name the first conversion found is given for an unknown one.)
    let back_opts = HfToGgufOptions {
        pre_tokenizer: Some("smollm".into()),
        ..f32_opts()
    };
    convert_hf_to_gguf(&out, &exported, &back, &back_opts).unwrap();
    let back = ckpt_gguf::open_split(&back).unwrap();
    let (mut x, mut y) = (gguf_file.tensors(), back.tensors());
    x.sort_by(|a, b| a.name.cmp(&b.name));
    y.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(
        x.iter().map(|t| &t.name).collect::<Vec<_>>(),
        y.iter().map(|t| &t.name).collect::<Vec<_>>()
    );
    for (a, b) in x.iter().zip(&y) {
        assert_eq!(a.shape, b.shape, "{}", a.name);
        let (va, vb) = (f32s(a), f32s(b));
        let tol = if expect_hf_class.starts_with("Gemma") {
            2.0 * f32::EPSILON
        } else {
            0.0
        };
        assert!(
            va.iter().zip(&vb).all(|(p, q)| (p - q).abs() <= tol),
            "{} differs after GGUF -> HF -> GGUF",
            a.name
        );
    }
    serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap()
}

fn llama_like_layer(prefix: &str, hidden: u64, kv_dim: u64, ffn: u64) -> Vec<(String, Vec<u64>)> {
    [
        ("input_layernorm.weight", vec![hidden]),
        ("post_attention_layernorm.weight", vec![hidden]),
        ("self_attn.q_proj.weight", vec![hidden, hidden]),
        ("self_attn.k_proj.weight", vec![kv_dim, hidden]),
        ("self_attn.v_proj.weight", vec![kv_dim, hidden]),
        ("self_attn.o_proj.weight", vec![hidden, hidden]),
        ("mlp.gate_proj.weight", vec![ffn, hidden]),
        ("mlp.up_proj.weight", vec![ffn, hidden]),
        ("mlp.down_proj.weight", vec![hidden, ffn]),
    ]
    .into_iter()
    .map(|(n, s)| (format!("{prefix}.{n}"), s))
    .collect()
}

fn as_refs(v: &[(String, Vec<u64>)]) -> Vec<(&str, Vec<u64>)> {
    v.iter().map(|(n, s)| (n.as_str(), s.clone())).collect()
}

#[test]
fn llama_with_gqa_unpermutes_q_and_k() {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![512, 64]),
        ("lm_head.weight".into(), vec![512, 64]),
        ("model.norm.weight".into(), vec![64]),
    ];
    for b in 0..2 {
        t.extend(llama_like_layer(&format!("model.layers.{b}"), 64, 32, 96));
    }
    let config = cycle(
        json!({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
               "num_key_value_heads": 2, "num_hidden_layers": 2, "max_position_embeddings": 128, "rms_norm_eps": 1e-6,
               "rope_theta": 500000.0, "vocab_size": 512, "bos_token_id": 1, "eos_token_id": 2}),
        Vocab::SentencePiece,
        &as_refs(&t),
        "LlamaForCausalLM",
    );
    assert_eq!(config["rope_theta"], 500000.0);
    assert_eq!(config["tie_word_embeddings"], false);
}

#[test]
fn qwen2_keeps_biases_and_ties_embeddings() {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![49152, 16]),
        ("model.norm.weight".into(), vec![16]),
    ];
    t.extend(llama_like_layer("model.layers.0", 16, 8, 32));
    for n in ["q_proj", "k_proj", "v_proj"] {
        t.push((
            format!("model.layers.0.self_attn.{n}.bias"),
            vec![if n == "q_proj" { 16 } else { 8 }],
        ));
    }
    let config = cycle(
        json!({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
               "num_key_value_heads": 1, "num_hidden_layers": 1, "max_position_embeddings": 256, "rms_norm_eps": 1e-6,
               "rope_theta": 1000000.0, "vocab_size": 49152, "tie_word_embeddings": true}),
        Vocab::Bpe,
        &as_refs(&t),
        "Qwen2ForCausalLM",
    );
    assert_eq!(config["model_type"], "qwen2");
    assert_eq!(config["tie_word_embeddings"], true);
}

#[test]
fn qwen3_qk_norms() {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![512, 64]),
        ("model.norm.weight".into(), vec![64]),
    ];
    t.extend(llama_like_layer("model.layers.0", 64, 32, 32));
    t.push(("model.layers.0.self_attn.q_norm.weight".into(), vec![32]));
    t.push(("model.layers.0.self_attn.k_norm.weight".into(), vec![32]));
    let config = cycle(
        json!({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2,
               "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 1, "max_position_embeddings": 128,
               "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 512, "tie_word_embeddings": true}),
        Vocab::SentencePiece,
        &as_refs(&t),
        "Qwen3ForCausalLM",
    );
    assert_eq!(config["head_dim"], 32);
}

#[test]
fn seed_oss_post_attention_norm_and_biases() {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![49152, 16]),
        ("lm_head.weight".into(), vec![49152, 16]),
        ("model.norm.weight".into(), vec![16]),
    ];
    t.extend(llama_like_layer("model.layers.0", 16, 8, 32));
    for n in ["q_proj", "k_proj", "v_proj"] {
        t.push((
            format!("model.layers.0.self_attn.{n}.bias"),
            vec![if n == "q_proj" { 16 } else { 8 }],
        ));
    }
    let config = cycle(
        json!({"architectures": ["SeedOssForCausalLM"], "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2,
               "num_key_value_heads": 1, "head_dim": 8, "num_hidden_layers": 1, "max_position_embeddings": 256,
               "rms_norm_eps": 1e-6, "rope_theta": 10000000.0, "vocab_size": 49152}),
        Vocab::Bpe,
        &as_refs(&t),
        "SeedOssForCausalLM",
    );
    assert_eq!(config["model_type"], "seed_oss");
    assert_eq!(config["head_dim"], 8);
}

#[test]
fn ernie4_5_round_trips() {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![512, 64]),
        ("lm_head.weight".into(), vec![512, 64]),
        ("model.norm.weight".into(), vec![64]),
    ];
    t.extend(llama_like_layer("model.layers.0", 64, 32, 96));
    let config = cycle(
        json!({"architectures": ["Ernie4_5_ForCausalLM"], "hidden_size": 64, "intermediate_size": 96, "num_attention_heads": 4,
               "num_key_value_heads": 2, "head_dim": 16, "num_hidden_layers": 1, "max_position_embeddings": 128,
               "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "vocab_size": 512, "tie_word_embeddings": false}),
        Vocab::SentencePiece,
        &as_refs(&t),
        "Ernie4_5_ForCausalLM",
    );
    assert_eq!(config["model_type"], "ernie4_5");
}

#[test]
fn gemma2_norms_lose_the_plus_one() {
    let mut t = vec![
        ("model.embed_tokens.weight".to_string(), vec![512, 64]),
        ("model.norm.weight".into(), vec![64]),
    ];
    t.extend(llama_like_layer("model.layers.0", 64, 32, 32));
    t.push((
        "model.layers.0.pre_feedforward_layernorm.weight".into(),
        vec![64],
    ));
    t.push((
        "model.layers.0.post_feedforward_layernorm.weight".into(),
        vec![64],
    ));
    let config = cycle(
        json!({"architectures": ["Gemma2ForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2,
               "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 1, "max_position_embeddings": 128,
               "rms_norm_eps": 1e-6, "vocab_size": 512, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
               "sliding_window": 64, "bos_token_id": 1, "eos_token_id": 2}),
        Vocab::SentencePiece,
        &as_refs(&t),
        "Gemma2ForCausalLM",
    );
    assert_eq!(config["final_logit_softcapping"], 30.0);
    assert_eq!(config["sliding_window"], 64);
}

#[test]
fn gpt2_conv1d_weights_are_transposed_back() {
    let mut t = vec![
        ("transformer.wte.weight".to_string(), vec![49152, 32]),
        ("transformer.wpe.weight".into(), vec![64, 32]),
        ("transformer.ln_f.weight".into(), vec![32]),
        ("transformer.ln_f.bias".into(), vec![32]),
    ];
    for (n, s) in [
        ("ln_1.weight", vec![32]),
        ("ln_1.bias", vec![32]),
        ("attn.c_attn.weight", vec![32, 96]),
        ("attn.c_attn.bias", vec![96]),
        ("attn.c_proj.weight", vec![32, 32]),
        ("attn.c_proj.bias", vec![32]),
        ("ln_2.weight", vec![32]),
        ("ln_2.bias", vec![32]),
        ("mlp.c_fc.weight", vec![32, 128]),
        ("mlp.c_fc.bias", vec![128]),
        ("mlp.c_proj.weight", vec![128, 32]),
        ("mlp.c_proj.bias", vec![32]),
    ] {
        t.push((format!("transformer.h.0.{n}"), s));
    }
    let config = cycle(
        json!({"architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_head": 2, "n_layer": 1, "n_ctx": 64,
               "n_positions": 64, "layer_norm_epsilon": 1e-5, "vocab_size": 49152}),
        Vocab::Bpe,
        &as_refs(&t),
        "GPT2LMHeadModel",
    );
    assert_eq!(config["n_embd"], 32);
    assert_eq!(config["n_inner"], 128);
    assert_eq!(config["layer_norm_epsilon"], 1e-5);
}

#[test]
fn phi3_keeps_fused_projections_and_longrope_factors_go_to_the_config() {
    let long: Vec<f64> = (0..16).map(|i| 1.0 + i as f64 * 0.5).collect();
    let short: Vec<f64> = (0..16).map(|i| 1.0 + i as f64 * 0.25).collect();
    let t = vec![
        ("model.embed_tokens.weight", vec![512, 64]),
        ("lm_head.weight", vec![512, 64]),
        ("model.norm.weight", vec![64]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
        ("model.layers.0.post_attention_layernorm.weight", vec![64]),
        ("model.layers.0.self_attn.qkv_proj.weight", vec![192, 64]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.gate_up_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 32]),
    ];
    let config = cycle(
        json!({"architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2,
               "num_key_value_heads": 2, "num_hidden_layers": 1, "max_position_embeddings": 256,
               "original_max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 512,
               "rope_scaling": {"type": "longrope", "long_factor": long, "short_factor": short}, "bos_token_id": 1, "eos_token_id": 2}),
        Vocab::SentencePiece,
        &t,
        "Phi3ForCausalLM",
    );
    assert_eq!(config["rope_scaling"]["long_factor"], json!(long));
    assert_eq!(config["rope_scaling"]["short_factor"], json!(short));
    assert_eq!(config["original_max_position_embeddings"], 64);
}

#[test]
fn bert_round_trips_tensors_and_the_wordpiece_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("bert");
    std::fs::create_dir(&model).unwrap();
    std::fs::write(model.join("config.json"), json!({
        "architectures": ["BertModel"], "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
        "num_hidden_layers": 1, "max_position_embeddings": 16, "layer_norm_eps": 1e-12, "vocab_size": 12,
        "type_vocab_size": 2, "pad_token_id": 0
    }).to_string()).unwrap();
    std::fs::write(
        model.join("tokenizer.json"),
        wordpiece_tokenizer_json().to_string(),
    )
    .unwrap();
    std::fs::write(model.join("tokenizer_config.json"), json!({"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]", "mask_token": "[MASK]"}).to_string()).unwrap();
    let ck = checkpoint(&[
        ("embeddings.word_embeddings.weight", vec![12, 32]),
        ("embeddings.position_embeddings.weight", vec![16, 32]),
        ("embeddings.token_type_embeddings.weight", vec![2, 32]),
        ("embeddings.LayerNorm.weight", vec![32]),
        ("embeddings.LayerNorm.bias", vec![32]),
        ("encoder.layer.0.attention.self.query.weight", vec![32, 32]),
        ("encoder.layer.0.attention.self.query.bias", vec![32]),
        ("encoder.layer.0.attention.self.key.weight", vec![32, 32]),
        ("encoder.layer.0.attention.self.value.weight", vec![32, 32]),
        (
            "encoder.layer.0.attention.output.dense.weight",
            vec![32, 32],
        ),
        (
            "encoder.layer.0.attention.output.LayerNorm.weight",
            vec![32],
        ),
        ("encoder.layer.0.intermediate.dense.weight", vec![64, 32]),
        ("encoder.layer.0.output.dense.weight", vec![32, 64]),
        ("encoder.layer.0.output.LayerNorm.weight", vec![32]),
    ]);
    // The hand-made tokenizer's fingerprint is unknown to llama.cpp: name the pre-tokenizer.
    let opts = || HfToGgufOptions {
        outtype: OutType::F32,
        pre_tokenizer: Some("bert-bge".into()),
        ..Default::default()
    };
    let gguf = tmp.path().join("a.gguf");
    convert_hf_to_gguf(&model, &ck, &gguf, &opts()).unwrap();
    let out = tmp.path().join("bert-export");
    gguf_to_hf(&gguf, &out, &ExportOptions::default()).unwrap();
    let exported = ckpt_safetensors::read(&out.join("model.safetensors")).unwrap();
    for t in &ck.tensors {
        assert_eq!(
            f32s(
                exported
                    .get(&t.name)
                    .unwrap_or_else(|| panic!("{} missing", t.name))
            ),
            f32s(t),
            "{}",
            t.name
        );
    }
    let ours = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let theirs = tokenizers::Tokenizer::from_file(model.join("tokenizer.json")).unwrap();
    for text in ["Hello worlds", "a b c hellos", "unknown words"] {
        assert_eq!(
            ours.encode(text, true).unwrap().get_ids(),
            theirs.encode(text, true).unwrap().get_ids(),
            "{text:?}"
        );
    }
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["type_vocab_size"], 2);
    assert_eq!(config["layer_norm_eps"], 1e-12);
    let back = tmp.path().join("b.gguf");
    convert_hf_to_gguf(&out, &exported, &back, &opts()).unwrap();
    let (a, b) = (
        ckpt_gguf::open_split(&gguf).unwrap(),
        ckpt_gguf::open_split(&back).unwrap(),
    );
    for key in [
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type",
        "tokenizer.ggml.model",
        "bert.attention.causal",
        "bert.context_length",
    ] {
        assert!(
            a.get(key) == b.get(key),
            "{key} differs after the round trip"
        );
    }
}

// ---------------------------------------------------------------- mixtures of experts
//
// The tiny MoE cases of tests/fixtures/arch-moe (scripts/gen-arch-moe-fixtures.py): converted to
// F16 here, the GGUF is first checked to be byte-identical to what llama.cpp's
// convert_hf_to_gguf.py wrote (the fixture's sha256), then exported back. The exported per-expert
// tensors must equal the checkpoint's (the values are exact in f16), and the exported folder must
// convert to the same GGUF tensors again.

fn moe_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// The case's model folder and checkpoint, and its F16 GGUF (checked against llama.cpp's).
fn moe_gguf(case: &str, tmp: &Path) -> (PathBuf, Checkpoint, serde_json::Value) {
    use sha2::{Digest, Sha256};
    let fx = moe_fixtures().join("arch-moe").join(case);
    let read = |f: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(fx.join(f)).unwrap()).unwrap()
    };
    let expected = read("expected.json");
    let dir = tmp.join(format!("tiny-{case}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fx.join("config.json"), dir.join("config.json")).unwrap();
    let (tok_dir, files): (&str, &[&str]) = match expected["tokenizer"].as_str().unwrap() {
        "bpe" | "glm" => (
            "gguf/tiny-smol-bpe",
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
            ],
        ),
        "spm" => (
            "gguf/tiny-llama-spm",
            &["tokenizer.model", "tokenizer_config.json"],
        ),
        other => panic!("{case}: tokenizer {other}"),
    };
    for f in files {
        let src = moe_fixtures().join(tok_dir).join(f);
        if src.is_file() {
            std::fs::copy(src, dir.join(f)).unwrap();
        }
    }
    if expected["tokenizer"] == "glm" {
        glm_tokenizer(&dir.join("tokenizer.json"));
    }
    let list: Vec<(String, Vec<u64>)> = serde_json::from_value(read("hf_tensors.json")).unwrap();
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = list
        .into_iter()
        .enumerate()
        .map(|(k, (n, s))| moe_tensor(&n, s, k as u64))
        .collect();
    let gguf = tmp.join(format!("{case}.gguf"));
    let f16 = HfToGgufOptions {
        outtype: OutType::F16,
        ..Default::default()
    };
    convert_hf_to_gguf(&dir, &ck, &gguf, &f16).unwrap();
    let sha: String = Sha256::digest(std::fs::read(&gguf).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        sha,
        expected["file_sha256"].as_str().unwrap(),
        "{case}: the GGUF is not llama.cpp's"
    );
    (gguf, ck, read("config.json"))
}

/// The tiny BPE tokenizer with GLM's added tokens, as the fixture generator renames them.
fn glm_tokenizer(path: &Path) {
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (old, new) in [
        ("<repo_name>", "<|user|>"),
        ("<file_sep>", "[gMASK]"),
        ("<filename>", "<|observation|>"),
    ] {
        for t in tok["added_tokens"].as_array_mut().unwrap() {
            if t["content"] == old {
                t["content"] = json!(new);
            }
        }
        let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
        let id = vocab.shift_remove(old).unwrap();
        vocab.insert(new.to_string(), id);
    }
    std::fs::write(path, serde_json::to_string(&tok).unwrap()).unwrap();
}

/// Cases whose multi-token-prediction layers the converter keeps (GLM-4.5's NextN layer); the
/// others' (DeepSeek V3's) are dropped.
const KEEPS_MTP: &[&str] = &["glm4moe"];

/// F16 tensors (the converter keeps norms and routers F32) as f32.
fn f16s(t: &Tensor) -> Vec<f32> {
    if t.dtype == DType::F32 {
        return f32s(t);
    }
    assert_eq!(t.dtype, DType::F16, "{}", t.name);
    t.bytes()
        .unwrap()
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

/// Exports `case` and checks tensors, the config fields named in `same`, and the round trip.
fn moe_cycle(case: &str, hf_class: &str, same: &[&str]) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    let (gguf, ck, original) = moe_gguf(case, tmp.path());
    let out = tmp.path().join("export");
    let report = gguf_to_hf(&gguf, &out, &ExportOptions::default())
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(report.hf_architecture.as_deref(), Some(hf_class), "{case}");
    let exported = ckpt_safetensors::read(&out.join("model.safetensors")).unwrap();
    let layers = original["num_hidden_layers"].as_u64().unwrap();
    let tied = original["tie_word_embeddings"] == json!(true);
    let mut expected_names = Vec::new();
    for t in &ck.tensors {
        // DeepSeek V3's multi-token-prediction layer and a tied head are dropped by the converter.
        let mtp = t
            .name
            .strip_prefix("model.layers.")
            .and_then(|r| r.split('.').next())
            .and_then(|b| b.parse::<u64>().ok())
            .is_some_and(|b| b >= layers);
        if (mtp && !KEEPS_MTP.contains(&case)) || (tied && t.name == "lm_head.weight") {
            assert!(exported.get(&t.name).is_none(), "{case}: {}", t.name);
            continue;
        }
        let e = exported
            .get(&t.name)
            .unwrap_or_else(|| panic!("{case}: {} was not exported", t.name));
        assert_eq!(e.shape, t.shape, "{case}: {}", t.name);
        assert_eq!(f16s(e), f32s(t), "{case}: {} differs", t.name);
        expected_names.push(t.name.clone());
    }
    assert_eq!(
        exported.tensors.len(),
        expected_names.len(),
        "{case}: exported tensors the checkpoint does not have"
    );
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    for key in same {
        assert_eq!(config[key], original[key], "{case}: config.json {key}");
    }
    // The exported folder converts to the same GGUF tensors.
    let back = tmp.path().join("back.gguf");
    let f16 = HfToGgufOptions {
        outtype: OutType::F16,
        ..Default::default()
    };
    convert_hf_to_gguf(&out, &exported, &back, &f16).unwrap_or_else(|e| panic!("{case}: {e}"));
    let (a, b) = (
        ckpt_gguf::open_split(&gguf).unwrap(),
        ckpt_gguf::open_split(&back).unwrap(),
    );
    let (ta, tb) = (a.tensors(), b.tensors());
    assert_eq!(
        ta.iter().map(|t| &t.name).collect::<Vec<_>>(),
        tb.iter().map(|t| &t.name).collect::<Vec<_>>(),
        "{case}"
    );
    for (x, y) in ta.iter().zip(&tb) {
        assert_eq!(
            (x.dtype, &x.shape),
            (y.dtype, &y.shape),
            "{case}: {}",
            x.name
        );
        assert!(
            x.bytes().unwrap() == y.bytes().unwrap(),
            "{case}: {} differs after GGUF -> HF -> GGUF",
            x.name
        );
    }
    // Every hyperparameter key comes back too.
    for (k, v) in a.kvs() {
        if k.starts_with(&format!("{}.", report.gguf_architecture)) {
            assert!(
                b.get(k) == Some(v),
                "{case}: {k} is {:?} after the round trip, was {v:?}",
                b.get(k)
            );
        }
    }
    config
}

const MOE_COMMON: &[&str] = &[
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "max_position_embeddings",
    "rms_norm_eps",
    "vocab_size",
    "tie_word_embeddings",
];

#[test]
fn qwen_moe_experts_are_unstacked() {
    let keys = [
        MOE_COMMON,
        &[
            "num_key_value_heads",
            "num_experts_per_tok",
            "moe_intermediate_size",
            "intermediate_size",
        ],
    ]
    .concat();
    // transformers 5 saves Qwen 3 MoE's expert count as num_local_experts (num_experts is its
    // alias, the name the export writes).
    let c = moe_cycle(
        "qwen3moe",
        "Qwen3MoeForCausalLM",
        &[keys.as_slice(), &["head_dim"]].concat(),
    );
    assert_eq!(c["num_experts"], 3);
    assert_eq!(
        c["norm_topk_prob"], true,
        "llama.cpp renormalises Qwen 3 MoE's"
    );
    let c = moe_cycle(
        "qwen2moe",
        "Qwen2MoeForCausalLM",
        &[
            keys.as_slice(),
            &["num_experts", "shared_expert_intermediate_size"],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "qwen2_moe");
}

#[test]
fn mixtral_experts_are_unstacked_and_q_k_unpermuted() {
    let c = moe_cycle(
        "mixtral",
        "MixtralForCausalLM",
        &[
            MOE_COMMON,
            &[
                "num_key_value_heads",
                "num_local_experts",
                "num_experts_per_tok",
                "intermediate_size",
            ],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "mixtral");
}

/// Llama 4: the packed experts (gate and up halves of `gate_up_proj`, `down_proj`, both
/// transposed back) on the interleaved MoE layers, the shared expert and the dense layers' MLP;
/// the two widths back in their fields; what llama.cpp's graph fixes (no rope on every 4th
/// layer, chunked attention on the others, the attention temperature, Q/K norms); the llama3
/// rope parameters that the GGUF's `rope_freqs` came from.
#[test]
fn llama4_packed_experts_and_interleaved_layers_come_back() {
    let c = moe_cycle(
        "llama4",
        "Llama4ForCausalLM",
        &[
            MOE_COMMON,
            &[
                "num_key_value_heads",
                "head_dim",
                "num_local_experts",
                "num_experts_per_tok",
                "intermediate_size",
                "intermediate_size_mlp",
                "interleave_moe_layer_step",
                "layer_types",
                "no_rope_layers",
                "no_rope_layer_interval",
                "use_qk_norm",
                "attn_temperature_tuning",
                "floor_scale",
                "attn_scale",
            ],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "llama4_text");
    // llama.cpp's chunk, not the original config's 64 (the GGUF does not record it).
    assert_eq!(c["attention_chunk_size"], 8192);
    let fx = moe_fixtures().join("arch-moe/llama4/config.json");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(fx).unwrap()).unwrap();
    let mut rope = original["rope_parameters"].clone();
    let theta = rope.as_object_mut().unwrap().remove("rope_theta").unwrap();
    assert_eq!(c["rope_scaling"], rope);
    assert_eq!(c["rope_theta"], theta);
}

#[test]
fn ernie4_5_moe_keeps_dense_leading_layers_and_shared_experts() {
    moe_cycle(
        "ernie4_5_moe",
        "Ernie4_5_MoeForCausalLM",
        &[
            MOE_COMMON,
            &[
                "num_key_value_heads",
                "moe_num_experts",
                "moe_k",
                "moe_intermediate_size",
                "moe_num_shared_experts",
                "moe_layer_start_index",
                "moe_layer_interval",
                "intermediate_size",
            ],
        ]
        .concat(),
    );
}

#[test]
fn deepseek_kv_b_proj_is_re_fused_from_the_mla_halves() {
    let mla = [
        MOE_COMMON,
        &[
            "num_key_value_heads",
            "n_routed_experts",
            "num_experts_per_tok",
            "n_shared_experts",
            "moe_intermediate_size",
            "intermediate_size",
            "first_k_dense_replace",
            "kv_lora_rank",
            "q_lora_rank",
            "qk_nope_head_dim",
            "qk_rope_head_dim",
            "v_head_dim",
            "routed_scaling_factor",
            "norm_topk_prob",
        ],
    ]
    .concat();
    moe_cycle("deepseek_v2", "DeepseekV2ForCausalLM", &mla);
    let c = moe_cycle(
        "deepseek_v3",
        "DeepseekV3ForCausalLM",
        &[
            mla.as_slice(),
            &["head_dim", "n_group", "topk_group", "scoring_func"],
        ]
        .concat(),
    );
    assert!(c.get("partial_rotary_factor").is_none(), "{c}");
    let rs = &c["rope_scaling"];
    assert_eq!(rs["rope_type"], "yarn");
    assert_eq!(rs["factor"], 40.0);
    assert_eq!(rs["mscale_all_dim"], 1.0);
    assert_eq!(rs["original_max_position_embeddings"], 32);
}

/// GPT-OSS: the converter's per-expert gate and up (even and odd columns of `gate_up_proj`,
/// transposed) interleaved back, `down_proj` transposed back, the biases and sinks under their
/// checkpoint names; what llama.cpp's graph fixes (alternating sliding window, SwiGLU clamp,
/// untruncated yarn) in config.json.
#[test]
fn gpt_oss_experts_are_packed_back_into_gate_up_proj() {
    let c = moe_cycle(
        "gpt_oss",
        "GptOssForCausalLM",
        &[
            MOE_COMMON,
            &[
                "num_key_value_heads",
                "num_local_experts",
                "num_experts_per_tok",
                "intermediate_size",
                "head_dim",
                "sliding_window",
                "layer_types",
                "attention_bias",
                "swiglu_alpha",
                "swiglu_limit",
            ],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "gpt_oss");
    let rs = &c["rope_scaling"];
    assert_eq!(rs["rope_type"], "yarn");
    assert_eq!(rs["factor"], 32.0);
    assert_eq!(rs["original_max_position_embeddings"], 4096);
    assert_eq!(rs["truncate"], false);
    assert_eq!(c["rope_theta"], 150000.0);
}

/// BF16 bytes as f32.
fn bf16s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

/// GPT-OSS as released, its experts MXFP4 blocks and scales, which convert_hf_to_gguf.py keeps
/// as GGUF MXFP4 tensors (the GGUF is checked to be its, byte for byte). The export writes what
/// transformers writes for that checkpoint loaded dequantized: the experts as BF16 (exact),
/// gate and up interleaved back into `gate_up_proj`, and no quantization_config. The experts
/// must equal transformers' own dequantization of the MXFP4 checkpoint
/// (`dequantized.safetensors`, saved by scripts/gen-arch-moe-fixtures.py, which also checked it
/// against gguf-py's dequantization of the converter's GGUF) value for value (ggml's +0 where
/// transformers writes -0), and the stacked experts are produced a band of experts at a time.
#[test]
fn gpt_oss_mxfp4_experts_come_back_as_transformers_dequantizes_them() {
    use ckpt_core::{GgmlType, TensorData};
    let tmp = tempfile::tempdir().unwrap();
    let (gguf, ck, original) = moe_gguf("gpt_oss_mxfp4", tmp.path());
    let split = ckpt_gguf::open_split(&gguf).unwrap();
    let mx = split
        .tensors()
        .into_iter()
        .filter(|t| t.dtype == DType::Ggml(GgmlType::MXFP4))
        .count();
    assert_eq!(mx, 6, "gate, up and down experts of 2 layers are MXFP4");

    let out = tmp.path().join("export");
    let report = gguf_to_hf(&gguf, &out, &ExportOptions::default()).unwrap();
    assert_eq!(report.hf_architecture.as_deref(), Some("GptOssForCausalLM"));
    let exported = ckpt_safetensors::read(&out.join("model.safetensors")).unwrap();
    let reference = ckpt_safetensors::read(
        &moe_fixtures().join("arch-moe/gpt_oss_mxfp4/dequantized.safetensors"),
    )
    .unwrap();
    assert_eq!(reference.tensors.len(), 4);
    let mut negative_zeros = 0;
    for r in &reference.tensors {
        let e = exported
            .get(&r.name)
            .unwrap_or_else(|| panic!("{} was not exported", r.name));
        assert_eq!(r.dtype, DType::BF16, "{}", r.name);
        assert_eq!((e.dtype, &e.shape), (DType::BF16, &r.shape), "{}", r.name);
        let (want, got) = (bf16s(&r.bytes().unwrap()), bf16s(&e.bytes().unwrap()));
        if let Some(i) = (0..want.len()).find(|&i| want[i] != got[i]) {
            panic!(
                "{}: element {i} is {}, transformers dequantizes it to {}",
                r.name, got[i], want[i]
            );
        }
        // Bit for bit but for the sign of zero: ggml's E2M1 table (kvalues_mxfp4) has no -0,
        // transformers' has one for code 8, so ggml's +0 is transformers' -0 there.
        let signs = (0..want.len())
            .filter(|&i| want[i].to_bits() != got[i].to_bits())
            .inspect(|&i| {
                assert!(
                    got[i].to_bits() == 0 && want[i].to_bits() == 0x8000_0000,
                    "{}: element {i}",
                    r.name
                )
            })
            .count();
        negative_zeros += signs;
    }
    assert!(negative_zeros > 0, "the fixture has codes of -0");
    // Everything else as in the checkpoint (exact in F16; norms, biases and sinks F32).
    let mut names = 0;
    for t in &ck.tensors {
        if t.name.ends_with("_blocks") || t.name.ends_with("_scales") {
            continue;
        }
        let e = exported
            .get(&t.name)
            .unwrap_or_else(|| panic!("{} was not exported", t.name));
        assert_eq!(e.shape, t.shape, "{}", t.name);
        assert_eq!(f16s(e), f32s(t), "{} differs", t.name);
        names += 1;
    }
    assert_eq!(exported.tensors.len(), names + reference.tensors.len());
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    assert!(config.get("quantization_config").is_none(), "{config}");
    for key in [
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_local_experts",
        "num_experts_per_tok",
        "head_dim",
        "sliding_window",
        "swiglu_limit",
    ] {
        assert_eq!(config[key], original[key], "config.json {key}");
    }

    // The stacked experts are made by bands of experts: expert 1 of layer 1 alone (as f32).
    let view = ckpt_export::hf_view(&gguf).unwrap();
    let name = "model.layers.1.mlp.experts.gate_up_proj";
    let gate_up = view.get(name).unwrap();
    let TensorData::Rows(rows) = &gate_up.data else {
        panic!("{name} is not produced by bands: {:?}", gate_up.data)
    };
    assert_eq!((rows.rows, rows.row_bytes), (3, 32 * 64 * 4));
    let mut one = vec![0u8; rows.row_bytes];
    (rows.fill)(1..2, &mut one).unwrap();
    let r = reference.get(name).unwrap().bytes().unwrap();
    let want = bf16s(&r[32 * 64 * 2..2 * 32 * 64 * 2]);
    let got: Vec<f32> = one
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(got, want);
}

/// GLM-4.5: the NextN layer the converter keeps as the last block comes back as
/// `model.layers.2.*` (num_hidden_layers counts the main layers only), the expert bias under
/// its checkpoint name, partial rotary and the routing from the converter's keys.
#[test]
fn glm4_5_keeps_its_nextn_layer_and_partial_rotary() {
    let c = moe_cycle(
        "glm4moe",
        "Glm4MoeForCausalLM",
        &[
            MOE_COMMON,
            &[
                "num_key_value_heads",
                "num_nextn_predict_layers",
                "n_routed_experts",
                "n_shared_experts",
                "num_experts_per_tok",
                "moe_intermediate_size",
                "intermediate_size",
                "first_k_dense_replace",
                "routed_scaling_factor",
                "norm_topk_prob",
                "n_group",
                "topk_group",
                "attention_bias",
                "use_qk_norm",
            ],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "glm4_moe");
    assert_eq!(c["partial_rotary_factor"], 0.5);
}

/// Apertus: the xIELU parameters the converter wrote as `xielu.*` arrays come back as each
/// layer's `mlp.act_fn` tensors (one-element `alpha_n`/`alpha_p`, 0-d `beta`/`eps`), its norms
/// under their own names, and llama3 rope parameters that generate the GGUF's `rope_freqs`.
#[test]
fn apertus_xielu_parameters_and_llama3_rope_come_back() {
    let c = moe_cycle(
        "apertus",
        "ApertusForCausalLM",
        &[
            MOE_COMMON,
            &["num_key_value_heads", "hidden_act", "intermediate_size"],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "apertus");
    let fx = moe_fixtures().join("arch-moe/apertus/config.json");
    let original: serde_json::Value = serde_json::from_slice(&std::fs::read(fx).unwrap()).unwrap();
    // With head_dim 4 (two frequencies) several band bounds give the same factors: the round
    // trip above checks that the exported parameters generate the same rope_freqs bit for bit.
    let rope = &original["rope_parameters"];
    assert_eq!(c["rope_scaling"]["rope_type"], "llama3");
    assert_eq!(c["rope_scaling"]["factor"], rope["factor"]);
    assert_eq!(c["rope_theta"], rope["rope_theta"]);
}

/// A GGUF whose per-layer xIELU array is missing or has the wrong length is refused by key,
/// and nothing is written.
#[test]
fn apertus_without_its_xielu_arrays_is_refused_by_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (gguf, _, _) = moe_gguf("apertus", tmp.path());
    for (edit, want) in [
        (None, "no xielu.beta key"),
        (
            Some(ckpt_gguf::GgufValue::f32_array([0.5f32])),
            "xielu.beta should be a float or an array of 2 floats",
        ),
    ] {
        let bad = tmp.path().join(format!("bad{}.gguf", edit.is_some()));
        crate::edited_gguf(&gguf, &bad, |w| match &edit {
            None => {
                w.remove_kv("xielu.beta");
            }
            Some(e) => w.set_kv("xielu.beta", e.clone()),
        });
        let out = tmp.path().join("export");
        let err = gguf_to_hf(&bad, &out, &ExportOptions::default())
            .expect_err("exported")
            .to_string();
        assert!(err.contains(want), "{err}");
        assert!(!out.exists(), "nothing may be written");
    }
}

/// Qwen3-Embedding: the bare decoder (names without "model.") with last-token pooling comes back
/// as `Qwen3Model` with its sentence-transformers pooling modules.
#[test]
fn qwen3_embedding_comes_back_as_the_bare_model_with_its_pooling() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("emb");
    std::fs::create_dir_all(model.join("1_Pooling")).unwrap();
    std::fs::write(
        model.join("config.json"),
        json!({"architectures": ["Qwen3Model"], "model_type": "qwen3", "hidden_size": 64, "intermediate_size": 32,
               "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 1,
               "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 49152,
               "tie_word_embeddings": true})
        .to_string(),
    )
    .unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("tiny-smol-bpe").join(f), model.join(f)).unwrap();
    }
    std::fs::write(model.join("modules.json"), json!([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]).to_string()).unwrap();
    std::fs::write(
        model.join("1_Pooling/config.json"),
        json!({"word_embedding_dimension": 64, "pooling_mode_lasttoken": true}).to_string(),
    )
    .unwrap();
    let mut t = vec![
        ("embed_tokens.weight".to_string(), vec![49152, 64]),
        ("norm.weight".into(), vec![64]),
    ];
    t.extend(llama_like_layer("layers.0", 64, 32, 32));
    t.push(("layers.0.self_attn.q_norm.weight".into(), vec![32]));
    t.push(("layers.0.self_attn.k_norm.weight".into(), vec![32]));
    let ck = checkpoint(&as_refs(&t));
    let opts = || HfToGgufOptions {
        outtype: OutType::F32,
        ..Default::default()
    };
    let gguf = tmp.path().join("emb.gguf");
    convert_hf_to_gguf(&model, &ck, &gguf, &opts()).unwrap();
    let out = tmp.path().join("emb-export");
    let report = gguf_to_hf(&gguf, &out, &ExportOptions::default()).unwrap();
    assert_eq!(report.hf_architecture.as_deref(), Some("Qwen3Model"));
    let exported = ckpt_safetensors::read(&out.join("model.safetensors")).unwrap();
    assert_eq!(exported.tensors.len(), ck.tensors.len());
    for o in &ck.tensors {
        let e = exported
            .get(&o.name)
            .unwrap_or_else(|| panic!("{} missing", o.name));
        assert_eq!(f32s(e), f32s(o), "{}", o.name);
    }
    let pooling: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("1_Pooling/config.json")).unwrap()).unwrap();
    assert_eq!(pooling["pooling_mode_lasttoken"], true);
    assert_eq!(pooling["pooling_mode_mean_tokens"], false);
    assert_eq!(pooling["word_embedding_dimension"], 64);
    // Normalized like llama.cpp's embeddings and the released Qwen3-Embedding.
    let modules: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("modules.json")).unwrap()).unwrap();
    assert_eq!(
        modules[2],
        json!({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    );
    let back = tmp.path().join("back.gguf");
    convert_hf_to_gguf(&out, &exported, &back, &opts()).unwrap();
    let (a, b) = (
        ckpt_gguf::open_split(&gguf).unwrap(),
        ckpt_gguf::open_split(&back).unwrap(),
    );
    assert!(a.get("qwen3.pooling_type").is_some());
    assert!(a.get("qwen3.pooling_type") == b.get("qwen3.pooling_type"));
}

#[test]
fn granite_moe_fused_gate_up_projections_are_rejoined() {
    let c = moe_cycle(
        "granitemoe_shared",
        "GraniteMoeSharedForCausalLM",
        &[
            MOE_COMMON,
            &[
                "num_key_value_heads",
                "num_local_experts",
                "num_experts_per_tok",
                "intermediate_size",
                "shared_intermediate_size",
                "attention_multiplier",
                "embedding_multiplier",
                "residual_multiplier",
                "logits_scaling",
            ],
        ]
        .concat(),
    );
    assert_eq!(c["model_type"], "granitemoeshared");
}

/// ModernBERT: fused Wqkv and Wi, no attn_norm on layer 0 (an Identity in transformers); the
/// config comes back with the global/local layer pattern, both rope bases, `norm_eps` and the
/// classifier pooling, and converts to the same GGUF tensors.
#[test]
fn modern_bert_comes_back_with_its_layer_pattern_and_rope_bases() {
    let (h, f) = (64u64, 32u64);
    let mut t = vec![
        (
            "embeddings.tok_embeddings.weight".to_string(),
            vec![49152, h],
        ),
        ("embeddings.norm.weight".into(), vec![h]),
        ("final_norm.weight".into(), vec![h]),
    ];
    for b in 0..3 {
        let p = format!("layers.{b}");
        if b > 0 {
            t.push((format!("{p}.attn_norm.weight"), vec![h]));
        }
        t.push((format!("{p}.attn.Wqkv.weight"), vec![3 * h, h]));
        t.push((format!("{p}.attn.Wo.weight"), vec![h, h]));
        t.push((format!("{p}.mlp_norm.weight"), vec![h]));
        t.push((format!("{p}.mlp.Wi.weight"), vec![2 * f, h]));
        t.push((format!("{p}.mlp.Wo.weight"), vec![h, f]));
    }
    let config = cycle(
        json!({"architectures": ["ModernBertModel"], "model_type": "modernbert", "hidden_size": h, "intermediate_size": f,
               "num_attention_heads": 2, "num_hidden_layers": 3, "max_position_embeddings": 256, "norm_eps": 1e-5,
               "global_attn_every_n_layers": 2, "local_attention": 64, "vocab_size": 49152, "hidden_activation": "gelu",
               "classifier_pooling": "mean", "norm_bias": false, "attention_bias": false, "mlp_bias": false,
               "rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 160000.0},
                                   "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0}}}),
        Vocab::Bpe,
        &as_refs(&t),
        "ModernBertModel",
    );
    assert_eq!(config["global_attn_every_n_layers"], 2);
    assert_eq!(config["local_attention"], 64);
    assert_eq!(
        config["layer_types"],
        json!(["full_attention", "sliding_attention", "full_attention"])
    );
    assert_eq!(
        config["rope_parameters"]["full_attention"]["rope_theta"],
        160000.0
    );
    assert_eq!(
        config["rope_parameters"]["sliding_attention"]["rope_theta"],
        10000.0
    );
    assert_eq!(config["norm_eps"], 1e-5);
    assert_eq!(config["classifier_pooling"], "mean");
    assert_eq!(config["hidden_activation"], "gelu");
    assert_eq!(config["norm_bias"], false);
    assert!(config.get("rms_norm_eps").is_none() && config.get("sliding_window").is_none());
}

/// EmbeddingGemma (the arch-tables case the converter's reference was made from): bidirectional
/// Gemma 3 text without "model.", the window of config.json, llama.cpp's layer pattern (every
/// sixth layer global) and query scaling (1/sqrt(head_dim)).
#[test]
fn embedding_gemma_comes_back_bidirectional_with_its_layer_types() {
    let case = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/arch-tables/embeddinggemma");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(case.join("config.json")).unwrap()).unwrap();
    let tensors: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(case.join("hf_tensors.json")).unwrap())
            .unwrap();
    let config = cycle(
        config,
        Vocab::SentencePiece,
        &as_refs(&tensors),
        "Gemma3TextModel",
    );
    assert_eq!(config["use_bidirectional_attention"], true);
    assert_eq!(config["sliding_window"], 64);
    assert_eq!(config["query_pre_attn_scalar"], 4);
    assert_eq!(config["head_dim"], 4);
    assert_eq!(
        config["layer_types"],
        json!(["sliding_attention", "sliding_attention"])
    );
    assert_eq!(
        config["rope_parameters"]["full_attention"]["rope_theta"],
        1000000.0
    );
    assert_eq!(
        config["rope_parameters"]["sliding_attention"]["rope_theta"],
        10000.0
    );
    assert_eq!(config["hidden_activation"], "gelu_pytorch_tanh");
    assert!(config.get("is_causal").is_none());
}

/// GLM-4 with M-RoPE sections (the arch-tables case): the converter reordered Q/K to NeoX order
/// over each head's rotary half; the config must bring back the sections, the partial rotary
/// factor and head_dim (Glm4Config defaults them to 0.5 and 128) for the reorder to be undone.
#[test]
fn glm4_mrope_sections_and_partial_rotary_factor_come_back() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/arch-tables");
    for (case, sections) in [("glm4", None), ("glm4_mrope", Some(json!([1, 1, 0])))] {
        let dir = fx.join(case);
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap())
                .unwrap();
        let tensors: Vec<(String, Vec<u64>)> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("hf_tensors.json")).unwrap())
                .unwrap();
        let head_dim = config["head_dim"].clone();
        let config = cycle(config, Vocab::BpeGlm, &as_refs(&tensors), "Glm4ForCausalLM");
        let rp = &config["rope_parameters"];
        assert_eq!(rp["partial_rotary_factor"], 0.5, "{case}");
        assert_eq!(config["partial_rotary_factor"], 0.5, "{case}");
        assert_eq!(rp["rope_theta"], 10000.0, "{case}");
        assert_eq!(config["head_dim"], head_dim, "{case}");
        assert_eq!(rp.get("mrope_section"), sections.as_ref(), "{case}");
    }
}

/// The arch-tables case `case`'s config and tensor list, exported through [`cycle`].
fn arch_tables_cycle(case: &str, vocab: Vocab, hf_class: &str) -> serde_json::Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/arch-tables")
        .join(case);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let tensors: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("hf_tensors.json")).unwrap())
            .unwrap();
    cycle(config, vocab, &as_refs(&tensors), hf_class)
}

/// SmolLM3: the GGUF does not record which layers skip rope; the export writes llama.cpp's fixed
/// pattern (every 4th layer, none of the fixture's 2), which is what the fixture's config has.
#[test]
fn smollm3_gets_llama_cpps_no_rope_pattern() {
    let c = arch_tables_cycle("smollm3", Vocab::Bpe, "SmolLM3ForCausalLM");
    assert_eq!(c["no_rope_layers"], json!([1, 1]));
    assert_eq!(c["no_rope_layer_interval"], 4);
    assert_eq!(c["use_sliding_window"], false);
    assert_eq!(c["rope_theta"], 2000000.0);
}

/// Hunyuan with NTK-alpha ("dynamic") rope: the converter folded alpha into the base
/// (10000 * 1000^(4/2) = 1e10 for head_dim 4) and fixed the context at 256k; the export writes
/// plain rope with that base, Q/K norms under Hunyuan's names, and no rope_scaling.
#[test]
fn hunyuan_ntk_alpha_comes_back_as_its_scaled_base() {
    let c = arch_tables_cycle("hunyuan_dense", Vocab::Bpe, "HunYuanDenseV1ForCausalLM");
    assert_eq!(c["model_type"], "hunyuan_v1_dense");
    assert_eq!(c["rope_theta"], 1e10);
    assert!(c.get("rope_scaling").is_none(), "{c}");
    assert_eq!(c["max_position_embeddings"], 262144);
    assert_eq!(c["head_dim"], 4);
}

/// Llama 4 with `sliding_window` 0 (no chunked attention): llama.cpp attends fully on every
/// layer and skips rope on the last one only, without attention temperature tuning; the export
/// says so in config.json and warns.
#[test]
fn llama4_without_chunked_attention_skips_rope_on_the_last_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let (gguf, _, original) = moe_gguf("llama4", tmp.path());
    let full = tmp.path().join("full.gguf");
    crate::edited_gguf(&gguf, &full, |w| {
        w.set_kv(
            "llama4.attention.sliding_window",
            ckpt_gguf::GgufValue::U32(0),
        )
    });
    let out = tmp.path().join("export");
    let report = gguf_to_hf(&full, &out, &ExportOptions::default()).unwrap();
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("sliding_window 0")),
        "{:?}",
        report.warnings
    );
    let c: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("config.json")).unwrap()).unwrap();
    let n = original["num_hidden_layers"].as_u64().unwrap() as usize;
    let mut rope = vec![1; n];
    rope[n - 1] = 0;
    assert_eq!(c["no_rope_layers"], json!(rope));
    assert_eq!(c["layer_types"], json!(vec!["full_attention"; n]));
    assert_eq!(c["attention_chunk_size"], serde_json::Value::Null);
    assert_eq!(c["attn_temperature_tuning"], false);
}

/// A forged block count (it sizes the per-layer xIELU tensors, taken from a single value for
/// every layer, and the config's per-layer lists) is refused by key before anything is
/// allocated or written.
#[test]
fn a_forged_block_count_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (gguf, _, _) = moe_gguf("apertus", tmp.path());
    let bad = tmp.path().join("bad.gguf");
    crate::edited_gguf(&gguf, &bad, |w| {
        w.set_kv("apertus.block_count", ckpt_gguf::GgufValue::U32(u32::MAX));
        w.set_kv("xielu.beta", ckpt_gguf::GgufValue::F32(0.5));
    });
    let out = tmp.path().join("export");
    let err = gguf_to_hf(&bad, &out, &ExportOptions::default())
        .expect_err("exported")
        .to_string();
    assert!(err.contains("apertus.block_count is 4294967295"), "{err}");
    assert!(!out.exists(), "nothing may be written");
    let Err(err) = ckpt_export::hf_view(&bad) else {
        panic!("viewed")
    };
    let err = err.to_string();
    assert!(err.contains("apertus.block_count"), "{err}");
}
