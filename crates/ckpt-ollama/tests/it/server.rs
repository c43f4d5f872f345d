//! The HTTP API driven over plain HTTP on 127.0.0.1, through the workflow of `ollama create`:
//! upload blobs, create with files + template + parameters, list, show, copy, delete, plus
//! Ollama's status codes and error texts.

use crate::common;

use std::path::Path;

use ckpt_ollama::{server, Store};
use common::{fixture, sha256_hex, tiny_model};
use serde_json::{json, Value};

struct Client {
    base: String,
    agent: ureq::Agent,
}

struct Reply {
    status: u16,
    content_type: String,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
}

impl Client {
    fn new(addr: std::net::SocketAddr) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            base: format!("http://{addr}"),
            agent,
        }
    }

    fn finish(resp: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut resp = resp.unwrap();
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = resp.body_mut().read_to_string().unwrap_or_default();
        Reply {
            status,
            content_type,
            body,
        }
    }

    fn get(&self, path: &str) -> Reply {
        Client::finish(self.agent.get(format!("{}{path}", self.base)).call())
    }
    fn head(&self, path: &str) -> Reply {
        Client::finish(self.agent.head(format!("{}{path}", self.base)).call())
    }
    fn post(&self, path: &str, body: impl ureq::AsSendBody) -> Reply {
        Client::finish(self.agent.post(format!("{}{path}", self.base)).send(body))
    }
    fn post_json(&self, path: &str, body: &Value) -> Reply {
        Client::finish(
            self.agent
                .post(format!("{}{path}", self.base))
                .header("Content-Type", "application/json")
                .send(body.to_string()),
        )
    }
    fn delete_json(&self, path: &str, body: &Value) -> Reply {
        Client::finish(
            self.agent
                .delete(format!("{}{path}", self.base))
                .force_send_body()
                .send(body.to_string()),
        )
    }
}

fn start() -> (tempfile::TempDir, Store, server::ServerHandle, Client) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    let handle = server::spawn(
        "127.0.0.1:0",
        store.clone(),
        server::ServerOptions::default(),
    )
    .unwrap();
    let client = Client::new(handle.addr);
    (dir, store, handle, client)
}

fn upload(client: &Client, data: &[u8]) -> String {
    let digest = format!("sha256:{}", sha256_hex(data));
    assert_eq!(client.head(&format!("/api/blobs/{digest}")).status, 404);
    assert_eq!(
        client.post(&format!("/api/blobs/{digest}"), data).status,
        201
    );
    assert_eq!(client.head(&format!("/api/blobs/{digest}")).status, 200);
    // Uploading again is a no-op answered with 200.
    assert_eq!(
        client.post(&format!("/api/blobs/{digest}"), data).status,
        200
    );
    digest
}

