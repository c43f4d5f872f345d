//! Uploads a local file or folder to a Hub repository as one commit, optionally as a pull request,
//! speaking the same protocol as huggingface_hub's `upload_folder` (without Xet):
//!
//! 1. `GET /api/whoami-v2`: the token is valid and may write (fails before anything is sent).
//! 2. `POST /api/repos/create` when asked (409 = it already exists).
//! 3. `POST /api/{models}/{repo}/preupload/{rev}`: per file "lfs" or "regular", gitignored, and
//!    the oid the Hub already has at that path (unchanged files are left out of the commit).
//! 4. `POST {endpoint}/{repo}.git/info/lfs/objects/batch`: upload instructions per LFS object;
//!    objects without actions are already stored. A single PUT (basic), or PUTs of
//!    `chunk_size` pieces to the part URLs followed by the completion POST (multipart); a
//!    failed part is retried on its own. Then the optional verify POST.
//! 5. `POST /api/{models}/{repo}/commit/{rev}[?create_pr=1]` with an NDJSON body, only after
//!    every upload succeeded.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use ckpt_core::progress::{self, ProgressEvent, SharedProgress};
use serde_json::{json, Value};
use sha2::Digest;

use crate::error::{RemoteError, Result};
use crate::http::{origin, resolve_location};
use crate::hub::{check_repo_path, file_globs, Hub};
use crate::uri::{percent_encode, HubUri, RemoteLocation, RepoType};

/// huggingface_hub asks the preupload and LFS batch routes about at most this many files at once.
const FILES_PER_REQUEST: usize = 256;
/// Bytes of a file's beginning sent to preupload (the Hub sniffs binary vs text from them).
const SAMPLE_LEN: usize = 512;
const HASH_BUFFER: usize = 1 << 20;
/// Responses of the JSON routes are small; refuse absurd ones.
const MAX_RESPONSE_BYTES: u64 = 64 << 20;
/// Regular (non-LFS) files travel base64-encoded inside the commit request; the Hub sends
/// anything bigger than a few MB to LFS, so a larger "regular" answer is a misbehaving server.
const MAX_REGULAR_FILE: u64 = 64 << 20;

const MAX_REDIRECTS: usize = 5;
/// Objects uploaded at the same time (huggingface_hub's default `num_threads`).
const UPLOAD_WORKERS: usize = 5;

const LFS_CONTENT_TYPE: &str = "application/vnd.git-lfs+json";

/// Options of [`push`](fn@push) / [`Hub::push`] (`ckpt push`'s flags, huggingface_hub's
/// `upload_folder` arguments).
#[derive(Clone, Default)]
pub struct PushOptions {
    /// Branch to commit to, or to open the pull request against (default: the revision in the
    /// repository argument, else `main`).
    pub revision: Option<String>,
    /// Open a pull request (`refs/pr/N`) instead of committing to the branch.
    pub create_pr: bool,
    /// For a folder: the folder inside the repository to upload into (default: the root). For a
    /// file: its path in the repository (a value ending in `/` is a folder; default: its name).
    pub path_in_repo: Option<String>,
    /// Commit title (default: "Upload folder using ckpt" / "Upload FILE with ckpt").
    pub message: Option<String>,
    /// Commit description (the pull request's body).
    pub description: Option<String>,
    /// Only files whose path (relative to the local folder) matches one of these globs
    /// (`*` also matches `/`; a pattern ending in `/` means everything under it). Empty = all.
    pub include: Vec<String>,
    /// Leave out files matching one of these globs.
    pub exclude: Vec<String>,
    /// With `create_repo`: create the repository private (otherwise the Hub's default applies).
    pub private: bool,
    /// Create the repository first (an existing one is fine).
    pub create_repo: bool,
    /// Also upload files of a folder that are symlinks to something outside it (by default they
    /// are skipped and listed in [`PushReport::skipped`]).
    pub follow_symlinks: bool,
    /// Receives a `"hashing"` phase (every file is read for its sha256), then, once the Hub
    /// said which LFS objects it needs, an `"uploading"` phase measuring their bytes; both
    /// advanced per chunk, with [`File`](ProgressEvent::File) events per chunk and per file
    /// done.
    pub progress: Option<SharedProgress>,
}

/// A file of the folder that was not uploaded because it is a symlink leading outside it.
#[derive(Debug, Clone)]
pub struct SkippedFile {
    /// Its path relative to the folder.
    pub path: String,
    /// The symlink's path on disk.
    pub local_path: PathBuf,
    /// Where it really is.
    pub target: PathBuf,
    /// Why it was skipped, and how to upload it anyway.
    pub reason: String,
}

/// What happened to one local file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushAction {
    /// Sent to LFS storage and added to the commit.
    UploadedLfs,
    /// LFS storage already had the bytes (batch answer without actions); only committed.
    LfsAlreadyStored,
    /// Sent inside the commit request (regular git file).
    Regular,
    /// The Hub already has identical content at this path and revision: not in the commit.
    Unchanged,
    /// Excluded by the repository's .gitignore (the Hub's `shouldIgnore`).
    Ignored,
}

/// One local file of a push.
#[derive(Debug, Clone)]
pub struct PushedFile {
    /// Its path in the repository.
    pub path_in_repo: String,
    /// Its path on disk.
    pub local_path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, lowercase hex (the LFS oid).
    pub sha256: String,
    /// The Hub's preupload answer put it in LFS storage (else it is a regular git file).
    pub lfs: bool,
    /// What was done with it.
    pub action: PushAction,
}

/// The pull request a push opened ([`PushOptions::create_pr`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// Its number on the Hub.
    pub number: u64,
    /// `refs/pr/N`: pass it as the revision to pull or push more commits to the PR.
    pub revision: String,
    /// Its page on the Hub (the commit answer's `pullRequestUrl`).
    pub url: String,
}

/// What a push did (the `--json` report of `ckpt push`, see [`PushReport::to_json`]).
#[derive(Debug, Clone)]
pub struct PushReport {
    /// The repository id (`ORG/NAME`).
    pub repo: String,
    /// The branch committed to (or that the pull request targets).
    pub revision: String,
    /// None when nothing changed (every file was already there), so no commit was made.
    pub commit: Option<String>,
    /// The commit's page on the Hub (the commit answer's `commitUrl`), when a commit was made.
    pub commit_url: Option<String>,
    /// The pull request opened, with [`PushOptions::create_pr`].
    pub pull_request: Option<PullRequest>,
    /// The repository was created by this push ([`PushOptions::create_repo`]).
    pub repo_created: bool,
    /// Every local file selected, with what was done with it.
    pub files: Vec<PushedFile>,
    /// Bytes sent to LFS storage.
    pub uploaded_bytes: u64,
    /// HTTP requests sent, retries included.
    pub requests: u64,
    /// Files left out because they are symlinks leading outside the folder.
    pub skipped: Vec<SkippedFile>,
}

impl PushAction {
    /// The name in the JSON report: `uploaded`, `already-stored`, `regular`, `unchanged` or
    /// `ignored`.
    pub fn as_str(self) -> &'static str {
        match self {
            PushAction::UploadedLfs => "uploaded",
            PushAction::LfsAlreadyStored => "already-stored",
            PushAction::Regular => "regular",
            PushAction::Unchanged => "unchanged",
            PushAction::Ignored => "ignored",
        }
    }
}

