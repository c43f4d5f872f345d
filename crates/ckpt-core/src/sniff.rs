//! What a checkpoint file is, by its first bytes and its name: the one place the magic numbers
//! and weight-file extensions live (local opening, remote inspection and `ckpt scan` share it).

use std::io::Read;
use std::path::Path;

use crate::{Error, Result};

/// The most a safetensors header may announce (safetensors' own limit, 100 MB).
pub const SAFETENSORS_MAX_HEADER_SIZE: u64 = 100_000_000;

/// Bytes of a file's beginning that [`sniff`] needs.
pub(crate) const HEAD_LEN: usize = 64;

/// What a file holds, by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A safetensors file (a plausible little-endian header length, then a JSON object).
    Safetensors,
    /// A zip archive (`torch.save` since 1.6).
    TorchZip,
    /// A legacy `torch.save` stream (protocol-2 pickle of torch's magic number first).
    TorchLegacy,
    /// A GGUF file (`GGUF` magic).
    Gguf,
    /// None of these.
    Unknown,
}

/// What a file name says it is (the extension conventions of Hugging Face repositories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    /// `*.index.json`: a shard index.
    Index,
    /// `*.safetensors`.
    Safetensors,
    /// `*.gguf`.
    Gguf,
    /// `*.bin`, `*.pt`, `*.pth`, `*.ckpt`: a pickle-based PyTorch file.
    Pickle,
    /// Any other name.
    Unknown,
}

/// The magic of a zip archive, which `torch.save` writes since torch 1.6.
pub(crate) const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// PROTO 2 then LONG1 of 10 bytes: the start of a legacy `torch.save` stream (its magic number).
pub(crate) const TORCH_LEGACY_MAGIC: &[u8] = &[0x80, 0x02, 0x8a, 0x0a];
/// The first bytes of a GGUF file.
pub const GGUF_MAGIC: &[u8] = b"GGUF";
/// The first bytes of a Git LFS pointer file (a clone without `git lfs pull`).
pub(crate) const LFS_POINTER_PREFIX: &[u8] = b"version https://git-lfs";

/// Whether `head` is the beginning of a Git LFS pointer file rather than the weights.
pub fn is_lfs_pointer(head: &[u8]) -> bool {
    head.starts_with(LFS_POINTER_PREFIX)
}

/// Is this (by its first bytes and size) plausibly a safetensors file: a little-endian header
/// length within the limit and the file, then (after optional whitespace) a JSON object.
pub fn looks_like_safetensors(head: &[u8], file_len: u64) -> bool {
    if head.len() < 9 {
        return false;
    }
    let n = u64::from_le_bytes(head[..8].try_into().unwrap());
    n <= SAFETENSORS_MAX_HEADER_SIZE
        && 8 + n <= file_len
        && head[8..].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
}

/// The kind of a file from its first bytes (64 are enough) and its length; `name`
/// breaks the tie for a safetensors file whose header does not look like one (so that its
/// reader, not "unrecognised", reports what is wrong).
pub fn sniff(head: &[u8], file_len: u64, name: &str) -> FileKind {
    if head.starts_with(GGUF_MAGIC) {
        FileKind::Gguf
    } else if head.starts_with(ZIP_MAGIC) {
        FileKind::TorchZip
    } else if head.starts_with(TORCH_LEGACY_MAGIC) {
        FileKind::TorchLegacy
    } else if looks_like_safetensors(head, file_len) || kind_of_name(name) == NameKind::Safetensors
    {
        FileKind::Safetensors
    } else {
        FileKind::Unknown
    }
}

/// [`sniff`] on a file's first bytes.
pub fn sniff_file(path: &Path) -> Result<FileKind> {
    let (head, len) = read_head(path)?;
    Ok(sniff(&head, len, &path.to_string_lossy()))
}

