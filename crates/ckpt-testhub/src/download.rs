//! A fake Hugging Face Hub on 127.0.0.1: a "hub" host (resolve, model-info and tree routes, LFS
//! files answered with 302 to a second "CDN" host) and the CDN host (blobs with Range support).
//! Every request is recorded so tests can count them and check which headers went where.

#![allow(dead_code)]

pub use crate::{git_sha1_hex, sha256_hex};
use crate::{percent_decode, resolve, Missing};

use std::collections::{BTreeMap, HashMap};
use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Which of the two servers answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The Hub host ([`FakeHub::hub_url`]).
    Hub,
    /// The CDN host LFS files redirect to ([`FakeHub::cdn_url`]).
    Cdn,
}

/// One request as received.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The server that received it.
    pub host: Host,
    /// The HTTP method.
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// The headers, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl Recorded {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A file of a fake repository ([`fake_file`] fills in the hashes).
#[derive(Clone)]
pub struct FakeFile {
    /// The content.
    pub bytes: Arc<Vec<u8>>,
    /// Stored in LFS: served by a redirect to the CDN, its ETag the sha256.
    pub lfs: bool,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    /// The git blob id of the content.
    pub git_sha1: String,
}

impl FakeFile {
    /// The ETag the Hub announces: the sha256 for LFS files, the git blob id otherwise.
    pub fn etag(&self) -> &str {
        if self.lfs {
            &self.sha256
        } else {
            &self.git_sha1
        }
    }
}

/// A fake repository: its refs and commits.
#[derive(Clone, Default)]
pub struct FakeRepo {
    /// revision name → commit
    pub refs: HashMap<String, String>,
    /// commit → files
    pub commits: HashMap<String, BTreeMap<String, FakeFile>>,
    /// Without the token, answered 401 `RepoNotFound`.
    pub private: bool,
    /// Without the token, answered 403 `GatedRepo`.
    pub gated: bool,
}

/// What the servers serve, and the knobs tests turn to make them misbehave.
#[derive(Default)]
pub struct State {
    /// Repositories by id (`ORG/NAME`).
    pub repos: HashMap<String, FakeRepo>,
    /// Every request received by either host, in order.
    pub requests: Vec<Recorded>,
    /// The CDN answers 200 with the whole file to ranged requests.
    pub refuse_range: bool,
    /// The next CDN body is cut after this many bytes (connection dropped), once.
    pub drop_next_body_after: Option<usize>,
    /// CDN serves these sha256 blobs with one byte flipped.
    pub corrupt: Vec<String>,
    /// The token (`Authorization: Bearer …`) that opens private and gated repositories.
    pub token: Option<String>,
    /// The next this-many hub requests answer 503.
    pub fail_next: usize,
    /// CDN GETs answer without Content-Length and append this many junk bytes after the
    /// (ranged) body before closing: a server that sends more than it announced.
    pub overlong_cdn_body: Option<usize>,
    /// Downloads announce no size (no X-Linked-Size, no Content-Length, not even on HEAD) and
    /// their bodies never end: the file's bytes, then junk until the client hangs up.
    pub unsized_bodies: bool,
}

/// The two servers, running until dropped.
pub struct FakeHub {
    /// `http://127.0.0.1:PORT` of the Hub host: the endpoint to give the client (`HF_ENDPOINT`).
    pub hub_url: String,
    /// `http://127.0.0.1:PORT` of the CDN host.
    pub cdn_url: String,
    /// What they serve, shared with the server threads.
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// A file with `bytes` as content, in LFS or not.
pub fn fake_file(bytes: Vec<u8>, lfs: bool) -> FakeFile {
    FakeFile {
        sha256: sha256_hex(&bytes),
        git_sha1: git_sha1_hex(&bytes),
        bytes: Arc::new(bytes),
        lfs,
    }
}

/// Files of a fixture folder: `.safetensors` as LFS, everything else as regular git files.
pub fn files_from_dir(dir: &Path) -> BTreeMap<String, FakeFile> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        let lfs =
            name.ends_with(".safetensors") || name.ends_with(".gguf") || name.ends_with(".bin");
        out.insert(name, fake_file(std::fs::read(&p).unwrap(), lfs));
    }
    out
}

