//! DeepSeek V2 and V3 ("deepseek2", the converter's `DeepseekV2Model`): multi-head latent
//! attention and a mixture of experts with shared experts and leading dense blocks.
//!
//! The quirks that need code:
//! - `kv_b_proj` ([heads * (qk_nope + v), kv_lora_rank]) is split per head into `k_b_proj`
//!   (the first `qk_nope_head_dim` rows of each head, transposed: [heads, kv_lora_rank,
//!   qk_nope]) and `v_b_proj` (the other `v_head_dim` rows: [heads, v, kv_lora_rank]), the
//!   layout llama.cpp's absorbed MLA wants. Both halves are byte moves in the source dtype
//!   (exact), produced a head at a time.
//! - Blocks past `num_hidden_layers` (V3's multi-token-prediction layer) and a tied `lm_head`
//!   are dropped, as the converter does.
//! - The hyperparameters start with the common keys computed with one KV head (MLA is written
//!   as MQA), then the MLA ranks and lengths, the MoE keys and the yarn log multiplier.

use ckpt_core::{Error, Result, Tensor};

use super::split::read_rows;
use serde_json::{json, Value};

use super::family::{Dflt, Experts, Family, Hooks, Join, Param, Vocab};
use super::{rope_parameters, write_base_params, Kind, ParamContext};
use crate::hparams::Hparams;
use crate::kv::KvList;

const TENSORS: &[Kind] = &[
    Kind::TokenEmbd,
    Kind::OutputNorm,
    Kind::Output,
    Kind::AttnNorm,
    Kind::AttnQ,
    Kind::AttnQA,
    Kind::AttnQB,
    Kind::AttnKvAMqa,
    Kind::AttnKB,
    Kind::AttnVB,
    Kind::AttnQANorm,
    Kind::AttnKvANorm,
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
    Kind::FfnExpProbsB,
];

const EXPERTS: Experts = Experts {
    per_expert: "model.layers.{bid}.mlp.experts.{xid}.{w}.weight",
    weights: &["down_proj", "gate_proj", "up_proj"],
    merged: "model.layers.{bid}.mlp.experts.{w}.weight",
    count: &["n_routed_experts"],
};

/// `DeepseekV2Model.set_gguf_parameters` (after the common keys, which [`mqa_base`] writes).
const PARAMS: &[Param] = &[
    Param::Custom(mqa_base),
    Param::Custom(leading_dense),
    Param::U32("vocab_size", &["vocab_size"]),
    Param::OptU32("attention.q_lora_rank", &["q_lora_rank"]),
    Param::Custom(mla_lengths),
    Param::U32(
        "expert_feed_forward_length",
        &["moe_intermediate_size", "intermediate_size"],
    ),
    Param::OptU32("expert_count", &["n_routed_experts"]),
    Param::Custom(shared_count),
    Param::OptF32("expert_weights_scale", &["routed_scaling_factor"]),
    Param::Custom(weights_norm),
    Param::U32("rope.dimension_count", &["qk_rope_head_dim"]),
    Param::Custom(yarn_log_mul),
];

/// DeepSeek's (and ERNIE 4.5 MoE's) shared experts are `mlp.shared_experts.*`, not Qwen's
/// `mlp.shared_expert.*` (what the GGUF -> Hugging Face export writes).
pub const SHARED_EXPERTS: &[(Kind, &str)] = &[
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
];

const HOOKS: Hooks = Hooks {
    config: Some(deepseek_config),
    experts: Some(&EXPERTS),
    expand: Some(expand),
    joins: &[Join {
        parts: &[
            "model.layers.{bid}.self_attn.k_b_proj.weight",
            "model.layers.{bid}.self_attn.v_b_proj.weight",
        ],
        fused: "model.layers.{bid}.self_attn.kv_b_proj.weight",
        shape: kv_b_shape,
        join: join_kv_b,
        // Each head's rows come from that head's k_b and v_b rows.
        banded: true,
    }],
    export_overrides: SHARED_EXPERTS,
    ..Hooks::NONE
};

/// `DeepseekV2ForCausalLM` with transformers' `DeepseekV2Config` defaults.
pub static DEEPSEEK_V2: Family = Family {
    hf_names: &["DeepseekV2ForCausalLM"],
    gguf_arch: "deepseek2",
    model_type: "deepseek_v2",
    tensors: TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 2048),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("first_k_dense_replace", 0),
        Dflt::Int("kv_lora_rank", 512),
        Dflt::Int("q_lora_rank", 1536),
        Dflt::Int("n_routed_experts", 64),
        Dflt::Int("n_shared_experts", 2),
        Dflt::Int("qk_nope_head_dim", 128),
        Dflt::Int("qk_rope_head_dim", 64),
        Dflt::Int("v_head_dim", 128),
        Dflt::Num("routed_scaling_factor", 1.0),
        Dflt::Flag("norm_topk_prob", false),
        Dflt::Int("moe_intermediate_size", 1407),
    ],
    text_params: false,
    params: PARAMS,
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: HOOKS,
};

