//! `config.json` and `generation_config.json` rebuilt from a GGUF's hyper-parameter keys.

use ckpt_gguf::{GgufSplit, GgufValue};
use serde_json::{json, Map, Value};

use ckpt_model::arch::family::FieldKind;

use crate::names::ExportArch;

/// GGUF stores floats as f32: print the shortest decimal that reads back as the same f32
/// (1e-5, not 9.999999747378752e-06), which is what the original config held.
pub fn f32_json(x: f32) -> Value {
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

pub struct Kvs<'a>(pub &'a GgufSplit);

impl Kvs<'_> {
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.0.get(key)
    }
    pub fn u64(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(GgufValue::as_u64)
    }
    pub fn f32(&self, key: &str) -> Option<f32> {
        self.get(key).and_then(GgufValue::as_f64).map(|f| f as f32)
    }
    pub fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }
    pub fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(GgufValue::as_bool)
    }
}

/// What the config needs besides the KVs.
pub struct ConfigInputs<'a> {
    pub arch: &'a ExportArch,
    pub vocab_size: u64,
    pub tied: bool,
    /// `torch_dtype` / `dtype` name ("float32", "float16", "bfloat16").
    pub torch_dtype: &'a str,
    /// Phi-3 longrope factors (`rope_factors_long`/`_short` tensors), when the GGUF has them.
    pub longrope: Option<(Vec<f32>, Vec<f32>)>,
    /// Llama 3 rope scaling parameters that generate the GGUF's `rope_freqs.weight`.
    pub llama3_rope: Option<Map<String, Value>>,
    /// The GGUF's tensor names (optional tensors switch config flags on).
    pub tensors: Vec<String>,
}

