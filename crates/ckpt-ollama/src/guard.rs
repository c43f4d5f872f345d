//! Cross-site protection for `ckpt serve`, with Ollama's rules (server/routes.go):
//!
//! * CORS first (gin-contrib/cors as Ollama configures it): a request whose `Origin` is neither
//!   the server itself (`http://` or `https://` + the `Host` header) nor an allowed origin is
//!   refused with 403. Allowed origins are `OLLAMA_ORIGINS` (comma-separated; one `*` per entry
//!   is a wildcard, a lone `*` allows all) plus Ollama's defaults: `http(s)://localhost`,
//!   `127.0.0.1` and `0.0.0.0` with or without a port, `app://*`, `file://*`, `tauri://*`,
//!   `vscode-webview://*`, `vscode-file://*`. A preflight (`OPTIONS`) from an allowed origin is
//!   answered 204 with the CORS headers.
//! * Then, when the server is bound to a loopback address, the `Host` header must name the
//!   machine (`allowedHostsMiddleware`): a loopback, private, unspecified or local interface
//!   IP, an empty host, `localhost`, the machine's host name, or a name under `.localhost`,
//!   `.local` or `.internal`. Anything else (DNS rebinding) gets 403.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The origin schemes gin-contrib/cors accepts for an entry without `*` (Ollama enables the
/// browser-extension schemes).
const ALLOWED_SCHEMAS: [&str; 6] = [
    "http://",
    "https://",
    "chrome-extension://",
    "safari-extension://",
    "moz-extension://",
    "ms-browser-extension://",
];

/// Request headers a preflight may ask for (Ollama's `AllowHeaders`).
pub(crate) const ALLOW_HEADERS: &str =
    "Authorization,Content-Type,User-Agent,Accept,X-Requested-With";
/// gin-contrib/cors' default methods.
pub(crate) const ALLOW_METHODS: &str = "GET,POST,PUT,PATCH,DELETE,HEAD,OPTIONS";

/// The origins a browser page may call the API from.
#[derive(Clone, Debug)]
pub struct AllowedOrigins {
    all: bool,
    exact: Vec<String>,
    /// (prefix, suffix) around the one `*`; `"*"` on a side means "anything".
    wildcard: Vec<(String, String)>,
}

impl AllowedOrigins {
    /// Ollama's list: `OLLAMA_ORIGINS` (as envconfig reads it: trimmed of spaces and quotes)
    /// then the defaults.
    pub fn from_env() -> Result<AllowedOrigins, String> {
        let raw = std::env::var("OLLAMA_ORIGINS").unwrap_or_default();
        AllowedOrigins::new(Some(&raw))
    }

    /// `ollama_origins` as the value of `OLLAMA_ORIGINS` (None or empty: only the defaults).
    /// An entry with no `*` that is not an http(s) or browser-extension origin is an error, as
    /// it is when Ollama starts.
    pub fn new(ollama_origins: Option<&str>) -> Result<AllowedOrigins, String> {
        let mut list: Vec<String> = Vec::new();
        let value = ollama_origins
            .unwrap_or("")
            .trim()
            .trim_matches(|c| c == '"' || c == '\'');
        if !value.is_empty() {
            list.extend(value.split(',').map(str::to_string));
        }
        for host in ["localhost", "127.0.0.1", "0.0.0.0"] {
            list.push(format!("http://{host}"));
            list.push(format!("https://{host}"));
            list.push(format!("http://{host}:*"));
            list.push(format!("https://{host}:*"));
        }
        for o in [
            "app://*",
            "file://*",
            "tauri://*",
            "vscode-webview://*",
            "vscode-file://*",
        ] {
            list.push(o.to_string());
        }
        let mut out = AllowedOrigins {
            all: false,
            exact: Vec::new(),
            wildcard: Vec::new(),
        };
        for o in &list {
            if o == "*" {
                out.all = true;
            }
            if !o.contains('*') && !ALLOWED_SCHEMAS.iter().any(|s| o.starts_with(s)) {
                return Err(format!(
                    "OLLAMA_ORIGINS: bad origin {o:?}: origins must contain '*' or include {}",
                    ALLOWED_SCHEMAS.join(",")
                ));
            }
            if o.matches('*').count() > 1 {
                return Err(format!(
                    "OLLAMA_ORIGINS: bad origin {o:?}: only one * is allowed"
                ));
            }
            out.exact.push(o.trim().to_lowercase());
            if let Some(i) = o.find('*') {
                let (pre, post) = (&o[..i], &o[i + 1..]);
                out.wildcard.push(if i == 0 {
                    ("*".to_string(), post.to_string())
                } else if i == o.len() - 1 {
                    (pre.to_string(), "*".to_string())
                } else {
                    (pre.to_string(), post.to_string())
                });
            }
        }
        Ok(out)
    }

    /// gin-contrib/cors' `validateOrigin`.
    pub fn allows(&self, origin: &str) -> bool {
        if self.all || self.exact.iter().any(|o| o == origin) {
            return true;
        }
        self.wildcard.iter().any(|(pre, post)| {
            (pre == "*" && origin.ends_with(post.as_str()))
                || (post == "*" && origin.starts_with(pre.as_str()))
                || (origin.starts_with(pre.as_str()) && origin.ends_with(post.as_str()))
        })
    }
}

