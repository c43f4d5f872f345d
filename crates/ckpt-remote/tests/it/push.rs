//! `push` against a fake Hub: the full LFS protocol (basic and multipart), pull requests read back
//! with `pull`, auth failures before any upload, per-part retries, deduplication, repository
//! creation, and the same requests and commit contents as huggingface_hub's `upload_folder`.

use ckpt_testhub::upload as push_hub;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ckpt_core::ProgressEvent;
use ckpt_remote::push::{PushAction, PushOptions, PushReport};
use ckpt_remote::{Hub, HubConfig, PullOptions, RemoteError};
use push_hub::{sha256_hex, CommitEntry, FakeHub, TOKEN};

fn hub_client(fake: &FakeHub, cache: &Path, token: Option<&str>) -> Hub {
    let mut config = HubConfig::new(&fake.url, cache);
    config.token = token.map(str::to_string);
    config.retry_base_delay = Duration::from_millis(5);
    config.max_retries = 3;
    Hub::new(config)
}

/// Deterministic bytes that do not repeat within a part (so a misplaced part changes the hash).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9 ^ u32::from(seed);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// A model folder: two small regular files, a nested one, an empty one, a basic-LFS safetensors
/// file and a multipart one (100 000 bytes = 5 parts of 20 480 bytes, the last one short).
fn model_folder(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    files.insert(
        "config.json".to_string(),
        br#"{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}"#.to_vec(),
    );
    files.insert(
        "tokenizer/special_tokens_map.json".to_string(),
        br#"{"bos_token": "<s>"}"#.to_vec(),
    );
    files.insert("empty.txt".to_string(), Vec::new());
    files.insert("model.safetensors".to_string(), pattern(10_000, 1));
    files.insert("model-big.bin".to_string(), pattern(100_000, 2));
    for (path, bytes) in &files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    files
}

fn kinds(fake: &FakeHub) -> Vec<&'static str> {
    fake.requests().iter().map(|r| r.kind()).collect()
}

fn push_as_pr(hub: &Hub, local: &Path) -> PushReport {
    let opts = PushOptions {
        create_pr: true,
        message: Some("Add converted weights".into()),
        ..Default::default()
    };
    hub.push(local, "org/model", &opts).unwrap()
}

