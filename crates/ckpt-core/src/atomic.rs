//! Crash-safe output: everything is written under a temporary name beside the destination and
//! renamed into place only when complete. A failure drops the temporary; Ctrl-C runs
//! [`cleanup_pending`]; a SIGKILL leaves at most a hidden `.NAME.ckpt-tmp-PID` file, never a partial
//! file under the final name.

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
pub fn cleanup_pending() {
    let list = std::mem::take(&mut *PENDING.lock().unwrap_or_else(|e| e.into_inner()));
    for p in list {
        if p.is_dir() {
            let _ = fs::remove_dir_all(&p);
        } else {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Whether to fsync outputs before renaming them (`CKPT_FSYNC=1`). Renaming only complete files
/// already protects against the process dying at any moment; an fsync adds protection against
/// power loss at a large cost (it doubles the time of a 1 GB conversion), and like `cp`,
/// safetensors and huggingface_hub we leave that to the filesystem unless asked.
fn durable() -> bool {
    std::env::var_os("CKPT_FSYNC").is_some_and(|v| v != "0" && !v.is_empty())
}

/// The hidden temporary path used while `final_path` is being written.
pub fn temp_path_for(final_path: &Path) -> PathBuf {
    let name = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let dir = final_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    dir.join(format!(".{name}.ckpt-tmp-{}", std::process::id()))
}

/// Removes temporaries left beside `final_path` by ckpt processes that were killed (their pid is
/// gone), so a SIGKILL does not leave garbage forever.
pub fn remove_stale_temps(final_path: &Path) {
    let Some(name) = final_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
    else {
        return;
    };
    let dir = final_path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let prefix = format!(".{name}.ckpt-tmp-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let fname = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = fname.strip_prefix(&prefix) else {
            continue;
        };
        let pid: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid == std::process::id()
            || Path::new(&format!("/proc/{pid}")).exists()
            || !Path::new("/proc/self").exists()
        {
            continue;
        }
        let p = e.path();
        if p.is_dir() {
            let _ = fs::remove_dir_all(&p);
        } else {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Refuses to replace an existing output unless `overwrite` is set.
pub fn check_destination(final_path: &Path, overwrite: bool) -> Result<()> {
    if final_path.exists() && !overwrite {
        return Err(Error::Usage(format!(
            "{} already exists (use --force to replace it)",
            final_path.display()
        )));
    }
    Ok(())
}

pub struct AtomicFile {
    final_path: PathBuf,
    tmp_path: PathBuf,
    writer: Option<BufWriter<File>>,
    direct: bool,
}

impl AtomicFile {
    pub fn create(final_path: &Path, overwrite: bool) -> Result<AtomicFile> {
        check_destination(final_path, overwrite)?;
        remove_stale_temps(final_path);
        let tmp_path = temp_path_for(final_path);
        let file = File::create(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
        register(&tmp_path);
        Ok(AtomicFile {
            final_path: final_path.to_path_buf(),
            tmp_path,
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            direct: false,
        })
    }

    /// A file inside a directory that is itself atomic ([`AtomicDir`]): written in place.
    pub fn in_atomic_dir(path: &Path) -> Result<AtomicFile> {
        let file = File::create(path).map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            final_path: path.to_path_buf(),
            tmp_path: path.to_path_buf(),
            writer: Some(BufWriter::with_capacity(1 << 20, file)),
            direct: true,
        })
    }

    pub fn path(&self) -> &Path {
        &self.final_path
    }

    /// Where the bytes are while the file is in progress (to re-read them before committing).
    pub fn temp_path(&self) -> &Path {
        &self.tmp_path
    }

    /// Flushes without committing, so the temporary can be re-read and verified first.
    pub fn sync(&mut self) -> Result<()> {
        let w = self.writer.as_mut().expect("writer taken only by commit");
        w.flush().map_err(|e| Error::io(&self.tmp_path, e))?;
        if durable() {
            w.get_ref()
                .sync_all()
                .map_err(|e| Error::io(&self.tmp_path, e))?;
        }
        Ok(())
    }

    pub fn writer(&mut self) -> &mut BufWriter<File> {
        self.writer.as_mut().expect("writer taken only by commit")
    }

    /// Flushes, syncs and renames into place.
    pub fn commit(mut self) -> Result<()> {
        let w = self.writer.take().unwrap();
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&self.tmp_path, e.into_error()))?;
        if durable() {
            file.sync_all().map_err(|e| Error::io(&self.tmp_path, e))?;
        }
        drop(file);
        if !self.direct {
            fs::rename(&self.tmp_path, &self.final_path)
                .map_err(|e| Error::io(&self.final_path, e))?;
            unregister(&self.tmp_path);
        }
        self.direct = true; // nothing left to clean up
        self.tmp_path = PathBuf::new();
        Ok(())
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
        let _ = fs::remove_file(&self.tmp_path);
        unregister(&self.tmp_path);
    }
}

/// A directory output (a sharded model folder) built under a temporary name and renamed at the end.
pub struct AtomicDir {
    final_path: PathBuf,
    tmp_path: PathBuf,
    overwrite: bool,
    committed: bool,
}

impl AtomicDir {
    pub fn create(final_path: &Path, overwrite: bool) -> Result<AtomicDir> {
        check_destination(final_path, overwrite)?;
        remove_stale_temps(final_path);
        let tmp_path = temp_path_for(final_path);
        if tmp_path.exists() {
            let _ = fs::remove_dir_all(&tmp_path);
        }
        fs::create_dir_all(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
        register(&tmp_path);
        Ok(AtomicDir {
            final_path: final_path.to_path_buf(),
            tmp_path,
            overwrite,
            committed: false,
        })
    }

    /// Where files are written while the directory is in progress.
    pub fn path(&self) -> &Path {
        &self.tmp_path
    }

    pub fn final_path(&self) -> &Path {
        &self.final_path
    }

    pub fn commit(mut self) -> Result<()> {
        if self.final_path.exists() {
            if !self.overwrite {
                return Err(Error::Usage(format!(
                    "{} already exists (use --force)",
                    self.final_path.display()
                )));
            }
            let old = temp_path_for(&self.final_path).with_extension("old");
            fs::rename(&self.final_path, &old).map_err(|e| Error::io(&self.final_path, e))?;
            fs::rename(&self.tmp_path, &self.final_path)
                .map_err(|e| Error::io(&self.final_path, e))?;
            if old.is_dir() {
                let _ = fs::remove_dir_all(&old);
            } else {
                let _ = fs::remove_file(&old);
            }
        } else {
            fs::rename(&self.tmp_path, &self.final_path)
                .map_err(|e| Error::io(&self.final_path, e))?;
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
        let dir = tempdir();
        let out = dir.join("x.bin");
        {
            let mut f = AtomicFile::create(&out, false).unwrap();
            f.write_all(b"partial").unwrap();
        }
        assert!(!out.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        let mut f = AtomicFile::create(&out, false).unwrap();
        f.write_all(b"done").unwrap();
        f.commit().unwrap();
        assert_eq!(fs::read(&out).unwrap(), b"done");
        assert!(AtomicFile::create(&out, false).is_err());
        fs::remove_dir_all(dir).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("ckpt-atomic-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }
}
