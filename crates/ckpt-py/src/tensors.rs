//! Tensors to and from Python without torch: `_load` lists every tensor of a checkpoint as a
//! place in a memory-mapped file (numpy views it there, zero-copy) or as owned bytes (byte-swapped,
//! dequantized or gathered data); `_save` writes numpy arrays as safetensors or a torch `.bin`,
//! atomically, reading the arrays' memory in place.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use ckpt::crates::core::{Buffer, DType};
use ckpt::{Error, Tensor};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyTuple};

use crate::detached;

/// An input file mapped read-only (or read into memory), kept alive by every numpy array that
/// views it: arrays made by `load_file` hold this object as (part of) their `base`.
#[pyclass(frozen, module = "ckpt._ckpt")]
pub struct MappedFile {
    buffer: Arc<Buffer>,
}

#[pymethods]
impl MappedFile {
    /// Address of the first byte.
    #[getter]
    fn address(&self) -> usize {
        self.buffer.bytes().as_ptr() as usize
    }

    /// Length in bytes.
    #[getter]
    fn size(&self) -> usize {
        self.buffer.len()
    }

    /// The file.
    #[getter]
    fn path(&self) -> PathBuf {
        self.buffer.path.clone()
    }

    fn __repr__(&self) -> String {
        format!(
            "MappedFile({:?}, {} bytes)",
            self.buffer.path.display().to_string(),
            self.buffer.len()
        )
    }
}

/// Where a tensor's dense bytes are.
enum Place {
    /// In a mapped buffer at a byte offset, with byte strides for a strided view.
    Mapped(Arc<Buffer>, usize, Option<Vec<u64>>),
    /// Produced here (dequantized, byte-swapped, gathered or inflated).
    Owned(Vec<u8>),
}

struct Loaded {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    nbytes: u64,
    place: Place,
}

fn place_of(t: &Tensor) -> ckpt::Result<Place> {
    if t.numel() == 0 {
        return Ok(Place::Owned(Vec::new()));
    }
    if let Some(v) = t.view() {
        t.validate()?;
        let swapped = v.storage.big_endian && t.dtype.swap_unit() > 1;
        if !swapped {
            if let Some((_, start, _)) = t.mapped_range() {
                return Ok(Place::Mapped(v.storage.buffer.clone(), start, None));
            }
            if let (Some(strides), Some(elem)) = (&v.strides, t.dtype.elem_size()) {
                let start = v.storage.start + (v.offset as usize) * elem;
                let bytes = strides.iter().map(|s| s * elem as u64).collect();
                return Ok(Place::Mapped(v.storage.buffer.clone(), start, Some(bytes)));
            }
        }
    }
    Ok(Place::Owned(t.bytes()?.into_owned()))
}

fn load(
    path: &std::path::Path,
    key: Option<String>,
    dequantize: bool,
) -> ckpt::Result<Vec<Loaded>> {
    let ck = ckpt::open(path, &ckpt::OpenOptions { key })?;
    ck.tensors
        .iter()
        .map(|t| {
            let deq;
            let t = if dequantize && matches!(t.dtype, DType::Ggml(_)) {
                deq = ckpt::crates::convert::cast::dequantize_tensor(t, DType::F32);
                &deq
            } else {
                t
            };
            Ok(Loaded {
                name: t.name.clone(),
                dtype: match t.dtype {
                    DType::Ggml(g) => g.name().to_string(),
                    d => d.safetensors_name().unwrap_or("?").to_string(),
                },
                shape: t.shape.clone(),
                nbytes: t.nbytes(),
                place: place_of(t)?,
            })
        })
        .collect()
}