#[test]
fn pull_request_with_basic_and_multipart_uploads_reads_back_identically() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[("README.md", b"# model\n", false)]);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    let expected = model_folder(&local);
    let hub = hub_client(&fake, &tmp.path().join("cache"), Some(TOKEN));

    let progress_events = Arc::new(Mutex::new(Vec::new()));
    let sink = progress_events.clone();
    let opts = PushOptions {
        create_pr: true,
        message: Some("Add converted weights".into()),
        // (phase, its announced total, bytes advanced in it)
        progress: Some(Arc::new(move |ev: ProgressEvent<'_>| {
            let mut phases = sink.lock().unwrap();
            match ev {
                ProgressEvent::Start { phase, total } => phases.push((phase.to_string(), total, 0)),
                ProgressEvent::Advance { bytes } => phases.last_mut().unwrap().2 += bytes,
                _ => {}
            }
        })),
        ..Default::default()
    };
    let report = hub.push(&local, "org/model", &opts).unwrap();

    let pr = report.pull_request.clone().expect("a pull request");
    assert_eq!(pr.number, 1);
    assert_eq!(pr.revision, "refs/pr/1");
    assert_eq!(pr.url, format!("{}/org/model/discussions/1", fake.url));
    assert!(report.commit.as_deref().is_some_and(|c| c.len() == 40));
    assert_eq!(report.uploaded_bytes, 110_000);
    let action = |p: &str| {
        report
            .files
            .iter()
            .find(|f| f.path_in_repo == p)
            .unwrap()
            .action
    };
    assert_eq!(action("model.safetensors"), PushAction::UploadedLfs);
    assert_eq!(action("model-big.bin"), PushAction::UploadedLfs);
    assert_eq!(action("config.json"), PushAction::Regular);
    assert_eq!(action("empty.txt"), PushAction::Regular);

    // The protocol, in order: auth check, preupload, batch, uploads, commit last.
    let k = kinds(&fake);
    assert_eq!(k.first(), Some(&"whoami"));
    assert_eq!(k.last(), Some(&"commit"));
    assert_eq!(k.iter().filter(|x| **x == "preupload").count(), 1);
    assert_eq!(k.iter().filter(|x| **x == "lfs-batch").count(), 1);
    assert_eq!(k.iter().filter(|x| **x == "upload").count(), 1);
    assert_eq!(k.iter().filter(|x| **x == "upload-part").count(), 5);
    assert_eq!(k.iter().filter(|x| **x == "complete").count(), 1);
    assert_eq!(k.iter().filter(|x| **x == "verify").count(), 2);
    let requests = fake.requests();
    for r in &requests {
        assert_ne!(r.status, 404, "unexpected route {} {}", r.method, r.path);
        if matches!(r.kind(), "preupload" | "lfs-batch" | "commit" | "whoami") {
            assert_eq!(
                r.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str()),
                "{}",
                r.path
            );
        }
    }
    let preupload = requests.iter().find(|r| r.kind() == "preupload").unwrap();
    assert_eq!(
        preupload.path,
        "/api/models/org/model/preupload/main?create_pr=1"
    );
    let commit = requests.iter().find(|r| r.kind() == "commit").unwrap();
    assert_eq!(commit.path, "/api/models/org/model/commit/main?create_pr=1");
    assert_eq!(commit.header("content-type"), Some("application/x-ndjson"));
    let batch = requests.iter().find(|r| r.kind() == "lfs-batch").unwrap();
    assert_eq!(
        batch.header("content-type"),
        Some("application/vnd.git-lfs+json")
    );
    assert_eq!(batch.header("accept"), Some("application/vnd.git-lfs+json"));

    // What the Hub stored: the commit lines and the PR ref; main is untouched.
    let received = fake.with(|st| st.commits.clone());
    assert_eq!(received.len(), 1);
    assert!(received[0].create_pr);
    assert_eq!(received[0].summary, "Add converted weights");
    let mut entries = received[0].entries.clone();
    entries.sort();
    let mut want: Vec<CommitEntry> = expected
        .iter()
        .map(|(p, b)| CommitEntry {
            key: if p.ends_with(".safetensors") || p.ends_with(".bin") {
                "lfsFile"
            } else {
                "file"
            }
            .into(),
            path: p.clone(),
            sha256: sha256_hex(b),
            size: b.len() as u64,
        })
        .collect();
    want.sort();
    assert_eq!(entries, want);
    assert_eq!(
        fake.files_at("org/model", "main")
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["README.md"]
    );

    // Pull the PR back into an empty cache: byte-identical files.
    let pulled = hub
        .pull(
            "org/model",
            &PullOptions {
                revision: Some("refs/pr/1".into()),
                cache_dir: Some(tmp.path().join("cache2")),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(Some(pulled.commit.clone()), report.commit);
    for (path, bytes) in &expected {
        let got = std::fs::read(pulled.snapshot.join(path)).unwrap();
        assert_eq!(&got, bytes, "{path}");
    }
    assert_eq!(
        std::fs::read(pulled.snapshot.join("README.md")).unwrap(),
        b"# model\n"
    );

    let json = report.to_json();
    assert_eq!(json["pull_request"]["revision"], "refs/pr/1");
    assert_eq!(json["files"].as_array().unwrap().len(), expected.len());
    assert!(json["files"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "model-big.bin" && f["action"] == "uploaded"));

    let phases = progress_events.lock().unwrap();
    let names: Vec<&str> = phases.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(names, ["hashing", "uploading"]);
    let (_, hash_total, hashed) = &phases[0];
    assert_eq!(hashed, hash_total, "every byte hashed is reported once");
    assert_eq!(phases[1].1, 110_000, "the LFS bytes the Hub asked for");
    assert_eq!(phases[1].2, 110_000);

    // A second PR gets the next number.
    std::fs::write(local.join("config.json"), b"{\"hidden_size\": 128}").unwrap();
    let second = push_as_pr(&hub, &local);
    assert_eq!(second.pull_request.unwrap().revision, "refs/pr/2");
}

fn nothing_uploaded(fake: &FakeHub) {
    let k = kinds(fake);
    for forbidden in [
        "preupload",
        "lfs-batch",
        "upload",
        "upload-part",
        "complete",
        "commit",
        "create-repo",
    ] {
        assert!(!k.contains(&forbidden), "{forbidden} was sent: {k:?}");
    }
    fake.with(|st| {
        assert!(st.blobs.is_empty());
        assert!(st.commits.is_empty());
    });
}

#[test]
fn bad_or_missing_or_read_only_token_fails_before_any_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    model_folder(&local);

    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    let err = hub_client(&fake, tmp.path(), Some("hf_wrong"))
        .push(&local, "org/model", &PushOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::Unauthorized { status: 401, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("rejected the token"), "{err}");
    nothing_uploaded(&fake);

    let err = hub_client(&fake, tmp.path(), None)
        .push(&local, "org/model", &PushOptions::default())
        .unwrap_err();
    assert!(matches!(err, RemoteError::Unauthorized { .. }), "{err}");
    assert!(err.to_string().contains("HF_TOKEN"), "{err}");
    nothing_uploaded(&fake);

    fake.with(|st| st.role = "read".into());
    let err = hub_client(&fake, tmp.path(), Some(TOKEN))
        .push(&local, "org/model", &PushOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::Unauthorized { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("read-only"), "{err}");
    nothing_uploaded(&fake);
}

#[test]
fn forbidden_preupload_stops_before_any_upload() {
    // A fine-grained token passes whoami but lacks write access to this repository: the
    // preupload call answers 403 and nothing is uploaded.
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    model_folder(&local);
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));
    fake.with(|st| st.role = "fineGrained".into());
    let err = hub
        .push(&local, "org/model", &PushOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, RemoteError::Unauthorized { status: 403, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("no write access to 'org/model'"),
        "{err}"
    );
    let k = kinds(&fake);
    assert_eq!(k, ["whoami", "preupload"]);
    fake.with(|st| assert!(st.blobs.is_empty() && st.commits.is_empty()));
}

#[test]
fn a_failed_part_is_retried_alone() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    fake.with(|st| st.fail_parts_once = vec![3]);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    let expected = model_folder(&local);
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));
    hub.push(&local, "org/model", &PushOptions::default())
        .unwrap();

    let parts: Vec<(String, u16)> = fake
        .requests()
        .iter()
        .filter(|r| r.kind() == "upload-part")
        .map(|r| (r.path.split('?').next().unwrap().to_string(), r.status))
        .collect();
    let count = |n: u64| {
        parts
            .iter()
            .filter(|(p, _)| p.ends_with(&format!("/part/{n}")))
            .count()
    };
    assert_eq!(parts.len(), 6, "{parts:?}");
    assert_eq!(
        (count(1), count(2), count(3), count(4), count(5)),
        (1, 1, 2, 1, 1)
    );
    assert_eq!(parts.iter().filter(|(_, s)| *s == 500).count(), 1);
    let stored = fake.files_at("org/model", "main").unwrap();
    assert_eq!(*stored["model-big.bin"].bytes, expected["model-big.bin"]);
}

