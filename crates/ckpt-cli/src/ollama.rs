//! `ckpt ollama …` and `ckpt serve`: models built by ckpt's own converter and quantizer, placed
//! in Ollama's store, and Ollama's model-management API on the same store.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_core::Error;
use ckpt_ollama::{
    ConvertInput, CreateOptions, CreateSpec, ModelPreparer, ModelSource, OllamaError, Progress,
    QuantizeLevel, Store,
};
use clap::{Args, Subcommand};

use crate::GlobalArgs;

#[derive(Subcommand)]
pub enum OllamaCommand {
    /// Build a model into Ollama's store from a model folder, a GGUF, hf://… or a Modelfile
    #[command(after_help = "\
Examples:
  ckpt ollama create smollm:q4 --from ./SmolLM2-135M-Instruct --quantize q4_K_M
  ckpt ollama create mymodel --from model.gguf --param stop='<|im_end|>' --param temperature=0.7
  ckpt ollama create mymodel -f Modelfile

Any llama-quantize type works with -q/--quantize here; Ollama itself, and `ckpt serve`'s /api/create,
accept F32, F16, q8_0, q4_K_S, q4_K_M (other types get 400 from the API). The template
is chosen from the model's chat template the way Ollama matches its named templates, unless --template is
given. The store is $OLLAMA_MODELS (default ~/.ollama/models).")]
    Create(CreateArgs),
    /// Summarise a model (architecture, parameters, context length, quantization, capabilities,
    /// …) or print its Modelfile, template, parameters, system prompt or license, like `ollama show`
    Show(ShowArgs),
    /// List the models in the store, like `ollama list`
    List,
    /// Remove a model and the blobs no other model uses
    Rm { names: Vec<String> },
    /// Copy a model to a new name
    Cp { source: String, destination: String },
}

#[derive(Args)]
pub struct CreateArgs {
    /// NAME[:TAG] (host/namespace/model:tag, Ollama's defaults apply)
    name: String,
    /// A Hugging Face model folder, a .gguf file, or hf://ORG/NAME (ckpt's own; with Ollama this is
    /// the Modelfile's FROM line)
    #[arg(long)]
    from: Option<PathBuf>,
    /// Quantize: q4_K_M, q8_0, … (any llama-quantize type; Ollama's `-q/--quantize`)
    #[arg(short = 'q', long)]
    quantize: Option<String>,
    /// A Modelfile (FROM, PARAMETER, TEMPLATE, SYSTEM, LICENSE, ADAPTER, MESSAGE); Ollama's `-f/--file`
    #[arg(short = 'f', long = "file")]
    modelfile: Option<PathBuf>,
    /// A Go template file, or `auto` (the default: matched from the model's chat template)
    #[arg(long)]
    template: Option<String>,
    /// System prompt
    #[arg(long)]
    system: Option<String>,
    /// KEY=VALUE, repeatable (stop may be repeated)
    #[arg(long = "param")]
    params: Vec<String>,
    /// License text file
    #[arg(long)]
    license: Option<PathBuf>,
    /// No progress messages. Here `-q` is `--quantize`, as in `ollama create`; use `--quiet`
    #[arg(long = "quiet", id = "quiet")]
    quiet: bool,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("part").multiple(false))]
pub struct ShowArgs {
    /// NAME[:TAG] of a model in the store
    name: String,
    /// Print the Modelfile (FROM is the model blob's path), like `ollama show --modelfile`
    #[arg(long, group = "part")]
    modelfile: bool,
    /// Print the Go template
    #[arg(long, group = "part")]
    template: bool,
    /// Print the parameters, one `name value` per line
    #[arg(long, group = "part")]
    parameters: bool,
    /// Print the system prompt
    #[arg(long, group = "part")]
    system: bool,
    /// Print the license
    #[arg(long, group = "part")]
    license: bool,
    /// With the summary: also every GGUF metadata key and every tensor, like `ollama show -v`
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (OLLAMA_HOST style)
    #[arg(long, default_value = "127.0.0.1:11434", env = "OLLAMA_HOST")]
    host: String,
}

