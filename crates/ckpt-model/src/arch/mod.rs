//! One description per supported Hugging Face architecture: the GGUF architecture name, the
//! tensor name table, which tensors are transformed (Q/K permutation, transposes, +1 norms),
//! the config keys written as GGUF keys, and which vocabulary loader applies. The converter in
//! `lib.rs` only walks these descriptions.

pub(crate) mod bert;
pub(crate) mod deepseek;
pub(crate) mod dense;
pub(crate) mod dense2;
pub mod family;
pub mod gemma;
pub(crate) mod gpt2;
pub(crate) mod llama;
/// Llama 3 rope parameters back from a GGUF's `rope_freqs` (the export).
pub use llama::llama3_rope_parameters;
pub(crate) mod llama4;
pub(crate) mod moe;
pub(crate) mod multimodal;
pub(crate) mod phi3;
pub mod qwen;
pub(crate) mod split;
pub(crate) mod tensor_map;
pub(crate) mod vision;

use std::path::Path;

use ckpt_core::{Error, Result};

use serde_json::Value;

use crate::hparams::Hparams;
use crate::kv::KvList;
pub(crate) use tensor_map::Kind;

/// A transformation applied to a tensor's f32 values before it is stored.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// llama.cpp's `LlamaModel.permute`: rows viewed as [heads, 2, rows/heads/2] with the two
    /// inner axes swapped (HF rotate-half layout -> interleaved pairs).
    PermuteRows {
        /// The head count of the projection (`num_attention_heads` for Q,
        /// `num_key_value_heads` for K).
        heads: u64,
    },
    /// Gemma's RMSNorm stores weight - 1: add the 1 back. `in_f16` when the checkpoint is f16
    /// (the converter adds in the source precision, f32 otherwise).
    AddOne {
        /// Add in f16 (the checkpoint's precision) rather than in f32.
        in_f16: bool,
    },
    /// Keep only the first `rows` rows (Gemma 3 drops embedding rows beyond the real vocabulary).
    /// Like the converter's Python slice `t[:rows]`, a tensor with fewer rows is kept whole.
    TruncateRows {
        /// Rows kept.
        rows: u64,
    },
    /// Drop the first `rows` rows (the converter's `t[rows:]`: RoBERTa position embeddings start
    /// at `pad_token_id + 1`).
    SkipRows {
        /// Rows dropped from the start.
        rows: u64,
    },
    /// HF `Conv1D` weights are stored transposed (GPT-2): swap the two dimensions.
    Transpose,
    /// torch's `squeeze(1)`: drops dimension 1 when it has size 1 (LFM2's short-conv kernels
    /// [C, 1, L] -> [C, L]); the data is unchanged.
    SqueezeDim1,
    /// GLM-4's `normal_to_neox` (M-RoPE checkpoints): within each head of `head_dim` rows, the
    /// first `rotary_dim` rows reordered even rows first, then odd ones; the rest unchanged.
    NeoxRotary {
        /// Rows per head.
        head_dim: u64,
        /// Rows of each head that carry the rotary embedding (even, at most `head_dim`).
        rotary_dim: u64,
    },
    /// torch's `t[:, :, index]` on a tensor of at least three dimensions (dimension 2 is
    /// dropped): Qwen2-VL's Conv3D patch embedding split into one Conv2D per temporal slice.
    /// Not row-local: converted as a whole tensor (a patch embedding is small).
    TakeDim2 {
        /// The index kept along dimension 2.
        index: u64,
    },
    /// Rows `[index * n/3, (index + 1) * n/3)` of a tensor of `n` rows: one of Q, K, V cut
    /// from a fused QKV projection (weight or bias).
    ThirdOfRows {
        /// 0 for Q, 1 for K, 2 for V.
        index: u64,
    },
}

impl Transform {
    /// Whether the transform needs the whole tensor at once (not row-local).
    pub(crate) fn whole(&self) -> bool {
        matches!(self, Transform::Transpose | Transform::TakeDim2 { .. })
    }

