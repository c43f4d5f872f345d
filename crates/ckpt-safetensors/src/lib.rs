//! safetensors: a reader that mmaps the file and applies every check of the reference
//! implementation (plus duplicate-key rejection), a header-only parser for partial/remote reads,
//! and a deterministic streaming writer.
//!
//! Layout: u64 LE header length N, N bytes of UTF-8 JSON, then the data buffer; every
//! `data_offsets` pair is relative to byte 8+N.
//!
//! Entry points: [`read`] (a whole file, lazily), [`parse_header`] (the header alone, e.g. the
//! first bytes of a remote file), [`write()`] (atomic, tensors in the reference writer's order:
//! widest dtype first, then by name) and [`write_to`] / [`write_to_file`] for a stream.
//!
//! ```
//! use std::collections::BTreeMap;
//! use std::path::Path;
//!
//! let src = Path::new(concat!(
//!     env!("CARGO_MANIFEST_DIR"),
//!     "/../../tests/fixtures/torch/parameters.expected.safetensors"
//! ));
//! let ckpt = ckpt_safetensors::read(src)?;
//! assert!(!ckpt.tensors.is_empty());
//!
//! // Writing the tensors back gives a file with the same header entries.
//! let dir = tempfile::tempdir().unwrap();
//! let out = dir.path().join("copy.safetensors");
//! ckpt_safetensors::write(&out, &ckpt.tensors, &ckpt.metadata, false, &mut |_| {})?;
//! let bytes = std::fs::read(&out).unwrap();
//! let header = ckpt_safetensors::parse_header(&bytes, Some(bytes.len() as u64), &out)?;
//! assert_eq!(header.entries.len(), ckpt.tensors.len());
//! # Ok::<(), ckpt_core::Error>(())
//! ```

#![warn(missing_docs)]

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use ckpt_core::atomic::AtomicFile;
use ckpt_core::{Buffer, Checkpoint, DType, Error, Format, Result, Storage, Tensor};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

/// The reference implementation's limit on the JSON header (100 MB).
pub(crate) const MAX_HEADER_SIZE: u64 = ckpt_core::sniff::SAFETENSORS_MAX_HEADER_SIZE;
/// What we write at most: huggingface_hub and huggingface.js refuse headers above 25 MB.
pub(crate) const MAX_WRITTEN_HEADER_SIZE: usize = 25_000_000;

/// One tensor of a safetensors header.
#[derive(Debug, Clone, PartialEq)]
pub struct HeaderEntry {
    /// The tensor's key in the header JSON.
    pub name: String,
    /// The element type (the header's `dtype` string, e.g. `"BF16"`).
    pub dtype: DType,
    /// Row-major dimensions, as in the header (`[]` for a scalar).
    pub shape: Vec<u64>,
    /// Start of the tensor's bytes (`data_offsets[0]`), relative to the start of the data buffer.
    pub begin: u64,
    /// End of the tensor's bytes, exclusive (`data_offsets[1]`), relative like `begin`.
    pub end: u64,
}

/// A parsed and validated header.
#[derive(Debug, Clone)]
pub struct Header {
    /// N, the JSON length; data starts at 8 + N.
    pub(crate) header_len: u64,
    /// The `__metadata__` string map, when the header has one.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Entries sorted by data offset (file order).
    pub entries: Vec<HeaderEntry>,
}

impl Header {
    pub(crate) fn data_start(&self) -> u64 {
        8 + self.header_len
    }
    /// The byte length of the data buffer the header describes.
    pub(crate) fn data_len(&self) -> u64 {
        self.entries.last().map(|e| e.end).unwrap_or(0)
    }
    /// The length of a file holding exactly this header and its data (8 + N + data length).
    pub fn file_len(&self) -> u64 {
        self.data_start() + self.data_len()
    }
}

