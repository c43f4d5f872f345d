//! Interrupted and starved runs: `ckpt convert` killed with SIGKILL at random moments, and writing
//! into a size-limited file, must leave either nothing or a complete, valid output, and an
//! untouched source.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ckpt_core::{Buffer, DType, Storage, Tensor};

use ckpt_testhub::download as common;

fn ckpt() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ckpt"))
}

/// A safetensors model big enough that a conversion takes a noticeable time.
fn make_source(dir: &Path) -> PathBuf {
    let mut tensors = Vec::new();
    for i in 0..24u32 {
        let n = 256 * 1024;
        let bytes: Vec<u8> = (0..n)
            .flat_map(|j| ((j as f32) * 0.001 + i as f32).to_le_bytes())
            .collect();
        let len = bytes.len();
        let st = Storage::new(Buffer::owned("mem", bytes), 0, len, "mem").unwrap();
        tensors.push(Tensor::contiguous(
            format!("layers.{i}.weight"),
            DType::F32,
            vec![512, 512],
            st,
        ));
    }
    let p = dir.join("src.safetensors");
    ckpt_safetensors::write(&p, &tensors, &Default::default(), false, &mut |_| {}).unwrap();
    p
}

/// xorshift: reproducible "random" kill moments without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound.max(1)
    }
}

fn assert_complete(out: &Path, src: &Path, to_bin: bool) {
    let back = if to_bin {
        ckpt_torch::read(out, &Default::default()).expect("complete .bin")
    } else {
        ckpt_safetensors::read(out).expect("complete safetensors")
    };
    let want = ckpt_safetensors::read(src).unwrap();
    assert_eq!(back.tensors.len(), want.tensors.len());
    for t in &want.tensors {
        let g = back.get(&t.name).expect("tensor present");
        assert!(
            g.bytes().unwrap() == t.bytes().unwrap(),
            "{} intact",
            t.name
        );
    }
}

/// Hidden entries (temporaries) in `dir`.
fn hidden(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    v.sort();
    v
}

/// SIGKILL at random moments. With unnamed temporaries (O_TMPFILE, the default on Linux) a
/// killed run leaves no bytes at all; with named ones (`named`: `CKPT_NO_TMPFILE=1`, as on a
/// filesystem without O_TMPFILE) it may leave `.out.*.ckpt-tmp-PID`, which the next run writing
/// anything into the folder removes.
fn kill_runs(to_bin: bool, runs: usize, named: bool) {
    let work = tempfile::tempdir().unwrap();
    let src = make_source(work.path());
    let src_bytes = std::fs::read(&src).unwrap();
    let out = work
        .path()
        .join(if to_bin { "out.bin" } else { "out.safetensors" });
    let run = |dst: &Path| {
        let mut c = ckpt();
        c.args(["convert", "-q"]).arg(&src).arg(dst);
        if named {
            c.env("CKPT_NO_TMPFILE", "1");
        }
        c
    };
    let t0 = Instant::now();
    assert!(run(&out).status().unwrap().success());
    let full = t0.elapsed().as_micros() as u64;
    std::fs::remove_file(&out).unwrap();

    let mut rng = Rng(0x5eed_1234 ^ runs as u64 ^ to_bin as u64 ^ named as u64);
    let (mut killed, mut finished, mut left_named) = (0, 0, 0);
    for _ in 0..runs {
        let _ = std::fs::remove_file(&out);
        let mut child = run(&out).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next(full * 12 / 10)));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if status.success() {
            finished += 1;
        } else {
            killed += 1;
        }
        if out.exists() {
            assert_complete(&out, &src, to_bin);
        }
        for e in std::fs::read_dir(work.path()).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                name == "src.safetensors" || name.starts_with('.') || out.ends_with(&name),
                "unexpected file {name} after a kill"
            );
        }
        let left = hidden(work.path());
        if named {
            left_named += left.len();
            let prefix = format!(".{}.ckpt-tmp-", out.file_name().unwrap().to_string_lossy());
            assert!(
                left.iter().all(|n| n.starts_with(&prefix)),
                "only temporaries of this output: {left:?}"
            );
        } else {
            assert!(
                left.is_empty(),
                "a SIGKILL leaves no hidden temporary: {left:?}"
            );
        }
    }
    assert_eq!(std::fs::read(&src).unwrap(), src_bytes, "source unchanged");
    assert!(
        killed > 0,
        "some runs were actually interrupted ({killed} killed, {finished} finished)"
    );
    if named {
        assert!(
            left_named > 0,
            "killed runs left named temporaries to clean"
        );
    }
    // A later run into the same folder, to another output name, removes what killed runs left
    // behind and succeeds.
    let other = work.path().join(if to_bin {
        "other.bin"
    } else {
        "other.safetensors"
    });
    assert!(run(&other).status().unwrap().success());
    assert_complete(&other, &src, to_bin);
    let leftovers = hidden(work.path());
    assert!(
        leftovers.is_empty(),
        "stale temporaries removed: {leftovers:?}"
    );
}

