//! `Phi3ForCausalLM` (GGUF arch "phi3"): fused qkv_proj and gate_up_proj, longrope factor
//! tensors generated from the config, its own SentencePiece reading (Phi-4: GPT-2 BPE).

use ckpt_core::{DType, Error, Result, Tensor};
use ckpt_gguf::GgufValue;
use serde_json::{Map, Value};

use super::{
    map_or_err, rope_parameters, Architecture, Kind, ParamContext, TensorAction, TensorRef,
    VocabContext,
};
use crate::hparams::{read_optional_json, Hparams};
use crate::kv::KvList;
use crate::vocab::{
    self,
    special::SpecialVocab,
    spm::{PieceType, SentencePieceModel},
    TokenType,
};

pub struct Phi3;

const PHI3_TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::RopeFactorsLong,
    Kind::RopeFactorsShort,
    Kind::AttnNorm,
    Kind::AttnQkv,
    Kind::AttnOut,
    Kind::FfnNorm,
    Kind::FfnDown,
    Kind::FfnUp,
];

struct Dims {
    n_embd: u32,
    n_head: u32,
    max_pos: u32,
    orig_max_pos: u32,
    rope_dims: u32,
    rope: Map<String, Value>,
}

fn dims(hp: &Hparams) -> Result<Dims> {
    let n_embd = hp.require_u32(&["hidden_size", "n_embd"])?;
    let n_head = hp.require_u32(&["num_attention_heads", "n_head"])?;
    let max_pos = hp.require_u32(&["n_positions", "max_position_embeddings"])?;
    let rope = rope_parameters(hp);
    let orig_max_pos = rope
        .get("original_max_position_embeddings")
        .and_then(Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| {
            Error::invalid(
                &hp.path,
                "missing hyperparameter original_max_position_embeddings",
            )
        })?;
    let pct = rope
        .get("partial_rotary_factor")
        .and_then(Value::as_f64)
        .unwrap_or(1.0);
    if n_head == 0 {
        return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
    }
    // int(rot_pct * n_embd) // n_head
    let rope_dims = ((pct * n_embd as f64).trunc() as u64 / n_head as u64) as u32;
    Ok(Dims {
        n_embd,
        n_head,
        max_pos,
        orig_max_pos,
        rope_dims,
        rope,
    })
}

fn factor_list(rope: &Map<String, Value>, key: &str, hp: &Hparams) -> Result<Option<Vec<f32>>> {
    match rope.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(a)) if a.is_empty() => Ok(None),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| {
                v.as_f64()
                    .map(|f| f as f32)
                    .ok_or_else(|| Error::invalid(&hp.path, format!("rope {key} has a non-number")))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some),
        Some(other) => Err(Error::invalid(
            &hp.path,
            format!("rope {key} is {other}, expected a list"),
        )),
    }
}

fn f32_tensor(name: &str, values: Vec<f32>) -> Tensor {
    let n = values.len() as u64;
    Tensor::computed(name, DType::F32, vec![n], move || {
        Ok(values.iter().flat_map(|v| v.to_le_bytes()).collect())
    })
}