    /// Whether the transform applies to a tensor of this shape (checked before anything is written).
    pub(crate) fn check(&self, shape: &[u64]) -> Result<(), String> {
        match self {
            Transform::PermuteRows { heads } => {
                let rows = shape.first().copied().unwrap_or(1);
                if *heads == 0 || rows % (heads * 2) != 0 {
                    return Err(format!(
                        "{rows} rows cannot be split into {heads} heads of two rotary halves"
                    ));
                }
                Ok(())
            }
            Transform::TruncateRows { rows } => match shape.first() {
                Some(_) => Ok(()),
                None => Err(format!(
                    "cannot keep the first {rows} rows of a tensor of shape {shape:?}"
                )),
            },
            Transform::SkipRows { rows } => match shape.first() {
                Some(&n) if n > *rows => Ok(()),
                _ => Err(format!(
                    "cannot drop the first {rows} rows of a tensor of shape {shape:?}"
                )),
            },
            Transform::Transpose if shape.len() != 2 => {
                Err(format!("cannot transpose a tensor of shape {shape:?}"))
            }
            Transform::SqueezeDim1 if shape.len() == 2 && shape[1] == 1 => Err(format!(
                "squeezing dimension 1 of shape {shape:?} would leave a vector (not supported)"
            )),
            Transform::NeoxRotary {
                head_dim,
                rotary_dim,
            } => {
                let rows = shape.first().copied().unwrap_or(1);
                if *head_dim == 0
                    || !rows.is_multiple_of(*head_dim)
                    || rotary_dim > head_dim
                    || !rotary_dim.is_multiple_of(2)
                {
                    return Err(format!(
                        "{rows} rows cannot be split into heads of {head_dim} rows with {rotary_dim} rotary ones (an even number)"
                    ));
                }
                Ok(())
            }
            Transform::TakeDim2 { index } => match shape.get(2) {
                Some(&n) if *index < n => Ok(()),
                _ => Err(format!(
                    "cannot take index {index} of dimension 2 of a tensor of shape {shape:?}"
                )),
            },
            Transform::ThirdOfRows { index } => match shape.first() {
                Some(&n) if n % 3 == 0 && *index < 3 => Ok(()),
                _ => Err(format!(
                    "a fused QKV tensor of shape {shape:?} does not split into three equal parts"
                )),
            },
            Transform::AddOne { .. } | Transform::Transpose | Transform::SqueezeDim1 => Ok(()),
        }
    }

    /// The shape after this transform.
    pub(crate) fn output_shape(&self, shape: &[u64]) -> Vec<u64> {
        match self {
            Transform::TruncateRows { rows } => {
                let mut s = shape.to_vec();
                s[0] = s[0].min(*rows);
                s
            }
            Transform::SkipRows { rows } => {
                let mut s = shape.to_vec();
                s[0] -= s[0].min(*rows);
                s
            }
            Transform::Transpose => vec![shape[1], shape[0]],
            Transform::ThirdOfRows { .. } => {
                let mut s = shape.to_vec();
                s[0] /= 3;
                s
            }
            Transform::TakeDim2 { .. } if shape.len() >= 3 => {
                let mut s = shape.to_vec();
                s.remove(2);
                s
            }
            Transform::SqueezeDim1 if shape.len() >= 2 && shape[1] == 1 => {
                let mut s = shape.to_vec();
                s.remove(1);
                s
            }
            _ => shape.to_vec(),
        }
    }
}

/// What an architecture decides for one HF tensor.
pub enum TensorAction {
    /// Store it under this GGUF name after these transforms.
    Keep {
        /// The GGUF tensor name (`blk.N.attn_q.weight`, …).
        name: String,
        /// Applied in order to the f32 values before the output type is encoded.
        transforms: Vec<Transform>,
    },
    /// Not part of the GGUF model (the converter drops it on purpose).
    Drop,
}

/// The HF tensor an architecture is asked about.
pub struct TensorRef<'a> {
    /// The Hugging Face tensor name (after the converter's generic renames).
    pub name: &'a str,
    /// First all-digit component of the name (the converter's block id).
    pub bid: Option<u32>,
    /// The tensor's dtype in the checkpoint.
    pub dtype: ckpt_core::DType,
    /// The model folder (some architectures read side files such as `modules.json`).
    pub model_dir: &'a Path,
}