#[test]
fn create_workflow_like_the_ollama_cli() {
    let (dir, store, _server, client) = start();
    assert_eq!(
        client.get("/api/version").json(),
        json!({"version": server::SERVER_VERSION, "ollama_version": server::OLLAMA_API_VERSION})
    );
    assert_eq!(client.get("/").body, "Ollama is running");

    let smol = std::fs::read_to_string(fixture("smol-chat_template.jinja")).unwrap();
    let gguf_path = tiny_model(dir.path(), "tiny.gguf", Some(&smol), 1);
    let gguf = std::fs::read(&gguf_path).unwrap();
    let digest = upload(&client, &gguf);

    // Streamed create: NDJSON status lines ending in success.
    let reply = client.post_json(
        "/api/create",
        &json!({
            "model": "tiny-chat",
            "files": {"tiny.gguf": digest},
            "template": "{{ .System }} USER: {{ .Prompt }} ASSISTANT:",
            "parameters": {"stop": ["USER:", "</s>"], "temperature": 0.6},
            "system": "Be nice & brief.",
        }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.content_type, "application/x-ndjson");
    let statuses: Vec<String> = reply
        .body
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses.first().map(String::as_str), Some("parsing GGUF"));
    assert_eq!(statuses[1], format!("using existing layer {digest}"));
    // The detected chatml layer is replaced by the request's template before statuses are sent.
    assert!(
        !statuses.contains(&"using autodetected template chatml".to_string()),
        "{statuses:?}"
    );
    assert_eq!(
        &statuses[statuses.len() - 2..],
        ["writing manifest", "success"]
    );

    // /api/tags lists it.
    let tags = client.get("/api/tags").json();
    let models = tags["models"].as_array().unwrap();
    assert_eq!(models.len(), 1);
    assert_eq!(models[0]["name"], "tiny-chat:latest");
    assert_eq!(models[0]["model"], "tiny-chat:latest");
    assert_eq!(models[0]["details"]["format"], "gguf");
    assert_eq!(models[0]["details"]["family"], "llama");
    assert_eq!(models[0]["details"]["families"], json!(["llama"]));
    assert_eq!(models[0]["details"]["quantization_level"], "F16");
    assert_eq!(models[0]["digest"].as_str().unwrap().len(), 64);

    // /api/show returns the Modelfile the request describes (request stop replaces chatml's).
    let show = client
        .post_json("/api/show", &json!({"model": "tiny-chat"}))
        .json();
    let blob = store.root().join("blobs").join(digest.replace(':', "-"));
    assert_eq!(
        show["modelfile"],
        format!(
            "# Modelfile generated by \"ollama show\"\n# To build a new Modelfile based on this, replace FROM with:\n# FROM tiny-chat:latest\n\n\
             FROM {}\nTEMPLATE {{{{ .System }}}} USER: {{{{ .Prompt }}}} ASSISTANT:\nSYSTEM Be nice & brief.\n\
             PARAMETER stop USER:\nPARAMETER stop </s>\nPARAMETER temperature 0.6\n",
            blob.display()
        )
    );
    assert_eq!(show["parameters"], "stop                           \"USER:\"\nstop                           \"</s>\"\ntemperature                    0.6");
    assert_eq!(
        show["template"],
        "{{ .System }} USER: {{ .Prompt }} ASSISTANT:"
    );
    assert_eq!(show["system"], "Be nice & brief.");
    assert_eq!(show["details"]["parameter_size"], "40");
    assert_eq!(show["model_info"]["general.architecture"], "llama");
    assert_eq!(show["capabilities"], json!(["completion"]));
    assert!(show["modified_at"].as_str().unwrap().ends_with('Z'));

    // Non-streamed create: a single JSON object; the chatml template and stop list are detected.
    let reply = client.post_json(
        "/api/create",
        &json!({"model": "me/auto:v1", "files": {"tiny.gguf": digest}, "stream": false}),
    );
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "success"}))
    );
    let show = client
        .post_json("/api/show", &json!({"model": "me/auto:v1"}))
        .json();
    assert!(show["modelfile"]
        .as_str()
        .unwrap()
        .contains("PARAMETER stop <|im_start|>\nPARAMETER stop <|im_end|>\n"));

    // Copy, then delete one copy: the other keeps its blobs.
    let reply = client.post_json(
        "/api/copy",
        &json!({"source": "tiny-chat", "destination": "tiny-copy:2"}),
    );
    assert_eq!((reply.status, reply.body.as_str()), (200, ""));
    assert_eq!(
        client.get("/api/tags").json()["models"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        client
            .delete_json("/api/delete", &json!({"model": "tiny-chat"}))
            .status,
        200
    );
    assert_eq!(
        client
            .post_json("/api/show", &json!({"model": "tiny-copy:2"}))
            .status,
        200
    );
    let reply = client.delete_json("/api/delete", &json!({"model": "tiny-chat"}));
    assert_eq!(
        (reply.status, reply.json()),
        (404, json!({"error": "model 'tiny-chat' not found"}))
    );
    assert!(client.head(&format!("/api/blobs/{digest}")).status == 200);
}

#[test]
fn blob_errors_match_ollama() {
    let (_dir, store, _server, client) = start();
    let data = b"some bytes";
    let right = format!("sha256:{}", sha256_hex(data));
    let wrong = format!("sha256:{}", sha256_hex(b"other bytes"));
    let reply = client.post(&format!("/api/blobs/{wrong}"), &data[..]);
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.json(),
        json!({"error": format!("digest mismatch, expected \"{wrong}\", got \"{right}\"")})
    );
    // Like Ollama, the bytes are kept under their real digest.
    assert_eq!(client.head(&format!("/api/blobs/{right}")).status, 200);
    assert_eq!(client.head(&format!("/api/blobs/{wrong}")).status, 404);
    assert_eq!(client.get("/api/tags").json(), json!({"models": []}));

    for bad in [
        "sha256:1234".to_string(),
        "md5:abc".into(),
        "sha256:..%2F..%2Fetc%2Fpasswd".into(),
        format!("sha256-{}", "g".repeat(64)),
    ] {
        let reply = client.post(&format!("/api/blobs/{bad}"), &data[..]);
        assert_eq!(
            (reply.status, reply.json()),
            (400, json!({"error": "invalid digest format"})),
            "{bad}"
        );
    }
    assert_eq!(client.head("/api/blobs/sha256:zz").status, 400);
    // Ollama compares the URL text with "sha256:<hex>", so the dash form never matches on
    // upload (HEAD accepts both forms).
    let dash = right.replace(':', "-");
    assert_eq!(client.head(&format!("/api/blobs/{dash}")).status, 200);
    let other = b"dash form";
    let dash_other = format!("sha256-{}", sha256_hex(other));
    let reply = client.post(&format!("/api/blobs/{dash_other}"), &other[..]);
    assert_eq!(
        (
            reply.status,
            reply.json()["error"]
                .as_str()
                .unwrap()
                .starts_with("digest mismatch")
        ),
        (400, true)
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    assert_eq!(client.head(&format!("/api/blobs/{missing}")).status, 404);
    // No partial upload files are left in blobs/.
    for e in std::fs::read_dir(store.root().join("blobs")).unwrap() {
        assert!(e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("sha256-"));
    }
}

