//! The vision encoder + projector of a multimodal folder as its own GGUF, byte-identical to
//! `convert_hf_to_gguf.py --mmproj` (`general.architecture` clip, `general.type` mmproj,
//! `clip.*` keys, `v.*`/`mm.*` tensors). The projector families are described in `arch/vision.rs`.

use std::path::Path;

use ckpt_core::{Checkpoint, DType, Error, GgmlType, Result};
use ckpt_gguf::GgufWriter;
use serde_json::{Map, Value};

use crate::arch::vision::{self, VisionAction, VisionArch, VisionFtype, VisionHparams};
use crate::hparams::{read_json_object, read_optional_json};
use crate::kv::KvList;
use crate::metadata::ModelMetadata;
use crate::tensors::PlannedTensor;
use crate::{ConvertReport, OutType};

/// The block-count keys of `MmprojModel.n_block_keys`.
const N_BLOCK_KEYS: [&str; 8] = [
    "n_layers",
    "num_hidden_layers",
    "n_layer",
    "num_layers",
    "depth",
    "layers",
    "encoder_layers",
    "vt_num_hidden_layers",
];

/// The folder's `architectures[0]` and its projector description, with the vision config
/// checked: an error naming the architecture when `--mmproj` cannot be written for it (a text
/// model, an unsupported projector, or a vision config missing a required key).
pub fn check(model_dir: &Path) -> Result<(String, &'static dyn VisionArch, VisionHparams)> {
    let path = model_dir.join("config.json");
    let global = read_json_object(&path)?;
    let hf_arch = global
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .ok_or_else(|| Error::invalid(&path, "config.json has no \"architectures\" list"))?
        .to_string();
    let arch = vision::find_vision(&hf_arch).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: `mmproj` is not supported for architecture {hf_arch} (projectors: {})",
            path.display(),
            vision::mmproj_architectures().join(", ")
        ))
    })?;
    let incomplete = |what: String| {
        Error::Unsupported(format!(
            "{}: cannot write the projector of {hf_arch}: {what}",
            path.display()
        ))
    };
    let mut vcfg = match global.get("vision_config") {
        Some(Value::Object(m)) => m.clone(),
        _ => return Err(incomplete("config.json has no vision_config".into())),
    };
    arch.vision_defaults(&mut vcfg, &path).map_err(|e| {
        Error::Unsupported(format!(
            "`mmproj` cannot write the projector of {hf_arch}: {e}"
        ))
    })?;
    let mut text = global.clone();
    if let Some(Value::Object(t)) = global.get("text_config") {
        for (k, v) in t {
            text.insert(k.clone(), v.clone());
        }
    }
    let n_embd_text = text
        .get("hidden_size")
        .or_else(|| text.get("n_embd"))
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| incomplete("the text model's hidden_size is not set".into()))?
        as u32;
    let mut preprocessor = Map::new();
    if let Some(cfg) = read_optional_json(&model_dir.join("preprocessor_config.json"))? {
        let lifted = cfg.get("media_proc_cfg").cloned();
        preprocessor.extend(cfg);
        if let Some(Value::Object(m)) = lifted {
            preprocessor.extend(m);
        }
    }
    if let Some(cfg) = read_optional_json(&model_dir.join("processor_config.json"))? {
        let lifted = cfg.get("image_processor").cloned();
        preprocessor.extend(cfg);
        if let Some(Value::Object(m)) = lifted {
            preprocessor.extend(m);
        }
    }
    let mut v = VisionHparams {
        path: path.clone(),
        vision: vcfg,
        global,
        preprocessor,
        n_embd_text,
        block_count: 0,
    };
    v.block_count = v
        .require_u32(&N_BLOCK_KEYS)
        .map_err(|e| incomplete(e.to_string()))?;
    for keys in [
        &["image_size"][..],
        &["patch_size"],
        &["hidden_size", "width", "vt_hidden_size"],
        &["intermediate_size", "vt_intermediate_size"],
        &[
            "num_attention_heads",
            "num_heads",
            "heads",
            "vt_num_attention_heads",
        ],
    ] {
        v.require_u32(keys).map_err(|e| incomplete(e.to_string()))?;
    }
    for key in ["image_mean", "image_std"] {
        image_stats(&v, key).map_err(|e| incomplete(e.to_string()))?;
    }
    arch.check(model_dir, &v)?;
    Ok((hf_arch, arch, v))
}