pub fn build_config(
    kv: &Kvs,
    inp: &ConfigInputs,
    warnings: &mut Vec<String>,
) -> Map<String, Value> {
    let a = inp.arch.gguf;
    let k = |s: &str| format!("{a}.{s}");
    let mut c = Map::new();
    let put = |c: &mut Map<String, Value>, key: &str, v: Option<Value>| {
        if let Some(v) = v {
            c.insert(key.to_string(), v);
        }
    };
    c.insert("architectures".into(), json!([inp.arch.hf_class]));
    c.insert("model_type".into(), json!(inp.arch.model_type));
    let hidden = kv.u64(&k("embedding_length"));
    let heads = kv.u64(&k("attention.head_count"));
    let layers = kv.u64(&k("block_count"));
    let ffn = kv.u64(&k("feed_forward_length"));
    let ctx = kv.u64(&k("context_length"));
    if a == "gpt2" {
        put(&mut c, "n_embd", hidden.map(Value::from));
        put(&mut c, "n_head", heads.map(Value::from));
        put(&mut c, "n_layer", layers.map(Value::from));
        put(&mut c, "n_inner", ffn.map(Value::from));
        put(&mut c, "n_positions", ctx.map(Value::from));
        put(&mut c, "n_ctx", ctx.map(Value::from));
        put(
            &mut c,
            "layer_norm_epsilon",
            kv.f32(&k("attention.layer_norm_epsilon")).map(f32_json),
        );
        put(&mut c, "activation_function", Some(json!("gelu_new")));
    } else {
        put(&mut c, "hidden_size", hidden.map(Value::from));
        put(&mut c, "intermediate_size", ffn.map(Value::from));
        put(&mut c, "num_hidden_layers", layers.map(Value::from));
        put(&mut c, "num_attention_heads", heads.map(Value::from));
        if a != "bert" {
            put(
                &mut c,
                "num_key_value_heads",
                kv.u64(&k("attention.head_count_kv"))
                    .or(heads)
                    .map(Value::from),
            );
        }
        put(&mut c, "max_position_embeddings", ctx.map(Value::from));
        put(
            &mut c,
            "rms_norm_eps",
            kv.f32(&k("attention.layer_norm_rms_epsilon")).map(f32_json),
        );
        put(
            &mut c,
            "layer_norm_eps",
            kv.f32(&k("attention.layer_norm_epsilon")).map(f32_json),
        );
    }
    // The converter writes key_length only when config.json had head_dim.
    let head_dim = kv.u64(&k("attention.key_length"));
    let default_head_dim = hidden.zip(heads).and_then(|(h, n)| h.checked_div(n));
    if let Some(d) = head_dim {
        c.insert("head_dim".into(), json!(d));
    }
    if let Some(theta) = kv.f32(&k("rope.freq_base")) {
        c.insert("rope_theta".into(), f32_json(theta));
    }
    if let Some(swa_theta) = kv.f32(&k("rope.freq_base_swa")) {
        c.insert("rope_local_base_freq".into(), f32_json(swa_theta));
    }
    if let Some(rope_dims) = kv.u64(&k("rope.dimension_count")) {
        // Rotary embeddings over part of each head (the converter writes the rotated width).
        let hd = head_dim.or(default_head_dim);
        if let Some(hd) = hd.filter(|&hd| hd != rope_dims && hd > 0) {
            c.insert(
                "partial_rotary_factor".into(),
                json!(rope_dims as f64 / hd as f64),
            );
        }
    }
    // Which layers use the sliding window (OLMo 3, EXAONE 4).
    if let Some(GgufValue::Array(pattern)) = kv.get(&k("attention.sliding_window_pattern")) {
        let types: Vec<Value> = pattern
            .items
            .iter()
            .map(|b| {
                json!(if b.as_bool() == Some(true) {
                    "sliding_attention"
                } else {
                    "full_attention"
                })
            })
            .collect();
        c.insert("layer_types".into(), Value::Array(types));
    }
    // Optional tensors that transformers' configs switch on.
    let has = |suffix: &str| inp.tensors.iter().any(|t| t.ends_with(suffix));
    if has(".attn_q_norm.weight") {
        c.insert("qk_layernorm".into(), json!(true));
        c.insert("use_qk_norm".into(), json!(true));
    }
    if has(".attn_q.bias") {
        c.insert("use_qkv_bias".into(), json!(true));
        c.insert("attention_bias".into(), json!(true));
    }
    if a == "modern-bert" {
        // ModernBERT's optional biases (the released models have none).
        c.insert("attention_bias".into(), json!(has(".attn_qkv.bias")));
        c.insert("mlp_bias".into(), json!(has(".ffn_up.bias")));
        c.insert("norm_bias".into(), json!(has("output_norm.bias")));
    }
    match kv.str(&k("rope.scaling.type")) {
        Some(t @ ("linear" | "yarn")) => {
            let mut rs = Map::new();
            rs.insert("rope_type".into(), json!(t));
            if let Some(f) = kv.f32(&k("rope.scaling.factor")) {
                rs.insert("factor".into(), f32_json(f));
            }
            if let Some(o) = kv.u64(&k("rope.scaling.original_context_length")) {
                rs.insert("original_max_position_embeddings".into(), json!(o));
            }
            for (gguf, hf) in [
                ("rope.scaling.yarn_ext_factor", "extrapolation_factor"),
                ("rope.scaling.yarn_attn_factor", "attention_factor"),
                ("rope.scaling.yarn_beta_fast", "beta_fast"),
                ("rope.scaling.yarn_beta_slow", "beta_slow"),
            ] {
                if let Some(v) = kv.f32(&k(gguf)) {
                    rs.insert(hf.into(), f32_json(v));
                }
            }
            c.insert("rope_scaling".into(), Value::Object(rs));
        }
        Some("longrope") | None if inp.longrope.is_some() => {
            let (long, short) = inp.longrope.clone().unwrap_or_default();
            let floats = |v: Vec<f32>| Value::Array(v.into_iter().map(f32_json).collect());
            c.insert("rope_scaling".into(), json!({"type": "longrope", "long_factor": floats(long), "short_factor": floats(short)}));
            if let Some(o) = kv.u64(&k("rope.scaling.original_context_length")) {
                c.insert("original_max_position_embeddings".into(), json!(o));
            }
        }
        // (Hunyuan's converter writes "none" after folding NTK alpha into the base.)
        Some("none") => {}
        Some(other) => warnings.push(format!(
            "rope scaling type {other} is not written to config.json"
        )),
        None => {}
    }
    if let Some(rs) = &inp.llama3_rope {
        c.insert("rope_scaling".into(), Value::Object(rs.clone()));
    }
    for (gguf, hf) in [
        ("attention.sliding_window", "sliding_window"),
        ("attn_logit_softcapping", "attn_logit_softcapping"),
        ("final_logit_softcapping", "final_logit_softcapping"),
    ] {
        if let Some(v) = kv.get(&k(gguf)) {
            let v = match v {
                GgufValue::F32(f) => f32_json(*f),
                other => other.as_u64().map(Value::from).unwrap_or(Value::Null),
            };
            c.insert(hf.into(), v);
        }
    }
    if a == "bert" {
        c.insert("hidden_act".into(), json!("gelu"));
    }
    if a == "gemma" || a == "gemma2" || a == "gemma3" {
        c.insert("hidden_activation".into(), json!("gelu_pytorch_tanh"));
    }
    if let Some(causal) = kv.bool(&k("attention.causal")) {
        c.insert("is_causal".into(), json!(causal));
    }
    c.insert("vocab_size".into(), json!(inp.vocab_size));
    c.insert("tie_word_embeddings".into(), json!(inp.tied));
    for t in ["bos", "eos", "pad"] {
        if let Some(id) = kv.u64(&format!("tokenizer.ggml.{t}_token_id")) {
            c.insert(format!("{t}_token_id"), json!(id));
        }
    }
    // No padding token: say so, or the config class's default (GLM-4's 151329) may lie outside
    // the embedding.
    c.entry("pad_token_id").or_insert(Value::Null);
    c.insert("torch_dtype".into(), json!(inp.torch_dtype));
    c.insert("dtype".into(), json!(inp.torch_dtype));
    // The family's plain copies (the converter's declarative parameter list, read backwards).
    for f in inp.arch.forward.config_fields() {
        let v = match f.kind {
            FieldKind::Float => kv.f32(&k(f.key)).map(f32_json),
            FieldKind::Int => kv.u64(&k(f.key)).map(Value::from),
            FieldKind::Bool => kv.bool(&k(f.key)).map(Value::from),
        };
        if let Some(v) = v {
            c.insert(f.field.into(), v);
        }
    }
    family_quirks(kv, a, &mut c, warnings);
    c
}

