//! Fake Hugging Face Hubs on 127.0.0.1 for ckpt's tests (never published). [`download`] serves
//! what `pull` and remote `inspect` read (a Hub host whose LFS files redirect to a CDN host);
//! [`upload`] serves what `push` writes (preupload, the LFS batch API, NDJSON commits) and the
//! read routes to check the result. The helpers below are shared by both.
//!
//! Each `FakeHub::start()` binds free ports on 127.0.0.1 (no other network), records every
//! request, and stops when dropped; tests point the client at its URL (`HF_ENDPOINT`) and turn
//! the knobs of its `State` to make it misbehave. The `ckpt-testhub` binary serves the same
//! Hubs to tests written in other languages. [`fixtures`] recomputes the tensor values the
//! fixture generators wrote, for tests that build the same checkpoints in Rust.

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashMap};

use sha2::Digest;

pub mod download;
pub mod fixtures;
pub mod upload;

/// Lowercase hex sha256 of `b` (an LFS file's oid).
pub fn sha256_hex(b: &[u8]) -> String {
    sha2::Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// The git blob id of `b` (a regular file's etag).
pub fn git_sha1_hex(b: &[u8]) -> String {
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", b.len()).as_bytes());
    h.update(b);
    h.finalize().iter().map(|x| format!("{x:02x}")).collect()
}

/// `%XX` escapes of a request path decoded (invalid UTF-8 replaced).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?'));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A request's method, target and headers (as sent).
pub(crate) type Head = (String, String, Vec<(String, String)>);

/// Reads an HTTP/1.1 request line and headers.
pub(crate) fn read_head(reader: &mut impl std::io::BufRead) -> std::io::Result<Head> {
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    Ok((method, target, headers))
}

/// Why a repository revision could not be resolved, as the Hub answers it.
pub(crate) enum Missing {
    /// 404 `RevisionNotFound`, with the Hub's message.
    Revision(String),
}

/// The commit a revision (a commit id or a ref) names and the files at it.
pub(crate) fn resolve<F: Clone>(
    refs: &HashMap<String, String>,
    commits: &HashMap<String, BTreeMap<String, F>>,
    rev: &str,
) -> Result<(String, BTreeMap<String, F>), Missing> {
    let commit = if commits.contains_key(rev) {
        Some(rev.to_string())
    } else {
        refs.get(rev).cloned()
    };
    match commit {
        Some(c) => {
            let files = commits[&c].clone();
            Ok((c, files))
        }
        None => Err(Missing::Revision(format!("Invalid rev id: {rev}"))),
    }
}
