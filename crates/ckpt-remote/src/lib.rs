//! ckpt-remote: checkpoints on a Hugging Face Hub (or any HTTP server).
//!
//! - [`RemoteLocation`] / [`HubUri`]: `hf://ORG/NAME[@REVISION][/PATH]` and plain http(s) URLs.
//! - [`inspect_remote`]: tensor names, dtypes, shapes and parameter counts from headers read with
//!   HTTP range requests (safetensors, sharded safetensors, GGUF); nothing is downloaded in full.
//! - [`pull`] / [`resolve_to_local`]: downloads into the huggingface_hub cache layout
//!   (`models--ORG--NAME/{blobs,refs,snapshots}`), so Python and ckpt share one cache.
//!
//! Configuration comes from the environment like huggingface_hub ([`HubConfig::from_env`]); a
//! [`Hub`] built from an explicit [`HubConfig`] offers the same operations as methods.

pub mod cache;
pub mod config;
pub mod error;
mod gguf;
pub mod http;
pub mod hub;
pub mod inspect;
pub mod pull;
pub mod push;
pub mod uri;

pub use cache::RepoCache;
pub use config::HubConfig;
pub use error::{RemoteError, Result};
pub use http::Stats;
pub use hub::{FileMetadata, Hub, RepoFile, RepoInfo};
pub use inspect::{inspect_remote, RemoteFile, RemoteInspection, RemoteTensor};
pub use pull::{pull, resolve_to_local, PullOptions, PullReport, PulledFile};
pub use uri::{is_remote, HubUri, RemoteLocation, RepoType};
