//! Remote inspect and pull against a fake Hub served by the test itself (no internet).

use ckpt_testhub::download as common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ckpt_remote::{Hub, HubConfig, PullOptions, RemoteError};
use common::{fake_file, files_from_dir, FakeHub, Host};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/remote")
}

fn hub_for(fake: &FakeHub, cache: &Path) -> Hub {
    let mut c = HubConfig::new(&fake.hub_url, cache);
    c.retry_base_delay = Duration::from_millis(1);
    c.read_timeout = Duration::from_secs(10);
    c.token = Some("hf_secret".into());
    Hub::new(c)
}

fn offline_hub(fake: &FakeHub, cache: &Path) -> Hub {
    let mut c = HubConfig::new(&fake.hub_url, cache);
    c.offline = true;
    Hub::new(c)
}

/// (name, dtype, shape) of a local safetensors file, in file order, as `ckpt inspect` reads it.
fn local_tensors(path: &Path) -> Vec<(String, String, Vec<u64>)> {
    let ckpt = ckpt_safetensors::read(path).unwrap();
    ckpt.tensors
        .iter()
        .map(|t| (t.name.clone(), t.dtype.to_string(), t.shape.clone()))
        .collect()
}

fn remote_tensors(i: &ckpt_remote::RemoteInspection) -> Vec<(String, String, Vec<u64>)> {
    i.tensors()
        .map(|t| (t.name.clone(), t.dtype.clone(), t.shape.clone()))
        .collect()
}

fn single_repo(fake: &FakeHub, repo: &str) {
    let bytes = std::fs::read(fixtures().join("all_dtypes.expected.safetensors")).unwrap();
    let mut files = BTreeMap::new();
    files.insert("model.safetensors".to_string(), fake_file(bytes, true));
    files.insert(
        "config.json".to_string(),
        fake_file(b"{\"model_type\": \"llama\"}\n".to_vec(), false),
    );
    fake.add_repo(repo, COMMIT, files);
}

fn sharded_repo(fake: &FakeHub, repo: &str) {
    let mut files = files_from_dir(&fixtures().join("sharded"));
    files.insert(
        "sub/dir/notes.txt".to_string(),
        fake_file(b"nested file\n".to_vec(), false),
    );
    fake.add_repo(repo, COMMIT, files);
}

/// A safetensors file whose JSON header is longer than the 100 000-byte speculative read.
fn big_header_file(data_bytes_per_tensor: usize) -> Vec<u8> {
    let n = 2500;
    let mut header = serde_json::Map::new();
    for i in 0..n {
        let begin = i * data_bytes_per_tensor;
        header.insert(
            format!("model.layers.{i}.some_rather_long_projection_name.weight"),
            serde_json::json!({ "dtype": "U8", "shape": [data_bytes_per_tensor], "data_offsets": [begin, begin + data_bytes_per_tensor] }),
        );
    }
    let json = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    assert!(json.len() > 100_000);
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend((0..n * data_bytes_per_tensor).map(|i| (i % 251) as u8));
    out
}

#[test]
fn single_file_inspect_matches_local() {
    let fake = FakeHub::start();
    single_repo(&fake, "org/single");
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());
    let local = local_tensors(&fixtures().join("all_dtypes.expected.safetensors"));

    let explicit = hub.inspect("hf://org/single/model.safetensors").unwrap();
    assert_eq!(remote_tensors(&explicit), local);
    assert_eq!(explicit.format, "safetensors");
    // 302 from the hub + 206 from the CDN.
    assert_eq!(explicit.requests, 2);

    let whole = hub.inspect("hf://org/single").unwrap();
    assert_eq!(remote_tensors(&whole), local);
    assert_eq!(whole.commit.as_deref(), Some(COMMIT));
    assert_eq!(whole.requests, 3, "model info + 302 + 206");

    let ckpt = ckpt_safetensors::read(&fixtures().join("all_dtypes.expected.safetensors")).unwrap();
    let (per_dtype, total) = ckpt.parameter_counts();
    let json = whole.to_json();
    assert_eq!(
        json["parameters"],
        serde_json::to_value(&per_dtype).unwrap()
    );
    assert_eq!(json["total_parameters"], total);
    for key in [
        "format",
        "tensors",
        "parameters",
        "total_parameters",
        "requests",
        "bytes_transferred",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    let file_len = std::fs::metadata(fixtures().join("all_dtypes.expected.safetensors"))
        .unwrap()
        .len();
    assert_eq!(whole.files[0].size, Some(file_len));
}

