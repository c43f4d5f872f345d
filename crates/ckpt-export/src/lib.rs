//! GGUF files back to Hugging Face model folders: every tensor dequantized (exactly as ggml
//! does) under its transformers name with llama.cpp's layout changes undone (Q/K rotary
//! permutation, Gemma's norm +1, GPT-2's Conv1D transposes), sharded safetensors or `.bin` weights
//! (written and verified by the same folder writer as every conversion), and
//! `config.json`, `generation_config.json` and tokenizer files rebuilt from the GGUF metadata.
//!
//! The name tables are the inverse of ckpt-model's converter; every exported tensor is checked
//! against ckpt-model's forward mapping, which also says which transforms to undo. Stacked
//! experts are cut back into one tensor per expert (the family's `Experts` spec read
//! backwards), tensors the converter split or reshaped are joined again (its `Join`s: DeepSeek's
//! `kv_b_proj`, Granite MoE's fused `input_linear`, GPT-OSS's interleaved `gate_up_proj`, its
//! transposed `down_proj` and renamed biases and sinks, Llama 4's `gate_up_proj` halves and
//! transposed `down_proj`; such joins of stacked experts are made a band of experts at a time),
//! and the config's plain hyperparameters
//! come from the family's declarative parameter list read backwards. An architecture whose
//! mapping is not invertible is refused with the reason ([`names::refused`]). Embedding models
//! come back with their sentence-transformers modules: the pooling the GGUF records and
//! EmbeddingGemma's Dense projections (`2_Dense`/`3_Dense` folders).
//!
//! The entry point is [`gguf_to_hf`] with [`ExportOptions`]; [`hf_config`] rebuilds only the
//! config, [`hf_view`] gives the tensors under their Hugging Face names without writing, and
//! [`names`] maps single tensor names.
//!
//! # Example: a Q8_0 GGUF back to a Hugging Face folder
//!
//! ```
//! use std::path::Path;
//! use ckpt_export::{gguf_to_hf, ExportOptions};
//!
//! let fixtures = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/gguf"));
//! let tmp = tempfile::tempdir().unwrap();
//! let out = tmp.path().join("tiny-llama-hf");
//!
//! let gguf = fixtures.join("tiny-llama-spm.q8_0.gguf");
//! let report = gguf_to_hf(&gguf, &out, &ExportOptions::default())?;
//! assert_eq!(report.hf_architecture.as_deref(), Some("LlamaForCausalLM"));
//! for w in &report.warnings {
//!     eprintln!("warning: {w}");
//! }
//!
//! // The tensors come back under the names of the checkpoint the GGUF was converted from
//! // (Q8_0 dequantized to F32).
//! let names = |p: &Path| -> ckpt_core::Result<Vec<String>> {
//!     let mut n: Vec<String> = ckpt_safetensors::read(p)?.tensors.into_iter().map(|t| t.name).collect();
//!     n.sort();
//!     Ok(n)
//! };
//! let original = names(&fixtures.join("tiny-llama-spm/model.safetensors"))?;
//! assert_eq!(names(&out.join("model.safetensors"))?, original);
//! assert!(out.join("config.json").is_file() && out.join("tokenizer.model").is_file());
//! # Ok::<(), ckpt_core::Error>(())
//! ```
//!
//! What cannot come back: rows Gemma 3's converter cut from the embeddings, and precision lost
//! to quantization or to Gemma's `+1` done in f16. Llama 3 rope scaling comes back as parameters
//! that generate the GGUF's `rope_freqs` bit for bit (the band bounds themselves are not
//! recorded, so they may differ from the original config's).

#![warn(missing_docs)]

mod config;
pub mod names;
mod tokenizer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_convert::convert::{write_output, Companion, ConvertOptions, Layout, Plan};
pub use ckpt_convert::Target;
use ckpt_core::codec::{self, Nan};
use ckpt_core::progress::SharedProgress;
use ckpt_core::{DType, Error, GgmlType, Result, Tensor};
use ckpt_model::arch::family::Join;
use ckpt_model::arch::{TensorAction, TensorRef, Transform};
use ckpt_model::hparams::Hparams;
use rayon::prelude::*;
use serde_json::{json, Map, Value};

use config::{ConfigInputs, Kvs};
use names::ExportArch;

/// huggingface_hub / transformers' default shard size.
pub(crate) const DEFAULT_MAX_SHARD_SIZE: u64 = 5_000_000_000;

/// Options of [`gguf_to_hf`].
#[derive(Clone)]
pub struct ExportOptions {
    /// The weight format of the folder: safetensors (`model*.safetensors`, the default) or
    /// PyTorch `.bin` (`pytorch_model*.bin`).
    pub target: Target,
    /// F32, F16 or BF16 for every tensor. None: the stored type for F32/F16/BF16 tensors, BF16
    /// for MXFP4 ones (it holds every MXFP4 value exactly), F32 for other quantized ones.
    pub dtype: Option<DType>,
    /// Refuse architectures without a Hugging Face mapping instead of exporting GGUF names.
    pub strict: bool,
    /// Replace an existing output.
    pub overwrite: bool,
    /// Bytes per weight shard (default 5 GB).
    pub max_shard_size: Option<u64>,
    /// Re-read every written weight file and check each tensor against what was computed
    /// (default on), as every other ckpt output is.
    pub verify: bool,
    /// Progress of writing (bytes) and verifying.
    pub progress: Option<SharedProgress>,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            target: Target::Safetensors,
            dtype: None,
            strict: false,
            overwrite: false,
            max_shard_size: None,
            verify: true,
            progress: None,
        }
    }
}

impl std::fmt::Debug for ExportOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportOptions")
            .field("target", &self.target)
            .field("dtype", &self.dtype)
            .field("strict", &self.strict)
            .field("overwrite", &self.overwrite)
            .field("max_shard_size", &self.max_shard_size)
            .field("verify", &self.verify)
            .field("progress", &self.progress.is_some())
            .finish()
    }
}

/// The type a GGUF tensor is exported as when [`ExportOptions::dtype`] is not given: F32, F16
/// and BF16 as stored; MXFP4 as BF16, which holds every MXFP4 value exactly (a 4-bit E2M1
/// value times a power of two) and is what transformers gives when it dequantizes an MXFP4
/// checkpoint (GPT-OSS as released); any other quantized type as F32.
pub(crate) fn default_out_type(t: &Tensor) -> DType {
    match t.dtype {
        DType::F32 | DType::F16 | DType::BF16 => t.dtype,
        _ if t.dtype.to_ggml() == Some(GgmlType::MXFP4) => DType::BF16,
        _ => DType::F32,
    }
}

/// What [`gguf_to_hf`] wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The GGUF's `general.architecture`.
    pub gguf_architecture: String,
    /// The transformers class written to config.json; None when the architecture has no mapping.
    pub hf_architecture: Option<String>,
    /// Hugging Face tensors written, those of sentence-transformers module folders included
    /// (stacked experts count one per expert, tensors joined back together once).
    pub tensor_count: usize,
    /// Files written, relative to the output folder.
    pub files: Vec<String>,
    /// Bytes of tensor data written (in the output dtypes).
    pub total_tensor_bytes: u64,
    /// GGUF tensors not exported (rope factors the converter computed from the config).
    pub dropped: Vec<String>,
    /// What the user should know: values that could not come back, names kept as in the GGUF.
    pub warnings: Vec<String>,
    /// Whether every weight file was re-read and checked ([`ExportOptions::verify`]).
    pub verified: bool,
}

