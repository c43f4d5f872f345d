//! GGUF -> GGUF quantization producing the same file as llama-quantize: KVs in input order with
//! `general.quantization_version` and `general.file_type` moved to the end, tensors sorted by
//! (layer, name), ggml's n_dims rule, 32-byte alignment, tensors quantized one at a time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_core::{DType, Error, GgmlType, Result, Tensor};
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
    pub ftype: Ftype,
    /// `--pure`: no mix rules, every quantizable tensor gets the ftype's default type.
    pub pure: bool,
    pub output_tensor_type: Option<GgmlType>,
    pub token_embedding_type: Option<GgmlType>,
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
    pub name: String,
    /// ggml dims, ne0 first.
    pub ne: Vec<u64>,
    pub from: GgmlType,
    pub to: GgmlType,
    /// The type the mix wanted when the shape forced a fallback.
    pub fallback_from: Option<GgmlType>,
    pub used_imatrix: bool,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// How many tensors the shape fallback sent from one wanted type to one used type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FallbackCount {
    pub wanted: GgmlType,
    pub used: GgmlType,
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

#[derive(Clone, Debug)]
pub struct QuantizeReport {
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
pub fn model_params(kvs: &[(String, GgufValue)]) -> ModelParams {
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

/// Widens (or dequantizes) a tensor's data to f32 exactly as llama-quantize does.
fn to_f32(path: &Path, name: &str, t: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    if t == GgmlType::F32 {
        return Ok(bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect());
    }
    crate::dequantize(t, bytes, n).map_err(|e| Error::invalid(path, format!("tensor {name}: {e}")))
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
    quantize_gguf_with_progress(input, output, opts, |_, _| {})
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

/// [`quantize_gguf`] calling `progress(done, total)` (output data bytes) after each tensor.
pub fn quantize_gguf_with_progress(
    input: &Path,
    output: &Path,
    opts: &QuantizeOptions,
    progress: impl FnMut(u64, u64) + Send + 'static,
) -> Result<QuantizeReport> {
    refuse_same_file(input, output)?;
    if opts.keep_split && opts.split.is_some() {
        return Err(Error::Usage(
            "--keep-split keeps the input's shards; it cannot be combined with --split-max-size/--split-max-tensors".into(),
        ));
    }
    let plan = plan(input, opts, true)?;
    let mut report = plan.report;
    let mut writer = plan.writer;
    writer.set_progress(progress);
    let layout = plan.layout;
    let write = move || write_output(writer, output, &layout, opts);
    if opts.threads > 0 {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(opts.threads)
            .build()
            .map_err(|e| {
                Error::Other(format!("cannot start {} worker threads: {e}", opts.threads))
            })?;
        report.outputs = pool.install(write)?;
    } else {
        report.outputs = write()?;
    }
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
    Ok(plan(input, opts, false)?.report)
}

struct Plan {
    writer: GgufWriter,
    report: QuantizeReport,
    layout: Layout,
}

/// `check_copies`: validate the tensors copied unchanged too (llama-quantize loads every tensor
/// with validation; its dry run loads none).
fn plan(input: &Path, opts: &QuantizeOptions, check_copies: bool) -> Result<Plan> {
    let split = ckpt_gguf::open_split(input)?;
    let kvs = split.kvs().to_vec();
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

    let mut entries: Vec<(usize, TensorInfo, Tensor)> = split
        .tensor_infos()
        .into_iter()
        .map(|(shard, i)| (shard, i.clone()))
        .zip(split.tensors())
        .map(|((shard, i), t)| (shard, i, t))
        .collect();
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
                "{}: --keep-split: shard {} of the input would have no tensors left",
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
                "{}: tensor {} becomes {to}, which needs an importance matrix (--imatrix)",
                input.display(),
                info.name
            )));
        }
        let mut importance = None;
        if from != to {
            if from.is_quantized() && !opts.allow_requantize {
                return Err(Error::Usage(format!(
                    "{}: tensor {} is already quantized ({from}); requantizing to {to} loses quality and is disabled without --allow-requantize",
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
                    "{}: tensor {} becomes {to}, which needs an importance matrix (--imatrix)",
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
            if check_copies {
                let bytes = tensor.bytes()?;
                if let Some(at) = crate::validate::first_invalid_block(from, &bytes) {
                    return Err(Error::invalid(
                        input,
                        format!("tensor {} has invalid data: NaN or infinity in {from} element/block {at}", info.name),
                    ));
                }
                drop(bytes);
                tensor.release();
            }
            writer.add_tensor(tensor);
            continue;
        }
        let shape = tensor.shape.clone();
        let path = input.to_path_buf();
        let name = info.name.clone();
        let ne = info.ne.clone();
        writer.add_tensor(Tensor::computed(
            info.name.clone(),
            DType::from_ggml(to),
            shape,
            move || {
                let bytes = tensor.bytes()?;
                if let Some(at) = crate::validate::first_invalid_block(from, &bytes) {
                    return Err(Error::invalid(
                        &path,
                        format!("tensor {name} has invalid data: NaN or infinity in {from} element/block {at}"),
                    ));
                }
                let values = to_f32(&path, &name, from, &bytes, numel as usize)?;
                drop(bytes);
                tensor.release();
                let weights = importance.as_deref().map(|v| v.as_slice());
                let out = quantize_tensor(to, &values, &ne, weights)?;
                if let Some(at) = crate::validate::first_invalid_block(to, &out) {
                    return Err(Error::invalid(
                        &path,
                        format!("tensor {name}: quantized data validation failed ({to} block {at} has a NaN or infinite scale)"),
                    ));
                }
                Ok(out)
            },
        ));
    }

    let n_fallback = selector.n_fallback;
    let input_bytes = split.shards.iter().map(|s| s.file_size).sum();
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

/// Quantizes one tensor; with an importance matrix each expert slice (ne2) uses its own weights.
fn quantize_tensor(
    to: GgmlType,
    values: &[f32],
    ne: &[u64],
    importance: Option<&[f32]>,
) -> Result<Vec<u8>> {
    let n_per_row = ne.first().copied().unwrap_or(1) as usize;
    let Some(weights) = importance else {
        return crate::quantize(to, values, n_per_row, None);
    };
    let rows_per_matrix = ne.get(1).copied().unwrap_or(1) as usize;
    let matrix = (n_per_row * rows_per_matrix).max(1);
    let mut out = Vec::new();
    for (i, slice) in values.chunks(matrix).enumerate() {
        let w = weights.get(i * n_per_row..(i + 1) * n_per_row);
        out.extend(crate::quantize(to, slice, n_per_row, w)?);
    }
    Ok(out)
}
