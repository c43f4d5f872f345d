//! `ckpt serve` against cross-site requests, with Ollama's rules (server/routes.go
//! `allowedHostsMiddleware`, gin-contrib/cors with `OLLAMA_ORIGINS` and the default origins), and
//! the JSON body limit. Requests are written by hand over TCP so the `Host` and `Origin`
//! headers are exactly what a browser (or a DNS-rebinding page) would send.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use ckpt_ollama::guard::AllowedOrigins;
use ckpt_ollama::{server, CreateSpec, ModelSource, Store};
use common::tiny_model;

struct Raw {
    status: u16,
    head: String,
    body: String,
}

/// Sends `method path` with `headers` (Host must be among them unless `no_host`) and `body`.
fn raw(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Raw {
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    send(addr, req.as_bytes())
}

fn send(addr: SocketAddr, bytes: &[u8]) -> Raw {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    Raw {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

fn start(opts: server::ServerOptions) -> (tempfile::TempDir, Store, server::ServerHandle) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    let gguf = tiny_model(dir.path(), "tiny.gguf", None, 1);
    ckpt_ollama::create(&store, "victim", &CreateSpec::new(ModelSource::Gguf(gguf))).unwrap();
    let handle = server::spawn("127.0.0.1:0", store.clone(), opts).unwrap();
    (dir, store, handle)
}

fn opts_with_origins(origins: Option<&str>) -> server::ServerOptions {
    server::ServerOptions {
        origins: AllowedOrigins::new(origins).unwrap(),
        ..Default::default()
    }
}

fn model_names(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = ckpt_ollama::list(store)
        .unwrap()
        .iter()
        .map(|e| e.display_name.clone())
        .collect();
    names.sort();
    names
}

const COPY: &str = r#"{"source":"victim","destination":"stolen"}"#;
const CREATE: &str = r#"{"model":"victim","from":"victim","system":"attacker's prompt"}"#;

#[test]
fn a_foreign_origin_cannot_create_or_copy() {
    let (_dir, store, server) = start(opts_with_origins(None));
    let host = server.addr.to_string();
    let before = store
        .read_manifest(&ckpt_ollama::ModelName::parse("victim").unwrap())
        .unwrap()
        .unwrap()
        .digest;
    // A page on evil.example posting text/plain (no preflight) to the API.
    for (path, body) in [("/api/copy", COPY), ("/api/create", CREATE)] {
        let r = raw(
            server.addr,
            "POST",
            path,
            &[
                ("Host", &host),
                ("Origin", "http://evil.example"),
                ("Content-Type", "text/plain"),
            ],
            body,
        );
        assert_eq!(r.status, 403, "{path}: {}", r.head);
    }
    assert_eq!(model_names(&store), ["victim:latest"]);
    let after = store
        .read_manifest(&ckpt_ollama::ModelName::parse("victim").unwrap())
        .unwrap()
        .unwrap()
        .digest;
    assert_eq!(
        before, after,
        "the model was changed by a cross-site request"
    );

    // `null` (sandboxed iframes, data: URLs) and look-alikes are foreign too.
    for origin in [
        "null",
        "http://localhost.evil.example",
        "https://127.0.0.1.evil.example:8080",
        "http://evil.example:11434",
    ] {
        let r = raw(
            server.addr,
            "POST",
            "/api/copy",
            &[("Host", &host), ("Origin", origin)],
            COPY,
        );
        assert_eq!(r.status, 403, "{origin}");
    }
    // A preflight from a foreign origin is refused as well.
    let r = raw(
        server.addr,
        "OPTIONS",
        "/api/create",
        &[
            ("Host", &host),
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(r.status, 403);
    assert_eq!(model_names(&store), ["victim:latest"]);
}

#[test]
fn default_origins_and_same_origin_are_allowed() {
    let (_dir, store, server) = start(opts_with_origins(None));
    let host = server.addr.to_string();
    let port = server.addr.port();
    let same = format!("http://{host}");
    let mut n = 0;
    for origin in [
        "http://localhost",
        "https://localhost:3000",
        "http://127.0.0.1:8080",
        "http://0.0.0.0:5173",
        "app://obsidian.md",
        "file://",
        "tauri://localhost",
        "vscode-webview://abc",
        "vscode-file://vscode-app",
        "chrome-extension://abcdef", // AllowBrowserExtensions only allows the scheme, not the origin
        same.as_str(),
    ] {
        let body = format!(r#"{{"source":"victim","destination":"copy{n}"}}"#);
        let r = raw(
            server.addr,
            "POST",
            "/api/copy",
            &[("Host", &host), ("Origin", origin)],
            &body,
        );
        if origin.starts_with("chrome-extension") {
            assert_eq!(r.status, 403, "{origin}");
            continue;
        }
        assert_eq!(r.status, 200, "{origin}: {}", r.head);
        if origin != same {
            assert!(
                r.head
                    .to_lowercase()
                    .contains(&format!("access-control-allow-origin: {origin}")),
                "{origin}: {}",
                r.head
            );
        }
        n += 1;
    }
    // Preflight from an allowed origin: 204 with the CORS headers.
    let r = raw(
        server.addr,
        "OPTIONS",
        "/api/create",
        &[
            ("Host", &host),
            ("Origin", "http://localhost:3000"),
            ("Access-Control-Request-Method", "POST"),
        ],
        "",
    );
    assert_eq!(r.status, 204, "{}", r.head);
    let head = r.head.to_lowercase();
    assert!(head.contains("access-control-allow-origin: http://localhost:3000"));
    assert!(head.contains("access-control-allow-methods: get,post,put,patch,delete,head,options"));
    assert!(head.contains("content-type"));
    // No Origin at all (curl, the ollama CLI, scripts): allowed.
    let r = raw(
        server.addr,
        "GET",
        "/api/tags",
        &[("Host", &format!("localhost:{port}"))],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(model_names(&store).len(), n + 1);
}

#[test]
fn ollama_origins_adds_origins_with_wildcards() {
    let (_dir, store, server) = start(opts_with_origins(Some(
        " 'https://app.example.com,https://*.trusted.dev' ",
    )));
    let host = server.addr.to_string();
    let check = |origin: &str, want: u16, dest: &str| {
        let body = format!(r#"{{"source":"victim","destination":"{dest}"}}"#);
        let r = raw(
            server.addr,
            "POST",
            "/api/copy",
            &[("Host", &host), ("Origin", origin)],
            &body,
        );
        assert_eq!(r.status, want, "{origin}: {}", r.head);
    };
    check("https://app.example.com", 200, "a");
    check("https://ui.trusted.dev", 200, "b");
    check("http://localhost:8080", 200, "c"); // the defaults stay
    check("http://app.example.com", 403, "d");
    check("https://trusted.dev.evil.example", 403, "e");
    check("https://app.example.com.evil.example", 403, "f");
    assert_eq!(model_names(&store).len(), 4);

    // `*` allows every origin.
    let (_dir2, _store2, all) = start(opts_with_origins(Some("*")));
    let r = raw(
        all.addr,
        "POST",
        "/api/copy",
        &[
            ("Host", &all.addr.to_string()),
            ("Origin", "https://anything.example"),
        ],
        COPY,
    );
    assert_eq!(r.status, 200);

    // An entry without a scheme or `*` is refused at startup, as Ollama's cors config panics.
    let e = AllowedOrigins::new(Some("example.com")).unwrap_err();
    assert!(e.contains("bad origin \"example.com\""), "{e}");
    assert!(AllowedOrigins::new(Some("https://*.a.*")).is_err());
}

#[test]
fn dns_rebinding_hosts_are_refused_on_loopback() {
    let (_dir, store, server) = start(opts_with_origins(None));
    let port = server.addr.port();
    for (host, want) in [
        (format!("evil.example:{port}"), 403),
        ("evil.example".to_string(), 403),
        (format!("8.8.8.8:{port}"), 403),
        (format!("[2001:4860:4860::8888]:{port}"), 403),
        (format!("localhost.evil.example:{port}"), 403),
        ("[::1]".to_string(), 403), // SplitHostPort fails and "[::1]" is no IP (as in Go)
        (format!("localhost:{port}"), 200),
        (format!("LOCALHOST:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
        ("127.1.2.3".to_string(), 200),
        (format!("[::1]:{port}"), 200),
        (format!("0.0.0.0:{port}"), 200),
        (format!("10.1.2.3:{port}"), 200),
        ("192.168.0.7".to_string(), 200),
        (format!("[fd00::1]:{port}"), 200),
        (format!("myapp.localhost:{port}"), 200),
        ("printer.local".to_string(), 200),
        (format!("db.internal:{port}"), 200),
    ] {
        let r = raw(server.addr, "GET", "/api/tags", &[("Host", &host)], "");
        assert_eq!(r.status, want, "Host: {host}: {}", r.head);
        // And the attack itself: a rebinding page has the same origin as its Host.
        let origin = format!("http://{host}");
        let r = raw(
            server.addr,
            "POST",
            "/api/copy",
            &[("Host", &host), ("Origin", &origin)],
            r#"{"source":"victim","destination":"victim-copy"}"#,
        );
        assert_eq!(r.status, want, "POST with Host: {host}");
    }
    // An OPTIONS request to an allowed host name ends at the host check with 204.
    let r = raw(
        server.addr,
        "OPTIONS",
        "/api/tags",
        &[("Host", &format!("localhost:{port}"))],
        "",
    );
    assert_eq!(r.status, 204);
    let _ = store;
}

#[test]
fn any_host_is_accepted_when_not_bound_to_loopback() {
    // Ollama skips the Host rules when listening on a non-loopback address (OLLAMA_HOST=0.0.0.0):
    // the router for such a server lets an arbitrary Host through, but still checks Origin.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    let app = server::router_bound(
        store,
        opts_with_origins(None),
        Some("0.0.0.0:11434".parse().unwrap()),
    );
    let rt = tokio_like_runtime();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || rt(listener, app));
    let r = raw(addr, "GET", "/api/tags", &[("Host", "evil.example")], "");
    assert_eq!(r.status, 200);
    let r = raw(
        addr,
        "GET",
        "/api/tags",
        &[("Host", "evil.example"), ("Origin", "http://other.example")],
        "",
    );
    assert_eq!(r.status, 403);
}

type Runner = fn(std::net::TcpListener, axum::Router);

fn tokio_like_runtime() -> Runner {
    |listener, app| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let l = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(l, app).await.unwrap();
            })
    }
}

#[test]
fn json_bodies_have_a_size_limit() {
    let opts = server::ServerOptions {
        max_json_body: 4096,
        ..opts_with_origins(None)
    };
    let (_dir, store, server) = start(opts);
    let host = server.addr.to_string();
    let big = format!(
        r#"{{"model":"victim","from":"victim","system":"{}"}}"#,
        "x".repeat(8000)
    );
    // With a Content-Length: refused before reading.
    let r = raw(server.addr, "POST", "/api/create", &[("Host", &host)], &big);
    assert_eq!(r.status, 413, "{}", r.head);
    assert!(r.body.contains("request body too large"), "{}", r.body);
    // Chunked, no length announced: refused once the limit is crossed.
    let mut req = format!(
        "POST /api/show HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..4 {
        let chunk = "y".repeat(2000);
        req.extend_from_slice(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let r = send(server.addr, &req);
    assert_eq!(r.status, 413, "{}", r.head);
    // Under the limit works as before.
    let r = raw(
        server.addr,
        "POST",
        "/api/show",
        &[("Host", &host)],
        r#"{"model":"victim"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(model_names(&store), ["victim:latest"]);
}
