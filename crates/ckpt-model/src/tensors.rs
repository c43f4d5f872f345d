//! Tensor data: which ggml type each tensor gets (the converter's rules), and the lazy
//! conversion that widens the source to f32, applies the architecture's transforms and encodes
//! the target type in parallel chunks, one tensor at a time when the writer asks for it.

use ckpt_core::{DType, Error, GgmlType, Result, Tensor};
use ckpt_quant::float::f32_to_bf16_bits;
use rayon::prelude::*;

use crate::arch::Transform;

/// Elements per parallel work item when converting.
const CHUNK: usize = 1 << 16;

/// One output tensor before its data is produced.
pub struct PlannedTensor {
    /// The GGUF tensor name.
    pub name: String,
    /// The checkpoint tensor its values come from.
    pub source: Tensor,
    /// Output shape (row-major), after the transforms.
    pub shape: Vec<u64>,
    /// Applied in order to the source's f32 values.
    pub transforms: Vec<Transform>,
    /// The type the data is encoded in.
    pub ggml_type: GgmlType,
    /// For a stacked mixture-of-experts tensor (`ffn_*_exps`): the per-expert sources in
    /// expert order (`source` is the first of them), each converted with `transforms`; `shape`
    /// is `[experts.len(), ..expert output shape]`. Empty for an ordinary tensor.
    pub experts: Vec<Tensor>,
}

/// The converter's per-tensor type rule for a model-wide target type. Returns the type and, for
/// a fallback, the reason.
pub(crate) fn choose_type(
    name: &str,
    shape: &[u64],
    target: GgmlType,
) -> (GgmlType, Option<String>) {
    let always_f32 = shape.len() <= 1
        || name.ends_with("_norm.weight")
        || is_kept_f32(name)
        || !(name.ends_with(".weight") || name.ends_with(".lora_a") || name.ends_with(".lora_b"));
    if always_f32 {
        return (GgmlType::F32, None);
    }
    let row = shape.last().copied().unwrap_or(1);
    if target.block_size() > 1 && row % target.block_size() as u64 != 0 {
        return (
            GgmlType::F16,
            Some(format!(
                "{name}: row length {row} is not a multiple of the {} block size {}, stored as F16 (like the converter)",
                target.name(),
                target.block_size()
            )),
        );
    }
    (target, None)
}

/// Tensors llama.cpp wants in F32 whatever the output type (router, position and token-type
/// embeddings, convolution kernels).
fn is_kept_f32(name: &str) -> bool {
    const EXACT: [&str; 2] = ["position_embd.weight", "token_types.weight"];
    const LAYER_SUFFIX: [&str; 4] = [
        "ffn_gate_inp.weight",
        "ffn_gate_inp_shexp.weight",
        "ssm_conv1d.weight",
        "shortconv.conv.weight",
    ];
    EXACT.contains(&name)
        || (name.starts_with("blk.")
            && LAYER_SUFFIX
                .iter()
                .any(|s| name.split('.').skip(2).collect::<Vec<_>>().join(".") == *s))
}

fn source_err(t: &Tensor, msg: String) -> Error {
    match t.view() {
        Some(v) => Error::invalid(
            &v.storage.buffer.path,
            format!("tensor '{}': {msg}", t.name),
        ),
        None => Error::Other(format!("tensor '{}': {msg}", t.name)),
    }
}

/// Widens the source to f32 exactly (bf16/f16 are exact in f32; f64 rounds like torch's `.float()`).
pub(crate) fn source_f32(t: &Tensor) -> Result<Vec<f32>> {
    let bytes = t.bytes()?;
    let unit = source_elem_size(t)?;
    let mut out = vec![0f32; bytes.len() / unit];
    out.par_chunks_mut(CHUNK)
        .zip(bytes.par_chunks(unit * CHUNK))
        .for_each(|(d, s)| decode_into(t.dtype, s, d));
    if out.len() as u64 != t.numel() {
        return Err(source_err(
            t,
            format!("has {} elements of data for shape {:?}", out.len(), t.shape),
        ));
    }
    Ok(out)
}

/// `LlamaModel.permute` on the outermost dimension.
pub(crate) fn permute_rows(
    data: &[f32],
    shape: &[u64],
    heads: u64,
) -> std::result::Result<Vec<f32>, String> {
    let rows = shape.first().copied().unwrap_or(1);
    let row_len = if shape.is_empty() {
        1
    } else {
        shape[1..].iter().product::<u64>()
    } as usize;
    if heads == 0 || rows % (heads * 2) != 0 {
        return Err(format!(
            "{rows} rows cannot be split into {heads} heads of two rotary halves"
        ));
    }
    let head_dim = (rows / heads) as usize;
    let half = head_dim / 2;
    let mut out = vec![0f32; data.len()];
    out.par_chunks_mut(row_len.max(1))
        .enumerate()
        .for_each(|(new_row, dst)| {
            let (h, within) = (new_row / head_dim, new_row % head_dim);
            let (i, j) = (within / 2, within % 2);
            let old_row = h * head_dim + j * half + i;
            dst.copy_from_slice(&data[old_row * row_len..(old_row + 1) * row_len]);
        });
    Ok(out)
}

/// `x + 1` in the checkpoint's precision (f16 additions round to f16; a NaN comes out quiet with
/// its payload, as torch's f16 addition leaves it).
fn add_one_in_place(data: &mut [f32], in_f16: bool) {
    data.par_iter_mut()
        .for_each(|x| *x = plus_one_value(*x, in_f16));
}

