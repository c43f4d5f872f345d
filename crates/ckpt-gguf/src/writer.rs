//! Writing GGUF v3 byte-for-byte like gguf-py's `GGUFWriter` (the converter) or ggml's C writer
//! (llama-quantize, llama-gguf-split): header, KV pairs in insertion order, tensor infos with
//! contiguous offsets, zero padding to the alignment, then each tensor's data zero-padded to the
//! alignment (the last one too). Tensor data is streamed one tensor at a time.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use ckpt_core::atomic::{check_destination, AtomicFile};
use ckpt_core::progress::RunningTotal;
use ckpt_core::{
    numel, Error, GgmlType, Result, SharedProgress, Storage, Tensor, TensorData, View,
};

use crate::file::{split_path, SPLIT_COUNT_KEY, SPLIT_NO_KEY, SPLIT_TENSORS_COUNT_KEY};
use crate::header::{pad_to, ALIGNMENT_KEY, DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS, MAX_NAME_LEN};
use crate::value::GgufValue;

/// How many dimensions a tensor info declares.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DimsMode {
    /// As many as the tensor's shape has (gguf-py: `len(numpy shape)`); what
    /// convert_hf_to_gguf.py writes.
    #[default]
    AsGiven,
    /// ggml's `ggml_n_dims`: trailing `ne` of 1 dropped, at least one; what llama-quantize and
    /// llama-gguf-split write.
    TrimTrailingOnes,
}

/// The byte order a [`GgufWriter`] writes numbers in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ByteOrder {
    /// Little-endian, what every llama.cpp tool writes by default.
    #[default]
    Little,
    /// What llama.cpp's converters write with `--bigendian` (gguf-py's `GGUFEndian.BIG`): every
    /// number of the header (version, counts, string and array lengths, value type tags, KV
    /// values, tensor infos; not the magic) is big-endian, and so is tensor data stored as
    /// F16, F32, F64, I16, I32 or I64 elements, each element byte-swapped. BF16 and block types
    /// (Q8_0, …) are written exactly as in a little-endian file: the converters hand them to
    /// gguf-py as arrays of bytes, which its byte swap leaves alone.
    Big,
}

impl ByteOrder {
    /// Appends a number given as its little-endian bytes, in this order.
    fn put<const N: usize>(self, out: &mut Vec<u8>, le: [u8; N]) {
        let start = out.len();
        out.extend_from_slice(&le);
        if self == ByteOrder::Big {
            out[start..].reverse();
        }
    }

    /// The size of the units swapped in tensor data of `ggml_type` (1: none), as gguf-py's
    /// `ndarray.byteswap` treats the arrays the converters give it: numbers are swapped,
    /// BF16 and quantized blocks are byte arrays.
    pub(crate) fn tensor_swap_unit(self, ggml_type: GgmlType) -> usize {
        match (self, ggml_type) {
            (ByteOrder::Little, _) => 1,
            (_, GgmlType::F16 | GgmlType::I16) => 2,
            (_, GgmlType::F32 | GgmlType::I32) => 4,
            (_, GgmlType::F64 | GgmlType::I64) => 8,
            _ => 1,
        }
    }
}

/// Reverses every `unit`-byte group of `bytes`.
fn swap_units(bytes: &mut [u8], unit: usize) {
    if unit > 1 {
        for c in bytes.chunks_exact_mut(unit) {
            c.reverse();
        }
    }
}

/// `t` with every `unit`-byte element byte-swapped, still lazy: a mapped view reads its storage
/// in the other byte order (streamed, never held whole), bands of rows are swapped as produced.
fn byte_swapped(t: &Tensor, unit: usize) -> Result<Tensor> {
    let data = match &t.data {
        TensorData::View(v) => {
            let s = &v.storage;
            let storage = Storage::new(s.buffer.clone(), s.start, s.len, s.label.clone())?
                .with_big_endian(!s.big_endian);
            TensorData::View(View {
                storage,
                offset: v.offset,
                strides: v.strides.clone(),
            })
        }
        TensorData::Rows(r) => {
            let (rows, row_bytes, r) = (r.rows, r.row_bytes, r.clone());
            let fill = move |range: std::ops::Range<usize>, dst: &mut [u8]| {
                (r.fill)(range, dst)?;
                swap_units(dst, unit);
                Ok(())
            };
            return Ok(Tensor::from_rows(
                t.name.clone(),
                t.dtype,
                t.shape.clone(),
                rows,
                row_bytes,
                fill,
            ));
        }
        TensorData::Computed(f) => {
            let f = f.clone();
            TensorData::Computed(std::sync::Arc::new(move || {
                let mut bytes = f()?;
                swap_units(&mut bytes, unit);
                Ok(bytes)
            }))
        }
    };
    Ok(Tensor {
        name: t.name.clone(),
        dtype: t.dtype,
        shape: t.shape.clone(),
        data,
    })
}

/// Builds a GGUF v3 file: KV pairs and tensors are added in the order they should appear, then
/// [`GgufWriter::write`] writes it atomically (or [`GgufWriter::write_split`] /
/// [`GgufWriter::write_converter_split`] as a split set, [`GgufWriter::write_to`] into any
/// sink). The bytes are those of gguf-py's `GGUFWriter` or ggml's C writer: header, KV pairs in
/// insertion order, tensor infos with contiguous offsets, then each tensor's data zero-padded to
/// the alignment (the last one too), streamed one tensor at a time.
pub struct GgufWriter {
    kvs: Vec<(String, GgufValue)>,
    tensors: Vec<Tensor>,
    dims_mode: DimsMode,
    alignment_override: Option<u64>,
    byte_order: ByteOrder,
    progress: Option<RunningTotal>,
}

impl Default for GgufWriter {
    fn default() -> Self {
        GgufWriter::new()
    }
}

