//! ckpt-ollama: create models directly in Ollama's model store and serve Ollama's
//! model-management API.
//!
//! * [`Store`]: `$OLLAMA_MODELS` (default `~/.ollama/models`) with `blobs/sha256-<hex>` and
//!   `manifests/<host>/<namespace>/<model>/<tag>`, written byte-for-byte as Ollama writes them
//!   (blobs first via temporary + rename, manifest last and atomically, a lock file against
//!   concurrent ckpt writers).
//! * [`create()`] / [`create_with`] / [`create_from_modelfile`]: `ollama create` from a GGUF (or,
//!   through a [`ModelPreparer`], from a Hugging Face checkpoint and with `--quantize`), with
//!   Ollama's template auto-detection, typed parameters, system/license/messages/adapter layers.
//! * [`Modelfile`]: Ollama's Modelfile syntax, parsed and printed back.
//! * [`show`], [`list`] (+ [`format_list`]), [`remove`], [`copy`]: `ollama show/list/rm/cp`.
//! * [`server::serve`] / [`server::spawn`]: the HTTP API (`/api/blobs`, `/api/create`,
//!   `/api/tags`, `/api/show`, `/api/delete`, `/api/copy`, `/api/version`); inference routes
//!   answer 501.
//!
//! Behaviour and bytes follow Ollama's Go sources at v0.33.0-rc2 (see each module). One
//! deliberate difference: Ollama ≥ 0.30 rewrites every imported GGUF with its bundled
//! `llama-quantize` (COPY mode), which changes the model blob; we store the GGUF as given (the
//! earlier behaviour). A split GGUF (`-00001-of-0000N.gguf`) becomes one model layer, as in
//! Ollama: the shards are written as one GGUF without the `split.*` keys.
//!
//! GGUF headers are read with `ckpt-gguf` ([`gguf_meta`] adds Ollama's view of them); templates
//! are parsed by a Go `text/template` parser ([`gotemplate`]) so that what Ollama would refuse
//! is refused at create with Go's message; [`format_show`] prints `ollama show`'s summary.
//!
//! # Example: import a GGUF into a store
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use ckpt_ollama::{create, list, remove, show, CreateSpec, ModelSource, Store};
//!
//! let tmp = tempfile::tempdir()?;
//! let store = Store::new(tmp.path());
//! let gguf = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/ollama/tiny-llama.Q2_K.gguf");
//!
//! // ollama create tiny -f Modelfile, with FROM the GGUF, a SYSTEM and a PARAMETER.
//! let mut spec = CreateSpec::new(ModelSource::Gguf(gguf.into()));
//! spec.system = Some("You are terse.".into());
//! spec.set_parameter("stop=</s>")?;
//! let report = create(&store, "tiny", &spec)?;
//! assert_eq!(report.name.to_string(), "registry.ollama.ai/library/tiny:latest");
//! assert_eq!(report.statuses.last().map(String::as_str), Some("success"));
//!
//! // ollama list / ollama show
//! let models = list(&store)?;
//! assert_eq!(models.len(), 1);
//! assert_eq!(models[0].display_name, "tiny:latest");
//! let info = show(&store, "tiny", false)?;
//! assert_eq!(info.system, "You are terse.");
//! assert_eq!(info.parameters_map["stop"], serde_json::json!(["</s>"]));
//! assert_eq!((info.details.family.as_str(), info.details.quantization_level.as_str()), ("llama", "Q2_K"));
//!
//! // ollama rm: the manifest and every blob no other model uses.
//! remove(&store, "tiny")?;
//! assert!(list(&store)?.is_empty());
//! # Ok(())
//! # }
//! ```
//!
//! # Wiring a CLI
//!
//! ```no_run
//! use ckpt_ollama::*;
//! # fn main() -> Result<()> {
//! let store = Store::from_env()?;
//! // ckpt ollama create NAME --from model.gguf --template auto --parameter stop=</s> --system "..."
//! let mut spec = CreateSpec::new(ModelSource::Gguf("model.gguf".into()));
//! spec.set_parameter("stop=</s>")?;
//! spec.system = Some("You are terse.".into());
//! let report = create_with(&store, "my-model", &spec, &CreateOptions::default(), &mut |p| eprintln!("{}", p.status))?;
//! println!("{}", &report.manifest_digest[..12]);
//! // ckpt ollama create NAME -f Modelfile [-q q4_K_M]
//! let text = std::fs::read_to_string("Modelfile").unwrap();
//! let (_report, warnings) = create_from_modelfile(&store, "my-model", &text, ".".as_ref(), None, &CreateOptions::default(), &mut |_| {})?;
//! // ckpt ollama list / show --modelfile / rm / cp / serve
//! print!("{}", format_list(&list(&store)?, std::time::SystemTime::now()));
//! print!("{}", show(&store, "my-model", false)?.modelfile);
//! print!("{}", format_show(&show(&store, "my-model", false)?, false));
//! remove(&store, "my-model")?;
//! copy(&store, "a", "b")?;
//! serve("127.0.0.1:11434", store, ServerOptions::default())?;
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

mod create;
mod error;
pub mod gguf_meta;
mod gojson;
pub mod gotemplate;
pub mod guard;
mod modelfile;
mod name;
mod ops;
pub mod server;
pub mod store;
pub mod templates;

pub use create::{
    check_template, create, create_from_modelfile, create_with, ConvertInput, ConvertJob,
    CreateOptions, CreateReport, CreateSpec, Message, ModelPreparer, ModelSource, Progress,
    QuantizeLevel,
};
pub use error::{ErrorKind, OllamaError, Result};
pub use gguf_meta::GgufHeader;
pub use modelfile::{Command, Modelfile, ParseError};
pub use name::ModelName;
pub use ops::{
    copy, format_list, format_show, list, remove, show, ListEntry, ModelDetails, RemoveReport,
    ShowInfo,
};
pub use server::{serve, spawn, ServerHandle, ServerOptions};
pub use store::{Digest, Layer, Manifest, Store, StoredManifest};
