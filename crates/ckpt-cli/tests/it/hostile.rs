//! The hostile-input corpus (tests/fixtures/hostile, made by scripts/gen-hostile.py): every file
//! gives exactly its expected exit code and error, quickly, without executing anything.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn every_hostile_file_gives_its_expected_error() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hostile");
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
    let expected = expected.as_object().unwrap();
    assert!(expected.len() >= 45);
    let work = tempfile::tempdir().unwrap();
    for (file, want) in expected {
        let code = want["exit_code"].as_i64().unwrap() as i32;
        let needle = want["error_contains"].as_str().unwrap();
        for cmd in ["inspect", "convert"] {
            let mut c = Command::new(env!("CARGO_BIN_EXE_ckpt"));
            c.arg(cmd).arg(dir.join(file));
            if cmd == "convert" {
                c.arg(work.path().join("out.safetensors"));
            }
            let start = Instant::now();
            let out = c
                .current_dir(work.path())
                .env("FIXTURE_MARKER_DIR", work.path())
                .output()
                .unwrap();
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "{file}: took {:?}",
                start.elapsed()
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(!err.contains("panicked"), "{file}: {err}");
            if cmd == "inspect" || code != 0 {
                assert_eq!(out.status.code(), Some(code), "{cmd} {file}: {err}");
                assert!(
                    err.contains(needle),
                    "{cmd} {file}: expected '{needle}' in: {err}"
                );
                assert!(
                    err.contains(file.as_str()) || code == 0,
                    "{cmd} {file}: error names the file: {err}"
                );
            }
            let _ = std::fs::remove_file(work.path().join("out.safetensors"));
            let left: Vec<_> = std::fs::read_dir(work.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(
                left.is_empty(),
                "{cmd} {file}: left {left:?} (a marker would mean code ran)"
            );
        }
    }
}
