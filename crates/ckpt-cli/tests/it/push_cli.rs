//! `ckpt push` and `ckpt convert hf://… --push-pr` (the convert.py job in one command) against
//! the fake Hub of ckpt-remote's push tests, on 127.0.0.1.

use ckpt_testhub::upload as push_hub;

use std::path::Path;
use std::process::Command;

fn ckpt(hub: &push_hub::FakeHub, cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ckpt"));
    c.env("HF_ENDPOINT", &hub.url)
        .env("HF_TOKEN", push_hub::TOKEN)
        .env("HF_HUB_CACHE", cache)
        .env_remove("HF_HUB_OFFLINE");
    c
}

#[test]
fn convert_bin_repo_and_open_a_pull_request() {
    let hub = push_hub::FakeHub::start();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/torch/sharded");
    let files: Vec<(String, Vec<u8>, bool)> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let lfs = name.ends_with(".bin");
            (name, std::fs::read(&p).unwrap(), lfs)
        })
        .collect();
    let refs: Vec<(&str, &[u8], bool)> = files
        .iter()
        .map(|(n, b, l)| (n.as_str(), b.as_slice(), *l))
        .collect();
    hub.add_repo("org/old", &refs);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let out = work.path().join("converted");

    let r = ckpt(&hub, &cache)
        .args(["convert", "hf://org/old"])
        .arg(&out)
        .args(["--to", "safetensors", "--push-pr", "--json"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["push"]["pull_request"]["revision"], "refs/pr/1");
    let pr = hub
        .files_at("org/old", "refs/pr/1")
        .expect("PR revision exists");
    assert!(
        pr.contains_key("model.safetensors"),
        "{:?}",
        pr.keys().collect::<Vec<_>>()
    );
    assert!(
        !hub.files_at("org/old", "main")
            .unwrap()
            .contains_key("model.safetensors"),
        "main untouched"
    );
    assert_eq!(
        &pr["model.safetensors"].bytes[..],
        &std::fs::read(out.join("model.safetensors")).unwrap()[..]
    );
    let commit = hub.with(|s| s.commits.last().cloned()).unwrap();
    assert!(format!("{commit:?}").contains("Adding `safetensors` variant of this model"));

    // Plain push of a folder, then pull the PR back byte for byte.
    let r = ckpt(&hub, &cache)
        .arg("push")
        .arg(&out)
        .args([
            "org/old",
            "--create-pr",
            "-m",
            "again",
            "--path-in-repo",
            "v2",
        ])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("refs/pr/2"));
    let r = ckpt(&hub, &work.path().join("cache2"))
        .args(["pull", "--json", "org/old", "--revision", "refs/pr/1"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    let snap = Path::new(v["snapshot"].as_str().unwrap());
    assert_eq!(
        std::fs::read(snap.join("model.safetensors")).unwrap(),
        std::fs::read(out.join("model.safetensors")).unwrap()
    );

    // A bad token is refused before anything is uploaded.
    let before = hub.requests().len();
    let r = ckpt(&hub, &cache)
        .env("HF_TOKEN", "hf_wrong")
        .arg("push")
        .arg(&out)
        .arg("org/old")
        .output()
        .unwrap();
    assert!(!r.status.success());
    assert!(hub.requests()[before..]
        .iter()
        .all(|q| q.kind() != "upload" && q.kind() != "commit"));
}

#[cfg(unix)]
#[test]
fn push_skips_symlinks_leading_outside_the_folder_with_a_warning() {
    let hub = push_hub::FakeHub::start();
    hub.add_repo("org/model", &[]);
    let work = tempfile::tempdir().unwrap();
    let folder = work.path().join("model");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), b"{}").unwrap();
    let secret = work.path().join("passwd");
    std::fs::write(&secret, b"root:x:0:0\n").unwrap();
    std::os::unix::fs::symlink(&secret, folder.join("tokenizer.json")).unwrap();
    let cache = work.path().join("cache");

    let r = ckpt(&hub, &cache)
        .arg("push")
        .arg(&folder)
        .args(["org/model", "--json"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert!(
        stderr.contains("warning: skipped") && stderr.contains("tokenizer.json"),
        "{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(v["skipped"][0]["path"], "tokenizer.json");
    let stored = hub.files_at("org/model", "main").unwrap();
    assert!(!stored.contains_key("tokenizer.json"));

    let r = ckpt(&hub, &cache)
        .arg("push")
        .arg(&folder)
        .args(["org/model", "--follow-symlinks"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let stored = hub.files_at("org/model", "main").unwrap();
    assert!(stored.contains_key("tokenizer.json"));
}

/// Uploads use the same HTTP agent policy as downloads (issue #15: one HTTP client stack): a Hub
/// on 127.0.0.1 is reached directly even when the environment names a proxy (here one that does
/// not exist), as pull and inspect already did.
#[test]
fn push_to_a_local_hub_ignores_proxy_settings_like_pull() {
    let hub = push_hub::FakeHub::start();
    hub.add_repo(
        "org/proxied",
        &[("README.md", b"hello\n".as_slice(), false)],
    );
    let work = tempfile::tempdir().unwrap();
    let local = work.path().join("model");
    std::fs::create_dir_all(&local).unwrap();
    std::fs::write(local.join("config.json"), b"{\"a\": 1}\n").unwrap();
    std::fs::write(local.join("weights.bin"), vec![7u8; 4096]).unwrap();
    let dead_proxy = "http://127.0.0.1:9";
    let r = ckpt(&hub, &work.path().join("cache"))
        .args(["push"])
        .arg(&local)
        .arg("org/proxied")
        .env("HTTP_PROXY", dead_proxy)
        .env("http_proxy", dead_proxy)
        .env("HTTPS_PROXY", dead_proxy)
        .env("ALL_PROXY", dead_proxy)
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let main = hub.files_at("org/proxied", "main").unwrap();
    assert!(main.contains_key("weights.bin"), "{:?}", main.keys());
}
