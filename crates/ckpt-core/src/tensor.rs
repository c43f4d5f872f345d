//! The lazy tensor model every conversion flows through.
//!
//! A [`Tensor`] is a name, a dtype, a shape and a [`TensorData`] saying where its bytes are: a view
//! into a [`Storage`] (a byte range of a mmapped file or an owned buffer, with an element offset,
//! optional strides and a byte order) or a computation run on demand. Nothing is read until a
//! sink asks for the bytes, one tensor at a time.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::dtype::{numel, DType};
use crate::error::{Error, Result};

/// Bytes of one input file, memory-mapped (or owned, for inflated/synthesised data).
pub struct Buffer {
    /// The file the bytes come from (a label for owned bytes), named in errors.
    pub path: PathBuf,
    backing: Backing,
    /// The open file behind a mapping, for kernel-side copies.
    file: Option<std::fs::File>,
}

enum Backing {
    Mmap(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Buffer {
    /// Memory-maps `path` read-only. Never modifies the file.
    pub fn map(path: &Path) -> Result<Arc<Buffer>> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let backing = if len == 0 {
            Backing::Owned(Vec::new())
        } else {
            // SAFETY: read-only private mapping; ckpt never writes to its inputs. A file truncated
            // by another process while mapped is outside what any mmap reader can defend against.
            let map = unsafe { memmap2::MmapOptions::new().map(&file) }
                .map_err(|e| Error::io(path, e))?;
            Backing::Mmap(map)
        };
        Ok(Arc::new(Buffer {
            path: path.to_path_buf(),
            backing,
            file: Some(file),
        }))
    }

    /// Bytes already in memory; `path` names them in errors.
    pub fn owned(path: impl Into<PathBuf>, bytes: Vec<u8>) -> Arc<Buffer> {
        Arc::new(Buffer {
            path: path.into(),
            backing: Backing::Owned(bytes),
            file: None,
        })
    }

    /// The whole file's bytes.
    pub fn bytes(&self) -> &[u8] {
        match &self.backing {
            Backing::Mmap(m) => m,
            Backing::Owned(v) => v,
        }
    }

    /// The length in bytes.
    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    /// Whether the buffer holds no bytes (an empty file).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tells the kernel we are done with a range so mapped pages stop counting toward our RSS.
    pub fn release(&self, start: usize, len: usize) {
        #[cfg(unix)]
        if let Backing::Mmap(m) = &self.backing {
            let page = 4096;
            let begin = start.div_ceil(page) * page;
            let end = ((start + len) / page) * page;
            if end > begin {
                // SAFETY: the mapping is read-only and file-backed; dropping pages only forces a
                // re-read from the file on the next access, it never changes contents.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, begin, end - begin)
                };
            }
        }
        let _ = (start, len);
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Buffer({}, {} bytes)", self.path.display(), self.len())
    }
}

/// Unit of streamed reads and writes of mapped data.
const STREAM_CHUNK: usize = 8 << 20;

static NEXT_STORAGE_ID: AtomicU64 = AtomicU64::new(1);

/// A contiguous byte range that one or more tensors view (a torch storage, or a safetensors /
/// GGUF tensor's own data range). Tensors with the same `id` share memory.
#[derive(Debug)]
pub struct Storage {
    /// Unique in the process: tensors viewing storages with the same id share memory.
    pub id: u64,
    /// The file bytes the range lies in.
    pub buffer: Arc<Buffer>,
    /// Byte offset of the range in the buffer.
    pub start: usize,
    /// Byte length of the range.
    pub len: usize,
    /// Data stored big-endian (a torch checkpoint with `byteorder = big`).
    pub big_endian: bool,
    /// Human-readable origin for errors, e.g. `archive/data/3`.
    pub label: String,
}

impl Storage {
    /// The byte range `start..start + len` of `buffer`, with a fresh id; `label` names it in
    /// errors. Fails with [`Error::Invalid`] when the range is not inside the buffer.
    pub fn new(
        buffer: Arc<Buffer>,
        start: usize,
        len: usize,
        label: impl Into<String>,
    ) -> Result<Arc<Storage>> {
        let end = start.checked_add(len);
        if end.is_none_or(|e| e > buffer.len()) {
            return Err(Error::invalid(
                &buffer.path,
                format!(
                    "data range {start}..{start}+{len} is outside the file ({} bytes)",
                    buffer.len()
                ),
            ));
        }
        Ok(Arc::new(Storage {
            id: NEXT_STORAGE_ID.fetch_add(1, Ordering::Relaxed),
            buffer,
            start,
            len,
            big_endian: false,
            label: label.into(),
        }))
    }

    /// Marks the data as stored big-endian (readers then swap each element). Must be called
    /// before the storage is shared (panics otherwise).
    pub fn with_big_endian(mut self: Arc<Self>, big_endian: bool) -> Arc<Self> {
        Arc::get_mut(&mut self)
            .expect("set byte order before sharing")
            .big_endian = big_endian;
        self
    }

