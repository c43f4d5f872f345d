//! A fake Hugging Face Hub on 127.0.0.1 that accepts uploads: whoami, repo creation, preupload,
//! the LFS batch API (basic PUT and multipart parts + completion + verify), NDJSON commits
//! (with `create_pr=1` opening `refs/pr/N`), and the read routes `ckpt_remote::pull` uses
//! (model info, HEAD/GET resolve). Every request is recorded; uploads are stored.

#![allow(dead_code)]

pub use crate::{git_sha1_hex, sha256_hex};
use crate::{percent_decode, resolve, Missing};

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

/// One request as received, with the status it was answered.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// The HTTP method.
    pub method: String,
    /// The request target (path and query).
    pub path: String,
    /// The headers, in the order sent.
    pub headers: Vec<(String, String)>,
    /// The body's length in bytes.
    pub body_len: usize,
    /// The body of JSON requests (uploads are only counted).
    pub json: Value,
    /// The HTTP status answered.
    pub status: u16,
}

impl Recorded {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The protocol step this request belongs to.
    pub fn kind(&self) -> &'static str {
        let p = self.path.split('?').next().unwrap_or("");
        match (self.method.as_str(), p) {
            (_, "/api/whoami-v2") => "whoami",
            (_, "/api/repos/create") => "create-repo",
            (_, p) if p.contains("/preupload/") => "preupload",
            (_, p) if p.ends_with(".git/info/lfs/objects/batch") => "lfs-batch",
            ("PUT", p) if p.contains("/part/") => "upload-part",
            ("PUT", p) if p.starts_with("/storage/") => "upload",
            ("POST", p) if p.ends_with("/complete") => "complete",
            ("POST", "/storage/verify") => "verify",
            (_, p) if p.contains("/commit/") => "commit",
            _ => "other",
        }
    }
}

/// A file of a commit.
#[derive(Clone, Debug)]
pub struct StoredFile {
    /// The content.
    pub bytes: Arc<Vec<u8>>,
    /// Committed as an LFS file (else a regular git file).
    pub lfs: bool,
}

impl StoredFile {
    /// Lowercase hex sha256 of the content (the LFS oid).
    pub fn sha256(&self) -> String {
        sha256_hex(&self.bytes)
    }
    /// The git blob id of the content.
    pub fn git_sha1(&self) -> String {
        git_sha1_hex(&self.bytes)
    }
    /// The ETag the read routes announce: the sha256 for LFS files, the git blob id otherwise.
    pub fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.git_sha1()
        }
    }
}

/// One commit line as received: (key, path, oid-or-content-sha256, size).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct CommitEntry {
    /// The NDJSON line's `key`: `file` (content inline) or `lfsFile`.
    pub key: String,
    /// The path in the repository.
    pub path: String,
    /// The LFS oid, or the sha256 of the inline content.
    pub sha256: String,
    /// The file's size in bytes.
    pub size: u64,
}

/// A commit request the server accepted.
#[derive(Clone, Debug)]
pub struct ReceivedCommit {
    /// The repository id.
    pub repo: String,
    /// The revision committed to (or that the pull request targets).
    pub revision: String,
    /// Asked with `create_pr=1`.
    pub create_pr: bool,
    /// The commit title (the header line's `summary`).
    pub summary: String,
    /// The file lines, in the order received.
    pub entries: Vec<CommitEntry>,
    /// The commit id the server made.
    pub commit: String,
}

/// A repository of the upload Hub.
#[derive(Default)]
pub struct FakeRepo {
    /// Ref name (`main`, `refs/pr/1`) → commit.
    pub refs: HashMap<String, String>,
    /// Commit → its files by path.
    pub commits: HashMap<String, BTreeMap<String, StoredFile>>,
    /// The number the next pull request gets.
    pub next_pr: u64,
    /// Created with `private: true`.
    pub private: bool,
}

