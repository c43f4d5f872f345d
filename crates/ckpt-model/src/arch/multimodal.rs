//! The text model of a multimodal (`…ForConditionalGeneration`) folder: converted exactly as the
//! text-only class of its family (the converter registers the multimodal class name on the same
//! text class), after the generic drops of vision/audio tensors and the `language_model.` prefix
//! in `ordered_sources`. Each entry only adds class names to an existing description; the
//! projector itself is in [`super::vision`].

use ckpt_core::Result;

use super::{family, Architecture, Kind, ParamContext, TensorAction, TensorRef, VocabContext};
use crate::hparams::Hparams;
use crate::kv::KvList;

/// Another name for the text model of an existing description.
pub struct TextOf {
    names: &'static [&'static str],
    inner: &'static dyn Architecture,
    /// Text `model_type`s the converter handles with another class (refused, naming it).
    refuse: &'static [&'static str],
    /// A name component the text class removes from tensor names (`text_model.`), or "".
    strip: &'static str,
}

impl Architecture for TextOf {
    fn hf_names(&self) -> &'static [&'static str] {
        self.names
    }
    fn gguf_arch(&self) -> &'static str {
        self.inner.gguf_arch()
    }
    fn config_defaults(&self, hp: &mut Hparams) {
        self.inner.config_defaults(hp)
    }
    fn extra_tensors(&self, hp: &Hparams, kv: &mut KvList) -> Result<Vec<ckpt_core::Tensor>> {
        self.inner.extra_tensors(hp, kv)
    }
    fn model_type(&self) -> &'static str {
        self.inner.model_type()
    }
    fn tensors(&self) -> &'static [Kind] {
        self.inner.tensors()
    }
    fn hf_prefixes(&self) -> &'static [&'static str] {
        self.inner.hf_prefixes()
    }
    fn export_overrides(&self) -> &'static [(Kind, &'static str)] {
        self.inner.export_overrides()
    }
    /// A GGUF exports through the text-only description registered first.
    fn export_refusal(&self) -> Option<&'static str> {
        Some("not exported: a vision-language model (a text GGUF whose architecture a text-only model also converts to exports as that model; mmproj GGUFs do not export)")
    }
    fn experts(&self) -> Option<&'static family::Experts> {
        self.inner.experts()
    }
    fn sources(
        &self,
        tensors: Vec<ckpt_core::Tensor>,
        hp: &Hparams,
        kv: &mut KvList,
    ) -> Result<Vec<ckpt_core::Tensor>> {
        self.inner.sources(tensors, hp, kv)
    }
    fn expand(
        &self,
        t: &ckpt_core::Tensor,
        bid: Option<u32>,
        hp: &Hparams,
        block_count: u32,
    ) -> Result<Option<Vec<ckpt_core::Tensor>>> {
        self.inner.expand(t, bid, hp, block_count)
    }
    fn tensor(&self, t: &TensorRef, hp: &Hparams, block_count: u32) -> Result<TensorAction> {
        if !self.strip.is_empty() && t.name.contains(self.strip) {
            let name = t.name.replace(self.strip, "");
            let renamed = TensorRef {
                name: &name,
                bid: t.bid,
                dtype: t.dtype,
                model_dir: t.model_dir,
            };
            return self.inner.tensor(&renamed, hp, block_count);
        }
        self.inner.tensor(t, hp, block_count)
    }
    fn write_params(&self, ctx: &mut ParamContext) -> Result<()> {
        if let Some(t) = ctx
            .hp
            .get("model_type")
            .and_then(serde_json::Value::as_str)
            .filter(|t| self.refuse.contains(t))
        {
            return Err(ckpt_core::Error::Unsupported(format!(
                "{}: {} with a {t} text model is not supported",
                ctx.hp.path.display(),
                self.names[0]
            )));
        }
        self.inner.write_params(ctx)
    }
    fn write_vocab(&self, ctx: &mut VocabContext) -> Result<()> {
        self.inner.write_vocab(ctx)
    }
}

/// Gemma 3 4B and up: `Gemma3Model` converts the text model.
pub static GEMMA3_VLM: TextOf = TextOf {
    names: &["Gemma3ForConditionalGeneration"],
    inner: &super::gemma::Gemma3,
    refuse: &[],
    strip: "",
};

/// LLaVA-style folders (Pixtral 12B, LLaVA 1.5): `LlamaModel` converts the text model.
pub static LLAVA: TextOf = TextOf {
    names: &["LlavaForConditionalGeneration"],
    inner: &super::llama::LLAMA,
    refuse: &[],
    strip: "",
};

/// Mistral Small 3.1 / 3.2: `Mistral3Model` converts a Mistral text model as Llama under GGUF
/// architecture "mistral3" (Ministral 3's yarn keys and Mistral 4's DeepSeek-V2 layout are not
/// supported yet).
pub static MISTRAL3: TextOf = TextOf {
    names: &["Mistral3ForConditionalGeneration"],
    inner: &MISTRAL3_TEXT,
    refuse: &["ministral3", "mistral4"],
    strip: "",
};

static MISTRAL3_TEXT: family::Family = family::Family {
    hf_names: &[],
    gguf_arch: "mistral3",
    model_type: "mistral",
    ..super::llama::LLAMA
};

