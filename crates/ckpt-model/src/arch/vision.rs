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
    /// Several projector tensors cut from this one (a fused QKV, a Conv3D patch embedding),
    /// each with its GGUF name and transforms, in the converter's order.
    Split(Vec<(String, Vec<Transform>)>),
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
    Kind::VEncAttnQkv,
    Kind::VEncEmbdCls,
    Kind::VMmProjMlp,
    Kind::VEncAttnPostNorm,
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

/// A number of transformers' defaults for a Qwen vision config.
fn defaults(v: &mut Map<String, Value>, table: &[(&str, Value)]) {
    for (k, d) in table {
        set_default(v, k, d.clone());
    }
}

/// Qwen2-VL and Qwen2.5-VL (`Qwen2VLVisionModel`): a ViT whose Conv3D patch embedding is
/// split into two Conv2D kernels (one per temporal slice), fused QKV split into Q, K and V, a
/// 2x2 patch merger MLP (`mm.0`, `mm.2`); Qwen2.5-VL adds SiLU, a gated FFN and windowed
/// attention with full attention every `n_wa_pattern` blocks.
pub struct Qwen2VLVision;

impl VisionArch for Qwen2VLVision {
    fn hf_names(&self) -> &'static [&'static str] {
        &[
            "Qwen2VLForConditionalGeneration",
            "Qwen2_5_VLForConditionalGeneration",
        ]
    }
    fn projector(&self) -> &'static str {
        "qwen2vl_merger"
    }
    fn vision_defaults(&self, v: &mut Map<String, Value>, path: &std::path::Path) -> Result<()> {
        match v.get("model_type").and_then(Value::as_str) {
            Some("qwen2_vl_vision" | "qwen2_vl") => defaults(
                v,
                &[
                    ("depth", Value::from(32)),
                    ("embed_dim", Value::from(1280)),
                    ("hidden_size", Value::from(3584)),
                    ("hidden_act", Value::from("quick_gelu")),
                    ("mlp_ratio", Value::from(4)),
                    ("num_heads", Value::from(16)),
                    ("in_channels", Value::from(3)),
                    ("patch_size", Value::from(14)),
                    ("spatial_merge_size", Value::from(2)),
                    ("temporal_patch_size", Value::from(2)),
                ],
            ),
            Some("qwen2_5_vl_vision" | "qwen2_5_vl") => defaults(
                v,
                &[
                    ("depth", Value::from(32)),
                    ("hidden_size", Value::from(3584)),
                    ("hidden_act", Value::from("silu")),
                    ("intermediate_size", Value::from(3420)),
                    ("num_heads", Value::from(16)),
                    ("in_channels", Value::from(3)),
                    ("patch_size", Value::from(14)),
                    ("spatial_merge_size", Value::from(2)),
                    ("temporal_patch_size", Value::from(2)),
                    ("tokens_per_second", Value::from(4)),
                    ("window_size", Value::from(112)),
                    ("out_hidden_size", Value::from(3584)),
                    ("fullatt_block_indexes", Value::from(vec![7, 15, 23, 31])),
                ],
            ),
            other => {
                return Err(Error::Unsupported(format!(
                    "vision model type {} in {} (expected qwen2_vl_vision or qwen2_5_vl_vision)",
                    other.unwrap_or("(none)"),
                    path.display()
                )))
            }
        }
        // The converter's renames: image size 560 unless set, heads and blocks under their
        // common names, and Qwen2-VL's `embed_dim` as the width (its `hidden_size`, the
        // merger's output, becoming the feed-forward length).
        set_default(v, "image_size", Value::from(560));
        let heads = v.get("num_heads").cloned().unwrap_or(Value::Null);
        v.insert("num_attention_heads".into(), heads);
        let depth = v.get("depth").cloned().unwrap_or(Value::Null);
        v.insert("num_hidden_layers".into(), depth);
        if let Some(embed) = v.get("embed_dim").cloned() {
            let hidden = v.get("hidden_size").cloned().unwrap_or(Value::Null);
            v.insert("intermediate_size".into(), hidden);
            v.insert("hidden_size".into(), embed);
        }
        Ok(())
    }
    fn check(&self, _model_dir: &std::path::Path, v: &VisionHparams) -> Result<()> {
        match v.global.get("model_type").and_then(Value::as_str) {
            Some("qwen2_vl") => Ok(()),
            Some("qwen2_5_vl") => n_wa_pattern(v).map(|_| ()),
            other => Err(Error::Unsupported(format!(
                "{}: Qwen-VL model_type {other:?} (expected qwen2_vl or qwen2_5_vl)",
                v.path.display()
            ))),
        }
    }
    fn filter(&self, name: &str) -> Option<String> {
        if !name.starts_with("visual.") {
            return None;
        }
        base_filter(name)
    }
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        _dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction> {
        const ARCH: &str = "the Qwen2-VL projector";
        if name.contains(".qkv.") {
            let mut parts = Vec::new();
            for (i, part) in ["q", "k", "v"].iter().enumerate() {
                let name = map_vision(&name.replace("qkv", part), bid, v.block_count, ARCH)?;
                // the row count is checked against the tensor by the transforms
                parts.push((name, vec![Transform::ThirdOfRows { index: i as u64 }]));
            }
            return Ok(VisionAction::Split(parts));
        }
        if name.contains("patch_embed.proj.weight") {
            return Ok(VisionAction::Split(
                [("v.patch_embd.weight", 0), ("v.patch_embd.weight.1", 1)]
                    .into_iter()
                    .map(|(n, index)| (n.to_string(), vec![Transform::TakeDim2 { index }]))
                    .collect(),
            ));
        }
        Ok(VisionAction::Keep {
            name: map_vision(name, bid, v.block_count, ARCH)?,
            transforms: Vec::new(),
        })
    }
    fn force_type(&self, _hf_name: &str, gguf_name: &str, ftype: VisionFtype) -> Option<GgmlType> {
        if gguf_name.contains(".position_embd.") {
            return Some(GgmlType::F32);
        }
        base_force_type(gguf_name, ftype)
    }
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()> {
        match v.global.get("model_type").and_then(Value::as_str) {
            Some("qwen2_5_vl") => {
                kv.string("clip.projector_type", "qwen2.5vl_merger");
                kv.bool("clip.use_silu", true);
                kv.u32("clip.vision.n_wa_pattern", n_wa_pattern(v)?);
            }
            _ => kv.string("clip.projector_type", "qwen2vl_merger"),
        }
        // The top-level rms_norm_eps the converter reads survives transformers' config class
        // only beside a nested text_config (otherwise it moves into the text config).
        let eps = match (v.global.get("text_config"), v.global.get("rms_norm_eps")) {
            (Some(Value::Object(_)), Some(e)) => e.as_f64().ok_or_else(|| {
                Error::invalid(&v.path, format!("rms_norm_eps is {e}, expected a number"))
            })? as f32,
            _ => 1e-6,
        };
        kv.f32("clip.vision.attention.layer_norm_epsilon", eps);
        Ok(())
    }
}