/// What the server holds and the knobs tests turn.
pub struct State {
    /// The token accepted as `Authorization: Bearer …` ([`TOKEN`]).
    pub token: String,
    /// "write" or "read".
    pub role: String,
    /// Repositories by id (`ORG/NAME`).
    pub repos: HashMap<String, FakeRepo>,
    /// LFS storage: sha256 → bytes.
    pub blobs: HashMap<String, Arc<Vec<u8>>>,
    /// Multipart uploads in progress: (oid, part) → bytes.
    pub parts: HashMap<(String, u64), Vec<u8>>,
    /// Every request received, in order.
    pub requests: Vec<Recorded>,
    /// Every commit accepted, in order.
    pub commits: Vec<ReceivedCommit>,
    /// Files at least this large (or *.safetensors / *.bin) are LFS.
    pub lfs_threshold: u64,
    /// LFS objects larger than this get a multipart action with parts of `chunk_size`.
    pub multipart_threshold: u64,
    /// The part size of multipart uploads (`chunk_size` in the batch answer).
    pub chunk_size: u64,
    /// Objects above this size are refused by the batch API (the storage limit).
    pub max_lfs_size: u64,
    /// Part numbers that answer 500 the first time they are PUT.
    pub fail_parts_once: Vec<u64>,
    /// Repositories created by `POST /api/repos/create` (name, organization, private).
    pub created: Vec<Value>,
    /// Renamed repositories: old id → new id (API routes answer 307 to the new name).
    pub renamed: HashMap<String, String>,
}

/// The server, running until dropped.
pub struct FakeHub {
    /// `http://127.0.0.1:PORT`: the endpoint to give the client (`HF_ENDPOINT`).
    pub url: String,
    /// What it holds, shared with the server thread.
    pub state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The write token the server accepts by default.
pub const TOKEN: &str = "hf_fake_write_token";

impl FakeHub {
    /// Binds a free port on 127.0.0.1 and starts serving: token [`TOKEN`] with write access, no
    /// repositories, LFS from 1 KiB, multipart above 64 KiB in 20 KiB parts.
    pub fn start() -> FakeHub {
        let state = Arc::new(Mutex::new(State {
            token: TOKEN.into(),
            role: "write".into(),
            repos: HashMap::new(),
            blobs: HashMap::new(),
            parts: HashMap::new(),
            requests: Vec::new(),
            commits: Vec::new(),
            lfs_threshold: 1024,
            multipart_threshold: 64 * 1024,
            chunk_size: 20 * 1024,
            max_lfs_size: u64::MAX,
            fail_parts_once: Vec::new(),
            created: Vec::new(),
            renamed: HashMap::new(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let thread = {
            let (state, stop, url) = (state.clone(), stop.clone(), url.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let (state, url) = (state.clone(), url.clone());
                            std::thread::spawn(move || {
                                let _ = serve(stream, &state, &url);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(2)),
                    }
                }
            })
        };
        FakeHub {
            url,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// A repository with an initial commit on `main` holding `files` (path → (bytes, lfs)).
    pub fn add_repo(&self, repo: &str, files: &[(&str, &[u8], bool)]) {
        let mut st = self.state.lock().unwrap();
        let mut tree = BTreeMap::new();
        for (p, b, lfs) in files {
            let f = StoredFile {
                bytes: Arc::new(b.to_vec()),
                lfs: *lfs,
            };
            if *lfs {
                st.blobs.insert(f.sha256(), f.bytes.clone());
            }
            tree.insert(p.to_string(), f);
        }
        let commit = git_sha1_hex(format!("{repo} initial").as_bytes());
        let r = st.repos.entry(repo.into()).or_default();
        r.refs.insert("main".into(), commit.clone());
        r.commits.insert(commit, tree);
        r.next_pr = 1;
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
    /// Runs `f` on the state, locked.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap())
    }
    /// The files of `repo` at `revision`.
    pub fn files_at(&self, repo: &str, revision: &str) -> Option<BTreeMap<String, StoredFile>> {
        let st = self.state.lock().unwrap();
        let r = st.repos.get(repo)?;
        let commit = r.refs.get(revision)?;
        r.commits.get(commit).cloned()
    }
}

impl Drop for FakeHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }
    fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    fn json(mut self, v: Value) -> Reply {
        self.body = serde_json::to_vec(&v).unwrap();
        self.header("Content-Type", "application/json")
    }
    fn error(status: u16, code: Option<&str>, msg: &str) -> Reply {
        let mut r = Reply::new(status).json(json!({ "error": msg }));
        if let Some(c) = code {
            r = r.header("X-Error-Code", c).header("X-Error-Message", msg);
        }
        r
    }
}

struct Request {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn read_request(stream: &TcpStream) -> std::io::Result<Request> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let (method, target, headers) = crate::read_head(&mut reader)?;
    let find = |n: &str| {
        headers
            .iter()
            .find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    let mut body = Vec::new();
    if let Some(len) = find("content-length").and_then(|v| v.parse::<usize>().ok()) {
        body.resize(len, 0);
        reader.read_exact(&mut body)?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line)?;
            let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            let mut chunk = vec![0u8; size + 2];
            if size == 0 {
                let mut trailer = String::new();
                reader.read_line(&mut trailer)?;
                break;
            }
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), q.to_string()),
        None => (target, String::new()),
    };
    Ok(Request {
        method,
        path,
        query,
        headers,
        body,
    })
}

fn serve(mut stream: TcpStream, state: &Mutex<State>, base: &str) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let req = read_request(&stream)?;
    let reply = {
        let mut st = state.lock().unwrap();
        let reply = route(&mut st, &req, base);
        let target = if req.query.is_empty() {
            req.path.clone()
        } else {
            format!("{}?{}", req.path, req.query)
        };
        st.requests.push(Recorded {
            method: req.method.clone(),
            path: target,
            headers: req.headers.clone(),
            body_len: req.body.len(),
            json: if req.method == "PUT" {
                Value::Null
            } else {
                req.json()
            },
            status: reply.status,
        });
        reply
    };
    let mut head = format!("HTTP/1.1 {} X\r\n", reply.status);
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        reply.body.len()
    ));
    stream.write_all(head.as_bytes())?;
    if req.method != "HEAD" {
        stream.write_all(&reply.body)?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 64];
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let _ = stream.read(&mut sink);
    Ok(())
}

