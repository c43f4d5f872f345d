//! GGUF architectures that map back to a Hugging Face model class: which class, and the
//! HF module path of every GGUF tensor name. The tables are the inverse of ckpt-model's
//! forward tables; `lib.rs` checks each inverse name against ckpt-model's forward mapping, so
//! a drift between the two is an error rather than a silently misnamed tensor.

use ckpt_model::arch::Architecture;

/// One GGUF architecture the exporter knows: the ckpt-model description that converts to it,
/// read backwards.
pub struct ExportArch {
    /// `general.architecture`.
    pub(crate) gguf: &'static str,
    /// `architectures[0]` of config.json.
    pub(crate) hf_class: &'static str,
    /// `model_type` of config.json.
    pub(crate) model_type: &'static str,
    /// HF module path (with `{bid}`) -> GGUF name, derived from the forward tables (the shared
    /// tensor map restricted to this architecture's kinds).
    pub(crate) names: Vec<(&'static str, &'static str)>,
    /// The converter's description, read backwards (experts, joins, config fields).
    pub(crate) forward: &'static dyn Architecture,
}

impl ExportArch {
    fn of(forward: &'static dyn Architecture) -> ExportArch {
        ExportArch {
            gguf: forward.gguf_arch(),
            hf_class: forward.hf_names()[0],
            model_type: forward.model_type(),
            names: forward.export_names(),
            forward,
        }
    }
}

/// What tells apart the descriptions that convert to one GGUF architecture.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Hints<'a> {
    /// Stacked expert tensors (`ffn_*_exps`): Mixtral is "llama" with experts.
    pub has_experts: bool,
    /// An expert bias (`exp_probs_b`): DeepSeek V3 is "deepseek2" with one, V2's router has none.
    pub has_expert_bias: bool,
    /// `tokenizer.ggml.model`: XLM-RoBERTa is "bert" with a Unigram ("t5") vocabulary.
    pub tokenizer_model: Option<&'a str>,
}

/// Why a GGUF of architecture `gguf_arch` cannot be exported, or the description it exports
/// through (see [`Hints`] for architectures several descriptions convert to; vision-language
/// ones export through their text model). None when no description converts to `gguf_arch`.
pub(crate) fn find_for(gguf_arch: &str, hints: Hints) -> Option<Result<ExportArch, &'static str>> {
    let Hints {
        has_experts,
        has_expert_bias,
        tokenizer_model,
    } = hints;
    let candidates: Vec<&'static dyn Architecture> = ckpt_model::arch::registry()
        .iter()
        .copied()
        .filter(|a| a.gguf_arch() == gguf_arch)
        .collect();
    let first = *candidates.first()?;
    let fits = |a: &&'static dyn Architecture| {
        a.experts().is_some() == has_experts
            && (a.gguf_arch() != "deepseek2"
                || (a.hf_names()[0] == "DeepseekV3ForCausalLM") == has_expert_bias)
            && (a.gguf_arch() != "bert"
                || (a.hf_names()[0] == "XLMRobertaModel") == (tokenizer_model == Some("t5")))
    };
    let chosen = candidates
        .iter()
        .copied()
        .find(|a| a.exports() && fits(a))
        .or_else(|| candidates.iter().copied().find(fits))
        .unwrap_or(first);
    Some(match chosen.export_refusal() {
        None => Ok(ExportArch::of(chosen)),
        Some(why) => Err(why),
    })
}

/// Every registered Hugging Face class that does not export, with the reason (first class name
/// of each description; vision-language ones are left out, their text model decides; variants
/// reached through another description's class, such as nomic-bert-moe, have no class name of
/// their own and are left out too).
pub fn refused() -> Vec<(&'static str, &'static str)> {
    ckpt_model::arch::registry()
        .iter()
        .filter_map(|a| Some((*a.hf_names().first()?, a.export_refusal()?)))
        .collect()
}

/// Every GGUF architecture that exports, in ckpt-model's registry order.
pub(crate) fn supported() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for a in ckpt_model::arch::registry() {
        if a.exports() && !out.contains(&a.gguf_arch()) {
            out.push(a.gguf_arch());
        }
    }
    out
}

/// The exporting description of GGUF architecture `gguf_arch` (its first, canonical one); None
/// when no description converts to it or its export is refused. Unlike the export itself, no
/// tensor hints are used (Mixtral's GGUF arch "llama" finds Llama).
pub fn find(gguf_arch: &str) -> Option<ExportArch> {
    ckpt_model::arch::find_gguf(gguf_arch)
        .filter(|a| a.exports())
        .map(ExportArch::of)
}

