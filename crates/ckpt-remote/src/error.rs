//! What can go wrong talking to a Hub, each case with a message that says what to do next.

use std::path::PathBuf;

#[derive(thiserror::Error, Debug)]
pub enum RemoteError {
    #[error("{uri}: not a valid hf:// or http(s):// location: {msg}")]
    BadUri { uri: String, msg: String },
    #[error("repository '{repo}' not found at {url} (check the name; a private repository also answers 404 without a token: set HF_TOKEN)")]
    RepoNotFound { repo: String, url: String },
    #[error("revision '{revision}' not found in '{repo}' ({url})")]
    RevisionNotFound {
        repo: String,
        revision: String,
        url: String,
    },
    #[error("file '{path}' not found in '{repo}' at revision '{revision}' ({url})")]
    EntryNotFound {
        repo: String,
        revision: String,
        path: String,
        url: String,
        /// The commit the Hub resolved the revision to (its X-Repo-Commit), when it said.
        commit: Option<String>,
    },
    #[error("{url}: HTTP {status}: {what}; set HF_TOKEN (or log in so that $HF_HOME/token exists) with a token that has access{}", if *.gated { " and accept the model's conditions on its page" } else { "" })]
    Unauthorized {
        url: String,
        status: u16,
        what: String,
        gated: bool,
    },
    #[error("{url}: HTTP {status}{}", if msg.is_empty() { String::new() } else { format!(": {msg}") })]
    Http {
        url: String,
        status: u16,
        msg: String,
    },
    #[error("{url}: {msg}")]
    Network { url: String, msg: String },
    /// The connection failed while the body was being read.
    #[error("{url}: {msg}")]
    Interrupted { url: String, msg: String },
    #[error("{url}: the response ended after {got} of {expected} bytes (truncated)")]
    Truncated {
        url: String,
        expected: u64,
        got: u64,
    },
    #[error("{url}: the server ignored the Range request and sent the whole file (HTTP 200 instead of 206) {msg}")]
    RangeNotSupported { url: String, msg: String },
    #[error("{url}: downloaded data has {algorithm} {actual} but the server announced {expected}; the partial download was deleted")]
    ChecksumMismatch {
        url: String,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{what}: this is a Git LFS pointer file (text starting with 'version https://git-lfs'), not the weights; the real file lives in LFS storage")]
    LfsPointer { what: String },
    #[error("HF_HUB_OFFLINE is set and {what} is not in the cache at {}; run without HF_HUB_OFFLINE once to download it", cache.display())]
    NotCached { what: String, cache: PathBuf },
    #[error("{0}")]
    Usage(String),
    #[error("{url}: {msg}")]
    InvalidResponse { url: String, msg: String },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Format(#[from] ckpt_core::Error),
}

pub type Result<T, E = RemoteError> = std::result::Result<T, E>;

impl RemoteError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> RemoteError {
        RemoteError::Io {
            path: path.into(),
            source,
        }
    }

    /// True for failures a retry may fix (connection resets, timeouts, 5xx, truncated bodies).
    pub fn is_transient(&self) -> bool {
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
    pub fn is_interrupted_body(&self) -> bool {
        matches!(
            self,
            RemoteError::Truncated { .. } | RemoteError::Interrupted { .. }
        )
    }

    /// True when the remote side could not be reached at all (so a cached copy may be used).
    pub fn is_connection_failure(&self) -> bool {
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
