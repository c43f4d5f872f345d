//! ckpt-ollama: create models directly in Ollama's model store and serve Ollama's
//! model-management API.
//!
//! * [`Store`]: `$OLLAMA_MODELS` (default `~/.ollama/models`) with `blobs/sha256-<hex>` and
//!   `manifests/<host>/<namespace>/<model>/<tag>`, written byte-for-byte as Ollama writes them.
//! * [`create()`] / [`create_with`]: `ollama create` from a GGUF (or, through a
//!   [`ModelPreparer`], from a Hugging Face checkpoint and with `--quantize`), with Ollama's
//!   template auto-detection, typed parameters, system/license/messages/adapter layers.
//! * [`Modelfile`]: Ollama's Modelfile syntax, parsed and printed back.
//! * [`show`], [`list`], [`remove`], [`copy`]: `ollama show/list/rm/cp`.
//! * [`server::serve`] / [`server::spawn`]: the HTTP API (`/api/blobs`, `/api/create`,
//!   `/api/tags`, `/api/show`, `/api/delete`, `/api/copy`, `/api/version`).
//!
//! Everything is checked against Ollama's Go sources at v0.33.0-rc2 (see the module docs).

pub mod create;
pub mod error;
pub mod gguf_meta;
pub mod gojson;
pub mod modelfile;
pub mod name;
pub mod ops;
pub mod server;
pub mod store;
pub mod templates;

pub use create::{
    check_template, create, create_from_modelfile, create_with, ConvertInput, CreateOptions, CreateReport, CreateSpec, Message, ModelPreparer,
    ModelSource, NoPreparer, Progress, QuantizeLevel,
};
pub use error::{ErrorKind, OllamaError, Result};
pub use gguf_meta::GgufHeader;
pub use modelfile::{add_parameter, add_parameter_assignment, Command, Modelfile, ParseError, Parameters};
pub use name::ModelName;
pub use ops::{copy, format_list, human_bytes, human_time, list, remove, show, ListEntry, ModelDetails, RemoveReport, ShowInfo};
pub use server::{serve, spawn, ServerHandle, ServerOptions};
pub use store::{Digest, Layer, Manifest, Store, StoredManifest};