/// Standard base64 to bytes (whitespace ignored); panics on a byte outside the alphabet.
pub(crate) fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a' + 26) as u32,
            b'0'..=b'9' => (c - b'0' + 52) as u32,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 byte {c}"),
        }
    };
    let clean: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let mut out = Vec::new();
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= if c == b'=' { 0 } else { value(c) } << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

fn auth(st: &State, req: &Request) -> Result<(), Reply> {
    match req.header("authorization") {
        Some(v) if v == format!("Bearer {}", st.token) => Ok(()),
        _ => Err(Reply::error(
            401,
            None,
            "Invalid credentials in Authorization header",
        )),
    }
}

fn auth_write(st: &State, req: &Request) -> Result<(), Reply> {
    auth(st, req)?;
    if st.role != "write" {
        return Err(Reply::error(
            403,
            None,
            "You don't have the rights to write to this repository",
        ));
    }
    Ok(())
}

fn files_at(
    st: &State,
    repo: &str,
    rev: &str,
) -> Result<(String, BTreeMap<String, StoredFile>), Reply> {
    let Some(r) = st.repos.get(repo) else {
        return Err(Reply::error(
            404,
            Some("RepoNotFound"),
            "Repository not found",
        ));
    };
    resolve(&r.refs, &r.commits, rev)
        .map_err(|Missing::Revision(msg)| Reply::error(404, Some("RevisionNotFound"), &msg))
}

fn route(st: &mut State, req: &Request, base: &str) -> Reply {
    match route_inner(st, req, base) {
        Ok(r) | Err(r) => r,
    }
}

