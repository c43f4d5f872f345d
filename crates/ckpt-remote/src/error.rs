//! What can go wrong talking to a Hub, each case with a message that says what to do next.

use std::path::PathBuf;

/// A failure of a Hub operation. Converts into [`ckpt_core::Error`] (not-found and HTTP failures
/// as [`ckpt_core::Error::Io`], bad locations as usage errors, corrupt answers as invalid input).
#[derive(thiserror::Error, Debug)]
pub enum RemoteError {
    /// The text is not an `hf://` location or http(s) URL ckpt accepts.
    #[error("{uri}: not a valid hf:// or http(s):// location: {msg}")]
    BadUri {
        /// The text as given.
        uri: String,
        /// What is wrong with it.
        msg: String,
    },
    /// The Hub says the repository does not exist (`X-Error-Code: RepoNotFound`; a private
    /// repository answers the same without a token).
    #[error("repository '{repo}' not found at {url} (check the name; a private repository also answers 404 without a token: set HF_TOKEN)")]
    RepoNotFound {
        /// The repository id (`ORG/NAME`).
        repo: String,
        /// The URL asked.
        url: String,
    },
    /// The repository exists but the branch, tag or commit does not.
    #[error("revision '{revision}' not found in '{repo}' ({url})")]
    RevisionNotFound {
        /// The repository id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The URL asked.
        url: String,
    },
    /// The file is not in the repository at that revision.
    #[error("file '{path}' not found in '{repo}' at revision '{revision}' ({url})")]
    EntryNotFound {
        /// The repository id.
        repo: String,
        /// The revision asked for.
        revision: String,
        /// The file's path in the repository.
        path: String,
        /// The URL asked.
        url: String,
        /// The commit the Hub resolved the revision to (its X-Repo-Commit), when it said.
        commit: Option<String>,
    },
    /// HTTP 401 or 403, or a gated repository: a token is missing or lacks access, or the
    /// model's conditions were not accepted.
    #[error("{url}: HTTP {status}: {what}; set HF_TOKEN (or log in so that $HF_HOME/token exists) with a token that has access{}", if *.gated { " and accept the model's conditions on its page" } else { "" })]
    Unauthorized {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What was refused (the repository, file or operation).
        what: String,
        /// The Hub said the repository is gated (its conditions must be accepted on its page).
        gated: bool,
    },
    /// Any other HTTP error status, after retries for 5xx and 429.
    #[error("{url}: HTTP {status}{}", if msg.is_empty() { String::new() } else { format!(": {msg}") })]
    Http {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The server's error message (its `X-Error-Message` or body), possibly empty.
        msg: String,
    },
    /// No response: a connection, TLS or timeout failure after retries (or HF_HUB_OFFLINE:
    /// no request was sent).
    #[error("{url}: {msg}")]
    Network {
        /// The URL asked.
        url: String,
        /// The transport's error.
        msg: String,
    },
    /// The connection failed while the body was being read.
    #[error("{url}: {msg}")]
    Interrupted {
        /// The URL being read.
        url: String,
        /// The transport's error.
        msg: String,
    },
    /// The body ended before its announced length.
    #[error("{url}: the response ended after {got} of {expected} bytes (truncated)")]
    Truncated {
        /// The URL being read.
        url: String,
        /// Bytes announced (Content-Length or the Range asked).
        expected: u64,
        /// Bytes received.
        got: u64,
    },
    /// A ranged read got the whole file (HTTP 200) instead of the range (206).
    #[error("{url}: the server ignored the Range request and sent the whole file (HTTP 200 instead of 206) {msg}")]
    RangeNotSupported {
        /// The URL asked.
        url: String,
        /// Which read it was.
        msg: String,
    },
    /// A downloaded file's hash differs from the one the Hub announced (its ETag: sha256 for LFS
    /// files, git's blob sha1 otherwise); the download was deleted.
    #[error("{url}: downloaded data has {algorithm} {actual} but the server announced {expected}; the partial download was deleted")]
    ChecksumMismatch {
        /// The URL downloaded.
        url: String,
        /// `sha256` or `sha1`.
        algorithm: &'static str,
        /// The announced hash, lowercase hex.
        expected: String,
        /// The hash of the bytes received, lowercase hex.
        actual: String,
    },
    /// The file holds a Git LFS pointer instead of the weights it stands for.
    #[error("{what}: this is a Git LFS pointer file (text starting with 'version https://git-lfs'), not the weights; the real file lives in LFS storage")]
    LfsPointer {
        /// The file (URL or repository path).
        what: String,
    },
    /// Offline (`HF_HUB_OFFLINE`) and the cache does not have what is asked.
    #[error("HF_HUB_OFFLINE is set and {what} is not in the cache at {}; run without HF_HUB_OFFLINE once to download it", cache.display())]
    NotCached {
        /// The file or revision missing.
        what: String,
        /// The cache folder looked in.
        cache: PathBuf,
    },
    /// A wrong request: bad options, or a path, revision or name ckpt refuses.
    #[error("{0}")]
    Usage(String),
    /// The server answered something that is not what the Hub API answers (bad JSON, a missing
    /// header, a hash that is not a hash).
    #[error("{url}: {msg}")]
    InvalidResponse {
        /// The URL asked.
        url: String,
        /// What is wrong with the answer.
        msg: String,
    },
    /// Reading or writing a local file (the cache, an upload's source) failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The local file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A remote header or a local file is not a valid checkpoint (the format readers' error).
    #[error(transparent)]
    Format(#[from] ckpt_core::Error),
}

/// `Result` with [`RemoteError`] as its default error.
pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

impl RemoteError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> RemoteError {
        RemoteError::Io {
            path: path.into(),
            source,
        }
    }

