//! More dense decoder families as table entries: GLM-4 and Hunyuan dense.

use ckpt_core::{Error, Result};
use serde_json::Value;

use super::family::{Dflt, Family, Hooks, KvTensor, Param, Vocab};
use super::{Kind, ParamContext, TensorAction, TensorRef, VocabContext};
use crate::hparams::{read_optional_json, Hparams};
use crate::vocab::special::SpecialVocab;
use crate::vocab::tiktoken::TiktokenScheme;

/// `Glm4ForCausalLM` ("glm4"): norms after attention and MLP, fused gate/up projection, partial
/// rotary dimensions; GPT-2 vocabulary with eos/eot/unk/bos from the added tokens.
pub static GLM4: Family = Family {
    hf_names: &["Glm4ForCausalLM"],
    gguf_arch: "glm4",
    model_type: "glm4",
    tensors: &[
        Kind::TokenEmbd,
        Kind::RopeFreqs,
        Kind::OutputNorm,
        Kind::Output,
        Kind::AttnNorm,
        Kind::AttnQkv,
        Kind::AttnQ,
        Kind::AttnK,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::FfnNorm,
        Kind::FfnDown,
        Kind::FfnUp,
        Kind::AttnPostNorm,
        Kind::FfnPostNorm,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 131072),
        Dflt::Int("num_key_value_heads", 2),
        Dflt::Int("head_dim", 128),
        Dflt::Num("rms_norm_eps", 1.5625e-07),
        Dflt::RopeTheta(10000.0),
    ],
    text_params: true,
    params: &[Param::Custom(glm4_rope_dims)],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        transforms: Some(glm4_mrope_neox),
        vocab: Some(glm4_special_tokens),
        export_overrides: &[
            (Kind::FfnUp, "model.layers.{bid}.mlp.gate_up_proj"),
            (Kind::FfnPostNorm, "model.layers.{bid}.post_mlp_layernorm"),
        ],
        ..Hooks::NONE
    },
};

/// `Glm4Model.set_gguf_parameters`: int(head_dim * partial_rotary_factor), factor 0.5 unless
/// the rope parameters say otherwise.
fn glm4_rope_dims(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let factor = super::rope_parameters(hp)
        .get("partial_rotary_factor")
        .map(|v| {
            v.as_f64().ok_or_else(|| {
                Error::invalid(
                    &hp.path,
                    format!("partial_rotary_factor is {v}, expected a number"),
                )
            })
        })
        .transpose()?
        .unwrap_or(0.5);
    let dim = match hp.find_u32(&["head_dim"])? {
        Some(d) => d,
        None => {
            let heads = hp.require_u32(&["num_attention_heads"])?;
            if heads == 0 {
                return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
            }
            hp.require_u32(&["hidden_size"])? / heads
        }
    };
    ctx.kv.u32(
        "glm4.rope.dimension_count",
        (dim as f64 * factor).trunc() as u32,
    );
    Ok(())
}

/// `Glm4Model.modify_tensors` with M-RoPE sections: Q/K weights and biases reordered to NeoX
/// order (`normal_to_neox`) over the rotary part of each head.
fn glm4_mrope_neox(
    t: &TensorRef,
    hp: &Hparams,
    _name: &str,
    transforms: &mut Vec<super::Transform>,
) -> Result<()> {
    let rp = super::rope_parameters(hp);
    if !rp.contains_key("mrope_section") {
        return Ok(());
    }
    const QK: [&str; 4] = [
        "q_proj.weight",
        "q_proj.bias",
        "k_proj.weight",
        "k_proj.bias",
    ];
    if !QK.iter().any(|s| t.name.ends_with(s)) {
        return Ok(());
    }
    let heads = hp.require_u32(&["num_attention_heads"])?;
    if heads == 0 {
        return Err(Error::invalid(&hp.path, "num_attention_heads is 0"));
    }
    let head_dim = match hp.find_u32(&["head_dim"])? {
        Some(d) => d,
        None => hp.require_u32(&["hidden_size"])? / heads,
    };
    let factor = match rp.get("partial_rotary_factor") {
        Some(v) => v.as_f64().ok_or_else(|| {
            Error::invalid(
                &hp.path,
                format!("partial_rotary_factor is {v}, expected a number"),
            )
        })?,
        None => 0.5,
    };
    let rotary_dim = (head_dim as f64 * factor).trunc() as u64;
    if !rotary_dim.is_multiple_of(2) {
        return Err(Error::invalid(
            &hp.path,
            format!("M-RoPE needs an even rotary dimension; head_dim {head_dim} x partial_rotary_factor {factor} = {rotary_dim}"),
        ));
    }
    transforms.push(super::Transform::NeoxRotary {
        head_dim: head_dim as u64,
        rotary_dim,
    });
    Ok(())
}

