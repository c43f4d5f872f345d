//! Mixtures of experts: the families (table entries) and the expert gathering the converter's
//! `modify_tensors` does (per-expert tensors collected per block and stacked into one 3-D
//! tensor per weight once the block has all of them).

use std::collections::BTreeMap;

use ckpt_core::{Error, Result, Tensor};

use super::family::{Dflt, Experts, Family, Hooks, Join, Param, Vocab};
use super::llama::{LLAMA_HOOKS, LLAMA_PARAMS};
use super::{Architecture, Kind, ParamContext};
use crate::hparams::Hparams;

/// One stacked tensor ready to be mapped: the Hugging Face name the converter gives it and the
/// per-expert sources in expert order.
pub struct Stacked {
    pub hf_name: String,
    pub experts: Vec<Tensor>,
}

/// Collects per-expert tensors block by block.
pub struct Stacker {
    spec: &'static Experts,
    n_experts: u32,
    count_key: &'static str,
    config: std::path::PathBuf,
    /// bid -> (weight index, expert id) -> tensor
    pending: BTreeMap<u32, BTreeMap<(usize, u32), Tensor>>,
}

impl Stacker {
    /// A stacker for `arch`, or None when it has no experts.
    pub fn new(arch: &dyn Architecture, hp: &Hparams) -> Result<Option<Stacker>> {
        let Some(spec) = arch.experts() else {
            return Ok(None);
        };
        let Some(count_key) = spec.count.iter().copied().find(|k| hp.get(k).is_some()) else {
            return Err(Error::invalid(
                &hp.path,
                format!(
                    "missing hyperparameter: none of {:?} (the expert count) is set",
                    spec.count
                ),
            ));
        };
        let n_experts = hp.require_u32(&[count_key])?;
        Ok(Some(Stacker {
            spec,
            n_experts,
            count_key,
            config: hp.path.clone(),
            pending: BTreeMap::new(),
        }))
    }

    /// (weight index, expert id) when `name` is a per-expert tensor of block `bid`.
    fn parse(&self, name: &str, bid: u32) -> Option<(usize, u32)> {
        let pattern = self.spec.per_expert.replace("{bid}", &bid.to_string());
        let (head, tail) = pattern.split_once("{xid}")?;
        let rest = name.strip_prefix(head)?;
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let xid: u32 = rest[..digits].parse().ok()?;
        let after = &rest[digits..];
        let w = self
            .spec
            .weights
            .iter()
            .position(|w| after == tail.replace("{w}", w))?;
        Some((w, xid))
    }

    /// Takes `t` when it is a per-expert tensor: `None` when it is not one, else the stacked
    /// tensors its block completes (empty until the block has all of them).
    pub fn offer(
        &mut self,
        t: &Tensor,
        bid: Option<u32>,
        block_count: u32,
    ) -> Result<Option<Vec<Stacked>>> {
        let Some(bid) = bid else { return Ok(None) };
        let Some((w, xid)) = self.parse(&t.name, bid) else {
            return Ok(None);
        };
        if bid >= block_count {
            return Err(Error::invalid(
                &self.config,
                format!(
                    "tensor '{}': block {bid} is beyond the {block_count} blocks the config declares",
                    t.name
                ),
            ));
        }
        if xid >= self.n_experts {
            return Err(Error::invalid(
                &self.config,
                format!(
                    "tensor '{}': expert {xid} does not exist, {} = {} in the config (the expert count disagrees with the tensors)",
                    t.name, self.count_key, self.n_experts
                ),
            ));
        }
        let block = self.pending.entry(bid).or_default();
        block.insert((w, xid), t.clone());
        let n = self.n_experts as usize;
        if block.len() < n * self.spec.weights.len() {
            return Ok(Some(Vec::new()));
        }
        let mut block = self.pending.remove(&bid).unwrap_or_default();
        let mut out = Vec::new();
        for (wi, wname) in self.spec.weights.iter().enumerate() {
            let experts: Vec<Tensor> = (0..self.n_experts)
                .map(|x| {
                    block
                        .remove(&(wi, x))
                        .expect("a complete block has every expert")
                })
                .collect();
            let first_shape = &experts[0].shape;
            if let Some(e) = experts.iter().find(|e| &e.shape != first_shape) {
                return Err(Error::invalid(
                    &self.config,
                    format!(
                        "tensor '{}' has shape {:?}, but '{}' has {:?}: experts of one block must have the same shape",
                        e.name, e.shape, experts[0].name, first_shape
                    ),
                ));
            }
            out.push(Stacked {
                hf_name: self
                    .spec
                    .merged
                    .replace("{bid}", &bid.to_string())
                    .replace("{w}", wname),
                experts,
            });
        }
        Ok(Some(out))
    }

