//! One error type for every library crate, with a [`ErrorKind`] to match on; the CLI maps each
//! kind to an exit code.

use std::path::{Path, PathBuf};

/// Every failure of the ckpt library crates. Each message names the file (and, in the text, the
/// tensor or byte offset) it is about.
#[derive(thiserror::Error, Debug)]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder being read or written.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The input is malformed, truncated or inconsistent.
    #[error("{}: {msg}", path.display())]
    Invalid {
        /// The input file.
        path: PathBuf,
        /// What is wrong, with the tensor or byte offset and what was expected.
        msg: String,
    },
    /// The input asks for something ckpt refuses to do for safety (a pickle global outside the
    /// allowlist, a compressed record that could be a zip bomb).
    #[error("{}: refused: {msg}", path.display())]
    Unsafe {
        /// The input file.
        path: PathBuf,
        /// What was refused (e.g. the pickle global, by name).
        msg: String,
    },
    /// Valid input that ckpt does not support (yet), or a request that cannot be honoured.
    #[error("{0}")]
    Unsupported(String),
    /// The request is wrong (bad options, an output where there must be none, …).
    #[error("{0}")]
    Usage(String),
    /// The output already exists and replacing it was not asked for (a usage error; the command
    /// line adds how to ask).
    #[error("{} already exists", path.display())]
    Exists {
        /// The existing output.
        path: PathBuf,
    },
    /// A check after writing found a difference.
    #[error("{0}")]
    Mismatch(String),
    /// Any other failure, described by its message.
    #[error("{0}")]
    Other(String),
}

/// `Result` with [`Error`] as the default error type.
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
    /// An [`Error::Io`] about `path`.
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
    /// An [`Error::Invalid`] about `path`.
    pub fn invalid(path: impl AsRef<Path>, msg: impl Into<String>) -> Error {
        Error::Invalid {
            path: path.as_ref().to_path_buf(),
            msg: msg.into(),
        }
    }
    /// An [`Error::Unsafe`] about `path`.
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

/// How a library message names one of the library's options: the option's name in backticks,
/// e.g. `` `keep_split` `` for `QuantizeOptions::keep_split`. Library messages never spell
/// command-line flags; a front end shows its own spelling of the options it knows (the command
/// line turns `` `keep_split` `` into `--keep-split`, see [`OPTION_NAMES`]).
///
/// ```
/// let msg = format!("{} needs an importance matrix", ckpt_core::error::opt("imatrix"));
/// assert_eq!(msg, "`imatrix` needs an importance matrix");
/// ```
pub fn opt(name: &str) -> String {
    format!("`{name}`")
}

/// Every option name library messages use with [`opt`], with the command-line flag that sets it
/// (a test of the command line checks that each flag exists).
pub const OPTION_NAMES: &[(&str, &str)] = &[
    ("allow_requantize", "--allow-requantize"),
    ("base", "--base"),
    ("byte_order", "--bigendian"),
    ("create_repo", "--create-repo"),
    ("exclude", "--exclude"),
    ("follow_symlinks", "--follow-symlinks"),
    ("imatrix", "--imatrix"),
    ("include", "--include"),
    ("keep_split", "--keep-split"),
    ("kv_overrides", "--override-kv"),
    ("local_dir", "--local-dir"),
    ("max_shard_size", "--max-shard-size"),
    ("mmproj", "--mmproj"),
    ("outtype", "--outtype"),
    ("path_in_repo", "--path-in-repo"),
    ("prune_layers", "--prune-layers"),
    ("split_max_size", "--split-max-size"),
    ("split_max_tensors", "--split-max-tensors"),
    ("tensor_types", "--tensor-type"),
];