#[test]
fn sigkill_during_convert_to_safetensors_leaves_nothing_partial() {
    kill_runs(false, 50, false);
}

#[test]
fn sigkill_during_convert_to_bin_leaves_nothing_partial() {
    kill_runs(true, 50, false);
}

#[test]
fn sigkill_with_named_temporaries_leaves_them_to_the_next_run_in_the_folder() {
    kill_runs(false, 30, true);
    kill_runs(true, 30, true);
}

/// Concurrent runs into one folder (named temporaries, each cleaning the folder as it starts)
/// never remove each other's temporaries: all succeed with complete outputs.
#[test]
fn concurrent_runs_in_one_folder_keep_each_others_temporaries() {
    let work = tempfile::tempdir().unwrap();
    let src = make_source(work.path());
    for named in [true, false] {
        let children: Vec<_> = (0..4)
            .map(|i| {
                let mut c = ckpt();
                c.args(["convert", "-q", "--force"])
                    .arg(&src)
                    .arg(work.path().join(format!("out{i}.safetensors")));
                if named {
                    c.env("CKPT_NO_TMPFILE", "1");
                }
                c.spawn().unwrap()
            })
            .collect();
        for (i, mut c) in children.into_iter().enumerate() {
            assert!(c.wait().unwrap().success(), "run {i} (named {named})");
            assert_complete(
                &work.path().join(format!("out{i}.safetensors")),
                &src,
                false,
            );
        }
        assert!(hidden(work.path()).is_empty());
    }
}

#[test]
fn full_disk_gives_a_clear_error_and_no_output() {
    let work = tempfile::tempdir().unwrap();
    let src = make_source(work.path());
    for out_name in ["out.safetensors", "out.bin"] {
        let out = work.path().join(out_name);
        // A 1 MB file-size limit stands in for a full disk: writes past it fail with EFBIG.
        let cmd = format!(
            "ulimit -f 1024; trap '' XFSZ; exec '{}' convert '{}' '{}'",
            env!("CARGO_BIN_EXE_ckpt"),
            src.display(),
            out.display()
        );
        let r = Command::new("bash").args(["-c", &cmd]).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr);
        assert!(!r.status.success(), "{out_name}: must fail");
        assert!(
            err.contains("too large") || err.contains("No space"),
            "{out_name}: says why: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "{out_name}: no output");
        let left: Vec<_> = std::fs::read_dir(work.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n != "src.safetensors")
            .collect();
        assert!(left.is_empty(), "{out_name}: temporaries removed: {left:?}");
    }
}

