//! The huggingface_hub cache layout, so Python tools and ckpt share one cache:
//!
//! ```text
//! <cache>/CACHEDIR.TAG
//! <cache>/.locks/models--ORG--NAME/<etag>.lock
//! <cache>/models--ORG--NAME/blobs/<etag>              the bytes (sha256 for LFS, git sha1 otherwise)
//! <cache>/models--ORG--NAME/blobs/<etag>.incomplete   a download in progress
//! <cache>/models--ORG--NAME/refs/<revision>           the commit sha, no newline (refs/pr/1 nests)
//! <cache>/models--ORG--NAME/snapshots/<commit>/<path> relative symlink to ../../blobs/<etag>
//! <cache>/models--ORG--NAME/.no_exist/<commit>/<path> empty: the file is absent at that commit
//! ```

use std::fs;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{RemoteError, Result};
use crate::hub::{check_etag, check_repo_path, is_commit_hash};
use crate::uri::{check_revision, HubUri};

/// huggingface_hub's CACHEDIR.TAG text (https://bford.info/cachedir/).
pub(crate) const CACHEDIR_TAG: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by huggingface_hub.\n\
# For information about cache directory tags, see:\n\
#\thttps://bford.info/cachedir/\n";

/// One repository's paths in a huggingface_hub cache.
#[derive(Debug, Clone)]
pub(crate) struct RepoCache {
    /// The cache root (`HF_HUB_CACHE`).
    pub root: PathBuf,
    /// `models--ORG--NAME`.
    pub folder_name: String,
    /// `<root>/<folder_name>`.
    pub folder: PathBuf,
}

impl RepoCache {
    /// The paths of `uri`'s repository under the cache root `cache_dir`.
    pub fn new(cache_dir: &Path, uri: &HubUri) -> RepoCache {
        let folder_name = format!(
            "{}--{}",
            uri.repo_type.plural(),
            uri.repo_id.replace('/', "--")
        );
        RepoCache {
            root: cache_dir.to_path_buf(),
            folder: cache_dir.join(&folder_name),
            folder_name,
        }
    }

    /// `blobs/<etag>`.
    pub fn blob_path(&self, etag: &str) -> PathBuf {
        self.folder.join("blobs").join(etag)
    }
    /// `blobs/<etag>.incomplete`: the download in progress.
    pub fn incomplete_path(&self, etag: &str) -> PathBuf {
        self.folder.join("blobs").join(format!("{etag}.incomplete"))
    }
    /// `<root>/.locks/<folder_name>/<etag>.lock`.
    pub fn lock_path(&self, etag: &str) -> PathBuf {
        self.root
            .join(".locks")
            .join(&self.folder_name)
            .join(format!("{etag}.lock"))
    }
    /// `snapshots/<commit>`.
    pub fn snapshot_dir(&self, commit: &str) -> PathBuf {
        self.folder.join("snapshots").join(commit)
    }
    /// `snapshots/<commit>/<repo_path>`: the symlink to the file's blob.
    pub fn pointer_path(&self, commit: &str, repo_path: &str) -> PathBuf {
        let mut p = self.snapshot_dir(commit);
        p.extend(repo_path.split('/'));
        p
    }
    /// `.no_exist/<commit>/<path>`: an empty marker for a file known to be absent at a commit.
    pub fn no_exist_path(&self, commit: &str, repo_path: &str) -> PathBuf {
        let mut p = self.folder.join(".no_exist").join(commit);
        p.extend(repo_path.split('/'));
        p
    }
    /// `refs/<revision>`, for a revision that passes git's ref-name rules only (a revision such
    /// as `../../x` would otherwise name a file outside the cache).
    pub fn ref_path(&self, revision: &str) -> Result<PathBuf> {
        check_revision(revision).map_err(RemoteError::Usage)?;
        let mut p = self.folder.join("refs");
        p.extend(revision.split('/'));
        self.check_inside(&p)?;
        Ok(p)
    }

    /// Refuses a path that is not strictly below the repository's cache folder (made only of
    /// plain components after it): the last guard before anything is written under the cache.
    pub fn check_inside(&self, path: &Path) -> Result<()> {
        let inside = path.strip_prefix(&self.folder).is_ok_and(|rest| {
            rest.components().next().is_some()
                && rest.components().all(|c| matches!(c, Component::Normal(_)))
        });
        if !inside {
            return Err(RemoteError::Usage(format!(
                "refusing to write {}: it is not inside the cache folder {}",
                path.display(),
                self.folder.display()
            )));
        }
        Ok(())
    }