fn image_stats(v: &VisionHparams, key: &str) -> Result<Vec<f32>> {
    match v.preprocessor.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_f64().map(|f| f as f32).ok_or_else(|| {
                    Error::invalid(
                        &v.path,
                        format!("preprocessor {key} has {x}, expected numbers"),
                    )
                })
            })
            .collect(),
        Some(other) => Err(Error::invalid(
            &v.path,
            format!("preprocessor {key} is {other}, expected a list of numbers"),
        )),
        None => Err(Error::invalid(
            &v.path,
            format!("no {key} in preprocessor_config.json / processor_config.json"),
        )),
    }
}

/// Plans the projector GGUF (`mmproj-*.gguf`, clip.cpp's file) of the multimodal folder
/// `model_dir` (weights `source`) without writing it: the KVs and lazy tensors of the file
/// (written with [`crate::write_with_progress`]), the report, and for each tensor (in order)
/// the name of the checkpoint tensor it is made from (as the projector family filtered it).
/// Fails as [`check`] does, and on a tensor the projector cannot map.
pub fn plan_mmproj(
    model_dir: &Path,
    source: &Checkpoint,
    outtype: OutType,
) -> Result<(GgufWriter, ConvertReport, Vec<String>)> {
    let (hf_arch, arch, v) = check(model_dir)?;
    let mut dropped = Vec::new();
    let mut kept = Vec::new();
    for t in crate::sorted_sources(source) {
        match arch.filter(&t.name) {
            Some(name) => {
                let mut t = t.clone();
                t.name = name;
                kept.push(t);
            }
            None => dropped.push(t.name.clone()),
        }
    }
    let ftype = match outtype {
        OutType::F32 => VisionFtype::F32,
        OutType::F16 => VisionFtype::F16,
        OutType::BF16 => VisionFtype::BF16,
        OutType::Q8_0 => VisionFtype::Q8_0,
        OutType::Auto => match kept
            .iter()
            .find(|t| t.shape.len() >= 2 && matches!(t.dtype, DType::BF16 | DType::F16))
            .map(|t| t.dtype)
        {
            Some(DType::BF16) => VisionFtype::BF16,
            _ => VisionFtype::F16,
        },
    };
    let file_type = match ftype {
        VisionFtype::F32 => 0,
        VisionFtype::F16 => 1,
        VisionFtype::Q8_0 => 7,
        VisionFtype::BF16 => 32,
    };
    let mut planned = Vec::new();
    let mut fallbacks = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in kept {
        if t.name.ends_with(".attention.masked_bias")
            || t.name.ends_with(".attention.bias")
            || t.name.ends_with(".rotary_emb.inv_freq")
        {
            dropped.push(t.name.clone());
            continue;
        }
        let bid = t
            .name
            .split('.')
            .find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u32>().ok());
        let outputs = match arch.tensor(&t.name, bid, t.dtype, &v)? {
            VisionAction::Skip => {
                dropped.push(t.name.clone());
                continue;
            }
            VisionAction::Keep { name, transforms } => vec![(name, transforms)],
            VisionAction::Split(parts) => parts,
        };
        for (name, transforms) in outputs {
            if !seen.insert(name.clone()) {
                return Err(Error::Unsupported(format!(
                    "vision tensor '{}' maps to {name}, which another tensor already produced",
                    t.name
                )));
            }
            let mut shape = t.shape.clone();
            for tr in &transforms {
                tr.check(&shape).map_err(|m| {
                    Error::Unsupported(format!("tensor '{}' ({name}): {m}", t.name))
                })?;
                shape = tr.output_shape(&shape);
            }
            let forced = arch.force_type(&t.name, &name, ftype);
            let (ggml_type, why) = choose_type(&name, &shape, forced, ftype);
            fallbacks.extend(why);
            planned.push(PlannedTensor {
                name,
                source: t.clone(),
                shape,
                transforms,
                ggml_type,
                experts: Vec::new(),
            });
        }
    }
    if planned.is_empty() {
        return Err(Error::Unsupported(format!(
            "{}: no vision tensors for the projector of {hf_arch}",
            model_dir.display()
        )));
    }
    let parameter_count: u64 = planned
        .iter()
        .map(|p| p.shape.iter().product::<u64>())
        .sum();

    let mut kv = KvList::new();
    kv.string("general.architecture", "clip");
    kv.string("general.type", "mmproj");
    let generation = read_optional_json(&model_dir.join("generation_config.json")).unwrap_or(None);
    let metadata =
        ModelMetadata::derive(model_dir, &v.global, generation.as_ref(), parameter_count);
    let warnings = metadata.warnings.clone();
    metadata.write(&mut kv);
    kv.u32("general.file_type", file_type);
    kv.bool("clip.has_vision_encoder", true);
    kv.u32("clip.vision.projection_dim", v.n_embd_text);
    kv.u32("clip.vision.image_size", v.require_u32(&["image_size"])?);
    kv.u32("clip.vision.patch_size", v.require_u32(&["patch_size"])?);
    kv.u32(
        "clip.vision.embedding_length",
        v.require_u32(&["hidden_size", "width", "vt_hidden_size"])?,
    );
    kv.u32(
        "clip.vision.feed_forward_length",
        v.require_u32(&["intermediate_size", "vt_intermediate_size"])?,
    );
    kv.u32("clip.vision.block_count", v.block_count);
    kv.u32(
        "clip.vision.attention.head_count",
        v.require_u32(&[
            "num_attention_heads",
            "num_heads",
            "heads",
            "vt_num_attention_heads",
        ])?,
    );
    kv.array(
        "clip.vision.image_mean",
        ckpt_gguf::GgufValue::f32_array(image_stats(&v, "image_mean")?),
    );
    kv.array(
        "clip.vision.image_std",
        ckpt_gguf::GgufValue::f32_array(image_stats(&v, "image_std")?),
    );
    arch.write_params(&v, &mut kv)?;
    kv.u32("general.quantization_version", 2);

    let kv_count = kv.entries().len();
    let tensor_count = planned.len();
    let mut writer = GgufWriter::new();
    kv.into_writer(&mut writer);
    let sources: Vec<String> = planned.iter().map(|p| p.source.name.clone()).collect();
    for p in planned {
        writer.add_tensor(p.into_tensor());
    }
    let output_bytes = writer.total_size()?;
    let report = ConvertReport {
        outputs: Vec::new(),
        hf_architecture: hf_arch,
        gguf_architecture: "clip".into(),
        file_type,
        tensor_count,
        kv_count,
        parameter_count,
        output_bytes,
        fallbacks,
        dropped,
        warnings,
    };
    Ok((writer, report, sources))
}

/// `prepare_tensors`' type rule for a projector tensor: vectors and norms F32 whatever was
/// forced; then the forced type; then position embeddings and non-weights F32; then the output
/// type, F16 when the rows do not fit its blocks.
fn choose_type(
    name: &str,
    shape: &[u64],
    forced: Option<GgmlType>,
    ftype: VisionFtype,
) -> (GgmlType, Option<String>) {
    if shape.len() <= 1 || name.ends_with("_norm.weight") {
        return (GgmlType::F32, None);
    }
    let target = match forced {
        Some(t) => t,
        None if name == "v.position_embd.weight"
            || name == "a.position_embd.weight"
            || !name.ends_with(".weight") =>
        {
            return (GgmlType::F32, None)
        }
        None => ftype.default_type(),
    };
    let row = shape.last().copied().unwrap_or(1);
    if target.block_size() > 1 && row % target.block_size() as u64 != 0 {
        return (
            GgmlType::F16,
            Some(format!(
                "{name}: row length {row} is not a multiple of the {} block size {}, stored as F16 (like the converter)",
                target.name(),
                target.block_size()
            )),
        );
    }
    (target, None)
}
