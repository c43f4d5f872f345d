//! The on-disk store Ollama reads: `blobs/sha256-<hex>` (content-addressed files) and
//! `manifests/<host>/<namespace>/<model>/<tag>` (JSON naming a config blob and layer blobs).
//!
//! Blobs are written under a temporary name in `blobs/` and renamed once their SHA-256 is known
//! and checked; manifests are written last, atomically. A lock file serializes our own writers
//! (Ollama itself takes no lock; its start-up pruning only removes blobs older than an hour).

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::error::{OllamaError, Result};
use crate::gojson;
use crate::name::ModelName;

/// Media type of the model weights layer (a GGUF).
pub(crate) const MEDIA_MODEL: &str = "application/vnd.ollama.image.model";
/// Media type of a LoRA adapter layer (a GGUF).
pub(crate) const MEDIA_ADAPTER: &str = "application/vnd.ollama.image.adapter";
/// Media type of a vision projector layer (an mmproj GGUF).
pub(crate) const MEDIA_PROJECTOR: &str = "application/vnd.ollama.image.projector";
/// Media type of the Go chat template layer.
pub(crate) const MEDIA_TEMPLATE: &str = "application/vnd.ollama.image.template";
/// Legacy name of the template layer, still read by Ollama.
pub(crate) const MEDIA_PROMPT: &str = "application/vnd.ollama.image.prompt";
/// Media type of the system prompt layer.
pub(crate) const MEDIA_SYSTEM: &str = "application/vnd.ollama.image.system";
/// Media type of the parameters layer (JSON).
pub(crate) const MEDIA_PARAMS: &str = "application/vnd.ollama.image.params";
/// Media type of a license layer.
pub(crate) const MEDIA_LICENSE: &str = "application/vnd.ollama.image.license";
/// Media type of the messages layer (JSON).
pub(crate) const MEDIA_MESSAGES: &str = "application/vnd.ollama.image.messages";
/// Media type of the config blob.
pub(crate) const MEDIA_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Media type of a manifest.
pub(crate) const MEDIA_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Ollama's error text for a malformed digest.
pub(crate) const INVALID_DIGEST: &str = "invalid digest format";

/// A blob digest as written in URLs and manifests: `sha256:<64 hex>` (`sha256-<hex>` accepted).
/// The hex keeps its case: Ollama does too, so an upper-case digest never matches a blob.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Accepts exactly `^sha256[:-][0-9a-fA-F]{64}$`.
    pub fn parse(s: &str) -> Result<Digest> {
        let hex = s
            .strip_prefix("sha256:")
            .or_else(|| s.strip_prefix("sha256-"));
        match hex {
            Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Ok(Digest { hex: h.to_string() })
            }
            _ => Err(OllamaError::bad_request(INVALID_DIGEST)),
        }
    }

    /// The digest of a computed SHA-256 (32 bytes).
    pub(crate) fn from_sha256(bytes: &[u8]) -> Digest {
        Digest { hex: hex(bytes) }
    }

    /// The digest of `data`.
    pub(crate) fn of_bytes(data: &[u8]) -> Digest {
        Digest::from_sha256(&Sha256::digest(data))
    }

    /// The blob's file name: `sha256-<hex>`.
    pub(crate) fn file_name(&self) -> String {
        format!("sha256-{}", self.hex)
    }
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// One manifest entry (also used for the config). Field order is Ollama's struct order.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Layer {
    /// `mediaType`: what the blob is (`application/vnd.ollama.image.model`, …).
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The blob's digest, `sha256:<hex>`.
    pub digest: String,
    /// The blob's size in bytes.
    pub size: u64,
    /// The model this layer was inherited from (`FROM existing-model`); empty for a layer
    /// imported from a file.
    #[serde(default)]
    pub from: String,
    /// Ollama's optional layer `name` (omitted when empty; kept when a layer is inherited).
    #[serde(default)]
    pub name: String,
}

impl Layer {
    /// A layer for the blob `digest` of `size` bytes, without `from` or `name`.
    pub(crate) fn new(media_type: &str, digest: &Digest, size: u64) -> Layer {
        Layer {
            media_type: media_type.to_string(),
            digest: digest.to_string(),
            size,
            from: String::new(),
            name: String::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size});
        let map = v.as_object_mut().expect("object literal");
        if !self.from.is_empty() {
            map.insert("from".into(), json!(self.from));
        }
        if !self.name.is_empty() {
            map.insert("name".into(), json!(self.name));
        }
        v
    }
}

