//! `BertModel` (GGUF arch "bert"): a non-causal encoder for embeddings. Pooler and MLM/NSP heads
//! are dropped, TF-style `gamma`/`beta` names renamed, and the WordPiece vocabulary stored in
//! llama.cpp's "phantom space" form.

use ckpt_core::{Error, Result, Tensor};
use ckpt_gguf::GgufValue;
use serde_json::{json, Value};

use super::qwen::write_pooling_type;
use super::split::read_rows;
use super::{
    unmapped, write_base_params, Architecture, Kind, ParamContext, TensorAction, TensorRef,
    Transform, VocabContext,
};
use crate::hparams::Hparams;
use crate::vocab::{self, special::SpecialVocab, TokenType};

pub struct Bert;

const BERT_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::TokenEmbdNorm,
    Kind::TokenTypes,
    Kind::PosEmbd,
    Kind::OutputNorm,
    Kind::AttnOutNorm,
    Kind::AttnQ,
    Kind::AttnK,
    Kind::AttnV,
    Kind::AttnOut,
    Kind::FfnUp,
    Kind::FfnDown,
    Kind::LayerOutNorm,
];

/// The converter's `BertModel.filter_tensors` renames (applied before mapping).
pub fn bert_name(name: &str) -> Option<String> {
    let mut n = name.strip_prefix("bert.").unwrap_or(name).to_string();
    if let Some(base) = n.strip_suffix(".gamma") {
        n = format!("{base}.weight");
    } else if let Some(base) = n.strip_suffix(".beta") {
        n = format!("{base}.bias");
    }
    let dropped = matches!(
        n.as_str(),
        "embeddings.position_ids" | "pooler.dense.weight" | "pooler.dense.bias"
    ) || n.starts_with("cls.predictions")
        || n.starts_with("cls.seq_relationship");
    (!dropped).then_some(n)
}

/// Classifier labels of a sequence-classification checkpoint (the two dummy labels AutoConfig
/// invents do not count).
fn class_labels(hp: &Hparams) -> Option<Vec<String>> {
    let Some(Value::Object(map)) = hp.get("id2label") else {
        return None;
    };
    if map.len() == 2 && map.get("0").and_then(Value::as_str) == Some("LABEL_0") {
        return None;
    }
    let mut items: Vec<(&String, &Value)> = map.iter().collect();
    items.sort_by(|a, b| a.0.cmp(b.0));
    Some(
        items
            .into_iter()
            .map(|(_, v)| {
                v.as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| v.to_string())
            })
            .collect(),
    )
}