impl ExportReport {
    /// The report as the JSON object of `ckpt convert --json` (one key per field).
    pub fn to_json(&self) -> Value {
        json!({
            "gguf_architecture": self.gguf_architecture,
            "hf_architecture": self.hf_architecture,
            "tensor_count": self.tensor_count,
            "files": self.files,
            "total_tensor_bytes": self.total_tensor_bytes,
            "dropped": self.dropped,
            "warnings": self.warnings,
            "verified": self.verified,
        })
    }
}

/// Architectures (`general.architecture`) exported with Hugging Face names and a config.
pub(crate) fn supported_architectures() -> Vec<&'static str> {
    names::supported()
}

/// One output tensor: where it comes from and how to turn it back into the HF layout.
struct Planned {
    hf_name: String,
    source: Tensor,
    /// The other parts of a tensor the converter split (`source` is the first), and how they
    /// go back together.
    join: Option<(Vec<Tensor>, &'static Join)>,
    /// Forward transforms of the converter, undone in reverse order.
    transforms: Vec<Transform>,
    hf_shape: Vec<u64>,
    out: DType,
}

/// The description a GGUF exports through (see [`names::find_for`]): None when no architecture
/// converts to it, an error saying why when the export of its architecture is refused.
fn export_arch(
    gguf_label: &str,
    kv: &Kvs,
    arch_name: &str,
    tensors: &[Tensor],
) -> Result<Option<ExportArch>> {
    let hints = names::Hints {
        has_experts: tensors.iter().any(|t| t.name.ends_with("_exps.weight")),
        has_expert_bias: tensors.iter().any(|t| t.name.contains(".exp_probs_b.")),
        tokenizer_model: kv.str("tokenizer.ggml.model"),
    };
    match names::find_for(arch_name, hints) {
        None => Ok(None),
        Some(Ok(a)) => Ok(Some(a)),
        Some(Err(why)) => Err(Error::Unsupported(format!(
            "{gguf_label}: a GGUF of architecture {arch_name} cannot be exported to a Hugging Face folder: {why} (exported: {})",
            supported_architectures().join(", ")
        ))),
    }
}

/// The Hugging Face `config.json` rebuilt from `gguf`'s keys (what [`gguf_to_hf`] writes), for
/// tools that need only the model's hyper-parameters (converting a LoRA adapter for it).
pub fn hf_config(gguf: &Path) -> Result<Map<String, Value>> {
    let split = ckpt_gguf::open_split(gguf)?;
    let kv = Kvs(&split);
    let arch_name = kv
        .str("general.architecture")
        .ok_or_else(|| Error::invalid(gguf, "no general.architecture key"))?
        .to_string();
    let tensors = split.tensors();
    let arch =
        export_arch(&gguf.display().to_string(), &kv, &arch_name, &tensors)?.ok_or_else(|| {
            Error::Unsupported(format!(
                "{}: architecture {arch_name} has no Hugging Face mapping (supported: {})",
                gguf.display(),
                supported_architectures().join(", ")
            ))
        })?;
    let out_type = default_out_type;
    let mut warnings = Vec::new();
    Ok(config_of(
        gguf,
        &kv,
        &arch,
        &arch_name,
        &tensors,
        &out_type,
        &mut warnings,
    )?
    .1)
}

/// The vocabulary and `config.json` of a GGUF whose architecture has a Hugging Face mapping.
#[allow(clippy::too_many_arguments)]
fn config_of(
    gguf: &Path,
    kv: &Kvs,
    arch: &ExportArch,
    arch_name: &str,
    tensors: &[Tensor],
    out_type: &dyn Fn(&Tensor) -> DType,
    warnings: &mut Vec<String>,
) -> Result<(Option<tokenizer::Vocab>, Map<String, Value>)> {
    let gguf_label = gguf.display().to_string();
    check_block_count(kv, arch_name, tensors, &gguf_label)?;
    let vocab = tokenizer::Vocab::read(kv, &gguf_label)?;
    let tied = !tensors.iter().any(|t| t.name == "output.weight");
    let vocab_size = kv
        .u64(&format!("{arch_name}.vocab_size"))
        .or(vocab.as_ref().map(|v| v.tokens.len() as u64))
        .or_else(|| {
            tensors
                .iter()
                .find(|t| t.name == "token_embd.weight")
                .and_then(|t| t.shape.first().copied())
        })
        .ok_or_else(|| {
            Error::invalid(
                gguf,
                "cannot tell the vocabulary size (no vocab_size key, tokens or token_embd.weight)",
            )
        })?;
    let first_matrix = tensors
        .iter()
        .find(|t| t.name == "token_embd.weight")
        .or_else(|| tensors.iter().find(|t| t.shape.len() == 2));
    let torch_dtype = match first_matrix.map(out_type) {
        Some(DType::F16) => "float16",
        Some(DType::BF16) => "bfloat16",
        _ => "float32",
    };
    let longrope = match (
        tensors
            .iter()
            .find(|t| t.name == "rope_factors_long.weight"),
        tensors
            .iter()
            .find(|t| t.name == "rope_factors_short.weight"),
    ) {
        (Some(l), Some(s)) => Some((to_f32(l, &gguf_label)?, to_f32(s, &gguf_label)?)),
        _ => None,
    };
    let llama3_rope = match tensors.iter().find(|t| t.name == "rope_freqs.weight") {
        Some(t) => {
            let factors = to_f32(t, &gguf_label)?;
            let theta = kv.f32(&format!("{arch_name}.rope.freq_base"));
            let dim = kv.u64(&format!("{arch_name}.rope.dimension_count"));
            let params = theta.zip(dim).and_then(|(theta, dim)| {
                ckpt_model::arch::llama3_rope_parameters(&factors, theta, dim as u32)
            });
            if params.is_none() {
                warnings.push("rope_freqs.weight (Llama 3 rope scaling factors) matches no llama3 rope_scaling parameters; config.json has no rope_scaling".into());
            }
            params
        }
        None => None,
    };
    let mut config = config::build_config(
        kv,
        &ConfigInputs {
            arch,
            vocab_size,
            tied,
            torch_dtype,
            longrope,
            llama3_rope,
            tensors: tensors.iter().map(|t| t.name.clone()).collect(),
        },
        warnings,
    );
    if let Some(types) = tensors.iter().find(|t| t.name == "token_types.weight") {
        config.insert(
            "type_vocab_size".into(),
            json!(types.shape.first().copied().unwrap_or(1)),
        );
    }
    Ok((vocab, config))
}

/// The GGUF's block count, which sizes per-layer lists of the config (no-rope and layer-type
/// patterns) and the per-layer tensors rebuilt from KV arrays, must not exceed its tensor count:
/// every block has tensors, so a real file always passes, and a forged count cannot make the
/// export allocate without bound.
fn check_block_count(
    kv: &Kvs,
    arch_name: &str,
    tensors: &[Tensor],
    gguf_label: &str,
) -> Result<()> {
    let key = format!("{arch_name}.block_count");
    match kv.u64(&key) {
        Some(n) if n > tensors.len() as u64 => Err(Error::invalid(
            gguf_label,
            format!(
                "{key} is {n}, more than the file's {} tensors (every block has tensors)",
                tensors.len()
            ),
        )),
        _ => Ok(()),
    }
}

/// Exports the GGUF `gguf` (a single file or the first shard of a split set) as the Hugging
/// Face model folder `out_dir`: weights, `config.json`, `generation_config.json` and tokenizer
/// files. Fails when `opts.dtype` is not F32, F16 or BF16, a tensor's type cannot be
/// dequantized, the architecture's export is refused ([`names::refused`]) or has no mapping
/// with `opts.strict`, or the folder cannot be written (it exists without `opts.overwrite`).
pub fn gguf_to_hf(gguf: &Path, out_dir: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    if let Some(d) = opts.dtype {
        if !matches!(d, DType::F32 | DType::F16 | DType::BF16) {
            return Err(Error::Usage(format!(
                "export dtype must be f32, f16 or bf16, not {d}"
            )));
        }
    }
    let split = ckpt_gguf::open_split(gguf)?;
    let kv = Kvs(&split);
    let gguf_label = gguf.display().to_string();
    let arch_name = kv
        .str("general.architecture")
        .ok_or_else(|| Error::invalid(gguf, "no general.architecture key"))?
        .to_string();
    let mut warnings = Vec::new();
    let mut dropped = Vec::new();
    let tensors = split.tensors();

    // Every tensor's source type must be one ckpt can expand, before anything is written.
    for t in &tensors {
        if let Some(g) = t.dtype.to_ggml() {
            if !matches!(g, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
                && ckpt_quant::kernels(g).is_none()
            {
                return Err(Error::Unsupported(format!(
                    "{gguf_label}: tensor '{}' has ggml type {g}, which ckpt cannot dequantize",
                    t.name
                )));
            }
        } else {
            return Err(Error::Unsupported(format!(
                "{gguf_label}: tensor '{}' has type {}, which has no float form",
                t.name, t.dtype
            )));
        }
    }
    let out_type = |t: &Tensor| -> DType { opts.dtype.unwrap_or(default_out_type(t)) };

    // EmbeddingGemma's sentence-transformers Dense projections go back to their own folders.
    let (dense, tensors) = dense_modules(&kv, &arch_name, tensors, &gguf_label, &out_type)?;
    let Some(arch) = export_arch(&gguf_label, &kv, &arch_name, &tensors)? else {
        let msg = format!(
            "{gguf_label}: architecture {arch_name} has no Hugging Face mapping (supported: {})",
            supported_architectures().join(", ")
        );
        if opts.strict {
            return Err(Error::Unsupported(msg));
        }
        warnings.push(format!(
            "{msg}; tensors are exported under their GGUF names and no config.json is written"
        ));
        let planned = tensors
            .iter()
            .map(|t| Planned {
                hf_name: t.name.clone(),
                source: t.clone(),
                join: None,
                transforms: Vec::new(),
                hf_shape: t.shape.clone(),
                out: out_type(t),
            })
            .collect();
        return write_folder(
            out_dir,
            opts,
            planned,
            Vec::new(),
            Vec::new(),
            ReportBase {
                gguf_architecture: arch_name,
                hf_architecture: None,
                dropped,
                warnings,
            },
        );
    };

    let (vocab, config) = config_of(
        gguf,
        &kv,
        &arch,
        &arch_name,
        &tensors,
        &out_type,
        &mut warnings,
    )?;

    let mut planned = plan_tensors(
        &arch,
        &kv,
        &config,
        &tensors,
        &gguf_label,
        out_type,
        &mut dropped,
    )?;
    let mut config = config;
    // (A family quirk may have named another class of the description: OLMo 3, Granite MoE
    // with a shared expert.)
    let mut hf_class = arch
        .forward
        .hf_names()
        .iter()
        .copied()
        .find(|c| config["architectures"][0] == *c)
        .unwrap_or(arch.hf_class);
    let pooling = kv.u64(&format!("{arch_name}.pooling_type"));
    let mut extra_files: Vec<(String, Vec<u8>)> = Vec::new();
    if let Some(p) = pooling {
        // An embedding model: the bare class the converter also takes (Qwen3Model: the decoder
        // without "model."), and the sentence-transformers pooling it recorded.
        if let Some(bare) = arch
            .forward
            .hf_names()
            .iter()
            .copied()
            .find(|c| c.ends_with("Model"))
        {
            hf_class = bare;
            config.insert("architectures".into(), json!([bare]));
            for t in &mut planned {
                if let Some(rest) = t.hf_name.strip_prefix("model.") {
                    t.hf_name = rest.to_string();
                }
            }
        }
        let folders: Vec<&str> = dense.iter().map(|m| m.folder).collect();
        extra_files.extend(pooling_files(
            p,
            config.get("hidden_size").or(config.get("n_embd")),
            &folders,
        ));
    }
    if !dense.is_empty() && !extra_files.iter().any(|(f, _)| f == "modules.json") {
        // llama.cpp applies the projections to the pooled embedding: without a pooling
        // sentence-transformers knows there is no pipeline to put them in.
        return Err(Error::Unsupported(format!(
            "{gguf_label}: the GGUF holds the sentence-transformers Dense projection '{}' but no {arch_name}.pooling_type of mean, cls or last-token pooling, so it cannot be exported as a sentence-transformers module",
            dense[0].tensor.source.name
        )));
    }
    let mut modules = Vec::new();
    for m in dense {
        extra_files.push((format!("{}/config.json", m.folder), pretty(&m.config)));
        modules.push((m.folder.to_string(), vec![m.tensor]));
    }
    extra_files.insert(
        0,
        ("config.json".into(), pretty(&Value::Object(config.clone()))),
    );
    if let Some(g) = config::build_generation_config(&kv) {
        extra_files.push(("generation_config.json".into(), pretty(&Value::Object(g))));
    }
    match &vocab {
        Some(v) if v.model == "llama" => {
            extra_files.push((
                "tokenizer.model".into(),
                tokenizer::sentencepiece_model(v, &kv),
            ));
            extra_files.push((
                "tokenizer.json".into(),
                pretty(&tokenizer::spm_tokenizer_json(v, &kv)),
            ));
        }
        Some(v) if v.model == "gpt2" => {
            let mut tj = tokenizer::bpe_tokenizer_json(v, &kv, &gguf_label, &mut warnings)?;
            if arch_name == "modern-bert" {
                tj["post_processor"] = tokenizer::cls_sep_processing(v, &kv);
            }
            extra_files.push(("tokenizer.json".into(), pretty(&tj)));
        }
        Some(v) if v.model == "bert" => {
            extra_files.push((
                "tokenizer.json".into(),
                pretty(&tokenizer::wordpiece_tokenizer_json(v, &kv, &gguf_label)?),
            ));
        }
        Some(v) => warnings.push(format!(
            "tokenizer model {:?} is not exported; only tokenizer_config.json is written",
            v.model
        )),
        None => warnings
            .push("the GGUF has no tokenizer metadata; no tokenizer files are written".into()),
    }
    if let Some(v) = &vocab {
        let ctx = kv.u64(&format!("{arch_name}.context_length"));
        let mut tc = tokenizer::tokenizer_config(v, &kv, ctx);
        if arch_name == "modern-bert" {
            // ModernBERT's [CLS] is the BOS the converter recorded.
            if let Some(bos) = tc.get("bos_token").cloned() {
                tc["cls_token"] = bos;
            }
        }
        extra_files.push(("tokenizer_config.json".into(), pretty(&tc)));
    }
    write_folder(
        out_dir,
        opts,
        planned,
        modules,
        extra_files,
        ReportBase {
            gguf_architecture: arch_name,
            hf_architecture: Some(hf_class.to_string()),
            dropped,
            warnings,
        },
    )
}

/// The GGUF's tensors as a Hugging Face checkpoint would hold them — HF names, dequantized to f32,
/// Q/K permutation and other converter steps undone — lazily, without writing anything (what
/// `ckpt diff` compares against a Hugging Face model). Generated tensors (rope factors) are left out.
/// Weights of sentence-transformers modules (EmbeddingGemma's Dense projections) are named by
/// their module folder, as in the exported folder: `2_Dense/linear.weight`.
pub fn hf_view(gguf: &Path) -> Result<ckpt_core::Checkpoint> {
    let split = ckpt_gguf::open_split(gguf)?;
    let kv = Kvs(&split);
    let gguf_label = gguf.display().to_string();
    let arch_name = kv
        .str("general.architecture")
        .ok_or_else(|| Error::invalid(gguf, "no general.architecture key"))?
        .to_string();
    let (dense, tensors) = dense_modules(&kv, &arch_name, split.tensors(), &gguf_label, &|_| {
        DType::F32
    })?;
    let arch = export_arch(&gguf_label, &kv, &arch_name, &tensors)?.ok_or_else(|| {
        Error::Unsupported(format!(
            "{gguf_label}: architecture {arch_name} has no Hugging Face mapping"
        ))
    })?;
    let tied = !tensors.iter().any(|t| t.name == "output.weight");
    let vocab_size = kv
        .u64(&format!("{arch_name}.vocab_size"))
        .or_else(|| {
            tensors
                .iter()
                .find(|t| t.name == "token_embd.weight")
                .and_then(|t| t.shape.first().copied())
        })
        .unwrap_or(0);
    check_block_count(&kv, &arch_name, &tensors, &gguf_label)?;
    let mut warnings = Vec::new();
    let config = config::build_config(
        &kv,
        &ConfigInputs {
            arch: &arch,
            vocab_size,
            tied,
            torch_dtype: "float32",
            longrope: None,
            llama3_rope: None,
            tensors: tensors.iter().map(|t| t.name.clone()).collect(),
        },
        &mut warnings,
    );
    let mut dropped = Vec::new();
    let planned = plan_tensors(
        &arch,
        &kv,
        &config,
        &tensors,
        &gguf_label,
        |_| DType::F32,
        &mut dropped,
    )?;
    let mut ck = ckpt_core::Checkpoint::new(ckpt_core::Format::Gguf, split.paths());
    ck.tensors = planned
        .into_iter()
        .map(|p| lazy_tensor(p, &gguf_label))
        .collect();
    for m in dense {
        let mut p = m.tensor;
        p.hf_name = format!("{}/{}", m.folder, p.hf_name);
        ck.tensors.push(lazy_tensor(p, &gguf_label));
    }
    Ok(ck)
}

/// sentence-transformers' `modules.json` and `1_Pooling/config.json` for the GGUF's
/// `pooling_type` (the inverse of what the converter reads, see
/// [`ckpt_model::arch::qwen::POOLING_MODES`]), with the Pooling flags sentence-transformers
/// writes. `dense` are the Dense module folders that follow the pooling (EmbeddingGemma's, see
/// [`dense_modules`]); last comes a Normalize module, as in the released EmbeddingGemma,
/// Qwen3-Embedding and BGE models: llama.cpp's embedding tools normalize by default, and the GGUF
/// does not record whether the original did.
fn pooling_files(
    pooling_type: u64,
    hidden: Option<&Value>,
    dense: &[&str],
) -> Vec<(String, Vec<u8>)> {
    let modes = ckpt_model::arch::qwen::POOLING_MODES;
    if !modes.iter().any(|m| u64::from(m.0) == pooling_type) {
        return Vec::new();
    }
    let mut list: Vec<(String, &str)> = vec![
        (String::new(), "Transformer"),
        ("1_Pooling".into(), "Pooling"),
    ];
    list.extend(dense.iter().map(|f| (f.to_string(), "Dense")));
    list.push((format!("{}_Normalize", list.len()), "Normalize"));
    let modules: Vec<Value> = list
        .iter()
        .enumerate()
        .map(|(idx, (path, ty))| {
            json!({"idx": idx, "name": idx.to_string(), "path": path,
                   "type": format!("sentence_transformers.models.{ty}")})
        })
        .collect();
    let mut cfg = Map::new();
    cfg.insert(
        "word_embedding_dimension".into(),
        hidden.cloned().unwrap_or(Value::Null),
    );
    for (id, flag, _) in modes {
        cfg.insert((*flag).into(), json!(u64::from(*id) == pooling_type));
    }
    for flag in [
        "pooling_mode_max_tokens",
        "pooling_mode_mean_sqrt_len_tokens",
        "pooling_mode_weightedmean_tokens",
    ] {
        cfg.insert(flag.into(), json!(false));
    }
    // (llama.cpp pools over every token, the prompt's too.)
    cfg.insert("include_prompt".into(), json!(true));
    vec![
        ("modules.json".into(), pretty(&Value::Array(modules))),
        ("1_Pooling/config.json".into(), pretty(&Value::Object(cfg))),
    ]
}

/// A sentence-transformers Dense module rebuilt from the GGUF.
struct DenseModule {
    /// Its folder (`2_Dense`, `3_Dense`).
    folder: &'static str,
    /// `linear.weight`, in the folder's `model.safetensors`.
    tensor: Planned,
    /// The folder's `config.json`.
    config: Value,
}

/// EmbeddingGemma's Dense projections (`dense_2.weight`, `dense_3.weight`, written by
/// `convert_hf_to_gguf.py --sentence-transformers-dense-modules`; see
/// [`ckpt_model::arch::gemma::DENSE_MODULES`]) as sentence-transformers Dense modules, in
/// pipeline order, and the GGUF's other tensors. The converter keeps only the weights and llama.cpp
/// applies no activation, so each module is a bias-free linear map with sentence-transformers'
/// Identity activation, as EmbeddingGemma's are; the feature counts are the weight's shape,
/// which must agree with the `dense_N_feat_in`/`_feat_out` keys when the GGUF has them.
fn dense_modules(
    kv: &Kvs,
    arch_name: &str,
    tensors: Vec<Tensor>,
    gguf_label: &str,
    out_type: &dyn Fn(&Tensor) -> DType,
) -> Result<(Vec<DenseModule>, Vec<Tensor>)> {
    use ckpt_model::arch::gemma::{
        dense_feature_keys, EmbeddingGemma, DENSE_LINEAR, DENSE_MODULES,
    };
    use ckpt_model::arch::Architecture;
    if arch_name != EmbeddingGemma.gguf_arch() {
        return Ok((Vec::new(), tensors));
    }
    let mut found: Vec<Option<Tensor>> = vec![None; DENSE_MODULES.len()];
    let mut rest = Vec::with_capacity(tensors.len());
    for t in tensors {
        let slot = DENSE_MODULES
            .iter()
            .position(|(_, prefix)| t.name == format!("{prefix}.weight"));
        match slot {
            Some(i) => found[i] = Some(t),
            None => rest.push(t),
        }
    }
    let mut modules = Vec::new();
    for ((folder, prefix), t) in DENSE_MODULES.iter().zip(found) {
        let Some(t) = t else { continue };
        let &[out_features, in_features] = t.shape.as_slice() else {
            return Err(Error::invalid(
                gguf_label,
                format!(
                    "tensor '{}' has shape {:?}, expected a matrix [out_features, in_features]",
                    t.name, t.shape
                ),
            ));
        };
        let (key_in, key_out) = dense_feature_keys(prefix);
        for (key, want) in [(&key_in, in_features), (&key_out, out_features)] {
            match kv.u64(key) {
                Some(v) if v != want => {
                    return Err(Error::invalid(
                        gguf_label,
                        format!(
                            "{key} is {v}, but tensor '{}' of shape {:?} maps {in_features} features to {out_features}",
                            t.name, t.shape
                        ),
                    ))
                }
                _ => {}
            }
        }
        let config = json!({
            "in_features": in_features,
            "out_features": out_features,
            "bias": false,
            "activation_function": "torch.nn.modules.linear.Identity",
        });
        modules.push(DenseModule {
            folder,
            config,
            tensor: Planned {
                hf_name: format!("{DENSE_LINEAR}.weight"),
                out: out_type(&t),
                hf_shape: t.shape.clone(),
                source: t,
                join: None,
                transforms: Vec::new(),
            },
        });
    }
    Ok((modules, rest))
}

fn pretty(v: &Value) -> Vec<u8> {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s.into_bytes()
}

/// Names, shapes and undo-steps for every GGUF tensor, checked against ckpt-model's forward
/// mapping (which must send the HF name back to the same GGUF name). Stacked experts are cut
/// back into one tensor per expert, split tensors joined (see [`ckpt_model::arch::family::Join`]).
fn plan_tensors(
    arch: &ExportArch,
    kv: &Kvs,
    config: &Map<String, Value>,
    tensors: &[Tensor],
    gguf_label: &str,
    out_type: impl Fn(&Tensor) -> DType,
    dropped: &mut Vec<String>,
) -> Result<Vec<Planned>> {
    let forward = arch.forward;
    let mut hp = Hparams {
        path: PathBuf::from(format!("{gguf_label} (rebuilt config.json)")),
        map: config.clone(),
        sentence_transformers_dense_modules: false,
    };
    forward.config_defaults(&mut hp);
    // As the converter counts blocks (GLM-4.5's include the NextN layers, see its `config` hook).
    let block_count = hp.require_u32(&["n_layers", "num_hidden_layers", "n_layer"])?;
    let mut planned = Vec::new();
    // (join, block) -> the parts seen so far
    let mut pending: BTreeMap<(usize, u32), Vec<Option<Tensor>>> = BTreeMap::new();
    'tensors: for t in tensors {
        if names::is_generated(&t.name) {
            dropped.push(t.name.clone());
            continue;
        }
        let gguf_bid: Option<u32> = t
            .name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next())
            .and_then(|b| b.parse().ok());
        if let (Some(spec), Some(b)) = (forward.experts(), gguf_bid) {
            for w in spec.weights {
                let merged = spec
                    .merged
                    .replace("{bid}", &b.to_string())
                    .replace("{w}", w);
                if forward.map_name(&merged, Some(b), block_count).as_deref() == Some(&t.name) {
                    planned.extend(unstack(
                        forward,
                        spec,
                        &merged,
                        w,
                        b,
                        t,
                        &hp,
                        block_count,
                        gguf_label,
                        out_type(t),
                    )?);
                    continue 'tensors;
                }
            }
        }
        let hf = names::hf_name(arch, &t.name).ok_or_else(|| {
            Error::Unsupported(format!("{gguf_label}: tensor '{}' has no Hugging Face name for architecture {} (refusing to drop it)", t.name, arch.gguf))
        })?;
        if let Some(b) = gguf_bid {
            for (ji, j) in forward.joins().iter().enumerate() {
                let Some(pi) = j
                    .parts
                    .iter()
                    .position(|p| p.replace("{bid}", &b.to_string()) == hf)
                else {
                    continue;
                };
                let parts = pending
                    .entry((ji, b))
                    .or_insert_with(|| vec![None; j.parts.len()]);
                parts[pi] = Some(t.clone());
                if parts.iter().all(Option::is_some) {
                    let parts: Vec<Tensor> = pending
                        .remove(&(ji, b))
                        .unwrap_or_default()
                        .into_iter()
                        .flatten()
                        .collect();
                    let shapes: Vec<&[u64]> = parts.iter().map(|p| p.shape.as_slice()).collect();
                    let hf_shape = (j.shape)(&shapes).map_err(|e| {
                        Error::invalid(gguf_label, format!("tensor '{}': {e}", t.name))
                    })?;
                    let mut parts = parts.into_iter();
                    let first = parts.next().expect("a join has parts");
                    planned.push(Planned {
                        hf_name: j.fused.replace("{bid}", &b.to_string()),
                        out: out_type(&first),
                        source: first,
                        join: Some((parts.collect(), j)),
                        transforms: Vec::new(),
                        hf_shape,
                    });
                }
                continue 'tensors;
            }
        }
        let bid = hf
            .split('.')
            .find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse().ok());
        // The name the converter maps (after its own renames).
        let (original, mapped) = ckpt_model::EXPERT_BIAS_RENAME;
        let converter_name = hf.replace(original, mapped);
        let tref = TensorRef {
            name: &converter_name,
            bid,
            dtype: out_type(t),
            model_dir: Path::new(""),
        };
        let transforms = match forward.tensor(&tref, &hp, block_count)? {
            TensorAction::Keep { name, transforms } if name == t.name => transforms,
            TensorAction::Keep { name, .. } => {
                return Err(Error::Other(format!(
                    "{gguf_label}: tensor '{}' maps to {hf}, which ckpt-model converts to {name}",
                    t.name
                )))
            }
            TensorAction::Drop => {
                return Err(Error::Other(format!(
                    "{gguf_label}: tensor '{}' maps to {hf}, which ckpt-model drops",
                    t.name
                )))
            }
        };
        let mut hf_shape = t.shape.clone();
        for tr in transforms.iter().rev() {
            if let Transform::SqueezeDim1 = tr {
                // The data is the same; the checkpoint's shape had a dimension 1 of size 1.
                hf_shape.insert(1.min(hf_shape.len()), 1);
            }
            if let Transform::Transpose = tr {
                if hf_shape.len() != 2 {
                    return Err(Error::invalid(
                        gguf_label,
                        format!("tensor '{}' of shape {:?} should be 2-D", t.name, t.shape),
                    ));
                }
                hf_shape.swap(0, 1);
            }
            if let Transform::PermuteRows { heads } = tr {
                let rows = t.shape.first().copied().unwrap_or(1);
                if *heads == 0 || rows % (heads * 2) != 0 {
                    return Err(Error::invalid(gguf_label, format!("tensor '{}': {rows} rows cannot be split into {heads} heads of two rotary halves", t.name)));
                }
            }
        }
        planned.push(Planned {
            hf_name: hf,
            source: t.clone(),
            join: None,
            transforms,
            hf_shape,
            out: out_type(t),
        });
    }
    if let Some(((ji, b), parts)) = pending.into_iter().next() {
        let j = &forward.joins()[ji];
        let have = parts
            .iter()
            .flatten()
            .map(|t| t.name.clone())
            .collect::<Vec<_>>()
            .join(", ");
        let missing = j
            .parts
            .iter()
            .zip(&parts)
            .find(|(_, p)| p.is_none())
            .map(|(n, _)| n.replace("{bid}", &b.to_string()))
            .unwrap_or_default();
        return Err(Error::invalid(
            gguf_label,
            format!(
                "{have} has no partner: the GGUF tensor for {missing} (needed to rebuild {}) is missing",
                j.fused.replace("{bid}", &b.to_string())
            ),
        ));
    }
    planned.extend(kv_tensors(forward, kv, block_count, gguf_label, &out_type)?);
    Ok(planned)
}

