//! Ollama's model-management HTTP API on top of the store (axum + tokio): blobs, create, tags,
//! show, delete, copy, version. Status codes and error texts follow Ollama's handlers
//! (server/routes.go, server/create.go). Running models (generate, chat, embeddings, the OpenAI
//! `/v1` API) is Ollama's job: those routes answer 501 with an explanation.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, head, post};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::create::{
    create_with, CreateOptions, CreateSpec, Message, ModelPreparer, ModelSource, NoPreparer,
    Progress,
};
use crate::error::{OllamaError, Result};
use crate::gojson;
use crate::guard::{self, AllowedOrigins, CorsVerdict};
use crate::name::{ModelName, INVALID_MODEL_NAME};
use crate::ops;
use crate::store::{Digest, Store};

/// The Ollama release whose API this server reproduces (`ollama_version` in `/api/version`).
pub const OLLAMA_API_VERSION: &str = "0.33.0-rc2";

/// What `/api/version` reports as `version`: this server is ckpt, not Ollama.
pub const SERVER_VERSION: &str = concat!("ckpt ", env!("CARGO_PKG_VERSION"));

/// The default limit on a JSON request body (everything but `/api/blobs` uploads, which are
/// streamed to disk): 32 MiB, far more than any Modelfile, template or message list.
pub const DEFAULT_MAX_JSON_BODY: usize = 32 << 20;

const RUN_MODELS_ERROR: &str = "this server (ckpt) manages the Ollama model store but does not run models; \
     generation, chat and embeddings are Ollama's job: start `ollama serve` on the same OLLAMA_MODELS directory";

/// Server settings.
#[derive(Clone)]
pub struct ServerOptions {
    /// Converts safetensors uploads and quantizes for `/api/create` (`files`, `quantize`).
    pub preparer: Arc<dyn ModelPreparer>,
    /// Keep blobs of replaced manifests (`OLLAMA_NOPRUNE`).
    pub no_prune: bool,
    /// Write the pre-v0.32.10 `rootfs` section in config blobs ([`CreateOptions::config_rootfs`]).
    pub config_rootfs: bool,
    /// Origins a browser page may call from (`OLLAMA_ORIGINS` plus Ollama's defaults).
    pub origins: AllowedOrigins,
    /// Largest JSON request body accepted (bigger ones get 413 before being read).
    pub max_json_body: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            preparer: Arc::new(NoPreparer),
            no_prune: std::env::var_os("OLLAMA_NOPRUNE").is_some_and(|v| !v.is_empty()),
            config_rootfs: false,
            origins: AllowedOrigins::from_env()
                .unwrap_or_else(|_| AllowedOrigins::new(None).expect("the default origins")),
            max_json_body: DEFAULT_MAX_JSON_BODY,
        }
    }
}

#[derive(Clone)]
struct AppState {
    store: Store,
    opts: ServerOptions,
}

/// The router, for embedding in another axum app. It applies Ollama's origin (CORS) rules but
/// not its Host rules, which need the bound address: use [`router_bound`] for that.
pub fn router(store: Store, opts: ServerOptions) -> Router {
    router_bound(store, opts, None)
}

/// The router for a server listening on `bound`: Ollama's origin rules, and when `bound` is a
/// loopback address its Host rules (DNS rebinding protection), both answering 403.
pub fn router_bound(store: Store, opts: ServerOptions, bound: Option<SocketAddr>) -> Router {
    let origins = Arc::new(opts.origins.clone());
    let state = AppState { store, opts };
    let not_running = || any(run_models);
    Router::new()
        .route(
            "/",
            get(|| async { "Ollama is running" }).head(|| async { "" }),
        )
        .route("/api/version", get(version).head(version))
        .route("/api/blobs/{digest}", head(head_blob).post(create_blob))
        .route("/api/create", post(create_model))
        .route("/api/tags", get(list_models).head(list_models))
        .route("/api/show", post(show_model))
        .route("/api/delete", axum::routing::delete(delete_model))
        .route("/api/copy", post(copy_model))
        .route(
            "/api/ps",
            get(|| async { json_response(StatusCode::OK, &json!({"models": []})) }),
        )
        .route("/api/generate", not_running())
        .route("/api/chat", not_running())
        .route("/api/embed", not_running())
        .route("/api/embeddings", not_running())
        .route("/api/pull", any(registry_unsupported))
        .route("/api/push", any(registry_unsupported))
        .route("/v1/{*rest}", not_running())
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(
            move |req: axum::extract::Request, next: axum::middleware::Next| {
                let origins = origins.clone();
                async move { cross_site_guard(&origins, bound, req, next).await }
            },
        ))
        .with_state(state)
}