/// What the header says about one tensor.
struct PlannedTensor {
    ggml_type: GgmlType,
    ne: Vec<u64>,
    offset: u64,
    nbytes: u64,
}

/// Produces the tensors on several threads at once and writes each at its planned offset
/// (`pwrite`), so computing (casts, quantization) and the kernel's copying use every core while at
/// most one tensor per worker is in memory. Progress is reported in completion order.
fn write_tensors_at(
    f: &File,
    path: &Path,
    tensors: &[Tensor],
    plan: &Plan,
    data_start: u64,
    report: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4)
        .min(tensors.len().max(1));
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let (tx, rx) = std::sync::mpsc::channel::<Result<u64>>();
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let (tx, next, stop) = (tx.clone(), &next, &stop);
            scope.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= tensors.len() || stop.load(Ordering::Relaxed) {
                    return;
                }
                let (t, p) = (&tensors[i], &plan.tensors[i]);
                let result = if let TensorData::Rows(rows) = &t.data {
                    write_rows_at(f, path, t, rows, data_start + p.offset, p.nbytes)
                        .map(|()| pad_to(p.nbytes, plan.alignment).expect("checked in plan"))
                } else if t.view().is_some() {
                    // Mapped data: copied by the kernel or streamed, never held whole.
                    if t.nbytes() != p.nbytes {
                        Err(Error::Other(format!(
                            "{}: tensor '{}' has {} bytes, its GGUF info says {}",
                            path.display(),
                            t.name,
                            t.nbytes(),
                            p.nbytes
                        )))
                    } else {
                        t.write_at(f, data_start + p.offset)
                            .map(|_| pad_to(p.nbytes, plan.alignment).expect("checked in plan"))
                    }
                } else {
                    t.bytes().and_then(|bytes| {
                        if bytes.len() as u64 != p.nbytes {
                            return Err(Error::Other(format!(
                                "{}: tensor '{}' produced {} bytes, its GGUF info says {}",
                                path.display(),
                                t.name,
                                bytes.len(),
                                p.nbytes
                            )));
                        }
                        ckpt_core::atomic::write_all_at(f, &bytes, data_start + p.offset)
                            .map_err(|e| Error::io(path, e))?;
                        Ok(pad_to(p.nbytes, plan.alignment).expect("checked in plan"))
                    })
                };
                t.release();
                if tx.send(result).is_err() {
                    return;
                }
            });
        }
        drop(tx);
        let mut done = 0u64;
        for result in rx {
            match result {
                Ok(padded) => {
                    done += padded;
                    report(done, plan.data_len);
                }
                Err(e) => {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(())
    })
}

/// Bytes of output produced and written at a time for a tensor made by bands of rows.
const PIECE_BYTES: usize = 8 << 20;

/// Streams a row-banded tensor to `offset` in pieces of about [`PIECE_BYTES`], so a writer
/// thread holds one piece, not the whole tensor.
fn write_rows_at(
    f: &File,
    path: &Path,
    t: &Tensor,
    rows: &ckpt_core::RowFill,
    offset: u64,
    nbytes: u64,
) -> Result<()> {
    if (rows.rows * rows.row_bytes) as u64 != nbytes {
        return Err(Error::Other(format!(
            "{}: tensor '{}' has {} rows of {} bytes, its GGUF info says {nbytes} bytes",
            path.display(),
            t.name,
            rows.rows,
            rows.row_bytes
        )));
    }
    let per_piece = (PIECE_BYTES / rows.row_bytes.max(1)).max(1);
    let mut buf = ckpt_core::pool::take(per_piece.min(rows.rows) * rows.row_bytes);
    let mut start = 0;
    while start < rows.rows {
        let end = (start + per_piece).min(rows.rows);
        let piece = &mut buf[..(end - start) * rows.row_bytes];
        (rows.fill)(start..end, piece)?;
        ckpt_core::atomic::write_all_at(f, piece, offset + (start * rows.row_bytes) as u64)
            .map_err(|e| Error::io(path, e))?;
        start = end;
    }
    ckpt_core::pool::give(buf);
    Ok(())
}

/// The validated layout: the complete header bytes (padding included) and where data goes.
struct Plan {
    header: Vec<u8>,
    alignment: u64,
    tensors: Vec<PlannedTensor>,
    data_len: u64,
}

impl GgufWriter {
    /// An empty writer: alignment 32 unless a `general.alignment` (UINT32) KV is added.
    pub fn new() -> Self {
        GgufWriter {
            kvs: Vec::new(),
            tensors: Vec::new(),
            dims_mode: DimsMode::AsGiven,
            alignment_override: None,
            byte_order: ByteOrder::Little,
            progress: None,
        }
    }

    /// Appends a KV pair; order is kept. A key added twice is an error at write time.
    /// Unlike gguf-py's `add_string`/`add_array`, which silently skip empty strings and empty
    /// arrays, everything given is written: a caller imitating gguf-py must skip those itself.
    pub fn add_kv(&mut self, key: &str, value: GgufValue) {
        self.kvs.push((key.to_string(), value));
    }

    /// Like ggml's `gguf_set_val_*`: removes the key if present, then appends it at the end.
    pub fn set_kv(&mut self, key: &str, value: GgufValue) {
        self.remove_kv(key);
        self.add_kv(key, value);
    }

    /// Removes a key; returns its value if it was there.
    pub fn remove_kv(&mut self, key: &str) -> Option<GgufValue> {
        let i = self.kvs.iter().position(|(k, _)| k == key)?;
        Some(self.kvs.remove(i).1)
    }

    /// The KV pairs added so far, in order.
    pub fn kvs(&self) -> &[(String, GgufValue)] {
        &self.kvs
    }

    /// Appends a tensor (row-major shape; its dtype must have a ggml type).
    pub fn add_tensor(&mut self, tensor: Tensor) {
        self.tensors.push(tensor);
    }