/// The per-layer scalars the converter wrote as KV arrays ([`Architecture::kv_tensors`]), back
/// as the checkpoint's tensors. llama.cpp also takes a single value for every layer.
///
/// [`Architecture::kv_tensors`]: ckpt_model::arch::Architecture::kv_tensors
fn kv_tensors(
    forward: &dyn ckpt_model::arch::Architecture,
    kv: &Kvs,
    block_count: u32,
    gguf_label: &str,
    out_type: &impl Fn(&Tensor) -> DType,
) -> Result<Vec<Planned>> {
    let mut planned = Vec::new();
    for spec in forward.kv_tensors() {
        let values = match kv.get(spec.key) {
            Some(ckpt_gguf::GgufValue::Array(a)) => a.as_f32s(),
            Some(ckpt_gguf::GgufValue::F32(x)) => Some(vec![*x; block_count as usize]),
            Some(_) => None,
            None => {
                return Err(Error::invalid(
                    gguf_label,
                    format!("no {} key (one value per layer)", spec.key),
                ))
            }
        };
        let values = values
            .filter(|v| v.len() == block_count as usize)
            .ok_or_else(|| {
                Error::invalid(
                    gguf_label,
                    format!(
                        "{} should be a float or an array of {block_count} floats (one per layer)",
                        spec.key
                    ),
                )
            })?;
        for (bid, x) in values.into_iter().enumerate() {
            let name = spec.hf.replace("{bid}", &bid.to_string());
            let source =
                Tensor::computed(name.clone(), DType::F32, spec.shape.to_vec(), move || {
                    Ok(x.to_le_bytes().to_vec())
                });
            planned.push(Planned {
                hf_name: name,
                out: out_type(&source),
                source,
                join: None,
                transforms: Vec::new(),
                hf_shape: spec.shape.to_vec(),
            });
        }
    }
    Ok(planned)
}

