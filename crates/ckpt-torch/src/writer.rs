//! Writes a zip checkpoint that `torch.load(weights_only=True)` loads (also with `mmap=True`).
//!
//! Layout (like `torch.save`, minus records torch treats as optional): every record STORED under
//! one folder named after the output's stem; `data.pkl` (protocol 2, only opcodes and globals
//! the safe loader accepts, an OrderedDict root), `byteorder` = `little`, `data/0..K-1` (one
//! dense storage per distinct tensor, each 64-byte aligned through torch's "FB" extra-field
//! padding), `version` = `3\n`. No `.format_version`: with it torch may compute record offsets
//! assuming miniz's exact layout instead of reading them. Tensor data is streamed one tensor at a
//! time into any `Write` (no seeking): as in torch's own files, a tensor record's CRC and size
//! follow its data in a data descriptor and are repeated in the central directory.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use ckpt_core::atomic::AtomicFile;
use ckpt_core::tensor::contiguous_strides;
use ckpt_core::{DType, Error, Result, Tensor, TensorData};

use crate::globals::{torch_dtype_for, TorchDType};

/// Every record's data starts at a multiple of this (torch's default storage alignment).
const ALIGNMENT: u64 = 64;
/// Extra-field id of torch's alignment padding ("FB").
const PADDING_EXTRA_ID: u16 = 0x4246;
const ZIP64_EXTRA_ID: u16 = 0x0001;
const MAX32: u64 = 0xffff_ffff;
/// General-purpose flag bit 3: CRC and sizes follow the data.
const DATA_DESCRIPTOR_FLAG: u16 = 1 << 3;
/// DOS date 1980-01-01 (the earliest representable).
const DOS_DATE: u16 = (1 << 5) | 1;
/// CPython pickles dict items in batches of this many.
const SETITEMS_BATCH: usize = 1000;

/// Writes `tensors` as a torch zip checkpoint at `out`, atomically (temp file + rename).
pub fn write(out: &Path, tensors: &[Tensor], overwrite: bool) -> Result<()> {
    let mut file = AtomicFile::create(out, overwrite)?;
    let folder = archive_folder(out);
    write_to(file.writer(), &folder, tensors, &mut |_| {}).map_err(|e| match e {
        Error::Other(m) => Error::Other(format!("{}: {m}", out.display())),
        Error::Unsupported(m) => Error::Unsupported(format!("{}: {m}", out.display())),
        other => other,
    })?;
    file.commit()
}

/// The archive's top-level folder, as torch names it: the file name up to its last `.`, or
/// `archive` when that is not plain ASCII.
pub fn archive_folder(out: &Path) -> String {
    match out.file_stem().and_then(|s| s.to_str()) {
        Some(stem)
            if !stem.is_empty()
                && stem.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
                && !stem.contains('/') =>
        {
            stem.to_string()
        }
        _ => "archive".to_string(),
    }
}

/// How one distinct tensor is stored.
struct StoragePlan<'t> {
    tensor: &'t Tensor,
    torch: &'static TorchDType,
    /// Shape and strides as torch sees them (float4_e2m1fn_x2 halves the last dimension).
    shape: Vec<u64>,
    /// Persistent-id size: elements for typed storages, bytes for UntypedStorage.
    numel: u64,
    nbytes: u64,
    /// How many tensors of the output reference it (tied weights reference it more than once).
    uses: usize,
}

/// (storage id, element offset, shape, strides, dtype): what makes two tensors the same view.
type ViewKey = (u64, u64, Vec<u64>, Option<Vec<u64>>, DType);