/// `DeepseekV3ForCausalLM` with transformers' `DeepseekV3Config` defaults.
pub static DEEPSEEK_V3: Family = Family {
    hf_names: &["DeepseekV3ForCausalLM"],
    gguf_arch: "deepseek2",
    model_type: "deepseek_v3",
    tensors: TENSORS,
    defaults: &[
        Dflt::Int("max_position_embeddings", 4096),
        Dflt::Num("rms_norm_eps", 1e-6),
        Dflt::RopeTheta(10000.0),
        Dflt::Int("first_k_dense_replace", 3),
        Dflt::Int("kv_lora_rank", 512),
        Dflt::Int("q_lora_rank", 1536),
        Dflt::Int("n_routed_experts", 256),
        Dflt::Int("n_shared_experts", 1),
        Dflt::Int("num_experts_per_tok", 8),
        Dflt::Int("n_group", 8),
        Dflt::Int("topk_group", 4),
        Dflt::Int("qk_nope_head_dim", 128),
        Dflt::Int("qk_rope_head_dim", 64),
        Dflt::Int("v_head_dim", 128),
        Dflt::Num("routed_scaling_factor", 2.5),
        Dflt::Flag("norm_topk_prob", true),
        Dflt::Int("moe_intermediate_size", 2048),
    ],
    text_params: false,
    params: PARAMS,
    permute_qk: false,
    vocab: Vocab::Gpt2,
    hooks: HOOKS,
};

/// The config's `__post_init__`: KV heads default to the attention heads, and `head_dim` is
/// always `qk_rope_head_dim`.
fn deepseek_config(hp: &mut Hparams) {
    if let Some(v) = hp.get("num_attention_heads").cloned() {
        hp.default("num_key_value_heads", v.clone());
        if hp.map.get("num_key_value_heads") == Some(&Value::Null) {
            hp.map.insert("num_key_value_heads".into(), v);
        }
    }
    if let Some(v) = hp.get("qk_rope_head_dim").cloned() {
        hp.map.insert("head_dim".into(), v);
    }
}

/// The common keys with `num_key_value_heads` = 1 and the RMS epsilon defaulted.
fn mqa_base(ctx: &mut ParamContext) -> Result<()> {
    let mut hp = Hparams {
        path: ctx.hp.path.clone(),
        map: ctx.hp.map.clone(),
        sentence_transformers_dense_modules: ctx.hp.sentence_transformers_dense_modules,
    };
    hp.map.insert("num_key_value_heads".into(), json!(1));
    if hp.get("rms_norm_eps").is_none() {
        hp.map.insert("rms_norm_eps".into(), json!(1e-6));
    }
    let mut sub = ParamContext {
        hp: &hp,
        kv: ctx.kv,
        block_count: ctx.block_count,
        file_type: ctx.file_type,
    };
    write_base_params(&mut sub, "deepseek2")
}

/// `first_k_dense_replace`, else every block without routed experts, none with them.
fn leading_dense(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let n = match hp.find_u32(&["first_k_dense_replace"])? {
        Some(n) => n,
        None if hp.get("n_routed_experts").is_none() => hp.require_u32(&["num_hidden_layers"])?,
        None => 0,
    };
    ctx.kv.u32("deepseek2.leading_dense_block_count", n);
    Ok(())
}

/// MLA written as MQA with larger heads: the compressed KV rank and the key/value lengths of
/// both views.
fn mla_lengths(ctx: &mut ParamContext) -> Result<()> {
    let hp = ctx.hp;
    let rank = hp.find_u32(&["kv_lora_rank"])?.unwrap_or(512);
    let rope = hp.require_u32(&["qk_rope_head_dim"])?;
    let nope = hp.require_u32(&["qk_nope_head_dim"])?;
    let v = hp.require_u32(&["v_head_dim"])?;
    let kv = &mut *ctx.kv;
    kv.u32("deepseek2.attention.kv_lora_rank", rank);
    kv.u32("deepseek2.attention.key_length", rank + rope);
    kv.u32("deepseek2.attention.value_length", rank);
    kv.u32("deepseek2.attention.key_length_mla", nope + rope);
    kv.u32("deepseek2.attention.value_length_mla", v);
    Ok(())
}

