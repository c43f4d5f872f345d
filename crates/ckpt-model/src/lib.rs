//! Hugging Face model folders to GGUF, byte-identical to llama.cpp's `convert_hf_to_gguf.py`
//! (commit 0c1e57098): the same KV pairs in the same order, the same tensor names, order, types
//! and bytes.
//!
//! The caller loads the checkpoint (safetensors or torch) and passes it in with the model
//! folder, which provides config.json, the tokenizer files and — through its name — the
//! default `general.name`. Each supported architecture is one description in [`arch`]
//! ([`supported_architectures`] lists their class names).
//!
//! Entry points:
//! - [`convert_hf_to_gguf`]: a model folder to a GGUF file (or a split set) with
//!   [`HfToGgufOptions`]; [`plan_hf_to_gguf`] + [`write_with_progress`] are the same in two
//!   steps, for a caller that reads the planned tensors itself (one-step quantization).
//! - [`mmproj::plan_mmproj`]: the vision projector GGUF of a multimodal folder (`--mmproj`).
//! - [`lora::plan_lora_to_gguf`]: a PEFT adapter to a GGUF LoRA adapter
//!   (`convert_lora_to_gguf.py`).
//! - [`vocab::bpe`]: the BPE pre-tokenizer fingerprint (`tokenizer.ggml.pre`).
//!
//! # Example: a Llama folder to Q8_0, byte for byte the converter's output
//!
//! ```
//! # fn main() -> ckpt_core::Result<()> {
//! use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
//!
//! let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/gguf");
//! let model_dir = std::path::Path::new(fixtures).join("tiny-llama-spm");
//! let weights = ckpt_safetensors::read(&model_dir.join("model.safetensors"))?;
//! let tmp = tempfile::tempdir().unwrap();
//! let out = tmp.path().join("tiny-llama-spm.q8_0.gguf");
//!
//! let opts = HfToGgufOptions { outtype: OutType::Q8_0, ..Default::default() };
//! let report = convert_hf_to_gguf(&model_dir, &weights, &out, &opts)?;
//! assert_eq!(report.gguf_architecture, "llama");
//! assert_eq!(report.file_type, 7); // MOSTLY_Q8_0
//!
//! // convert_hf_to_gguf.py --outtype q8_0 wrote the reference file.
//! let reference = std::fs::read(format!("{fixtures}/tiny-llama-spm.q8_0.gguf")).unwrap();
//! assert!(std::fs::read(&out).unwrap() == reference);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod arch;
mod dequant;
pub mod hparams;
pub mod kv;
pub mod lora;
pub mod metadata;
pub mod mmproj;
mod model_card;
pub mod tensors;
pub mod vocab;

use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, DType, Error, GgmlType, Result, Tensor};
use ckpt_gguf::GgufWriter;

use arch::{ParamContext, TensorAction, VocabContext};
use hparams::{read_optional_json, Hparams};
use kv::KvList;
use metadata::ModelMetadata;
use tensors::{choose_type, PlannedTensor};

/// The converter's `--outtype`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OutType {
    /// `--outtype f32`: every tensor stored as F32.
    F32,
    /// `--outtype f16`: weight matrices as F16; 1-D tensors, norms and the tensors llama.cpp
    /// keeps in F32 (router, position embeddings, convolutions) stay F32.
    F16,
    /// `--outtype bf16`: as [`OutType::F16`] with BF16.
    BF16,
    /// `--outtype q8_0`: weight matrices as Q8_0 (blocks of 32 along a row), F16 for a row
    /// length that is not a multiple of 32; the F32 tensors as with [`OutType::F16`].
    Q8_0,
    /// The type of the first 2-D tensor stored as BF16 or F16 (the converter skips other
    /// dtypes), F16 when there is none.
    Auto,
}

impl OutType {
    /// Parses a `--outtype` name (`f32`, `f16`, `bf16`, `q8_0`, `auto`, any case); `None` for
    /// any other name.
    pub fn from_name(name: &str) -> Option<OutType> {
        Some(match name.to_ascii_lowercase().as_str() {
            "f32" => OutType::F32,
            "f16" => OutType::F16,
            "bf16" => OutType::BF16,
            "q8_0" => OutType::Q8_0,
            "auto" => OutType::Auto,
            _ => return None,
        })
    }

