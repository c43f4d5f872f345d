//! The Hub's routes: resolve URLs, repository info (file listing) and per-file metadata.

use std::sync::Arc;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use serde::Deserialize;

use crate::config::HubConfig;
use crate::error::{RemoteError, Result};
use crate::http::{normalize_etag, Client, Context, Method, Redirects, Stats};
use crate::uri::{percent_encode, HubUri};

/// Listings larger than this are refused (the biggest real repos list well under it).
const MAX_LISTING_BYTES: u64 = 64 << 20;

/// A Hub connection: configuration, one HTTP agent (with its connection pool) and counters.
#[derive(Clone)]
pub struct Hub {
    pub(crate) client: Client,
}

/// One file of a repository listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RepoFile {
    /// The path in the repository (`/`-separated, checked to stay inside it).
    pub path: String,
    /// Size in bytes, when the listing gives it.
    pub size: Option<u64>,
    /// sha256 of the content for LFS files.
    pub lfs_sha256: Option<String>,
}

/// A repository at one revision, as the Hub's API lists it.
#[derive(Debug, Clone)]
pub(crate) struct RepoInfo {
    /// The commit the revision points to.
    pub sha: String,
    /// Every file of the repository at that commit.
    pub files: Vec<RepoFile>,
}

/// What a HEAD on a resolve URL tells about one file.
#[derive(Debug, Clone)]
pub struct FileMetadata {
    /// The commit the revision resolved to (X-Repo-Commit).
    pub commit: String,
    /// Blob identity: sha256 for LFS files, git blob sha1 for regular ones.
    pub etag: String,
    /// Size in bytes (X-Linked-Size, else Content-Length of a non-redirect answer).
    pub size: Option<u64>,
    /// Where the bytes are (the CDN location of an LFS file, else the resolve URL).
    pub location: String,
}

#[derive(Deserialize)]
struct RawInfo {
    sha: Option<String>,
    #[serde(default)]
    siblings: Vec<RawSibling>,
}

#[derive(Deserialize)]
struct RawSibling {
    rfilename: String,
    size: Option<u64>,
    lfs: Option<RawLfs>,
}

#[derive(Deserialize)]
struct RawLfs {
    sha256: Option<String>,
}

impl Hub {
    /// A connection to the Hub `config` describes (no request is sent yet).
    pub fn new(config: HubConfig) -> Hub {
        Hub {
            client: Client::new(config),
        }
    }
    /// A connection configured from the environment ([`HubConfig::from_env`]).
    pub(crate) fn from_env() -> Hub {
        Hub::new(HubConfig::from_env())
    }
    /// The configuration this connection uses.
    pub fn config(&self) -> &HubConfig {
        &self.client.config
    }
    /// The request and byte counters of this connection (shared by its clones).
    pub fn stats(&self) -> Arc<Stats> {
        self.client.stats.clone()
    }

    pub(crate) fn context(uri: &HubUri, revision: &str, path: &str) -> Context {
        Context {
            repo: uri.repo_id.clone(),
            revision: revision.to_string(),
            path: path.to_string(),
        }
    }

    /// `{endpoint}/{prefix}{repo}/resolve/{revision}/{path}`: the revision fully percent-encoded
    /// (`refs/pr/1` → `refs%2Fpr%2F1`), each path segment encoded.
    pub(crate) fn resolve_url(&self, uri: &HubUri, revision: &str, path: &str) -> String {
        format!(
            "{}/{}{}/resolve/{}/{}",
            self.config().endpoint,
            uri.repo_type.url_prefix(),
            uri.repo_id,
            percent_encode(revision, false),
            percent_encode(path, true)
        )
    }

