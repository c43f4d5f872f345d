//! Opening GGUF files (mmapped, fully validated) and split sets (`-00001-of-0000N.gguf`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_core::{Buffer, Checkpoint, DType, Error, Format, GgmlType, Result, Storage, Tensor};

use crate::header::{parse_complete, GgufHeader, ParseOptions, TensorInfo};
use crate::value::{describe_value, to_json, GgufValue};

/// The KV holding a shard's 0-based index in its split set (u16), as llama-gguf-split writes it.
pub const SPLIT_NO_KEY: &str = "split.no";
/// The KV holding the number of shards of a split set (u16).
pub const SPLIT_COUNT_KEY: &str = "split.count";
/// The KV holding the number of tensors in the whole split set (i32), on every shard.
pub const SPLIT_TENSORS_COUNT_KEY: &str = "split.tensors.count";

/// An open GGUF file: its parsed header plus lazy tensor views into the mapped bytes.
#[derive(Debug, Clone)]
pub struct GgufFile {
    /// The file (the buffer's path for [`GgufFile::from_buffer`]).
    pub path: PathBuf,
    /// The GGUF version (2 or 3).
    pub version: u32,
    /// KV pairs in file order.
    pub kvs: Vec<(String, GgufValue)>,
    /// Tensor infos in file order.
    pub tensor_infos: Vec<TensorInfo>,
    /// The data alignment in bytes (`general.alignment`, default 32).
    pub alignment: u64,
    /// End of the tensor infos (before the padding that precedes the data section).
    pub infos_end: u64,
    /// Start of the data section (tensor offsets are relative to it).
    pub data_offset: u64,
    /// The file's length in bytes.
    pub file_size: u64,
    /// Stored big-endian; [`GgufFile::tensors`] still yields little-endian bytes for number
    /// tensors (F32, F16, F64, integers) and fails, naming the file and tensor, when asked for
    /// the bytes of BF16 or quantized ones, whose byte order such a file does not pin down.
    pub big_endian: bool,
    buffer: Arc<Buffer>,
    tensors: Vec<Tensor>,
}

impl GgufFile {
    /// Maps and validates `path` with llama.cpp's rules.
    pub fn open(path: &Path) -> Result<GgufFile> {
        GgufFile::open_with(path, &ParseOptions::default())
    }

    /// [`GgufFile::open`] with reader options beyond llama.cpp's rules.
    pub fn open_with(path: &Path, options: &ParseOptions) -> Result<GgufFile> {
        GgufFile::from_buffer(Buffer::map(path)?, options)
    }

    /// A GGUF held in a buffer (mapped or owned); the buffer's path names it in errors.
    pub fn from_buffer(buffer: Arc<Buffer>, options: &ParseOptions) -> Result<GgufFile> {
        let path = buffer.path.clone();
        let header = parse_complete(buffer.bytes(), &path, options)?;
        let mut tensors = Vec::with_capacity(header.tensor_infos.len());
        for info in &header.tensor_infos {
            // The parser checked these ranges against the buffer length, so they fit in usize.
            let start = (header.data_offset + info.offset) as usize;
            let storage = Storage::new(
                buffer.clone(),
                start,
                info.nbytes() as usize,
                info.name.clone(),
            )?;
            let tensor = if header.big_endian {
                big_endian_tensor(info, storage)
            } else {
                Tensor::contiguous(info.name.clone(), info.dtype(), info.shape(), storage)
            };
            tensor.validate()?;
            tensors.push(tensor);
        }
        let GgufHeader {
            version,
            kvs,
            tensor_infos,
            alignment,
            infos_end,
            data_offset,
            big_endian,
        } = header;
        Ok(GgufFile {
            file_size: buffer.len() as u64,
            path,
            version,
            kvs,
            tensor_infos,
            alignment,
            infos_end,
            data_offset,
            big_endian,
            buffer,
            tensors,
        })
    }

    /// The value of KV `key`, if present.
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// `general.architecture`, when present and a string.
    pub fn architecture(&self) -> Option<&str> {
        self.get("general.architecture").and_then(GgufValue::as_str)
    }

