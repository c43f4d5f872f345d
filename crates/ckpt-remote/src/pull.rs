//! Downloads into the huggingface_hub cache: metadata HEAD, per-blob lock, `.incomplete` file
//! resumed with `Range`, checksum verified, then renamed into `blobs/` and linked from the snapshot.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use ckpt_core::progress::{self, ProgressEvent, SharedProgress};
use globset::GlobSet;
use sha2::Digest;

use crate::cache::RepoCache;
use crate::error::{RemoteError, Result};
use crate::http::{io_network, parse_content_range, Context, Method, Redirects};
use crate::hub::{check_repo_path, file_globs, is_commit_hash, FileMetadata, Hub, RepoFile};
use crate::uri::{check_repo_id, check_revision, HubUri, RemoteLocation};

/// Parallel downloads when [`PullOptions::workers`] is 0.
pub(crate) const DEFAULT_WORKERS: usize = 8;
/// The most a download may bring when nobody announced its size (no X-Linked-Size or
/// Content-Length in the metadata request, none in the response either: a chunked body). Only
/// regular git files can get there (the Hub announces every LFS file's size, and ckpt refuses an
/// LFS file without one); the Hub keeps those under 10 MB, so 64 MiB is ample. The free space of
/// the cache's filesystem bounds it too. Past the bound the download stops at once and its
/// partial file is removed.
pub const MAX_UNSIZED_DOWNLOAD: u64 = 64 << 20;

const COPY_BUFFER: usize = 1 << 20;

/// Options of [`pull`](fn@pull) / [`Hub::pull`] (`ckpt pull`'s flags, huggingface_hub's
/// `snapshot_download` arguments).
#[derive(Clone, Default)]
pub struct PullOptions {
    /// Branch, tag, commit or `refs/pr/N` (default: the revision in the URI, else `main`).
    pub revision: Option<String>,
    /// Only files matching one of these globs (fnmatch-like: `*` also matches `/`; a pattern
    /// ending in `/` means everything under that folder). Empty = all files.
    pub include: Vec<String>,
    /// Skip files matching one of these globs.
    pub exclude: Vec<String>,
    /// Cache root instead of `$HF_HUB_CACHE` / `$HF_HOME/hub`.
    pub cache_dir: Option<PathBuf>,
    /// Parallel downloads (0 = 8).
    pub workers: usize,
    /// Download into this folder instead of the cache, as huggingface_hub's
    /// `snapshot_download(local_dir=...)` / `hf download --local-dir` do since v0.23: real files
    /// at `<local_dir>/<path>`, and per file `.cache/huggingface/download/<path>.metadata` (commit,
    /// etag, timestamp) so a later pull (ours or huggingface_hub's) skips what is up to date.
    pub local_dir: Option<PathBuf>,
    /// Receives a `"downloading"` phase measuring the bytes to download (sizes from the
    /// listing; 0 when unknown), advanced after every chunk, with a
    /// [`File`](ProgressEvent::File) event per chunk and when a file is complete (downloads run
    /// in parallel).
    pub progress: Option<SharedProgress>,
}

/// One file of a pull.
#[derive(Debug, Clone)]
pub struct PulledFile {
    /// Path inside the repository.
    pub path: String,
    /// `snapshots/<commit>/<path>` (or `<local_dir>/<path>`).
    pub local_path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// Bytes downloaded for it by this pull (0 when it was cached).
    pub downloaded: u64,
    /// It was already complete in the cache (or the local folder): nothing was downloaded.
    pub cached: bool,
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullReport {
    /// The repository id (`ORG/NAME`).
    pub repo: String,
    /// The revision asked for (`main` by default).
    pub revision: String,
    /// The commit it resolved to.
    pub commit: String,
    /// `snapshots/<commit>` in the cache, or the [`PullOptions::local_dir`].
    pub snapshot: PathBuf,
    /// The files selected by the include/exclude patterns, each now present locally.
    pub files: Vec<PulledFile>,
    /// Bytes downloaded by this pull, over all files.
    pub downloaded_bytes: u64,
    /// HTTP requests sent (redirect hops and retries included).
    pub requests: u64,
    /// Response body bytes received.
    pub bytes_transferred: u64,
}

/// Pulls `repo` (`ORG/NAME` or `hf://ORG/NAME[@REV]`) with the configuration from the environment.
pub fn pull(repo: &str, opts: &PullOptions) -> Result<PullReport> {
    Hub::from_env().pull(repo, opts)
}

/// The local path for an `hf://` URI (a file's snapshot path, or a folder's / repository's
/// snapshot folder), downloading what is missing; with HF_HUB_OFFLINE=1 only the cache is used.
pub fn resolve_to_local(uri: &str) -> Result<PathBuf> {
    Hub::from_env().resolve_to_local(uri)
}

/// Extensions of weight files: when a repository has safetensors weights, resolving it as a
/// whole skips the other formats (a repository often carries the same weights 3 times).
const ALTERNATE_WEIGHT_EXTS: &[&str] = &[
    ".bin",
    ".pt",
    ".pth",
    ".ckpt",
    ".h5",
    ".msgpack",
    ".onnx",
    ".onnx_data",
    ".ot",
    ".tflite",
    ".gguf",
    ".mlmodel",
    ".pb",
];

fn parse_repo(repo: &str) -> Result<HubUri> {
    let uri = if repo.starts_with("hf://") {
        repo.to_string()
    } else {
        format!("hf://{repo}")
    };
    match RemoteLocation::parse(&uri)? {
        RemoteLocation::Hub(h) => Ok(h),
        RemoteLocation::Url(u) => Err(RemoteError::Usage(format!(
            "{u}: pull needs a Hub repository (ORG/NAME or hf://ORG/NAME)"
        ))),
    }
}

/// A `HubUri` can be built by hand: its repository id and revision are checked again before
/// they name anything in the cache.
fn check_uri(uri: &HubUri) -> Result<()> {
    check_repo_id(&uri.repo_id).map_err(RemoteError::Usage)?;
    if let Some(rev) = &uri.revision {
        check_revision(rev).map_err(RemoteError::Usage)?;
    }
    Ok(())
}

struct Filter {
    include: Option<GlobSet>,
    exclude: Option<GlobSet>,
}

impl Filter {
    fn new(opts: &PullOptions) -> Result<Filter> {
        Ok(Filter {
            include: file_globs(&opts.include)?,
            exclude: file_globs(&opts.exclude)?,
        })
    }
    fn accepts(&self, path: &str) -> bool {
        self.include.as_ref().is_none_or(|g| g.is_match(path))
            && !self.exclude.as_ref().is_some_and(|g| g.is_match(path))
    }
}

/// Where one pull reports its progress.
struct Progress {
    callback: Option<SharedProgress>,
}

impl Hub {
    fn cache_for(&self, uri: &HubUri, cache_dir: Option<&Path>) -> RepoCache {
        RepoCache::new(cache_dir.unwrap_or(&self.config().cache_dir), uri)
    }