/// Groups tensors that are the same view of the same storage, so tied weights stay tied.
fn plan(tensors: &[Tensor]) -> Result<(Vec<StoragePlan<'_>>, Vec<usize>)> {
    let mut names = std::collections::HashSet::new();
    let mut plans: Vec<StoragePlan> = Vec::new();
    let mut of_tensor = Vec::with_capacity(tensors.len());
    let mut by_view: HashMap<ViewKey, usize> = HashMap::new();
    for t in tensors {
        if !names.insert(t.name.as_str()) {
            return Err(Error::Other(format!(
                "tensor name '{}' appears twice in the output",
                t.name
            )));
        }
        let view_key = match &t.data {
            TensorData::View(v) => Some((
                v.storage.id,
                v.offset,
                t.shape.clone(),
                v.strides.clone(),
                t.dtype,
            )),
            TensorData::Computed(_) | TensorData::Rows(_) => None,
        };
        if let Some(&i) = view_key.as_ref().and_then(|k| by_view.get(k)) {
            plans[i].uses += 1;
            of_tensor.push(i);
            continue;
        }
        let torch = torch_dtype_for(t.dtype).ok_or_else(|| {
            Error::Unsupported(format!(
                "tensor '{}' has dtype {}, which torch checkpoints cannot hold",
                t.name, t.dtype
            ))
        })?;
        let nbytes = t
            .dtype
            .nbytes(&t.shape)
            .map_err(|m| Error::Other(format!("tensor '{}': {m}", t.name)))?;
        let mut shape = t.shape.clone();
        if t.dtype == DType::F4 {
            match shape.last_mut() {
                Some(last) if *last % 2 == 0 => *last /= 2,
                _ => {
                    return Err(Error::Unsupported(format!(
                        "tensor '{}' (F4, shape {:?}) cannot be stored as float4_e2m1fn_x2: its last dimension must be even",
                        t.name, t.shape
                    )))
                }
            }
        }
        let numel = if torch.storage_class.is_some() {
            nbytes / torch.elem_size
        } else {
            nbytes
        };
        if let Some(k) = view_key {
            by_view.insert(k, plans.len());
        }
        of_tensor.push(plans.len());
        plans.push(StoragePlan {
            tensor: t,
            torch,
            shape,
            numel,
            nbytes,
            uses: 1,
        });
    }
    Ok((plans, of_tensor))
}

/// Refuses, before anything is written, tensors whose checkpoint ckpt's own reader would refuse:
/// the same limits (containers, memo entries and elements per container of the pickle machine,
/// at most 2^21 tensors and 256 MiB of names in all) applied to the pickle [`write_to`] would
/// produce.
pub fn check_limits(tensors: &[Tensor]) -> Result<()> {
    use crate::flatten::{MAX_NAME_BYTES, MAX_TENSORS};
    use crate::pickle::{MAX_CONTAINER_LEN, MAX_MEMO, MAX_OBJECTS};
    let (plans, _) = plan(tensors)?;
    // The root OrderedDict and its empty argument tuple; per stored tensor its persistent-id
    // tuple, size and stride tuples, the empty OrderedDict of hooks with its argument tuple,
    // and the rebuild's argument tuple.
    let objects = 2 + 6 * plans.len() as u64;
    let memo = plans.iter().filter(|p| p.uses > 1).count() as u64;
    let names: u64 = tensors.iter().map(|t| t.name.len() as u64).sum();
    let n = tensors.len() as u64;
    let over = if n > MAX_TENSORS {
        Some(format!("{n} tensors (at most {MAX_TENSORS})"))
    } else if n > MAX_CONTAINER_LEN as u64 {
        Some(format!(
            "{n} entries in one dict (at most {MAX_CONTAINER_LEN})"
        ))
    } else if objects > MAX_OBJECTS as u64 {
        Some(format!(
            "{objects} pickle containers for {} stored tensors (at most {MAX_OBJECTS})",
            plans.len()
        ))
    } else if memo > MAX_MEMO as u64 {
        Some(format!("{memo} memo entries (at most {MAX_MEMO})"))
    } else if names > MAX_NAME_BYTES {
        Some(format!("{names} bytes of names (at most {MAX_NAME_BYTES})"))
    } else {
        None
    };
    match over {
        None => Ok(()),
        Some(what) => Err(Error::Unsupported(format!(
            "a PyTorch checkpoint of these tensors would need {what}, over the limit ckpt reads back; \
             split it with --max-shard-size or write safetensors"
        ))),
    }
}

/// Protocol-2 pickle assembly, restricted to what torch's weights-only unpickler accepts.
#[derive(Default)]
struct PickleBuilder {
    out: Vec<u8>,
}

