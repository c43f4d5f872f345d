//! Llama 4 (`Llama4ForCausalLM`, and the text model of `Llama4ForConditionalGeneration`):
//! llama.cpp's `Llama4Model`, GGUF architecture "llama4". Dense and MoE layers interleaved
//! (`interleave_moe_layer_step`), the routed experts packed in two 3-D tensors per MoE layer
//! plus a shared expert, Q/K not permuted, llama3 rope factors generated, GPT-2 BPE vocabulary.
//! The no-rope layers, chunked attention and temperature tuning are not written: llama.cpp
//! derives them from the architecture (only an all-full-attention `layer_types` is recorded,
//! as a sliding window of 0).

use ckpt_core::{Result, Tensor};
use serde_json::{json, Value};

use super::family::{Dflt, Family, Hooks, Join, Param, Vocab};
use super::llama::LLAMA_HOOKS;
use super::{Kind, ParamContext};
use crate::hparams::Hparams;

/// gguf-py's `MODEL_TENSORS[LLAMA4]` (the kinds ckpt maps).
const LLAMA4_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::RopeFreqs,
    Kind::AttnNorm,
    Kind::AttnQkv,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnGateInp,
    Kind::FfnNorm,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
    Kind::FfnGateShexp,
    Kind::FfnDownShexp,
    Kind::FfnUpShexp,
];

/// `LlamaModel.set_gguf_parameters`' keys ([`LLAMA_PARAMS`](super::llama::LLAMA_PARAMS), repeated here so that the export
/// reads the whole list backwards), then `Llama4Model.set_gguf_parameters`'.
const LLAMA4_PARAMS: &[Param] = &[
    Param::U32("vocab_size", &["vocab_size"]),
    Param::RopeDims,
    Param::U32("interleave_moe_layer_step", &["interleave_moe_layer_step"]),
    Param::U32("expert_feed_forward_length", &["intermediate_size_moe"]),
    Param::Custom(no_sliding_window),
];

/// `Llama4ForCausalLM` ("llama4").
pub static LLAMA4: Family = Family {
    hf_names: &["Llama4ForCausalLM"],
    gguf_arch: "llama4",
    model_type: "llama4_text",
    tensors: LLAMA4_TENSORS,
    // transformers' Llama4TextConfig
    defaults: &[
        Dflt::Int("vocab_size", 202048),
        Dflt::Int("hidden_size", 5120),
        Dflt::Int("intermediate_size", 8192),
        Dflt::Int("intermediate_size_mlp", 16384),
        Dflt::Int("num_hidden_layers", 48),
        Dflt::Int("num_attention_heads", 40),
        Dflt::Int("num_key_value_heads", 8),
        Dflt::Int("head_dim", 128),
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::Int("num_experts_per_tok", 1),
        Dflt::Int("num_local_experts", 16),
        Dflt::Int("interleave_moe_layer_step", 1),
        Dflt::RopeTheta(500000.0),
    ],
    text_params: true,
    params: LLAMA4_PARAMS,
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        config: Some(llama4_config),
        expand: Some(packed_experts),
        joins: LLAMA4_JOINS,
        export_overrides: LLAMA4_EXPORT_NAMES,
        ..LLAMA_HOOKS
    },
};

/// The export's inverse of [`packed_experts`]: gate and up side by side again in
/// `gate_up_proj` `[experts, hidden, 2 * ffn]`, `down_proj` transposed back to `[experts, ffn,
/// hidden]` (both a band of experts at a time).
const LLAMA4_JOINS: &[Join] = &[
    Join {
        parts: &[
            "model.layers.{bid}.feed_forward.experts.gate_proj.weight",
            "model.layers.{bid}.feed_forward.experts.up_proj.weight",
        ],
        fused: "model.layers.{bid}.feed_forward.experts.gate_up_proj",
        shape: super::split::packed_cols_shape,
        join: super::split::concat_cols,
        banded: true,
    },
    Join {
        parts: &["model.layers.{bid}.feed_forward.experts.down_proj.weight"],
        fused: "model.layers.{bid}.feed_forward.experts.down_proj",
        shape: super::split::transposed_experts_shape,
        join: super::split::transposed_experts,
        banded: true,
    },
];

