//! Crash-safe output: nothing appears under the final name until it is complete.
//!
//! A single-file output is written, on Linux, into an unnamed file (`O_TMPFILE`) in the
//! destination folder and linked into place at the end, so a SIGKILL leaves no bytes behind at
//! all. Where the filesystem has no `O_TMPFILE` (or `/proc` is not mounted), it is written under
//! a hidden temporary name `.NAME.ckpt-tmp-PID` created exclusively (`O_EXCL|O_NOFOLLOW`: a
//! symlink or file planted at that name is never followed nor reused; the next free name
//! `.NAME.ckpt-tmp-PID-K` is taken instead) and renamed into place. Replacing an existing output
//! (`--force`) links the finished file to such an exclusive temporary name and renames it over
//! the destination. A folder output is built in an exclusively created hidden directory of the
//! same form and renamed (or, when it replaces one, exchanged) into place.
//!
//! A failure drops the temporary; Ctrl-C runs [`cleanup_pending`]. Temporaries that a killed run
//! left behind (a named one, a folder, a scratch file derived from [`temp_path_for`]) are removed
//! by the next run that writes into the same folder, once their owner is known to be gone: no
//! process has that PID, or the process is not ckpt, and nobody holds the lock that every live
//! ckpt keeps on its temporaries. A concurrent run's temporaries are left alone.
//!
//! `CKPT_NO_TMPFILE=1` disables the unnamed files (named temporaries only), for tests and for
//! filesystems that claim `O_TMPFILE` but misbehave.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register(p: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(p.to_path_buf());
}

fn unregister(p: &Path) {
    PENDING
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|x| x != p);
}

/// Removes every temporary output still in progress (called from the Ctrl-C handler).
/// Unnamed temporaries need nothing: the kernel frees them when the process exits.
pub fn cleanup_pending() {
    let list = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for p in list {
        remove_entry(&p);
    }
}

/// Removes a file, a symlink (never its target) or a whole directory tree (without following
/// symlinks inside it).
fn remove_entry(p: &Path) {
    match fs::symlink_metadata(p) {
        Ok(m) if m.is_dir() => {
            let _ = fs::remove_dir_all(p);
        }
        Ok(_) => {
            let _ = fs::remove_file(p);
        }
        Err(_) => {}
    }
}

/// Whether to fsync outputs before renaming them (`CKPT_FSYNC=1`). Renaming only complete files
/// already protects against the process dying at any moment; an fsync adds protection against
/// power loss at a large cost (it doubles the time of a 1 GB conversion), and like `cp`,
/// safetensors and huggingface_hub we leave that to the filesystem unless asked.
fn durable() -> bool {
    std::env::var_os("CKPT_FSYNC").is_some_and(|v| v != "0" && !v.is_empty())
}

/// The marker in every temporary name, followed by the owner's PID.
const TAG: &str = ".ckpt-tmp-";

/// How many names `.NAME.ckpt-tmp-PID`, `.NAME.ckpt-tmp-PID-1`, … are tried before giving up
/// when something already sits at them.
const TEMP_NAMES: usize = 16;

fn split(final_path: &Path) -> (PathBuf, String) {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let dir = final_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    (dir.to_path_buf(), name)
}

/// The `k`-th name ckpt may choose for the temporary of `final_path`: `.NAME.ckpt-tmp-PID`,
/// then `.NAME.ckpt-tmp-PID-k`.
fn temp_candidate(final_path: &Path, k: usize) -> PathBuf {
    let (dir, name) = split(final_path);
    let pid = std::process::id();
    if k == 0 {
        dir.join(format!(".{name}{TAG}{pid}"))
    } else {
        dir.join(format!(".{name}{TAG}{pid}-{k}"))
    }
}

/// Every name ckpt may choose for the temporary of `final_path` (in the order it tries them).
pub fn temp_candidates(final_path: &Path) -> Vec<PathBuf> {
    (0..TEMP_NAMES)
        .map(|k| temp_candidate(final_path, k))
        .collect()
}

