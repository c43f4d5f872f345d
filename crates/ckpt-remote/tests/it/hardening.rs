//! Hostile input from the user or from a server (ckpt issue #14 items 5 and 6): revisions and
//! repository ids that would name files outside the cache, and bodies longer than announced.
//! Everything runs against the fake Hub of `common` on 127.0.0.1.

use ckpt_testhub::download as common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use ckpt_remote::{Hub, HubConfig, PullOptions, RemoteError};
use common::{fake_file, FakeHub};

const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";

fn hub_for(fake: &FakeHub, cache: &Path) -> Hub {
    let mut c = HubConfig::new(&fake.hub_url, cache);
    c.retry_base_delay = Duration::from_millis(1);
    c.read_timeout = Duration::from_secs(10);
    Hub::new(c)
}

fn repo_with(fake: &FakeHub, repo: &str, files: &[(&str, Vec<u8>, bool)]) {
    let mut map = BTreeMap::new();
    for (name, bytes, lfs) in files {
        map.insert(name.to_string(), fake_file(bytes.clone(), *lfs));
    }
    fake.add_repo(repo, COMMIT, map);
}

/// Every file below `dir`, as paths relative to it.
fn files_below(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn revisions_that_leave_the_cache_are_refused_before_any_request() {
    let fake = FakeHub::start();
    repo_with(
        &fake,
        "org/model",
        &[("config.json", b"{}\n".to_vec(), false)],
    );
    // A server that resolves any revision, however it is spelled.
    for name in ["../../../../X", "../../X", "feature/x", "refs/pr/1"] {
        fake.add_ref("org/model", name, COMMIT);
    }
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("home/hub");
    let hub = hub_for(&fake, &cache);

    for rev in [
        "../../../../X",
        "../../X",
        "a/../../X",
        "/etc/x",
        "a\\b",
        ".hidden",
        "x.lock",
        "a//b",
        "@",
        "a@{1}",
        "a b",
        "x:y",
        "v1.",
    ] {
        let opts = PullOptions {
            revision: Some(rev.to_string()),
            ..Default::default()
        };
        let e = hub.pull("org/model", &opts).unwrap_err();
        assert!(matches!(e, RemoteError::Usage(_)), "{rev}: {e:?}");
        assert!(e.to_string().contains("invalid revision"), "{rev}: {e}");
        let core: ckpt_core::Error = e.into();
        assert!(matches!(core, ckpt_core::Error::Usage(_)), "{rev}");
    }
    for uri in [
        "hf://org/model@..%2F..%2F..%2F..%2FX/config.json",
        "hf://org/model@..%2F..%2FX/config.json",
        "hf://org/model@..%2F..%2F..%2F..%2FX",
        "https://huggingface.co/org/model/resolve/..%2F..%2FX/config.json",
    ] {
        let e = hub.resolve_to_local(uri).unwrap_err();
        assert!(
            e.to_string().contains("invalid revision") || matches!(e, RemoteError::Usage(_)),
            "{uri}: {e:?}"
        );
    }
    assert!(fake.requests().is_empty(), "{:?}", fake.requests());
    assert_eq!(
        files_below(work.path()),
        Vec::<String>::new(),
        "nothing written anywhere"
    );

    // Revisions with a '/' are legitimate and nest under refs/, as in huggingface_hub.
    for rev in ["feature/x", "refs/pr/1"] {
        let opts = PullOptions {
            revision: Some(rev.to_string()),
            ..Default::default()
        };
        let r = hub.pull("org/model", &opts).unwrap();
        assert_eq!(r.commit, COMMIT);
        assert_eq!(
            std::fs::read_to_string(cache.join("models--org--model/refs").join(rev)).unwrap(),
            COMMIT
        );
    }
    assert!(files_below(work.path())
        .iter()
        .all(|p| p.starts_with("home/hub/")));
}

#[test]
fn repository_ids_follow_huggingface_hub_rules() {
    let fake = FakeHub::start();
    let work = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, work.path());
    for repo in [
        "org/na--me",
        "org/name.git",
        "-org/name",
        "org/name-",
        "org/.name",
        "org/a..b",
        "org/na%2Fme",
    ] {
        let e = hub.pull(repo, &PullOptions::default()).unwrap_err();
        assert!(matches!(e, RemoteError::BadUri { .. }), "{repo}: {e:?}");
    }
    let long = format!("org/{}", "a".repeat(97));
    assert!(hub.pull(&long, &PullOptions::default()).is_err());
    assert!(fake.requests().is_empty());
    assert!(files_below(work.path()).is_empty());
}