#[test]
fn sharded_inspect_stays_within_request_budget_and_keeps_token_off_the_cdn() {
    let fake = FakeHub::start();
    sharded_repo(&fake, "org/sharded");
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());

    let mut shards: Vec<PathBuf> = std::fs::read_dir(fixtures().join("sharded"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    shards.sort();
    let local: Vec<_> = shards.iter().flat_map(|s| local_tensors(s)).collect();

    let by_index = hub
        .inspect("hf://org/sharded/model.safetensors.index.json")
        .unwrap();
    assert_eq!(remote_tensors(&by_index), local);
    assert_eq!(by_index.files.len(), shards.len());
    assert!(
        by_index.requests <= 2 * shards.len() as u64 + 1,
        "{} requests",
        by_index.requests
    );

    fake.clear_requests();
    let whole = hub.inspect("hf://org/sharded").unwrap();
    assert_eq!(remote_tensors(&whole), local);
    assert!(
        whole.requests <= 2 * shards.len() as u64 + 2,
        "{} requests",
        whole.requests
    );
    assert_eq!(whole.requests as usize, fake.requests().len());
    let json = whole.to_json();
    assert_eq!(
        json["tensors"][0]["file"],
        "model-00001-of-00006.safetensors"
    );

    let reqs = fake.requests();
    assert!(reqs.iter().filter(|r| r.host == Host::Cdn).count() >= shards.len());
    for r in &reqs {
        match r.host {
            Host::Cdn => assert!(
                r.header("authorization").is_none(),
                "token leaked to the CDN: {r:?}"
            ),
            Host::Hub => assert_eq!(r.header("authorization"), Some("Bearer hf_secret")),
        }
        assert!(r
            .header("user-agent")
            .is_some_and(|u| u.starts_with("ckpt/")));
        // Compressed answers would make CDNs ignore Range (hf-hub issue #141).
        assert_eq!(r.header("accept-encoding"), Some("identity"));
    }
}

#[test]
fn long_header_takes_a_second_read_and_servers_without_range_still_work() {
    let fake = FakeHub::start();
    let bytes = big_header_file(400);
    let mut files = BTreeMap::new();
    files.insert(
        "model.safetensors".to_string(),
        fake_file(bytes.clone(), true),
    );
    fake.add_repo("org/big", COMMIT, files);
    let cache = tempfile::tempdir().unwrap();
    let local_path = cache.path().join("local.safetensors");
    std::fs::write(&local_path, &bytes).unwrap();
    let hub = hub_for(&fake, cache.path());

    let i = hub.inspect("hf://org/big/model.safetensors").unwrap();
    assert_eq!(remote_tensors(&i), local_tensors(&local_path));
    let cdn: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Cdn)
        .collect();
    assert_eq!(cdn.len(), 2, "speculative read + the rest of the header");
    assert_eq!(cdn[0].header("range"), Some("bytes=0-99999"));
    assert!(cdn[1].header("range").unwrap().starts_with("bytes=100000-"));
    assert_eq!(
        i.requests, 3,
        "the second read goes straight to the CDN URL"
    );
    assert!(i.bytes_transferred < bytes.len() as u64 / 2);

    fake.clear_requests();
    fake.with(|s| s.refuse_range = true);
    let j = hub.inspect("hf://org/big/model.safetensors").unwrap();
    assert_eq!(remote_tensors(&j), remote_tensors(&i));
    assert_eq!(j.files[0].size, Some(bytes.len() as u64));
    assert!(
        j.bytes_transferred < bytes.len() as u64,
        "only the needed prefix is read: {}",
        j.bytes_transferred
    );
}