    /// The range's bytes, as stored.
    pub fn bytes(&self) -> &[u8] {
        &self.buffer.bytes()[self.start..self.start + self.len]
    }
}

/// A view of a storage: element offset and strides (in elements; None means contiguous).
#[derive(Debug, Clone)]
pub struct View {
    /// The storage viewed.
    pub storage: Arc<Storage>,
    /// Offset of the first element, in elements of the tensor's dtype.
    pub offset: u64,
    /// Stride of each dimension, in elements (row-major order like the shape); `None`: dense.
    pub strides: Option<Vec<u64>>,
}

/// Produces a computed tensor's whole data: dense, little-endian bytes.
pub type ComputeFn = dyn Fn() -> Result<Vec<u8>> + Send + Sync;

/// Writes the bytes of output rows `range` into `dst`, which is exactly `range.len() * row_bytes`.
pub type FillRowsFn = dyn Fn(std::ops::Range<usize>, &mut [u8]) -> Result<()> + Send + Sync;

/// Writes the values of output rows `range` into `dst` (`range.len() * row_bytes` bytes' worth of
/// elements of an F32, F16 or BF16 tensor): what decoding the bytes [`RowFill::fill`] writes for
/// those rows gives, number for number (a NaN or infinity stays one at the same place; its bits
/// may differ). Lets a consumer that wants f32 (a quantizer) skip encoding and decoding.
pub type FillValuesFn = dyn Fn(std::ops::Range<usize>, &mut [f32]) -> Result<()> + Send + Sync;

/// A computed tensor that can be produced a band of outer rows at a time, so a writer can
/// stream it in bounded pieces instead of holding the whole output.
pub struct RowFill {
    /// How many outer rows the tensor is produced in.
    pub rows: usize,
    /// Bytes of one outer row in the output form.
    pub row_bytes: usize,
    /// Writes the bytes of a band of rows.
    pub fill: Box<FillRowsFn>,
    /// The same rows as f32 values, when the producer can give them directly.
    pub values: Option<Box<FillValuesFn>>,
}

/// Where a tensor's bytes come from.
#[derive(Clone)]
pub enum TensorData {
    /// A view of stored bytes (possibly strided, offset or big-endian).
    View(View),
    /// Bytes produced on demand (a cast, a LoRA merge, a dequantization…), little-endian, dense.
    Computed(Arc<ComputeFn>),
    /// Like `Computed`, produced by bands of rows.
    Rows(Arc<RowFill>),
}

impl fmt::Debug for TensorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TensorData::View(v) => v.fmt(f),
            TensorData::Computed(_) => f.write_str("Computed"),
            TensorData::Rows(r) => write!(f, "Rows({} x {} bytes)", r.rows, r.row_bytes),
        }
    }
}

/// A named, typed, shaped tensor whose bytes are read or computed only when asked for.
#[derive(Debug, Clone)]
pub struct Tensor {
    /// The name in the checkpoint (`model.layers.0.self_attn.q_proj.weight`, `blk.0.attn_q.weight`).
    pub name: String,
    /// The element type.
    pub dtype: DType,
    /// Row-major dimensions, outermost first (`[]` for a scalar).
    pub shape: Vec<u64>,
    /// Where the bytes come from.
    pub data: TensorData,
}

impl Tensor {
    /// A tensor that owns a dense little-endian slice of a storage starting at byte 0.
    pub fn contiguous(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<u64>,
        storage: Arc<Storage>,
    ) -> Tensor {
        Tensor {
            name: name.into(),
            dtype,
            shape,
            data: TensorData::View(View {
                storage,
                offset: 0,
                strides: None,
            }),
        }
    }

    /// A tensor whose dense little-endian bytes `f` produces on demand (each time they are
    /// asked for).
    pub fn computed(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<u64>,
        f: impl Fn() -> Result<Vec<u8>> + Send + Sync + 'static,
    ) -> Tensor {
        Tensor {
            name: name.into(),
            dtype,
            shape,
            data: TensorData::Computed(Arc::new(f)),
        }
    }

    /// A computed tensor produced by bands of `rows` outer rows of `row_bytes` each.
    pub fn from_rows(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<u64>,
        rows: usize,
        row_bytes: usize,
        fill: impl Fn(std::ops::Range<usize>, &mut [u8]) -> Result<()> + Send + Sync + 'static,
    ) -> Tensor {
        let data = TensorData::Rows(Arc::new(RowFill {
            rows,
            row_bytes,
            fill: Box::new(fill),
            values: None,
        }));
        Tensor {
            name: name.into(),
            dtype,
            shape,
            data,
        }
    }