/// One stacked expert tensor `t` ([experts, rows, cols], GGUF name of `merged`) back into one
/// Hugging Face tensor per expert, each a view of its slice of the file.
#[allow(clippy::too_many_arguments)]
fn unstack(
    forward: &dyn ckpt_model::arch::Architecture,
    spec: &ckpt_model::arch::family::Experts,
    merged: &str,
    weight: &str,
    bid: u32,
    t: &Tensor,
    hp: &Hparams,
    block_count: u32,
    gguf_label: &str,
    out: DType,
) -> Result<Vec<Planned>> {
    let tref = TensorRef {
        name: merged,
        bid: Some(bid),
        dtype: out,
        model_dir: Path::new(""),
    };
    match forward.tensor(&tref, hp, block_count)? {
        TensorAction::Keep { name, transforms } if name == t.name && transforms.is_empty() => {}
        TensorAction::Keep { name, transforms } => {
            return Err(Error::Other(format!(
                "{gguf_label}: stacked experts '{}' come from {merged}, which ckpt-model converts to {name} with {transforms:?} (cannot unstack)",
                t.name
            )))
        }
        TensorAction::Drop => {
            return Err(Error::Other(format!(
                "{gguf_label}: stacked experts '{}' come from {merged}, which ckpt-model drops",
                t.name
            )))
        }
    }
    let &[n, rows, cols] = t.shape.as_slice() else {
        return Err(Error::invalid(
            gguf_label,
            format!(
                "tensor '{}' has shape {:?}, expected [experts, rows, columns]",
                t.name, t.shape
            ),
        ));
    };
    if let Some(count) = spec
        .count
        .iter()
        .find_map(|k| hp.get(k).and_then(Value::as_u64))
    {
        if count != n {
            return Err(Error::invalid(
                gguf_label,
                format!(
                    "tensor '{}' stacks {n} experts, but the expert count is {count} (the expert count disagrees with the tensors)",
                    t.name
                ),
            ));
        }
    }
    let expert_shape = vec![rows, cols];
    let per_expert = t
        .dtype
        .nbytes(&expert_shape)
        .map_err(|e| Error::invalid(gguf_label, format!("tensor '{}': {e}", t.name)))?
        as usize;
    (0..n as usize)
        .map(|x| {
            let hf_name = spec
                .per_expert
                .replace("{bid}", &bid.to_string())
                .replace("{xid}", &x.to_string())
                .replace("{w}", weight);
            Ok(Planned {
                source: expert_slice(t, x, per_expert, expert_shape.clone(), gguf_label)?,
                hf_name,
                join: None,
                transforms: Vec::new(),
                hf_shape: expert_shape.clone(),
                out,
            })
        })
        .collect()
}