/// What the declarative inverse cannot say: keys the converter computes, and what llama.cpp's
/// graph for the architecture does that the GGUF does not record (written so transformers
/// computes the same thing).
fn family_quirks(kv: &Kvs, a: &str, c: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    let k = |s: &str| format!("{a}.{s}");
    match a {
        // llama.cpp renormalises the chosen experts' weights for Qwen 3 MoE, not for Qwen 2
        // MoE or OLMoE (the converter writes no key for it).
        "qwen3moe" => {
            c.insert("norm_topk_prob".into(), json!(true));
        }
        "qwen2moe" => {
            c.insert("norm_topk_prob".into(), json!(false));
        }
        "olmoe" => {
            c.insert("norm_topk_prob".into(), json!(false));
            warnings.push("OLMoE: the converter writes rms_norm_eps as 1e-5 whatever the config said; config.json has 1e-5".into());
        }
        // OLMo 3 is "olmo2" with sliding-window layers (the converter writes which).
        "olmo2" if c.contains_key("layer_types") => {
            c.insert("architectures".into(), json!(["Olmo3ForCausalLM"]));
            c.insert("model_type".into(), json!("olmo3"));
        }
        // LFM2: per-layer KV head counts, 0 for the short-convolution layers; the converter
        // writes the adjusted feed-forward width.
        "lfm2" => {
            if let Some(GgufValue::Array(kvh)) = kv.get(&k("attention.head_count_kv")) {
                let counts: Vec<i64> = kvh.items.iter().filter_map(GgufValue::as_i64).collect();
                let types: Vec<Value> = counts
                    .iter()
                    .map(|&n| json!(if n > 0 { "full_attention" } else { "conv" }))
                    .collect();
                c.insert("layer_types".into(), Value::Array(types));
                if let Some(&n) = counts.iter().max() {
                    c.insert("num_key_value_heads".into(), json!(n));
                }
            }
            if let Some(e) = kv.f32(&k("attention.layer_norm_rms_epsilon")) {
                c.insert("norm_eps".into(), f32_json(e));
            }
            if let Some(ff) = kv.u64(&k("feed_forward_length")) {
                c.insert("block_ff_dim".into(), json!(ff));
                c.insert("block_auto_adjust_ff_dim".into(), json!(false));
            }
        }
        // Granite MoE with a shared expert is GraniteMoeShared.
        "granitemoe" => {
            if let Some(n) = kv.u64(&k("expert_shared_feed_forward_length")) {
                c.insert(
                    "architectures".into(),
                    json!(["GraniteMoeSharedForCausalLM"]),
                );
                c.insert("model_type".into(), json!("granitemoeshared"));
                c.insert("shared_intermediate_size".into(), json!(n));
            }
        }
        // GPT-OSS: what llama.cpp's graph fixes (the converter writes no key for it), written
        // as GptOssConfig has it: sliding-window attention on every other layer from the first
        // (unless the GGUF says otherwise), SwiGLU with alpha 1.702 clamped at 7, and yarn rope
        // without truncated correction dims (the released config's "truncate": false). Without
        // yarn keys the rope is plain (GptOssConfig would default to yarn).
        "gpt-oss" => {
            if !c.contains_key("layer_types") {
                let n = kv.u64(&k("block_count")).unwrap_or(0);
                let pattern = kv
                    .u64(&k("attention.sliding_window_pattern"))
                    .unwrap_or(2)
                    .max(1);
                let types: Vec<Value> = (0..n)
                    .map(|i| {
                        json!(if i % pattern < pattern - 1 {
                            "sliding_attention"
                        } else {
                            "full_attention"
                        })
                    })
                    .collect();
                c.insert("layer_types".into(), Value::Array(types));
            }
            c.insert("swiglu_alpha".into(), json!(1.702));
            c.insert("swiglu_limit".into(), json!(7.0));
            match c.get_mut("rope_scaling") {
                Some(Value::Object(rs)) if rs.get("rope_type") == Some(&json!("yarn")) => {
                    rs.insert("truncate".into(), json!(false));
                }
                Some(_) => {}
                None => {
                    c.insert("rope_scaling".into(), json!({"rope_type": "default"}));
                }
            }
        }
        // GLM-4.5: the block count includes the NextN (multi-token-prediction) layers, which
        // the converter keeps after the main ones; the rotated fraction of each head and the
        // routing are the converter's own keys.
        "glm4moe" => {
            let nextn = kv.u64(&k("nextn_predict_layers")).unwrap_or(0);
            if let Some(n) = kv.u64(&k("block_count")) {
                c.insert("num_hidden_layers".into(), json!(n.saturating_sub(nextn)));
            }
            c.insert("num_nextn_predict_layers".into(), json!(nextn));
            // Written even when it is 1 (the config class defaults to 0.5).
            let heads = kv.u64(&k("attention.head_count"));
            let head_dim = kv.u64(&k("attention.key_length")).or_else(|| {
                kv.u64(&k("embedding_length"))
                    .zip(heads)
                    .and_then(|(h, n)| h.checked_div(n))
            });
            if let (Some(r), Some(hd)) = (kv.u64(&k("rope.dimension_count")), head_dim) {
                if hd > 0 {
                    c.insert("partial_rotary_factor".into(), json!(r as f64 / hd as f64));
                }
            }
            for (gguf, hf) in [
                ("expert_feed_forward_length", "moe_intermediate_size"),
                ("expert_shared_count", "n_shared_experts"),
                ("leading_dense_block_count", "first_k_dense_replace"),
            ] {
                if let Some(v) = kv.u64(&k(gguf)) {
                    c.insert(hf.into(), json!(v));
                }
            }
            if let Some(v) = kv.f32(&k("expert_weights_scale")) {
                c.insert("routed_scaling_factor".into(), f32_json(v));
            }
            if let Some(v) = kv.bool(&k("expert_weights_norm")) {
                c.insert("norm_topk_prob".into(), json!(v));
            }
            c.entry("attention_bias").or_insert(json!(false));
            c.entry("use_qk_norm").or_insert(json!(false));
        }
        // GLM-4: transformers' Glm4Config defaults head_dim to 128 and partial_rotary_factor to
        // 0.5, so both are written whatever they are; M-RoPE sections (which made the converter
        // reorder Q/K to NeoX order) go back into rope_parameters.
        "glm4" => glm4_rope(kv, a, c),
        "modern-bert" => modern_bert(kv, a, c, warnings),
        "gemma-embedding" => embedding_gemma(kv, a, c),
        "llama4" => llama4(kv, a, c, warnings),
        // SmolLM3: llama.cpp skips rope on every 4th layer whatever the config said (the
        // converter writes no key for it); the released model has that pattern.
        "smollm3" => {
            const NO_ROPE_EVERY: u64 = 4;
            no_rope_every(c, kv.u64(&k("block_count")).unwrap_or(0), NO_ROPE_EVERY);
            c.insert("use_sliding_window".into(), json!(false));
            warnings.push(format!("SmolLM3: the GGUF does not record which layers skip rope; config.json has llama.cpp's fixed pattern, none on every {NO_ROPE_EVERY}th layer (as in the released SmolLM3-3B)"));
        }
        // Hunyuan: the converter folded NTK-alpha ("dynamic") rope scaling into the base and
        // fixed the context at 256k (scaling type "none"); plain rope with that base is what
        // llama.cpp computes, and transformers' NTK-alpha frequencies come from the same f32
        // base.
        "hunyuan-dense" if kv.str(&k("rope.scaling.type")) == Some("none") => {
            if let Some(base) = kv.f32(&k("rope.freq_base")) {
                warnings.push(format!("Hunyuan: the converter folded NTK-alpha rope scaling into the rope base and fixed the context at 256k; config.json has plain rope with rope_theta {base} (the same frequencies), not the original alpha"));
            }
        }
        // Apertus: llama.cpp's graph always applies xIELU, whose per-layer parameters come back
        // as tensors (see ckpt-model's `kv_tensors`).
        "apertus" => {
            c.insert("hidden_act".into(), json!("xielu"));
        }
        "ernie4_5-moe" => {
            if let Some(n) = kv.u64(&k("expert_shared_count")) {
                c.insert("moe_num_shared_experts".into(), json!(n));
            }
        }
        "deepseek2" => {
            // MLA is written as MQA with key_length = kv_lora_rank + rope dims: the config's
            // heads and head sizes come from the _mla keys.
            if let Some(h) = kv.u64(&k("attention.head_count")) {
                c.insert("num_key_value_heads".into(), json!(h));
            }
            let rope = kv.u64(&k("rope.dimension_count"));
            if let Some(r) = rope {
                c.insert("head_dim".into(), json!(r));
            }
            // (qk_rope_head_dim is the rotary part; it is not a fraction of key_length.)
            c.remove("partial_rotary_factor");
            if let (Some(kl), Some(r)) = (kv.u64(&k("attention.key_length_mla")), rope) {
                c.insert("qk_nope_head_dim".into(), json!(kl.saturating_sub(r)));
            }
            if let Some(v) = kv.u64(&k("attention.value_length_mla")) {
                c.insert("v_head_dim".into(), json!(v));
            }
            if let Some(r) = kv.u64(&k("attention.kv_lora_rank")) {
                c.insert("kv_lora_rank".into(), json!(r));
            }
            if !c.contains_key("q_lora_rank") {
                c.insert("q_lora_rank".into(), Value::Null);
            }
            c.insert(
                "first_k_dense_replace".into(),
                json!(kv.u64(&k("leading_dense_block_count")).unwrap_or(0)),
            );
            if let Some(n) = kv.u64(&k("expert_shared_count")) {
                c.insert("n_shared_experts".into(), json!(n));
            }
            c.insert(
                "norm_topk_prob".into(),
                json!(kv.bool(&k("expert_weights_norm")).unwrap_or(false)),
            );
            match kv.u64(&k("expert_gating_func")) {
                Some(2) => {
                    c.insert("scoring_func".into(), json!("sigmoid"));
                    c.insert("topk_method".into(), json!("noaux_tc"));
                }
                Some(1) => {
                    c.insert("scoring_func".into(), json!("softmax"));
                }
                _ => {}
            }
            // `yarn_log_multiplier` is 0.1 * mscale_all_dim; mscale itself is not in the GGUF,
            // and the released DeepSeek V2/V3 configs have mscale == mscale_all_dim.
            if let (Some(m), Some(Value::Object(rs))) = (
                kv.f32(&k("rope.scaling.yarn_log_multiplier")),
                c.get_mut("rope_scaling"),
            ) {
                let all_dim = f32_json(m / 0.1);
                rs.insert("mscale_all_dim".into(), all_dim.clone());
                rs.insert("mscale".into(), all_dim);
                warnings.push("DeepSeek yarn rope: mscale is not in the GGUF; config.json sets it to mscale_all_dim, as in the released models".into());
            }
        }
        _ => {}
    }
}