#[test]
fn create_errors_match_ollama() {
    let (_dir, store, _server, client) = start();
    let gguf = std::fs::read(fixture("tiny-llama.Q2_K.gguf")).unwrap();
    let digest = upload(&client, &gguf);
    // With "stream": false the status carries the error (streamed, errors after the first
    // status line arrive as {"error"} lines in a 200 body, as in Ollama).
    let err = |mut body: Value| {
        body["stream"] = json!(false);
        let r = client.post_json("/api/create", &body);
        (
            r.status,
            r.json()["error"].as_str().unwrap_or_default().to_string(),
        )
    };
    assert_eq!(
        err(json!({"model": "x", "files": {"/abs/model.gguf": digest}})),
        (400, "file path must be relative".into())
    );
    assert_eq!(
        err(json!({"model": "x", "files": {"../model.gguf": digest}})),
        (400, "file path must be relative".into())
    );
    assert_eq!(
        err(json!({"model": "x", "files": {"model.gguf": ""}})),
        (400, "invalid digest format".into())
    );
    assert_eq!(
        err(json!({"model": "bad name", "files": {"model.gguf": digest}})),
        (400, "invalid model name".into())
    );
    assert_eq!(
        err(json!({"model": "x"})),
        (400, "neither 'from' or 'files' was specified".into())
    );
    assert_eq!(
        err(json!({"model": "x", "files": {"model.gguf": digest}, "quantize": "q2_k"})),
        (400, "unsupported quantization type Q2_K - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0".into())
    );
    assert_eq!(
        err(json!({"model": "x", "files": {"model.gguf": digest}, "quantize": "q4_K_M"})),
        (
            400,
            "quantization is only supported for F16, BF16 and F32 models".into()
        )
    );
    let missing = format!("sha256:{}", "a".repeat(64));
    let blob_path = store
        .root()
        .join("blobs")
        .join(format!("sha256-{}", "a".repeat(64)));
    assert_eq!(
        err(json!({"model": "x", "files": {"model.gguf": missing}})),
        (
            500,
            format!("open {}: no such file or directory", blob_path.display())
        )
    );
    let (status, msg) = err(json!({"model": "x", "files": {"model.safetensors": digest}}));
    assert_eq!(status, 501);
    assert!(msg.contains("not supported yet"), "{msg}");
    let (status, msg) =
        err(json!({"model": "x", "files": {"model.gguf": digest}, "template": "{{ .Prompt"}));
    assert_eq!(status, 400);
    assert!(msg.starts_with("template error: "), "{msg}");
    // Go's text/template parser decides, as in Ollama (server/create.go setTemplate): unknown
    // functions, undefined variables and template calls without a pipeline are refused.
    for (template, go) in [
        (
            "{{ undefinedFunc .Prompt }}",
            "template: :1: function \"undefinedFunc\" not defined",
        ),
        ("{{ $x }}", "template: :1: undefined variable \"$x\""),
        ("{{ }}", "template: :1: missing value for command"),
        ("{{ template \"x\" }}", "undefined template specified"),
    ] {
        let r = client.post_json(
            "/api/create",
            &json!({"model": "x", "files": {"model.gguf": digest}, "template": template, "stream": false}),
        );
        assert_eq!(r.status, 400, "{template}");
        assert_eq!(
            r.json(),
            json!({"error": format!("template error: {go}")}),
            "{template}"
        );
    }
    assert_eq!(
        client.post("/api/create", "").json(),
        json!({"error": "missing request body"})
    );
    // Streamed, a failure after "parsing GGUF" is an NDJSON error line.
    let reply = client.post_json(
        "/api/create",
        &json!({"model": "x", "files": {"model.gguf": digest}, "quantize": "q2_k"}),
    );
    assert_eq!(reply.status, 200);
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        lines,
        vec![
            json!({"status": "parsing GGUF"}),
            json!({"error": "unsupported quantization type Q2_K - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"})
        ]
    );
    assert_eq!(
        client.post_json("/api/show", &json!({})).json(),
        json!({"error": "model is required"})
    );
    assert_eq!(
        client
            .post_json("/api/show", &json!({"model": "nope"}))
            .status,
        404
    );
    assert_eq!(
        client
            .post_json("/api/copy", &json!({"source": "nope", "destination": "b"}))
            .json(),
        json!({"error": "model \"nope\" not found"})
    );
    assert_eq!(
        client.get("/api/tags").json(),
        json!({"models": []}),
        "no failed create left a model behind"
    );

    // Inference endpoints explain that running models is Ollama's job.
    for path in [
        "/api/generate",
        "/api/chat",
        "/api/embed",
        "/v1/chat/completions",
    ] {
        let reply = client.post_json(path, &json!({"model": "x"}));
        assert_eq!(reply.status, 501, "{path}");
        assert!(
            reply.json()["error"]
                .as_str()
                .unwrap()
                .contains("Ollama's job"),
            "{path}"
        );
    }
    // Templates Go accepts are stored (a trailing `|` is accepted by Go's parser).
    let r = client.post_json(
        "/api/create",
        &json!({"model": "ok", "files": {"model.gguf": digest}, "template": "{{ .Prompt | }}{{ json .Tools }}", "stream": false}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
}

#[test]
fn streamed_errors_after_progress_are_ndjson_lines() {
    let (_dir, _store, _server, client) = start();
    // An F16 GGUF passes the file-type check, then quantization fails (no quantizer wired): the
    // failure comes after "parsing GGUF" was streamed, so it is an {"error"} line in a 200 body.
    let dir = tempfile::tempdir().unwrap();
    let f16 = std::fs::read(tiny_model(dir.path(), "f16.gguf", None, 1)).unwrap();
    let digest = upload(&client, &f16);
    let reply = client.post_json(
        "/api/create",
        &json!({"model": "q", "files": {"f16.gguf": digest}, "quantize": "q8_0"}),
    );
    assert_eq!(reply.status, 200);
    let lines: Vec<Value> = reply
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0], json!({"status": "parsing GGUF"}));
    assert_eq!(lines[1], json!({"status": "quantizing F16 model to Q8_0"}));
    assert!(lines.last().unwrap()["error"]
        .as_str()
        .unwrap()
        .contains("not supported yet"));
}