impl PickleBuilder {
    fn op(&mut self, op: u8) {
        self.out.push(op);
    }
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend_from_slice(module.as_bytes());
        self.out.push(b'\n');
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(b'\n');
    }
    fn string(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.out.extend_from_slice(s.as_bytes());
    }
    fn int(&mut self, v: u64) {
        if v < 0x100 {
            self.out.extend_from_slice(&[b'K', v as u8]);
        } else if v < 0x1_0000 {
            self.out.push(b'M');
            self.out.extend_from_slice(&(v as u16).to_le_bytes());
        } else if v < 0x8000_0000 {
            self.out.push(b'J');
            self.out.extend_from_slice(&(v as u32).to_le_bytes());
        } else {
            // LONG1: minimal little-endian two's complement, so a set top bit needs a zero byte.
            let mut bytes = v.to_le_bytes().to_vec();
            while bytes.len() > 1
                && bytes[bytes.len() - 1] == 0
                && bytes[bytes.len() - 2] & 0x80 == 0
            {
                bytes.pop();
            }
            if bytes[bytes.len() - 1] & 0x80 != 0 {
                bytes.push(0);
            }
            self.out.extend_from_slice(&[0x8a, bytes.len() as u8]);
            self.out.extend_from_slice(&bytes);
        }
    }
    fn int_tuple(&mut self, items: &[u64]) {
        match items.len() {
            0 => self.op(b')'),
            n @ 1..=3 => {
                items.iter().for_each(|&v| self.int(v));
                self.op(0x84 + n as u8); // TUPLE1..TUPLE3
            }
            _ => {
                self.op(b'(');
                items.iter().for_each(|&v| self.int(v));
                self.op(b't');
            }
        }
    }
    fn put(&mut self, index: usize) {
        match u8::try_from(index) {
            Ok(i) => self.out.extend_from_slice(&[b'q', i]),
            Err(_) => {
                self.out.push(b'r');
                self.out.extend_from_slice(&(index as u32).to_le_bytes());
            }
        }
    }
    fn get(&mut self, index: usize) {
        match u8::try_from(index) {
            Ok(i) => self.out.extend_from_slice(&[b'h', i]),
            Err(_) => {
                self.out.push(b'j');
                self.out.extend_from_slice(&(index as u32).to_le_bytes());
            }
        }
    }
    fn empty_ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')');
        self.op(b'R');
    }

    /// `_rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, or v3 with an
    /// UntypedStorage and a trailing dtype for dtypes without a typed storage class.
    fn tensor(&mut self, key: usize, p: &StoragePlan) {
        let typed = p.torch.storage_class;
        self.global(
            "torch._utils",
            if typed.is_some() {
                "_rebuild_tensor_v2"
            } else {
                "_rebuild_tensor_v3"
            },
        );
        self.op(b'(');
        self.op(b'(');
        self.string("storage");
        match typed {
            Some(class) => self.global("torch", class),
            None => self.global("torch.storage", "UntypedStorage"),
        }
        self.string(&key.to_string());
        self.string("cpu");
        self.int(p.numel);
        self.op(b't');
        self.op(b'Q');
        self.int(0);
        self.int_tuple(&p.shape);
        self.int_tuple(&contiguous_strides(&p.shape));
        self.op(0x89); // NEWFALSE: requires_grad
        self.empty_ordered_dict();
        if typed.is_none() {
            self.global("torch", p.torch.name);
        }
        self.op(b't');
        self.op(b'R');
    }
}

fn build_pickle(tensors: &[Tensor], plans: &[StoragePlan], of_tensor: &[usize]) -> Vec<u8> {
    let mut p = PickleBuilder::default();
    p.out.extend_from_slice(&[0x80, 2]);
    p.empty_ordered_dict();
    let mut emitted = vec![false; plans.len()];
    for (batch_start, batch) in tensors
        .chunks(SETITEMS_BATCH)
        .enumerate()
        .map(|(i, b)| (i * SETITEMS_BATCH, b))
    {
        p.op(b'(');
        for (j, t) in batch.iter().enumerate() {
            let key = of_tensor[batch_start + j];
            p.string(&t.name);
            if emitted[key] {
                p.get(key);
            } else {
                p.tensor(key, &plans[key]);
                if plans[key].uses > 1 {
                    p.put(key);
                }
                emitted[key] = true;
            }
        }
        p.op(b'u');
    }
    p.op(b'.');
    p.out
}

/// Counts and checksums what passes through.
struct Checksummed<'w> {
    inner: &'w mut dyn Write,
    crc: crc32fast::Hasher,
    written: u64,
}

impl Write for Checksummed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A record as the central directory describes it.
struct CentralRecord {
    name: String,
    crc: u32,
    size: u64,
    header_offset: u64,
    /// Written with a data descriptor (general-purpose flag bit 3).
    descriptor: bool,
}

struct ZipWriter<'w> {
    w: &'w mut dyn Write,
    /// Bytes written so far: the offset of the next record from the start of the archive.
    pos: u64,
    records: Vec<CentralRecord>,
}

fn io_err(e: std::io::Error) -> Error {
    Error::Other(format!("writing the checkpoint: {e}"))
}

