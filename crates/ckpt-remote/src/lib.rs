//! ckpt-remote: checkpoints on a Hugging Face Hub (or any HTTP server).
//!
//! - [`RemoteLocation`] / [`HubUri`]: `hf://ORG/NAME[@REVISION][/PATH]` and plain http(s) URLs.
//! - [`inspect_remote`]: tensor names, dtypes, shapes and parameter counts from headers read with
//!   HTTP range requests (safetensors, sharded safetensors, GGUF); nothing is downloaded in full.
//! - [`pull()`] / [`resolve_to_local`]: downloads into the huggingface_hub cache layout
//!   (`models--ORG--NAME/{blobs,refs,snapshots}`), so Python and ckpt share one cache.
//! - [`push()`](push::push): uploads a file or folder as one commit (or pull request) with the
//!   Hub's commit and LFS APIs, like huggingface_hub's `upload_folder`.
//!
//! Configuration comes from the environment like huggingface_hub ([`HubConfig::from_env`]); a
//! [`Hub`] built from an explicit [`HubConfig`] offers the same operations as methods. Errors are
//! [`RemoteError`]s, each saying what to do next; they convert into [`ckpt_core::Error`].
//!
//! # Example: inspect, then pull, a sharded safetensors repository
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # // A fake Hub on 127.0.0.1 (the test-support crate ckpt-testhub) serving the six shards and
//! # // index of tests/fixtures/remote/sharded as the repository org/tiny.
//! # use ckpt_testhub::download::{files_from_dir, FakeHub};
//! # let fake = FakeHub::start();
//! # let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/remote/sharded");
//! # let commit = "0123456789abcdef0123456789abcdef01234567";
//! # fake.add_repo("org/tiny", commit, files_from_dir(fixture.as_ref()));
//! # let endpoint = fake.hub_url.clone();
//! use ckpt_remote::{Hub, HubConfig, PullOptions};
//!
//! let cache = tempfile::tempdir()?;
//! let hub = Hub::new(HubConfig::new(&endpoint, cache.path()));
//!
//! // Headers only: the index, then the header of each shard it lists.
//! let remote = hub.inspect("hf://org/tiny")?;
//! assert_eq!(remote.format, "safetensors");
//! assert_eq!(remote.files.len(), 6);
//!
//! // The whole repository, into the huggingface_hub cache layout.
//! let report = hub.pull("org/tiny", &PullOptions::default())?;
//! assert_eq!(report.files.len(), 7);
//! assert!(report.snapshot.ends_with(format!("snapshots/{}", report.commit)));
//! # assert_eq!(report.commit, commit);
//!
//! // The local shards hold the tensors the remote headers listed.
//! let mut local = 0;
//! for f in report.files.iter().filter(|f| f.path.ends_with(".safetensors")) {
//!     local += ckpt_safetensors::read(&f.local_path)?.tensors.len();
//! }
//! assert_eq!(local, remote.tensors().count());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod cache;
mod config;
mod error;
mod gguf;
mod http;
mod hub;
mod inspect;
pub mod pull;
pub mod push;
mod uri;

pub use config::HubConfig;
pub use error::{RemoteError, Result};
pub use http::Stats;
pub use hub::{FileMetadata, Hub};
pub use inspect::{inspect_remote, RemoteFile, RemoteInspection, RemoteTensor};
pub use pull::{pull, resolve_to_local, PullOptions, PullReport, PulledFile};
pub use uri::{is_remote, HubUri, RemoteLocation, RepoType};