#[test]
fn a_part_that_keeps_failing_aborts_without_commit() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    fake.with(|st| st.fail_parts_once = vec![2; 10]);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    model_folder(&local);
    let err = hub_client(&fake, tmp.path(), Some(TOKEN))
        .push(&local, "org/model", &PushOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("part 2 of 5")
            && msg.contains("model-big.bin")
            && msg.contains("nothing was committed"),
        "{msg}"
    );
    assert!(!kinds(&fake).contains(&"commit"));
    assert!(!kinds(&fake).contains(&"complete"));
}

#[test]
fn content_the_hub_already_has_is_not_sent_again() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    model_folder(&local);
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));
    hub.push(&local, "org/model", &PushOptions::default())
        .unwrap();
    let first_commit = fake.files_at("org/model", "main").unwrap();

    // Same files again: preupload reports identical oids, so nothing is uploaded or committed.
    let before = fake.requests().len();
    let report = hub
        .push(&local, "org/model", &PushOptions::default())
        .unwrap();
    assert!(report.commit.is_none());
    assert!(
        report
            .files
            .iter()
            .all(|f| f.action == PushAction::Unchanged),
        "{:?}",
        report.files
    );
    let k: Vec<_> = fake.requests()[before..].iter().map(|r| r.kind()).collect();
    assert_eq!(k, ["whoami", "preupload"]);

    // Same weights under a new folder plus one changed file: storage already has the LFS
    // objects (batch answers without actions), so only the commit carries them.
    std::fs::write(local.join("config.json"), b"{\"hidden_size\": 65}").unwrap();
    let before = fake.requests().len();
    let opts = PushOptions {
        path_in_repo: Some("copy".into()),
        ..Default::default()
    };
    let report = hub.push(&local, "org/model", &opts).unwrap();
    let k: Vec<_> = fake.requests()[before..].iter().map(|r| r.kind()).collect();
    assert_eq!(k, ["whoami", "preupload", "lfs-batch", "commit"]);
    assert_eq!(report.uploaded_bytes, 0);
    let action = |p: &str| {
        report
            .files
            .iter()
            .find(|f| f.path_in_repo == p)
            .unwrap()
            .action
    };
    assert_eq!(action("copy/model-big.bin"), PushAction::LfsAlreadyStored);
    assert_eq!(
        action("copy/model.safetensors"),
        PushAction::LfsAlreadyStored
    );
    let now = fake.files_at("org/model", "main").unwrap();
    assert_eq!(
        now["copy/model-big.bin"].bytes,
        first_commit["model-big.bin"].bytes
    );
    assert_eq!(&now["copy/config.json"].bytes[..], b"{\"hidden_size\": 65}");
}

