//! `ckpt convert`: safetensors ⇄ PyTorch `.bin`, Hugging Face → GGUF, GGUF → Hugging Face.

use std::path::Path;

use ckpt_core::{Error, Result};

pub use ckpt_convert::gguf::{GgufOptions, GgufReport};
pub use ckpt_convert::{ConvertOptions, ConvertReport};
pub use ckpt_export::ExportReport;

use crate::{resolve, Target};

/// An output format a conversion can write.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// safetensors (`model.safetensors`, or shards with an index).
    Safetensors,
    /// PyTorch's zip `.bin`.
    Bin,
    /// One GGUF file.
    Gguf,
}

impl OutputFormat {
    /// The file or folder format for safetensors and `.bin`; `None` for GGUF.
    pub fn target(self) -> Option<Target> {
        match self {
            OutputFormat::Safetensors => Some(Target::Safetensors),
            OutputFormat::Bin => Some(Target::Bin),
            OutputFormat::Gguf => None,
        }
    }
}

impl std::str::FromStr for OutputFormat {
    type Err = Error;
    fn from_str(s: &str) -> Result<OutputFormat> {
        match s {
            "safetensors" => Ok(OutputFormat::Safetensors),
            "bin" => Ok(OutputFormat::Bin),
            "gguf" => Ok(OutputFormat::Gguf),
            _ => Err(Error::Usage(format!(
                "unknown output format '{s}' (safetensors, bin or gguf)"
            ))),
        }
    }
}

/// Which job `convert` does for a source and a destination.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ConvertKind {
    /// Hugging Face model -> GGUF ([`to_gguf`]).
    Gguf,
    /// GGUF -> Hugging Face folder ([`gguf_to_hf`]).
    Export,
    /// safetensors <-> `.bin` ([`convert`]).
    Plain,
}