impl FakeHub {
    /// Binds both hosts to free ports on 127.0.0.1 and starts serving an empty state.
    pub fn start() -> FakeHub {
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let hub_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let cdn_listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let hub_url = format!("http://{}", hub_listener.local_addr().unwrap());
        let cdn_url = format!("http://{}", cdn_listener.local_addr().unwrap());
        let mut threads = Vec::new();
        for (listener, host) in [(hub_listener, Host::Hub), (cdn_listener, Host::Cdn)] {
            listener.set_nonblocking(true).unwrap();
            let state = state.clone();
            let stop = stop.clone();
            let cdn = cdn_url.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let state = state.clone();
                            let cdn = cdn.clone();
                            std::thread::spawn(move || {
                                let _ = serve(stream, host, &state, &cdn);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            }));
        }
        FakeHub {
            hub_url,
            cdn_url,
            state,
            stop,
            threads,
        }
    }

    /// Adds a repository with one commit holding `files`, reachable as `main`.
    pub fn add_repo(&self, repo: &str, commit: &str, files: BTreeMap<String, FakeFile>) {
        let mut st = self.state.lock().unwrap();
        let r = st.repos.entry(repo.to_string()).or_default();
        r.refs.insert("main".into(), commit.into());
        r.commits.insert(commit.into(), files);
    }

    /// Points the ref `name` (a branch, tag or `refs/pr/N`) of `repo` at `commit`.
    pub fn add_ref(&self, repo: &str, name: &str, commit: &str) {
        self.state
            .lock()
            .unwrap()
            .repos
            .get_mut(repo)
            .unwrap()
            .refs
            .insert(name.into(), commit.into());
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
    /// Forgets the requests received so far.
    pub fn clear_requests(&self) {
        self.state.lock().unwrap().requests.clear();
    }
    /// Runs `f` on the state, locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Arc<Vec<u8>>,
    range: Option<(usize, usize)>,
    /// Cut the body after this many bytes (announcing the full length).
    cut_after: Option<usize>,
    /// No Content-Length; this many junk bytes follow the body (then the connection closes).
    junk_after: Option<usize>,
    /// No Content-Length on a HEAD either.
    no_length: bool,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Arc::new(Vec::new()),
            range: None,
            cut_after: None,
            junk_after: None,
            no_length: false,
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
    fn json(self, v: serde_json::Value) -> Reply {
        let mut r = self.header("Content-Type", "application/json");
        r.body = Arc::new(serde_json::to_vec(&v).unwrap());
        r
    }
    fn error(status: u16, code: Option<&str>, msg: &str) -> Reply {
        let mut r = Reply::new(status).json(serde_json::json!({ "error": msg }));
        if let Some(c) = code {
            r = r.header("X-Error-Code", c).header("X-Error-Message", msg);
        }
        r
    }
}

fn serve(stream: TcpStream, host: Host, state: &Mutex<State>, cdn: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let (method, target, headers) = crate::read_head(&mut reader)?;
    let rec = Recorded {
        host,
        method: method.clone(),
        path: target.clone(),
        headers,
    };
    let reply = {
        let mut st = state.lock().unwrap();
        st.requests.push(rec.clone());
        if host == Host::Hub && st.fail_next > 0 {
            st.fail_next -= 1;
            Reply::error(503, None, "overloaded")
        } else {
            match host {
                Host::Hub => route_hub(&mut st, &rec, cdn),
                Host::Cdn => route_cdn(&mut st, &rec),
            }
        }
    };
    write_reply(stream, &method, reply)
}

