//! The cache is shared with huggingface_hub both ways. Runs only when CKPT_PYTHON names a Python
//! with huggingface_hub installed; Python talks to the fake Hub only (HF_ENDPOINT).

use ckpt_testhub::download as common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ckpt_remote::{Hub, HubConfig, PullOptions};
use common::{files_from_dir, FakeHub};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn python() -> Option<String> {
    let Ok(py) = std::env::var("CKPT_PYTHON") else {
        eprintln!("skipping: CKPT_PYTHON is not set");
        return None;
    };
    let ok = Command::new(&py)
        .args(["-c", "import huggingface_hub"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: {py} cannot import huggingface_hub");
        return None;
    }
    Some(py)
}

fn run_python(py: &str, fake: &FakeHub, cache: &Path, script: &str) -> String {
    let out = Command::new(py)
        .args(["-c", script])
        .env("HF_ENDPOINT", &fake.hub_url)
        .env("HF_HUB_CACHE", cache)
        .env("HF_HOME", cache.join("home"))
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/remote/sharded")
}

#[test]
fn huggingface_hub_reads_our_cache_and_we_read_its_cache() {
    let Some(py) = python() else { return };
    let fake = FakeHub::start();
    fake.add_repo("org/sharded", COMMIT, files_from_dir(&fixtures()));

    // ckpt pulls, huggingface_hub finds everything offline.
    let ours = tempfile::tempdir().unwrap();
    let mut config = HubConfig::new(&fake.hub_url, ours.path());
    config.retry_base_delay = Duration::from_millis(1);
    let hub = Hub::new(config);
    let report = hub.pull("org/sharded", &PullOptions::default()).unwrap();
    let script = format!(
        r#"
import os
from huggingface_hub import hf_hub_download, snapshot_download
cache = {cache:?}
p = hf_hub_download("org/sharded", "model-00002-of-00006.safetensors", local_files_only=True, cache_dir=cache)
print(os.path.realpath(p))
print(snapshot_download("org/sharded", local_files_only=True, cache_dir=cache))
"#,
        cache = ours.path().to_str().unwrap()
    );
    let out = run_python(&py, &fake, ours.path(), &script);
    let lines: Vec<&str> = out.lines().collect();
    let blob_sha = common::sha256_hex(
        &std::fs::read(fixtures().join("model-00002-of-00006.safetensors")).unwrap(),
    );
    assert!(lines[0].ends_with(&format!("blobs/{blob_sha}")), "{out}");
    assert_eq!(Path::new(lines[1]), report.snapshot);

    // huggingface_hub downloads from the fake Hub, ckpt resolves offline from its cache.
    let theirs = tempfile::tempdir().unwrap();
    let script = r#"
from huggingface_hub import snapshot_download
print(snapshot_download("org/sharded"))
"#;
    let out = run_python(&py, &fake, theirs.path(), script);
    let mut config = HubConfig::new(&fake.hub_url, theirs.path());
    config.offline = true;
    let offline = Hub::new(config);
    fake.clear_requests();
    let snapshot = offline.resolve_to_local("hf://org/sharded").unwrap();
    assert_eq!(snapshot, Path::new(out.trim()));
    let index = offline
        .resolve_to_local("hf://org/sharded/model.safetensors.index.json")
        .unwrap();
    assert_eq!(
        std::fs::read(index).unwrap(),
        std::fs::read(fixtures().join("model.safetensors.index.json")).unwrap()
    );
    assert!(fake.requests().is_empty());
    // The layouts agree: same blob names and link targets as ours.
    for f in &report.files {
        let theirs_link = std::fs::read_link(snapshot.join(&f.path)).unwrap();
        let ours_link = std::fs::read_link(&f.local_path).unwrap();
        assert_eq!(theirs_link, ours_link, "{}", f.path);
    }
    assert_eq!(
        std::fs::read_to_string(theirs.path().join("models--org--sharded/refs/main")).unwrap(),
        COMMIT
    );
}

#[test]
fn local_dir_layout_is_shared_with_huggingface_hub() {
    let Some(py) = python() else { return };
    let fake = FakeHub::start();
    fake.add_repo("org/sharded", COMMIT, files_from_dir(&fixtures()));
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let mut config = HubConfig::new(&fake.hub_url, &cache);
    config.retry_base_delay = Duration::from_millis(1);
    let hub = Hub::new(config);

    // ckpt downloads into a local dir; huggingface_hub then finds every file up to date and
    // downloads nothing.
    let ours = work.path().join("ours");
    let opts = PullOptions {
        local_dir: Some(ours.clone()),
        ..Default::default()
    };
    let report = hub.pull("org/sharded", &opts).unwrap();
    assert_eq!(report.snapshot, ours);
    assert!(!cache.exists(), "--local-dir leaves the cache alone");
    for f in &report.files {
        assert_eq!(
            std::fs::read(&f.local_path).unwrap(),
            std::fs::read(fixtures().join(&f.path)).unwrap()
        );
        assert!(!std::fs::symlink_metadata(&f.local_path)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    assert_eq!(
        std::fs::read_to_string(ours.join(".cache/huggingface/.gitignore")).unwrap(),
        "*"
    );
    fake.clear_requests();
    let script = format!(
        "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/sharded', local_dir={:?}))\n",
        ours.to_str().unwrap()
    );
    let out = run_python(&py, &fake, &cache, &script);
    assert_eq!(Path::new(out.trim()), ours);
    let file_requests: Vec<String> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("/resolve/") || r.host == common::Host::Cdn)
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(file_requests.is_empty(), "{file_requests:?}");

    // huggingface_hub downloads into a local dir; ckpt finds everything up to date.
    let theirs = work.path().join("theirs");
    let script = format!(
        "from huggingface_hub import snapshot_download\nprint(snapshot_download('org/sharded', local_dir={:?}))\n",
        theirs.to_str().unwrap()
    );
    run_python(&py, &fake, &cache, &script);
    fake.clear_requests();
    let opts = PullOptions {
        local_dir: Some(theirs.clone()),
        ..Default::default()
    };
    let again = hub.pull("org/sharded", &opts).unwrap();
    assert_eq!(again.files.len(), report.files.len());
    assert_eq!(again.downloaded_bytes, 0);
    assert!(again.files.iter().all(|f| f.cached));
    assert!(fake
        .requests()
        .iter()
        .all(|r| !r.path.contains("/resolve/") && r.host != common::Host::Cdn));
    // The metadata files agree line for line except the timestamp.
    for f in &report.files {
        let read = |root: &Path| {
            let t = std::fs::read_to_string(
                root.join(".cache/huggingface/download")
                    .join(format!("{}.metadata", f.path)),
            )
            .unwrap();
            t.lines().take(2).map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(read(&ours), read(&theirs), "{}", f.path);
    }

    // A file modified after the download is fetched again.
    let first = &report.files[0];
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(ours.join(&first.path), b"changed").unwrap();
    let opts = PullOptions {
        local_dir: Some(ours.clone()),
        ..Default::default()
    };
    let r = hub.pull("org/sharded", &opts).unwrap();
    assert_eq!(
        std::fs::read(ours.join(&first.path)).unwrap(),
        std::fs::read(fixtures().join(&first.path)).unwrap()
    );
    assert_eq!(r.files.iter().filter(|f| !f.cached).count(), 1);
}
