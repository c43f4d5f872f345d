//! Hugging Face model folder -> GGUF, like llama.cpp's convert_hf_to_gguf.py, optionally followed
//! by llama-quantize's mixes in one step: the quantizer reads the converter's F16 (or BF16, F32)
//! tensors by bands of rows as it writes, without staging them in a file, and produces exactly
//! what converting and then quantizing produces.

use std::path::{Path, PathBuf};

use ckpt_core::atomic::{check_destination, temp_path_for};
use ckpt_core::{Error, Result};
use serde::Serialize;

use crate::source::{self, OpenOptions};

/// What `convert_hf_to_gguf` writes: one of convert_hf_to_gguf.py's own `--outtype`s, or any
/// llama-quantize type (converted to an intermediate GGUF, then quantized in one step).
///
/// Parsed from the names users type (case-insensitive: `f16`, `auto`, `q4_k_m`, `Q4_K`, or a
/// numeric `llama_ftype`) with [`str::parse`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OutType {
    /// The type of the first 2-D tensor (bf16 -> BF16, f16 -> F16), F16 otherwise.
    #[default]
    Auto,
    /// 32-bit floats (`--outtype f32`).
    F32,
    /// IEEE half floats (`--outtype f16`).
    F16,
    /// bfloat16 (`--outtype bf16`).
    BF16,
    /// ggml's Q8_0 blocks, quantized by the converter itself (`--outtype q8_0`).
    Q8_0,
    /// A llama-quantize mix (`Q4_K_M`, `Q6_K`, …), quantized from [`Intermediate`] tensors.
    Quantized(ckpt_quant::Ftype),
}

/// The GGUF output types [`OutType`] accepts, as listed in its parse error.
pub const OUTTYPE_CHOICES: &str =
    "f32, f16, bf16, q8_0, auto, or a llama-quantize type such as q4_k_m, q5_k_m, q6_k";

impl OutType {
    /// The converter's own type, or `None` for a llama-quantize mix.
    fn direct(self) -> Option<ckpt_model::OutType> {
        Some(match self {
            OutType::Auto => ckpt_model::OutType::Auto,
            OutType::F32 => ckpt_model::OutType::F32,
            OutType::F16 => ckpt_model::OutType::F16,
            OutType::BF16 => ckpt_model::OutType::BF16,
            OutType::Q8_0 => ckpt_model::OutType::Q8_0,
            OutType::Quantized(_) => return None,
        })
    }

    /// Whether the converter writes this type itself (no llama-quantize step).
    pub fn is_direct(self) -> bool {
        self.direct().is_some()
    }

    /// The label reports use: `AUTO`, `F16`, `Q8_0`, or llama-quantize's name (`Q4_K_M`).
    pub fn name(self) -> &'static str {
        match self {
            OutType::Auto => "AUTO",
            OutType::F32 => "F32",
            OutType::F16 => "F16",
            OutType::BF16 => "BF16",
            OutType::Q8_0 => "Q8_0",
            OutType::Quantized(f) => f.name(),
        }
    }
}

impl std::fmt::Display for OutType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for OutType {
    type Err = Error;
    /// convert_hf_to_gguf.py's names first (`f32`, `f16`, `bf16`, `q8_0`, `auto`), then
    /// llama-quantize's (`q4_k_m`, `Q4_K`, `15`, …).
    fn from_str(s: &str) -> Result<OutType> {
        let direct = match ckpt_model::OutType::from_name(s) {
            Some(ckpt_model::OutType::F32) => Some(OutType::F32),
            Some(ckpt_model::OutType::F16) => Some(OutType::F16),
            Some(ckpt_model::OutType::BF16) => Some(OutType::BF16),
            Some(ckpt_model::OutType::Q8_0) => Some(OutType::Q8_0),
            Some(ckpt_model::OutType::Auto) => Some(OutType::Auto),
            _ => None,
        };
        if let Some(t) = direct {
            return Ok(t);
        }
        ckpt_quant::parse_ftype(s)
            .map(OutType::Quantized)
            .map_err(|_| {
                Error::Usage(format!(
                    "unknown GGUF output type '{s}' ({OUTTYPE_CHOICES})"
                ))
            })
    }
}