fn write_reply(mut stream: TcpStream, method: &str, reply: Reply) -> std::io::Result<()> {
    let (status_text, body): (&str, &[u8]) = match reply.range {
        Some((a, b)) => ("Partial Content", &reply.body[a..=b]),
        None => ("OK", &reply.body[..]),
    };
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        reply.status,
        if reply.status == 206 {
            status_text
        } else {
            "X"
        }
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let (Some(junk), false) = (reply.junk_after, method == "HEAD") {
        head.push_str("Connection: close\r\n\r\n");
        stream.write_all(head.as_bytes())?;
        stream.write_all(body)?;
        let chunk = vec![0x5au8; 64 * 1024];
        let mut sent = 0;
        while sent < junk {
            let n = chunk.len().min(junk - sent);
            // The client hanging up ends this early.
            stream.write_all(&chunk[..n])?;
            sent += n;
        }
        stream.flush()?;
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return Ok(());
    }
    if reply.no_length {
        head.push_str("Connection: close\r\n\r\n");
    } else {
        head.push_str(&format!(
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        ));
    }
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        match reply.cut_after {
            Some(n) => {
                stream.write_all(&body[..n.min(body.len())])?;
                stream.flush()?;
                let _ = stream.shutdown(std::net::Shutdown::Both);
                return Ok(());
            }
            None => stream.write_all(body)?,
        }
    }
    stream.flush()?;
    // Let the client read everything before the socket closes.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 64];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.read(&mut sink);
    Ok(())
}

/// `bytes=a-b` / `bytes=a-` against a body of `len` bytes.
fn parse_range(v: &str, len: usize) -> Option<(usize, usize)> {
    let r = v.strip_prefix("bytes=")?;
    let (a, b) = r.split_once('-')?;
    let a: usize = a.parse().ok()?;
    let b: usize = if b.is_empty() {
        len.saturating_sub(1)
    } else {
        b.parse::<usize>().ok()?.min(len.saturating_sub(1))
    };
    Some((a, b))
}

fn body_reply(bytes: Arc<Vec<u8>>, range_header: Option<&str>, honour_range: bool) -> Reply {
    let len = bytes.len();
    let mut r = Reply::new(200).header("Accept-Ranges", "bytes");
    if let (Some(rh), true) = (range_header, honour_range) {
        match parse_range(rh, len) {
            Some((a, _)) if a >= len => {
                return Reply::new(416).header("Content-Range", format!("bytes */{len}"));
            }
            Some((a, b)) => {
                r.status = 206;
                r = r.header("Content-Range", format!("bytes {a}-{b}/{len}"));
                r.range = Some((a, b));
            }
            None => {}
        }
    }
    r.body = bytes;
    r
}

fn authorized(st: &State, rec: &Recorded) -> bool {
    match &st.token {
        Some(t) => rec.header("authorization") == Some(&format!("Bearer {t}")),
        None => false,
    }
}