/// SIGKILL at random moments during `quantize` and `merge-lora`: the output is absent or
/// complete (byte-identical to an uninterrupted run), and a later run succeeds.
fn kill_any(name: &str, runs: usize, make: &dyn Fn(&Path) -> Command, out_is_dir: bool) {
    let work = tempfile::tempdir().unwrap();
    let out = work
        .path()
        .join(if out_is_dir { "out" } else { "out.gguf" });
    let reference = work
        .path()
        .join(if out_is_dir { "ref" } else { "ref.gguf" });
    let t0 = Instant::now();
    assert!(
        make(&reference).status().unwrap().success(),
        "{name}: uninterrupted run"
    );
    let full = t0.elapsed().as_micros() as u64;
    let read_all = |p: &Path| -> Vec<(String, Vec<u8>)> {
        if p.is_dir() {
            let mut v: Vec<_> = std::fs::read_dir(p)
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|f| {
                    (
                        f.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read(&f).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v
        } else {
            vec![(String::new(), std::fs::read(p).unwrap())]
        }
    };
    let want = read_all(&reference);
    let mut rng = Rng(0xfeed ^ runs as u64 ^ name.len() as u64);
    let mut killed = 0;
    for _ in 0..runs {
        let _ = std::fs::remove_dir_all(&out);
        let _ = std::fs::remove_file(&out);
        let mut child = make(&out).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next(full * 12 / 10)));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            killed += 1;
        }
        if out.exists() {
            assert!(
                read_all(&out) == want,
                "{name}: an output that exists is complete"
            );
        }
        if !out_is_dir {
            let left = hidden(work.path());
            assert!(
                left.is_empty(),
                "{name}: a SIGKILL leaves no temporary: {left:?}"
            );
        }
    }
    assert!(killed > 0, "{name}: some runs were interrupted");
    // A folder output cannot be unnamed: what killed runs left is removed by the next run.
    assert!(
        make(&out).status().unwrap().success(),
        "{name}: a later run"
    );
    assert!(
        read_all(&out) == want,
        "{name}: complete after the later run"
    );
    let left = hidden(work.path());
    assert!(
        left.is_empty(),
        "{name}: stale temporaries removed: {left:?}"
    );
}

#[test]
fn sigkill_during_quantize_and_merge_lora_leaves_nothing_partial() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let f16 = fx.join("gguf/tiny-llama-spm.f16.gguf");
    kill_any(
        "quantize",
        50,
        &|out: &Path| {
            let mut c = ckpt();
            c.args(["quantize", "-q", "--force"])
                .arg(&f16)
                .arg(out)
                .arg("Q4_K_M");
            c
        },
        false,
    );
    let base = fx.join("lora/f32/base-llama-bias");
    let adapter = fx.join("lora/f32/d_all_linear_modules_to_save_bias/adapter");
    kill_any(
        "merge-lora",
        50,
        &|out: &Path| {
            let mut c = ckpt();
            c.args(["merge-lora", "-q", "--force", "--base"])
                .arg(&base)
                .arg("--adapter")
                .arg(&adapter)
                .arg("--out")
                .arg(out);
            c
        },
        true,
    );
}

/// What a killed `pull` may leave in the cache: finished blobs whose content matches their name
/// (sha256 for LFS files, git blob sha1 for the rest), `.incomplete` files to resume from, lock
/// files, and snapshot links that only ever point at finished blobs. Returns whether the snapshot
/// is complete.
fn assert_cache_consistent(
    repo_dir: &Path,
    commit: &str,
    files: &std::collections::BTreeMap<String, common::FakeFile>,
) -> bool {
    let blobs = repo_dir.join("blobs");
    if let Ok(entries) = std::fs::read_dir(&blobs) {
        for e in entries {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".incomplete") || name.contains(".tmp") {
                continue;
            }
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                common::sha256_hex(&bytes) == name || common::git_sha1_hex(&bytes) == name,
                "blob {name} holds exactly the content it is named after ({} bytes)",
                bytes.len()
            );
        }
    }
    let snap = repo_dir.join("snapshots").join(commit);
    let mut linked = 0;
    for (path, file) in files {
        let pointer = snap.join(path);
        if std::fs::symlink_metadata(&pointer).is_err() {
            continue;
        }
        let got = std::fs::read(&pointer)
            .unwrap_or_else(|e| panic!("snapshot link {path} resolves: {e}"));
        assert!(got == *file.bytes, "snapshot {path} is the whole file");
        linked += 1;
    }
    if let Ok(r) = std::fs::read_to_string(repo_dir.join("refs/main")) {
        assert_eq!(r.trim(), commit, "refs/main holds the whole commit hash");
    }
    linked == files.len()
}