impl PushReport {
    /// For `--json` output.
    pub fn to_json(&self) -> Value {
        json!({
            "repo": self.repo,
            "revision": self.revision,
            "commit": self.commit,
            "commit_url": self.commit_url,
            "pull_request": self.pull_request.as_ref().map(|p| json!({ "number": p.number, "revision": p.revision, "url": p.url })),
            "repo_created": self.repo_created,
            "uploaded_bytes": self.uploaded_bytes,
            "requests": self.requests,
            "files": self.files.iter().map(|f| json!({
                "path": f.path_in_repo,
                "local_path": f.local_path.to_string_lossy(),
                "size": f.size,
                "sha256": f.sha256,
                "lfs": f.lfs,
                "action": f.action.as_str(),
            })).collect::<Vec<_>>(),
            "skipped": self.skipped.iter().map(|f| json!({
                "path": f.path,
                "local_path": f.local_path.to_string_lossy(),
                "target": f.target.to_string_lossy(),
                "reason": f.reason,
            })).collect::<Vec<_>>(),
        })
    }
}

/// Pushes `local` (a file or folder) to `repo` (`ORG/NAME` or `hf://[datasets/]ORG/NAME[@REV]`)
/// with the endpoint and token from the environment (HF_ENDPOINT, HF_TOKEN, `$HF_HOME/token`).
pub fn push(local: &Path, repo: &str, opts: &PushOptions) -> Result<PushReport> {
    Hub::from_env().push(local, repo, opts)
}

/// One local file on its way to the repository.
struct LocalFile {
    local_path: PathBuf,
    path_in_repo: String,
    size: u64,
    sha256: String,
    sample: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UploadMode {
    Lfs,
    Regular,
}

struct Planned {
    file: LocalFile,
    mode: UploadMode,
    action: PushAction,
}

/// Request bodies this module sends.
enum Body<'a> {
    Json(&'a Value),
    Bytes {
        bytes: &'a [u8],
        content_type: &'a str,
    },
    /// `len` bytes of `path` starting at `offset`, streamed.
    FileSlice {
        path: &'a Path,
        offset: u64,
        len: u64,
    },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Verb {
    Post,
    Put,
}

struct Answer {
    status: u16,
    url: String,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).map_err(|e| RemoteError::InvalidResponse {
            url: self.url.clone(),
            msg: format!("expected a JSON answer: {e}"),
        })
    }
    fn error_message(&self) -> String {
        if let Some(m) = self.header("x-error-message").filter(|m| !m.is_empty()) {
            return m.to_string();
        }
        let text = String::from_utf8_lossy(&self.body);
        if let Ok(v) = serde_json::from_str::<Value>(&text) {
            if let Some(e) = v.get("error").and_then(Value::as_str) {
                return e.to_string();
            }
            if let Some(e) = v.get("message").and_then(Value::as_str) {
                return e.to_string();
            }
        }
        text.trim().chars().take(300).collect()
    }
}

/// The HTTP side of one push: the Hub's ureq settings, the token only for the endpoint's origin,
/// retries with the crate's backoff, and a request counter.
struct Uploader<'h> {
    hub: &'h Hub,
    agent: ureq::Agent,
    requests: AtomicU64,
    uploaded: AtomicU64,
}