    /// The tensors added so far, in order.
    pub fn tensors(&self) -> &[Tensor] {
        &self.tensors
    }

    /// How many dimensions each tensor info declares (default [`DimsMode::AsGiven`]).
    pub fn set_dims_mode(&mut self, mode: DimsMode) -> &mut Self {
        self.dims_mode = mode;
        self
    }

    /// Pads with this alignment regardless of `general.alignment` (llama-quantize always pads to
    /// 32 even when it copies another `general.alignment` from its input).
    pub fn set_alignment(&mut self, alignment: u64) -> &mut Self {
        self.alignment_override = Some(alignment);
        self
    }

    /// Writes the file in this byte order (see [`ByteOrder::Big`] for what a big-endian file
    /// swaps); split shards inherit it.
    pub fn set_byte_order(&mut self, order: ByteOrder) -> &mut Self {
        self.byte_order = order;
        self
    }

    /// The tensors as their data goes into the file: byte-swapped where [`ByteOrder::Big`] asks.
    fn data_tensors(&self) -> Result<std::borrow::Cow<'_, [Tensor]>> {
        if self.byte_order == ByteOrder::Little {
            return Ok(std::borrow::Cow::Borrowed(&self.tensors));
        }
        let mut out = Vec::with_capacity(self.tensors.len());
        for t in &self.tensors {
            let unit = t
                .dtype
                .to_ggml()
                .map_or(1, |g| self.byte_order.tensor_swap_unit(g));
            out.push(if unit > 1 {
                byte_swapped(t, unit)?
            } else {
                t.clone()
            });
        }
        Ok(std::borrow::Cow::Owned(out))
    }

    /// Reports the data bytes written to `progress` as they are written (after each tensor),
    /// under `phase`: a [`Start`](ckpt_core::ProgressEvent::Start) with the total, then
    /// [`Advance`](ckpt_core::ProgressEvent::Advance)s. A split write reports all shards as one
    /// phase.
    pub fn set_progress(&mut self, phase: &'static str, progress: SharedProgress) -> &mut Self {
        self.progress = Some(RunningTotal::new(phase, progress));
        self
    }

    /// The header bytes this writer would produce (through the padding before the data).
    pub fn header_bytes(&self) -> Result<Vec<u8>> {
        Ok(self.plan()?.header)
    }

    /// The size of the complete file.
    pub fn total_size(&self) -> Result<u64> {
        let plan = self.plan()?;
        Ok(plan.header.len() as u64 + plan.data_len)
    }

    /// Writes the file crash-safely (temporary file renamed into place when complete).
    pub fn write(self, out: &Path, overwrite: bool) -> Result<()> {
        let mut file = AtomicFile::create(out, overwrite)?;
        self.write_to_file(&mut file)?;
        file.commit()
    }

    /// Writes into an open [`AtomicFile`] (not committed, so the caller may verify first).
    /// Mapped tensor data is copied by the kernel where possible. Returns the bytes written.
    pub(crate) fn write_to_file(mut self, file: &mut AtomicFile) -> Result<u64> {
        let mut progress = self.progress.take();
        self.write_file_reporting(file, &mut |done, total| {
            if let Some(p) = progress.as_mut() {
                p.update(done, total)
            }
        })
    }

    /// Writes into any byte sink. Returns the bytes written.
    pub fn write_to(mut self, w: &mut dyn Write) -> Result<u64> {
        let mut progress = self.progress.take();
        let plan = self.plan_for(Path::new("<output>"))?;
        self.write_planned(
            &plan,
            Path::new("<output>"),
            w,
            |t, w| t.write_to(w),
            &mut |done| {
                if let Some(p) = progress.as_mut() {
                    p.update(done, plan.data_len)
                }
            },
        )
    }

    fn write_file_reporting(
        &self,
        file: &mut AtomicFile,
        report: &mut dyn FnMut(u64, u64),
    ) -> Result<u64> {
        let path = file.path().to_path_buf();
        let plan = self.plan_for(&path)?;
        let io = |e: std::io::Error| Error::io(&path, e);
        let data_start = plan.header.len() as u64;
        let w: &mut BufWriter<File> = file.writer();
        w.write_all(&plan.header).map_err(io)?;
        w.flush().map_err(io)?;
        let f: &File = w.get_ref();
        // The whole file at its final size, zero-filled: the alignment padding needs no writes.
        f.set_len(data_start + plan.data_len).map_err(io)?;
        ckpt_core::atomic::preallocate(f, data_start + plan.data_len).map_err(io)?;
        let tensors = self.data_tensors()?;
        let written = write_tensors_at(f, &path, &tensors, &plan, data_start, report);
        ckpt_core::pool::clear();
        written?;
        Ok(data_start + plan.data_len)
    }

    /// The plan, with writer errors prefixed by the output they concern.
    fn plan_for(&self, path: &Path) -> Result<Plan> {
        self.plan().map_err(|e| match e {
            Error::Other(msg) => Error::Other(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Header, then each tensor's data zero-padded to the alignment; `on_tensor` gets the data
    /// bytes written so far after each tensor.
    fn write_planned<W: Write + ?Sized>(
        &self,
        plan: &Plan,
        path: &Path,
        w: &mut W,
        mut write_tensor: impl FnMut(&Tensor, &mut W) -> Result<u64>,
        on_tensor: &mut dyn FnMut(u64),
    ) -> Result<u64> {
        let io = |e: std::io::Error| Error::io(path, e);
        w.write_all(&plan.header).map_err(io)?;
        let zeros = vec![0u8; plan.alignment as usize];
        let mut done = 0u64;
        let tensors = self.data_tensors()?;
        let order: Vec<&Tensor> = tensors.iter().collect();
        ckpt_core::tensor::write_pipelined(&order, w, &mut write_tensor, |i, n, w| {
            let (tensor, planned) = (&tensors[i], &plan.tensors[i]);
            if n != planned.nbytes {
                return Err(Error::Other(format!(
                    "{}: tensor '{}' produced {n} bytes, its GGUF info says {}",
                    path.display(),
                    tensor.name,
                    planned.nbytes
                )));
            }
            let padded = pad_to(n, plan.alignment).expect("checked in plan");
            w.write_all(&zeros[..(padded - n) as usize]).map_err(io)?;
            done += padded;
            on_tensor(done);
            Ok(())
        })?;
        w.flush().map_err(io)?;
        Ok(plan.header.len() as u64 + done)
    }

    fn plan(&self) -> Result<Plan> {
        let fail = |msg: String| Err(Error::Other(msg));
        let mut keys = HashSet::new();
        for (k, v) in &self.kvs {
            if k.is_empty() {
                return fail("a KV has an empty key".to_string());
            }
            if !keys.insert(k.as_str()) {
                return fail(format!("key '{k}' is added twice"));
            }
            check_value(k, v)?;
        }
        let alignment = match self.alignment_override {
            Some(a) => a,
            None => match self
                .kvs
                .iter()
                .find(|(k, _)| k == ALIGNMENT_KEY)
                .map(|(_, v)| v)
            {
                None => DEFAULT_ALIGNMENT,
                Some(GgufValue::U32(a)) => *a as u64,
                Some(other) => {
                    return fail(format!(
                        "{ALIGNMENT_KEY} must be UINT32, got {}",
                        other.value_type()
                    ))
                }
            },
        };
        if !alignment.is_power_of_two() {
            return fail(format!(
                "alignment {alignment} is not a non-zero power of two"
            ));
        }

        let mut header = Vec::new();
        header.extend_from_slice(&GGUF_MAGIC);
        let order = self.byte_order;
        order.put(&mut header, 3u32.to_le_bytes());
        order.put(&mut header, (self.tensors.len() as u64).to_le_bytes());
        order.put(&mut header, (self.kvs.len() as u64).to_le_bytes());
        for (k, v) in &self.kvs {
            put_string(&mut header, k, order);
            order.put(&mut header, v.value_type().id().to_le_bytes());
            put_value(&mut header, v, order);
        }

        let mut names = HashSet::new();
        let mut tensors = Vec::with_capacity(self.tensors.len());
        let mut offset = 0u64;
        for t in &self.tensors {
            if !names.insert(t.name.as_str()) {
                return fail(format!("tensor '{}' is added twice", t.name));
            }
            if t.name.len() > MAX_NAME_LEN {
                return fail(format!(
                    "tensor name '{}' is {} bytes, ggml allows at most {MAX_NAME_LEN}",
                    t.name,
                    t.name.len()
                ));
            }
            let Some(ggml_type) = t.dtype.to_ggml() else {
                return fail(format!(
                    "tensor '{}': {} has no GGUF (ggml) type",
                    t.name, t.dtype
                ));
            };
            let ne = self.ne_of(&t.shape);
            if ne.len() > MAX_DIMS {
                return fail(format!(
                    "tensor '{}' has {} dimensions, GGUF allows at most {MAX_DIMS}",
                    t.name,
                    ne.len()
                ));
            }
            if numel(&ne).is_none_or(|n| n > i64::MAX as u64) {
                return fail(format!(
                    "tensor '{}': element count of shape {:?} overflows int64",
                    t.name, t.shape
                ));
            }
            let nbytes = t
                .dtype
                .nbytes(&t.shape)
                .map_err(|m| Error::Other(format!("tensor '{}': {m}", t.name)))?;
            put_string(&mut header, &t.name, order);
            order.put(&mut header, (ne.len() as u32).to_le_bytes());
            for d in &ne {
                order.put(&mut header, d.to_le_bytes());
            }
            order.put(&mut header, ggml_type.id().to_le_bytes());
            order.put(&mut header, offset.to_le_bytes());
            tensors.push(PlannedTensor {
                ggml_type,
                ne,
                offset,
                nbytes,
            });
            offset = match pad_to(nbytes, alignment).and_then(|p| offset.checked_add(p)) {
                Some(o) => o,
                None => return fail(format!("tensor '{}': data offsets overflow", t.name)),
            };
        }
        let padded =
            pad_to(header.len() as u64, alignment).expect("header fits in memory") as usize;
        header.resize(padded, 0);
        Ok(Plan {
            header,
            alignment,
            tensors,
            data_len: offset,
        })
    }

    /// The tensor info's `ne` for a row-major shape under this writer's dims mode.
    fn ne_of(&self, shape: &[u64]) -> Vec<u64> {
        let mut ne: Vec<u64> = shape.iter().rev().copied().collect();
        if self.dims_mode == DimsMode::TrimTrailingOnes {
            while ne.len() > 1 && ne.last() == Some(&1) {
                ne.pop();
            }
            if ne.is_empty() {
                ne.push(1);
            }
        }
        ne
    }

    /// The (ggml type, ne, offset) the header will give each tensor, in order; for tests and
    /// dry runs.
    pub fn planned_tensor_infos(&self) -> Result<Vec<crate::header::TensorInfo>> {
        let plan = self.plan()?;
        Ok(self
            .tensors
            .iter()
            .zip(plan.tensors)
            .map(|(t, p)| crate::header::TensorInfo {
                name: t.name.clone(),
                ggml_type: p.ggml_type,
                ne: p.ne,
                offset: p.offset,
            })
            .collect())
    }
}

/// How `write_split` distributes tensors over shards (llama-gguf-split's `--split-max-tensors`
/// and `--split-max-size`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SplitBy {
    /// At most this many tensors per shard (`--split-max-tensors`).
    MaxTensors(usize),
    /// Padded tensor data bytes per shard (the header is not counted, as in llama-gguf-split).
    MaxBytes(u64),
}

/// llama-gguf-split's `--split` options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SplitOptions {
    /// Where one shard ends.
    pub by: SplitBy,
    /// The first shard holds only the metadata (`--no-tensor-first-split`).
    pub no_tensor_first_split: bool,
}

/// How convert_hf_to_gguf.py splits its output (gguf-py's `GGUFWriter` with `split_max_tensors`,
/// `split_max_size` and `small_first_shard`). Unlike llama-gguf-split's rule ([`SplitOptions`]),
/// both limits may be given (a shard ends when either is reached), sizes count tensor data
/// unpadded, a tensor larger than the size limit gets a shard of its own, and when everything
/// fits one shard the output is the ordinary single file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConverterSplit {
    /// At most this many tensors per shard (`--split-max-tensors`); 0: no limit.
    pub max_tensors: usize,
    /// At most this many bytes of (unpadded) tensor data per shard (`--split-max-size`); 0: no
    /// limit.
    pub max_bytes: u64,
    /// The first shard holds only the metadata (`--no-tensor-first-split`); the tensors start in
    /// the second, so the output is always split.
    pub small_first_shard: bool,
}