/// Reads the 8-byte length prefix; `Ok(None)` when fewer than 8 bytes are given.
pub fn header_len_prefix(bytes: &[u8], path: &Path) -> Result<Option<u64>> {
    if bytes.len() < 8 {
        return Ok(None);
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap());
    if ckpt_core::sniff::is_lfs_pointer(bytes) {
        return Err(Error::invalid(
            path,
            "this is a Git LFS pointer file, not safetensors data (fetch the real file with git lfs pull or ckpt pull)",
        ));
    }
    if n > MAX_HEADER_SIZE {
        return Err(Error::invalid(
            path,
            format!("header length {n} at byte 0 exceeds the {MAX_HEADER_SIZE}-byte limit (corrupt or not a safetensors file)"),
        ));
    }
    Ok(Some(n))
}

/// Parses and validates a header from `bytes`, which must hold at least 8 + N bytes (header-only
/// mode: the data buffer may be absent). When `file_len` is known the exact-coverage check runs too.
pub fn parse_header(bytes: &[u8], file_len: Option<u64>, path: &Path) -> Result<Header> {
    let Some(n) = header_len_prefix(bytes, path)? else {
        return Err(Error::invalid(
            path,
            format!(
                "file is {} bytes, too small for the 8-byte header length",
                bytes.len()
            ),
        ));
    };
    let json_end = 8 + n as usize;
    if bytes.len() < json_end || file_len.is_some_and(|l| l < json_end as u64) {
        let have = file_len.unwrap_or(bytes.len() as u64);
        return Err(Error::invalid(
            path,
            format!("header claims {n} bytes of JSON after byte 8 but the file has only {have} bytes (truncated?)"),
        ));
    }
    let text = std::str::from_utf8(&bytes[8..json_end]).map_err(|e| {
        Error::invalid(
            path,
            format!(
                "header is not valid UTF-8 (byte {}): {e}",
                8 + e.valid_up_to()
            ),
        )
    })?;
    let raw: RawHeader = serde_json::from_str(text)
        .map_err(|e| Error::invalid(path, format!("invalid header JSON: {e}")))?;

    let mut entries = raw.tensors;
    entries.sort_by(|a, b| {
        (a.begin, a.end)
            .cmp(&(b.begin, b.end))
            .then_with(|| a.name.cmp(&b.name))
    });
    let mut expected_begin = 0u64;
    for e in &entries {
        if e.begin != expected_begin || e.end < e.begin {
            return Err(Error::invalid(
                path,
                format!(
                    "tensor '{}': data_offsets [{}, {}] must start at {} (offsets have to be contiguous, without gaps or overlaps)",
                    e.name, e.begin, e.end, expected_begin
                ),
            ));
        }
        let want = e
            .dtype
            .nbytes(&e.shape)
            .map_err(|m| Error::invalid(path, format!("tensor '{}': {m}", e.name)))?;
        if e.end - e.begin != want {
            return Err(Error::invalid(
                path,
                format!(
                    "tensor '{}': {} {:?} needs {} bytes but data_offsets [{}, {}] span {}",
                    e.name,
                    e.dtype,
                    e.shape,
                    want,
                    e.begin,
                    e.end,
                    e.end - e.begin
                ),
            ));
        }
        expected_begin = e.end;
    }
    let header = Header {
        header_len: n,
        metadata: raw.metadata,
        entries,
    };
    if let Some(len) = file_len {
        if header.file_len() != len {
            let msg = if header.file_len() > len {
                format!(
                    "file is truncated: the header describes {} bytes of tensor data ending at byte {}, but the file has {} bytes",
                    header.data_len(),
                    header.file_len(),
                    len
                )
            } else {
                format!(
                    "file has {} trailing bytes after the last tensor (ends at byte {}, file is {} bytes)",
                    len - header.file_len(),
                    header.file_len(),
                    len
                )
            };
            return Err(Error::invalid(path, msg));
        }
    }
    Ok(header)
}

/// Memory-maps and validates a safetensors file; tensors come back lazily in file order.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let buffer = Buffer::map(path)?;
    let header = parse_header(buffer.bytes(), Some(buffer.len() as u64), path)?;
    let data_start = header.data_start() as usize;
    let mut ckpt = Checkpoint::new(Format::Safetensors, vec![path.to_path_buf()]);
    for e in header.entries {
        let storage = Storage::new(
            buffer.clone(),
            data_start + e.begin as usize,
            (e.end - e.begin) as usize,
            format!(
                "tensor '{}' at byte {}",
                e.name,
                data_start as u64 + e.begin
            ),
        )?;
        ckpt.tensors
            .push(Tensor::contiguous(e.name, e.dtype, e.shape, storage));
    }
    ckpt.metadata = header.metadata.unwrap_or_default();
    Ok(ckpt)
}