/// Why llama.cpp will refuse to load a `deepseek2` GGUF with these KVs, if it will: its loader
/// reads `attention.q_lora_rank` (queries through a low-rank projection) unless the model looks
/// like DeepSeek-V2-Lite (26 or 27 layers, or 48 with a 128256-token vocabulary); a model without
/// q LoRA of any other depth converts (the converter writes no key) but does not load.
pub fn llama_cpp_load_problem(kv: &KvList) -> Option<String> {
    if kv.get("general.architecture").and_then(|v| v.as_str()) != Some("deepseek2")
        || kv.get("deepseek2.attention.q_lora_rank").is_some()
    {
        return None;
    }
    let layers = kv.get("deepseek2.block_count").and_then(|v| v.as_u64())?;
    let vocab = match kv.get("tokenizer.ggml.tokens") {
        Some(ckpt_gguf::GgufValue::Array(a)) => Some(a.items.len() as u64),
        _ => kv.get("deepseek2.vocab_size").and_then(|v| v.as_u64()),
    };
    if layers == 26 || layers == 27 || (layers == 48 && vocab == Some(128256)) {
        return None;
    }
    Some(format!(
        "llama.cpp will not load this GGUF: without q_lora_rank (no query LoRA) its deepseek2 loader needs DeepSeek-V2-Lite's layer count (26 or 27, or 48 with a 128256-token vocabulary), and this model has {layers} layers"
    ))
}

fn shared_count(ctx: &mut ParamContext) -> Result<()> {
    let n = ctx.hp.find_u32(&["n_shared_experts"])?.unwrap_or(0);
    ctx.kv.u32("deepseek2.expert_shared_count", n);
    Ok(())
}

/// `expert_weights_norm` only when `norm_topk_prob` is set and true.
fn weights_norm(ctx: &mut ParamContext) -> Result<()> {
    if ctx.hp.get("norm_topk_prob") == Some(&Value::Bool(true)) {
        ctx.kv.bool("deepseek2.expert_weights_norm", true);
    }
    Ok(())
}

/// `0.1 * mscale_all_dim` of the rope parameters (the converter's legacy DeepSeek-2 formula).
fn yarn_log_mul(ctx: &mut ParamContext) -> Result<()> {
    let rp = rope_parameters(ctx.hp);
    if let Some(v) = rp.get("mscale_all_dim").filter(|v| !v.is_null()) {
        let m = v.as_f64().ok_or_else(|| {
            Error::invalid(
                &ctx.hp.path,
                format!("rope mscale_all_dim is {v}, expected a number"),
            )
        })?;
        ctx.kv.f32(
            "deepseek2.rope.scaling.yarn_log_multiplier",
            (0.1 * m) as f32,
        );
    }
    Ok(())
}

/// Drops the multi-token-prediction blocks and a tied `lm_head`; splits `kv_b_proj`.
fn expand(
    t: &Tensor,
    bid: Option<u32>,
    hp: &Hparams,
    block_count: u32,
) -> Result<Option<Vec<Tensor>>> {
    if hp.get("tie_word_embeddings") == Some(&Value::Bool(true))
        && (t.name == "lm_head.weight" || t.name == "model.lm_head.weight")
    {
        return Ok(Some(Vec::new()));
    }
    if t.name.starts_with("model.layers.") && bid.is_some_and(|b| b >= block_count) {
        return Ok(Some(Vec::new()));
    }
    if !t.name.ends_with("kv_b_proj.weight") {
        return Ok(None);
    }
    let heads = hp.require_u32(&["num_key_value_heads"])? as usize;
    let nope = hp.require_u32(&["qk_nope_head_dim"])? as usize;
    let v = hp.require_u32(&["v_head_dim"])? as usize;
    split_kv_b(t, heads, nope, v, &hp.path).map(Some)
}

/// `kv_b_proj` -> (`k_b_proj`, `v_b_proj`), both computed a head at a time.
fn split_kv_b(
    t: &Tensor,
    heads: usize,
    nope: usize,
    v: usize,
    config: &std::path::Path,
) -> Result<Vec<Tensor>> {
    let per_head = nope + v;
    if t.shape.len() != 2 || t.shape[0] as usize != heads * per_head {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' has shape {:?}, expected [{} = num_key_value_heads {heads} x (qk_nope_head_dim {nope} + v_head_dim {v}), kv_lora_rank]",
                t.name,
                t.shape,
                heads * per_head
            ),
        ));
    }
    let rank = t.shape[1] as usize;
    let elem = match t.dtype.elem_size() {
        Some(e) => e,
        None => {
            return Err(Error::invalid(
                config,
                format!("tensor '{}': dtype {} cannot be split", t.name, t.dtype),
            ))
        }
    };
    let row = rank * elem;
    let src_k = t.clone();
    let k_b = Tensor::from_rows(
        t.name.replace("kv_b_proj", "k_b_proj"),
        t.dtype,
        vec![heads as u64, rank as u64, nope as u64],
        heads,
        nope * row,
        move |range, dst| {
            for (i, h) in range.enumerate() {
                let start = h * per_head;
                let src = read_rows(&src_k, start..start + nope, row)?;
                let out = &mut dst[i * nope * row..(i + 1) * nope * row];
                // [nope, rank] -> [rank, nope]
                for j in 0..nope {
                    for r in 0..rank {
                        let s = (j * rank + r) * elem;
                        let d = (r * nope + j) * elem;
                        out[d..d + elem].copy_from_slice(&src[s..s + elem]);
                    }
                }
            }
            Ok(())
        },
    );
    let src_v = t.clone();
    let v_b = Tensor::from_rows(
        t.name.replace("kv_b_proj", "v_b_proj"),
        t.dtype,
        vec![heads as u64, v as u64, rank as u64],
        heads,
        v * row,
        move |range, dst| {
            for (i, h) in range.enumerate() {
                let start = h * per_head + nope;
                let src = read_rows(&src_v, start..start + v, row)?;
                dst[i * v * row..(i + 1) * v * row].copy_from_slice(&src);
            }
            Ok(())
        },
    );
    Ok(vec![k_b, v_b])
}