    /// Fails naming the first missing expert tensor when a block was left incomplete.
    pub fn finish(self) -> Result<()> {
        if let Some((bid, block)) = self.pending.iter().next() {
            let missing = (0..self.n_experts)
                .flat_map(|x| (0..self.spec.weights.len()).map(move |w| (w, x)))
                .find(|k| !block.contains_key(k))
                .map(|(w, x)| {
                    self.spec
                        .per_expert
                        .replace("{bid}", &bid.to_string())
                        .replace("{xid}", &x.to_string())
                        .replace("{w}", self.spec.weights[w])
                })
                .unwrap_or_default();
            return Err(Error::invalid(
                &self.config,
                format!(
                    "tensor '{missing}' is missing: block {bid} has {} of the {} expert tensors that {} = {} needs",
                    block.len(),
                    self.n_experts as usize * self.spec.weights.len(),
                    self.count_key,
                    self.n_experts
                ),
            ));
        }
        Ok(())
    }
}

const QWEN_EXPERTS: Experts = Experts {
    per_expert: "model.layers.{bid}.mlp.experts.{xid}.{w}.weight",
    weights: &["down_proj", "gate_proj", "up_proj"],
    merged: "model.layers.{bid}.mlp.experts.{w}.weight",
    count: &["num_local_experts", "num_experts"],
};

/// `Qwen2MoeModel.set_gguf_parameters` after the common keys.
const QWEN2MOE_PARAMS: &[Param] = &[
    Param::OptU32("expert_feed_forward_length", &["moe_intermediate_size"]),
    Param::OptU32(
        "expert_shared_feed_forward_length",
        &["shared_expert_intermediate_size"],
    ),
];

const QWEN2MOE_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
    Kind::FfnGateInpShexp,
    Kind::FfnGateShexp,
    Kind::FfnDownShexp,
    Kind::FfnUpShexp,
];

/// `Qwen2MoeForCausalLM` ("qwen2moe"): experts stacked, a shared expert with its own sigmoid
/// gate. A `TextModel` in the converter, so the vocabulary is GPT-2 BPE only.
pub static QWEN2MOE: Family = Family {
    hf_names: &["Qwen2MoeForCausalLM"],
    gguf_arch: "qwen2moe",
    model_type: "qwen2_moe",
    tensors: QWEN2MOE_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 32768),
        Dflt::Int("num_key_value_heads", 16),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("num_experts_per_tok", 4),
        Dflt::Int("num_experts", 60),
        Dflt::Int("moe_intermediate_size", 1408),
        Dflt::Int("shared_expert_intermediate_size", 5632),
    ],
    text_params: true,
    params: QWEN2MOE_PARAMS,
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        experts: Some(&QWEN_EXPERTS),
        ..Hooks::NONE
    },
};

const QWEN3MOE_TENSORS: &[Kind] = &[
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
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
];

/// `Qwen3MoeForCausalLM` ("qwen3moe"): Qwen 2 MoE's experts with Qwen 3's q/k norms.
pub static QWEN3MOE: Family = Family {
    hf_names: &["Qwen3MoeForCausalLM"],
    gguf_arch: "qwen3moe",
    model_type: "qwen3_moe",
    tensors: QWEN3MOE_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 32768),
        Dflt::Int("num_key_value_heads", 4),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("head_dim", 128),
        Dflt::Int("num_experts_per_tok", 8),
        Dflt::Int("num_experts", 128),
        Dflt::Int("moe_intermediate_size", 768),
    ],
    text_params: true,
    params: QWEN2MOE_PARAMS,
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        experts: Some(&QWEN_EXPERTS),
        ..Hooks::NONE
    },
};

const MIXTRAL_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::RopeFreqs,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
];

/// `MixtralForCausalLM`: llama.cpp's `LlamaModel` ("llama") with `block_sparse_moe` experts
/// stacked as w1, w2, w3 (gate, down, up).
pub static MIXTRAL: Family = Family {
    hf_names: &["MixtralForCausalLM"],
    gguf_arch: "llama",
    model_type: "mixtral",
    tensors: MIXTRAL_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Int("num_key_value_heads", 8),
        Dflt::HeadDim,
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(1_000_000.0),
        Dflt::Int("num_experts_per_tok", 2),
        Dflt::Int("num_local_experts", 8),
    ],
    text_params: true,
    params: LLAMA_PARAMS,
    permute_qk: true,
    vocab: Vocab::Llama,
    hooks: Hooks {
        experts: Some(&Experts {
            per_expert: "model.layers.{bid}.block_sparse_moe.experts.{xid}.{w}.weight",
            weights: &["w1", "w2", "w3"],
            merged: "layers.{bid}.feed_forward.experts.{w}.weight",
            count: &["num_local_experts"],
        }),
        ..LLAMA_HOOKS
    },
};

const OLMOE_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnOut,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnNorm,
    Kind::AttnQNorm,
    Kind::AttnKNorm,
    Kind::FfnNorm,
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnUpExps,
    Kind::FfnDownExps,
];

/// `OlmoeForCausalLM` ("olmoe"): experts stacked like Qwen 2 MoE, full-width q/k norms, and
/// the RMS epsilon written again as 1e-5 after the common keys.
pub static OLMOE: Family = Family {
    hf_names: &["OlmoeForCausalLM"],
    gguf_arch: "olmoe",
    model_type: "olmoe",
    tensors: OLMOE_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 4096),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("num_experts_per_tok", 8),
        Dflt::Int("num_experts", 64),
    ],
    text_params: true,
    params: &[Param::Custom(olmoe_eps)],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        experts: Some(&QWEN_EXPERTS),
        ..Hooks::NONE
    },
};

