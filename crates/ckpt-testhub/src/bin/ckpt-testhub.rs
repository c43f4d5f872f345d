//! The fake Hubs of this crate as a process, for tests written in another language (the Python
//! package's pytest suite): serves fixture folders on 127.0.0.1 until its stdin closes.
//!
//! ```text
//! ckpt-testhub download --repo ORG/NAME=DIR[@COMMIT] …   # what pull / remote inspect read
//! ckpt-testhub upload [--repo ORG/NAME=DIR] …            # what push writes (token: hf_fake_write_token)
//! ```
//!
//! The first stdout line is a JSON object: `{"endpoint": URL, "token": …}` (`HF_ENDPOINT` for
//! the clients). Then one command per stdin line, each answered with one JSON line:
//! `requests` (what was asked so far: method, path, kind/host), `clear` (forget them),
//! `files REPO REVISION` (upload: the stored files, path → sha256/size/lfs), `commits` (upload:
//! the received commits). End of input stops the servers.

use std::io::{BufRead, Write};
use std::path::Path;

use ckpt_testhub::{download, upload};
use serde_json::{json, Value};

const DEFAULT_COMMIT: &str = "c0ffee0000000000000000000000000000000001";

fn usage() -> ! {
    eprintln!(
        "usage: ckpt-testhub download|upload [--repo ORG/NAME=DIR[@COMMIT]]…\n\
         prints {{\"endpoint\": …}} then answers `requests`, `clear`, `files REPO REV`, `commits` on stdin until EOF"
    );
    std::process::exit(2)
}

/// `ORG/NAME=DIR[@COMMIT]`.
fn parse_repo(spec: &str) -> (String, String, String) {
    let Some((repo, rest)) = spec.split_once('=') else {
        usage()
    };
    let (dir, commit) = match rest.rsplit_once('@') {
        Some((d, c)) if c.len() == 40 && c.bytes().all(|b| b.is_ascii_hexdigit()) => (d, c),
        _ => (rest, DEFAULT_COMMIT),
    };
    (repo.to_string(), dir.to_string(), commit.to_string())
}

/// Every regular file directly in `dir` (path, bytes), sorted.
fn read_dir(dir: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| {
        eprintln!("ckpt-testhub: {dir}: {e}");
        std::process::exit(2)
    });
    for e in entries.flatten() {
        let p = e.path();
        if p.is_file() {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

fn reply(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = args.first() else { usage() };
    let mut repos = Vec::new();
    let mut it = args[1..].iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--repo" => repos.push(parse_repo(it.next().unwrap_or_else(|| usage()))),
            _ => usage(),
        }
    }
    match mode.as_str() {
        "download" => serve_download(&repos),
        "upload" => serve_upload(&repos),
        _ => usage(),
    }
}

fn commands(mut answer: impl FnMut(&[&str]) -> Option<Value>) {
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        match answer(&words) {
            Some(v) => reply(v),
            None => reply(json!({ "error": format!("unknown command: {line}") })),
        }
    }
}

fn serve_download(repos: &[(String, String, String)]) {
    let hub = download::FakeHub::start();
    for (repo, dir, commit) in repos {
        hub.add_repo(repo, commit, download::files_from_dir(Path::new(dir)));
    }
    reply(json!({ "endpoint": hub.hub_url, "cdn": hub.cdn_url, "token": Value::Null }));
    commands(|words| {
        match words {
        ["requests"] => Some(Value::Array(
            hub.requests()
                .iter()
                .map(|r| {
                    let host = match r.host {
                        download::Host::Hub => "hub",
                        download::Host::Cdn => "cdn",
                    };
                    json!({ "host": host, "method": r.method, "path": r.path, "range": r.header("range") })
                })
                .collect(),
        )),
        ["clear"] => {
            hub.clear_requests();
            Some(json!("ok"))
        }
        _ => None,
    }
    });
}

fn serve_upload(repos: &[(String, String, String)]) {
    let hub = upload::FakeHub::start();
    for (repo, dir, _) in repos {
        let files = read_dir(dir);
        let threshold = hub.with(|st| st.lfs_threshold);
        let entries: Vec<(&str, &[u8], bool)> = files
            .iter()
            .map(|(p, b)| {
                let lfs = b.len() as u64 >= threshold
                    || p.ends_with(".safetensors")
                    || p.ends_with(".bin");
                (p.as_str(), b.as_slice(), lfs)
            })
            .collect();
        hub.add_repo(repo, &entries);
    }
    reply(json!({ "endpoint": hub.url, "token": upload::TOKEN }));
    commands(|words| {
        match words {
        ["requests"] => Some(Value::Array(
            hub.requests()
                .iter()
                .map(|r| json!({ "kind": r.kind(), "method": r.method, "path": r.path, "status": r.status }))
                .collect(),
        )),
        ["clear"] => {
            hub.with(|st| st.requests.clear());
            Some(json!("ok"))
        }
        ["files", repo, revision] => Some(match hub.files_at(repo, revision) {
            None => Value::Null,
            Some(files) => Value::Object(
                files
                    .iter()
                    .map(|(p, f)| {
                        let v = json!({ "sha256": f.sha256(), "size": f.bytes.len(), "lfs": f.lfs });
                        (p.clone(), v)
                    })
                    .collect(),
            ),
        }),
        ["commits"] => Some(Value::Array(
            hub.with(|st| st.commits.clone())
                .iter()
                .map(|c| {
                    let mut entries: Vec<_> = c.entries.clone();
                    entries.sort();
                    let entries: Vec<Value> = entries
                        .iter()
                        .map(|e| json!({ "key": e.key, "path": e.path, "sha256": e.sha256, "size": e.size }))
                        .collect();
                    json!({
                        "repo": c.repo, "revision": c.revision, "create_pr": c.create_pr,
                        "summary": c.summary, "commit": c.commit, "entries": entries,
                    })
                })
                .collect(),
        )),
        _ => None,
    }
    });
}