impl<'h> Uploader<'h> {
    fn new(hub: &'h Hub) -> Uploader<'h> {
        let config = hub.config();
        let agent = crate::http::agent(
            config,
            config.read_timeout.max(std::time::Duration::from_secs(60)),
        );
        Uploader {
            hub,
            agent,
            requests: AtomicU64::new(0),
            uploaded: AtomicU64::new(0),
        }
    }

    /// One attempt. `authorize`: send the token (only ever to the endpoint's origin).
    fn send_once(
        &self,
        verb: Verb,
        url: &str,
        body: &Body<'_>,
        extra: &[(&str, &str)],
        authorize: bool,
    ) -> Result<Answer> {
        let config = self.hub.config();
        if config.offline {
            return Err(RemoteError::Network {
                url: url.to_string(),
                msg: "HF_HUB_OFFLINE is set: no network access".into(),
            });
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut headers: Vec<(&str, String)> =
            extra.iter().map(|(k, v)| (*k, v.to_string())).collect();
        if authorize && origin(url) == origin(&config.endpoint) {
            if let Some(token) = &config.token {
                headers.push(("authorization", format!("Bearer {token}")));
            }
        }
        let transport = |e: ureq::Error| RemoteError::Network {
            url: url.to_string(),
            msg: format!("request failed: {e}"),
        };
        let response = {
            let mut r = if verb == Verb::Post {
                self.agent.post(url)
            } else {
                self.agent.put(url)
            };
            for (k, v) in &headers {
                r = r.header(*k, v.as_str());
            }
            match body {
                Body::Json(v) => {
                    let bytes = serde_json::to_vec(v)
                        .map_err(|e| RemoteError::Usage(format!("cannot encode request: {e}")))?;
                    if !extra
                        .iter()
                        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    {
                        r = r.header("content-type", "application/json");
                    }
                    r.send(&bytes[..])
                }
                Body::Bytes {
                    bytes,
                    content_type,
                } => r.header("content-type", *content_type).send(*bytes),
                Body::FileSlice { path, offset, len } => {
                    let mut file = File::open(path).map_err(|e| RemoteError::io(*path, e))?;
                    file.seek(SeekFrom::Start(*offset))
                        .map_err(|e| RemoteError::io(*path, e))?;
                    let mut slice = file.take(*len);
                    // A declared length: presigned storage URLs refuse chunked uploads.
                    r.header("content-length", len.to_string())
                        .send(ureq::SendBody::from_reader(&mut slice))
                }
            }
            .map_err(transport)?
        };
        let (parts, body) = response.into_parts();
        let mut bytes = Vec::new();
        body.into_reader()
            .take(MAX_RESPONSE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| RemoteError::Network {
                url: url.to_string(),
                msg: format!("connection failed while reading the response: {e}"),
            })?;
        if bytes.len() as u64 > MAX_RESPONSE_BYTES {
            return Err(RemoteError::InvalidResponse {
                url: url.to_string(),
                msg: format!("response exceeds the {MAX_RESPONSE_BYTES}-byte limit"),
            });
        }
        Ok(Answer {
            status: parts.status.as_u16(),
            url: url.to_string(),
            headers: parts.headers,
            body: bytes,
        })
    }

    /// `send_once`, following 307/308 (a renamed repository) with the same method and body; the
    /// token still only goes to the endpoint's origin.
    fn send_following(
        &self,
        verb: Verb,
        url: &str,
        body: &Body<'_>,
        extra: &[(&str, &str)],
        authorize: bool,
    ) -> Result<Answer> {
        let mut url = url.to_string();
        for _ in 0..MAX_REDIRECTS {
            let answer = self.send_once(verb, &url, body, extra, authorize)?;
            match answer.header("location") {
                Some(location) if matches!(answer.status, 307 | 308) => {
                    url = resolve_location(&url, location)
                }
                _ => return Ok(answer),
            }
        }
        Err(RemoteError::InvalidResponse {
            url,
            msg: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Sends until the answer is not a transient failure (network error, 5xx, 429) or the
    /// retries of the Hub configuration are spent; returns the last answer whatever its status.
    fn send(
        &self,
        verb: Verb,
        url: &str,
        body: &Body<'_>,
        extra: &[(&str, &str)],
        authorize: bool,
    ) -> Result<Answer> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_following(verb, url, body, extra, authorize);
            let transient = match &outcome {
                Ok(a) => a.status >= 500 || a.status == 429,
                Err(e) => e.is_transient(),
            };
            if !transient || attempt >= self.hub.config().max_retries {
                return outcome;
            }
            std::thread::sleep(self.hub.client.backoff(attempt));
            attempt += 1;
        }
    }

    /// `send`, then any status ≥ 300 as an error that names the repository and revision.
    fn send_ok(
        &self,
        verb: Verb,
        url: &str,
        body: &Body<'_>,
        extra: &[(&str, &str)],
        authorize: bool,
        target: &Target,
    ) -> Result<Answer> {
        let answer = self.send(verb, url, body, extra, authorize)?;
        if answer.status >= 300 {
            return Err(target.error(&answer));
        }
        Ok(answer)
    }
}

/// Where the commit goes, for URLs and error messages.
struct Target {
    uri: HubUri,
    revision: String,
    create_repo: bool,
}

impl Target {
    fn api(&self, endpoint: &str, route: &str) -> String {
        format!(
            "{endpoint}/api/{}/{}/{route}/{}",
            self.uri.repo_type.plural(),
            self.uri.repo_id,
            percent_encode(&self.revision, false)
        )
    }

    fn error(&self, answer: &Answer) -> RemoteError {
        let repo = &self.uri.repo_id;
        let url = answer.url.clone();
        let status = answer.status;
        let msg = answer.error_message();
        match (answer.header("x-error-code").unwrap_or(""), status) {
            ("RepoNotFound", _) | ("", 404) if !msg.to_ascii_lowercase().contains("revision") => {
                let hint = if self.create_repo { "" } else { "; set `create_repo` to create it" };
                RemoteError::Http { url, status, msg: format!("repository '{repo}' does not exist (or the token cannot see it){hint}") }
            }
            ("RevisionNotFound", _) | ("", 404) => RemoteError::Http {
                url,
                status,
                msg: format!("revision '{}' does not exist in '{repo}'; create the branch first or push to an existing one", self.revision),
            },
            (_, 401) => RemoteError::Unauthorized {
                url,
                status,
                what: format!(
                    "the Hub rejected the token ({}); nothing was uploaded",
                    if msg.is_empty() { "invalid or expired" } else { &msg }
                ),
                gated: false,
            },
            (_, 403) => RemoteError::Unauthorized {
                url,
                status,
                what: format!(
                    "the token has no write access to '{repo}'{}",
                    if msg.is_empty() { String::new() } else { format!(" ({msg})") }
                ),
                gated: false,
            },
            _ => RemoteError::Http { url, status, msg },
        }
    }
}

fn parse_target(repo: &str, opts: &PushOptions) -> Result<Target> {
    let text = if repo.starts_with("hf://") {
        repo.to_string()
    } else {
        format!("hf://{repo}")
    };
    let mut uri = match RemoteLocation::parse(&text)? {
        RemoteLocation::Hub(h) => h,
        RemoteLocation::Url(u) => {
            return Err(RemoteError::Usage(format!(
                "{u}: push needs a Hub repository (ORG/NAME)"
            )))
        }
    };
    if let Some(p) = uri.path.take() {
        return Err(RemoteError::Usage(format!("{repo}: push takes a repository, not a path inside it ('{p}'); use `path_in_repo` '{p}'")));
    }
    if !uri.repo_id.contains('/') {
        return Err(RemoteError::Usage(format!(
            "{repo}: the repository must be written ORG/NAME (or USER/NAME)"
        )));
    }
    let revision = opts
        .revision
        .clone()
        .or_else(|| uri.revision.clone())
        .unwrap_or_else(|| "main".to_string());
    if revision.is_empty() {
        return Err(RemoteError::Usage("the revision must not be empty".into()));
    }
    crate::uri::check_revision(&revision).map_err(RemoteError::Usage)?;
    uri.revision = Some(revision.clone());
    Ok(Target {
        uri,
        revision,
        create_repo: opts.create_repo,
    })
}

impl Hub {
    /// Uploads `local` (a file or folder) to `repo` (`ORG/NAME` or
    /// `hf://[datasets/]ORG/NAME[@REV]`) as one commit, or one pull request: see
    /// [`push`](fn@push) and the module documentation for the protocol. Nothing is committed
    /// unless every upload succeeded. Fails with [`RemoteError::Usage`] when no file is
    /// selected, and with [`RemoteError::Unauthorized`] when the token cannot write.
    pub fn push(&self, local: &Path, repo: &str, opts: &PushOptions) -> Result<PushReport> {
        let target = parse_target(repo, opts)?;
        let start_requests = self.stats().requests();
        let uploader = Uploader::new(self);

        let (mut files, skipped) = collect_local_files(local, opts)?;
        if files.is_empty() {
            return Err(RemoteError::Usage(format!(
                "{}: no files to push (check `include`/`exclude`)",
                local.display()
            )));
        }
        self.check_write_token(&target)?;
        let repo_created = if opts.create_repo {
            self.create_repo(&uploader, &target, opts.private)?
        } else {
            false
        };

        hash_files(&mut files, opts.progress.as_ref())?;
        let plan = self.plan_uploads(&uploader, &target, files, opts.create_pr)?;
        let plan = self.upload_lfs_objects(
            &uploader,
            &target,
            plan,
            opts.create_pr,
            opts.progress.as_ref(),
        )?;

        let to_commit: Vec<&Planned> = plan
            .iter()
            .filter(|p| !matches!(p.action, PushAction::Unchanged | PushAction::Ignored))
            .collect();
        let (commit, commit_url, pull_request) = if to_commit.is_empty() {
            (None, None, None)
        } else {
            let message = opts
                .message
                .clone()
                .unwrap_or_else(|| default_message(local, &plan));
            self.commit(
                &uploader,
                &target,
                &to_commit,
                &message,
                opts.description.as_deref().unwrap_or(""),
                opts.create_pr,
            )?
        };

        Ok(PushReport {
            repo: target.uri.repo_id.clone(),
            revision: target.revision.clone(),
            commit,
            commit_url,
            pull_request,
            repo_created,
            files: plan
                .into_iter()
                .map(|p| PushedFile {
                    path_in_repo: p.file.path_in_repo,
                    local_path: p.file.local_path,
                    size: p.file.size,
                    sha256: p.file.sha256,
                    lfs: p.mode == UploadMode::Lfs,
                    action: p.action,
                })
                .collect(),
            uploaded_bytes: uploader.uploaded.load(Ordering::Relaxed),
            requests: uploader.requests.load(Ordering::Relaxed)
                + (self.stats().requests() - start_requests),
            skipped,
        })
    }

    /// `GET /api/whoami-v2`: refuses a missing, invalid or read-only token before any upload.
    fn check_write_token(&self, target: &Target) -> Result<()> {
        let endpoint = &self.config().endpoint;
        let url = format!("{endpoint}/api/whoami-v2");
        if self.config().token.is_none() {
            return Err(RemoteError::Unauthorized {
                url,
                status: 401,
                what: format!(
                    "pushing to '{}' needs a write token and none is configured",
                    target.uri.repo_id
                ),
                gated: false,
            });
        }
        let body = match self.client.get_bytes(&url, MAX_RESPONSE_BYTES, None) {
            Ok((_, body)) => body,
            Err(RemoteError::Unauthorized { url, status, .. }) => {
                return Err(RemoteError::Unauthorized {
                    url,
                    status,
                    what: "the Hub rejected the token (invalid or expired); nothing was uploaded"
                        .into(),
                    gated: false,
                })
            }
            Err(e) => return Err(e),
        };
        let who: Value =
            serde_json::from_slice(&body).map_err(|e| RemoteError::InvalidResponse {
                url: url.clone(),
                msg: format!("whoami answer is not JSON: {e}"),
            })?;
        // Fine-grained tokens carry per-repository scopes: the preupload call checks those.
        if who
            .pointer("/auth/accessToken/role")
            .and_then(Value::as_str)
            == Some("read")
        {
            let user = who.get("name").and_then(Value::as_str).unwrap_or("?");
            return Err(RemoteError::Unauthorized {
                url,
                status: 403,
                what: format!("the token of '{user}' is read-only: pushing to '{}' needs a token with write access", target.uri.repo_id),
                gated: false,
            });
        }
        Ok(())
    }

    /// `POST /api/repos/create`; true when it was created, false when it already existed.
    fn create_repo(&self, uploader: &Uploader<'_>, target: &Target, private: bool) -> Result<bool> {
        let (organization, name) = target
            .uri
            .repo_id
            .split_once('/')
            .unwrap_or(("", &target.uri.repo_id));
        let repo_type = match target.uri.repo_type {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
            RepoType::Space => "space",
        };
        let mut payload = json!({ "name": name, "organization": organization, "type": repo_type });
        // Only an explicit request for privacy is sent: otherwise the Hub's default applies (an
        // organization may default to private), as when huggingface_hub gets `private=None`.
        if private {
            payload["private"] = json!(true);
        }
        if target.uri.repo_type == RepoType::Space {
            // The Hub refuses a Space without an SDK; a static page is the neutral choice.
            payload["sdk"] = json!("static");
        }
        let url = format!("{}/api/repos/create", self.config().endpoint);
        let mut attempt = 0;
        loop {
            let answer = uploader.send(Verb::Post, &url, &Body::Json(&payload), &[], true)?;
            let message = answer.error_message();
            return match answer.status {
                200..=299 => Ok(true),
                // The Hub serialises repository creation per user and answers this 409 to a
                // concurrent one (huggingface_hub retries it too); any other 409 means "exists".
                409 if message.contains("conflicting operation")
                    && attempt < self.config().max_retries =>
                {
                    std::thread::sleep(self.client.backoff(attempt));
                    attempt += 1;
                    continue;
                }
                409 => Ok(false),
                _ => Err(match target.error(&answer) {
                    RemoteError::Http { url, status, .. } => RemoteError::Http {
                        url,
                        status,
                        msg: format!("could not create '{}': {message}", target.uri.repo_id),
                    },
                    other => other,
                }),
            };
        }
    }

    /// Asks preupload how each file is stored and which ones the Hub already has.
    fn plan_uploads(
        &self,
        uploader: &Uploader<'_>,
        target: &Target,
        files: Vec<LocalFile>,
        create_pr: bool,
    ) -> Result<Vec<Planned>> {
        let mut url = target.api(&self.config().endpoint, "preupload");
        if create_pr {
            url.push_str("?create_pr=1");
        }
        let mut plan = Vec::with_capacity(files.len());
        let mut files = files.into_iter().peekable();
        while files.peek().is_some() {
            let chunk: Vec<LocalFile> = files.by_ref().take(FILES_PER_REQUEST).collect();
            let payload = json!({
                "files": chunk.iter().map(|f| json!({
                    "path": f.path_in_repo,
                    "sample": base64_encode(&f.sample),
                    "size": f.size,
                })).collect::<Vec<_>>()
            });
            let answer =
                uploader.send_ok(Verb::Post, &url, &Body::Json(&payload), &[], true, target)?;
            let info = answer.json()?;
            let answered = info.get("files").and_then(Value::as_array).ok_or_else(|| {
                RemoteError::InvalidResponse {
                    url: url.clone(),
                    msg: "preupload answer has no 'files' list".into(),
                }
            })?;
            for file in chunk {
                let entry = answered
                    .iter()
                    .find(|e| {
                        e.get("path").and_then(Value::as_str) == Some(file.path_in_repo.as_str())
                    })
                    .ok_or_else(|| RemoteError::InvalidResponse {
                        url: url.clone(),
                        msg: format!(
                            "preupload answer says nothing about '{}'",
                            file.path_in_repo
                        ),
                    })?;
                let mode = match entry.get("uploadMode").and_then(Value::as_str) {
                    // Storage refuses empty LFS objects: huggingface_hub commits them as regular files.
                    _ if file.size == 0 => UploadMode::Regular,
                    Some("lfs") => UploadMode::Lfs,
                    Some("regular") => UploadMode::Regular,
                    Some("xet") => UploadMode::Lfs, // the LFS batch route still accepts these objects
                    other => {
                        return Err(RemoteError::InvalidResponse {
                            url: url.clone(),
                            msg: format!(
                                "unknown upload mode {other:?} for '{}'",
                                file.path_in_repo
                            ),
                        })
                    }
                };
                if mode == UploadMode::Regular && file.size > MAX_REGULAR_FILE {
                    return Err(RemoteError::InvalidResponse {
                        url: url.clone(),
                        msg: format!(
                            "the Hub wants '{}' ({} bytes) as a regular git file; that is too large to send inline",
                            file.path_in_repo, file.size
                        ),
                    });
                }
                let remote_oid = entry
                    .get("oid")
                    .and_then(Value::as_str)
                    .map(str::to_ascii_lowercase);
                let action = if entry
                    .get("shouldIgnore")
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
                {
                    PushAction::Ignored
                } else if remote_oid
                    .is_some_and(|oid| oid == local_oid(&file, mode).unwrap_or_default())
                {
                    PushAction::Unchanged
                } else if mode == UploadMode::Lfs {
                    PushAction::UploadedLfs
                } else {
                    PushAction::Regular
                };
                plan.push(Planned { file, mode, action });
            }
        }
        Ok(plan)
    }

    /// Runs the LFS batch protocol for every LFS file of the commit; objects storage already
    /// has become `LfsAlreadyStored`.
    fn upload_lfs_objects(
        &self,
        uploader: &Uploader<'_>,
        target: &Target,
        mut plan: Vec<Planned>,
        create_pr: bool,
        progress: Option<&SharedProgress>,
    ) -> Result<Vec<Planned>> {
        let wanted: Vec<usize> = (0..plan.len())
            .filter(|&i| plan[i].action == PushAction::UploadedLfs)
            .collect();
        if wanted.is_empty() {
            return Ok(plan);
        }
        let endpoint = &self.config().endpoint;
        let batch_url = format!(
            "{endpoint}/{}{}.git/info/lfs/objects/batch",
            target.uri.repo_type.url_prefix(),
            target.uri.repo_id
        );
        let total_size: u64 = {
            let mut seen = std::collections::HashSet::new();
            wanted
                .iter()
                .filter(|&&i| seen.insert(plan[i].file.sha256.clone()))
                .map(|&i| plan[i].file.size)
                .sum()
        };
        let counter = ProgressCounter {
            callback: progress.cloned(),
        };
        progress::emit(
            progress,
            ProgressEvent::Start {
                phase: "uploading",
                total: total_size,
            },
        );
        for chunk in wanted.chunks(FILES_PER_REQUEST) {
            // The same content under two paths is one LFS object.
            let mut objects: Vec<(String, u64)> = Vec::new();
            for &i in chunk {
                let f = &plan[i].file;
                if !objects.iter().any(|(oid, _)| *oid == f.sha256) {
                    objects.push((f.sha256.clone(), f.size));
                }
            }
            let mut payload = json!({
                "operation": "upload",
                "transfers": ["basic", "multipart"],
                "objects": objects.iter().map(|(oid, size)| json!({ "oid": oid, "size": size })).collect::<Vec<_>>(),
                "hash_algo": "sha256",
            });
            // Without a ref the Hub checks no write permission on the branch: opening a pull
            // request only needs the right to open one (huggingface_hub leaves it out then too).
            if !create_pr {
                payload["ref"] = json!({ "name": target.revision });
            }
            let headers = [
                ("accept", LFS_CONTENT_TYPE),
                ("content-type", LFS_CONTENT_TYPE),
            ];
            let answer = uploader.send_ok(
                Verb::Post,
                &batch_url,
                &Body::Json(&payload),
                &headers,
                true,
                target,
            )?;
            let info = answer.json()?;
            let answered = info
                .get("objects")
                .and_then(Value::as_array)
                .ok_or_else(|| RemoteError::InvalidResponse {
                    url: batch_url.clone(),
                    msg: "LFS batch answer has no 'objects' list".into(),
                })?;
            let path_of = |oid: &str| -> String {
                let paths: Vec<&str> = chunk
                    .iter()
                    .filter(|&&i| plan[i].file.sha256 == oid)
                    .map(|&i| plan[i].file.path_in_repo.as_str())
                    .collect();
                paths.join(", ")
            };
            // Refuse the whole push when storage refuses any object (too large, quota, ...).
            let refusals: Vec<String> = answered
                .iter()
                .filter_map(|o| {
                    let err = o.get("error")?;
                    let oid = o.get("oid").and_then(Value::as_str).unwrap_or("?");
                    let size = o.get("size").and_then(Value::as_u64).unwrap_or(0);
                    let code = err.get("code").and_then(Value::as_i64).unwrap_or(0);
                    let message = err
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("refused");
                    Some(format!(
                        "'{}' ({size} bytes, sha256 {oid}): {message} (code {code})",
                        path_of(oid)
                    ))
                })
                .collect();
            if !refusals.is_empty() {
                return Err(RemoteError::Http {
                    url: batch_url.clone(),
                    status: answer.status,
                    msg: format!(
                        "LFS storage refused {}; nothing was committed",
                        refusals.join("; ")
                    ),
                });
            }
            let mut jobs = Vec::with_capacity(objects.len());
            for (oid, size) in &objects {
                let entry = answered
                    .iter()
                    .find(|o| o.get("oid").and_then(Value::as_str) == Some(oid.as_str()))
                    .ok_or_else(|| RemoteError::InvalidResponse {
                        url: batch_url.clone(),
                        msg: format!("LFS batch answer says nothing about object {oid}"),
                    })?;
                let first = chunk
                    .iter()
                    .copied()
                    .find(|&i| plan[i].file.sha256 == *oid)
                    .unwrap_or(chunk[0]);
                jobs.push(UploadJob {
                    oid,
                    size: *size,
                    file: first,
                    actions: entry.get("actions").filter(|a| a.get("upload").is_some()),
                });
            }
            let uploaded = self.run_upload_jobs(uploader, endpoint, &plan, &jobs, &counter)?;
            let uploaded: Vec<(String, bool)> = jobs
                .iter()
                .zip(uploaded)
                .map(|(j, u)| (j.oid.clone(), u))
                .collect();
            for (oid, was_uploaded) in uploaded {
                for &i in chunk {
                    if plan[i].file.sha256 == oid {
                        plan[i].action = if was_uploaded {
                            PushAction::UploadedLfs
                        } else {
                            PushAction::LfsAlreadyStored
                        };
                        counter.file_done(&plan[i].file.path_in_repo, plan[i].file.size);
                    }
                }
            }
        }
        progress::emit(progress, ProgressEvent::Finish);
        Ok(plan)
    }

    /// Uploads the objects that have actions, `UPLOAD_WORKERS` at a time (as huggingface_hub
    /// does); after the first failure no new upload starts. Returns, per job, whether it was sent.
    fn run_upload_jobs(
        &self,
        uploader: &Uploader<'_>,
        endpoint: &str,
        plan: &[Planned],
        jobs: &[UploadJob<'_>],
        counter: &ProgressCounter,
    ) -> Result<Vec<bool>> {
        let results: Mutex<Vec<Option<Result<bool>>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        let next = AtomicUsize::new(0);
        let workers = UPLOAD_WORKERS
            .min(jobs.iter().filter(|j| j.actions.is_some()).count())
            .max(1);
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(job) = jobs.get(i) else { break };
                    let outcome = match job.actions {
                        None => Ok(false),
                        Some(actions) => self
                            .upload_object(
                                uploader,
                                endpoint,
                                &plan[job.file].file,
                                job.size,
                                actions,
                                counter,
                            )
                            .map(|()| true),
                    };
                    if outcome.is_err() {
                        next.store(jobs.len(), Ordering::Relaxed);
                    }
                    results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(outcome);
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut sent = Vec::with_capacity(jobs.len());
        // The first failure in job order wins; jobs never started after it count as not sent.
        for r in results {
            match r {
                Some(Ok(u)) => sent.push(u),
                Some(Err(e)) => return Err(e),
                None => sent.push(false),
            }
        }
        Ok(sent)
    }

    fn upload_object(
        &self,
        uploader: &Uploader<'_>,
        endpoint: &str,
        file: &LocalFile,
        size: u64,
        actions: &Value,
        counter: &ProgressCounter,
    ) -> Result<()> {
        let upload = &actions["upload"];
        let href = action_href(upload, endpoint)?;
        let header = upload.get("header").and_then(Value::as_object);
        let chunk_size = header.and_then(|h| h.get("chunk_size")).map(|c| match c {
            Value::String(s) => s.trim().parse::<u64>().ok(),
            other => other.as_u64(),
        });
        let what = &file.path_in_repo;
        match chunk_size {
            None => {
                // basic: one PUT of the whole file to the presigned URL. Like huggingface_hub,
                // no token and none of the action's header fields.
                let body = Body::FileSlice {
                    path: &file.local_path,
                    offset: 0,
                    len: size,
                };
                let answer = uploader.send(Verb::Put, &href, &body, &[], false)?;
                if answer.status >= 300 {
                    return Err(upload_error(&answer, what, "upload"));
                }
                uploader.uploaded.fetch_add(size, Ordering::Relaxed);
                counter.advance(what, size, size, size);
            }
            Some(None) | Some(Some(0)) => {
                return Err(RemoteError::InvalidResponse {
                    url: href,
                    msg: format!("multipart upload of '{what}' with an unusable chunk_size"),
                })
            }
            Some(Some(chunk_size)) => {
                self.upload_multipart(uploader, &href, file, size, chunk_size, header, counter)?
            }
        }
        if let Some(verify) = actions.get("verify").filter(|v| !v.is_null()) {
            let verify_url = action_href(verify, endpoint)?;
            let payload = json!({ "oid": file.sha256, "size": size });
            // As huggingface_hub does: the Hub's token (on the Hub's origin only), a JSON body.
            let answer =
                uploader.send(Verb::Post, &verify_url, &Body::Json(&payload), &[], true)?;
            if answer.status >= 300 {
                return Err(upload_error(&answer, what, "verification"));
            }
        }
        Ok(())
    }

    /// Multipart: part N (1-based, the numeric keys of the action header) is bytes
    /// `[(N-1)·chunk_size, N·chunk_size)`; each part is retried on its own; the ETags of the parts
    /// go to the completion URL.
    #[allow(clippy::too_many_arguments)]
    fn upload_multipart(
        &self,
        uploader: &Uploader<'_>,
        completion_url: &str,
        file: &LocalFile,
        size: u64,
        chunk_size: u64,
        header: Option<&serde_json::Map<String, Value>>,
        counter: &ProgressCounter,
    ) -> Result<()> {
        let what = &file.path_in_repo;
        let mut parts: Vec<(u64, String)> = header
            .into_iter()
            .flatten()
            .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|(k, v)| Some((k.parse::<u64>().ok()?, v.as_str()?.to_string())))
            .collect();
        parts.sort_by_key(|(n, _)| *n);
        let expected = size.div_ceil(chunk_size);
        let numbered_in_order = parts
            .iter()
            .enumerate()
            .all(|(i, (n, _))| *n == i as u64 + 1);
        if parts.len() as u64 != expected || !numbered_in_order {
            return Err(RemoteError::InvalidResponse {
                url: completion_url.to_string(),
                msg: format!(
                    "multipart upload of '{what}': {size} bytes in {chunk_size}-byte parts needs parts 1..={expected}, the server sent {} part URLs",
                    parts.len()
                ),
            });
        }
        let mut etags = Vec::with_capacity(parts.len());
        let mut sent = 0;
        for (number, part_url) in &parts {
            let offset = (number - 1) * chunk_size;
            let len = chunk_size.min(size - offset);
            let body = Body::FileSlice {
                path: &file.local_path,
                offset,
                len,
            };
            // `send` retries this part alone on network errors and 5xx, with backoff.
            let answer = uploader.send(Verb::Put, part_url, &body, &[], false)?;
            if answer.status >= 300 {
                return Err(upload_error(
                    &answer,
                    what,
                    &format!("part {number} of {}", parts.len()),
                ));
            }
            let etag = answer
                .header("etag")
                .map(str::to_string)
                .filter(|e| !e.is_empty())
                .ok_or_else(|| RemoteError::InvalidResponse {
                    url: part_url.clone(),
                    msg: format!("no ETag for part {number} of '{what}'"),
                })?;
            etags.push(json!({ "partNumber": number, "etag": etag }));
            sent += len;
            uploader.uploaded.fetch_add(len, Ordering::Relaxed);
            counter.advance(what, len, sent, size);
        }
        let payload = json!({ "oid": file.sha256, "parts": etags });
        let headers = [
            ("accept", LFS_CONTENT_TYPE),
            ("content-type", LFS_CONTENT_TYPE),
        ];
        let answer = uploader.send(
            Verb::Post,
            completion_url,
            &Body::Json(&payload),
            &headers,
            false,
        )?;
        if answer.status >= 300 {
            return Err(upload_error(&answer, what, "multipart completion"));
        }
        Ok(())
    }

    /// The NDJSON commit; returns (commit oid, commit URL, pull request).
    fn commit(
        &self,
        uploader: &Uploader<'_>,
        target: &Target,
        files: &[&Planned],
        summary: &str,
        description: &str,
        create_pr: bool,
    ) -> Result<(Option<String>, Option<String>, Option<PullRequest>)> {
        let mut url = target.api(&self.config().endpoint, "commit");
        if create_pr {
            url.push_str("?create_pr=1");
        }
        let mut body = Vec::new();
        let mut line = |v: Value| {
            body.extend_from_slice(v.to_string().as_bytes());
            body.push(b'\n');
        };
        line(
            json!({ "key": "header", "value": { "summary": summary, "description": description } }),
        );
        for p in files {
            let f = &p.file;
            match p.mode {
                UploadMode::Regular => {
                    let content = std::fs::read(&f.local_path)
                        .map_err(|e| RemoteError::io(&f.local_path, e))?;
                    if sha256_hex(&content) != f.sha256 {
                        return Err(RemoteError::Usage(format!(
                            "{}: the file changed while it was being pushed; nothing was committed",
                            f.local_path.display()
                        )));
                    }
                    line(
                        json!({ "key": "file", "value": { "content": base64_encode(&content), "path": f.path_in_repo, "encoding": "base64" } }),
                    );
                }
                UploadMode::Lfs => {
                    line(
                        json!({ "key": "lfsFile", "value": { "path": f.path_in_repo, "algo": "sha256", "oid": f.sha256, "size": f.size } }),
                    );
                }
            }
        }
        // A commit is not idempotent: like huggingface_hub, it is sent once, never retried.
        let answer = uploader.send_following(
            Verb::Post,
            &url,
            &Body::Bytes {
                bytes: &body,
                content_type: "application/x-ndjson",
            },
            &[],
            true,
        )?;
        if answer.status >= 300 {
            return Err(target.error(&answer));
        }
        let info = answer.json()?;
        let commit = info
            .get("commitOid")
            .and_then(Value::as_str)
            .map(str::to_string);
        let commit_url = info
            .get("commitUrl")
            .and_then(Value::as_str)
            .map(str::to_string);
        let pull_request = match info.get("pullRequestUrl").and_then(Value::as_str) {
            Some(pr_url) => {
                let number = pr_url
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .ok_or_else(|| RemoteError::InvalidResponse {
                        url: url.clone(),
                        msg: format!("pull request URL '{pr_url}' does not end in its number"),
                    })?;
                Some(PullRequest {
                    number,
                    revision: format!("refs/pr/{number}"),
                    url: pr_url.to_string(),
                })
            }
            None if create_pr => {
                return Err(RemoteError::InvalidResponse {
                    url,
                    msg: "asked for a pull request but the answer has no pullRequestUrl".into(),
                })
            }
            None => None,
        };
        Ok((commit, commit_url, pull_request))
    }
}

fn upload_error(answer: &Answer, what: &str, step: &str) -> RemoteError {
    RemoteError::Http {
        url: answer.url.clone(),
        status: answer.status,
        msg: format!(
            "{step} of '{what}' failed: {}; nothing was committed",
            answer.error_message()
        ),
    }
}

/// An action's URL; huggingface_hub rewrites the default endpoint in it to HF_ENDPOINT (for
/// mirrors), so do the same.
fn action_href(action: &Value, endpoint: &str) -> Result<String> {
    let href =
        action
            .get("href")
            .and_then(Value::as_str)
            .ok_or_else(|| RemoteError::InvalidResponse {
                url: endpoint.to_string(),
                msg: "LFS action without an href".into(),
            })?;
    let default = crate::config::DEFAULT_ENDPOINT;
    Ok(match href.strip_prefix(default) {
        Some(rest) if endpoint != default && (rest.is_empty() || rest.starts_with('/')) => {
            format!("{endpoint}{rest}")
        }
        _ => href.to_string(),
    })
}

/// The oid preupload reports for an unchanged file: sha256 for LFS, git blob sha1 for regular.
fn local_oid(file: &LocalFile, mode: UploadMode) -> Result<String> {
    match mode {
        UploadMode::Lfs => Ok(file.sha256.clone()),
        UploadMode::Regular => {
            let mut hasher = sha1::Sha1::new();
            hasher.update(format!("blob {}\0", file.size).as_bytes());
            let mut f =
                File::open(&file.local_path).map_err(|e| RemoteError::io(&file.local_path, e))?;
            let mut buf = vec![0u8; HASH_BUFFER];
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| RemoteError::io(&file.local_path, e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
            Ok(hex(&hasher.finalize()))
        }
    }
}

struct ProgressCounter {
    callback: Option<SharedProgress>,
}

impl ProgressCounter {
    /// `delta` more bytes of `file` were sent (`file_bytes` of it so far).
    fn advance(&self, file: &str, delta: u64, file_bytes: u64, file_size: u64) {
        if let Some(cb) = &self.callback {
            cb.event(ProgressEvent::Advance { bytes: delta });
            cb.event(ProgressEvent::File {
                name: file,
                done: file_bytes,
                size: Some(file_size),
                complete: false,
            });
        }
    }
    fn file_done(&self, file: &str, size: u64) {
        if let Some(cb) = &self.callback {
            cb.event(ProgressEvent::File {
                name: file,
                done: size,
                size: Some(size),
                complete: true,
            });
        }
    }
}

struct UploadJob<'a> {
    oid: &'a String,
    size: u64,
    /// Index of the first planned file with this content.
    file: usize,
    /// None: storage already has the object.
    actions: Option<&'a Value>,
}

fn default_message(local: &Path, plan: &[Planned]) -> String {
    match plan {
        [one] if local.is_file() => format!("Upload {} with ckpt", one.file.path_in_repo),
        _ => "Upload folder using ckpt".to_string(),
    }
}

/// The files to push with their repository paths, sorted, before hashing.
fn collect_local_files(
    local: &Path,
    opts: &PushOptions,
) -> Result<(Vec<LocalFile>, Vec<SkippedFile>)> {
    let meta = std::fs::metadata(local).map_err(|e| RemoteError::io(local, e))?;
    let include = file_globs(&opts.include)?;
    let exclude = file_globs(&opts.exclude)?;
    let prefix = opts
        .path_in_repo
        .as_deref()
        .unwrap_or("")
        .trim_start_matches('/');
    let mut found: Vec<(PathBuf, String, u64)> = Vec::new();
    let mut skipped: Vec<SkippedFile> = Vec::new();
    if meta.is_file() {
        let name = local
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| {
                RemoteError::Usage(format!(
                    "{}: the file name is not valid UTF-8",
                    local.display()
                ))
            })?
            .to_string();
        found.push((local.to_path_buf(), name, meta.len()));
    } else if meta.is_dir() {
        let root = std::fs::canonicalize(local).map_err(|e| RemoteError::io(local, e))?;
        let mut allowed = vec![root.clone()];
        allowed.extend(cache_blobs_of_snapshot(&root));
        let mut walker = Walker {
            allowed,
            follow_symlinks: opts.follow_symlinks,
            found: &mut found,
            skipped: &mut skipped,
        };
        walker.walk(local, "")?;
    } else {
        return Err(RemoteError::Usage(format!(
            "{}: neither a file nor a folder",
            local.display()
        )));
    }
    let single_file = meta.is_file();
    let mut files = Vec::new();
    for (local_path, relative, size) in found {
        if include.as_ref().is_some_and(|g| !g.is_match(&relative))
            || exclude.as_ref().is_some_and(|g| g.is_match(&relative))
        {
            continue;
        }
        let path_in_repo = if single_file && !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.to_string()
        } else if prefix.is_empty() {
            relative.clone()
        } else {
            format!("{}/{relative}", prefix.trim_end_matches('/'))
        };
        check_repo_path(&path_in_repo)
            .map_err(|msg| RemoteError::Usage(format!("{}: {msg}", local_path.display())))?;
        files.push(LocalFile {
            local_path,
            path_in_repo,
            size,
            sha256: String::new(),
            sample: Vec::new(),
        });
    }
    files.sort_by(|a, b| a.path_in_repo.cmp(&b.path_in_repo));
    if let Some(w) = files
        .windows(2)
        .find(|w| w[0].path_in_repo == w[1].path_in_repo)
    {
        return Err(RemoteError::Usage(format!(
            "two local files map to '{}' in the repository",
            w[0].path_in_repo
        )));
    }
    skipped.retain(|f| {
        include.as_ref().is_none_or(|g| g.is_match(&f.path))
            && !exclude.as_ref().is_some_and(|g| g.is_match(&f.path))
    });
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((files, skipped))
}

/// The `blobs/` folder of a huggingface_hub cache repository when `root` is (inside) one of its
/// snapshots (`…/models--ORG--NAME/snapshots/<commit>/…`): a snapshot's files are symlinks into
/// it, and uploading them is uploading the snapshot.
fn cache_blobs_of_snapshot(root: &Path) -> Option<PathBuf> {
    for dir in root.ancestors() {
        let is_snapshot = dir
            .parent()
            .is_some_and(|p| p.file_name().is_some_and(|n| n == "snapshots"));
        if !is_snapshot {
            continue;
        }
        let repo = dir.parent()?.parent()?;
        let name = repo.file_name()?.to_str()?;
        if ["models--", "datasets--", "spaces--"]
            .iter()
            .any(|p| name.starts_with(p))
        {
            let blobs = repo.join("blobs");
            return blobs.is_dir().then_some(blobs);
        }
    }
    None
}

/// Recursive listing like huggingface_hub's `upload_folder`: symlinked files are followed when
/// they resolve inside the folder (or, for a huggingface_hub snapshot folder, into its cache
/// repository's `blobs/`), symlinked folders are not entered, and `.git` and
/// `.cache/huggingface` (at any depth) are left out. A file whose real path leaves the folder
/// is skipped (recorded in `skipped`) unless `follow_symlinks`.
struct Walker<'a> {
    allowed: Vec<PathBuf>,
    follow_symlinks: bool,
    found: &'a mut Vec<(PathBuf, String, u64)>,
    skipped: &'a mut Vec<SkippedFile>,
}