/// `OlmoeModel.set_gguf_parameters`: `add_layer_norm_rms_eps(1e-5)` whatever the config says
/// (overwriting the common key in place).
fn olmoe_eps(ctx: &mut ParamContext) -> Result<()> {
    ctx.kv.f32("olmoe.attention.layer_norm_rms_epsilon", 1e-5);
    Ok(())
}

/// `Ernie4_5MoeModel.set_gguf_parameters` after the ERNIE 4.5 (common) keys.
const ERNIE4_5_MOE_PARAMS: &[Param] = &[
    Param::U32("expert_count", &["moe_num_experts"]),
    Param::U32("expert_used_count", &["moe_k"]),
    Param::U32("interleave_moe_layer_step", &["moe_layer_interval"]),
    Param::U32("leading_dense_block_count", &["moe_layer_start_index"]),
    Param::OptU32("expert_feed_forward_length", &["moe_intermediate_size"]),
    Param::Custom(ernie_shared_experts),
];

/// `expert_shared_count`, and with shared experts `intermediate_size // num_key_value_heads` as
/// their feed-forward length (the converter's formula).
fn ernie_shared_experts(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let Some(count) = hp.find_u32(&["moe_num_shared_experts"])? else {
        return Ok(());
    };
    ctx.kv.u32("ernie4_5-moe.expert_shared_count", count);
    if count > 0 {
        if let (Some(ffn), Some(kv_heads)) = (
            hp.find_u32(&["intermediate_size"])?,
            hp.find_u32(&["num_key_value_heads"])?,
        ) {
            if kv_heads == 0 {
                return Err(Error::invalid(&hp.path, "num_key_value_heads is 0"));
            }
            ctx.kv.u32(
                "ernie4_5-moe.expert_shared_feed_forward_length",
                ffn / kv_heads,
            );
        }
    }
    Ok(())
}

/// `add_space_prefix` from tokenizer_config.json's `add_prefix_space`, after the vocabulary
/// (`Ernie4_5Model.set_vocab`).
fn ernie_space_prefix(ctx: &mut super::VocabContext) -> Result<()> {
    if let Some(cfg) = crate::hparams::read_optional_json(&ctx.dir.join("tokenizer_config.json"))? {
        if let Some(serde_json::Value::Bool(b)) = cfg.get("add_prefix_space") {
            ctx.kv.bool("tokenizer.ggml.add_space_prefix", *b);
        }
    }
    Ok(())
}

const ERNIE4_5_MOE_TENSORS: &[Kind] = &[
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
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
    Kind::FfnGateShexp,
    Kind::FfnDownShexp,
    Kind::FfnUpShexp,
    Kind::FfnExpProbsB,
];

/// `Ernie4_5_MoeForCausalLM` ("ernie4_5-moe"): leading dense layers, routed experts stacked
/// gate, up, down, shared experts, and the `moe_statics` expert bias (`exp_probs_b`).
pub static ERNIE4_5_MOE: Family = Family {
    hf_names: &["Ernie4_5_MoeForCausalLM"],
    gguf_arch: "ernie4_5-moe",
    model_type: "ernie4_5_moe",
    tensors: ERNIE4_5_MOE_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Int("num_key_value_heads", 4),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(500000.0),
        Dflt::Int("moe_k", 6),
        Dflt::Int("moe_num_experts", 64),
        Dflt::Int("moe_num_shared_experts", 2),
        Dflt::Int("moe_layer_start_index", 1),
        Dflt::Int("moe_layer_interval", 1),
        Dflt::Int("moe_intermediate_size", 1536),
    ],
    text_params: true,
    params: ERNIE4_5_MOE_PARAMS,
    permute_qk: false,
    vocab: Vocab::Spm,
    hooks: Hooks {
        vocab: Some(ernie_space_prefix),
        export_overrides: &[
            (
                Kind::FfnGateShexp,
                "model.layers.{bid}.mlp.shared_experts.gate_proj",
            ),
            (
                Kind::FfnDownShexp,
                "model.layers.{bid}.mlp.shared_experts.down_proj",
            ),
            (
                Kind::FfnUpShexp,
                "model.layers.{bid}.mlp.shared_experts.up_proj",
            ),
            (
                Kind::FfnExpProbsB,
                "model.layers.{bid}.mlp.moe_statics.e_score_correction",
            ),
        ],
        experts: Some(&Experts {
            per_expert: "model.layers.{bid}.mlp.experts.{xid}.{w}.weight",
            weights: &["gate_proj", "up_proj", "down_proj"],
            merged: "model.layers.{bid}.mlp.experts.{w}.weight",
            count: &["moe_num_experts"],
        }),
        ..Hooks::NONE
    },
};

const GRANITE_MOE_TENSORS: &[Kind] = &[
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
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
    Kind::FfnGateShexp,
    Kind::FfnUpShexp,
    Kind::FfnDownShexp,
];

