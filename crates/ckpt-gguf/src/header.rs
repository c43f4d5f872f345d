//! Parsing and validating everything before the tensor data: magic, version, counts, KV pairs,
//! tensor infos. Works on a prefix of the file so remote readers can fetch the header piece by
//! piece: when the bytes run out the parser says how many it needs.
//!
//! The checks are llama.cpp's (`gguf_init_from_file_impl` in ggml/src/gguf.cpp): duplicate keys
//! and tensor names, `general.alignment` a power-of-two u32, at most 4 dims, names under 64
//! bytes, `ne0` a whole number of blocks, element counts within int64, and tensor data contiguous
//! in tensor-info order, each tensor padded to the alignment.

use std::collections::HashSet;
use std::path::Path;

use ckpt_core::{DType, Error, GgmlType, Result};

use crate::value::{GgufArray, GgufValue, GgufValueType};

/// The first four bytes of every GGUF file.
pub(crate) const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// `GGUF_DEFAULT_ALIGNMENT`.
pub(crate) const DEFAULT_ALIGNMENT: u64 = 32;
/// `GGML_MAX_DIMS`.
pub(crate) const MAX_DIMS: usize = 4;
/// `GGML_MAX_NAME`: names are stored in a 64-byte buffer with a NUL, so at most 63 bytes.
pub const MAX_NAME_LEN: usize = 63;
/// The KV that overrides the data alignment (a u32 power of two; 32 when absent).
pub const ALIGNMENT_KEY: &str = "general.alignment";
/// llama.cpp's `GGUF_MAX_STRING_LENGTH`: the longest string a reader accepts, in bytes (1 GiB).
pub const MAX_STRING_LENGTH: u64 = 1 << 30;
/// llama.cpp's `GGUF_MAX_ARRAY_ELEMENTS`: the most elements an array may declare (1 Gi).
pub const MAX_ARRAY_ELEMENTS: u64 = 1 << 30;
/// How deep arrays of arrays may nest when they are allowed at all (stack safety).
const MAX_ARRAY_NESTING: usize = 8;

/// One tensor info of the header (ggml's `gguf_tensor_info`): where a tensor's data is and how
/// to read it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (at most [`MAX_NAME_LEN`] bytes), e.g. `blk.0.attn_q.weight`.
    pub name: String,
    /// The stored type: a float, integer or quantized block type.
    pub ggml_type: GgmlType,
    /// Dimensions in ggml order (`ne0`, the contiguous one, first); as many as the file's n_dims.
    pub ne: Vec<u64>,
    /// Byte offset of the data relative to the start of the data section.
    pub offset: u64,
}

impl TensorInfo {
    /// Row-major shape (outermost first): `ne` reversed.
    pub fn shape(&self) -> Vec<u64> {
        self.ne.iter().rev().copied().collect()
    }

    /// The core element type of `ggml_type`: the matching [`DType`] for floats and integers,
    /// `DType::Ggml` for block types.
    pub fn dtype(&self) -> DType {
        DType::from_ggml(self.ggml_type)
    }

    /// The number of elements (product of `ne`; 1 for a tensor without dimensions).
    pub fn numel(&self) -> u64 {
        self.ne.iter().product()
    }

    /// Bytes of the tensor data (without padding). Valid for infos produced by the parser.
    pub fn nbytes(&self) -> u64 {
        tensor_nbytes(self.ggml_type, &self.ne).unwrap_or(u64::MAX)
    }
}

/// ggml_nbytes for a dense tensor: rows of `ne0 / block` blocks times the other dims.
pub(crate) fn tensor_nbytes(t: GgmlType, ne: &[u64]) -> Option<u64> {
    let ne0 = ne.first().copied().unwrap_or(1);
    let row = t.row_bytes(ne0)?;
    ne.iter()
        .skip(1)
        .try_fold(row, |acc, &d| acc.checked_mul(d))
}

pub(crate) fn pad_to(x: u64, alignment: u64) -> Option<u64> {
    x.checked_add(alignment - 1)
        .map(|v| v / alignment * alignment)
}

/// Everything before the tensor data, parsed and validated.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufHeader {
    /// The GGUF version (2 or 3).
    pub version: u32,
    /// KV pairs in file order.
    pub kvs: Vec<(String, GgufValue)>,
    /// Tensor infos in file order.
    pub tensor_infos: Vec<TensorInfo>,
    /// The data alignment in bytes: `general.alignment`, or 32 when the file does not set it.
    pub alignment: u64,
    /// Where the tensor infos end (the header proper, before the alignment padding).
    pub infos_end: u64,
    /// Start of the tensor data section: `infos_end` padded to the alignment.
    pub data_offset: u64,
    /// Numbers (header and tensor data) are stored big-endian (`convert_hf_to_gguf.py --bigendian`).
    pub big_endian: bool,
}