impl Walker<'_> {
    fn walk(&mut self, dir: &Path, relative: &str) -> Result<()> {
        let entries = std::fs::read_dir(dir).map_err(|e| RemoteError::io(dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| RemoteError::io(dir, e))?;
            let path = entry.path();
            let name = entry.file_name().into_string().map_err(|n| {
                RemoteError::Usage(format!(
                    "{}: file name {n:?} is not valid UTF-8",
                    dir.display()
                ))
            })?;
            let rel = if relative.is_empty() {
                name.clone()
            } else {
                format!("{relative}/{name}")
            };
            if name == ".git"
                || (name == "huggingface"
                    && (relative == ".cache" || relative.ends_with("/.cache")))
            {
                continue;
            }
            let is_link = entry
                .file_type()
                .map_err(|e| RemoteError::io(&path, e))?
                .is_symlink();
            let meta = std::fs::metadata(&path).map_err(|e| RemoteError::io(&path, e))?;
            if meta.is_dir() && !is_link {
                self.walk(&path, &rel)?;
            } else if meta.is_file() {
                if is_link && !self.follow_symlinks {
                    let target =
                        std::fs::canonicalize(&path).map_err(|e| RemoteError::io(&path, e))?;
                    if !self.allowed.iter().any(|a| target.starts_with(a)) {
                        self.skipped.push(SkippedFile {
                            path: rel,
                            local_path: path,
                            target,
                            reason: "symlink to a file outside the folder (pass `follow_symlinks` to upload it)".into(),
                        });
                        continue;
                    }
                }
                self.found.push((path, rel, meta.len()));
            }
        }
        Ok(())
    }
}