/// SIGKILL at random moments during `pull` against a local fake Hub: the cache never holds a
/// wrong blob or a dangling or partial snapshot file, and the next pull resumes and completes.
#[test]
fn sigkill_during_pull_keeps_the_cache_consistent() {
    let hub = common::FakeHub::start();
    let commit = "c0ffee00000000000000000000000000000000aa";
    let mut files = std::collections::BTreeMap::new();
    for (i, mb) in [(1u8, 12usize), (2, 6)] {
        let bytes: Vec<u8> = (0..mb << 20)
            .map(|j| (j as u32).wrapping_mul(2654435761).rotate_left(i as u32) as u8)
            .collect();
        files.insert(
            format!("model-0000{i}-of-00002.safetensors"),
            common::fake_file(bytes, true),
        );
    }
    files.insert(
        "config.json".to_string(),
        common::fake_file(br#"{"model_type": "llama"}"#.to_vec(), false),
    );
    hub.add_repo("org/big", commit, files.clone());

    let work = tempfile::tempdir().unwrap();
    let pull = |cache: &Path| {
        let mut c = ckpt();
        c.args(["pull", "-q", "org/big"])
            .env("HF_ENDPOINT", &hub.hub_url)
            .env("HF_HUB_CACHE", cache)
            .env_remove("HF_TOKEN")
            .env_remove("HF_HUB_OFFLINE");
        c
    };
    let t0 = Instant::now();
    let reference = work.path().join("ref-cache");
    let out = pull(&reference).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let full = t0.elapsed().as_micros() as u64;
    assert!(assert_cache_consistent(
        &reference.join("models--org--big"),
        commit,
        &files
    ));

    let cache = work.path().join("cache");
    let repo_dir = cache.join("models--org--big");
    let mut rng = Rng(0x5eed_f00d);
    let (mut killed, mut completed, mut resumed) = (0, 0, 0);
    for _ in 0..50 {
        let had_partial = repo_dir.join("blobs").exists();
        let mut child = pull(&cache)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(rng.next(full * 12 / 10)));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            killed += 1;
        }
        if assert_cache_consistent(&repo_dir, commit, &files) {
            completed += 1;
            resumed += had_partial as usize;
            // Start over so the next runs are interrupted again.
            std::fs::remove_dir_all(&cache).unwrap();
        }
    }
    assert!(
        killed > 0,
        "some pulls were interrupted ({killed} killed, {completed} completed)"
    );
    // Whatever the last kill left, a plain pull finishes it.
    let out = pull(&cache).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        assert_cache_consistent(&repo_dir, commit, &files),
        "the final pull completes the snapshot"
    );
    eprintln!(
        "pull: {killed} of 50 runs killed, {completed} completed ({resumed} after an earlier kill)"
    );
}

