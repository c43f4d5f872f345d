//! Header-only inspection of remote checkpoints: a speculative ranged read per file, a second one
//! only when the header is longer, shard headers fetched concurrently.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{RemoteError, Result};
use crate::http::{Context, Method, Redirects};
use crate::hub::{is_commit_hash, Hub, RepoFile};
use crate::uri::{HubUri, RemoteLocation};

/// The first read of every file: most safetensors headers (and many GGUF ones) fit.
pub(crate) const SPECULATIVE_READ: u64 = 100_000;
/// Shard headers fetched at the same time.
pub(crate) const MAX_PARALLEL_HEADERS: usize = 8;
/// Index files larger than this are refused.
const MAX_INDEX_BYTES: u64 = 64 << 20;

/// One tensor as its file's header describes it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RemoteTensor {
    /// The tensor's name in the file.
    pub name: String,
    /// Its dtype as ckpt names it (`F32`, `BF16`, `Q4_K`, …).
    pub dtype: String,
    /// Its shape, outermost dimension first (PyTorch order; GGUF dimensions reversed to it).
    pub shape: Vec<u64>,
    /// Size of its data in bytes.
    pub bytes: u64,
}

/// One remote file and what its header says.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteFile {
    /// The path inside the repository, or the URL.
    pub path: String,
    /// The URL read (a Hub resolve URL pinned to the commit, or the URL given).
    pub url: String,
    /// File size in bytes, when the server told it.
    pub size: Option<u64>,
    /// `safetensors`, `gguf` or `pytorch` (header not readable remotely).
    pub format: String,
    /// The tensors in header order (empty for a pickled checkpoint).
    pub tensors: Vec<RemoteTensor>,
    /// safetensors' `__metadata__`, or a GGUF file's scalar key/values as text.
    pub metadata: BTreeMap<String, String>,
    /// Non-string GGUF values (arrays) as JSON, like `values` of a local inspect.
    pub values: BTreeMap<String, Value>,
    /// Why the file has no tensor list (a `.bin` whose pickle cannot be read over HTTP).
    pub note: Option<String>,
}

/// What [`inspect_remote`] / [`Hub::inspect`] found: the headers of every file of a remote
/// checkpoint, read with HTTP range requests.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteInspection {
    /// The location inspected, as `hf://…` or the URL.
    pub location: String,
    /// `safetensors`, `gguf` or `pytorch`.
    pub format: String,
    /// The commit the Hub revision resolved to (Hub locations only).
    pub commit: Option<String>,
    /// The files read: one, or every shard of an index or GGUF split, in order.
    pub files: Vec<RemoteFile>,
    /// The checkpoint's metadata: of its one file, or merged over the shards and the index
    /// (the first value of a key wins).
    pub metadata: BTreeMap<String, String>,
    /// Non-string GGUF values (arrays) as JSON.
    pub values: BTreeMap<String, Value>,
    /// What could not be read remotely and why (a pickled `.bin`).
    pub notes: Vec<String>,
    /// HTTP requests sent (redirect hops and retries included).
    pub requests: u64,
    /// Response body bytes received.
    pub bytes_transferred: u64,
}

impl RemoteInspection {
    /// Every tensor of every file, in file order.
    pub fn tensors(&self) -> impl Iterator<Item = &RemoteTensor> {
        self.files.iter().flat_map(|f| f.tensors.iter())
    }

    /// Parameters per dtype and in total; a 0-d tensor counts 1 (as huggingface_hub counts).
    pub fn parameter_counts(&self) -> (BTreeMap<String, u64>, u64) {
        let mut per = BTreeMap::new();
        let mut total = 0u64;
        for t in self.tensors() {
            let n: u64 = t.shape.iter().product();
            *per.entry(t.dtype.clone()).or_insert(0) += n;
            total += n;
        }
        (per, total)
    }

