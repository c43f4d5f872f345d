//! `hf://` URIs and plain http(s) URLs.
//!
//! Grammar: `hf://[datasets/|spaces/|models/]ORG/NAME[@REVISION][/PATH]`.
//!
//! The revision ends at the next `/`, with one exception: a revision starting with `refs/` spans
//! exactly three segments (`refs/pr/1`, `refs/convert/parquet`, `refs/heads/main`), because that is
//! how the Hub names pull requests and special refs. Any other revision that contains a `/` (a
//! branch named `feature/x`) is written percent-encoded: `@feature%2Fx`. The revision is
//! percent-decoded; the path is taken literally. So
//! `hf://org/name@refs/pr/1/sub/model.safetensors` is revision `refs/pr/1`, path
//! `sub/model.safetensors`.

use std::fmt;

use crate::error::{RemoteError, Result};

/// The kind of Hub repository (`hf://datasets/…`, `hf://spaces/…`; models by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoType {
    /// A model repository (`hf://ORG/NAME` or `hf://models/ORG/NAME`).
    Model,
    /// A dataset repository (`hf://datasets/ORG/NAME`).
    Dataset,
    /// A Space (`hf://spaces/ORG/NAME`).
    Space,
}

impl RepoType {
    /// The prefix in resolve URLs (`datasets/`…; empty for models).
    pub(crate) fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
            RepoType::Space => "spaces/",
        }
    }
    /// The plural used by the API routes and the cache folder names.
    pub(crate) fn plural(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
            RepoType::Space => "spaces",
        }
    }
}

/// A location on the Hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubUri {
    /// Model, dataset or Space.
    pub repo_type: RepoType,
    /// `ORG/NAME`.
    pub repo_id: String,
    /// A branch, tag, commit sha or `refs/pr/N`; `None` means the default branch (`main`).
    pub revision: Option<String>,
    /// A file or folder inside the repository, `/`-separated, without leading or trailing `/`.
    pub path: Option<String>,
}

impl HubUri {
    /// Parses `ORG/NAME[@REVISION][/PATH]` (what follows `hf://`); fails with
    /// [`RemoteError::BadUri`] for an invalid repository id or revision.
    pub fn new(repo_id: &str) -> Result<HubUri> {
        parse_hub(&format!("hf://{repo_id}"))
    }
    /// The revision, `main` when none was given.
    pub(crate) fn revision_or_main(&self) -> &str {
        self.revision.as_deref().unwrap_or("main")
    }
    /// The same repository and revision with another path.
    pub(crate) fn with_path(&self, path: &str) -> HubUri {
        HubUri {
            path: Some(path.to_string()),
            ..self.clone()
        }
    }
}

impl fmt::Display for HubUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "hf://")?;
        if self.repo_type != RepoType::Model {
            write!(f, "{}/", self.repo_type.plural())?;
        }
        write!(f, "{}", self.repo_id)?;
        if let Some(rev) = &self.revision {
            if rev.starts_with("refs/") && rev.split('/').count() == 3 {
                write!(f, "@{rev}")?;
            } else {
                write!(f, "@{}", percent_encode(rev, false))?;
            }
        }
        if let Some(p) = &self.path {
            write!(f, "/{p}")?;
        }
        Ok(())
    }
}

/// Anything `inspect`/`pull` accept as remote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteLocation {
    /// A Hub location: `hf://…`, or a `https://huggingface.co/ORG/NAME/{resolve,blob}/REV/PATH`
    /// link read as one.
    Hub(HubUri),
    /// A plain `http://` or `https://` URL of one file.
    Url(String),
}

impl RemoteLocation {
    /// Parses `hf://…` or an http(s) URL; anything else, or an invalid repository id, revision
    /// or URL, is a [`RemoteError::BadUri`].
    pub fn parse(s: &str) -> Result<RemoteLocation> {
        if s.starts_with("hf://") {
            return parse_hub(s).map(RemoteLocation::Hub);
        }
        if s.starts_with("https://") || s.starts_with("http://") {
            let rest = s.split_once("://").map(|(_, r)| r).unwrap_or("");
            if rest.is_empty() || rest.starts_with('/') {
                return Err(bad(s, "the URL has no host"));
            }
            if let Some(hub) = hub_web_url(s) {
                return Ok(RemoteLocation::Hub(hub));
            }
            return Ok(RemoteLocation::Url(s.to_string()));
        }
        Err(bad(
            s,
            "expected hf://ORG/NAME[@REVISION][/PATH] or an http(s):// URL",
        ))
    }
}

