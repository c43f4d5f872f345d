//! A small GGUF header reader (magic, version, counts, typed KVs, tensor infos): all the store
//! needs to fill the config blob and `ollama show`. Tensor data are never read.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{OllamaError, Result};

const MAGIC: &[u8; 4] = b"GGUF";
/// Arrays and strings longer than this are rejected before allocating (no real header comes
/// close: the largest vocabularies have ~260k entries).
const MAX_ELEMENTS: u64 = 1 << 28;

#[derive(Debug, Clone, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    Str(String),
    Array(Vec<GgufValue>),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl GgufValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Any non-negative integer value.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v as u64),
            GgufValue::U16(v) => Some(v as u64),
            GgufValue::U32(v) => Some(v as u64),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            GgufValue::U8(v) => json!(v),
            GgufValue::I8(v) => json!(v),
            GgufValue::U16(v) => json!(v),
            GgufValue::I16(v) => json!(v),
            GgufValue::U32(v) => json!(v),
            GgufValue::I32(v) => json!(v),
            GgufValue::U64(v) => json!(v),
            GgufValue::I64(v) => json!(v),
            // Go marshals a float32 with its shortest 32-bit digits (1e-05, not
            // 9.999999747378752e-06): the value a client decodes is that decimal.
            GgufValue::F32(v) => {
                serde_json::Number::from_f64(format!("{v}").parse().unwrap_or(0.0))
                    .map(Value::Number)
                    .unwrap_or(Value::Null)
            }
            GgufValue::F64(v) => serde_json::Number::from_f64(*v)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            GgufValue::Bool(v) => json!(v),
            GgufValue::Str(s) => json!(s),
            GgufValue::Array(items) => Value::Array(items.iter().map(GgufValue::to_json).collect()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the innermost dimension (ne0).
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

#[derive(Debug, Clone)]
pub struct GgufHeader {
    pub path: PathBuf,
    pub version: u32,
    pub big_endian: bool,
    pub kvs: Vec<(String, GgufValue)>,
    pub tensors: Vec<TensorInfo>,
}

/// True if the file starts with the GGUF magic (Ollama sniffs files without an extension).
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == MAGIC
}

struct Reader<R> {
    inner: R,
    big_endian: bool,
    pos: u64,
    len: u64,
    path: PathBuf,
}

impl<R: Read> Reader<R> {
    fn fail(&self, what: &str) -> OllamaError {
        OllamaError::bad_request(format!(
            "{}: GGUF header at byte {}: {what}",
            self.path.display(),
            self.pos
        ))
    }

    fn bytes<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| self.fail(&format!("truncated (needed {N} more bytes)")))?;
        self.pos += N as u64;
        if self.big_endian {
            buf.reverse();
        }
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.bytes()?))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.bytes()?))
    }

    fn count(&mut self, what: &str) -> Result<u64> {
        let n = self.u64()?;
        // Every element takes at least one byte, so a count beyond the file size is corrupt.
        if n > MAX_ELEMENTS || n > self.len.saturating_sub(self.pos) {
            return Err(self.fail(&format!("{what} {n} is larger than the file allows")));
        }
        Ok(n)
    }

    fn string(&mut self) -> Result<String> {
        let n = self.count("string length")?;
        let mut buf = vec![0u8; n as usize];
        self.inner
            .read_exact(&mut buf)
            .map_err(|_| self.fail("truncated string"))?;
        self.pos += n;
        String::from_utf8(buf).map_err(|_| self.fail("string is not UTF-8"))
    }

    fn value(&mut self, type_id: u32, depth: u32) -> Result<GgufValue> {
        Ok(match type_id {
            0 => GgufValue::U8(u8::from_le_bytes(self.bytes()?)),
            1 => GgufValue::I8(i8::from_le_bytes(self.bytes()?)),
            2 => GgufValue::U16(u16::from_le_bytes(self.bytes()?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.bytes()?)),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(i32::from_le_bytes(self.bytes()?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.bytes()?)),
            7 => {
                let [b] = self.bytes::<1>()?;
                if b > 1 {
                    return Err(self.fail(&format!("bool value {b} is neither 0 nor 1")));
                }
                GgufValue::Bool(b == 1)
            }
            8 => GgufValue::Str(self.string()?),
            9 => {
                if depth > 2 {
                    return Err(self.fail("arrays nested more than 2 deep"));
                }
                let elem_type = self.u32()?;
                let n = self.count("array length")?;
                let mut items = Vec::with_capacity(n.min(1 << 16) as usize);
                for _ in 0..n {
                    items.push(self.value(elem_type, depth + 1)?);
                }
                GgufValue::Array(items)
            }
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(i64::from_le_bytes(self.bytes()?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.bytes()?)),
            other => return Err(self.fail(&format!("unknown value type {other}"))),
        })
    }
}

