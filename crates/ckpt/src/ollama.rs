//! Building models into Ollama's store with ckpt's own converter and quantizer: the
//! [`ModelPreparer`] that `ckpt ollama create` and `ckpt serve`'s `/api/create` use, and
//! [`create`] for a model folder, a GGUF, `hf://…` or a Modelfile.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_core::{Error, Result};
use ckpt_ollama::{
    ConvertInput, ConvertJob, CreateOptions, CreateSpec, ModelPreparer, ModelSource, OllamaError,
    QuantizeLevel,
};

pub use ckpt_ollama::{CreateReport, Progress, ServerOptions, Store};

use crate::convert::GgufOptions;
use crate::{resolve, Ftype, OutType};

/// A template Ollama would refuse is invalid input in the file that holds it, with Ollama's
/// `template error: …` text; other errors map as usual.
fn template_error_in(e: OllamaError, file: impl AsRef<Path>) -> Error {
    if e.message.starts_with("template error: ") {
        Error::Invalid {
            path: file.as_ref().to_path_buf(),
            msg: e.message,
        }
    } else {
        e.into()
    }
}

/// A PEFT adapter folder converted for the base model `base_model` (a GGUF: its `config.json`
/// is rebuilt from its keys) into `out_dir/adapter.gguf`, the way `ckpt convert ADAPTER
/// adapter.gguf --base BASE --outtype f16` converts it (F16, the type Ollama's own adapter
/// converter writes).
fn convert_adapter(
    dir: &Path,
    base_model: Option<&Path>,
    out_dir: &Path,
) -> ckpt_ollama::Result<Vec<PathBuf>> {
    let base = base_model.ok_or_else(|| {
        OllamaError::bad_request("an adapter needs a base model to convert against (FROM)")
    })?;
    let bad = |e: Error| OllamaError::bad_request(e.to_string());
    let config = ckpt_export::hf_config(base).map_err(bad)?;
    let base_dir = out_dir.join("adapter-base");
    std::fs::create_dir_all(&base_dir).map_err(|e| OllamaError::io("create", &base_dir, &e))?;
    let config_path = base_dir.join("config.json");
    let text = serde_json::to_vec_pretty(&serde_json::Value::Object(config))
        .map_err(|e| OllamaError::bad_request(e.to_string()))?;
    std::fs::write(&config_path, text).map_err(|e| OllamaError::io("write", &config_path, &e))?;
    let out = out_dir.join("adapter.gguf");
    let opts = ckpt_lora::to_gguf::LoraToGgufOptions {
        outtype: ckpt_model::OutType::F16,
        ..Default::default()
    };
    ckpt_lora::to_gguf::adapter_to_gguf(dir, &base_dir, &out, &opts, true).map_err(bad)?;
    Ok(vec![out])
}

/// The uploaded files under their names in `out_dir/folder`, so the converter sees a folder.
fn stage_files(
    files: &[(String, PathBuf)],
    out_dir: &Path,
    folder: &str,
) -> ckpt_ollama::Result<PathBuf> {
    let staged = out_dir.join(folder);
    std::fs::create_dir_all(&staged).map_err(|e| OllamaError::io("create", &staged, &e))?;
    for (name, path) in files {
        let link = staged.join(name);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).map_err(|e| OllamaError::io("create", parent, &e))?;
        }
        std::os::unix::fs::symlink(path, &link).map_err(|e| OllamaError::io("link", &link, &e))?;
    }
    Ok(staged)
}

/// Conversion (to F16 GGUF) and quantization (to Ollama's levels) for the Ollama store, done by
/// ckpt's own pipeline, as Ollama does them with its own converter.
pub struct CkptPreparer;