/// A hidden scratch path beside `final_path`, `.NAME.ckpt-tmp-PID.tmp`, for callers that need
/// scratch files or folders of their own (`temp_path_for(out).with_extension("merge")` gives
/// `.NAME.ckpt-tmp-PID.merge`): the PID tag stays, so a later run removes the scratch if this
/// process is killed. The path is not created; create it exclusively (`create_dir`, or
/// [`AtomicFile`]/[`AtomicDir`] which never follow a symlink planted there).
pub fn temp_path_for(final_path: &Path) -> PathBuf {
    let (dir, name) = split(final_path);
    dir.join(format!(".{name}{TAG}{}.tmp", std::process::id()))
}

/// The PID in a temporary's name `.….ckpt-tmp-PID[-K][.EXT]`, if it is one.
fn temp_owner(file_name: &str) -> Option<u32> {
    if !file_name.starts_with('.') {
        return None;
    }
    let at = file_name.rfind(TAG)?;
    let rest = &file_name[at + TAG.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    let after = &rest[digits.len()..];
    if !(after.is_empty() || after.starts_with('.') || after.starts_with('-')) {
        return None;
    }
    digits.parse().ok()
}

/// Whether `pid` is a live ckpt process (it may still be writing its temporaries). A missing
/// `/proc/PID`, a zombie, or a process that is not ckpt (the PID was reused) is not.
#[cfg(target_os = "linux")]
fn live_ckpt(pid: u32) -> bool {
    let stat = match fs::read(format!("/proc/{pid}/stat")) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return false,
        Err(_) => return true, // cannot tell: keep its files
    };
    let stat = String::from_utf8_lossy(&stat);
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return true;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].trim_start().chars().next();
    if matches!(state, Some('Z') | Some('X') | Some('x')) {
        return false;
    }
    if comm.starts_with("ckpt") {
        return true;
    }
    // The same executable as this process (a renamed ckpt binary, a test binary).
    use std::os::unix::fs::MetadataExt;
    match (
        fs::metadata(format!("/proc/{pid}/exe")),
        fs::metadata("/proc/self/exe"),
    ) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        (Err(e), _) if e.kind() == std::io::ErrorKind::PermissionDenied => false,
        _ => false,
    }
}

#[cfg(not(target_os = "linux"))]
fn live_ckpt(_pid: u32) -> bool {
    true
}

/// Takes a non-blocking exclusive `flock` on `file`: every live ckpt holds one on each of its
/// temporaries, so this fails while the owner is still running (whatever its PID looks like from
/// here, e.g. from another PID namespace sharing the folder).
#[cfg(unix)]
fn try_lock(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a valid open descriptor.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

#[cfg(not(unix))]
fn try_lock(_file: &File) -> bool {
    true
}

/// Whether a live process holds the lock on the temporary at `p` (a symlink is never opened).
fn locked_by_someone(p: &Path, is_dir: bool) -> bool {
    let mut o = fs::OpenOptions::new();
    o.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut flags = libc::O_NOFOLLOW | libc::O_NONBLOCK;
        if is_dir {
            flags |= libc::O_DIRECTORY;
        }
        o.custom_flags(flags);
    }
    #[cfg(not(unix))]
    let _ = is_dir;
    match o.open(p) {
        Ok(f) => !try_lock(&f),
        Err(_) => false,
    }
}

/// Removes every temporary `.*.ckpt-tmp-PID…` (file, folder, scratch, symlink) in `dir` whose
/// owner is gone: no process `PID`, or a zombie, or a process that is not ckpt, and no live
/// process holds its lock. This process's own temporaries and a concurrent ckpt run's are kept.
/// Without `/proc` nothing is removed (liveness cannot be told).
pub(crate) fn remove_stale_temps_in(dir: &Path) {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let me = std::process::id();
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = temp_owner(&fname) else {
            continue;
        };
        if pid == me || live_ckpt(pid) {
            continue;
        }
        let p = e.path();
        let Ok(meta) = fs::symlink_metadata(&p) else {
            continue;
        };
        let is_dir = meta.is_dir();
        if !meta.file_type().is_symlink() && locked_by_someone(&p, is_dir) {
            continue;
        }
        if is_dir {
            let _ = fs::remove_dir_all(&p);
        } else {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Refuses to replace an existing output unless `overwrite` is set.
pub fn check_destination(final_path: &Path, overwrite: bool) -> Result<()> {
    if final_path.exists() && !overwrite {
        return Err(exists_error(final_path));
    }
    Ok(())
}

fn exists_error(final_path: &Path) -> Error {
    Error::Exists {
        path: final_path.to_path_buf(),
    }
}

fn all_taken(final_path: &Path) -> Error {
    let (dir, name) = split(final_path);
    Error::io(
        &dir,
        std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "cannot create a temporary for {}: the {TEMP_NAMES} names .{name}{TAG}{}[-K] \
                 are all taken by other files or symlinks (remove them)",
                final_path.display(),
                std::process::id()
            ),
        ),
    )
}