/// `GraniteMoeForCausalLM` and `GraniteMoeSharedForCausalLM` ("granitemoe"): Granite's keys,
/// experts already stacked in the checkpoint with gate and up fused (`input_linear`, split
/// here), and the shared expert's fused gate/up likewise.
pub static GRANITE_MOE: Family = Family {
    hf_names: &["GraniteMoeForCausalLM", "GraniteMoeSharedForCausalLM"],
    gguf_arch: "granitemoe",
    model_type: "granitemoe",
    tensors: GRANITE_MOE_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 2048),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
        Dflt::Num("attention_multiplier", 1.0),
        Dflt::Num("embedding_multiplier", 1.0),
        Dflt::Num("residual_multiplier", 1.0),
        Dflt::Num("logits_scaling", 1.0),
        Dflt::Int("num_local_experts", 8),
        Dflt::Int("num_experts_per_tok", 2),
    ],
    text_params: true,
    params: &[
        Param::U32("vocab_size", &["vocab_size"]),
        Param::RopeDims,
        Param::TruthyF32("attention.scale", &["attention_multiplier"]),
        Param::TruthyF32("embedding_scale", &["embedding_multiplier"]),
        Param::TruthyF32("residual_scale", &["residual_multiplier"]),
        Param::TruthyF32("logit_scale", &["logits_scaling"]),
        Param::Custom(granite_shared_ffn),
    ],
    permute_qk: true,
    vocab: Vocab::Llama,
    hooks: Hooks {
        config: Some(granite_moe_config),
        expand: Some(granite_moe_split),
        joins: &[
            Join {
                parts: &[
                    "model.layers.{bid}.block_sparse_moe.input_linear.gate.weight",
                    "model.layers.{bid}.block_sparse_moe.input_linear.up.weight",
                ],
                fused: "model.layers.{bid}.block_sparse_moe.input_linear.weight",
                shape: super::split::concat_rows_shape,
                join: super::split::concat_rows,
                // [experts, 2 * ffn, hidden]: each expert's gate rows, then its up rows.
                banded: true,
            },
            Join {
                parts: &[
                    "model.layers.{bid}.shared_mlp.input_linear.gate.weight",
                    "model.layers.{bid}.shared_mlp.input_linear.up.weight",
                ],
                fused: "model.layers.{bid}.shared_mlp.input_linear.weight",
                shape: super::split::concat_rows_shape,
                join: super::split::concat_rows,
                // [2 * ffn, hidden]: all gate rows, then all up rows.
                banded: false,
            },
        ],
        export_overrides: &[
            (
                Kind::FfnGateInp,
                "model.layers.{bid}.block_sparse_moe.router.layer",
            ),
            (
                Kind::FfnGateExps,
                "model.layers.{bid}.block_sparse_moe.input_linear.gate",
            ),
            (
                Kind::FfnUpExps,
                "model.layers.{bid}.block_sparse_moe.input_linear.up",
            ),
            (
                Kind::FfnDownExps,
                "model.layers.{bid}.block_sparse_moe.output_linear",
            ),
            (
                Kind::FfnGateShexp,
                "model.layers.{bid}.shared_mlp.input_linear.gate",
            ),
            (
                Kind::FfnUpShexp,
                "model.layers.{bid}.shared_mlp.input_linear.up",
            ),
            (
                Kind::FfnDownShexp,
                "model.layers.{bid}.shared_mlp.output_linear",
            ),
        ],
        ..LLAMA_HOOKS
    },
};

/// The converter pops `head_dim` before writing Granite's keys.
fn granite_moe_config(hp: &mut Hparams) {
    hp.map.remove("head_dim");
}

/// `expert_shared_feed_forward_length` when `shared_intermediate_size` is set and not 0.
fn granite_shared_ffn(ctx: &mut ParamContext) -> Result<()> {
    if let Some(n) = ctx.hp.find_u32(&["shared_intermediate_size"])? {
        if n != 0 {
            ctx.kv
                .u32("granitemoe.expert_shared_feed_forward_length", n);
        }
    }
    Ok(())
}