/// A model manifest (Docker's image manifest v2 layout, as Ollama writes it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Manifest {
    /// `schemaVersion`: 2.
    #[serde(rename = "schemaVersion")]
    pub schema_version: u32,
    /// `mediaType`: the manifest media type.
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// The config blob (model format, family, type, file type, …).
    pub config: Layer,
    /// The layers: the weights (model, adapters, projectors), then the text and JSON layers
    /// (template, system, params, licenses, messages).
    #[serde(default)]
    pub layers: Vec<Layer>,
}

impl Manifest {
    /// A schema-2 manifest of `config` and `layers`.
    pub(crate) fn new(config: Layer, layers: Vec<Layer>) -> Manifest {
        Manifest {
            schema_version: 2,
            media_type: MEDIA_MANIFEST.to_string(),
            config,
            layers,
        }
    }

    /// The file bytes exactly as Ollama's `WriteManifest` (json.Encoder) produces them.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        let v = json!({
            "schemaVersion": self.schema_version,
            "mediaType": self.media_type,
            "config": self.config.to_json(),
            "layers": self.layers.iter().map(Layer::to_json).collect::<Vec<_>>(),
        });
        gojson::encode_line(&v)
    }

    /// Sum of layer and config sizes (`ollama list` SIZE).
    pub(crate) fn total_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum::<u64>() + self.config.size
    }

    /// The digests of the layers and then the config (empty ones left out).
    pub fn all_digests(&self) -> impl Iterator<Item = &str> {
        self.layers
            .iter()
            .chain(std::iter::once(&self.config))
            .map(|l| l.digest.as_str())
            .filter(|d| !d.is_empty())
    }
}

/// A manifest read from disk with what `ollama list` shows about it.
#[derive(Debug, Clone)]
pub struct StoredManifest {
    /// The model's full name.
    pub name: ModelName,
    /// The manifest file.
    pub path: PathBuf,
    /// Its content.
    pub manifest: Manifest,
    /// Hex SHA-256 of the manifest file (the model id; `ollama list` shows the first 12).
    pub digest: String,
    /// The manifest file's modification time.
    pub modified: SystemTime,
}

/// A blob just written or found, with whether this call created it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
    pub created: bool,
}

/// An exclusive lock on the store, released on drop.
pub(crate) struct StoreLock {
    _file: File,
}

/// An Ollama model store: the folder holding `blobs/` and `manifests/` (`$OLLAMA_MODELS`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob being written: removed on drop unless renamed into place.
struct TempBlob {
    path: PathBuf,
    file: Option<File>,
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        self.file.take();
        if !self.path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn io_err<'a>(op: &str, path: &'a Path) -> impl FnOnce(io::Error) -> OllamaError + 'a {
    let op = op.to_string();
    move |e| OllamaError::io(&op, path, &e)
}