/// Creates the first free temporary name for `final_path` with `make`, which must fail with
/// `AlreadyExists` when something (a file, a symlink, a folder) is already there.
fn create_exclusive<T>(
    final_path: &Path,
    mut make: impl FnMut(&Path) -> std::io::Result<T>,
) -> Result<(PathBuf, T)> {
    for k in 0..TEMP_NAMES {
        let p = temp_candidate(final_path, k);
        match make(&p) {
            Ok(v) => return Ok((p, v)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Err(all_taken(final_path))
}

/// Opens a new file at `p`, failing if anything (even a dangling symlink) is there.
fn open_exclusive(p: &Path) -> std::io::Result<File> {
    let mut o = fs::OpenOptions::new();
    o.read(true).write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.custom_flags(libc::O_NOFOLLOW).mode(0o666);
    }
    o.open(p)
}

/// An unnamed file in `dir` (`O_TMPFILE`), when the filesystem has it and it can be linked into
/// place later through `/proc/self/fd`.
#[cfg(target_os = "linux")]
fn open_unnamed(dir: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if std::env::var_os("CKPT_NO_TMPFILE").is_some() || !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE)
        .mode(0o666)
        .open(dir)
        .ok()
}

#[cfg(not(target_os = "linux"))]
fn open_unnamed(_dir: &Path) -> Option<File> {
    None
}

#[cfg(unix)]
fn cstr(p: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(p.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Gives the unnamed file `/proc/self/fd/N` the name `to`; fails with `AlreadyExists` if
/// anything is there (a link never replaces nor follows what is at its new name).
#[cfg(target_os = "linux")]
fn link_unnamed(proc_path: &Path, to: &Path) -> std::io::Result<()> {
    let from = cstr(proc_path)?;
    let to = cstr(to)?;
    // SAFETY: two valid NUL-terminated paths.
    let rc = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(_proc_path: &Path, _to: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// `renameat2` with `flags` (`RENAME_NOREPLACE`, `RENAME_EXCHANGE`); `None` when the kernel or
/// filesystem does not support the flag.
#[cfg(target_os = "linux")]
fn rename_flags(from: &Path, to: &Path, flags: libc::c_uint) -> Option<std::io::Result<()>> {
    let (f, t) = match (cstr(from), cstr(to)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return Some(Err(e)),
    };
    // SAFETY: two valid NUL-terminated paths.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        return Some(Ok(()));
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EINVAL) | Some(libc::ENOSYS) | Some(libc::EOPNOTSUPP) => None,
        _ => Some(Err(e)),
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_flags(_from: &Path, _to: &Path, _flags: u32) -> Option<std::io::Result<()>> {
    None
}

#[cfg(target_os = "linux")]
const NOREPLACE: libc::c_uint = libc::RENAME_NOREPLACE;
#[cfg(target_os = "linux")]
const EXCHANGE: libc::c_uint = libc::RENAME_EXCHANGE;
#[cfg(not(target_os = "linux"))]
const NOREPLACE: u32 = 1;
#[cfg(not(target_os = "linux"))]
const EXCHANGE: u32 = 2;

/// Renames `from` to `to` unless something is at `to` (then the usual "already exists").
fn rename_noreplace(from: &Path, to: &Path) -> Result<()> {
    match rename_flags(from, to, NOREPLACE) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(exists_error(to)),
        Some(Err(e)) => Err(Error::io(to, e)),
        None => {
            if fs::symlink_metadata(to).is_ok() {
                return Err(exists_error(to));
            }
            fs::rename(from, to).map_err(|e| Error::io(to, e))
        }
    }
}

/// A single-file output in progress: written through [`AtomicFile::writer`] (or `Write`), it
/// appears under its final name only at [`AtomicFile::commit`]; dropped uncommitted, it leaves
/// nothing behind.
pub struct AtomicFile {
    final_path: PathBuf,
    /// The named temporary, or `/proc/self/fd/N` for an unnamed one; empty once committed.
    tmp_path: PathBuf,
    unnamed: bool,
    overwrite: bool,
    writer: Option<BufWriter<File>>,
    direct: bool,
}

impl AtomicFile {
    /// Starts writing `final_path`: an unnamed file in its folder where the platform allows,
    /// else an exclusively created hidden temporary. Fails with [`Error::Exists`] when the path
    /// exists and `overwrite` is false, or with an I/O error when the folder is not writable.
    pub fn create(final_path: &Path, overwrite: bool) -> Result<AtomicFile> {
        Self::create_with(final_path, overwrite, true)
    }

    fn create_with(final_path: &Path, overwrite: bool, allow_unnamed: bool) -> Result<AtomicFile> {
        check_destination(final_path, overwrite)?;
        let (dir, _) = split(final_path);
        remove_stale_temps_in(&dir);
        let unnamed = if allow_unnamed {
            open_unnamed(&dir)
        } else {
            None
        };
        let (tmp_path, file, unnamed) = match unnamed {
            Some(f) => {
                use std::os::fd::AsRawFd;
                let p = PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd()));
                (p, f, true)
            }
            None => {
                let (p, f) = create_exclusive(final_path, open_exclusive)?;
                register(&p);
                (p, f, false)
            }
        };
        // Marks the temporary as in use (see `remove_stale_temps_in`); an unnamed file gets a
        // name only for an instant at the end, but that name is covered too.
        try_lock(&file);
        Ok(AtomicFile {
            final_path: final_path.to_path_buf(),
            tmp_path,
            unnamed,
            overwrite,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            direct: false,
        })
    }

    /// A file inside a directory that is itself atomic ([`AtomicDir`]): written in place (a
    /// symlink at `path` is refused, not followed).
    pub fn in_atomic_dir(path: &Path) -> Result<AtomicFile> {
        let mut o = fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.custom_flags(libc::O_NOFOLLOW);
        }
        let file = o.open(path).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            final_path: path.to_path_buf(),
            tmp_path: path.to_path_buf(),
            unnamed: false,
            overwrite: true,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            direct: true,
        })
    }

    /// The final name the file gets at commit.
    pub fn path(&self) -> &Path {
        &self.final_path
    }

    /// A path that reads the bytes while the file is in progress (to re-read them before
    /// committing): the hidden temporary, or `/proc/self/fd/N` for an unnamed file. Valid only
    /// while `self` lives.
    pub fn temp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Whether the bytes are in an unnamed file (nothing on disk has a name until commit).
    pub fn is_unnamed(&self) -> bool {
        self.unnamed
    }

    /// Flushes without committing, so the temporary can be re-read and verified first.
    pub fn sync(&mut self) -> Result<()> {
        let w = self.writer.as_mut().expect("writer taken only by commit");
        w.flush().map_err(|e| Error::io(&self.final_path, e))?;
        if durable() {
            w.get_ref()
                .sync_all()
                .map_err(|e| Error::io(&self.final_path, e))?;
        }
        Ok(())
    }

    /// The buffered writer into the temporary file.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("writer taken only by commit")
    }

    /// Flushes, syncs and puts the file in place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.writer.take().unwrap();
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&self.final_path, e.into_error()))?;
        if durable() {
            file.sync_all()
                .map_err(|e| Error::io(&self.final_path, e))?;
        }
        if self.direct {
            drop(file);
        } else if self.unnamed {
            // The descriptor must stay open until the file has a name.
            self.link_into_place()?;
            drop(file);
        } else {
            drop(file);
            if self.overwrite {
                fs::rename(&self.tmp_path, &self.final_path)
                    .map_err(|e| Error::io(&self.final_path, e))?;
            } else {
                rename_noreplace(&self.tmp_path, &self.final_path)?;
            }
            unregister(&self.tmp_path);
        }
        self.direct = true; // nothing left to clean up
        self.tmp_path = PathBuf::new();
        Ok(())
    }

    /// Links the unnamed file at the final name; over an existing output (`--force`) through an
    /// exclusive temporary name renamed over it, so the destination is never missing.
    fn link_into_place(&self) -> Result<()> {
        let exists = |e: &std::io::Error| e.kind() == std::io::ErrorKind::AlreadyExists;
        match link_unnamed(&self.tmp_path, &self.final_path) {
            Ok(()) => return Ok(()),
            Err(e) if exists(&e) && self.overwrite => {}
            Err(e) if exists(&e) => return Err(exists_error(&self.final_path)),
            Err(e) => return Err(Error::io(&self.final_path, e)),
        }
        let (named, ()) = create_exclusive(&self.final_path, |p| link_unnamed(&self.tmp_path, p))?;
        register(&named);
        let renamed = fs::rename(&named, &self.final_path);
        if renamed.is_err() {
            let _ = fs::remove_file(&named);
        }
        unregister(&named);
        renamed.map_err(|e| Error::io(&self.final_path, e))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.writer().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.tmp_path.as_os_str().is_empty() {
            return;
        }
        self.writer.take();
        if !self.unnamed {
            let _ = fs::remove_file(&self.tmp_path);
            unregister(&self.tmp_path);
        }
    }
}

