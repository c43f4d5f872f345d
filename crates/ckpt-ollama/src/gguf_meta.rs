//! What the store needs from a GGUF (architecture, kind, file type, parameter count, tensor
//! list, chat template), read with ckpt-gguf's parser (the same reader, limits and split-file
//! rules as every other ckpt command; tensor data are never read), plus Ollama's names and number
//! formatting.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use ckpt_core::GgmlType;
use serde_json::{json, Value};

use crate::error::{OllamaError, Result};

pub use ckpt_gguf::{GgufValue, TensorInfo};

/// The header of one GGUF file, or of a split set (`-00001-of-0000N.gguf`) read as one model.
#[derive(Debug, Clone)]
pub struct GgufHeader {
    /// The file given (for a split set, the first shard).
    pub path: PathBuf,
    /// The GGUF format version (2 or 3).
    pub version: u32,
    /// A big-endian GGUF (as `convert_hf_to_gguf.py --bigendian` writes).
    pub big_endian: bool,
    /// KV pairs in file order (for a split set, the first shard's).
    pub kvs: Vec<(String, GgufValue)>,
    /// Tensor infos in file order (for a split set, every shard's, in shard order).
    pub tensors: Vec<TensorInfo>,
    /// Every shard of a split set, in order; empty for a single file.
    pub split_paths: Vec<PathBuf>,
}

/// True if the file starts with the GGUF magic (Ollama sniffs files without an extension).
pub(crate) fn is_gguf(path: &Path) -> bool {
    matches!(
        ckpt_core::sniff::sniff_file(path),
        Ok(ckpt_core::sniff::FileKind::Gguf)
    )
}

/// Reads only as much of `path` as its header needs (tensor data are never read) and parses it
/// with ckpt-gguf; a header cut short is reported by ckpt-gguf with the file size known.
fn read_header(path: &Path) -> Result<ckpt_gguf::GgufHeader> {
    use ckpt_gguf::{parse_header_with, HeaderParse, ParseOptions};
    let mut file = File::open(path).map_err(|e| OllamaError::io("open", path, &e))?;
    let len = file
        .metadata()
        .map_err(|e| OllamaError::io("stat", path, &e))?
        .len();
    let opts = ParseOptions::default();
    let mut buf: Vec<u8> = Vec::new();
    let mut want: u64 = 1 << 16;
    loop {
        let target = want.min(len);
        if (buf.len() as u64) < target {
            let mut more = vec![0u8; (target - buf.len() as u64) as usize];
            file.read_exact(&mut more)
                .map_err(|e| OllamaError::io("read", path, &e))?;
            buf.extend_from_slice(&more);
        }
        match parse_header_with(&buf, path, None, &opts).map_err(from_ckpt)? {
            HeaderParse::Complete(h) => return Ok(h),
            HeaderParse::NeedMore { at_least } => {
                if buf.len() as u64 >= len {
                    // The whole file is read and the header is still incomplete: let the
                    // parser say where, knowing the file size.
                    return match parse_header_with(&buf, path, Some(len), &opts)
                        .map_err(from_ckpt)?
                    {
                        HeaderParse::Complete(h) => Ok(h),
                        HeaderParse::NeedMore { .. } => Err(OllamaError::bad_request(format!(
                            "{}: GGUF header truncated at byte {len}",
                            path.display()
                        ))),
                    };
                }
                want = (at_least as u64).max(buf.len() as u64 * 2);
            }
        }
    }
}

/// ckpt-gguf's errors as the API reports them: bad input is a 400 naming the file and offset.
fn from_ckpt(e: ckpt_core::Error) -> OllamaError {
    match e {
        ckpt_core::Error::Io { path, source } => OllamaError::io("open", &path, &source),
        ckpt_core::Error::Other(m) => OllamaError::internal(m),
        other => OllamaError::bad_request(other.to_string()),
    }
}

/// Ollama's JSON for a KV value (`/api/show` model_info): a float32 is written with its shortest
/// 32-bit digits, as Go marshals a float32.
pub(crate) fn value_json(v: &GgufValue) -> Value {
    match v {
        GgufValue::U8(v) => json!(v),
        GgufValue::I8(v) => json!(v),
        GgufValue::U16(v) => json!(v),
        GgufValue::I16(v) => json!(v),
        GgufValue::U32(v) => json!(v),
        GgufValue::I32(v) => json!(v),
        GgufValue::U64(v) => json!(v),
        GgufValue::I64(v) => json!(v),
        GgufValue::F32(v) => serde_json::Number::from_f64(format!("{v}").parse().unwrap_or(0.0))
            .map(Value::Number)
            .unwrap_or(Value::Null),
        GgufValue::F64(v) => serde_json::Number::from_f64(*v)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        GgufValue::Bool(v) => json!(v),
        GgufValue::String(s) => json!(s),
        GgufValue::Array(a) => Value::Array(a.items.iter().map(value_json).collect()),
    }
}

impl GgufHeader {
    /// Reads the header of `path` (and, for a split shard, of its siblings); the error names
    /// the file and the byte offset.
    pub fn open(path: &Path) -> Result<GgufHeader> {
        if !is_gguf(path) {
            File::open(path).map_err(|e| OllamaError::io("open", path, &e))?;
            return Err(OllamaError::bad_request(
                "supplied file was not in GGUF format",
            ));
        }
        let h = read_header(path)?;
        Ok(GgufHeader {
            path: path.to_path_buf(),
            version: h.version,
            big_endian: h.big_endian,
            kvs: h.kvs,
            tensors: h.tensor_infos,
            split_paths: Vec::new(),
        })
    }

