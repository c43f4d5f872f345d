//! A small blocking HTTP layer on ureq: manual redirects (the token never leaves the endpoint's
//! origin), bounded retries with exponential backoff, Hub error codes, ranged reads and counters.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ureq::http::HeaderMap;

use crate::config::HubConfig;
use crate::error::{RemoteError, Result};

const MAX_REDIRECTS: usize = 10;
/// Largest error body we read to build a message.
const MAX_ERROR_BODY: u64 = 16 * 1024;

/// Requests sent (every attempt and every redirect hop) and response body bytes received.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    bytes: AtomicU64,
}

impl Stats {
    /// HTTP requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
    /// Response body bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Redirects {
    Follow,
    /// Follow only redirects to a relative location (renamed repos, resolve-cache); stop at an
    /// absolute one (the CDN) and return it, as huggingface_hub's metadata HEAD does.
    RelativeOnly,
}

/// What a request is about, so 404/401 answers can name the repository, revision or file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub repo: String,
    pub revision: String,
    pub path: String,
}

pub(crate) struct Response {
    pub status: u16,
    /// The URL that answered (after redirects).
    pub url: String,
    pub headers: HeaderMap,
    /// Headers of the first response of the redirect chain (the Hub's own, with X-Linked-*).
    pub first_headers: HeaderMap,
    /// For a redirect that was not followed: the absolute target.
    pub location: Option<String>,
    body: Option<ureq::Body>,
    stats: Arc<Stats>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// A header of the final response, else of the first one in the chain.
    pub fn any_header(&self, name: &str) -> Option<&str> {
        self.header(name)
            .or_else(|| self.first_headers.get(name).and_then(|v| v.to_str().ok()))
    }
    pub fn content_length(&self) -> Option<u64> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }
    pub fn is_redirect(&self) -> bool {
        (300..400).contains(&self.status)
    }
    /// The body as a reader that counts the bytes it yields.
    pub fn into_reader(mut self) -> CountingReader {
        let inner: Box<dyn Read + Send> = match self.body.take() {
            Some(b) => Box::new(b.into_reader()),
            None => Box::new(std::io::empty()),
        };
        CountingReader {
            inner,
            stats: self.stats.clone(),
        }
    }
}

pub(crate) struct CountingReader {
    inner: Box<dyn Read + Send>,
    stats: Arc<Stats>,
}

impl Read for CountingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.stats.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The one HTTP agent policy of every Hub request, downloads and uploads alike: no redirects
/// followed by ureq (they are followed by hand, so the token never leaves the endpoint's
/// origin), HTTP errors as responses (mapped to `RemoteError`s by the caller), ckpt's user agent,
/// no compression, the configured timeouts, and no proxy for a Hub on this machine.
/// `recv_response` is how long to wait for a response's head (an upload's commit can take longer
/// to answer than a read).
pub(crate) fn agent(config: &HubConfig, recv_response: Duration) -> ureq::Agent {
    let mut builder = ureq::Agent::config_builder();
    if is_loopback(&config.endpoint) {
        // A Hub on this machine (a local mirror, the test server) is never reached through
        // an HTTP(S)_PROXY from the environment.
        builder = builder.proxy(None);
    }
    builder
        .http_status_as_error(false)
        .max_redirects(0)
        .user_agent(config.user_agent.as_str())
        // Compressed answers to ranged requests are useless (and CDNs then ignore Range).
        .accept_encoding("identity")
        .timeout_connect(Some(config.connect_timeout))
        .timeout_recv_response(Some(recv_response))
        .timeout_per_read(Some(config.read_timeout))
        .build()
        .new_agent()
}

/// The HTTP client of a [`crate::Hub`]: its configuration, agent and counters.
#[derive(Clone)]
pub(crate) struct Client {
    agent: ureq::Agent,
    pub config: HubConfig,
    pub stats: Arc<Stats>,
}

impl Client {
    /// A client with the agent policy of [`agent`].
    pub fn new(config: HubConfig) -> Client {
        Client {
            agent: agent(&config, config.read_timeout),
            config,
            stats: Arc::new(Stats::default()),
        }
    }

    fn offline_error(&self, url: &str) -> RemoteError {
        RemoteError::Network {
            url: url.to_string(),
            msg: "HF_HUB_OFFLINE is set: no network access".to_string(),
        }
    }