    /// (tensor type for quantizable tensors, llama_ftype written as general.file_type)
    fn resolve(self, first_matrix_dtype: Option<DType>) -> (GgmlType, u32) {
        use ckpt_quant::Ftype;
        let ftype = match self {
            OutType::F32 => Ftype::F32,
            OutType::F16 => Ftype::F16,
            OutType::BF16 => Ftype::BF16,
            OutType::Q8_0 => Ftype::Q8_0,
            OutType::Auto => match first_matrix_dtype {
                Some(DType::BF16) => Ftype::BF16,
                _ => Ftype::F16,
            },
        };
        (ftype.default_type(), ftype.id())
    }
}

/// Options of [`convert_hf_to_gguf`], [`plan_hf_to_gguf`] and [`write_with_progress`]
/// (convert_hf_to_gguf.py's command-line options).
pub struct HfToGgufOptions {
    /// The tensor type asked for (`--outtype`).
    pub outtype: OutType,
    /// The pre-tokenizer name written as `tokenizer.ggml.pre` for a BPE tokenizer instead of
    /// the one its fingerprint gives (without it, a fingerprint unknown to llama.cpp is an
    /// error, as in the converter).
    pub pre_tokenizer: Option<String>,
    /// Replace an existing output file; without it an existing output is an error.
    pub overwrite: bool,
    /// Receives a `"converting"` phase measuring the data bytes, advanced as tensors are
    /// written.
    pub progress: Option<ckpt_core::SharedProgress>,
    /// Write a split set as convert_hf_to_gguf.py `--split-max-tensors` / `--split-max-size` /
    /// `--no-tensor-first-split` does (`OUT-00001-of-0000N.gguf`, … with OUT the output's file
    /// name without its extension; one file at the output path when everything fits one shard).
    pub split: Option<ckpt_gguf::ConverterSplit>,
    /// convert_hf_to_gguf.py `--sentence-transformers-dense-modules`: also convert the
    /// sentence-transformers `Dense` modules of `modules.json` whose folder holds a
    /// `model.safetensors` (EmbeddingGemma's `2_Dense`/`3_Dense`, written as `dense_2.weight` /
    /// `dense_3.weight` before the model's tensors, with their `{arch}.dense_N_feat_in` /
    /// `_feat_out` from the module's config.json). Only EmbeddingGemma (`Gemma3TextModel`)
    /// reads it, as in the converter; without it the modules are left out.
    pub sentence_transformers_dense_modules: bool,
}

impl Default for HfToGgufOptions {
    fn default() -> Self {
        HfToGgufOptions {
            outtype: OutType::Auto,
            pre_tokenizer: None,
            overwrite: false,
            progress: None,
            split: None,
            sentence_transformers_dense_modules: false,
        }
    }
}

/// What a conversion wrote (or, from [`plan_hf_to_gguf`], would write).
#[derive(Debug, Clone)]
pub struct ConvertReport {
    /// config.json's `architectures[0]` (e.g. `LlamaForCausalLM`).
    pub hf_architecture: String,
    /// The GGUF `general.architecture` written (e.g. `llama`).
    pub gguf_architecture: String,
    /// `general.file_type`: llama.cpp's `llama_ftype` number (1 = MOSTLY_F16, 7 = MOSTLY_Q8_0, …).
    pub file_type: u32,
    /// Tensors written.
    pub tensor_count: usize,
    /// KV pairs written.
    pub kv_count: usize,
    /// Elements in all tensors written (the default `general.size_label` comes from it).
    pub parameter_count: u64,
    /// Size of the output in bytes (all shards together for a split output).
    pub output_bytes: u64,
    /// Tensors stored in another type than requested, and why.
    pub fallbacks: Vec<String>,
    /// Tensors of the checkpoint that the converter drops by design.
    pub dropped: Vec<String>,
    /// Things a user should know: tokenizer entries ignored (beyond `vocab_size`, special ids
    /// out of range, no merges found), model-card fields not exported, output llama.cpp may
    /// refuse to load.
    pub warnings: Vec<String>,
    /// The files written (one, or the shards of a split output).
    pub outputs: Vec<PathBuf>,
}