/// A directory output (a sharded model folder) built under an exclusively created hidden name
/// and renamed into place at the end.
pub struct AtomicDir {
    final_path: PathBuf,
    tmp_path: PathBuf,
    overwrite: bool,
    committed: bool,
    /// Holds the lock that tells other runs this folder is in use.
    _lock: Option<File>,
}

impl AtomicDir {
    /// Creates the hidden temporary directory beside `final_path` (its parent folders are
    /// created). Fails with [`Error::Exists`] when the path exists and `overwrite` is false.
    pub fn create(final_path: &Path, overwrite: bool) -> Result<AtomicDir> {
        check_destination(final_path, overwrite)?;
        let (dir, _) = split(final_path);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        remove_stale_temps_in(&dir);
        // mkdir never follows a symlink and fails on anything already there.
        let (tmp_path, ()) = create_exclusive(final_path, |p| fs::create_dir(p))?;
        register(&tmp_path);
        let lock = File::open(&tmp_path).ok();
        if let Some(l) = &lock {
            try_lock(l);
        }
        Ok(AtomicDir {
            final_path: final_path.to_path_buf(),
            tmp_path,
            overwrite,
            committed: false,
            _lock: lock,
        })
    }

    /// Where files are written while the directory is in progress.
    pub fn path(&self) -> &Path {
        &self.tmp_path
    }