    /// Lazy views of every tensor in file order: row-major shape (`ne` reversed), dtype from the
    /// ggml type. Cheap (shared storages); nothing is read.
    pub fn tensors(&self) -> Vec<Tensor> {
        self.tensors.clone()
    }

    /// The lazy view of the tensor named `name`, if any.
    pub fn tensor(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The data bytes of tensor `index` as stored (without padding; big-endian in a big-endian
    /// file).
    pub fn tensor_data(&self, index: usize) -> Option<&[u8]> {
        let info = self.tensor_infos.get(index)?;
        let start = (self.data_offset + info.offset) as usize;
        Some(&self.buffer.bytes()[start..start + info.nbytes() as usize])
    }

    /// The header bytes as stored (everything before the data section, padding included).
    pub fn header_bytes(&self) -> &[u8] {
        &self.buffer.bytes()[..(self.data_offset.min(self.file_size)) as usize]
    }

    /// The mapped (or owned) bytes of the whole file.
    pub fn buffer(&self) -> &Arc<Buffer> {
        &self.buffer
    }

    /// The header as a standalone value (for re-writing or comparing).
    pub fn header(&self) -> GgufHeader {
        GgufHeader {
            version: self.version,
            kvs: self.kvs.clone(),
            tensor_infos: self.tensor_infos.clone(),
            alignment: self.alignment,
            infos_end: self.infos_end,
            data_offset: self.data_offset,
            big_endian: self.big_endian,
        }
    }

    /// Whether this file is one shard of a split set (has `split.count` > 1).
    pub fn is_split_shard(&self) -> bool {
        self.get(SPLIT_COUNT_KEY)
            .and_then(GgufValue::as_u64)
            .is_some_and(|n| n > 1)
    }

    /// The file as a [`Checkpoint`]: its lazy tensors, scalar KVs as text metadata, array KVs
    /// as JSON extras.
    pub fn to_checkpoint(&self) -> Checkpoint {
        let mut ck = Checkpoint::new(Format::Gguf, vec![self.path.clone()]);
        ck.tensors = self.tensors();
        fill_metadata(&mut ck, &self.kvs);
        ck
    }
}

/// Whether two writers of big-endian files agree on how `t`'s data is stored: numbers (F16,
/// F32, F64, I16, I32, I64) are byte-swapped by both; single bytes (I8) and blocks without
/// multi-byte fields (MXFP4, NVFP4) by neither. BF16 values and the fp16 fields of other blocks
/// are left as on a little-endian host by convert_hf_to_gguf.py / convert_lora_to_gguf.py
/// `--bigendian` (gguf-py swaps only numpy number arrays, and those are byte arrays there), but
/// swapped by gguf_convert_endian.py; nothing in the file says which wrote it.
fn big_endian_layout_is_known(t: GgmlType) -> bool {
    !matches!(t, GgmlType::BF16)
        && (DType::from_ggml(t).elem_size().is_some()
            || matches!(t, GgmlType::MXFP4 | GgmlType::NVFP4))
}

/// A tensor of a big-endian file, presented little-endian: numbers through the storage's byte
/// order; data whose byte order the file does not pin down (see [`big_endian_layout_is_known`])
/// fails when read, naming the file and the tensor, rather than being guessed.
fn big_endian_tensor(info: &TensorInfo, storage: Arc<Storage>) -> Tensor {
    let (name, dtype, shape) = (info.name.clone(), info.dtype(), info.shape());
    if big_endian_layout_is_known(info.ggml_type) {
        return Tensor::contiguous(name, dtype, shape, storage.with_big_endian(true));
    }
    let path = storage.buffer.path.clone();
    let (tensor_name, ggml_type) = (name.clone(), info.ggml_type);
    Tensor::computed(name, dtype, shape, move || {
        Err(Error::Unsupported(format!(
            "{}: tensor '{tensor_name}': big-endian {ggml_type} tensor data is not supported for \
             this operation: convert_hf_to_gguf.py --bigendian stores BF16 and quantized blocks \
             unswapped, gguf_convert_endian.py swaps them, and the file does not say which wrote \
             it (its F32, F16 and integer tensors can be read)",
            path.display()
        )))
    })
}

/// Scalar KVs go to `metadata` as text (strings verbatim, numbers as written); arrays go to
/// `extras` as JSON, so nothing of the header is lost.
fn fill_metadata(ck: &mut Checkpoint, kvs: &[(String, GgufValue)]) {
    for (k, v) in kvs {
        match v {
            GgufValue::String(s) => {
                ck.metadata.insert(k.clone(), s.clone());
            }
            GgufValue::Array(_) => {
                ck.extras.insert(k.clone(), to_json(v));
            }
            scalar => {
                ck.metadata
                    .insert(k.clone(), describe_value(scalar, usize::MAX));
            }
        }
    }
}

/// The shards of a split model, in order; a plain file is a set of one.
#[derive(Debug, Clone)]
pub struct GgufSplit {
    /// The shards in `split.no` order (one file when the model is not split).
    pub shards: Vec<GgufFile>,
}

impl GgufSplit {
    /// KV pairs of the model: those of the first shard (the others hold only `split.*`).
    pub fn kvs(&self) -> &[(String, GgufValue)] {
        &self.shards[0].kvs
    }

    /// The value of the model's KV `key` (looked up in the first shard).
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.shards[0].get(key)
    }

    /// The shard files, in order.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.shards.iter().map(|s| s.path.clone()).collect()
    }