    /// The commit a revision points to according to the cache (a commit sha is its own answer).
    pub fn cached_commit(&self, revision: &str) -> Option<String> {
        if is_commit_hash(revision) {
            return Some(revision.to_string());
        }
        let text = fs::read_to_string(self.ref_path(revision).ok()?).ok()?;
        let commit = text.trim().to_string();
        is_commit_hash(&commit).then_some(commit)
    }

    /// Records `revision → commit` (not for a revision that is itself the commit), atomically.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<()> {
        if revision == commit {
            return Ok(());
        }
        if !is_commit_hash(commit) {
            return Err(RemoteError::Usage(format!(
                "refusing to record '{commit}' as the commit of '{revision}': not a 40-hex commit sha"
            )));
        }
        self.check_folder()?;
        let path = self.ref_path(revision)?;
        if fs::read_to_string(&path).is_ok_and(|c| c == commit) {
            return Ok(());
        }
        let dir = path.parent().expect("ref path has a parent");
        fs::create_dir_all(dir).map_err(|e| RemoteError::io(dir, e))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().unwrap_or_default().to_string_lossy(),
            unique_suffix()
        ));
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(commit.as_bytes())?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            RemoteError::io(&path, e)
        })
    }

    /// The repository folder must be one plain component of the cache root (`models--ORG--NAME`
    /// from a valid repository id).
    fn check_folder(&self) -> Result<()> {
        let single = Path::new(&self.folder_name)
            .components()
            .map(|c| matches!(c, Component::Normal(_)))
            .collect::<Vec<_>>()
            == [true];
        if !single || self.folder_name.contains(['/', '\\']) || self.folder_name.contains("..") {
            return Err(RemoteError::Usage(format!(
                "refusing cache folder name '{}'",
                self.folder_name
            )));
        }
        Ok(())
    }

    /// Creates `blobs/`, `refs/` and `snapshots/` (and the root's CACHEDIR.TAG, best effort).
    pub fn ensure_layout(&self) -> Result<()> {
        self.check_folder()?;
        for d in [
            self.folder.join("blobs"),
            self.folder.join("refs"),
            self.folder.join("snapshots"),
        ] {
            fs::create_dir_all(&d).map_err(|e| RemoteError::io(&d, e))?;
        }
        let tag = self.root.join("CACHEDIR.TAG");
        if !tag.exists() {
            // Best effort, as in huggingface_hub: the cache works without it.
            let _ = fs::write(&tag, CACHEDIR_TAG);
        }
        Ok(())
    }

    /// Points `snapshots/<commit>/<path>` at `blobs/<etag>` with a relative symlink
    /// (`../../blobs/<etag>`, one more `../` per folder level of `path`).
    pub fn link(&self, commit: &str, repo_path: &str, etag: &str) -> Result<PathBuf> {
        check_repo_path(repo_path).map_err(RemoteError::Usage)?;
        check_etag(etag).map_err(RemoteError::Usage)?;
        if !is_commit_hash(commit) {
            return Err(RemoteError::Usage(format!(
                "refusing snapshot folder '{commit}': not a 40-hex commit sha"
            )));
        }
        self.check_folder()?;
        let pointer = self.pointer_path(commit, repo_path);
        self.check_inside(&pointer)?;
        let dir = pointer
            .parent()
            .expect("pointer has a parent")
            .to_path_buf();
        fs::create_dir_all(&dir).map_err(|e| RemoteError::io(&dir, e))?;
        let depth = repo_path.split('/').count() - 1;
        let mut target = PathBuf::new();
        for _ in 0..depth + 2 {
            target.push("..");
        }
        target.push("blobs");
        target.push(etag);
        if fs::read_link(&pointer).is_ok_and(|t| t == target) {
            return Ok(pointer);
        }
        // Create next to it and rename over, so a concurrent reader never sees no pointer.
        let tmp = dir.join(format!(
            ".{}.{}.link",
            pointer.file_name().unwrap_or_default().to_string_lossy(),
            unique_suffix()
        ));
        let _ = fs::remove_file(&tmp);
        symlink(&target, &tmp).map_err(|e| RemoteError::io(&tmp, e))?;
        fs::rename(&tmp, &pointer).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            RemoteError::io(&pointer, e)
        })?;
        Ok(pointer)
    }
}

/// Distinct per process and per call, so concurrent writers (threads or processes) never share
/// a temporary name.
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(windows)]
fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, link)
}