/// Expert `x` of a stacked tensor: a view of its bytes when the tensor is a dense view of the
/// file, else a copy of its slice.
fn expert_slice(
    t: &Tensor,
    x: usize,
    per_expert: usize,
    shape: Vec<u64>,
    gguf_label: &str,
) -> Result<Tensor> {
    let name = format!("{} (expert {x})", t.name);
    if let Some(v) = t.view() {
        if v.offset == 0 && v.strides.is_none() && !v.storage.big_endian {
            let st = &v.storage;
            if (x + 1) * per_expert > st.len {
                return Err(Error::invalid(
                    gguf_label,
                    format!(
                        "tensor '{}' has {} bytes, too few for expert {x} of {per_expert} bytes",
                        t.name, st.len
                    ),
                ));
            }
            let storage = ckpt_core::tensor::Storage::new(
                st.buffer.clone(),
                st.start + x * per_expert,
                per_expert,
                name.clone(),
            )?;
            return Ok(Tensor::contiguous(name, t.dtype, shape, storage));
        }
    }
    let whole = t.clone();
    Ok(Tensor::computed(name, t.dtype, shape, move || {
        let b = whole.bytes()?;
        Ok(b[x * per_expert..(x + 1) * per_expert].to_vec())
    }))
}

fn to_f32(t: &Tensor, gguf_label: &str) -> Result<Vec<f32>> {
    let bytes = t.bytes()?;
    let g = t.dtype.to_ggml().ok_or_else(|| {
        Error::Unsupported(format!(
            "{gguf_label}: tensor '{}' has no float form",
            t.name
        ))
    })?;
    let n = usize::try_from(t.numel()).map_err(|_| {
        Error::Unsupported(format!("{gguf_label}: tensor '{}' is too large", t.name))
    })?;
    decode(g, &bytes, n, gguf_label, &t.name)
}