impl fmt::Display for RemoteLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemoteLocation::Hub(h) => h.fmt(f),
            RemoteLocation::Url(u) => f.write_str(u),
        }
    }
}

/// True when `s` names something remote (`hf://`, `http://`, `https://`): the CLI's test for
/// whether to call into this crate.
pub fn is_remote(s: &str) -> bool {
    s.starts_with("hf://") || s.starts_with("https://") || s.starts_with("http://")
}

/// `https://huggingface.co/ORG/NAME/{resolve,blob}/REV/PATH` (also `hf.co`): the file's page or
/// download link, read as `hf://ORG/NAME@REV/PATH` so the Hub's metadata and auth apply.
fn hub_web_url(s: &str) -> Option<HubUri> {
    let rest = s.strip_prefix("https://")?;
    let rest = rest.split(['?', '#']).next()?;
    let (host, path) = rest.split_once('/')?;
    if !matches!(
        host.to_ascii_lowercase().as_str(),
        "huggingface.co" | "hf.co" | "www.huggingface.co"
    ) {
        return None;
    }
    let (repo_type, path) = match path.split_once('/') {
        Some(("datasets", p)) => (RepoType::Dataset, p),
        Some(("spaces", p)) => (RepoType::Space, p),
        _ => (RepoType::Model, path),
    };
    let mut parts = path.splitn(5, '/');
    let (org, name, kind, rev, file) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if !matches!(kind, "resolve" | "blob") || file.is_empty() {
        return None;
    }
    let mut hub = parse_hub(&format!("hf://{org}/{name}/{file}")).ok()?;
    hub.repo_type = repo_type;
    let rev = percent_decode(rev)?;
    check_revision(&rev).ok()?;
    hub.revision = Some(rev);
    Some(hub)
}

fn bad(uri: &str, msg: impl Into<String>) -> RemoteError {
    RemoteError::BadUri {
        uri: uri.to_string(),
        msg: msg.into(),
    }
}

fn parse_hub(uri: &str) -> Result<HubUri> {
    let rest = uri
        .strip_prefix("hf://")
        .ok_or_else(|| bad(uri, "missing hf:// prefix"))?;
    let (repo_type, rest) = match rest.split_once('/') {
        Some(("datasets", r)) => (RepoType::Dataset, r),
        Some(("spaces", r)) => (RepoType::Space, r),
        Some(("models", r)) => (RepoType::Model, r),
        _ => (RepoType::Model, rest),
    };
    let (org, rest) = rest.split_once('/').ok_or_else(|| {
        bad(
            uri,
            "expected ORG/NAME after hf:// (a repository id has two parts)",
        )
    })?;
    let (name_part, mut rest) = match rest.split_once('/') {
        Some((n, r)) => (n, Some(r)),
        None => (rest, None),
    };
    let (name, revision) = match name_part.split_once('@') {
        Some((name, rev_start)) => {
            let mut rev = rev_start.to_string();
            if rev_start == "refs" {
                // `refs/<kind>/<name>`: take two more segments from the remainder.
                let r = rest.unwrap_or("");
                let mut parts = r.splitn(3, '/');
                let (kind, refname) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                if kind.is_empty() || refname.is_empty() {
                    return Err(bad(uri, "a revision starting with refs/ must have the form refs/KIND/NAME (e.g. refs/pr/1)"));
                }
                rev = format!("refs/{kind}/{refname}");
                rest = parts.next();
            }
            (
                name,
                Some(
                    percent_decode(&rev)
                        .ok_or_else(|| bad(uri, "invalid %-escape in the revision"))?,
                ),
            )
        }
        None => (name_part, None),
    };
    let repo_id = format!("{org}/{name}");
    check_repo_id(&repo_id).map_err(|msg| bad(uri, msg))?;
    if let Some(rev) = &revision {
        check_revision(rev).map_err(|msg| bad(uri, msg))?;
    }
    let path = match rest.map(|r| r.trim_end_matches('/')) {
        None | Some("") => None,
        Some(p) => {
            if p.split('/')
                .any(|seg| seg.is_empty() || seg == "." || seg == "..")
                || p.contains('\\')
            {
                return Err(bad(
                    uri,
                    format!("invalid path '{p}' (empty, '.' or '..' segments are not allowed)"),
                ));
            }
            Some(p.to_string())
        }
    };
    Ok(HubUri {
        repo_type,
        repo_id,
        revision,
        path,
    })
}