    /// Where the directory goes at commit.
    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    /// Renames the finished directory into place; with `overwrite`, an existing output is
    /// swapped out in one step (or moved aside first where the filesystem cannot exchange) and
    /// then deleted.
    pub fn commit(mut self) -> Result<()> {
        let present = fs::symlink_metadata(&self.final_path).is_ok();
        if !present || !self.overwrite {
            rename_noreplace(&self.tmp_path, &self.final_path)?;
        } else {
            // Swap the new folder and the old output in one step, then delete the old one
            // (now at the temporary name). Without RENAME_EXCHANGE: move the old one aside.
            match rename_flags(&self.tmp_path, &self.final_path, EXCHANGE) {
                Some(Ok(())) => remove_entry(&self.tmp_path),
                Some(Err(e)) => return Err(Error::io(&self.final_path, e)),
                None => {
                    let old = (0..TEMP_NAMES)
                        .map(|k| PathBuf::from(format!("{}.old{k}", self.tmp_path.display())))
                        .find(|p| fs::symlink_metadata(p).is_err())
                        .ok_or_else(|| all_taken(&self.final_path))?;
                    fs::rename(&self.final_path, &old)
                        .map_err(|e| Error::io(&self.final_path, e))?;
                    fs::rename(&self.tmp_path, &self.final_path)
                        .map_err(|e| Error::io(&self.final_path, e))?;
                    remove_entry(&old);
                }
            }
        }
        unregister(&self.tmp_path);
        self.committed = true;
        Ok(())
    }
}

impl Drop for AtomicDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp_path);
            unregister(&self.tmp_path);
        }
    }
}

