//! Errors carrying the HTTP status and the exact message Ollama's server gives for the same
//! failure, so the library, the CLI and the HTTP server all report the same text.

use std::fmt;

/// What went wrong, in HTTP terms (the server answers with [`ErrorKind::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (bad name, bad digest, bad path, bad template): 400.
    BadRequest,
    /// The model or blob does not exist: 404.
    NotFound,
    /// A valid request this implementation cannot serve (no converter wired, running models): 501.
    NotImplemented,
    /// Anything else (I/O, corrupt store, failures Ollama reports without a status): 500.
    Internal,
}

impl ErrorKind {
    /// The HTTP status Ollama answers with: 400, 404, 501 or 500.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::BadRequest => 400,
            ErrorKind::NotFound => 404,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Internal => 500,
        }
    }
}

/// A failure of a store, create or server operation: its kind and Ollama's message for it
/// (the `error` of the JSON answer; [`Display`](fmt::Display) prints the message alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OllamaError {
    /// What went wrong, in HTTP terms.
    pub kind: ErrorKind,
    /// The message, worded as Ollama's server words it.
    pub message: String,
}

/// `Result` with [`OllamaError`] as its default error.
pub type Result<T, E = OllamaError> = std::result::Result<T, E>;

impl OllamaError {
    /// A 400 error with this message.
    pub fn bad_request(message: impl Into<String>) -> OllamaError {
        OllamaError {
            kind: ErrorKind::BadRequest,
            message: message.into(),
        }
    }
    /// A 404 error with this message.
    pub(crate) fn not_found(message: impl Into<String>) -> OllamaError {
        OllamaError {
            kind: ErrorKind::NotFound,
            message: message.into(),
        }
    }
    /// A 501 error with this message.
    pub(crate) fn not_implemented(message: impl Into<String>) -> OllamaError {
        OllamaError {
            kind: ErrorKind::NotImplemented,
            message: message.into(),
        }
    }
    /// A 500 error with this message.
    pub(crate) fn internal(message: impl Into<String>) -> OllamaError {
        OllamaError {
            kind: ErrorKind::Internal,
            message: message.into(),
        }
    }
    /// An I/O failure worded like Go's `*PathError` (`open PATH: no such file or directory`),
    /// which is what Ollama puts in its error responses.
    pub fn io(op: &str, path: &std::path::Path, err: &std::io::Error) -> OllamaError {
        let reason = match err.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => {
                // Rust appends " (os error N)"; Go prints the bare strerror text.
                let s = err.to_string();
                match s.find(" (os error") {
                    Some(i) => s[..i].to_lowercase(),
                    None => s,
                }
            }
        };
        OllamaError::internal(format!("{op} {}: {reason}", path.display()))
    }
}

impl fmt::Display for OllamaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for OllamaError {}

impl From<ckpt_core::Error> for OllamaError {
    fn from(e: ckpt_core::Error) -> OllamaError {
        use ckpt_core::ErrorKind as Core;
        let kind = match e.kind() {
            Core::Invalid | Core::Usage | Core::Unsafe => ErrorKind::BadRequest,
            Core::Unsupported => ErrorKind::NotImplemented,
            _ => ErrorKind::Internal,
        };
        OllamaError {
            kind,
            message: e.to_string(),
        }
    }
}

/// For the CLI, which reports every library error as a `ckpt_core::Error` with an exit code.
impl From<OllamaError> for ckpt_core::Error {
    fn from(e: OllamaError) -> ckpt_core::Error {
        match e.kind {
            ErrorKind::BadRequest | ErrorKind::NotFound => ckpt_core::Error::Usage(e.message),
            ErrorKind::NotImplemented => ckpt_core::Error::Unsupported(e.message),
            ErrorKind::Internal => ckpt_core::Error::Other(e.message),
        }
    }
}