/// `GraniteMoeModel.modify_tensors`: the fused `input_linear` ([.., 2 * ffn, hidden]) split
/// into gate (first half) and up; without routed experts the shared MLP is the dense FFN.
fn granite_moe_split(
    t: &Tensor,
    _bid: Option<u32>,
    hp: &Hparams,
    _block_count: u32,
) -> Result<Option<Vec<Tensor>>> {
    let has_experts = hp.find_u32(&["num_local_experts"])?.unwrap_or(0) > 0;
    let (base, ffn_keys): (&str, &[&str]) =
        if let Some(b) = t.name.strip_suffix("block_sparse_moe.input_linear.weight") {
            (b, &["intermediate_size"])
        } else if let Some(b) = t.name.strip_suffix("shared_mlp.input_linear.weight") {
            (b, &["shared_intermediate_size"])
        } else {
            if !has_experts && t.name.ends_with("shared_mlp.output_linear.weight") {
                let mut d = t.clone();
                d.name = t.name.replace("shared_mlp.output_linear", "mlp.down_proj");
                return Ok(Some(vec![d]));
            }
            return Ok(None);
        };
    let ffn = hp.require_u32(ffn_keys)? as usize;
    let n = t.shape.len();
    if n < 2 || t.shape[n - 2] as usize != 2 * ffn {
        return Err(Error::invalid(
            &hp.path,
            format!(
                "tensor '{}' has shape {:?}, expected 2 x {} = {} fused gate and up rows",
                t.name,
                t.shape,
                ffn_keys[0],
                2 * ffn
            ),
        ));
    }
    let routed = t.name.ends_with("block_sparse_moe.input_linear.weight");
    let n_experts = hp.find_u32(&["num_local_experts"])?.unwrap_or(0) as u64;
    if routed && (n != 3 || t.shape[0] != n_experts) {
        return Err(Error::invalid(
            &hp.path,
            format!(
                "tensor '{}' has shape {:?}, expected {n_experts} experts (num_local_experts) stacked in dimension 0 (the expert count disagrees with the tensors)",
                t.name, t.shape
            ),
        ));
    }
    let (gate, up) = match (routed, has_experts) {
        (true, _) => (
            format!("{base}block_sparse_moe.input_linear.gate.weight"),
            format!("{base}block_sparse_moe.input_linear.up.weight"),
        ),
        (false, true) => (
            format!("{base}shared_mlp.input_linear.gate.weight"),
            format!("{base}shared_mlp.input_linear.up.weight"),
        ),
        (false, false) => (
            format!("{base}mlp.gate_proj.weight"),
            format!("{base}mlp.up_proj.weight"),
        ),
    };
    Ok(Some(vec![
        super::split::slice_rows(t, gate, 0..ffn, &hp.path)?,
        super::split::slice_rows(t, up, ffn..2 * ffn, &hp.path)?,
    ]))
}

const GLM4_MOE_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnPostNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::AttnQNorm,
    Kind::AttnKNorm,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
    Kind::FfnGateShexp,
    Kind::FfnDownShexp,
    Kind::FfnUpShexp,
    Kind::FfnExpProbsB,
    Kind::NextnEhProj,
    Kind::NextnEmbedTokens,
    Kind::NextnEnorm,
    Kind::NextnHnorm,
    Kind::NextnSharedHeadHead,
    Kind::NextnSharedHeadNorm,
];

/// `Glm4MoeForCausalLM` ("glm4moe"): experts stacked like DeepSeek's, sigmoid routing, and
/// the multi-token-prediction (NextN) layers kept as extra blocks after the main ones.
pub static GLM4_MOE: Family = Family {
    hf_names: &["Glm4MoeForCausalLM"],
    gguf_arch: "glm4moe",
    model_type: "glm4_moe",
    tensors: GLM4_MOE_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Int("num_key_value_heads", 8),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("moe_intermediate_size", 1408),
        Dflt::Int("num_experts_per_tok", 8),
        Dflt::Int("n_shared_experts", 1),
        Dflt::Int("n_routed_experts", 128),
        Dflt::Num("routed_scaling_factor", 1.0),
        Dflt::Int("n_group", 1),
        Dflt::Int("topk_group", 1),
        Dflt::Int("first_k_dense_replace", 1),
        Dflt::Flag("norm_topk_prob", true),
        Dflt::Int("num_nextn_predict_layers", 1),
    ],
    text_params: true,
    params: &[Param::Custom(glm4_moe_params)],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        config: Some(glm4_moe_config),
        vocab: Some(glm4_moe_specials),
        experts: Some(&Experts {
            per_expert: "model.layers.{bid}.mlp.experts.{xid}.{w}.weight",
            weights: &["down_proj", "gate_proj", "up_proj"],
            merged: "model.layers.{bid}.mlp.experts.{w}.weight",
            count: &["n_routed_experts"],
        }),
        export_overrides: super::deepseek::SHARED_EXPERTS,
        ..Hooks::NONE
    },
};

/// The converter's block count includes the NextN layers (`n_layers` is read first).
fn glm4_moe_config(hp: &mut Hparams) {
    if let (Some(n), Some(extra)) = (
        hp.get("num_hidden_layers")
            .and_then(serde_json::Value::as_u64),
        hp.get("num_nextn_predict_layers")
            .and_then(serde_json::Value::as_u64),
    ) {
        hp.map
            .insert("n_layers".into(), serde_json::json!(n + extra));
    }
}

/// `Glm4MoeModel.set_gguf_parameters` after the common keys.
fn glm4_moe_params(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let head_dim = match hp.find_u32(&["head_dim"])? {
        Some(d) => d,
        None => {
            let heads = hp.require_u32(&["num_attention_heads"])?;
            if heads == 0 {
                return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
            }
            hp.require_u32(&["hidden_size"])? / heads
        }
    };
    let factor = match super::rope_parameters(hp).get("partial_rotary_factor") {
        Some(v) => v.as_f64().ok_or_else(|| {
            Error::invalid(
                &hp.path,
                format!("partial_rotary_factor is {v}, expected a number"),
            )
        })?,
        None => 0.5,
    };
    let kv = &mut *ctx.kv;
    kv.u32(
        "glm4moe.rope.dimension_count",
        (head_dim as f64 * factor) as u32,
    );
    if let Some(n) = hp.find_u32(&["n_routed_experts"])? {
        kv.u32("glm4moe.expert_count", n);
    }
    if let Some(n) = hp.find_u32(&["moe_intermediate_size"])? {
        kv.u32("glm4moe.expert_feed_forward_length", n);
    }
    if let Some(n) = hp.find_u32(&["n_shared_experts"])? {
        kv.u32("glm4moe.expert_shared_count", n);
    }
    if let Some(n) = hp.find_u32(&["first_k_dense_replace"])? {
        kv.u32("glm4moe.leading_dense_block_count", n);
    }
    kv.u32("glm4moe.expert_gating_func", 2);
    if let Some(v) = hp.find_f64(&["routed_scaling_factor"])? {
        kv.f32("glm4moe.expert_weights_scale", v as f32);
    }
    if let Some(v) = hp.get("norm_topk_prob") {
        let b = v.as_bool().ok_or_else(|| {
            Error::invalid(
                &hp.path,
                format!("norm_topk_prob is {v}, expected true or false"),
            )
        })?;
        kv.bool("glm4moe.expert_weights_norm", b);
    }
    if let Some(n) = hp.find_u32(&["num_nextn_predict_layers"])? {
        kv.u32("glm4moe.nextn_predict_layers", n);
    }
    Ok(())
}