    /// [`Tensor::from_rows`] for an F32, F16 or BF16 tensor that can also give its rows as f32
    /// values (see [`FillValuesFn`]).
    #[allow(clippy::too_many_arguments)]
    pub fn from_rows_with_values(
        name: impl Into<String>,
        dtype: DType,
        shape: Vec<u64>,
        rows: usize,
        row_bytes: usize,
        fill: impl Fn(std::ops::Range<usize>, &mut [u8]) -> Result<()> + Send + Sync + 'static,
        values: impl Fn(std::ops::Range<usize>, &mut [f32]) -> Result<()> + Send + Sync + 'static,
    ) -> Tensor {
        let data = TensorData::Rows(Arc::new(RowFill {
            rows,
            row_bytes,
            fill: Box::new(fill),
            values: Some(Box::new(values)),
        }));
        Tensor {
            name: name.into(),
            dtype,
            shape,
            data,
        }
    }

    /// The number of elements (`u64::MAX` if the product overflows).
    pub fn numel(&self) -> u64 {
        numel(&self.shape).unwrap_or(u64::MAX)
    }

    /// Bytes of the dense output form of this tensor.
    pub fn nbytes(&self) -> u64 {
        self.dtype.nbytes(&self.shape).unwrap_or(u64::MAX)
    }

    /// The storage view, for a tensor backed by stored bytes; `None` for a computed one.
    pub fn view(&self) -> Option<&View> {
        match &self.data {
            TensorData::View(v) => Some(v),
            TensorData::Computed(_) | TensorData::Rows(_) => None,
        }
    }