#[test]
fn errors_name_the_problem() {
    let fake = FakeHub::start();
    single_repo(&fake, "org/single");
    single_repo(&fake, "org/private");
    single_repo(&fake, "org/gated");
    fake.with(|s| {
        s.repos.get_mut("org/private").unwrap().private = true;
        s.repos.get_mut("org/gated").unwrap().gated = true;
    });
    let mut files = BTreeMap::new();
    files.insert(
        "model.safetensors".to_string(),
        fake_file(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n".to_vec(),
            false,
        ),
    );
    files.insert(
        "pytorch_model.bin".to_string(),
        fake_file(vec![7u8; 4321], true),
    );
    fake.add_repo("org/pointer", COMMIT, files);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());
    let mut anonymous_config = hub.config().clone();
    anonymous_config.token = None;
    let anonymous = Hub::new(anonymous_config);

    assert!(matches!(
        hub.inspect("hf://org/missing"),
        Err(RemoteError::RepoNotFound { .. })
    ));
    assert!(matches!(
        hub.inspect("hf://org/single/nope.safetensors"),
        Err(RemoteError::EntryNotFound { .. })
    ));
    assert!(matches!(
        hub.inspect("hf://org/single@v9/model.safetensors"),
        Err(RemoteError::RevisionNotFound { .. })
    ));
    let e = anonymous
        .inspect("hf://org/private/model.safetensors")
        .unwrap_err();
    assert!(e.to_string().contains("HF_TOKEN"), "{e}");
    let e = anonymous
        .inspect("hf://org/gated/model.safetensors")
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::Unauthorized { gated: true, .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("HF_TOKEN"));
    fake.with(|s| s.token = Some("hf_secret".into()));
    assert!(hub.inspect("hf://org/gated/model.safetensors").is_ok());
    assert!(hub.inspect("hf://org/private").is_ok());

    let e = hub
        .inspect("hf://org/pointer/model.safetensors")
        .unwrap_err();
    assert!(matches!(e, RemoteError::LfsPointer { .. }), "{e:?}");
    let bin = hub.inspect("hf://org/pointer/pytorch_model.bin").unwrap();
    assert_eq!(bin.format, "pytorch");
    assert_eq!(bin.files[0].size, Some(4321));
    assert!(bin.notes[0].contains("cannot be read with range requests"));

    let core: ckpt_core::Error = hub.inspect("hf://org/missing").unwrap_err().into();
    assert!(matches!(core, ckpt_core::Error::Io { .. }));
}

fn read_link(p: &Path) -> String {
    std::fs::read_link(p).unwrap().to_string_lossy().to_string()
}

