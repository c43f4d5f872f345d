//! ckpt as a library: the operations of the `ckpt` command line as functions with typed options.
//!
//! Every operation streams (inputs are memory-mapped, outputs written tensor by tensor), never
//! executes anything from a file, and writes its output under a temporary name that becomes the
//! output only once complete and checked. Model arguments may be local paths or `hf://ORG/NAME`
//! (resolved through the Hugging Face cache, downloading what is missing: see [`resolve`]).
//!
//! | job | function |
//! |---|---|
//! | open / inspect any checkpoint | [`open`], [`is_gguf_file`] |
//! | safetensors ⇄ PyTorch `.bin` | [`convert::convert`] |
//! | Hugging Face folder → GGUF (any [`OutType`], incl. llama-quantize mixes) | [`convert::to_gguf`] |
//! | GGUF → Hugging Face folder | [`convert::gguf_to_hf`] |
//! | llama-quantize | [`quantize()`] |
//! | llama-gguf-split `--split` / `--merge` | [`gguf_split`], [`gguf_merge`] |
//! | merge PEFT LoRA adapters | [`lora::merge`] |
//! | compare / check | [`diff()`], [`verify()`] |
//! | Hub download / upload / conversion pull request | [`hub::pull`], [`hub::push`], [`hub::push_conversion_pr`] |
//! | build into Ollama's store | [`ollama::create`], [`ollama::CkptPreparer`] |
//! | static pickle scan | [`report::scan`] |
//! | the `--json` documents of the reports | [`report`] |
//!
//! Errors are one [`Error`] type whose [`Error::kind`] a caller can match ([`ErrorKind`]).
//!
//! # Example: a Hugging Face folder to a Q4_K_M GGUF
//!
//! ```
//! # fn main() -> ckpt::Result<()> {
//! # let tmp = tempfile::tempdir().unwrap();
//! # let out = tmp.path().join("tiny-llama-Q4_K_M.gguf");
//! use ckpt::convert::{to_gguf, GgufOptions};
//!
//! let opts = GgufOptions { outtype: "q4_k_m".parse()?, ..Default::default() };
//! let report = to_gguf("../../examples/tiny-llama".as_ref(), &out, &opts)?;
//! assert_eq!(report.outtype, "Q4_K_M");
//! assert_eq!(report.gguf_architecture, "llama");
//! # assert!(out.is_file());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod compare;
pub mod convert;
pub mod hub;
pub mod lora;
pub mod ollama;
pub mod report;

pub use ckpt_convert::gguf::{Intermediate, OutType, OUTTYPE_CHOICES};
pub use ckpt_convert::{OpenOptions, Target};
pub use ckpt_core::{
    Checkpoint, DType, Error, ErrorKind, Format, GgmlType, Progress, ProgressEvent, Result,
    SharedProgress, Tensor,
};
pub use ckpt_gguf::{ConverterSplit, ShardPlan, SplitBy, SplitOptions, SplitReport};
pub use ckpt_quant::{
    Ftype, ImatrixWeights, KvOverride, KvOverrideValue, QuantizeOptions, QuantizeReport,
    TensorTypeOverride,
};
pub use compare::{diff, verify, DiffOutcome, DiffReport, TensorDiff, VerifyReport};
pub use hub::resolve;

/// The member crates, for what the functions above do not cover.
pub mod crates {
    pub use ckpt_convert as convert;
    pub use ckpt_core as core;
    pub use ckpt_export as export;
    pub use ckpt_gguf as gguf;
    pub use ckpt_lora as lora;
    pub use ckpt_model as model;
    pub use ckpt_ollama as ollama;
    pub use ckpt_quant as quant;
    pub use ckpt_remote as remote;
    pub use ckpt_safetensors as safetensors;
    pub use ckpt_torch as torch;
}

use std::path::Path;

/// Opens a checkpoint (a `.safetensors`, `.bin`/`.pt`, `.gguf` file, an `*.index.json` or a
/// model folder; `hf://…` is resolved first) and lists its tensors without reading their data.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Checkpoint> {
    ckpt_convert::open(&resolve(path)?, opts)
}

/// Whether `path` is a file whose first bytes say GGUF.
pub fn is_gguf_file(path: &Path) -> Result<bool> {
    Ok(path.is_file()
        && ckpt_convert::source::sniff_file(path)? == ckpt_convert::source::FileKind::Gguf)
}

/// Quantizes a GGUF like `llama-quantize IN OUT TYPE` (byte-identical output). `input` may be
/// `hf://…`.
pub fn quantize(input: &Path, output: &Path, opts: &QuantizeOptions) -> Result<QuantizeReport> {
    ckpt_quant::quantize_gguf(&resolve(input)?, output, opts)
}

/// Splits a GGUF like `llama-gguf-split --split` (byte-identical shards
/// `OUT_PREFIX-00001-of-0000N.gguf`, …; none appears unless all are written). With `dry_run`
/// only the plan is returned. `input` may be `hf://…`.
pub fn gguf_split(
    input: &Path,
    out_prefix: &Path,
    opts: &SplitOptions,
    dry_run: bool,
    overwrite: bool,
) -> Result<SplitReport> {
    ckpt_gguf::split_gguf(&resolve(input)?, out_prefix, opts, dry_run, overwrite)
}

/// Merges a split GGUF like `llama-gguf-split --merge`, given its first shard
/// (`…-00001-of-0000N.gguf`); the output is byte-identical to llama-gguf-split's (it keeps
/// `split.no`, `split.tensors.count` and a `split.count` of 0).
pub fn gguf_merge(
    first_shard: &Path,
    output: &Path,
    dry_run: bool,
    overwrite: bool,
) -> Result<SplitReport> {
    ckpt_gguf::merge_gguf(first_shard, output, dry_run, overwrite)
}
