//! A minimal zip reader for torch checkpoints: central directory (zip64 aware), lookup by name,
//! STORED records only.
//!
//! Sizes come from the central directory (torch's writer leaves them zero in the local headers);
//! only the data offset is taken from the local header (30 + name length + extra length).
//! Compressed records are refused: torch never writes them and inflating invites zip bombs.
//!
//! The archive must be unambiguous, so that every zip reader (torch's miniz, Python's zipfile,
//! this one) sees the same records: exactly one end-of-central-directory signature after the
//! central directory, and every byte from the start of the file to the central directory
//! belonging to exactly one record (local header, name, extra field, data, then the data
//! descriptor when flag bit 3 says there is one), in order, with the local header naming the
//! same record as the central directory. torch's writer (miniz) pads inside the extra field and
//! writes a 16-byte data descriptor after each record; Python's zipfile writes neither, and both
//! satisfy this. Anything else (a second archive hidden in a comment, bytes between records,
//! overlapping records, a renamed local header) is refused with [`Error::Unsafe`].

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use ckpt_core::{Error, Result};

const LOCAL_HEADER_SIG: u32 = 0x0403_4b50;
const CENTRAL_HEADER_SIG: u32 = 0x0201_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const DATA_DESCRIPTOR_SIG: u32 = 0x0807_4b50;
const EOCD_LEN: usize = 22;
const ZIP64_LOCATOR_LEN: usize = 20;
const CENTRAL_HEADER_LEN: usize = 46;
const LOCAL_HEADER_LEN: usize = 30;
/// The zip64 "extended information" extra field.
const ZIP64_EXTRA_ID: u16 = 0x0001;

/// One record of the central directory (zip64 sizes and offset already applied).
#[derive(Debug, Clone)]
pub struct ZipEntry {
    /// The record's path in the archive, e.g. `archive/data/0` (UTF-8).
    pub name: String,
    /// 0 = STORED, 8 = DEFLATE, ...
    pub method: u16,
    /// The general-purpose bit flags (bit 0: encrypted, bit 3: a data descriptor follows).
    pub flags: u16,
    /// The CRC-32 of the uncompressed data, as the central directory records it (the reader
    /// does not verify it against the data).
    pub crc32: u32,
    pub(crate) compressed_size: u64,
    /// Uncompressed size in bytes.
    pub size: u64,
    /// Byte offset of the record's local header in the file.
    pub local_header_offset: u64,
}

/// A parsed, unambiguous zip archive borrowing the file's bytes.
pub struct ZipArchive<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    entries: Vec<ZipEntry>,
    by_name: HashMap<String, usize>,
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn le64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Whether `bytes` begins like a zip archive.
pub(crate) fn is_zip(bytes: &[u8]) -> bool {
    bytes.len() >= 4 && le32(bytes, 0) == LOCAL_HEADER_SIG
}

impl<'a> ZipArchive<'a> {
    /// Reads the central directory of `bytes` (`path` names the file in errors) and checks the
    /// layout described in the module docs. Fails with [`Error::Invalid`] on a truncated or
    /// malformed archive and [`Error::Unsafe`] on an ambiguous one. Record data is checked only
    /// when read ([`ZipArchive::data`]).
    pub fn parse(path: &'a Path, bytes: &'a [u8]) -> Result<ZipArchive<'a>> {
        let bad = |msg: String| Error::invalid(path, msg);
        let eocd = find_eocd(bytes).ok_or_else(|| {
            bad(format!(
                "not a complete zip archive: no end-of-central-directory record in the last {} bytes \
                 (the file is truncated or not a zip)",
                bytes.len().min(EOCD_LEN + 0xffff)
            ))
        })?;
        let disk = le16(bytes, eocd + 4);
        let cd_disk = le16(bytes, eocd + 6);
        let mut count = le16(bytes, eocd + 10) as u64;
        let mut cd_size = le32(bytes, eocd + 12) as u64;
        let mut cd_offset = le32(bytes, eocd + 16) as u64;
        if disk != 0 || cd_disk != 0 {
            return Err(bad("multi-disk zip archives are not supported".into()));
        }
        let mut cd_limit = eocd as u64;
        if eocd >= ZIP64_LOCATOR_LEN && le32(bytes, eocd - ZIP64_LOCATOR_LEN) == ZIP64_LOCATOR_SIG {
            let loc = eocd - ZIP64_LOCATOR_LEN;
            let z64 = le64(bytes, loc + 8);
            if z64.checked_add(56).is_none_or(|end| end > loc as u64) {
                return Err(bad(format!(
                    "zip64 end-of-central-directory offset {z64} is outside the file"
                )));
            }
            let z = z64 as usize;
            if le32(bytes, z) != ZIP64_EOCD_SIG {
                return Err(bad(format!(
                    "no zip64 end-of-central-directory record at byte {z}"
                )));
            }
            count = le64(bytes, z + 32);
            cd_size = le64(bytes, z + 40);
            cd_offset = le64(bytes, z + 48);
            cd_limit = z64;
        }
        let cd_end = cd_offset.checked_add(cd_size).filter(|&e| e <= cd_limit).ok_or_else(|| {
            bad(format!(
                "central directory (byte {cd_offset}, {cd_size} bytes) lies outside the archive (truncated?)"
            ))
        })?;
        if count > cd_size / CENTRAL_HEADER_LEN as u64 {
            return Err(bad(format!(
                "central directory claims {count} entries in {cd_size} bytes"
            )));
        }