    /// Sends one logical request, following redirects by hand; HTTP errors become `RemoteError`s.
    pub(crate) fn send(
        &self,
        method: Method,
        url: &str,
        range: Option<(u64, Option<u64>)>,
        redirects: Redirects,
        ctx: Option<&Context>,
    ) -> Result<Response> {
        if self.config.offline {
            return Err(self.offline_error(url));
        }
        let mut url = url.to_string();
        let mut first_headers: Option<HeaderMap> = None;
        for _ in 0..=MAX_REDIRECTS {
            let (status, headers, body) = self.send_with_retries(method, &url, range)?;
            if first_headers.is_none() {
                first_headers = Some(headers.clone());
            }
            let mut response = Response {
                status,
                url: url.clone(),
                headers,
                first_headers: first_headers.clone().unwrap_or_default(),
                location: None,
                body: Some(body),
                stats: self.stats.clone(),
            };
            if matches!(status, 301 | 302 | 303 | 307 | 308) {
                let Some(location) = response.header("location").map(str::to_string) else {
                    return Err(RemoteError::InvalidResponse {
                        url,
                        msg: format!("HTTP {status} redirect without a Location header"),
                    });
                };
                let target = resolve_location(&url, &location);
                if redirects == Redirects::RelativeOnly
                    && is_absolute(&location)
                    && origin(&target) != origin(&url)
                {
                    response.location = Some(target);
                    return Ok(response);
                }
                url = target;
                continue;
            }
            if status >= 400 {
                return Err(self.status_error(response, ctx));
            }
            return Ok(response);
        }
        Err(RemoteError::InvalidResponse {
            url,
            msg: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    fn send_with_retries(
        &self,
        method: Method,
        url: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<(u16, HeaderMap, ureq::Body)> {
        let mut attempt = 0u32;
        loop {
            let outcome = self.send_once(method, url, range);
            let retry = match &outcome {
                Ok((status, _, _)) => *status >= 500 || *status == 429,
                Err(e) => e.is_transient(),
            };
            if !retry || attempt >= self.config.max_retries {
                return match outcome {
                    Ok((status, headers, body)) if status >= 500 || status == 429 => {
                        // Let `send` turn the final 5xx into an error with the body's message.
                        Ok((status, headers, body))
                    }
                    other => other,
                };
            }
            std::thread::sleep(self.backoff(attempt));
            attempt += 1;
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(6);
        (self.config.retry_base_delay * factor).min(Duration::from_secs(20))
    }

    fn send_once(
        &self,
        method: Method,
        url: &str,
        range: Option<(u64, Option<u64>)>,
    ) -> Result<(u16, HeaderMap, ureq::Body)> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut headers: Vec<(&str, String)> = Vec::new();
        if let Some(token) = &self.config.token {
            // Only the configured endpoint's origin ever sees the token: a redirect to a CDN or
            // any other host goes out without it.
            if origin(url) == origin(&self.config.endpoint) {
                headers.push(("authorization", format!("Bearer {token}")));
            }
        }
        if let Some((start, end)) = range {
            headers.push((
                "range",
                match end {
                    Some(end) => format!("bytes={start}-{end}"),
                    None => format!("bytes={start}-"),
                },
            ));
        }
        let result = match method {
            Method::Get => {
                let mut r = self.agent.get(url);
                for (k, v) in &headers {
                    r = r.header(*k, v.as_str());
                }
                r.call()
            }
            Method::Head => {
                let mut r = self.agent.head(url);
                for (k, v) in &headers {
                    r = r.header(*k, v.as_str());
                }
                r.call()
            }
        };
        match result {
            Ok(response) => {
                let (parts, body) = response.into_parts();
                Ok((parts.status.as_u16(), parts.headers, body))
            }
            Err(e) => Err(map_transport_error(url, e)),
        }
    }

    fn status_error(&self, response: Response, ctx: Option<&Context>) -> RemoteError {
        let status = response.status;
        let url = response.url.clone();
        let code = response.header("x-error-code").unwrap_or("").to_string();
        let commit = response
            .header("x-repo-commit")
            .map(|c| c.trim().to_string());
        let mut msg = response.header("x-error-message").unwrap_or("").to_string();
        if msg.is_empty() {
            let mut body = String::new();
            let _ = response
                .into_reader()
                .take(MAX_ERROR_BODY)
                .read_to_string(&mut body);
            msg = extract_error_message(&body);
        }
        let ctx = ctx.cloned().unwrap_or_default();
        match code.as_str() {
            "RepoNotFound" => {
                return RemoteError::RepoNotFound {
                    repo: ctx.repo,
                    url,
                }
            }
            "RevisionNotFound" => {
                return RemoteError::RevisionNotFound {
                    repo: ctx.repo,
                    revision: ctx.revision,
                    url,
                }
            }
            "EntryNotFound" => {
                return RemoteError::EntryNotFound {
                    repo: ctx.repo,
                    revision: ctx.revision,
                    path: ctx.path,
                    url,
                    commit,
                }
            }
            "GatedRepo" => {
                return RemoteError::Unauthorized {
                    url,
                    status,
                    what: non_empty(msg, "gated repository"),
                    gated: true,
                }
            }
            _ => {}
        }
        match status {
            401 | 403 => {
                let gated = msg.to_ascii_lowercase().contains("gated");
                let what = non_empty(
                    msg,
                    if status == 401 {
                        "authentication required (private or gated repository)"
                    } else {
                        "access denied"
                    },
                );
                RemoteError::Unauthorized {
                    url,
                    status,
                    what,
                    gated,
                }
            }
            _ => RemoteError::Http { url, status, msg },
        }
    }

    /// Reads bytes `[start, start + len)` of the file at `url` (fewer if the file is shorter).
    /// Returns the bytes and the total file length when the server told it.
    pub(crate) fn read_range(
        &self,
        url: &str,
        start: u64,
        len: u64,
        ctx: Option<&Context>,
    ) -> Result<RangeRead> {
        let mut attempt = 0;
        loop {
            match self.read_range_once(url, start, len, ctx) {
                Err(e) if e.is_interrupted_body() && attempt < self.config.max_retries => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn read_range_once(
        &self,
        url: &str,
        start: u64,
        len: u64,
        ctx: Option<&Context>,
    ) -> Result<RangeRead> {
        if len == 0 {
            return Ok(RangeRead {
                bytes: Vec::new(),
                file_len: None,
                final_url: url.to_string(),
            });
        }
        let end = start + len - 1;
        let response = match self.send(
            Method::Get,
            url,
            Some((start, Some(end))),
            Redirects::Follow,
            ctx,
        ) {
            Err(RemoteError::Http {
                status: 416, url, ..
            }) => {
                // Nothing at `start`: the file is shorter.
                return Ok(RangeRead {
                    bytes: Vec::new(),
                    file_len: None,
                    final_url: url,
                });
            }
            other => other?,
        };
        let final_url = response.url.clone();
        let linked_size = response
            .any_header("x-linked-size")
            .and_then(|v| v.trim().parse::<u64>().ok());
        match response.status {
            206 => {
                let content_range = response.header("content-range").unwrap_or("").to_string();
                let (got_start, got_end, total) =
                    parse_content_range(&content_range).ok_or_else(|| {
                        RemoteError::InvalidResponse {
                            url: final_url.clone(),
                            msg: format!(
                                "206 response with an unusable Content-Range '{content_range}'"
                            ),
                        }
                    })?;
                let (got_end, _) = (got_end, ());
                if got_start != start || got_end < got_start || got_end > end {
                    return Err(RemoteError::InvalidResponse {
                        url: final_url,
                        msg: format!(
                            "asked for bytes {start}-{end}, got Content-Range '{content_range}'"
                        ),
                    });
                }
                let want = got_end - got_start + 1;
                if let Some(n) = response.content_length().filter(|n| *n != want) {
                    return Err(RemoteError::InvalidResponse {
                        url: final_url,
                        msg: format!(
                            "Content-Range '{content_range}' is {want} bytes but Content-Length says {n}"
                        ),
                    });
                }
                let mut reader = response.into_reader();
                let bytes = read_exactly(&mut reader, want, &final_url)?;
                // The body must end there: one more byte means the server sends more than the
                // range it announced (only `want` bytes were kept; the connection is dropped).
                let mut extra = [0u8; 1];
                let more = loop {
                    match reader.read(&mut extra) {
                        Ok(n) => break n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(io_network(&final_url, e)),
                    }
                };
                if more > 0 {
                    return Err(RemoteError::InvalidResponse {
                        url: final_url,
                        msg: format!(
                            "asked for bytes {start}-{end} (Content-Range '{content_range}'), but the response body is longer than {want} bytes"
                        ),
                    });
                }
                Ok(RangeRead {
                    bytes,
                    file_len: total.or(linked_size),
                    final_url,
                })
            }
            200 => {
                // No range support: the whole file is coming. Read only up to what we need and
                // drop the connection.
                let total = response.content_length().or(linked_size);
                let mut reader = response.into_reader();
                if start > 0 {
                    let skipped =
                        std::io::copy(&mut (&mut reader).take(start), &mut std::io::sink())
                            .map_err(|e| io_network(&final_url, e))?;
                    if skipped < start {
                        return Ok(RangeRead {
                            bytes: Vec::new(),
                            file_len: total,
                            final_url,
                        });
                    }
                }
                let want = match total {
                    Some(t) => len.min(t.saturating_sub(start)),
                    None => len,
                };
                let mut bytes = Vec::with_capacity(want as usize);
                reader
                    .take(want)
                    .read_to_end(&mut bytes)
                    .map_err(|e| io_network(&final_url, e))?;
                if total.is_some() && (bytes.len() as u64) < want {
                    return Err(RemoteError::Truncated {
                        url: final_url,
                        expected: want,
                        got: bytes.len() as u64,
                    });
                }
                Ok(RangeRead {
                    bytes,
                    file_len: total,
                    final_url,
                })
            }
            other => Err(RemoteError::InvalidResponse {
                url: final_url,
                msg: format!("unexpected HTTP {other} for a ranged GET"),
            }),
        }
    }

    /// GETs a small document (JSON listing, index) into memory, at most `limit` bytes.
    pub(crate) fn get_bytes(
        &self,
        url: &str,
        limit: u64,
        ctx: Option<&Context>,
    ) -> Result<(Response, Vec<u8>)> {
        let mut attempt = 0;
        loop {
            let outcome = self
                .send(Method::Get, url, None, Redirects::Follow, ctx)
                .and_then(|mut response| {
                    let expected = response.content_length();
                    if expected.is_some_and(|n| n > limit) {
                        return Err(RemoteError::InvalidResponse {
                            url: response.url.clone(),
                            msg: format!(
                                "response of {} bytes exceeds the {limit}-byte limit",
                                expected.unwrap_or(0)
                            ),
                        });
                    }
                    let body = response.body.take();
                    let final_url = response.url.clone();
                    let reader = CountingReader {
                        inner: match body {
                            Some(b) => Box::new(b.into_reader()),
                            None => Box::new(std::io::empty()),
                        },
                        stats: self.stats.clone(),
                    };
                    let bytes = match expected {
                        Some(n) => read_exactly(reader, n, &final_url)?,
                        None => {
                            let mut v = Vec::new();
                            reader
                                .take(limit + 1)
                                .read_to_end(&mut v)
                                .map_err(|e| io_network(&final_url, e))?;
                            if v.len() as u64 > limit {
                                return Err(RemoteError::InvalidResponse {
                                    url: final_url,
                                    msg: format!("response exceeds the {limit}-byte limit"),
                                });
                            }
                            v
                        }
                    };
                    Ok((response, bytes))
                });
            match outcome {
                Err(e) if e.is_interrupted_body() && attempt < self.config.max_retries => {
                    std::thread::sleep(self.backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

pub(crate) struct RangeRead {
    pub bytes: Vec<u8>,
    pub file_len: Option<u64>,
    /// Where the bytes came from after redirects (reuse it for a follow-up read).
    pub final_url: String,
}

fn non_empty(msg: String, fallback: &str) -> String {
    if msg.trim().is_empty() {
        fallback.to_string()
    } else {
        msg
    }
}

/// The Hub answers errors as `{"error": "..."}`; anything else is shown as (short) text.
fn extract_error_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            return e.to_string();
        }
    }
    let trimmed = body.trim();
    if trimmed.len() > 300 {
        format!("{}…", trimmed.chars().take(300).collect::<String>())
    } else {
        trimmed.to_string()
    }
}

pub(crate) fn read_exactly(reader: impl Read, n: u64, url: &str) -> Result<Vec<u8>> {
    let mut bytes = Vec::with_capacity(n.min(64 << 20) as usize);
    reader
        .take(n)
        .read_to_end(&mut bytes)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => RemoteError::Truncated {
                url: url.to_string(),
                expected: n,
                got: 0,
            },
            _ => io_network(url, e),
        })?;
    if (bytes.len() as u64) < n {
        return Err(RemoteError::Truncated {
            url: url.to_string(),
            expected: n,
            got: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

pub(crate) fn io_network(url: &str, e: std::io::Error) -> RemoteError {
    RemoteError::Interrupted {
        url: url.to_string(),
        msg: format!("connection failed while reading the response: {e}"),
    }
}

fn map_transport_error(url: &str, e: ureq::Error) -> RemoteError {
    let url = url.to_string();
    match e {
        ureq::Error::BadUri(m) => RemoteError::BadUri { uri: url, msg: m },
        ureq::Error::Timeout(t) => RemoteError::Network {
            url,
            msg: format!("timed out ({t})"),
        },
        ureq::Error::HostNotFound => RemoteError::Network {
            url,
            msg: "host not found (DNS lookup failed)".into(),
        },
        ureq::Error::ConnectionFailed => RemoteError::Network {
            url,
            msg: "connection failed".into(),
        },
        ureq::Error::Io(io) => RemoteError::Network {
            url,
            msg: io.to_string(),
        },
        ureq::Error::Protocol(p) => RemoteError::Network {
            url,
            msg: format!("HTTP protocol error: {p}"),
        },
        other => RemoteError::Network {
            url,
            msg: other.to_string(),
        },
    }
}

/// `bytes a-b/total` (total may be `*`).
pub(crate) fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.trim().split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

/// `scheme://authority` of a URL (lower-cased), or "" when it has none.
pub(crate) fn origin(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return String::new();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority
        .rsplit_once('@')
        .map(|(_, h)| h)
        .unwrap_or(authority);
    let scheme = scheme.to_ascii_lowercase();
    let mut host = authority.to_ascii_lowercase();
    // Make the default port explicit-free so `https://h` and `https://h:443` compare equal.
    for (s, port) in [("https", ":443"), ("http", ":80")] {
        if scheme == s && host.ends_with(port) {
            host.truncate(host.len() - port.len());
        }
    }
    format!("{scheme}://{host}")
}

fn is_loopback(url: &str) -> bool {
    let o = origin(url);
    let host = o.split_once("://").map(|(_, h)| h).unwrap_or("");
    let host = match host.rsplit_once(':') {
        Some((h, port)) if !h.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    };
    host == "localhost" || host.starts_with("127.") || host == "[::1]"
}

fn is_absolute(location: &str) -> bool {
    location.starts_with("http://")
        || location.starts_with("https://")
        || location.starts_with("//")
}

pub(crate) fn resolve_location(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_string();
    }
    let scheme = base.split_once("://").map(|(s, _)| s).unwrap_or("https");
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let base_origin = {
        let (s, rest) = base.split_once("://").unwrap_or(("https", base));
        format!("{s}://{}", rest.split(['/', '?', '#']).next().unwrap_or(""))
    };
    if location.starts_with('/') {
        return format!("{base_origin}{location}");
    }
    let base_path = base[base_origin.len()..]
        .split(['?', '#'])
        .next()
        .unwrap_or("");
    let dir = match base_path.rfind('/') {
        Some(i) => &base_path[..=i],
        None => "/",
    };
    format!("{base_origin}{dir}{location}")
}

/// The etag as a blob name: without `W/` and quotes.
pub(crate) fn normalize_etag(v: &str) -> String {
    let v = v.trim();
    let v = v.strip_prefix("W/").unwrap_or(v);
    v.trim_matches('"').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_and_locations() {
        assert_eq!(
            origin("https://huggingface.co/org/x"),
            "https://huggingface.co"
        );
        assert_eq!(
            origin("https://HuggingFace.co:443/x"),
            "https://huggingface.co"
        );
        assert_ne!(
            origin("http://127.0.0.1:1/x"),
            origin("http://127.0.0.1:2/x")
        );
        assert!(
            is_loopback("http://127.0.0.1:8080")
                && is_loopback("http://localhost")
                && is_loopback("http://[::1]:9")
        );
        assert!(!is_loopback("https://huggingface.co"));
        assert_eq!(
            resolve_location("http://h:1/a/b?q", "/c/d"),
            "http://h:1/c/d"
        );
        assert_eq!(resolve_location("http://h:1/a/b", "c"), "http://h:1/a/c");
        assert_eq!(resolve_location("https://h/a", "//cdn/x"), "https://cdn/x");
        assert_eq!(
            resolve_location("https://h/a", "http://cdn/x"),
            "http://cdn/x"
        );
    }

    #[test]
    fn content_range_and_etags() {
        assert_eq!(
            parse_content_range("bytes 0-99/1000"),
            Some((0, 99, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 5-9/*"), Some((5, 9, None)));
        assert_eq!(parse_content_range("bytes */1000"), None);
        assert_eq!(normalize_etag("W/\"abc\""), "abc");
        assert_eq!(normalize_etag("\"abc\""), "abc");
    }
}