impl Architecture for Bert {
    fn hf_names(&self) -> &'static [&'static str] {
        &["BertModel"]
    }
    fn gguf_arch(&self) -> &'static str {
        "bert"
    }
    fn model_type(&self) -> &'static str {
        "bert"
    }
    fn tensors(&self) -> &'static [Kind] {
        BERT_TENSORS
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["embeddings.", "encoder."]
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        hp.default("layer_norm_eps", json!(1e-12));
        hp.default("max_position_embeddings", json!(512));
        hp.default("type_vocab_size", json!(2));
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        let Some(name) = bert_name(t.name) else {
            return Ok(TensorAction::Drop);
        };
        let gguf = self
            .map_name(&name, t.bid, block_count)
            .ok_or_else(|| unmapped(t.name, "bert"))?;
        Ok(TensorAction::Keep {
            name: gguf,
            transforms: Vec::new(),
        })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        write_base_params(ctx, "bert")?;
        ctx.kv.bool("bert.attention.causal", false);
        let dir = ctx
            .hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        write_pooling_type(ctx, &dir, "bert")?;
        if let Some(labels) = class_labels(ctx.hp) {
            ctx.kv.array(
                "bert.classifier.output_labels",
                GgufValue::string_array(labels),
            );
        }
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        if !ctx.dir.join("tokenizer.json").is_file() {
            return Err(Error::Unsupported(format!("{}: BERT vocabularies are read from tokenizer.json (vocab.txt alone is not supported)", ctx.dir.display())));
        }
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        let v = vocab::bpe::load(ctx.dir, vocab_size, ctx.pre_override)?;
        let type_count = ctx.hp.find_u32(&["type_vocab_size"])?.unwrap_or(1);
        ctx.kv.u32("tokenizer.ggml.token_type_count", type_count);
        // llama.cpp's WordPiece tokenizer expects word starts marked with U+2581 and no "##".
        let tokens: Vec<String> = v
            .tokens
            .iter()
            .zip(&v.types)
            .map(|(tok, ty)| match (ty, tok.strip_prefix("##")) {
                (TokenType::Control, _) => tok.clone(),
                (_, Some(rest)) => rest.to_string(),
                _ => format!("\u{2581}{tok}"),
            })
            .collect();
        ctx.kv.string("tokenizer.ggml.model", "bert");
        ctx.kv.string("tokenizer.ggml.pre", &v.pre);
        let n = tokens.len();
        ctx.kv
            .array("tokenizer.ggml.tokens", GgufValue::string_array(tokens));
        ctx.kv.array(
            "tokenizer.ggml.token_type",
            GgufValue::i32_array(v.types.iter().map(|t| *t as i32)),
        );
        let special = SpecialVocab::load(ctx.dir, false, Some(n))?;
        ctx.warnings.extend(special.warnings.iter().cloned());
        special.write(ctx.kv);
        Ok(())
    }
}

/// `NomicBertModel`: nomic-embed-text v1/v1.5 (GGUF arch "nomic-bert": BERT with rotary
/// positions, a fused `Wqkv`, a SwiGLU MLP — `fc11` up, `fc12` gate, `fc2` down — and no
/// linear biases) and, when the config has `moe_every_n_layers`, nomic-embed-text-v2-moe
/// ("nomic-bert-moe": biases, GELU `fc1`/`fc2` layers alternating with mixtures of experts whose
/// `w1`/`w2` are stored as `[experts * n_inner, n_embd]` matrices). The converter accepts only
/// these layouts (its asserts). Either takes a WordPiece or an XLM-RoBERTa (Unigram) tokenizer;
/// with the latter the context loses `pad_token_id + 1` positions, as for XLM-RoBERTa.
pub struct NomicBert {
    moe: bool,
}

/// nomic-embed-text v1/v1.5.
pub static NOMIC_BERT: NomicBert = NomicBert { moe: false };
/// nomic-embed-text-v2-moe: chosen by [`NOMIC_BERT`] for a config with experts (it has no class
/// name of its own).
pub static NOMIC_BERT_MOE: NomicBert = NomicBert { moe: true };

const NOMIC_BERT_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::TokenEmbdNorm,
    Kind::TokenTypes,
    Kind::PosEmbd,
    Kind::OutputNorm,
    Kind::AttnOutNorm,
    Kind::AttnQkv,
    Kind::AttnOut,
    Kind::FfnGate,
    Kind::FfnDown,
    Kind::FfnUp,
    Kind::LayerOutNorm,
];

const NOMIC_BERT_MOE_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::TokenEmbdNorm,
    Kind::TokenTypes,
    Kind::PosEmbd,
    Kind::OutputNorm,
    Kind::AttnOutNorm,
    Kind::AttnQkv,
    Kind::AttnOut,
    Kind::FfnDown,
    Kind::FfnUp,
    Kind::FfnGateInp,
    Kind::FfnDownExps,
    Kind::FfnUpExps,
    Kind::LayerOutNorm,
];

/// transformers' `NomicBertConfig` defaults.
const NOMIC_DEFAULTS: &[super::family::Dflt] = {
    use super::family::Dflt::*;
    &[
        Int("hidden_size", 768),
        Int("num_hidden_layers", 12),
        Int("num_attention_heads", 12),
        Int("intermediate_size", 3072),
        Int("max_position_embeddings", 2048),
        Int("type_vocab_size", 2),
        Num("layer_norm_eps", 1e-12),
        Int("pad_token_id", 0),
        HeadDim,
    ]
};