/// The shape of `kv_b_proj` [heads * (qk_nope + v), kv_lora_rank] from those of `k_b_proj`
/// [heads, kv_lora_rank, qk_nope] and `v_b_proj` [heads, v, kv_lora_rank].
pub fn kv_b_shape(parts: &[&[u64]]) -> std::result::Result<Vec<u64>, String> {
    let [ks, vs] = parts else {
        return Err(format!(
            "kv_b_proj is joined from k_b_proj and v_b_proj, got {} parts",
            parts.len()
        ));
    };
    let (&[heads, rank, nope], &[v_heads, vd, v_rank]) = (*ks, *vs) else {
        return Err(format!(
            "k_b_proj {ks:?} and v_b_proj {vs:?} should both be 3-D [heads, ...]"
        ));
    };
    if heads != v_heads || rank != v_rank {
        return Err(format!("k_b_proj [heads, kv_lora_rank, qk_nope] = {ks:?} and v_b_proj [heads, v_head_dim, kv_lora_rank] = {vs:?} disagree"));
    }
    Ok(vec![heads * (nope + vd), rank])
}

/// The inverse of [`split_kv_b`]: each head's rows of `kv_b_proj` are its `k_b_proj` rows
/// transposed, then its `v_b_proj` rows (shapes as in [`kv_b_shape`]).
pub fn join_kv_b(parts: &[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String> {
    let shapes: Vec<&[u64]> = parts.iter().map(|p| p.1).collect();
    kv_b_shape(&shapes)?;
    let ([(k, ks), (v, vs)], true) = (parts, parts.len() == 2) else {
        return Err("kv_b_proj is joined from two parts".into());
    };
    let (heads, rank, nope, vd) = (
        ks[0] as usize,
        ks[1] as usize,
        ks[2] as usize,
        vs[1] as usize,
    );
    if k.len() != heads * rank * nope || v.len() != heads * vd * rank {
        return Err("k_b_proj or v_b_proj has the wrong number of values for its shape".into());
    }
    let per_head = nope + vd;
    let mut out = vec![0f32; heads * per_head * rank];
    for h in 0..heads {
        for j in 0..nope {
            let row = &mut out[(h * per_head + j) * rank..(h * per_head + j + 1) * rank];
            for (r, x) in row.iter_mut().enumerate() {
                *x = k[(h * rank + r) * nope + j];
            }
        }
        let dst = (h * per_head + nope) * rank;
        out[dst..dst + vd * rank].copy_from_slice(&v[h * vd * rank..(h + 1) * vd * rank]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ckpt_core::DType;

    /// split_kv_b then join_kv_b gives back kv_b_proj exactly.
    #[test]
    fn joining_the_split_kv_b_proj_is_the_identity() {
        let (heads, nope, v, rank) = (3usize, 4usize, 2usize, 5usize);
        let n = heads * (nope + v) * rank;
        let values: Vec<f32> = (0..n).map(|i| i as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = Tensor::computed(
            "model.layers.0.self_attn.kv_b_proj.weight",
            DType::F32,
            vec![(heads * (nope + v)) as u64, rank as u64],
            move || Ok(bytes.clone()),
        );
        let parts = split_kv_b(&t, heads, nope, v, std::path::Path::new("config.json")).unwrap();
        let f32s = super::super::split::f32_values;
        let (k, vb) = (f32s(&parts[0]), f32s(&parts[1]));
        let shape = kv_b_shape(&[&parts[0].shape, &parts[1].shape]).unwrap();
        assert_eq!(shape, t.shape);
        let joined = join_kv_b(&[(&k, &parts[0].shape), (&vb, &parts[1].shape)]).unwrap();
        assert_eq!(joined, values);
        assert!(join_kv_b(&[(&k, &parts[0].shape)]).is_err());
    }
}