/// Whether the output is a GGUF: asked for with `to`, or (without `to`) a destination ending in
/// `.gguf`. Decided before the source is looked at (a Hub source is not downloaded for it).
pub fn writes_gguf(dst: &Path, to: Option<OutputFormat>) -> bool {
    to == Some(OutputFormat::Gguf)
        || (to.is_none()
            && dst
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf")))
}

/// The job for a local source (already [`resolve`]d) and a destination: GGUF output as
/// [`writes_gguf`]; a GGUF file to a destination without a safetensors/`.bin` extension is an
/// export to a Hugging Face folder; anything else is safetensors ⇄ `.bin`.
pub fn kind(local_src: &Path, dst: &Path, to: Option<OutputFormat>) -> Result<ConvertKind> {
    if writes_gguf(dst, to) {
        return Ok(ConvertKind::Gguf);
    }
    if crate::is_gguf_file(local_src)? && Target::from_path(dst).is_none() {
        return Ok(ConvertKind::Export);
    }
    Ok(ConvertKind::Plain)
}

/// safetensors ⇄ PyTorch `.bin` for a file or a model folder (shards, index, companion files),
/// verified tensor by tensor unless `opts.verify` is false. `src` may be `hf://…`.
pub fn convert(src: &Path, dst: &Path, opts: &ConvertOptions) -> Result<ConvertReport> {
    ckpt_convert::convert(&resolve(src)?, dst, opts)
}

/// A Hugging Face model folder (or a weights file inside one, or `hf://…`) to a GGUF, exactly as
/// llama.cpp's `convert_hf_to_gguf.py`; a llama-quantize [`OutType`](crate::OutType) is then
/// applied in the same step, as `llama-quantize` would.
pub fn to_gguf(src: &Path, dst: &Path, opts: &GgufOptions) -> Result<GgufReport> {
    ckpt_convert::gguf::convert_to_gguf(&resolve(src)?, dst, opts)
}

pub use ckpt_export::ExportOptions;

/// A GGUF back to a Hugging Face folder: dequantized, HF names, Q/K permutation undone,
/// `config.json`, generation config and tokenizer files rebuilt from the metadata; safetensors or
/// `.bin` weights ([`ExportOptions::target`]), verified like every other output.
pub fn gguf_to_hf(src: &Path, dst: &Path, opts: &ExportOptions) -> Result<ExportReport> {
    ckpt_export::gguf_to_hf(&resolve(src)?, dst, opts)
}

pub use ckpt_lora::to_gguf::{is_adapter_dir, AdapterReport, LoraToGgufOptions};

/// The output type of a GGUF LoRA adapter from its name (f32, f16, bf16, q8_0, auto, as
/// `convert_lora_to_gguf.py --outtype`); `None`: f32, the script's default.
pub fn adapter_outtype(name: Option<&str>) -> Result<ckpt_model::OutType> {
    match name {
        None => Ok(ckpt_model::OutType::F32),
        Some(s) => ckpt_model::OutType::from_name(s).ok_or_else(|| {
            Error::Usage(format!(
                "the outtype of a LoRA adapter must be f32, f16, bf16, q8_0 or auto (as convert_lora_to_gguf.py --outtype), not '{s}'"
            ))
        }),
    }
}

/// The base model of a PEFT adapter from the Hub, as `convert_lora_to_gguf.py --base-model-id`
/// reads it: only `config.json` of `id` (`ORG/NAME`, `hf://ORG/NAME[@REV]`) is downloaded into
/// the Hugging Face cache (settings from the environment: `HF_ENDPOINT`, `HF_TOKEN`, …); the
/// snapshot folder is returned, to pass as `base` to [`adapter_to_gguf`].
pub fn adapter_base_from_hub(id: &str) -> Result<std::path::PathBuf> {
    let opts = crate::hub::PullOptions {
        include: vec!["config.json".into()],
        ..Default::default()
    };
    let report = crate::hub::pull(id, &opts, None)?;
    if !report.snapshot.join("config.json").is_file() {
        return Err(Error::Invalid {
            path: report.snapshot,
            msg: format!("the base model {id} has no config.json"),
        });
    }
    Ok(report.snapshot)
}

/// The base model folder of a PEFT adapter: `base` when given (`hf://…` resolved through the
/// Hugging Face cache), else the adapter's `base_model_name_or_path` when it names a local
/// folder (as given, then relative to the adapter folder). A Hub id there is not fetched
/// behind the user's back: the error says to pass it as `hf://ORG/NAME`.
pub fn adapter_base(adapter_dir: &Path, base: Option<&Path>) -> Result<std::path::PathBuf> {
    if let Some(b) = base {
        return resolve(b);
    }
    let config = adapter_dir.join("adapter_config.json");
    let text = ckpt_core::hf::read_side_text(&config)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| Error::invalid(&config, format!("invalid JSON: {e}")))?;
    let Some(id) = v
        .get("base_model_name_or_path")
        .and_then(|x| x.as_str())
        .filter(|s| !s.is_empty())
    else {
        return Err(Error::Usage(format!(
            "{}: no base_model_name_or_path; give the base model folder with `base` (only its config.json is needed)",
            config.display()
        )));
    };
    for cand in [Path::new(id).to_path_buf(), adapter_dir.join(id)] {
        if cand.join("config.json").is_file() {
            return Ok(cand);
        }
    }
    Err(Error::Usage(format!(
        "{}: base_model_name_or_path '{id}' is not a local model folder; give it with `base` DIR (only config.json is needed) or `base` hf://{id}",
        config.display()
    )))
}

/// A PEFT LoRA adapter folder to a GGUF adapter, exactly as llama.cpp's
/// `convert_lora_to_gguf.py --base BASE` writes it (see [`ckpt_model::lora`] for where ckpt
/// deliberately differs). `base` as in [`adapter_base`].
pub fn adapter_to_gguf(
    adapter_dir: &Path,
    base: Option<&Path>,
    dst: &Path,
    opts: &LoraToGgufOptions,
    overwrite: bool,
) -> Result<AdapterReport> {
    let adapter_dir = resolve(adapter_dir)?;
    let base = adapter_base(&adapter_dir, base)?;
    ckpt_lora::to_gguf::adapter_to_gguf(&adapter_dir, &base, dst, opts, overwrite)
}