/// `_set_vocab_glm`: bos `[gMASK]`, eot `<|user|>`, unk `<|endoftext|>`, eom `<|observation|>`.
fn glm4_moe_specials(ctx: &mut super::VocabContext) -> Result<()> {
    super::dense2::set_added_specials(
        ctx,
        &[
            ("bos", "[gMASK]"),
            ("eot", "<|user|>"),
            ("unk", "<|endoftext|>"),
            ("eom", "<|observation|>"),
        ],
    )
}

const GPT_OSS_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnPostNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::AttnSinks,
    Kind::FfnGateInp,
    Kind::FfnGateExps,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
];

/// `GptOssForCausalLM` ("gpt-oss"). bf16 checkpoints: experts stored stacked and transposed
/// (`gate_up_proj` [experts, hidden, 2 * ffn] with gate and up interleaved, `down_proj`
/// [experts, ffn, hidden]) and their biases; attention sinks. MXFP4 checkpoints (as released):
/// the expert blocks and scales repacked into GGUF MXFP4 tensors, written first.
pub static GPT_OSS: Family = Family {
    hf_names: &["GptOssForCausalLM"],
    gguf_arch: "gpt-oss",
    model_type: "gpt_oss",
    tensors: GPT_OSS_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Int("num_key_value_heads", 8),
        Dflt::Int("head_dim", 64),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::Int("num_experts_per_tok", 4),
        Dflt::Int("num_local_experts", 128),
        Dflt::Int("sliding_window", 128),
    ],
    text_params: true,
    params: &[
        Param::U32("attention.sliding_window", &["sliding_window"]),
        Param::U32("expert_feed_forward_length", &["intermediate_size"]),
    ],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        expand: Some(gpt_oss_split),
        sources: Some(gpt_oss_mxfp4),
        joins: GPT_OSS_JOINS,
        export_overrides: &[
            (Kind::FfnGateInp, "model.layers.{bid}.mlp.router"),
            (
                Kind::FfnGateExps,
                "model.layers.{bid}.mlp.experts.gate_proj",
            ),
            (Kind::FfnUpExps, "model.layers.{bid}.mlp.experts.up_proj"),
            (
                Kind::FfnDownExps,
                "model.layers.{bid}.mlp.experts.down_proj",
            ),
            (Kind::AttnSinks, "model.layers.{bid}.self_attn.sinks"),
        ],
        ..Hooks::NONE
    },
};

/// The export's inverse of [`gpt_oss_split`]: gate and up interleaved back into `gate_up_proj`
/// (weights transposed back to `[experts, hidden, 2 * ffn]`), `down_proj` transposed back,
/// and the biases and sinks under their checkpoint names.
const GPT_OSS_JOINS: &[Join] = &[
    Join {
        parts: &[
            "model.layers.{bid}.mlp.experts.gate_proj.weight",
            "model.layers.{bid}.mlp.experts.up_proj.weight",
        ],
        fused: "model.layers.{bid}.mlp.experts.gate_up_proj",
        shape: super::split::packed_cols_shape,
        join: super::split::interleave_cols,
        banded: true,
    },
    Join {
        parts: &[
            "model.layers.{bid}.mlp.experts.gate_proj.bias",
            "model.layers.{bid}.mlp.experts.up_proj.bias",
        ],
        fused: "model.layers.{bid}.mlp.experts.gate_up_proj_bias",
        shape: super::split::packed_cols_shape,
        join: super::split::interleave_cols,
        banded: true,
    },
    Join {
        parts: &["model.layers.{bid}.mlp.experts.down_proj.weight"],
        fused: "model.layers.{bid}.mlp.experts.down_proj",
        shape: super::split::transposed_experts_shape,
        join: super::split::transposed_experts,
        banded: true,
    },
    Join {
        parts: &["model.layers.{bid}.mlp.experts.down_proj.bias"],
        fused: "model.layers.{bid}.mlp.experts.down_proj_bias",
        shape: super::split::renamed_shape,
        join: super::split::renamed,
        banded: true,
    },
    Join {
        parts: &["model.layers.{bid}.self_attn.sinks.weight"],
        fused: "model.layers.{bid}.self_attn.sinks",
        shape: super::split::renamed_shape,
        join: super::split::renamed,
        banded: true,
    },
];