impl ConverterSplit {
    /// Whether any option asks for a split (all zero and false: one file, as without them).
    pub fn any(&self) -> bool {
        self.max_tensors != 0 || self.max_bytes != 0 || self.small_first_shard
    }
}

/// The file names gguf-py gives the shards of `out` (`format_shard_names`): the name's stem (the
/// file name without its last extension, as Python's `Path.stem`) then `-00001-of-0000N.gguf`,
/// in `out`'s folder; a single shard is `out` itself.
pub(crate) fn converter_shard_paths(out: &Path, n_shards: usize) -> Vec<PathBuf> {
    if n_shards == 1 {
        return vec![out.to_path_buf()];
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Path.stem: the last '.' starts the suffix unless it is the first character or the last.
    let stem = match name.rfind('.') {
        Some(i) if i > 0 && i + 1 < name.len() => &name[..i],
        _ => name.as_str(),
    };
    (0..n_shards)
        .map(|i| out.with_file_name(split_path(stem, i, n_shards)))
        .collect()
}

impl GgufWriter {
    /// Tensor counts per shard by gguf-py's rule (`add_tensor_info`): a tensor starts a new shard
    /// when the current one already holds some tensor and either holds `max_tensors` or would
    /// exceed `max_bytes` of unpadded data with it.
    fn converter_groups(&self, split: &ConverterSplit) -> Result<Vec<usize>> {
        let plan = self.plan()?;
        let mut sizes = vec![0usize];
        if split.small_first_shard {
            sizes.push(0);
        }
        let mut bytes = 0u64;
        for planned in &plan.tensors {
            let n = *sizes.last().expect("never empty");
            if n > 0
                && ((split.max_tensors != 0 && n >= split.max_tensors)
                    || (split.max_bytes != 0
                        && bytes.saturating_add(planned.nbytes) > split.max_bytes))
            {
                sizes.push(0);
                bytes = 0;
            }
            *sizes.last_mut().expect("never empty") += 1;
            bytes += planned.nbytes;
        }
        Ok(sizes)
    }

    /// Writes the output as convert_hf_to_gguf.py does with split options (see
    /// [`ConverterSplit`]; shards are named like gguf-py's `format_shard_names`: the stem of
    /// `out`, then `-00001-of-0000N.gguf`, in `out`'s folder): when there is more than one shard,
    /// the first has every KV followed by `split.no` (u16), `split.count` (u16) and
    /// `split.tensors.count` (i32), the others only those three; each shard's header and
    /// padding follow this writer's settings. One shard: the ordinary file at `out`, without
    /// split keys. Atomic like [`Self::write_split`]. Returns the files written.
    pub fn write_converter_split(
        self,
        out: &Path,
        split: &ConverterSplit,
        overwrite: bool,
    ) -> Result<Vec<PathBuf>> {
        let sizes = self.converter_groups(split)?;
        if sizes.len() == 1 {
            self.write(out, overwrite)?;
            return Ok(vec![out.to_path_buf()]);
        }
        let paths = converter_shard_paths(out, sizes.len());
        self.write_groups(&paths, &sizes, overwrite, converter_split_keys)
    }

    /// What [`Self::write_converter_split`] would write (convert_hf_to_gguf.py `--dry-run`):
    /// each file's path, tensor count and size (`bytes` is the file's size, `reported_bytes` the
    /// unpadded tensor data the converter prints as `total_size`); writes nothing.
    pub fn plan_converter_split(
        &self,
        out: &Path,
        split: &ConverterSplit,
    ) -> Result<Vec<crate::split::ShardPlan>> {
        let plan = self.plan()?;
        let sizes = self.converter_groups(split)?;
        let paths = converter_shard_paths(out, sizes.len());
        let n = sizes.len();
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        for (i, (&size, path)) in sizes.iter().zip(paths).enumerate() {
            let range = start..start + size;
            start += size;
            let bytes = if n == 1 {
                self.total_size()?
            } else {
                let mut shard = GgufWriter::new();
                shard.dims_mode = self.dims_mode;
                shard.alignment_override = self.alignment_override;
                if i == 0 {
                    shard.kvs = self.kvs.clone();
                }
                converter_split_keys(&mut shard, i, n, self.tensors.len());
                shard.tensors = self.tensors[range.clone()].to_vec();
                shard.total_size()?
            };
            out.push(crate::split::ShardPlan {
                path,
                tensors: size,
                bytes,
                reported_bytes: plan.tensors[range].iter().map(|t| t.nbytes).sum(),
            });
        }
        Ok(out)
    }
}

/// gguf-py's `add_shard_kv_data`: the three keys set on every shard, in this order; a key the
/// shard already has keeps its place (a Python dict update).
fn converter_split_keys(shard: &mut GgufWriter, i: usize, n: usize, n_tensors: usize) {
    for (key, value) in [
        (SPLIT_NO_KEY, GgufValue::U16(i as u16)),
        (SPLIT_COUNT_KEY, GgufValue::U16(n as u16)),
        (SPLIT_TENSORS_COUNT_KEY, GgufValue::I32(n_tensors as i32)),
    ] {
        match shard.kvs.iter_mut().find(|(k, _)| k == key) {
            Some(kv) => kv.1 = value,
            None => shard.add_kv(key, value),
        }
    }
}

impl GgufWriter {
    /// Writes the model as `<out_prefix>-00001-of-0000N.gguf` … like `llama-gguf-split --split`:
    /// the first shard has every KV, then `split.no` (u16), `split.tensors.count` (i32) and
    /// `split.count` (u16); the other shards only those three. Tensors keep their order. Every
    /// shard is written to a temporary file and all are renamed into place only at the end.
    /// For llama-gguf-split's exact bytes use [`DimsMode::TrimTrailingOnes`].
    pub fn write_split(
        self,
        out_prefix: &Path,
        options: &SplitOptions,
        overwrite: bool,
    ) -> Result<Vec<PathBuf>> {
        let plan = self.plan()?;
        let groups = split_groups(&self.tensors, &plan, options)?;
        let sizes: Vec<usize> = groups.iter().map(Vec::len).collect();
        let paths = split_paths(out_prefix, sizes.len());
        self.write_groups(&paths, &sizes, overwrite, |shard, i, n, n_tensors| {
            // llama-gguf-split sets split.count twice (a placeholder first), and every set moves
            // the key to the end: split.no, split.tensors.count, split.count.
            shard.set_kv(SPLIT_NO_KEY, GgufValue::U16(i as u16));
            shard.set_kv(SPLIT_COUNT_KEY, GgufValue::U16(0));
            shard.set_kv(SPLIT_TENSORS_COUNT_KEY, GgufValue::I32(n_tensors as i32));
            shard.set_kv(SPLIT_COUNT_KEY, GgufValue::U16(n as u16));
        })
    }

    /// What [`Self::write_split`] would write (llama-gguf-split `--dry-run`): each shard's path,
    /// tensor count and size; writes nothing.
    pub(crate) fn plan_split(
        &self,
        out_prefix: &Path,
        options: &SplitOptions,
    ) -> Result<Vec<crate::split::ShardPlan>> {
        let plan = self.plan()?;
        let groups = split_groups(&self.tensors, &plan, options)?;
        let n = groups.len();
        let prefix = out_prefix.to_string_lossy().into_owned();
        let mut out = Vec::with_capacity(n);
        for (i, group) in groups.iter().enumerate() {
            let mut shard = GgufWriter::new();
            shard.dims_mode = self.dims_mode;
            shard.alignment_override = self.alignment_override;
            shard.byte_order = self.byte_order;
            if i == 0 {
                shard.kvs = self.kvs.clone();
            }
            shard.set_kv(SPLIT_NO_KEY, GgufValue::U16(i as u16));
            shard.set_kv(
                SPLIT_TENSORS_COUNT_KEY,
                GgufValue::I32(self.tensors.len() as i32),
            );
            shard.set_kv(SPLIT_COUNT_KEY, GgufValue::U16(n as u16));
            shard.tensors = group.iter().map(|&t| self.tensors[t].clone()).collect();
            let header = shard.header_bytes()?.len() as u64;
            let data: u64 = group.iter().map(|&t| plan.tensors[t].nbytes).sum();
            out.push(crate::split::ShardPlan {
                path: split_path(&prefix, i, n).into(),
                tensors: group.len(),
                bytes: shard.total_size()?,
                reported_bytes: header + data,
            });
        }
        Ok(out)
    }

    /// Writes the model as shards of the given tensor counts (in order), like llama-quantize
    /// `--keep-split`: `<out_prefix>-00001-of-0000N.gguf` …, the first shard with every KV; when
    /// there is more than one shard, each gets `split.no` (u16), `split.count` (u16) and
    /// `split.tensors.count` (i32) appended in that order. Atomic like [`Self::write_split`].
    pub fn write_shards(
        self,
        out_prefix: &Path,
        shard_tensor_counts: &[usize],
        overwrite: bool,
    ) -> Result<Vec<PathBuf>> {
        let total: usize = shard_tensor_counts.iter().sum();
        if total != self.tensors.len() || shard_tensor_counts.is_empty() {
            return Err(Error::Other(format!(
                "shards of {shard_tensor_counts:?} tensors do not hold the {} tensors",
                self.tensors.len()
            )));
        }
        self.write_groups(
            &split_paths(out_prefix, shard_tensor_counts.len()),
            shard_tensor_counts,
            overwrite,
            |shard, i, n, n_tensors| {
                if n > 1 {
                    shard.set_kv(SPLIT_NO_KEY, GgufValue::U16(i as u16));
                    shard.set_kv(SPLIT_COUNT_KEY, GgufValue::U16(n as u16));
                    shard.set_kv(SPLIT_TENSORS_COUNT_KEY, GgufValue::I32(n_tensors as i32));
                }
            },
        )
    }

    /// Writes consecutive runs of tensors (`sizes[i]` tensors in shard i) into `paths[i]`: all
    /// shards to temporaries first, renamed into place only when every one is complete (and
    /// removed again if a rename fails).
    fn write_groups(
        self,
        paths: &[PathBuf],
        sizes: &[usize],
        overwrite: bool,
        split_keys: impl Fn(&mut GgufWriter, usize, usize, usize),
    ) -> Result<Vec<PathBuf>> {
        let plan = self.plan()?;
        let n_shards = sizes.len();
        let n_tensors = self.tensors.len();
        if n_shards > u16::MAX as usize || n_tensors > i32::MAX as usize {
            return Err(Error::Usage(format!(
                "{n_shards} shards / {n_tensors} tensors do not fit the split keys"
            )));
        }
        for p in paths {
            check_destination(p, overwrite)?;
        }
        let GgufWriter {
            kvs,
            tensors,
            dims_mode,
            alignment_override,
            byte_order,
            mut progress,
        } = self;
        let mut tensors = tensors.into_iter();
        let mut done_before = 0u64;
        let mut files = Vec::with_capacity(n_shards);
        for (i, &size) in sizes.iter().enumerate() {
            let mut shard = GgufWriter::new();
            shard.dims_mode = dims_mode;
            shard.alignment_override = alignment_override;
            shard.byte_order = byte_order;
            if i == 0 {
                shard.kvs = kvs.clone();
            }
            split_keys(&mut shard, i, n_shards, n_tensors);
            shard.tensors = tensors.by_ref().take(size).collect();
            let mut file = AtomicFile::create(&paths[i], overwrite)?;
            let mut shard_done = 0;
            shard.write_file_reporting(&mut file, &mut |done, _| {
                shard_done = done;
                if let Some(p) = progress.as_mut() {
                    p.update(done_before + done, plan.data_len);
                }
            })?;
            done_before += shard_done;
            files.push(file);
        }
        let mut committed: Vec<&PathBuf> = Vec::with_capacity(n_shards);
        for (f, p) in files.into_iter().zip(paths) {
            if let Err(e) = f.commit() {
                for done in committed {
                    let _ = std::fs::remove_file(done);
                }
                return Err(e);
            }
            committed.push(p);
        }
        Ok(paths.to_vec())
    }
}

/// llama.cpp's shard names for `out_prefix` (`split_path`).
fn split_paths(out_prefix: &Path, n_shards: usize) -> Vec<PathBuf> {
    let prefix = out_prefix.to_string_lossy();
    (0..n_shards)
        .map(|i| split_path(&prefix, i, n_shards).into())
        .collect()
}

/// The prefix shards are named after when the output is given as a file name: `model.gguf`
/// gives `model` (then `model-00001-of-00003.gguf`, …); a name without `.gguf` is kept whole.
pub fn split_prefix(output: &Path) -> PathBuf {
    let s = output.to_string_lossy();
    match s.strip_suffix(".gguf") {
        Some(p) if !p.is_empty() && !p.ends_with('/') => PathBuf::from(p),
        _ => output.to_path_buf(),
    }
}

/// Reads a size as llama-gguf-split's `--split-max-size` does: the last character must be `M`
/// (10^6 bytes) or `G` (10^9 bytes); the number is what C's `sscanf("%d")` reads from the start
/// (leading white space, an optional sign, digits, stopping at the first other character, so
/// `5.5G` is 5 G and `5 G` is 5 G), and must be positive. Where the C code's behaviour is
/// undefined (no number before the unit, a number beyond `int`), the size is refused.
pub fn parse_split_size(s: &str) -> Result<u64> {
    let bad = |why: &str| Error::Usage(format!("invalid split size '{s}': {why}"));
    let unit = match s.chars().last() {
        Some('M') => 1_000_000u64,
        Some('G') => 1_000_000_000u64,
        Some(c) => {
            return Err(bad(&format!(
                "supported units are M (megabytes) or G (gigabytes), but got: {c}"
            )))
        }
        None => return Err(bad("expected a number followed by M or G")),
    };
    // sscanf's %d: C white space, a sign, then the longest run of digits
    let rest = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (negative, rest) = match rest.as_bytes().first() {
        Some(b'-') => (true, &rest[1..]),
        Some(b'+') => (false, &rest[1..]),
        _ => (false, rest),
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(bad("expected a whole number before the unit"));
    }
    let n: u64 = match rest[..digits].parse::<u64>() {
        Ok(n) if n <= i32::MAX as u64 => n,
        _ => return Err(bad("the number does not fit in a C int")),
    };
    if negative || n == 0 {
        return Err(bad("size must be a positive value"));
    }
    Ok(n * unit)
}

/// Reads a size as `convert_hf_to_gguf.py --split-max-size` does: a number followed by `K`,
/// `M` or `G` (10^3, 10^6, 10^9 bytes; the number as Python's `int()` reads it: surrounding white
/// space, a sign and `_` between digits allowed), or digits alone (bytes). Negative sizes are
/// refused; 0 is accepted and means no size limit (the converter then writes one file).
pub fn parse_convert_split_size(s: &str) -> Result<u64> {
    let bad = |why: &str| Error::Usage(format!("invalid split size '{s}': {why}"));
    let (num, unit) = match s.chars().last() {
        Some('K') => (&s[..s.len() - 1], 1_000u64),
        Some('M') => (&s[..s.len() - 1], 1_000_000),
        Some('G') => (&s[..s.len() - 1], 1_000_000_000),
        _ if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => (s, 1),
        _ => return Err(bad("must be a number, optionally followed by K, M, or G")),
    };
    // Python's int(): white space around, one sign, digits with single underscores between them
    let t = num.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return Err(bad(&format!(
            "'{num}' is not a whole number (as Python's int() reads it)"
        )));
    }
    let n = digits
        .bytes()
        .filter(|b| *b != b'_')
        .try_fold(0u64, |n, b| {
            n.checked_mul(10)?.checked_add((b - b'0') as u64)
        })
        .and_then(|n| n.checked_mul(unit))
        // Python's integers have no bound: a limit beyond any file size is no limit
        .unwrap_or(u64::MAX);
    if negative && n != 0 {
        return Err(bad("must be positive"));
    }
    Ok(n)
}