impl Architecture for Phi3 {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Phi3ForCausalLM"]
    }
    fn gguf_arch(&self) -> &'static str {
        "phi3"
    }
    fn model_type(&self) -> &'static str {
        "phi3"
    }
    fn tensors(&self) -> &'static [Kind] {
        PHI3_TENSORS
    }
    fn export_overrides(&self) -> &'static [(Kind, &'static str)] {
        &[(Kind::FfnUp, "model.layers.{bid}.mlp.gate_up_proj")]
    }
    fn extra_tensors(&self, hp: &Hparams, kv: &mut KvList) -> Result<Vec<Tensor>> {
        let d = dims(hp)?;
        let Some(long) = factor_list(&d.rope, "long_factor", hp)? else {
            return Ok(Vec::new());
        };
        let scale = d.max_pos as f64 / d.orig_max_pos as f64;
        let kind = d
            .rope
            .get("rope_type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_lowercase();
        let attn_factor = match kind.as_str() {
            "" => {
                return Err(Error::invalid(
                    &hp.path,
                    "longrope factors without rope_scaling.type",
                ))
            }
            "su" | "longrope" if scale > 1.0 => {
                (1.0 + scale.ln() / (d.orig_max_pos as f64).ln()).sqrt()
            }
            "yarn" if scale > 1.0 => 0.1 * scale.ln() + 1.0,
            "su" | "longrope" | "yarn" => 1.0,
            other => {
                return Err(Error::Unsupported(format!(
                    "{}: rope scaling type {other} is not supported",
                    hp.path.display()
                )))
            }
        };
        kv.f32("phi3.rope.scaling.attn_factor", attn_factor as f32);
        let short = factor_list(&d.rope, "short_factor", hp)?
            .ok_or_else(|| Error::invalid(&hp.path, "rope long_factor without short_factor"))?;
        if long.len() != short.len() || long.len() as f64 != d.rope_dims as f64 / 2.0 {
            return Err(Error::invalid(
                &hp.path,
                format!(
                    "rope long/short factors must have {} entries; long has {}, short has {}",
                    d.rope_dims as f64 / 2.0,
                    long.len(),
                    short.len()
                ),
            ));
        }
        Ok(vec![
            f32_tensor("rope_factors_long.weight", long),
            f32_tensor("rope_factors_short.weight", short),
        ])
    }
    fn tensor(&self, t: &TensorRef, _hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        let name = map_or_err(self, t, block_count)?;
        Ok(TensorAction::Keep {
            name,
            transforms: Vec::new(),
        })
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        let hp = ctx.hp;
        let d = dims(hp)?;
        let n_head_kv = hp.require_u32(&["num_key_value_heads", "n_head_kv"])?;
        let eps = hp
            .find_f64(&["rms_norm_eps"])?
            .ok_or_else(|| Error::invalid(&hp.path, "missing hyperparameter rms_norm_eps"))?;
        let global = match d.rope.get("full_attention") {
            Some(Value::Object(m)) => m.clone(),
            _ => d.rope.clone(),
        };
        let theta = global
            .get("rope_theta")
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::invalid(&hp.path, "missing hyperparameter rope_theta"))?;
        let kv = &mut *ctx.kv;
        kv.u32("phi3.context_length", d.max_pos);
        kv.u32("phi3.rope.scaling.original_context_length", d.orig_max_pos);
        kv.u32("phi3.embedding_length", d.n_embd);
        kv.u32(
            "phi3.feed_forward_length",
            hp.require_u32(&["intermediate_size"])?,
        );
        kv.u32("phi3.block_count", ctx.block_count);
        kv.u32("phi3.attention.head_count", d.n_head);
        kv.u32("phi3.attention.head_count_kv", n_head_kv);
        kv.f32("phi3.attention.layer_norm_rms_epsilon", eps as f32);
        kv.u32("phi3.rope.dimension_count", d.rope_dims);
        kv.f32("phi3.rope.freq_base", theta as f32);
        kv.u32("general.file_type", ctx.file_type);
        kv.u32(
            "phi3.attention.sliding_window",
            hp.find_u32(&["sliding_window"])?.unwrap_or(0),
        );
        Ok(())
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        let config_path = ctx.dir.join("tokenizer_config.json");
        let config = read_optional_json(&config_path)?;
        if let Some(cfg) = &config {
            let class = cfg
                .get("tokenizer_class")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::invalid(&config_path, "missing tokenizer_class"))?;
            if class == "GPT2Tokenizer" {
                let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
                return vocab::write_gpt2(
                    ctx.dir,
                    vocab_size,
                    ctx.pre_override,
                    ctx.kv,
                    ctx.warnings,
                );
            }
        }
        let model_path = ctx.dir.join("tokenizer.model");
        if !model_path.is_file() {
            return Err(Error::invalid(&model_path, "missing tokenizer.model"));
        }
        let model = SentencePieceModel::load(&model_path)?;
        let vocab_size = ctx
            .hp
            .find_u32(&["vocab_size"])?
            .map(|v| v as usize)
            .unwrap_or(model.pieces.len());
        let mut tokens: Vec<String> = (0..vocab_size).map(|i| format!("[PAD{i}]")).collect();
        let mut scores = vec![-10000.0f32; vocab_size];
        let mut types = vec![TokenType::Unused; vocab_size];
        let out_of_range = |id: usize, what: &str| {
            Error::invalid(
                ctx.dir,
                format!("{what} token id {id} is beyond vocab_size {vocab_size}"),
            )
        };
        for (id, piece) in model.pieces.iter().enumerate() {
            if id >= vocab_size {
                return Err(out_of_range(id, "tokenizer.model"));
            }
            tokens[id] = piece.text.clone();
            scores[id] = piece.score;
            types[id] = match piece.kind {
                PieceType::Unknown => TokenType::Unknown,
                PieceType::Control => TokenType::Control,
                PieceType::Unused => TokenType::Unused,
                PieceType::Byte => TokenType::Byte,
                PieceType::Normal | PieceType::UserDefined => TokenType::Normal,
            };
        }
        let mut set_added = |id: usize, text: &str, special: bool, what: &str| -> Result<()> {
            if id >= vocab_size {
                return Err(out_of_range(id, what));
            }
            tokens[id] = text.to_string();
            scores[id] = -1000.0;
            types[id] = if special {
                TokenType::Control
            } else {
                TokenType::UserDefined
            };
            Ok(())
        };
        if let Some(added) = read_optional_json(&ctx.dir.join("added_tokens.json"))? {
            for (text, id) in added {
                let id = id.as_u64().unwrap_or(u64::MAX) as usize;
                if id < vocab_size {
                    set_added(id, &text, false, "added_tokens.json")?;
                }
            }
        }
        if let Some(Value::Object(dec)) =
            config.as_ref().and_then(|c| c.get("added_tokens_decoder"))
        {
            for (id, data) in dec {
                let id: usize = id.parse().map_err(|_| {
                    Error::invalid(&config_path, format!("added_tokens_decoder key {id:?}"))
                })?;
                let text = data
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                set_added(
                    id,
                    text,
                    data.get("special")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    "tokenizer_config.json",
                )?;
            }
        }
        if let Some(tok) = read_optional_json(&ctx.dir.join("tokenizer.json"))? {
            for data in tok
                .get("added_tokens")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = data.get("id").and_then(Value::as_u64).unwrap_or(u64::MAX) as usize;
                let text = data
                    .get("content")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                set_added(
                    id,
                    text,
                    data.get("special")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                    "tokenizer.json",
                )?;
            }
        }
        let kv = &mut *ctx.kv;
        kv.string("tokenizer.ggml.model", "llama");
        kv.string("tokenizer.ggml.pre", "default");
        kv.array(
            "tokenizer.ggml.tokens",
            GgufValue::string_array(tokens.iter().cloned()),
        );
        kv.array("tokenizer.ggml.scores", GgufValue::f32_array(scores));
        kv.array(
            "tokenizer.ggml.token_type",
            GgufValue::i32_array(types.iter().map(|t| *t as i32)),
        );
        let special = SpecialVocab::load(ctx.dir, false, Some(tokens.len()))?;
        ctx.warnings.extend(special.warnings.iter().cloned());
        special.write(kv);
        Ok(())
    }
}
