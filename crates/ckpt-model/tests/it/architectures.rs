//! The non-Llama architectures on small synthetic checkpoints: names, transforms, types and
//! key lists as the converter's model classes produce them.

use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, DType, Format, GgmlType, Tensor};
use ckpt_gguf::{GgufFile, GgufValue};
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use ckpt_testhub::fixtures::wordpiece_tokenizer_json;
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

/// Element i of every synthetic tensor is (i % 13) * 0.125 (exact in f16/bf16).
fn value(i: u64) -> f32 {
    (i % 13) as f32 * 0.125
}

fn tensor(name: &str, shape: &[u64]) -> Tensor {
    let n: u64 = shape.iter().product();
    Tensor::computed(name, DType::F32, shape.to_vec(), move || {
        Ok((0..n).flat_map(|i| value(i).to_le_bytes()).collect())
    })
}

fn checkpoint(tensors: &[(&str, Vec<u64>)]) -> Checkpoint {
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = tensors.iter().map(|(n, s)| tensor(n, s)).collect();
    ck
}

fn convert(dir: &Path, ck: &Checkpoint, outtype: OutType) -> GgufFile {
    let out = dir.join("out.gguf");
    convert_hf_to_gguf(
        dir,
        ck,
        &out,
        &HfToGgufOptions {
            outtype,
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap();
    GgufFile::open(&out).unwrap()
}

fn keys(f: &GgufFile) -> Vec<&str> {
    f.kvs.iter().map(|(k, _)| k.as_str()).collect()
}

fn kv<'a>(f: &'a GgufFile, key: &str) -> &'a GgufValue {
    &f.kvs
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no {key}"))
        .1
}