/// Tensor indices per shard, by llama-gguf-split's rule: a new shard starts when the tensor
/// count reaches a multiple of the limit, or when adding the next padded tensor would exceed
/// the byte limit. A shard left without tensors is an error (except a metadata-only first one).
fn split_groups(
    tensors: &[Tensor],
    plan: &Plan,
    options: &SplitOptions,
) -> Result<Vec<Vec<usize>>> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new()];
    if options.no_tensor_first_split {
        groups.push(Vec::new());
    }
    let mut current_bytes = 0u64;
    for (i, planned) in plan.tensors.iter().enumerate() {
        let padded = pad_to(planned.nbytes, plan.alignment).expect("checked in plan");
        let next_bytes = current_bytes.saturating_add(padded);
        let new_shard = match options.by {
            SplitBy::MaxTensors(0) => {
                return Err(Error::Usage(
                    "the tensors-per-shard limit must be at least 1".into(),
                ))
            }
            SplitBy::MaxTensors(n) => i > 0 && i % n == 0,
            SplitBy::MaxBytes(max) => next_bytes > max,
        };
        if new_shard {
            if groups.last().is_some_and(|g| g.is_empty()) {
                return Err(Error::Usage(format!(
                    "tensor '{}' ({padded} bytes padded) does not fit in a shard of the requested size",
                    tensors[i].name
                )));
            }
            groups.push(Vec::new());
            current_bytes = padded;
        } else {
            current_bytes = next_bytes;
        }
        groups.last_mut().expect("never empty").push(i);
    }
    Ok(groups)
}