/// `GptOssModel.filter_tensors` / `modify_tensors` for unquantized experts.
fn gpt_oss_split(
    t: &Tensor,
    _bid: Option<u32>,
    hp: &Hparams,
    _block_count: u32,
) -> Result<Option<Vec<Tensor>>> {
    use super::split::per_outer_row;
    let name = &t.name;
    if name.ends_with("_blocks") || name.ends_with("_scales") {
        // The experts' were repacked by `gpt_oss_mxfp4`; the converter maps no others.
        return Err(Error::Unsupported(format!(
            "tensor '{name}': MXFP4 blocks/scales are supported for mlp.experts.down_proj and mlp.experts.gate_up_proj only"
        )));
    }
    if name.contains("sinks") {
        let mut s = t.clone();
        s.name = format!("{name}.weight");
        return Ok(Some(vec![s]));
    }
    let bad = |what: &str| {
        Error::invalid(
            &hp.path,
            format!("tensor '{name}' has shape {:?}, expected {what}", t.shape),
        )
    };
    let elem = t.dtype.elem_size().unwrap_or(1);
    if let Some(base) = name.strip_suffix("down_proj_bias") {
        let mut b = t.clone();
        b.name = format!("{base}down_proj.bias");
        return Ok(Some(vec![b]));
    }
    if let Some(base) = name.strip_suffix("down_proj") {
        // [experts, ffn, hidden] -> [experts, hidden, ffn]
        if t.shape.len() != 3 {
            return Err(bad("[experts, ffn, hidden]"));
        }
        let (f, h) = (t.shape[1] as usize, t.shape[2] as usize);
        let out = per_outer_row(
            t,
            format!("{base}down_proj.weight"),
            vec![h as u64, f as u64],
            move |src, dst| transpose_into(src, dst, f, h, 1, 0, elem),
            &hp.path,
        )?;
        return Ok(Some(vec![out]));
    }
    if let Some(base) = name.strip_suffix("gate_up_proj_bias") {
        // [experts, 2 * ffn]: gate the even columns, up the odd ones.
        if t.shape.len() != 2 || !t.shape[1].is_multiple_of(2) {
            return Err(bad("[experts, 2 * ffn]"));
        }
        let f = t.shape[1] as usize / 2;
        let mut out = Vec::new();
        for (part, parity) in [("gate_proj", 0), ("up_proj", 1)] {
            out.push(per_outer_row(
                t,
                format!("{base}{part}.bias"),
                vec![f as u64],
                move |src, dst| {
                    for j in 0..f {
                        let s = (2 * j + parity) * elem;
                        dst[j * elem..(j + 1) * elem].copy_from_slice(&src[s..s + elem]);
                    }
                },
                &hp.path,
            )?);
        }
        return Ok(Some(out));
    }
    if let Some(base) = name.strip_suffix("gate_up_proj") {
        // [experts, hidden, 2 * ffn] -> transposed [experts, 2 * ffn, hidden], rows split
        // even (gate) / odd (up).
        if t.shape.len() != 3 || !t.shape[2].is_multiple_of(2) {
            return Err(bad("[experts, hidden, 2 * ffn]"));
        }
        let (h, f2) = (t.shape[1] as usize, t.shape[2] as usize);
        let mut out = Vec::new();
        for (part, parity) in [("gate_proj", 0), ("up_proj", 1)] {
            out.push(per_outer_row(
                t,
                format!("{base}{part}.weight"),
                vec![(f2 / 2) as u64, h as u64],
                move |src, dst| transpose_into(src, dst, h, f2, 2, parity, elem),
                &hp.path,
            )?);
        }
        return Ok(Some(out));
    }
    Ok(None)
}

/// `dst[j][r] = src[r][step * j + offset]` for a row-major `src` of `rows x cols` elements of
/// `elem` bytes.
fn transpose_into(
    src: &[u8],
    dst: &mut [u8],
    rows: usize,
    cols: usize,
    step: usize,
    offset: usize,
    elem: usize,
) {
    let out_rows = (cols - offset).div_ceil(step);
    for j in 0..out_rows {
        let c = step * j + offset;
        for r in 0..rows {
            let s = (r * cols + c) * elem;
            let d = (j * rows + r) * elem;
            dst[d..d + elem].copy_from_slice(&src[s..s + elem]);
        }
    }
}