fn plus_one_value(x: f32, in_f16: bool) -> f32 {
    let y = x + 1.0;
    if in_f16 {
        f16_bits_to_f32_numpy(f32_to_f16_bits_numpy(y))
    } else {
        y
    }
}

/// f32 -> f16 bits as numpy's `astype(np.float16)`, the converter's last step: IEEE
/// round-to-nearest-even for numbers; a NaN keeps its sign and the top ten bits of its payload
/// (1 if those are all zero), where ggml would write a canonical `0x7E00`.
fn f32_to_f16_bits_numpy(x: f32) -> u16 {
    ckpt_core::codec::f32_to_f16_bits(x, ckpt_core::codec::Nan::Numpy)
}

/// f16 bits -> f32 as numpy widens them: a NaN payload is kept as it is (F16C and `half` would
/// set the quiet bit).
fn f16_bits_to_f32_numpy(h: u16) -> f32 {
    ckpt_core::codec::f16_bits_to_f32(h, ckpt_core::codec::Nan::Numpy)
}

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; data.len()];
    out.par_chunks_mut(rows.max(1))
        .enumerate()
        .for_each(|(c, dst)| {
            for (r, d) in dst.iter_mut().enumerate() {
                *d = data[r * cols + c];
            }
        });
    out
}

/// Encodes f32 values as `t` (rows of `n_per_row` elements).
pub(crate) fn encode(t: GgmlType, data: &[f32], n_per_row: usize) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    encode_into(t, data, n_per_row, &mut out)?;
    Ok(out)
}

/// [`encode`] appending to `out`, written in place in parallel (no intermediate vectors).
fn encode_into(t: GgmlType, data: &[f32], n_per_row: usize, out: &mut Vec<u8>) -> Result<()> {
    let unit = match t {
        GgmlType::F32 => 4,
        GgmlType::F16 | GgmlType::BF16 => 2,
        other => {
            out.extend_from_slice(&ckpt_quant::quantize(other, data, n_per_row.max(1), None)?);
            return Ok(());
        }
    };
    let start = out.len();
    out.resize(start + data.len() * unit, 0);
    out[start..]
        .par_chunks_mut(CHUNK * unit)
        .zip(data.par_chunks(CHUNK))
        .for_each(|(dst, src)| match t {
            GgmlType::F32 => dst
                .chunks_exact_mut(4)
                .zip(src)
                .for_each(|(d, x)| d.copy_from_slice(&x.to_le_bytes())),
            GgmlType::F16 => f32_to_f16_le(src, dst),
            _ => dst
                .chunks_exact_mut(2)
                .zip(src)
                .for_each(|(d, x)| d.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes())),
        });
    Ok(())
}

/// Encodes one task's rows into exactly its slice of the output (no parallelism inside: the
/// caller runs tasks in parallel).
fn encode_slice(t: GgmlType, data: &[f32], n_per_row: usize, dst: &mut [u8]) -> Result<()> {
    match t {
        GgmlType::F32 => dst
            .chunks_exact_mut(4)
            .zip(data)
            .for_each(|(d, x)| d.copy_from_slice(&x.to_le_bytes())),
        GgmlType::F16 => f32_to_f16_le(data, dst),
        GgmlType::BF16 => dst
            .chunks_exact_mut(2)
            .zip(data)
            .for_each(|(d, x)| d.copy_from_slice(&f32_to_bf16_bits(*x).to_le_bytes())),
        other => {
            let q = ckpt_quant::quantize(other, data, n_per_row.max(1), None)?;
            if q.len() != dst.len() {
                return Err(Error::Other(format!(
                    "{} encoding of {} values gave {} bytes, expected {}",
                    other.name(),
                    data.len(),
                    q.len(),
                    dst.len()
                )));
            }
            dst.copy_from_slice(&q);
        }
    }
    Ok(())
}

/// f32 -> little-endian f16 bits, batched so `half` can use the F16C instructions (IEEE
/// round-to-nearest-even, the same as the scalar converter); NaN is then written as numpy writes
/// it, exactly like [`f32_to_f16_bits_numpy`].
fn f32_to_f16_le(src: &[f32], dst: &mut [u8]) {
    let _ = ckpt_core::codec::encode(DType::F16, src, dst, ckpt_core::codec::Nan::Numpy);
}

impl PlannedTensor {
    /// The output tensor; its bytes are computed when the writer reaches it.
    pub fn into_tensor(self) -> Tensor {
        if !self.experts.is_empty() {
            return self.into_stacked_tensor();
        }
        if matches!(self.source.dtype, DType::Ggml(_)) {
            // Already encoded (an architecture repacked it): written as it is.
            let mut t = self.source;
            t.name = self.name;
            return t;
        }
        let PlannedTensor {
            name,
            source,
            shape: out_shape,
            transforms,
            ggml_type,
            experts: _,
        } = self;
        let dtype = DType::from_ggml(ggml_type);
        let rows = out_shape.first().copied().unwrap_or(1) as usize;
        let out_bytes = dtype.nbytes(&out_shape).ok().map(|b| b as usize);
        match out_bytes {
            // Row-local transforms: produced in bands, so a writer can stream the tensor.
            Some(total)
                if !transforms.iter().any(Transform::whole)
                    && rows > 0
                    && total % rows == 0
                    && banded(&source, &out_shape, ggml_type) =>
            {
                let state = std::sync::Arc::new(BandedRows {
                    source,
                    transforms,
                    out_shape: out_shape.clone(),
                    ggml_type,
                    rows,
                    plan: std::sync::OnceLock::new(),
                });
                let bytes = {
                    let s = state.clone();
                    move |range, dst: &mut [u8]| s.fill(range, RowsOut::Bytes(dst))
                };
                if has_values(ggml_type) {
                    Tensor::from_rows_with_values(
                        name,
                        dtype,
                        out_shape,
                        rows,
                        total / rows,
                        bytes,
                        move |range, dst| state.fill(range, RowsOut::Values(dst)),
                    )
                } else {
                    Tensor::from_rows(name, dtype, out_shape, rows, total / rows, bytes)
                }
            }
            _ => Tensor::computed(name, dtype, out_shape.clone(), move || {
                if transforms.iter().any(Transform::whole) {
                    convert_whole(&source, &transforms, &out_shape, ggml_type)
                } else {
                    convert_by_rows(&source, &transforms, &out_shape, ggml_type)
                }
            }),
        }
    }
}