/// A repository id as huggingface_hub's `validate_repo_id` accepts it, in the `ORG/NAME` form
/// this crate uses: each part 1 to 96 ASCII letters, digits, `-`, `_` or `.`, starting and
/// ending with a letter, digit or `_`; no `--` or `..`; not ending in `.git`.
pub(crate) fn check_repo_id(repo_id: &str) -> std::result::Result<(), String> {
    let Some((org, name)) = repo_id.split_once('/') else {
        return Err(format!(
            "invalid repository id '{repo_id}': expected ORG/NAME"
        ));
    };
    for (what, part) in [("organization", org), ("repository name", name)] {
        if part.is_empty() {
            return Err(format!("empty {what} in repository id '{repo_id}'"));
        }
        let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
        let bytes = part.as_bytes();
        if part.len() > 96
            || !bytes.iter().all(|&c| word(c) || matches!(c, b'-' | b'.'))
            || !word(bytes[0])
            || !word(bytes[bytes.len() - 1])
        {
            return Err(format!(
                "invalid {what} '{part}' in repository id '{repo_id}' (letters, digits, '-', '_' and '.' only, not starting or ending with '-' or '.', at most 96 characters)"
            ));
        }
    }
    if repo_id.contains("--") || repo_id.contains("..") {
        return Err(format!(
            "invalid repository id '{repo_id}': '--' and '..' are not allowed"
        ));
    }
    if repo_id.ends_with(".git") {
        return Err(format!(
            "invalid repository id '{repo_id}': it must not end in '.git'"
        ));
    }
    Ok(())
}

/// A revision (branch, tag, commit sha, `refs/pr/N`) under git's `check-ref-format
/// --allow-onelevel` rules. The revision becomes a file path under the cache's `refs/`, so these
/// rules are what keeps it there: no `..`, no component starting with `.` or ending in `.lock`,
/// no leading, trailing or doubled `/`, no trailing `.`, no `@{`, not `@`, no backslash, control
/// character, space, `~`, `^`, `:`, `?`, `*` or `[`.
pub(crate) fn check_revision(rev: &str) -> std::result::Result<(), String> {
    let fail = |why: &str| Err(format!("invalid revision '{}': {why}", rev.escape_debug()));
    if rev.is_empty() {
        return fail("it is empty");
    }
    if rev.len() > 1024 {
        return fail("longer than 1024 bytes");
    }
    if rev == "@" {
        return fail("'@' alone is not a ref name");
    }
    if rev.contains("..") {
        return fail("'..' is not allowed");
    }
    if rev.contains("@{") {
        return fail("'@{' is not allowed");
    }
    if let Some(c) = rev.chars().find(|&c| {
        c.is_ascii_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\')
    }) {
        return fail(&format!("the character {c:?} is not allowed"));
    }
    if rev.starts_with('/') || rev.ends_with('/') || rev.contains("//") {
        return fail("it must not start or end with '/' or contain '//'");
    }
    if rev.ends_with('.') {
        return fail("it must not end with '.'");
    }
    for component in rev.split('/') {
        if component.starts_with('.') {
            return fail("a '/'-separated part must not start with '.'");
        }
        if component.ends_with(".lock") {
            return fail("a '/'-separated part must not end with '.lock'");
        }
    }
    Ok(())
}