/// The id of an added token of tokenizer.json (transformers' `get_added_vocab()`).
fn added_token_id(dir: &std::path::Path, content: &str) -> Result<u32> {
    let path = dir.join("tokenizer.json");
    let tok = read_optional_json(&path)?
        .ok_or_else(|| Error::invalid(&path, "GLM-4 needs tokenizer.json (file not found)"))?;
    tok.get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|t| t.get("content").and_then(Value::as_str) == Some(content))
        .and_then(|t| t.get("id").and_then(Value::as_u64))
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| {
            Error::invalid(
                &path,
                format!("GLM-4's converter needs the added token {content} (not in added_tokens)"),
            )
        })
}

/// `Glm4Model.set_vocab`: the GPT-2 vocabulary, then eos, eot, unk and bos from the added
/// tokens `<|endoftext|>` and `<|user|>` where the tokenizer files did not set them.
fn glm4_special_tokens(ctx: &mut VocabContext) -> Result<()> {
    set_added_specials(
        ctx,
        &[
            ("eos", "<|endoftext|>"),
            ("eot", "<|user|>"),
            ("unk", "<|endoftext|>"),
            ("bos", "<|endoftext|>"),
        ],
    )
}

/// The converter's GLM vocabularies: special token ids taken from added tokens by their text
/// (in this order), then the special vocabulary written again with them.
pub(super) fn set_added_specials(
    ctx: &mut VocabContext,
    specials: &[(&'static str, &str)],
) -> Result<()> {
    let mut special = SpecialVocab::load(ctx.dir, true, None)?;
    let path = ctx.dir.join("tokenizer.json");
    for (typ, text) in specials {
        let id = added_token_id(ctx.dir, text)?;
        special.set_special(typ, Some(&Value::from(id)), &path)?;
    }
    // Rewrite what the GPT-2 loader's SpecialVocab wrote, now with the ids set here.
    let written: Vec<String> = ctx
        .kv
        .entries()
        .iter()
        .map(|(k, _)| k.clone())
        .filter(|k| {
            k.starts_with("tokenizer.")
                && !matches!(
                    k.as_str(),
                    "tokenizer.ggml.model"
                        | "tokenizer.ggml.pre"
                        | "tokenizer.ggml.tokens"
                        | "tokenizer.ggml.token_type"
                )
        })
        .collect();
    for k in written {
        ctx.kv.remove(&k);
    }
    special.write(ctx.kv);
    Ok(())
}

/// `HunYuanDenseV1ForCausalLM` ("hunyuan-dense"): Llama-shaped with q/k norms, GPT-2
/// vocabulary from tokenizer.json or `hy.tiktoken`, `eod_token_id` as eos, NTK-alpha rope scaling.
pub static HUNYUAN_DENSE: Family = Family {
    hf_names: &["HunYuanDenseV1ForCausalLM"],
    gguf_arch: "hunyuan-dense",
    model_type: "hunyuan_v1_dense",
    tensors: &[
        Kind::TokenEmbd,
        Kind::OutputNorm,
        Kind::Output,
        Kind::AttnNorm,
        Kind::AttnQkv,
        Kind::AttnQ,
        Kind::AttnQNorm,
        Kind::AttnK,
        Kind::AttnKNorm,
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
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("eod_token_id", 3),
    ],
    text_params: true,
    params: &[Param::Custom(hunyuan_rope)],
    permute_qk: false,
    vocab: Vocab::Gpt2OrTiktoken(&HUNYUAN_TIKTOKEN),
    hooks: Hooks {
        config: Some(hunyuan_config),
        tensor_first: Some(hunyuan_tied_head),
        vocab: Some(hunyuan_vocab),
        export_overrides: &[
            (
                Kind::AttnQNorm,
                "model.layers.{bid}.self_attn.query_layernorm",
            ),
            (
                Kind::AttnKNorm,
                "model.layers.{bid}.self_attn.key_layernorm",
            ),
        ],
        ..Hooks::NONE
    },
};

/// The converter pops `num_experts` before the common keys (no expert count for dense).
fn hunyuan_config(hp: &mut Hparams) {
    hp.map.remove("num_experts");
}

/// `lm_head.weight` is skipped when the embeddings are tied.
fn hunyuan_tied_head(t: &TensorRef, hp: &Hparams) -> Result<Option<TensorAction>> {
    if t.name == "lm_head.weight" && hp.get("tie_word_embeddings") == Some(&Value::Bool(true)) {
        return Ok(Some(TensorAction::Drop));
    }
    Ok(None)
}

/// `HunYuanModel.set_gguf_parameters`: with "dynamic"/"xdrope" rope, the base is scaled by
/// alpha^(dim/(dim-2)), scaling type none, factor 1; "dynamic" also fixes the context at 256k.
fn hunyuan_rope(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let rp = super::rope_parameters(hp);
    let rope_type = rp.get("rope_type").and_then(Value::as_str);
    if !matches!(rope_type, Some("dynamic" | "xdrope")) {
        return Ok(());
    }
    let num = |k: &str, d: f64| -> Result<f64> {
        match rp.get(k) {
            None | Some(Value::Null) => Ok(d),
            Some(v) => v.as_f64().ok_or_else(|| {
                Error::invalid(&hp.path, format!("rope {k} is {v}, expected a number"))
            }),
        }
    };
    let alpha = num("alpha", 50.0)?;
    let base = num("rope_theta", 10000.0)?;
    let dim = hp.require_u32(&["head_dim"])? as f64;
    let scaled = base * alpha.powf(dim / (dim - 2.0));
    ctx.kv.f32("hunyuan-dense.rope.freq_base", scaled as f32);
    ctx.kv.string("hunyuan-dense.rope.scaling.type", "none");
    ctx.kv.f32("hunyuan-dense.rope.scaling.factor", 1.0);
    if rope_type == Some("dynamic") {
        let ctx_len = 256 * 1024;
        ctx.kv.u32(
            "hunyuan-dense.rope.scaling.original_context_length",
            ctx_len,
        );
        ctx.kv.u32("hunyuan-dense.context_length", ctx_len);
        let max_pos = hp.find_u32(&["max_position_embeddings"])?;
        if base != 10000.0 || !matches!(max_pos, Some(32768 | 262144)) {
            return Err(Error::Unsupported(format!(
                "{}: Hunyuan dynamic rope scaling with rope_theta {base} and max_position_embeddings {max_pos:?} (the converter only accepts 10000 and 32k/256k)",
                hp.path.display()
            )));
        }
    }
    Ok(())
}

/// Hunyuan's tokenizer module (`tokenization_hy.py`, never run): `hy.tiktoken`, its split
/// pattern, NFC before encoding, and the special tokens numbered from the end of the ranks.
pub static HUNYUAN_TIKTOKEN: TiktokenScheme = TiktokenScheme {
    file: "hy.tiktoken",
    pattern: r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    named: &[
        "<|endoftext|>",
        "<|startoftext|>",
        "<|bos|>",
        "<|eos|>",
        "<|pad|>",
    ],
    extras: ("<|extra_", "|>", 205),
    nfc: true,
};

/// `HunYuanModel.set_vocab` after the vocabulary: with the tiktoken file, bos = 127958 for the
/// 7B (hidden size 4096); then eos = `eod_token_id`, eot = the first of generation_config.json's
/// eos list when it has two or more.
fn hunyuan_vocab(ctx: &mut VocabContext) -> Result<()> {
    if !ctx.dir.join("tokenizer.json").is_file() && ctx.hp.find_u32(&["hidden_size"])? == Some(4096)
    {
        ctx.kv.u32("tokenizer.ggml.bos_token_id", 127958);
    }
    if let Some(eod) = ctx.hp.get("eod_token_id") {
        let id = eod
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| {
                Error::invalid(
                    &ctx.hp.path,
                    format!("eod_token_id is {eod}, expected a non-negative integer"),
                )
            })?;
        ctx.kv.u32("tokenizer.ggml.eos_token_id", id);
    }
    if let Some(gen) = read_optional_json(&ctx.dir.join("generation_config.json"))? {
        if let Some(Value::Array(eos)) = gen.get("eos_token_id") {
            if eos.len() >= 2 {
                if let Some(id) = eos[0].as_u64().and_then(|v| u32::try_from(v).ok()) {
                    ctx.kv.u32("tokenizer.ggml.eot_token_id", id);
                }
            }
        }
    }
    Ok(())
}

/// `Lfm2ForCausalLM` ("lfm2"): short-convolution and attention layers; the conv kernels are
/// squeezed to 2-D, per-layer KV head counts (0 for conv layers), the adjusted FFN width.
pub static LFM2: Family = Family {
    hf_names: &["Lfm2ForCausalLM", "LFM2ForCausalLM"],
    gguf_arch: "lfm2",
    model_type: "lfm2",
    tensors: &[
        Kind::TokenEmbd,
        Kind::TokenEmbdNorm,
        Kind::ShortConvConv,
        Kind::ShortConvInProj,
        Kind::ShortConvOutProj,
        Kind::FfnGate,
        Kind::FfnDown,
        Kind::FfnUp,
        Kind::FfnNorm,
        Kind::AttnNorm,
        Kind::AttnQNorm,
        Kind::AttnKNorm,
        Kind::AttnQkv,
        Kind::AttnQ,
        Kind::AttnK,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::Output,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 128000),
        Dflt::Int("num_key_value_heads", 8),
        Dflt::Num("norm_eps", 1e-5),
        Dflt::RopeTheta(1_000_000.0),
        Dflt::Int("conv_L_cache", 3),
        Dflt::Int("block_multiple_of", 256),
        Dflt::Num("block_ffn_dim_multiplier", 1.0),
        Dflt::Flag("block_auto_adjust_ff_dim", true),
    ],
    text_params: true,
    params: &[
        Param::U32("vocab_size", &["vocab_size"]),
        Param::U32("shortconv.l_cache", &["conv_L_cache"]),
        Param::Custom(lfm2_params),
    ],
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: Hooks {
        transforms: Some(lfm2_squeeze_conv),
        export_overrides: &[
            (Kind::AttnNorm, "model.layers.{bid}.operator_norm"),
            (Kind::FfnNorm, "model.layers.{bid}.ffn_norm"),
            (Kind::FfnGate, "model.layers.{bid}.feed_forward.w1"),
            (Kind::FfnDown, "model.layers.{bid}.feed_forward.w2"),
            (Kind::FfnUp, "model.layers.{bid}.feed_forward.w3"),
            (Kind::AttnOut, "model.layers.{bid}.self_attn.out_proj"),
            (Kind::AttnQNorm, "model.layers.{bid}.self_attn.q_layernorm"),
            (Kind::AttnKNorm, "model.layers.{bid}.self_attn.k_layernorm"),
        ],
        ..Hooks::NONE
    },
};