impl GgufHeader {
    /// Reads the header of `path`; the error names the file and the byte offset.
    pub fn open(path: &Path) -> Result<GgufHeader> {
        let file = File::open(path).map_err(|e| OllamaError::io("open", path, &e))?;
        let len = file
            .metadata()
            .map_err(|e| OllamaError::io("stat", path, &e))?
            .len();
        let mut r = Reader {
            inner: BufReader::with_capacity(1 << 16, file),
            big_endian: false,
            pos: 0,
            len,
            path: path.to_path_buf(),
        };
        let magic: [u8; 4] = r.bytes()?;
        if &magic != MAGIC {
            return Err(OllamaError::bad_request(
                "supplied file was not in GGUF format",
            ));
        }
        let raw_version = r.u32()?;
        let version = if (1..=3).contains(&raw_version) {
            raw_version
        } else if (1..=3).contains(&raw_version.swap_bytes()) {
            r.big_endian = true;
            raw_version.swap_bytes()
        } else {
            return Err(r.fail(&format!("unsupported GGUF version {raw_version}")));
        };
        if version == 1 {
            return Err(r.fail("GGUF v1 (32-bit counts) is not supported"));
        }
        let n_tensors = r.count("tensor count")?;
        let n_kv = r.count("KV count")?;
        let mut kvs = Vec::with_capacity(n_kv.min(1 << 12) as usize);
        for _ in 0..n_kv {
            let key = r.string()?;
            let type_id = r.u32()?;
            let value = r.value(type_id, 0).map_err(|e| OllamaError {
                message: format!("{} (key {key:?})", e.message),
                ..e
            })?;
            kvs.push((key, value));
        }
        let mut tensors = Vec::with_capacity(n_tensors.min(1 << 16) as usize);
        for _ in 0..n_tensors {
            let name = r.string()?;
            let n_dims = r.u32()?;
            if n_dims > 8 {
                return Err(r.fail(&format!(
                    "tensor {name:?} has {n_dims} dimensions (at most 8)"
                )));
            }
            let dims = (0..n_dims).map(|_| r.u64()).collect::<Result<Vec<_>>>()?;
            let ggml_type = r.u32()?;
            let offset = r.u64()?;
            tensors.push(TensorInfo {
                name,
                dims,
                ggml_type,
                offset,
            });
        }
        Ok(GgufHeader {
            path: path.to_path_buf(),
            version,
            big_endian: r.big_endian,
            kvs,
            tensors,
        })
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }

    pub fn architecture(&self) -> &str {
        self.get_str("general.architecture").unwrap_or("unknown")
    }

    /// `general.type`: "model", "adapter", "projector", "mmproj", ...
    pub fn kind(&self) -> &str {
        self.get_str("general.type").unwrap_or("unknown")
    }

