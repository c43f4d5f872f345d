//! `ckpt ollama …` and `ckpt serve`: models built by ckpt's own converter and quantizer, placed
//! in Ollama's store, and Ollama's model-management API on the same store.

use std::path::PathBuf;

use ckpt::crates::ollama::OllamaError;
use ckpt::ollama::{CreateFrom, CreateRequest, Progress, Store};
use ckpt::Error;
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
    /// A LoRA adapter (the Modelfile's ADAPTER line): a PEFT adapter folder (adapter_config.json +
    /// adapter_model.safetensors/.bin, converted for the model as `ckpt convert --base` does) or a
    /// GGUF adapter
    #[arg(long)]
    adapter: Option<PathBuf>,
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
            let info = ckpt::crates::ollama::show(&store, &a.name, a.verbose).map_err(err)?;
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
                print!("{}", ckpt::crates::ollama::format_show(&info, a.verbose));
            }
            Ok(())
        }
        OllamaCommand::List => {
            let entries = ckpt::crates::ollama::list(&store).map_err(err)?;
            if g.json {
                let v: Vec<_> = entries
                    .iter()
                    .map(|e| serde_json::json!({"name": e.display_name, "id": e.id(), "size": e.size, "digest": e.digest}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v).unwrap());
            } else {
                print!(
                    "{}",
                    ckpt::crates::ollama::format_list(&entries, std::time::SystemTime::now())
                );
            }
            Ok(())
        }
        OllamaCommand::Rm { names } => {
            for n in names {
                ckpt::crates::ollama::remove(&store, n).map_err(err)?;
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
            ckpt::crates::ollama::copy(&store, source, destination).map_err(err)?;
            if !g.quiet {
                println!("copied '{source}' to '{destination}'");
            }
            Ok(())
        }
    }
}

fn create(store: &Store, a: &CreateArgs, g: &GlobalArgs) -> Result<(), Error> {
    let from = match &a.modelfile {
        Some(mf) => {
            // Everything these flags say belongs in the Modelfile; ignoring them would be silent.
            let ignored: Vec<&str> = [
                ("--from", a.from.is_some()),
                ("--template", a.template.is_some()),
                ("--system", a.system.is_some()),
                ("--param", !a.params.is_empty()),
                ("--license", a.license.is_some()),
                ("--adapter", a.adapter.is_some()),
            ]
            .iter()
            .filter(|(_, given)| *given)
            .map(|(flag, _)| *flag)
            .collect();
            if !ignored.is_empty() {
                return Err(Error::Usage(format!(
                    "{} cannot be combined with -f/--file: the Modelfile says it (FROM, TEMPLATE, SYSTEM, PARAMETER, LICENSE, ADAPTER lines), as with `ollama create -f`",
                    ignored.join(", ")
                )));
            }
            CreateFrom::Modelfile(mf.clone())
        }
        None => CreateFrom::Model {
            from: a.from.clone().ok_or_else(|| {
                Error::Usage("give --from MODEL_DIR|FILE.gguf|hf://… or -f Modelfile".into())
            })?,
            template: a
                .template
                .as_deref()
                .filter(|t| *t != "auto")
                .map(PathBuf::from),
            system: a.system.clone(),
            params: a.params.clone(),
            license: a.license.clone(),
            adapter: a.adapter.clone(),
        },
    };
    let request = CreateRequest {
        name: a.name.clone(),
        from,
        quantize: a.quantize.clone(),
    };
    let mut statuses = Vec::new();
    let quiet = g.quiet || a.quiet || g.json;
    let mut progress = |p: Progress| {
        if !quiet {
            eprintln!("{}", p.status);
        }
        statuses.push(p.status);
    };
    let mut warnings = Vec::new();
    let report = ckpt::ollama::create(store, &request, &mut progress, &mut |w| {
        eprintln!("warning: {w}");
        warnings.push(w);
    })?;
    if g.json {
        println!(
            "{}",
            ckpt::report::ollama_create(&report, &statuses, &warnings)
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

pub fn serve(a: &ServeArgs, g: &GlobalArgs) -> Result<(), Error> {
    let store = Store::from_env().map_err(err)?;
    let origins = ckpt::crates::ollama::guard::AllowedOrigins::from_env().map_err(Error::Usage)?;
    let listener = ckpt::crates::ollama::server::bind(&a.host).map_err(err)?;
    // The address actually bound (`--host 127.0.0.1:0` picks a free port).
    let bound = listener.local_addr().map_err(|e| Error::io(&a.host, e))?;
    if !g.quiet {
        eprintln!(
            "serving Ollama's model-management API for {} on http://{bound}",
            store.root().display(),
        );
    }
    let opts = ckpt::ollama::server_options(origins);
    ckpt::crates::ollama::server::serve_listener(listener, store, opts).map_err(err)
}