/// Qwen2.5-VL's window-attention period: blocks with full attention
/// (`fullatt_block_indexes`) must be evenly spaced, the first at `n_wa_pattern - 1`.
fn n_wa_pattern(v: &VisionHparams) -> Result<u32> {
    let idx: Vec<u64> = match v.vision.get("fullatt_block_indexes") {
        Some(Value::Array(a)) if !a.is_empty() => a
            .iter()
            .map(|x| x.as_u64())
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::invalid(
                    &v.path,
                    "vision_config.fullatt_block_indexes must be a list of block numbers",
                )
            })?,
        _ => {
            return Err(Error::Unsupported(format!(
                "{}: vision_config.fullatt_block_indexes is required for Qwen2.5-VL",
                v.path.display()
            )))
        }
    };
    let n = idx[0] + 1;
    if idx.windows(2).any(|w| w[1] < w[0] || w[1] - w[0] != n) {
        return Err(Error::Unsupported(format!(
            "{}: invalid vision_config.fullatt_block_indexes {idx:?} (full-attention blocks must be every {n} blocks)",
            v.path.display()
        )));
    }
    u32::try_from(n).map_err(|_| Error::invalid(&v.path, "fullatt_block_indexes too large"))
}

/// Idefics3 / SmolVLM (`SmolVLMModel`): a SigLIP-style encoder (`model.vision_model.*`) and a
/// pixel-shuffle connector whose one linear layer is `mm.model.fc`.
pub struct Idefics3Vision;

