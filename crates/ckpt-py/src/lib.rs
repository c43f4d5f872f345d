//! The native half of the `ckpt` Python package (`ckpt._ckpt`): the operations of the facade
//! crate [`ckpt`] as Python functions.
//!
//! Every function here releases the GIL while ckpt works and returns the report as the JSON text
//! the command line prints with `--json` (the Python half parses it), built by the same
//! functions ([`ckpt::report`] and the reports' own serialisations), so a script sees exactly
//! what `ckpt … --json` prints. Errors become the exception classes of `ckpt._errors`, one per
//! [`ckpt::ErrorKind`]. The Python wrappers in `python/ckpt` give the functions their public
//! names, keyword arguments, docstrings and type stubs.

#![warn(missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

mod ops;
mod tensors;

/// The class name in `ckpt._errors` for an error kind.
fn class_name(kind: ckpt::ErrorKind) -> &'static str {
    match kind {
        ckpt::ErrorKind::Invalid => "InvalidFileError",
        ckpt::ErrorKind::Unsafe => "UnsafeFileError",
        ckpt::ErrorKind::Unsupported => "UnsupportedError",
        ckpt::ErrorKind::Usage => "UsageError",
        ckpt::ErrorKind::Mismatch => "MismatchError",
        ckpt::ErrorKind::Io => "CkptIOError",
        _ => "CkptError",
    }
}

/// A ckpt error as an instance of the matching `ckpt._errors` class (message, path).
pub(crate) fn to_py_err(py: Python<'_>, e: ckpt::Error) -> PyErr {
    let message = match &e {
        ckpt::Error::Exists { .. } => format!("{e} (pass overwrite=True to replace it)"),
        // The options the library names (`` `byte_order` ``) under this package's keywords.
        _ => e.to_string().replace("`byte_order`", "`bigendian=True`"),
    };
    let path = e.path().map(|p| p.to_string_lossy().into_owned());
    let made = py
        .import("ckpt._errors")
        .and_then(|m| m.getattr(class_name(e.kind())))
        .and_then(|cls| cls.call1((message, path)));
    match made {
        Ok(exc) => PyErr::from_value(exc),
        Err(err) => err,
    }
}

/// Runs `work` with the GIL released and converts its error.
pub(crate) fn detached<T: Send>(
    py: Python<'_>,
    work: impl FnOnce() -> ckpt::Result<T> + Send,
) -> PyResult<T> {
    py.detach(work).map_err(|e| to_py_err(py, e))
}

/// A Python callable called as `callback(event, phase, value)` from whatever thread reports
/// progress (the GIL is taken for the call). An exception it raises is reported as unraisable
/// and does not stop the work.
#[derive(Clone)]
pub(crate) struct Callback(Arc<Py<PyAny>>);

impl Callback {
    pub(crate) fn new(cb: Option<Py<PyAny>>) -> Option<Callback> {
        cb.map(|c| Callback(Arc::new(c)))
    }

    pub(crate) fn emit(&self, event: &str, phase: &str, value: u64, total: u64) {
        Python::attach(|py| {
            let args = (event, phase, value, total);
            if let Err(e) = self.0.call1(py, args) {
                e.write_unraisable(py, None);
            }
        });
    }

    /// As the facade's progress function (convert, GGUF, merge).
    pub(crate) fn progress_fn(&self) -> ckpt::SharedProgress {
        let cb = self.clone();
        Arc::new(move |ev: ckpt::ProgressEvent<'_>| match ev {
            ckpt::ProgressEvent::Start { phase, total } => cb.emit("start", phase, 0, total),
            ckpt::ProgressEvent::Advance { bytes } => cb.emit("advance", "", bytes, 0),
            ckpt::ProgressEvent::Finish => cb.emit("finish", "", 0, 0),
            _ => {}
        })
    }

    /// For Hub transfers: called as `callback(stage, file, bytes_so_far, bytes_in_total)` for
    /// every chunk of a file, the totals over the phase; `stage` names the phase
    /// (`stage_of` maps ckpt's phase names to the Python API's).
    pub(crate) fn transfer_fn(&self, stage_of: fn(&str) -> &'static str) -> ckpt::SharedProgress {
        let cb = self.clone();
        // (stage, bytes done, bytes in total) of the current phase
        let state = std::sync::Mutex::new(("", 0u64, 0u64));
        Arc::new(move |ev: ckpt::ProgressEvent<'_>| {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            match ev {
                ckpt::ProgressEvent::Start { phase, total } => *st = (stage_of(phase), 0, total),
                ckpt::ProgressEvent::Advance { bytes } => st.1 += bytes,
                // Emitted under the lock, so the totals of parallel transfers arrive in order.
                ckpt::ProgressEvent::File { name, .. } => cb.emit(st.0, name, st.1, st.2),
                _ => {}
            }
        })
    }
}

/// `bytes_to_size("5GB")` as ckpt's `--max-shard-size` parses it.
#[pyfunction]
fn parse_size(s: &str) -> PyResult<u64> {
    ckpt::crates::core::shard::parse_size(s)
        .map_err(|m| pyo3::exceptions::PyValueError::new_err(format!("max_shard_size: {m}")))
}

/// The version of the crate the extension was built from.
#[pyfunction]
fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Paths or strings (os.PathLike or str) to `PathBuf`s.
pub(crate) fn path_list(items: &Bound<'_, PyAny>) -> PyResult<Vec<PathBuf>> {
    if let Ok(p) = items.extract::<PathBuf>() {
        return Ok(vec![p]);
    }
    let mut out = Vec::new();
    for item in items.try_iter()? {
        out.push(item?.extract::<PathBuf>()?);
    }
    Ok(out)
}

/// The extension module.
#[pymodule]
fn _ckpt(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(version, m)?)?;
    m.add_function(wrap_pyfunction!(parse_size, m)?)?;
    ops::register(m)?;
    tensors::register(m)?;
    Ok(())
}