impl PlannedTensor {
    /// `torch.stack(experts)` converted lazily: bands of rows over the experts' rows (each
    /// expert contributes `shape[1]` rows), every band reading only the experts it covers, one
    /// at a time, and releasing an expert's source once its last row is written. Memory does not
    /// grow with the number of experts.
    fn into_stacked_tensor(self) -> Tensor {
        let PlannedTensor {
            name,
            shape: out_shape,
            transforms,
            ggml_type,
            experts,
            ..
        } = self;
        let dtype = DType::from_ggml(ggml_type);
        let n = experts.len();
        let expert_shape: Vec<u64> = out_shape[1..].to_vec();
        let rows_e = expert_shape.first().copied().unwrap_or(1) as usize;
        let total = dtype.nbytes(&out_shape).ok().map(|b| b as usize);
        let row_split = total.filter(|t| rows_e > 0 && t % (n * rows_e) == 0);
        let all_banded = experts.iter().all(|e| banded(e, &expert_shape, ggml_type));
        match row_split {
            Some(total) if all_banded && !transforms.iter().any(Transform::whole) => {
                let rows = n * rows_e;
                let state = std::sync::Arc::new(StackedRows {
                    experts,
                    transforms,
                    expert_shape,
                    ggml_type,
                    rows_e,
                });
                let bytes = {
                    let s = state.clone();
                    move |range, dst: &mut [u8]| s.fill(range, RowsOut::Bytes(dst))
                };
                if has_values(ggml_type) {
                    Tensor::from_rows_with_values(
                        name,
                        dtype,
                        out_shape,
                        rows,
                        total / rows,
                        bytes,
                        move |range, dst| state.fill(range, RowsOut::Values(dst)),
                    )
                } else {
                    Tensor::from_rows(name, dtype, out_shape, rows, total / rows, bytes)
                }
            }
            _ => Tensor::computed(name, dtype, out_shape.clone(), move || {
                let mut out = Vec::new();
                for e in &experts {
                    let part = if transforms.iter().any(Transform::whole) {
                        convert_whole(e, &transforms, &expert_shape, ggml_type)?
                    } else {
                        convert_by_rows(e, &transforms, &expert_shape, ggml_type)?
                    };
                    out.extend_from_slice(&part);
                }
                Ok(out)
            }),
        }
    }
}

/// A stacked mixture-of-experts tensor produced by bands: what both fills of it share.
struct StackedRows {
    experts: Vec<Tensor>,
    transforms: Vec<Transform>,
    expert_shape: Vec<u64>,
    ggml_type: GgmlType,
    /// Rows per expert.
    rows_e: usize,
}

impl StackedRows {
    fn fill(&self, range: std::ops::Range<usize>, out: RowsOut) -> Result<()> {
        fill_stacked_rows(
            &self.experts,
            &self.transforms,
            &self.expert_shape,
            self.ggml_type,
            self.rows_e,
            range,
            out,
        )
    }
}

/// Stacked rows `range` (expert-major) into `out`, one expert at a time.
fn fill_stacked_rows(
    experts: &[Tensor],
    transforms: &[Transform],
    expert_shape: &[u64],
    ggml_type: GgmlType,
    rows_e: usize,
    range: std::ops::Range<usize>,
    mut out: RowsOut,
) -> Result<()> {
    if range.is_empty() {
        return Ok(());
    }
    let row_units = out.len() / range.len();
    let mut row = range.start;
    let mut offset = 0;
    while row < range.end {
        let e = row / rows_e;
        let local_start = row % rows_e;
        let local_end = rows_e.min(local_start + (range.end - row));
        let expert = &experts[e];
        let plan = plan_rows(expert, transforms, expert_shape, ggml_type)?;
        let len = (local_end - local_start) * row_units;
        fill_rows(
            expert,
            &plan,
            ggml_type,
            local_start..local_end,
            out.slice(offset..offset + len),
        )?;
        if local_end == rows_e {
            // This expert is complete: its mapped pages need not stay resident.
            expert.release();
        }
        offset += len;
        row += local_end - local_start;
    }
    Ok(())
}