#[test]
fn split_shards_uploaded_as_blobs_become_one_model_layer() {
    // As in Ollama's create: the files map names the shards; they are grouped by name and
    // split.count and stored as one model layer without split.* keys. This set (llama-gguf-split
    // of tiny-llama-spm.Q2_K.gguf) merges back to the unsplit file, byte for byte.
    let (_dir, store, _server, client) = start();
    let shards = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf/split");
    let mut files = serde_json::Map::new();
    for i in 1..=3 {
        let name = format!("tiny-llama-spm.Q2_K-split-0000{i}-of-00003.gguf");
        // One upload each (the repeated upload of `upload()` is not what this is about).
        let data = std::fs::read(shards.join(&name)).unwrap();
        let digest = format!("sha256:{}", sha256_hex(&data));
        assert_eq!(
            client
                .post(&format!("/api/blobs/{digest}"), data.as_slice())
                .status,
            201
        );
        files.insert(name, json!(digest));
    }
    let r = client.post_json(
        "/api/create",
        &json!({"model": "split", "files": files.clone(), "stream": false}),
    );
    assert_eq!(r.status, 200, "{:?}", r.json());
    let manifest = store
        .read_manifest(&ckpt_ollama::ModelName::parse("split").unwrap())
        .unwrap()
        .unwrap()
        .manifest;
    let models: Vec<_> = manifest
        .layers
        .iter()
        .filter(|l| l.media_type == "application/vnd.ollama.image.model")
        .collect();
    assert_eq!(models.len(), 1);
    assert_eq!(
        models[0].digest,
        "sha256:f13b5b249dac78dacbad1d54b7ca0a20b0ca3271c54c15a1a8b9bbf11d7d31bb"
    );
    // A shard whose name does not follow llama.cpp's pattern: Ollama's 400.
    let one = files.values().next().unwrap().clone();
    let r = client.post_json(
        "/api/create",
        &json!({"model": "bad", "files": {"shard.gguf": one}, "stream": false}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json(),
        json!({"error": "split GGUF \"shard.gguf\" must use llama.cpp split filename pattern"})
    );
}