    /// The JSON `ckpt inspect --json` prints for local files (same keys), plus `requests`,
    /// `bytes_transferred`, `commit` and `notes`.
    pub fn to_json(&self) -> Value {
        let (per_dtype, total) = self.parameter_counts();
        let sharded = self.files.len() > 1;
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                let mut v = json!({
                    "path": f.path,
                    "tensors": f.tensors.len(),
                    "bytes": f.tensors.iter().map(|t| t.bytes).sum::<u64>(),
                    "file_size": f.size.unwrap_or(0),
                    "url": f.url,
                });
                if let Some(n) = &f.note {
                    v["note"] = json!(n);
                }
                v
            })
            .collect();
        let mut tensors = Vec::new();
        for f in &self.files {
            let file_name = f.path.rsplit('/').next().unwrap_or(&f.path);
            for t in &f.tensors {
                let mut v =
                    json!({ "name": t.name, "dtype": t.dtype, "shape": t.shape, "bytes": t.bytes });
                if sharded {
                    v["file"] = json!(file_name);
                }
                tensors.push(v);
            }
        }
        json!({
            "format": self.format,
            "files": files,
            "tensors": tensors,
            "parameters": per_dtype,
            "total_parameters": total,
            "total_bytes": self.tensors().map(|t| t.bytes).sum::<u64>(),
            "metadata": self.metadata,
            "values": self.values,
            "location": self.location,
            "commit": self.commit,
            "notes": self.notes,
            "requests": self.requests,
            "bytes_transferred": self.bytes_transferred,
        })
    }
}

/// Inspects `hf://…` or an http(s) URL with the configuration from the environment.
pub fn inspect_remote(uri: &str) -> Result<RemoteInspection> {
    Hub::from_env().inspect(uri)
}

use ckpt_core::hf::{self, Weights};
use ckpt_core::sniff::{kind_of_name as kind_of, NameKind as Kind};

/// One file to read: where it is and what to call it.
struct Target {
    display: String,
    url: String,
    ctx: Option<Context>,
}

impl Hub {
    /// Inspects `hf://ORG/NAME[@REVISION][/PATH]` or an http(s) URL of one file: reads the
    /// headers of the safetensors or GGUF file (or every shard of an index or split) with range
    /// requests; for a repository or folder, picks the weights as transformers would.
    ///
    /// Fails with [`RemoteError::Usage`] offline (remote inspect needs the network), and with
    /// the Hub's errors (not found, unauthorized, …) or [`RemoteError::Format`] for a bad header.
    pub fn inspect(&self, uri: &str) -> Result<RemoteInspection> {
        let location = RemoteLocation::parse(uri)?;
        let start_requests = self.client.stats.requests();
        let start_bytes = self.client.stats.bytes();
        if self.config().offline {
            return Err(RemoteError::Usage(format!(
                "{uri}: HF_HUB_OFFLINE is set; remote inspect needs the network (use `ckpt inspect` on the cached snapshot instead)"
            )));
        }
        let mut inspection = match &location {
            RemoteLocation::Hub(hub_uri) => self.inspect_hub(hub_uri)?,
            RemoteLocation::Url(url) => {
                let target = Target {
                    display: url.clone(),
                    url: url.clone(),
                    ctx: None,
                };
                let base = url.split(['?', '#']).next().unwrap_or(url);
                let base_dir = &base[..base.rfind('/').map(|i| i + 1).unwrap_or(base.len())];
                self.inspect_targets(
                    kind_of(url),
                    target,
                    &|shard: &str, _commit: Option<&str>| Target {
                        display: shard.to_string(),
                        url: format!("{base_dir}{shard}"),
                        ctx: None,
                    },
                )?
            }
        };
        inspection.location = location.to_string();
        inspection.requests = self.client.stats.requests() - start_requests;
        inspection.bytes_transferred = self.client.stats.bytes() - start_bytes;
        Ok(inspection)
    }

    fn inspect_hub(&self, uri: &HubUri) -> Result<RemoteInspection> {
        let revision = uri.revision_or_main().to_string();
        let (path, commit) = match uri.path.as_deref().filter(|p| kind_of(p) != Kind::Unknown) {
            Some(p) => (p.to_string(), None),
            None => {
                let info = self.repo_info(uri, &revision)?;
                let folder = uri.path.clone().unwrap_or_default();
                let chosen = choose_weights(&info.files, &folder)
                    .map_err(|msg| RemoteError::Usage(format!("{uri}: {msg}")))?;
                (chosen, Some(info.sha))
            }
        };
        // Pin every read to the commit so a branch moving mid-way cannot mix revisions.
        let pinned = commit.clone().unwrap_or(revision);
        let target_for = |p: &str, rev: &str| Target {
            display: p.to_string(),
            url: self.resolve_url(uri, rev, p),
            ctx: Some(Hub::context(uri, rev, p)),
        };
        let dir = path
            .rfind('/')
            .map(|i| &path[..=i])
            .unwrap_or("")
            .to_string();
        let mut inspection = self.inspect_targets(
            kind_of(&path),
            target_for(&path, &pinned),
            &|shard, shard_commit| {
                target_for(&format!("{dir}{shard}"), shard_commit.unwrap_or(&pinned))
            },
        )?;
        if commit.is_some() {
            inspection.commit = commit;
        }
        Ok(inspection)
    }