/// Where [`fill_rows`] puts output rows.
enum RowsOut<'a> {
    /// Encoded as the output type.
    Bytes(&'a mut [u8]),
    /// As f32 values rounded to the output type (F32, F16 or BF16: see [`has_values`]), exactly
    /// what decoding the bytes would give; nothing is encoded.
    Values(&'a mut [f32]),
}

impl RowsOut<'_> {
    /// Bytes, or values.
    fn len(&self) -> usize {
        match self {
            RowsOut::Bytes(b) => b.len(),
            RowsOut::Values(v) => v.len(),
        }
    }

    fn slice(&mut self, r: std::ops::Range<usize>) -> RowsOut<'_> {
        match self {
            RowsOut::Bytes(b) => RowsOut::Bytes(&mut b[r]),
            RowsOut::Values(v) => RowsOut::Values(&mut v[r]),
        }
    }
}

/// Whether a banded tensor of this type also gives its rows as f32 values
/// ([`ckpt_core::RowFill::values`]): the float types, whose values a quantizer can take without
/// the bytes.
fn has_values(t: GgmlType) -> bool {
    matches!(t, GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)
}

/// A row-local conversion produced by bands: what both fills of its tensor share.
struct BandedRows {
    source: Tensor,
    transforms: Vec<Transform>,
    out_shape: Vec<u64>,
    ggml_type: GgmlType,
    rows: usize,
    plan: std::sync::OnceLock<RowPlan>,
}

impl BandedRows {
    fn fill(&self, range: std::ops::Range<usize>, out: RowsOut) -> Result<()> {
        let plan = match self.plan.get() {
            Some(p) => p,
            None => {
                let p = plan_rows(
                    &self.source,
                    &self.transforms,
                    &self.out_shape,
                    self.ggml_type,
                )?;
                self.plan.get_or_init(|| p)
            }
        };
        let last = range.end == self.rows;
        fill_rows(&self.source, plan, self.ggml_type, range, out)?;
        if last {
            // Done with this tensor's source: its mapped pages need not stay resident.
            self.source.release();
        }
        Ok(())
    }
}

/// Bytes per element of the source dtypes we read.
fn source_elem_size(t: &Tensor) -> Result<usize> {
    match t.dtype {
        DType::F32 => Ok(4),
        DType::F16 | DType::BF16 => Ok(2),
        DType::F64 => Ok(8),
        // FP8 without a quantization_config: the converter casts the stored values with torch.
        DType::F8E4M3 | DType::F8E5M2 => Ok(1),
        other => Err(source_err(
            t,
            format!("dtype {other} cannot be converted to GGUF (expected F32, F16, BF16, F64, F8_E4M3 or F8_E5M2)"),
        )),
    }
}

fn decode_into(dtype: DType, src: &[u8], dst: &mut [f32]) {
    // F16 NaNs widen as numpy widens them, FP8 as torch does; other dtypes were refused by
    // source_elem_size.
    let _ = ckpt_core::codec::decode(dtype, src, dst, ckpt_core::codec::Nan::Numpy);
}

/// How a row-local conversion (permutation of the outer rows, truncation, +1) maps output rows
/// to source rows.
struct RowPlan {
    /// The source row of each output row.
    index: Vec<usize>,
    row_len: usize,
    elem: usize,
    plus_one: Option<bool>,
    n_per_row: usize,
    row_out_bytes: usize,
    /// Output rows per parallel task (whole quant blocks, about CHUNK elements).
    rows_per_task: usize,
}

fn plan_rows(
    source: &Tensor,
    transforms: &[Transform],
    out_shape: &[u64],
    ggml_type: GgmlType,
) -> Result<RowPlan> {
    let elem = source_elem_size(source)?;
    let src_rows = source.shape.first().copied().unwrap_or(1) as usize;
    let row_len = if source.shape.len() <= 1 {
        1
    } else {
        source.shape[1..].iter().product::<u64>() as usize
    };
    let mut index: Vec<usize> = (0..src_rows).collect();
    let mut plus_one = None;
    let mut shape = source.shape.clone();
    for t in transforms {
        match t {
            Transform::PermuteRows { heads } => {
                index =
                    permute_index(&index, shape[0], *heads).map_err(|m| source_err(source, m))?;
            }
            Transform::NeoxRotary {
                head_dim,
                rotary_dim,
            } => {
                let perm = neox_rotary_index(index.len(), *head_dim as usize, *rotary_dim as usize);
                index = perm.into_iter().map(|i| index[i]).collect();
            }
            Transform::TruncateRows { rows: keep } => index.truncate(*keep as usize),
            Transform::SkipRows { rows } => {
                let n = (*rows as usize).min(index.len());
                index.drain(..n);
            }
            Transform::ThirdOfRows { index: i } => {
                let n = index.len() / 3;
                index = index[n * *i as usize..n * (*i as usize + 1)].to_vec();
            }
            Transform::AddOne { in_f16 } => plus_one = Some(*in_f16),
            Transform::Transpose | Transform::TakeDim2 { .. } => {
                unreachable!("handled by convert_whole")
            }
            Transform::SqueezeDim1 => {}
        }
        shape = t.output_shape(&shape);
    }
    let n_per_row = out_shape.last().copied().unwrap_or(1) as usize;
    let out_bytes = DType::from_ggml(ggml_type)
        .nbytes(out_shape)
        .map_err(|m| source_err(source, m))? as usize;
    let row_out_bytes = if index.is_empty() {
        0
    } else {
        out_bytes / index.len()
    };
    if row_out_bytes * index.len() != out_bytes {
        return Err(source_err(
            source,
            format!(
                "{out_bytes} output bytes do not split into {} rows",
                index.len()
            ),
        ));
    }
    let rows_per_task = if banded(source, out_shape, ggml_type) {
        (CHUNK / row_len.max(1)).max(1)
    } else {
        index.len().max(1) // rows shorter than an encoding row: one task
    };
    Ok(RowPlan {
        index,
        row_len,
        elem,
        plus_one,
        n_per_row,
        row_out_bytes,
        rows_per_task,
    })
}

