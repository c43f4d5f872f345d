//! GGUF architectures that map back to a Hugging Face model class: which class, and the
//! HF module path of every GGUF tensor name. The tables are the inverse of ckpt-model's
//! forward tables; `lib.rs` checks each inverse name against ckpt-model's forward mapping, so
//! a drift between the two is an error rather than a silently misnamed tensor.

use ckpt_model::arch::llama::LLAMA_NAMES;
use ckpt_model::arch::NameTable;

/// One GGUF architecture the exporter knows.
pub struct ExportArch {
    pub gguf: &'static str,
    /// `architectures[0]` of config.json.
    pub hf_class: &'static str,
    pub model_type: &'static str,
    /// HF module path (with `{bid}`) -> GGUF name, tried in order.
    pub names: &'static [NameTable],
}

const QK_NORM_NAMES: NameTable = &[
    (
        "model.layers.{bid}.self_attn.q_norm",
        "blk.{bid}.attn_q_norm",
    ),
    (
        "model.layers.{bid}.self_attn.k_norm",
        "blk.{bid}.attn_k_norm",
    ),
];

const GEMMA_NAMES: NameTable = &[
    ("model.embed_tokens", "token_embd"),
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

/// Gemma 2/3: norms around both the attention and the MLP.
const GEMMA2_NAMES: NameTable = &[
    ("model.embed_tokens", "token_embd"),
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
        "model.layers.{bid}.self_attn.q_norm",
        "blk.{bid}.attn_q_norm",
    ),
    (
        "model.layers.{bid}.self_attn.k_norm",
        "blk.{bid}.attn_k_norm",
    ),
    (
        "model.layers.{bid}.post_attention_layernorm",
        "blk.{bid}.post_attention_norm",
    ),
    (
        "model.layers.{bid}.pre_feedforward_layernorm",
        "blk.{bid}.ffn_norm",
    ),
    (
        "model.layers.{bid}.post_feedforward_layernorm",
        "blk.{bid}.post_ffw_norm",
    ),
    ("model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"),
    ("model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"),
    ("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
];

/// Phi3ForCausalLM keeps the fused qkv_proj and gate_up_proj, as the GGUF does.
const PHI3_NAMES: NameTable = &[
    ("model.embed_tokens", "token_embd"),
    ("lm_head", "output"),
    ("model.norm", "output_norm"),
    ("model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"),
    (
        "model.layers.{bid}.self_attn.qkv_proj",
        "blk.{bid}.attn_qkv",
    ),
    (
        "model.layers.{bid}.self_attn.o_proj",
        "blk.{bid}.attn_output",
    ),
    (
        "model.layers.{bid}.post_attention_layernorm",
        "blk.{bid}.ffn_norm",
    ),
    ("model.layers.{bid}.mlp.gate_up_proj", "blk.{bid}.ffn_up"),
    ("model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"),
];

/// GPT2LMHeadModel's state dict (the `transformer.` prefix it saves with).
const GPT2_NAMES: NameTable = &[
    ("transformer.wte", "token_embd"),
    ("transformer.wpe", "position_embd"),
    ("lm_head", "output"),
    ("transformer.ln_f", "output_norm"),
    ("transformer.h.{bid}.ln_1", "blk.{bid}.attn_norm"),
    ("transformer.h.{bid}.attn.c_attn", "blk.{bid}.attn_qkv"),
    ("transformer.h.{bid}.attn.c_proj", "blk.{bid}.attn_output"),
    ("transformer.h.{bid}.ln_2", "blk.{bid}.ffn_norm"),
    ("transformer.h.{bid}.mlp.c_fc", "blk.{bid}.ffn_up"),
    ("transformer.h.{bid}.mlp.c_proj", "blk.{bid}.ffn_down"),
];

const BERT_NAMES: NameTable = &[
    ("embeddings.word_embeddings", "token_embd"),
    ("embeddings.position_embeddings", "position_embd"),
    ("embeddings.token_type_embeddings", "token_types"),
    ("embeddings.LayerNorm", "token_embd_norm"),
    (
        "encoder.layer.{bid}.attention.self.query",
        "blk.{bid}.attn_q",
    ),
    ("encoder.layer.{bid}.attention.self.key", "blk.{bid}.attn_k"),
    (
        "encoder.layer.{bid}.attention.self.value",
        "blk.{bid}.attn_v",
    ),
    (
        "encoder.layer.{bid}.attention.output.dense",
        "blk.{bid}.attn_output",
    ),
    (
        "encoder.layer.{bid}.attention.output.LayerNorm",
        "blk.{bid}.attn_output_norm",
    ),
    ("encoder.layer.{bid}.intermediate.dense", "blk.{bid}.ffn_up"),
    ("encoder.layer.{bid}.output.dense", "blk.{bid}.ffn_down"),
    (
        "encoder.layer.{bid}.output.LayerNorm",
        "blk.{bid}.layer_output_norm",
    ),
];

pub const EXPORT_ARCHES: &[ExportArch] = &[
    ExportArch {
        gguf: "llama",
        hf_class: "LlamaForCausalLM",
        model_type: "llama",
        names: &[LLAMA_NAMES],
    },
    ExportArch {
        gguf: "qwen2",
        hf_class: "Qwen2ForCausalLM",
        model_type: "qwen2",
        names: &[LLAMA_NAMES],
    },
    ExportArch {
        gguf: "qwen3",
        hf_class: "Qwen3ForCausalLM",
        model_type: "qwen3",
        names: &[LLAMA_NAMES, QK_NORM_NAMES],
    },
    ExportArch {
        gguf: "gemma",
        hf_class: "GemmaForCausalLM",
        model_type: "gemma",
        names: &[GEMMA_NAMES],
    },
    ExportArch {
        gguf: "gemma2",
        hf_class: "Gemma2ForCausalLM",
        model_type: "gemma2",
        names: &[GEMMA2_NAMES],
    },
    ExportArch {
        gguf: "gemma3",
        hf_class: "Gemma3ForCausalLM",
        model_type: "gemma3_text",
        names: &[GEMMA2_NAMES],
    },
    ExportArch {
        gguf: "phi3",
        hf_class: "Phi3ForCausalLM",
        model_type: "phi3",
        names: &[PHI3_NAMES],
    },
    ExportArch {
        gguf: "gpt2",
        hf_class: "GPT2LMHeadModel",
        model_type: "gpt2",
        names: &[GPT2_NAMES],
    },
    ExportArch {
        gguf: "bert",
        hf_class: "BertModel",
        model_type: "bert",
        names: &[BERT_NAMES],
    },
];

pub fn find(gguf_arch: &str) -> Option<&'static ExportArch> {
    EXPORT_ARCHES.iter().find(|a| a.gguf == gguf_arch)
}