#[test]
fn pull_writes_the_huggingface_hub_cache_layout() {
    let fake = FakeHub::start();
    sharded_repo(&fake, "org/sharded");
    fake.add_ref("org/sharded", "refs/pr/1", COMMIT);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());
    let files = fake.with(|s| s.repos["org/sharded"].commits[COMMIT].clone());

    let progress_calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = progress_calls.clone();
    let opts = PullOptions {
        workers: 3,
        progress: Some(std::sync::Arc::new(
            move |ev: ckpt_core::ProgressEvent<'_>| {
                if let ckpt_core::ProgressEvent::File { complete: true, .. } = ev {
                    counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            },
        )),
        ..Default::default()
    };
    let report = hub.pull("org/sharded", &opts).unwrap();
    assert_eq!(report.commit, COMMIT);
    assert_eq!(report.files.len(), files.len());
    assert_eq!(
        progress_calls.load(std::sync::atomic::Ordering::Relaxed),
        files.len(),
        "one completion per file"
    );
    let repo_dir = cache.path().join("models--org--sharded");
    assert_eq!(report.snapshot, repo_dir.join("snapshots").join(COMMIT));
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        COMMIT
    );
    assert!(cache.path().join("CACHEDIR.TAG").is_file());

    for (path, f) in &files {
        let pointer = report.snapshot.join(path);
        let depth = path.matches('/').count();
        let expected_target = format!("{}blobs/{}", "../".repeat(depth + 2), f.etag());
        assert_eq!(read_link(&pointer), expected_target, "{path}");
        assert_eq!(std::fs::read(&pointer).unwrap(), *f.bytes, "{path}");
        assert!(repo_dir.join("blobs").join(f.etag()).is_file());
        assert!(cache
            .path()
            .join(".locks/models--org--sharded")
            .join(format!("{}.lock", f.etag()))
            .exists());
    }
    assert_eq!(
        files["model-00001-of-00006.safetensors"].etag().len(),
        64,
        "LFS blobs are named by sha256"
    );
    assert_eq!(
        files["model.safetensors.index.json"].etag().len(),
        40,
        "regular blobs by git sha1"
    );
    let leftovers: Vec<_> = std::fs::read_dir(repo_dir.join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|n| n.contains('.'))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // A second pull downloads nothing; a PR revision gets its nested ref.
    fake.clear_requests();
    let again = hub
        .pull(
            "org/sharded",
            &PullOptions {
                revision: Some("refs/pr/1".into()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(again.downloaded_bytes, 0);
    assert!(
        fake.requests()
            .iter()
            .all(|r| r.host == Host::Hub && r.method == "GET"),
        "only the listing"
    );
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/refs/pr/1")).unwrap(),
        COMMIT
    );

    // Include/exclude.
    let other = tempfile::tempdir().unwrap();
    let only_json = PullOptions {
        include: vec!["*.json".into()],
        cache_dir: Some(other.path().to_path_buf()),
        ..Default::default()
    };
    let r = hub.pull("hf://org/sharded", &only_json).unwrap();
    assert_eq!(
        r.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
        ["model.safetensors.index.json"]
    );
}

#[test]
fn interrupted_download_resumes_with_range_and_is_verified() {
    let fake = FakeHub::start();
    let bytes = big_header_file(800);
    let mut files = BTreeMap::new();
    files.insert(
        "model.safetensors".to_string(),
        fake_file(bytes.clone(), true),
    );
    fake.add_repo("org/big", COMMIT, files);
    let sha = common::sha256_hex(&bytes);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());

    fake.with(|s| s.drop_next_body_after = Some(300_000));
    let report = hub.pull("org/big", &PullOptions::default()).unwrap();
    assert_eq!(report.files[0].size, bytes.len() as u64);
    let cdn: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Cdn)
        .collect();
    assert_eq!(cdn.len(), 2, "{cdn:?}");
    assert_eq!(cdn[0].header("range"), None);
    assert_eq!(cdn[1].header("range"), Some("bytes=300000-"));
    let blob = cache.path().join("models--org--big/blobs").join(&sha);
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);

    // A partial file left by a killed run is resumed too.
    let cache2 = tempfile::tempdir().unwrap();
    let blobs = cache2.path().join("models--org--big/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    std::fs::write(blobs.join(format!("{sha}.incomplete")), &bytes[..123_456]).unwrap();
    fake.clear_requests();
    let hub2 = hub_for(&fake, cache2.path());
    hub2.pull("org/big", &PullOptions::default()).unwrap();
    let cdn: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Cdn)
        .collect();
    assert_eq!(cdn.len(), 1);
    assert_eq!(cdn[0].header("range"), Some("bytes=123456-"));
    assert_eq!(std::fs::read(blobs.join(&sha)).unwrap(), bytes);
    assert!(!blobs.join(format!("{sha}.incomplete")).exists());
}

#[test]
fn checksum_mismatch_leaves_no_blob() {
    let fake = FakeHub::start();
    single_repo(&fake, "org/single");
    let sha = fake.with(|s| {
        s.repos["org/single"].commits[COMMIT]["model.safetensors"]
            .sha256
            .clone()
    });
    fake.with(|s| s.corrupt.push(sha.clone()));
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());
    let err = hub
        .pull(
            "org/single",
            &PullOptions {
                workers: 1,
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::ChecksumMismatch { .. }),
        "{err:?}"
    );
    let blobs = cache.path().join("models--org--single/blobs");
    assert!(!blobs.join(&sha).exists());
    assert!(!blobs.join(format!("{sha}.incomplete")).exists());
    assert!(!cache
        .path()
        .join(format!(
            "models--org--single/snapshots/{COMMIT}/model.safetensors"
        ))
        .exists());
}

