//! Vision encoders and projectors: what llama.cpp's converter writes with `--mmproj` (its
//! `MmprojModel` classes) for each multimodal architecture. One description per projector
//! family: which checkpoint tensors belong to the vision tower, the per-model tensor surgery,
//! the types forced whatever the output type, and the `clip.*` keys beyond the common ones.
//! Tensor names go through the shared [`super::tensor_map`] restricted to [`VISION_TENSORS`].

use ckpt_core::{DType, Error, GgmlType, Result};
use serde_json::{Map, Value};

use super::{tensor_map, Kind, Transform};
use crate::kv::KvList;

/// The vision side of a multimodal folder as the converter sees it.
pub struct VisionHparams {
    /// config.json (for messages).
    pub path: std::path::PathBuf,
    /// `vision_config`, with the defaults transformers' config class fills in.
    pub vision: Map<String, Value>,
    /// The whole config.json.
    pub global: Map<String, Value>,
    /// preprocessor_config.json merged with processor_config.json (its `image_processor` lifted
    /// to the top), as the converter merges them.
    pub preprocessor: Map<String, Value>,
    /// The text model's hidden size (`clip.vision.projection_dim`).
    pub n_embd_text: u32,
    /// The vision tower's block count.
    pub block_count: u32,
}

impl VisionHparams {
    /// The value of the first key present in the vision config.
    pub fn find(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().find_map(|k| self.vision.get(*k))
    }

    /// [`find`](Self::find) as a u32, or the error naming the keys.
    pub fn require_u32(&self, keys: &[&str]) -> Result<u32> {
        match self.find(keys) {
            Some(v) => v
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid(
                        &self.path,
                        format!("vision_config {keys:?} is {v}, expected a non-negative integer"),
                    )
                }),
            None => Err(Error::invalid(
                &self.path,
                format!("vision_config has none of {keys:?}"),
            )),
        }
    }

    /// A number of the vision config, `default` when absent.
    pub fn f32_or(&self, key: &str, default: f64) -> Result<f32> {
        match self.vision.get(key) {
            None | Some(Value::Null) => Ok(default as f32),
            Some(v) => v.as_f64().map(|f| f as f32).ok_or_else(|| {
                Error::invalid(
                    &self.path,
                    format!("vision_config.{key} is {v}, expected a number"),
                )
            }),
        }
    }
}

/// The output type the converter's `--outtype` resolved to (`self.ftype`), which some forced
/// types depend on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VisionFtype {
    F32,
    F16,
    BF16,
    Q8_0,
}

impl VisionFtype {
    /// The type of tensors nothing else decides for.
    pub fn default_type(self) -> GgmlType {
        match self {
            VisionFtype::F32 => GgmlType::F32,
            VisionFtype::F16 => GgmlType::F16,
            VisionFtype::BF16 => GgmlType::BF16,
            VisionFtype::Q8_0 => GgmlType::Q8_0,
        }
    }
}

/// What a vision description decides for one checkpoint tensor.
pub enum VisionAction {
    /// Part of the projector file: this GGUF name after these transforms.
    Keep {
        name: String,
        transforms: Vec<Transform>,
    },
    /// Not part of the projector file.
    Skip,
}

/// One projector family.
pub trait VisionArch: Sync {
    /// `architectures[0]` values handled.
    fn hf_names(&self) -> &'static [&'static str];
    /// `clip.projector_type`.
    fn projector(&self) -> &'static str;
    /// Defaults transformers fills into the vision config (by its `model_type`); an error names
    /// an unknown vision model type.
    fn vision_defaults(
        &self,
        vision: &mut Map<String, Value>,
        path: &std::path::Path,
    ) -> Result<()>;
    /// Checks beyond the vision config that the converter makes before writing (tokens it
    /// looks up, activations it knows).
    fn check(&self, model_dir: &std::path::Path, v: &VisionHparams) -> Result<()> {
        let _ = (model_dir, v);
        Ok(())
    }
    /// The converter's `filter_tensors`: the (possibly renamed) name of a projector tensor, or
    /// `None` when it is not one.
    fn filter(&self, name: &str) -> Option<String>;
    /// Name and transforms of a tensor [`filter`](Self::filter) kept.
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction>;
    /// `tensor_force_quant`: a type chosen whatever the output type (before the F32 rules for
    /// vectors and norms, which still win).
    fn force_type(&self, hf_name: &str, gguf_name: &str, ftype: VisionFtype) -> Option<GgmlType> {
        let _ = hf_name;
        base_force_type(gguf_name, ftype)
    }
    /// The `clip.*` keys after the common ones.
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()>;
}

