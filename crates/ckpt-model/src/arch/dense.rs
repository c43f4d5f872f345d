//! Dense decoder families that are table entries: tensor kinds, transformers' config defaults,
//! the plain hyperparameter copies, and small hooks for their quirks.

use ckpt_core::{Error, Result};
use ckpt_gguf::GgufValue;
use serde_json::Value;

use super::family::{Dflt, Family, Hooks, Param, Vocab, LLAMA_TENSORS};
use super::llama::{LLAMA_HOOKS, LLAMA_PARAMS};
use super::{Kind, ParamContext, TensorAction, TensorRef};
use crate::hparams::Hparams;

/// `SmolLM3ForCausalLM`: llama.cpp's `LlamaModel` under the arch name "smollm3".
pub static SMOLLM3: Family = Family {
    hf_names: &["SmolLM3ForCausalLM"],
    gguf_arch: "smollm3",
    model_type: "smollm3",
    tensors: LLAMA_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 32768),
        Dflt::Int("num_key_value_heads", 4),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(2_000_000.0),
    ],
    text_params: true,
    params: LLAMA_PARAMS,
    permute_qk: true,
    vocab: Vocab::Llama,
    hooks: LLAMA_HOOKS,
};

/// `GraniteForCausalLM`: `LlamaModel` without `head_dim`, plus the four multipliers.
pub static GRANITE: Family = Family {
    hf_names: &["GraniteForCausalLM"],
    gguf_arch: "granite",
    model_type: "granite",
    tensors: &[
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
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 2048),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
        Dflt::Num("attention_multiplier", 1.0),
        Dflt::Num("embedding_multiplier", 1.0),
        Dflt::Num("residual_multiplier", 1.0),
        Dflt::Num("logits_scaling", 1.0),
    ],
    text_params: true,
    params: &[
        Param::U32("vocab_size", &["vocab_size"]),
        Param::RopeDims,
        Param::TruthyF32("attention.scale", &["attention_multiplier"]),
        Param::TruthyF32("embedding_scale", &["embedding_multiplier"]),
        Param::TruthyF32("residual_scale", &["residual_multiplier"]),
        Param::TruthyF32("logit_scale", &["logits_scaling"]),
    ],
    permute_qk: true,
    vocab: Vocab::Llama,
    hooks: Hooks {
        config: Some(granite_config),
        ..LLAMA_HOOKS
    },
};

/// The converter pops `head_dim` before writing Granite's keys.
fn granite_config(hp: &mut Hparams) {
    hp.map.remove("head_dim");
}

const OLMO2_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::AttnPostNorm,
    Kind::AttnQNorm,
    Kind::AttnKNorm,
    Kind::FfnPostNorm,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
];

/// `Olmo2ForCausalLM` and `Olmo3ForCausalLM` ("olmo2"): norms after attention and MLP only,
/// full-width q/k norms; OLMo 3's sliding-window layers.
pub static OLMO2: Family = Family {
    hf_names: &["Olmo2ForCausalLM", "Olmo3ForCausalLM"],
    gguf_arch: "olmo2",
    model_type: "olmo2",
    tensors: OLMO2_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 2048),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
    ],
    text_params: true,
    params: &[],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        params: Some(olmo_sliding_window),
        ..Hooks::NONE
    },
};

/// `Olmo2Model.set_gguf_parameters`: the window and which layers use it (`layer_types`, else
/// every layer but each fourth).
fn olmo_sliding_window(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    if !hp.map.contains_key("sliding_window") {
        return Ok(());
    }
    let arch = "olmo2";
    let window = hp.require_u32(&["sliding_window"])?;
    ctx.kv
        .u32(&format!("{arch}.attention.sliding_window"), window);
    let pattern: Vec<bool> = match hp.map.get("layer_types") {
        Some(Value::Array(types)) => types
            .iter()
            .map(|t| t.as_str() == Some("sliding_attention"))
            .collect(),
        _ => {
            let n = hp.require_u32(&["num_hidden_layers"])?;
            (0..n).map(|i| !(i + 1).is_multiple_of(4)).collect()
        }
    };
    ctx.kv.array(
        &format!("{arch}.attention.sliding_window_pattern"),
        GgufValue::bool_array(pattern),
    );
    Ok(())
}