    /// `snapshot_download`: pulls `repo` (`ORG/NAME` or `hf://ORG/NAME[@REV]`, not a file) into
    /// the cache (or [`PullOptions::local_dir`]): every file of the revision that the patterns
    /// select, skipping what is already there, resuming partial downloads and checking each
    /// blob's hash. Offline, answers from the cache only ([`RemoteError::NotCached`]); when the
    /// Hub cannot be reached, a revision already in the cache is used.
    pub fn pull(&self, repo: &str, opts: &PullOptions) -> Result<PullReport> {
        let mut uri = parse_repo(repo)?;
        if let Some(rev) = &opts.revision {
            check_revision(rev).map_err(RemoteError::Usage)?;
            uri.revision = Some(rev.clone());
        }
        if let Some(p) = uri.path.take() {
            return Err(RemoteError::Usage(format!(
                "pull takes a repository, not a file ('{p}'); use `include` '{p}'"
            )));
        }
        self.pull_filtered(&uri, opts, &Filter::new(opts)?)
    }

    fn pull_filtered(
        &self,
        uri: &HubUri,
        opts: &PullOptions,
        filter: &Filter,
    ) -> Result<PullReport> {
        let start_requests = self.client.stats.requests();
        let start_bytes = self.client.stats.bytes();
        check_uri(uri)?;
        let revision = uri.revision_or_main().to_string();
        let cache = self.cache_for(uri, opts.cache_dir.as_deref());
        let local_dir = opts.local_dir.as_deref().map(LocalDir::new);
        if self.config().offline {
            if local_dir.is_some() {
                return Err(RemoteError::Usage(
                    "`local_dir` needs the Hub, and HF_HUB_OFFLINE is set".into(),
                ));
            }
            return self.pull_from_cache(uri, &cache, &revision, filter);
        }
        let info = match self.repo_info(uri, &revision) {
            Ok(info) => info,
            Err(e)
                if local_dir.is_none()
                    && e.is_connection_failure()
                    && cache.cached_commit(&revision).is_some() =>
            {
                return self
                    .pull_from_cache(uri, &cache, &revision, filter)
                    .map_err(|_| e);
            }
            Err(e) => return Err(e),
        };
        let commit = info.sha.clone();
        let wanted: Vec<RepoFile> = info
            .files
            .into_iter()
            .filter(|f| filter.accepts(&f.path))
            .collect();
        match &local_dir {
            Some(l) => l.ensure_layout()?,
            None => {
                cache.ensure_layout()?;
                cache.write_ref(&revision, &commit)?;
            }
        }
        let progress = Progress {
            callback: opts.progress.clone(),
        };
        progress::emit(
            progress.callback.as_ref(),
            ProgressEvent::Start {
                phase: "downloading",
                total: wanted.iter().filter_map(|f| f.size).sum(),
            },
        );

        let results: Mutex<Vec<Option<Result<PulledFile>>>> =
            Mutex::new((0..wanted.len()).map(|_| None).collect());
        let next = AtomicUsize::new(0);
        let workers = if opts.workers == 0 {
            DEFAULT_WORKERS
        } else {
            opts.workers
        }
        .min(wanted.len())
        .max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(file) = wanted.get(i) else { break };
                    let r = match &local_dir {
                        Some(l) => {
                            self.ensure_local_file(uri, l, &cache, &commit, &file.path, &progress)
                        }
                        None => self.ensure_file(uri, &cache, &commit, &file.path, None, &progress),
                    };
                    let failed = r.is_err();
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
                    if failed {
                        next.store(wanted.len(), Ordering::Relaxed);
                    }
                });
            }
        });
        progress::emit(progress.callback.as_ref(), ProgressEvent::Finish);
        let mut files = Vec::with_capacity(wanted.len());
        for r in results
            .into_inner()
            .unwrap_or_else(|e| e.into_inner())
            .into_iter()
            .flatten()
        {
            files.push(r?);
        }
        Ok(PullReport {
            repo: uri.repo_id.clone(),
            revision,
            snapshot: match &local_dir {
                Some(l) => l.root.clone(),
                None => cache.snapshot_dir(&commit),
            },
            commit,
            downloaded_bytes: files.iter().map(|f| f.downloaded).sum(),
            files,
            requests: self.client.stats.requests() - start_requests,
            bytes_transferred: self.client.stats.bytes() - start_bytes,
        })
    }

    fn pull_from_cache(
        &self,
        uri: &HubUri,
        cache: &RepoCache,
        revision: &str,
        filter: &Filter,
    ) -> Result<PullReport> {
        let not_cached = || RemoteError::NotCached {
            what: format!("{uri} (revision '{revision}')"),
            cache: cache.folder.clone(),
        };
        let commit = cache.cached_commit(revision).ok_or_else(not_cached)?;
        let snapshot = cache.snapshot_dir(&commit);
        if !snapshot.is_dir() {
            return Err(not_cached());
        }
        let mut files = Vec::new();
        walk_snapshot(&snapshot, "", &mut |path, local| {
            if filter.accepts(path) {
                let size = fs::metadata(local).map(|m| m.len()).unwrap_or(0);
                files.push(PulledFile {
                    path: path.to_string(),
                    local_path: local.to_path_buf(),
                    size,
                    downloaded: 0,
                    cached: true,
                });
            }
        })?;
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(PullReport {
            repo: uri.repo_id.clone(),
            revision: revision.to_string(),
            commit,
            snapshot,
            files,
            downloaded_bytes: 0,
            requests: 0,
            bytes_transferred: 0,
        })
    }

    /// `hf_hub_download`: the snapshot path of one file, downloading it when missing.
    pub fn download_file(
        &self,
        uri: &HubUri,
        path: &str,
        cache_dir: Option<&Path>,
    ) -> Result<PathBuf> {
        check_repo_path(path).map_err(|msg| RemoteError::Usage(format!("{uri}: {msg}")))?;
        check_uri(uri)?;
        let revision = uri.revision_or_main().to_string();
        let cache = self.cache_for(uri, cache_dir);
        let cached_pointer = || {
            cache
                .cached_commit(&revision)
                .map(|c| cache.pointer_path(&c, path))
                .filter(|p| p.exists())
        };
        if is_commit_hash(&revision) {
            if let Some(p) = cached_pointer() {
                return Ok(p);
            }
        }
        let known_missing = |commit: &str| RemoteError::EntryNotFound {
            repo: uri.repo_id.clone(),
            revision: revision.clone(),
            path: path.to_string(),
            url: self.resolve_url(uri, commit, path),
            commit: Some(commit.to_string()),
        };
        if self.config().offline {
            // huggingface_hub's `.no_exist` marker: the file is known to be absent at that commit.
            if let Some(commit) = cache.cached_commit(&revision) {
                if cached_pointer().is_none() && cache.no_exist_path(&commit, path).exists() {
                    return Err(known_missing(&commit));
                }
            }
            return cached_pointer().ok_or_else(|| RemoteError::NotCached {
                what: format!("{} (revision '{revision}')", uri.with_path(path)),
                cache: cache.folder.clone(),
            });
        }
        let meta = match self.file_metadata(uri, &revision, path) {
            Ok(m) => m,
            Err(e) if e.is_connection_failure() => return cached_pointer().ok_or(e),
            Err(RemoteError::EntryNotFound {
                commit: Some(commit),
                ..
            }) if is_commit_hash(&commit) => {
                // Remember the absence like huggingface_hub does (best effort).
                let _ = cache.write_ref(&revision, &commit);
                let marker = cache.no_exist_path(&commit, path);
                if cache.check_inside(&marker).is_err() {
                    return Err(known_missing(&commit));
                }
                if let Some(dir) = marker.parent() {
                    let _ = fs::create_dir_all(dir).and_then(|_| File::create(&marker));
                }
                return Err(known_missing(&commit));
            }
            Err(e) => return Err(e),
        };
        cache.ensure_layout()?;
        cache.write_ref(&revision, &meta.commit)?;
        let progress = Progress { callback: None };
        let commit = meta.commit.clone();
        self.ensure_file(uri, &cache, &commit, path, Some(meta), &progress)
            .map(|f| f.local_path)
    }

    /// Resolves an `hf://` URI to a local path (see [`resolve_to_local`]).
    pub fn resolve_to_local(&self, uri: &str) -> Result<PathBuf> {
        let uri = match RemoteLocation::parse(uri)? {
            RemoteLocation::Hub(h) => h,
            RemoteLocation::Url(u) => {
                return Err(RemoteError::Usage(format!(
                    "{u}: only hf:// locations can be resolved to the local cache"
                )))
            }
        };
        match uri.path.clone() {
            Some(path) => match self.download_file(&uri, &path, None) {
                Ok(p) => Ok(p),
                Err(RemoteError::EntryNotFound { .. }) | Err(RemoteError::NotCached { .. }) => {
                    // Not a file: maybe a folder.
                    let opts = PullOptions {
                        include: vec![format!("{path}/")],
                        ..Default::default()
                    };
                    let report = self.pull_filtered(
                        &HubUri {
                            path: None,
                            ..uri.clone()
                        },
                        &opts,
                        &Filter::new(&opts)?,
                    )?;
                    let dir = report.snapshot.join(&path);
                    if report.files.is_empty() || !dir.is_dir() {
                        return Err(RemoteError::EntryNotFound {
                            repo: uri.repo_id.clone(),
                            revision: uri.revision_or_main().to_string(),
                            path,
                            url: self.resolve_url(&uri, uri.revision_or_main(), ""),
                            commit: Some(report.commit),
                        });
                    }
                    Ok(dir)
                }
                Err(e) => Err(e),
            },
            None => {
                let revision = uri.revision_or_main().to_string();
                let cache = self.cache_for(&uri, None);
                if self.config().offline {
                    return self
                        .pull_from_cache(
                            &uri,
                            &cache,
                            &revision,
                            &Filter {
                                include: None,
                                exclude: None,
                            },
                        )
                        .map(|r| r.snapshot);
                }
                let info = self.repo_info(&uri, &revision)?;
                let exclude = default_excludes(&info.files)
                    .map_err(|msg| RemoteError::Usage(format!("{uri}: {msg}")))?;
                let opts = PullOptions {
                    revision: Some(info.sha.clone()),
                    exclude,
                    ..Default::default()
                };
                let pinned = HubUri {
                    revision: Some(info.sha.clone()),
                    ..uri.clone()
                };
                let report = self.pull_filtered(&pinned, &opts, &Filter::new(&opts)?)?;
                cache.write_ref(&revision, &report.commit)?;
                Ok(report.snapshot)
            }
        }
    }

    /// Makes `snapshots/<commit>/<path>` exist: nothing when it does, a link when the blob is
    /// there, a download otherwise.
    fn ensure_file(
        &self,
        uri: &HubUri,
        cache: &RepoCache,
        commit: &str,
        path: &str,
        meta: Option<FileMetadata>,
        progress: &Progress,
    ) -> Result<PulledFile> {
        check_repo_path(path).map_err(|msg| RemoteError::InvalidResponse {
            url: self.resolve_url(uri, commit, ""),
            msg,
        })?;
        let pointer = cache.pointer_path(commit, path);
        if meta.is_none() && pointer.exists() {
            let size = fs::metadata(&pointer).map(|m| m.len()).unwrap_or(0);
            return Ok(PulledFile {
                path: path.to_string(),
                local_path: pointer,
                size,
                downloaded: 0,
                cached: true,
            });
        }
        let meta = match meta {
            Some(m) => m,
            None => self.file_metadata(uri, commit, path)?,
        };
        let blob = cache.blob_path(&meta.etag);
        let mut downloaded = 0;
        if !blob.exists() {
            let lock_path = cache.lock_path(&meta.etag);
            if let Some(dir) = lock_path.parent() {
                fs::create_dir_all(dir).map_err(|e| RemoteError::io(dir, e))?;
            }
            let lock = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .map_err(|e| RemoteError::io(&lock_path, e))?;
            fs4::FileExt::lock(&lock).map_err(|e| RemoteError::io(&lock_path, e))?;
            // Another process may have finished it while we waited for the lock.
            if !blob.exists() {
                let url = self.resolve_url(uri, commit, path);
                let ctx = Hub::context(uri, commit, path);
                downloaded = self.download_blob(
                    &url,
                    &ctx,
                    &meta,
                    &cache.incomplete_path(&meta.etag),
                    &blob,
                    path,
                    progress,
                )?;
            }
            drop(lock);
        }
        let local_path = cache.link(&meta.commit, path, &meta.etag)?;
        let size = fs::metadata(&blob)
            .map(|m| m.len())
            .map_err(|e| RemoteError::io(&blob, e))?;
        if downloaded == 0 {
            report(progress, path, size, Some(size), true, 0);
        }
        Ok(PulledFile {
            path: path.to_string(),
            local_path,
            size,
            downloaded,
            cached: downloaded == 0,
        })
    }

    /// `--local-dir`: makes `<local_dir>/<path>` the file at `commit`, like huggingface_hub's
    /// `_hf_hub_download_to_local_dir`: nothing is sent when the metadata says the file is this
    /// commit's and the file was not modified since; a file whose recorded etag still matches is
    /// kept, and so is one without metadata whose sha256 is the (LFS) etag; a file the cache
    /// holds at that commit is copied out of it; anything else is downloaded next to the
    /// metadata, verified and renamed into place.
    fn ensure_local_file(
        &self,
        uri: &HubUri,
        local: &LocalDir,
        cache: &RepoCache,
        commit: &str,
        path: &str,
        progress: &Progress,
    ) -> Result<PulledFile> {
        check_repo_path(path).map_err(|msg| RemoteError::InvalidResponse {
            url: self.resolve_url(uri, commit, ""),
            msg,
        })?;
        let paths = local.paths(path)?;
        let done = |downloaded: u64| -> Result<PulledFile> {
            let size = fs::metadata(&paths.file)
                .map_err(|e| RemoteError::io(&paths.file, e))?
                .len();
            if downloaded == 0 {
                report(progress, path, size, Some(size), true, 0);
            }
            Ok(PulledFile {
                path: path.to_string(),
                local_path: paths.file.clone(),
                size,
                downloaded,
                cached: downloaded == 0,
            })
        };
        let recorded = local.read_metadata(&paths);
        if recorded
            .as_ref()
            .is_some_and(|(c, _)| c == commit && paths.file.is_file())
        {
            return done(0);
        }
        let meta = self.file_metadata(uri, commit, path)?;
        if paths.file.is_file() {
            let same = match &recorded {
                Some((_, e)) => *e == meta.etag,
                None => {
                    meta.etag.len() == 64
                        && meta.etag.bytes().all(|b| b.is_ascii_hexdigit())
                        && hash_file(&paths.file, sha2::Sha256::new(), None)?
                            .eq_ignore_ascii_case(&meta.etag)
                }
            };
            if same {
                local.write_metadata(&paths, &meta.commit, &meta.etag)?;
                return done(0);
            }
        }
        for dir in [paths.file.parent(), paths.metadata.parent()]
            .into_iter()
            .flatten()
        {
            fs::create_dir_all(dir).map_err(|e| RemoteError::io(dir, e))?;
        }
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&paths.lock)
            .map_err(|e| RemoteError::io(&paths.lock, e))?;
        fs4::FileExt::lock(&lock).map_err(|e| RemoteError::io(&paths.lock, e))?;
        let incomplete = paths.incomplete(&meta.etag);
        let cached = cache.pointer_path(&meta.commit, path);
        if cached.is_file() && cache.check_inside(&cached).is_ok() {
            // Copied out of the cache (the copy lands next to the metadata, then is renamed).
            let copy = fs::copy(&cached, &incomplete)
                .map_err(|e| RemoteError::io(&incomplete, e))
                .and_then(|_| {
                    verify_blob(
                        &incomplete,
                        &meta.etag,
                        meta.size,
                        &cached.to_string_lossy(),
                    )
                })
                .and_then(|_| {
                    fs::rename(&incomplete, &paths.file)
                        .map_err(|e| RemoteError::io(&paths.file, e))
                });
            if copy.is_ok() {
                local.write_metadata(&paths, &meta.commit, &meta.etag)?;
                drop(lock);
                return done(0);
            }
            let _ = fs::remove_file(&incomplete);
        }
        let url = self.resolve_url(uri, commit, path);
        let ctx = Hub::context(uri, commit, path);
        let downloaded =
            self.download_blob(&url, &ctx, &meta, &incomplete, &paths.file, path, progress)?;
        local.write_metadata(&paths, &meta.commit, &meta.etag)?;
        drop(lock);
        done(downloaded)
    }

    /// Downloads into `blobs/<etag>.incomplete` (resuming what is there), verifies, renames.
    /// Returns the bytes received.
    #[allow(clippy::too_many_arguments)]
    fn download_blob(
        &self,
        url: &str,
        ctx: &Context,
        meta: &FileMetadata,
        incomplete: &Path,
        blob: &Path,
        path: &str,
        progress: &Progress,
    ) -> Result<u64> {
        let is_lfs = meta.etag.len() == 64 && meta.etag.bytes().all(|b| b.is_ascii_hexdigit());
        if is_lfs && meta.size.is_none() {
            return Err(RemoteError::InvalidResponse {
                url: url.to_string(),
                msg: format!(
                    "the Hub announced no size (X-Linked-Size) for the LFS file '{path}'; a body of unknown length is not downloaded"
                ),
            });
        }
        let mut received = 0u64;
        let mut attempt = 0;
        loop {
            match self.download_attempt(
                url,
                ctx,
                meta.size,
                incomplete,
                path,
                progress,
                &mut received,
            ) {
                Ok(()) => break,
                Err(e) if e.is_interrupted_body() && attempt < self.config().max_retries => {
                    std::thread::sleep(self.client.backoff(attempt));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
        if let Err(e) = verify_blob(incomplete, &meta.etag, meta.size, url) {
            let _ = fs::remove_file(incomplete);
            return Err(e);
        }
        fs::rename(incomplete, blob).map_err(|e| RemoteError::io(blob, e))?;
        let size = fs::metadata(blob).map(|m| m.len()).unwrap_or(0);
        report(progress, path, size, meta.size, true, 0);
        Ok(received)
    }

    #[allow(clippy::too_many_arguments)]
    fn download_attempt(
        &self,
        url: &str,
        ctx: &Context,
        size: Option<u64>,
        incomplete: &Path,
        path: &str,
        progress: &Progress,
        received: &mut u64,
    ) -> Result<()> {
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(incomplete)
            .map_err(|e| RemoteError::io(incomplete, e))?;
        let mut have = file
            .metadata()
            .map_err(|e| RemoteError::io(incomplete, e))?
            .len();
        if size.is_some_and(|s| have > s) {
            file.set_len(0)
                .map_err(|e| RemoteError::io(incomplete, e))?;
            have = 0;
        }
        if size.is_some_and(|s| s == have && s > 0) {
            return Ok(());
        }
        let range = (have > 0).then_some((have, None));
        let response = match self
            .client
            .send(Method::Get, url, range, Redirects::Follow, Some(ctx))
        {
            // The partial file already holds everything.
            Err(RemoteError::Http { status: 416, .. }) if have > 0 => return Ok(()),
            other => other?,
        };
        let final_url = response.url.clone();
        let expected_body = response.content_length();
        match response.status {
            206 => {
                let cr = response.header("content-range").unwrap_or("");
                if parse_content_range(cr).map(|(start, _, _)| start) != Some(have) {
                    // A wrong range would corrupt the file: start over.
                    file.set_len(0)
                        .map_err(|e| RemoteError::io(incomplete, e))?;
                    return Err(RemoteError::Interrupted {
                        url: final_url,
                        msg: format!("asked to resume at byte {have} but got Content-Range '{cr}'; restarting"),
                    });
                }
            }
            200 => {
                // Range ignored (or not asked): the whole file follows.
                file.set_len(0)
                    .map_err(|e| RemoteError::io(incomplete, e))?;
                have = 0;
            }
            other => {
                return Err(RemoteError::InvalidResponse {
                    url: final_url,
                    msg: format!("unexpected HTTP {other} for a download"),
                });
            }
        }
        // The body may not be longer than what is left of the announced size (X-Linked-Size or
        // Content-Length of the metadata request), nor than this response's own Content-Length:
        // a server that keeps sending must not fill the disk.
        let remaining = size.map(|s| s - have);
        if let (Some(left), Some(body)) = (remaining, expected_body) {
            if body > left {
                drop(file);
                let _ = fs::remove_file(incomplete);
                return Err(RemoteError::InvalidResponse {
                    url: final_url,
                    msg: format!(
                        "the response announces {body} bytes from byte {have} but the file has {} bytes (announced by the Hub); nothing was kept",
                        size.unwrap_or(0)
                    ),
                });
            }
        }
        let announced = match (remaining, expected_body) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Nothing announced: bounded by the budget and the free space, whichever is smaller.
        let unsized_bound = match announced {
            Some(_) => None,
            None => {
                let dir = incomplete.parent().unwrap_or(Path::new("."));
                let free = fs4::available_space(dir).map_err(|e| RemoteError::io(dir, e))?;
                Some((MAX_UNSIZED_DOWNLOAD.saturating_sub(have), free))
            }
        };
        let limit = announced.or(unsized_bound.map(|(budget, free)| budget.min(free)));
        file.seek(SeekFrom::Start(have))
            .map_err(|e| RemoteError::io(incomplete, e))?;
        let mut reader = response.into_reader();
        let mut buf = vec![0u8; COPY_BUFFER];
        let mut body_bytes = 0u64;
        loop {
            // Ask for at most one byte more than is allowed, so an overlong body shows at once.
            let want = match limit {
                Some(l) => (l - body_bytes + 1).min(buf.len() as u64) as usize,
                None => buf.len(),
            };
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_network(&final_url, e)),
            };
            if let Some(l) = limit.filter(|l| body_bytes + n as u64 > *l) {
                drop(file);
                let _ = fs::remove_file(incomplete);
                if let Some((budget, free)) = unsized_bound {
                    return Err(RemoteError::InvalidResponse {
                        url: final_url,
                        msg: if free < budget {
                            format!("the server announced no size and sent more than the {free} bytes free on the cache's filesystem; the download was stopped and nothing was kept")
                        } else {
                            format!("the server announced no size and sent more than {MAX_UNSIZED_DOWNLOAD} bytes, the most ckpt downloads without an announced size; the download was stopped and nothing was kept")
                        },
                    });
                }
                return Err(RemoteError::InvalidResponse {
                    url: final_url,
                    msg: format!(
                        "the server sent more than the announced {} bytes (the body did not end after {l} bytes from byte {have}); the download was stopped and nothing was kept",
                        have + l
                    ),
                });
            }
            file.write_all(&buf[..n])
                .map_err(|e| RemoteError::io(incomplete, e))?;
            body_bytes += n as u64;
            *received += n as u64;
            report(progress, path, have + body_bytes, size, false, n as u64);
        }
        file.flush().map_err(|e| RemoteError::io(incomplete, e))?;
        let total = have + body_bytes;
        if let Some(expected) = expected_body {
            if body_bytes < expected {
                return Err(RemoteError::Truncated {
                    url: final_url,
                    expected: have + expected,
                    got: total,
                });
            }
        }
        if let Some(s) = size {
            if total < s {
                return Err(RemoteError::Truncated {
                    url: final_url,
                    expected: s,
                    got: total,
                });
            }
        }
        Ok(())
    }
}

