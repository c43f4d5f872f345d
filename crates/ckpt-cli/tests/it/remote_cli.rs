//! The Hub commands of the CLI against the fake Hub of ckpt-remote's tests, on 127.0.0.1:
//! remote `inspect`, `pull`, and `hf://` sources resolved through the cache by `convert`.

use ckpt_testhub::download as common;

use std::path::Path;
use std::process::Command;

fn ckpt(hub: &common::FakeHub, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ckpt"));
    c.env("HF_ENDPOINT", &hub.hub_url)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    c
}

fn torch_fixture(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/torch")
        .join(p)
}

#[test]
fn inspect_pull_and_convert_from_hf_uris() {
    let hub = common::FakeHub::start();
    hub.add_repo(
        "org/tiny",
        "c0ffee0000000000000000000000000000000001",
        common::files_from_dir(&torch_fixture("sharded.expected")),
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");

    // Header-only inspect: the same tensors as a local inspect, in a handful of requests.
    let out = ckpt(&hub, &cache)
        .args(["inspect", "--json", "hf://org/tiny"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let remote: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["inspect", "--json"])
        .arg(torch_fixture("sharded.expected"))
        .output()
        .unwrap();
    let local: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(remote["total_parameters"], local["total_parameters"]);
    assert_eq!(remote["parameters"], local["parameters"]);
    assert!(
        remote["requests"].as_u64().unwrap() <= 2 * 6 + 2,
        "{}",
        remote["requests"]
    );
    assert!(!cache.exists(), "inspect downloads nothing");

    // pull: the huggingface_hub layout.
    let out = ckpt(&hub, &cache)
        .args(["pull", "--json", "org/tiny"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["commit"], "c0ffee0000000000000000000000000000000001");
    let snap = cache.join("models--org--tiny/snapshots/c0ffee0000000000000000000000000000000001");
    assert!(
        std::fs::symlink_metadata(snap.join("model.safetensors.index.json"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(cache.join("models--org--tiny/refs/main"))
            .unwrap()
            .trim(),
        "c0ffee0000000000000000000000000000000001"
    );

    // convert from hf:// goes through the cache; offline works once it is there.
    let dst = work.path().join("out.bin");
    let out = ckpt(&hub, &cache)
        .env("HF_HUB_OFFLINE", "1")
        .args(["convert", "hf://org/tiny"])
        .arg(&dst)
        .args(["--to", "bin"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .arg("diff")
        .arg(&dst)
        .arg(torch_fixture("sharded.expected"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A repo that does not exist: a clear error, no traceback, nonzero exit.
    let out = ckpt(&hub, &cache)
        .args(["inspect", "hf://org/missing"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("org/missing"));
}

#[test]
fn pull_refuses_revisions_that_leave_the_cache() {
    let hub = common::FakeHub::start();
    hub.add_repo(
        "org/tiny",
        "c0ffee0000000000000000000000000000000001",
        common::files_from_dir(&torch_fixture("sharded.expected")),
    );
    // A server that resolves any revision.
    hub.add_ref(
        "org/tiny",
        "../../../../X",
        "c0ffee0000000000000000000000000000000001",
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("home/hub");
    let out = ckpt(&hub, &cache)
        .args(["pull", "org/tiny", "--revision", "../../../../X"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid revision"));
    let out = ckpt(&hub, &cache)
        .args(["inspect", "hf://org/tiny@..%2F..%2F..%2F..%2FX/config.json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(hub.requests().is_empty());
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 0);
}

#[test]
fn pull_token_flag_overrides_hf_token() {
    let hub = common::FakeHub::start();
    hub.add_repo(
        "org/private",
        "c0ffee0000000000000000000000000000000002",
        common::files_from_dir(&torch_fixture("sharded.expected")),
    );
    hub.with(|s| {
        s.repos.get_mut("org/private").unwrap().private = true;
        s.token = Some("hf_right".into());
    });
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hub");
    let out = ckpt(&hub, &cache)
        .env("HF_TOKEN", "hf_wrong")
        .args(["pull", "--json", "org/private"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let out = ckpt(&hub, &cache)
        .env("HF_TOKEN", "hf_wrong")
        .args(["pull", "--json", "org/private", "--token", "hf_right"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["commit"], "c0ffee0000000000000000000000000000000002");
    let hub_requests = hub.requests();
    let last = hub_requests
        .iter()
        .rfind(|r| r.host == common::Host::Hub)
        .unwrap();
    assert_eq!(last.header("authorization"), Some("Bearer hf_right"));
}

#[test]
fn pull_into_a_local_dir() {
    let hub = common::FakeHub::start();
    hub.add_repo(
        "org/tiny",
        "c0ffee0000000000000000000000000000000003",
        common::files_from_dir(&torch_fixture("sharded.expected")),
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let dir = work.path().join("model");
    let out = ckpt(&hub, &cache)
        .args(["pull", "--json", "org/tiny", "--local-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["snapshot"], dir.to_str().unwrap());
    for e in std::fs::read_dir(torch_fixture("sharded.expected")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap();
        assert_eq!(
            std::fs::read(dir.join(name)).unwrap(),
            std::fs::read(&p).unwrap()
        );
        let meta = std::fs::read_to_string(
            dir.join(".cache/huggingface/download")
                .join(format!("{}.metadata", name.to_string_lossy())),
        )
        .unwrap();
        assert!(meta.starts_with("c0ffee0000000000000000000000000000000003\n"));
    }
    assert!(!cache.exists());
    let help = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["pull", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(help.contains("hf download --local-dir") && help.contains("hf download --token"));
}

/// A one-tensor safetensors file whose tensor is named `tensor`.
fn one_tensor_safetensors(tensor: &str) -> Vec<u8> {
    let mut header =
        format!(r#"{{"{tensor}":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#);
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&1f32.to_le_bytes());
    out
}

fn index_json(map: &[(&str, &str)]) -> Vec<u8> {
    let m: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(t, f)| (t.to_string(), serde_json::json!(f)))
        .collect();
    serde_json::to_vec(
        &serde_json::json!({"metadata": {"total_size": 4 * map.len()}, "weight_map": m}),
    )
    .unwrap()
}

fn tensor_names(inspect_json: &serde_json::Value) -> Vec<String> {
    let mut v: Vec<String> = inspect_json["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// A folder's name, its files, and the tensors the chosen weights hold.
type Layout<'a> = (&'a str, Vec<(&'a str, Vec<u8>)>, &'a [&'a str]);

/// Local folders and Hub repositories pick their weights by the same rules (ckpt_core::hf), and
/// those are transformers': model.safetensors before its index, any safetensors before a `.bin`
/// index, another `*.safetensors.index.json` before loose safetensors files.
#[test]
fn local_and_remote_folders_choose_the_same_weights() {
    let hub = common::FakeHub::start();
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let layouts: Vec<Layout> = vec![
        (
            "single-beside-its-index",
            vec![
                ("model.safetensors", one_tensor_safetensors("single")),
                (
                    "model.safetensors.index.json",
                    index_json(&[("sharded", "model-00001-of-00001.safetensors")]),
                ),
                (
                    "model-00001-of-00001.safetensors",
                    one_tensor_safetensors("sharded"),
                ),
            ],
            &["single"],
        ),
        (
            "safetensors-beside-a-bin-index",
            vec![
                ("model.safetensors", one_tensor_safetensors("st")),
                (
                    "pytorch_model.bin.index.json",
                    index_json(&[("pt", "pytorch_model-00001-of-00001.bin")]),
                ),
            ],
            &["st"],
        ),
        (
            "other-index-before-loose-files",
            vec![
                (
                    "diffusion_pytorch_model.safetensors.index.json",
                    index_json(&[("a", "d-1.safetensors"), ("b", "d-2.safetensors")]),
                ),
                ("d-1.safetensors", one_tensor_safetensors("a")),
                ("d-2.safetensors", one_tensor_safetensors("b")),
                ("extra.safetensors", one_tensor_safetensors("extra")),
            ],
            &["a", "b"],
        ),
    ];
    for (i, (name, files, want)) in layouts.iter().enumerate() {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (f, bytes) in files {
            std::fs::write(dir.join(f), bytes).unwrap();
        }
        let repo = format!("org/{name}");
        hub.add_repo(
            &repo,
            &format!("c0ffee{i:034}"),
            common::files_from_dir(&dir),
        );
        let out = ckpt(&hub, &cache)
            .args(["inspect", "--json", &format!("hf://{repo}")])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} remote: {stderr}");
        let remote: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .args(["inspect", "--json"])
            .arg(&dir)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{name} local: {stderr}");
        let local: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(tensor_names(&local), *want, "{name}: local");
        assert_eq!(tensor_names(&remote), *want, "{name}: remote");
    }
}

/// `convert ADAPTER out.gguf --base-model-id ORG/NAME`, as convert_lora_to_gguf.py's flag: the
/// base's config.json alone comes from the Hub (not its weights), and the adapter GGUF is the
/// script's output byte for byte (the same reference as with a local --base).
#[test]
fn lora_adapter_base_from_the_hub_downloads_only_its_config() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let hub = common::FakeHub::start();
    hub.add_repo(
        "org/base-llama",
        "c0ffee0000000000000000000000000000000002",
        common::files_from_dir(&fx.join("lora/f32/base-llama")),
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let out = work.path().join("adapter.gguf");
    let o = ckpt(&hub, &cache)
        .args(["convert", "-q"])
        .arg(fx.join("lora/f32/a_lora/adapter"))
        .arg(&out)
        .args(["--base-model-id", "org/base-llama", "--outtype", "f32"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        std::fs::read(&out).unwrap()
            == std::fs::read(fx.join("lora-gguf/expected/llama-a-f32.gguf")).unwrap(),
        "differs from convert_lora_to_gguf.py's output"
    );
    let paths: Vec<String> = hub.requests().into_iter().map(|r| r.path).collect();
    assert!(
        paths.iter().any(|p| p.ends_with("/config.json")),
        "{paths:?}"
    );
    assert!(
        !paths.iter().any(|p| p.contains("model.safetensors")),
        "the base's weights were downloaded: {paths:?}"
    );

    // A base that is not on the Hub: a clear error, nothing written.
    let missing = work.path().join("missing.gguf");
    let o = ckpt(&hub, &cache)
        .args(["convert", "-q"])
        .arg(fx.join("lora/f32/a_lora/adapter"))
        .arg(&missing)
        .args(["--base-model-id", "org/nope"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("org/nope"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(!missing.exists());
}
