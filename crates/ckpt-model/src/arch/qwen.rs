//! `Qwen2ForCausalLM` (GGUF arch "qwen2") and `Qwen3ForCausalLM` ("qwen3"): Llama tensor
//! names without the Q/K permutation, q/k/v biases (Qwen2) or q/k norms (Qwen3).

use ckpt_core::{Error, Result};
use serde_json::{json, Value};

use super::llama::LLAMA_NAMES;
use super::{
    map_name, unmapped, write_base_params, Architecture, NameTable, ParamContext, TensorAction,
    TensorRef, VocabContext,
};
use crate::hparams::{read_json_object, Hparams};
use crate::vocab;

const QK_NORM_NAMES: NameTable = &[
    (
        "model.layers.{bid}.self_attn.q_norm",
        "blk.{bid}.attn_q_norm",
    ),
    (
        "model.layers.{bid}.self_attn.k_norm",
        "blk.{bid}.attn_k_norm",
    ),
];

pub struct Qwen2;
pub struct Qwen3;

fn qwen_tensor(
    hf_name: &str,
    bid: Option<u32>,
    block_count: u32,
    arch: &str,
) -> Result<TensorAction> {
    let name = map_name(LLAMA_NAMES, hf_name, bid, block_count)
        .or_else(|| map_name(QK_NORM_NAMES, hf_name, bid, block_count))
        .ok_or_else(|| unmapped(hf_name, arch))?;
    Ok(TensorAction::Keep {
        name,
        transforms: Vec::new(),
    })
}

fn qwen_defaults(hp: &mut Hparams) {
    if let Some(heads) = hp.get("num_attention_heads").cloned() {
        hp.default("num_key_value_heads", heads);
    }
    hp.default("rms_norm_eps", json!(1e-6));
    hp.default("max_position_embeddings", json!(32768));
    if hp.get("rope_parameters").is_none()
        && hp.get("rope_scaling").is_none()
        && hp.get("rope_theta").is_none()
    {
        hp.default("rope_theta", json!(10000.0));
    }
}

/// `_try_set_pooling_type`: sentence-transformers folders declare their pooling in modules.json.
pub(crate) fn write_pooling_type(
    ctx: &mut ParamContext,
    dir: &std::path::Path,
    arch: &str,
) -> Result<()> {
    let modules_path = dir.join("modules.json");
    if !modules_path.is_file() {
        return Ok(());
    }
    let text = std::fs::read_to_string(&modules_path).map_err(|e| Error::io(&modules_path, e))?;
    let modules: Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(&modules_path, format!("invalid JSON: {e}")))?;
    let pooling_dir = modules.as_array().into_iter().flatten().find_map(|m| {
        let ty = m.get("type")?.as_str()?;
        ty.ends_with("Pooling")
            .then(|| m.get("path").and_then(Value::as_str).map(str::to_string))?
    });
    let Some(pooling_dir) = pooling_dir else {
        return Ok(());
    };
    let cfg = read_json_object(&dir.join(&pooling_dir).join("config.json"))?;
    let flag = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
    let pooling = if flag("pooling_mode_mean_tokens") {
        1
    } else if flag("pooling_mode_cls_token") {
        2
    } else if flag("pooling_mode_lasttoken") {
        3
    } else {
        match cfg.get("pooling_mode").and_then(Value::as_str) {
            Some("mean") => 1,
            Some("cls") => 2,
            Some("lasttoken") => 3,
            _ => {
                return Err(Error::Unsupported(format!(
                "{pooling_dir}/config.json: only mean, cls and last-token pooling are supported"
            )))
            }
        }
    };
    ctx.kv.u32(&format!("{arch}.pooling_type"), pooling);
    Ok(())
}

fn qwen_vocab(ctx: &mut VocabContext) -> Result<()> {
    let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
    if ctx.dir.join("tokenizer.model").is_file() {
        vocab::write_sentencepiece(ctx.dir, vocab_size, ctx.kv, ctx.warnings)?;
    } else {
        vocab::write_gpt2(ctx.dir, vocab_size, ctx.pre_override, ctx.kv, ctx.warnings)?;
    }
    Ok(())
}

impl Architecture for Qwen2 {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Qwen2ForCausalLM"]
    }
    fn gguf_arch(&self) -> &'static str {
        "qwen2"
    }
    fn model_type(&self) -> &'static str {
        "qwen2"
    }
    fn name_tables(&self) -> &'static [NameTable] {
        &[LLAMA_NAMES, QK_NORM_NAMES]
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        qwen_defaults(hp);
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        qwen_tensor(t.name, t.bid, block_count, "qwen2")
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        write_base_params(ctx, "qwen2")?;
        let dir = ctx
            .hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        write_pooling_type(ctx, &dir, "qwen2")
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        qwen_vocab(ctx)
    }
}

impl Architecture for Qwen3 {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Qwen3ForCausalLM"]
    }
    fn gguf_arch(&self) -> &'static str {
        "qwen3"
    }
    fn model_type(&self) -> &'static str {
        "qwen3"
    }
    fn name_tables(&self) -> &'static [NameTable] {
        &[LLAMA_NAMES, QK_NORM_NAMES]
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        qwen_defaults(hp);
        hp.default("head_dim", json!(128));
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        qwen_tensor(t.name, t.bid, block_count, "qwen3")
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        let dir = ctx
            .hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        let folder = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let name_or_path = ctx
            .hp
            .get("_name_or_path")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        if folder.contains("qwen3-reranker") || name_or_path.contains("qwen3-reranker") {
            return Err(Error::Unsupported(
                "Qwen3 reranker models are not supported yet".into(),
            ));
        }
        write_base_params(ctx, "qwen3")?;
        write_pooling_type(ctx, &dir, "qwen3")
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        qwen_vocab(ctx)
    }
}