    /// Every tensor of every shard, in shard order then file order.
    pub fn tensors(&self) -> Vec<Tensor> {
        self.shards.iter().flat_map(|s| s.tensors()).collect()
    }

    /// (shard index, info) for every tensor, in order.
    pub fn tensor_infos(&self) -> Vec<(usize, &TensorInfo)> {
        self.shards
            .iter()
            .enumerate()
            .flat_map(|(i, s)| s.tensor_infos.iter().map(move |t| (i, t)))
            .collect()
    }

    /// The whole set as one [`Checkpoint`]: every shard's tensors, the first shard's KVs as
    /// metadata and extras (like [`GgufFile::to_checkpoint`]).
    pub fn to_checkpoint(&self) -> Checkpoint {
        let mut ck = Checkpoint::new(Format::Gguf, self.paths());
        ck.tensors = self.tensors();
        fill_metadata(&mut ck, self.kvs());
        ck
    }
}

/// `<prefix>-%05d-of-%05d.gguf`, llama.cpp's `llama_split_path`.
pub fn split_path(prefix: &str, split_no: usize, split_count: usize) -> String {
    format!("{prefix}-{:05}-of-{split_count:05}.gguf", split_no + 1)
}

/// Opens a model that may be split: given any shard, finds the others by name and checks that
/// they form one set (`split.no`, `split.count`, `split.tensors.count`, unique tensor names).
/// A file without `split.*` keys opens as a set of one.
pub fn open_split(first_or_any_shard: &Path) -> Result<GgufSplit> {
    open_split_with(first_or_any_shard, &ParseOptions::default())
}