/// Tensors llama.cpp's converter computes from the config (rope factors); they are not weights
/// of the HF model.
pub fn is_generated(gguf_name: &str) -> bool {
    matches!(
        gguf_name,
        "rope_freqs.weight" | "rope_factors_long.weight" | "rope_factors_short.weight"
    )
}

/// The HF name of a GGUF tensor, e.g. `blk.3.attn_q.weight` -> `model.layers.3.self_attn.q_proj.weight`.
pub fn hf_name(arch: &ExportArch, gguf_name: &str) -> Option<String> {
    let (base, suffix) = match gguf_name.rsplit_once('.') {
        Some((b, s @ ("weight" | "bias"))) => (b, format!(".{s}")),
        _ => (gguf_name, String::new()),
    };
    let bid = base
        .strip_prefix("blk.")
        .and_then(|rest| rest.split('.').next())
        .filter(|b| b.bytes().all(|c| c.is_ascii_digit()));
    for table in arch.names {
        for (hf, gguf) in table.iter() {
            let matched = match bid {
                Some(b) if gguf.contains("{bid}") => gguf.replace("{bid}", b) == base,
                None if !gguf.contains("{bid}") => *gguf == base,
                _ => false,
            };
            if matched {
                let hf = bid.map_or_else(|| hf.to_string(), |b| hf.replace("{bid}", b));
                return Some(hf + &suffix);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_names() {
        let llama = find("llama").unwrap();
        assert_eq!(
            hf_name(llama, "blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name(llama, "output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(
            hf_name(find("qwen2").unwrap(), "blk.0.attn_k.bias").as_deref(),
            Some("model.layers.0.self_attn.k_proj.bias")
        );
        assert_eq!(
            hf_name(find("qwen3").unwrap(), "blk.1.attn_k_norm.weight").as_deref(),
            Some("model.layers.1.self_attn.k_norm.weight")
        );
        assert_eq!(
            hf_name(find("gpt2").unwrap(), "blk.1.attn_qkv.weight").as_deref(),
            Some("transformer.h.1.attn.c_attn.weight")
        );
        assert_eq!(hf_name(llama, "blk.0.unknown.weight"), None);
        assert_eq!(hf_name(llama, "blk.x.attn_q.weight"), None);
    }

    #[test]
    fn every_hf_class_is_one_ckpt_model_converts() {
        for a in EXPORT_ARCHES {
            let forward = ckpt_model::arch::find(a.hf_class)
                .unwrap_or_else(|| panic!("{} unknown to ckpt-model", a.hf_class));
            assert_eq!(forward.gguf_arch(), a.gguf);
        }
    }
}