fn f32s(f: &GgufFile, name: &str) -> Vec<f32> {
    let t = f
        .tensors()
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tensor {name}"));
    assert_eq!(t.dtype, DType::F32);
    t.bytes()
        .unwrap()
        .chunks(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn write_config(dir: &Path, config: serde_json::Value) {
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
}

#[test]
fn gemma2_adds_one_to_norms_drops_lm_head_and_writes_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        json!({
            "architectures": ["Gemma2ForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 1, "max_position_embeddings": 128,
            "rms_norm_eps": 1e-6, "vocab_size": 512, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
            "sliding_window": 64, "bos_token_id": 1, "eos_token_id": 2
        }),
    );
    std::fs::copy(
        fixtures().join("tiny-llama-spm/tokenizer.model"),
        dir.path().join("tokenizer.model"),
    )
    .unwrap();
    let ck = checkpoint(&[
        ("lm_head.weight", vec![512, 64]),
        ("model.embed_tokens.weight", vec![512, 64]),
        ("model.norm.weight", vec![64]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
        ("model.layers.0.post_attention_layernorm.weight", vec![64]),
        ("model.layers.0.pre_feedforward_layernorm.weight", vec![64]),
        ("model.layers.0.post_feedforward_layernorm.weight", vec![64]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
        ("model.layers.0.self_attn.k_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.v_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.gate_proj.weight", vec![32, 64]),
        ("model.layers.0.mlp.up_proj.weight", vec![32, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 32]),
    ]);
    let f = convert(dir.path(), &ck, OutType::F16);
    let names: Vec<&str> = f.tensor_infos.iter().map(|t| t.name.as_str()).collect();
    assert!(!names.contains(&"output.weight"), "{names:?}");
    for n in [
        "blk.0.post_attention_norm.weight",
        "blk.0.ffn_norm.weight",
        "blk.0.post_ffw_norm.weight",
        "output_norm.weight",
    ] {
        let v = f32s(&f, n);
        assert!(
            v.iter()
                .enumerate()
                .all(|(i, x)| *x == value(i as u64) + 1.0),
            "{n}"
        );
    }
    let k = keys(&f);
    let start = k
        .iter()
        .position(|k| *k == "gemma2.context_length")
        .unwrap();
    assert_eq!(
        &k[start..start + 14],
        &[
            "gemma2.context_length",
            "gemma2.embedding_length",
            "gemma2.block_count",
            "gemma2.feed_forward_length",
            "gemma2.attention.head_count",
            "gemma2.attention.head_count_kv",
            "gemma2.attention.layer_norm_rms_epsilon",
            "gemma2.attention.key_length",
            "gemma2.attention.value_length",
            "general.file_type",
            "gemma2.attn_logit_softcapping",
            "gemma2.final_logit_softcapping",
            "gemma2.attention.sliding_window",
            "general.quantization_version",
        ]
    );
    assert_eq!(*k.last().unwrap(), "tokenizer.ggml.add_space_prefix");
    assert_eq!(
        kv(&f, "tokenizer.ggml.add_space_prefix"),
        &GgufValue::Bool(false)
    );
}

#[test]
fn gpt2_transposes_conv1d_weights_and_keeps_position_embeddings_f32() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        json!({
            "architectures": ["GPT2LMHeadModel"], "n_embd": 32, "n_head": 2, "n_layer": 1, "n_ctx": 64,
            "n_positions": 64, "layer_norm_epsilon": 1e-5, "vocab_size": 49152
        }),
    );
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixtures().join("tiny-smol-bpe").join(f), dir.path().join(f)).unwrap();
    }
    let ck = checkpoint(&[
        ("wte.weight", vec![49152, 32]),
        ("wpe.weight", vec![64, 32]),
        ("ln_f.weight", vec![32]),
        ("ln_f.bias", vec![32]),
        ("h.0.ln_1.weight", vec![32]),
        ("h.0.ln_1.bias", vec![32]),
        ("h.0.attn.bias", vec![1, 1, 64, 64]),
        ("h.0.attn.c_attn.weight", vec![32, 96]),
        ("h.0.attn.c_attn.bias", vec![96]),
        ("h.0.attn.c_proj.weight", vec![32, 32]),
        ("h.0.attn.c_proj.bias", vec![32]),
        ("h.0.ln_2.weight", vec![32]),
        ("h.0.ln_2.bias", vec![32]),
        ("h.0.mlp.c_fc.weight", vec![32, 128]),
        ("h.0.mlp.c_fc.bias", vec![128]),
        ("h.0.mlp.c_proj.weight", vec![128, 32]),
        ("h.0.mlp.c_proj.bias", vec![32]),
    ]);
    let f = convert(dir.path(), &ck, OutType::F32);
    let qkv = f
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.attn_qkv.weight")
        .unwrap();
    assert_eq!(qkv.ne, vec![32, 96]);
    let data = f32s(&f, "blk.0.attn_qkv.weight");
    // out[r][c] = in[c][r] with in of shape [32, 96]
    for (r, c) in [(0usize, 0usize), (5, 7), (95, 31)] {
        assert_eq!(data[r * 32 + c], value((c * 96 + r) as u64));
    }
    let f16 = convert(dir.path(), &ck, OutType::F16);
    let pos = f16
        .tensor_infos
        .iter()
        .find(|t| t.name == "position_embd.weight")
        .unwrap();
    assert_eq!(pos.ggml_type, GgmlType::F32);
    let up = f16
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.ffn_up.weight")
        .unwrap();
    assert_eq!(
        (up.ggml_type, up.ne.clone()),
        (GgmlType::F16, vec![32, 128])
    );
    assert_eq!(kv(&f16, "gpt2.feed_forward_length"), &GgufValue::U32(128));
    assert_eq!(kv(&f16, "tokenizer.ggml.pre"), &GgufValue::string("smollm"));
}