impl VisionArch for Idefics3Vision {
    fn hf_names(&self) -> &'static [&'static str] {
        &[
            "Idefics3ForConditionalGeneration",
            "SmolVLMForConditionalGeneration",
        ]
    }
    fn projector(&self) -> &'static str {
        "idefics3"
    }
    fn vision_defaults(&self, v: &mut Map<String, Value>, path: &std::path::Path) -> Result<()> {
        match v.get("model_type").and_then(Value::as_str) {
            Some("idefics3_vision" | "smolvlm_vision") => {
                // transformers' Idefics3VisionConfig / SmolVLMVisionConfig (the same defaults)
                siglip_defaults(v);
                for (k, d) in [
                    ("hidden_size", Value::from(1152)),
                    ("intermediate_size", Value::from(3072)),
                    ("num_hidden_layers", Value::from(12)),
                    ("num_attention_heads", Value::from(16)),
                    ("patch_size", Value::from(32)),
                ] {
                    set_default(v, k, d);
                }
                Ok(())
            }
            other => Err(Error::Unsupported(format!(
                "vision model type {} in {} (expected idefics3_vision or smolvlm_vision)",
                other.unwrap_or("(none)"),
                path.display()
            ))),
        }
    }
    fn filter(&self, name: &str) -> Option<String> {
        let vision = name.contains("vision_tower")
            || name.contains("vision_model")
            || name.contains("model.connector");
        if !vision {
            return None;
        }
        base_filter(name)
    }
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        _dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction> {
        Ok(VisionAction::Keep {
            name: map_vision(name, bid, v.block_count, "the Idefics3 projector")?,
            transforms: Vec::new(),
        })
    }
    fn force_type(&self, hf_name: &str, gguf_name: &str, ftype: VisionFtype) -> Option<GgmlType> {
        if hf_name.contains(".embeddings.") {
            return Some(GgmlType::F32);
        }
        base_force_type(gguf_name, ftype)
    }
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()> {
        kv.string("clip.projector_type", "idefics3");
        kv.f32(
            "clip.vision.attention.layer_norm_epsilon",
            v.f32_or("layer_norm_eps", 1e-5)?,
        );
        let scale = match v.global.get("scale_factor") {
            None | Some(Value::Null) => 2,
            Some(x) => x
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid(&v.path, format!("scale_factor is {x}, expected an integer"))
                })?,
        };
        kv.u32("clip.vision.projector.scale_factor", scale);
        kv.bool("clip.use_gelu", true);
        let edge = match v
            .preprocessor
            .get("size")
            .and_then(|s| s.get("longest_edge"))
        {
            None => v.require_u32(&["image_size"])?,
            Some(x) => x
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid(
                        &v.path,
                        format!("preprocessor size.longest_edge is {x}, expected an integer"),
                    )
                })?,
        };
        kv.u32("clip.vision.preproc_image_size", edge);
        Ok(())
    }
}

/// Qwen3-VL (`Qwen3VLVisionModel`): learned position embeddings, fused QKV kept fused, a Conv3D
/// patch embedding split like Qwen2-VL's (with its bias), the merger as `mm.0`/`mm.2` after
/// `v.post_ln`, and DeepStack mergers (`v.deepstack.{block}.*`) numbered by the vision block
/// they read (`deepstack_visual_indexes`).
pub struct Qwen3VLVision;

