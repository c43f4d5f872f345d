//! Files a safe reader must refuse: malicious pickles (nothing may run), compressed records,
//! truncated and inconsistent files.

use crate::common;

use ckpt_core::Error;
use ckpt_torch::ReadOptions;
use common::{fixture, scratch};

const MALICIOUS: &[(&str, &str, &str)] = &[
    (
        "malicious_os_system.bin",
        "os.system",
        "pwned-os-system.marker",
    ),
    (
        "malicious_eval.bin",
        "__builtin__.eval",
        "pwned-eval.marker",
    ),
    (
        "malicious_eval_protocol4.bin",
        "builtins.eval",
        "pwned-eval-p4.marker",
    ),
    (
        "malicious_subprocess.bin",
        "subprocess.call",
        "pwned-subprocess.marker",
    ),
    (
        "malicious_subprocess_py2name.bin",
        "commands.call",
        "pwned-subprocess-py2name.marker",
    ),
];

fn markers_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pwned-") && n.ends_with(".marker"))
        .collect()
}

// One test for all payloads: it changes the working directory, which is process-wide.
#[test]
fn malicious_pickles_are_refused_and_run_nothing() {
    let dir = scratch("malicious");
    std::env::set_var("FIXTURE_MARKER_DIR", &dir);
    let old_cwd = std::env::current_dir().unwrap();
    std::env::set_current_dir(&dir).unwrap();
    for (file, global, _) in MALICIOUS {
        let path = fixture(file);
        for opts in [
            ReadOptions::default(),
            ReadOptions {
                key: Some("embed.weight".into()),
            },
        ] {
            let err = ckpt_torch::read(&path, &opts).expect_err(file);
            let msg = err.to_string();
            assert!(matches!(err, Error::Unsafe { .. }), "{file}: {msg}");
            assert!(
                msg.contains(&format!("'{global}'")),
                "{file}: the error names the global: {msg}"
            );
            assert!(
                msg.contains(file),
                "{file}: the error names the file: {msg}"
            );
        }
        assert!(ckpt_torch::top_level_keys(&path).is_err(), "{file}");
        // Scanning lists the payload's global without running it.
        let globals = ckpt_torch::scan_globals(&path).unwrap();
        assert_eq!(globals.last().map(String::as_str), Some(*global), "{file}");
    }
    std::env::set_current_dir(old_cwd).unwrap();
    assert_eq!(markers_in(&dir), Vec::<String>::new());
    assert_eq!(markers_in(&fixture("")), Vec::<String>::new());
    for (_, _, marker) in MALICIOUS {
        assert!(!dir.join(marker).exists());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

fn refused(file: &str) -> Error {
    ckpt_torch::read(&fixture(file), &ReadOptions::default()).expect_err(file)
}

#[test]
fn deflate_records_are_refused() {
    let err = refused("zip_deflate.bin");
    let msg = err.to_string();
    assert!(matches!(err, Error::Unsafe { .. }), "{msg}");
    assert!(
        msg.contains("zip_deflate.bin") && msg.contains("compressed entries are not supported"),
        "{msg}"
    );
    assert!(msg.contains("zip_deflate/data/0"), "{msg}");
}

#[test]
fn truncated_files_are_refused() {
    for file in ["truncated_half.bin", "truncated_half_legacy.bin"] {
        let err = refused(file);
        let msg = err.to_string();
        assert!(matches!(err, Error::Invalid { .. }), "{file}: {msg}");
        assert!(
            msg.contains(file) && msg.contains("truncated"),
            "{file}: {msg}"
        );
    }
}

#[test]
fn record_size_mismatch_is_refused() {
    let msg = refused("record_size_mismatch.bin").to_string();
    assert!(msg.contains("record_size_mismatch.bin"), "{msg}");
    assert!(
        msg.contains("'record_size_mismatch/data/0'") && msg.contains("48") && msg.contains("96"),
        "{msg}"
    );
}

/// Every prefix of a valid file is refused cleanly (no panic, no partial result).
#[test]
fn every_truncation_is_an_error() {
    let dir = scratch("truncations");
    for file in ["parameters.bin", "legacy_float8.bin"] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        let step = (bytes.len() / 97).max(1);
        for len in (0..bytes.len()).step_by(step) {
            let p = dir.join(format!("cut-{len}-{file}"));
            std::fs::write(&p, &bytes[..len]).unwrap();
            assert!(
                ckpt_torch::read(&p, &ReadOptions::default()).is_err(),
                "{file} cut at {len}"
            );
            let _ = ckpt_torch::scan_globals(&p);
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Random byte flips never panic (the reader either reads or returns an error).
#[test]
fn corrupted_bytes_never_panic() {
    let dir = scratch("corrupt");
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for file in [
        "all_dtypes.bin",
        "all_dtypes_legacy.bin",
        "training_checkpoint.pt",
    ] {
        let bytes = std::fs::read(fixture(file)).unwrap();
        for round in 0..150 {
            let mut b = bytes.clone();
            for _ in 0..1 + round % 4 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
            let p = dir.join(format!("corrupt-{round}-{file}"));
            std::fs::write(&p, &b).unwrap();
            if let Ok(ck) = ckpt_torch::read(&p, &ReadOptions::default()) {
                for t in &ck.tensors {
                    let _ = t.bytes();
                }
            }
            let _ = ckpt_torch::scan_globals(&p);
            std::fs::remove_file(&p).unwrap();
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A file the torch_read fuzz target found (fuzz_empty_view_past_storage.bin): an empty tensor
/// whose view starts past the end of its storage. Materialising it panicked on the slice; an
/// empty view reads nothing, so every tensor's bytes come back (or an error), never a panic.
#[test]
fn an_empty_view_past_its_storage_reads_as_empty() {
    let path = fixture("fuzz_empty_view_past_storage.bin");
    let data = std::fs::read(&path).unwrap();
    let ck = ckpt_torch::read_bytes(&path, data, &ReadOptions::default()).unwrap();
    let mut empty = 0;
    for t in &ck.tensors {
        if t.nbytes() == 0 {
            assert!(t.bytes().unwrap().is_empty(), "{}", t.name);
            empty += 1;
        } else {
            let _ = t.bytes();
        }
    }
    assert!(empty > 0, "the file holds an empty tensor");
}