/// Inverse of llama.cpp's `permute`: GGUF row `h*hd + 2i + j` goes back to HF row `h*hd + j*hd/2 + i`.
pub(crate) fn unpermute_rows(values: &[f32], rows: usize, heads: usize) -> Vec<f32> {
    let cols = values.len() / rows.max(1);
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0f32; values.len()];
    for h in 0..heads {
        for i in 0..half {
            for j in 0..2 {
                let src = h * head_dim + 2 * i + j;
                let dst = h * head_dim + j * half + i;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

fn transpose(values: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    out
}

/// The HF tensor's bytes in `out` (computed when the writer reaches it). Row-local undo steps
/// (rotary permutation, -1) read the mapped GGUF data a slab of rows at a time, so only the
/// output and one slab of f32 are in memory; a transpose needs the whole tensor.
fn materialize(p: &PlannedSource) -> Result<Vec<u8>> {
    if let Some((rest, join)) = &p.join {
        return materialize_joined(p, rest, join);
    }
    let src = &p.source;
    let g = src.dtype.to_ggml().ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: tensor '{}' has no float form",
            p.label, src.name
        ))
    })?;
    let outer = src.shape.first().copied().unwrap_or(1).max(1) as usize;
    let inner = (src.numel() as usize) / outer;
    let row_bytes = g.row_bytes(inner as u64).map(|b| b as usize);
    // (GLM-4's NeoX reordering is undone on the whole tensor too.)
    let has_transpose = p
        .transforms
        .iter()
        .any(|t| matches!(t, Transform::Transpose | Transform::NeoxRotary { .. }));
    let (false, Some(row_bytes)) = (has_transpose, row_bytes) else {
        return materialize_whole(p);
    };
    if inner == 0 {
        return Ok(Vec::new());
    }
    let heads = p.transforms.iter().find_map(|t| match t {
        Transform::PermuteRows { heads } => Some(*heads as usize),
        _ => None,
    });
    let minus_one = p
        .transforms
        .iter()
        .any(|t| matches!(t, Transform::AddOne { .. }));
    let bytes = src.bytes()?;
    if bytes.len() != outer * row_bytes {
        return Err(Error::invalid(
            &p.label,
            format!(
                "tensor '{}' has {} bytes, expected {}",
                src.name,
                bytes.len(),
                outer * row_bytes
            ),
        ));
    }
    // HF row `dst` comes from GGUF row `h*hd + 2i + j` where dst = h*hd + j*hd/2 + i.
    let source_row = |dst: usize| -> usize {
        match heads {
            Some(h) if h > 0 && outer.is_multiple_of(2 * h) => {
                let head_dim = outer / h;
                let half = head_dim / 2;
                let (head, k) = (dst / head_dim, dst % head_dim);
                head * head_dim + 2 * (k % half) + k / half
            }
            _ => dst,
        }
    };
    let elem = p.out.elem_size().unwrap_or(4);
    let slab_rows = if heads.is_some() {
        1
    } else {
        (65536 / inner).max(1)
    };
    let mut out = vec![0u8; outer * inner * elem];
    out.par_chunks_mut(slab_rows * inner * elem)
        .enumerate()
        .try_for_each(|(slab, dst)| -> Result<()> {
            let first = slab * slab_rows;
            let count = dst.len() / (inner * elem);
            let mut values = Vec::with_capacity(count * inner);
            for r in first..first + count {
                let s = source_row(r);
                values.extend(decode(
                    g,
                    &bytes[s * row_bytes..(s + 1) * row_bytes],
                    inner,
                    &p.label,
                    &src.name,
                )?);
            }
            if minus_one {
                values.iter_mut().for_each(|x| *x -= 1.0);
            }
            encode_into(&values, p.out, dst);
            Ok(())
        })?;
    Ok(out)
}