    /// `GET /api/{models}/{repo}/revision/{rev}?blobs=true`: the commit and every file.
    pub(crate) fn repo_info(&self, uri: &HubUri, revision: &str) -> Result<RepoInfo> {
        let url = format!(
            "{}/api/{}/{}/revision/{}?blobs=true",
            self.config().endpoint,
            uri.repo_type.plural(),
            uri.repo_id,
            percent_encode(revision, false)
        );
        let ctx = Self::context(uri, revision, "");
        let (_, body) = self.client.get_bytes(&url, MAX_LISTING_BYTES, Some(&ctx))?;
        let raw: RawInfo =
            serde_json::from_slice(&body).map_err(|e| RemoteError::InvalidResponse {
                url: url.clone(),
                msg: format!("repository info is not the expected JSON: {e}"),
            })?;
        let sha =
            raw.sha
                .filter(|s| is_commit_hash(s))
                .ok_or_else(|| RemoteError::InvalidResponse {
                    url: url.clone(),
                    msg: "repository info has no commit sha".into(),
                })?;
        let mut files = Vec::with_capacity(raw.siblings.len());
        for s in raw.siblings {
            check_repo_path(&s.rfilename).map_err(|msg| RemoteError::InvalidResponse {
                url: url.clone(),
                msg,
            })?;
            files.push(RepoFile {
                path: s.rfilename,
                size: s.size,
                lfs_sha256: s.lfs.and_then(|l| l.sha256),
            });
        }
        Ok(RepoInfo { sha, files })
    }

    /// HEAD on the resolve URL, following relative redirects only, like huggingface_hub. Fails
    /// with [`RemoteError::InvalidResponse`] when the answer has no X-Repo-Commit or no ETag.
    pub fn file_metadata(&self, uri: &HubUri, revision: &str, path: &str) -> Result<FileMetadata> {
        let url = self.resolve_url(uri, revision, path);
        let ctx = Self::context(uri, revision, path);
        let response = self.client.send(
            Method::Head,
            &url,
            None,
            Redirects::RelativeOnly,
            Some(&ctx),
        )?;
        let commit = response
            .any_header("x-repo-commit")
            .map(|c| c.trim().to_string())
            .filter(|c| is_commit_hash(c))
            .ok_or_else(|| RemoteError::InvalidResponse {
                url: url.clone(),
                msg: "no X-Repo-Commit header: the server is not a Hugging Face Hub (or a proxy strips its headers)".into(),
            })?;
        let etag = response
            .header("x-linked-etag")
            .or_else(|| response.header("etag"))
            .map(normalize_etag)
            .filter(|e| !e.is_empty())
            .ok_or_else(|| RemoteError::InvalidResponse {
                url: url.clone(),
                msg: "no ETag or X-Linked-Etag header".into(),
            })?;
        check_etag(&etag).map_err(|msg| RemoteError::InvalidResponse {
            url: url.clone(),
            msg,
        })?;
        // A redirect's Content-Length describes the redirect body, not the file.
        let size = response
            .header("x-linked-size")
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                if response.is_redirect() {
                    None
                } else {
                    response.content_length()
                }
            });
        let location = response
            .location
            .clone()
            .unwrap_or_else(|| response.url.clone());
        Ok(FileMetadata {
            commit,
            etag,
            size,
            location,
        })
    }
}

pub(crate) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Repository paths come from the server: refuse anything that could escape the snapshot folder.
pub(crate) fn check_repo_path(p: &str) -> std::result::Result<(), String> {
    if p.is_empty()
        || p.starts_with('/')
        || p.contains('\\')
        || p.contains('\0')
        || p.split('/').any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(format!(
            "refusing unsafe file path '{p}' in the repository listing"
        ));
    }
    Ok(())
}

/// Etags become file names in `blobs/`.
pub(crate) fn check_etag(e: &str) -> std::result::Result<(), String> {
    if e.is_empty()
        || e.starts_with('.')
        || e.len() > 200
        || !e
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'='))
    {
        return Err(format!("refusing etag '{e}' as a blob name"));
    }
    Ok(())
}

/// `--include`/`--exclude` patterns (`allow_patterns`/`ignore_patterns` of huggingface_hub) as
/// one glob set: `*` also crosses `/`, and a pattern ending in `/` means everything below it.
/// `None` for no patterns.
pub(crate) fn file_globs(patterns: &[String]) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for p in patterns {
        let p = if p.ends_with('/') {
            format!("{p}*")
        } else {
            p.clone()
        };
        let glob = GlobBuilder::new(&p)
            .literal_separator(false)
            .build()
            .map_err(|e| RemoteError::Usage(format!("invalid file pattern '{p}': {e}")))?;
        builder.add(glob);
    }
    builder
        .build()
        .map(Some)
        .map_err(|e| RemoteError::Usage(format!("invalid file patterns: {e}")))
}
