//! Table-driven architectures: an architecture that follows the usual conventions is one
//! `Family` value — its tensor kinds, the config defaults transformers fills in, the
//! hyperparameter keys that are plain copies of config fields, whether Q/K are permuted, which
//! vocabulary loader applies — plus `Hooks` for the quirks that need code.
//!
//! A mixture-of-experts family adds its expert kinds (`ffn_{gate,up,down}_exps`,
//! `ffn_gate_inp`, shared experts) to `tensors`, `Param`s for its expert counts, and an
//! [`Experts`] entry in its hooks: the converter gathers `experts.{xid}.*` per block and stacks
//! them lazily into the 3-D tensors (see `arch::moe`).

use ckpt_core::{Error, Result, Tensor};
use serde_json::{json, Value};

use super::{
    head_counts, map_or_err, write_base_params, Architecture, Kind, ParamContext, TensorAction,
    TensorRef, Transform, VocabContext,
};
use crate::hparams::Hparams;
use crate::kv::KvList;

/// A transformers config default, applied when config.json lacks the key (the converter reads
/// `AutoConfig.to_dict()`).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Dflt {
    Num(&'static str, f64),
    Int(&'static str, u64),
    Flag(&'static str, bool),
    /// `.0` takes the value of `.1`.
    Copy(&'static str, &'static str),
    /// `head_dim` = `hidden_size / num_attention_heads`.
    HeadDim,
    /// `rope_theta` when neither `rope_parameters`, `rope_scaling` nor `rope_theta` is set.
    RopeTheta(f64),
}

/// A hyperparameter key `{arch}.KEY` written after `TextModel.set_gguf_parameters`' common ones.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Param {
    /// The first config field present, required, as u32.
    U32(&'static str, &'static [&'static str]),
    /// Written when a field is present and not null.
    OptU32(&'static str, &'static [&'static str]),
    OptF32(&'static str, &'static [&'static str]),
    /// Written when present and truthy (the converter's `if x := hparams.get(k):`).
    TruthyF32(&'static str, &'static [&'static str]),
    /// `rope.dimension_count`: `head_dim`, else `hidden_size / num_attention_heads`.
    RopeDims,
    /// `pooling_type` from a sentence-transformers `modules.json`.
    Pooling,
    /// The first config field present, required, as f32.
    F32(&'static str, &'static [&'static str]),
    /// A fixed string (e.g. `rope.scaling.type` = "none").
    Str(&'static str, &'static str),
    /// A config flag with the converter's default when absent.
    BoolOr(&'static str, &'static str, bool),
    /// `{arch}.block_count` (for families that do not start with the common keys).
    BlockCount,
    /// `general.file_type`.
    FileType,
    /// Code for one key (written at this position).
    Custom(fn(&mut ParamContext) -> Result<()>),
}

/// Which vocabulary loader the converter's `set_vocab` runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Vocab {
    /// `LlamaModel.set_vocab`: SentencePiece, else GPT-2 BPE; CodeLlama/Granite special cases.
    Llama,
    /// SentencePiece when there is a tokenizer.model, else GPT-2 BPE (`Qwen2Model.set_vocab`).
    SpmOrGpt2,
    /// `_set_vocab_gpt2`.
    Gpt2,
    /// `_set_vocab_sentencepiece`.
    Spm,
    /// `_set_vocab_gpt2` when there is a tokenizer.json, else the family's tiktoken file
    /// turned into a GPT-2 vocabulary (Hunyuan's `set_vocab`).
    Gpt2OrTiktoken(&'static crate::vocab::tiktoken::TiktokenScheme),
}

pub(crate) type ExtraTensorsFn = fn(&Hparams, &mut KvList) -> Result<Vec<Tensor>>;
pub(crate) type TensorFirstFn = fn(&TensorRef, &Hparams) -> Result<Option<TensorAction>>;
pub(crate) type ExpandFn = fn(&Tensor, Option<u32>, &Hparams, u32) -> Result<Option<Vec<Tensor>>>;
pub(crate) type SourcesFn = fn(Vec<Tensor>, &Hparams, &mut KvList) -> Result<Vec<Tensor>>;
pub(crate) type TransformsFn = fn(&TensorRef, &Hparams, &str, &mut Vec<Transform>) -> Result<()>;

/// Code for what the tables cannot say.
#[derive(Clone, Copy, Default)]
pub(crate) struct Hooks {
    /// More config defaults or rewrites, after [`Family::defaults`].
    pub config: Option<fn(&mut Hparams)>,
    /// Tensors generated from the config (placed first); KVs added go right after
    /// `general.architecture`.
    pub extra_tensors: Option<ExtraTensorsFn>,
    /// Decides a tensor before the shared map (drops, generated tensors kept as they are).
    pub tensor_first: Option<TensorFirstFn>,
    /// Extra transforms for a mapped tensor (GGUF name given).
    pub transforms: Option<TransformsFn>,
    /// Keys after the declarative [`Family::params`].
    pub params: Option<fn(&mut ParamContext) -> Result<()>>,
    /// Tokenizer keys after the [`Family::vocab`] loader.
    pub vocab: Option<fn(&mut VocabContext) -> Result<()>>,
    /// Per-expert tensors gathered into stacked 3-D tensors (mixtures of experts).
    pub experts: Option<&'static Experts>,
    /// Splits or drops a checkpoint tensor before anything else (see
    /// [`Architecture::expand`]).
    pub expand: Option<ExpandFn>,
    /// Rewrites the whole checkpoint tensor list first (see [`Architecture::sources`]).
    pub sources: Option<SourcesFn>,
    /// Split tensors the GGUF -> Hugging Face export puts back together (see
    /// [`Architecture::joins`]).
    pub joins: &'static [Join],
    /// Export spellings the prefix rule does not pick (see [`Architecture::export_overrides`]).
    pub export_overrides: &'static [(Kind, &'static str)],
    /// Per-layer scalars the converter writes as KV arrays (see
    /// [`Architecture::kv_tensors`]).
    pub kv_tensors: &'static [KvTensor],
}

/// A per-layer scalar of the checkpoint that the converter writes as a float array key, one
/// value per block in block order, instead of as tensors (Apertus' xIELU parameters).
#[derive(Debug)]
pub struct KvTensor {
    /// The GGUF key of the array (no architecture prefix).
    pub key: &'static str,
    /// The checkpoint tensor's name, with `{bid}`.
    pub hf: &'static str,
    /// The checkpoint tensor's shape (one element).
    pub shape: &'static [u64],
}

/// How a mixture-of-experts family's per-expert tensors are stacked, the way the converter's
/// `modify_tensors` gathers them: once a block has `n_experts * weights.len()` of them, one
/// stacked tensor per weight (in `weights` order) named `merged` goes through the shared map.
#[derive(Debug)]
pub struct Experts {
    /// Per-expert tensor name with `{bid}`, `{xid}` and `{w}`.
    pub per_expert: &'static str,
    /// Weight names, in the order the converter yields the stacked tensors.
    pub weights: &'static [&'static str],
    /// The stacked tensor's Hugging Face name (`{bid}`, `{w}`), mapped by the shared map.
    pub merged: &'static str,
    /// Config fields holding the expert count (first present).
    pub count: &'static [&'static str],
}

impl Hooks {
    pub(crate) const NONE: Hooks = Hooks {
        config: None,
        extra_tensors: None,
        tensor_first: None,
        transforms: None,
        params: None,
        vocab: None,
        experts: None,
        expand: None,
        sources: None,
        joins: &[],
        export_overrides: &[],
        kv_tensors: &[],
    };
}

/// One table-driven architecture.
pub(crate) struct Family {
    pub hf_names: &'static [&'static str],
    pub gguf_arch: &'static str,
    /// config.json `model_type` written by the export.
    pub model_type: &'static str,
    pub tensors: &'static [Kind],
    pub defaults: &'static [Dflt],
    /// Whether `TextModel.set_gguf_parameters`' common keys come first (families that write
    /// their own list from scratch set this to false).
    pub text_params: bool,
    pub params: &'static [Param],
    /// llama.cpp's `LlamaModel.permute` on q_proj/k_proj (weights and biases).
    pub permute_qk: bool,
    pub vocab: Vocab,
    pub hooks: Hooks,
}

/// The tensors of a Llama-style decoder (gguf-py `MODEL_TENSORS[LLAMA]` minus MoE).
pub(crate) const LLAMA_TENSORS: &[Kind] = &[
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
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
];

pub(crate) fn apply_defaults(hp: &mut Hparams, defaults: &[Dflt]) {
    for d in defaults {
        match *d {
            Dflt::Num(k, v) => hp.default(k, json!(v)),
            Dflt::Int(k, v) => hp.default(k, json!(v)),
            Dflt::Flag(k, v) => hp.default(k, json!(v)),
            Dflt::Copy(k, from) => {
                if let Some(v) = hp.get(from).cloned() {
                    hp.default(k, v);
                }
            }
            Dflt::HeadDim => {
                if let (Some(h), Some(n)) = (
                    hp.get("hidden_size").and_then(Value::as_u64),
                    hp.get("num_attention_heads").and_then(Value::as_u64),
                ) {
                    if let Some(d) = h.checked_div(n) {
                        hp.default("head_dim", json!(d));
                    }
                }
            }
            Dflt::RopeTheta(v) => {
                if hp.get("rope_parameters").is_none()
                    && hp.get("rope_scaling").is_none()
                    && hp.get("rope_theta").is_none()
                {
                    hp.default("rope_theta", json!(v));
                }
            }
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Writes the declarative keys of `params` for architecture `arch`.
pub(crate) fn write_params_list(
    ctx: &mut ParamContext,
    arch: &str,
    params: &[Param],
) -> Result<()> {
    let hp = ctx.hp;
    for p in params {
        match *p {
            Param::U32(key, fields) => {
                let v = hp.require_u32(fields)?;
                ctx.kv.u32(&format!("{arch}.{key}"), v);
            }
            Param::OptU32(key, fields) => {
                if let Some(v) = hp.find_u32(fields)? {
                    ctx.kv.u32(&format!("{arch}.{key}"), v);
                }
            }
            Param::OptF32(key, fields) => {
                if let Some(v) = hp.find_f64(fields)? {
                    ctx.kv.f32(&format!("{arch}.{key}"), v as f32);
                }
            }
            Param::TruthyF32(key, fields) => {
                if hp.find(fields).is_some_and(truthy) {
                    let v = hp.find_f64(fields)?.unwrap_or_default();
                    ctx.kv.f32(&format!("{arch}.{key}"), v as f32);
                }
            }
            Param::RopeDims => {
                let dim = match hp.find_u32(&["head_dim"])? {
                    Some(d) => d,
                    None => {
                        let hidden = hp.require_u32(&["hidden_size"])?;
                        let heads = hp.require_u32(&["num_attention_heads"])?;
                        if heads == 0 {
                            return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
                        }
                        hidden / heads
                    }
                };
                ctx.kv.u32(&format!("{arch}.rope.dimension_count"), dim);
            }
            Param::F32(key, fields) => {
                let v = hp.find_f64(fields)?.ok_or_else(|| {
                    Error::invalid(
                        &hp.path,
                        format!("missing hyperparameter: none of {fields:?} is set"),
                    )
                })?;
                ctx.kv.f32(&format!("{arch}.{key}"), v as f32);
            }
            Param::Str(key, v) => ctx.kv.string(&format!("{arch}.{key}"), v),
            Param::BoolOr(key, field, default) => {
                let v = match hp.map.get(field) {
                    None => default,
                    Some(v) => v.as_bool().ok_or_else(|| {
                        Error::invalid(&hp.path, format!("{field} is {v}, expected true or false"))
                    })?,
                };
                ctx.kv.bool(&format!("{arch}.{key}"), v);
            }
            Param::BlockCount => ctx.kv.u32(&format!("{arch}.block_count"), ctx.block_count),
            Param::FileType => ctx.kv.u32("general.file_type", ctx.file_type),
            Param::Custom(f) => f(ctx)?,
            Param::Pooling => {
                let dir = hp
                    .path
                    .parent()
                    .map(|p| p.to_path_buf())
                    .unwrap_or_default();
                super::qwen::write_pooling_type(ctx, &dir, arch)?;
            }
        }
    }
    Ok(())
}

/// Checkpoint tensors the converter splits into several GGUF tensors, and the inverse for the
/// GGUF -> Hugging Face export.
#[derive(Debug)]
pub struct Join {
    /// Hugging Face names of the parts (with `{bid}`), as the shared map names them.
    pub parts: &'static [&'static str],
    /// The checkpoint tensor they came from (with `{bid}`).
    pub fused: &'static str,
    /// The fused tensor's shape from the parts' (in `parts` order), or why they do not fit.
    pub shape: JoinShapeFn,
    /// The fused tensor's values from the parts' values and shapes (in `parts` order).
    pub join: JoinFn,
    /// Whether each index of the parts' first dimension (an expert, a head) makes a contiguous
    /// run of the fused tensor by itself, so the export can join a band of them at a time
    /// (`join` given the parts cut to the band along their first dimension) instead of whole
    /// tensors.
    pub banded: bool,
}

/// The fused tensor's shape from the parts' shapes, or why they do not fit.
pub type JoinShapeFn = fn(&[&[u64]]) -> std::result::Result<Vec<u64>, String>;

/// Puts split tensors back together: `(values, shape)` of each part -> the fused values.
pub type JoinFn = fn(&[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String>;

/// One config.json field that a GGUF key was copied from (the inverse of the family's
/// declarative parameter list).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConfigField {
    /// The GGUF key without the `{arch}.` prefix.
    pub key: &'static str,
    /// The config.json field to write.
    pub field: &'static str,
    /// How the value is written.
    pub kind: FieldKind,
}

/// How a [`ConfigField`]'s GGUF value is written to config.json.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    /// A JSON integer.
    Int,
    /// A JSON number (the GGUF value is an f32).
    Float,
    /// A JSON boolean.
    Bool,
}

/// The field a family's config class uses among `fields` (the converter reads the first one
/// present): the one its defaults name, else the first.
fn field_of(fields: &'static [&'static str], defaults: &[Dflt], more: &[&str]) -> &'static str {
    let defaulted = |f: &str| {
        defaults.iter().any(|d| match d {
            Dflt::Num(k, _) | Dflt::Int(k, _) | Dflt::Flag(k, _) | Dflt::Copy(k, _) => *k == f,
            _ => false,
        })
    };
    fields
        .iter()
        .copied()
        .find(|f| defaulted(f))
        .or_else(|| fields.iter().copied().find(|f| more.contains(f)))
        .unwrap_or(fields[0])
}

/// The expert keys `TextModel.set_gguf_parameters` copies (see [`super::write_base_params`]).
pub(crate) const BASE_EXPERT_PARAMS: &[Param] = &[
    Param::OptU32(
        "expert_count",
        &["num_local_experts", "num_experts", "n_routed_experts"],
    ),
    Param::OptU32(
        "expert_used_count",
        &[
            "num_experts_per_tok",
            "num_experts_per_token",
            "top_k_experts",
        ],
    ),
    Param::OptU32("expert_group_count", &["n_group"]),
    Param::OptU32("expert_group_used_count", &["topk_group"]),
];

impl Architecture for Family {
    fn experts(&self) -> Option<&'static Experts> {
        self.hooks.experts
    }
    fn sources(&self, tensors: Vec<Tensor>, hp: &Hparams, kv: &mut KvList) -> Result<Vec<Tensor>> {
        match self.hooks.sources {
            Some(f) => f(tensors, hp, kv),
            None => Ok(tensors),
        }
    }
    fn expand(
        &self,
        t: &Tensor,
        bid: Option<u32>,
        hp: &Hparams,
        block_count: u32,
    ) -> Result<Option<Vec<Tensor>>> {
        match self.hooks.expand {
            Some(f) => f(t, bid, hp, block_count),
            None => Ok(None),
        }
    }
    fn export_overrides(&self) -> &'static [(Kind, &'static str)] {
        self.hooks.export_overrides
    }
    fn joins(&self) -> &'static [Join] {
        self.hooks.joins
    }
    fn kv_tensors(&self) -> &'static [KvTensor] {
        self.hooks.kv_tensors
    }
    /// The shared map's export spellings, preferring for each kind one in the family's own
    /// mixture-of-experts module (`block_sparse_moe.` for Mixtral, `mlp.shared_experts.` for
    /// DeepSeek) when its expert spec or its overrides name one.
    fn export_names(&self) -> Vec<(&'static str, &'static str)> {
        let base = super::tensor_map::export_names(
            self.tensors,
            self.hf_prefixes(),
            self.hooks.export_overrides,
        );
        let Some(spec) = self.hooks.experts else {
            return base;
        };
        let Some((module, _)) = spec.per_expert.split_once(".experts.") else {
            return base;
        };
        let module = format!("{module}.");
        let own = super::tensor_map::export_names(
            self.tensors,
            &[module.as_str()],
            self.hooks.export_overrides,
        );
        base.into_iter()
            .map(|(hf, gguf)| {
                let preferred = own.iter().find(|(_, g)| *g == gguf).map(|(h, _)| *h);
                (preferred.unwrap_or(hf), gguf)
            })
            .collect()
    }
    fn config_fields(&self) -> Vec<ConfigField> {
        let expert_fields: Vec<&str> = self.hooks.experts.map_or(Vec::new(), |e| e.count.to_vec());
        // (Families without the common keys may still write them: DeepSeek's MQA view does.)
        let base = BASE_EXPERT_PARAMS;
        let own = |key: &str| {
            self.params.iter().any(|p| {
                matches!(*p, Param::U32(k, _) | Param::OptU32(k, _) | Param::OptF32(k, _)
                    | Param::TruthyF32(k, _) | Param::F32(k, _) if k == key)
            })
        };
        base.iter()
            .filter(|p| !matches!(**p, Param::OptU32(k, _) if own(k)))
            .chain(self.params)
            .filter_map(|p| {
                let (key, field, kind) = match *p {
                    Param::U32(k, f) | Param::OptU32(k, f) => (
                        k,
                        field_of(f, self.defaults, &expert_fields),
                        FieldKind::Int,
                    ),
                    Param::OptF32(k, f) | Param::TruthyF32(k, f) | Param::F32(k, f) => (
                        k,
                        field_of(f, self.defaults, &expert_fields),
                        FieldKind::Float,
                    ),
                    Param::BoolOr(k, f, _) => (k, f, FieldKind::Bool),
                    _ => return None,
                };
                Some(ConfigField { key, field, kind })
            })
            .collect()
    }
    fn hf_names(&self) -> &'static [&'static str] {
        self.hf_names
    }
    fn gguf_arch(&self) -> &'static str {
        self.gguf_arch
    }
    fn model_type(&self) -> &'static str {
        self.model_type
    }
    fn tensors(&self) -> &'static [Kind] {
        self.tensors
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        apply_defaults(hp, self.defaults);
        if let Some(f) = self.hooks.config {
            f(hp);
        }
    }
    fn extra_tensors(&self, hp: &Hparams, kv: &mut KvList) -> Result<Vec<Tensor>> {
        match self.hooks.extra_tensors {
            Some(f) => f(hp, kv),
            None => Ok(Vec::new()),
        }
    }
    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        if let Some(f) = self.hooks.tensor_first {
            if let Some(action) = f(t, hp)? {
                return Ok(action);
            }
        }
        let name = map_or_err(self, t, block_count)?;
        let mut transforms = Vec::new();
        if self.permute_qk {
            let (n_head, n_kv) = head_counts(hp)?;
            if t.name.ends_with("q_proj.weight") || t.name.ends_with("q_proj.bias") {
                transforms.push(Transform::PermuteRows {
                    heads: n_head as u64,
                });
            }
            if t.name.ends_with("k_proj.weight") || t.name.ends_with("k_proj.bias") {
                transforms.push(Transform::PermuteRows { heads: n_kv as u64 });
            }
        }
        if let Some(f) = self.hooks.transforms {
            f(t, hp, &name, &mut transforms)?;
        }
        Ok(TensorAction::Keep { name, transforms })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        if self.text_params {
            write_base_params(ctx, self.gguf_arch)?;
        }
        write_params_list(ctx, self.gguf_arch, self.params)?;
        if let Some(f) = self.hooks.params {
            f(ctx)?;
        }
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        match self.vocab {
            Vocab::Llama => super::llama::llama_vocab(ctx)?,
            Vocab::SpmOrGpt2 => super::qwen::qwen_vocab(ctx)?,
            Vocab::Spm => {
                let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
                crate::vocab::write_sentencepiece(ctx.dir, vocab_size, ctx.kv, ctx.warnings)?;
            }
            Vocab::Gpt2 => {
                let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
                crate::vocab::write_gpt2(
                    ctx.dir,
                    vocab_size,
                    ctx.pre_override,
                    ctx.kv,
                    ctx.warnings,
                )?
            }
            Vocab::Gpt2OrTiktoken(_) if ctx.dir.join("tokenizer.json").is_file() => {
                let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
                crate::vocab::write_gpt2(
                    ctx.dir,
                    vocab_size,
                    ctx.pre_override,
                    ctx.kv,
                    ctx.warnings,
                )?
            }
            Vocab::Gpt2OrTiktoken(scheme) => {
                let vocab_size = ctx.hp.require_u32(&["vocab_size"])? as usize;
                crate::vocab::tiktoken::write(
                    ctx.dir,
                    scheme,
                    vocab_size,
                    ctx.pre_override,
                    ctx.kv,
                    ctx.warnings,
                )?
            }
        }
        if let Some(f) = self.hooks.vocab {
            f(ctx)?;
        }
        Ok(())
    }
}