/// `new_bytes` more bytes of `file` arrived (`file_bytes` of it so far).
fn report(
    progress: &Progress,
    file: &str,
    file_bytes: u64,
    file_size: Option<u64>,
    file_done: bool,
    new_bytes: u64,
) {
    let Some(cb) = &progress.callback else {
        return;
    };
    if new_bytes > 0 {
        cb.event(ProgressEvent::Advance { bytes: new_bytes });
    }
    cb.event(ProgressEvent::File {
        name: file,
        done: file_bytes,
        size: file_size,
        complete: file_done,
    });
}

/// Checks size and content: sha256 for a 64-hex etag (LFS), git blob sha1 for a 40-hex one.
fn verify_blob(path: &Path, etag: &str, size: Option<u64>, url: &str) -> Result<()> {
    let len = fs::metadata(path)
        .map_err(|e| RemoteError::io(path, e))?
        .len();
    if let Some(s) = size {
        if len != s {
            return Err(RemoteError::Truncated {
                url: url.to_string(),
                expected: s,
                got: len,
            });
        }
    }
    let is_hex = etag.bytes().all(|b| b.is_ascii_hexdigit());
    let (algorithm, actual) = match etag.len() {
        64 if is_hex => ("sha256", hash_file(path, sha2::Sha256::new(), None)?),
        40 if is_hex => ("git-sha1", hash_file(path, sha1::Sha1::new(), Some(len))?),
        _ => return Ok(()),
    };
    if !actual.eq_ignore_ascii_case(etag) {
        return Err(RemoteError::ChecksumMismatch {
            url: url.to_string(),
            algorithm,
            expected: etag.to_string(),
            actual,
        });
    }
    Ok(())
}

