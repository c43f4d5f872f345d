//! `Qwen2ForCausalLM` (GGUF arch "qwen2") and `Qwen3ForCausalLM` ("qwen3"): Llama tensor
//! names without the Q/K permutation, q/k/v biases (Qwen2) or q/k norms (Qwen3).

use ckpt_core::{Error, Result};
use serde_json::Value;

use super::family::{Dflt, Family, Hooks, Param, Vocab};
use super::{Kind, ParamContext, VocabContext};
use crate::hparams::read_json_object;
use crate::vocab;

const QWEN2_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
];

const QWEN3_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnQNorm,
    Kind::AttnK,
    Kind::AttnKNorm,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
];

const QWEN_DEFAULTS: &[Dflt] = &[
    Dflt::Copy("num_key_value_heads", "num_attention_heads"),
    Dflt::Num("rms_norm_eps", 1e-6),
    Dflt::Int("max_position_embeddings", 32768),
    Dflt::RopeTheta(10000.0),
];

/// `Qwen2ForCausalLM` (GGUF arch "qwen2"): Llama tensor names without the Q/K permutation,
/// q/k/v biases.
pub(crate) static QWEN2: Family = Family {
    hf_names: &["Qwen2ForCausalLM"],
    gguf_arch: "qwen2",
    model_type: "qwen2",
    tensors: QWEN2_TENSORS,
    defaults: QWEN_DEFAULTS,
    text_params: true,
    params: &[Param::Pooling],
    permute_qk: false,
    vocab: Vocab::SpmOrGpt2,
    hooks: Hooks::NONE,
};

/// `Qwen3ForCausalLM` ("qwen3"): q/k norms.
pub(crate) static QWEN3: Family = Family {
    hf_names: &["Qwen3ForCausalLM", "Qwen3Model"],
    gguf_arch: "qwen3",
    model_type: "qwen3",
    tensors: QWEN3_TENSORS,
    defaults: &[
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::Int("max_position_embeddings", 32768),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("head_dim", 128),
    ],
    text_params: true,
    params: &[Param::Pooling],
    permute_qk: false,
    vocab: Vocab::SpmOrGpt2,
    hooks: Hooks {
        params: Some(refuse_reranker),
        ..Hooks::NONE
    },
};

/// Qwen3 rerankers (found the way the converter's `_is_qwen3_reranker` finds them: README
/// heading, folder name, `_name_or_path`, class name) need the converter's classifier head extraction, which is not done.
fn refuse_reranker(ctx: &mut ParamContext) -> Result<()> {
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
    let readme = ckpt_core::hf::read_side_text(&dir.join("README.md"))
        .unwrap_or_default()
        .to_lowercase();
    let hf_arch = ctx
        .hp
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    let hints = [folder.as_str(), name_or_path.as_str(), hf_arch.as_str()];
    if readme.contains("# qwen3-reranker")
        || readme.contains("# qwen3-vl-reranker")
        || hints
            .iter()
            .any(|h| h.contains("qwen3-reranker") || h.contains("qwen3-vl-reranker"))
        || hf_arch.contains("sequenceclassification")
    {
        return Err(Error::Unsupported(
            "Qwen3 reranker models are not supported yet".into(),
        ));
    }
    Ok(())
}

/// The sentence-transformers pooling modes the converter records: (`pooling_type` value, the
/// Pooling module's config flag, its `pooling_mode` name), in the order it tests the flags.
pub const POOLING_MODES: &[(u32, &str, &str)] = &[
    (1, "pooling_mode_mean_tokens", "mean"),
    (2, "pooling_mode_cls_token", "cls"),
    (3, "pooling_mode_lasttoken", "lasttoken"),
];

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
    let text = ckpt_core::hf::read_side_text(&modules_path)?;
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
    let by_flag = POOLING_MODES
        .iter()
        .find(|(_, f, _)| flag(f))
        .map(|(id, _, _)| *id);
    let by_name = || {
        let mode = cfg.get("pooling_mode").and_then(Value::as_str)?;
        POOLING_MODES.iter().find(|p| p.2 == mode).map(|p| p.0)
    };
    let Some(pooling) = by_flag.or_else(by_name) else {
        return Err(Error::Unsupported(format!(
            "{pooling_dir}/config.json: only mean, cls and last-token pooling are supported"
        )));
    };
    ctx.kv.u32(&format!("{arch}.pooling_type"), pooling);
    Ok(())
}

pub(crate) fn qwen_vocab(ctx: &mut VocabContext) -> Result<()> {
    let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
    if ctx.dir.join("tokenizer.model").is_file() {
        vocab::write_sentencepiece(ctx.dir, vocab_size, ctx.kv, ctx.warnings)?;
    } else {
        vocab::write_gpt2(ctx.dir, vocab_size, ctx.pre_override, ctx.kv, ctx.warnings)?;
    }
    Ok(())
}
