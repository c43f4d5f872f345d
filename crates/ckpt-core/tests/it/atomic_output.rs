//! Crash-safe output against a hostile folder: symlinks planted at every temporary name ckpt
//! could choose, and temporaries left behind by dead, live, and unrelated processes.
#![cfg(target_os = "linux")]

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use ckpt_core::atomic::{temp_candidates, temp_path_for, AtomicDir, AtomicFile};

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ckpt-atomic-it-{}-{tag}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Symlinks (to an existing file, and dangling) at every name ckpt could choose for the
/// temporary: a new output and a `--force` replacement both leave the targets untouched.
#[test]
fn file_output_never_follows_a_symlink_at_a_temporary_name() {
    let dir = tempdir("file-symlink");
    let victim = dir.join("victim");
    fs::write(&victim, b"secret").unwrap();
    let dangling = dir.join("nowhere");
    let out = dir.join("out.safetensors");
    let names = temp_candidates(&out);
    for (i, n) in names.iter().enumerate() {
        symlink(if i % 2 == 0 { &victim } else { &dangling }, n).unwrap();
    }
    symlink(&victim, temp_path_for(&out)).unwrap();

    let mut f = AtomicFile::create(&out, false).unwrap();
    f.write_all(b"first").unwrap();
    f.commit().unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"first");
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"secret",
        "symlink target unchanged"
    );
    assert!(!dangling.exists(), "dangling symlink target not created");

    // --force over the existing output: the finished file needs a temporary name for the final
    // rename, and every such name is a planted symlink.
    let mut f = AtomicFile::create(&out, true).unwrap();
    f.write_all(b"second").unwrap();
    match f.commit() {
        Ok(()) => assert_eq!(fs::read(&out).unwrap(), b"second"),
        Err(e) => {
            assert!(e.to_string().contains("all taken"), "{e}");
            assert_eq!(fs::read(&out).unwrap(), b"first", "old output kept");
        }
    }
    assert_eq!(
        fs::read(&victim).unwrap(),
        b"secret",
        "symlink target unchanged"
    );
    assert!(!dangling.exists(), "dangling symlink target not created");
    for n in &names {
        assert!(
            fs::symlink_metadata(n).unwrap().file_type().is_symlink(),
            "{} left alone",
            n.display()
        );
    }
    // With one name free the replacement succeeds.
    fs::remove_file(&names[5]).unwrap();
    let mut f = AtomicFile::create(&out, true).unwrap();
    f.write_all(b"third").unwrap();
    f.commit().unwrap();
    assert_eq!(fs::read(&out).unwrap(), b"third");
    assert_eq!(fs::read(&victim).unwrap(), b"secret");
    assert!(
        fs::symlink_metadata(&names[5]).is_err(),
        "temporary name gone"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A symlink at the output name itself: without --force the output is refused (even when the
/// link dangles), with --force the link is replaced, never written through.
#[test]
fn file_output_replaces_a_symlink_at_the_final_name_without_following_it() {
    let dir = tempdir("final-symlink");
    let victim = dir.join("victim");
    fs::write(&victim, b"secret").unwrap();
    let out = dir.join("out.gguf");
    symlink(dir.join("nowhere"), &out).unwrap();
    let mut f = AtomicFile::create(&out, false).unwrap();
    f.write_all(b"data").unwrap();
    let e = f.commit().unwrap_err();
    assert!(e.to_string().contains("already exists"), "{e}");
    assert!(!dir.join("nowhere").exists());
    fs::remove_file(&out).unwrap();
    symlink(&victim, &out).unwrap();
    assert!(AtomicFile::create(&out, false).is_err());
    let mut f = AtomicFile::create(&out, true).unwrap();
    f.write_all(b"data").unwrap();
    f.commit().unwrap();
    assert!(!fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
    assert_eq!(fs::read(&out).unwrap(), b"data");
    assert_eq!(fs::read(&victim).unwrap(), b"secret");
    fs::remove_dir_all(&dir).unwrap();
}

/// Folder outputs: symlinks to a directory at every temporary name ckpt could choose (and at
/// the scratch name) are not written through.
#[test]
fn folder_output_never_follows_a_symlink_at_a_temporary_name() {
    let dir = tempdir("dir-symlink");
    let victim = dir.join("victim-dir");
    fs::create_dir(&victim).unwrap();
    let out = dir.join("model");
    let names = temp_candidates(&out);
    for n in &names[..names.len() - 1] {
        symlink(&victim, n).unwrap();
    }
    let d = AtomicDir::create(&out, false).unwrap();
    assert_eq!(d.path(), names[names.len() - 1].as_path());
    let mut f = AtomicFile::in_atomic_dir(&d.path().join("model.safetensors")).unwrap();
    f.write_all(b"weights").unwrap();
    f.commit().unwrap();
    d.commit().unwrap();
    assert_eq!(fs::read(out.join("model.safetensors")).unwrap(), b"weights");
    assert!(
        names_in(&victim).is_empty(),
        "nothing written into the link target"
    );
    // Every name taken: a clear error.
    symlink(&victim, &names[names.len() - 1]).unwrap();
    let e = AtomicDir::create(&out, true)
        .err()
        .expect("all names taken");
    assert!(e.to_string().contains("all taken"), "{e}");
    assert!(names_in(&victim).is_empty());
    // --force replaces a folder (swapped in one step) and a symlink at the output name.
    fs::remove_file(&names[0]).unwrap();
    let d = AtomicDir::create(&out, true).unwrap();
    fs::write(d.path().join("b"), b"2").unwrap();
    d.commit().unwrap();
    assert_eq!(names_in(&out), ["b"]);
    fs::remove_dir_all(&out).unwrap();
    symlink(&victim, &out).unwrap();
    let d = AtomicDir::create(&out, true).unwrap();
    fs::write(d.path().join("c"), b"3").unwrap();
    d.commit().unwrap();
    assert!(fs::symlink_metadata(&out).unwrap().is_dir());
    assert_eq!(names_in(&out), ["c"]);
    assert!(names_in(&victim).is_empty());
    assert!(
        fs::symlink_metadata(&names[0]).is_err(),
        "old output removed"
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// A file in an atomic folder is not written through a symlink either.
#[test]
fn file_in_atomic_dir_refuses_a_symlink() {
    let dir = tempdir("in-dir");
    let victim = dir.join("victim");
    fs::write(&victim, b"secret").unwrap();
    let d = AtomicDir::create(&dir.join("out"), false).unwrap();
    symlink(&victim, d.path().join("a.bin")).unwrap();
    assert!(AtomicFile::in_atomic_dir(&d.path().join("a.bin")).is_err());
    assert_eq!(fs::read(&victim).unwrap(), b"secret");
    drop(d);
    fs::remove_dir_all(&dir).unwrap();
}

/// The output of an unnamed temporary gets the same permissions as a plain new file.
#[test]
fn output_mode_follows_the_umask() {
    let dir = tempdir("mode");
    let out = dir.join("out.bin");
    let mut f = AtomicFile::create(&out, false).unwrap();
    f.write_all(b"x").unwrap();
    f.commit().unwrap();
    let plain = dir.join("plain");
    fs::write(&plain, b"x").unwrap();
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode(),
        fs::metadata(&plain).unwrap().permissions().mode()
    );
    fs::remove_dir_all(&dir).unwrap();
}

/// While in progress, nothing under any name exists (O_TMPFILE); the bytes can still be
/// re-read through `temp_path()` for verification.
#[test]
fn unnamed_temporary_has_no_name_until_commit() {
    let dir = tempdir("unnamed");
    let out = dir.join("out.bin");
    let mut f = AtomicFile::create(&out, false).unwrap();
    if !f.is_unnamed() {
        eprintln!("no O_TMPFILE here; skipped");
        return;
    }
    f.write_all(b"hello").unwrap();
    f.sync().unwrap();
    assert!(names_in(&dir).is_empty(), "{:?}", names_in(&dir));
    assert_eq!(fs::read(f.temp_path()).unwrap(), b"hello");
    f.commit().unwrap();
    assert_eq!(names_in(&dir), ["out.bin"]);
    fs::remove_dir_all(&dir).unwrap();
}

/// A PID that no process has: a child that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// A live process whose executable is called `name` (a copy of `sleep`).
fn live_process(dir: &Path, name: &str) -> Child {
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .expect("sleep");
    let exe = dir.join(name);
    fs::copy(sleep, &exe).unwrap();
    fs::set_permissions(&exe, fs::Permissions::from_mode(0o755)).unwrap();
    let child = Command::new(&exe).arg("60").spawn().unwrap();
    // Wait until the exec has happened (the name is visible in /proc).
    for _ in 0..200 {
        let comm = fs::read_to_string(format!("/proc/{}/comm", child.id())).unwrap_or_default();
        if comm.trim() == name {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child
}

/// Any write into a folder removes the temporaries (files, folders, scratch) of dead ckpt
/// processes there, whatever output they were for; a live ckpt's stay, as do temporaries still
/// locked by a live writer and files that only look similar.
#[test]
fn stale_temporaries_of_dead_processes_are_removed_by_any_later_write() {
    let dir = tempdir("stale");
    let bin = tempdir("stale-bin");
    let dead = dead_pid();
    let mut live = live_process(&bin, "ckpt");
    let mut other = live_process(&bin, "not-it");
    let (live_pid, other_pid) = (live.id(), other.id());

    let stale_file = dir.join(format!(".a.gguf.ckpt-tmp-{dead}"));
    fs::write(&stale_file, vec![0u8; 4096]).unwrap();
    let stale_retry = dir.join(format!(".a.gguf.ckpt-tmp-{dead}-3"));
    fs::write(&stale_retry, b"x").unwrap();
    let stale_dir = dir.join(format!(".model.ckpt-tmp-{dead}"));
    fs::create_dir_all(stale_dir.join("sub")).unwrap();
    fs::write(stale_dir.join("sub/shard.safetensors"), b"x").unwrap();
    let stale_scratch = dir.join(format!(".out.gguf.ckpt-tmp-{dead}.merge"));
    fs::create_dir(&stale_scratch).unwrap();
    let stale_link = dir.join(format!(".l.ckpt-tmp-{dead}"));
    let keep_target = dir.join("keep-target");
    fs::create_dir(&keep_target).unwrap();
    fs::write(keep_target.join("precious"), b"p").unwrap();
    symlink(&keep_target, &stale_link).unwrap();
    // PID reused by a process that is not ckpt: its "temporary" is stale too.
    let reused = dir.join(format!(".b.bin.ckpt-tmp-{other_pid}"));
    fs::write(&reused, b"x").unwrap();
    // A live ckpt process's temporaries stay.
    let live_file = dir.join(format!(".c.bin.ckpt-tmp-{live_pid}"));
    fs::write(&live_file, b"x").unwrap();
    let live_dir = dir.join(format!(".d.ckpt-tmp-{live_pid}"));
    fs::create_dir(&live_dir).unwrap();
    // Locked by a live writer (e.g. a ckpt in another PID namespace): stays.
    let locked = dir.join(format!(".e.bin.ckpt-tmp-{dead}-1"));
    let lock_holder = fs::File::create(&locked).unwrap();
    {
        use std::os::fd::AsRawFd;
        assert_eq!(
            unsafe { libc::flock(lock_holder.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
    }
    // Not temporaries.
    let unrelated = [
        dir.join(format!("visible.ckpt-tmp-{dead}")),
        dir.join(".hidden"),
        dir.join(format!(".f.ckpt-tmp-{dead}x")),
    ];
    for u in &unrelated {
        fs::write(u, b"u").unwrap();
    }

    let out = dir.join("fresh.safetensors");
    let mut f = AtomicFile::create(&out, false).unwrap();
    f.write_all(b"new").unwrap();
    f.commit().unwrap();

    for gone in [
        &stale_file,
        &stale_retry,
        &stale_dir,
        &stale_scratch,
        &stale_link,
        &reused,
    ] {
        assert!(
            fs::symlink_metadata(gone).is_err(),
            "{} removed",
            gone.display()
        );
    }
    assert_eq!(fs::read(keep_target.join("precious")).unwrap(), b"p");
    for kept in [&live_file, &live_dir, &locked] {
        assert!(kept.exists(), "{} kept", kept.display());
    }
    for u in &unrelated {
        assert!(u.exists(), "{} kept", u.display());
    }
    // A folder output cleans up too, and the live process's temporaries go once it is dead.
    live.kill().unwrap();
    live.wait().unwrap();
    drop(lock_holder);
    let d = AtomicDir::create(&dir.join("folder-out"), false).unwrap();
    d.commit().unwrap();
    for gone in [&live_file, &live_dir, &locked] {
        assert!(!gone.exists(), "{} removed", gone.display());
    }
    other.kill().unwrap();
    other.wait().unwrap();
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&bin).unwrap();
}
