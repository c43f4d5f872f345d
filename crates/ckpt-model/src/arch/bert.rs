//! `BertModel` (GGUF arch "bert"): a non-causal encoder for embeddings. Pooler and MLM/NSP heads
//! are dropped, TF-style `gamma`/`beta` names renamed, and the WordPiece vocabulary stored in
//! llama.cpp's "phantom space" form.

use ckpt_core::{Error, Result};
use ckpt_gguf::GgufValue;
use serde_json::{json, Value};

use super::qwen::write_pooling_type;
use super::{
    unmapped, write_base_params, Architecture, Kind, ParamContext, TensorAction, TensorRef,
    VocabContext,
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