/// A private scratch folder beside an output, for intermediate files a command builds and
/// deletes (merge-lora's safetensors folder before its GGUF, export's folder before its `.bin`
/// shards). It is created exclusively (`mkdir`, which never follows a symlink nor reuses what is
/// there) under a fresh, unpredictable name of the temporaries' form,
/// `.NAME.ckpt-tmp-PID-PURPOSE-RANDOM`, with mode 0700, and holds the lock of a live ckpt; it is
/// removed when dropped (without following symlinks inside it), by Ctrl-C, and — if this
/// process is killed — by the next run that writes into the folder, once its owner is dead.
pub struct ScratchDir {
    path: PathBuf,
    _lock: Option<File>,
}

/// 64 unpredictable bits (the OS-seeded keys of std's hasher; no extra dependency).
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

impl ScratchDir {
    /// Creates the scratch folder for `final_path` (`purpose` is a short word in its name).
    pub fn create(final_path: &Path, purpose: &str) -> Result<ScratchDir> {
        let (dir, name) = split(final_path);
        fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        remove_stale_temps_in(&dir);
        let pid = std::process::id();
        for _ in 0..TEMP_NAMES {
            let p = dir.join(format!(".{name}{TAG}{pid}-{purpose}-{:016x}", random_u64()));
            let mut b = fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                b.mode(0o700);
            }
            match b.create(&p) {
                Ok(()) => {
                    register(&p);
                    let lock = File::open(&p).ok();
                    if let Some(l) = &lock {
                        try_lock(l);
                    }
                    return Ok(ScratchDir {
                        path: p,
                        _lock: lock,
                    });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(&p, e)),
            }
        }
        Err(all_taken(final_path))
    }

    /// The folder (empty when created).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
        unregister(&self.path);
    }
}

/// Largest single write of [`write_all_at`]. The page cache allocates a file's folios as large as
/// each write (ext4 has large folios since Linux 6.16): a multi-megabyte `pwrite` asks for 2 MB
/// folios, and on a machine whose memory is fragmented by the page cache every such allocation
/// first runs direct compaction in the writing process (measured on 2 GB written in 8 MB
/// writes: hundreds of compaction stalls and most of the system time; in 256 KB writes: none).
/// `cp` copies through a 64 KB pipe, so it never pays for that.
pub(crate) const WRITE_CHUNK: usize = 256 << 10;

/// Serializes [`write_all_at`]: buffered writes to one file take its inode lock one at a time,
/// and a second writer thread waiting in the kernel spins on that lock (measured: a tenth of a
/// conversion's CPU time), where waiting here sleeps and leaves the core to the computing threads.
static WRITE_LOCK: Mutex<()> = Mutex::new(());

/// `pwrite`s all of `buf` at `offset` in writes of at most 256 KiB, one thread
/// at a time.
pub fn write_all_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let _one_at_a_time = WRITE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for (i, chunk) in buf.chunks(WRITE_CHUNK).enumerate() {
        file.write_all_at(chunk, offset + (i * WRITE_CHUNK) as u64)?;
    }
    Ok(())
}