/// The `architectures[0]` values of config.json this crate converts.
pub fn supported_architectures() -> &'static [&'static str] {
    &[
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "GemmaForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "GPT2LMHeadModel",
        "Phi3ForCausalLM",
        "BertModel",
        "SmolLM3ForCausalLM",
        "GraniteForCausalLM",
        "Olmo2ForCausalLM",
        "Olmo3ForCausalLM",
        "SeedOssForCausalLM",
        "StableLmForCausalLM",
        "CohereForCausalLM",
        "Cohere2ForCausalLM",
        "Exaone4ForCausalLM",
        "Ernie4_5_ForCausalLM",
        "Ernie4_5ForCausalLM",
        "Qwen2MoeForCausalLM",
        "Qwen3MoeForCausalLM",
        "MixtralForCausalLM",
        "OlmoeForCausalLM",
        "Ernie4_5_MoeForCausalLM",
        "Glm4ForCausalLM",
        "HunYuanDenseV1ForCausalLM",
        "Lfm2ForCausalLM",
        "LFM2ForCausalLM",
        "Gemma3ForConditionalGeneration",
        "LlavaForConditionalGeneration",
        "Mistral3ForConditionalGeneration",
        "Qwen2VLForConditionalGeneration",
        "Qwen2_5_VLForConditionalGeneration",
        "DeepseekV2ForCausalLM",
        "DeepseekV3ForCausalLM",
        "GraniteMoeForCausalLM",
        "GraniteMoeSharedForCausalLM",
        "Glm4MoeForCausalLM",
        "GptOssForCausalLM",
        "Gemma3TextModel",
        "Qwen3Model",
        "NomicBertModel",
        "XLMRobertaModel",
        "ModernBertModel",
        "ApertusForCausalLM",
        "VLlama3ForCausalLM",
        "Qwen3VLForConditionalGeneration",
        "Llama4ForCausalLM",
        "Llama4ForConditionalGeneration",
        "Qwen3VLMoeForConditionalGeneration",
    ]
}

/// Converts `source` (the weights of the HF folder `model_dir`) into the GGUF file `out`.
pub fn convert_hf_to_gguf(
    model_dir: &Path,
    source: &Checkpoint,
    out: &Path,
    opts: &HfToGgufOptions,
) -> Result<ConvertReport> {
    let (writer, mut report) = plan_hf_to_gguf(model_dir, source, opts)?;
    let outputs = write_with_progress(writer, out, opts)?;
    if opts.split.is_some() {
        report.output_bytes = 0;
        for p in &outputs {
            report.output_bytes += std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len();
        }
    }
    report.outputs = outputs;
    Ok(report)
}