impl ModelPreparer for CkptPreparer {
    fn convert(
        &self,
        job: ConvertJob<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<Vec<PathBuf>> {
        if job.adapter {
            let dir = match job.input {
                ConvertInput::Dir(d) => d.to_path_buf(),
                ConvertInput::Files(files) => stage_files(files, job.out_dir, "adapter")?,
            };
            return convert_adapter(&dir, job.base_model, job.out_dir);
        }
        progress(Progress::status("converting model"));
        let dir = match job.input {
            ConvertInput::Dir(d) => d.to_path_buf(),
            // The folder is named after the model, which gives `general.name` (not "Model").
            ConvertInput::Files(files) => {
                let folder = Some(job.model_name)
                    .filter(|n| {
                        !n.is_empty()
                            && !n.contains(['/', '\\'])
                            && !n.starts_with('.')
                            && !n.ends_with(".gguf")
                    })
                    .unwrap_or("model");
                stage_files(files, job.out_dir, folder)?
            }
        };
        convert_dir(&dir, job.out_dir, OutType::F16)
    }

    fn quantize(
        &self,
        gguf: &Path,
        level: QuantizeLevel,
        out_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<PathBuf> {
        progress(Progress::status(format!(
            "quantizing F16 model to {}",
            level.name()
        )));
        let out = out_dir.join(format!("model-{}.gguf", level.name()));
        let mut opts = ckpt_quant::QuantizeOptions::new(level.ftype());
        opts.overwrite = true;
        ckpt_quant::quantize_gguf(gguf, &out, &opts)
            .map_err(|e| OllamaError::bad_request(e.to_string()))?;
        Ok(out)
    }
}

/// A model folder to `out_dir/model.gguf` of type `outtype`; a vision-language folder's
/// encoder + projector also to `out_dir/mmproj.gguf` (F16 whatever `outtype` is), which becomes
/// the model's projector layer.
fn convert_dir(dir: &Path, out_dir: &Path, outtype: OutType) -> ckpt_ollama::Result<Vec<PathBuf>> {
    let out = out_dir.join("model.gguf");
    let mmproj = ckpt_convert::gguf::has_projector(dir).then(|| out_dir.join("mmproj.gguf"));
    let opts = GgufOptions {
        outtype,
        overwrite: true,
        mmproj: mmproj.clone(),
        // Ollama quantizes only the model layer: the projector stays F16.
        mmproj_outtype: Some(OutType::F16),
        ..Default::default()
    };
    ckpt_convert::gguf::convert_to_gguf(dir, &out, &opts)
        .map_err(|e| OllamaError::bad_request(e.to_string()))?;
    Ok(std::iter::once(out).chain(mmproj).collect())
}

/// `ckpt ollama create`'s converter: a model folder straight to the asked GGUF type (any
/// llama-quantize type, like `ckpt convert --outtype`), so the steps reported are the ones that
/// happen (converting, a new layer).
struct DirectConverter(OutType);

impl ModelPreparer for DirectConverter {
    fn convert(
        &self,
        job: ConvertJob<'_>,
        _progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<Vec<PathBuf>> {
        let ConvertInput::Dir(dir) = job.input else {
            return CkptPreparer.convert(job, &mut |_| {});
        };
        if job.adapter {
            return convert_adapter(dir, job.base_model, job.out_dir);
        }
        convert_dir(dir, job.out_dir, self.0)
    }

    fn quantize(
        &self,
        gguf: &Path,
        level: QuantizeLevel,
        out_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<PathBuf> {
        CkptPreparer.quantize(gguf, level, out_dir, progress)
    }
}

/// Where [`create`] takes the model from.
#[derive(Clone, Debug)]
pub enum CreateFrom {
    /// A Modelfile (Ollama's `ollama create -f`): it says everything else.
    Modelfile(PathBuf),
    /// A Hugging Face model folder, a `.gguf` file or `hf://…`, with what a Modelfile would add.
    Model {
        /// The model: a folder, a `.gguf` file or `hf://…`.
        from: PathBuf,
        /// A Go template file; `None` matches one from the model's chat template, as Ollama does.
        template: Option<PathBuf>,
        /// The system prompt.
        system: Option<String>,
        /// `KEY=VALUE` parameters (`stop` may repeat).
        params: Vec<String>,
        /// License text files.
        license: Option<PathBuf>,
        /// A LoRA adapter (the Modelfile's ADAPTER line): a PEFT adapter folder, converted for
        /// the model like `ckpt convert ADAPTER adapter.gguf --base …`, or a GGUF adapter.
        adapter: Option<PathBuf>,
    },
}

/// What [`create`] builds.
#[derive(Clone, Debug)]
pub struct CreateRequest {
    /// `NAME[:TAG]` (Ollama's defaults for host, namespace and tag apply).
    pub name: String,
    /// Where the model comes from.
    pub from: CreateFrom,
    /// With [`CreateFrom::Model`]: any llama-quantize type (a folder is converted straight to it,
    /// a GGUF quantized first); with a Modelfile: one of Ollama's levels, checked by Ollama's
    /// rules.
    pub quantize: Option<String>,
}

/// Builds a model into `store`. `progress` gets Ollama's status lines; `warn` gets warnings
/// (deprecated parameters and the like) as they arise.
pub fn create(
    store: &Store,
    request: &CreateRequest,
    progress: &mut dyn FnMut(Progress),
    warn: &mut dyn FnMut(String),
) -> Result<CreateReport> {
    let scratch = scratch_dir(store)?;
    let result = create_in(store, request, &scratch, progress, warn);
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn create_in(
    store: &Store,
    request: &CreateRequest,
    scratch: &Path,
    progress: &mut dyn FnMut(Progress),
    warn: &mut dyn FnMut(String),
) -> Result<CreateReport> {
    let (from, template, system, params, license, adapter) = match &request.from {
        CreateFrom::Modelfile(mf) => {
            let text = ckpt_core::hf::read_side_text(mf)?;
            let base = mf.parent().unwrap_or(Path::new("."));
            let opts = CreateOptions {
                preparer: &CkptPreparer,
                ..Default::default()
            };
            let (report, warnings) = ckpt_ollama::create_from_modelfile(
                store,
                &request.name,
                &text,
                base,
                request.quantize.as_deref(),
                &opts,
                progress,
            )
            .map_err(|e| template_error_in(e, mf))?;
            warnings.into_iter().for_each(&mut *warn);
            return Ok(report);
        }
        CreateFrom::Model {
            from,
            template,
            system,
            params,
            license,
            adapter,
        } => (from, template, system, params, license, adapter),
    };
    let from = resolve(from)?;
    // ckpt quantizes to any llama-quantize type itself, then imports the finished GGUF.
    let (source, outtype) = match &request.quantize {
        Some(q) if from.is_dir() => (ModelSource::HfDir(from.clone()), q.parse::<OutType>()?),
        Some(q) => {
            let out = scratch.join("model.gguf");
            let mut qopts = ckpt_quant::QuantizeOptions::new(q.parse::<Ftype>()?);
            qopts.overwrite = true;
            ckpt_quant::quantize_gguf(&from, &out, &qopts)?;
            (ModelSource::Gguf(out), OutType::F16)
        }
        None if from.is_dir() => (ModelSource::HfDir(from.clone()), OutType::F16),
        None => (ModelSource::Gguf(from.clone()), OutType::F16),
    };
    let mut spec = CreateSpec::new(source);
    if let Some(a) = adapter {
        let a = resolve(a)?;
        spec.adapter = Some(if a.is_dir() {
            ModelSource::HfDir(a)
        } else {
            ModelSource::Gguf(a)
        });
    }
    if let Some(path) = template {
        let text = ckpt_core::hf::read_side_text(path)?;
        // Refused before any conversion, as Ollama refuses it at create.
        ckpt_ollama::check_template(&text).map_err(|e| template_error_in(e, path))?;
        spec.template = Some(text);
        spec.detect_template = false;
    }
    spec.system = system.clone();
    for p in params {
        if let Some(w) = spec.set_parameter(p)? {
            warn(w);
        }
    }
    if let Some(l) = license {
        spec.licenses.push(ckpt_core::hf::read_side_text(l)?);
    }
    let direct = DirectConverter(outtype);
    let opts = CreateOptions {
        preparer: &direct,
        ..Default::default()
    };
    Ok(ckpt_ollama::create_with(
        store,
        &request.name,
        &spec,
        &opts,
        progress,
    )?)
}

/// A scratch folder inside the store's folder, so finished GGUFs move into blobs/ by rename.
fn scratch_dir(store: &Store) -> Result<PathBuf> {
    let dir = store
        .root()
        .join(format!(".ckpt-create-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

/// Options for [`ckpt_ollama::server::serve_listener`] with ckpt's converter and quantizer
/// behind `/api/create`, and the cross-site rules Ollama applies (`origins`).
pub fn server_options(origins: ckpt_ollama::guard::AllowedOrigins) -> ServerOptions {
    ServerOptions {
        preparer: Arc::new(CkptPreparer),
        no_prune: false,
        config_rootfs: false,
        origins,
        max_json_body: ckpt_ollama::server::DEFAULT_MAX_JSON_BODY,
    }
}