/// sha256 of every file, streamed, with the first bytes kept as the preupload sample.
fn hash_files(files: &mut [LocalFile], progress: Option<&SharedProgress>) -> Result<()> {
    progress::emit(
        progress,
        ProgressEvent::Start {
            phase: "hashing",
            total: files.iter().map(|f| f.size).sum(),
        },
    );
    let mut buf = vec![0u8; HASH_BUFFER];
    for file in files.iter_mut() {
        let mut f =
            File::open(&file.local_path).map_err(|e| RemoteError::io(&file.local_path, e))?;
        let mut hasher = sha2::Sha256::new();
        let mut read = 0u64;
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| RemoteError::io(&file.local_path, e))?;
            if n == 0 {
                break;
            }
            if file.sample.len() < SAMPLE_LEN {
                let take = (SAMPLE_LEN - file.sample.len()).min(n);
                file.sample.extend_from_slice(&buf[..take]);
            }
            hasher.update(&buf[..n]);
            read += n as u64;
            if let Some(cb) = progress {
                cb.event(ProgressEvent::Advance { bytes: n as u64 });
                cb.event(ProgressEvent::File {
                    name: &file.path_in_repo,
                    done: read,
                    size: Some(file.size),
                    complete: false,
                });
            }
        }
        if read != file.size {
            return Err(RemoteError::Usage(format!(
                "{}: the file changed size while it was being read ({} bytes listed, {read} read)",
                file.local_path.display(),
                file.size
            )));
        }
        file.sha256 = hex(&hasher.finalize());
        progress::emit(
            progress,
            ProgressEvent::File {
                name: &file.path_in_repo,
                done: read,
                size: Some(file.size),
                complete: true,
            },
        );
    }
    progress::emit(progress, ProgressEvent::Finish);
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&sha2::Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Standard base64 with padding (RFC 4648 §4), as Python's `base64.b64encode`.
fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), expected);
        }
        assert_eq!(base64_encode(&[0xff, 0xfe, 0x00]), "//4A");
    }

    #[test]
    fn targets() {
        let t = parse_target("org/name", &PushOptions::default()).unwrap();
        assert_eq!(
            (t.uri.repo_id.as_str(), t.revision.as_str()),
            ("org/name", "main")
        );
        let t = parse_target("hf://org/name@dev", &PushOptions::default()).unwrap();
        assert_eq!(t.revision, "dev");
        let t = parse_target(
            "org/name@dev",
            &PushOptions {
                revision: Some("refs/pr/2".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            t.api("http://h", "commit"),
            "http://h/api/models/org/name/commit/refs%2Fpr%2F2"
        );
        assert!(parse_target("hf://org/name/sub/file", &PushOptions::default()).is_err());
        assert!(parse_target("https://example.com/x", &PushOptions::default()).is_err());
    }

    #[test]
    fn action_urls_follow_a_custom_endpoint() {
        let a = json!({ "href": "https://huggingface.co/org/x.git/info/lfs/objects/abc" });
        assert_eq!(
            action_href(&a, "http://mirror:8080").unwrap(),
            "http://mirror:8080/org/x.git/info/lfs/objects/abc"
        );
        let s3 = json!({ "href": "https://s3.amazonaws.com/bucket/abc?sig=1" });
        assert_eq!(
            action_href(&s3, "http://mirror:8080").unwrap(),
            "https://s3.amazonaws.com/bucket/abc?sig=1"
        );
    }

    #[cfg(unix)]
    #[test]
    fn local_listing_paths_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join("a.safetensors"), b"x").unwrap();
        std::fs::write(dir.path().join("sub/config.json"), b"{}").unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), b"ref").unwrap();
        std::fs::create_dir_all(dir.path().join("sub/.cache/huggingface")).unwrap();
        std::fs::write(dir.path().join("sub/.cache/huggingface/x.lock"), b"").unwrap();
        std::fs::write(dir.path().join("sub/.git"), b"gitdir: ..").unwrap();
        std::os::unix::fs::symlink(dir.path().join("sub"), dir.path().join("sub-link")).unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("a.safetensors"),
            dir.path().join("b.safetensors"),
        )
        .unwrap();
        let names = |opts: &PushOptions, p: &Path| -> Vec<String> {
            collect_local_files(p, opts)
                .unwrap()
                .0
                .into_iter()
                .map(|f| f.path_in_repo)
                .collect()
        };
        assert_eq!(
            names(&PushOptions::default(), dir.path()),
            ["a.safetensors", "b.safetensors", "sub/config.json"]
        );
        let o = PushOptions {
            path_in_repo: Some("v2/".into()),
            include: vec!["sub/".into()],
            ..Default::default()
        };
        assert_eq!(names(&o, dir.path()), ["v2/sub/config.json"]);
        let file = dir.path().join("a.safetensors");
        assert_eq!(names(&PushOptions::default(), &file), ["a.safetensors"]);
        assert_eq!(
            names(
                &PushOptions {
                    path_in_repo: Some("w/model.safetensors".into()),
                    ..Default::default()
                },
                &file
            ),
            ["w/model.safetensors"]
        );
        assert_eq!(
            names(
                &PushOptions {
                    path_in_repo: Some("w/".into()),
                    ..Default::default()
                },
                &file
            ),
            ["w/a.safetensors"]
        );
    }
}