fn decode(g: GgmlType, bytes: &[u8], n: usize, label: &str, name: &str) -> Result<Vec<f32>> {
    let plain = match g {
        GgmlType::F32 => DType::F32,
        GgmlType::F16 => DType::F16,
        GgmlType::BF16 => DType::BF16,
        other => {
            return ckpt_quant::dequantize(other, bytes, n)
                .map_err(|e| Error::Other(format!("{label}: tensor '{name}': {e}")))
        }
    };
    let mut out = vec![0f32; bytes.len() / plain.elem_size().unwrap_or(4)];
    let _ = codec::decode(plain, bytes, &mut out, Nan::Quiet);
    Ok(out)
}

/// Writes `values` as `out` (F16 or BF16; anything else as F32).
fn encode_into(values: &[f32], out: DType, dst: &mut [u8]) {
    let to = match out {
        DType::F16 | DType::BF16 => out,
        _ => DType::F32,
    };
    let _ = codec::encode(to, values, dst, Nan::Quiet);
}

/// The whole tensor at once (transposes; tensors whose rows are not whole ggml blocks).
fn materialize_whole(p: &PlannedSource) -> Result<Vec<u8>> {
    let mut v = to_f32(&p.source, &p.label)?;
    let mut shape = p.source.shape.clone();
    for tr in p.transforms.iter().rev() {
        match tr {
            Transform::PermuteRows { heads } => {
                let rows = shape.first().copied().unwrap_or(1) as usize;
                v = unpermute_rows(&v, rows, *heads as usize);
            }
            Transform::AddOne { .. } => v.iter_mut().for_each(|x| *x -= 1.0),
            Transform::Transpose => {
                v = transpose(&v, shape[0] as usize, shape[1] as usize);
                shape.swap(0, 1);
            }
            // Rows the converter cut off (beyond the real vocabulary) are gone.
            Transform::TruncateRows { .. } => {}
            // The skipped position rows are gone; XLM-RoBERTa (the one user) is not exported.
            Transform::SkipRows { .. } => {}
            // Same data (the shape is restored by the plan).
            Transform::SqueezeDim1 => {
                shape.insert(1.min(shape.len()), 1);
            }
            Transform::NeoxRotary {
                head_dim,
                rotary_dim,
            } => {
                let rows = shape.first().copied().unwrap_or(1) as usize;
                let row_len = v.len() / rows.max(1);
                let map = ckpt_model::tensors::neox_rotary_index(
                    rows,
                    *head_dim as usize,
                    *rotary_dim as usize,
                );
                let mut back = vec![0f32; v.len()];
                for (new_row, old_row) in map.into_iter().enumerate() {
                    back[old_row * row_len..(old_row + 1) * row_len]
                        .copy_from_slice(&v[new_row * row_len..(new_row + 1) * row_len]);
                }
                v = back;
            }
            // Vision towers (the one user, an mmproj file) are not exported.
            Transform::TakeDim2 { .. } | Transform::ThirdOfRows { .. } => {}
        }
    }
    let mut out = vec![0u8; v.len() * p.out.elem_size().unwrap_or(4)];
    encode_into(&v, p.out, &mut out);
    Ok(out)
}

/// A tensor the converter split, put back together from its parts (each dequantized whole).
fn materialize_joined(p: &PlannedSource, rest: &[Tensor], join: &Join) -> Result<Vec<u8>> {
    let parts: Vec<&Tensor> = std::iter::once(&p.source).chain(rest).collect();
    let values = parts
        .iter()
        .map(|t| to_f32(t, &p.label))
        .collect::<Result<Vec<_>>>()?;
    let args: Vec<(&[f32], &[u64])> = values
        .iter()
        .zip(&parts)
        .map(|(v, t)| (v.as_slice(), t.shape.as_slice()))
        .collect();
    let v = (join.join)(&args).map_err(|e| join_error(&p.label, &parts, e))?;
    let mut out = vec![0u8; v.len() * p.out.elem_size().unwrap_or(4)];
    encode_into(&v, p.out, &mut out);
    Ok(out)
}

