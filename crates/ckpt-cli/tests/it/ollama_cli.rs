//! `ckpt ollama …` and `ckpt serve` end to end: models converted and quantized by ckpt land in an
//! Ollama store; the seeds' workflow (upload blobs, /api/create with files + quantize + template +
//! parameters, /api/tags, /api/show) runs against `ckpt serve` through the official Python client.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn fx(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(p)
}

fn ckpt(store: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ckpt"));
    c.env("OLLAMA_MODELS", store).env_remove("OLLAMA_HOST");
    c
}

#[test]
fn create_show_list_rm_from_a_model_folder() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let out = ckpt(&store)
        .args(["ollama", "create", "smol:q4", "--from"])
        .arg(fx("tiny-smol-bpe"))
        .args([
            "--quantize",
            "q4_K_M",
            "--param",
            "temperature=0.7",
            "--param",
            "stop=<|im_end|>",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The model layer is exactly what `ckpt convert --outtype q4_k_m` writes.
    let gguf = work.path().join("same.gguf");
    let conv = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(fx("tiny-smol-bpe"))
        .arg(&gguf)
        .args(["--outtype", "q4_k_m"])
        .output()
        .unwrap();
    assert!(conv.status.success());
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(std::fs::read(&gguf).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(
        store
            .join("blobs")
            .join(format!("sha256-{digest}"))
            .exists(),
        "GGUF layer = ckpt convert's output"
    );

    let show = ckpt(&store)
        .args(["ollama", "show", "smol:q4", "--modelfile"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&show.stdout);
    assert!(
        text.contains("PARAMETER temperature 0.7") && text.contains("<|im_end|>"),
        "{text}"
    );
    // The folder's ChatML template is in chat_template.jinja, which Ollama's converter does not
    // read (only tokenizer_config.json's chat_template): no template is detected.
    assert!(
        !text.contains("<|im_start|>") && !text.contains("autodetected"),
        "no template layer for a folder without tokenizer_config.json's chat_template: {text}"
    );
    let list = ckpt(&store).args(["ollama", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains("smol:q4"));
    let rm = ckpt(&store)
        .args(["ollama", "rm", "smol:q4"])
        .output()
        .unwrap();
    assert!(rm.status.success());
    let left: Vec<_> = std::fs::read_dir(store.join("blobs")).unwrap().collect();
    assert!(left.is_empty(), "blobs no other model uses are removed");
}

#[test]
fn seeds_workflow_against_ckpt_serve_with_the_ollama_client() {
    let Some(py) = std::env::var_os("CKPT_PYTHON") else {
        eprintln!(
            "skipped: set CKPT_PYTHON to a python with the `ollama` client (scripts/test.sh does)"
        );
        return;
    };
    let ok = Command::new(&py)
        .args(["-c", "import ollama"])
        .status()
        .unwrap()
        .success();
    if !ok {
        eprintln!("skipped: the `ollama` Python client is not installed");
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let host = format!("127.0.0.1:{port}");
    let mut server = ckpt(&store)
        .args(["serve", "--host", &host])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(&host).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let script = r#"
import sys, os, ollama
host, model_dir = sys.argv[1], sys.argv[2]
c = ollama.Client(host="http://" + host)
files = {}
for name in sorted(os.listdir(model_dir)):
    files[name] = c.create_blob(os.path.join(model_dir, name))
template = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n<|im_start|>assistant\n"
statuses = [r.status for r in c.create(model="smol-seed", files=files, quantize="q4_K_M", template=template,
                                       parameters={"stop": ["<|im_end|>", "<|im_start|>"], "temperature": 0.2}, stream=True)]
assert statuses[-1] == "success", statuses
names = [m.model for m in c.list().models]
assert "smol-seed:latest" in names, names
show = c.show("smol-seed")
assert 'PARAMETER stop <|im_end|>' in show.modelfile and "PARAMETER temperature 0.2" in show.modelfile, show.modelfile
assert show.template == template, show.template
assert show.details.quantization_level == "Q4_K_M", show.details
c.copy("smol-seed", "smol-copy")
c.delete("smol-seed")
assert [m.model for m in c.list().models] == ["smol-copy:latest"]
try:
    c.generate(model="smol-copy", prompt="hi")
    raise SystemExit("generate should be refused")
except ollama.ResponseError as e:
    assert e.status_code == 501, e
print("ok", statuses)
"#;
    let r = Command::new(&py)
        .args(["-c", script, &host])
        .arg(fx("tiny-smol-bpe"))
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        r.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    );
    // The safetensors upload was converted under the model's name: general.name is not "Model".
    let st = ckpt_ollama::Store::new(&store);
    let copy = st
        .read_manifest(&ckpt_ollama::ModelName::parse("smol-copy").unwrap())
        .unwrap()
        .unwrap();
    let layer = copy
        .manifest
        .layers
        .iter()
        .find(|l| l.media_type == "application/vnd.ollama.image.model")
        .unwrap();
    let blob = st.blob_path(&ckpt_ollama::Digest::parse(&layer.digest).unwrap());
    let header = ckpt_ollama::GgufHeader::open(&blob).unwrap();
    let name = header
        .get_str("general.name")
        .unwrap_or_default()
        .to_string();
    assert_ne!(name, "Model");
    assert!(
        name.to_lowercase().contains("smol"),
        "general.name = {name:?}"
    );
}

#[test]
fn create_takes_ollamas_short_flags_and_reports_what_happened() {
    // `-q` is `--quantize` as in `ollama create` (it was ckpt's global --quiet).
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let out = ckpt(&store)
        .args(["ollama", "create", "smol:q8", "-q", "q8_0", "--from"])
        .arg(fx("tiny-smol-bpe"))
        .args(["--param", "mirostat=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // A fresh store: the folder is converted and every layer is new; nothing was "parsed" from
    // a GGUF the user gave, and nothing already existed.
    assert!(stderr.contains("converting model"), "{stderr}");
    assert!(!stderr.contains("parsing GGUF"), "{stderr}");
    assert!(!stderr.contains("using existing layer"), "{stderr}");
    assert!(stderr.contains("creating new layer sha256:"), "{stderr}");
    // Deprecated parameters warn once, with one prefix.
    assert!(
        stderr.contains("warning: parameter mirostat is deprecated"),
        "{stderr}"
    );
    assert!(!stderr.contains("warning: warning:"), "{stderr}");
    let show = ckpt(&store)
        .args(["--json", "ollama", "show", "smol:q8"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(v["details"]["quantization_level"], "Q8_0", "{v}");
    // The model layer imported by the CLI carries no `from`.
    let manifest =
        std::fs::read_to_string(store.join("manifests/registry.ollama.ai/library/smol/q8"))
            .unwrap();
    assert!(!manifest.contains("\"from\""), "{manifest}");
    // --quiet still exists, spelled out.
    let out = ckpt(&store)
        .args(["ollama", "create", "smol:again", "--quiet", "--from"])
        .arg(fx("tiny-smol-bpe"))
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stderr.is_empty() && out.stdout.is_empty());
}

#[test]
fn serve_prints_the_port_it_bound() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let mut server = ckpt(&store)
        .args(["serve", "--host", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    use std::io::BufRead;
    std::io::BufReader::new(server.stderr.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line.trim().rsplit("http://").next().unwrap().to_string();
    let ok = addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .filter(|a| a.port() != 0)
        .map(|a| std::net::TcpStream::connect(a).is_ok());
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(ok, Some(true), "no usable bound address in {line:?}");
}

#[test]
fn templates_ollama_would_refuse_are_refused_at_create() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    // --template FILE: exit 3 (invalid input), naming the file and Go's parser message.
    let tpl = work.path().join("bad.tmpl");
    std::fs::write(&tpl, "{{ .System }}\n{{ undefinedFunc .Prompt }}").unwrap();
    let out = ckpt(&store)
        .args(["ollama", "create", "bad", "--from"])
        .arg(fx("tiny-smol-bpe.f16.gguf"))
        .arg("--template")
        .arg(&tpl)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&tpl.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("template error: template: :2: function \"undefinedFunc\" not defined"),
        "{stderr}"
    );
    // A Modelfile TEMPLATE: the same refusal, naming the Modelfile.
    let mf = work.path().join("Modelfile");
    std::fs::write(
        &mf,
        format!(
            "FROM {}\nTEMPLATE \"\"\"{{{{ $x }}}}\"\"\"\n",
            fx("tiny-smol-bpe.f16.gguf").display()
        ),
    )
    .unwrap();
    let out = ckpt(&store)
        .args(["ollama", "create", "bad", "-f"])
        .arg(&mf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&mf.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("template error: template: :1: undefined variable \"$x\""),
        "{stderr}"
    );
    // Nothing was stored.
    assert!(
        !store.join("manifests").exists()
            || std::fs::read_dir(store.join("manifests"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn flags_a_modelfile_overrides_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let mf = work.path().join("Modelfile");
    std::fs::write(
        &mf,
        format!("FROM {}\n", fx("tiny-smol-bpe.f16.gguf").display()),
    )
    .unwrap();
    let out = ckpt(&store)
        .args(["ollama", "create", "m", "-f"])
        .arg(&mf)
        .args(["--system", "hi", "--param", "temperature=1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--system, --param cannot be combined with -f/--file"),
        "{stderr}"
    );
}

#[test]
fn show_prints_ollamas_summary() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let out = ckpt(&store)
        .args(["ollama", "create", "smol", "--quiet", "--from"])
        .arg(fx("tiny-smol-bpe.f16.gguf"))
        .args([
            "--param",
            "temperature=0.7",
            "--system",
            "Be brief.\nVery.\nReally.",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = ckpt(&store)
        .args(["ollama", "show", "smol"])
        .output()
        .unwrap();
    assert!(show.status.success());
    let text = String::from_utf8(show.stdout).unwrap();
    // Field order, indentation and the four-space cell padding of `ollama show`; the stop
    // words come with the ChatML template auto-detected from the GGUF.
    assert_eq!(
        text,
        "  Model\n    architecture        llama    \n    parameters          394K     \n    context length      2048     \n    embedding length    8        \n    quantization        F16      \n\n  Capabilities\n    completion    \n\n  Parameters\n    stop           \"<|im_start|>\"    \n    stop           \"<|im_end|>\"      \n    temperature    0.7               \n\n  System\n    Be brief.    \n    Very.        \n    ...          \n\n"
    );
    // -v adds the metadata and tensor tables; --modelfile still prints the Modelfile.
    let v = ckpt(&store)
        .args(["ollama", "show", "smol", "-v"])
        .output()
        .unwrap();
    let vt = String::from_utf8(v.stdout).unwrap();
    assert!(vt.contains("  Metadata\n    general.architecture "), "{vt}");
    assert!(vt.contains("  Tensors\n    "), "{vt}");
    let mf = ckpt(&store)
        .args(["ollama", "show", "smol", "--modelfile"])
        .output()
        .unwrap();
    assert!(String::from_utf8(mf.stdout)
        .unwrap()
        .starts_with("# Modelfile generated by \"ollama show\""));
}

#[test]
fn a_split_gguf_becomes_one_model_layer() {
    // Ollama imports the shards of a split GGUF as one model layer. ckpt finds the siblings of
    // any shard and stores the set as one GGUF without split.* keys: for this set (made by
    // llama-gguf-split from tiny-llama-spm.Q2_K.gguf) that is the unsplit file, byte for byte
    // (sha256 from tests/fixtures/gguf/manifest.json).
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let out = ckpt(&store)
        .args(["ollama", "create", "split", "--from"])
        .arg(fx("split/tiny-llama-spm.Q2_K-split-00002-of-00003.gguf"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let unsplit = "f13b5b249dac78dacbad1d54b7ca0a20b0ca3271c54c15a1a8b9bbf11d7d31bb";
    assert!(
        store
            .join("blobs")
            .join(format!("sha256-{unsplit}"))
            .exists(),
        "{stderr}"
    );
    let manifest =
        std::fs::read_to_string(store.join("manifests/registry.ollama.ai/library/split/latest"))
            .unwrap();
    assert_eq!(
        manifest
            .matches("application/vnd.ollama.image.model")
            .count(),
        1
    );
    // Nothing is left in the store's scratch space.
    let leftovers: Vec<_> = std::fs::read_dir(&store)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with('.') && n != ".ckpt-ollama.lock"
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// A tiny Qwen3-MoE Hugging Face folder (tests/fixtures/arch-moe/qwen3moe: the config and
/// tensor list transformers wrote, values rebuilt as the generator assigns them) with the tiny
/// BPE tokenizer and its ChatML template.
fn tiny_moe_folder(dir: &Path) {
    arch_moe_folder(dir, "qwen3moe");
}

/// The Hugging Face folder of an arch-moe fixture case with the tokenizer its expected.json
/// names (the tiny BPE one, its GLM variant, or the SentencePiece one): F32 values, and MXFP4
/// `_blocks`/`_scales` as U8, as scripts/gen-arch-moe-fixtures.py assigns them.
pub(crate) fn arch_moe_folder(dir: &Path, case: &str) {
    let moe = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/arch-moe")
        .join(case);
    std::fs::create_dir_all(dir).unwrap();
    std::fs::copy(moe.join("config.json"), dir.join("config.json")).unwrap();
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(moe.join("expected.json")).unwrap()).unwrap();
    let tokenizer = expected["tokenizer"].as_str().unwrap_or("bpe");
    let (tok_dir, files): (_, &[&str]) = if tokenizer == "spm" {
        (
            fx("tiny-llama-spm"),
            &["tokenizer.model", "tokenizer_config.json"],
        )
    } else {
        (
            fx("tiny-smol-bpe"),
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
            ],
        )
    };
    for f in files {
        if tok_dir.join(f).is_file() {
            std::fs::copy(tok_dir.join(f), dir.join(f)).unwrap();
        }
    }
    if tokenizer == "glm" {
        // GLM's special tokens, renamed in the BPE vocabulary as the generator does.
        let path = dir.join("tokenizer.json");
        let mut tok: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for (old, new) in [
            ("<repo_name>", "<|user|>"),
            ("<file_sep>", "[gMASK]"),
            ("<filename>", "<|observation|>"),
        ] {
            for t in tok["added_tokens"].as_array_mut().unwrap() {
                if t["content"] == old {
                    t["content"] = new.into();
                }
            }
            let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
            let id = vocab.remove(old).unwrap();
            vocab.insert(new.to_string(), id);
        }
        std::fs::write(&path, serde_json::to_string(&tok).unwrap()).unwrap();
    }
    let list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(moe.join("hf_tensors.json")).unwrap())
            .unwrap();
    // safetensors by hand: header length, JSON header, F32 data in order.
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (k, (name, shape)) in list.iter().enumerate() {
        let n: u64 = shape.iter().product();
        let k = k as u64;
        let start = data.len();
        let dtype = if name.ends_with("_blocks") {
            data.extend((0..n).map(|i| ((7 * i + 3 * k) % 256) as u8));
            "U8"
        } else if name.ends_with("_scales") {
            data.extend((0..n).map(|i| (118 + (i + k) % 8) as u8));
            "U8"
        } else {
            for i in 0..n {
                data.extend_from_slice(&((((i + 5 * k) % 13) as f32) * 0.125).to_le_bytes());
            }
            "F32"
        };
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::to_vec(&header).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(&h);
    file.extend_from_slice(&data);
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
}

#[test]
fn a_mixture_of_experts_folder_and_its_gguf_become_ollama_models() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let folder = work.path().join("tiny-qwen3moe");
    tiny_moe_folder(&folder);
    // From the Hugging Face folder: converted (experts stacked), template matched.
    let out = ckpt(&store)
        .args(["ollama", "create", "moe:f16", "--from"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // From the GGUF `ckpt convert` writes: the same model layer.
    let gguf = work.path().join("moe.gguf");
    let conv = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("convert")
        .arg(&folder)
        .arg(&gguf)
        .args(["--outtype", "f16"])
        .output()
        .unwrap();
    assert!(
        conv.status.success(),
        "{}",
        String::from_utf8_lossy(&conv.stderr)
    );
    let out = ckpt(&store)
        .args(["ollama", "create", "moe:gguf", "--from"])
        .arg(&gguf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("using existing layer"), "{stderr}");
    // The GGUF's ChatML chat template (from chat_template.jinja, as llama.cpp's converter reads
    // it) is matched when the GGUF is given; from the folder Ollama's converter would read
    // tokenizer_config.json's chat_template only, which it has not: no template layer.
    for (tag, chatml) in [("moe:f16", false), ("moe:gguf", true)] {
        let show = ckpt(&store)
            .args(["ollama", "show", tag, "--modelfile"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&show.stdout);
        assert_eq!(
            text.contains("<|im_start|>"),
            chatml,
            "{tag}: ChatML template matched only from the GGUF: {text}"
        );
        let show = ckpt(&store)
            .args(["--json", "ollama", "show", tag])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(v["details"]["family"], "qwen3moe", "{tag}: {v}");
        assert_eq!(v["details"]["quantization_level"], "F16", "{tag}: {v}");
    }
}

/// Every mixture-of-experts family through `ollama create --from FOLDER`: converted (experts
/// stacked), the family Ollama reports is the GGUF architecture the converter writes, and the
/// template is the one Ollama picks for the family's real chat template (tests/fixtures/ollama/
/// moe-templates, written into the folder's tokenizer_config.json, where Ollama's converter
/// reads it): `expected.json` there has Ollama's choice, computed under its rule by
/// scripts/gen-ollama-template-fixtures.py (Mixtral's is `mistral-instruct`, DeepSeek-V2's
/// `chatqa`, the others' nothing). Families without a real template keep the tiny tokenizers'
/// (ChatML in chat_template.jinja, which Ollama's converter does not read; `[INST]` 111 edits
/// from zephyr): no template layer, Ollama's default `{{ .Prompt }}`.
#[test]
fn every_moe_family_folder_becomes_an_ollama_model_with_its_template() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let templates_dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/ollama/moe-templates");
    let chosen: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(templates_dir.join("expected.json")).unwrap(),
    )
    .unwrap();
    let cases = [
        (
            "mixtral",
            Some("mistralai-Mixtral-8x7B-Instruct-v0.1.jinja"),
        ),
        ("qwen2moe", None),
        ("qwen3moe", Some("Qwen-Qwen3-0.6B.jinja")),
        ("deepseek_v2", Some("DeepSeek-V2.jinja")),
        ("deepseek_v3", Some("deepseek-ai-DeepSeek-V3.1.jinja")),
        ("gpt_oss", Some("openai-gpt-oss-120b.jinja")),
        ("gpt_oss_mxfp4", Some("openai-gpt-oss-120b.jinja")),
        ("olmoe", None),
        (
            "granitemoe",
            Some("ibm-granite-granite-3.0-8b-instruct.jinja"),
        ),
        (
            "granitemoe_shared",
            Some("ibm-granite-granite-3.0-8b-instruct.jinja"),
        ),
        ("glm4moe", Some("GLM-4.6.jinja")),
        ("ernie4_5_moe", None),
    ];
    let mut named = 0;
    for (case, real) in cases {
        let folder = work.path().join(format!("tiny-{case}"));
        arch_moe_folder(&folder, case);
        let template = real.and_then(|file| {
            let path = folder.join("tokenizer_config.json");
            let mut config: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            config["chat_template"] =
                serde_json::json!(std::fs::read_to_string(templates_dir.join(file)).unwrap());
            std::fs::write(&path, serde_json::to_string(&config).unwrap()).unwrap();
            let entry = chosen["templates"]
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["file"] == file)
                .unwrap();
            entry["ollama"].as_str()
        });
        named += usize::from(template.is_some());
        let tag = format!("moe-{}:latest", case.replace('_', "-"));
        let out = ckpt(&store)
            .args(["ollama", "create", &tag, "--from"])
            .arg(&folder)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{case}: {stderr}");
        match template {
            Some(t) => assert!(
                stderr.contains(&format!("using autodetected template {t}")),
                "{case}: expected template {t}: {stderr}"
            ),
            None => assert!(
                !stderr.contains("using autodetected template"),
                "{case}: no template expected: {stderr}"
            ),
        }
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../../tests/fixtures/arch-moe")
                    .join(case)
                    .join("expected.json"),
            )
            .unwrap(),
        )
        .unwrap();
        let arch = expected["kvs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|kv| kv[0] == "general.architecture")
            .map(|kv| kv[1]["value"].clone())
            .unwrap();
        let show = ckpt(&store)
            .args(["--json", "ollama", "show", &tag])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(v["details"]["family"], arch, "{case}: {v}");
        assert_eq!(v["model_info"]["general.architecture"], arch, "{case}: {v}");
        let named = ckpt(&store)
            .args(["ollama", "show", &tag, "--template"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&named.stdout);
        let want = match template {
            Some(t) => std::fs::read_to_string(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../ckpt-ollama/templates")
                    .join(format!("{t}.gotmpl")),
            )
            .unwrap()
            .replace("\r\n", "\n"),
            None => "{{ .Prompt }}".to_string(),
        };
        assert_eq!(text.trim_end(), want.trim_end(), "{case}: template layer");
    }
    assert_eq!(
        named, 2,
        "Mixtral's and DeepSeek-V2's templates are ones Ollama knows"
    );
}

/// New families through `ollama create --from FOLDER`: GPT-OSS as released (MXFP4 experts
/// kept MXFP4, file type MXFP4_MOE, Ollama's "thinking" capability) and Apertus.
#[test]
fn gpt_oss_mxfp4_and_apertus_folders_become_ollama_models() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    for (case, tag, family, level) in [
        ("gpt_oss_mxfp4", "gptoss:mxfp4", "gpt-oss", "MXFP4_MOE"),
        ("apertus", "apertus:f16", "apertus", "F16"),
    ] {
        let folder = work.path().join(format!("tiny-{case}"));
        arch_moe_folder(&folder, case);
        let out = ckpt(&store)
            .args(["ollama", "create", tag, "--from"])
            .arg(&folder)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{case}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let show = ckpt(&store)
            .args(["--json", "ollama", "show", tag])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(v["details"]["family"], family, "{tag}: {v}");
        assert_eq!(v["details"]["quantization_level"], level, "{tag}: {v}");
        if case == "gpt_oss_mxfp4" {
            let caps = v["capabilities"].to_string();
            assert!(caps.contains("thinking"), "{tag}: {v}");
            if let Some(ts) = v["tensors"].as_array() {
                let gate = ts
                    .iter()
                    .find(|t| t["name"] == "blk.0.ffn_gate_exps.weight")
                    .unwrap();
                assert_eq!(gate["type"], "MXFP4", "{tag}: the experts stay MXFP4");
            }
        }
    }
}

#[test]
fn a_modelfile_from_a_split_shard_and_a_merged_file_give_the_same_model_layer() {
    // Modelfile `FROM <shard>` imports the whole set as one layer, as `--from` does; the file
    // llama-gguf-split --merge writes (split.count = 0) is imported as one file.
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let modelfile = work.path().join("Modelfile");
    std::fs::write(
        &modelfile,
        format!(
            "FROM {}\n",
            fx("split/tiny-llama-spm.Q2_K-split-00003-of-00003.gguf").display()
        ),
    )
    .unwrap();
    let out = ckpt(&store)
        .args(["ollama", "create", "split-mf", "-f"])
        .arg(&modelfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let unsplit = "f13b5b249dac78dacbad1d54b7ca0a20b0ca3271c54c15a1a8b9bbf11d7d31bb";
    assert!(store.join(format!("blobs/sha256-{unsplit}")).exists());
    let merged = work.path().join("merged.gguf");
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["gguf-split", "--merge"])
        .arg(fx("split/tiny-llama-spm.Q2_K-split-00001-of-00003.gguf"))
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ckpt(&store)
        .args(["ollama", "create", "merged", "--from"])
        .arg(&merged)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest =
        std::fs::read_to_string(store.join("manifests/registry.ollama.ai/library/merged/latest"))
            .unwrap();
    assert_eq!(
        manifest
            .matches("application/vnd.ollama.image.model")
            .count(),
        1
    );
}

/// A tiny XLM-RoBERTa embedding folder (bge-m3 layout) from the arch-table fixture: its
/// config.json, the Unigram tokenizer, sentence-transformers CLS pooling and F32 weights.
fn xlmr_embedding_folder(dir: &Path) {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let case = fixtures.join("arch-tables/xlm_roberta");
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    std::fs::copy(case.join("config.json"), dir.join("config.json")).unwrap();
    for f in [
        "sentencepiece.bpe.model",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        std::fs::copy(fixtures.join("gguf/tiny-xlmr-unigram").join(f), dir.join(f)).unwrap();
    }
    std::fs::write(
        dir.join("modules.json"),
        r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
            {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 8, "pooling_mode_cls_token": true}"#,
    )
    .unwrap();
    let list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(case.join("hf_tensors.json")).unwrap())
            .unwrap();
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, shape) in list {
        let n: u64 = shape.iter().product();
        let start = data.len();
        data.extend((0..n).flat_map(|i| ((i % 13) as f32 * 0.125).to_le_bytes()));
        header.insert(
            name,
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let mut h = serde_json::Value::Object(header).to_string().into_bytes();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut file = (h.len() as u64).to_le_bytes().to_vec();
    file.extend(h);
    file.extend(data);
    std::fs::write(dir.join("model.safetensors"), file).unwrap();
}

/// An embedding model (sentence-transformers pooling -> `bert.pooling_type`) gets Ollama's
/// "embedding" capability instead of "completion".
#[test]
fn an_embedding_model_is_created_with_the_embedding_capability() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("models");
    let folder = work.path().join("tiny-xlmr");
    xlmr_embedding_folder(&folder);
    let out = ckpt(&store)
        .args(["ollama", "create", "tiny-embed", "--quiet", "--from"])
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let show = ckpt(&store)
        .args(["ollama", "show", "tiny-embed"])
        .output()
        .unwrap();
    assert!(show.status.success());
    let text = String::from_utf8(show.stdout).unwrap();
    assert!(
        text.contains("architecture        bert"),
        "the converted GGUF: {text}"
    );
    assert!(
        text.contains("  Capabilities\n    embedding    \n"),
        "embedding, not completion: {text}"
    );
    assert!(!text.contains("completion"), "{text}");
}
