//! Hugging Face model folder -> GGUF, like llama.cpp's convert_hf_to_gguf.py, optionally followed
//! by llama-quantize's mixes in one step (through a temporary F16 or BF16 GGUF, exactly what
//! converting and then quantizing produces).

use std::path::{Path, PathBuf};

use ckpt_core::atomic::{check_destination, temp_path_for};
use ckpt_core::{Error, Result};
use serde::Serialize;

use crate::convert::{Progress, ProgressFn};
use crate::source::{self, OpenOptions};

#[derive(Clone)]
pub struct GgufOptions {
    /// f32, f16, bf16, q8_0, auto, or any llama-quantize type (q4_k_m, q6_k, …).
    pub outtype: String,
    /// Precision of the intermediate GGUF for llama-quantize types: f16 (default, what
    /// `convert_hf_to_gguf.py --outtype f16` + `llama-quantize` gives) or bf16.
    pub intermediate: String,
    pub pre_tokenizer: Option<String>,
    pub key: Option<String>,
    pub overwrite: bool,
    pub progress: Option<ProgressFn>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GgufReport {
    pub output: PathBuf,
    pub hf_architecture: String,
    pub gguf_architecture: String,
    pub outtype: String,
    pub tensors: usize,
    pub parameters: u64,
    pub bytes: u64,
    pub fallbacks: Vec<String>,
    pub dropped: Vec<String>,
    pub warnings: Vec<String>,
    /// With a llama-quantize --outtype: what happened to each tensor (the CLI summarises the
    /// shape fallbacks from it; `fallbacks` lists them as text after the converter's own).
    #[serde(skip)]
    pub quantized: Vec<ckpt_quant::TensorReport>,
}

fn converter_outtype(name: &str) -> Option<ckpt_model::OutType> {
    ckpt_model::OutType::from_name(name)
}

/// Converts the model folder `src` (or a weights file inside one) to `dst`.
pub fn convert_to_gguf(src: &Path, dst: &Path, opts: &GgufOptions) -> Result<GgufReport> {
    check_destination(dst, opts.overwrite)?;
    let model_dir = if src.is_dir() {
        src.to_path_buf()
    } else {
        src.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    let ckpt = source::open(
        src,
        &OpenOptions {
            key: opts.key.clone(),
        },
    )?;
    let direct = converter_outtype(&opts.outtype);
    let quant = if direct.is_none() {
        Some(ckpt_quant::parse_ftype(&opts.outtype).map_err(|_| {
            Error::Usage(format!(
                "unknown --outtype '{}' (f32, f16, bf16, q8_0, auto, or a llama-quantize type such as q4_k_m, q5_k_m, q6_k)",
                opts.outtype
            ))
        })?)
    } else {
        None
    };
    let stage_type = match quant {
        None => direct.unwrap(),
        Some(_) => converter_outtype(&opts.intermediate)
            .filter(|t| {
                matches!(
                    t,
                    ckpt_model::OutType::F16 | ckpt_model::OutType::BF16 | ckpt_model::OutType::F32
                )
            })
            .ok_or_else(|| {
                Error::Usage(format!(
                    "--intermediate must be f16, bf16 or f32, not '{}'",
                    opts.intermediate
                ))
            })?,
    };
    let stage_path = match quant {
        None => dst.to_path_buf(),
        Some(_) => temp_path_for(dst).with_extension("f16.gguf"),
    };
    let progress = opts.progress.clone();
    if let Some(p) = &progress {
        p(Progress::Start {
            phase: "converting",
            total_bytes: 0,
        });
    }
    let last = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hook: Option<Box<dyn Fn(u64, u64) + Send + Sync>> = progress.clone().map(|p| {
        let last = last.clone();
        Box::new(move |done: u64, total: u64| {
            let prev = last.swap(done, std::sync::atomic::Ordering::Relaxed);
            if prev == 0 {
                p(Progress::Start {
                    phase: "converting",
                    total_bytes: total,
                });
            }
            p(Progress::Advance {
                bytes: done.saturating_sub(prev),
            });
        }) as Box<dyn Fn(u64, u64) + Send + Sync>
    });
    let model_opts = ckpt_model::HfToGgufOptions {
        outtype: stage_type,
        pre_tokenizer: opts.pre_tokenizer.clone(),
        overwrite: opts.overwrite || quant.is_some(),
        progress: hook,
    };
    let result = ckpt_model::convert_hf_to_gguf(&model_dir, &ckpt, &stage_path, &model_opts);
    if let Some(p) = &progress {
        p(Progress::Finish);
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            if quant.is_some() {
                let _ = std::fs::remove_file(&stage_path);
            }
            return Err(e);
        }
    };
    let mut out = GgufReport {
        output: dst.to_path_buf(),
        hf_architecture: report.hf_architecture,
        gguf_architecture: report.gguf_architecture,
        outtype: opts.outtype.to_ascii_uppercase(),
        tensors: report.tensor_count,
        parameters: report.parameter_count,
        bytes: report.output_bytes,
        fallbacks: report.fallbacks,
        dropped: report.dropped,
        warnings: report.warnings,
        quantized: Vec::new(),
    };
    if let Some(ftype) = quant {
        let mut qopts = ckpt_quant::QuantizeOptions::new(ftype);
        qopts.overwrite = opts.overwrite;
        let result = ckpt_quant::quantize_gguf(&stage_path, dst, &qopts);
        let _ = std::fs::remove_file(&stage_path);
        let q = result?;
        out.outtype = ftype.name().to_string();
        out.bytes = q.output_bytes;
        for t in q.tensors.iter().filter(|t| t.fallback_from.is_some()) {
            out.fallbacks.push(format!(
                "{}: {} rows do not fit {}, stored as {}",
                t.name,
                t.ne[0],
                t.fallback_from.unwrap(),
                t.to
            ));
        }
        out.quantized = q.tensors;
    }
    Ok(out)
}