        let mut entries = Vec::with_capacity(count as usize);
        let mut by_name = HashMap::new();
        let mut pos = cd_offset as usize;
        for i in 0..count {
            if pos + CENTRAL_HEADER_LEN > cd_end as usize || le32(bytes, pos) != CENTRAL_HEADER_SIG
            {
                return Err(bad(format!(
                    "central directory entry {i} at byte {pos} is malformed"
                )));
            }
            let h = &bytes[pos..];
            let name_len = le16(h, 28) as usize;
            let extra_len = le16(h, 30) as usize;
            let comment_len = le16(h, 32) as usize;
            let next = pos + CENTRAL_HEADER_LEN + name_len + extra_len + comment_len;
            if next > cd_end as usize {
                return Err(bad(format!(
                    "central directory entry {i} at byte {pos} runs past the directory"
                )));
            }
            let name_bytes = &bytes[pos + CENTRAL_HEADER_LEN..pos + CENTRAL_HEADER_LEN + name_len];
            let name = std::str::from_utf8(name_bytes)
                .map_err(|_| bad(format!("zip entry name at byte {pos} is not UTF-8")))?
                .to_string();
            let mut entry = ZipEntry {
                name,
                method: le16(h, 10),
                flags: le16(h, 8),
                crc32: le32(h, 16),
                compressed_size: le32(h, 20) as u64,
                size: le32(h, 24) as u64,
                local_header_offset: le32(h, 42) as u64,
            };
            let extra = &bytes[pos + CENTRAL_HEADER_LEN + name_len
                ..pos + CENTRAL_HEADER_LEN + name_len + extra_len];
            apply_zip64_extra(&mut entry, extra)
                .map_err(|m| bad(format!("zip entry '{}': {m}", entry.name)))?;
            if by_name.insert(entry.name.clone(), entries.len()).is_some() {
                // miniz finds the first of two records with one name, Python's zipfile the last.
                return Err(Error::unsafe_input(
                    path,
                    format!(
                        "zip entry '{}' appears twice in the central directory (readers disagree on which one counts)",
                        entry.name
                    ),
                ));
            }
            entries.push(entry);
            pos = next;
        }
        check_layout(path, bytes, &entries, cd_offset, cd_end, cd_limit)?;
        check_single_end_record(path, bytes, cd_end as usize, eocd)?;
        Ok(ZipArchive {
            path,
            bytes,
            entries,
            by_name,
        })
    }

    /// The records in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The record with this exact name, if any.
    pub fn find(&self, name: &str) -> Option<&ZipEntry> {
        self.by_name.get(name).map(|&i| &self.entries[i])
    }

    /// The byte range of a STORED entry's data in the archive file. Fails with
    /// [`Error::Unsafe`] for a compressed record and [`Error::Invalid`] for an encrypted one, a
    /// missing or renamed local header, or data running past the end of the file.
    pub fn data_range(&self, entry: &ZipEntry) -> Result<Range<usize>> {
        let bad =
            |msg: String| Error::invalid(self.path, format!("zip record '{}': {msg}", entry.name));
        if entry.method != 0 {
            let method = match entry.method {
                8 => "DEFLATE".to_string(),
                9 => "DEFLATE64".to_string(),
                12 => "BZIP2".to_string(),
                14 => "LZMA".to_string(),
                93 => "ZSTD".to_string(),
                m => format!("method {m}"),
            };
            return Err(Error::unsafe_input(
                self.path,
                format!(
                    "zip record '{}' is compressed ({method}); compressed entries are not supported (torch never \
                     writes them and inflating untrusted data risks zip bombs) — re-save the checkpoint with torch.save",
                    entry.name
                ),
            ));
        }
        if entry.flags & 1 != 0 {
            return Err(bad("encrypted records are not supported".into()));
        }
        if entry.compressed_size != entry.size {
            return Err(bad(format!(
                "STORED record has compressed size {} but size {}",
                entry.compressed_size, entry.size
            )));
        }
        let at = usize::try_from(entry.local_header_offset)
            .ok()
            .filter(|&a| {
                a.checked_add(LOCAL_HEADER_LEN)
                    .is_some_and(|end| end <= self.bytes.len())
            });
        let Some(at) = at.filter(|&a| le32(self.bytes, a) == LOCAL_HEADER_SIG) else {
            return Err(bad(format!(
                "no local header at byte {}",
                entry.local_header_offset
            )));
        };
        let name_len = le16(self.bytes, at + 26) as usize;
        let extra_len = le16(self.bytes, at + 28) as usize;
        let local_name = self
            .bytes
            .get(at + LOCAL_HEADER_LEN..at + LOCAL_HEADER_LEN + name_len);
        if local_name != Some(entry.name.as_bytes()) {
            return Err(bad(format!(
                "local header at byte {at} names a different record"
            )));
        }
        let start = at + LOCAL_HEADER_LEN + name_len + extra_len;
        let end = u64::try_from(start)
            .ok()
            .and_then(|s| s.checked_add(entry.size));
        match end {
            Some(end) if end <= self.bytes.len() as u64 => Ok(start..end as usize),
            _ => Err(bad(format!(
                "data ({} bytes at byte {start}) runs past the end of the file ({} bytes; truncated?)",
                entry.size,
                self.bytes.len()
            ))),
        }
    }

    /// The bytes of a STORED entry.
    pub fn data(&self, entry: &ZipEntry) -> Result<&'a [u8]> {
        let r = self.data_range(entry)?;
        Ok(&self.bytes[r])
    }
}