/// The reference writer's order: wider dtypes first (so every tensor is aligned to its element
/// size once the header is padded to 8), then by name.
fn write_rank(d: DType) -> usize {
    const ORDER: &[DType] = &[
        DType::U64,
        DType::I64,
        DType::F64,
        DType::C64,
        DType::F32,
        DType::U32,
        DType::I32,
        DType::BF16,
        DType::F16,
        DType::U16,
        DType::I16,
        DType::F8E5M2Fnuz,
        DType::F8E4M3Fnuz,
        DType::F8E8M0,
        DType::F8E4M3,
        DType::F8E5M2,
        DType::I8,
        DType::U8,
        DType::F6E3M2,
        DType::F6E2M3,
        DType::F4,
        DType::Bool,
    ];
    ORDER.iter().position(|&x| x == d).unwrap_or(ORDER.len())
}

/// The header JSON for `tensors` (already in write order) and `metadata`, padded with spaces
/// to a multiple of 8.
pub(crate) fn build_header(
    tensors: &[&Tensor],
    metadata: &BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let mut json = String::from("{");
    let mut first = true;
    if !metadata.is_empty() {
        json.push_str("\"__metadata__\":");
        json.push_str(&serde_json::to_string(metadata).expect("string map serialises"));
        first = false;
    }
    let mut offset = 0u64;
    for t in tensors {
        let dtype_name = t.dtype.safetensors_name().ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor '{}': safetensors has no dtype for {}",
                t.name, t.dtype
            ))
        })?;
        let size = t
            .dtype
            .nbytes(&t.shape)
            .map_err(|m| Error::Other(format!("tensor '{}': {m}", t.name)))?;
        if !first {
            json.push(',');
        }
        first = false;
        json.push_str(&serde_json::to_string(&t.name).unwrap());
        json.push_str(&format!(
            ":{{\"dtype\":\"{dtype_name}\",\"shape\":{},\"data_offsets\":[{},{}]}}",
            serde_json::to_string(&t.shape).unwrap(),
            offset,
            offset + size
        ));
        offset += size;
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    if json.len() > MAX_WRITTEN_HEADER_SIZE {
        return Err(Error::Unsupported(format!(
            "the safetensors header would be {} bytes, above the 25 MB that Hub tools accept; shard the output",
            json.len()
        )));
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    Ok(out)
}

/// Orders tensors the way the reference writer does (dtype width, then name).
pub(crate) fn write_order(tensors: &[Tensor]) -> Vec<&Tensor> {
    let mut refs: Vec<&Tensor> = tensors.iter().collect();
    refs.sort_by(|a, b| {
        write_rank(a.dtype)
            .cmp(&write_rank(b.dtype))
            .then_with(|| a.name.cmp(&b.name))
    });
    refs
}

/// Writes `tensors` to `w` one at a time; `on_tensor` is called with each tensor's byte count.
pub fn write_to(
    w: &mut dyn Write,
    tensors: &[Tensor],
    metadata: &BTreeMap<String, String>,
    on_tensor: &mut dyn FnMut(u64),
) -> Result<()> {
    write_with(w, tensors, metadata, on_tensor, |t, w| t.write_to(w))
}

/// [`write_to`] for a file: tensor data that is a dense range of a mapped input is copied by the
/// kernel instead of through user space.
pub fn write_to_file(
    w: &mut BufWriter<File>,
    tensors: &[Tensor],
    metadata: &BTreeMap<String, String>,
    on_tensor: &mut dyn FnMut(u64),
) -> Result<()> {
    write_with(w, tensors, metadata, on_tensor, |t, w| t.write_to_file(w))
}