impl Store {
    /// The store at `root` (nothing is created until something is written).
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store { root: root.into() }
    }

    /// `$OLLAMA_MODELS`, else `~/.ollama/models`, like Ollama's `envconfig.Models()`.
    pub fn from_env() -> Result<Store> {
        if let Some(p) = std::env::var_os("OLLAMA_MODELS").filter(|p| !p.is_empty()) {
            return Ok(Store::new(p));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                OllamaError::internal(
                    "neither OLLAMA_MODELS nor HOME is set: cannot locate the Ollama store",
                )
            })?;
        Ok(Store::new(
            PathBuf::from(home).join(".ollama").join("models"),
        ))
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// `<root>/blobs`.
    pub(crate) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }
    /// `<root>/manifests`.
    pub(crate) fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }
    /// `<root>/blobs/sha256-<hex>`: where the blob `digest` is (or would be).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.file_name())
    }
    /// `<root>/manifests/<host>/<namespace>/<model>/<tag>`.
    pub(crate) fn manifest_path(&self, name: &ModelName) -> PathBuf {
        self.manifests_dir().join(name.relative_path())
    }

    /// Scratch space on the store's filesystem (for converter/quantizer outputs).
    pub(crate) fn scratch_dir(&self) -> Result<PathBuf> {
        self.remove_stale_temporaries();
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = self
            .root
            .join(format!(".ckpt-scratch-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
        Ok(dir)
    }

    /// Blocks until no other ckpt process is writing this store.
    pub(crate) fn lock(&self) -> Result<StoreLock> {
        fs::create_dir_all(&self.root).map_err(io_err("mkdir", &self.root))?;
        let path = self.root.join(".ckpt-ollama.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open", &path))?;
        fs4::FileExt::lock(&file).map_err(io_err("lock", &path))?;
        Ok(StoreLock { _file: file })
    }

    fn temp_blob(&self) -> Result<TempBlob> {
        let dir = self.blobs_dir();
        fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        // Not a valid digest name, so Ollama's start-up cleanup removes leftovers of a crash.
        let path = dir.join(format!(".ckpt-partial-{}-{n}", std::process::id()));
        let file = File::create(&path).map_err(io_err("create", &path))?;
        Ok(TempBlob {
            path,
            file: Some(file),
        })
    }

    /// Moves a finished temporary into place as `digest` (or drops it if the blob exists).
    fn commit_temp(&self, mut temp: TempBlob, digest: &Digest, size: u64) -> Result<BlobInfo> {
        let file = temp
            .file
            .take()
            .expect("temp blob file present until commit");
        if std::env::var_os("CKPT_FSYNC").is_some_and(|v| v != "0" && !v.is_empty()) {
            file.sync_all().map_err(io_err("sync", &temp.path))?;
        }
        drop(file);
        let final_path = self.blob_path(digest);
        if final_path.is_file() {
            touch(&final_path);
            return Ok(BlobInfo {
                digest: digest.clone(),
                size,
                created: false,
            });
        }
        set_mode_644(&temp.path);
        fs::rename(&temp.path, &final_path).map_err(io_err("rename", &final_path))?;
        temp.path = PathBuf::new();
        self.give_to_store_owner(&final_path);
        Ok(BlobInfo {
            digest: digest.clone(),
            size,
            created: true,
        })
    }

    /// A fresh temporary path in `blobs/` for an upload written by the caller (the server
    /// streams request bodies into it asynchronously), then passed to [`Store::commit_upload`].
    pub(crate) fn upload_temp_path(&self) -> Result<PathBuf> {
        let dir = self.blobs_dir();
        fs::create_dir_all(&dir).map_err(io_err("mkdir", &dir))?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        Ok(dir.join(format!(".ckpt-partial-{}-{n}", std::process::id())))
    }

    /// Moves a complete upload whose SHA-256 is `digest` into place (removes it if the blob
    /// already exists). Returns whether a new blob was created.
    pub(crate) fn commit_upload(
        &self,
        temp: &Path,
        digest: &Digest,
        size: u64,
    ) -> Result<BlobInfo> {
        let file = File::open(temp).map_err(io_err("open", temp))?;
        self.commit_temp(
            TempBlob {
                path: temp.to_path_buf(),
                file: Some(file),
            },
            digest,
            size,
        )
    }

    /// Streams `reader` into a blob, hashing as it goes. With `expected`, a different digest is
    /// an error (the bytes are still kept under their real digest, as Ollama does).
    pub(crate) fn write_blob(
        &self,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<BlobInfo> {
        let mut temp = self.temp_blob()?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 20];
        {
            let file = temp.file.as_mut().expect("temp blob file present");
            loop {
                let n = match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(OllamaError::internal(format!("reading blob data: {e}"))),
                };
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])
                    .map_err(io_err("write", &temp.path))?;
                size += n as u64;
            }
        }
        let digest = Digest::from_sha256(&hasher.finalize());
        let info = self.commit_temp(temp, &digest, size)?;
        if let Some(expected) = expected {
            if expected.to_string() != digest.to_string() {
                return Err(OllamaError::bad_request(format!(
                    "digest mismatch, expected {:?}, got {:?}",
                    expected.to_string(),
                    digest.to_string()
                )));
            }
        }
        Ok(info)
    }

    /// Writes `data` as a blob.
    pub(crate) fn write_blob_bytes(&self, data: &[u8]) -> Result<BlobInfo> {
        let digest = Digest::of_bytes(data);
        let path = self.blob_path(&digest);
        if path.is_file() {
            touch(&path);
            return Ok(BlobInfo {
                digest,
                size: data.len() as u64,
                created: false,
            });
        }
        self.write_blob(&mut &data[..], Some(&digest))
    }

    /// Imports a local file as a blob: hashes it first (reading only), then copies it unless the
    /// blob already exists, re-hashing the copy so a file changed meanwhile is detected.
    pub(crate) fn import_file(&self, path: &Path) -> Result<BlobInfo> {
        let digest = sha256_file(path)?;
        let blob = self.blob_path(&digest);
        if blob.is_file() {
            touch(&blob);
            let size = fs::metadata(&blob).map_err(io_err("stat", &blob))?.len();
            return Ok(BlobInfo {
                digest,
                size,
                created: false,
            });
        }
        let mut file = File::open(path).map_err(io_err("open", path))?;
        self.write_blob(&mut file, Some(&digest)).map_err(|e| {
            if e.message.starts_with("digest mismatch") {
                OllamaError::internal(format!(
                    "{} changed while it was being copied into the store",
                    path.display()
                ))
            } else {
                e
            }
        })
    }

    /// Moves a file this process wrote (a converter or quantizer output on the store's
    /// filesystem) into `blobs/` without copying it; falls back to a copy across filesystems.
    pub(crate) fn adopt_file(&self, path: &Path) -> Result<BlobInfo> {
        let digest = sha256_file(path)?;
        let size = fs::metadata(path).map_err(io_err("stat", path))?.len();
        let blob = self.blob_path(&digest);
        if blob.is_file() {
            touch(&blob);
            let _ = fs::remove_file(path);
            return Ok(BlobInfo {
                digest,
                size,
                created: false,
            });
        }
        fs::create_dir_all(self.blobs_dir()).map_err(io_err("mkdir", &self.blobs_dir()))?;
        set_mode_644(path);
        match fs::rename(path, &blob) {
            Ok(()) => {
                self.give_to_store_owner(&blob);
                Ok(BlobInfo {
                    digest,
                    size,
                    created: true,
                })
            }
            Err(_) => self.import_file(path),
        }
    }

    /// Writes the manifest atomically (temporary file + rename).
    pub(crate) fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<String> {
        self.write_manifest_bytes(name, &manifest.to_bytes())
    }

    /// Writes manifest bytes for `name` atomically; returns the manifest's hex SHA-256.
    pub(crate) fn write_manifest_bytes(&self, name: &ModelName, bytes: &[u8]) -> Result<String> {
        let path = self.manifest_path(name);
        let dir = path.parent().expect("manifest path has a parent");
        fs::create_dir_all(dir).map_err(io_err("mkdir", dir))?;
        let mut out = ckpt_core::atomic::AtomicFile::create(&path, true)?;
        out.write_all(bytes).map_err(io_err("write", &path))?;
        out.commit()?;
        self.give_to_store_owner(&path);
        Ok(hex(&Sha256::digest(bytes)))
    }

    /// When running as root in a store owned by someone else (packaged Ollama runs as the
    /// `ollama` user), hands `path` and its new parent folders up to the store root to the
    /// root folder's owner, so `ollama rm` and pruning keep working. Best effort.
    fn give_to_store_owner(&self, path: &Path) {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let Ok(meta) = fs::metadata(&self.root) else {
            return;
        };
        let (uid, gid) = (meta.uid(), meta.gid());
        if uid == 0 && gid == 0 {
            return;
        }
        let mut cur = Some(path);
        while let Some(p) = cur {
            if p == self.root || !p.starts_with(&self.root) {
                break;
            }
            let _ = std::os::unix::fs::lchown(p, Some(uid), Some(gid));
            cur = p.parent();
        }
    }

    /// The manifest stored under exactly `name`, or `None`.
    pub fn read_manifest(&self, name: &ModelName) -> Result<Option<StoredManifest>> {
        let path = self.manifest_path(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(OllamaError::io("open", &path, &e)),
        };
        let modified = fs::metadata(&path)
            .and_then(|m| m.modified())
            .map_err(io_err("stat", &path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| {
            OllamaError::internal(format!("{}: invalid manifest: {e}", path.display()))
        })?;
        Ok(Some(StoredManifest {
            name: name.clone(),
            path,
            manifest,
            digest: hex(&Sha256::digest(&bytes)),
            modified,
        }))
    }

    /// Every manifest at `manifests/*/*/*/*` whose path is a valid name; unreadable ones are
    /// skipped, like Ollama's `Manifests(continueOnError=true)`.
    pub(crate) fn manifests(&self) -> Result<Vec<StoredManifest>> {
        let mut out = Vec::new();
        let root = self.manifests_dir();
        for host in sorted_entries(&root) {
            for ns in sorted_entries(&host) {
                for model in sorted_entries(&ns) {
                    for tag in sorted_entries(&model) {
                        if !tag.is_file() {
                            continue;
                        }
                        let parts: Vec<String> = [&host, &ns, &model, &tag]
                            .iter()
                            .map(|p| {
                                p.file_name()
                                    .map(|n| n.to_string_lossy().into_owned())
                                    .unwrap_or_default()
                            })
                            .collect();
                        let Some(name) =
                            ModelName::from_parts([&parts[0], &parts[1], &parts[2], &parts[3]])
                        else {
                            continue;
                        };
                        if let Ok(Some(m)) = self.read_manifest(&name) {
                            out.push(m);
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Reuses the stored spelling of each name part that matches case-insensitively
    /// (Ollama's `getExistingName`), so `Llama3` and `llama3` are the same model.
    pub(crate) fn existing_name(&self, name: &ModelName) -> Result<ModelName> {
        let mut n = name.clone();
        for m in self.manifests()? {
            let e = &m.name;
            if e.host.eq_ignore_ascii_case(&n.host) {
                n.host = e.host.clone();
            }
            if e.namespace.eq_ignore_ascii_case(&n.namespace) {
                n.namespace = e.namespace.clone();
            }
            if e.model.eq_ignore_ascii_case(&n.model) {
                n.model = e.model.clone();
            }
            if e.tag.eq_ignore_ascii_case(&n.tag) {
                n.tag = e.tag.clone();
            }
        }
        Ok(n)
    }

    /// Deletes the blobs among `digests` that no manifest references any more.
    pub(crate) fn remove_unreferenced(&self, digests: &[String]) -> Result<Vec<String>> {
        let in_use: std::collections::HashSet<String> = self
            .manifests()?
            .iter()
            .flat_map(|m| {
                m.manifest
                    .all_digests()
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut removed = Vec::new();
        for d in digests {
            if d.is_empty() || in_use.contains(d) || removed.contains(d) {
                continue;
            }
            let Ok(digest) = Digest::parse(d) else {
                continue;
            };
            let path = self.blob_path(&digest);
            match fs::remove_file(&path) {
                Ok(()) => removed.push(d.clone()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(OllamaError::io("remove", &path, &e)),
            }
        }
        Ok(removed)
    }

    /// Removes empty directories under `manifests/` (Ollama's `PruneDirectory`).
    pub(crate) fn prune_manifest_dirs(&self) {
        fn prune(dir: &Path, is_root: bool) {
            for entry in sorted_entries(dir) {
                if entry.is_dir() && !entry.is_symlink() {
                    prune(&entry, false);
                }
            }
            if !is_root {
                let _ = fs::remove_dir(dir); // fails (and is kept) when not empty
            }
        }
        prune(&self.manifests_dir(), true);
    }
}

impl Store {
    /// Deletes scratch directories and partial blobs left by ckpt processes that died (their
    /// pid is gone), so a killed create does not leave garbage behind forever.
    pub(crate) fn remove_stale_temporaries(&self) {
        let dead = |name: &str, prefix: &str| -> bool {
            let Some(rest) = name.strip_prefix(prefix) else {
                return false;
            };
            let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
            match pid.parse::<u32>() {
                Ok(pid) => {
                    pid != std::process::id()
                        && Path::new("/proc/self").exists()
                        && !Path::new(&format!("/proc/{pid}")).exists()
                }
                Err(_) => false,
            }
        };
        for path in sorted_entries(&self.root) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if dead(&name, ".ckpt-scratch-") {
                let _ = fs::remove_dir_all(&path);
            }
        }
        for path in sorted_entries(&self.blobs_dir()) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if dead(&name, ".ckpt-partial-") {
                let _ = fs::remove_file(&path);
            }
        }
    }
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => Vec::new(),
    };
    v.sort();
    v
}

/// The digest of a file's content, read in full.
pub(crate) fn sha256_file(path: &Path) -> Result<Digest> {
    let mut file = File::open(path).map_err(io_err("open", path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(OllamaError::io("read", path, &e)),
        };
        hasher.update(&buf[..n]);
    }
    Ok(Digest::from_sha256(&hasher.finalize()))
}

/// Refreshes a blob's mtime: Ollama prunes unreferenced blobs older than an hour at start-up.
fn touch(path: &Path) {
    if let Ok(f) = fs::OpenOptions::new().append(true).open(path) {
        let _ = f.set_modified(SystemTime::now());
    }
}

#[cfg(unix)]
fn set_mode_644(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(path, fs::Permissions::from_mode(0o644));
}

#[cfg(not(unix))]
fn set_mode_644(_path: &Path) {}