/// Everything the parameter writers need ([`Architecture::write_params`]).
pub struct ParamContext<'a> {
    /// The model's config.json.
    pub hp: &'a Hparams,
    /// The KV list the `{arch}.*` keys are added to.
    pub kv: &'a mut KvList,
    /// `{arch}.block_count`: the number of transformer layers.
    pub block_count: u32,
    /// `general.file_type` (llama.cpp's `llama_ftype` number).
    pub file_type: u32,
}

/// Everything the tokenizer writers need ([`Architecture::write_vocab`]).
pub struct VocabContext<'a> {
    /// The model folder holding the tokenizer files.
    pub dir: &'a Path,
    /// The model's config.json.
    pub hp: &'a Hparams,
    /// The KV list the `tokenizer.ggml.*` keys are added to.
    pub kv: &'a mut KvList,
    /// The pre-tokenizer name to write instead of the one the BPE fingerprint gives
    /// ([`crate::HfToGgufOptions::pre_tokenizer`]).
    pub pre_override: Option<&'a str>,
    /// Where problems worth telling the user are added.
    pub warnings: &'a mut Vec<String>,
}

/// One supported Hugging Face architecture as the converter handles it (its `TextModel`
/// subclass): config defaults, tensor names and transforms, and the GGUF keys it writes. The
/// GGUF -> Hugging Face export reads the same description backwards. All descriptions are in
/// [`registry`].
pub trait Architecture: Sync {
    /// `architectures[0]` values of config.json handled by this description.
    fn hf_names(&self) -> &'static [&'static str];
    /// `general.architecture`.
    fn gguf_arch(&self) -> &'static str;
    /// Defaults transformers' config class fills in (the converter reads `AutoConfig.to_dict()`).
    fn config_defaults(&self, _hp: &mut Hparams) {}
    /// Tensors the converter generates from the config (rope factors), placed before the
    /// checkpoint's tensors; KVs added here come right after `general.architecture`.
    fn extra_tensors(&self, _hp: &Hparams, _kv: &mut KvList) -> Result<Vec<ckpt_core::Tensor>> {
        Ok(Vec::new())
    }
    /// `model_type` of the config.json of this architecture's first class in [`hf_names`]
    /// (written when a GGUF is exported back to a Hugging Face folder).
    ///
    /// [`hf_names`]: Architecture::hf_names
    fn model_type(&self) -> &'static str;
    /// The GGUF tensors this architecture has (gguf-py's `MODEL_TENSORS` entry); HF names are
    /// mapped through the shared tensor name table (gguf-py's `TensorNameMap`) restricted to
    /// these kinds.
    fn tensors(&self) -> &'static [Kind];
    /// Module path prefixes of this family's checkpoints: the GGUF -> Hugging Face export writes
    /// the first spelling of each kind that starts with one of them.
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["model.", "lm_head"]
    }
    /// Export spellings that the prefix rule does not pick.
    fn export_overrides(&self) -> &'static [(Kind, &'static str)] {
        &[]
    }
    /// Why `ckpt convert model.gguf OUT` cannot rebuild this architecture's Hugging Face folder,
    /// or None when it can: the converter's mapping is not invertible (XLM-RoBERTa's dropped
    /// position rows), transformers has no class for it, or the export does not rebuild it yet.
    fn export_refusal(&self) -> Option<&'static str> {
        None
    }
    /// Whether `ckpt convert model.gguf OUT` can rebuild this architecture's Hugging Face folder.
    fn exports(&self) -> bool {
        self.export_refusal().is_none()
    }
    /// Checkpoint tensors the converter split into several GGUF tensors, put back together by
    /// the GGUF -> Hugging Face export (DeepSeek's `kv_b_proj`).
    fn joins(&self) -> &'static [family::Join] {
        &[]
    }
    /// Per-layer scalars of the checkpoint that the converter writes as KV arrays instead of
    /// tensors (Apertus' xIELU parameters): the GGUF -> Hugging Face export writes them back
    /// as tensors.
    fn kv_tensors(&self) -> &'static [family::KvTensor] {
        &[]
    }
    /// The config.json fields the hyperparameter keys were copied from (the inverse of the
    /// declarative parameter list), for the GGUF -> Hugging Face export.
    fn config_fields(&self) -> Vec<family::ConfigField> {
        Vec::new()
    }
    /// The GGUF name of an HF tensor by the shared map (before any architecture quirk).
    fn map_name(&self, hf_name: &str, bid: Option<u32>, block_count: u32) -> Option<String> {
        tensor_map::map_name(self.tensors(), hf_name, bid, block_count)
    }
    /// (HF module path, GGUF name) pairs, `{bid}` for the block: the inverse map the
    /// GGUF -> Hugging Face export uses, derived from the same tables.
    fn export_names(&self) -> Vec<(&'static str, &'static str)> {
        tensor_map::export_names(self.tensors(), self.hf_prefixes(), self.export_overrides())
    }
    /// Another description that converts this config instead (the converter picks the GGUF
    /// architecture from the config: NomicBert with experts is "nomic-bert-moe").
    fn variant(&self, _hp: &Hparams) -> Option<&'static dyn Architecture> {
        None
    }
    /// Per-expert tensors this architecture stacks (mixtures of experts).
    fn experts(&self) -> Option<&'static family::Experts> {
        None
    }
    /// Rewrites the checkpoint's whole tensor list (after FP8 dequantization, before
    /// anything else); KVs added here follow those of [`Architecture::extra_tensors`]. GPT-OSS
    /// repacks its MXFP4 expert blocks and scales into GGUF MXFP4 tensors that come first, as
    /// the converter's `generate_extra_tensors` writes them (a tensor whose dtype is already a
    /// ggml block type is written as it is); Apertus turns its per-layer xIELU scalars into
    /// KV arrays.
    fn sources(
        &self,
        tensors: Vec<ckpt_core::Tensor>,
        _hp: &Hparams,
        _kv: &mut KvList,
    ) -> Result<Vec<ckpt_core::Tensor>> {
        Ok(tensors)
    }
    /// Replaces one checkpoint tensor (after the generic drops, before experts are gathered and
    /// names mapped) by the tensors the converter's `modify_tensors` makes of it: `None` keeps
    /// it as it is, an empty list drops it (DeepSeek's multi-token-prediction layers), several
    /// tensors split it (DeepSeek's `kv_b_proj` into `k_b_proj` and `v_b_proj`).
    fn expand(
        &self,
        _t: &ckpt_core::Tensor,
        _bid: Option<u32>,
        _hp: &Hparams,
        _block_count: u32,
    ) -> Result<Option<Vec<ckpt_core::Tensor>>> {
        Ok(None)
    }
    /// Maps one HF tensor (after the generic drops) to its GGUF name and transforms.
    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction>;
    /// Hyperparameter keys, written between `general.*` and `general.quantization_version`.
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()>;
    /// Tokenizer keys.
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()>;
}