/// Precision of the GGUF written before a llama-quantize [`OutType`] is applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Intermediate {
    /// What `convert_hf_to_gguf.py --outtype f16` + `llama-quantize` gives.
    #[default]
    F16,
    /// Keeps bf16 weights exact.
    BF16,
    /// Full precision: the quantizer reads f32 values.
    F32,
}

impl Intermediate {
    fn outtype(self) -> ckpt_model::OutType {
        match self {
            Intermediate::F16 => ckpt_model::OutType::F16,
            Intermediate::BF16 => ckpt_model::OutType::BF16,
            Intermediate::F32 => ckpt_model::OutType::F32,
        }
    }
}

impl std::str::FromStr for Intermediate {
    type Err = Error;
    fn from_str(s: &str) -> Result<Intermediate> {
        match ckpt_model::OutType::from_name(s) {
            Some(ckpt_model::OutType::F16) => Ok(Intermediate::F16),
            Some(ckpt_model::OutType::BF16) => Ok(Intermediate::BF16),
            Some(ckpt_model::OutType::F32) => Ok(Intermediate::F32),
            _ => Err(Error::Usage(format!(
                "the intermediate type must be f16, bf16 or f32, not '{s}'"
            ))),
        }
    }
}

/// Options of [`convert_to_gguf`] (the flags of `ckpt convert --to gguf`, mirroring
/// `convert_hf_to_gguf.py`'s).
#[derive(Clone, Default)]
pub struct GgufOptions {
    /// The output type (`--outtype`); default [`OutType::Auto`].
    pub outtype: OutType,
    /// Precision of the intermediate GGUF for llama-quantize types.
    pub intermediate: Intermediate,
    /// The pre-tokenizer name (`tokenizer.ggml.pre`) to use when the BPE tokenizer's
    /// fingerprint is unknown to llama.cpp.
    pub pre_tokenizer: Option<String>,
    /// Read only this subtree of pickled `.bin` weights, as [`OpenOptions::key`].
    pub key: Option<String>,
    /// Replace an existing output file (or shards); without it they are refused.
    pub overwrite: bool,
    /// Receives the conversion's (and quantization's) progress events.
    pub progress: Option<ckpt_core::SharedProgress>,
    /// With a llama-quantize `outtype`: its other options (`--tensor-type`, `--override-kv`,
    /// `--imatrix`, `--pure`, …). Their `ftype` is replaced by the outtype's, `overwrite` and
    /// `split` by these options'.
    pub quantize: Option<ckpt_quant::QuantizeOptions>,
    /// Write the GGUF as a split set, as `convert_hf_to_gguf.py --split-max-tensors N
    /// --split-max-size N --no-tensor-first-split` does (see [`ckpt_gguf::ConverterSplit`]):
    /// `OUT-00001-of-0000N.gguf`, … with OUT the output's file name without its extension, or
    /// the output file itself when everything fits one shard. With a llama-quantize `outtype`
    /// the quantized file is split instead, as `llama-gguf-split --split` splits it (one limit
    /// only; `small_first_shard` is its `--no-tensor-first-split`).
    pub split: Option<ckpt_gguf::ConverterSplit>,
    /// Also write the vision encoder + projector of a multimodal folder to this file, as
    /// `convert_hf_to_gguf.py --mmproj` does (in the same pass over the source).
    pub mmproj: Option<PathBuf>,
    /// The projector's output type; `None`: the same as `outtype` when the converter writes
    /// that itself, else the [`Intermediate`] precision (quantizing the text model leaves the
    /// projector's precision alone).
    pub mmproj_outtype: Option<OutType>,
    /// `convert_hf_to_gguf.py --dry-run`: plan the whole output (tensors, types, metadata, size,
    /// the shards of a split) and report it, writing nothing. Only for the converter's own
    /// types, without a projector.
    pub dry_run: bool,
    /// `convert_hf_to_gguf.py --bigendian` ([`ckpt_gguf::ByteOrder::Big`]): header numbers and
    /// F32/F16 tensor data big-endian, BF16 and Q8_0 data as in a little-endian file, byte for
    /// byte what the script writes (the projector of [`GgufOptions::mmproj`] too, every shard
    /// of a [`GgufOptions::split`] output, its `split.*` keys big-endian like the others). Only
    /// for the converter's own output types: llama-quantize writes little-endian files only.
    /// Default little-endian.
    pub byte_order: ckpt_gguf::ByteOrder,
    /// `convert_hf_to_gguf.py --sentence-transformers-dense-modules`: also convert the
    /// sentence-transformers `Dense` modules listed in `modules.json` (EmbeddingGemma's
    /// `2_Dense`/`3_Dense` as `dense_2.weight`/`dense_3.weight` with their
    /// `gemma-embedding.dense_N_feat_in`/`_feat_out`), see
    /// [`ckpt_model::HfToGgufOptions::sentence_transformers_dense_modules`]. Default off: the
    /// modules are left out, as the converter leaves them out without the flag.
    pub sentence_transformers_dense_modules: bool,
}