/// Ollama's middleware chain in front of every route: CORS, then allowed hosts.
async fn cross_site_guard(
    origins: &AllowedOrigins,
    bound: Option<SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .map(|o| String::from_utf8_lossy(o.as_bytes()).into_owned());
    let options = req.method() == Method::OPTIONS;
    let verdict = guard::cors_verdict(origins, origin.as_deref(), &host, options);
    let allow_origin = |resp: &mut Response| {
        if let Some(v) = origin
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            resp.headers_mut()
                .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        }
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Origin"));
    };
    match verdict {
        CorsVerdict::Forbidden => return empty(StatusCode::FORBIDDEN),
        CorsVerdict::Preflight => {
            let mut resp = empty(StatusCode::NO_CONTENT);
            allow_origin(&mut resp);
            let h = resp.headers_mut();
            h.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(guard::ALLOW_METHODS),
            );
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(guard::ALLOW_HEADERS),
            );
            h.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("43200"),
            );
            return resp;
        }
        CorsVerdict::NotCors | CorsVerdict::Allowed => {}
    }
    if let Some(status) = guard::host_verdict(bound, &host, options) {
        return empty(StatusCode::from_u16(status).unwrap_or(StatusCode::FORBIDDEN));
    }
    let mut resp = next.run(req).await;
    if verdict == CorsVerdict::Allowed {
        allow_origin(&mut resp);
    }
    resp
}

/// Serves on `addr` until Ctrl-C (blocking; builds its own tokio runtime).
pub fn serve(addr: &str, store: Store, opts: ServerOptions) -> Result<()> {
    serve_listener(bind(addr)?, store, opts)
}

/// Binds `addr` (`host:port`; port 0 picks a free one, see `local_addr()`).
pub fn bind(addr: &str) -> Result<std::net::TcpListener> {
    let listener = std::net::TcpListener::bind(addr)
        .map_err(|e| OllamaError::internal(format!("listen {addr}: {e}")))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| OllamaError::internal(format!("listen {addr}: {e}")))?;
    Ok(listener)
}

/// Serves on a listener from [`bind`] until Ctrl-C (blocking; builds its own tokio runtime).
pub fn serve_listener(
    listener: std::net::TcpListener,
    store: Store,
    opts: ServerOptions,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| OllamaError::internal(format!("listen: {e}")))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| OllamaError::internal(format!("starting the async runtime: {e}")))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| OllamaError::internal(format!("listen {addr}: {e}")))?;
        axum::serve(listener, router_bound(store, opts, Some(addr)))
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .map_err(|e| OllamaError::internal(format!("serving {addr}: {e}")))
    })
}

/// A server running on a background thread (tests, or a CLI that does other work meanwhile).
/// Dropping it stops the server.
pub struct ServerHandle {
    /// The address the server listens on (with the port chosen when 0 was asked).
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ServerHandle {
    /// Stops accepting connections, finishes the ones in flight and joins the thread.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Binds `addr` (e.g. `127.0.0.1:0`) and serves on a background thread.
pub fn spawn(addr: &str, store: Store, opts: ServerOptions) -> Result<ServerHandle> {
    let std_listener = std::net::TcpListener::bind(addr)
        .map_err(|e| OllamaError::internal(format!("listen {addr}: {e}")))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| OllamaError::internal(format!("listen {addr}: {e}")))?;
    let local = std_listener
        .local_addr()
        .map_err(|e| OllamaError::internal(format!("listen {addr}: {e}")))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| OllamaError::internal(format!("starting the async runtime: {e}")))?;
    let thread = std::thread::Builder::new()
        .name("ckpt-ollama-server".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                    return;
                };
                let _ = axum::serve(listener, router_bound(store, opts, Some(local)))
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await;
            });
        })
        .map_err(|e| OllamaError::internal(format!("starting the server thread: {e}")))?;
    Ok(ServerHandle {
        addr: local,
        shutdown: Some(tx),
        thread: Some(thread),
    })
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let mut resp = Response::new(Body::from(gojson::encode(value)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

fn error_response(err: &OllamaError) -> Response {
    let status =
        StatusCode::from_u16(err.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, &json!({ "error": err.message }))
}

fn empty(status: StatusCode) -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = status;
    resp
}

/// Reads a JSON request body of at most `limit` bytes (413 beyond, checked on Content-Length
/// first and then while reading, so an oversized body is never held in memory).
async fn read_body(body: Body, limit: usize) -> std::result::Result<Bytes, Response> {
    let too_large = || {
        json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({ "error": format!("request body too large: the limit for JSON requests is {limit} bytes") }),
        )
    };
    if axum::body::HttpBody::size_hint(&body)
        .exact()
        .is_some_and(|n| n > limit as u64)
    {
        return Err(too_large());
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(e) => Err(error_response(&OllamaError::bad_request(format!(
            "reading request body: {e}"
        )))),
    }
}