#[test]
fn phi3_longrope_factors_come_first_and_attn_factor_follows_the_architecture() {
    let dir = tempfile::tempdir().unwrap();
    let long: Vec<f64> = (0..16).map(|i| 1.0 + i as f64 * 0.5).collect();
    let short: Vec<f64> = (0..16).map(|i| 1.0 + i as f64 * 0.25).collect();
    write_config(
        dir.path(),
        json!({
            "architectures": ["Phi3ForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2,
            "num_key_value_heads": 2, "num_hidden_layers": 1, "max_position_embeddings": 256,
            "original_max_position_embeddings": 64, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "vocab_size": 512,
            "rope_scaling": {"type": "longrope", "long_factor": long, "short_factor": short}, "bos_token_id": 1, "eos_token_id": 2
        }),
    );
    std::fs::copy(
        fixtures().join("tiny-llama-spm/tokenizer.model"),
        dir.path().join("tokenizer.model"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"tokenizer_class": "LlamaTokenizer"}"#,
    )
    .unwrap();
    let ck = checkpoint(&[
        ("model.embed_tokens.weight", vec![512, 64]),
        ("lm_head.weight", vec![512, 64]),
        ("model.norm.weight", vec![64]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
        ("model.layers.0.post_attention_layernorm.weight", vec![64]),
        ("model.layers.0.self_attn.qkv_proj.weight", vec![192, 64]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.gate_up_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 32]),
    ]);
    let f = convert(dir.path(), &ck, OutType::Q8_0);
    assert_eq!(
        &keys(&f)[..3],
        &[
            "general.architecture",
            "phi3.rope.scaling.attn_factor",
            "general.type"
        ]
    );
    let expected = (1.0f64 + 4f64.ln() / 64f64.ln()).sqrt() as f32;
    assert_eq!(
        kv(&f, "phi3.rope.scaling.attn_factor"),
        &GgufValue::F32(expected)
    );
    assert_eq!(f.tensor_infos[0].name, "rope_factors_long.weight");
    assert_eq!(f.tensor_infos[1].name, "rope_factors_short.weight");
    assert_eq!(
        f32s(&f, "rope_factors_long.weight"),
        long.iter().map(|v| *v as f32).collect::<Vec<_>>()
    );
    assert_eq!(kv(&f, "phi3.rope.dimension_count"), &GgufValue::U32(32));
    assert_eq!(kv(&f, "phi3.attention.sliding_window"), &GgufValue::U32(0));
    let qkv = f
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.attn_qkv.weight")
        .unwrap();
    assert_eq!(qkv.ggml_type, GgmlType::Q8_0);
}

#[test]
fn qwen3_maps_qk_norms_and_does_not_permute() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        json!({
            "architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2,
            "num_key_value_heads": 1, "head_dim": 32, "num_hidden_layers": 1, "max_position_embeddings": 128,
            "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "vocab_size": 512, "tie_word_embeddings": true
        }),
    );
    std::fs::copy(
        fixtures().join("tiny-llama-spm/tokenizer.model"),
        dir.path().join("tokenizer.model"),
    )
    .unwrap();
    let ck = checkpoint(&[
        ("model.embed_tokens.weight", vec![512, 64]),
        ("model.norm.weight", vec![64]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
        ("model.layers.0.post_attention_layernorm.weight", vec![64]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
        ("model.layers.0.self_attn.q_norm.weight", vec![32]),
        ("model.layers.0.self_attn.k_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.k_norm.weight", vec![32]),
        ("model.layers.0.self_attn.v_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.gate_proj.weight", vec![32, 64]),
        ("model.layers.0.mlp.up_proj.weight", vec![32, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 32]),
    ]);
    let f = convert(dir.path(), &ck, OutType::F32);
    let q = f32s(&f, "blk.0.attn_q.weight");
    assert!(q.iter().enumerate().all(|(i, x)| *x == value(i as u64)));
    f32s(&f, "blk.0.attn_q_norm.weight");
    assert_eq!(kv(&f, "general.architecture"), &GgufValue::string("qwen3"));
    assert_eq!(kv(&f, "qwen3.rope.freq_base"), &GgufValue::F32(1e6));
    assert_eq!(kv(&f, "qwen3.attention.key_length"), &GgufValue::U32(32));
}

#[test]
fn bert_stores_phantom_space_tokens_and_drops_heads() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        json!({
            "architectures": ["BertModel"], "hidden_size": 32, "intermediate_size": 64, "num_attention_heads": 2,
            "num_hidden_layers": 1, "max_position_embeddings": 16, "layer_norm_eps": 1e-12, "vocab_size": 12,
            "type_vocab_size": 2, "pad_token_id": 0
        }),
    );
    std::fs::write(
        dir.path().join("tokenizer.json"),
        wordpiece_tokenizer_json().to_string(),
    )
    .unwrap();
    std::fs::write(dir.path().join("tokenizer_config.json"), json!({"cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]", "pad_token": "[PAD]", "mask_token": "[MASK]"}).to_string()).unwrap();
    let ck = checkpoint(&[
        ("bert.embeddings.word_embeddings.weight", vec![12, 32]),
        ("bert.embeddings.position_embeddings.weight", vec![16, 32]),
        ("bert.embeddings.token_type_embeddings.weight", vec![2, 32]),
        ("bert.embeddings.LayerNorm.gamma", vec![32]),
        ("bert.embeddings.LayerNorm.beta", vec![32]),
        ("bert.embeddings.position_ids", vec![1, 16]),
        (
            "bert.encoder.layer.0.attention.self.query.weight",
            vec![32, 32],
        ),
        ("bert.encoder.layer.0.attention.self.query.bias", vec![32]),
        (
            "bert.encoder.layer.0.attention.self.key.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.self.value.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.output.dense.weight",
            vec![32, 32],
        ),
        (
            "bert.encoder.layer.0.attention.output.LayerNorm.weight",
            vec![32],
        ),
        (
            "bert.encoder.layer.0.intermediate.dense.weight",
            vec![64, 32],
        ),
        ("bert.encoder.layer.0.output.dense.weight", vec![32, 64]),
        ("bert.encoder.layer.0.output.LayerNorm.weight", vec![32]),
        ("bert.pooler.dense.weight", vec![32, 32]),
        ("cls.predictions.bias", vec![12]),
    ]);
    // The fingerprint of this hand-made tokenizer is unknown to llama.cpp: name it explicitly.
    let out = dir.path().join("out.gguf");
    let opts = HfToGgufOptions {
        outtype: OutType::F16,
        overwrite: true,
        pre_tokenizer: Some("bert-bge".into()),
        ..Default::default()
    };
    let report = convert_hf_to_gguf(dir.path(), &ck, &out, &opts).unwrap();
    assert!(
        report
            .dropped
            .iter()
            .any(|d| d == "bert.pooler.dense.weight"),
        "{:?}",
        report.dropped
    );
    let f = GgufFile::open(&out).unwrap();
    let names: Vec<&str> = f.tensor_infos.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"token_embd_norm.bias")
            && names.contains(&"blk.0.layer_output_norm.weight"),
        "{names:?}"
    );
    assert_eq!(names.len(), 14, "{names:?}");
    // order follows the original (pre-rename) names: LayerNorm.beta sorts before LayerNorm.gamma
    assert_eq!(
        &names[..2],
        &["token_embd_norm.bias", "token_embd_norm.weight"]
    );
    let types = f
        .tensor_infos
        .iter()
        .find(|t| t.name == "token_types.weight")
        .unwrap();
    assert_eq!(types.ggml_type, GgmlType::F32);
    let toks = kv(&f, "tokenizer.ggml.tokens")
        .as_array()
        .unwrap()
        .as_strings()
        .unwrap()
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>();
    assert_eq!(toks[2], "[CLS]");
    assert_eq!(toks[5], "\u{2581}hello");
    assert_eq!(toks[7], "lo");
    assert_eq!(kv(&f, "bert.attention.causal"), &GgufValue::Bool(false));
    assert_eq!(
        kv(&f, "tokenizer.ggml.token_type_count"),
        &GgufValue::U32(2)
    );
    assert_eq!(kv(&f, "tokenizer.ggml.model"), &GgufValue::string("bert"));
    assert_eq!(
        kv(&f, "tokenizer.ggml.seperator_token_id"),
        &GgufValue::U32(3)
    );
    assert_eq!(kv(&f, "tokenizer.ggml.bos_token_id"), &GgufValue::U32(2));
    assert_eq!(
        kv(&f, "tokenizer.ggml.normalizer.lowercase"),
        &GgufValue::Bool(true)
    );
}