/// Array items must all have the array's element type (recursively).
fn check_value(key: &str, v: &GgufValue) -> Result<()> {
    if let GgufValue::Array(a) = v {
        for (i, item) in a.items.iter().enumerate() {
            if item.value_type() != a.elem_type {
                return Err(Error::Other(format!(
                    "key '{key}': item #{i} is {} in an array of {}",
                    item.value_type(),
                    a.elem_type
                )));
            }
            check_value(key, item)?;
        }
    }
    Ok(())
}

fn put_string(out: &mut Vec<u8>, s: &str, order: ByteOrder) {
    order.put(out, (s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The value payload (without its type tag).
fn put_value(out: &mut Vec<u8>, v: &GgufValue, order: ByteOrder) {
    match v {
        GgufValue::U8(x) => out.push(*x),
        GgufValue::I8(x) => out.push(*x as u8),
        GgufValue::U16(x) => order.put(out, x.to_le_bytes()),
        GgufValue::I16(x) => order.put(out, x.to_le_bytes()),
        GgufValue::U32(x) => order.put(out, x.to_le_bytes()),
        GgufValue::I32(x) => order.put(out, x.to_le_bytes()),
        GgufValue::F32(x) => order.put(out, x.to_le_bytes()),
        GgufValue::Bool(b) => out.push(*b as u8),
        GgufValue::String(s) => put_string(out, s, order),
        GgufValue::U64(x) => order.put(out, x.to_le_bytes()),
        GgufValue::I64(x) => order.put(out, x.to_le_bytes()),
        GgufValue::F64(x) => order.put(out, x.to_le_bytes()),
        GgufValue::Array(a) => {
            order.put(out, a.elem_type.id().to_le_bytes());
            order.put(out, (a.items.len() as u64).to_le_bytes());
            // Items of a nested array are arrays, whose payload starts with their own
            // element type and count, as gguf-py writes them.
            for item in &a.items {
                put_value(out, item, order);
            }
        }
    }
}

/// The exact bytes a KV value takes in a file: type tag then payload (as in the fixtures'
/// `le_value_bytes_hex`).
pub fn encode_value(v: &GgufValue) -> Vec<u8> {
    let mut out = v.value_type().id().to_le_bytes().to_vec();
    put_value(&mut out, v, ByteOrder::Little);
    out
}

#[cfg(test)]
mod split_size_tests {
    use super::*;

    #[test]
    fn gguf_split_sizes_read_like_sscanf() {
        for (s, n) in [
            ("5G", 5_000_000_000u64),
            ("500M", 500_000_000),
            ("5.5G", 5_000_000_000),
            ("5 G", 5_000_000_000),
            ("  +7M", 7_000_000),
            ("007M", 7_000_000),
            ("2147483647M", 2_147_483_647_000_000),
        ] {
            assert_eq!(parse_split_size(s).unwrap(), n, "{s}");
        }
        for (s, why) in [
            (
                "5",
                "supported units are M (megabytes) or G (gigabytes), but got: 5",
            ),
            ("5K", "but got: K"),
            ("5g", "but got: g"),
            ("", "expected a number"),
            ("G", "whole number"),
            ("x5G", "whole number"),
            (".5G", "whole number"),
            ("0G", "positive"),
            ("-5G", "positive"),
            ("2147483648M", "C int"),
        ] {
            let e = parse_split_size(s).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }

    #[test]
    fn converter_sizes_read_like_python() {
        for (s, n) in [
            ("5G", 5_000_000_000u64),
            ("300K", 300_000),
            ("12345", 12_345),
            ("0", 0),
            ("0K", 0),
            ("-0M", 0),
            (" 2 M", 2_000_000),
            ("+1_000K", 1_000_000),
            ("99999999999999999999G", u64::MAX),
        ] {
            assert_eq!(parse_convert_split_size(s).unwrap(), n, "{s}");
        }
        for (s, why) in [
            ("5.5G", "not a whole number"),
            ("5g", "optionally followed by K, M, or G"),
            (" 5", "optionally followed by K, M, or G"),
            ("1_000", "optionally followed by K, M, or G"),
            ("", "optionally followed by K, M, or G"),
            ("M", "not a whole number"),
            ("1__0M", "not a whole number"),
            ("_1M", "not a whole number"),
            ("--1M", "not a whole number"),
            ("-5M", "must be positive"),
        ] {
            let e = parse_convert_split_size(s).unwrap_err().to_string();
            assert!(e.contains(why), "{s}: {e}");
        }
    }
}