impl Qwen3VLVision {
    fn deepstack_indexes(v: &VisionHparams) -> Result<Vec<u32>> {
        match v.vision.get("deepstack_visual_indexes") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| x.as_u64().and_then(|n| u32::try_from(n).ok()))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    Error::invalid(
                        &v.path,
                        "vision_config.deepstack_visual_indexes must be a list of block numbers",
                    )
                }),
            Some(other) => Err(Error::invalid(
                &v.path,
                format!("vision_config.deepstack_visual_indexes is {other}, expected a list"),
            )),
        }
    }
}

impl VisionArch for Qwen3VLVision {
    fn hf_names(&self) -> &'static [&'static str] {
        &[
            "Qwen3VLForConditionalGeneration",
            "Qwen3VLMoeForConditionalGeneration",
        ]
    }
    fn projector(&self) -> &'static str {
        "qwen3vl_merger"
    }
    fn vision_defaults(&self, v: &mut Map<String, Value>, path: &std::path::Path) -> Result<()> {
        match v.get("model_type").and_then(Value::as_str) {
            Some("qwen3_vl_vision" | "qwen3_vl" | "qwen3_vl_moe_vision") => defaults(
                v,
                &[
                    ("depth", Value::from(27)),
                    ("hidden_size", Value::from(1152)),
                    ("hidden_act", Value::from("gelu_pytorch_tanh")),
                    ("intermediate_size", Value::from(4304)),
                    ("num_heads", Value::from(16)),
                    ("in_channels", Value::from(3)),
                    ("patch_size", Value::from(16)),
                    ("spatial_merge_size", Value::from(2)),
                    ("temporal_patch_size", Value::from(2)),
                    ("out_hidden_size", Value::from(3584)),
                    ("num_position_embeddings", Value::from(2304)),
                    ("deepstack_visual_indexes", Value::from(vec![8, 16, 24])),
                ],
            ),
            other => {
                return Err(Error::Unsupported(format!(
                    "vision model type {} in {} (expected qwen3_vl_vision or qwen3_vl_moe_vision)",
                    other.unwrap_or("(none)"),
                    path.display()
                )))
            }
        }
        // The converter's image size when unset: sqrt(position embeddings) patches per side.
        if !v.contains_key("image_size") {
            let n = v
                .get("num_position_embeddings")
                .and_then(Value::as_f64)
                .unwrap_or(2304.0);
            let p = v.get("patch_size").and_then(Value::as_f64).unwrap_or(16.0);
            v.insert("image_size".into(), Value::from((n.sqrt() * p) as u64));
        }
        let heads = v.get("num_heads").cloned().unwrap_or(Value::Null);
        v.insert("num_attention_heads".into(), heads);
        let depth = v.get("depth").cloned().unwrap_or(Value::Null);
        v.insert("num_hidden_layers".into(), depth);
        Ok(())
    }
    fn check(&self, _model_dir: &std::path::Path, v: &VisionHparams) -> Result<()> {
        for i in Self::deepstack_indexes(v)? {
            if i >= v.block_count {
                return Err(Error::invalid(
                    &v.path,
                    format!(
                        "vision_config.deepstack_visual_indexes has block {i}, the tower has {} blocks",
                        v.block_count
                    ),
                ));
            }
        }
        Ok(())
    }
    fn filter(&self, name: &str) -> Option<String> {
        if name.starts_with("lm_head.") || name.starts_with("mtp.") {
            return None;
        }
        let name = match name.strip_prefix("model.visual.") {
            Some(rest) => format!("visual.{rest}"),
            None => name.to_string(),
        };
        if !name.starts_with("visual.") {
            return None;
        }
        base_filter(&name)
    }
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        _dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction> {
        let keep = |name: String| {
            Ok(VisionAction::Keep {
                name,
                transforms: Vec::new(),
            })
        };
        let unexpected = || {
            Error::Unsupported(format!(
                "unexpected Qwen3-VL vision tensor '{name}' (no rule for it; refusing to drop it silently)"
            ))
        };
        if let Some(rest) = name.strip_prefix("visual.deepstack_merger_list.") {
            let (i, target) = rest.split_once('.').ok_or_else(unexpected)?;
            let i: usize = i.parse().map_err(|_| unexpected())?;
            let idx = *Self::deepstack_indexes(v)?.get(i).ok_or_else(|| {
                Error::invalid(
                    &v.path,
                    format!("'{name}': no deepstack_visual_indexes entry {i} for this merger"),
                )
            })?;
            let (part, suffix) = target.split_once('.').ok_or_else(unexpected)?;
            let kind = match part {
                "norm" => "norm",
                "linear_fc1" => "fc1",
                "linear_fc2" => "fc2",
                _ => return Err(unexpected()),
            };
            return keep(format!("v.deepstack.{idx}.{kind}.{suffix}"));
        }
        if let Some(rest) = name.strip_prefix("visual.merger.") {
            let (part, suffix) = rest.split_once('.').ok_or_else(unexpected)?;
            return match part {
                "linear_fc1" => keep(format!("mm.0.{suffix}")),
                "linear_fc2" => keep(format!("mm.2.{suffix}")),
                "norm" => keep(format!("v.post_ln.{suffix}")),
                _ => Err(unexpected()),
            };
        }
        if name == "visual.patch_embed.proj.weight" {
            return Ok(VisionAction::Split(
                [("v.patch_embd.weight", 0), ("v.patch_embd.weight.1", 1)]
                    .into_iter()
                    .map(|(n, index)| (n.to_string(), vec![Transform::TakeDim2 { index }]))
                    .collect(),
            ));
        }
        if name == "visual.patch_embed.proj.bias" {
            return keep("v.patch_embd.bias".into());
        }
        keep(map_vision(
            name,
            bid,
            v.block_count,
            "the Qwen3-VL projector",
        )?)
    }
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()> {
        kv.string("clip.projector_type", "qwen3vl_merger");
        kv.bool("clip.use_gelu", true);
        if let Some(m) = v.vision.get("spatial_merge_size").filter(|m| !m.is_null()) {
            let n = m
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Error::invalid(
                        &v.path,
                        format!("vision_config.spatial_merge_size is {m}, expected an integer"),
                    )
                })?;
            kv.u32("clip.vision.spatial_merge_size", n);
        }
        // transformers' Qwen3VLTextConfig default when the text config does not set it
        let eps = match v
            .global
            .get("text_config")
            .and_then(|t| t.get("rms_norm_eps"))
        {
            None | Some(Value::Null) => 1e-6,
            Some(e) => e.as_f64().ok_or_else(|| {
                Error::invalid(
                    &v.path,
                    format!("text_config.rms_norm_eps is {e}, expected a number"),
                )
            })? as f32,
        };
        kv.f32("clip.vision.attention.layer_norm_epsilon", eps);
        let mut layers = vec![false; v.block_count as usize];
        for i in Self::deepstack_indexes(v)? {
            if let Some(l) = layers.get_mut(i as usize) {
                *l = true;
            }
        }
        if !layers.is_empty() {
            kv.array(
                "clip.vision.is_deepstack_layers",
                ckpt_gguf::GgufValue::bool_array(layers),
            );
        }
        Ok(())
    }
}