/// Tensors llama.cpp's converter computes from the config (rope factors); they are not weights
/// of the HF model.
pub(crate) fn is_generated(gguf_name: &str) -> bool {
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
    for (hf, gguf) in &arch.names {
        let matched = match bid {
            Some(b) if gguf.contains("{bid}") => gguf.replace("{bid}", b) == base,
            None if !gguf.contains("{bid}") => *gguf == base,
            _ => false,
        };
        if matched {
            let hf = bid.map_or_else(|| hf.to_string(), |b| hf.replace("{bid}", b)) + &suffix;
            // The converter renamed the expert bias before mapping it.
            let (original, mapped) = ckpt_model::EXPERT_BIAS_RENAME;
            return Some(match hf.strip_suffix(mapped) {
                Some(head) => format!("{head}{original}"),
                None => hf,
            });
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
            hf_name(&llama, "blk.12.attn_q.weight").as_deref(),
            Some("model.layers.12.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name(&llama, "output.weight").as_deref(),
            Some("lm_head.weight")
        );
        assert_eq!(
            hf_name(&find("qwen2").unwrap(), "blk.0.attn_k.bias").as_deref(),
            Some("model.layers.0.self_attn.k_proj.bias")
        );
        assert_eq!(
            hf_name(&find("qwen3").unwrap(), "blk.1.attn_k_norm.weight").as_deref(),
            Some("model.layers.1.self_attn.k_norm.weight")
        );
        assert_eq!(
            hf_name(&find("gpt2").unwrap(), "blk.1.attn_qkv.weight").as_deref(),
            Some("transformer.h.1.attn.c_attn.weight")
        );
        assert_eq!(
            hf_name(
                &find("seed_oss").unwrap(),
                "blk.2.post_attention_norm.weight"
            )
            .as_deref(),
            Some("model.layers.2.post_attention_layernorm.weight")
        );
        assert!(
            find("nomic-bert").is_none(),
            "transformers has no NomicBERT class"
        );
        let why = find_for("nomic-bert", Hints::default())
            .unwrap()
            .err()
            .unwrap();
        assert!(why.contains("remote-code"), "{why}");
        assert_eq!(
            find_for(
                "llama",
                Hints {
                    has_experts: true,
                    ..Hints::default()
                }
            )
            .unwrap()
            .ok()
            .unwrap()
            .hf_class,
            "MixtralForCausalLM"
        );
        assert_eq!(
            find_for("llama", Hints::default())
                .unwrap()
                .ok()
                .unwrap()
                .hf_class,
            "LlamaForCausalLM"
        );
        assert_eq!(
            find_for(
                "deepseek2",
                Hints {
                    has_experts: true,
                    has_expert_bias: true,
                    ..Hints::default()
                }
            )
            .unwrap()
            .ok()
            .unwrap()
            .hf_class,
            "DeepseekV3ForCausalLM"
        );
        assert_eq!(
            find_for(
                "deepseek2",
                Hints {
                    has_experts: true,
                    ..Hints::default()
                }
            )
            .unwrap()
            .ok()
            .unwrap()
            .hf_class,
            "DeepseekV2ForCausalLM"
        );
        assert!(find_for("no-such-arch", Hints::default()).is_none());
        let xlmr = Hints {
            tokenizer_model: Some("t5"),
            ..Hints::default()
        };
        let why = find_for("bert", xlmr).unwrap().err().unwrap();
        assert!(why.contains("position embeddings"), "{why}");
        assert_eq!(
            find_for("bert", Hints::default())
                .unwrap()
                .ok()
                .unwrap()
                .hf_class,
            "BertModel"
        );
        assert_eq!(hf_name(&llama, "blk.0.unknown.weight"), None);
        assert_eq!(hf_name(&llama, "blk.x.attn_q.weight"), None);
    }

    #[test]
    fn every_gguf_name_maps_back_to_an_hf_name_that_converts_to_it() {
        for forward in ckpt_model::arch::registry().iter().copied() {
            if !forward.exports() {
                continue;
            }
            let a = ExportArch::of(forward);
            let gguf = a.gguf;
            for (_, gguf_name) in &a.names {
                let g = format!("{}.weight", gguf_name.replace("{bid}", "3"));
                let hf = hf_name(&a, &g).unwrap_or_else(|| panic!("{gguf}: {g}"));
                let back = forward.map_name(&hf, Some(3), 4);
                assert_eq!(back.as_deref(), Some(g.as_str()), "{gguf}: {g} -> {hf}");
            }
        }
    }
}