/// `SeedOssForCausalLM` ("seed_oss"): a plain `TextModel`; the norm after attention is
/// `post_attention_norm`.
pub static SEED_OSS: Family = Family {
    hf_names: &["SeedOssForCausalLM"],
    gguf_arch: "seed_oss",
    model_type: "seed_oss",
    tensors: &[
        Kind::TokenEmbd,
        Kind::AttnNorm,
        Kind::AttnQ,
        Kind::AttnK,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::AttnPostNorm,
        Kind::FfnGate,
        Kind::FfnDown,
        Kind::FfnUp,
        Kind::OutputNorm,
        Kind::Output,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 524288),
        Dflt::Int("num_key_value_heads", 8),
        Dflt::Int("head_dim", 128),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
    ],
    text_params: true,
    params: &[],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks::NONE,
};

/// `StableLmForCausalLM` ("stablelm"): LayerNorms with biases and its own key list (partial
/// rotary dimensions, parallel residual flag).
pub static STABLELM: Family = Family {
    hf_names: &["StableLmForCausalLM"],
    gguf_arch: "stablelm",
    model_type: "stablelm",
    tensors: &[
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
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 4096),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("layer_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
        Dflt::Num("partial_rotary_factor", 0.25),
        Dflt::Flag("use_parallel_residual", false),
    ],
    text_params: false,
    params: &[
        Param::U32("context_length", &["max_position_embeddings"]),
        Param::U32("embedding_length", &["hidden_size"]),
        Param::BlockCount,
        Param::U32("feed_forward_length", &["intermediate_size"]),
        Param::Custom(partial_rope_dims),
        Param::U32("attention.head_count", &["num_attention_heads"]),
        Param::U32("attention.head_count_kv", &["num_key_value_heads"]),
        Param::BoolOr("use_parallel_residual", "use_parallel_residual", true),
        Param::F32(
            "attention.layer_norm_epsilon",
            &["layer_norm_eps", "norm_eps"],
        ),
        Param::FileType,
    ],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks::NONE,
};

/// `rope.dimension_count` = int(partial_rotary_factor * (hidden_size // num_attention_heads)).
fn partial_rope_dims(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let rp = super::rope_parameters(hp);
    let factor = rp
        .get("partial_rotary_factor")
        .and_then(Value::as_f64)
        .ok_or_else(|| Error::invalid(&hp.path, "missing hyperparameter partial_rotary_factor"))?;
    let hidden = hp.require_u32(&["hidden_size"])?;
    let heads = hp.require_u32(&["num_attention_heads"])?;
    if heads == 0 {
        return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
    }
    let dims = (factor * (hidden / heads) as f64).trunc() as u32;
    ctx.kv
        .u32(&format!("{}.rope.dimension_count", arch_of(ctx)), dims);
    Ok(())
}

/// The GGUF architecture being written (the value of `general.architecture`).
fn arch_of(ctx: &ParamContext) -> String {
    ctx.kv
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The converter sets max_position_embeddings from model_max_length when the config has it.
fn cohere_config(hp: &mut Hparams) {
    if let Some(v) = hp.get("model_max_length").cloned() {
        hp.map.insert("max_position_embeddings".into(), v);
    }
}

/// `CohereForCausalLM` (Command R, "command-r"): parallel attention/MLP after one LayerNorm,
/// tied embeddings, optional q/k norms, logit scale.
pub static COMMAND_R: Family = Family {
    hf_names: &["CohereForCausalLM"],
    gguf_arch: "command-r",
    model_type: "cohere",
    tensors: &[
        Kind::TokenEmbd,
        Kind::OutputNorm,
        Kind::AttnNorm,
        Kind::AttnQ,
        Kind::AttnK,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::FfnGate,
        Kind::FfnDown,
        Kind::FfnUp,
        Kind::AttnKNorm,
        Kind::AttnQNorm,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 8192),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("layer_norm_eps", 1e-5),
        Dflt::RopeTheta(500000.0),
        Dflt::Num("logit_scale", 0.0625),
    ],
    text_params: true,
    params: &[
        Param::F32("logit_scale", &["logit_scale"]),
        Param::Str("rope.scaling.type", "none"),
    ],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        config: Some(cohere_config),
        ..Hooks::NONE
    },
};