/// `MmprojModel.tensor_force_quant`: patch embeddings and patch mergers in F16 for an F16
/// output, F32 otherwise.
pub fn base_force_type(gguf_name: &str, ftype: VisionFtype) -> Option<GgmlType> {
    if gguf_name.contains(".patch_embd.weight") || gguf_name.contains(".patch_merger.weight") {
        return Some(if ftype == VisionFtype::F16 {
            GgmlType::F16
        } else {
            GgmlType::F32
        });
    }
    None
}

/// The vision kinds gguf-py's `MODEL_TENSORS[MMPROJ]` has that ckpt maps.
pub const VISION_TENSORS: &[Kind] = &[
    Kind::VMmInpProj,
    Kind::VMmSoftEmbNorm,
    Kind::VEncEmbdPatch,
    Kind::VEncEmbdPos,
    Kind::VEncAttnQ,
    Kind::VEncAttnK,
    Kind::VEncAttnV,
    Kind::VEncInputNorm,
    Kind::VEncAttnO,
    Kind::VEncPostAttnNorm,
    Kind::VEncFfnUp,
    Kind::VEncFfnGate,
    Kind::VEncFfnDown,
    Kind::VPostNorm,
    Kind::VPreNorm,
    Kind::VMmProj,
    Kind::VMmProjFc,
    Kind::VMmInpNorm,
    Kind::VMmPatchMerger,
    Kind::VTokEmbdImgBreak,
];

fn map_vision(name: &str, bid: Option<u32>, block_count: u32, arch: &str) -> Result<String> {
    // gguf-py expands every `{bid}` spelling for all blocks, so a block number that is not its
    // own name component (`multi_modal_projector.linear_1`) maps too.
    tensor_map::map_name(VISION_TENSORS, name, bid, block_count)
        .or_else(|| {
            (0..block_count).find_map(|b| {
                (Some(b) != bid)
                    .then(|| tensor_map::map_name(VISION_TENSORS, name, Some(b), block_count))
                    .flatten()
            })
        })
        .ok_or_else(|| {
        Error::Unsupported(format!(
            "cannot map vision tensor '{name}' to an mmproj GGUF name for {arch} (no rule for it; refusing to drop it silently)"
        ))
    })
}

fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if !m.contains_key(key) {
        m.insert(key.to_string(), v);
    }
}

/// transformers' `SiglipVisionConfig` defaults.
fn siglip_defaults(v: &mut Map<String, Value>) {
    for (k, d) in [
        ("hidden_size", Value::from(768)),
        ("intermediate_size", Value::from(3072)),
        ("num_hidden_layers", Value::from(12)),
        ("num_attention_heads", Value::from(12)),
        ("num_channels", Value::from(3)),
        ("image_size", Value::from(224)),
        ("patch_size", Value::from(16)),
        ("hidden_act", Value::from("gelu_pytorch_tanh")),
        ("layer_norm_eps", Value::from(1e-6)),
    ] {
        set_default(v, k, d);
    }
}

/// Gemma 3 (SigLIP encoder, `gemma3` projector: average pooling, soft-embedding norm and input
/// projection).
pub struct Gemma3Vision;