impl ZipWriter<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.w.write_all(bytes).map_err(io_err)?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Writes a local header whose data will start 64-byte aligned; returns the header offset.
    /// `known` carries the CRC and size of data in hand; None announces a data descriptor.
    fn local_header(&mut self, name: &str, known: Option<(u32, u64)>, size: u64) -> Result<u64> {
        let offset = self.pos;
        let zip64 = size >= MAX32;
        let (flags, crc, size) = match known {
            Some((crc, size)) => (0u16, crc, size),
            None => (DATA_DESCRIPTOR_FLAG, 0, 0),
        };
        let zip64_len = if zip64 { 20 } else { 0 };
        let unpadded = offset + 30 + name.len() as u64 + zip64_len + 4;
        let padding = (ALIGNMENT - unpadded % ALIGNMENT) % ALIGNMENT;
        let mut h = Vec::with_capacity(30 + name.len() + zip64_len as usize + 4 + padding as usize);
        h.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        h.extend_from_slice(&(if zip64 { 45u16 } else { 20 }).to_le_bytes());
        h.extend_from_slice(&flags.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // STORED
        h.extend_from_slice(&0u16.to_le_bytes()); // time
        h.extend_from_slice(&DOS_DATE.to_le_bytes());
        h.extend_from_slice(&crc.to_le_bytes());
        let size32 = if zip64 { MAX32 as u32 } else { size as u32 };
        h.extend_from_slice(&size32.to_le_bytes());
        h.extend_from_slice(&size32.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&((zip64_len + 4 + padding) as u16).to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        if zip64 {
            h.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
            h.extend_from_slice(&16u16.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
            h.extend_from_slice(&size.to_le_bytes());
        }
        h.extend_from_slice(&PADDING_EXTRA_ID.to_le_bytes());
        h.extend_from_slice(&(padding as u16).to_le_bytes());
        h.resize(h.len() + padding as usize, b'Z');
        self.put(&h)?;
        Ok(offset)
    }

    fn small_record(&mut self, name: String, data: &[u8]) -> Result<()> {
        let (crc, size) = (crc32fast::hash(data), data.len() as u64);
        let header_offset = self.local_header(&name, Some((crc, size)), size)?;
        self.put(data)?;
        self.records.push(CentralRecord {
            name,
            crc,
            size,
            header_offset,
            descriptor: false,
        });
        Ok(())
    }

    /// Streams a tensor's dense bytes as a record, checksummed on the way; its CRC and size
    /// follow in a data descriptor (8-byte sizes for zip64 records).
    fn tensor_record(&mut self, name: String, t: &Tensor, nbytes: u64) -> Result<()> {
        let header_offset = self.local_header(&name, None, nbytes)?;
        let mut sink = Checksummed {
            inner: &mut *self.w,
            crc: crc32fast::Hasher::new(),
            written: 0,
        };
        t.write_to(&mut sink)?;
        let (written, crc) = (sink.written, sink.crc.finalize());
        if written != nbytes {
            return Err(Error::Other(format!(
                "tensor '{}' produced {written} bytes, expected {nbytes}",
                t.name
            )));
        }
        self.pos += written;
        let mut descriptor = Vec::with_capacity(24);
        descriptor.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
        descriptor.extend_from_slice(&crc.to_le_bytes());
        if nbytes >= MAX32 {
            descriptor.extend_from_slice(&nbytes.to_le_bytes());
            descriptor.extend_from_slice(&nbytes.to_le_bytes());
        } else {
            descriptor.extend_from_slice(&(nbytes as u32).to_le_bytes());
            descriptor.extend_from_slice(&(nbytes as u32).to_le_bytes());
        }
        self.put(&descriptor)?;
        self.records.push(CentralRecord {
            name,
            crc,
            size: nbytes,
            header_offset,
            descriptor: true,
        });
        Ok(())
    }

    fn finish(mut self) -> Result<u64> {
        let cd_offset = self.pos;
        let records = std::mem::take(&mut self.records);
        for r in &records {
            let big_size = r.size >= MAX32;
            let big_offset = r.header_offset >= MAX32;
            let mut extra = Vec::new();
            if big_size {
                extra.extend_from_slice(&r.size.to_le_bytes());
                extra.extend_from_slice(&r.size.to_le_bytes());
            }
            if big_offset {
                extra.extend_from_slice(&r.header_offset.to_le_bytes());
            }
            let zip64 = !extra.is_empty();
            let mut h = Vec::with_capacity(46 + r.name.len() + 4 + extra.len());
            h.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
            let version: u16 = if zip64 { 45 } else { 20 };
            h.extend_from_slice(&version.to_le_bytes()); // made by
            h.extend_from_slice(&version.to_le_bytes()); // needed
            h.extend_from_slice(
                &(if r.descriptor {
                    DATA_DESCRIPTOR_FLAG
                } else {
                    0
                })
                .to_le_bytes(),
            );
            h.extend_from_slice(&0u16.to_le_bytes()); // STORED
            h.extend_from_slice(&0u16.to_le_bytes()); // time
            h.extend_from_slice(&DOS_DATE.to_le_bytes());
            h.extend_from_slice(&r.crc.to_le_bytes());
            let size32 = if big_size {
                MAX32 as u32
            } else {
                r.size as u32
            };
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&size32.to_le_bytes());
            h.extend_from_slice(&(r.name.len() as u16).to_le_bytes());
            h.extend_from_slice(&(if zip64 { extra.len() as u16 + 4 } else { 0 }).to_le_bytes());
            h.extend_from_slice(&0u16.to_le_bytes()); // comment
            h.extend_from_slice(&0u16.to_le_bytes()); // disk
            h.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            h.extend_from_slice(&0u32.to_le_bytes()); // external attributes
            let offset32 = if big_offset {
                MAX32 as u32
            } else {
                r.header_offset as u32
            };
            h.extend_from_slice(&offset32.to_le_bytes());
            h.extend_from_slice(r.name.as_bytes());
            if zip64 {
                h.extend_from_slice(&ZIP64_EXTRA_ID.to_le_bytes());
                h.extend_from_slice(&(extra.len() as u16).to_le_bytes());
                h.extend_from_slice(&extra);
            }
            self.put(&h)?;
        }
        let cd_size = self.pos - cd_offset;
        let count = records.len() as u64;
        let zip64 = count >= 0xffff || cd_size >= MAX32 || cd_offset >= MAX32;
        let mut tail = Vec::new();
        if zip64 {
            let z64_offset = self.pos;
            tail.extend_from_slice(&0x0606_4b50u32.to_le_bytes());
            tail.extend_from_slice(&44u64.to_le_bytes()); // size of the rest of this record
            tail.extend_from_slice(&45u16.to_le_bytes());
            tail.extend_from_slice(&45u16.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&count.to_le_bytes());
            tail.extend_from_slice(&count.to_le_bytes());
            tail.extend_from_slice(&cd_size.to_le_bytes());
            tail.extend_from_slice(&cd_offset.to_le_bytes());
            tail.extend_from_slice(&0x0706_4b50u32.to_le_bytes());
            tail.extend_from_slice(&0u32.to_le_bytes());
            tail.extend_from_slice(&z64_offset.to_le_bytes());
            tail.extend_from_slice(&1u32.to_le_bytes());
        }
        let count16 = count.min(0xffff) as u16;
        tail.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        tail.extend_from_slice(&count16.to_le_bytes());
        tail.extend_from_slice(&count16.to_le_bytes());
        tail.extend_from_slice(&(cd_size.min(MAX32) as u32).to_le_bytes());
        tail.extend_from_slice(&(cd_offset.min(MAX32) as u32).to_le_bytes());
        tail.extend_from_slice(&0u16.to_le_bytes());
        self.put(&tail)?;
        self.w.flush().map_err(io_err)?;
        Ok(self.pos)
    }
}

/// Streams `tensors` as a torch zip checkpoint whose records live under `folder/` (torch names it
/// after the file's stem, see [`archive_folder`]) into `w`, which must be at the start of the
/// file. `on_tensor` is called with each storage's byte count once it is written. Tensors that
/// are the same view of the same storage are stored once and pickled as one object, as torch does
/// for tied weights. Errors name the tensor, not the file (the caller knows the path).
pub fn write_to(
    w: &mut dyn Write,
    folder: &str,
    tensors: &[Tensor],
    on_tensor: &mut dyn FnMut(u64),
) -> Result<()> {
    check_limits(tensors)?;
    let (plans, of_tensor) = plan(tensors)?;
    for t in tensors {
        t.validate()?;
    }
    let pickle = build_pickle(tensors, &plans, &of_tensor);
    let mut zip = ZipWriter {
        w,
        pos: 0,
        records: Vec::new(),
    };
    zip.small_record(format!("{folder}/data.pkl"), &pickle)?;
    zip.small_record(format!("{folder}/byteorder"), b"little")?;
    for (key, p) in plans.iter().enumerate() {
        zip.tensor_record(format!("{folder}/data/{key}"), p.tensor, p.nbytes)?;
        on_tensor(p.nbytes);
    }
    zip.small_record(format!("{folder}/version"), b"3\n")?;
    zip.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zip::ZipArchive;
    use ckpt_core::Buffer;

    /// A checkpoint the reader would refuse is refused before anything is written (issue #14
    /// item 10), at the limits the reader has now: more tensors than flattening takes.
    #[test]
    fn check_limits_refuses_what_the_reader_would() {
        use crate::flatten::MAX_TENSORS;
        let storage =
            ckpt_core::Storage::new(Buffer::owned("m", vec![0u8; 4]), 0, 4, "m".to_string())
                .unwrap();
        let make = |n: u64| -> Vec<Tensor> {
            (0..n)
                .map(|i| {
                    let mut t = Tensor::contiguous("x", DType::U8, vec![0], storage.clone());
                    t.name = format!("t{i}");
                    t
                })
                .collect()
        };
        check_limits(&make(700_000)).unwrap();
        let e = check_limits(&make(MAX_TENSORS + 1)).unwrap_err();
        assert!(
            e.to_string().contains(&format!(
                "{} tensors (at most {MAX_TENSORS})",
                MAX_TENSORS + 1
            )),
            "{e}"
        );
    }

    /// Records past 4 GiB get zip64 offsets that our reader (and zip tools) follow. The file is
    /// sparse: the first 5 GiB are a hole, so nothing that large is written.
    #[test]
    fn zip64_offsets() {
        let dir = std::env::temp_dir().join(format!("ckpt-torch-zip64-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("sparse.bin");
        let start = 5u64 << 30;
        {
            use std::io::{Seek, SeekFrom};
            let mut f = std::fs::File::create(&path).unwrap();
            // Every byte of an archive belongs to a record, so the hole is the data of a first
            // record (a 64-byte header, then zeros).
            let hole = start - 64;
            let mut crc = crc32fast::Hasher::new();
            let zeros = vec![0u8; 1 << 20];
            let mut left = hole;
            while left > 0 {
                let n = left.min(zeros.len() as u64);
                crc.update(&zeros[..n as usize]);
                left -= n;
            }
            let crc = crc.finalize();
            let mut head = ZipWriter {
                w: &mut f,
                pos: 0,
                records: Vec::new(),
            };
            assert_eq!(
                head.local_header("big/hole", Some((crc, hole)), hole)
                    .unwrap(),
                0
            );
            assert_eq!(head.pos, 64);
            f.seek(SeekFrom::Start(start)).unwrap();
            let mut zip = ZipWriter {
                w: &mut f,
                pos: start,
                records: vec![CentralRecord {
                    name: "big/hole".into(),
                    crc,
                    size: hole,
                    header_offset: 0,
                    descriptor: false,
                }],
            };
            zip.small_record("big/data.pkl".into(), b"pickle").unwrap();
            let t = Tensor::computed("t", DType::U8, vec![5], || Ok(b"bytes".to_vec()));
            zip.tensor_record("big/data/0".into(), &t, 5).unwrap();
            zip.finish().unwrap();
        }
        let buffer = Buffer::map(&path).unwrap();
        let zip = ZipArchive::parse(&path, buffer.bytes()).unwrap();
        assert_eq!(zip.entries().len(), 3);
        for (e, data) in zip.entries()[1..].iter().zip([&b"pickle"[..], b"bytes"]) {
            assert!(e.local_header_offset >= start);
            let r = zip.data_range(e).unwrap();
            assert_eq!(r.start % ALIGNMENT as usize, 0);
            assert_eq!(&buffer.bytes()[r], data);
            assert_eq!(e.crc32, crc32fast::hash(data));
        }
        drop(buffer);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn long_ints_are_minimal_twos_complement() {
        let enc = |v: u64| {
            let mut p = PickleBuilder::default();
            p.int(v);
            p.out
        };
        assert_eq!(enc(255), vec![b'K', 255]);
        assert_eq!(enc(256), vec![b'M', 0, 1]);
        assert_eq!(enc(0x7fff_ffff), vec![b'J', 0xff, 0xff, 0xff, 0x7f]);
        assert_eq!(enc(0x8000_0000), vec![0x8a, 5, 0, 0, 0, 0x80, 0]);
        assert_eq!(enc(1 << 40), vec![0x8a, 6, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            enc(u64::MAX),
            vec![0x8a, 9, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]
        );
    }
}