/// [`open_split`] with reader options beyond llama.cpp's rules, applied to every shard.
pub fn open_split_with(first_or_any_shard: &Path, options: &ParseOptions) -> Result<GgufSplit> {
    let given = GgufFile::open_with(first_or_any_shard, options)?;
    let Some((split_no, split_count)) = split_numbers(&given)? else {
        return Ok(GgufSplit {
            shards: vec![given],
        });
    };
    let name = first_or_any_shard
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| Error::invalid(first_or_any_shard, "not a file name"))?;
    let suffix = split_path("", split_no, split_count);
    let Some(prefix) = name.strip_suffix(&suffix) else {
        return Err(Error::invalid(
            first_or_any_shard,
            format!(
                "shard {} of {split_count} ({SPLIT_NO_KEY} = {split_no}) should be named '<prefix>{suffix}' \
                 so the other shards can be found",
                split_no + 1
            ),
        ));
    };
    let dir = first_or_any_shard.parent().unwrap_or(Path::new(""));
    let mut shards = Vec::with_capacity(split_count);
    for i in 0..split_count {
        let shard = if i == split_no {
            given.clone()
        } else {
            let p = dir.join(split_path(prefix, i, split_count));
            if !p.exists() {
                return Err(Error::invalid(
                    first_or_any_shard,
                    format!(
                        "split set of {split_count} shards: shard {} ({}) is missing",
                        i + 1,
                        p.display()
                    ),
                ));
            }
            GgufFile::open_with(&p, options)?
        };
        match split_numbers(&shard)? {
            Some((no, count)) if no == i && count == split_count => {}
            found => {
                return Err(Error::invalid(
                    &shard.path,
                    format!(
                        "expected shard {} of {split_count} ({SPLIT_NO_KEY} = {i}, {SPLIT_COUNT_KEY} = {split_count}), \
                         found {}",
                        i + 1,
                        match found {
                            Some((no, count)) => format!("{SPLIT_NO_KEY} = {no}, {SPLIT_COUNT_KEY} = {count}"),
                            None => "no split keys".to_string(),
                        }
                    ),
                ))
            }
        }
        shards.push(shard);
    }
    let first = &shards[0];
    // One byte order for the whole set: a reader on either kind of host takes every shard in
    // its own order (convert_hf_to_gguf.py --bigendian writes every shard big-endian).
    if let Some(s) = shards.iter().find(|s| s.big_endian != first.big_endian) {
        let order = |big: bool| if big { "big-endian" } else { "little-endian" };
        return Err(Error::invalid(
            &s.path,
            format!(
                "this shard is {} but the set's first shard ({}) is {}: a split set has one byte order",
                order(s.big_endian),
                first.path.display(),
                order(first.big_endian)
            ),
        ));
    }
    let total: usize = shards.iter().map(|s| s.tensor_infos.len()).sum();
    if let Some(v) = first.get(SPLIT_TENSORS_COUNT_KEY) {
        if v.as_u64() != Some(total as u64) {
            return Err(Error::invalid(
                &first.path,
                format!("{SPLIT_TENSORS_COUNT_KEY} = {} but the {split_count} shards hold {total} tensors", describe_value(v, 4)),
            ));
        }
    }
    let mut seen = HashSet::new();
    for s in &shards {
        for t in &s.tensor_infos {
            if !seen.insert(t.name.as_str()) {
                return Err(Error::invalid(
                    &s.path,
                    format!("tensor '{}' appears in more than one shard", t.name),
                ));
            }
        }
    }
    Ok(GgufSplit { shards })
}

/// (`split.no`, `split.count`) when the file is part of a split set of more than one shard.
fn split_numbers(f: &GgufFile) -> Result<Option<(usize, usize)>> {
    let Some(count) = f.get(SPLIT_COUNT_KEY) else {
        return Ok(None);
    };
    let bad = |what: &str| Error::invalid(&f.path, format!("{what} has an invalid value"));
    let count = count.as_u64().ok_or_else(|| bad(SPLIT_COUNT_KEY))?;
    let no = match f.get(SPLIT_NO_KEY) {
        Some(v) => v.as_u64().ok_or_else(|| bad(SPLIT_NO_KEY))?,
        None => {
            return Err(Error::invalid(
                &f.path,
                format!("{SPLIT_COUNT_KEY} is set but {SPLIT_NO_KEY} is missing"),
            ))
        }
    };
    // llama-gguf-split --merge leaves split.count = 0 (and split.no = 0) in the merged file;
    // llama.cpp's loader reads such a file as one file.
    if count == 0 && no == 0 {
        return Ok(None);
    }
    if count == 0 || no >= count || count > 99_999 {
        return Err(Error::invalid(
            &f.path,
            format!("{SPLIT_NO_KEY} = {no} with {SPLIT_COUNT_KEY} = {count} is inconsistent"),
        ));
    }
    if count == 1 {
        return Ok(None);
    }
    Ok(Some((no as usize, count as usize)))
}

/// Summary lines of every KV, in file order, with long arrays cut (for `inspect`).
pub fn describe_kvs(kvs: &[(String, GgufValue)], max_items: usize) -> Vec<String> {
    kvs.iter()
        .map(|(k, v)| format!("{k} ({}) = {}", type_label(v), describe_value(v, max_items)))
        .collect()
}

/// `UINT32`, or `ARRAY[STRING]` for arrays.
pub(crate) fn type_label(v: &GgufValue) -> String {
    match v {
        GgufValue::Array(a) => format!("ARRAY[{}]", a.elem_type),
        other => other.value_type().to_string(),
    }
}