/// Llama 4: `Llama4TextConfig`'s `intermediate_size` is the experts' width (the converter wrote
/// it as `expert_feed_forward_length`) and `intermediate_size_mlp` the dense layers'
/// (`feed_forward_length`). The rest is what llama.cpp's graph fixes, which the GGUF does not
/// record: without a `sliding_window` key, chunked attention over 8192 tokens on the layers of
/// the window pattern (3 chunked, 1 full unless the GGUF says otherwise), no rope on every 4th
/// layer, whose queries are scaled by the attention temperature
/// `log(floor((pos + 1) / 8192) + 1) * 0.1 + 1`, and the weightless L2 norm of Q/K on the rope
/// layers except with 128 experts (Maverick). With `sliding_window` 0 (all full attention)
/// llama.cpp skips rope on the last layer only and leaves the temperature's scales at 0 (its
/// input then fails an assertion at run time), so config.json has no temperature tuning.
fn llama4(kv: &Kvs, a: &str, c: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    let k = |s: &str| format!("{a}.{s}");
    let dense = c.remove("intermediate_size");
    if let Some(moe) = c.remove("intermediate_size_moe") {
        c.insert("intermediate_size".into(), moe);
    }
    if let Some(dense) = dense {
        c.insert("intermediate_size_mlp".into(), dense);
    }
    // Llama4TextConfig's head_dim defaults to 128 whatever the head count.
    if !c.contains_key("head_dim") {
        let hidden = kv.u64(&k("embedding_length"));
        let heads = kv.u64(&k("attention.head_count"));
        if let Some(d) = hidden.zip(heads).and_then(|(h, n)| h.checked_div(n)) {
            c.insert("head_dim".into(), json!(d));
        }
    }
    let n = kv.u64(&k("block_count")).unwrap_or(0);
    let experts = kv.u64(&k("expert_count")).unwrap_or(0);
    c.insert("use_qk_norm".into(), json!(experts != 128));
    c.remove("sliding_window");
    if kv.u64(&k("attention.sliding_window")) == Some(0) {
        c.insert("attention_chunk_size".into(), Value::Null);
        c.insert(
            "layer_types".into(),
            json!(vec!["full_attention"; n as usize]),
        );
        let rope: Vec<u64> = (0..n).map(|il| u64::from(il + 1 != n)).collect();
        c.insert("no_rope_layers".into(), json!(rope));
        c.insert("attn_temperature_tuning".into(), json!(false));
        warnings.push("Llama 4 without chunked attention (sliding_window 0): llama.cpp skips rope on the last layer and leaves its attention temperature scales at 0 (it asserts on them at run time); config.json skips rope on the last layer, without temperature tuning".into());
        return;
    }
    const CHUNK: u64 = 8192;
    const NO_ROPE_EVERY: u64 = 4;
    let chunked: Vec<bool> = match kv.get(&k("attention.sliding_window_pattern")) {
        Some(GgufValue::Array(p)) => p.items.iter().map(|b| b.as_bool() == Some(true)).collect(),
        other => {
            let p = other.and_then(GgufValue::as_u64).unwrap_or(4).max(1);
            (0..n).map(|il| il % p < p - 1).collect()
        }
    };
    let types: Vec<&str> = chunked
        .iter()
        .map(|&s| {
            if s {
                "chunked_attention"
            } else {
                "full_attention"
            }
        })
        .collect();
    c.insert("layer_types".into(), json!(types));
    c.insert("attention_chunk_size".into(), json!(CHUNK));
    no_rope_every(c, n, NO_ROPE_EVERY);
    c.insert("attn_temperature_tuning".into(), json!(true));
    c.insert("floor_scale".into(), json!(CHUNK));
    c.insert("attn_scale".into(), json!(0.1));
    if let (Some(swa), Some(base)) = (
        kv.f32(&k("rope.freq_base_swa")),
        kv.f32(&k("rope.freq_base")),
    ) {
        if swa != base {
            warnings.push(format!("Llama 4: the chunked layers' rope base {swa} differs from the full layers' {base}; transformers has one rope base, config.json has {base}"));
        }
    }
}