/// The remote-code config names next to the names transformers reads.
const NOMIC_LEGACY: &[(&str, &str)] = &[
    ("n_embd", "hidden_size"),
    ("n_layer", "num_hidden_layers"),
    ("n_head", "num_attention_heads"),
    ("n_inner", "intermediate_size"),
];

/// The converter's `_is_tokenizer_xlmroberta`: a Unigram tokenizer.json (WordPiece otherwise).
fn nomic_tokenizer_is_unigram(dir: &std::path::Path) -> Result<bool> {
    let path = dir.join("tokenizer.json");
    let tok = crate::hparams::read_json_object(&path)?;
    match tok
        .get("model")
        .and_then(|m| m.get("type"))
        .and_then(Value::as_str)
    {
        Some("Unigram") => Ok(true),
        Some("WordPiece") => Ok(false),
        other => Err(Error::Unsupported(format!(
            "{}: unknown tokenizer model type {other:?} (the converter takes WordPiece or Unigram)",
            path.display()
        ))),
    }
}

impl NomicBert {
    /// The converter's checks of a NomicBert config (each an assert or a ValueError there).
    fn check(&self, hp: &Hparams) -> Result<()> {
        let bad = |what: String| {
            Error::Unsupported(format!(
                "{}: {what} (the converter accepts only nomic-embed-text v1/v1.5's and v2-moe's layouts)",
                hp.path.display()
            ))
        };
        let expect = |key: &str, want: Value| -> Result<()> {
            let got = hp.map.get(key).cloned().unwrap_or(Value::Null);
            let same = match (&got, &want) {
                (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                _ => got == want,
            };
            if same {
                Ok(())
            } else {
                Err(bad(format!("{key} is {got}, expected {want}")))
            }
        };
        for (legacy, name) in NOMIC_LEGACY {
            if let (Some(a), Some(b)) = (hp.get(legacy), hp.get(name)) {
                if a != b {
                    return Err(bad(format!(
                        "{legacy} is {a} but transformers' NomicBertConfig reads {name} = {b}, and \
                         the converter would write {b} (add \"{name}\": {a} to config.json)"
                    )));
                }
            }
        }
        let act = if self.moe { "gelu" } else { "swiglu" };
        expect("activation_function", json!(act))?;
        expect("causal", json!(false))?;
        // Linear biases exactly when there are experts.
        expect("qkv_proj_bias", json!(self.moe))?;
        expect("mlp_fc1_bias", json!(self.moe))?;
        expect("mlp_fc2_bias", json!(self.moe))?;
        expect("prenorm", json!(false))?;
        expect("rotary_emb_fraction", json!(1.0))?;
        expect("rotary_emb_interleaved", json!(false))?;
        expect("rotary_emb_scale_base", Value::Null)?;
        Ok(())
    }

    /// The converter's `modify_tensors` for the experts: `w1` viewed as
    /// `[experts, n_inner, n_embd]`, `w2` likewise then transposed per expert to
    /// `[experts, n_embd, n_inner]`, both renamed with `.weight`.
    fn expert_matrix(&self, t: &Tensor, hp: &Hparams) -> Result<Option<Vec<Tensor>>> {
        let transpose = if t.name.ends_with("mlp.experts.mlp.w1") {
            false
        } else if t.name.ends_with("mlp.experts.mlp.w2") {
            true
        } else {
            return Ok(None);
        };
        let e = hp.require_u32(&["num_local_experts", "num_experts"])? as usize;
        let f = hp.require_u32(&["n_inner"])? as usize;
        let h = hp.require_u32(&["n_embd"])? as usize;
        let elem = t.dtype.elem_size();
        let (Some(elem), [rows, cols]) = (elem, t.shape.as_slice()) else {
            return Err(Error::invalid(
                &hp.path,
                format!(
                    "tensor '{}' has shape {:?} and dtype {}, expected a matrix [{}, {h}]",
                    t.name,
                    t.shape,
                    t.dtype,
                    e * f
                ),
            ));
        };
        if (*rows as usize, *cols as usize) != (e * f, h) {
            return Err(Error::invalid(
                &hp.path,
                format!(
                    "tensor '{}' has shape {:?}, expected [num_experts {e} x n_inner {f}, n_embd {h}]",
                    t.name, t.shape
                ),
            ));
        }
        let src = t.clone();
        let row = h * elem;
        let shape = if transpose {
            vec![e as u64, h as u64, f as u64]
        } else {
            vec![e as u64, f as u64, h as u64]
        };
        let out = Tensor::from_rows(
            format!("{}.weight", t.name),
            t.dtype,
            shape,
            e,
            f * row,
            move |range, dst| {
                for (i, x) in range.enumerate() {
                    let block = read_rows(&src, x * f..(x + 1) * f, row)?;
                    let out = &mut dst[i * f * row..(i + 1) * f * row];
                    if !transpose {
                        out.copy_from_slice(&block);
                        continue;
                    }
                    // [n_inner, n_embd] -> [n_embd, n_inner]
                    for j in 0..f {
                        for c in 0..h {
                            let s = (j * h + c) * elem;
                            let d = (c * f + j) * elem;
                            out[d..d + elem].copy_from_slice(&block[s..s + elem]);
                        }
                    }
                }
                Ok(())
            },
        );
        Ok(Some(vec![out]))
    }
}

impl Architecture for NomicBert {
    fn hf_names(&self) -> &'static [&'static str] {
        if self.moe {
            &[]
        } else {
            &["NomicBertModel"]
        }
    }
    fn gguf_arch(&self) -> &'static str {
        if self.moe {
            "nomic-bert-moe"
        } else {
            "nomic-bert"
        }
    }
    fn model_type(&self) -> &'static str {
        "nomic_bert"
    }
    fn tensors(&self) -> &'static [Kind] {
        if self.moe {
            NOMIC_BERT_MOE_TENSORS
        } else {
            NOMIC_BERT_TENSORS
        }
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["embeddings.", "encoder.", "emb_ln"]
    }
    fn export_refusal(&self) -> Option<&'static str> {
        Some("not exported: NomicBERT is a remote-code model, transformers has no class to load an exported folder with")
    }
    fn variant(&self, hp: &Hparams) -> Option<&'static dyn Architecture> {
        // `bool(hparams.get("moe_every_n_layers"))`
        let moe = match hp.get("moe_every_n_layers") {
            None | Some(Value::Bool(false)) => false,
            Some(Value::Number(n)) => n.as_f64() != Some(0.0),
            Some(_) => true,
        };
        (moe && !self.moe).then_some(&NOMIC_BERT_MOE as &dyn Architecture)
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        // transformers' own NomicBertConfig (the converter reads its to_dict()) ignores the
        // remote-code names n_embd, n_layer, … and fills in nomic-embed-text-v1.5's sizes;
        // write_params refuses configs whose own sizes differ from these.
        super::family::apply_defaults(hp, NOMIC_DEFAULTS);
        if hp.get("rope_parameters").is_none() {
            let theta = hp.get("rope_theta").cloned().unwrap_or(json!(1000.0));
            hp.map.insert(
                "rope_parameters".into(),
                json!({ "rope_theta": theta, "rope_type": "default" }),
            );
        }
        // v1/v1.5 are trained for 2048 tokens, v2-moe for 512 (checked in write_params).
        let npos = hp.get("n_positions").and_then(Value::as_u64);
        let mtp = hp
            .get("max_trained_positions")
            .and_then(Value::as_u64)
            .unwrap_or(2048);
        match (npos, mtp) {
            (Some(8192), 2048) => {
                hp.map.insert("n_positions".into(), json!(2048));
            }
            (Some(2048), 2048) => {
                hp.map.insert("n_positions".into(), json!(512));
            }
            _ => {}
        }
        // With an XLM-RoBERTa tokenizer, `_xlmroberta_tokenizer_init`: the context loses the
        // positions before `pad_token_id + 1` (an unreadable tokenizer is reported later).
        let dir = hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        if nomic_tokenizer_is_unigram(&dir).unwrap_or(false) {
            if let (Some(pad), Some(n)) = (
                hp.get("pad_token_id").and_then(Value::as_i64),
                hp.get("max_position_embeddings").and_then(Value::as_i64),
            ) {
                hp.map
                    .insert("max_position_embeddings".into(), json!(n - 1 - pad));
            }
        }
    }
    fn expand(
        &self,
        t: &Tensor,
        _bid: Option<u32>,
        hp: &Hparams,
        _block_count: u32,
    ) -> Result<Option<Vec<Tensor>>> {
        if !self.moe {
            return Ok(None);
        }
        self.expert_matrix(t, hp)
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        if t.name.contains("mlp.experts.bias") {
            return Ok(TensorAction::Drop);
        }
        let Some(name) = bert_name(t.name) else {
            return Ok(TensorAction::Drop);
        };
        let gguf = self
            .map_name(&name, t.bid, block_count)
            .ok_or_else(|| unmapped(t.name, self.gguf_arch()))?;
        Ok(TensorAction::Keep {
            name: gguf,
            transforms: Vec::new(),
        })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        let hp = ctx.hp;
        let arch = self.gguf_arch();
        // config.json as written (config_defaults already cut n_positions when recognized).
        let raw = crate::hparams::read_json_object(&hp.path)?;
        let npos = raw.get("n_positions").cloned().unwrap_or(Value::Null);
        let mtp = raw
            .get("max_trained_positions")
            .cloned()
            .unwrap_or(json!(2048));
        if mtp != json!(2048) || (npos != json!(8192) && npos != json!(2048)) {
            return Err(Error::Unsupported(format!(
                "{}: unrecognized parameters: n_positions={npos}, max_trained_positions={mtp} (nomic-embed-text v1/v1.5 have 8192 and 2048, v2-moe 2048 and 2048)",
                hp.path.display(),
            )));
        }
        self.check(hp)?;
        write_base_params(ctx, arch)?;
        ctx.kv.bool(&format!("{arch}.attention.causal"), false);
        let dir = ctx
            .hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        write_pooling_type(ctx, &dir, arch)?;
        if let Some(labels) = class_labels(ctx.hp) {
            ctx.kv.array(
                &format!("{arch}.classifier.output_labels"),
                GgufValue::string_array(labels),
            );
        }
        if self.moe {
            let every = ctx.hp.require_u32(&["moe_every_n_layers"])?;
            ctx.kv.u32(&format!("{arch}.moe_every_n_layers"), every);
            let top_k = ctx.hp.require_u32(&["moe_top_k"])?;
            ctx.kv.u32(&format!("{arch}.expert_used_count"), top_k);
        }
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        if !nomic_tokenizer_is_unigram(ctx.dir)? {
            return Bert.write_vocab(ctx);
        }
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        let type_count = ctx.hp.find_u32(&["type_vocab_size"])?.unwrap_or(1);
        // sentencepiece.bpe.model lacks v2-moe's <mask>: the converter writes it at 250001.
        let mask = self.moe.then_some(250001);
        vocab::write_xlmroberta(ctx.dir, vocab_size, type_count, mask, ctx.kv, ctx.warnings)
    }
}

