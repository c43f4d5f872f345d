//! `LlamaForCausalLM` / `MistralForCausalLM` (llama.cpp's `LlamaModel`, GGUF arch "llama").

use ckpt_core::{DType, Error, Result, Tensor};
use serde_json::{json, Map, Value};

use super::family::{Dflt, Family, Hooks, Param, Vocab, LLAMA_TENSORS};
use super::VocabContext;
use crate::hparams::{read_optional_json, Hparams};
use crate::kv::KvList;
use crate::vocab;

/// `LlamaModel.set_gguf_parameters` after the common keys.
pub const LLAMA_PARAMS: &[Param] = &[Param::U32("vocab_size", &["vocab_size"]), Param::RopeDims];

/// `LlamaForCausalLM` / `MistralForCausalLM` (llama.cpp's `LlamaModel`).
pub static LLAMA: Family = Family {
    hf_names: &["LlamaForCausalLM", "MistralForCausalLM"],
    gguf_arch: "llama",
    model_type: "llama",
    tensors: LLAMA_TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 2048),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::HeadDim,
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
    ],
    text_params: true,
    params: LLAMA_PARAMS,
    permute_qk: true,
    vocab: Vocab::Llama,
    hooks: LLAMA_HOOKS,
};

/// Llama 3 rope factors generated as `rope_freqs.weight`.
pub const LLAMA_HOOKS: Hooks = Hooks {
    extra_tensors: Some(llama3_rope_tensor),
    ..Hooks::NONE
};

fn llama3_rope_tensor(hp: &Hparams, _kv: &mut KvList) -> Result<Vec<Tensor>> {
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
    // From the rope parameters (where Llama 3 and Apertus configs keep it; a top-level value is
    // mirrored there), as the converter reads it.
    let old_ctx = num("original_max_position_embeddings", 8192.0);
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

/// The inverse of `llama3_rope_factors` for the GGUF -> Hugging Face export: "llama3" rope
/// parameters (`rope_type`, `factor`, `low_freq_factor`, `high_freq_factor`,
/// `original_max_position_embeddings`) from which the converter generates exactly `factors` (a
/// GGUF's `rope_freqs.weight`, bit for bit) for head size `dim` and rope base `theta`, or None
/// when none of the candidates does. The factor is the largest one; the frequency bands' bounds
/// are not unique (only which band each frequency falls in is recorded), so the candidates are
/// the released models' kind of values (a power-of-two original context, small band factors),
/// the first that reproduces the factors winning.
pub fn llama3_rope_parameters(factors: &[f32], theta: f32, dim: u32) -> Option<Map<String, Value>> {
    let factor = factors.iter().copied().fold(f32::NAN, f32::max);
    if !factor.is_finite() || factors.len() as u32 != dim.div_ceil(2) {
        return None;
    }
    const BANDS: [f64; 7] = [1.0, 0.5, 2.0, 3.0, 4.0, 8.0, 16.0];
    for low in BANDS {
        for high in BANDS.into_iter().filter(|&h| h >= low) {
            for k in 0..=24 {
                let params = json!({
                    "rope_type": "llama3",
                    "factor": factor as f64,
                    "low_freq_factor": low,
                    "high_freq_factor": high,
                    "original_max_position_embeddings": 1u64 << k,
                });
                let mut map = Map::new();
                map.insert("head_dim".into(), json!(dim));
                map.insert("rope_theta".into(), json!(theta as f64));
                map.insert("rope_scaling".into(), params.clone());
                let hp = Hparams {
                    path: "config.json".into(),
                    map,
                    sentence_transformers_dense_modules: false,
                };
                let same = llama3_rope_factors(&hp).ok().flatten().is_some_and(|f| {
                    f.len() == factors.len()
                        && f.iter()
                            .zip(factors)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                });
                if same {
                    return params.as_object().cloned();
                }
            }
        }
    }
    None
}

/// `LlamaModel.set_vocab`.
pub fn llama_vocab(ctx: &mut VocabContext) -> Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llama3_factors_span_one_to_factor() {
        let mut map = Map::new();
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
            sentence_transformers_dense_modules: false,
        };
        let f = llama3_rope_factors(&hp).unwrap().unwrap();
        assert_eq!(f.len(), 64);
        assert_eq!(f[0], 1.0);
        assert_eq!(f[63], 8.0);
        assert!(f.windows(2).all(|w| w[0] <= w[1]));
    }

    /// The released Llama 3.1 and Llama 4 Scout rope parameters come back from the factors they
    /// generate; factors no llama3 parameters make do not.
    #[test]
    fn llama3_parameters_come_back_from_their_factors() {
        for params in [
            json!({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}),
            json!({"rope_type": "llama3", "factor": 16.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}),
        ] {
            let mut map = Map::new();
            map.insert("head_dim".into(), json!(128));
            map.insert("rope_theta".into(), json!(500000.0));
            map.insert("rope_scaling".into(), params.clone());
            let hp = Hparams {
                path: "config.json".into(),
                map,
                sentence_transformers_dense_modules: false,
            };
            let f = llama3_rope_factors(&hp).unwrap().unwrap();
            let back = llama3_rope_parameters(&f, 500000.0, 128).unwrap();
            assert_eq!(Value::Object(back), params);
        }
        let mut odd = vec![1.0f32; 64];
        odd[10] = 3.0;
        assert!(llama3_rope_parameters(&odd, 500000.0, 128).is_none());
    }
}