/// Whether output rows can be produced in independent bands: every encoding row (and so every
/// quant block) lies inside one outer row.
fn banded(source: &Tensor, out_shape: &[u64], ggml_type: GgmlType) -> bool {
    let row_len: u64 = if source.shape.len() <= 1 {
        1
    } else {
        source.shape[1..].iter().product()
    };
    let n_per_row = out_shape.last().copied().unwrap_or(1).max(1);
    ggml_type.block_size() == 1 || (row_len >= n_per_row && row_len.is_multiple_of(n_per_row))
}

/// Output rows `range` into `out`: each parallel task widens a group of rows into a small
/// cache-resident f32 buffer and encodes it straight into its place (or, for values, widens
/// them in place and rounds them to the output type's precision).
fn fill_rows(
    source: &Tensor,
    plan: &RowPlan,
    ggml_type: GgmlType,
    range: std::ops::Range<usize>,
    out: RowsOut,
) -> Result<()> {
    // A source computed by rows (a dequantized FP8 weight) is read a run of rows at a time, so
    // a band of output touches only its own source rows.
    let computed = match &source.data {
        ckpt_core::TensorData::Rows(r) => Some(r.clone()),
        _ => None,
    };
    let bytes = match computed {
        Some(_) => std::borrow::Cow::Borrowed(&[][..]),
        None => source.bytes()?,
    };
    let (row_len, elem) = (plan.row_len, plan.elem);
    if computed.is_none() && bytes.len() != source.numel() as usize * elem {
        return Err(source_err(
            source,
            format!(
                "has {} data bytes for shape {:?}",
                bytes.len(),
                source.shape
            ),
        ));
    }
    let rows = &plan.index[range.clone()];
    let row_units = match &out {
        RowsOut::Bytes(_) => plan.row_out_bytes,
        RowsOut::Values(_) => row_len,
    };
    let values_ok = match &out {
        RowsOut::Bytes(_) => true,
        RowsOut::Values(_) => {
            has_values(ggml_type) && plan.row_out_bytes == row_len * ggml_type.type_size()
        }
    };
    if !values_ok || out.len() != rows.len() * row_units {
        return Err(source_err(
            source,
            format!(
                "rows {range:?} of {} need {} {}, got {}",
                ggml_type.name(),
                rows.len() * row_units,
                if matches!(out, RowsOut::Bytes(_)) {
                    "bytes"
                } else {
                    "values"
                },
                out.len()
            ),
        ));
    }
    thread_local! {
        static ROWS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // Source rows `rows` widened (and +1 applied) into `data`.
    let widen = |rows: &[usize], data: &mut [f32]| -> Result<()> {
        match &computed {
            None => {
                for (d, &r) in data.chunks_mut(row_len.max(1)).zip(rows) {
                    decode_into(
                        source.dtype,
                        &bytes[r * row_len * elem..(r + 1) * row_len * elem],
                        d,
                    );
                }
            }
            Some(fill) => RAW.with(|raw| -> Result<()> {
                let mut raw = raw.borrow_mut();
                // runs of consecutive source rows, each produced by one call
                let mut i = 0;
                while i < rows.len() {
                    let mut j = i + 1;
                    while j < rows.len() && rows[j] == rows[j - 1] + 1 {
                        j += 1;
                    }
                    let run = rows[i]..rows[j - 1] + 1;
                    raw.resize(run.len() * fill.row_bytes, 0);
                    (fill.fill)(run, &mut raw)?;
                    decode_into(source.dtype, &raw, &mut data[i * row_len..j * row_len]);
                    i = j;
                }
                Ok(())
            })?,
        }
        if let Some(in_f16) = plan.plus_one {
            data.iter_mut()
                .for_each(|x| *x = plus_one_value(*x, in_f16));
        }
        Ok(())
    };
    // BF16/F32 rows to F16 without a +1: one fused pass from the mapped rows to the output.
    let direct_f16 = computed.is_none()
        && plan.plus_one.is_none()
        && ggml_type == GgmlType::F16
        && matches!(source.dtype, DType::BF16 | DType::F32)
        && plan.row_out_bytes == row_len * 2;
    match out {
        RowsOut::Bytes(dst) if direct_f16 => {
            let task_out_bytes = (plan.row_out_bytes * plan.rows_per_task).max(1);
            dst.par_chunks_mut(task_out_bytes)
                .zip(rows.par_chunks(plan.rows_per_task))
                .try_for_each(|(dst, rows)| {
                    for (d, &r) in dst.chunks_mut(plan.row_out_bytes.max(1)).zip(rows) {
                        let src = &bytes[r * row_len * elem..(r + 1) * row_len * elem];
                        let nan = ckpt_core::codec::Nan::Numpy;
                        if !ckpt_core::codec::narrow_to_f16_le(source.dtype, src, d, nan) {
                            return Err(source_err(
                                source,
                                format!("row {r} cannot be narrowed to F16 ({} bytes)", src.len()),
                            ));
                        }
                    }
                    Ok(())
                })?;
        }
        RowsOut::Bytes(dst) => {
            let task_out_bytes = (plan.row_out_bytes * plan.rows_per_task).max(1);
            dst.par_chunks_mut(task_out_bytes)
                .zip(rows.par_chunks(plan.rows_per_task))
                .try_for_each(|(dst, rows)| {
                    ROWS.with(|buf| -> Result<()> {
                        let mut buf = buf.borrow_mut();
                        buf.resize(plan.rows_per_task * row_len, 0.0);
                        let data = &mut buf[..rows.len() * row_len];
                        widen(rows, data)?;
                        encode_slice(ggml_type, data, plan.n_per_row, dst)
                    })
                })?;
        }
        RowsOut::Values(dst) => {
            let dtype = DType::from_ggml(ggml_type);
            dst.par_chunks_mut((plan.rows_per_task * row_len).max(1))
                .zip(rows.par_chunks(plan.rows_per_task))
                .try_for_each(|(data, rows)| {
                    widen(rows, data)?;
                    // the bytes' encoding (numpy's NaN rule), then their decoding
                    ckpt_core::codec::round_through(dtype, data, ckpt_core::codec::Nan::Numpy)
                        .map_err(|d| source_err(source, format!("no f32 values for {d}")))
                })?;
        }
    }
    // The band's source rows need not stay resident: a later band that shares a page (or a
    // permuted row) maps it again from the page cache.
    if computed.is_none() {
        if let (Some((buf, start, _)), Some(lo), Some(hi)) =
            (source.mapped_range(), rows.iter().min(), rows.iter().max())
        {
            let row = row_len * elem;
            buf.release(start + lo * row, (hi + 1 - lo) * row);
        }
    }
    Ok(())
}

/// The whole output of a row-local conversion.
fn convert_by_rows(
    source: &Tensor,
    transforms: &[Transform],
    out_shape: &[u64],
    ggml_type: GgmlType,
) -> Result<Vec<u8>> {
    let plan = plan_rows(source, transforms, out_shape, ggml_type)?;
    let mut out = ckpt_core::pool::take(plan.index.len() * plan.row_out_bytes);
    fill_rows(
        source,
        &plan,
        ggml_type,
        0..plan.index.len(),
        RowsOut::Bytes(&mut out),
    )?;
    source.release();
    Ok(out)
}

/// The permutation of `LlamaModel.permute` applied to a list of row indices.
fn permute_index(
    index: &[usize],
    rows: u64,
    heads: u64,
) -> std::result::Result<Vec<usize>, String> {
    if heads == 0 || !rows.is_multiple_of(heads * 2) {
        return Err(format!(
            "{rows} rows cannot be split into {heads} heads of two rotary halves"
        ));
    }
    let head_dim = (rows / heads) as usize;
    let half = head_dim / 2;
    Ok((0..index.len())
        .map(|new_row| {
            let (h, within) = (new_row / head_dim, new_row % head_dim);
            let (i, j) = (within / 2, within % 2);
            index[h * head_dim + j * half + i]
        })
        .collect())
}

/// GLM-4's `normal_to_neox` as a row map: entry `new_row` is the source row (see
/// [`Transform::NeoxRotary`]; `rows` a multiple of `head_dim`, `rotary_dim` even and at most
/// `head_dim`).
pub fn neox_rotary_index(rows: usize, head_dim: usize, rotary_dim: usize) -> Vec<usize> {
    let half = rotary_dim / 2;
    (0..rows)
        .map(|new_row| {
            let (h, within) = (new_row / head_dim, new_row % head_dim);
            let old = if within < half {
                2 * within
            } else if within < rotary_dim {
                2 * (within - half) + 1
            } else {
                within
            };
            h * head_dim + old
        })
        .collect()
}

/// torch's `t[:, :, index]`: the slice `index` of dimension 2 of a row-major tensor.
fn take_dim2(data: &[f32], shape: &[u64], index: usize) -> Vec<f32> {
    let outer = (shape[0] * shape[1]) as usize;
    let n2 = shape[2] as usize;
    let inner = shape[3..].iter().product::<u64>() as usize;
    let mut out = Vec::with_capacity(outer * inner);
    for o in 0..outer {
        let start = (o * n2 + index) * inner;
        out.extend_from_slice(&data[start..start + inner]);
    }
    out
}

/// Whole-tensor path (transposes and slices of an inner dimension need every row at once).
fn convert_whole(
    source: &Tensor,
    transforms: &[Transform],
    out_shape: &[u64],
    ggml_type: GgmlType,
) -> Result<Vec<u8>> {
    let mut data = source_f32(source)?;
    source.release();
    let mut shape = source.shape.clone();
    for t in transforms {
        data = match t {
            Transform::PermuteRows { heads } => {
                permute_rows(&data, &shape, *heads).map_err(|m| source_err(source, m))?
            }
            Transform::AddOne { in_f16 } => {
                add_one_in_place(&mut data, *in_f16);
                data
            }
            Transform::TruncateRows { rows } => {
                let row_len: u64 = shape[1..].iter().product();
                data.truncate((rows * row_len) as usize);
                data
            }
            Transform::SkipRows { rows } => {
                let row_len: u64 = shape[1..].iter().product();
                let n = ((*rows).min(shape[0]) * row_len) as usize;
                data.drain(..n);
                data
            }
            Transform::Transpose => transpose(&data, shape[0] as usize, shape[1] as usize),
            Transform::SqueezeDim1 => data,
            Transform::NeoxRotary {
                head_dim,
                rotary_dim,
            } => {
                let rows = shape.first().copied().unwrap_or(1) as usize;
                let row_len = data.len() / rows.max(1);
                neox_rotary_index(rows, *head_dim as usize, *rotary_dim as usize)
                    .into_iter()
                    .flat_map(|r| data[r * row_len..(r + 1) * row_len].iter().copied())
                    .collect()
            }
            Transform::TakeDim2 { index } => take_dim2(&data, &shape, *index as usize),
            Transform::ThirdOfRows { index } => {
                let len = data.len() / 3;
                data[len * *index as usize..len * (*index as usize + 1)].to_vec()
            }
        };
        shape = t.output_shape(&shape);
    }
    let n_per_row = out_shape.last().copied().unwrap_or(1) as usize;
    encode(ggml_type, &data, n_per_row)
}

#[cfg(test)]
mod neox_tests {
    #[test]
    fn neox_rotary_index_reorders_the_rotary_rows_of_each_head() {
        // Two heads of 8 rows, 4 of them rotary: evens, odds, then the rest unchanged.
        let want: Vec<usize> = [0, 2, 1, 3, 4, 5, 6, 7]
            .iter()
            .chain(&[8, 10, 9, 11, 12, 13, 14, 15])
            .copied()
            .collect();
        assert_eq!(super::neox_rotary_index(16, 8, 4), want);
        // Fully rotary heads of 4: 0 2 1 3.
        assert_eq!(super::neox_rotary_index(4, 4, 4), vec![0, 2, 1, 3]);
    }
}

#[cfg(test)]
mod f16_tests {
    #[test]
    fn batched_f16_equals_the_scalar_converter() {
        let mut state = 0x2545F4914F6CDD1Du64;
        let mut xs: Vec<f32> = (0..200_000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                f32::from_bits((state >> 32) as u32)
            })
            .collect();
        xs.extend([
            0.0,
            -0.0,
            65504.0,
            65520.0,
            5.96e-8,
            2.98e-8,
            f32::INFINITY,
            f32::NAN,
            -f32::NAN,
            1e-10,
        ]);
        let mut out = vec![0u8; xs.len() * 2];
        super::f32_to_f16_le(&xs, &mut out);
        for (x, b) in xs.iter().zip(out.chunks_exact(2)) {
            assert_eq!(
                u16::from_le_bytes([b[0], b[1]]),
                super::f32_to_f16_bits_numpy(*x),
                "{x:e} ({:#x})",
                x.to_bits()
            );
        }
    }

    /// NaN bits as convert_hf_to_gguf.py (torch + numpy) wrote them for a checkpoint seeded with
    /// odd NaN payloads (bf16, f16 and f32 sources; checked by hand against the pinned converter).
    #[test]
    fn nan_payloads_follow_numpy_like_the_converter() {
        use super::{f16_bits_to_f32_numpy as widen, f32_to_f16_bits_numpy as narrow};
        // bf16 source, f16 output: bf16 -> f32 is a shift, then numpy's narrowing.
        for (bf16, f16) in [
            (0x7F81u16, 0x7c08u16),
            (0x7FC1, 0x7e08),
            (0xFFC1, 0xfe08),
            (0x7FFF, 0x7ff8),
        ] {
            assert_eq!(
                narrow(f32::from_bits((bf16 as u32) << 16)),
                f16,
                "{bf16:#x}"
            );
        }
        // f32 source, f16 output: a payload below the kept bits becomes 1.
        for (f32_bits, f16) in [
            (0x7F80_0001u32, 0x7c01u16),
            (0x7FFF_FFFF, 0x7fff),
            (0x7FA5_5555, 0x7d2a),
        ] {
            assert_eq!(narrow(f32::from_bits(f32_bits)), f16, "{f32_bits:#x}");
        }
        // Gemma's +1 on an f16 checkpoint: torch's f16 addition quiets the NaN and keeps its payload.
        for (h, widened) in [
            (0x7c01u16, 0x7fc0_2000u32),
            (0xfe01, 0xffc0_2000),
            (0x7fff, 0x7fff_e000),
            (0x7d55, 0x7fea_a000),
        ] {
            assert_eq!(
                super::plus_one_value(widen(h), true).to_bits(),
                widened,
                "{h:#x}"
            );
        }
        // f16 source: widened without quieting, and f16 -> f16 is the identity.
        assert_eq!(widen(0x7c01).to_bits(), 0x7f80_2000);
        assert_eq!(widen(0x7d55).to_bits(), 0x7faa_a000);
        for h in [0x7c01u16, 0x7e01, 0xfe01, 0x7fff, 0x7d55] {
            assert_eq!(narrow(widen(h)), h, "{h:#x}");
            let mut wide = [0f32; 1];
            super::decode_into(ckpt_core::DType::F16, &h.to_le_bytes(), &mut wide);
            assert_eq!(
                wide[0].to_bits(),
                widen(h).to_bits(),
                "batched widening of {h:#x}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_interleaves_rotary_halves() {
        // one head of dim 4, rows [a0, a1, b0, b1] -> [a0, b0, a1, b1]
        let data = [0.0, 1.0, 2.0, 3.0];
        assert_eq!(
            permute_rows(&data, &[4], 1).unwrap(),
            vec![0.0, 2.0, 1.0, 3.0]
        );
        assert!(permute_rows(&data, &[4], 3).is_err());
        // the row-index form used by the streaming path agrees
        assert_eq!(
            permute_index(&[0, 1, 2, 3, 4, 5, 6, 7], 8, 2).unwrap(),
            vec![0, 2, 1, 3, 4, 6, 5, 7]
        );
    }

    #[test]
    fn type_rules() {
        assert_eq!(
            choose_type("blk.0.attn_norm.weight", &[64], GgmlType::Q8_0).0,
            GgmlType::F32
        );
        assert_eq!(
            choose_type("blk.0.attn_q.bias", &[64, 64], GgmlType::F16).0,
            GgmlType::F32
        );
        assert_eq!(
            choose_type("blk.0.attn_q.weight", &[64, 64], GgmlType::Q8_0).0,
            GgmlType::Q8_0
        );
        let (t, why) = choose_type("blk.0.attn_q.weight", &[8, 8], GgmlType::Q8_0);
        assert_eq!(t, GgmlType::F16);
        assert!(why.unwrap().contains("row length 8"));
        assert_eq!(
            choose_type("position_embd.weight", &[8, 32], GgmlType::F16).0,
            GgmlType::F32
        );
    }
}

#[cfg(test)]
mod values_tests {
    use super::*;
    use ckpt_core::{Buffer, Storage, TensorData};

    /// A mapped-like source of `dtype` with random values, large and tiny ones (f16 overflow,
    /// subnormals) and a NaN and an infinity.
    fn source(name: &str, dtype: DType, shape: &[u64], seed: u32) -> Tensor {
        let n = shape.iter().product::<u64>() as usize;
        let mut s = seed | 1;
        let vals: Vec<f32> = (0..n)
            .map(|i| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                let x = (s as f32 / u32::MAX as f32 - 0.5) * 4.0;
                match i % 97 {
                    3 => x * 1e5,
                    5 => x * 1e-6,
                    7 => x * 3e-8,
                    _ => x,
                }
            })
            .collect();
        let mut bytes = vec![0u8; n * dtype.bits().unwrap() / 8];
        ckpt_core::codec::encode(dtype, &vals, &mut bytes, ckpt_core::codec::Nan::Numpy).unwrap();
        let unit = dtype.bits().unwrap() / 8;
        let nan = ckpt_core::codec::Nan::Numpy;
        ckpt_core::codec::encode(dtype, &[f32::NAN], &mut bytes[11 * unit..12 * unit], nan)
            .unwrap();
        ckpt_core::codec::encode(dtype, &[f32::INFINITY], &mut bytes[13 * unit..], nan).unwrap();
        let len = bytes.len();
        let storage = Storage::new(Buffer::owned("mem", bytes), 0, len, "mem").unwrap();
        Tensor::contiguous(name, dtype, shape.to_vec(), storage)
    }

    /// Checks that a tensor's values are its bytes decoded, number for number, band by band.
    fn values_equal_bytes(t: &Tensor) {
        let TensorData::Rows(r) = &t.data else {
            panic!("{} is not banded", t.name)
        };
        let values = r.values.as_ref().expect("a float tensor gives values");
        let ggml = t.dtype.to_ggml().unwrap();
        let per_row = r.row_bytes / ggml.type_size();
        for range in [0..r.rows, 1..r.rows.min(4), r.rows - 1..r.rows] {
            let mut bytes = vec![0u8; range.len() * r.row_bytes];
            (r.fill)(range.clone(), &mut bytes).unwrap();
            let mut want = vec![0f32; range.len() * per_row];
            ckpt_core::codec::decode(t.dtype, &bytes, &mut want, ckpt_core::codec::Nan::Numpy)
                .unwrap();
            let mut got = vec![0f32; want.len()];
            values(range.clone(), &mut got).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == w.to_bits() || (g.is_nan() && w.is_nan()),
                    "{} {:?} rows {range:?} element {i}: {g:e} vs {w:e}",
                    t.name,
                    t.dtype
                );
            }
        }
    }

    #[test]
    fn float_tensors_give_the_values_their_bytes_decode_to() {
        let shape = [16u64, 40];
        for src in [DType::BF16, DType::F16, DType::F32] {
            for to in [GgmlType::F16, GgmlType::BF16, GgmlType::F32] {
                for transforms in [
                    vec![],
                    vec![Transform::PermuteRows { heads: 2 }],
                    vec![
                        Transform::AddOne {
                            in_f16: src == DType::F16,
                        },
                        Transform::TruncateRows { rows: 12 },
                    ],
                ] {
                    let out_rows = if transforms.len() == 2 { 12 } else { 16 };
                    let t = PlannedTensor {
                        name: format!("{src:?}->{to:?} {transforms:?}"),
                        source: source("w", src, &shape, 7),
                        shape: vec![out_rows, 40],
                        transforms,
                        ggml_type: to,
                        experts: Vec::new(),
                    }
                    .into_tensor();
                    values_equal_bytes(&t);
                }
            }
        }
        // Stacked experts, each permuted.
        let experts: Vec<Tensor> = (0..3)
            .map(|e| source("e", DType::BF16, &shape, 11 + e))
            .collect();
        let t = PlannedTensor {
            name: "exps".into(),
            source: experts[0].clone(),
            shape: vec![3, 16, 40],
            transforms: vec![Transform::PermuteRows { heads: 4 }],
            ggml_type: GgmlType::F16,
            experts,
        }
        .into_tensor();
        values_equal_bytes(&t);
        // A quantized output gives bytes only.
        let t = PlannedTensor {
            name: "q".into(),
            source: source("w", DType::BF16, &[4, 64], 3),
            shape: vec![4, 64],
            transforms: vec![],
            ggml_type: GgmlType::Q8_0,
            experts: Vec::new(),
        }
        .into_tensor();
        match &t.data {
            TensorData::Rows(r) => assert!(r.values.is_none()),
            other => panic!("{other:?}"),
        }
    }
}