    /// `shard_target(name, commit)` locates a file next to `target`; `commit`, when the Hub told it,
    /// pins the read to that commit.
    fn inspect_targets(
        &self,
        kind: Kind,
        target: Target,
        shard_target: &dyn Fn(&str, Option<&str>) -> Target,
    ) -> Result<RemoteInspection> {
        let mut inspection = RemoteInspection {
            location: String::new(),
            format: "safetensors".into(),
            commit: None,
            files: Vec::new(),
            metadata: BTreeMap::new(),
            values: BTreeMap::new(),
            notes: Vec::new(),
            requests: 0,
            bytes_transferred: 0,
        };
        match kind {
            Kind::Index => {
                let (response, body) =
                    self.client
                        .get_bytes(&target.url, MAX_INDEX_BYTES, target.ctx.as_ref())?;
                if ckpt_core::sniff::is_lfs_pointer(&body) {
                    return Err(RemoteError::LfsPointer { what: target.url });
                }
                // Shards come from the index's commit even if the branch moves meanwhile.
                let commit = response
                    .any_header("x-repo-commit")
                    .map(|c| c.trim().to_string())
                    .filter(|c| is_commit_hash(c));
                inspection.commit = commit.clone();
                let hf::ShardIndex {
                    shards,
                    weight_map,
                    metadata: index_metadata,
                } = parse_index(&body, &target.url)?;
                let targets: Vec<Target> = shards
                    .iter()
                    .map(|s| shard_target(s, commit.as_deref()))
                    .collect();
                let files = self.read_headers_concurrently(&targets)?;
                check_against_index(&files, &weight_map, &target.url)?;
                for f in &files {
                    for (k, v) in &f.metadata {
                        inspection
                            .metadata
                            .entry(k.clone())
                            .or_insert_with(|| v.clone());
                    }
                }
                for (k, v) in index_metadata {
                    inspection.metadata.entry(k).or_insert(v);
                }
                inspection.format = files
                    .first()
                    .map(|f| f.format.clone())
                    .unwrap_or_else(|| "safetensors".into());
                inspection.files = files;
            }
            Kind::Pickle => {
                let response = self.client.send(
                    Method::Head,
                    &target.url,
                    None,
                    Redirects::Follow,
                    target.ctx.as_ref(),
                )?;
                let size = response
                    .any_header("x-linked-size")
                    .and_then(|v| v.trim().parse().ok())
                    .or(response.content_length());
                let note = format!(
                    "{} is a pickled PyTorch checkpoint ({}): its tensor list lives in a zip/pickle structure that cannot be read with range requests; download it with `ckpt pull` and inspect the local copy",
                    target.display,
                    size.map(|s| format!("{s} bytes")).unwrap_or_else(|| "size unknown".into())
                );
                inspection.format = "pytorch".into();
                inspection.notes.push(note.clone());
                inspection.files.push(RemoteFile {
                    path: target.display,
                    url: target.url,
                    size,
                    format: "pytorch".into(),
                    tensors: Vec::new(),
                    metadata: BTreeMap::new(),
                    values: BTreeMap::new(),
                    note: Some(note),
                });
            }
            Kind::Safetensors | Kind::Gguf | Kind::Unknown => {
                let file = self.read_header(&target)?;
                inspection.format = file.format.clone();
                inspection.metadata = file.metadata.clone();
                inspection.values = file.values.clone();
                let others = if file.format == "gguf" {
                    crate::gguf::other_split_shards(&file)
                } else {
                    None
                };
                inspection.files.push(file);
                if let Some(names) = others {
                    // A llama.cpp split: the model's KVs are the first shard's.
                    let targets: Vec<Target> =
                        names.iter().map(|n| shard_target(n, None)).collect();
                    inspection
                        .files
                        .extend(self.read_headers_concurrently(&targets)?);
                }
            }
        }
        Ok(inspection)
    }