    /// An `<arch>.`-prefixed integer key, as Ollama's `kv.Uint("block_count")`.
    pub fn arch_uint(&self, suffix: &str) -> Option<u64> {
        self.get(&format!("{}.{suffix}", self.architecture()))
            .and_then(GgufValue::as_u64)
    }

    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
            .filter(|s| !s.is_empty())
    }

    /// Sum of all tensor element counts (what Ollama patches in as `general.parameter_count`).
    pub fn parameter_count(&self) -> Result<u64> {
        let mut total: u64 = 0;
        for t in &self.tensors {
            let elements = t.dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
            total = elements.and_then(|e| total.checked_add(e)).ok_or_else(|| {
                OllamaError::bad_request(format!(
                    "{}: tensor {:?} element count overflows",
                    self.path.display(),
                    t.name
                ))
            })?;
        }
        Ok(total)
    }

    /// Ollama's `FileType` name for `general.file_type` (`unknown` when absent or 0 = ALL_F32,
    /// exactly as `KV.FileType()` reads it).
    pub fn file_type_name(&self) -> &'static str {
        match self.get("general.file_type").and_then(GgufValue::as_u64) {
            Some(t) if t > 0 => file_type_name(t),
            _ => "unknown",
        }
    }

    /// True for mmproj/vision projector GGUFs (Ollama's `isProjectorGGUF`).
    pub fn is_projector(&self) -> bool {
        match self.kind() {
            "projector" | "mmproj" => return true,
            _ => {}
        }
        let block_count = self.arch_uint("block_count").unwrap_or(0);
        if block_count == 0 && self.arch_uint("vision.block_count").unwrap_or(0) > 0 {
            return true;
        }
        let flag = |k: &str| {
            matches!(
                self.get(&format!("{}.{k}", self.architecture())),
                Some(GgufValue::Bool(true))
            )
        };
        self.architecture() == "clip"
            && block_count == 0
            && (flag("has_vision_encoder") || flag("has_audio_encoder"))
    }
}

/// Names of llama.cpp's `llama_ftype` values as Ollama prints them (fs/ggml/type.go).
pub fn file_type_name(t: u64) -> &'static str {
    match t {
        0 => "F32",
        1 => "F16",
        2 => "Q4_0",
        3 => "Q4_1",
        7 => "Q8_0",
        8 => "Q5_0",
        9 => "Q5_1",
        10 => "Q2_K",
        11 => "Q3_K_S",
        12 => "Q3_K_M",
        13 => "Q3_K_L",
        14 => "Q4_K_S",
        15 => "Q4_K_M",
        16 => "Q5_K_S",
        17 => "Q5_K_M",
        18 => "Q6_K",
        19 => "IQ2_XXS",
        20 => "IQ2_XS",
        21 => "Q2_K_S",
        22 => "IQ3_XS",
        23 => "IQ3_XXS",
        24 => "IQ1_S",
        25 => "IQ4_NL",
        26 => "IQ3_S",
        27 => "IQ3_M",
        28 => "IQ2_S",
        29 => "IQ2_M",
        30 => "IQ4_XS",
        31 => "IQ1_M",
        32 => "BF16",
        36 => "TQ1_0",
        37 => "TQ2_0",
        38 => "MXFP4_MOE",
        39 => "NVFP4",
        40 => "Q1_0",
        _ => "unknown",
    }
}

/// ggml tensor type names as Ollama's `/api/show` lists them.
pub fn tensor_type_name(t: u32) -> String {
    match ckpt_core::GgmlType::from_id(t) {
        Some(g) => g.name().to_uppercase(),
        None => format!("unknown({t})"),
    }
}

/// Ollama's `format.HumanNumber`, used for `model_type` ("8.0B", "494.03M", "7B").
pub fn human_number(n: u64) -> String {
    const THOUSAND: u64 = 1000;
    const MILLION: u64 = THOUSAND * 1000;
    const BILLION: u64 = MILLION * 1000;
    let fmt_scaled = |div: u64, decimals: usize, unit: &str| {
        let x = n as f64 / div as f64;
        if x == x.floor() {
            format!("{x:.0}{unit}")
        } else {
            format!("{x:.decimals$}{unit}")
        }
    };
    if n >= BILLION {
        fmt_scaled(BILLION, 1, "B")
    } else if n >= MILLION {
        fmt_scaled(MILLION, 2, "M")
    } else if n >= THOUSAND {
        format!("{:.0}K", n as f64 / THOUSAND as f64)
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_numbers_like_ollama() {
        assert_eq!(human_number(8_030_261_248), "8.0B");
        assert_eq!(human_number(7_000_000_000), "7B");
        assert_eq!(human_number(494_032_768), "494.03M");
        assert_eq!(human_number(1_500), "2K");
        assert_eq!(human_number(999), "999");
    }
}