impl VisionArch for Gemma3Vision {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Gemma3ForConditionalGeneration"]
    }
    fn projector(&self) -> &'static str {
        "gemma3"
    }
    fn vision_defaults(&self, v: &mut Map<String, Value>, path: &std::path::Path) -> Result<()> {
        match v.get("model_type").and_then(Value::as_str) {
            Some("siglip_vision_model") | None => {
                siglip_defaults(v);
                Ok(())
            }
            Some(other) => Err(Error::Unsupported(format!(
                "vision model type {other} in {} (expected siglip_vision_model)",
                path.display()
            ))),
        }
    }
    fn filter(&self, name: &str) -> Option<String> {
        if name.contains("vision_model.head.") {
            return None;
        }
        const KEEP: [&str; 4] = [
            "multi_modal_projector.",
            "vision_tower.",
            "multimodal_projector.",
            "vision_model.",
        ];
        if !KEEP.iter().any(|p| name.starts_with(p)) {
            return None;
        }
        base_filter(&name.replace("_weight", ".weight"))
    }
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction> {
        let mut transforms = Vec::new();
        if name.contains("soft_emb_norm.weight") {
            transforms.push(Transform::AddOne {
                in_f16: dtype == DType::F16,
            });
        }
        Ok(VisionAction::Keep {
            name: map_vision(name, bid, v.block_count, "Gemma3ForConditionalGeneration")?,
            transforms,
        })
    }
    fn force_type(&self, hf_name: &str, gguf_name: &str, ftype: VisionFtype) -> Option<GgmlType> {
        if hf_name.contains("input_projection") {
            return Some(GgmlType::F16);
        }
        if hf_name.contains(".embeddings.") {
            return Some(GgmlType::F32);
        }
        base_force_type(gguf_name, ftype)
    }
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()> {
        kv.string("clip.projector_type", "gemma3");
        kv.f32(
            "clip.vision.attention.layer_norm_epsilon",
            v.f32_or("layer_norm_eps", 1e-6)?,
        );
        kv.bool("clip.use_gelu", true);
        let seq = match v.preprocessor.get("image_seq_length") {
            None => 256,
            Some(x) => x.as_u64().ok_or_else(|| {
                Error::invalid(
                    &v.path,
                    format!("preprocessor image_seq_length is {x}, expected an integer"),
                )
            })?,
        };
        let n_per_side = (seq as f64).sqrt() as u64;
        if n_per_side == 0 {
            return Err(Error::invalid(
                &v.path,
                "preprocessor image_seq_length is 0: no tokens per image side",
            ));
        }
        let image_size = v.require_u32(&["image_size"])? as u64;
        let patch_size = v.require_u32(&["patch_size"])? as u64;
        if patch_size == 0 {
            return Err(Error::invalid(&v.path, "vision_config.patch_size is 0"));
        }
        let scale = (image_size / patch_size) / n_per_side;
        if scale > 0 && scale != 4 {
            kv.u32("clip.vision.projector.scale_factor", scale as u32);
        }
        Ok(())
    }
}

/// transformers' `PixtralVisionConfig` defaults.
fn pixtral_defaults(v: &mut Map<String, Value>) {
    for (k, d) in [
        ("hidden_size", Value::from(1024)),
        ("intermediate_size", Value::from(4096)),
        ("num_hidden_layers", Value::from(24)),
        ("num_attention_heads", Value::from(16)),
        ("num_channels", Value::from(3)),
        ("image_size", Value::from(1024)),
        ("patch_size", Value::from(16)),
        ("hidden_act", Value::from("gelu")),
        ("head_dim", Value::from(64)),
    ] {
        set_default(v, k, d);
    }
}

/// The id of an added token: tokenizer_config.json's `added_tokens_decoder` first, then
/// tokenizer.json's `added_tokens` (`LlavaVisionModel.get_token_id`).
fn added_token_id(model_dir: &std::path::Path, token: &str) -> Result<i64> {
    let cfg_path = model_dir.join("tokenizer_config.json");
    let cfg = crate::hparams::read_json_object(&cfg_path)?;
    if let Some(Value::Object(dec)) = cfg.get("added_tokens_decoder") {
        for (id, data) in dec {
            if data.get("content").and_then(Value::as_str) == Some(token) {
                return id.parse::<i64>().map_err(|_| {
                    Error::invalid(&cfg_path, format!("added token id '{id}' is not a number"))
                });
            }
        }
    }
    let tok_path = model_dir.join("tokenizer.json");
    let tok = crate::hparams::read_json_object(&tok_path)?;
    if let Some(Value::Array(added)) = tok.get("added_tokens") {
        for t in added {
            if t.get("content").and_then(Value::as_str) == Some(token) {
                if let Some(id) = t.get("id").and_then(Value::as_i64) {
                    return Ok(id);
                }
            }
        }
    }
    Err(Error::invalid(
        &tok_path,
        format!("token '{token}' is in neither tokenizer_config.json nor tokenizer.json (the projector needs its id)"),
    ))
}

/// Pixtral vision (LLaVA-style folders of Pixtral 12B): rotary attention whose Q/K rows are
/// permuted like Llama's, a two-layer MLP projector (`mm.1`, `mm.2`).
pub struct PixtralVision;