impl GgufHeader {
    /// The value of KV `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Bytes of the data section up to the end of the last tensor (without its padding).
    pub fn data_len(&self) -> u64 {
        self.tensor_infos
            .iter()
            .map(|t| t.offset + t.nbytes())
            .max()
            .unwrap_or(0)
    }
}

/// The outcome of parsing a prefix of a GGUF file.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderParse {
    /// The whole header was in the bytes given.
    Complete(GgufHeader),
    /// The bytes given end inside the header; call again with at least this many.
    NeedMore {
        /// The total number of bytes from the start of the file needed to go further (a lower
        /// bound: the header may turn out longer still).
        at_least: usize,
    },
}

/// Reader options beyond llama.cpp's rules.
#[derive(Clone, Debug, Default)]
pub struct ParseOptions {
    /// Accept arrays whose elements are arrays. llama.cpp's reader rejects them ("invalid GGUF
    /// type 9"), gguf-py reads them; `inspect` may want to show such files.
    pub allow_nested_arrays: bool,
}

/// Parses a header from the first bytes of a GGUF file whose total size is unknown.
pub fn parse_header(bytes: &[u8]) -> Result<HeaderParse> {
    parse_header_with(
        bytes,
        Path::new("<GGUF header>"),
        None,
        &ParseOptions::default(),
    )
}

/// Parses a header from the first bytes of `origin` (named in errors). With `file_size` known,
/// counts and lengths are checked against it and a header running past it is an error instead
/// of `NeedMore`; tensor data is checked to lie inside the file.
pub fn parse_header_with(
    bytes: &[u8],
    origin: &Path,
    file_size: Option<u64>,
    options: &ParseOptions,
) -> Result<HeaderParse> {
    let mut cur = Cursor {
        bytes,
        pos: 0,
        origin,
        file_size,
        big_endian: false,
    };
    match parse(&mut cur, options) {
        Ok(h) => Ok(HeaderParse::Complete(h)),
        Err(Stop::More(n)) => Ok(HeaderParse::NeedMore {
            at_least: usize::try_from(n).unwrap_or(usize::MAX),
        }),
        Err(Stop::Fail(e)) => Err(e),
    }
}

enum Stop {
    More(u64),
    Fail(Error),
}

type Parsed<T> = std::result::Result<T, Stop>;

struct Cursor<'a> {
    bytes: &'a [u8],
    /// Numbers are stored big-endian (detected from the version field).
    big_endian: bool,
    pos: usize,
    origin: &'a Path,
    file_size: Option<u64>,
}

impl<'a> Cursor<'a> {
    fn fail<T>(&self, msg: impl Into<String>) -> Parsed<T> {
        Err(Stop::Fail(Error::invalid(self.origin, msg.into())))
    }

    fn remaining_in_file(&self) -> Option<u64> {
        self.file_size.map(|s| s.saturating_sub(self.pos as u64))
    }