/// Decodes a JSON request body with gin's messages for an empty or malformed body.
fn parse_body(body: &Bytes) -> Result<Map<String, Value>> {
    if body.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(OllamaError::bad_request("missing request body"));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(OllamaError::bad_request(
            "json: cannot unmarshal non-object into Go value",
        )),
        Err(e) => Err(OllamaError::bad_request(e.to_string())),
    }
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> &'a str {
    m.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Go's `fs.ValidPath`: relative, `/`-separated, no empty, `.` or `..` elements.
fn valid_relative_path(p: &str) -> bool {
    p == "." || (!p.is_empty() && p.split('/').all(|e| !e.is_empty() && e != "." && e != ".."))
}

async fn version() -> Response {
    json_response(
        StatusCode::OK,
        &json!({ "version": SERVER_VERSION, "ollama_version": OLLAMA_API_VERSION }),
    )
}

async fn run_models(method: Method) -> Response {
    let _ = method;
    error_response(&OllamaError::not_implemented(RUN_MODELS_ERROR))
}

async fn registry_unsupported() -> Response {
    error_response(&OllamaError::not_implemented(
        "pulling and pushing models is Ollama's job (this server only manages the local store): use `ollama pull` / `ollama push`",
    ))
}

async fn head_blob(State(state): State<AppState>, UrlPath(digest): UrlPath<String>) -> Response {
    let parsed = match Digest::parse(&digest) {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    if state.store.blob_path(&parsed).exists() {
        empty(StatusCode::OK)
    } else {
        error_response(&OllamaError::not_found(format!(
            "blob {} not found",
            gojson::go_quote(&digest)
        )))
    }
}

/// Deletes a partial upload if the request dies halfway.
struct PartialUpload(Option<PathBuf>);
impl Drop for PartialUpload {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

async fn create_blob(
    State(state): State<AppState>,
    UrlPath(digest): UrlPath<String>,
    body: Body,
) -> Response {
    let parsed = match Digest::parse(&digest) {
        Ok(d) => d,
        Err(e) => return error_response(&e),
    };
    if state.store.blob_path(&parsed).exists() {
        return empty(StatusCode::OK);
    }
    let temp = match state.store.upload_temp_path() {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let mut guard = PartialUpload(Some(temp.clone()));
    let mut file = match tokio::fs::File::create(&temp).await {
        Ok(f) => f,
        Err(e) => return error_response(&OllamaError::io("open", &temp, &e)),
    };
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => {
                return error_response(&OllamaError::internal(format!("reading request body: {e}")))
            }
        };
        if let Ok(data) = frame.into_data() {
            hasher.update(&data);
            size += data.len() as u64;
            if let Err(e) = file.write_all(&data).await {
                return error_response(&OllamaError::io("write", &temp, &e));
            }
        }
    }
    if let Err(e) = file.flush().await {
        return error_response(&OllamaError::io("write", &temp, &e));
    }
    drop(file);
    let actual = Digest::from_sha256(&hasher.finalize());
    let store = state.store.clone();
    let committed = {
        let actual = actual.clone();
        let temp = temp.clone();
        tokio::task::spawn_blocking(move || store.commit_upload(&temp, &actual, size)).await
    };
    guard.0 = None;
    match committed {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return error_response(&e),
        Err(e) => return error_response(&OllamaError::internal(e.to_string())),
    }
    // Like Ollama, the bytes are kept under their real digest even when the URL names another,
    // and the comparison is on the exact text (`sha256:<lower-case hex>`).
    if actual.to_string() != digest {
        return error_response(&OllamaError::bad_request(format!(
            "digest mismatch, expected {}, got {}",
            gojson::go_quote(&digest),
            gojson::go_quote(&actual.to_string())
        )));
    }
    empty(StatusCode::CREATED)
}

async fn list_models(State(state): State<AppState>) -> Response {
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || ops::list(&store)).await {
        Ok(Ok(models)) => json_response(
            StatusCode::OK,
            &json!({ "models": models.iter().map(ops::ListEntry::to_json).collect::<Vec<_>>() }),
        ),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&OllamaError::internal(e.to_string())),
    }
}