/// Everything [`convert_hf_to_gguf`] decides, without writing: a [`GgufWriter`] holding the KVs
/// and the lazy tensors (cast by bands of rows when written or read), and the report
/// (`output_bytes` is the size the file would have). A one-step quantizer reads the tensors
/// from it directly instead of from a staged file. `opts.overwrite` and `opts.progress` are not
/// used here.
pub fn plan_hf_to_gguf(
    model_dir: &Path,
    source: &Checkpoint,
    opts: &HfToGgufOptions,
) -> Result<(GgufWriter, ConvertReport)> {
    let mut hp = Hparams::load(model_dir)?;
    hp.sentence_transformers_dense_modules = opts.sentence_transformers_dense_modules;
    let hf_arch = match hp
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(|a| a.as_str())
    {
        Some(a) => a.to_string(),
        None => {
            return Err(Error::invalid(
                &hp.path,
                "config.json has no \"architectures\" list",
            ))
        }
    };
    let arch = arch::find_for(&hf_arch, &hp).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: architecture {hf_arch} is not supported; supported: {}",
            hp.path.display(),
            supported_architectures().join(", ")
        ))
    })?;
    arch.config_defaults(&mut hp);
    let block_count =
        hp.require_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;

    let mut warnings = Vec::new();
    let mut dropped = Vec::new();
    let mut kv = KvList::new();
    kv.string("general.architecture", arch.gguf_arch());
    let mut sources = arch.extra_tensors(&hp, &mut kv)?;
    let model_tensors = ordered_sources(source, &mut dropped);
    // `--outtype auto` looks at the checkpoint as stored (before FP8 is dequantized): the first
    // 2-D tensor that is BF16 or F16 decides, other dtypes are skipped.
    let first_matrix = model_tensors
        .iter()
        .find(|t| t.shape.len() >= 2 && matches!(t.dtype, DType::BF16 | DType::F16))
        .map(|t| t.dtype);
    sources.extend(dequant::apply(&hp, model_tensors, &mut dropped)?);
    let sources = arch.sources(sources, &hp, &mut kv)?;
    let (target, mut file_type) = opts.outtype.resolve(first_matrix);
    // `prepare_metadata`: an MXFP4 checkpoint converted to a float type is labelled
    // MOSTLY_MXFP4_MOE (its experts stay MXFP4).
    {
        use ckpt_quant::Ftype;
        let float = [Ftype::F32, Ftype::F16, Ftype::BF16].map(Ftype::id);
        if is_mxfp4(&hp) && float.contains(&file_type) {
            file_type = Ftype::MXFP4_MOE.id();
        }
    }

    let mut planned = Vec::new();
    let mut fallbacks = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut stacker = arch::moe::Stacker::new(arch, &hp)?;
    for t in sources {
        if t.name.ends_with(".attention.masked_bias")
            || t.name.ends_with(".attention.bias")
            || t.name.ends_with(".rotary_emb.inv_freq")
        {
            dropped.push(t.name.clone());
            continue;
        }
        let bid = block_id(&t.name);
        let pieces = match arch.expand(&t, bid, &hp, block_count)? {
            None => vec![t],
            Some(pieces) => {
                if pieces.is_empty() {
                    dropped.push(t.name.clone());
                }
                pieces
            }
        };
        for t in pieces {
            let bid = block_id(&t.name);
            if let Some(st) = stacker.as_mut() {
                if let Some(done) = st.offer(&t, bid, block_count)? {
                    for stacked in done {
                        let tref = arch::TensorRef {
                            name: &stacked.hf_name,
                            bid,
                            dtype: stacked.experts[0].dtype,
                            model_dir,
                        };
                        match arch.tensor(&tref, &hp, block_count)? {
                            TensorAction::Drop => {
                                dropped.extend(stacked.experts.iter().map(|e| e.name.clone()))
                            }
                            TensorAction::Keep { name, transforms } => {
                                let first = stacked.experts[0].clone();
                                planned.push(plan_tensor(
                                    &stacked.hf_name,
                                    &first,
                                    name,
                                    transforms,
                                    target,
                                    &mut seen,
                                    &mut fallbacks,
                                    stacked.experts,
                                )?);
                            }
                        }
                    }
                    continue;
                }
            }
            let tref = arch::TensorRef {
                name: &t.name,
                bid,
                dtype: t.dtype,
                model_dir,
            };
            match arch.tensor(&tref, &hp, block_count)? {
                TensorAction::Drop => dropped.push(t.name.clone()),
                TensorAction::Keep { name, transforms } => {
                    planned.push(plan_tensor(
                        &t.name,
                        &t,
                        name,
                        transforms,
                        target,
                        &mut seen,
                        &mut fallbacks,
                        Vec::new(),
                    )?);
                }
            }
        }
    }
    if let Some(st) = stacker {
        st.finish()?;
    }
    let parameter_count: u64 = planned
        .iter()
        .map(|p| p.shape.iter().product::<u64>())
        .sum();

    kv.string("general.type", "model");
    let config_raw = hparams::read_json_object(&hp.path)?;
    let generation = read_optional_json(&model_dir.join("generation_config.json")).unwrap_or(None);
    let metadata = ModelMetadata::derive_with_experts(
        model_dir,
        &config_raw,
        generation.as_ref(),
        parameter_count,
        expert_params(&planned),
    );
    warnings.extend(metadata.warnings.iter().cloned());
    metadata.write(&mut kv);
    arch.write_params(&mut ParamContext {
        hp: &hp,
        kv: &mut kv,
        block_count,
        file_type,
    })?;
    kv.u32("general.quantization_version", 2);
    arch.write_vocab(&mut VocabContext {
        dir: model_dir,
        hp: &hp,
        kv: &mut kv,
        pre_override: opts.pre_tokenizer.as_deref(),
        warnings: &mut warnings,
    })?;
    // What the converter writes without a word but llama.cpp then refuses to load.
    warnings.extend(arch::deepseek::llama_cpp_load_problem(&kv));

    let kv_count = kv.entries().len();
    let tensor_count = planned.len();
    let mut writer = GgufWriter::new();
    kv.into_writer(&mut writer);
    for p in planned {
        writer.add_tensor(p.into_tensor());
    }
    let output_bytes = writer.total_size()?;
    let report = ConvertReport {
        hf_architecture: hf_arch,
        gguf_architecture: arch.gguf_arch().to_string(),
        file_type,
        tensor_count,
        kv_count,
        parameter_count,
        output_bytes,
        fallbacks,
        dropped,
        warnings,
        outputs: Vec::new(),
    };
    Ok((writer, report))
}