/// What the CORS check decided for one request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CorsVerdict {
    /// No `Origin`, or the server's own origin: nothing to add.
    NotCors,
    /// An allowed cross-origin request: answer with `Access-Control-Allow-Origin: origin`.
    Allowed,
    /// An allowed preflight: answer 204 with the CORS headers, without running the handler.
    Preflight,
    /// A cross-origin request from an origin not allowed: answer 403 without running the handler.
    Forbidden,
}

/// gin-contrib/cors' `applyCors` for `origin` (the header, if any), `host` (the Host header)
/// and whether the method is OPTIONS.
pub(crate) fn cors_verdict(
    allowed: &AllowedOrigins,
    origin: Option<&str>,
    host: &str,
    options: bool,
) -> CorsVerdict {
    let Some(origin) = origin.filter(|o| !o.is_empty()) else {
        return CorsVerdict::NotCors;
    };
    if origin == format!("http://{host}") || origin == format!("https://{host}") {
        return CorsVerdict::NotCors;
    }
    if !allowed.allows(origin) {
        return CorsVerdict::Forbidden;
    }
    if options {
        CorsVerdict::Preflight
    } else {
        CorsVerdict::Allowed
    }
}

/// Ollama's `allowedHostsMiddleware`: Some(status) when the request must stop here (403, or
/// 204 for an OPTIONS request to an allowed host name), None to go on.
pub(crate) fn host_verdict(
    bound: Option<SocketAddr>,
    host_header: &str,
    options: bool,
) -> Option<u16> {
    let bound = bound?;
    if !bound.ip().is_loopback() {
        return None;
    }
    let host = split_host(host_header);
    if let Some(ip) = parse_ip(host) {
        if is_loopback(ip) || is_private(ip) || ip.is_unspecified() || is_local_ip(ip) {
            return None;
        }
    }
    if allowed_host(host) {
        return options.then_some(204);
    }
    Some(403)
}

/// `net.SplitHostPort`, falling back to the whole text when it fails (as Ollama does).
fn split_host(hostport: &str) -> &str {
    if let Some(rest) = hostport.strip_prefix('[') {
        if let Some(end) = rest.find(']') {
            let after = &rest[end + 1..];
            if after.starts_with(':') && !after[1..].contains(':') {
                return &rest[..end];
            }
        }
        return hostport;
    }
    match hostport.rfind(':') {
        Some(i) if !hostport[..i].contains(':') && !hostport[..i].contains(['[', ']']) => {
            &hostport[..i]
        }
        _ => hostport,
    }
}

/// `netip.ParseAddr` (zones after `%` are accepted for IPv6 and ignored).
fn parse_ip(s: &str) -> Option<IpAddr> {
    if let Ok(v4) = s.parse::<Ipv4Addr>() {
        return Some(IpAddr::V4(v4));
    }
    let base = match s.split_once('%') {
        Some((b, zone)) if !zone.is_empty() => b,
        Some(_) => return None,
        None => s,
    };
    base.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
}

/// netip unmaps `::ffff:a.b.c.d` for IsLoopback and IsPrivate.
fn unmap(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn is_loopback(ip: IpAddr) -> bool {
    unmap(ip).is_loopback()
}

fn is_private(ip: IpAddr) -> bool {
    match unmap(ip) {
        IpAddr::V4(v4) => v4.is_private(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    }
}

/// Whether `ip` is an address of one of this machine's interfaces.
fn is_local_ip(ip: IpAddr) -> bool {
    local_addresses().contains(&ip)
}

fn local_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut ifap: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a linked list we only read and then free with freeifaddrs.
    unsafe {
        if libc::getifaddrs(&mut ifap) != 0 {
            return out;
        }
        let mut cur = ifap;
        while !cur.is_null() {
            let addr = (*cur).ifa_addr;
            if !addr.is_null() {
                match i32::from((*addr).sa_family) {
                    libc::AF_INET => {
                        let sin = &*(addr as *const libc::sockaddr_in);
                        out.push(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)));
                    }
                    _ => {}
                }
            }
            cur = (*cur).ifa_next;
        }
        libc::freeifaddrs(ifap);
    }
    out
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Ollama's `allowedHost`.
fn allowed_host(host: &str) -> bool {
    let host = host.to_lowercase();
    if host.is_empty() || host == "localhost" {
        return true;
    }
    if hostname().is_some_and(|h| h.to_lowercase() == host) {
        return true;
    }
    ["localhost", "local", "internal"]
        .iter()
        .any(|tld| host.ends_with(&format!(".{tld}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_like_go() {
        assert_eq!(split_host("127.0.0.1:11434"), "127.0.0.1");
        assert_eq!(split_host("localhost"), "localhost");
        assert_eq!(split_host("[::1]:80"), "::1");
        assert_eq!(split_host("[::1]"), "[::1]");
        assert_eq!(split_host("::1"), "::1");
        assert_eq!(split_host("example.com:"), "example.com");
    }
}