    /// Checks that the view lies inside its storage (torch's `set_` bound check) and the strides are
    /// representable. Readers call this once for every tensor they produce.
    pub fn validate(&self) -> Result<()> {
        let nbytes = self.dtype.nbytes(&self.shape).map_err(|m| self.err(m))?;
        let Some(v) = self.view() else { return Ok(()) };
        let path = &v.storage.buffer.path;
        if self.numel() == 0 {
            return Ok(());
        }
        match &v.strides {
            None => {
                let elem_bits = self.dtype.bits().unwrap_or(8) as u64;
                let start = v.offset.checked_mul(elem_bits).map(|b| b / 8);
                let end = start.and_then(|s| s.checked_add(nbytes));
                if end.is_none_or(|e| e > v.storage.len as u64) {
                    return Err(Error::invalid(
                        path,
                        format!(
                            "tensor '{}' needs {} bytes at element offset {} but {} holds {} bytes",
                            self.name, nbytes, v.offset, v.storage.label, v.storage.len
                        ),
                    ));
                }
            }
            Some(strides) => {
                let elem = self.dtype.elem_size().ok_or_else(|| {
                    self.err(format!("strided views of {} are not supported", self.dtype))
                })? as u64;
                if strides.len() != self.shape.len() {
                    return Err(Error::invalid(
                        path,
                        format!(
                            "tensor '{}' has {} strides for {} dimensions",
                            self.name,
                            strides.len(),
                            self.shape.len()
                        ),
                    ));
                }
                let mut last = v.offset;
                for (&d, &s) in self.shape.iter().zip(strides) {
                    last = (d - 1)
                        .checked_mul(s)
                        .and_then(|x| last.checked_add(x))
                        .ok_or_else(|| self.err("stride arithmetic overflows".to_string()))?;
                }
                if last
                    .checked_add(1)
                    .and_then(|n| n.checked_mul(elem))
                    .is_none_or(|b| b > v.storage.len as u64)
                {
                    return Err(Error::invalid(
                        path,
                        format!(
                            "tensor '{}' (offset {}, shape {:?}, strides {:?}) reaches past the end of {} ({} bytes)",
                            self.name, v.offset, self.shape, strides, v.storage.label, v.storage.len
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn err(&self, msg: String) -> Error {
        match self.view() {
            Some(v) => Error::invalid(
                &v.storage.buffer.path,
                format!("tensor '{}': {msg}", self.name),
            ),
            None => Error::Other(format!("tensor '{}': {msg}", self.name)),
        }
    }

    /// The byte range of the storage this tensor touches, for shared-memory detection.
    pub fn storage_byte_range(&self) -> Option<(u64, std::ops::Range<u64>)> {
        let v = self.view()?;
        let elem = self.dtype.elem_size()? as u64;
        if self.numel() == 0 {
            return None;
        }
        let start = v.offset * elem;
        let last = match &v.strides {
            None => v.offset + self.numel() - 1,
            Some(s) => {
                v.offset
                    + self
                        .shape
                        .iter()
                        .zip(s)
                        .map(|(&d, &st)| (d - 1) * st)
                        .sum::<u64>()
            }
        };
        Some((v.storage.id, start..(last + 1) * elem))
    }

    /// Whether this tensor covers its whole storage exactly (convert.py's "complete" test).
    pub fn covers_storage(&self) -> bool {
        match self.view() {
            Some(v) => v.offset == 0 && self.nbytes() == v.storage.len as u64,
            None => false,
        }
    }

    /// Dense little-endian bytes. Borrowed when the view is already dense and little-endian.
    pub fn bytes(&self) -> Result<Cow<'_, [u8]>> {
        match &self.data {
            TensorData::Computed(f) => {
                let out = f()?;
                if out.len() as u64 != self.nbytes() {
                    return Err(Error::Other(format!(
                        "tensor '{}': computed {} bytes, expected {}",
                        self.name,
                        out.len(),
                        self.nbytes()
                    )));
                }
                Ok(Cow::Owned(out))
            }
            TensorData::Rows(r) => {
                if (r.rows * r.row_bytes) as u64 != self.nbytes() {
                    return Err(Error::Other(format!(
                        "tensor '{}': {} rows of {} bytes, expected {} bytes",
                        self.name,
                        r.rows,
                        r.row_bytes,
                        self.nbytes()
                    )));
                }
                let mut out = crate::pool::take(r.rows * r.row_bytes);
                (r.fill)(0..r.rows, &mut out)?;
                Ok(Cow::Owned(out))
            }
            TensorData::View(v) => {
                self.validate()?;
                let nbytes = self.nbytes() as usize;
                if nbytes == 0 {
                    // (an empty view's offset is not checked: it reads nothing)
                    return Ok(Cow::Borrowed(&[]));
                }
                let storage = v.storage.bytes();
                let contiguous = match &v.strides {
                    None => true,
                    Some(s) => is_contiguous(&self.shape, s),
                };
                let elem_bits = self.dtype.bits().unwrap_or(8) as u64;
                let mut out: Cow<[u8]> = if contiguous {
                    let start = (v.offset * elem_bits / 8) as usize;
                    Cow::Borrowed(&storage[start..start + nbytes])
                } else {
                    let mut out = try_buffer(nbytes, &self.name)?;
                    self.stream_view(&mut |chunk| {
                        out.extend_from_slice(chunk);
                        Ok(())
                    })?;
                    return Ok(Cow::Owned(out));
                };
                if v.storage.big_endian {
                    let unit = self.dtype.swap_unit();
                    if unit > 1 {
                        let owned = out.to_mut();
                        for chunk in owned.chunks_exact_mut(unit) {
                            chunk.reverse();
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// The tensor's bytes as one range of a mapped buffer, when it is a dense little-endian view.
    pub fn mapped_range(&self) -> Option<(&Buffer, usize, usize)> {
        let v = self.view()?;
        if self.numel() == 0 {
            // (an empty view's offset is not checked; its bytes come from `bytes`)
            return None;
        }
        if v.storage.big_endian && self.dtype.swap_unit() > 1 {
            return None;
        }
        if let Some(s) = &v.strides {
            if !is_contiguous(&self.shape, s) {
                return None;
            }
        }
        let bits = self.dtype.bits().unwrap_or(8) as u64;
        let start = v.storage.start as u64 + v.offset * bits / 8;
        Some((&v.storage.buffer, start as usize, self.nbytes() as usize))
    }

    /// Streams the dense bytes into `w`. Mapped data goes out in chunks whose pages are released
    /// right after, so resident memory stays flat however large the tensor or model is.
    pub fn write_to(&self, w: &mut dyn Write) -> Result<u64> {
        let io_err =
            |e: std::io::Error| Error::Other(format!("writing tensor '{}': {e}", self.name));
        if let Some((buf, start, len)) = self.mapped_range() {
            self.validate()?;
            let mut pos = start;
            while pos < start + len {
                let n = STREAM_CHUNK.min(start + len - pos);
                w.write_all(&buf.bytes()[pos..pos + n]).map_err(io_err)?;
                buf.release(pos, n);
                pos += n;
            }
            return Ok(len as u64);
        }
        if self.view().is_some() {
            // A strided view (maybe expanded far beyond its storage) goes out in bounded pieces.
            let mut n = 0u64;
            self.stream_view(&mut |chunk| {
                n += chunk.len() as u64;
                w.write_all(chunk).map_err(io_err)
            })?;
            self.release();
            return Ok(n);
        }
        let bytes = self.bytes()?;
        w.write_all(&bytes).map_err(io_err)?;
        let n = bytes.len() as u64;
        drop(bytes);
        self.release();
        Ok(n)
    }

    /// Like [`Tensor::write_to`] for a file output: dense mapped data is copied by the kernel
    /// (`copy_file_range`) without passing through user space; anything else is streamed.
    pub fn write_to_file(&self, w: &mut std::io::BufWriter<std::fs::File>) -> Result<u64> {
        #[cfg(target_os = "linux")]
        if let Some((buf, start, len)) = self.mapped_range() {
            if let Some(src) = &buf.file {
                self.validate()?;
                let io_err = |e: std::io::Error| {
                    Error::Other(format!("writing tensor '{}': {e}", self.name))
                };
                w.flush().map_err(io_err)?;
                if copy_range(src, start as u64, w.get_mut(), None, len as u64).map_err(io_err)? {
                    return Ok(len as u64);
                }
            }
        }
        self.write_to(w)
    }

    /// Writes the dense bytes at `offset` of `f` with positioned writes (so several tensors can
    /// be written into one file at once). Dense mapped data is copied by the kernel
    /// (`copy_file_range`) where the filesystems allow, else written in chunks whose mapped pages
    /// are released right after; other views are gathered piece by piece. Returns the bytes
    /// written.
    pub fn write_at(&self, f: &std::fs::File, offset: u64) -> Result<u64> {
        let io_err =
            |e: std::io::Error| Error::Other(format!("writing tensor '{}': {e}", self.name));
        if let Some((buf, start, len)) = self.mapped_range() {
            self.validate()?;
            #[cfg(target_os = "linux")]
            if let Some(src) = &buf.file {
                if copy_range(src, start as u64, f, Some(offset), len as u64).map_err(io_err)? {
                    return Ok(len as u64);
                }
            }
            let mut pos = 0;
            while pos < len {
                let n = STREAM_CHUNK.min(len - pos);
                crate::atomic::write_all_at(
                    f,
                    &buf.bytes()[start + pos..start + pos + n],
                    offset + pos as u64,
                )
                .map_err(io_err)?;
                buf.release(start + pos, n);
                pos += n;
            }
            return Ok(len as u64);
        }
        if self.view().is_some() {
            let mut n = 0u64;
            self.stream_view(&mut |chunk| {
                crate::atomic::write_all_at(f, chunk, offset + n).map_err(io_err)?;
                n += chunk.len() as u64;
                Ok(())
            })?;
            self.release();
            return Ok(n);
        }
        let bytes = self.bytes()?;
        crate::atomic::write_all_at(f, &bytes, offset).map_err(io_err)?;
        let n = bytes.len() as u64;
        drop(bytes);
        self.release();
        Ok(n)
    }

    /// Whether two tensors hold identical bytes, compared chunk by chunk (mapped pages released
    /// as they are consumed). Returns the first differing byte offset.
    pub fn first_difference(&self, other: &Tensor) -> Result<Option<u64>> {
        if let (Some((ba, sa, la)), Some((bb, sb, lb))) =
            (self.mapped_range(), other.mapped_range())
        {
            self.validate()?;
            other.validate()?;
            let mut off = 0usize;
            while off < la.min(lb) {
                let n = STREAM_CHUNK.min(la.min(lb) - off);
                let (x, y) = (
                    &ba.bytes()[sa + off..sa + off + n],
                    &bb.bytes()[sb + off..sb + off + n],
                );
                if x != y {
                    let at = x.iter().zip(y).position(|(p, q)| p != q).unwrap();
                    return Ok(Some((off + at) as u64));
                }
                ba.release(sa + off, n);
                bb.release(sb + off, n);
                off += n;
            }
            return Ok((la != lb).then_some(la.min(lb) as u64));
        }
        // A strided view against dense mapped bytes: compared piece by piece, never densified.
        let (view, dense) = match (self.mapped_range(), other.mapped_range()) {
            (None, Some(d)) if self.view().is_some() => (Some(self), Some((other, d))),
            (Some(d), None) if other.view().is_some() => (Some(other), Some((self, d))),
            _ => (None, None),
        };
        if let (Some(view), Some((dense_t, (buf, start, len)))) = (view, dense) {
            dense_t.validate()?;
            let mut off = 0usize;
            let mut diff = None;
            view.stream_view(&mut |chunk| {
                if diff.is_some() {
                    return Ok(());
                }
                let avail = len.saturating_sub(off).min(chunk.len());
                let theirs = &buf.bytes()[start + off..start + off + avail];
                if let Some(at) = chunk[..avail].iter().zip(theirs).position(|(p, q)| p != q) {
                    diff = Some((off + at) as u64);
                } else if avail < chunk.len() {
                    diff = Some((off + avail) as u64);
                }
                off += chunk.len();
                Ok(())
            })?;
            view.release();
            dense_t.release();
            return Ok(diff.or_else(|| (off != len).then_some(off.min(len) as u64)));
        }
        let (a, b) = (self.bytes()?, other.bytes()?);
        let diff = if a == b {
            None
        } else {
            Some(
                a.iter()
                    .zip(b.iter())
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len())) as u64,
            )
        };
        drop((a, b));
        self.release();
        other.release();
        Ok(diff)
    }

    /// Hands the dense bytes of a view to `emit` in pieces of at most [`STREAM_CHUNK`] bytes
    /// (little-endian), gathering strided (and expanded, stride 0) views without ever holding
    /// their dense form.
    pub(crate) fn stream_view(&self, emit: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let Some(v) = self.view() else {
            return emit(&self.bytes()?);
        };
        self.validate()?;
        if self.numel() == 0 {
            return Ok(());
        }
        let storage = v.storage.bytes();
        let elem = self.dtype.elem_size().unwrap_or(1);
        let unit = if v.storage.big_endian {
            self.dtype.swap_unit()
        } else {
            1
        };
        let (shape, strides) = match (&v.strides, self.shape.is_empty()) {
            (_, true) => (vec![1], vec![1]),
            (Some(s), false) => (self.shape.clone(), s.clone()),
            (None, false) => (self.shape.clone(), contiguous_strides(&self.shape)),
        };
        if self.dtype.elem_size().is_none() {
            // Sub-byte dtypes are only ever contiguous (validate refuses strides for them).
            let bits = self.dtype.bits().unwrap_or(8) as u64;
            let start = (v.offset * bits / 8) as usize;
            let n = self.nbytes() as usize;
            for piece in storage[start..start + n].chunks(STREAM_CHUNK) {
                emit(piece)?;
            }
            return Ok(());
        }
        let cap = STREAM_CHUNK.min(self.nbytes() as usize).max(elem);
        let mut buf = try_buffer(cap, &self.name)?;
        let mut flush = |buf: &mut Vec<u8>| -> Result<()> {
            if unit > 1 {
                for c in buf.chunks_exact_mut(unit) {
                    c.reverse();
                }
            }
            emit(buf)?;
            buf.clear();
            Ok(())
        };
        let nd = shape.len();
        let mut idx = vec![0u64; nd];
        let (inner, inner_stride) = (shape[nd - 1], strides[nd - 1]);
        loop {
            let base = v.offset + idx.iter().zip(&strides).map(|(&i, &s)| i * s).sum::<u64>();
            let mut j = 0u64;
            while j < inner {
                if inner_stride == 1 {
                    let room = ((cap - buf.len()) / elem).max(1) as u64;
                    let take = room.min(inner - j);
                    let b = (base + j) as usize * elem;
                    buf.extend_from_slice(&storage[b..b + take as usize * elem]);
                    j += take;
                } else {
                    let b = (base + j * inner_stride) as usize * elem;
                    buf.extend_from_slice(&storage[b..b + elem]);
                    j += 1;
                }
                if buf.len() + elem > cap {
                    flush(&mut buf)?;
                }
            }
            let mut d = nd as isize - 2;
            loop {
                if d < 0 {
                    if !buf.is_empty() {
                        flush(&mut buf)?;
                    }
                    return Ok(());
                }
                let du = d as usize;
                idx[du] += 1;
                if idx[du] < shape[du] {
                    break;
                }
                idx[du] = 0;
                d -= 1;
            }
        }
    }

    /// Drops mapped pages of this tensor's storage from the resident set.
    pub fn release(&self) {
        if let Some(v) = self.view() {
            v.storage.buffer.release(v.storage.start, v.storage.len);
        }
    }
}

/// Copies `len` bytes of `src` at `offset` to `dst` inside the kernel: at `out_offset`, or at
/// (and advancing) the file position when None. Returns false (having copied nothing) when the
/// filesystems cannot do it, so the caller streams.
#[cfg(target_os = "linux")]
fn copy_range(
    src: &std::fs::File,
    offset: u64,
    dst: &std::fs::File,
    out_offset: Option<u64>,
    len: u64,
) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    let mut off_in = offset as i64;
    let mut off_out = out_offset.map(|o| o as i64);
    let mut left = len;
    while left > 0 {
        let chunk = left.min(1 << 30) as usize;
        // SAFETY: valid fds; off_in is a valid pointer; the output offset is the fd's own position.
        let n = unsafe {
            libc::copy_file_range(
                src.as_raw_fd(),
                &mut off_in,
                dst.as_raw_fd(),
                off_out
                    .as_mut()
                    .map_or(std::ptr::null_mut(), |o| o as *mut i64),
                chunk,
                0,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            let unsupported = matches!(
                e.raw_os_error(),
                Some(libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP)
            );
            if unsupported && left == len {
                return Ok(false);
            }
            return Err(e);
        }
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "source file ended early",
            ));
        }
        left -= n as u64;
    }
    Ok(true)
}

/// Whether `strides` describe the row-major layout of `shape` (size-1 dims may have any stride).
pub fn is_contiguous(shape: &[u64], strides: &[u64]) -> bool {
    let mut expected = 1u64;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected = expected.saturating_mul(d);
    }
    true
}

/// The row-major strides (in elements) of a dense tensor of `shape`: the last dimension's is 1.
pub fn contiguous_strides(shape: &[u64]) -> Vec<u64> {
    let mut strides = vec![1u64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    strides
}

/// An empty buffer able to hold `len` bytes, or a clear error when memory cannot be had (sizes
/// come from files: never abort the process on them).
pub fn try_buffer(len: usize, what: &str) -> Result<Vec<u8>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len).map_err(|_| {
        Error::Unsupported(format!(
            "tensor '{what}': {len} bytes of memory could not be allocated"
        ))
    })?;
    Ok(v)
}

/// Writes tensors in order while the next computed tensor (a cast, a quantization, a merge) is
/// produced on another thread, so computing and writing overlap. Views are written by
/// `write_view` (which may copy in the kernel); computed bytes are written as they arrive, a
/// tensor made by bands of rows ([`TensorData::Rows`]) in pieces of about 8 MiB,
/// so neither thread holds it whole. `after_each(index, bytes)` runs after every tensor
/// (padding, progress, size checks).
pub fn write_pipelined<W: Write + ?Sized>(
    tensors: &[&Tensor],
    w: &mut W,
    mut write_view: impl FnMut(&Tensor, &mut W) -> Result<u64>,
    mut after_each: impl FnMut(usize, u64, &mut W) -> Result<()>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<u8>>>(1);
        scope.spawn(move || {
            for t in tensors {
                // A closed channel means the writer stopped early: stop computing.
                match &t.data {
                    TensorData::Computed(_) => {
                        if tx.send(t.bytes().map(Cow::into_owned)).is_err() {
                            return;
                        }
                    }
                    TensorData::Rows(r) => {
                        for piece in row_pieces(t, r) {
                            let stop = piece.is_err();
                            if tx.send(piece).is_err() || stop {
                                return;
                            }
                        }
                    }
                    TensorData::View(_) => {}
                }
            }
        });
        for (i, t) in tensors.iter().enumerate() {
            let n = match t.data {
                TensorData::Computed(_) | TensorData::Rows(_) => {
                    // One message for computed bytes; pieces up to the tensor's size for rows.
                    let expected = t.nbytes();
                    let mut n = 0u64;
                    loop {
                        let bytes = rx.recv().map_err(|_| {
                            Error::Other(format!("tensor '{}': producer stopped", t.name))
                        })??;
                        w.write_all(&bytes).map_err(|e| {
                            Error::Other(format!("writing tensor '{}': {e}", t.name))
                        })?;
                        n += bytes.len() as u64;
                        if matches!(t.data, TensorData::Computed(_)) {
                            break;
                        }
                        crate::pool::give(bytes);
                        if n >= expected {
                            break;
                        }
                    }
                    n
                }
                TensorData::View(_) => write_view(t, w)?,
            };
            after_each(i, n, w)?;
        }
        Ok(())
    })
}

/// The bytes of a tensor made by bands of rows, as pieces of whole rows of about
/// [`STREAM_CHUNK`] bytes (one row when a row is larger), produced as they are taken; at least
/// one (empty for no rows). An error (the rows do not add up to the tensor's size, a failed
/// fill) ends the pieces.
fn row_pieces<'a>(t: &'a Tensor, r: &'a RowFill) -> impl Iterator<Item = Result<Vec<u8>>> + 'a {
    let size_error = ((r.rows * r.row_bytes) as u64 != t.nbytes()).then(|| {
        Error::Other(format!(
            "tensor '{}': {} rows of {} bytes, expected {} bytes",
            t.name,
            r.rows,
            r.row_bytes,
            t.nbytes()
        ))
    });
    let per_piece = (STREAM_CHUNK / r.row_bytes.max(1)).max(1);
    let rows = if size_error.is_some() || r.row_bytes == 0 {
        0
    } else {
        r.rows
    };
    let empty = (size_error.is_none() && rows == 0).then(|| Ok(Vec::new()));
    size_error
        .map(Err)
        .into_iter()
        .chain(empty)
        .chain((0..rows).step_by(per_piece).map(move |start| {
            let end = (start + per_piece).min(rows);
            let mut buf = crate::pool::take((end - start) * r.row_bytes);
            (r.fill)(start..end, &mut buf)?;
            Ok(buf)
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `torch.zeros(1).expand(100000, 100000)`: 4 bytes of storage, 40 GB dense. Writing it must
    /// stream bounded pieces (the old code allocated the dense 40 GB at once and aborted), and a
    /// dense copy of what was written compares equal piece by piece.
    #[test]
    fn expanded_views_stream_without_a_dense_buffer() {
        let buf = Buffer::owned("mem", 1.5f32.to_le_bytes().to_vec());
        let storage = Storage::new(buf, 0, 4, "data/0").unwrap();
        let t = Tensor {
            name: "w".into(),
            dtype: DType::F32,
            shape: vec![100_000, 100_000],
            data: TensorData::View(View {
                storage,
                offset: 0,
                strides: Some(vec![0, 0]),
            }),
        };
        struct Limited(Vec<u8>);
        impl Write for Limited {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                assert!(b.len() <= STREAM_CHUNK);
                if self.0.len() >= 3 * STREAM_CHUNK {
                    return Err(std::io::Error::other("sink full"));
                }
                self.0.extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut sink = Limited(Vec::new());
        let e = t.write_to(&mut sink).unwrap_err();
        assert!(e.to_string().contains("sink full"), "{e}");
        assert_eq!(sink.0.len(), 3 * STREAM_CHUNK);
        assert!(sink.0.chunks(4).all(|c| c == 1.5f32.to_le_bytes()));

        // A small expanded view written whole equals its dense form, also when compared.
        let small = Tensor {
            shape: vec![3, 1000, 700],
            data: TensorData::View(View {
                strides: Some(vec![0, 0, 0]),
                ..t.view().unwrap().clone()
            }),
            ..t.clone()
        };
        let mut out = Vec::new();
        assert_eq!(small.write_to(&mut out).unwrap(), 3 * 1000 * 700 * 4);
        assert!(out.chunks(4).all(|c| c == 1.5f32.to_le_bytes()));
        let dense = Tensor::contiguous(
            "w",
            DType::F32,
            vec![3, 1000, 700],
            Storage::new(Buffer::owned("d", out.clone()), 0, out.len(), "d").unwrap(),
        );
        assert_eq!(dense.first_difference(&small).unwrap(), None);
        assert_eq!(small.first_difference(&dense).unwrap(), None);
        out[5_000_001] ^= 1;
        let dense = Tensor::contiguous(
            "w",
            DType::F32,
            vec![3, 1000, 700],
            Storage::new(Buffer::owned("d", out.clone()), 0, out.len(), "d").unwrap(),
        );
        assert_eq!(dense.first_difference(&small).unwrap(), Some(5_000_001));
    }

    /// A tensor made by bands of rows is produced and written in pieces of at most
    /// STREAM_CHUNK bytes (never whole), in order, between the tensors around it; empty ones
    /// and a failing fill are handled.
    #[test]
    fn row_tensors_are_written_in_bounded_pieces() {
        use std::sync::atomic::AtomicUsize;
        let row_bytes = 4096;
        let rows = 3 * (STREAM_CHUNK / row_bytes) + 5;
        let biggest = Arc::new(AtomicUsize::new(0));
        let seen = biggest.clone();
        let banded = Tensor::from_rows(
            "banded",
            DType::U8,
            vec![rows as u64, row_bytes as u64],
            rows,
            row_bytes,
            move |range, dst| {
                seen.fetch_max(dst.len(), Ordering::Relaxed);
                for (i, r) in range.enumerate() {
                    dst[i * row_bytes..(i + 1) * row_bytes].fill((r % 251) as u8);
                }
                Ok(())
            },
        );
        let empty = Tensor::from_rows("empty", DType::U8, vec![0, 7], 0, 7, |_, _| Ok(()));
        let before = Tensor::computed("before", DType::U8, vec![3], || Ok(vec![1, 2, 3]));
        let after = Tensor::computed("after", DType::U8, vec![2], || Ok(vec![9, 8]));
        let mut out = Vec::new();
        let mut sizes = Vec::new();
        write_pipelined(
            &[&before, &empty, &banded, &after],
            &mut out,
            |_, _| unreachable!("no views"),
            |_, n, _| {
                sizes.push(n);
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(sizes, [3, 0, (rows * row_bytes) as u64, 2]);
        assert!(biggest.load(Ordering::Relaxed) <= STREAM_CHUNK);
        assert_eq!(&out[..3], &[1, 2, 3]);
        assert_eq!(&out[out.len() - 2..], &[9, 8]);
        let body = &out[3..out.len() - 2];
        assert_eq!(body.len(), rows * row_bytes);
        for (r, row) in body.chunks(row_bytes).enumerate() {
            assert!(row.iter().all(|&b| b == (r % 251) as u8), "row {r}");
        }

        let failing = Tensor::from_rows(
            "failing",
            DType::U8,
            vec![rows as u64, row_bytes as u64],
            rows,
            row_bytes,
            |range, _| {
                if range.start > 0 {
                    Err(Error::Other("band failed".into()))
                } else {
                    Ok(())
                }
            },
        );
        let e = write_pipelined(
            &[&failing, &after],
            &mut Vec::new(),
            |_, _| unreachable!(),
            |_, _, _| Ok(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("band failed"), "{e}");
        let short = Tensor::from_rows("short", DType::U8, vec![10], 3, 3, |_, _| Ok(()));
        let e = write_pipelined(
            &[&short],
            &mut Vec::new(),
            |_, _| unreachable!(),
            |_, _, _| Ok(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("expected 10 bytes"), "{e}");
    }

    #[test]
    fn gather_transposed() {
        // P = [[0,1,2],[3,4,5]] (2x3 f32); P.t() is 3x2 with strides (1,3)
        let data: Vec<u8> = (0..6u32).flat_map(|x| (x as f32).to_le_bytes()).collect();
        let buf = Buffer::owned("mem", data);
        let st = Storage::new(buf, 0, 24, "s").unwrap();
        let t = Tensor {
            name: "t".into(),
            dtype: DType::F32,
            shape: vec![3, 2],
            data: TensorData::View(View {
                storage: st,
                offset: 0,
                strides: Some(vec![1, 3]),
            }),
        };
        let b = t.bytes().unwrap();
        let v: Vec<f32> = b
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert_eq!(v, vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn out_of_bounds_view_is_an_error() {
        let buf = Buffer::owned("mem", vec![0; 16]);
        let st = Storage::new(buf, 0, 16, "s").unwrap();
        let t = Tensor {
            name: "t".into(),
            dtype: DType::F32,
            shape: vec![2, 2],
            data: TensorData::View(View {
                storage: st,
                offset: 1,
                strides: None,
            }),
        };
        assert!(t.bytes().is_err());
    }
}