/// The MXFP4 expert weights of a GPT-OSS checkpoint, as `GptOssModel.generate_extra_tensors`
/// repacks them: for every `mlp.experts.down_proj_scales` (with its `_blocks`), one
/// `down_proj.weight`; for every `mlp.experts.gate_up_proj_scales`, `gate_proj.weight` from the
/// even rows and `up_proj.weight` from the odd ones. They come before all other tensors, in
/// the order of their scales; the blocks and scales themselves are consumed.
fn gpt_oss_mxfp4(
    tensors: Vec<Tensor>,
    hp: &Hparams,
    _kv: &mut crate::kv::KvList,
) -> Result<Vec<Tensor>> {
    const DOWN: &str = "mlp.experts.down_proj";
    const GATE_UP: &str = "mlp.experts.gate_up_proj";
    let is_expert_mx = |n: &str| {
        [DOWN, GATE_UP]
            .iter()
            .any(|w| n.ends_with(&format!("{w}_blocks")) || n.ends_with(&format!("{w}_scales")))
    };
    if !tensors.iter().any(|t| is_expert_mx(&t.name)) {
        return Ok(tensors);
    }
    let by_name: std::collections::HashMap<&str, &Tensor> =
        tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut repacked = Vec::new();
    for t in &tensors {
        let name = t.name.as_str();
        if let Some(base) = name.strip_suffix("_blocks") {
            if is_expert_mx(name) && !by_name.contains_key(format!("{base}_scales").as_str()) {
                return Err(Error::invalid(
                    &hp.path,
                    format!("MXFP4 tensor '{name}' has no '{base}_scales' in the checkpoint"),
                ));
            }
            continue;
        }
        let Some(base) = name.strip_suffix("_scales") else {
            continue;
        };
        if !is_expert_mx(name) {
            continue;
        }
        let blocks_name = format!("{base}_blocks");
        let Some(blocks) = by_name.get(blocks_name.as_str()) else {
            return Err(Error::invalid(
                &hp.path,
                format!("MXFP4 scales '{name}' have no '{blocks_name}' in the checkpoint"),
            ));
        };
        if let Some(prefix) = base.strip_suffix("down_proj") {
            repacked.push(repack_mxfp4(
                format!("{prefix}down_proj.weight"),
                blocks,
                t,
                None,
                &hp.path,
            )?);
        } else if let Some(prefix) = base.strip_suffix("gate_up_proj") {
            for (part, parity) in [("gate_proj", 0), ("up_proj", 1)] {
                repacked.push(repack_mxfp4(
                    format!("{prefix}{part}.weight"),
                    blocks,
                    t,
                    Some(parity),
                    &hp.path,
                )?);
            }
        }
    }
    repacked.extend(tensors.into_iter().filter(|t| !is_expert_mx(&t.name)));
    Ok(repacked)
}

/// One GGUF MXFP4 tensor [experts, rows, 32 * nb] from `blocks` [experts, R, nb, 16] and
/// `scales` [experts, R, nb] (both U8): all R rows, or with `every_other = Some(p)` rows
/// p, p + 2, …. Each 17-byte block is the scale byte (E8M0, unchanged) and 16 bytes where byte
/// q holds element q (low nibble) and element q + 16 (high); the checkpoint's byte j holds
/// elements 2j (low) and 2j + 1 (high). Produced by bands of rows, only bytes moved.
fn repack_mxfp4(
    name: String,
    blocks: &Tensor,
    scales: &Tensor,
    every_other: Option<usize>,
    config: &std::path::Path,
) -> Result<Tensor> {
    use ckpt_core::{DType, GgmlType};
    let s = &blocks.shape;
    let ok = blocks.dtype == DType::U8
        && scales.dtype == DType::U8
        && s.len() == 4
        && s[3] == 16
        && scales.shape.as_slice() == &s[..3]
        && (every_other.is_none() || s[1].is_multiple_of(2));
    if !ok {
        return Err(Error::invalid(
            config,
            format!(
                "MXFP4 tensors '{}' ({}, shape {:?}) and '{}' ({}, shape {:?}): expected U8 blocks [experts, rows, blocks, 16] and U8 scales [experts, rows, blocks]{}",
                blocks.name,
                blocks.dtype,
                blocks.shape,
                scales.name,
                scales.dtype,
                scales.shape,
                if every_other.is_some() { " with an even number of rows (gate and up interleaved)" } else { "" }
            ),
        ));
    }
    let (experts, src_rows, nb) = (s[0] as usize, s[1] as usize, s[2] as usize);
    let rows = if every_other.is_some() {
        src_rows / 2
    } else {
        src_rows
    };
    let row_bytes = nb * 17;
    let (b, sc) = (blocks.clone(), scales.clone());
    Ok(Tensor::from_rows(
        name,
        DType::Ggml(GgmlType::MXFP4),
        vec![experts as u64, rows as u64, (nb * 32) as u64],
        experts * rows,
        row_bytes,
        move |range, dst| {
            for (i, out_row) in range.enumerate() {
                let (e, j) = (out_row / rows, out_row % rows);
                let src = e * src_rows + every_other.map_or(j, |p| 2 * j + p);
                let qs = super::split::read_rows(&b, src..src + 1, nb * 16)?;
                let es = super::split::read_rows(&sc, src..src + 1, nb)?;
                let out = &mut dst[i * row_bytes..(i + 1) * row_bytes];
                for k in 0..nb {
                    let block = &mut out[k * 17..(k + 1) * 17];
                    block[0] = es[k];
                    let src = &qs[k * 16..(k + 1) * 16];
                    let nibble = |m: usize| (src[m / 2] >> (4 * (m % 2))) & 0x0F;
                    for q in 0..16 {
                        block[1 + q] = nibble(q) | (nibble(q + 16) << 4);
                    }
                }
            }
            Ok(())
        },
    ))
}
