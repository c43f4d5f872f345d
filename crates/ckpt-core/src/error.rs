//! One error type for every library crate, with a [`ErrorKind`] to match on; the CLI maps each
//! kind to an exit code.

use std::path::{Path, PathBuf};

#[derive(thiserror::Error, Debug)]
pub enum Error {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The input is malformed, truncated or inconsistent.
    #[error("{}: {msg}", path.display())]
    Invalid { path: PathBuf, msg: String },
    /// The input asks for something ckpt refuses to do for safety (a pickle global outside the
    /// allowlist, a compressed record that could be a zip bomb).
    #[error("{}: refused: {msg}", path.display())]
    Unsafe { path: PathBuf, msg: String },
    /// Valid input that ckpt does not support (yet), or a request that cannot be honoured.
    #[error("{0}")]
    Unsupported(String),
    /// The request is wrong (bad options, an output where there must be none, …).
    #[error("{0}")]
    Usage(String),
    /// The output already exists and replacing it was not asked for (a usage error; the command
    /// line adds how to ask).
    #[error("{} already exists", path.display())]
    Exists { path: PathBuf },
    /// A check after writing found a difference.
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Other(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What kind of failure an [`Error`] is, for a caller to match on (the command line maps each
/// kind to its exit code).
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The input is malformed, truncated or inconsistent ([`Error::Invalid`]: the file, and in
    /// the message the tensor or byte offset and what was expected).
    Invalid,
    /// The input asks for something refused for safety ([`Error::Unsafe`]).
    Unsafe,
    /// Valid input or a request that is not supported ([`Error::Unsupported`]).
    Unsupported,
    /// A wrong request: bad options, an existing output without overwrite ([`Error::Usage`]).
    Usage,
    /// A check found a difference ([`Error::Mismatch`]).
    Mismatch,
    /// Reading or writing a file failed ([`Error::Io`]).
    Io,
    /// Anything else ([`Error::Other`]).
    Other,
}

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    pub fn invalid(path: impl AsRef<Path>, msg: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    pub fn unsafe_input(path: impl AsRef<Path>, msg: impl Into<String>) -> Error {
        Error::Unsafe {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }

    /// The kind of failure, to match on.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Io { .. } => ErrorKind::Io,
            Error::Invalid { .. } => ErrorKind::Invalid,
            Error::Unsafe { .. } => ErrorKind::Unsafe,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::Usage(_) | Error::Exists { .. } => ErrorKind::Usage,
            Error::Mismatch(_) => ErrorKind::Mismatch,
            Error::Other(_) => ErrorKind::Other,
        }
    }

    /// The file the error is about, when it names one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Error::Io { path, .. }
            | Error::Invalid { path, .. }
            | Error::Unsafe { path, .. }
            | Error::Exists { path } => Some(path),
            _ => None,
        }
    }
}