/// No rope on every `every`-th of `n` layers (llama.cpp's `n_no_rope_layer_step`), as
/// transformers' `no_rope_layers` (1 = rope) and `no_rope_layer_interval` say it.
fn no_rope_every(c: &mut Map<String, Value>, n: u64, every: u64) {
    let rope: Vec<u64> = (0..n).map(|il| u64::from((il + 1) % every != 0)).collect();
    c.insert("no_rope_layers".into(), json!(rope));
    c.insert("no_rope_layer_interval".into(), json!(every));
}

/// GLM-4's rope: `rope.dimension_count` is int(head_dim * partial_rotary_factor) (see
/// ckpt-model's `glm4_rope_dims`), `rope.dimension_sections` the M-RoPE sections padded to 4.
fn glm4_rope(kv: &Kvs, a: &str, c: &mut Map<String, Value>) {
    let k = |s: &str| format!("{a}.{s}");
    let head_dim = kv.u64(&k("attention.key_length")).or_else(|| {
        let hidden = kv.u64(&k("embedding_length"))?;
        hidden.checked_div(kv.u64(&k("attention.head_count"))?)
    });
    let Some(hd) = head_dim.filter(|&d| d > 0) else {
        return;
    };
    c.insert("head_dim".into(), json!(hd));
    let mut rp = Map::new();
    rp.insert("rope_type".into(), json!("default"));
    if let Some(theta) = kv.f32(&k("rope.freq_base")) {
        rp.insert("rope_theta".into(), f32_json(theta));
    }
    if let Some(dims) = kv.u64(&k("rope.dimension_count")) {
        let factor = json!(dims as f64 / hd as f64);
        c.insert("partial_rotary_factor".into(), factor.clone());
        rp.insert("partial_rotary_factor".into(), factor);
    }
    if let Some(GgufValue::Array(s)) = kv.get(&k("rope.dimension_sections")) {
        let mut sections: Vec<i64> = s.items.iter().filter_map(GgufValue::as_i64).collect();
        // (The converter pads the list to 4 with zeros; released configs have 3 sections.)
        while sections.len() > 3 && sections.last() == Some(&0) {
            sections.pop();
        }
        rp.insert("mrope_section".into(), json!(sections));
    }
    c.insert("rope_parameters".into(), Value::Object(rp));
}

