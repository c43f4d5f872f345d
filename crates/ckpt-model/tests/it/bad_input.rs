//! Refusals and fallbacks: every bad input names what is wrong; nothing is dropped silently.

use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, DType, Format, GgmlType, Tensor};
use ckpt_model::{convert_hf_to_gguf, supported_architectures, HfToGgufOptions, OutType};
use serde_json::json;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn f32_tensor(name: &str, shape: &[u64]) -> Tensor {
    let n: u64 = shape.iter().product();
    Tensor::computed(name, DType::F32, shape.to_vec(), move || {
        Ok((0..n)
            .flat_map(|i| ((i % 7) as f32 * 0.01).to_le_bytes())
            .collect())
    })
}

/// A one-layer Llama (hidden 64, 2 heads, 1 KV head) using tiny-llama-spm's 512-piece tokenizer.
fn tiny_llama(dir: &Path, config_patch: serde_json::Value) -> Checkpoint {
    let mut config = json!({
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64, "intermediate_size": 32, "num_attention_heads": 2, "num_key_value_heads": 1,
        "num_hidden_layers": 1, "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "vocab_size": 512,
        "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2
    });
    for (k, v) in config_patch.as_object().unwrap() {
        if v.is_null() {
            config.as_object_mut().unwrap().remove(k);
        } else {
            config[k] = v.clone();
        }
    }
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string_pretty(&config).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("tiny-llama-spm/tokenizer.model"),
        dir.join("tokenizer.model"),
    )
    .unwrap();
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    for (name, shape) in [
        ("model.embed_tokens.weight", vec![512, 64]),
        ("model.norm.weight", vec![64]),
        ("model.layers.0.input_layernorm.weight", vec![64]),
        ("model.layers.0.post_attention_layernorm.weight", vec![64]),
        ("model.layers.0.self_attn.q_proj.weight", vec![64, 64]),
        ("model.layers.0.self_attn.k_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.v_proj.weight", vec![32, 64]),
        ("model.layers.0.self_attn.o_proj.weight", vec![64, 64]),
        ("model.layers.0.mlp.gate_proj.weight", vec![32, 64]),
        ("model.layers.0.mlp.up_proj.weight", vec![32, 64]),
        ("model.layers.0.mlp.down_proj.weight", vec![64, 32]),
    ] {
        ck.tensors.push(f32_tensor(name, &shape));
    }
    ck
}

fn run(
    dir: &Path,
    ck: &Checkpoint,
    outtype: OutType,
) -> ckpt_core::Result<ckpt_model::ConvertReport> {
    let opts = HfToGgufOptions {
        outtype,
        overwrite: true,
        ..Default::default()
    };
    convert_hf_to_gguf(dir, ck, &dir.join("out.gguf"), &opts)
}

#[test]
fn a_well_formed_tiny_model_converts() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_llama(dir.path(), json!({}));
    let report = run(dir.path(), &ck, OutType::Q8_0).unwrap();
    assert_eq!(report.tensor_count, 11);
    assert!(report.fallbacks.is_empty(), "{:?}", report.fallbacks);
    let file = ckpt_gguf::GgufFile::open(&dir.path().join("out.gguf")).unwrap();
    let q = file
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!(q.ggml_type, GgmlType::Q8_0);
}

#[test]
fn unsupported_architecture_lists_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_llama(dir.path(), json!({"architectures": ["FalconForCausalLM"]}));
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(msg.contains("FalconForCausalLM"), "{msg}");
    for a in supported_architectures() {
        assert!(msg.contains(a), "{msg}");
    }
}

#[test]
fn missing_layer_count_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_llama(dir.path(), json!({"num_hidden_layers": null}));
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(
        msg.contains("num_hidden_layers") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn a_tensor_without_a_gguf_name_is_an_error_not_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = tiny_llama(dir.path(), json!({}));
    ck.tensors
        .push(f32_tensor("model.layers.0.mlp.router_scale", &[64]));
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(msg.contains("model.layers.0.mlp.router_scale"), "{msg}");
    // a layer index beyond num_hidden_layers has no name either
    let mut ck = tiny_llama(dir.path(), json!({}));
    ck.tensors
        .push(f32_tensor("model.layers.5.input_layernorm.weight", &[64]));
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(
        msg.contains("model.layers.5.input_layernorm.weight"),
        "{msg}"
    );
}

#[test]
fn heads_that_do_not_divide_the_rows_are_refused_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_llama(
        dir.path(),
        json!({"num_attention_heads": 3, "num_key_value_heads": 3, "head_dim": 21}),
    );
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(msg.contains("k_proj") && msg.contains("3 heads"), "{msg}");
    assert!(!dir.path().join("out.gguf").exists());
}