/// `Cohere2ForCausalLM` (Command R7B, "cohere2"): sliding-window layers, partial rotary
/// dimensions from `rotary_pct`; its all-zero biases are not carried (refused here).
pub static COHERE2: Family = Family {
    hf_names: &["Cohere2ForCausalLM"],
    gguf_arch: "cohere2",
    model_type: "cohere2",
    tensors: &[
        Kind::TokenEmbd,
        Kind::OutputNorm,
        Kind::AttnNorm,
        Kind::AttnQ,
        Kind::AttnK,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::FfnGate,
        Kind::FfnDown,
        Kind::FfnUp,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 8192),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Int("head_dim", 128),
        Dflt::Num("layer_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
        Dflt::Num("logit_scale", 0.0625),
        Dflt::Int("sliding_window", 4096),
    ],
    text_params: true,
    params: &[
        Param::F32("logit_scale", &["logit_scale"]),
        Param::U32("attention.sliding_window", &["sliding_window"]),
        Param::U32("vocab_size", &["vocab_size"]),
        Param::Custom(cohere2_rope_dims),
        Param::Str("rope.scaling.type", "none"),
    ],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        tensor_first: Some(refuse_bias),
        ..Hooks::NONE
    },
};

/// int(rotary_pct * (hidden_size // num_attention_heads)).
fn cohere2_rope_dims(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let pct = hp
        .find_f64(&["rotary_pct"])?
        .ok_or_else(|| Error::invalid(&hp.path, "missing hyperparameter rotary_pct"))?;
    let hidden = hp.require_u32(&["hidden_size"])?;
    let heads = hp.require_u32(&["num_attention_heads"])?;
    if heads == 0 {
        return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
    }
    let dims = (pct * (hidden / heads) as f64).trunc() as u32;
    ctx.kv.u32("cohere2.rope.dimension_count", dims);
    Ok(())
}

/// The converter drops Cohere 2 biases only after checking they are all zero; ckpt does not
/// read data while planning, so it refuses them rather than dropping values.
fn refuse_bias(t: &TensorRef, _hp: &Hparams) -> Result<Option<TensorAction>> {
    if t.name.ends_with(".bias") {
        return Err(Error::Unsupported(format!(
            "tensor '{}': Cohere 2 bias tensors are not supported (llama.cpp's cohere2 has no biases)",
            t.name
        )));
    }
    Ok(None)
}

/// `Exaone4ForCausalLM` ("exaone4"): norms after attention and MLP, q/k norms, sliding-window
/// layers.
pub static EXAONE4: Family = Family {
    hf_names: &["Exaone4ForCausalLM"],
    gguf_arch: "exaone4",
    model_type: "exaone4",
    tensors: &[
        Kind::TokenEmbd,
        Kind::OutputNorm,
        Kind::Output,
        Kind::RopeFreqs,
        Kind::AttnQ,
        Kind::AttnQNorm,
        Kind::AttnK,
        Kind::AttnKNorm,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::AttnPostNorm,
        Kind::FfnGate,
        Kind::FfnDown,
        Kind::FfnUp,
        Kind::FfnPostNorm,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 2048),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("sliding_window", 4096),
    ],
    text_params: true,
    params: &[
        Param::U32("vocab_size", &["vocab_size"]),
        Param::Custom(exaone4_sliding_window),
    ],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        extra_tensors: Some(refuse_llama3_rope),
        ..Hooks::NONE
    },
};