/// Which layers use the sliding window as llama.cpp's `set_swa_pattern` decides from the
/// pattern `n` (every n-th layer full; the first of each group when `dense_first`, else the
/// last); `0` makes every layer sliding.
fn swa_layer_types(layers: u64, n: u64, dense_first: bool) -> Value {
    let types = (0..layers)
        .map(|il| {
            let sliding = n == 0
                || if dense_first {
                    il % n != 0
                } else {
                    il % n < n - 1
                };
            json!(if sliding {
                "sliding_attention"
            } else {
                "full_attention"
            })
        })
        .collect();
    Value::Array(types)
}

/// transformers' per-layer-type rope parameters: the global base for full-attention layers,
/// `rope.freq_base_swa` (llama.cpp's default 10000 when absent) for sliding ones; the
/// top-level copies [`build_config`] wrote are taken out.
fn rope_per_layer_type(kv: &Kvs, a: &str, c: &mut Map<String, Value>) {
    let k = |s: &str| format!("{a}.{s}");
    c.remove("rope_theta");
    c.remove("rope_local_base_freq");
    let mut full = Map::new();
    full.insert("rope_type".into(), json!("default"));
    if let Some(t) = kv.f32(&k("rope.freq_base")) {
        full.insert("rope_theta".into(), f32_json(t));
    }
    // Linear scaling applies to the global layers (Gemma 3's released configs).
    if let Some(Value::Object(rs)) = c.remove("rope_scaling") {
        full.extend(rs);
    }
    let local = kv.f32(&k("rope.freq_base_swa")).unwrap_or(10000.0);
    c.insert(
        "rope_parameters".into(),
        json!({
            "full_attention": Value::Object(full),
            "sliding_attention": {"rope_type": "default", "rope_theta": f32_json(local)},
        }),
    );
}