#[test]
fn offline_mode_resolves_from_the_cache_only() {
    let fake = FakeHub::start();
    sharded_repo(&fake, "org/sharded");
    let cache = tempfile::tempdir().unwrap();
    let online = hub_for(&fake, cache.path());
    let file = online
        .resolve_to_local("hf://org/sharded/model.safetensors.index.json")
        .unwrap();
    assert_eq!(
        file,
        cache.path().join(format!(
            "models--org--sharded/snapshots/{COMMIT}/model.safetensors.index.json"
        ))
    );
    assert!(std::fs::read(&file).unwrap().starts_with(b"{"));
    online.pull("org/sharded", &PullOptions::default()).unwrap();

    fake.clear_requests();
    let offline = offline_hub(&fake, cache.path());
    assert_eq!(
        offline
            .resolve_to_local("hf://org/sharded/model.safetensors.index.json")
            .unwrap(),
        file
    );
    assert_eq!(
        offline.resolve_to_local("hf://org/sharded").unwrap(),
        cache
            .path()
            .join(format!("models--org--sharded/snapshots/{COMMIT}"))
    );
    assert!(offline
        .resolve_to_local("hf://org/sharded/sub/dir")
        .unwrap()
        .join("notes.txt")
        .is_file());
    let r = offline
        .pull(
            "org/sharded",
            &PullOptions {
                include: vec!["*.safetensors".into()],
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.files.len(), 6);
    // A missing file leaves huggingface_hub's `.no_exist` marker, which offline mode honours.
    let e = online
        .resolve_to_local("hf://org/sharded/missing.json")
        .unwrap_err();
    assert!(matches!(e, RemoteError::EntryNotFound { .. }), "{e:?}");
    assert!(cache
        .path()
        .join(format!(
            "models--org--sharded/.no_exist/{COMMIT}/missing.json"
        ))
        .is_file());
    fake.clear_requests();
    let e = offline
        .download_file(
            &ckpt_remote::HubUri::new("org/sharded").unwrap(),
            "missing.json",
            None,
        )
        .unwrap_err();
    assert!(matches!(e, RemoteError::EntryNotFound { .. }), "{e:?}");
    let e = offline
        .resolve_to_local("hf://org/other/model.safetensors")
        .unwrap_err();
    assert!(matches!(e, RemoteError::NotCached { .. }), "{e:?}");
    assert!(e.to_string().contains("HF_HUB_OFFLINE"));
    assert!(offline.inspect("hf://org/sharded").is_err());
    assert!(fake.requests().is_empty(), "offline mode sent requests");
}

#[test]
fn resolve_whole_repo_skips_alternate_weight_formats_and_concurrent_pulls_share_blobs() {
    let fake = FakeHub::start();
    let mut files = files_from_dir(&fixtures().join("sharded"));
    files.insert("pytorch_model.bin".into(), fake_file(vec![1u8; 1000], true));
    fake.add_repo("org/mixed", COMMIT, files);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());
    let dir = hub.resolve_to_local("hf://org/mixed").unwrap();
    assert!(dir.join("model-00003-of-00006.safetensors").is_file());
    assert!(!dir.join("pytorch_model.bin").exists());

    let cache2 = tempfile::tempdir().unwrap();
    let hubs: Vec<Hub> = (0..3).map(|_| hub_for(&fake, cache2.path())).collect();
    std::thread::scope(|s| {
        for h in &hubs {
            s.spawn(move || {
                h.pull(
                    "org/mixed",
                    &PullOptions {
                        revision: Some(COMMIT.into()),
                        ..Default::default()
                    },
                )
                .unwrap()
            });
        }
    });
    let blobs: Vec<_> = std::fs::read_dir(cache2.path().join("models--org--mixed/blobs"))
        .unwrap()
        .collect();
    assert_eq!(blobs.len(), 8);
    assert!(
        !cache2.path().join("models--org--mixed/refs/main").exists(),
        "a commit revision writes no ref"
    );
}

fn gguf_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

type TensorList = Vec<(String, String, Vec<u64>)>;

fn local_gguf(paths: &[PathBuf]) -> (TensorList, BTreeMap<String, String>) {
    let mut tensors = Vec::new();
    let mut metadata = BTreeMap::new();
    for (i, p) in paths.iter().enumerate() {
        let ck = ckpt_gguf::GgufFile::open(p).unwrap().to_checkpoint();
        tensors.extend(
            ck.tensors
                .iter()
                .map(|t| (t.name.clone(), t.dtype.to_string(), t.shape.clone())),
        );
        if i == 0 {
            metadata = ck.metadata;
        }
    }
    (tensors, metadata)
}