/// `XLMRobertaModel` (bge-m3, multilingual-e5; GGUF arch "bert"): BERT tensors whose position
/// embeddings start at `pad_token_id + 1` (the converter drops those first rows and shortens the
/// context by as much), with the SentencePiece Unigram vocabulary written for llama.cpp's "t5"
/// tokenizer.
pub struct XlmRoberta;

/// transformers' `XLMRobertaConfig` defaults (the converter reads its `to_dict()`).
const XLMR_DEFAULTS: &[super::family::Dflt] = {
    use super::family::Dflt::*;
    &[
        Int("hidden_size", 768),
        Int("num_hidden_layers", 12),
        Int("num_attention_heads", 12),
        Int("intermediate_size", 3072),
        Int("max_position_embeddings", 512),
        Int("type_vocab_size", 2),
        Num("layer_norm_eps", 1e-12),
        Int("pad_token_id", 1),
    ]
};

/// The rows the converter drops from the position embeddings: `1 + pad_token_id`.
fn position_offset(hp: &Hparams) -> Result<Option<u64>> {
    Ok(hp.find_u32(&["pad_token_id"])?.map(|p| 1 + p as u64))
}

impl Architecture for XlmRoberta {
    fn hf_names(&self) -> &'static [&'static str] {
        &["XLMRobertaModel"]
    }
    fn gguf_arch(&self) -> &'static str {
        "bert"
    }
    fn model_type(&self) -> &'static str {
        "xlm-roberta"
    }
    fn tensors(&self) -> &'static [Kind] {
        BERT_TENSORS
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["embeddings.", "encoder."]
    }
    fn export_refusal(&self) -> Option<&'static str> {
        Some("not invertible: the converter drops the first pad_token_id + 1 rows of the position embeddings")
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        super::family::apply_defaults(hp, XLMR_DEFAULTS);
        // The converter's _xlmroberta_tokenizer_init: the context loses the skipped positions.
        let offset = hp.get("pad_token_id").and_then(Value::as_u64);
        if let (Some(off), Some(n)) = (
            offset,
            hp.get("max_position_embeddings").and_then(Value::as_i64),
        ) {
            hp.map
                .insert("max_position_embeddings".into(), json!(n - 1 - off as i64));
        }
    }
    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        if t.name.contains(".parametrizations.") || t.name.contains("lora_") {
            return Err(Error::Unsupported(format!(
                "tensor '{}': jina-embeddings-v3 LoRA adaptations are not supported",
                t.name
            )));
        }
        let stripped = t.name.strip_prefix("roberta.").unwrap_or(t.name);
        let Some(name) = bert_name(stripped) else {
            return Ok(TensorAction::Drop);
        };
        let gguf = self
            .map_name(&name, t.bid, block_count)
            .ok_or_else(|| unmapped(t.name, "bert"))?;
        let mut transforms = Vec::new();
        if name == "embeddings.position_embeddings.weight" {
            if let Some(rows) = position_offset(hp)? {
                transforms.push(Transform::SkipRows { rows });
            }
        }
        Ok(TensorAction::Keep {
            name: gguf,
            transforms,
        })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        if ctx.hp.get("lora_adaptations").is_some() {
            return Err(Error::Unsupported(format!(
                "{}: jina-embeddings-v3 (lora_adaptations, GGUF arch jina-bert-v3) is not supported",
                ctx.hp.path.display()
            )));
        }
        Bert.write_params(ctx)
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        let type_count = ctx.hp.find_u32(&["type_vocab_size"])?.unwrap_or(1);
        vocab::write_xlmroberta(ctx.dir, vocab_size, type_count, None, ctx.kv, ctx.warnings)
    }
}

