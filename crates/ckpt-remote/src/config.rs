//! Where the Hub is, who we are and where the cache lives, read from the same environment
//! variables huggingface_hub reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Hub used when `HF_ENDPOINT` is not set.
pub(crate) const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// How to reach a Hub and where its cache is, as huggingface_hub configures itself.
#[derive(Clone)]
pub struct HubConfig {
    /// Base URL without a trailing `/` (`HF_ENDPOINT`).
    pub endpoint: String,
    /// Sent as `Authorization: Bearer` to the endpoint's host only, never to a CDN.
    pub token: Option<String>,
    /// The hub cache root (`$HF_HUB_CACHE`, else `$HF_HOME/hub`).
    pub cache_dir: PathBuf,
    /// `HF_HUB_OFFLINE`: no request at all; everything resolves from the cache.
    pub offline: bool,
    /// The `User-Agent` header (`ckpt/VERSION`).
    pub user_agent: String,
    /// Longest wait to connect (`HF_HUB_ETAG_TIMEOUT`; default 10 s).
    pub connect_timeout: Duration,
    /// Longest wait for response headers or for the next body bytes.
    pub read_timeout: Duration,
    /// Retries after a connection failure, timeout or 5xx (per request), with exponential backoff.
    pub max_retries: u32,
    /// The first retry's delay (default 500 ms), doubled for each further one up to 20 s.
    pub retry_base_delay: Duration,
}

impl std::fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubConfig")
            .field("endpoint", &self.endpoint)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("cache_dir", &self.cache_dir)
            .field("offline", &self.offline)
            .finish_non_exhaustive()
    }
}

impl HubConfig {
    /// Defaults for `endpoint` and `cache_dir`, with no token and online.
    pub fn new(endpoint: &str, cache_dir: &Path) -> HubConfig {
        HubConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token: None,
            cache_dir: cache_dir.to_path_buf(),
            offline: false,
            user_agent: format!("ckpt/{}", env!("CARGO_PKG_VERSION")),
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            max_retries: 5,
            retry_base_delay: Duration::from_millis(500),
        }
    }

    /// Reads HF_ENDPOINT, HF_TOKEN (HUGGING_FACE_HUB_TOKEN), HF_TOKEN_PATH, HF_HOME, HF_HUB_CACHE
    /// (HUGGINGFACE_HUB_CACHE), HF_HUB_OFFLINE (TRANSFORMERS_OFFLINE), HF_HUB_DISABLE_IMPLICIT_TOKEN,
    /// HF_HUB_DOWNLOAD_TIMEOUT and HF_HUB_ETAG_TIMEOUT.
    pub fn from_env() -> HubConfig {
        Self::from_vars(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
    }

    /// `from_env` with an explicit variable lookup (for tests and embedding).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> HubConfig {
        let endpoint = var("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
        let hf_home = var("HF_HOME")
            .map(|h| expand_home(&h, &var))
            .unwrap_or_else(|| {
                var("XDG_CACHE_HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| home_dir(&var).join(".cache"))
                    .join("huggingface")
            });
        let cache_dir = var("HF_HUB_CACHE")
            .or_else(|| var("HUGGINGFACE_HUB_CACHE"))
            .map(|c| expand_home(&c, &var))
            .unwrap_or_else(|| hf_home.join("hub"));
        let mut config = HubConfig::new(&endpoint, &cache_dir);
        let implicit_token_disabled =
            var("HF_HUB_DISABLE_IMPLICIT_TOKEN").is_some_and(|v| truthy(&v));
        if !implicit_token_disabled {
            config.token = var("HF_TOKEN")
                .or_else(|| var("HUGGING_FACE_HUB_TOKEN"))
                .or_else(|| {
                    let path = var("HF_TOKEN_PATH")
                        .map(|p| expand_home(&p, &var))
                        .unwrap_or_else(|| hf_home.join("token"));
                    std::fs::read_to_string(path).ok()
                })
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty());
        }
        config.offline = ["HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"]
            .iter()
            .any(|k| var(k).is_some_and(|v| truthy(&v)));
        if let Some(secs) = var("HF_HUB_DOWNLOAD_TIMEOUT")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
        {
            config.read_timeout = Duration::from_secs_f64(secs);
        }
        if let Some(secs) = var("HF_HUB_ETAG_TIMEOUT")
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
        {
            config.connect_timeout = Duration::from_secs_f64(secs);
        }
        config
    }
}

/// huggingface_hub's truthy values: 1, ON, YES, TRUE (case-insensitive).
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_uppercase().as_str(),
        "1" | "ON" | "YES" | "TRUE"
    )
}

fn home_dir(var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    var("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn expand_home(p: &str, var: &impl Fn(&str) -> Option<String>) -> PathBuf {
    match p.strip_prefix("~/") {
        Some(rest) => home_dir(var).join(rest),
        None if p == "~" => home_dir(var),
        None => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(vars: &[(&str, &str)]) -> HubConfig {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        HubConfig::from_vars(|k| m.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = cfg(&[("HOME", "/home/u")]);
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(c.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert!(!c.offline);
        assert!(c.user_agent.starts_with("ckpt/"));
        let c = cfg(&[
            ("HOME", "/h"),
            ("HF_HOME", "/x"),
            ("HF_ENDPOINT", "http://127.0.0.1:9/"),
            ("HF_HUB_OFFLINE", "yes"),
        ]);
        assert_eq!(c.cache_dir, PathBuf::from("/x/hub"));
        assert_eq!(c.endpoint, "http://127.0.0.1:9");
        assert!(c.offline);
        let c = cfg(&[
            ("HOME", "/h"),
            ("HF_HUB_CACHE", "~/c"),
            ("HF_HUB_OFFLINE", "0"),
        ]);
        assert_eq!(c.cache_dir, PathBuf::from("/h/c"));
        assert!(!c.offline);
    }

    #[test]
    fn token_from_env_then_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("token"), "hf_file\n").unwrap();
        let home = dir.path().to_str().unwrap();
        assert_eq!(cfg(&[("HF_HOME", home)]).token.as_deref(), Some("hf_file"));
        assert_eq!(
            cfg(&[("HF_HOME", home), ("HF_TOKEN", "hf_env")])
                .token
                .as_deref(),
            Some("hf_env")
        );
        assert_eq!(
            cfg(&[("HF_HOME", home), ("HF_TOKEN_PATH", "/nonexistent/t")]).token,
            None
        );
        assert_eq!(
            cfg(&[("HF_HOME", home), ("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")]).token,
            None
        );
    }
}