#[test]
fn missing_repository_revision_and_too_large_files_are_clear_errors() {
    let fake = FakeHub::start();
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    model_folder(&local);
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));

    let err = hub
        .push(&local, "org/new-model", &PushOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("'org/new-model' does not exist")
            && err.to_string().contains("`create_repo`"),
        "{err}"
    );
    fake.with(|st| assert!(st.blobs.is_empty() && st.commits.is_empty()));

    // --create-repo: created, then pushed; a second run finds it (409) and carries on.
    let opts = PushOptions {
        create_repo: true,
        private: true,
        include: vec!["*.json".into()],
        ..Default::default()
    };
    let report = hub.push(&local, "org/new-model", &opts).unwrap();
    assert!(report.repo_created);
    let created = fake.with(|st| st.created.clone());
    assert_eq!(created[0]["name"], "new-model");
    assert_eq!(created[0]["organization"], "org");
    assert_eq!(created[0]["private"], true);
    assert_eq!(created[0]["type"], "model");
    assert!(fake.with(|st| st.repos["org/new-model"].private));
    let stored = fake.files_at("org/new-model", "main").unwrap();
    assert_eq!(
        stored.keys().collect::<Vec<_>>(),
        ["config.json", "tokenizer/special_tokens_map.json"]
    );
    let again = hub
        .push(
            &local,
            "org/new-model",
            &PushOptions {
                create_repo: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert!(!again.repo_created);
    let created = fake.with(|st| st.created.clone());
    assert_eq!(created.len(), 2);
    assert_eq!(
        created[1].get("private"),
        None,
        "no visibility sent unless asked"
    );
    assert!(again.commit.is_some());

    let err = hub
        .push(
            &local,
            "org/new-model",
            &PushOptions {
                revision: Some("dev".into()),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("revision 'dev' does not exist in 'org/new-model'"),
        "{err}"
    );

    fake.add_repo("org/limited", &[]);
    fake.with(|st| st.max_lfs_size = 50_000);
    let err = hub
        .push(&local, "org/limited", &PushOptions::default())
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("model-big.bin")
            && msg.contains("100000 bytes")
            && msg.contains("exceeds the maximum size"),
        "{msg}"
    );
    assert!(fake.files_at("org/limited", "main").unwrap().is_empty());

    let err = hub
        .push(
            &tmp.path().join("nope"),
            "org/limited",
            &PushOptions::default(),
        )
        .unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[test]
fn single_file_to_a_chosen_path() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model-q4.gguf");
    std::fs::write(&file, pattern(3000, 9)).unwrap();
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));
    let opts = PushOptions {
        path_in_repo: Some("gguf/model-Q4_0.gguf".into()),
        ..Default::default()
    };
    let report = hub.push(&file, "hf://org/model", &opts).unwrap();
    assert_eq!(report.files.len(), 1);
    assert!(report.files[0].lfs);
    let stored = fake.files_at("org/model", "main").unwrap();
    assert_eq!(*stored["gguf/model-Q4_0.gguf"].bytes, pattern(3000, 9));
    assert_eq!(
        fake.with(|st| st.commits[0].summary.clone()),
        "Upload gguf/model-Q4_0.gguf with ckpt"
    );
}