    /// True for failures a retry may fix (connection resets, timeouts, 5xx, truncated bodies).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            RemoteError::Network { .. }
            | RemoteError::Truncated { .. }
            | RemoteError::Interrupted { .. } => true,
            RemoteError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// True for a failure while reading a body, which a new (ranged) request can resume; the
    /// request itself was already retried by the HTTP layer.
    pub(crate) fn is_interrupted_body(&self) -> bool {
        matches!(
            self,
            RemoteError::Truncated { .. } | RemoteError::Interrupted { .. }
        )
    }

    /// True when the remote side could not be reached at all (so a cached copy may be used).
    pub(crate) fn is_connection_failure(&self) -> bool {
        matches!(self, RemoteError::Network { .. })
            || matches!(self, RemoteError::Http { status, .. } if *status >= 500)
    }
}

impl From<RemoteError> for ckpt_core::Error {
    fn from(e: RemoteError) -> ckpt_core::Error {
        use std::io::ErrorKind;
        let msg = e.to_string();
        match e {
            RemoteError::Format(inner) => inner,
            RemoteError::Io { path, source } => ckpt_core::Error::Io { path, source },
            RemoteError::BadUri { .. } | RemoteError::Usage(_) => ckpt_core::Error::Usage(msg),
            RemoteError::RepoNotFound { url, .. }
            | RemoteError::RevisionNotFound { url, .. }
            | RemoteError::EntryNotFound { url, .. } => ckpt_core::Error::Io {
                path: PathBuf::from(url),
                source: std::io::Error::new(ErrorKind::NotFound, msg),
            },
            RemoteError::Unauthorized { url, .. } => ckpt_core::Error::Io {
                path: PathBuf::from(url),
                source: std::io::Error::new(ErrorKind::PermissionDenied, msg),
            },
            RemoteError::NotCached { cache, .. } => ckpt_core::Error::Io {
                path: cache,
                source: std::io::Error::new(ErrorKind::NotFound, msg),
            },
            RemoteError::Http { url, .. }
            | RemoteError::Network { url, .. }
            | RemoteError::Interrupted { url, .. } => ckpt_core::Error::Io {
                path: PathBuf::from(url),
                source: std::io::Error::other(msg),
            },
            RemoteError::Truncated { url, .. }
            | RemoteError::RangeNotSupported { url, .. }
            | RemoteError::ChecksumMismatch { url, .. }
            | RemoteError::InvalidResponse { url, .. } => ckpt_core::Error::Invalid {
                path: PathBuf::from(url),
                msg,
            },
            RemoteError::LfsPointer { what } => ckpt_core::Error::Invalid {
                path: PathBuf::from(what),
                msg,
            },
        }
    }
}