fn err(e: OllamaError) -> Error {
    e.into()
}

/// A template Ollama would refuse is invalid input in the file that holds it (exit 3), with
/// Ollama's `template error: …` text; other errors map as usual.
fn template_error_in(e: OllamaError, file: impl AsRef<Path>) -> Error {
    if e.message.starts_with("template error: ") {
        Error::Invalid {
            path: file.as_ref().to_path_buf(),
            msg: e.message,
        }
    } else {
        err(e)
    }
}

/// Conversion and quantization for the Ollama store, done by ckpt's own pipeline.
pub struct CkptPreparer;

impl ModelPreparer for CkptPreparer {
    fn convert(
        &self,
        input: ConvertInput<'_>,
        adapter: bool,
        base_model: Option<&Path>,
        out_dir: &Path,
        progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<PathBuf> {
        self.convert_named(input, adapter, base_model, out_dir, "model", progress)
    }

    fn convert_named(
        &self,
        input: ConvertInput<'_>,
        adapter: bool,
        _base_model: Option<&Path>,
        out_dir: &Path,
        model_name: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<PathBuf> {
        if adapter {
            return Err(OllamaError::not_implemented("converting a safetensors LoRA adapter to GGUF is not supported; merge it with `ckpt merge-lora --to gguf` instead"));
        }
        progress(Progress::status("converting model"));
        let staged;
        let dir: &Path = match input {
            ConvertInput::Dir(d) => d,
            ConvertInput::Files(files) => {
                // The uploaded files under their names, so the converter sees a model folder;
                // the folder is named after the model, which gives `general.name` (not "Model").
                let folder = Some(model_name)
                    .filter(|n| {
                        !n.is_empty()
                            && !n.contains(['/', '\\'])
                            && !n.starts_with('.')
                            && !n.ends_with(".gguf")
                    })
                    .unwrap_or("model");
                staged = out_dir.join(folder);
                std::fs::create_dir_all(&staged)
                    .map_err(|e| OllamaError::io("create", &staged, &e))?;
                for (name, path) in files {
                    let link = staged.join(name);
                    if let Some(parent) = link.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| OllamaError::io("create", parent, &e))?;
                    }
                    std::os::unix::fs::symlink(path, &link)
                        .map_err(|e| OllamaError::io("link", &link, &e))?;
                }
                &staged
            }
        };
        let out = out_dir.join("model.gguf");
        let opts = ckpt_convert::gguf::GgufOptions {
            outtype: "f16".into(),
            intermediate: "f16".into(),
            pre_tokenizer: None,
            key: None,
            overwrite: true,
            progress: None,
        };
        ckpt_convert::gguf::convert_to_gguf(dir, &out, &opts)
            .map_err(|e| OllamaError::bad_request(e.to_string()))?;
        Ok(out)
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
        let ftype = ckpt_quant::parse_ftype(level.name())
            .map_err(|e| OllamaError::bad_request(e.to_string()))?;
        let out = out_dir.join(format!("model-{}.gguf", level.name()));
        let mut opts = ckpt_quant::QuantizeOptions::new(ftype);
        opts.overwrite = true;
        ckpt_quant::quantize_gguf(gguf, &out, &opts)
            .map_err(|e| OllamaError::bad_request(e.to_string()))?;
        Ok(out)
    }
}

/// The CLI's converter: a model folder straight to the asked GGUF type (any llama-quantize
/// type, like `ckpt convert --outtype`).
struct DirectConverter(String);