/// `ModernBertModel` (GGUF arch "modern-bert"): fused `Wqkv`, GeGLU/SwiGLU `Wi` (up and gate in
/// one), local/global attention layers, GPT-2 BPE vocabulary with BOS, EOS and SEP added.
pub struct ModernBert;

const MODERN_BERT_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::TokenEmbdNorm,
    Kind::OutputNorm,
    Kind::AttnNorm,
    Kind::AttnOut,
    Kind::AttnQkv,
    Kind::FfnUp,
    Kind::FfnDown,
    Kind::FfnNorm,
];

/// transformers' `ModernBertConfig` defaults the converter sees.
const MODERN_BERT_DEFAULTS: &[super::family::Dflt] = {
    use super::family::Dflt::*;
    &[
        Int("max_position_embeddings", 8192),
        Num("norm_eps", 1e-5),
        Int("local_attention", 128),
        Int("global_attn_every_n_layers", 3),
    ]
};

impl Architecture for ModernBert {
    fn hf_names(&self) -> &'static [&'static str] {
        &["ModernBertModel"]
    }
    fn gguf_arch(&self) -> &'static str {
        "modern-bert"
    }
    fn model_type(&self) -> &'static str {
        "modernbert"
    }
    fn tensors(&self) -> &'static [Kind] {
        MODERN_BERT_TENSORS
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        &["embeddings.", "layers.", "final_norm"]
    }
    /// The checkpoint's own names (BERT's and Llama's spellings share the prefixes).
    fn export_overrides(&self) -> &'static [(Kind, &'static str)] {
        &[
            (Kind::TokenEmbd, "embeddings.tok_embeddings"),
            (Kind::TokenEmbdNorm, "embeddings.norm"),
            (Kind::OutputNorm, "final_norm"),
            (Kind::AttnNorm, "layers.{bid}.attn_norm"),
            (Kind::AttnQkv, "layers.{bid}.attn.Wqkv"),
            (Kind::AttnOut, "layers.{bid}.attn.Wo"),
            (Kind::FfnNorm, "layers.{bid}.mlp_norm"),
            (Kind::FfnUp, "layers.{bid}.mlp.Wi"),
            (Kind::FfnDown, "layers.{bid}.mlp.Wo"),
        ]
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        super::family::apply_defaults(hp, MODERN_BERT_DEFAULTS);
        hp.default("hidden_activation", json!("gelu"));
        hp.default("classifier_pooling", json!("cls"));
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        let stripped = t.name.strip_prefix("model.").unwrap_or(t.name);
        let Some(name) = bert_name(stripped) else {
            return Ok(TensorAction::Drop);
        };
        let gguf = self
            .map_name(&name, t.bid, block_count)
            .ok_or_else(|| unmapped(t.name, "modern-bert"))?;
        Ok(TensorAction::Keep {
            name: gguf,
            transforms: Vec::new(),
        })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        const A: &str = "modern-bert";
        write_base_params(ctx, A)?;
        ctx.kv.bool(&format!("{A}.attention.causal"), false);
        let dir = ctx
            .hp
            .path
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        write_pooling_type(ctx, &dir, A)?;
        if let Some(cp) = ctx.hp.get("classifier_pooling") {
            let t = match cp.as_str() {
                Some("mean") => 1,
                Some("cls") => 2,
                _ => {
                    return Err(Error::Unsupported(format!(
                        "{}: classifier_pooling {cp} is not supported (cls or mean)",
                        ctx.hp.path.display()
                    )))
                }
            };
            ctx.kv.u32(&format!("{A}.classifier.pooling_type"), t);
        }
        if let Some(labels) = class_labels(ctx.hp) {
            ctx.kv.array(
                &format!("{A}.classifier.output_labels"),
                GgufValue::string_array(labels),
            );
        }
        let hp = ctx.hp;
        ctx.kv.u32(
            &format!("{A}.attention.sliding_window"),
            hp.require_u32(&["local_attention"])?,
        );
        if let Some(p) = hp.find_u32(&["global_attn_every_n_layers"])? {
            ctx.kv
                .u32(&format!("{A}.attention.sliding_window_pattern"), p);
        }
        ctx.kv.string(&format!("{A}.rope.scaling.type"), "none");
        ctx.kv
            .u32(&format!("{A}.vocab_size"), hp.require_u32(&["vocab_size"])?);
        if let Some(act) = hp.get("hidden_activation").and_then(Value::as_str) {
            ctx.kv.string(&format!("{A}.hidden_activation"), act);
        }
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        ctx.kv.bool("tokenizer.ggml.add_bos_token", true);
        ctx.kv.bool("tokenizer.ggml.add_eos_token", true);
        ctx.kv.bool("tokenizer.ggml.add_sep_token", true);
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        vocab::write_gpt2(ctx.dir, vocab_size, ctx.pre_override, ctx.kv, ctx.warnings)
    }
}