/// What [`convert_to_gguf`] wrote (the `--json` report of a GGUF conversion).
#[derive(Debug, Clone, Serialize)]
pub struct GgufReport {
    /// The destination as given.
    pub output: PathBuf,
    /// config.json's `architectures[0]` (`LlamaForCausalLM`, …).
    pub hf_architecture: String,
    /// The GGUF `general.architecture` written (`llama`, `qwen2`, …).
    pub gguf_architecture: String,
    /// The output type's name ([`OutType::name`]; llama-quantize's name for a quantized output).
    pub outtype: String,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of model parameters (elements of the tensors written).
    pub parameters: u64,
    /// Size of the output in bytes (all shards of a split output).
    pub bytes: u64,
    /// Tensors stored in another type than requested, and why.
    pub fallbacks: Vec<String>,
    /// Tensors of the checkpoint the converter leaves out by design, as convert_hf_to_gguf.py
    /// does.
    pub dropped: Vec<String>,
    /// Things the user should know that did not stop the conversion.
    pub warnings: Vec<String>,
    /// With a llama-quantize --outtype: what happened to each tensor (the CLI summarises the
    /// shape fallbacks from it; `fallbacks` lists them as text after the converter's own).
    #[serde(skip)]
    pub quantized: Vec<ckpt_quant::TensorReport>,
    /// The files written: the output, or the shards of a split output.
    pub outputs: Vec<PathBuf>,
    /// The files of the output (one, or every shard of a split output), each with its tensor
    /// count and size; for a dry run, what would be written.
    pub shards: Vec<GgufShard>,
    /// Only planned ([`GgufOptions::dry_run`]): nothing was written.
    pub dry_run: bool,
    /// The projector file, when [`GgufOptions::mmproj`] asked for one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mmproj: Option<MmprojReport>,
}

/// One file of a GGUF output.
#[derive(Debug, Clone, Serialize)]
pub struct GgufShard {
    /// The file (final path).
    pub path: PathBuf,
    /// Number of tensors in it.
    pub tensors: usize,
    /// The file's size.
    pub bytes: u64,
}

/// What was written to the `--mmproj` file.
#[derive(Debug, Clone, Serialize)]
pub struct MmprojReport {
    /// The projector file.
    pub output: PathBuf,
    /// `clip.projector_type`.
    pub projector: String,
    /// Its type, by llama.cpp's ftype name (`F16`, `Q8_0`, …).
    pub outtype: String,
    /// Number of tensors written.
    pub tensors: usize,
    /// Number of parameters of the vision encoder and projector.
    pub parameters: u64,
    /// Size of the file in bytes.
    pub bytes: u64,
    /// Tensors stored in another type than requested, and why.
    pub fallbacks: Vec<String>,
}