    /// `split.count` above 1: this file is one shard of a split model.
    pub(crate) fn is_split_shard(&self) -> bool {
        self.get("split.count")
            .and_then(GgufValue::as_u64)
            .is_some_and(|n| n > 1)
    }

    /// Reads every shard of the split set `path` belongs to (found by llama.cpp's
    /// `-%05d-of-%05d.gguf` names next to it) as one model: the first shard's KVs, all tensors.
    pub fn open_split(path: &Path) -> Result<(GgufHeader, ckpt_gguf::GgufSplit)> {
        let split = ckpt_gguf::open_split(path).map_err(from_ckpt)?;
        let first = &split.shards[0];
        let header = GgufHeader {
            path: first.path.clone(),
            version: first.version,
            big_endian: first.big_endian,
            kvs: split.kvs().to_vec(),
            tensors: split
                .tensor_infos()
                .into_iter()
                .map(|(_, t)| t.clone())
                .collect(),
            split_paths: split.paths(),
        };
        Ok((header, split))
    }
}

/// Writes a split model as one GGUF, as Ollama imports split GGUFs into a single model layer:
/// the first shard's KVs without `split.no`, `split.count` and `split.tensors.count` (what
/// Ollama's removeSplitMetadata and llama-quantize drop), then every tensor in shard order.
pub(crate) fn merge_split(split: &ckpt_gguf::GgufSplit, out: &Path) -> Result<()> {
    let arch = split
        .get("general.architecture")
        .and_then(GgufValue::as_str)
        .unwrap_or("")
        .to_string();
    let dropped: Vec<String> = ["split.no", "split.count", "split.tensors.count"]
        .iter()
        .flat_map(|k| [k.to_string(), format!("{arch}.{k}")])
        .collect();
    let mut w = ckpt_gguf::GgufWriter::new();
    for (k, v) in split.kvs() {
        if !dropped.contains(k) {
            w.add_kv(k, v.clone());
        }
    }
    for t in split.tensors() {
        w.add_tensor(t);
    }
    w.write(out, true).map_err(from_ckpt)
}

impl GgufHeader {
    /// The value of KV `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of KV `key` when it is a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(GgufValue::as_str)
    }

    /// `general.architecture` (`llama`, `qwen2`, …), `unknown` when absent.
    pub fn architecture(&self) -> &str {
        self.get_str("general.architecture").unwrap_or("unknown")
    }

    /// `general.type`: "model", "adapter", "projector", "mmproj", ...
    pub fn kind(&self) -> &str {
        self.get_str("general.type").unwrap_or("unknown")
    }

    /// An `<arch>.`-prefixed integer key, as Ollama's `kv.Uint("block_count")`.
    pub(crate) fn arch_uint(&self, suffix: &str) -> Option<u64> {
        self.get(&format!("{}.{suffix}", self.architecture()))
            .and_then(GgufValue::as_u64)
    }

    /// `tokenizer.chat_template`: the Jinja template of the Hugging Face tokenizer config.
    pub fn chat_template(&self) -> Option<&str> {
        self.get_str("tokenizer.chat_template")
            .filter(|s| !s.is_empty())
    }

    /// Sum of all tensor element counts (what Ollama patches in as `general.parameter_count`).
    pub fn parameter_count(&self) -> Result<u64> {
        let mut total: u64 = 0;
        for t in &self.tensors {
            let elements = t.ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
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
    pub(crate) fn is_projector(&self) -> bool {
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

/// Names of llama.cpp's `llama_ftype` values as Ollama prints them (fs/ggml/type.go): llama.cpp's
/// names (ckpt-quant's table) up to the newest type Ollama knows, `Q1_0` (40); "unknown" after.
pub fn file_type_name(t: u64) -> &'static str {
    const OLLAMA_LAST: u32 = 40;
    u32::try_from(t)
        .ok()
        .filter(|&id| id <= OLLAMA_LAST)
        .and_then(ckpt_quant::Ftype::from_id)
        .map_or("unknown", |f| f.name())
}

/// ggml tensor type names as Ollama's `/api/show` lists them (ckpt-core's names, upper-cased).
pub(crate) fn tensor_type_name(t: GgmlType) -> String {
    t.name().to_uppercase()
}

/// Ollama's `format.HumanNumber`, used for `model_type` ("8.0B", "494.03M", "7B").
pub(crate) fn human_number(n: u64) -> String {
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

    #[test]
    fn file_type_names_like_ollama() {
        // fs/ggml/type.go: llama.cpp's names for the ids Ollama knows, "unknown" otherwise
        // (the retired 4-6 and 33-35, and anything newer than Q1_0).
        let named: Vec<(u64, &str)> = (0..=45)
            .map(|t| (t, file_type_name(t)))
            .filter(|(_, n)| *n != "unknown")
            .collect();
        assert_eq!(named.len(), 35);
        assert_eq!(file_type_name(0), "F32");
        assert_eq!(file_type_name(15), "Q4_K_M");
        assert_eq!(file_type_name(21), "Q2_K_S");
        assert_eq!(file_type_name(32), "BF16");
        assert_eq!(file_type_name(38), "MXFP4_MOE");
        assert_eq!(file_type_name(40), "Q1_0");
        for t in [4, 5, 6, 33, 34, 35, 41, 1 << 33] {
            assert_eq!(file_type_name(t), "unknown", "{t}");
        }
    }
}