fn join_error(label: &str, parts: &[&Tensor], e: String) -> Error {
    Error::invalid(
        label,
        format!(
            "tensors {}: {e}",
            parts
                .iter()
                .map(|t| format!("'{}'", t.name))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// f32 values a band of a banded join holds at most (unless one index alone holds more).
const JOIN_BAND_VALUES: usize = 1 << 20;

/// The HF tensor of planned tensor `p`, computed when the writer reaches it. A banded join
/// ([`Join::banded`]: GPT-OSS's experts, DeepSeek's heads…) of mapped parts is produced by
/// bands of its parts' first dimension: the writer takes a piece of experts at a time, and
/// only that piece's f32 values are ever in memory, however large the stacked tensor (an
/// MXFP4 `gate_up_proj` of 128 experts). Everything else is computed whole.
fn lazy_tensor(p: Planned, label: &str) -> Tensor {
    let src = PlannedSource {
        source: p.source,
        join: p.join,
        transforms: p.transforms,
        out: p.out,
        label: label.to_string(),
    };
    let (name, shape) = (p.hf_name, p.hf_shape);
    let Some(band) = BandedJoin::new(&src, &shape) else {
        let src = Arc::new(src);
        return Tensor::computed(name, p.out, shape, move || materialize(&src));
    };
    let (units, row_bytes) = (band.units, band.row_bytes);
    let band = Arc::new(band);
    let src = Arc::new(src);
    Tensor::from_rows(name, p.out, shape, units, row_bytes, move |range, dst| {
        band.fill(&src, range, dst)
    })
}

/// How a banded join is cut: `units` indices of the parts' first dimension, each
/// `unit_bytes[i]` bytes of part i and `row_bytes` bytes of the output.
struct BandedJoin {
    units: usize,
    unit_bytes: Vec<usize>,
    row_bytes: usize,
}

impl BandedJoin {
    /// None when the join is not banded or a part is not a dense mapped view cut into whole
    /// rows along its first dimension (then the join is done whole).
    fn new(p: &PlannedSource, hf_shape: &[u64]) -> Option<BandedJoin> {
        let (rest, join) = p.join.as_ref()?;
        if !join.banded {
            return None;
        }
        let units = *p.source.shape.first()? as usize;
        let mut unit_bytes = Vec::new();
        for t in std::iter::once(&p.source).chain(rest) {
            let (_, _, len) = t.mapped_range()?;
            if t.shape.first().copied() != Some(units as u64) {
                return None;
            }
            let per = t.dtype.nbytes(&t.shape[1..]).ok()? as usize;
            if per * units != len {
                return None;
            }
            unit_bytes.push(per);
        }
        let total = p.out.nbytes(hf_shape).ok()? as usize;
        if units == 0 || !total.is_multiple_of(units) {
            return None;
        }
        Some(BandedJoin {
            units,
            unit_bytes,
            row_bytes: total / units,
        })
    }

    /// Output indices `range` into `dst`, in parallel bands of about [`JOIN_BAND_VALUES`].
    fn fill(&self, p: &PlannedSource, range: std::ops::Range<usize>, dst: &mut [u8]) -> Result<()> {
        let Some((rest, join)) = &p.join else {
            return Err(Error::Other(format!("{}: not a join", p.source.name)));
        };
        let parts: Vec<&Tensor> = std::iter::once(&p.source).chain(rest).collect();
        let elem = p.out.elem_size().unwrap_or(4);
        let per_unit = self.row_bytes / elem;
        let band = (JOIN_BAND_VALUES / per_unit.max(1)).max(1);
        dst.par_chunks_mut(band * self.row_bytes)
            .enumerate()
            .try_for_each(|(i, out)| -> Result<()> {
                let first = range.start + i * band;
                let count = out.len() / self.row_bytes;
                let mut values = Vec::with_capacity(parts.len());
                let mut shapes = Vec::with_capacity(parts.len());
                for (t, &per) in parts.iter().zip(&self.unit_bytes) {
                    let g = t.dtype.to_ggml().ok_or_else(|| {
                        Error::Unsupported(format!(
                            "{}: tensor '{}' has no float form",
                            p.label, t.name
                        ))
                    })?;
                    let (buf, start, _) = t.mapped_range().ok_or_else(|| {
                        Error::Other(format!("{}: tensor '{}' is not mapped", p.label, t.name))
                    })?;
                    let (from, len) = (start + first * per, count * per);
                    let n = t.shape[1..].iter().product::<u64>() as usize * count;
                    values.push(decode(g, &buf.bytes()[from..from + len], n, &p.label, &t.name)?);
                    // Read once: its mapped pages need not stay resident.
                    buf.release(from, len);
                    let mut shape = t.shape.clone();
                    shape[0] = count as u64;
                    shapes.push(shape);
                }
                let args: Vec<(&[f32], &[u64])> = values
                    .iter()
                    .zip(&shapes)
                    .map(|(v, s)| (v.as_slice(), s.as_slice()))
                    .collect();
                let v = (join.join)(&args).map_err(|e| join_error(&p.label, &parts, e))?;
                if v.len() != count * per_unit {
                    return Err(join_error(
                        &p.label,
                        &parts,
                        format!(
                            "indices {first}..{} of the first dimension: joined {} values, expected {}",
                            first + count,
                            v.len(),
                            count * per_unit
                        ),
                    ));
                }
                encode_into(&v, p.out, out);
                Ok(())
            })
    }
}

struct PlannedSource {
    source: Tensor,
    join: Option<(Vec<Tensor>, &'static Join)>,
    transforms: Vec<Transform>,
    out: DType,
    label: String,
}

struct ReportBase {
    gguf_architecture: String,
    hf_architecture: Option<String>,
    dropped: Vec<String>,
    warnings: Vec<String>,
}

/// Writes the model's tensors as (sharded) safetensors, each module folder's tensors as its
/// `model.safetensors` (sentence-transformers modules), and the other files.
fn write_folder(
    out_dir: &Path,
    opts: &ExportOptions,
    planned: Vec<Planned>,
    modules: Vec<(String, Vec<Planned>)>,
    extra_files: Vec<(String, Vec<u8>)>,
    base: ReportBase,
) -> Result<ExportReport> {
    let label = out_dir.display().to_string();
    let lazy_of = |planned: Vec<Planned>| -> Vec<Tensor> {
        planned
            .into_iter()
            .map(|p| lazy_tensor(p, &label))
            .collect()
    };
    let tensors = lazy_of(planned);
    let mut tensor_count = tensors.len();
    let mut total_tensor_bytes: u64 = tensors.iter().map(|t| t.nbytes()).sum();
    let mut metadata = BTreeMap::new();
    metadata.insert("format".to_string(), "pt".to_string());
    let plan = Plan {
        tensors,
        metadata,
        dropped: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let mut companions: Vec<Companion> = Vec::new();
    for (folder, planned) in modules {
        let tensors = lazy_of(planned);
        tensor_count += tensors.len();
        total_tensor_bytes += tensors.iter().map(Tensor::nbytes).sum::<u64>();
        companions.push(Companion::Weights(
            format!("{folder}/model.safetensors"),
            tensors,
        ));
    }
    companions.extend(
        extra_files
            .into_iter()
            .map(|(name, bytes)| Companion::Bytes(name, bytes)),
    );
    let write = ConvertOptions {
        max_shard_size: Some(opts.max_shard_size.unwrap_or(DEFAULT_MAX_SHARD_SIZE).max(1)),
        verify: opts.verify,
        overwrite: opts.overwrite,
        progress: opts.progress.clone(),
        ..Default::default()
    };
    let written = write_output(
        &Layout::Folder(out_dir.to_path_buf()),
        opts.target,
        &plan,
        &companions,
        &write,
    )?;
    let mut files: Vec<String> = written
        .files
        .iter()
        .map(|p| {
            p.strip_prefix(out_dir)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    files.extend(written.copied);
    Ok(ExportReport {
        gguf_architecture: base.gguf_architecture,
        hf_architecture: base.hf_architecture,
        tensor_count,
        files,
        total_tensor_bytes,
        dropped: base.dropped,
        warnings: base.warnings,
        verified: written.verified,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// llama.cpp's forward permutation, written from its definition.
    fn permute(values: &[f32], rows: usize, heads: usize) -> Vec<f32> {
        let cols = values.len() / rows;
        let hd = rows / heads;
        let mut out = vec![0f32; values.len()];
        for h in 0..heads {
            for i in 0..hd / 2 {
                for j in 0..2 {
                    let new_row = h * hd + 2 * i + j;
                    let old_row = h * hd + j * hd / 2 + i;
                    out[new_row * cols..(new_row + 1) * cols]
                        .copy_from_slice(&values[old_row * cols..(old_row + 1) * cols]);
                }
            }
        }
        out
    }

    #[test]
    fn unpermute_inverts_permute() {
        let values: Vec<f32> = (0..(16 * 3)).map(|x| x as f32).collect();
        for heads in [1, 2, 4] {
            let permuted = permute(&values, 16, heads);
            assert_ne!(permuted, values);
            assert_eq!(unpermute_rows(&permuted, 16, heads), values);
        }
    }

    #[test]
    fn transpose_swaps() {
        assert_eq!(
            transpose(&[1., 2., 3., 4., 5., 6.], 2, 3),
            vec![1., 4., 2., 5., 3., 6.]
        );
    }
}