/// The projector's type for [`GgufOptions`] (see [`GgufOptions::mmproj_outtype`]).
fn mmproj_outtype(opts: &GgufOptions) -> Result<ckpt_model::OutType> {
    match opts.mmproj_outtype {
        Some(t) => t.direct().ok_or_else(|| {
            Error::Usage(format!(
                "the projector's output type must be f32, f16, bf16, q8_0 or auto (as convert_hf_to_gguf.py --mmproj --outtype), not {}",
                t.name()
            ))
        }),
        None => Ok(opts
            .outtype
            .direct()
            .unwrap_or_else(|| opts.intermediate.outtype())),
    }
}

/// Writes the projector of `model_dir` beside the text output: to a temporary name first,
/// renamed into place by the caller once the text model is written too.
fn write_mmproj(
    model_dir: &Path,
    ckpt: &ckpt_core::Checkpoint,
    tmp: &Path,
    final_path: &Path,
    opts: &GgufOptions,
) -> Result<MmprojReport> {
    let outtype = mmproj_outtype(opts)?;
    let model_opts = ckpt_model::HfToGgufOptions {
        outtype,
        pre_tokenizer: None,
        overwrite: true,
        progress: None,
        split: None,
        ..Default::default()
    };
    let (mut writer, mut r, _) = ckpt_model::mmproj::plan_mmproj(model_dir, ckpt, outtype)?;
    writer.set_byte_order(opts.byte_order);
    r.outputs = ckpt_model::write_with_progress(writer, tmp, &model_opts)?;
    let outtype = match ckpt_quant::Ftype::from_id(r.file_type) {
        Some(f) => f.name().to_string(),
        None => r.file_type.to_string(),
    };
    let projector = ckpt_model::mmproj::check(model_dir)?
        .1
        .projector()
        .to_string();
    Ok(MmprojReport {
        output: final_path.to_path_buf(),
        projector,
        outtype,
        tensors: r.tensor_count,
        parameters: r.parameter_count,
        bytes: r.output_bytes,
        fallbacks: r.fallbacks,
    })
}

/// Whether `--mmproj` can write a projector for the model folder `dir` (a vision-language
/// architecture with a complete vision config).
pub fn has_projector(dir: &Path) -> bool {
    ckpt_model::mmproj::check(dir).is_ok()
}

/// Converts the model folder `src` (or a weights file inside one) to `dst`.
///
/// Fails with [`Error::Usage`] for options that cannot go together (see [`check_byte_order`],
/// [`GgufOptions::dry_run`]), with [`Error::Exists`] for an existing output without
/// [`GgufOptions::overwrite`], and with [`Error::Unsupported`] for an architecture or tensor the
/// converter does not handle.
pub fn convert_to_gguf(src: &Path, dst: &Path, opts: &GgufOptions) -> Result<GgufReport> {
    check_byte_order(opts)?;
    if opts.dry_run {
        let refused = if opts.outtype.direct().is_none() {
            Some("a llama-quantize output type")
        } else if opts.mmproj.is_some() {
            Some("a projector file")
        } else {
            None
        };
        if let Some(what) = refused {
            return Err(Error::Usage(format!(
                "a dry run plans the converter's own output (f32, f16, bf16, q8_0, auto); it cannot plan {what}"
            )));
        }
    }
    if opts.split.is_none() {
        check_destination(dst, opts.overwrite)?;
    } else if opts.mmproj.is_some() {
        return Err(Error::Usage(
            "`mmproj` cannot be combined with a split text output".into(),
        ));
    }
    let model_dir = if src.is_dir() {
        src.to_path_buf()
    } else {
        src.parent().unwrap_or(Path::new(".")).to_path_buf()
    };
    if let Some(mm) = &opts.mmproj {
        check_destination(mm, opts.overwrite)?;
        if mm == dst {
            return Err(Error::Usage(format!(
                "the projector file {} is also the text model's output",
                mm.display()
            )));
        }
        // Refused before anything is written (architecture without a projector, incomplete
        // vision config).
        ckpt_model::mmproj::check(&model_dir)?;
        mmproj_outtype(opts)?;
    }
    let ckpt = source::open(
        src,
        &OpenOptions {
            key: opts.key.clone(),
        },
    )?;
    let mm_tmp = opts.mmproj.as_ref().map(|m| temp_path_for(m));
    let mm_report = match (&opts.mmproj, &mm_tmp) {
        (Some(mm), Some(tmp)) => match write_mmproj(&model_dir, &ckpt, tmp, mm, opts) {
            Ok(r) => Some(r),
            Err(e) => {
                let _ = std::fs::remove_file(tmp);
                return Err(e);
            }
        },
        _ => None,
    };
    let result = convert_text(&model_dir, &ckpt, dst, opts);
    match (&opts.mmproj, &mm_tmp) {
        (Some(mm), Some(tmp)) => match result {
            Ok(mut r) => {
                std::fs::rename(tmp, mm).map_err(|e| {
                    let _ = std::fs::remove_file(tmp);
                    Error::io(mm, e)
                })?;
                r.mmproj = mm_report;
                Ok(r)
            }
            Err(e) => {
                let _ = std::fs::remove_file(tmp);
                Err(e)
            }
        },
        _ => result,
    }
}