/// `quantization_config.quant_method == "mxfp4"` (the released GPT-OSS checkpoints).
fn is_mxfp4(hp: &Hparams) -> bool {
    hp.get("quantization_config")
        .and_then(|q| q.get("quant_method"))
        .and_then(|m| m.as_str())
        == Some("mxfp4")
}

/// The converter's block id: the first all-digit component of the name.
fn block_id(name: &str) -> Option<u32> {
    name.split('.')
        .find(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u32>().ok())
}

/// gguf-py's `get_total_parameter_count` split: (shared, per-expert, expert count) when there
/// are stacked `_exps.` tensors.
fn expert_params(planned: &[PlannedTensor]) -> Option<(u64, u64, u64)> {
    let (mut shared, mut expert, mut sum, mut n) = (0u64, 0u64, 0u64, 0u64);
    for p in planned {
        let size: u64 = p.shape.iter().product();
        if p.name.contains("_exps.") && p.shape.len() >= 3 {
            let count = if p.name.contains(".bias") {
                p.shape[p.shape.len() - 2]
            } else {
                p.shape[p.shape.len() - 3]
            };
            if count == 0 {
                continue;
            }
            expert += size / count;
            sum += count;
            n += 1;
        } else {
            shared += size;
        }
    }
    (n > 0).then(|| (shared, expert, sum / n))
}

/// One mapped tensor checked and typed (`hf_name` is the name the architecture was asked about).
/// With `experts`, `t` is the first of them and the output is their stack (typed as the 3-D
/// tensor the converter stacks before choosing the type).
#[allow(clippy::too_many_arguments)]
fn plan_tensor(
    hf_name: &str,
    t: &Tensor,
    name: String,
    transforms: Vec<arch::Transform>,
    target: GgmlType,
    seen: &mut std::collections::HashSet<String>,
    fallbacks: &mut Vec<String>,
    experts: Vec<Tensor>,
) -> Result<PlannedTensor> {
    if !seen.insert(name.clone()) {
        return Err(Error::Unsupported(format!(
            "tensor '{hf_name}' maps to {name}, which another tensor already produced"
        )));
    }
    if name.len() >= ckpt_gguf::MAX_NAME_LEN {
        return Err(Error::Unsupported(format!(
            "GGUF name {name} (from '{hf_name}') is too long"
        )));
    }
    let mut shape = t.shape.clone();
    for tr in &transforms {
        tr.check(&shape)
            .map_err(|m| Error::Unsupported(format!("tensor '{hf_name}' ({name}): {m}")))?;
        shape = tr.output_shape(&shape);
    }
    if !experts.is_empty() {
        shape.insert(0, experts.len() as u64);
    }
    let ggml_type = match t.dtype {
        // Already in a ggml block type (repacked from the checkpoint's own quantization): kept.
        DType::Ggml(g) if experts.is_empty() && transforms.is_empty() => g,
        DType::Ggml(g) => {
            return Err(Error::Unsupported(format!(
                "tensor '{hf_name}' ({name}) is already {g} and cannot be transformed or stacked"
            )))
        }
        _ => {
            let (ggml_type, why) = choose_type(&name, &shape, target);
            fallbacks.extend(why);
            ggml_type
        }
    };
    Ok(PlannedTensor {
        name,
        source: t.clone(),
        shape,
        transforms,
        ggml_type,
        experts,
    })
}