/// Llama 4 (`Llama4VisionModel`): a ViT with a class embedding, a linear patch embedding
/// (`v.patch_embd`), learned positions, a pixel-shuffle MLP adapter (`mm.model.mlp.{1,2}`) and
/// one linear projector (`multi_modal_projector.linear_1` as `mm.model.fc`).
pub struct Llama4Vision;

impl VisionArch for Llama4Vision {
    fn hf_names(&self) -> &'static [&'static str] {
        &["Llama4ForConditionalGeneration"]
    }
    fn projector(&self) -> &'static str {
        "llama4"
    }
    fn vision_defaults(&self, v: &mut Map<String, Value>, path: &std::path::Path) -> Result<()> {
        match v.get("model_type").and_then(Value::as_str) {
            // transformers' Llama4VisionConfig
            Some("llama4_vision_model") | None => {
                defaults(
                    v,
                    &[
                        ("hidden_size", Value::from(768)),
                        ("hidden_act", Value::from("gelu")),
                        ("num_hidden_layers", Value::from(34)),
                        ("num_attention_heads", Value::from(16)),
                        ("num_channels", Value::from(3)),
                        ("intermediate_size", Value::from(5632)),
                        ("vision_output_dim", Value::from(7680)),
                        ("image_size", Value::from(448)),
                        ("patch_size", Value::from(14)),
                        ("norm_eps", Value::from(1e-5)),
                        ("pixel_shuffle_ratio", Value::from(0.5)),
                        ("projector_input_dim", Value::from(4096)),
                        ("projector_output_dim", Value::from(4096)),
                    ],
                );
                Ok(())
            }
            Some(other) => Err(Error::Unsupported(format!(
                "vision model type {other} in {} (expected llama4_vision_model)",
                path.display()
            ))),
        }
    }
    fn check(&self, _model_dir: &std::path::Path, v: &VisionHparams) -> Result<()> {
        match v.vision.get("hidden_act").and_then(Value::as_str) {
            Some("gelu") => {}
            other => {
                return Err(Error::Unsupported(format!(
                    "{}: Llama 4 vision hidden_act {other:?} (the converter knows gelu only)",
                    v.path.display()
                )))
            }
        }
        Self::scale_factor(v).map(|_| ())
    }
    fn filter(&self, name: &str) -> Option<String> {
        if !name.contains("multi_modal_projector") && !name.contains("vision_model") {
            return None;
        }
        if name.contains("positional_embedding_vlm") && !name.contains(".weight") {
            return base_filter(&format!("{name}.weight"));
        }
        base_filter(name)
    }
    fn tensor(
        &self,
        name: &str,
        bid: Option<u32>,
        _dtype: DType,
        v: &VisionHparams,
    ) -> Result<VisionAction> {
        // One fully connected layer despite its number.
        let name = if name.contains("multi_modal_projector.linear_1") {
            format!("{}.weight", Kind::VMmProjFc.gguf())
        } else {
            map_vision(name, bid, v.block_count, "the Llama 4 projector")?
        };
        Ok(VisionAction::Keep {
            name,
            transforms: Vec::new(),
        })
    }
    fn write_params(&self, v: &VisionHparams, kv: &mut KvList) -> Result<()> {
        kv.string("clip.projector_type", "llama4");
        let eps = v
            .find(&["norm_eps"])
            .and_then(Value::as_f64)
            .ok_or_else(|| Error::invalid(&v.path, "vision_config.norm_eps is not a number"))?;
        kv.f32("clip.vision.attention.layer_norm_epsilon", eps as f32);
        kv.u32("clip.vision.projector.scale_factor", Self::scale_factor(v)?);
        kv.bool("clip.use_gelu", true);
        Ok(())
    }
}

impl Llama4Vision {
    /// `int(1.0 / pixel_shuffle_ratio)`.
    fn scale_factor(v: &VisionHparams) -> Result<u32> {
        let r = v.find(&["pixel_shuffle_ratio"]).and_then(Value::as_f64);
        match r.map(|r| 1.0 / r) {
            Some(s) if s.is_finite() && s >= 1.0 && s < u32::MAX as f64 => Ok(s as u32),
            _ => Err(Error::invalid(
                &v.path,
                format!(
                    "vision_config.pixel_shuffle_ratio is {}, expected a number in (0, 1]",
                    v.vision.get("pixel_shuffle_ratio").unwrap_or(&Value::Null)
                ),
            )),
        }
    }
}

static VISION_REGISTRY: &[&dyn VisionArch] = &[
    &Gemma3Vision,
    &PixtralVision,
    &Qwen2VLVision,
    &Idefics3Vision,
    &Qwen3VLVision,
    &Llama4Vision,
];

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