/// Refuses big-endian output the scripts cannot write: a llama-quantize type (llama-quantize
/// writes little-endian files only). A split set of the converter's own types is written in
/// big-endian like one file: gguf-py's writer splits and packs every shard in its byte order.
pub fn check_byte_order(opts: &GgufOptions) -> Result<()> {
    match (opts.byte_order, opts.outtype) {
        (ckpt_gguf::ByteOrder::Big, OutType::Quantized(f)) => Err(Error::Usage(format!(
            "big-endian output (`byte_order`): `outtype` {} is llama-quantize's, which writes little-endian files only; big-endian output is one of convert_hf_to_gguf.py's own types (f32, f16, bf16, q8_0, auto)",
            f.name()
        ))),
        _ => Ok(()),
    }
}

/// The text model of [`convert_to_gguf`].
fn convert_text(
    model_dir: &Path,
    ckpt: &ckpt_core::Checkpoint,
    dst: &Path,
    opts: &GgufOptions,
) -> Result<GgufReport> {
    let quant = match opts.outtype {
        OutType::Quantized(f) => Some(f),
        _ => None,
    };
    let stage_type = opts
        .outtype
        .direct()
        .unwrap_or_else(|| opts.intermediate.outtype());
    let progress = opts.progress.clone();
    // Planning reads every header and the tokenizer: shown as the phase's start, before its
    // size is known.
    ckpt_core::progress::emit(
        progress.as_ref(),
        ckpt_core::ProgressEvent::Start {
            phase: "converting",
            total: 0,
        },
    );
    let model_opts = ckpt_model::HfToGgufOptions {
        outtype: stage_type,
        pre_tokenizer: opts.pre_tokenizer.clone(),
        overwrite: opts.overwrite,
        progress: None,
        split: None,
        sentence_transformers_dense_modules: opts.sentence_transformers_dense_modules,
    };
    // The converter's whole output, planned but not written. For a llama-quantize type the
    // quantizer reads its tensors by bands of rows (cast as they are read) and writes the
    // quantized file directly: no staged F16 file, the same bytes as converting and then
    // quantizing that file.
    let result =
        ckpt_model::plan_hf_to_gguf(model_dir, ckpt, &model_opts).and_then(|(writer, report)| {
            match quant {
                None if opts.dry_run => {
                    let mut report = report;
                    let shards = planned_shards(&writer, dst, opts)?;
                    // The single output was checked before converting; shards only now that
                    // their number is known.
                    if opts.split.is_some() {
                        for s in &shards {
                            check_destination(&s.path, opts.overwrite)?;
                        }
                    }
                    report.output_bytes = shards.iter().map(|s| s.bytes).sum();
                    report.outputs = shards.iter().map(|s| s.path.clone()).collect();
                    Ok((report, None, shards))
                }
                None => {
                    let mut writer = writer;
                    writer.set_byte_order(opts.byte_order);
                    let write_opts = ckpt_model::HfToGgufOptions {
                        overwrite: opts.overwrite,
                        progress: progress.clone(),
                        split: opts.split,
                        ..Default::default()
                    };
                    let mut report = report;
                    let planned = planned_shards(&writer, dst, opts)?;
                    let outputs = ckpt_model::write_with_progress(writer, dst, &write_opts)?;
                    let mut shards = Vec::with_capacity(outputs.len());
                    for (p, plan) in outputs.iter().zip(planned) {
                        let bytes = std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len();
                        shards.push(GgufShard {
                            path: p.clone(),
                            tensors: plan.tensors,
                            bytes,
                        });
                    }
                    report.output_bytes = shards.iter().map(|s| s.bytes).sum();
                    report.outputs = outputs;
                    Ok((report, None, shards))
                }
                Some(ftype) => {
                    let mut qopts = opts
                        .quantize
                        .clone()
                        .unwrap_or_else(|| ckpt_quant::QuantizeOptions::new(ftype));
                    qopts.ftype = ftype;
                    qopts.overwrite = opts.overwrite;
                    qopts.split = opts
                        .split
                        .filter(ckpt_gguf::ConverterSplit::any)
                        .map(gguf_split_options)
                        .transpose()?;
                    qopts.keep_split = false;
                    // Planning is over; the quantizer's writer reports its own phase.
                    ckpt_core::progress::emit(progress.as_ref(), ckpt_core::ProgressEvent::Finish);
                    let q = ckpt_quant::pipeline::quantize_writer_with_progress(
                        model_dir,
                        &writer,
                        dst,
                        &qopts,
                        progress.clone(),
                    );
                    q.map(|q| (report, Some(q), Vec::new()))
                }
            }
        });
    ckpt_core::progress::emit(progress.as_ref(), ckpt_core::ProgressEvent::Finish);
    let (report, quantized, shards) = result?;
    let mut out = GgufReport {
        output: dst.to_path_buf(),
        hf_architecture: report.hf_architecture,
        gguf_architecture: report.gguf_architecture,
        outtype: opts.outtype.name().to_string(),
        tensors: report.tensor_count,
        parameters: report.parameter_count,
        bytes: report.output_bytes,
        fallbacks: report.fallbacks,
        dropped: report.dropped,
        warnings: report.warnings,
        quantized: Vec::new(),
        outputs: Vec::new(),
        shards,
        dry_run: opts.dry_run,
        mmproj: None,
    };
    out.outputs = report.outputs;
    if let Some(q) = quantized {
        out.outtype = q.ftype.name().to_string();
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
        out.outputs = q.outputs;
    }
    Ok(out)
}