/// EXAONE 4 with llama3 rope scaling gets generated rope factors with its own defaults, which
/// ckpt does not compute: refused rather than written without them.
fn refuse_llama3_rope(hp: &Hparams, _kv: &mut crate::kv::KvList) -> Result<Vec<ckpt_core::Tensor>> {
    let rp = super::rope_parameters(hp);
    let global = match rp.get("full_attention") {
        Some(Value::Object(m)) => m.clone(),
        _ => rp,
    };
    if global
        .get("rope_type")
        .and_then(Value::as_str)
        .is_some_and(|t| t.eq_ignore_ascii_case("llama3"))
    {
        return Err(Error::Unsupported(format!(
            "{}: EXAONE 4 with llama3 rope scaling is not supported yet",
            hp.path.display()
        )));
    }
    Ok(Vec::new())
}

/// `Exaone4Model.set_gguf_parameters`' window keys: the window when set, the per-layer pattern
/// from `layer_types`, else from `sliding_window_pattern` ("LLLG" letters or a period).
fn exaone4_sliding_window(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    if hp.get("sliding_window").is_none() {
        return Ok(());
    }
    ctx.kv.u32(
        "exaone4.attention.sliding_window",
        hp.require_u32(&["sliding_window"])?,
    );
    let n = hp.require_u32(&["num_hidden_layers"])? as usize;
    let pattern: Option<Vec<bool>> = if let Some(types) = hp.map.get("layer_types") {
        Some(
            types
                .as_array()
                .into_iter()
                .flatten()
                .map(|t| t.as_str() == Some("sliding_attention"))
                .collect(),
        )
    } else {
        match hp.map.get("sliding_window_pattern") {
            Some(Value::String(s)) if !s.is_empty() => {
                let b = s.as_bytes();
                Some((0..n).map(|i| b[i % b.len()] == b'L').collect())
            }
            Some(Value::Number(p)) => match p.as_u64() {
                Some(p) if p > 0 => {
                    Some((0..n).map(|i| !(i as u64 + 1).is_multiple_of(p)).collect())
                }
                _ => None,
            },
            _ => None,
        }
        .filter(|p: &Vec<bool>| p.len() == n)
    };
    if let Some(p) = pattern {
        ctx.kv.array(
            "exaone4.attention.sliding_window_pattern",
            GgufValue::bool_array(p),
        );
    }
    Ok(())
}

/// `Ernie4_5_ForCausalLM` ("ernie4_5"): a Llama-shaped decoder without the Q/K permutation,
/// SentencePiece vocabulary with `add_space_prefix` written after it.
pub static ERNIE4_5: Family = Family {
    hf_names: &["Ernie4_5_ForCausalLM", "Ernie4_5ForCausalLM"],
    gguf_arch: "ernie4_5",
    model_type: "ernie4_5",
    tensors: &[
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
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Int("num_key_value_heads", 2),
        Dflt::Int("head_dim", 128),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(500000.0),
    ],
    text_params: true,
    params: &[],
    permute_qk: false,
    vocab: Vocab::Spm,
    hooks: Hooks {
        vocab: Some(space_prefix_from_tokenizer_config),
        ..Hooks::NONE
    },
};

/// `add_space_prefix` from tokenizer_config.json's `add_prefix_space`, after the vocabulary.
fn space_prefix_from_tokenizer_config(ctx: &mut super::VocabContext) -> Result<()> {
    if let Some(cfg) = crate::hparams::read_optional_json(&ctx.dir.join("tokenizer_config.json"))? {
        if let Some(Value::Bool(b)) = cfg.get("add_prefix_space") {
            ctx.kv.bool("tokenizer.ggml.add_space_prefix", *b);
        }
    }
    Ok(())
}