static REGISTRY: &[&dyn Architecture] = &[
    &llama::LLAMA,
    &qwen::QWEN2,
    &qwen::QWEN3,
    &gemma::Gemma,
    &gemma::Gemma2,
    &gemma::Gemma3,
    &gpt2::Gpt2,
    &phi3::Phi3,
    &bert::Bert,
    &dense::SMOLLM3,
    &dense::GRANITE,
    &dense::OLMO2,
    &dense::SEED_OSS,
    &dense::STABLELM,
    &dense::COMMAND_R,
    &dense::COHERE2,
    &dense::EXAONE4,
    &dense::ERNIE4_5,
    &moe::QWEN2MOE,
    &moe::QWEN3MOE,
    &moe::MIXTRAL,
    &moe::OLMOE,
    &moe::ERNIE4_5_MOE,
    &dense2::GLM4,
    &dense2::HUNYUAN_DENSE,
    &dense2::LFM2,
    &multimodal::GEMMA3_VLM,
    &multimodal::LLAVA,
    &multimodal::MISTRAL3,
    &multimodal::QWEN2VL,
    &deepseek::DEEPSEEK_V2,
    &deepseek::DEEPSEEK_V3,
    &moe::GRANITE_MOE,
    &moe::GLM4_MOE,
    &moe::GPT_OSS,
    &gemma::EmbeddingGemma,
    &bert::NOMIC_BERT,
    &bert::NOMIC_BERT_MOE,
    &bert::XlmRoberta,
    &bert::ModernBert,
    &dense2::APERTUS,
    &multimodal::SMOLVLM_TEXT,
    &multimodal::QWEN3VL,
    &llama4::LLAMA4,
    &multimodal::LLAMA4_VLM,
    &multimodal::QWEN3VLMOE,
];