#[test]
fn q8_0_rows_that_are_not_whole_blocks_fall_back_to_f16() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = tiny_llama(dir.path(), json!({"intermediate_size": 48}));
    for t in ck.tensors.iter_mut() {
        if t.name.contains("gate_proj") || t.name.contains("up_proj") {
            *t = f32_tensor(&t.name, &[48, 64]);
        }
        if t.name.contains("down_proj") {
            *t = f32_tensor(&t.name, &[64, 48]);
        }
    }
    let report = run(dir.path(), &ck, OutType::Q8_0).unwrap();
    assert_eq!(report.fallbacks.len(), 1, "{:?}", report.fallbacks);
    assert!(
        report.fallbacks[0].contains("blk.0.ffn_down.weight") && report.fallbacks[0].contains("48")
    );
    let file = ckpt_gguf::GgufFile::open(&dir.path().join("out.gguf")).unwrap();
    let down = file
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.ffn_down.weight")
        .unwrap();
    assert_eq!(down.ggml_type, GgmlType::F16);
}

#[test]
fn unsupported_source_dtype_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut ck = tiny_llama(dir.path(), json!({}));
    let t = &mut ck.tensors[1];
    *t = Tensor::computed(t.name.clone(), DType::I32, vec![64], || Ok(vec![0; 256]));
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(
        msg.contains("model.norm.weight") && msg.contains("I32"),
        "{msg}"
    );
}

fn smol_folder(
    dir: &Path,
    config_patch: serde_json::Value,
    tokenizer_patch: Option<serde_json::Value>,
) -> Checkpoint {
    let src = fixtures().join("tiny-smol-bpe");
    for f in [
        "tokenizer_config.json",
        "generation_config.json",
        "chat_template.jinja",
        "model.safetensors",
    ] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    for (k, v) in config_patch.as_object().unwrap() {
        config[k] = v.clone();
    }
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let mut tok: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("tokenizer.json")).unwrap())
            .unwrap();
    if let Some(p) = tokenizer_patch {
        for (k, v) in p.as_object().unwrap() {
            tok[k] = v.clone();
        }
    }
    std::fs::write(dir.join("tokenizer.json"), tok.to_string()).unwrap();
    ckpt_safetensors::read(&dir.join("model.safetensors")).unwrap()
}

#[test]
fn tokenizer_larger_than_vocab_size_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ck = smol_folder(dir.path(), json!({"vocab_size": 1000}), None);
    let msg = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(
        msg.contains("vocab_size is 1000") && msg.contains("49151"),
        "{msg}"
    );
}

#[test]
fn unknown_pre_tokenizer_names_its_hash_and_the_override() {
    let dir = tempfile::tempdir().unwrap();
    let ck = smol_folder(
        dir.path(),
        json!({}),
        Some(json!({"pre_tokenizer": {"type": "Whitespace"}})),
    );
    let err = run(dir.path(), &ck, OutType::F16).unwrap_err().to_string();
    assert!(
        err.contains("not recognized") && err.contains("--pre-tokenizer"),
        "{err}"
    );
    let hash = err
        .split("hash ")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap();
    assert_eq!(hash.len(), 64, "{err}");
    let opts = HfToGgufOptions {
        outtype: OutType::F16,
        overwrite: true,
        pre_tokenizer: Some("smollm".into()),
        ..Default::default()
    };
    convert_hf_to_gguf(dir.path(), &ck, &dir.path().join("out.gguf"), &opts).unwrap();
    let file = ckpt_gguf::GgufFile::open(&dir.path().join("out.gguf")).unwrap();
    let pre = file
        .kvs
        .iter()
        .find(|(k, _)| k == "tokenizer.ggml.pre")
        .unwrap();
    assert_eq!(pre.1.as_str(), Some("smollm"));
}

#[test]
fn progress_reaches_the_total() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_llama(dir.path(), json!({}));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let opts = HfToGgufOptions {
        outtype: OutType::F16,
        overwrite: true,
        progress: Some(std::sync::Arc::new(
            move |ev: ckpt_core::ProgressEvent<'_>| match ev {
                ckpt_core::ProgressEvent::Start { total, .. } => {
                    sink.lock().unwrap().push((0, total))
                }
                ckpt_core::ProgressEvent::Advance { bytes } => {
                    let mut s = sink.lock().unwrap();
                    let (done, total) = *s.last().unwrap();
                    s.push((done + bytes, total));
                }
                _ => {}
            },
        )),
        ..Default::default()
    };
    convert_hf_to_gguf(dir.path(), &ck, &dir.path().join("out.gguf"), &opts).unwrap();
    let seen = seen.lock().unwrap();
    let (done, total) = *seen.last().unwrap();
    assert_eq!(done, total);
    assert!(total > 0);
}

#[test]
fn existing_output_needs_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let ck = tiny_llama(dir.path(), json!({}));
    std::fs::write(dir.path().join("out.gguf"), b"keep").unwrap();
    let opts = HfToGgufOptions {
        outtype: OutType::F16,
        ..Default::default()
    };
    assert!(convert_hf_to_gguf(dir.path(), &ck, &dir.path().join("out.gguf"), &opts).is_err());
    assert_eq!(std::fs::read(dir.path().join("out.gguf")).unwrap(), b"keep");
}