/// merge-lora's scratch folder (issue #14): the old code removed and re-created a fixed name,
/// `.OUT.ckpt-tmp-PID.merge`, so a symlink planted there between the two calls was followed and
/// the merged model written into the link's target. A thread here plants a symlink to a victim
/// folder at that name (this process's PID: the merge runs in-process) as fast as it can while
/// merges run; the victim must stay empty and the planted link be left alone.
#[cfg(unix)]
#[test]
fn merge_lora_scratch_folder_never_follows_a_planted_symlink() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let base =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf/tiny-llama-spm");
    let work = tempfile::tempdir().unwrap();
    // A rank-4 adapter on layer 0's q_proj (256 x 256).
    let adapter = work.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let m = "base_model.model.model.layers.0.self_attn.q_proj";
    let lora = |name: String, shape: Vec<u64>| {
        let bytes: Vec<u8> = (0..1024u32)
            .flat_map(|i| ((i % 7) as f32 / 1e3).to_le_bytes())
            .collect();
        let st = Storage::new(Buffer::owned("m", bytes), 0, 4096, "m").unwrap();
        let mut t = Tensor::contiguous("x", DType::F32, vec![], st);
        t.name = name;
        t.shape = shape;
        t
    };
    ckpt_safetensors::write(
        &adapter.join("adapter_model.safetensors"),
        &[
            lora(format!("{m}.lora_A.weight"), vec![4, 256]),
            lora(format!("{m}.lora_B.weight"), vec![256, 4]),
        ],
        &Default::default(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let victim = work.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    let out = work.path().join("merged.gguf");
    let old = ckpt_core::atomic::temp_path_for(&out).with_extension("merge");
    let stop = Arc::new(AtomicBool::new(false));
    let planter = {
        let (stop, old, victim) = (stop.clone(), old.clone(), victim.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::os::unix::fs::symlink(&victim, &old);
            }
        })
    };
    let gguf = ckpt_convert::gguf::GgufOptions {
        outtype: ckpt_convert::gguf::OutType::F16,
        overwrite: true,
        ..Default::default()
    };
    let mut failure = None;
    for _ in 0..20 {
        let r = ckpt_lora::merge::merge_lora_to_gguf(
            &base,
            &[(adapter.clone(), 1.0)],
            &out,
            &Default::default(),
            &gguf,
        );
        let in_victim: Vec<_> = std::fs::read_dir(&victim)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        if let Err(e) = r {
            failure = Some(format!("merge failed: {e}"));
            break;
        }
        if !in_victim.is_empty() {
            failure = Some(format!("written into the victim: {in_victim:?}"));
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    planter.join().unwrap();
    assert!(failure.is_none(), "{}", failure.unwrap());
    assert!(out.is_file());
    assert!(std::fs::symlink_metadata(&old)
        .unwrap()
        .file_type()
        .is_symlink());
    let left: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.') && n != old.file_name().unwrap().to_str().unwrap())
        .filter(|n| n != "adapter")
        .collect();
    assert!(left.is_empty(), "scratch left behind: {left:?}");
}

/// `convert MODEL.gguf OUT --to bin` builds a safetensors folder first (issue #14): the old code
/// removed whatever sat at its fixed scratch name `.OUT.ckpt-tmp-PID.export` and reused the
/// name. Here a folder (holding a file and a link to a victim folder) is planted at that name for
/// the child's PID as soon as it starts; the export must succeed and leave it, and the victim,
/// alone, and leave no scratch folder of its own.
#[cfg(unix)]
#[test]
fn export_scratch_folder_leaves_a_planted_folder_alone() {
    let fx = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf");
    let work = tempfile::tempdir().unwrap();
    let victim = work.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("precious.txt"), b"keep").unwrap();
    let out = work.path().join("out");
    let child = ckpt()
        .args(["convert", "-q"])
        .arg(fx.join("tiny-llama-spm.Q4_K_M.gguf"))
        .arg(&out)
        .args(["--to", "bin"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let planted = work
        .path()
        .join(format!(".out.ckpt-tmp-{}.export", child.id()));
    std::fs::create_dir(&planted).unwrap();
    std::fs::write(planted.join("theirs.txt"), b"not ckpt's").unwrap();
    std::os::unix::fs::symlink(&victim, planted.join("model")).unwrap();
    let r = child.wait_with_output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("config.json").is_file());
    assert_eq!(
        std::fs::read(planted.join("theirs.txt")).unwrap(),
        b"not ckpt's",
        "the planted folder was removed or changed"
    );
    assert!(std::fs::symlink_metadata(planted.join("model"))
        .unwrap()
        .file_type()
        .is_symlink());
    let in_victim: Vec<_> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(in_victim, ["precious.txt"]);
    let mut left: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            planted.file_name().unwrap().to_str().unwrap(),
            "out",
            "victim"
        ]
    );
}