/// Reserves disk blocks for `len` bytes of `file` up front (`posix_fallocate`): a full disk
/// fails here, before any tensor is computed, and the writes that follow skip the filesystem's
/// per-page delayed allocation. Filesystems without the call fall back to a plain `set_len`.
pub fn preallocate(file: &File, len: u64) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
        match rc {
            0 => return Ok(()),
            libc::EOPNOTSUPP | libc::ENOSYS | libc::EINVAL => {}
            e => return Err(std::io::Error::from_raw_os_error(e)),
        }
    }
    file.set_len(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_file_leaves_nothing() {
        for unnamed in [true, false] {
            let dir = tempdir(&format!("drop-{unnamed}"));
            let out = dir.join("x.bin");
            {
                let mut f = AtomicFile::create_with(&out, false, unnamed).unwrap();
                f.write_all(b"partial").unwrap();
            }
            assert!(!out.exists());
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
            let mut f = AtomicFile::create_with(&out, false, unnamed).unwrap();
            f.write_all(b"done").unwrap();
            f.commit().unwrap();
            assert_eq!(fs::read(&out).unwrap(), b"done");
            assert!(AtomicFile::create_with(&out, false, unnamed).is_err());
            let mut f = AtomicFile::create_with(&out, true, unnamed).unwrap();
            f.write_all(b"again").unwrap();
            f.commit().unwrap();
            assert_eq!(fs::read(&out).unwrap(), b"again");
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "only the output");
            fs::remove_dir_all(dir).unwrap();
        }
    }

    /// Scratch folders: a fresh unpredictable name each time, never a planted symlink or
    /// folder at the old fixed name `.NAME.ckpt-tmp-PID.merge`, private, removed on drop, and
    /// recognised as this process's temporaries (a later run removes them once it is dead).
    #[cfg(unix)]
    #[test]
    fn scratch_folders_are_fresh_private_and_never_planted() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempdir("scratch");
        let victim = dir.join("victim");
        fs::create_dir(&victim).unwrap();
        let out = dir.join("out.gguf");
        let old = temp_path_for(&out).with_extension("merge");
        std::os::unix::fs::symlink(&victim, &old).unwrap();
        let a = ScratchDir::create(&out, "merge").unwrap();
        let b = ScratchDir::create(&out, "merge").unwrap();
        assert_ne!(a.path(), b.path());
        for s in [&a, &b] {
            assert_ne!(s.path(), old);
            let m = fs::symlink_metadata(s.path()).unwrap();
            assert!(m.is_dir() && !m.file_type().is_symlink());
            assert_eq!(m.permissions().mode() & 0o777, 0o700);
            let name = s.path().file_name().unwrap().to_string_lossy().into_owned();
            assert_eq!(temp_owner(&name), Some(std::process::id()), "{name}");
            assert!(name.starts_with(".out.gguf.ckpt-tmp-"), "{name}");
        }
        fs::write(a.path().join("f"), b"x").unwrap();
        std::os::unix::fs::symlink(&victim, a.path().join("link")).unwrap();
        let pa = a.path().to_path_buf();
        drop(a);
        drop(b);
        assert!(!pa.exists());
        assert_eq!(
            fs::read_dir(&victim).unwrap().count(),
            0,
            "victim untouched"
        );
        assert!(fs::symlink_metadata(&old).unwrap().file_type().is_symlink());
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn temp_names_carry_the_owner_pid() {
        assert_eq!(temp_owner(".x.bin.ckpt-tmp-123"), Some(123));
        assert_eq!(temp_owner(".x.bin.ckpt-tmp-123-4"), Some(123));
        assert_eq!(temp_owner(".x.ckpt-tmp-77.merge"), Some(77));
        assert_eq!(temp_owner(".x.ckpt-tmp-77.tmp.old3"), Some(77));
        assert_eq!(temp_owner("x.ckpt-tmp-77"), None, "not hidden");
        assert_eq!(temp_owner(".x.ckpt-tmp-77abc"), None);
        assert_eq!(temp_owner(".x.ckpt-tmp-"), None);
        let p = temp_path_for(Path::new("d/out.gguf")).with_extension("merge");
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(temp_owner(&name), Some(std::process::id()), "{name}");
    }

    /// The named fallback (no O_TMPFILE): a symlink at any name ckpt could choose is neither
    /// followed nor replaced; when every name is taken the error says so.
    #[cfg(unix)]
    #[test]
    fn named_temporary_never_follows_a_planted_symlink() {
        let dir = tempdir("named-symlink");
        let victim = dir.join("victim");
        fs::write(&victim, b"secret").unwrap();
        let out = dir.join("out.bin");
        let names = temp_candidates(&out);
        // Some names taken: the next free one is used.
        for n in &names[..3] {
            std::os::unix::fs::symlink(&victim, n).unwrap();
        }
        let dangling = dir.join("nowhere");
        std::os::unix::fs::symlink(&dangling, &names[3]).unwrap();
        let mut f = AtomicFile::create_with(&out, false, false).unwrap();
        assert_eq!(f.temp_path(), names[4].as_path());
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        assert!(
            !dangling.exists(),
            "a dangling link's target is not created"
        );
        // All names taken: a clear error, nothing written anywhere.
        for n in &names[4..] {
            std::os::unix::fs::symlink(&victim, n).unwrap();
        }
        let err = AtomicFile::create_with(&out, true, false)
            .err()
            .expect("every temporary name is taken");
        let msg = err.to_string();
        assert!(
            msg.contains("all taken") && msg.contains("out.bin"),
            "{msg}"
        );
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        assert_eq!(fs::read(&out).unwrap(), b"new");
        for n in &names {
            assert!(fs::symlink_metadata(n).unwrap().file_type().is_symlink());
        }
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("ckpt-atomic-test-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }
}
