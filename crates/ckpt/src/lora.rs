//! `ckpt merge-lora`: PEFT LoRA adapters merged into their base model, streaming, with PEFT's
//! math (LoRA, rsLoRA, DoRA, embedding LoRA, `fan_in_fan_out`, LoRA biases, `modules_to_save`).

use std::path::{Path, PathBuf};

use ckpt_core::{DType, Result};

pub use ckpt_lora::merge::MergeReport;

use crate::convert::{ConvertOptions, GgufOptions, GgufReport, OutputFormat};
use crate::{resolve, OutType, SharedProgress, Target};

/// An adapter folder and the weight its deltas are scaled by (PEFT's `add_weighted_adapter`
/// with one adapter; 1.0 is a plain merge).
#[derive(Clone, Debug, PartialEq)]
pub struct AdapterSpec {
    /// The adapter folder (`adapter_config.json`, `adapter_model.safetensors`).
    pub dir: PathBuf,
    /// The scale of its deltas.
    pub weight: f32,
}

impl AdapterSpec {
    /// `DIR` or `DIR:WEIGHT` (the part after the last `:` is a weight only if it parses as one).
    /// `hf://…` folders are resolved through the Hugging Face cache.
    pub fn parse(spec: &str) -> Result<AdapterSpec> {
        if let Some((dir, w)) = spec.rsplit_once(':') {
            if let Ok(weight) = w.parse::<f32>() {
                return Ok(AdapterSpec {
                    dir: resolve(Path::new(dir))?,
                    weight,
                });
            }
        }
        Ok(AdapterSpec {
            dir: resolve(Path::new(spec))?,
            weight: 1.0,
        })
    }
}

/// Options of [`merge`].
#[derive(Clone)]
pub struct MergeOptions {
    /// A model folder in safetensors or `.bin`, or one GGUF file.
    pub format: OutputFormat,
    /// GGUF output: the type, as [`crate::convert::to_gguf`] writes it.
    pub outtype: OutType,
    /// GGUF output: the byte order, as [`crate::convert::GgufOptions::byte_order`]
    /// (`convert_hf_to_gguf.py --bigendian` run on the merged folder; the converter's own
    /// types only). Default little-endian.
    pub byte_order: ckpt_gguf::ByteOrder,
    /// Cast floating-point tensors of the output (the base dtype otherwise).
    pub dtype: Option<DType>,
    /// Folder output: split into shards of at most this many bytes.
    pub max_shard_size: Option<u64>,
    /// Folder output: re-read and compare every tensor with the computed merge.
    pub verify: bool,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Progress events for a front end to draw.
    pub progress: Option<SharedProgress>,
}

impl Default for MergeOptions {
    fn default() -> Self {
        MergeOptions {
            format: OutputFormat::Safetensors,
            outtype: OutType::Auto,
            byte_order: ckpt_gguf::ByteOrder::Little,
            dtype: None,
            max_shard_size: None,
            verify: true,
            overwrite: false,
            progress: None,
        }
    }
}

/// What [`merge`] wrote.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum MergeOutcome {
    /// A model folder.
    Folder(MergeReport),
    /// A GGUF, converted from the merged folder (written to a private scratch folder).
    Gguf(MergeReport, GgufReport),
}

/// Merges `adapters` (in order) into the model at `base` (`hf://…` allowed) and writes `out`:
/// a complete model folder (weights, config, tokenizer, chat template) or a GGUF.
pub fn merge(
    base: &Path,
    adapters: &[AdapterSpec],
    out: &Path,
    opts: &MergeOptions,
) -> Result<MergeOutcome> {
    let base = resolve(base)?;
    let adapters: Vec<(PathBuf, f32)> =
        adapters.iter().map(|a| (a.dir.clone(), a.weight)).collect();
    let mopts = ckpt_lora::merge::MergeOptions {
        to: Some(opts.format.target().unwrap_or(Target::Safetensors)),
        dtype: opts.dtype,
        write: ConvertOptions {
            max_shard_size: opts.max_shard_size,
            verify: opts.verify,
            overwrite: opts.overwrite,
            progress: opts.progress.clone(),
            ..Default::default()
        },
    };
    if opts.format == OutputFormat::Gguf {
        let gguf = GgufOptions {
            outtype: opts.outtype,
            byte_order: opts.byte_order,
            overwrite: opts.overwrite,
            progress: opts.progress.clone(),
            ..Default::default()
        };
        let (merged, converted) =
            ckpt_lora::merge::merge_lora_to_gguf(&base, &adapters, out, &mopts, &gguf)?;
        return Ok(MergeOutcome::Gguf(merged, converted));
    }
    Ok(MergeOutcome::Folder(ckpt_lora::merge::merge_lora(
        &base, &adapters, out, &mopts,
    )?))
}