/// A GGUF v3 file whose header (one long string KV) spans several speculative reads.
fn long_gguf_header_file() -> Vec<u8> {
    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u64).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    let mut out = b"GGUF".to_vec();
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&1u64.to_le_bytes()); // tensors
    out.extend_from_slice(&2u64.to_le_bytes()); // kvs
    string(&mut out, "general.architecture");
    out.extend_from_slice(&8u32.to_le_bytes());
    string(&mut out, "llama");
    string(&mut out, "tokenizer.chat_template");
    out.extend_from_slice(&8u32.to_le_bytes());
    string(&mut out, &"{{ message }} ".repeat(25_000));
    string(&mut out, "token_embd.weight");
    out.extend_from_slice(&2u32.to_le_bytes()); // n_dims
    out.extend_from_slice(&4u64.to_le_bytes()); // ne0
    out.extend_from_slice(&3u64.to_le_bytes()); // ne1
    out.extend_from_slice(&0u32.to_le_bytes()); // F32
    out.extend_from_slice(&0u64.to_le_bytes()); // offset
    while !out.len().is_multiple_of(32) {
        out.push(0);
    }
    out.extend(std::iter::repeat_n(0u8, 4 * 3 * 4));
    out
}

#[test]
fn gguf_inspect_matches_local_including_splits_and_long_headers() {
    let fake = FakeHub::start();
    let mut files = BTreeMap::new();
    let q4 = gguf_fixtures().join("tiny-llama-spm.Q4_K_M.gguf");
    files.insert(
        "tiny-llama-spm.Q4_K_M.gguf".to_string(),
        fake_file(std::fs::read(&q4).unwrap(), true),
    );
    fake.add_repo("org/gguf", COMMIT, files);
    let split_dir = gguf_fixtures().join("split");
    let mut split_paths: Vec<PathBuf> = std::fs::read_dir(&split_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    split_paths.sort();
    fake.add_repo("org/split", COMMIT, files_from_dir(&split_dir));
    let long = long_gguf_header_file();
    let mut files = BTreeMap::new();
    files.insert("long.gguf".to_string(), fake_file(long.clone(), true));
    fake.add_repo("org/long", COMMIT, files);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());

    let i = hub.inspect("hf://org/gguf").unwrap();
    let (tensors, metadata) = local_gguf(std::slice::from_ref(&q4));
    assert_eq!(i.format, "gguf");
    assert_eq!(remote_tensors(&i), tensors);
    assert_eq!(i.metadata, metadata);
    assert!(i.bytes_transferred < std::fs::metadata(&q4).unwrap().len() / 4);
    assert_eq!(
        i.to_json()["parameters"],
        serde_json::to_value(
            ckpt_gguf::GgufFile::open(&q4)
                .unwrap()
                .to_checkpoint()
                .parameter_counts()
                .0
        )
        .unwrap()
    );

    let first = split_paths[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    let s = hub.inspect(&format!("hf://org/split/{first}")).unwrap();
    let (tensors, metadata) = local_gguf(&split_paths);
    assert_eq!(s.files.len(), 3);
    assert_eq!(remote_tensors(&s), tensors);
    assert_eq!(s.metadata, metadata);

    fake.clear_requests();
    let l = hub.inspect("hf://org/long/long.gguf").unwrap();
    assert_eq!(
        remote_tensors(&l),
        vec![(
            "token_embd.weight".to_string(),
            "F32".to_string(),
            vec![3, 4]
        )]
    );
    assert_eq!(l.metadata["tokenizer.chat_template"].len(), 14 * 25_000);
    let cdn: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.host == Host::Cdn)
        .collect();
    assert_eq!(
        cdn.len(),
        2,
        "speculative read, then everything the parser asked for: {cdn:?}"
    );

    // A truncated GGUF is an error, not a hang.
    let mut files = BTreeMap::new();
    files.insert(
        "cut.gguf".to_string(),
        fake_file(long[..150_000].to_vec(), true),
    );
    fake.add_repo("org/cut", COMMIT, files);
    assert!(hub.inspect("hf://org/cut/cut.gguf").is_err());
}