/// A file's first 64 bytes (fewer for a shorter file) and its length.
pub fn read_head(path: &Path) -> Result<(Vec<u8>, u64)> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = vec![0u8; HEAD_LEN];
    let mut n = 0;
    while n < head.len() {
        let r = f.read(&mut head[n..]).map_err(|e| Error::io(path, e))?;
        if r == 0 {
            break;
        }
        n += r;
    }
    head.truncate(n);
    Ok((head, len))
}

/// The kind a file's name announces: its last path segment (after any `?query` or `#fragment` is
/// cut off, so URLs work too), case-insensitively.
pub fn kind_of_name(path: &str) -> NameKind {
    let name = path
        .split(['?', '#'])
        .next()
        .unwrap_or(path)
        .rsplit(['/', '\\'])
        .next()
        .unwrap_or(path)
        .to_ascii_lowercase();
    if name.ends_with(".index.json") {
        NameKind::Index
    } else if name.ends_with(".safetensors") {
        NameKind::Safetensors
    } else if name.ends_with(".gguf") {
        NameKind::Gguf
    } else if [".bin", ".pt", ".pth", ".ckpt"]
        .iter()
        .any(|e| name.ends_with(e))
    {
        NameKind::Pickle
    } else {
        NameKind::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st_head(n: u64, json: &[u8]) -> Vec<u8> {
        let mut v = n.to_le_bytes().to_vec();
        v.extend_from_slice(json);
        v
    }

    #[test]
    fn magic_bytes_decide_before_the_name() {
        assert_eq!(
            sniff(b"GGUF\x03\0\0\0", 100, "x.safetensors"),
            FileKind::Gguf
        );
        assert_eq!(
            sniff(b"PK\x03\x04rest", 100, "model.gguf"),
            FileKind::TorchZip
        );
        assert_eq!(
            sniff(&[0x80, 0x02, 0x8a, 0x0a, 0, 0], 100, "a.safetensors"),
            FileKind::TorchLegacy
        );
        assert_eq!(
            sniff(&st_head(2, b" {}"), 10, "weights"),
            FileKind::Safetensors
        );
        // a header longer than the file, or no JSON object: only the name says safetensors
        assert_eq!(
            sniff(&st_head(200, b"{}"), 10, "weights"),
            FileKind::Unknown
        );
        assert_eq!(
            sniff(&st_head(200, b"{}"), 10, "w.SafeTensors"),
            FileKind::Safetensors
        );
        assert_eq!(sniff(&st_head(2, b"[]"), 10, "w.bin"), FileKind::Unknown);
        let huge = SAFETENSORS_MAX_HEADER_SIZE + 1;
        assert_eq!(
            sniff(&st_head(huge, b"{}"), u64::MAX, "w"),
            FileKind::Unknown
        );
        assert_eq!(sniff(b"", 0, "w"), FileKind::Unknown);
    }

    #[test]
    fn names_by_extension() {
        assert_eq!(
            kind_of_name("model.safetensors.index.json"),
            NameKind::Index
        );
        assert_eq!(
            kind_of_name("pytorch_model.bin.index.json"),
            NameKind::Index
        );
        assert_eq!(kind_of_name("a/b/MODEL.SAFETENSORS"), NameKind::Safetensors);
        assert_eq!(
            kind_of_name("https://h/x.gguf?download=1#top"),
            NameKind::Gguf
        );
        for n in ["x.bin", "x.pt", "x.pth", "x.ckpt"] {
            assert_eq!(kind_of_name(n), NameKind::Pickle, "{n}");
        }
        assert_eq!(kind_of_name("config.json"), NameKind::Unknown);
        assert_eq!(kind_of_name("dir.gguf/readme"), NameKind::Unknown);
    }

    #[test]
    fn lfs_pointers() {
        assert!(is_lfs_pointer(
            b"version https://git-lfs.github.com/spec/v1\n"
        ));
        assert!(!is_lfs_pointer(b"version 2"));
    }
}