async fn show_model(State(state): State<AppState>, body: Body) -> Response {
    let body = match read_body(body, state.opts.max_json_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let model = match (str_field(&req, "model"), str_field(&req, "name")) {
        ("", "") => return error_response(&OllamaError::bad_request("model is required")),
        ("", n) => n.to_string(),
        (m, _) => m.to_string(),
    };
    let verbose = req.get("verbose").and_then(Value::as_bool).unwrap_or(false);
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || ops::show(&store, &model, verbose)).await {
        Ok(Ok(info)) => json_response(StatusCode::OK, &info.to_json()),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&OllamaError::internal(e.to_string())),
    }
}

async fn delete_model(State(state): State<AppState>, body: Body) -> Response {
    let body = match read_body(body, state.opts.max_json_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let model = if str_field(&req, "model").is_empty() {
        str_field(&req, "name")
    } else {
        str_field(&req, "model")
    }
    .to_string();
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || ops::remove(&store, &model)).await {
        Ok(Ok(_)) => empty(StatusCode::OK),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&OllamaError::internal(e.to_string())),
    }
}

async fn copy_model(State(state): State<AppState>, body: Body) -> Response {
    let body = match read_body(body, state.opts.max_json_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let (src, dst) = (
        str_field(&req, "source").to_string(),
        str_field(&req, "destination").to_string(),
    );
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || ops::copy(&store, &src, &dst)).await {
        Ok(Ok(_)) => empty(StatusCode::OK),
        Ok(Err(e)) => error_response(&e),
        Err(e) => error_response(&OllamaError::internal(e.to_string())),
    }
}