fn route_inner(st: &mut State, req: &Request, base: &str) -> Result<Reply, Reply> {
    for (old, new) in &st.renamed {
        for (from, to) in [
            (format!("/api/models/{old}/"), format!("/api/models/{new}/")),
            (format!("/{old}.git/"), format!("/{new}.git/")),
        ] {
            if let Some(rest) = req.path.strip_prefix(&from) {
                let query = if req.query.is_empty() {
                    String::new()
                } else {
                    format!("?{}", req.query)
                };
                return Ok(Reply::new(307).header("Location", format!("{to}{rest}{query}")));
            }
        }
    }
    let segs: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
    let create_pr = req
        .query
        .split('&')
        .any(|kv| kv == "create_pr=1" || kv == "create_pr=True" || kv == "create_pr=true");
    match (req.method.as_str(), segs.as_slice()) {
        ("GET", ["api", "whoami-v2"]) => {
            auth(st, req)?;
            Ok(Reply::new(200).json(json!({
                "type": "user", "name": "tester",
                "auth": { "type": "access_token", "accessToken": { "displayName": "t", "role": st.role } },
            })))
        }
        ("POST", ["api", "repos", "create"]) => {
            auth_write(st, req)?;
            let body = req.json();
            st.created.push(body.clone());
            let org = body
                .get("organization")
                .and_then(Value::as_str)
                .unwrap_or("tester");
            let name = body.get("name").and_then(Value::as_str).unwrap_or("");
            let repo = format!("{org}/{name}");
            if st.repos.contains_key(&repo) {
                return Ok(Reply::error(
                    409,
                    None,
                    "You already created this model repo",
                ));
            }
            let commit = git_sha1_hex(format!("{repo} initial").as_bytes());
            let r = st.repos.entry(repo.clone()).or_default();
            r.refs.insert("main".into(), commit.clone());
            r.commits.insert(commit, BTreeMap::new());
            r.next_pr = 1;
            r.private = body
                .get("private")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            Ok(Reply::new(200).json(json!({ "url": format!("{base}/{repo}"), "name": repo })))
        }
        ("POST", ["api", "models", org, name, "preupload", rev]) => {
            auth_write(st, req)?;
            let repo = format!("{org}/{name}");
            let (_, files) = files_at(st, &repo, &percent_decode(rev))?;
            let body = req.json();
            let mut answered = Vec::new();
            for f in body["files"].as_array().cloned().unwrap_or_default() {
                let path = f["path"].as_str().unwrap_or("").to_string();
                let size = f["size"].as_u64().unwrap_or(0);
                let sample = base64_decode(f["sample"].as_str().unwrap_or(""));
                assert!(
                    sample.len() <= 512,
                    "preupload sample of {} bytes",
                    sample.len()
                );
                let lfs = size >= st.lfs_threshold
                    || path.ends_with(".safetensors")
                    || path.ends_with(".bin");
                let mut entry = json!({ "path": path, "uploadMode": if lfs { "lfs" } else { "regular" }, "shouldIgnore": false });
                if let Some(existing) = files.get(&path) {
                    entry["oid"] = json!(existing.etag());
                }
                answered.push(entry);
            }
            Ok(Reply::new(200).json(json!({ "files": answered, "commitOid": "0".repeat(40) })))
        }
        ("POST", [org, repo_git, "info", "lfs", "objects", "batch"]) => {
            auth_write(st, req)?;
            let repo = format!("{org}/{}", repo_git.trim_end_matches(".git"));
            if !st.repos.contains_key(&repo) {
                return Err(Reply::error(
                    404,
                    Some("RepoNotFound"),
                    "Repository not found",
                ));
            }
            let body = req.json();
            assert_eq!(body["operation"], "upload");
            assert_eq!(body["hash_algo"], "sha256");
            let mut objects = Vec::new();
            let mut chose_multipart = false;
            for o in body["objects"].as_array().cloned().unwrap_or_default() {
                let oid = o["oid"].as_str().unwrap_or("").to_string();
                let size = o["size"].as_u64().unwrap_or(0);
                if size > st.max_lfs_size {
                    objects.push(json!({ "oid": oid, "size": size, "error": { "code": 422, "message": format!("Your file exceeds the maximum size of {} bytes", st.max_lfs_size) } }));
                } else if st.blobs.contains_key(&oid) {
                    objects.push(json!({ "oid": oid, "size": size }));
                } else if size > st.multipart_threshold {
                    chose_multipart = true;
                    let mut header = serde_json::Map::new();
                    header.insert("chunk_size".into(), json!(st.chunk_size.to_string()));
                    for n in 1..=size.div_ceil(st.chunk_size) {
                        header.insert(
                            n.to_string(),
                            json!(format!("{base}/storage/{oid}/part/{n}?sig=x")),
                        );
                    }
                    objects.push(json!({ "oid": oid, "size": size, "authenticated": true, "actions": {
                        "upload": { "href": format!("{base}/storage/{oid}/complete"), "header": header },
                        "verify": { "href": format!("{base}/storage/verify"), "header": { "Authorization": "Basic lfs" } },
                    }}));
                } else {
                    objects.push(json!({ "oid": oid, "size": size, "authenticated": true, "actions": {
                        "upload": { "href": format!("{base}/storage/{oid}?sig=x"), "header": { "X-Storage-Class": "standard" } },
                        "verify": { "href": format!("{base}/storage/verify"), "header": { "Authorization": "Basic lfs" } },
                    }}));
                }
            }
            Ok(Reply::new(200)
                .json(json!({ "transfer": if chose_multipart { "multipart" } else { "basic" }, "objects": objects }))
                .header("Content-Type", "application/vnd.git-lfs+json"))
        }
        ("PUT", ["storage", oid, "part", n]) => {
            if req.header("authorization").is_some() {
                return Err(Reply::error(
                    400,
                    None,
                    "storage URLs are presigned: no Authorization header allowed",
                ));
            }
            let n: u64 = n.parse().unwrap_or(0);
            if let Some(i) = st.fail_parts_once.iter().position(|&p| p == n) {
                st.fail_parts_once.remove(i);
                return Err(Reply::error(500, None, "simulated storage failure"));
            }
            let etag = format!("\"{}\"", &sha256_hex(&req.body)[..32]);
            st.parts.insert((oid.to_string(), n), req.body.clone());
            Ok(Reply::new(200).header("ETag", etag))
        }
        ("POST", ["storage", oid, "complete"]) => {
            let body = req.json();
            assert_eq!(body["oid"].as_str(), Some(*oid));
            let mut data = Vec::new();
            for (i, p) in body["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .enumerate()
            {
                let n = p["partNumber"].as_u64().unwrap_or(0);
                assert_eq!(n, i as u64 + 1, "parts out of order");
                let Some(bytes) = st.parts.get(&(oid.to_string(), n)) else {
                    return Err(Reply::error(
                        400,
                        None,
                        &format!("part {n} was never uploaded"),
                    ));
                };
                let etag = format!("\"{}\"", &sha256_hex(bytes)[..32]);
                if p["etag"].as_str() != Some(etag.as_str()) {
                    return Err(Reply::error(400, None, &format!("wrong etag for part {n}")));
                }
                data.extend_from_slice(bytes);
            }
            if sha256_hex(&data) != *oid {
                return Err(Reply::error(
                    400,
                    None,
                    "assembled object does not match its oid",
                ));
            }
            st.blobs.insert(oid.to_string(), Arc::new(data));
            Ok(Reply::new(200).json(json!({ "success": true })))
        }
        ("PUT", ["storage", oid]) => {
            if req.header("authorization").is_some() {
                return Err(Reply::error(
                    400,
                    None,
                    "storage URLs are presigned: no Authorization header allowed",
                ));
            }
            if sha256_hex(&req.body) != *oid {
                return Err(Reply::error(
                    400,
                    None,
                    "uploaded bytes do not match the oid",
                ));
            }
            st.blobs.insert(oid.to_string(), Arc::new(req.body.clone()));
            Ok(Reply::new(200))
        }
        ("POST", ["storage", "verify"]) => {
            let body = req.json();
            let oid = body["oid"].as_str().unwrap_or("");
            match st.blobs.get(oid) {
                Some(b) if Some(b.len() as u64) == body["size"].as_u64() => {
                    Ok(Reply::new(200).json(json!({})))
                }
                _ => Err(Reply::error(404, None, "object not found")),
            }
        }
        ("POST", ["api", "models", org, name, "commit", rev]) => {
            auth_write(st, req)?;
            let repo = format!("{org}/{name}");
            let rev = percent_decode(rev);
            let (parent, mut files) = files_at(st, &repo, &rev)?;
            assert!(
                req.header("content-type").unwrap_or("").contains("ndjson"),
                "commit must be NDJSON"
            );
            let mut entries = Vec::new();
            let mut summary = String::new();
            for line in req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let v: Value = serde_json::from_slice(line).expect("NDJSON line");
                let value = &v["value"];
                match v["key"].as_str() {
                    Some("header") => summary = value["summary"].as_str().unwrap_or("").to_string(),
                    Some("file") => {
                        assert_eq!(value["encoding"], "base64");
                        let bytes = base64_decode(value["content"].as_str().unwrap_or(""));
                        let path = value["path"].as_str().unwrap_or("").to_string();
                        entries.push(CommitEntry {
                            key: "file".into(),
                            path: path.clone(),
                            sha256: sha256_hex(&bytes),
                            size: bytes.len() as u64,
                        });
                        files.insert(
                            path,
                            StoredFile {
                                bytes: Arc::new(bytes),
                                lfs: false,
                            },
                        );
                    }
                    Some("lfsFile") => {
                        assert_eq!(value["algo"], "sha256");
                        let oid = value["oid"].as_str().unwrap_or("").to_string();
                        let path = value["path"].as_str().unwrap_or("").to_string();
                        let Some(bytes) = st.blobs.get(&oid).cloned() else {
                            return Err(Reply::error(
                                422,
                                None,
                                &format!("LFS object {oid} for {path} was never uploaded"),
                            ));
                        };
                        entries.push(CommitEntry {
                            key: "lfsFile".into(),
                            path: path.clone(),
                            sha256: oid,
                            size: value["size"].as_u64().unwrap_or(0),
                        });
                        files.insert(path, StoredFile { bytes, lfs: true });
                    }
                    other => {
                        return Err(Reply::error(
                            400,
                            None,
                            &format!("unknown commit key {other:?}"),
                        ))
                    }
                }
            }
            let commit = git_sha1_hex(&[parent.as_bytes(), &req.body].concat());
            let r = st.repos.get_mut(&repo).unwrap();
            r.commits.insert(commit.clone(), files);
            let mut answer = json!({ "commitOid": commit, "commitUrl": format!("{base}/{repo}/commit/{commit}"), "success": true });
            if create_pr {
                let n = r.next_pr;
                r.next_pr += 1;
                r.refs.insert(format!("refs/pr/{n}"), commit.clone());
                answer["pullRequestUrl"] = json!(format!("{base}/{repo}/discussions/{n}"));
            } else {
                r.refs.insert(rev.clone(), commit.clone());
            }
            st.commits.push(ReceivedCommit {
                repo,
                revision: rev,
                create_pr,
                summary,
                entries,
                commit,
            });
            Ok(Reply::new(200).json(answer))
        }
        ("GET", ["api", "models", org, name, "revision", rev]) => {
            let repo = format!("{org}/{name}");
            let (commit, files) = files_at(st, &repo, &percent_decode(rev))?;
            let siblings: Vec<Value> = files
                .iter()
                .map(|(p, f)| {
                    let mut s = json!({ "rfilename": p, "size": f.bytes.len(), "blobId": f.git_sha1() });
                    if f.lfs {
                        s["lfs"] = json!({ "sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": 134 });
                    }
                    s
                })
                .collect();
            Ok(Reply::new(200).json(json!({ "id": repo, "sha": commit, "siblings": siblings })))
        }
        ("HEAD" | "GET", [org, name, "resolve", rev, rest @ ..]) => {
            let repo = format!("{org}/{name}");
            let (commit, files) = files_at(st, &repo, &percent_decode(rev))?;
            let path = percent_decode(&rest.join("/"));
            let Some(f) = files.get(&path) else {
                return Err(Reply::error(404, Some("EntryNotFound"), "Entry not found")
                    .header("X-Repo-Commit", commit));
            };
            let mut r = Reply::new(200)
                .header("X-Repo-Commit", commit)
                .header("ETag", format!("\"{}\"", f.etag()))
                .header("X-Linked-Size", f.bytes.len().to_string());
            let mut body = f.bytes.to_vec();
            if let Some(range) = req.header("range").and_then(|v| v.strip_prefix("bytes=")) {
                let (a, b) = range.split_once('-').unwrap_or(("0", ""));
                let a: usize = a.parse().unwrap_or(0);
                let b: usize = if b.is_empty() {
                    body.len().saturating_sub(1)
                } else {
                    b.parse::<usize>().unwrap_or(0).min(body.len() - 1)
                };
                if a < body.len() {
                    r.status = 206;
                    r = r.header("Content-Range", format!("bytes {a}-{b}/{}", body.len()));
                    body = body[a..=b].to_vec();
                }
            }
            r.body = body;
            Ok(r)
        }
        _ => Err(Reply::error(
            404,
            None,
            &format!("fake hub: no route for {} {}", req.method, req.path),
        )),
    }
}