/// The converter renames the router's expert bias (`…e_score_correction_bias`) to
/// `…e_score_correction.bias` before mapping it (the GGUF -> Hugging Face export undoes it).
pub const EXPERT_BIAS_RENAME: (&str, &str) = ("e_score_correction_bias", "e_score_correction.bias");

/// The converter's tensor order: model parts in sorted file-name order, tensors sorted by name
/// inside each part; plus its generic renames and multimodal drops.
fn ordered_sources(source: &Checkpoint, dropped: &mut Vec<String>) -> Vec<Tensor> {
    let mut out = Vec::new();
    for t in sorted_sources(source) {
        let mut t = t.clone();
        if is_multimodal(&t.name) {
            dropped.push(t.name.clone());
            continue;
        }
        let (hf, mapped) = EXPERT_BIAS_RENAME;
        if t.name.ends_with(hf) {
            t.name = t.name.replace(hf, mapped);
        }
        if t.name.contains("language_model.") {
            t.name = t.name.replace("language_model.", "");
        }
        out.push(t);
    }
    out
}

/// The converter's reading order: model parts in sorted file-name order, tensors sorted by
/// name inside each part.
pub(crate) fn sorted_sources(source: &Checkpoint) -> Vec<&Tensor> {
    let part_of = |t: &Tensor| -> String {
        t.view()
            .and_then(|v| {
                v.storage
                    .buffer
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_default()
    };
    // Sorted by the names as stored; the renames below do not change the order.
    let mut sorted: Vec<(String, &Tensor)> =
        source.tensors.iter().map(|t| (part_of(t), t)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    sorted.into_iter().map(|(_, t)| t).collect()
}

/// `TextModel.filter_tensors`: vision/audio towers and projectors are not part of the text GGUF.
fn is_multimodal(name: &str) -> bool {
    const PREFIXES: [&str; 10] = [
        "mlp",
        "vit.",
        "vpm.",
        "siglip2.",
        "conformer.",
        "merger.",
        "resampler.",
        "sound_encoder.",
        "sound_projection.",
        "speech_embeddings.",
    ];
    const PARTS: [&str; 17] = [
        "visual.",
        "vision.",
        "audio.",
        "talker.",
        "vision_",
        "audio_",
        "token2wav.",
        "code2wav.",
        "projector.",
        "pre_mm_projector_norm",
        "image_newline",
        "view_seperator",
        "patch_embed",
        "patch_embedding",
        "patch_merger.",
        "patch_merge_mlp.",
        "model.connector.",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || PARTS.iter().any(|p| name.contains(p))
}

/// Writes what [`plan_hf_to_gguf`] planned to `out` (or the split set `opts.split` asks for),
/// reporting progress through `opts.progress`; returns the files written.
pub fn write_with_progress(
    mut writer: GgufWriter,
    out: &Path,
    opts: &HfToGgufOptions,
) -> Result<Vec<PathBuf>> {
    let write = |writer: GgufWriter| match &opts.split {
        None => writer
            .write(out, opts.overwrite)
            .map(|()| vec![out.to_path_buf()]),
        Some(split) => writer.write_converter_split(out, split, opts.overwrite),
    };
    if let Some(progress) = &opts.progress {
        writer.set_progress("converting", progress.clone());
    }
    write(writer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supported_list_matches_the_registry() {
        let mut from_registry: Vec<&str> = arch::registry()
            .iter()
            .flat_map(|a| a.hf_names().iter().copied())
            .collect();
        let mut listed = supported_architectures().to_vec();
        from_registry.sort();
        listed.sort();
        assert_eq!(from_registry, listed);
    }

    #[test]
    fn outtype_names() {
        assert_eq!(OutType::from_name("Q8_0"), Some(OutType::Q8_0));
        assert_eq!(OutType::from_name("auto"), Some(OutType::Auto));
        assert_eq!(OutType::from_name("q4_k"), None);
    }
}