/// Checks an `/api/create` request and turns it into a [`CreateSpec`] (400s as Ollama).
fn create_request(store: &Store, req: &Map<String, Value>) -> Result<(String, CreateSpec)> {
    let digest_map = |key: &str, check_paths: bool| -> Result<Vec<(String, String)>> {
        let mut out = Vec::new();
        if let Some(Value::Object(files)) = req.get(key) {
            for (path, digest) in files {
                if check_paths && !valid_relative_path(path) {
                    return Err(OllamaError::bad_request("file path must be relative"));
                }
                let digest = digest.as_str().unwrap_or("");
                if digest.is_empty() {
                    return Err(OllamaError::bad_request(crate::store::INVALID_DIGEST));
                }
                out.push((path.clone(), digest.to_string()));
            }
        } else if let Some(v) = req.get(key).filter(|v| !v.is_null()) {
            return Err(OllamaError::bad_request(format!("json: cannot unmarshal {} into Go struct field CreateRequest.{key} of type map[string]string", json_kind(v))));
        }
        Ok(out)
    };
    let files = digest_map("files", true)?;
    let adapters = digest_map("adapters", false)?;
    let raw_name = if str_field(req, "model").is_empty() {
        str_field(req, "name")
    } else {
        str_field(req, "model")
    };
    if !ModelName::parse_unchecked(raw_name).is_valid() {
        return Err(OllamaError::bad_request(INVALID_MODEL_NAME));
    }

    let to_paths = |entries: Vec<(String, String)>| -> Result<Vec<(String, PathBuf)>> {
        entries
            .into_iter()
            .map(|(k, d)| {
                // A missing blob fails later, when create opens it (after "parsing GGUF" was
                // streamed), with Go's `open PATH: no such file or directory`, as in Ollama.
                Ok((k, store.blob_path(&Digest::parse(&d)?)))
            })
            .collect()
    };

    let from = str_field(req, "from");
    let source = if !from.is_empty() {
        ModelSource::Model(from.to_string())
    } else if req.get("files").is_some_and(|v| !v.is_null()) {
        ModelSource::Files(to_paths(files)?)
    } else {
        return Err(OllamaError::bad_request(
            "neither 'from' or 'files' was specified",
        ));
    };
    let mut spec = CreateSpec::new(source);
    if !adapters.is_empty() {
        spec.adapter = Some(ModelSource::Files(to_paths(adapters)?));
    }
    let text = |k: &str| Some(str_field(req, k).to_string()).filter(|s| !s.is_empty());
    spec.template = text("template");
    spec.system = text("system");
    spec.renderer = text("renderer");
    spec.parser = text("parser");
    spec.requires = text("requires");
    spec.quantize = text("quantize").or_else(|| text("quantization"));
    match req.get("license") {
        Some(Value::String(s)) if !s.is_empty() => spec.licenses.push(s.clone()),
        Some(Value::Array(items)) => {
            for item in items {
                match item {
                    Value::String(s) => spec.licenses.push(s.clone()),
                    other => {
                        return Err(OllamaError::internal(format!(
                            "json: cannot unmarshal {} into Go value of type string",
                            json_kind(other)
                        )))
                    }
                }
            }
        }
        Some(Value::String(_)) | Some(Value::Null) | None => {}
        Some(other) => {
            return Err(OllamaError::internal(format!(
                "unknown license type: {}",
                json_kind(other)
            )))
        }
    }
    if let Some(Value::Object(params)) = req.get("parameters") {
        spec.parameters = params.clone();
    }
    if let Some(msgs) = req.get("messages").filter(|v| !v.is_null()) {
        let mut parsed: Vec<Message> = serde_json::from_value(msgs.clone())
            .map_err(|e| OllamaError::bad_request(format!("messages: {e}")))?;
        for m in parsed.iter_mut() {
            m.role = m.role.to_lowercase();
        }
        spec.messages = parsed;
    }
    Ok((raw_name.to_string(), spec))
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

enum CreateEvent {
    Progress(Progress),
    Failed(OllamaError),
}

/// NDJSON lines from the create worker; an error after the first line becomes an
/// `{"error": …}` line, as Ollama streams it.
struct NdjsonStream {
    first: Option<Bytes>,
    rx: mpsc::UnboundedReceiver<CreateEvent>,
    finished: bool,
}

impl futures_core::Stream for NdjsonStream {
    type Item = std::result::Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        if self.finished {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(CreateEvent::Progress(p))) => {
                Poll::Ready(Some(Ok(Bytes::from(gojson::encode_line(&p.to_json())))))
            }
            Poll::Ready(Some(CreateEvent::Failed(e))) => {
                self.finished = true;
                Poll::Ready(Some(Ok(Bytes::from(gojson::encode_line(
                    &json!({ "error": e.message }),
                )))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

async fn create_model(State(state): State<AppState>, body: Body) -> Response {
    let body = match read_body(body, state.opts.max_json_body).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let req = match parse_body(&body) {
        Ok(r) => r,
        Err(e) => return error_response(&e),
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(true);
    let (tx, rx) = mpsc::unbounded_channel::<CreateEvent>();
    let store = state.store.clone();
    let opts = state.opts.clone();
    // Ollama answers these before streaming (or as the first streamed event, which also sets
    // the status), so a plain error response is the same thing.
    let (name, spec) = match create_request(&store, &req) {
        Ok(x) => x,
        Err(e) => return error_response(&e),
    };
    tokio::task::spawn_blocking(move || {
        let options = CreateOptions {
            preparer: opts.preparer.as_ref(),
            no_prune: opts.no_prune,
            config_rootfs: opts.config_rootfs,
        };
        let progress_tx = tx.clone();
        let result = create_with(&store, &name, &spec, &options, &mut |p| {
            let _ = progress_tx.send(CreateEvent::Progress(p));
        });
        if let Err(e) = result {
            let _ = tx.send(CreateEvent::Failed(e));
        }
    });
    finish_create(stream, rx).await
}

async fn finish_create(stream: bool, mut rx: mpsc::UnboundedReceiver<CreateEvent>) -> Response {
    if !stream {
        let mut last = Progress::status("");
        while let Some(event) = rx.recv().await {
            match event {
                CreateEvent::Progress(p) => last = p,
                CreateEvent::Failed(e) => return error_response(&e),
            }
        }
        return json_response(StatusCode::OK, &last.to_json());
    }
    // The status code can only reflect an error that comes before anything was streamed.
    let first = match rx.recv().await {
        Some(CreateEvent::Failed(e)) => return error_response(&e),
        Some(CreateEvent::Progress(p)) => Some(Bytes::from(gojson::encode_line(&p.to_json()))),
        None => None,
    };
    let body = Body::from_stream(NdjsonStream {
        first,
        rx,
        finished: false,
    });
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        for ok in ["model.gguf", "a/b.json", "."] {
            assert!(valid_relative_path(ok), "{ok}");
        }
        for bad in ["/etc/passwd", "../x", "a/../b", "a//b", "a/", "", "./a"] {
            assert!(!valid_relative_path(bad), "{bad}");
        }
    }
}