impl ModelPreparer for DirectConverter {
    fn convert(
        &self,
        input: ConvertInput<'_>,
        adapter: bool,
        _base_model: Option<&Path>,
        out_dir: &Path,
        _progress: &mut dyn FnMut(Progress),
    ) -> ckpt_ollama::Result<PathBuf> {
        let ConvertInput::Dir(dir) = input else {
            return CkptPreparer.convert(input, adapter, None, out_dir, &mut |_| {});
        };
        if adapter {
            return Err(OllamaError::not_implemented("converting a safetensors LoRA adapter to GGUF is not supported; merge it with `ckpt merge-lora --to gguf` instead"));
        }
        let out = out_dir.join("model.gguf");
        let opts = ckpt_convert::gguf::GgufOptions {
            outtype: self.0.clone(),
            intermediate: "f16".into(),
            pre_tokenizer: None,
            key: None,
            overwrite: true,
            progress: None,
        };
        ckpt_convert::gguf::convert_to_gguf(dir, &out, &opts)
            .map_err(|e| OllamaError::bad_request(e.to_string()))?;
        Ok(out)
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

pub fn run(cmd: &OllamaCommand, g: &GlobalArgs) -> Result<(), Error> {
    let store = Store::from_env().map_err(err)?;
    match cmd {
        OllamaCommand::Create(a) => create(&store, a, g),
        OllamaCommand::Show(a) => {
            let part = a.modelfile || a.template || a.parameters || a.system || a.license;
            if a.verbose && part {
                return Err(Error::Usage(
                    "-v/--verbose adds metadata and tensors to the summary; it does not apply to --modelfile, --template, --parameters, --system or --license".into(),
                ));
            }
            let info = ckpt_ollama::show(&store, &a.name, a.verbose).map_err(err)?;
            if g.json {
                println!("{}", serde_json::to_string_pretty(&info.to_json()).unwrap());
            } else if a.modelfile {
                print!("{}", info.modelfile);
            } else if a.template {
                println!("{}", info.template);
            } else if a.parameters {
                println!("{}", info.parameters);
            } else if a.system {
                println!("{}", info.system);
            } else if a.license {
                println!("{}", info.license);
            } else {
                print!("{}", ckpt_ollama::format_show(&info, a.verbose));
            }
            Ok(())
        }
        OllamaCommand::List => {
            let entries = ckpt_ollama::list(&store).map_err(err)?;
            if g.json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({"name": e.display_name, "id": e.id(), "size": e.size, "digest": e.digest}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                print!(
                    "{}",
                    ckpt_ollama::format_list(&entries, std::time::SystemTime::now())
                );
            }
            Ok(())
        }
        OllamaCommand::Rm { names } => {
            for n in names {
                ckpt_ollama::remove(&store, n).map_err(err)?;
                if !g.quiet {
                    println!("deleted '{n}'");
                }
            }
            Ok(())
        }
        OllamaCommand::Cp {
            source,
            destination,
        } => {
            ckpt_ollama::copy(&store, source, destination).map_err(err)?;
            if !g.quiet {
                println!("copied '{source}' to '{destination}'");
            }
            Ok(())
        }
    }
}

fn create(store: &Store, a: &CreateArgs, g: &GlobalArgs) -> Result<(), Error> {
    let preparer = CkptPreparer;
    let opts = CreateOptions {
        preparer: &preparer,
        ..Default::default()
    };
    let mut statuses = Vec::new();
    let quiet = g.quiet || a.quiet || g.json;
    let mut progress = |p: Progress| {
        if !quiet {
            eprintln!("{}", p.status);
        }
        statuses.push(p.status);
    };
    let scratch = tempfile_dir(store)?;
    let result = (|| -> Result<ckpt_ollama::CreateReport, Error> {
        if let Some(mf) = &a.modelfile {
            // Everything these flags say belongs in the Modelfile; ignoring them would be silent.
            let ignored: Vec<&str> = [
                ("--from", a.from.is_some()),
                ("--template", a.template.is_some()),
                ("--system", a.system.is_some()),
                ("--param", !a.params.is_empty()),
                ("--license", a.license.is_some()),
            ]
            .iter()
            .filter(|(_, given)| *given)
            .map(|(flag, _)| *flag)
            .collect();
            if !ignored.is_empty() {
                return Err(Error::Usage(format!(
                    "{} cannot be combined with -f/--file: the Modelfile says it (FROM, TEMPLATE, SYSTEM, PARAMETER, LICENSE lines), as with `ollama create -f`",
                    ignored.join(", ")
                )));
            }
            let text = std::fs::read_to_string(mf).map_err(|e| Error::io(mf, e))?;
            let base = mf.parent().unwrap_or(Path::new("."));
            let (report, warnings) = ckpt_ollama::create_from_modelfile(
                store,
                &a.name,
                &text,
                base,
                a.quantize.as_deref(),
                &opts,
                &mut progress,
            )
            .map_err(|e| template_error_in(e, mf))?;
            for w in warnings {
                eprintln!("warning: {w}");
            }
            return Ok(report);
        }
        let from = a.from.as_ref().ok_or_else(|| {
            Error::Usage("give --from MODEL_DIR|FILE.gguf|hf://… or -f Modelfile".into())
        })?;
        let from = crate::remote::local(from)?;
        // ckpt quantizes to any llama-quantize type itself, then imports the finished GGUF.
        let source = match &a.quantize {
            // A folder is converted straight to the asked type by the preparer, so the steps
            // reported are the ones that happen (converting, a new layer).
            Some(_) if from.is_dir() => ModelSource::HfDir(from.clone()),
            Some(q) => {
                let out = scratch.join("model.gguf");
                {
                    let mut qopts = ckpt_quant::QuantizeOptions::new(ckpt_quant::parse_ftype(q)?);
                    qopts.overwrite = true;
                    ckpt_quant::quantize_gguf(&from, &out, &qopts)?;
                }
                ModelSource::Gguf(out)
            }
            None if from.is_dir() => ModelSource::HfDir(from.clone()),
            None => ModelSource::Gguf(from.clone()),
        };
        let mut spec = CreateSpec::new(source);
        match a.template.as_deref() {
            None | Some("auto") => {}
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
                // Refused before any conversion, as Ollama refuses it at create.
                ckpt_ollama::check_template(&text).map_err(|e| template_error_in(e, path))?;
                spec.template = Some(text);
                spec.detect_template = false;
            }
        }
        spec.system = a.system.clone();
        for p in &a.params {
            if let Some(w) = spec.set_parameter(p).map_err(err)? {
                eprintln!("warning: {w}");
            }
        }
        if let Some(l) = &a.license {
            spec.licenses
                .push(std::fs::read_to_string(l).map_err(|e| Error::io(l, e))?);
        }
        let direct = DirectConverter(a.quantize.clone().unwrap_or_else(|| "f16".into()));
        let opts = CreateOptions {
            preparer: &direct,
            ..Default::default()
        };
        ckpt_ollama::create_with(store, &a.name, &spec, &opts, &mut progress).map_err(err)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    let report = result?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({
                "name": report.name.to_string(),
                "digest": report.manifest_digest,
                "template": report.detected_template,
                "status": statuses,
            })
        );
    } else if !quiet {
        println!(
            "created {} ({})",
            report.name,
            &report.manifest_digest[..12]
        );
    }
    Ok(())
}

/// A scratch folder inside the store's folder, so finished GGUFs move into blobs/ by rename.
fn tempfile_dir(store: &Store) -> Result<PathBuf, Error> {
    let dir = store
        .root()
        .join(format!(".ckpt-create-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    Ok(dir)
}

pub fn serve(a: &ServeArgs, g: &GlobalArgs) -> Result<(), Error> {
    let store = Store::from_env().map_err(err)?;
    let origins = ckpt_ollama::guard::AllowedOrigins::from_env().map_err(Error::Usage)?;
    let listener = ckpt_ollama::server::bind(&a.host).map_err(err)?;
    // The address actually bound (`--host 127.0.0.1:0` picks a free port).
    let bound = listener.local_addr().map_err(|e| Error::io(&a.host, e))?;
    if !g.quiet {
        eprintln!(
            "serving Ollama's model-management API for {} on http://{bound}",
            store.root().display(),
        );
    }
    let opts = ckpt_ollama::ServerOptions {
        preparer: Arc::new(CkptPreparer),
        no_prune: false,
        config_rootfs: false,
        origins,
        max_json_body: ckpt_ollama::server::DEFAULT_MAX_JSON_BODY,
    };
    ckpt_ollama::server::serve_listener(listener, store, opts).map_err(err)
}