fn route_hub(st: &mut State, rec: &Recorded, cdn: &str) -> Reply {
    let path = rec.path.split('?').next().unwrap_or("").to_string();
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // /api/models/ORG/NAME/revision/REV  and  /api/models/ORG/NAME/tree/REV
    if segs.len() >= 6 && segs[0] == "api" && segs[1] == "models" {
        let repo_id = format!("{}/{}", segs[2], segs[3]);
        let rev = percent_decode(segs[5]);
        let (commit, files) = match lookup(st, rec, &repo_id, &rev) {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        return match segs[4] {
            "revision" => {
                let siblings: Vec<_> = files
                    .iter()
                    .map(|(p, f)| {
                        let mut s = serde_json::json!({ "rfilename": p, "size": f.bytes.len(), "blobId": f.git_sha1 });
                        if f.lfs {
                            s["lfs"] = serde_json::json!({ "sha256": f.sha256, "size": f.bytes.len(), "pointerSize": 134 });
                        }
                        s
                    })
                    .collect();
                Reply::new(200)
                    .json(serde_json::json!({ "id": repo_id, "sha": commit, "siblings": siblings }))
            }
            "tree" => {
                let entries: Vec<_> = files
                    .iter()
                    .map(|(p, f)| {
                        let mut s = serde_json::json!({ "type": "file", "path": p, "size": f.bytes.len(), "oid": f.git_sha1 });
                        if f.lfs {
                            s["lfs"] = serde_json::json!({ "oid": f.sha256, "size": f.bytes.len(), "pointerSize": 134 });
                        }
                        s
                    })
                    .collect();
                Reply::new(200).json(serde_json::Value::Array(entries))
            }
            _ => Reply::error(404, None, "no such route"),
        };
    }
    // /ORG/NAME/resolve/REV/PATH...
    if segs.len() >= 5 && segs[2] == "resolve" {
        let repo_id = format!("{}/{}", segs[0], segs[1]);
        let rev = percent_decode(segs[3]);
        let file_path = percent_decode(&segs[4..].join("/"));
        let (commit, files) = match lookup(st, rec, &repo_id, &rev) {
            Ok(x) => x,
            Err(reply) => return reply,
        };
        let Some(f) = files.get(&file_path) else {
            return Reply::error(
                404,
                Some("EntryNotFound"),
                &format!("{file_path} does not exist at {commit}"),
            )
            .header("X-Repo-Commit", commit);
        };
        if f.lfs {
            let mut r = Reply::new(302)
                .header("Location", format!("{cdn}/blobs/{}?sig=signed", f.sha256))
                .header("X-Repo-Commit", commit)
                .header("X-Linked-Etag", format!("\"{}\"", f.sha256));
            if !st.unsized_bodies {
                r = r.header("X-Linked-Size", f.bytes.len().to_string());
            }
            return r.header("ETag", format!("W/\"{}\"", f.git_sha1));
        }
        let mut r = body_reply(f.bytes.clone(), rec.header("range"), true)
            .header("X-Repo-Commit", commit)
            .header("ETag", format!("\"{}\"", f.git_sha1));
        if st.unsized_bodies {
            r.no_length = true;
            r.junk_after = Some(usize::MAX);
        }
        return r;
    }
    Reply::error(404, None, "no such route")
}

#[allow(clippy::result_large_err)]
fn lookup(
    st: &State,
    rec: &Recorded,
    repo_id: &str,
    rev: &str,
) -> Result<(String, BTreeMap<String, FakeFile>), Reply> {
    let Some(repo) = st.repos.get(repo_id) else {
        return Err(Reply::error(
            404,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    };
    if repo.private && !authorized(st, rec) {
        return Err(Reply::error(
            401,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    }
    if repo.gated && !authorized(st, rec) {
        return Err(Reply::error(
            403,
            Some("GatedRepo"),
            "Access to this model is restricted: you must accept the conditions",
        ));
    }
    resolve(&repo.refs, &repo.commits, rev)
        .map_err(|Missing::Revision(msg)| Reply::error(404, Some("RevisionNotFound"), &msg))
}

fn route_cdn(st: &mut State, rec: &Recorded) -> Reply {
    let path = rec.path.split('?').next().unwrap_or("");
    let Some(sha) = path.strip_prefix("/blobs/") else {
        return Reply::error(404, None, "no such blob");
    };
    let found = st
        .repos
        .values()
        .flat_map(|r| r.commits.values())
        .flat_map(|c| c.values())
        .find(|f| f.sha256 == sha)
        .cloned();
    let Some(f) = found else {
        return Reply::error(404, None, "no such blob");
    };
    let mut bytes = f.bytes.clone();
    if st.corrupt.iter().any(|c| c == sha) {
        let mut v = (*bytes).clone();
        let last = v.len() - 1;
        v[last] ^= 0xff;
        bytes = Arc::new(v);
    }
    let mut reply = body_reply(bytes, rec.header("range"), !st.refuse_range);
    if rec.method == "GET" {
        if let Some(n) = st.drop_next_body_after.take() {
            reply.cut_after = Some(n);
        }
        reply.junk_after = st.overlong_cdn_body;
        if st.unsized_bodies {
            reply.junk_after = Some(usize::MAX);
        }
    }
    reply.no_length |= st.unsized_bodies;
    reply
}
