//! `LlamaForCausalLM` / `MistralForCausalLM` (llama.cpp's `LlamaModel`, GGUF arch "llama").

use ckpt_core::{DType, Error, Result, Tensor};
use serde_json::{json, Value};

use super::{
    head_counts, map_name, unmapped, write_base_params, Architecture, NameTable, ParamContext,
    TensorAction, TensorRef, Transform, VocabContext,
};
use crate::hparams::{read_optional_json, Hparams};
use crate::kv::KvList;
use crate::vocab;

pub struct Llama;

/// HF module paths of Llama-family checkpoints and their GGUF names.
pub const LLAMA_NAMES: NameTable = &[
    ("model.embed_tokens", "token_embd"),
    ("lm_head", "output"),
    ("model.norm", "output_norm"),
    ("model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"),
    ("model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"),
    ("model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"),
    ("model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"),
    (
        "model.layers.{bid}.self_attn.o_proj",
        "blk.{bid}.attn_output",
    ),
    (
        "model.layers.{bid}.post_attention_layernorm",
        "blk.{bid}.ffn_norm",
    ),
    ("model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"),
    ("model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"),
    ("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
];

/// transformers' LlamaConfig/MistralConfig defaults that show up in `to_dict()`.
pub fn llama_config_defaults(hp: &mut Hparams) {
    if let Some(heads) = hp.get("num_attention_heads").cloned() {
        hp.default("num_key_value_heads", heads.clone());
        if let (Some(h), Some(n)) = (
            hp.get("hidden_size").and_then(Value::as_u64),
            heads.as_u64(),
        ) {
            if let Some(d) = h.checked_div(n) {
                hp.default("head_dim", json!(d));
            }
        }
    }
    hp.default("rms_norm_eps", json!(1e-6));
    if hp.get("rope_parameters").is_none()
        && hp.get("rope_scaling").is_none()
        && hp.get("rope_theta").is_none()
    {
        hp.default("rope_theta", json!(10000.0));
    }
}

/// Llama 3.1-style "llama3" rope scaling: the per-frequency factors the converter generates as
/// `rope_freqs.weight`, computed with torch's float32 operation order (`a / t` is
/// `t.reciprocal() * a`). `pow` is the one step whose last bit may depend on the libm.
pub fn llama3_rope_factors(hp: &Hparams) -> Result<Option<Vec<f32>>> {
    let rp_all = super::rope_parameters(hp);
    let rp = match rp_all.get("full_attention") {
        Some(Value::Object(m)) => m.clone(),
        _ => rp_all,
    };
    if rp
        .get("rope_type")
        .and_then(Value::as_str)
        .map(str::to_lowercase)
        .as_deref()
        != Some("llama3")
    {
        return Ok(None);
    }
    let num = |k: &str, d: f64| rp.get(k).and_then(Value::as_f64).unwrap_or(d);
    let base = num("rope_theta", 10000.0);
    let dim = match hp.find_u32(&["head_dim"])? {
        Some(d) => d,
        None => {
            hp.require_u32(&["hidden_size"])? / hp.require_u32(&["num_attention_heads"])?.max(1)
        }
    };
    let factor = num("factor", 8.0);
    let low_ff = num("low_freq_factor", 1.0);
    let high_ff = num("high_freq_factor", 4.0);
    let old_ctx = hp
        .get("original_max_position_embeddings")
        .and_then(Value::as_f64)
        .unwrap_or(8192.0);
    let low_wavelen = old_ctx / low_ff;
    let high_wavelen = old_ctx / high_ff;
    let two_pi = (2.0 * std::f64::consts::PI) as f32;
    let mut out = Vec::new();
    for i in (0..dim).step_by(2) {
        let e = i as f32 / dim as f32;
        let p = ((base as f32) as f64).powf(e as f64) as f32;
        let freq = (1.0f32 / p) * 1.0;
        let wavelen = (1.0f32 / freq) * two_pi;
        let v = if wavelen < high_wavelen as f32 {
            1.0
        } else if wavelen > low_wavelen as f32 {
            factor as f32
        } else {
            let smooth =
                ((1.0f32 / wavelen) * old_ctx as f32 - low_ff as f32) / (high_ff - low_ff) as f32;
            1.0f32 / ((1.0 - smooth) / factor as f32 + smooth)
        };
        out.push(v);
    }
    Ok(Some(out))
}

impl Architecture for Llama {
    fn hf_names(&self) -> &'static [&'static str] {
        &["LlamaForCausalLM", "MistralForCausalLM"]
    }

    fn gguf_arch(&self) -> &'static str {
        "llama"
    }
    fn model_type(&self) -> &'static str {
        "llama"
    }
    fn name_tables(&self) -> &'static [NameTable] {
        &[LLAMA_NAMES]
    }

    fn config_defaults(&self, hp: &mut Hparams) {
        hp.default("max_position_embeddings", json!(2048));
        llama_config_defaults(hp);
    }

    fn extra_tensors(&self, hp: &Hparams, _kv: &mut KvList) -> Result<Vec<Tensor>> {
        Ok(match llama3_rope_factors(hp)? {
            Some(f) => {
                let n = f.len() as u64;
                vec![Tensor::computed(
                    "rope_freqs.weight",
                    DType::F32,
                    vec![n],
                    move || Ok(f.iter().flat_map(|v| v.to_le_bytes()).collect()),
                )]
            }
            None => Vec::new(),
        })
    }

    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        if t.name == "rope_freqs.weight" {
            return Ok(TensorAction::Keep {
                name: t.name.to_string(),
                transforms: Vec::new(),
            });
        }
        let hf_name = t.name;
        let name = map_name(LLAMA_NAMES, hf_name, t.bid, block_count)
            .ok_or_else(|| unmapped(hf_name, "llama"))?;
        let (n_head, n_kv) = head_counts(hp)?;
        let mut transforms = Vec::new();
        if hf_name.ends_with("q_proj.weight") || hf_name.ends_with("q_proj.bias") {
            transforms.push(Transform::PermuteRows {
                heads: n_head as u64,
            });
        }
        if hf_name.ends_with("k_proj.weight") || hf_name.ends_with("k_proj.bias") {
            transforms.push(Transform::PermuteRows { heads: n_kv as u64 });
        }
        Ok(TensorAction::Keep { name, transforms })
    }

    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        write_base_params(ctx, "llama")?;
        let vocab_size = ctx.hp.require_u32(&["vocab_size"])?;
        ctx.kv.u32("llama.vocab_size", vocab_size);
        let rope_dim = match ctx.hp.find_u32(&["head_dim"])? {
            Some(d) => d,
            None => {
                let hidden = ctx.hp.require_u32(&["hidden_size"])?;
                let heads = ctx.hp.require_u32(&["num_attention_heads"])?;
                if heads == 0 {
                    return Err(Error::invalid(&ctx.hp.path, "num_attention_heads is 0"));
                }
                hidden / heads
            }
        };
        ctx.kv.u32("llama.rope.dimension_count", rope_dim);
        Ok(())
    }

    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        if let Some(cfg) = read_optional_json(&ctx.dir.join("tokenizer_config.json"))? {
            if let Some(Value::Bool(b)) = cfg.get("add_prefix_space") {
                ctx.kv.bool("tokenizer.ggml.add_space_prefix", *b);
            }
        }
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.map(|v| v as usize);
        if ctx.dir.join("tokenizer.model").is_file() {
            vocab::write_sentencepiece(ctx.dir, vocab_size, ctx.kv, ctx.warnings)?;
        } else if vocab::is_llama_hf_tokenizer(ctx.dir)? {
            return Err(Error::Unsupported(format!(
                "{}: a SentencePiece-style tokenizer.json without tokenizer.model (llama.cpp's LlamaHfVocab path) is not supported yet",
                ctx.dir.display()
            )));
        } else if ctx.dir.join("tokenizer.json").is_file() {
            vocab::write_gpt2(ctx.dir, vocab_size, ctx.pre_override, ctx.kv, ctx.warnings)?;
        } else {
            return Err(Error::invalid(
                ctx.dir,
                "no tokenizer.model or tokenizer.json in the model folder",
            ));
        }
        let vocab_size = ctx.hp.find_u32(&["vocab_size"])?.unwrap_or(32000);
        if vocab_size == 32016 {
            // CodeLlama's infill tokens.
            let mut special = vocab::special::SpecialVocab::load_with_types(
                ctx.dir,
                false,
                None,
                &["prefix", "suffix", "middle", "eot"],
            )?;
            for (typ, id) in [
                ("prefix", 32007),
                ("suffix", 32008),
                ("middle", 32009),
                ("eot", 32010),
            ] {
                special.set_special(typ, Some(&json!(id)), ctx.dir)?;
            }
            special.write(ctx.kv);
        }
        if vocab_size == 49152 {
            // The converter's rule for small Granite/SmolLM-sized vocabularies.
            ctx.kv.bool("tokenizer.ggml.add_bos_token", false);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_factors_span_one_to_factor() {
        let mut map = serde_json::Map::new();
        for (k, v) in [
            ("hidden_size", json!(4096)),
            ("num_attention_heads", json!(32)),
            (
                "rope_scaling",
                json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
            ),
            ("rope_theta", json!(500000.0)),
        ] {
            map.insert(k.into(), v);
        }
        let hp = Hparams {
            path: "config.json".into(),
            map,
        };
        let f = llama3_rope_factors(&hp).unwrap().unwrap();
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[63], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
    }
}