/// ModernBERT: the converter writes `norm_eps` as the RMS-norm key, `local_attention` as the
/// window, `global_attn_every_n_layers` as the pattern (llama.cpp's default 3 when absent, layer 0
/// global), the classifier pooling as a number; biases are on or off by the tensors present.
fn modern_bert(kv: &Kvs, a: &str, c: &mut Map<String, Value>, warnings: &mut Vec<String>) {
    let k = |s: &str| format!("{a}.{s}");
    c.remove("num_key_value_heads");
    c.remove("is_causal");
    if let Some(eps) = c.remove("rms_norm_eps") {
        c.insert("norm_eps".into(), eps);
    }
    if let Some(w) = c.remove("sliding_window") {
        c.insert("local_attention".into(), w);
    }
    let every = kv.u64(&k("attention.sliding_window_pattern")).unwrap_or(3);
    c.insert("global_attn_every_n_layers".into(), json!(every));
    if let Some(layers) = kv.u64(&k("block_count")) {
        c.insert("layer_types".into(), swa_layer_types(layers, every, true));
    }
    rope_per_layer_type(kv, a, c);
    if let Some(act) = kv.str(&k("hidden_activation")) {
        c.insert("hidden_activation".into(), json!(act));
    }
    match kv.u64(&k("classifier.pooling_type")) {
        Some(1) => {
            c.insert("classifier_pooling".into(), json!("mean"));
        }
        Some(2) => {
            c.insert("classifier_pooling".into(), json!("cls"));
        }
        Some(other) => warnings.push(format!(
            "ModernBERT classifier pooling type {other} has no classifier_pooling value; config.json leaves the default"
        )),
        None => {}
    }
    for (t, key) in [("cls", "cls_token_id"), ("seperator", "sep_token_id")] {
        if let Some(id) = kv.u64(&format!("tokenizer.ggml.{t}_token_id")) {
            c.insert(key.into(), json!(id));
        }
    }
}

