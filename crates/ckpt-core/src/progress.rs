//! One way for long operations to say how far they are: conversion, quantization, GGUF writing,
//! Hub pulls and pushes all report [`ProgressEvent`]s to a [`Progress`] the caller gives them.
//!
//! A front end draws them (the `ckpt` command draws progress bars on a terminal); a library
//! caller can log them, forward them to another thread, or ignore them. Events are pushed from
//! the worker threads as the work happens, so an implementation must be cheap and thread-safe.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::sync::Arc;
//! use ckpt_core::progress::{Progress, ProgressEvent, SharedProgress};
//!
//! let done = Arc::new(AtomicU64::new(0));
//! let seen = done.clone();
//! let progress: SharedProgress = Arc::new(move |ev: ProgressEvent<'_>| {
//!     if let ProgressEvent::Advance { bytes } = ev {
//!         seen.fetch_add(bytes, Ordering::Relaxed);
//!     }
//! });
//! progress.event(ProgressEvent::Start { phase: "converting", total: 10 });
//! progress.event(ProgressEvent::Advance { bytes: 4 });
//! progress.event(ProgressEvent::Advance { bytes: 6 });
//! progress.event(ProgressEvent::Finish);
//! assert_eq!(done.load(Ordering::Relaxed), 10);
//! ```

use std::sync::Arc;

/// What a long operation reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProgressEvent<'a> {
    /// A phase begins (`"converting"`, `"quantizing"`, `"verifying"`, `"hashing"`,
    /// `"uploading"`, `"downloading"`, …), measuring `total` bytes (0 when not known yet).
    Start {
        /// What the phase does, as a short word to show.
        phase: &'a str,
        /// Bytes the phase will process, or 0.
        total: u64,
    },
    /// `bytes` more bytes of the current phase are done.
    Advance {
        /// Bytes done since the last event of this phase.
        bytes: u64,
    },
    /// Where one file of the current phase stands, for phases that work file by file, possibly
    /// several files at once (Hub pulls). The phase's total still moves by [`Advance`](Self::Advance).
    File {
        /// The file, as the operation names it (a path inside the repository for the Hub).
        name: &'a str,
        /// Bytes of this file done so far.
        done: u64,
        /// The file's size, when known.
        size: Option<u64>,
        /// The file is complete (written, or found already present).
        complete: bool,
    },
    /// The current phase is over.
    Finish,
}

/// Receives [`ProgressEvent`]s. Any `Fn(ProgressEvent) + Send + Sync` closure is one.
pub trait Progress: Send + Sync {
    /// Called for every event, from whichever thread does the work.
    fn event(&self, event: ProgressEvent<'_>);
}

impl<F: Fn(ProgressEvent<'_>) + Send + Sync> Progress for F {
    fn event(&self, event: ProgressEvent<'_>) {
        self(event)
    }
}

/// How operations hold the caller's [`Progress`] (options are `Clone`).
pub type SharedProgress = Arc<dyn Progress>;

/// Sends `event` to `progress` if there is one.
pub fn emit(progress: Option<&SharedProgress>, event: ProgressEvent<'_>) {
    if let Some(p) = progress {
        p.event(event);
    }
}

/// Turns running totals `(done, total)`, as a writer knows them, into events: a
/// [`Start`](ProgressEvent::Start) of `phase` with `total` on the first update (and again if the
/// total changes), then an [`Advance`](ProgressEvent::Advance) by the difference.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use ckpt_core::progress::{ProgressEvent, RunningTotal, SharedProgress};
///
/// let log = Arc::new(Mutex::new(Vec::new()));
/// let sink = log.clone();
/// let progress: SharedProgress = Arc::new(move |ev: ProgressEvent<'_>| {
///     sink.lock().unwrap().push(format!("{ev:?}"));
/// });
/// let mut tally = RunningTotal::new("writing", progress);
/// tally.update(3, 10);
/// tally.update(10, 10);
/// assert_eq!(
///     *log.lock().unwrap(),
///     [
///         r#"Start { phase: "writing", total: 10 }"#,
///         "Advance { bytes: 3 }",
///         "Advance { bytes: 7 }",
///     ]
/// );
/// ```
pub struct RunningTotal {
    phase: &'static str,
    progress: SharedProgress,
    done: u64,
    total: Option<u64>,
}

impl RunningTotal {
    /// Reports to `progress` under `phase`.
    pub fn new(phase: &'static str, progress: SharedProgress) -> RunningTotal {
        RunningTotal {
            phase,
            progress,
            done: 0,
            total: None,
        }
    }

    /// `done` of `total` bytes are done now.
    pub fn update(&mut self, done: u64, total: u64) {
        if self.total != Some(total) {
            self.total = Some(total);
            self.progress.event(ProgressEvent::Start {
                phase: self.phase,
                total,
            });
            if self.done > 0 {
                self.progress
                    .event(ProgressEvent::Advance { bytes: self.done });
            }
        }
        if done > self.done {
            self.progress.event(ProgressEvent::Advance {
                bytes: done - self.done,
            });
            self.done = done;
        }
    }
}

impl std::fmt::Debug for RunningTotal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningTotal")
            .field("phase", &self.phase)
            .field("done", &self.done)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}
