//! GGUF -> GGUF quantization producing the same file as llama-quantize: KVs in input order with
//! `general.quantization_version` and `general.file_type` moved to the end, tensors sorted by
//! (layer, name), ggml's n_dims rule, 32-byte alignment, tensors quantized one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_core::{Buffer, DType, Error, GgmlType, Result, SharedProgress, Tensor, TensorData};
use ckpt_gguf::{GgufValue, GgufWriter, TensorInfo};

use crate::ftype::Ftype;
use crate::imatrix::ImportanceMatrix;
use crate::options::{apply_overrides, ImatrixWeights, KvOverride, LayerRemap, TensorTypeOverride};
use crate::select::{compare_tensor_names, ModelParams, SelectOptions, TensorDesc, TypeSelector};

const QUANTIZATION_VERSION_KEY: &str = "general.quantization_version";
const FILE_TYPE_KEY: &str = "general.file_type";
/// GGML_QNT_VERSION
const QUANTIZATION_VERSION: u32 = 2;
const SPLIT_KEYS: &[&str] = &["split.no", "split.count", "split.tensors.count"];

/// llama-quantize's options that ckpt supports.
#[derive(Clone, Debug)]
pub struct QuantizeOptions {
    /// The quantization mix (llama-quantize's positional TYPE); written as `general.file_type`.
    pub ftype: Ftype,
    /// `--pure`: no mix rules, every quantizable tensor gets the ftype's default type.
    pub pure: bool,
    /// `--output-tensor-type`: the type of `output.weight` (or of the token embedding when the
    /// model ties it to the output), instead of the mix's choice.
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`: the type of `token_embd.weight`, instead of the mix's choice.
    pub token_embedding_type: Option<GgmlType>,
    /// `--leave-output-tensor`: `output.weight` is copied unquantized.
    pub leave_output_tensor: bool,
    /// Quantize tensors that are already quantized (dequantized to f32 first, like llama.cpp).
    pub allow_requantize: bool,
    /// An importance matrix (GGUF or legacy .dat, as written by llama-imatrix).
    pub imatrix: Option<PathBuf>,
    /// What to record as `quantize.imatrix.file` (llama-quantize records its argument as typed);
    /// defaults to `imatrix` as given.
    pub imatrix_label: Option<String>,
    /// Worker threads; 0 = all cores. The output does not depend on it.
    pub threads: usize,
    /// Replace an existing output file (otherwise its existence is an error).
    pub overwrite: bool,
    /// `--tensor-type PATTERN=TYPE` rules, in order (the first match wins).
    pub tensor_types: Vec<TensorTypeOverride>,
    /// `--override-kv KEY=TYPE:VALUE`, in order.
    pub kv_overrides: Vec<KvOverride>,
    /// `--prune-layers`: blocks removed; the rest are renumbered and `{arch}.block_count` set.
    pub prune_layers: Vec<u32>,
    /// `--include-weights` / `--exclude-weights`: which importance-matrix entries are used.
    pub imatrix_weights: ImatrixWeights,
    /// `--keep-split`: the output has the input's shards (`OUT-00001-of-0000N.gguf`, …, where OUT
    /// is the output path without `.gguf`), tensors in shard order.
    pub keep_split: bool,
    /// Write the output as a split set, exactly as `llama-gguf-split --split` would split the
    /// single-file output (`OUT-00001-of-0000N.gguf`, …). Not with `keep_split`.
    pub split: Option<ckpt_gguf::SplitOptions>,
}

impl QuantizeOptions {
    /// llama-quantize's defaults for `ftype`: the full mix, no imatrix, no overrides, one output
    /// file, all cores, no overwriting.
    pub fn new(ftype: Ftype) -> QuantizeOptions {
        QuantizeOptions {
            ftype,
            pure: false,
            output_tensor_type: None,
            token_embedding_type: None,
            leave_output_tensor: false,
            allow_requantize: false,
            imatrix: None,
            imatrix_label: None,
            threads: 0,
            overwrite: false,
            tensor_types: Vec::new(),
            kv_overrides: Vec::new(),
            prune_layers: Vec::new(),
            imatrix_weights: ImatrixWeights::All,
            keep_split: false,
            split: None,
        }
    }
}

/// What happened to one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorReport {
    /// The tensor's name in the output (after `--prune-layers` renumbering).
    pub name: String,
    /// ggml dims, ne0 first.
    pub ne: Vec<u64>,
    /// Its type in the input.
    pub from: GgmlType,
    /// Its type in the output (`from` when it was copied).
    pub to: GgmlType,
    /// The type the mix wanted when the shape forced a fallback.
    pub fallback_from: Option<GgmlType>,
    /// Whether importance-matrix weights guided its quantization.
    pub used_imatrix: bool,
    /// Its data bytes in the input.
    pub bytes_in: u64,
    /// Its data bytes in the output (without padding).
    pub bytes_out: u64,
}

/// How many tensors the shape fallback sent from one wanted type to one used type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackCount {
    /// The type the mix chose.
    pub wanted: GgmlType,
    /// The type the tensors got instead (their row length is not a multiple of `wanted`'s block).
    pub used: GgmlType,
    /// How many tensors.
    pub count: usize,
}

/// The shape fallbacks of a quantization, counted by (wanted -> used) in first-seen order.
pub fn fallback_summary(tensors: &[TensorReport]) -> Vec<FallbackCount> {
    let mut out: Vec<FallbackCount> = Vec::new();
    for t in tensors {
        let Some(wanted) = t.fallback_from else {
            continue;
        };
        match out
            .iter_mut()
            .find(|c| c.wanted == wanted && c.used == t.to)
        {
            Some(c) => c.count += 1,
            None => out.push(FallbackCount {
                wanted,
                used: t.to,
                count: 1,
            }),
        }
    }
    out
}

/// The outcome of a quantization (or, for [`plan_quantization`], its plan).
#[derive(Clone, Debug)]
pub struct QuantizeReport {
    /// The mix requested.
    pub ftype: Ftype,
    /// In output order.
    pub tensors: Vec<TensorReport>,
    /// Tensors that needed the shape fallback ("N of M tensor(s) required fallback quantization").
    pub n_fallback: usize,
    /// All input files together.
    pub input_bytes: u64,
    /// The output files together (planned size for a dry run).
    pub output_bytes: u64,
    /// The files written, in order (one unless the output is split; empty for a dry run).
    pub outputs: Vec<PathBuf>,
}

fn kv_u32(kvs: &[(String, GgufValue)], key: &str) -> Option<u32> {
    let v = kvs.iter().find(|(k, _)| k == key).map(|(_, v)| v)?;
    match v {
        // per-layer arrays (e.g. head_count of some models): llama.cpp's n_gqa() looks at layer 0
        GgufValue::Array(a) => a
            .items
            .first()
            .and_then(GgufValue::as_u64)
            .map(|x| x as u32),
        other => other.as_u64().map(|x| x as u32),
    }
}

/// The hyper-parameters the type rules need, read from the GGUF KVs like llama.cpp does.
pub(crate) fn model_params(kvs: &[(String, GgufValue)]) -> ModelParams {
    let arch = kvs
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_default()
        .to_string();
    let n_head = kv_u32(kvs, &format!("{arch}.attention.head_count")).unwrap_or(0);
    ModelParams {
        n_layer: kv_u32(kvs, &format!("{arch}.block_count")).unwrap_or(0),
        n_expert: kv_u32(kvs, &format!("{arch}.expert_count")).unwrap_or(0),
        n_head,
        n_head_kv: kv_u32(kvs, &format!("{arch}.attention.head_count_kv")).unwrap_or(n_head),
        arch,
    }
}

struct Planned {
    info: TensorInfo,
    input: Tensor,
    to: GgmlType,
    fallback_from: Option<GgmlType>,
    importance: Option<Arc<Vec<f32>>>,
}

/// Quantizes a GGUF file like `llama-quantize [options] input output FTYPE` (x86-64 build of
/// llama.cpp 0c1e57098); the output is written atomically.
pub fn quantize_gguf(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
) -> Result<QuantizeReport> {
    refuse_same_file(input, output)?;
    run(QuantizeSource::open(input)?, output, opts, None)
}

/// llama-quantize refuses to overwrite its own input.
fn refuse_same_file(input: &Path, output: &Path) -> Result<()> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize()) {
        if a == b {
            return Err(Error::Usage(format!(
                "input and output are the same file: {}",
                input.display()
            )));
        }
    }
    Ok(())
}

/// [`quantize_gguf`] reporting the output data bytes to `progress` as a `"quantizing"` phase
/// (after each tensor).
pub fn quantize_gguf_with_progress(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    progress: SharedProgress,
) -> Result<QuantizeReport> {
    refuse_same_file(input, output)?;
    let source = QuantizeSource::open(input)?;
    run(source, output, opts, Some(progress))
}

/// Quantizes what `source` would write, without writing it first: the one-step path of a
/// converter (Hugging Face -> F16 GGUF -> llama-quantize type) that produces the same bytes as
/// writing `source` to a file and quantizing that file with [`quantize_gguf`]. Tensors are read
/// from `source` by bands of rows as the output is written. `label` names the model in errors;
/// the output data bytes are reported to `progress` (if any) as a `"quantizing"` phase.
pub fn quantize_writer_with_progress(
    label: &Path,
    source: &GgufWriter,
    output: &Path,
    opts: &QuantizeOptions,
    progress: Option<SharedProgress>,
) -> Result<QuantizeReport> {
    let infos = source.planned_tensor_infos()?;
    let entries = infos
        .into_iter()
        .zip(source.tensors().iter().cloned())
        .map(|(i, t)| (0, i, t))
        .collect();
    let input_bytes = source.total_size()?;
    let source = QuantizeSource {
        label: label.to_path_buf(),
        kvs: source.kvs().to_vec(),
        entries,
        input_bytes,
    };
    run(source, output, opts, progress)
}

/// A model to quantize: its KVs and its tensors with the GGUF tensor infos that describe them.
struct QuantizeSource {
    /// The input file or model, for errors.
    label: PathBuf,
    kvs: Vec<(String, GgufValue)>,
    /// (input shard, tensor info, tensor).
    entries: Vec<(usize, TensorInfo, Tensor)>,
    /// All input files together.
    input_bytes: u64,
}

impl QuantizeSource {
    fn open(input: &Path) -> Result<QuantizeSource> {
        let split = ckpt_gguf::open_split(input)?;
        let entries = split
            .tensor_infos()
            .into_iter()
            .map(|(shard, i)| (shard, i.clone()))
            .zip(split.tensors())
            .map(|((shard, i), t)| (shard, i, t))
            .collect();
        Ok(QuantizeSource {
            label: input.to_path_buf(),
            kvs: split.kvs().to_vec(),
            entries,
            input_bytes: split.shards.iter().map(|s| s.file_size).sum(),
        })
    }
}

fn thread_pool(threads: usize) -> Result<Option<Arc<rayon::ThreadPool>>> {
    if threads == 0 {
        return Ok(None);
    }
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map(|p| Some(Arc::new(p)))
        .map_err(|e| Error::Other(format!("cannot start {threads} worker threads: {e}")))
}

fn run(
    source: QuantizeSource,
    output: &Path,
    opts: &QuantizeOptions,
    progress: Option<SharedProgress>,
) -> Result<QuantizeReport> {
    if opts.keep_split && opts.split.is_some() {
        return Err(Error::Usage(
            "`keep_split` keeps the input's shards; it cannot be combined with `split_max_size`/`split_max_tensors`".into(),
        ));
    }
    let pool = thread_pool(opts.threads)?;
    let plan = plan(source, opts, true, pool.clone())?;
    let mut report = plan.report;
    let mut writer = plan.writer;
    if let Some(progress) = progress {
        writer.set_progress("quantizing", progress);
    }
    // The writer's threads each produce a tensor; the row work inside a band runs on the pool
    // (each fill enters it), so the writer itself must not occupy a pool thread.
    report.outputs = write_output(writer, output, &plan.layout, opts)?;
    let mut total = 0;
    for p in &report.outputs {
        total += std::fs::metadata(p).map_err(|e| Error::io(p, e))?.len();
    }
    report.output_bytes = total;
    Ok(report)
}

/// How the output is laid out in files.
enum Layout {
    Single,
    /// `--keep-split`: tensors per output shard.
    KeepSplit(Vec<usize>),
}

/// Writes the planned output: one file, the input's shards (`--keep-split`), or a gguf-split set.
/// Every file is written under a temporary name; none appears unless all are complete.
fn write_output(
    writer: GgufWriter,
    output: &Path,
    layout: &Layout,
    opts: &QuantizeOptions,
) -> Result<Vec<PathBuf>> {
    match (layout, &opts.split) {
        (Layout::KeepSplit(sizes), _) => {
            writer.write_shards(&ckpt_gguf::split_prefix(output), sizes, opts.overwrite)
        }
        (Layout::Single, Some(split)) => {
            writer.write_split(&ckpt_gguf::split_prefix(output), split, opts.overwrite)
        }
        (Layout::Single, None) => {
            writer.write(output, opts.overwrite)?;
            Ok(vec![output.to_path_buf()])
        }
    }
}

/// What [`quantize_gguf`] would do (`--dry-run`): every tensor's type and size, the output size;
/// fails exactly where the real run would, but writes nothing.
pub fn plan_quantization(input: &Path, opts: &QuantizeOptions) -> Result<QuantizeReport> {
    Ok(plan(QuantizeSource::open(input)?, opts, false, None)?.report)
}

struct Plan {
    writer: GgufWriter,
    report: QuantizeReport,
    layout: Layout,
}

/// `check_copies`: validate the tensors copied unchanged too (llama-quantize loads every tensor
/// with validation; its dry run loads none).
fn plan(
    source: QuantizeSource,
    opts: &QuantizeOptions,
    check_copies: bool,
    pool: Option<Arc<rayon::ThreadPool>>,
) -> Result<Plan> {
    let QuantizeSource {
        label,
        kvs,
        mut entries,
        input_bytes,
    } = source;
    let input = label.as_path();
    // The type rules read the hyper-parameters as llama.cpp's loader sees them: overridden.
    let model = model_params(&apply_overrides(&kvs, &opts.kv_overrides));
    let imatrix = load_imatrix(opts)?;
    let select = SelectOptions {
        ftype: opts.ftype,
        pure: opts.pure,
        output_tensor_type: opts.output_tensor_type,
        token_embedding_type: opts.token_embedding_type,
        leave_output_tensor: opts.leave_output_tensor,
        has_imatrix: imatrix.is_some(),
        tensor_types: opts.tensor_types.clone(),
    };

    entries.sort_by(|a, b| compare_tensor_names(&a.1.name, &b.1.name));
    // --prune-layers: drop and renumber blocks, visiting tensors in llama-quantize's order.
    let mut remap = LayerRemap::new(&opts.prune_layers);
    let mut kept = Vec::with_capacity(entries.len());
    for (shard, info, tensor) in entries {
        if let Some(new_name) = remap.remap(&info.name) {
            kept.push((shard, new_name, info, tensor));
        }
    }
    let mut entries = kept;
    let layout = if opts.keep_split {
        // Tensors in the input's shard order; one output shard per input shard.
        entries.sort_by_key(|e| (e.0, e.2.offset));
        let n_split = entries.iter().map(|e| e.0 + 1).max().unwrap_or(1);
        let mut sizes = vec![0usize; n_split];
        for e in &entries {
            sizes[e.0] += 1;
        }
        if let Some(empty) = sizes.iter().position(|&n| n == 0) {
            return Err(Error::Usage(format!(
                "{}: `keep_split`: shard {} of the input would have no tensors left",
                input.display(),
                empty + 1
            )));
        }
        Layout::KeepSplit(sizes)
    } else {
        Layout::Single
    };
    let arch = model.arch.clone();
    let mut selector = TypeSelector::new(model, select, entries.iter().map(|e| e.1.as_str()));

    // Decide everything (and refuse what cannot be done) before writing a byte.
    let mut planned = Vec::with_capacity(entries.len());
    for (_, new_name, original, tensor) in entries {
        // The output's name; `original` keeps the input's name for the importance matrix.
        let info = TensorInfo {
            name: new_name,
            ..original.clone()
        };
        let tensor = if info.name != original.name {
            Tensor {
                name: info.name.clone(),
                ..tensor
            }
        } else {
            tensor
        };
        let desc = TensorDesc {
            name: &info.name,
            ne: &info.ne,
            ggml_type: info.ggml_type,
        };
        let choice = selector
            .choose_type(&desc)
            .map_err(|e| Error::invalid(input, e.to_string()))?;
        let (from, to) = (info.ggml_type, choice.ggml_type);
        // Without any imatrix llama-quantize refuses every eligible tensor whose target type needs
        // one, even a tensor that already has that type and would only be copied.
        if imatrix.is_none() && choice.quantizable && choice.requires_imatrix {
            return Err(Error::Usage(format!(
                "{}: tensor {} becomes {to}, which needs an importance matrix (`imatrix`)",
                input.display(),
                info.name
            )));
        }
        let mut importance = None;
        if from != to {
            if from.is_quantized() && !opts.allow_requantize {
                return Err(Error::Usage(format!(
                    "{}: tensor {} is already quantized ({from}); requantizing to {to} loses quality and is disabled without `allow_requantize`",
                    input.display(),
                    info.name
                )));
            }
            if from != GgmlType::F32 && crate::kernels(from).is_none() {
                return Err(Error::Unsupported(format!(
                    "{}: tensor {}: cannot convert type {from} to f32",
                    input.display(),
                    info.name
                )));
            }
            if !crate::can_quantize(to) {
                return Err(Error::Unsupported(format!(
                    "{}: tensor {} would become {to} under {}, which ckpt cannot produce yet",
                    input.display(),
                    info.name,
                    opts.ftype
                )));
            }
            if let Some(im) = &imatrix {
                importance = im.for_tensor(input, &original)?;
            }
            if choice.requires_imatrix && importance.is_none() {
                return Err(Error::Usage(format!(
                    "{}: tensor {} becomes {to}, which needs an importance matrix (`imatrix`)",
                    input.display(),
                    info.name
                )));
            }
        }
        planned.push(Planned {
            info,
            input: tensor,
            to,
            fallback_from: choice.fallback_from,
            importance,
        });
    }

    let mut writer = GgufWriter::new();
    for (k, v) in &kvs {
        if k != QUANTIZATION_VERSION_KEY && k != FILE_TYPE_KEY && !SPLIT_KEYS.contains(&k.as_str())
        {
            writer.add_kv(k, v.clone());
        }
    }
    writer.add_kv(
        QUANTIZATION_VERSION_KEY,
        GgufValue::U32(QUANTIZATION_VERSION),
    );
    writer.add_kv(FILE_TYPE_KEY, GgufValue::U32(opts.ftype.id()));
    // llama-quantize applies the user's overrides, then its imatrix records, each moved last.
    for o in &opts.kv_overrides {
        writer.set_kv(&o.key, o.gguf_value());
    }
    if let Some(im) = &imatrix {
        for (k, v) in im.metadata_kvs() {
            writer.set_kv(&k, v);
        }
    }
    if !opts.prune_layers.is_empty() {
        writer.set_kv(
            &format!("{arch}.block_count"),
            GgufValue::U32(remap.block_count() as u32),
        );
    }
    writer
        .set_dims_mode(ckpt_gguf::DimsMode::TrimTrailingOnes)
        .set_alignment(32);

    let mut reports = Vec::with_capacity(planned.len());
    for p in planned {
        let Planned {
            info,
            input: tensor,
            to,
            fallback_from,
            importance,
        } = p;
        let from = info.ggml_type;
        let numel = info.numel();
        let ne0 = info.ne.first().copied().unwrap_or(1).max(1);
        let bytes_out = to.row_bytes(ne0).unwrap_or(0) * (numel / ne0);
        reports.push(TensorReport {
            name: info.name.clone(),
            ne: info.ne.clone(),
            from,
            to,
            fallback_from,
            used_imatrix: importance.is_some(),
            bytes_in: info.nbytes(),
            bytes_out,
        });
        if from == to {
            let tensor = match &tensor.data {
                TensorData::Rows(rows) if check_copies => checked_rows(input, &info, &tensor, rows),
                _ => {
                    if check_copies {
                        check_copy(input, &info, &tensor)?;
                    }
                    tensor
                }
            };
            writer.add_tensor(tensor);
            continue;
        }
        writer.add_tensor(banded_quantize(
            input,
            &info,
            tensor,
            to,
            importance,
            pool.clone(),
        )?);
    }

    let n_fallback = selector.n_fallback;
    let output_bytes = writer.total_size()?;
    let report = QuantizeReport {
        ftype: opts.ftype,
        tensors: reports,
        n_fallback,
        input_bytes,
        output_bytes,
        outputs: Vec::new(),
    };
    Ok(Plan {
        writer,
        report,
        layout,
    })
}

/// The importance matrix with only the entries `--include-weights`/`--exclude-weights` select;
/// None without one, or when no entry is left (llama-quantize then runs without any).
fn load_imatrix(opts: &QuantizeOptions) -> Result<Option<ImportanceMatrix>> {
    let Some(p) = &opts.imatrix else {
        return Ok(None);
    };
    let label = opts
        .imatrix_label
        .clone()
        .unwrap_or_else(|| p.to_string_lossy().into_owned());
    let mut m = ImportanceMatrix::load(p, &label)?;
    m.entries.retain(|name, _| opts.imatrix_weights.keeps(name));
    Ok((!m.entries.is_empty()).then_some(m))
}

/// Elements widened to f32 and quantized at a time (4 MB of f32): memory per worker does not
/// depend on the tensor's size.
const BAND_ELEMS: usize = 1 << 20;

/// Bytes of a tensor copied unchanged that are checked at a time.
const CHECK_BYTES: usize = 8 << 20;

fn invalid_input(path: &Path, name: &str, from: GgmlType, at: usize) -> Error {
    Error::invalid(
        path,
        format!("tensor {name} has invalid data: NaN or infinity in {from} element/block {at}"),
    )
}

/// llama-quantize validates the tensors it copies too; mapped data is checked by bands whose
/// pages are released as they are done.
fn check_copy(input: &Path, info: &TensorInfo, tensor: &Tensor) -> Result<()> {
    let from = info.ggml_type;
    let Some((buf, start, len)) = tensor.mapped_range() else {
        let bytes = tensor.bytes()?;
        if let Some(at) = crate::validate::first_invalid_block(from, &bytes) {
            return Err(invalid_input(input, &info.name, from, at));
        }
        drop(bytes);
        tensor.release();
        return Ok(());
    };
    tensor.validate()?;
    let unit = from.type_size();
    let step = (CHECK_BYTES / unit).max(1) * unit;
    let mut off = 0;
    while off < len {
        let n = step.min(len - off);
        let band = &buf.bytes()[start + off..start + off + n];
        if let Some(at) = crate::validate::first_invalid_block(from, band) {
            return Err(invalid_input(input, &info.name, from, off / unit + at));
        }
        buf.release(start + off, n);
        off += n;
    }
    Ok(())
}

/// A tensor computed by bands of rows (a converter's cast) copied unchanged: each band is
/// validated as it is written, instead of computing the whole tensor once more to check it.
fn checked_rows(
    input: &Path,
    info: &TensorInfo,
    tensor: &Tensor,
    rows: &Arc<ckpt_core::RowFill>,
) -> Tensor {
    let (path, name, from) = (input.to_path_buf(), info.name.clone(), info.ggml_type);
    let inner = rows.clone();
    let row_bytes = rows.row_bytes;
    Tensor::from_rows(
        tensor.name.clone(),
        tensor.dtype,
        tensor.shape.clone(),
        rows.rows,
        row_bytes,
        move |range, dst| {
            let first = range.start * row_bytes;
            (inner.fill)(range, dst)?;
            if let Some(at) = crate::validate::first_invalid_block(from, dst) {
                return Err(invalid_input(
                    &path,
                    &name,
                    from,
                    first / from.type_size() + at,
                ));
            }
            Ok(())
        },
    )
}

/// How a quantized tensor reads its source a band of ggml rows at a time.
enum BandReader {
    /// Dense little-endian bytes of a mapped file at this offset.
    Mapped { buffer: Arc<Buffer>, start: usize },
    /// A tensor computed by bands of rows (the one-step converter's cast tensors); one of its
    /// rows is `fill_row_bytes`. `value_row_elems`: a float tensor that gives its rows as f32
    /// values directly ([`ckpt_core::RowFill::values`]), a row being that many values; they are
    /// read instead of bytes that would be encoded, checked and widened again.
    Rows {
        fill: Arc<ckpt_core::RowFill>,
        fill_row_bytes: usize,
        value_row_elems: Option<usize>,
    },
    /// Anything else is produced whole once, kept until its last band is done.
    Whole(std::sync::Mutex<Option<Arc<Vec<u8>>>>),
}

impl BandReader {
    fn for_tensor(tensor: &Tensor) -> BandReader {
        if let Some((buffer, start, _)) = tensor.mapped_range() {
            if let TensorData::View(v) = &tensor.data {
                // the Arc of the buffer mapped_range borrows from
                debug_assert!(std::ptr::eq(buffer, &*v.storage.buffer));
                return BandReader::Mapped {
                    buffer: v.storage.buffer.clone(),
                    start,
                };
            }
        }
        match &tensor.data {
            TensorData::Rows(r) => {
                let float = match tensor.dtype.to_ggml() {
                    Some(t @ (GgmlType::F32 | GgmlType::F16 | GgmlType::BF16)) => Some(t),
                    _ => None,
                };
                BandReader::Rows {
                    fill: r.clone(),
                    fill_row_bytes: r.row_bytes,
                    value_row_elems: float
                        .filter(|t| r.values.is_some() && r.row_bytes % t.type_size() == 0)
                        .map(|t| r.row_bytes / t.type_size()),
                }
            }
            _ => BandReader::Whole(std::sync::Mutex::new(None)),
        }
    }

    /// ggml rows (of `row_bytes` bytes) that a band must be a multiple of.
    fn granularity(&self, row_bytes: usize, n_rows: usize) -> usize {
        match self {
            BandReader::Rows { fill_row_bytes, .. } if *fill_row_bytes > 0 && row_bytes > 0 => {
                if fill_row_bytes.is_multiple_of(row_bytes)
                    && n_rows.is_multiple_of(fill_row_bytes / row_bytes)
                {
                    fill_row_bytes / row_bytes
                } else if row_bytes.is_multiple_of(*fill_row_bytes) {
                    1
                } else {
                    n_rows.max(1)
                }
            }
            _ => 1,
        }
    }

    /// Hands `f` the source bytes `range` (a whole number of the granularity's rows).
    fn with_band<R>(
        &self,
        tensor: &Tensor,
        range: std::ops::Range<usize>,
        scratch: &mut Vec<u8>,
        f: impl FnOnce(&[u8]) -> Result<R>,
    ) -> Result<R> {
        match self {
            BandReader::Mapped { buffer, start } => {
                let band = &buffer.bytes()[start + range.start..start + range.end];
                let r = f(band);
                // done with these pages; a shared edge page is simply mapped again
                buffer.release(start + range.start, range.len());
                r
            }
            BandReader::Rows {
                fill,
                fill_row_bytes,
                ..
            } => {
                scratch.resize(range.len(), 0);
                let rows = range.start / fill_row_bytes..range.end / fill_row_bytes;
                (fill.fill)(rows, scratch)?;
                f(scratch)
            }
            BandReader::Whole(cache) => {
                let bytes = {
                    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                    match &*c {
                        Some(b) => b.clone(),
                        None => {
                            let b = Arc::new(tensor.bytes()?.into_owned());
                            tensor.release();
                            *c = Some(b.clone());
                            b
                        }
                    }
                };
                let end = range.end.min(bytes.len());
                f(&bytes[range.start.min(end)..end])
            }
        }
    }

    /// Fills `vals` with the values of the source elements `range` (counted in elements, a
    /// whole number of the granularity's rows) when the source gives values; `Ok(false)` when
    /// it gives bytes only (use [`BandReader::with_band`]).
    fn values(&self, range: std::ops::Range<usize>, vals: &mut [f32]) -> Result<bool> {
        let BandReader::Rows {
            fill,
            value_row_elems: Some(per_row),
            ..
        } = self
        else {
            return Ok(false);
        };
        let Some(values) = &fill.values else {
            return Ok(false);
        };
        values(range.start / per_row..range.end / per_row, vals)?;
        Ok(true)
    }

    /// Called after the last band: nothing of the source needs to stay.
    fn finish(&self, tensor: &Tensor) {
        if let BandReader::Whole(cache) = self {
            *cache.lock().unwrap_or_else(|p| p.into_inner()) = None;
        }
        tensor.release();
    }
}

/// A quantized tensor produced by bands of rows as the writer asks for them: each band of source
/// rows is validated, widened to f32 (or dequantized), quantized (with the weights of its expert
/// slice when there is an importance matrix) and validated again, in bounded buffers. ggml
/// quantizes rows independently, so the bytes are those of the whole tensor at once.
fn banded_quantize(
    input: &Path,
    info: &TensorInfo,
    tensor: Tensor,
    to: GgmlType,
    importance: Option<Arc<Vec<f32>>>,
    pool: Option<Arc<rayon::ThreadPool>>,
) -> Result<Tensor> {
    let from = info.ggml_type;
    let name = info.name.clone();
    let numel = info.numel() as usize;
    let ne0 = info.ne.first().copied().unwrap_or(1).max(1) as usize;
    let n_rows = numel / ne0;
    let rows_per_matrix = info.ne.get(1).copied().unwrap_or(1).max(1) as usize;
    let row_in = from.row_bytes(ne0 as u64).map(|b| b as usize);
    let row_out = to.row_bytes(ne0 as u64).map(|b| b as usize);
    let (Some(row_in), Some(row_out)) = (row_in, row_out) else {
        return Err(Error::invalid(
            input,
            format!("tensor {name}: rows of {ne0} elements are not whole {from} -> {to} blocks"),
        ));
    };
    let reader = BandReader::for_tensor(&tensor);
    let g = reader.granularity(row_in, n_rows);
    let units = n_rows.div_ceil(g);
    let path = input.to_path_buf();
    let shape = tensor.shape.clone();
    Ok(Tensor::from_rows(
        info.name.clone(),
        DType::from_ggml(to),
        shape,
        units,
        g * row_out,
        move |range, dst| {
            let mut work = || -> Result<()> {
                let last = range.end == units;
                let per_band = (BAND_ELEMS / (g * ne0)).max(1);
                let band_rows = (per_band * g).min(range.len() * g);
                let mut values = vec![0f32; band_rows * ne0];
                let mut scratch = Vec::new();
                let mut unit = range.start;
                while unit < range.end {
                    let end = (unit + per_band).min(range.end);
                    let rows = unit * g..(end * g).min(n_rows);
                    let out = &mut dst[(unit - range.start) * g * row_out
                        ..(unit - range.start) * g * row_out + rows.len() * row_out];
                    let vals = &mut values[..rows.len() * ne0];
                    if reader.values(rows.start * ne0..rows.end * ne0, vals)? {
                        // the element the bytes' check would name
                        if let Some(at) = crate::validate::first_non_finite(vals) {
                            return Err(invalid_input(&path, &name, from, rows.start * ne0 + at));
                        }
                    } else {
                        reader.with_band(
                            &tensor,
                            rows.start * row_in..rows.end * row_in,
                            &mut scratch,
                            |bytes| {
                                if let Some(at) = crate::validate::first_invalid_block(from, bytes)
                                {
                                    let before = rows.start * ne0 / from.block_size();
                                    return Err(invalid_input(&path, &name, from, before + at));
                                }
                                crate::dequantize_into(from, bytes, vals).map_err(|e| {
                                    Error::invalid(&path, format!("tensor {name}: {e}"))
                                })
                            },
                        )?;
                    }
                    quantize_band(to, vals, ne0, rows.start, rows_per_matrix, &importance, out)?;
                    if let Some(at) = crate::validate::first_invalid_block(to, out) {
                        let before = rows.start * ne0 / to.block_size();
                        return Err(Error::invalid(
                            &path,
                            format!("tensor {name}: quantized data validation failed ({to} block {} has a NaN or infinite scale)", before + at),
                        ));
                    }
                    unit = end;
                }
                if last {
                    reader.finish(&tensor);
                }
                Ok(())
            };
            match &pool {
                Some(p) => p.install(work),
                None => work(),
            }
        },
    ))
}

/// Quantizes the ggml rows starting at `first_row`; with an importance matrix each expert slice
/// (`rows_per_matrix` rows, ne2) uses its own weights.
fn quantize_band(
    to: GgmlType,
    values: &[f32],
    ne0: usize,
    first_row: usize,
    rows_per_matrix: usize,
    importance: &Option<Arc<Vec<f32>>>,
    out: &mut [u8],
) -> Result<()> {
    let Some(weights) = importance else {
        return crate::quantize_into(to, values, ne0, None, out);
    };
    let row_out = out.len() / (values.len() / ne0).max(1);
    let n = values.len() / ne0;
    let mut r = 0;
    while r < n {
        let matrix = (first_row + r) / rows_per_matrix;
        let end = ((matrix + 1) * rows_per_matrix - first_row).min(n);
        let w = weights.get(matrix * ne0..(matrix + 1) * ne0);
        crate::quantize_into(
            to,
            &values[r * ne0..end * ne0],
            ne0,
            w,
            &mut out[r * row_out..end * row_out],
        )?;
        r = end;
    }
    Ok(())
}