    /// The next `n` bytes; `what` describes them for the truncation error.
    fn take(&mut self, n: u64, what: &dyn Fn() -> String) -> Parsed<&'a [u8]> {
        let start = self.pos as u64;
        let end = match start.checked_add(n) {
            Some(e) => e,
            None => return self.fail(format!("{} at byte {start}: length {n} overflows", what())),
        };
        if let Some(size) = self.file_size {
            if end > size {
                return self.fail(format!(
                    "truncated: {} at byte {start} needs {n} bytes but the file ends at byte {size}",
                    what()
                ));
            }
        }
        if end > self.bytes.len() as u64 {
            return Err(Stop::More(end));
        }
        let s = &self.bytes[self.pos..end as usize];
        self.pos = end as usize;
        Ok(s)
    }

    fn array<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Parsed<[u8; N]> {
        Ok(self
            .take(N as u64, what)?
            .try_into()
            .expect("take returns N bytes"))
    }

    /// The next N bytes of a number, in little-endian order whatever the file's byte order.
    fn number<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Parsed<[u8; N]> {
        let mut b = self.array::<N>(what)?;
        if self.big_endian {
            b.reverse();
        }
        Ok(b)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Parsed<u32> {
        Ok(u32::from_le_bytes(self.number(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Parsed<u64> {
        Ok(u64::from_le_bytes(self.number(what)?))
    }

    fn string(&mut self, what: &dyn Fn() -> String) -> Parsed<String> {
        let at = self.pos;
        let len = self.u64(&|| format!("length of {}", what()))?;
        if len > MAX_STRING_LENGTH {
            return self.fail(format!(
                "{} at byte {at}: length {len} exceeds llama.cpp's limit of {MAX_STRING_LENGTH}",
                what()
            ));
        }
        let raw = self.take(len, what)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(s.to_string()),
            Err(e) => self.fail(format!("{} at byte {at} is not valid UTF-8 ({e})", what())),
        }
    }

    /// Rejects a count of items that cannot possibly fit in the rest of the file, before any
    /// item is read or anything allocated for them.
    fn check_count(&self, count: u64, min_item: u64, what: &str, at: usize) -> Parsed<()> {
        if let Some(left) = self.remaining_in_file() {
            if count.checked_mul(min_item).is_none_or(|need| need > left) {
                return self.fail(format!(
                    "{what} at byte {at} is {count}, but the {left} bytes left in the file cannot hold that many \
                     (each takes at least {min_item} bytes)"
                ));
            }
        }
        Ok(())
    }
}

fn parse(cur: &mut Cursor, options: &ParseOptions) -> Parsed<GgufHeader> {
    let magic = cur.array::<4>(&|| "magic".into())?;
    if magic != GGUF_MAGIC {
        return cur.fail(format!(
            "not a GGUF file: magic bytes are {magic:02x?}, expected \"GGUF\" (47 47 55 46)"
        ));
    }
    let mut version = cur.u32(&|| "version".into())?;
    // No flag marks a big-endian file (convert_hf_to_gguf.py --bigendian); its version, a small
    // number, reads with the low 16 bits zero in little-endian order. gguf-py detects it the same
    // way and reads it; llama.cpp on a little-endian host rejects it. We read it.
    if version & 0xFFFF == 0 && version != 0 {
        cur.big_endian = true;
        version = version.swap_bytes();
    }
    match version {
        2 | 3 => {}
        1 => {
            return cur
                .fail("GGUF version 1 (32-bit counts) is not supported; re-convert the model")
        }
        v => {
            return cur.fail(format!(
                "unsupported GGUF version {v} at byte 4 (supported: 2 and 3)"
            ))
        }
    }
    let tensor_count = cur.u64(&|| "tensor count".into())?;
    let kv_count = cur.u64(&|| "KV count".into())?;
    if tensor_count > i64::MAX as u64 || kv_count > i64::MAX as u64 {
        return cur.fail(format!(
            "tensor count {tensor_count} / KV count {kv_count} at byte 8 exceed int64"
        ));
    }
    // A KV is at least a key length, a type and one byte; a tensor info at least a name length,
    // n_dims, a type and an offset.
    cur.check_count(kv_count, 8 + 4 + 1, "KV count", 16)?;
    cur.check_count(tensor_count, 8 + 4 + 4 + 8, "tensor count", 8)?;

    let mut kvs: Vec<(String, GgufValue)> = Vec::new();
    let mut keys = HashSet::new();
    for i in 0..kv_count {
        let at = cur.pos;
        let key = cur.string(&|| format!("key of KV #{i}"))?;
        if key.is_empty() {
            return cur.fail(format!("KV #{i} at byte {at} has an empty key"));
        }
        if !keys.insert(key.clone()) {
            return cur.fail(format!("duplicate key '{key}' at byte {at} (KV #{i})"));
        }
        let type_at = cur.pos;
        let type_id = cur.u32(&|| format!("value type of key '{key}'"))?;
        let Some(vtype) = GgufValueType::from_id(type_id) else {
            return cur.fail(format!(
                "key '{key}' at byte {type_at} has invalid value type {type_id}"
            ));
        };
        let value = parse_value(cur, vtype, &key, options, 0)?;
        kvs.push((key, value));
    }

    let alignment = match kvs.iter().find(|(k, _)| k == ALIGNMENT_KEY).map(|(_, v)| v) {
        None => DEFAULT_ALIGNMENT,
        Some(GgufValue::U32(a)) if a.is_power_of_two() => *a as u64,
        Some(GgufValue::U32(a)) => {
            return cur.fail(format!(
                "{ALIGNMENT_KEY} = {a} is not a non-zero power of two"
            ));
        }
        Some(other) => {
            return cur.fail(format!(
                "{ALIGNMENT_KEY} has type {}, expected UINT32",
                other.value_type()
            ));
        }
    };

    let mut tensor_infos: Vec<TensorInfo> = Vec::new();
    let mut names = HashSet::new();
    for i in 0..tensor_count {
        let at = cur.pos;
        let name = cur.string(&|| format!("name of tensor #{i}"))?;
        if name.len() > MAX_NAME_LEN {
            return cur.fail(format!(
                "tensor #{i} at byte {at}: name '{name}' is {} bytes, ggml allows at most {MAX_NAME_LEN}",
                name.len()
            ));
        }
        if !names.insert(name.clone()) {
            return cur.fail(format!(
                "duplicate tensor name '{name}' at byte {at} (tensor #{i})"
            ));
        }
        let dims_at = cur.pos;
        let n_dims = cur.u32(&|| format!("n_dims of tensor '{name}'"))?;
        if n_dims as usize > MAX_DIMS {
            return cur.fail(format!("tensor '{name}' at byte {dims_at} has {n_dims} dimensions, at most {MAX_DIMS} allowed"));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for d in 0..n_dims {
            let v = cur.u64(&|| format!("ne[{d}] of tensor '{name}'"))?;
            if v > i64::MAX as u64 {
                return cur.fail(format!(
                    "tensor '{name}' at byte {dims_at}: ne[{d}] = {v} is negative as int64"
                ));
            }
            ne.push(v);
        }
        if ne
            .iter()
            .try_fold(1i64, |acc, &d| acc.checked_mul(d as i64))
            .is_none()
        {
            return cur.fail(format!(
                "tensor '{name}' at byte {dims_at}: element count of ne {ne:?} overflows int64"
            ));
        }
        let type_at = cur.pos;
        let type_id = cur.u32(&|| format!("type of tensor '{name}'"))?;
        let Some(ggml_type) = GgmlType::from_id(type_id) else {
            return cur.fail(format!(
                "tensor '{name}' at byte {type_at} has unknown ggml type id {type_id}"
            ));
        };
        let ne0 = ne.first().copied().unwrap_or(1);
        if ne0 % ggml_type.block_size() as u64 != 0 {
            return cur.fail(format!(
                "tensor '{name}' at byte {dims_at}: ne0 = {ne0} is not a multiple of the {} block size {}",
                ggml_type.name(),
                ggml_type.block_size()
            ));
        }
        if tensor_nbytes(ggml_type, &ne).is_none() {
            return cur.fail(format!(
                "tensor '{name}' at byte {dims_at}: byte size of ne {ne:?} overflows"
            ));
        }
        let offset = cur.u64(&|| format!("data offset of tensor '{name}'"))?;
        tensor_infos.push(TensorInfo {
            name,
            ggml_type,
            ne,
            offset,
        });
    }
    let infos_end = cur.pos as u64;

    // llama.cpp requires the data of tensor i+1 to start right after tensor i's padded data.
    let mut expected = 0u64;
    for t in &tensor_infos {
        if t.offset != expected {
            return cur.fail(format!(
                "tensor '{}' has data offset {}, expected {expected} (tensor data must be contiguous in \
                 tensor-info order, each tensor padded to the alignment {alignment})",
                t.name, t.offset
            ));
        }
        match pad_to(t.nbytes(), alignment).and_then(|n| expected.checked_add(n)) {
            Some(next) => expected = next,
            None => return cur.fail(format!("tensor '{}': data offsets overflow", t.name)),
        }
    }

    let Some(data_offset) = pad_to(infos_end, alignment) else {
        return cur.fail("data section offset overflows");
    };
    if let Some(size) = cur.file_size {
        for t in &tensor_infos {
            let end = data_offset
                .checked_add(t.offset)
                .and_then(|s| s.checked_add(t.nbytes()));
            if end.is_none_or(|e| e > size) {
                return cur.fail(format!(
                    "tensor '{}' data (bytes {}..{}+{}) lies outside the file ({size} bytes)",
                    t.name,
                    data_offset.saturating_add(t.offset),
                    data_offset.saturating_add(t.offset),
                    t.nbytes()
                ));
            }
        }
    }
    Ok(GgufHeader {
        version,
        kvs,
        tensor_infos,
        alignment,
        infos_end,
        data_offset,
        big_endian: cur.big_endian,
    })
}

fn parse_value(
    cur: &mut Cursor,
    vtype: GgufValueType,
    key: &str,
    options: &ParseOptions,
    depth: usize,
) -> Parsed<GgufValue> {
    let what = || format!("value of key '{key}'");
    Ok(match vtype {
        GgufValueType::U8 => GgufValue::U8(cur.array::<1>(&what)?[0]),
        GgufValueType::I8 => GgufValue::I8(cur.array::<1>(&what)?[0] as i8),
        GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(cur.number(&what)?)),
        GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(cur.number(&what)?)),
        GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(cur.number(&what)?)),
        GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(cur.number(&what)?)),
        GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(cur.number(&what)?)),
        GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(cur.number(&what)?)),
        GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(cur.number(&what)?)),
        GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(cur.number(&what)?)),
        GgufValueType::Bool => {
            let at = cur.pos;
            match cur.array::<1>(&what)?[0] {
                0 => GgufValue::Bool(false),
                1 => GgufValue::Bool(true),
                b => {
                    return cur.fail(format!(
                        "key '{key}' at byte {at}: bool value {b} is neither 0 nor 1"
                    ))
                }
            }
        }
        GgufValueType::String => GgufValue::String(cur.string(&what)?),
        GgufValueType::Array => {
            let at = cur.pos;
            let elem_id = cur.u32(&|| format!("element type of array '{key}'"))?;
            let Some(elem_type) = GgufValueType::from_id(elem_id) else {
                return cur.fail(format!(
                    "array '{key}' at byte {at} has invalid element type {elem_id}"
                ));
            };
            if elem_type == GgufValueType::Array {
                if !options.allow_nested_arrays {
                    return cur.fail(format!(
                        "key '{key}' at byte {at} is an array of arrays, which llama.cpp rejects \
                         (\"invalid GGUF type 9\")"
                    ));
                }
                if depth >= MAX_ARRAY_NESTING {
                    return cur.fail(format!(
                        "key '{key}' at byte {at}: arrays nested deeper than {MAX_ARRAY_NESTING}"
                    ));
                }
            }
            let count_at = cur.pos;
            let count = cur.u64(&|| format!("length of array '{key}'"))?;
            if count > MAX_ARRAY_ELEMENTS {
                return cur.fail(format!(
                    "array '{key}' at byte {count_at} has {count} elements, more than llama.cpp's limit of {MAX_ARRAY_ELEMENTS}"
                ));
            }
            cur.check_count(
                count,
                elem_type.min_encoded_size() as u64,
                &format!("length of array '{key}'"),
                count_at,
            )?;
            let items = match elem_type.fixed_size() {
                Some(size) => {
                    let need = count.saturating_mul(size as u64);
                    let raw = cur.take(need, &what)?;
                    if elem_type == GgufValueType::Bool {
                        if let Some(pos) = raw.iter().position(|&b| b > 1) {
                            return cur.fail(format!(
                                "array '{key}' at byte {at}: bool item #{pos} is neither 0 nor 1"
                            ));
                        }
                    }
                    decode_fixed(elem_type, raw, size, cur.big_endian)
                }
                None => {
                    let mut items = Vec::new();
                    for _ in 0..count {
                        items.push(parse_value(cur, elem_type, key, options, depth + 1)?);
                    }
                    items
                }
            };
            GgufValue::Array(GgufArray { elem_type, items })
        }
    })
}