#[test]
fn server_errors_are_retried_a_bounded_number_of_times() {
    let fake = FakeHub::start();
    single_repo(&fake, "org/single");
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());
    fake.with(|s| s.fail_next = 2);
    let i = hub.inspect("hf://org/single/model.safetensors").unwrap();
    assert_eq!(i.requests, 4, "two 503s, then 302 + 206");

    fake.with(|s| s.fail_next = 1000);
    fake.clear_requests();
    let e = hub
        .inspect("hf://org/single/model.safetensors")
        .unwrap_err();
    assert!(matches!(e, RemoteError::Http { status: 503, .. }), "{e:?}");
    // 1 + max_retries attempts, no more.
    assert_eq!(fake.requests().len(), 6);
    fake.with(|s| s.fail_next = 0);

    // A connection dropped in the middle of a header read is retried too.
    fake.with(|s| s.drop_next_body_after = Some(100));
    let i = hub.inspect("hf://org/single/model.safetensors").unwrap();
    assert_eq!(
        remote_tensors(&i),
        local_tensors(&fixtures().join("all_dtypes.expected.safetensors"))
    );
}

#[test]
fn plain_urls_and_pr_revisions() {
    let fake = FakeHub::start();
    sharded_repo(&fake, "org/sharded");
    fake.add_ref("org/sharded", "refs/pr/1", COMMIT);
    let cache = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, cache.path());

    let pr = hub
        .inspect("hf://org/sharded@refs/pr/1/model.safetensors.index.json")
        .unwrap();
    assert_eq!(pr.files.len(), 6);
    assert!(fake.requests().iter().any(|r| r
        .path
        .contains("/resolve/refs%2Fpr%2F1/model.safetensors.index.json")));
    assert_eq!(pr.commit.as_deref(), Some(COMMIT));
    assert!(
        fake.requests().iter().any(|r| r.path.contains(&format!(
            "/resolve/{COMMIT}/model-00001-of-00006.safetensors"
        ))),
        "shards are read at the index's commit"
    );

    // A plain URL on another origin: read directly, and never with the Hub token.
    let sha = fake.with(|s| {
        s.repos["org/sharded"].commits[COMMIT]["model-00005-of-00006.safetensors"]
            .sha256
            .clone()
    });
    fake.clear_requests();
    let url = format!("{}/blobs/{sha}", fake.cdn_url);
    let i = hub.inspect(&url).unwrap();
    assert_eq!(
        remote_tensors(&i),
        local_tensors(&fixtures().join("sharded/model-00005-of-00006.safetensors"))
    );
    assert_eq!(i.requests, 1);
    assert!(fake
        .requests()
        .iter()
        .all(|r| r.header("authorization").is_none()));
    assert!(
        hub.resolve_to_local(&url).is_err(),
        "plain URLs have no cache location"
    );
}

#[test]
fn local_dir_copies_out_of_the_cache_and_keeps_files_it_can_verify() {
    let fake = FakeHub::start();
    single_repo(&fake, "org/single");
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("cache");
    let hub = hub_for(&fake, &cache);
    let cached = hub.pull("org/single", &PullOptions::default()).unwrap();
    let dir = work.path().join("local");
    let opts = PullOptions {
        local_dir: Some(dir.clone()),
        ..Default::default()
    };
    let file_bodies = |fake: &FakeHub| {
        fake.requests()
            .iter()
            .filter(|r| r.method == "GET" && (r.host == Host::Cdn || r.path.contains("/resolve/")))
            .count()
    };

    // Everything is in the cache at that commit: copied, nothing downloaded.
    fake.clear_requests();
    let r = hub.pull("org/single", &opts).unwrap();
    assert_eq!(file_bodies(&fake), 0, "{:?}", fake.requests());
    assert_eq!(r.downloaded_bytes, 0);
    for f in &cached.files {
        let local = dir.join(&f.path);
        assert!(!std::fs::symlink_metadata(&local)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(
            std::fs::read(&local).unwrap(),
            std::fs::read(&f.local_path).unwrap()
        );
    }

    // Metadata gone: an LFS file whose sha256 is the etag is kept as it is (huggingface_hub
    // does the same), without touching the cache.
    std::fs::remove_dir_all(dir.join(".cache")).unwrap();
    std::fs::remove_dir_all(&cache).unwrap();
    fake.clear_requests();
    let r = hub.pull("org/single", &opts).unwrap();
    let downloaded: Vec<&str> = r
        .files
        .iter()
        .filter(|f| !f.cached)
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(
        downloaded,
        ["config.json"],
        "the git file has no sha256 to check"
    );
    assert!(fake.requests().iter().all(|r| r.host != Host::Cdn));
    assert!(!cache.exists());
    assert!(dir
        .join(".cache/huggingface/download/model.safetensors.metadata")
        .is_file());
}