/// Every architecture description, in the order they are tried.
pub fn registry() -> &'static [&'static dyn Architecture] {
    REGISTRY
}

/// The description converting to GGUF architecture `gguf_arch` (the first one registered, whose
/// first class name is the canonical Hugging Face class for it).
pub fn find_gguf(gguf_arch: &str) -> Option<&'static dyn Architecture> {
    registry()
        .iter()
        .copied()
        .find(|a| a.gguf_arch() == gguf_arch)
}

pub(crate) fn find(hf_arch: &str) -> Option<&'static dyn Architecture> {
    registry()
        .iter()
        .copied()
        .find(|a| a.hf_names().contains(&hf_arch))
}

/// The description converting a config.json whose `architectures[0]` is `hf_arch`: [`find`],
/// then its [`Architecture::variant`] for this config.
pub(crate) fn find_for(hf_arch: &str, hp: &Hparams) -> Option<&'static dyn Architecture> {
    let arch = find(hf_arch)?;
    Some(arch.variant(hp).unwrap_or(arch))
}

/// The shared map's GGUF name for `t`, or the error naming the tensor.
pub(crate) fn map_or_err(
    arch: &dyn Architecture,
    t: &TensorRef,
    block_count: u32,
) -> Result<String> {
    arch.map_name(t.name, t.bid, block_count)
        .ok_or_else(|| unmapped(t.name, arch.gguf_arch()))
}

pub(crate) fn unmapped(hf_name: &str, arch: &str) -> Error {
    Error::Unsupported(format!("cannot map tensor '{hf_name}' to a GGUF name for architecture {arch} (no rule for it; refusing to drop it silently)"))
}

/// The rope settings the converter reads: `rope_parameters`/`rope_scaling` with the top-level
/// `rope_theta` etc. mirrored in.
pub(crate) fn rope_parameters(hp: &Hparams) -> serde_json::Map<String, Value> {
    let mut rp = match hp.get("rope_parameters").or_else(|| hp.get("rope_scaling")) {
        Some(Value::Object(m)) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if !rp.contains_key("full_attention") && !rp.contains_key("sliding_attention") {
        let theta = hp
            .find(&[
                "global_rope_theta",
                "rope_global_theta",
                "rope_theta_global",
                "rope_theta",
                "rotary_emb_base",
            ])
            .cloned();
        let local = hp
            .find(&[
                "local_rope_theta",
                "rope_local_theta",
                "rope_theta_local",
                "swa_rope_theta",
                "rope_local_base_freq",
            ])
            .cloned();
        if let Some(l) = local {
            rp.insert(
                "sliding_attention".into(),
                serde_json::json!({ "rope_theta": l }),
            );
        }
        if let (false, Some(t)) = (rp.contains_key("rope_theta"), theta) {
            rp.insert("rope_theta".into(), t);
        }
        if !rp.contains_key("rope_type") {
            if let Some(t) = rp.get("type").cloned() {
                rp.insert("rope_type".into(), t);
            }
        }
        if let (false, Some(v)) = (
            rp.contains_key("partial_rotary_factor"),
            hp.find(&["partial_rotary_factor", "rope_pct", "rope_percent"])
                .cloned(),
        ) {
            rp.insert("partial_rotary_factor".into(), v);
        }
        if let (false, Some(v)) = (
            rp.contains_key("original_max_position_embeddings"),
            hp.get("original_max_position_embeddings").cloned(),
        ) {
            rp.insert("original_max_position_embeddings".into(), v);
        }
    }
    rp
}

fn as_f32(v: &Value, what: &str, hp: &Hparams) -> Result<f32> {
    v.as_f64()
        .map(|f| f as f32)
        .ok_or_else(|| Error::invalid(&hp.path, format!("{what} is {v}, expected a number")))
}

fn as_u32(v: &Value, what: &str, hp: &Hparams) -> Result<u32> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| {
            Error::invalid(
                &hp.path,
                format!("{what} is {v}, expected a non-negative integer"),
            )
        })
}