    fn read_headers_concurrently(&self, targets: &[Target]) -> Result<Vec<RemoteFile>> {
        let results: Mutex<Vec<Option<Result<RemoteFile>>>> =
            Mutex::new((0..targets.len()).map(|_| None).collect());
        let next = std::sync::atomic::AtomicUsize::new(0);
        let workers = MAX_PARALLEL_HEADERS.min(targets.len()).max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(target) = targets.get(i) else { break };
                    let r = self.read_header(target);
                    let failed = r.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    if failed {
                        // Stop handing out work; the first error is reported.
                        next.store(targets.len(), std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let mut files = Vec::with_capacity(targets.len());
        for r in results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
        {
            files.push(r?);
        }
        Ok(files)
    }

    /// Reads one file's header: one speculative range read, a second only when needed.
    fn read_header(&self, target: &Target) -> Result<RemoteFile> {
        let first =
            self.client
                .read_range(&target.url, 0, SPECULATIVE_READ, target.ctx.as_ref())?;
        if ckpt_core::sniff::is_lfs_pointer(&first.bytes) {
            return Err(RemoteError::LfsPointer {
                what: target.url.clone(),
            });
        }
        if first.bytes.starts_with(ckpt_core::sniff::GGUF_MAGIC)
            || (kind_of(&target.display) == Kind::Gguf && first.bytes.len() >= 4)
        {
            return crate::gguf::read_gguf_header(
                self,
                target.display.clone(),
                &target.url,
                first,
                target.ctx.as_ref(),
            );
        }
        let path = Path::new(&target.display);
        let mut bytes = first.bytes;
        let file_len = first.file_len;
        if let Some(n) = ckpt_safetensors::header_len_prefix(&bytes, path)? {
            let need = 8 + n;
            let have = bytes.len() as u64;
            let available = file_len.unwrap_or(u64::MAX);
            if need > have && have < available {
                let more = need.min(available) - have;
                let second =
                    self.client
                        .read_range(&first.final_url, have, more, target.ctx.as_ref())?;
                bytes.extend_from_slice(&second.bytes);
            }
        }
        let header = ckpt_safetensors::parse_header(&bytes, file_len, path)?;
        let tensors = header
            .entries
            .iter()
            .map(|e| RemoteTensor {
                name: e.name.clone(),
                dtype: e.dtype.to_string(),
                shape: e.shape.clone(),
                bytes: e.end - e.begin,
            })
            .collect();
        Ok(RemoteFile {
            path: target.display.clone(),
            url: target.url.clone(),
            size: file_len,
            format: "safetensors".into(),
            tensors,
            metadata: header.metadata.unwrap_or_default(),
            values: BTreeMap::new(),
            note: None,
        })
    }
}

/// Picks the weights of a repository folder the way a local folder is opened
/// ([`ckpt_core::hf::choose_weights`]; here a GGUF file counts as weights). Several unindexed
/// files cannot be inspected as one: the user names one.
pub(crate) fn choose_weights(
    files: &[RepoFile],
    folder: &str,
) -> std::result::Result<String, String> {
    let prefix = if folder.is_empty() {
        String::new()
    } else {
        format!("{}/", folder.trim_end_matches('/'))
    };
    let here: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix(prefix.as_str()))
        .filter(|rest| !rest.contains('/'))
        .collect();
    match hf::choose_weights(&here, true) {
        Some(Weights::Index(name)) => return Ok(format!("{prefix}{name}")),
        Some(Weights::Files(names)) if names.len() == 1 => {
            return Ok(format!("{prefix}{}", names[0]))
        }
        Some(Weights::Files(names)) => {
            let what = match kind_of(&names[0]) {
                Kind::Gguf => "several GGUF files",
                Kind::Safetensors => "several safetensors files without an index",
                _ => "several PyTorch files without an index",
            };
            return Err(format!(
                "{what} ({}); name the one to inspect, e.g. hf://…/{prefix}{}",
                names.join(", "),
                names[0]
            ));
        }
        None => {}
    }
    // Diffusers-style repositories keep weights in sub-folders (unet/, transformer/, …).
    let mut folders: Vec<&str> = files
        .iter()
        .filter_map(|f| f.path.strip_prefix(prefix.as_str()))
        .filter(|rest| kind_of(rest) != Kind::Unknown)
        .filter_map(|rest| rest.split_once('/').map(|(dir, _)| dir))
        .collect();
    folders.sort();
    folders.dedup();
    let hint = if folders.is_empty() {
        String::new()
    } else {
        format!(
            "; weights are in sub-folders: {} (name one, e.g. hf://…/{prefix}{})",
            folders.join(", "),
            folders[0]
        )
    };
    Err(format!(
        "no weights found in {} (expected model.safetensors, a *.safetensors.index.json, *.gguf or pytorch_model.bin){hint}",
        if folder.is_empty() { "the repository root".to_string() } else { format!("folder '{folder}'") }
    ))
}

/// The shard names of an index (sorted, deduplicated), its weight_map and its string metadata.
fn parse_index(body: &[u8], url: &str) -> Result<hf::ShardIndex> {
    hf::parse_index(body).map_err(|msg| RemoteError::InvalidResponse {
        url: url.to_string(),
        msg,
    })
}

/// The same consistency checks as opening a local sharded checkpoint.
fn check_against_index(
    files: &[RemoteFile],
    weight_map: &BTreeMap<String, String>,
    index_url: &str,
) -> Result<()> {
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for f in files {
        let shard_name = f.path.rsplit('/').next().unwrap_or(&f.path);
        for t in &f.tensors {
            if let Some(previous) = seen.insert(&t.name, &f.path) {
                return Err(RemoteError::InvalidResponse {
                    url: f.url.clone(),
                    msg: format!(
                        "tensor '{}' appears in both {previous} and {}",
                        t.name, f.path
                    ),
                });
            }
            match weight_map.get(&t.name) {
                Some(listed) if listed.rsplit('/').next() != Some(shard_name) => {
                    return Err(RemoteError::InvalidResponse {
                        url: f.url.clone(),
                        msg: format!(
                            "tensor '{}' is in this shard but the index says it is in '{listed}'",
                            t.name
                        ),
                    })
                }
                None => {
                    return Err(RemoteError::InvalidResponse {
                        url: f.url.clone(),
                        msg: format!("tensor '{}' is not listed in the index {index_url}", t.name),
                    })
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(names: &[&str]) -> Vec<RepoFile> {
        names
            .iter()
            .map(|n| RepoFile {
                path: n.to_string(),
                size: None,
                lfs_sha256: None,
            })
            .collect()
    }

    #[test]
    fn weight_choice_follows_local_folder_rules() {
        let f = files(&[
            "config.json",
            "model.safetensors",
            "pytorch_model.bin",
            "model.safetensors.index.json",
        ]);
        // transformers loads model.safetensors before looking for its index
        assert_eq!(choose_weights(&f, "").unwrap(), "model.safetensors");
        let f = files(&["pytorch_model.bin", "model.safetensors", "x.gguf"]);
        assert_eq!(choose_weights(&f, "").unwrap(), "model.safetensors");
        let f = files(&["a.Q4_K_M.gguf"]);
        assert_eq!(choose_weights(&f, "").unwrap(), "a.Q4_K_M.gguf");
        assert!(choose_weights(&files(&["a.Q4_0.gguf", "a.Q8_0.gguf"]), "")
            .unwrap_err()
            .contains("several GGUF"));
        assert_eq!(
            choose_weights(&files(&["training_args.bin", "pytorch_model.bin"]), "").unwrap(),
            "pytorch_model.bin"
        );
        let f = files(&[
            "model_index.json",
            "unet/diffusion_pytorch_model.safetensors",
            "vae/diffusion_pytorch_model.safetensors",
        ]);
        let e = choose_weights(&f, "").unwrap_err();
        assert!(e.contains("unet, vae"), "{e}");
        assert_eq!(
            choose_weights(&f, "unet").unwrap(),
            "unet/diffusion_pytorch_model.safetensors"
        );
    }
}