/// Qwen2-VL / Qwen2.5-VL: `Qwen2VLModel` converts a Qwen2 text model under GGUF architecture
/// "qwen2vl" (multimodal rope sections written as `rope.dimension_sections`).
pub static QWEN2VL: TextOf = TextOf {
    names: &[
        "Qwen2VLForConditionalGeneration",
        "Qwen2_5_VLForConditionalGeneration",
    ],
    inner: &QWEN2VL_TEXT,
    refuse: &[],
    strip: "",
};

static QWEN2VL_TEXT: family::Family = family::Family {
    hf_names: &[],
    gguf_arch: "qwen2vl",
    model_type: "qwen2_vl",
    params: &[],
    ..super::qwen::QWEN2
};

/// SmolVLM / Idefics3: the converter routes the text model by `text_config.architectures`
/// (`VLlama3ForCausalLM`) to `LlamaModel`, which removes `text_model.` from the names
/// (`model.text_model.layers.*`).
pub static SMOLVLM_TEXT: TextOf = TextOf {
    names: &["VLlama3ForCausalLM"],
    inner: &super::llama::LLAMA,
    refuse: &[],
    strip: "text_model.",
};

/// Llama 4 (Scout, Maverick): `Llama4Model` converts the text model.
pub static LLAMA4_VLM: TextOf = TextOf {
    names: &["Llama4ForConditionalGeneration"],
    inner: &super::llama4::LLAMA4,
    refuse: &[],
    strip: "",
};

/// Qwen3-VL: `Qwen3VLTextModel` converts a Qwen3 text model under GGUF architecture "qwen3vl",
/// adding the number of DeepStack layers (`vision_config.deepstack_visual_indexes`).
pub static QWEN3VL: TextOf = TextOf {
    names: &["Qwen3VLForConditionalGeneration"],
    inner: &QWEN3VL_TEXT,
    refuse: &[],
    strip: "",
};

static QWEN3VL_TEXT: family::Family = family::Family {
    hf_names: &[],
    gguf_arch: "qwen3vl",
    model_type: "qwen3_vl",
    params: &[
        family::Param::Pooling,
        family::Param::Custom(n_deepstack_layers),
    ],
    ..super::qwen::QWEN3
};

/// Qwen3-VL-MoE (Qwen3-VL-30B-A3B): `Qwen3VLMoeTextModel` converts a Qwen3 MoE text model under
/// GGUF architecture "qwen3vlmoe", its experts packed in two 3-D tensors per layer, adding the
/// number of DeepStack layers.
pub static QWEN3VLMOE: TextOf = TextOf {
    names: &["Qwen3VLMoeForConditionalGeneration"],
    inner: &QWEN3VLMOE_TEXT,
    refuse: &[],
    strip: "",
};

static QWEN3VLMOE_TEXT: family::Family = family::Family {
    hf_names: &[],
    gguf_arch: "qwen3vlmoe",
    model_type: "qwen3_vl_moe",
    hooks: family::Hooks {
        params: Some(n_deepstack_layers_moe),
        expand: Some(qwen3vl_moe_experts),
        ..super::moe::QWEN3MOE.hooks
    },
    ..super::moe::QWEN3MOE
};

/// `Qwen3VLMoeTextModel.modify_tensors`: `mlp.experts.gate_up_proj` split into gate and up and
/// transposed, `mlp.experts.down_proj` transposed (each with or without `.weight`).
fn qwen3vl_moe_experts(
    t: &ckpt_core::Tensor,
    _bid: Option<u32>,
    hp: &Hparams,
    _block_count: u32,
) -> Result<Option<Vec<ckpt_core::Tensor>>> {
    use super::split::{packed_down, packed_gate_up};
    let base = t.name.strip_suffix(".weight").unwrap_or(&t.name);
    if let Some(experts) = base.strip_suffix(".gate_up_proj") {
        if experts.ends_with("mlp.experts") {
            let (gate, up) = (
                format!("{experts}.gate_proj.weight"),
                format!("{experts}.up_proj.weight"),
            );
            return packed_gate_up(t, gate, up, &hp.path).map(Some);
        }
    }
    if base.ends_with("mlp.experts.down_proj") {
        return Ok(Some(vec![packed_down(
            t,
            format!("{base}.weight"),
            &hp.path,
        )?]));
    }
    Ok(None)
}

fn n_deepstack_layers_moe(ctx: &mut ParamContext) -> Result<()> {
    deepstack_layers(ctx, "qwen3vlmoe")
}

/// `{arch}.n_deepstack_layers`: the length of `vision_config.deepstack_visual_indexes`
/// (transformers' default of three when a vision config does not set it, 0 without one).
fn n_deepstack_layers(ctx: &mut ParamContext) -> Result<()> {
    deepstack_layers(ctx, "qwen3vl")
}

fn deepstack_layers(ctx: &mut ParamContext, arch: &str) -> Result<()> {
    let n = match ctx.hp.get("vision_config") {
        None => 0,
        Some(v) => match v.get("deepstack_visual_indexes") {
            None | Some(serde_json::Value::Null) => 3,
            Some(serde_json::Value::Array(a)) => a.len() as u32,
            Some(other) => {
                return Err(ckpt_core::Error::invalid(
                    &ctx.hp.path,
                    format!("vision_config.deepstack_visual_indexes is {other}, expected a list"),
                ))
            }
        },
    };
    ctx.kv.u32(&format!("{arch}.n_deepstack_layers"), n);
    Ok(())
}