impl VisionArch for PixtralVision {
    fn hf_names(&self) -> &'static [&'static str] {
        &[
            "LlavaForConditionalGeneration",
            "Mistral3ForConditionalGeneration",
        ]
    }
    fn projector(&self) -> &'static str {
        "pixtral"
    }
    fn vision_defaults(&self, v: &mut Map<String, Value>, path: &std::path::Path) -> Result<()> {
        match v.get("model_type").and_then(Value::as_str) {
            Some("pixtral") => {
                pixtral_defaults(v);
                set_default(v, "layer_norm_eps", Value::from(1e-5));
                Ok(())
            }
            other => Err(Error::Unsupported(format!(
                "vision model type {} in {} (llama.cpp's converter writes the projectors of LLaVA-style folders for Pixtral vision towers only)",
                other.unwrap_or("(none)"),
                path.display()
            ))),
        }
    }
    fn check(&self, model_dir: &std::path::Path, v: &VisionHparams) -> Result<()> {
        added_token_id(model_dir, "[IMG_BREAK]")?;
        match v.vision.get("hidden_act").and_then(Value::as_str) {
            Some("silu" | "gelu") => Ok(()),
            other => Err(Error::Unsupported(format!(
                "{}: Pixtral vision hidden_act {other:?} (expected silu or gelu)",
                v.path.display()
            ))),
        }
    }
    fn filter(&self, name: &str) -> Option<String> {
        base_filter(name)
    }
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        _dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction> {
        const VISION: [&str; 6] = [
            "multi_modal_projector.",
            "vision_tower.",
            "vision_encoder.",
            "vision_language_adapter.",
            "patch_merger.",
            "pre_mm_projector_norm",
        ];
        if VISION.iter().any(|p| name.starts_with(p)) {
            let mut transforms = Vec::new();
            if name.ends_with("q_proj.weight")
                || name.ends_with("q_proj.bias")
                || name.ends_with("k_proj.weight")
                || name.ends_with("k_proj.bias")
            {
                let heads = v.require_u32(&["num_attention_heads"])? as u64;
                transforms.push(Transform::PermuteRows { heads });
            }
            return Ok(VisionAction::Keep {
                name: map_vision(name, bid, v.block_count, "the Pixtral projector")?,
                transforms,
            });
        }
        if name.contains("embed_tokens.weight") {
            // The converter would extract the [IMG_BREAK] row here (only reached when the text
            // model's tensors are not under `language_model.`).
            return Err(Error::Unsupported(format!(
                "'{name}': extracting the [IMG_BREAK] embedding from a text embedding outside language_model.* is not supported"
            )));
        }
        Ok(VisionAction::Skip)
    }
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()> {
        kv.string("clip.projector_type", "pixtral");
        kv.f32(
            "clip.vision.attention.layer_norm_epsilon",
            v.f32_or("layer_norm_eps", 1e-5)?,
        );
        match v.vision.get("hidden_act").and_then(Value::as_str) {
            Some("silu") => kv.bool("clip.use_silu", true),
            _ => kv.bool("clip.use_gelu", true),
        }
        if let Some(m) = v.global.get("spatial_merge_size") {
            let n = m
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid(
                        &v.path,
                        format!("spatial_merge_size is {m}, expected an integer"),
                    )
                })?;
            kv.u32("clip.vision.spatial_merge_size", n);
        }
        Ok(())
    }
}

/// `MmprojModel.filter_tensors` + `ModelBase.filter_tensors`: text tensors are not part of
/// the projector; the generic renames.
fn base_filter(name: &str) -> Option<String> {
    if name.contains("language_model.") {
        return None;
    }
    Some(if name.ends_with("e_score_correction_bias") {
        name.replace("e_score_correction_bias", "e_score_correction.bias")
    } else {
        name.to_string()
    })
}

static VISION_REGISTRY: &[&dyn VisionArch] = &[&Gemma3Vision, &PixtralVision];

/// The projector description for a Hugging Face architecture.
pub fn find_vision(hf_arch: &str) -> Option<&'static dyn VisionArch> {
    VISION_REGISTRY
        .iter()
        .copied()
        .find(|a| a.hf_names().contains(&hf_arch))
}

/// Architectures whose projector `--mmproj` writes.
pub fn mmproj_architectures() -> Vec<&'static str> {
    VISION_REGISTRY
        .iter()
        .flat_map(|a| a.hf_names().iter().copied())
        .collect()
}