fn write_with<W: Write + ?Sized>(
    w: &mut W,
    tensors: &[Tensor],
    metadata: &BTreeMap<String, String>,
    on_tensor: &mut dyn FnMut(u64),
    write_tensor: impl FnMut(&Tensor, &mut W) -> Result<u64>,
) -> Result<()> {
    let ordered = checked_order(tensors)?;
    let header = build_header(&ordered, metadata)?;
    w.write_all(&header)
        .map_err(|e| Error::Other(format!("writing header: {e}")))?;
    ckpt_core::tensor::write_pipelined(&ordered, w, write_tensor, |_, n, _| {
        on_tensor(n);
        Ok(())
    })
}

fn checked_order(tensors: &[Tensor]) -> Result<Vec<&Tensor>> {
    let mut seen = HashSet::new();
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::Other(format!(
                "tensor name '{}' appears twice in the output",
                t.name
            )));
        }
    }
    Ok(write_order(tensors))
}

/// Writes a safetensors file atomically (temp file + rename).
pub fn write(
    out: &Path,
    tensors: &[Tensor],
    metadata: &BTreeMap<String, String>,
    overwrite: bool,
    on_tensor: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut file = AtomicFile::create(out, overwrite)?;
    write_to_file(file.writer(), tensors, metadata, on_tensor).map_err(|e| match e {
        Error::Other(m) => Error::Other(format!("{}: {m}", out.display())),
        other => other,
    })?;
    file.commit()
}

// ---- header deserialisation with duplicate-key rejection -------------------------------------

struct RawHeader {
    metadata: Option<BTreeMap<String, String>>,
    tensors: Vec<HeaderEntry>,
}

impl<'de> de::Deserialize<'de> for RawHeader {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = RawHeader;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object mapping tensor names to {dtype, shape, data_offsets}")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawHeader, A::Error> {
        let mut seen = HashSet::new();
        let mut metadata = None;
        let mut tensors = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) {
                return Err(de::Error::custom(format!(
                    "duplicate key '{key}' in header"
                )));
            }
            if key == "__metadata__" {
                metadata = map.next_value::<Option<MetadataMap>>()?.map(|m| m.0);
            } else {
                let info: TensorEntry = map
                    .next_value()
                    .map_err(|e: A::Error| de::Error::custom(format!("tensor '{key}': {e}")))?;
                tensors.push(HeaderEntry {
                    name: key,
                    dtype: info.dtype,
                    shape: info.shape,
                    begin: info.begin,
                    end: info.end,
                });
            }
        }
        Ok(RawHeader { metadata, tensors })
    }
}

struct MetadataMap(BTreeMap<String, String>);

impl<'de> de::Deserialize<'de> for MetadataMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MetadataMap;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("__metadata__ as an object of string values")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<MetadataMap, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(k) = map.next_key::<String>()? {
                    let v: String = map.next_value().map_err(|e: A::Error| {
                        de::Error::custom(format!(
                            "__metadata__ value of '{k}' must be a string: {e}"
                        ))
                    })?;
                    if out.insert(k.clone(), v).is_some() {
                        return Err(de::Error::custom(format!(
                            "duplicate key '{k}' in __metadata__"
                        )));
                    }
                }
                Ok(MetadataMap(out))
            }
        }
        d.deserialize_map(V)
    }
}

struct TensorEntry {
    dtype: DType,
    shape: Vec<u64>,
    begin: u64,
    end: u64,
}

impl<'de> de::Deserialize<'de> for TensorEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TensorEntry;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object with dtype, shape and data_offsets")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<TensorEntry, A::Error> {
                let (mut dtype, mut shape, mut offsets) = (None, None, None);
                let mut seen = HashSet::new();
                while let Some(k) = map.next_key::<String>()? {
                    if !seen.insert(k.clone()) {
                        return Err(de::Error::custom(format!("duplicate field '{k}'")));
                    }
                    match k.as_str() {
                        "dtype" => {
                            let s: String = map.next_value()?;
                            dtype = Some(DType::from_safetensors_name(&s).ok_or_else(|| {
                                de::Error::custom(format!("unknown dtype '{s}'"))
                            })?);
                        }
                        "shape" => shape = Some(map.next_value::<Vec<u64>>()?),
                        "data_offsets" => offsets = Some(map.next_value::<Pair>()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                let dtype = dtype.ok_or_else(|| de::Error::missing_field("dtype"))?;
                let shape = shape.ok_or_else(|| de::Error::missing_field("shape"))?;
                let Pair(begin, end) =
                    offsets.ok_or_else(|| de::Error::missing_field("data_offsets"))?;
                Ok(TensorEntry {
                    dtype,
                    shape,
                    begin,
                    end,
                })
            }
        }
        d.deserialize_map(V)
    }
}