/// Every tensor of a checkpoint (`ckpt.open` accepts it: safetensors, `.bin`/`.pt` through the
/// restricted pickle reader, GGUF, an index or a model folder) as tuples
/// `(name, dtype, shape, nbytes, data, offset, strides)`: `data` is a [`MappedFile`] (with the
/// byte offset and, for strided views, byte strides) or a `bytearray` of dense little-endian bytes.
#[pyfunction]
#[pyo3(signature = (path, *, key=None, dequantize=false))]
fn _load(
    py: Python<'_>,
    path: PathBuf,
    key: Option<String>,
    dequantize: bool,
) -> PyResult<Vec<Bound<'_, PyTuple>>> {
    let loaded = detached(py, move || load(&path, key, dequantize))?;
    let mut files: HashMap<*const Buffer, Bound<'_, MappedFile>> = HashMap::new();
    let mut out = Vec::with_capacity(loaded.len());
    for l in loaded {
        let item = match l.place {
            Place::Mapped(buffer, offset, strides) => {
                let key = Arc::as_ptr(&buffer);
                let file = match files.get(&key) {
                    Some(f) => f.clone(),
                    None => {
                        let f = Bound::new(py, MappedFile { buffer })?;
                        files.insert(key, f.clone());
                        f
                    }
                };
                (
                    l.name,
                    l.dtype,
                    l.shape,
                    l.nbytes,
                    file.into_any(),
                    offset,
                    strides,
                )
                    .into_pyobject(py)?
            }
            Place::Owned(bytes) => (
                l.name,
                l.dtype,
                l.shape,
                l.nbytes,
                PyByteArray::new(py, &bytes).into_any(),
                0usize,
                None::<Vec<u64>>,
            )
                .into_pyobject(py)?,
        };
        out.push(item);
    }
    Ok(out)
}

/// One array to write: name, safetensors dtype name, shape, the array (kept alive while
/// writing), the address of its first byte and its byte length (C-contiguous, little-endian).
type SaveEntry = (String, String, Vec<u64>, Py<PyAny>, usize, usize);

/// Reads `len` bytes at `address` into row bands of a tensor being written.
fn array_tensor(name: String, dtype: DType, shape: Vec<u64>, address: usize, len: usize) -> Tensor {
    let rows = match shape.first() {
        Some(&n) if n > 0 && !shape.is_empty() => n as usize,
        _ => 1,
    };
    let row_bytes = len / rows;
    Tensor::from_rows(name, dtype, shape, rows, row_bytes, move |range, dst| {
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `address..address + len` is the memory of a C-contiguous numpy array that
        // `_save` keeps referenced until every tensor is written (the caller checked the length
        // against the dtype and shape); it is only read.
        let src = unsafe { std::slice::from_raw_parts(address as *const u8, len) };
        dst.copy_from_slice(&src[range.start * row_bytes..range.end * row_bytes]);
        Ok(())
    })
}

/// Writes arrays as safetensors (`format="safetensors"`, with `metadata`) or as a PyTorch zip
/// `.bin` (`format="bin"`), atomically.
#[pyfunction]
#[pyo3(signature = (entries, path, metadata=None, format="safetensors".to_string(), overwrite=true))]
fn _save(
    py: Python<'_>,
    entries: Vec<SaveEntry>,
    path: PathBuf,
    metadata: Option<BTreeMap<String, String>>,
    format: String,
    overwrite: bool,
) -> PyResult<()> {
    let mut keep = Vec::with_capacity(entries.len());
    let mut specs = Vec::with_capacity(entries.len());
    for (name, dtype, shape, array, address, len) in entries {
        keep.push(array);
        specs.push((name, dtype, shape, address, len));
    }
    let result = detached(py, move || {
        let mut tensors = Vec::with_capacity(specs.len());
        for (name, dtype, shape, address, len) in specs {
            let d = DType::from_safetensors_name(&dtype).ok_or_else(|| {
                Error::Unsupported(format!("tensor '{name}': unknown dtype {dtype}"))
            })?;
            let want = d
                .nbytes(&shape)
                .map_err(|m| Error::Usage(format!("tensor '{name}': {m}")))?;
            if want != len as u64 {
                return Err(Error::Usage(format!(
                    "tensor '{name}': {len} bytes for a {dtype} tensor of shape {shape:?} ({want} expected)"
                )));
            }
            tensors.push(array_tensor(name, d, shape, address, len));
        }
        let metadata = metadata.unwrap_or_default();
        match format.as_str() {
            "safetensors" => {
                ckpt::crates::safetensors::write(&path, &tensors, &metadata, overwrite, &mut |_| {})
            }
            "bin" => {
                if !metadata.is_empty() {
                    return Err(Error::Usage(
                        "metadata is written only to safetensors: a torch .bin has no place for it"
                            .into(),
                    ));
                }
                ckpt::crates::torch::write(&path, &tensors, overwrite)
            }
            other => Err(Error::Usage(format!(
                "unknown format '{other}' (safetensors or bin)"
            ))),
        }
    });
    drop(keep);
    result
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<MappedFile>()?;
    m.add_function(wrap_pyfunction!(_load, m)?)?;
    m.add_function(wrap_pyfunction!(_save, m)?)?;
    Ok(())
}