/// transformers' `Llama4TextDecoderLayer.feed_forward`: the dense MLP, the router, the packed
/// experts (before [`LLAMA4_JOINS`]) and the shared expert.
const LLAMA4_EXPORT_NAMES: &[(Kind, &str)] = &[
    (Kind::FfnGate, "model.layers.{bid}.feed_forward.gate_proj"),
    (Kind::FfnUp, "model.layers.{bid}.feed_forward.up_proj"),
    (Kind::FfnDown, "model.layers.{bid}.feed_forward.down_proj"),
    (Kind::FfnGateInp, "model.layers.{bid}.feed_forward.router"),
    (
        Kind::FfnGateExps,
        "model.layers.{bid}.feed_forward.experts.gate_proj",
    ),
    (
        Kind::FfnUpExps,
        "model.layers.{bid}.feed_forward.experts.up_proj",
    ),
    (
        Kind::FfnDownExps,
        "model.layers.{bid}.feed_forward.experts.down_proj",
    ),
    (
        Kind::FfnGateShexp,
        "model.layers.{bid}.feed_forward.shared_expert.gate_proj",
    ),
    (
        Kind::FfnUpShexp,
        "model.layers.{bid}.feed_forward.shared_expert.up_proj",
    ),
    (
        Kind::FfnDownShexp,
        "model.layers.{bid}.feed_forward.shared_expert.down_proj",
    ),
];

/// `Llama4Model.__init__`: `intermediate_size` is the experts' width and
/// `intermediate_size_mlp` the dense layers'; the converter renames them so the common keys
/// write the dense one. Also transformers' default `layer_types` (chunked attention on the rope
/// layers when `attention_chunk_size` is set).
fn llama4_config(hp: &mut Hparams) {
    if let Some(moe) = hp.map.get("intermediate_size").cloned() {
        hp.map.insert("intermediate_size_moe".into(), moe);
    }
    if let Some(mlp) = hp.map.get("intermediate_size_mlp").cloned() {
        hp.map.insert("intermediate_size".into(), mlp);
    }
    if hp.get("layer_types").is_none() {
        let n = hp
            .get("num_hidden_layers")
            .and_then(Value::as_u64)
            .unwrap_or(48);
        let interval = hp
            .get("no_rope_layer_interval")
            .and_then(Value::as_u64)
            .unwrap_or(4)
            .max(1);
        let chunked = hp.get("attention_chunk_size").is_some()
            || !hp.map.contains_key("attention_chunk_size");
        let rope: Vec<bool> = match hp.get("no_rope_layers").and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a.iter().map(|v| v.as_u64() != Some(0)).collect(),
            _ => (0..n).map(|i| (i + 1) % interval != 0).collect(),
        };
        let types: Vec<&str> = rope
            .iter()
            .map(|&r| {
                if r && chunked {
                    "chunked_attention"
                } else {
                    "full_attention"
                }
            })
            .collect();
        hp.map.insert("layer_types".into(), json!(types));
    }
}

/// `add_sliding_window(0)` when every layer has full attention (MobileLLM-style configs).
fn no_sliding_window(ctx: &mut ParamContext) -> Result<()> {
    if let Some(Value::Array(types)) = ctx.hp.get("layer_types") {
        if types.iter().all(|t| t.as_str() == Some("full_attention")) {
            ctx.kv.u32("llama4.attention.sliding_window", 0);
        }
    }
    Ok(())
}

/// `Llama4Model.modify_tensors`: a name with `gate_up_proj` becomes gate and up (split and
/// transposed), a `down_proj` without `.weight` is transposed and gets it.
fn packed_experts(
    t: &Tensor,
    _bid: Option<u32>,
    hp: &Hparams,
    _block_count: u32,
) -> Result<Option<Vec<Tensor>>> {
    use super::split::{packed_down, packed_gate_up};
    if t.name.contains("gate_up_proj") {
        let gate = t.name.replace("gate_up_proj", "gate_proj.weight");
        let up = t.name.replace("gate_up_proj", "up_proj.weight");
        return packed_gate_up(t, gate, up, &hp.path).map(Some);
    }
    if t.name.ends_with("down_proj") {
        return Ok(Some(vec![packed_down(
            t,
            format!("{}.weight", t.name),
            &hp.path,
        )?]));
    }
    Ok(None)
}