/// The files the converter's output takes (one, or the shards of `opts.split`), as planned.
fn planned_shards(
    writer: &ckpt_gguf::GgufWriter,
    dst: &Path,
    opts: &GgufOptions,
) -> Result<Vec<GgufShard>> {
    let plans = match &opts.split {
        Some(split) => writer.plan_converter_split(dst, split)?,
        None => vec![ckpt_gguf::ShardPlan {
            path: dst.to_path_buf(),
            tensors: writer.tensors().len(),
            bytes: writer.total_size()?,
            reported_bytes: 0,
        }],
    };
    Ok(plans
        .into_iter()
        .map(|p| GgufShard {
            path: p.path,
            tensors: p.tensors,
            bytes: p.bytes,
        })
        .collect())
}

/// The split of a llama-quantize type's output: llama-gguf-split's rule on the quantized file,
/// which takes one limit.
fn gguf_split_options(split: ckpt_gguf::ConverterSplit) -> Result<ckpt_gguf::SplitOptions> {
    let by = match (split.max_tensors, split.max_bytes) {
        (0, 0) => ckpt_gguf::SplitBy::MaxTensors(usize::MAX),
        (n, 0) => ckpt_gguf::SplitBy::MaxTensors(n),
        (0, b) => ckpt_gguf::SplitBy::MaxBytes(b),
        _ => {
            return Err(Error::Usage(
                "a llama-quantize output type is split as llama-gguf-split splits the quantized file, by `split_max_size` or `split_max_tensors`, not both".into(),
            ))
        }
    };
    Ok(ckpt_gguf::SplitOptions {
        by,
        no_tensor_first_split: split.small_first_shard,
    })
}