/// `TextModel.set_gguf_parameters`, the keys every text model starts with.
pub(crate) fn write_base_params(ctx: &mut ParamContext, arch: &str) -> Result<()> {
    let hp = ctx.hp;
    let kv = &mut *ctx.kv;
    kv.u32(&format!("{arch}.block_count"), ctx.block_count);
    let u32_keys: [(&[&str], &str); 5] = [
        (
            &[
                "max_position_embeddings",
                "n_ctx",
                "n_positions",
                "max_length",
                "max_sequence_length",
                "model_max_length",
            ],
            "context_length",
        ),
        (&["hidden_size", "n_embd", "dim"], "embedding_length"),
        (
            &[
                "prefix_dense_intermediate_size",
                "dense_intermediate_size",
                "intermediate_size",
                "n_inner",
                "hidden_dim",
            ],
            "feed_forward_length",
        ),
        (
            &["num_attention_heads", "n_head", "n_heads"],
            "attention.head_count",
        ),
        (
            &["num_key_value_heads", "n_kv_heads"],
            "attention.head_count_kv",
        ),
    ];
    for (keys, gguf) in u32_keys {
        if let Some(v) = hp.find_u32(keys)? {
            kv.u32(&format!("{arch}.{gguf}"), v);
        }
    }
    if hp.get("is_causal") == Some(&Value::Bool(false)) {
        kv.bool(&format!("{arch}.attention.causal"), false);
    }
    let rp_all = rope_parameters(hp);
    let rp = match rp_all.get("full_attention") {
        Some(Value::Object(m)) => m.clone(),
        _ => rp_all.clone(),
    };
    if let Some(rope_type) = rp.get("rope_type").and_then(Value::as_str) {
        let factor = rp.get("factor").filter(|v| !v.is_null());
        match (rope_type, factor) {
            ("linear", Some(f)) => {
                kv.string(&format!("{arch}.rope.scaling.type"), "linear");
                kv.f32(
                    &format!("{arch}.rope.scaling.factor"),
                    as_f32(f, "rope factor", hp)?,
                );
            }
            ("yarn", Some(f)) => {
                kv.string(&format!("{arch}.rope.scaling.type"), "yarn");
                kv.f32(
                    &format!("{arch}.rope.scaling.factor"),
                    as_f32(f, "rope factor", hp)?,
                );
                let orig = rp.get("original_max_position_embeddings").ok_or_else(|| {
                    Error::invalid(
                        &hp.path,
                        "yarn rope scaling needs original_max_position_embeddings",
                    )
                })?;
                kv.u32(
                    &format!("{arch}.rope.scaling.original_context_length"),
                    as_u32(orig, "original_max_position_embeddings", hp)?,
                );
                let optional = [
                    (
                        &["extrapolation_factor"][..],
                        "rope.scaling.yarn_ext_factor",
                    ),
                    (
                        &["attention_factor", "attn_factor"][..],
                        "rope.scaling.yarn_attn_factor",
                    ),
                    (&["beta_fast"][..], "rope.scaling.yarn_beta_fast"),
                    (&["beta_slow"][..], "rope.scaling.yarn_beta_slow"),
                ];
                for (keys, gguf) in optional {
                    if let Some(v) = keys
                        .iter()
                        .find_map(|k| rp.get(*k))
                        .filter(|v| !v.is_null())
                    {
                        kv.f32(&format!("{arch}.{gguf}"), as_f32(v, gguf, hp)?);
                    }
                }
            }
            ("su" | "longrope", _) => kv.string(&format!("{arch}.rope.scaling.type"), "longrope"),
            _ => {}
        }
    }
    if let Some(Value::Array(sections)) = rp_all.get("mrope_section") {
        let mut s: Vec<i32> = sections
            .iter()
            .filter_map(Value::as_i64)
            .map(|v| v as i32)
            .collect();
        s.resize(4, 0);
        kv.array(
            &format!("{arch}.rope.dimension_sections"),
            ckpt_gguf::GgufValue::i32_array(s),
        );
    }
    if let Some(theta) = rp.get("rope_theta").filter(|v| !v.is_null()) {
        kv.f32(
            &format!("{arch}.rope.freq_base"),
            as_f32(theta, "rope_theta", hp)?,
        );
    }
    if let Some(local) = rp_all
        .get("sliding_attention")
        .and_then(|s| s.get("rope_theta"))
        .filter(|v| !v.is_null())
    {
        kv.f32(
            &format!("{arch}.rope.freq_base_swa"),
            as_f32(local, "local rope_theta", hp)?,
        );
    }
    if let Some(eps) = hp.find_f64(&["rms_norm_eps", "norm_eps"])? {
        kv.f32(
            &format!("{arch}.attention.layer_norm_rms_epsilon"),
            eps as f32,
        );
    }
    if let Some(eps) = hp.find_f64(&["layer_norm_eps", "layer_norm_epsilon", "norm_epsilon"])? {
        kv.f32(&format!("{arch}.attention.layer_norm_epsilon"), eps as f32);
    }
    family::write_params_list(ctx, arch, family::BASE_EXPERT_PARAMS)?;
    let kv = &mut *ctx.kv;
    const SCORE_FUNC: [&str; 6] = [
        "score_function",
        "scoring_func",
        "score_func",
        "moe_router_activation",
        "moe_router_activation_func",
        "expert_selection_fn",
    ];
    if let Some(v) = hp.find(&SCORE_FUNC) {
        // gguf-py's ExpertGatingFuncType
        let id = match v.as_str() {
            Some("softmax") => 1,
            Some("sigmoid") => 2,
            Some("sqrtsoftplus") => 4,
            _ => {
                return Err(Error::Unsupported(format!(
                    "{}: expert score gating function {v} is not supported (softmax, sigmoid or sqrtsoftplus)",
                    hp.path.display()
                )))
            }
        };
        kv.u32(&format!("{arch}.expert_gating_func"), id);
    }
    if let Some(head_dim) = hp.find_u32(&["head_dim"])? {
        kv.u32(&format!("{arch}.attention.key_length"), head_dim);
        kv.u32(&format!("{arch}.attention.value_length"), head_dim);
    }
    kv.u32("general.file_type", ctx.file_type);
    Ok(())
}

/// The (n_head, n_kv_head) pair the Q/K permutation needs.
pub(crate) fn head_counts(hp: &Hparams) -> Result<(u32, u32)> {
    let n_head = hp.require_u32(&["n_heads", "num_attention_heads"])?;
    let n_kv = hp
        .find_u32(&["n_kv_heads", "num_key_value_heads"])?
        .unwrap_or(n_head);
    Ok((n_head, n_kv))
}

#[cfg(test)]
mod transform_tests {
    use super::Transform;

    /// Gemma 3 with only tokenizer.json whose added tokens are also in the vocabulary: the
    /// converter's cut (vocab + added tokens) exceeds the rows and `t[:n]` keeps them all.
    #[test]
    fn truncating_past_the_end_keeps_every_row() {
        let t = Transform::TruncateRows { rows: 10 };
        assert_eq!(t.check(&[8, 4]), Ok(()));
        assert_eq!(t.output_shape(&[8, 4]), vec![8, 4]);
        assert_eq!(t.output_shape(&[12, 4]), vec![10, 4]);
        assert!(t.check(&[]).is_err());
    }
}