#[test]
fn unsafe_paths_and_commits_from_the_server_are_refused() {
    let fake = FakeHub::start();
    repo_with(
        &fake,
        "org/evil",
        &[
            ("config.json", b"{}\n".to_vec(), false),
            ("../../../../evil.json", b"x".to_vec(), false),
        ],
    );
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hub");
    let hub = hub_for(&fake, &cache);
    let e = hub.pull("org/evil", &PullOptions::default()).unwrap_err();
    assert!(
        matches!(e, RemoteError::InvalidResponse { .. }) && e.to_string().contains("evil.json"),
        "{e:?}"
    );
    assert!(files_below(work.path()).is_empty());
}

#[test]
fn a_body_longer_than_announced_is_stopped_at_once() {
    let fake = FakeHub::start();
    let weights: Vec<u8> = (0..120u8).collect();
    repo_with(
        &fake,
        "org/endless",
        &[("model.safetensors", weights.clone(), true)],
    );
    // The Hub announces 120 bytes (X-Linked-Size); the CDN then sends 32 MB more without a
    // Content-Length (a stand-in for "forever").
    fake.with(|s| s.overlong_cdn_body = Some(32 << 20));
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hub");
    let hub = hub_for(&fake, &cache);
    let e = hub
        .pull("org/endless", &PullOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::InvalidResponse { .. })
            && e.to_string().contains("more than the announced 120 bytes"),
        "{e:?}"
    );
    // At most one byte past the announced size was read, and nothing of it was kept.
    assert!(
        hub.stats().bytes() <= 120 + 1 + 64 * 1024,
        "{} bytes read",
        hub.stats().bytes()
    );
    let blobs = cache.join("models--org--endless/blobs");
    assert_eq!(files_below(&blobs), Vec::<String>::new());

    // A well-behaved server afterwards: the same pull succeeds.
    fake.with(|s| s.overlong_cdn_body = None);
    let r = hub.pull("org/endless", &PullOptions::default()).unwrap();
    assert_eq!(std::fs::read(&r.files[0].local_path).unwrap(), weights);
}

#[test]
fn a_range_response_longer_than_requested_is_an_error() {
    let fake = FakeHub::start();
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/remote/all_dtypes.expected.safetensors"),
    )
    .unwrap();
    repo_with(&fake, "org/ranged", &[("model.safetensors", bytes, true)]);
    let work = tempfile::tempdir().unwrap();
    let hub = hub_for(&fake, work.path());
    assert!(hub.inspect("hf://org/ranged/model.safetensors").is_ok());
    fake.with(|s| s.overlong_cdn_body = Some(1 << 20));
    let e = hub
        .inspect("hf://org/ranged/model.safetensors")
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::InvalidResponse { .. }) && e.to_string().contains("longer than"),
        "{e:?}"
    );
    assert!(hub.stats().bytes() < 1 << 20);
}

/// #14 leftover: a download whose size nobody announces (no X-Linked-Size, no Content-Length, a
/// body that never ends). An LFS file is refused before any byte is fetched (the Hub always
/// announces their size); a regular file is stopped at `MAX_UNSIZED_DOWNLOAD` (or the free
/// space), and nothing is left behind.
#[test]
fn a_download_of_unannounced_size_is_bounded() {
    let fake = FakeHub::start();
    repo_with(
        &fake,
        "org/unsized",
        &[
            ("model.safetensors", (0..120u8).collect(), true),
            ("config.json", b"{}".to_vec(), false),
        ],
    );
    fake.with(|s| s.unsized_bodies = true);
    let work = tempfile::tempdir().unwrap();
    let cache = work.path().join("hub");
    let hub = hub_for(&fake, &cache);

    let only = |pattern: &str| PullOptions {
        include: vec![pattern.to_string()],
        ..PullOptions::default()
    };
    let e = hub
        .pull("org/unsized", &only("model.safetensors"))
        .unwrap_err();
    assert!(
        matches!(e, RemoteError::InvalidResponse { .. })
            && e.to_string().contains("announced no size (X-Linked-Size)"),
        "{e:?}"
    );
    assert!(
        fake.requests()
            .iter()
            .all(|r| !r.path.starts_with("/blobs/")),
        "the LFS file was not fetched"
    );

    let e = hub.pull("org/unsized", &only("config.json")).unwrap_err();
    assert!(
        matches!(e, RemoteError::InvalidResponse { .. })
            && e.to_string().contains(&format!(
                "more than {} bytes",
                ckpt_remote::pull::MAX_UNSIZED_DOWNLOAD
            )),
        "{e:?}"
    );
    let read = hub.stats().bytes();
    assert!(
        read <= ckpt_remote::pull::MAX_UNSIZED_DOWNLOAD + (1 << 20),
        "{read} bytes read"
    );
    let blobs = cache.join("models--org--unsized/blobs");
    assert_eq!(files_below(&blobs), Vec::<String>::new());
}