/// Decodes `raw` as back-to-back values of type `t`.
fn decode_fixed(t: GgufValueType, raw: &[u8], size: usize, big_endian: bool) -> Vec<GgufValue> {
    let mut le = [0u8; 8];
    raw.chunks_exact(size)
        .map(|chunk| {
            let c = &mut le[..size];
            c.copy_from_slice(chunk);
            if big_endian {
                c.reverse();
            }
            let c: &[u8] = c;
            match t {
                GgufValueType::U8 => GgufValue::U8(c[0]),
                GgufValueType::Bool => GgufValue::Bool(c[0] != 0),
                GgufValueType::I8 => GgufValue::I8(c[0] as i8),
                GgufValueType::U16 => GgufValue::U16(u16::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::I16 => GgufValue::I16(i16::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::U32 => GgufValue::U32(u32::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::I32 => GgufValue::I32(i32::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::F32 => GgufValue::F32(f32::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::U64 => GgufValue::U64(u64::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::I64 => GgufValue::I64(i64::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::F64 => GgufValue::F64(f64::from_le_bytes(c.try_into().unwrap())),
                GgufValueType::String | GgufValueType::Array => {
                    unreachable!("only fixed-size types are decoded here")
                }
            }
        })
        .collect()
}

/// Parses the whole header of a file held in memory (its size is the file size).
pub(crate) fn parse_complete(
    bytes: &[u8],
    path: &Path,
    options: &ParseOptions,
) -> Result<GgufHeader> {
    match parse_header_with(bytes, path, Some(bytes.len() as u64), options)? {
        HeaderParse::Complete(h) => Ok(h),
        // Unreachable with a known file size, but an error is cheaper than trusting that.
        HeaderParse::NeedMore { at_least } => Err(Error::invalid(
            path,
            format!(
                "truncated: the header needs at least {at_least} bytes, the file has {}",
                bytes.len()
            ),
        )),
    }
}