/// Percent-encodes everything except RFC 3986 unreserved characters (and `/` when `keep_slash`).
pub(crate) fn percent_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'.' | b'_' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hub(s: &str) -> HubUri {
        match RemoteLocation::parse(s).unwrap() {
            RemoteLocation::Hub(h) => h,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_repo_revision_and_path() {
        let h = hub("hf://org/name");
        assert_eq!(
            (h.repo_id.as_str(), h.revision.as_deref(), h.path.as_deref()),
            ("org/name", None, None)
        );
        let h = hub("hf://org/name@v1.0/sub/dir/model.safetensors");
        assert_eq!(h.revision.as_deref(), Some("v1.0"));
        assert_eq!(h.path.as_deref(), Some("sub/dir/model.safetensors"));
        let h = hub("hf://org/name/model.gguf");
        assert_eq!(
            (h.revision.as_deref(), h.path.as_deref()),
            (None, Some("model.gguf"))
        );
        let sha = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(
            hub(&format!("hf://org/name@{sha}")).revision.as_deref(),
            Some(sha)
        );
    }

    #[test]
    fn refs_revisions_span_three_segments() {
        let h = hub("hf://org/name@refs/pr/1");
        assert_eq!(
            (h.revision.as_deref(), h.path.as_deref()),
            (Some("refs/pr/1"), None)
        );
        let h = hub("hf://org/name@refs/pr/12/a/b.safetensors");
        assert_eq!(
            (h.revision.as_deref(), h.path.as_deref()),
            (Some("refs/pr/12"), Some("a/b.safetensors"))
        );
        let h = hub("hf://datasets/org/name@refs/convert/parquet/x.parquet");
        assert_eq!(h.repo_type, RepoType::Dataset);
        assert_eq!(
            (h.revision.as_deref(), h.path.as_deref()),
            (Some("refs/convert/parquet"), Some("x.parquet"))
        );
        let h = hub("hf://org/name@feature%2Fx/model.safetensors");
        assert_eq!(h.revision.as_deref(), Some("feature/x"));
        assert_eq!(h.to_string(), "hf://org/name@feature%2Fx/model.safetensors");
        assert_eq!(
            hub("hf://org/name@refs/pr/3/f").to_string(),
            "hf://org/name@refs/pr/3/f"
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in [
            "hf://name",
            "hf://org/",
            "hf://org/na me",
            "hf://org/name@",
            "hf://org/name@refs/pr",
            "hf://org/name/../x",
            "hf://org/name/a//b",
            "ftp://x",
            "https://",
            "hf://org/name@bad%zz",
        ] {
            assert!(RemoteLocation::parse(s).is_err(), "{s} should be rejected");
        }
        assert_eq!(
            RemoteLocation::parse("https://h/x.safetensors").unwrap(),
            RemoteLocation::Url("https://h/x.safetensors".into())
        );
    }

    #[test]
    fn revisions_follow_git_ref_name_rules() {
        for ok in [
            "main",
            "v1.0",
            "refs/pr/1",
            "refs/convert/parquet",
            "feature/x",
            "a/b/c",
            "0123456789abcdef0123456789abcdef01234567",
            "release-2024_01",
            "x@y",
        ] {
            assert_eq!(check_revision(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "a/../b",
            "a..b",
            "/a",
            "a/",
            "a//b",
            ".a",
            "a/.b",
            "a.lock",
            "a/b.lock/c",
            "a.",
            "@",
            "a@{0}",
            "a b",
            "a~1",
            "a^",
            "a:b",
            "a?",
            "a*",
            "a[b",
            "a\\b",
            "a\tb",
            "a\u{7f}",
        ] {
            assert!(check_revision(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(RemoteLocation::parse("hf://org/name@..%2F..%2Fx/f").is_err());
        assert!(RemoteLocation::parse("hf://org/name@refs/../x/f").is_err());
    }

    #[test]
    fn repo_ids_follow_huggingface_hub_rules() {
        for ok in ["org/name", "Org-1/Name_2.v3", "a/b", "_x/y_"] {
            assert_eq!(check_repo_id(ok), Ok(()), "{ok}");
        }
        let long = format!("org/{}", "a".repeat(97));
        for bad in [
            "name",
            "org/na--me",
            "org/a..b",
            "org/name.git",
            "-org/name",
            "org/name.",
            ".org/name",
            "org/na me",
            "org/n\u{e9}",
            long.as_str(),
        ] {
            assert!(check_repo_id(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn hub_web_urls_become_hub_uris() {
        let h = hub("https://huggingface.co/org/name/blob/refs%2Fpr%2F2/sub/model.safetensors?download=true");
        assert_eq!(h.repo_id, "org/name");
        assert_eq!(h.revision.as_deref(), Some("refs/pr/2"));
        assert_eq!(h.path.as_deref(), Some("sub/model.safetensors"));
        let h = hub("https://hf.co/datasets/org/name/resolve/main/x.parquet");
        assert_eq!(h.repo_type, RepoType::Dataset);
        assert!(matches!(
            RemoteLocation::parse("https://huggingface.co/org/name").unwrap(),
            RemoteLocation::Url(_)
        ));
    }
}