#[test]
fn a_renamed_repository_is_followed() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    fake.with(|st| st.renamed.insert("org/old-name".into(), "org/model".into()));
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    let expected = model_folder(&local);
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));
    let report = hub
        .push(
            &local,
            "org/old-name",
            &PushOptions {
                create_pr: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(report.pull_request.unwrap().revision, "refs/pr/1");
    let stored = fake.files_at("org/model", "refs/pr/1").unwrap();
    assert_eq!(stored.len(), expected.len());
    let redirected: Vec<String> = fake
        .requests()
        .iter()
        .filter(|r| r.status == 307)
        .map(|r| r.kind().to_string())
        .collect();
    assert_eq!(redirected, ["preupload", "lfs-batch", "commit"]);
    // The commit after the redirect carried the token and the NDJSON body.
    assert!(fake
        .requests()
        .iter()
        .any(|r| r.kind() == "commit" && r.status == 200 && r.header("authorization").is_some()));
}

/// huggingface_hub's `upload_folder` (Xet disabled, so it speaks LFS) against the same fake Hub,
/// as a pull request and as a direct commit: the same kinds and counts of requests, the same
/// payloads and headers, and the same commit contents (paths, oids, sizes) as ours.
#[test]
fn same_requests_and_commit_as_huggingface_hub_upload_folder() {
    let Some(python) = std::env::var_os("CKPT_PYTHON") else {
        eprintln!("skipped: set CKPT_PYTHON to a Python with huggingface_hub to compare with upload_folder");
        return;
    };
    let probe = std::process::Command::new(&python)
        .args(["-c", "import huggingface_hub"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: huggingface_hub is not importable by {python:?}");
        return;
    }
    compare_with_upload_folder(&python, true);
    compare_with_upload_folder(&python, false);
}

/// Request kinds with their counts (huggingface_hub uploads files from several threads, so only
/// the phases are ordered: preupload, then the LFS batch, then uploads, then the commit), and
/// the received commit lines.
fn protocol_summary(
    fake: &FakeHub,
    create_pr: bool,
) -> (BTreeMap<&'static str, usize>, Vec<CommitEntry>) {
    let received = fake.with(|st| st.commits.clone());
    assert_eq!(received.len(), 1, "one commit expected");
    assert_eq!(received[0].create_pr, create_pr);
    assert_eq!(received[0].summary, "Add converted weights");
    let mut entries = received[0].entries.clone();
    entries.sort();
    let k: Vec<&'static str> = fake
        .requests()
        .iter()
        .map(|r| r.kind())
        .filter(|k| *k != "whoami")
        .collect();
    let phase = |kind: &str| match kind {
        "preupload" => 0,
        "lfs-batch" => 1,
        "commit" => 3,
        _ => 2,
    };
    assert!(
        k.windows(2).all(|w| phase(w[0]) <= phase(w[1])),
        "phases out of order: {k:?}"
    );
    let mut counts = BTreeMap::new();
    for kind in k {
        *counts.entry(kind).or_default() += 1;
    }
    (counts, entries)
}

fn compare_with_upload_folder(python: &std::ffi::OsStr, create_pr: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let local = tmp.path().join("out");
    model_folder(&local);

    let ours = FakeHub::start();
    ours.add_repo("org/model", &[("README.md", b"# model\n", false)]);
    let opts = PushOptions {
        create_pr,
        message: Some("Add converted weights".into()),
        ..Default::default()
    };
    let report = hub_client(&ours, tmp.path(), Some(TOKEN))
        .push(&local, "org/model", &opts)
        .unwrap();
    assert_eq!(
        report.pull_request.map(|p| p.revision),
        create_pr.then(|| "refs/pr/1".to_string())
    );
    let (our_kinds, our_entries) = protocol_summary(&ours, create_pr);

    let theirs = FakeHub::start();
    theirs.add_repo("org/model", &[("README.md", b"# model\n", false)]);
    let script = r#"
import sys
from huggingface_hub import HfApi
api = HfApi(endpoint=sys.argv[1], token=sys.argv[2])
info = api.upload_folder(folder_path=sys.argv[3], repo_id="org/model", create_pr=sys.argv[4] == "1",
                         commit_message="Add converted weights")
print(info.pr_revision)
"#;
    let out = std::process::Command::new(python)
        .args([
            "-c",
            script,
            &theirs.url,
            TOKEN,
            local.to_str().unwrap(),
            if create_pr { "1" } else { "0" },
        ])
        .env("HF_HOME", tmp.path().join("hf_home"))
        .env("HF_HUB_DISABLE_XET", "1")
        .env("HF_HUB_DISABLE_TELEMETRY", "1")
        .env_remove("HF_TOKEN")
        .env_remove("HF_ENDPOINT")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "upload_folder failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected_pr = if create_pr { "refs/pr/1" } else { "None" };
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected_pr);
    let (their_kinds, their_entries) = protocol_summary(&theirs, create_pr);

    assert_eq!(our_entries, their_entries);
    assert_eq!(our_kinds, their_kinds);
    for r in &theirs.requests() {
        assert_ne!(
            r.status, 404,
            "huggingface_hub used a route the fake Hub lacks: {} {}",
            r.method, r.path
        );
    }
    // The same URLs and query strings on the Hub routes.
    let paths = |fake: &FakeHub, kind: &str| -> Vec<String> {
        fake.requests()
            .iter()
            .filter(|r| r.kind() == kind)
            .map(|r| r.path.clone())
            .collect()
    };
    for kind in ["preupload", "commit", "lfs-batch"] {
        assert_eq!(paths(&ours, kind), paths(&theirs, kind), "{kind}");
    }
    // Per kind: whether the token was sent, and the body's content type.
    let headers = |fake: &FakeHub| -> std::collections::BTreeSet<(&'static str, bool, String)> {
        fake.requests()
            .iter()
            .map(|r| {
                let content_type = r
                    .header("content-type")
                    .unwrap_or("")
                    .split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string();
                let content_type = if r.method == "PUT" {
                    String::new()
                } else {
                    content_type
                };
                (r.kind(), r.header("authorization").is_some(), content_type)
            })
            .filter(|(k, _, _)| *k != "whoami")
            .collect()
    };
    assert_eq!(headers(&ours), headers(&theirs));
    // The same preupload files (path, sample, size), LFS batch payload and completion parts.
    let payload = |fake: &FakeHub, kind: &str, list: &str, key: &str| -> serde_json::Value {
        let mut v = fake
            .requests()
            .iter()
            .find(|r| r.kind() == kind)
            .unwrap()
            .json
            .clone();
        if let Some(items) = v.get_mut(list).and_then(|l| l.as_array_mut()) {
            items.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
        }
        v
    };
    assert_eq!(
        payload(&ours, "preupload", "files", "path"),
        payload(&theirs, "preupload", "files", "path")
    );
    assert_eq!(
        payload(&ours, "lfs-batch", "objects", "oid"),
        payload(&theirs, "lfs-batch", "objects", "oid")
    );
    assert_eq!(
        payload(&ours, "complete", "parts", "etag"),
        payload(&theirs, "complete", "parts", "etag")
    );
    assert_eq!(
        theirs
            .files_at("org/model", if create_pr { "refs/pr/1" } else { "main" })
            .unwrap()
            .len(),
        6
    );
}

#[cfg(unix)]
#[test]
fn symlinks_leading_outside_the_folder_are_skipped_unless_asked() {
    let fake = FakeHub::start();
    fake.add_repo("org/model", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let folder = tmp.path().join("model");
    std::fs::create_dir_all(folder.join("sub")).unwrap();
    std::fs::write(folder.join("config.json"), b"{\"a\": 1}").unwrap();
    // Outside the folder: stands for /etc/passwd.
    let secret = tmp.path().join("passwd");
    std::fs::write(&secret, b"root:x:0:0:secret\n").unwrap();
    std::os::unix::fs::symlink(&secret, folder.join("tokenizer.json")).unwrap();
    std::os::unix::fs::symlink("../../passwd", folder.join("sub/relative.json")).unwrap();
    // Inside the folder: uploaded with the target's content, as huggingface_hub does.
    std::os::unix::fs::symlink("config.json", folder.join("alias.json")).unwrap();
    std::os::unix::fs::symlink("../config.json", folder.join("sub/up.json")).unwrap();
    let hub = hub_client(&fake, tmp.path(), Some(TOKEN));

    let report = hub
        .push(&folder, "hf://org/model", &PushOptions::default())
        .unwrap();
    let stored = fake.files_at("org/model", "main").unwrap();
    assert_eq!(
        stored.keys().map(String::as_str).collect::<Vec<_>>(),
        ["alias.json", "config.json", "sub/up.json"]
    );
    assert_eq!(*stored["alias.json"].bytes, b"{\"a\": 1}".to_vec());
    assert!(stored
        .values()
        .all(|f| !f.bytes.windows(6).any(|w| w == b"secret")));
    let skipped: Vec<&str> = report.skipped.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(skipped, ["sub/relative.json", "tokenizer.json"]);
    let canonical_secret = std::fs::canonicalize(&secret).unwrap();
    assert!(report.skipped.iter().all(|f| f.target == canonical_secret));
    let json = report.to_json();
    assert_eq!(json["skipped"][1]["path"], "tokenizer.json");
    assert!(json["skipped"][1]["reason"]
        .as_str()
        .unwrap()
        .contains("outside the folder"));

    // Asked for explicitly: uploaded.
    let opts = PushOptions {
        follow_symlinks: true,
        ..Default::default()
    };
    let report = hub.push(&folder, "hf://org/model", &opts).unwrap();
    assert!(report.skipped.is_empty());
    let stored = fake.files_at("org/model", "main").unwrap();
    assert_eq!(
        *stored["tokenizer.json"].bytes,
        b"root:x:0:0:secret\n".to_vec()
    );

    // A huggingface_hub snapshot folder is all symlinks into its repository's blobs/: fine.
    let cache = tempfile::tempdir().unwrap();
    let repo = cache.path().join("models--org--model");
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    let snapshot = repo.join("snapshots/0123456789abcdef0123456789abcdef01234567");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::write(repo.join("blobs/abc"), b"{\"b\": 2}").unwrap();
    std::os::unix::fs::symlink("../../blobs/abc", snapshot.join("config.json")).unwrap();
    std::os::unix::fs::symlink(&secret, snapshot.join("evil.json")).unwrap();
    let report = hub
        .push(&snapshot, "hf://org/model", &PushOptions::default())
        .unwrap();
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].path_in_repo, "config.json");
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].path, "evil.json");
}