/// Refuses a second end-of-central-directory signature after the central directory: readers
/// pick different ones (miniz and Python's zipfile take the last signature in the file, ckpt the
/// record whose comment ends at the end of the file), so one file would hold two archives.
fn check_single_end_record(path: &Path, bytes: &[u8], cd_end: usize, eocd: usize) -> Result<()> {
    let sig = EOCD_SIG.to_le_bytes();
    let others: Vec<usize> = bytes[cd_end..]
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == sig)
        .map(|(i, _)| cd_end + i)
        .filter(|&at| at != eocd)
        .collect();
    if let Some(&other) = others.first() {
        return Err(Error::unsafe_input(
            path,
            format!(
                "zip archive has {} end-of-central-directory signatures (bytes {eocd} and {other}): another archive is \
                 hidden after the central directory and other readers (torch) may read it instead",
                others.len() + 1
            ),
        ));
    }
    Ok(())
}

/// Checks that the records tile the file from byte 0 to the central directory, in order, and
/// that the central directory runs up to the end records (see the module documentation).
fn check_layout(
    path: &Path,
    bytes: &[u8],
    entries: &[ZipEntry],
    cd_offset: u64,
    cd_end: u64,
    directory_end: u64,
) -> Result<()> {
    let refuse = |msg: String| Err(Error::unsafe_input(path, msg));
    let mut order: Vec<&ZipEntry> = entries.iter().collect();
    order.sort_by_key(|e| e.local_header_offset);
    let mut pos: u64 = 0;
    let mut previous: Option<&str> = None;
    for e in order {
        let at = e.local_header_offset;
        if at > pos {
            return refuse(format!(
                "bytes {pos}..{at} of the zip archive belong to no record (before record '{}'); \
                 data hidden between records is not accepted",
                e.name
            ));
        }
        if at < pos {
            return refuse(match previous {
                Some(p) => format!(
                    "zip record '{}' at byte {at} overlaps record '{p}' (which ends at byte {pos})",
                    e.name
                ),
                None => format!(
                    "zip record '{}' at byte {at} overlaps another record",
                    e.name
                ),
            });
        }
        // The local header (its truncation is an ordinary invalid-input error).
        let a = at as usize;
        if a.checked_add(LOCAL_HEADER_LEN)
            .is_none_or(|end| end > bytes.len())
            || le32(bytes, a) != LOCAL_HEADER_SIG
        {
            return Err(Error::invalid(
                path,
                format!("zip record '{}': no local header at byte {at}", e.name),
            ));
        }
        let name_len = le16(bytes, a + 26) as usize;
        let extra_len = le16(bytes, a + 28) as usize;
        let local_flags = le16(bytes, a + 6);
        let name_end = a + LOCAL_HEADER_LEN + name_len;
        let Some(local_name) = bytes.get(a + LOCAL_HEADER_LEN..name_end) else {
            return Err(Error::invalid(
                path,
                format!(
                    "zip record '{}': local header at byte {at} runs past the end of the file",
                    e.name
                ),
            ));
        };
        if local_name != e.name.as_bytes() {
            return refuse(format!(
                "zip record '{}': the local header at byte {at} names it '{}' (readers disagree on its name)",
                e.name,
                String::from_utf8_lossy(local_name)
            ));
        }
        let data_start = (name_end + extra_len) as u64;
        let Some(data_end) = data_start
            .checked_add(e.compressed_size)
            .filter(|&end| end <= bytes.len() as u64)
        else {
            return Err(Error::invalid(
                path,
                format!(
                    "zip record '{}': data ({} bytes at byte {data_start}) runs past the end of the file ({} bytes; truncated?)",
                    e.name,
                    e.compressed_size,
                    bytes.len()
                ),
            ));
        };
        pos = data_end;
        if (local_flags | e.flags) & 8 != 0 {
            pos += descriptor_len(bytes, data_end as usize, e).ok_or_else(|| {
                Error::unsafe_input(
                    path,
                    format!(
                        "zip record '{}': no data descriptor matching the central directory at byte {data_end}",
                        e.name
                    ),
                )
            })? as u64;
        }
        previous = Some(&e.name);
    }
    if pos < cd_offset {
        return refuse(format!(
            "bytes {pos}..{cd_offset} of the zip archive (before the central directory) belong to no record; \
             data hidden between records is not accepted"
        ));
    }
    if pos > cd_offset {
        return refuse(format!(
            "the central directory at byte {cd_offset} overlaps record '{}' (which ends at byte {pos})",
            previous.unwrap_or("?")
        ));
    }
    if cd_end != directory_end {
        return refuse(format!(
            "bytes {cd_end}..{directory_end} of the zip archive (after the central directory) belong to no record"
        ));
    }
    Ok(())
}