/// EmbeddingGemma: Gemma 3 text with bidirectional attention; llama.cpp's graph scales queries by
/// 1/sqrt(head_dim) (query_pre_attn_scalar = head_dim) and makes every sixth layer global unless
/// the GGUF says otherwise. The window is config.json's own (transformers adjusts it on load).
fn embedding_gemma(kv: &Kvs, a: &str, c: &mut Map<String, Value>) {
    let k = |s: &str| format!("{a}.{s}");
    c.remove("is_causal");
    c.insert("use_bidirectional_attention".into(), json!(true));
    c.insert("hidden_activation".into(), json!("gelu_pytorch_tanh"));
    if let Some(hd) = kv.u64(&k("attention.key_length")) {
        c.insert("query_pre_attn_scalar".into(), json!(hd));
    }
    if !c.contains_key("layer_types") {
        if let Some(layers) = kv.u64(&k("block_count")) {
            let n = kv.u64(&k("attention.sliding_window_pattern")).unwrap_or(6);
            c.insert("layer_types".into(), swa_layer_types(layers, n, false));
        }
    }
    rope_per_layer_type(kv, a, c);
}

pub fn build_generation_config(kv: &Kvs) -> Option<Map<String, Value>> {
    let mut g = Map::new();
    for t in ["bos", "eos", "pad"] {
        if let Some(id) = kv.u64(&format!("tokenizer.ggml.{t}_token_id")) {
            g.insert(format!("{t}_token_id"), json!(id));
        }
    }
    (!g.is_empty()).then_some(g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_the_original_decimal() {
        assert_eq!(f32_json(1e-5f32), json!(1e-5));
        assert_eq!(f32_json(10000.0), json!(10000.0));
        assert_eq!(f32_json(f32::NAN), Value::Null);
    }
}