fn hash_file<D: Digest>(path: &Path, mut hasher: D, git_blob_len: Option<u64>) -> Result<String> {
    if let Some(len) = git_blob_len {
        hasher.update(format!("blob {len}\0").as_bytes());
    }
    let mut f = File::open(path).map_err(|e| RemoteError::io(path, e))?;
    let mut buf = vec![0u8; COPY_BUFFER];
    loop {
        let n = f.read(&mut buf).map_err(|e| RemoteError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn walk_snapshot(dir: &Path, prefix: &str, f: &mut dyn FnMut(&str, &Path)) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map_err(|e| RemoteError::io(dir, e))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().to_string();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let p = e.path();
        if p.is_dir() {
            walk_snapshot(&p, &rel, f)?;
        } else if p.exists() {
            f(&rel, &p);
        }
    }
    Ok(())
}

/// Which files resolving a whole repository skips: other weight formats when safetensors exist.
fn default_excludes(files: &[RepoFile]) -> std::result::Result<Vec<String>, String> {
    let has_safetensors = files.iter().any(|f| f.path.ends_with(".safetensors"));
    if has_safetensors {
        return Ok(ALTERNATE_WEIGHT_EXTS
            .iter()
            .map(|e| format!("*{e}"))
            .collect());
    }
    let ggufs: Vec<&str> = files
        .iter()
        .map(|f| f.path.as_str())
        .filter(|p| p.ends_with(".gguf"))
        .collect();
    if ggufs.len() > 1 {
        return Err(format!(
            "the repository holds several GGUF files ({}); name one: hf://…/{}",
            ggufs.join(", "),
            ggufs[0]
        ));
    }
    Ok(Vec::new())
}

/// huggingface_hub's local-dir layout (v0.23 and later; checked against 2.4):
///
/// ```text
/// <local_dir>/<path>                                        the file itself
/// <local_dir>/.cache/huggingface/.gitignore                 "*"
/// <local_dir>/.cache/huggingface/CACHEDIR.TAG
/// <local_dir>/.cache/huggingface/download/<path>.metadata   "<commit>\n<etag>\n<unix time>\n"
/// <local_dir>/.cache/huggingface/download/<path>.lock
/// ```
struct LocalDir {
    root: PathBuf,
}

struct LocalPaths {
    file: PathBuf,
    metadata: PathBuf,
    lock: PathBuf,
}

impl LocalPaths {
    /// Next to the metadata, named after the file and the etag it is becoming.
    fn incomplete(&self, etag: &str) -> PathBuf {
        let name = self
            .metadata
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.metadata
            .with_file_name(format!("{name}.{etag}.incomplete"))
    }
}

impl LocalDir {
    fn new(root: &Path) -> LocalDir {
        LocalDir {
            root: root.to_path_buf(),
        }
    }

    fn hf_dir(&self) -> PathBuf {
        self.root.join(".cache").join("huggingface")
    }

    fn ensure_layout(&self) -> Result<()> {
        let dir = self.hf_dir().join("download");
        fs::create_dir_all(&dir).map_err(|e| RemoteError::io(&dir, e))?;
        let gitignore = self.hf_dir().join(".gitignore");
        if !gitignore.exists() {
            fs::write(&gitignore, "*").map_err(|e| RemoteError::io(&gitignore, e))?;
        }
        let tag = self.hf_dir().join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = fs::write(&tag, crate::cache::CACHEDIR_TAG);
        }
        Ok(())
    }

    /// Paths for a repository file (already checked by `check_repo_path`), each checked to stay
    /// inside the folder.
    fn paths(&self, repo_path: &str) -> Result<LocalPaths> {
        let mut file = self.root.clone();
        file.extend(repo_path.split('/'));
        let mut base = self.hf_dir().join("download");
        base.extend(repo_path.split('/'));
        let with_suffix = |suffix: &str| {
            let mut s = base.clone().into_os_string();
            s.push(suffix);
            PathBuf::from(s)
        };
        let paths = LocalPaths {
            file,
            metadata: with_suffix(".metadata"),
            lock: with_suffix(".lock"),
        };
        for p in [&paths.file, &paths.metadata, &paths.lock] {
            let inside = p.strip_prefix(&self.root).is_ok_and(|rest| {
                rest.components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            });
            if !inside {
                return Err(RemoteError::Usage(format!(
                    "refusing to write {}: not inside {}",
                    p.display(),
                    self.root.display()
                )));
            }
        }
        Ok(paths)
    }

    /// (commit, etag) when the metadata exists and the file was not modified after it was
    /// written (huggingface_hub allows one second of clock slack).
    fn read_metadata(&self, paths: &LocalPaths) -> Option<(String, String)> {
        let text = fs::read_to_string(&paths.metadata).ok()?;
        let mut lines = text.lines();
        let commit = lines.next()?.trim().to_string();
        let etag = lines.next()?.trim().to_string();
        let timestamp: f64 = lines.next()?.trim().parse().ok()?;
        let mtime = fs::metadata(&paths.file)
            .ok()?
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_secs_f64();
        (mtime - 1.0 <= timestamp).then_some((commit, etag))
    }

    fn write_metadata(&self, paths: &LocalPaths, commit: &str, etag: &str) -> Result<()> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        let tmp = paths
            .metadata
            .with_extension(format!("tmp{}", std::process::id()));
        fs::write(&tmp, format!("{commit}\n{etag}\n{now}\n"))
            .and_then(|_| fs::rename(&tmp, &paths.metadata))
            .map_err(|e| {
                let _ = fs::remove_file(&tmp);
                RemoteError::io(&paths.metadata, e)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_downloads_report_every_byte_once_and_each_file_in_order() {
        let seen = std::sync::Arc::new(Mutex::new((
            0u64,
            std::collections::HashMap::<String, Vec<u64>>::new(),
        )));
        let sink = seen.clone();
        let progress = Progress {
            callback: Some(std::sync::Arc::new(move |ev: ProgressEvent<'_>| {
                // A slow callback (like a Python one waiting for the GIL) widens the window.
                std::thread::yield_now();
                let mut s = sink.lock().unwrap();
                match ev {
                    ProgressEvent::Advance { bytes } => s.0 += bytes,
                    ProgressEvent::File { name, done, .. } => {
                        s.1.entry(name.to_string()).or_default().push(done)
                    }
                    _ => {}
                }
            })),
        };
        std::thread::scope(|s| {
            for t in 0..8 {
                let progress = &progress;
                s.spawn(move || {
                    for i in 0..2000 {
                        report(progress, &format!("f{t}"), i + 1, None, false, 1);
                    }
                });
            }
        });
        let seen = seen.lock().unwrap();
        assert_eq!(seen.0, 16000);
        assert_eq!(seen.1.len(), 8);
        for done in seen.1.values() {
            assert_eq!(done.len(), 2000);
            assert!(
                done.windows(2).all(|w| w[0] < w[1]),
                "a file's bytes out of order"
            );
        }
    }

    #[test]
    fn filters_follow_fnmatch() {
        let opts = PullOptions {
            include: vec!["*.json".into(), "sub/".into()],
            exclude: vec!["*secret*".into()],
            ..Default::default()
        };
        let f = Filter::new(&opts).unwrap();
        assert!(f.accepts("config.json"));
        assert!(f.accepts("a/b/config.json"), "* matches / like fnmatch");
        assert!(f.accepts("sub/x.bin"));
        assert!(!f.accepts("model.safetensors"));
        assert!(!f.accepts("secret.json"));
    }

    #[test]
    fn git_blob_sha1_matches_git() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"hello\n").unwrap();
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            hash_file(&p, sha1::Sha1::new(), Some(6)).unwrap(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }
}