/// The length of the data descriptor at `at` that repeats the entry's CRC and sizes (with or
/// without its signature, with 4- or 8-byte sizes), if there is one.
fn descriptor_len(bytes: &[u8], at: usize, e: &ZipEntry) -> Option<usize> {
    let rest = bytes.get(at..)?;
    let (skip, rest) = match rest.get(..4) {
        Some(s) if le32(s, 0) == DATA_DESCRIPTOR_SIG => (4, &rest[4..]),
        _ => (0, rest),
    };
    if rest.len() < 4 || le32(rest, 0) != e.crc32 {
        return None;
    }
    if rest.len() >= 12
        && le32(rest, 4) as u64 == e.compressed_size
        && le32(rest, 8) as u64 == e.size
    {
        return Some(skip + 12);
    }
    if rest.len() >= 20 && le64(rest, 4) == e.compressed_size && le64(rest, 12) == e.size {
        return Some(skip + 20);
    }
    None
}

/// The last end-of-central-directory record whose comment ends exactly at the end of the file.
fn find_eocd(bytes: &[u8]) -> Option<usize> {
    if bytes.len() < EOCD_LEN {
        return None;
    }
    let lowest = bytes.len().saturating_sub(EOCD_LEN + 0xffff);
    (lowest..=bytes.len() - EOCD_LEN).rev().find(|&p| {
        le32(bytes, p) == EOCD_SIG && p + EOCD_LEN + le16(bytes, p + 20) as usize == bytes.len()
    })
}

/// Replaces the 0xFFFFFFFF placeholders of an entry with its zip64 extra-field values.
fn apply_zip64_extra(entry: &mut ZipEntry, mut extra: &[u8]) -> std::result::Result<(), String> {
    const MAX32: u64 = 0xffff_ffff;
    while extra.len() >= 4 {
        let id = le16(extra, 0);
        let len = le16(extra, 2) as usize;
        let Some(field) = extra.get(4..4 + len) else {
            return Err("extra field runs past its header".into());
        };
        if id == ZIP64_EXTRA_ID {
            let mut at = 0;
            let mut next = |name: &str| -> std::result::Result<u64, String> {
                let v = field
                    .get(at..at + 8)
                    .map(|b| le64(b, 0))
                    .ok_or(format!("zip64 extra lacks the {name}"))?;
                at += 8;
                Ok(v)
            };
            if entry.size == MAX32 {
                entry.size = next("size")?;
            }
            if entry.compressed_size == MAX32 {
                entry.compressed_size = next("compressed size")?;
            }
            if entry.local_header_offset == MAX32 {
                entry.local_header_offset = next("header offset")?;
            }
        }
        extra = &extra[4 + len..];
    }
    Ok(())
}