/// `layer_types`, else transformers' default from `full_attn_idxs` (every layer attention).
fn lfm2_layer_types(hp: &Hparams) -> Result<Vec<bool>> {
    let n = hp.require_u32(&["num_hidden_layers"])?;
    if let Some(types) = hp.get("layer_types") {
        let list = types.as_array().ok_or_else(|| {
            Error::invalid(&hp.path, format!("layer_types is {types}, expected a list"))
        })?;
        return Ok(list.iter().map(|t| t.as_str() != Some("conv")).collect());
    }
    let idxs: Option<Vec<u64>> = hp
        .get("full_attn_idxs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_u64).collect());
    Ok((0..n as u64)
        .map(|i| idxs.as_ref().is_none_or(|v| v.contains(&i)))
        .collect())
}

/// `LFM2Model.set_gguf_parameters` after the common keys: the KV head counts as a per-layer
/// list (replacing the single count in place), the rms epsilon, the adjusted FFN width.
fn lfm2_params(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let kv_heads = hp.require_u32(&["num_key_value_heads"])?;
    let attn = lfm2_layer_types(hp)?;
    ctx.kv.array(
        "lfm2.attention.head_count_kv",
        ckpt_gguf::GgufValue::i32_array(
            attn.iter()
                .map(|a| if *a { kv_heads as i32 } else { 0 })
                .collect::<Vec<i32>>(),
        ),
    );
    let eps = hp
        .find_f64(&["norm_eps"])?
        .ok_or_else(|| Error::invalid(&hp.path, "missing hyperparameter norm_eps"))?;
    ctx.kv
        .f32("lfm2.attention.layer_norm_rms_epsilon", eps as f32);
    let mut ff = hp.require_u32(&["block_ff_dim", "intermediate_size"])? as i64;
    if hp.get("block_auto_adjust_ff_dim").and_then(Value::as_bool) == Some(true) {
        ff = (2.0 * ff as f64 / 3.0).trunc() as i64;
        if let Some(m) = hp.get("block_ffn_dim_multiplier") {
            let m = m.as_f64().ok_or_else(|| {
                Error::invalid(
                    &hp.path,
                    format!("block_ffn_dim_multiplier is {m}, expected a number"),
                )
            })?;
            ff = (m * ff as f64).trunc() as i64;
        }
        let multiple = hp.require_u32(&["block_multiple_of"])? as i64;
        if multiple == 0 {
            return Err(Error::invalid(&hp.path, "block_multiple_of is 0"));
        }
        ff = multiple * ((ff + multiple - 1).div_euclid(multiple));
    }
    let ff = u32::try_from(ff).map_err(|_| {
        Error::invalid(&hp.path, format!("feed-forward width {ff} is out of range"))
    })?;
    ctx.kv.u32("lfm2.feed_forward_length", ff);
    Ok(())
}

/// `conv.conv` kernels [C, 1, L] are stored as [C, L].
fn lfm2_squeeze_conv(
    t: &TensorRef,
    _hp: &Hparams,
    _name: &str,
    transforms: &mut Vec<super::Transform>,
) -> Result<()> {
    if t.name.contains("conv.conv") {
        transforms.push(super::Transform::SqueezeDim1);
    }
    Ok(())
}

/// `ApertusForCausalLM` ("apertus"): `LlamaModel` without the Q/K permutation, q/k norms,
/// `attention_layernorm`/`feedforward_layernorm`, an up/down MLP with xIELU activations whose
/// per-layer scalars become KV arrays; Llama 3 rope factors.
pub static APERTUS: Family = Family {
    hf_names: &["ApertusForCausalLM"],
    gguf_arch: "apertus",
    model_type: "apertus",
    tensors: &[
        Kind::TokenEmbd,
        Kind::OutputNorm,
        Kind::Output,
        Kind::RopeFreqs,
        Kind::AttnNorm,
        Kind::AttnQ,
        Kind::AttnK,
        Kind::AttnV,
        Kind::AttnOut,
        Kind::AttnQNorm,
        Kind::AttnKNorm,
        Kind::FfnNorm,
        Kind::FfnDown,
        Kind::FfnUp,
    ],
    defaults: &[
        Dflt::Int("max_position_embeddings", 65536),
        Dflt::Copy("num_key_value_heads", "num_attention_heads"),
        Dflt::Num("rms_norm_eps", 1e-5),
        Dflt::RopeTheta(12_000_000.0),
    ],
    text_params: true,
    params: super::llama::LLAMA_PARAMS,
    permute_qk: false,
    vocab: Vocab::Llama,
    hooks: Hooks {
        sources: Some(apertus_xielu),
        kv_tensors: APERTUS_XIELU,
        export_overrides: &[
            (Kind::AttnNorm, "model.layers.{bid}.attention_layernorm"),
            (Kind::FfnNorm, "model.layers.{bid}.feedforward_layernorm"),
        ],
        ..super::llama::LLAMA_HOOKS
    },
};

/// Apertus' xIELU parameters: `alpha_n` and `alpha_p` are one-element parameters, `beta` and
/// `eps` 0-d buffers, in every layer's `mlp.act_fn`.
const APERTUS_XIELU: &[KvTensor] = &[
    KvTensor {
        key: "xielu.alpha_n",
        hf: "model.layers.{bid}.mlp.act_fn.alpha_n",
        shape: &[1],
    },
    KvTensor {
        key: "xielu.alpha_p",
        hf: "model.layers.{bid}.mlp.act_fn.alpha_p",
        shape: &[1],
    },
    KvTensor {
        key: "xielu.beta",
        hf: "model.layers.{bid}.mlp.act_fn.beta",
        shape: &[],
    },
    KvTensor {
        key: "xielu.eps",
        hf: "model.layers.{bid}.mlp.act_fn.eps",
        shape: &[],
    },
];

/// `ApertusModel.modify_tensors`: each layer's `mlp.act_fn.{alpha_n, alpha_p, beta, eps}`
/// scalar is collected (by block) and, once every layer has one, written as the float array
/// `xielu.{name}` (no architecture prefix) in block order; the tensors themselves are not written. The arrays
/// appear in the order they are completed while reading the checkpoint.
fn apertus_xielu(
    tensors: Vec<ckpt_core::Tensor>,
    hp: &Hparams,
    kv: &mut crate::kv::KvList,
) -> Result<Vec<ckpt_core::Tensor>> {
    use std::collections::BTreeMap;
    let n_layers = hp.require_u32(&["num_hidden_layers"])? as usize;
    let mut seen: [BTreeMap<u32, f32>; 4] = Default::default();
    let mut rest = Vec::with_capacity(tensors.len());
    for t in tensors {
        // (by the name's last part, as the converter does)
        let Some(p) = APERTUS_XIELU.iter().position(|x| {
            let param = x.hf.rsplit('.').next().unwrap_or(x.hf);
            t.name.ends_with(&format!(".act_fn.{param}"))
        }) else {
            rest.push(t);
            continue;
        };
        let Some(bid) = t
            .name
            .split('.')
            .find(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u32>().ok())
        else {
            return Err(Error::invalid(
                &hp.path,
                format!("xIELU parameter '{}' has no layer number", t.name),
            ));
        };
        let values = crate::tensors::source_f32(&t)?;
        if values.len() != 1 {
            return Err(Error::invalid(
                &hp.path,
                format!(
                    "xIELU parameter '{}' has shape {:?}, expected a single value",
                    t.name, t.shape
                ),
            ));
        }
        seen[p].insert(bid, values[0]);
        if seen[p].len() == n_layers {
            kv.array(
                APERTUS_XIELU[p].key,
                ckpt_gguf::GgufValue::f32_array(seen[p].values().copied()),
            );
        }
    }
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KvList;
    use serde_json::json;

    fn vocab_kvs(dir: &std::path::Path, hidden: u64) -> KvList {
        let hp = Hparams {
            path: dir.join("config.json"),
            map: json!({ "hidden_size": hidden, "eod_token_id": 127957 })
                .as_object()
                .unwrap()
                .clone(),
            sentence_transformers_dense_modules: false,
        };
        let mut kv = KvList::new();
        kv.u32("tokenizer.ggml.bos_token_id", 1);
        let mut warnings = Vec::new();
        hunyuan_vocab(&mut VocabContext {
            dir,
            hp: &hp,
            kv: &mut kv,
            pre_override: None,
            warnings: &mut warnings,
        })
        .unwrap();
        kv
    }

    /// The converter's fix for the 7B's bos (`<|startoftext|>`), only on the tiktoken path.
    #[test]
    fn hunyuan_7b_tiktoken_bos_is_startoftext() {
        let dir = tempfile::tempdir().unwrap();
        let bos = |kv: &KvList| {
            kv.get("tokenizer.ggml.bos_token_id")
                .and_then(|v| v.as_i64())
        };
        assert_eq!(bos(&vocab_kvs(dir.path(), 4096)), Some(127958));
        assert_eq!(bos(&vocab_kvs(dir.path(), 2048)), Some(1));
        std::fs::write(dir.path().join("tokenizer.json"), "{}").unwrap();
        assert_eq!(bos(&vocab_kvs(dir.path(), 4096)), Some(1));
        let kv = vocab_kvs(dir.path(), 4096);
        assert_eq!(
            kv.get("tokenizer.ggml.eos_token_id")
                .and_then(|v| v.as_i64()),
            Some(127957)
        );
    }
}