struct Pair(u64, u64);

impl<'de> de::Deserialize<'de> for Pair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Pair;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("data_offsets as exactly two non-negative integers")
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Pair, A::Error> {
                let a = seq
                    .next_element::<u64>()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                let b = seq
                    .next_element::<u64>()?
                    .ok_or_else(|| de::Error::invalid_length(1, &self))?;
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(3, &self));
                }
                Ok(Pair(a, b))
            }
        }
        d.deserialize_seq(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(json: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (json.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(json.as_bytes());
        v.extend_from_slice(data);
        v
    }

    fn parse(bytes: &[u8]) -> Result<Header> {
        parse_header(bytes, Some(bytes.len() as u64), Path::new("t.safetensors"))
    }

    #[test]
    fn reference_example_bytes() {
        // The 104-byte file of the reference digest: one F32 tensor [1, 2] with format=pt.
        let t = Tensor::contiguous(
            "a",
            DType::F32,
            vec![2],
            Storage::new(
                Buffer::owned(
                    "mem",
                    [1f32, 2.0].iter().flat_map(|x| x.to_le_bytes()).collect(),
                ),
                0,
                8,
                "a",
            )
            .unwrap(),
        );
        let mut out = Vec::new();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        write_to(&mut out, &[t], &meta, &mut |_| {}).unwrap();
        assert_eq!(out.len(), 104);
        assert_eq!(&out[..8], &88u64.to_le_bytes());
        assert_eq!(
            std::str::from_utf8(&out[8..96]).unwrap(),
            "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}   "
        );
        let h = parse(&out).unwrap();
        assert_eq!(h.entries[0].shape, vec![2]);
    }

    #[test]
    fn empty_header() {
        let h = parse(&file("{}      ", b"")).unwrap();
        assert!(h.entries.is_empty());
    }

    #[test]
    fn rejections() {
        let ok = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        assert!(parse(&file(ok, &[0; 4])).is_ok());
        assert!(
            parse(&file(&format!("  {ok}\n"), &[0; 4])).is_ok(),
            "whitespace padding is allowed"
        );
        let cases = [
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                "duplicate",
            ),
            (
                r#"{"a":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#,
                "unknown dtype",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#,
                "needs 8 bytes",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
                "contiguous",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#,
                "invalid header",
            ),
            (
                r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,4]}}"#,
                "invalid header",
            ),
            (
                r#"{"__metadata__":{"x":1},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
                "must be a string",
            ),
        ];
        for (json, want) in cases {
            let err = parse(&file(json, &[0; 4])).unwrap_err().to_string();
            assert!(err.contains(want), "{json}: {err}");
        }
        assert!(parse(&file(ok, &[0; 3]))
            .unwrap_err()
            .to_string()
            .contains("truncated"));
        assert!(parse(&file(ok, &[0; 5]))
            .unwrap_err()
            .to_string()
            .contains("trailing"));
        let mut nul = file(ok, &[0; 4]);
        nul[8 + ok.len() - 1] = 0;
        assert!(parse(&nul).is_err());
        let huge = (MAX_HEADER_SIZE + 1).to_le_bytes();
        assert!(parse(&huge).unwrap_err().to_string().contains("limit"));
        assert!(
            parse(b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\n")
                .unwrap_err()
                .to_string()
                .contains("LFS")
        );
        assert!(parse(&[1, 0]).is_err());
    }

    #[test]
    fn zero_sized_and_scalar() {
        let json = r#"{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[2,0],"data_offsets":[8,8]}}"#;
        let h = parse(&file(json, &[0; 8])).unwrap();
        assert_eq!(h.entries.len(), 2);
    }
}
