//! `ckpt convert` between safetensors and PyTorch `.bin`: open the source, plan the output
//! tensors (shared-memory de-duplication, casts), split into shards, write each file under a
//! temporary name, re-read and compare every tensor, then rename into place.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ckpt_core::atomic::{check_destination, AtomicDir, AtomicFile};
use ckpt_core::shard::{plan_shards, shard_file_name, ShardItem};
use ckpt_core::{
    Checkpoint, DType, Error, Format, ProgressEvent, Result, SharedProgress, Tensor, TensorData,
};
use rayon::prelude::*;
use serde::Serialize;

use crate::cast::cast_tensor;
use crate::shared::{dedup, tied_aliases};
use crate::source::{self, OpenOptions};

/// The weight format a conversion writes (`safetensors` or `bin` in the JSON report).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// safetensors (`model.safetensors`, `model-00001-of-0000N.safetensors` in a folder).
    Safetensors,
    /// A PyTorch zip checkpoint as `torch.save` writes it (`pytorch_model.bin` in a folder).
    Bin,
}

impl Target {
    /// The target a file name asks for by its extension (`.safetensors`; `.bin`, `.pt`, `.pth`,
    /// case-insensitive), or `None` for any other name (a folder, for instance).
    pub fn from_path(p: &Path) -> Option<Target> {
        let ext = p.extension()?.to_string_lossy().to_ascii_lowercase();
        match ext.as_str() {
            "safetensors" => Some(Target::Safetensors),
            "bin" | "pt" | "pth" => Some(Target::Bin),
            _ => None,
        }
    }
    fn stem_and_ext(self) -> (&'static str, &'static str) {
        match self {
            Target::Safetensors => ("model", "safetensors"),
            Target::Bin => ("pytorch_model", "bin"),
        }
    }
}

/// Options of [`convert()`] (the flags of `ckpt convert`); the default converts without casting
/// into one file, without verification, refusing to replace an existing output.
#[derive(Clone, Default)]
pub struct ConvertOptions {
    /// The output format; `None`: from the destination's extension, else the other format than
    /// the source's (a `.bin` source gives safetensors and the reverse), else safetensors.
    pub to: Option<Target>,
    /// Cast the float tensors (F64/F32/F16/BF16, and FP8 widened) to this dtype ([`cast`](crate::cast)).
    pub dtype: Option<DType>,
    /// Split the output into shards of at most this many bytes (transformers'
    /// `max_shard_size`), written as a model folder (with an index when there are several).
    pub max_shard_size: Option<u64>,
    /// Write every tensor that shares memory with another as its own copy instead of keeping one
    /// name and recording the others as `dropped -> kept` metadata.
    pub materialize_shared: bool,
    /// Write views whose dense form is far larger than their storage (`expand()`ed tensors).
    pub allow_expanded_views: bool,
    /// Convert only this subtree of a pickled checkpoint (`state_dict`, `model`, …), as
    /// [`OpenOptions::key`].
    pub key: Option<String>,
    /// Re-read every written file and compare each tensor with what was planned before the
    /// output is renamed into place (a mismatch fails with [`Error::Mismatch`]).
    pub verify: bool,
    /// Replace an existing output; without it an existing destination is refused.
    pub overwrite: bool,
    /// Receives the `writing` and `verifying` progress events.
    pub progress: Option<SharedProgress>,
}

/// What [`convert()`] wrote (the `--json` report of `ckpt convert`).
#[derive(Debug, Clone, Serialize)]
pub struct ConvertReport {
    /// The source's format name ([`Format::name`]).
    pub source_format: String,
    /// The format written.
    pub target: Target,
    /// The destination as given: a file, or a model folder.
    pub output: PathBuf,
    /// The weight files written (and the index of a sharded folder).
    pub files: Vec<PathBuf>,
    /// Number of tensors written.
    pub tensors: usize,
    /// Total tensor data bytes written (headers not counted).
    pub bytes: u64,
    /// dropped name -> kept name (shared memory written once).
    pub dropped_shared: BTreeMap<String, String>,
    /// Names of the companion files (config, tokenizer, …) copied beside the weights.
    pub copied_files: Vec<String>,
    /// Non-tensor values of a pickled checkpoint that have no place in the output.
    pub skipped_values: Vec<String>,
    /// Whether every written tensor was re-read and checked ([`ConvertOptions::verify`]).
    pub verified: bool,
    /// Things the user should know that did not stop the conversion (overlapping views written
    /// as separate copies, …).
    pub warnings: Vec<String>,
}

/// The tensors a conversion will write, after de-duplication and casting.
pub struct Plan {
    /// The tensors to write, in source order (lazy: cast when their bytes are read).
    pub tensors: Vec<Tensor>,
    /// The safetensors `__metadata__` to write (`format: pt` and the `dropped -> kept` aliases;
    /// empty for a `.bin`).
    pub metadata: BTreeMap<String, String>,
    /// Names left out because they share memory with a kept tensor: dropped name -> kept name.
    pub dropped: BTreeMap<String, String>,
    /// Warnings for the report.
    pub warnings: Vec<String>,
}

/// Plans the tensors of `ckpt` for `target`: de-duplicates shared memory (keeping names not in
/// `discard` when it can), dequantizes ggml types, applies [`ConvertOptions::dtype`]. Fails when
/// a tensor has no `target` dtype, cannot be dequantized, or is an expanded view not allowed.
pub(crate) fn plan(
    ckpt: &Checkpoint,
    target: Target,
    opts: &ConvertOptions,
    discard: &[String],
) -> Result<Plan> {
    let mut warnings = Vec::new();
    let (indices, dropped) = if opts.materialize_shared {
        ((0..ckpt.tensors.len()).collect::<Vec<_>>(), BTreeMap::new())
    } else {
        let d = dedup(&ckpt.tensors, discard);
        for g in &d.materialised_groups {
            warnings.push(format!(
                "tensors {} overlap in memory but none covers the whole storage; each is written as its own copy",
                g.join(", ")
            ));
        }
        (d.keep, d.dropped)
    };
    let mut tensors = Vec::with_capacity(indices.len());
    for i in indices {
        let t = &ckpt.tensors[i];
        if !opts.allow_expanded_views {
            refuse_expanded_view(t)?;
        }
        if let DType::Ggml(g) = t.dtype {
            // GGUF sources: quantized tensors are expanded to f32 (or --dtype) like ggml does.
            if ckpt_quant::kernels(g).is_none() {
                return Err(Error::Unsupported(format!(
                    "tensor '{}' is {g}, which ckpt cannot dequantize",
                    t.name
                )));
            }
            tensors.push(crate::cast::dequantize_tensor(
                t,
                opts.dtype.unwrap_or(DType::F32),
            ));
            continue;
        }
        if target == Target::Safetensors && t.dtype.safetensors_name().is_none() {
            return Err(Error::Unsupported(format!(
                "tensor '{}': safetensors has no dtype for {}",
                t.name, t.dtype
            )));
        }
        tensors.push(match opts.dtype {
            Some(d) => cast_tensor(t, d),
            None => t.clone(),
        });
    }
    let mut metadata = BTreeMap::new();
    if target == Target::Safetensors {
        if ckpt.format == Format::Safetensors {
            metadata = ckpt.metadata.clone();
        }
        metadata
            .entry("format".to_string())
            .or_insert_with(|| "pt".to_string());
        for (d, k) in &dropped {
            metadata.entry(d.clone()).or_insert_with(|| k.clone());
        }
    }
    Ok(Plan {
        tensors,
        metadata,
        dropped,
        warnings,
    })
}

/// A view is "expanded" when its dense form exceeds both this many times its storage...
pub(crate) const EXPANDED_VIEW_RATIO: u64 = 16;
/// ...and this many bytes (`torch.zeros(1).expand(100000, 100000)` is 4 bytes stored, 40 GB dense).
pub(crate) const EXPANDED_VIEW_MIN_BYTES: u64 = 1 << 30;

/// Refuses (exit 5) to densify a view far larger than the storage it reads, unless asked to.
fn refuse_expanded_view(t: &Tensor) -> Result<()> {
    let Some(v) = t.view() else { return Ok(()) };
    let (dense, stored) = (t.nbytes(), v.storage.len as u64);
    if dense > EXPANDED_VIEW_MIN_BYTES && dense / EXPANDED_VIEW_RATIO > stored {
        return Err(Error::Unsupported(format!(
            "{}: tensor '{}' is a view of {stored} stored bytes that expands to {dense} bytes \
             (shape {:?}, strides {:?}); writing it would take {dense} bytes. \
             Pass --allow-expanded-views to write it anyway",
            v.storage.buffer.path.display(),
            t.name,
            t.shape,
            v.strides.as_deref().unwrap_or(&[]),
        )));
    }
    Ok(())
}

fn emit(progress: &Option<SharedProgress>, ev: ProgressEvent<'_>) {
    ckpt_core::progress::emit(progress.as_ref(), ev)
}

/// Converts `src` (a weight file, an index, or a model folder) to `dst`: a single file when
/// `dst` has a weight extension, else a model folder with the source folder's companion files
/// (config, tokenizer, …) copied. The output is written under a temporary name and renamed into
/// place only once complete (and verified, with [`ConvertOptions::verify`]).
///
/// Fails with [`Error::Exists`] when `dst` exists without [`ConvertOptions::overwrite`], with
/// [`Error::Usage`] when it would replace the source, and with the reader's error when the
/// source cannot be opened; a `.bin`
/// output the torch reader would refuse is refused before anything is written.
pub fn convert(src: &Path, dst: &Path, opts: &ConvertOptions) -> Result<ConvertReport> {
    let target = opts
        .to
        .or_else(|| Target::from_path(dst))
        .or_else(|| {
            Target::from_path(src).map(|t| {
                if t == Target::Bin {
                    Target::Safetensors
                } else {
                    Target::Bin
                }
            })
        })
        .unwrap_or(Target::Safetensors);
    let layout = Layout::for_destination(dst, opts.max_shard_size.is_some())?;
    check_destination(dst, opts.overwrite)?;
    refuse_overwriting_source(src, dst)?;

    let open_opts = OpenOptions {
        key: opts.key.clone(),
    };
    let (ckpt, companions, config) = if src.is_dir() {
        let files = source::find_model_files(src)?;
        let ck = source::open_model_files(&files, &open_opts)?;
        let companions = source::companion_files(src, &files)?;
        let config = ckpt_core::hf::read_side_text(&src.join("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
        (ck, companions, config)
    } else {
        let ck = source::open(src, &open_opts)?;
        let config = src
            .parent()
            .map(|d| d.join("config.json"))
            .and_then(|p| ckpt_core::hf::read_side_text(&p).ok())
            .and_then(|t| serde_json::from_str(&t).ok());
        (ck, Vec::new(), config)
    };
    if ckpt.tensors.is_empty() {
        return Err(Error::invalid(src, "no tensors found"));
    }
    let discard = config.as_ref().map(tied_aliases).unwrap_or_default();
    let plan = plan(&ckpt, target, opts, &discard)?;
    let total: u64 = plan.tensors.iter().map(|t| t.nbytes()).sum();
    let mut report = ConvertReport {
        source_format: ckpt.format.name().to_string(),
        target,
        output: dst.to_path_buf(),
        files: Vec::new(),
        tensors: plan.tensors.len(),
        bytes: total,
        dropped_shared: plan.dropped.clone(),
        copied_files: Vec::new(),
        skipped_values: ckpt.extras.keys().cloned().collect(),
        verified: false,
        warnings: plan.warnings.clone(),
    };

    if target == Target::Bin {
        // Refuse before writing what the reader would refuse, and blame the source.
        for shard in shard_indices(&plan.tensors, opts.max_shard_size) {
            let tensors: Vec<Tensor> = shard.iter().map(|&i| plan.tensors[i].clone()).collect();
            crate::torch_io::check_limits(&tensors).map_err(|e| match e {
                Error::Unsupported(m) => Error::Unsupported(format!(
                    "{}: {} tensors cannot be written as a .bin: {m}",
                    src.display(),
                    plan.tensors.len()
                )),
                other => other,
            })?;
        }
    }
    let companions: Vec<Companion> = companions.into_iter().map(Companion::Copy).collect();
    let written = write_output(&layout, target, &plan, &companions, opts)?;
    report.files = written.files;
    report.copied_files = written.copied;
    report.verified = written.verified;
    Ok(report)
}

/// A non-weight file placed beside the weights of a model folder.
pub enum Companion {
    /// Copied from this path, under its file name.
    Copy(PathBuf),
    /// Written with these bytes (an edited config.json, …).
    Bytes(String, Vec<u8>),
    /// A module's own weights under this name (a sentence-transformers `2_Dense/model.safetensors`),
    /// always safetensors, written and verified like the model's.
    Weights(String, Vec<Tensor>),
}

/// What [`write_output`] wrote.
pub struct Written {
    /// The weight files (final paths), then the index of a sharded folder.
    pub files: Vec<PathBuf>,
    /// The companion files written, by their name in the folder.
    pub copied: Vec<String>,
    /// Whether the weight files were re-read and checked.
    pub verified: bool,
}

/// Where to write: a single file, or a model folder.
pub enum Layout {
    /// One weight file at this path.
    File(PathBuf),
    /// A model folder at this path (weights, sharded or not, and companion files).
    Folder(PathBuf),
}

impl Layout {
    /// A destination with a weight extension is a file, anything else a model folder.
    pub(crate) fn for_destination(dst: &Path, sharded: bool) -> Result<Layout> {
        if Target::from_path(dst).is_some() && !dst.is_dir() {
            if sharded {
                return Err(Error::Usage(format!(
                    "`max_shard_size` writes a model folder; give a directory instead of {}",
                    dst.display()
                )));
            }
            Ok(Layout::File(dst.to_path_buf()))
        } else {
            Ok(Layout::Folder(dst.to_path_buf()))
        }
    }
}

/// Writes the planned tensors (sharded when asked), the index and the companion files under a
/// temporary name, verifies every tensor by re-reading it, and renames the result into place.
///
/// Fails with [`Error::Mismatch`] when verification finds a difference, and with the writer's
/// error otherwise; on failure the temporary output is never renamed into place.
pub fn write_output(
    layout: &Layout,
    target: Target,
    plan: &Plan,
    companions: &[Companion],
    opts: &ConvertOptions,
) -> Result<Written> {
    let total: u64 = plan.tensors.iter().map(|t| t.nbytes()).sum();
    if target == Target::Bin {
        // Refuse before writing what the reader would refuse.
        for shard in shard_indices(&plan.tensors, opts.max_shard_size) {
            let tensors: Vec<Tensor> = shard.iter().map(|&i| plan.tensors[i].clone()).collect();
            crate::torch_io::check_limits(&tensors)?;
        }
    }
    let mut result = Written {
        files: Vec::new(),
        copied: Vec::new(),
        verified: false,
    };
    let crcs: WrittenCrcs = Default::default();
    let to_write = recording(&plan.tensors, &crcs);
    emit(
        &opts.progress,
        ProgressEvent::Start {
            phase: "writing",
            total,
        },
    );
    match layout {
        Layout::File(path) => {
            let mut file = AtomicFile::create(path, opts.overwrite)?;
            write_one(
                file.writer(),
                path,
                target,
                &to_write,
                &plan.metadata,
                &opts.progress,
            )?;
            file.sync()?;
            emit(&opts.progress, ProgressEvent::Finish);
            if opts.verify {
                verify_outputs(
                    &[(file.temp_path().to_path_buf(), plan.tensors.clone())],
                    &crcs,
                    &opts.progress,
                )?;
                result.verified = true;
            }
            file.commit()?;
            result.files.push(path.clone());
        }
        Layout::Folder(dir) => {
            let out = AtomicDir::create(dir, opts.overwrite)?;
            let (stem, ext) = target.stem_and_ext();
            let shards = shard_indices(&plan.tensors, opts.max_shard_size);
            let mut written = Vec::new();
            let mut weight_map = BTreeMap::new();
            for (si, shard) in shards.iter().enumerate() {
                let name = shard_file_name(stem, ext, si, shards.len());
                let path = out.path().join(&name);
                let tensors: Vec<Tensor> = shard.iter().map(|&i| to_write[i].clone()).collect();
                let mut f = AtomicFile::in_atomic_dir(&path)?;
                let meta = if shards.len() > 1 {
                    shard_metadata(plan, &tensors)
                } else {
                    plan.metadata.clone()
                };
                write_one(f.writer(), &path, target, &tensors, &meta, &opts.progress)?;
                f.commit()?;
                for t in &tensors {
                    weight_map.insert(t.name.clone(), name.clone());
                }
                written.push((path, tensors, name));
            }
            emit(&opts.progress, ProgressEvent::Finish);
            let index_name = format!("{stem}.{ext}.index.json");
            if shards.len() > 1 {
                let index = serde_json::json!({
                    "metadata": { "total_size": total },
                    "weight_map": weight_map,
                });
                let mut text = serde_json::to_string_pretty(&index).unwrap();
                text.push('\n');
                let p = out.path().join(&index_name);
                std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
            }
            for c in companions {
                let name = match c {
                    Companion::Copy(from) => {
                        let name = from.file_name().unwrap().to_string_lossy().into_owned();
                        std::fs::copy(from, out.path().join(&name))
                            .map_err(|e| Error::io(from, e))?;
                        name
                    }
                    Companion::Bytes(name, bytes) => {
                        // Our own names, possibly in a module folder (`1_Pooling/config.json`).
                        let to = out.path().join(name);
                        if let Some(parent) = to.parent() {
                            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                        }
                        std::fs::write(&to, bytes).map_err(|e| Error::io(&to, e))?;
                        name.clone()
                    }
                    Companion::Weights(name, tensors) => {
                        let to = out.path().join(name);
                        if let Some(parent) = to.parent() {
                            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
                        }
                        // Its own checksums: module tensors share names (`linear.weight`).
                        let module_crcs: WrittenCrcs = Default::default();
                        let rec = recording(tensors, &module_crcs);
                        let mut f = AtomicFile::in_atomic_dir(&to)?;
                        let mut meta = BTreeMap::new();
                        meta.insert("format".to_string(), "pt".to_string());
                        write_one(f.writer(), &to, Target::Safetensors, &rec, &meta, &None)?;
                        f.commit()?;
                        if opts.verify {
                            verify_outputs(&[(to, tensors.clone())], &module_crcs, &None)?;
                        }
                        name.clone()
                    }
                };
                result.copied.push(name);
            }
            if opts.verify {
                let jobs: Vec<(PathBuf, Vec<Tensor>)> = written
                    .iter()
                    .map(|(p, t, _)| (p.clone(), t.clone()))
                    .collect();
                verify_outputs(&jobs, &crcs, &opts.progress)?;
                result.verified = true;
            }
            out.commit()?;
            result.files = written.iter().map(|(_, _, n)| dir.join(n)).collect();
            if shards.len() > 1 {
                result.files.push(dir.join(index_name));
            }
        }
    }
    Ok(result)
}

/// The tensors of each output file (one file without a maximum shard size).
fn shard_indices(tensors: &[Tensor], max_shard_size: Option<u64>) -> Vec<Vec<usize>> {
    match max_shard_size {
        Some(max) => {
            let items: Vec<ShardItem> = tensors
                .iter()
                .map(|t| ShardItem {
                    size: t.nbytes(),
                    storage: None,
                })
                .collect();
            plan_shards(&items, max)
        }
        None => vec![(0..tensors.len()).collect()],
    }
}

/// A shard's metadata: the common entries, plus the `dropped -> kept` aliases whose kept tensor
/// is in this shard.
fn shard_metadata(plan: &Plan, shard: &[Tensor]) -> BTreeMap<String, String> {
    let mut out = plan.metadata.clone();
    out.retain(|k, _| !plan.dropped.contains_key(k));
    for (dropped, kept) in &plan.dropped {
        if shard.iter().any(|t| &t.name == kept) {
            out.insert(dropped.clone(), kept.clone());
        }
    }
    out
}

fn write_one(
    w: &mut std::io::BufWriter<std::fs::File>,
    path: &Path,
    target: Target,
    tensors: &[Tensor],
    metadata: &BTreeMap<String, String>,
    progress: &Option<SharedProgress>,
) -> Result<()> {
    let mut tick = |n: u64| emit(progress, ProgressEvent::Advance { bytes: n });
    match target {
        Target::Safetensors => ckpt_safetensors::write_to_file(w, tensors, metadata, &mut tick),
        Target::Bin => {
            let archive = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "archive".into());
            crate::torch_io::write_to(w, &archive, tensors, &mut tick)
        }
    }
    .map_err(|e| match e {
        Error::Other(m) => Error::Other(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Checksums of computed tensors, taken as they are written, so verification need not compute
/// them a second time.
pub(crate) type WrittenCrcs = Arc<Mutex<HashMap<String, u32>>>;

/// Wraps computed tensors so their checksum is recorded when the writer pulls their bytes; views
/// are left alone (verification compares them with the source directly).
fn recording(tensors: &[Tensor], crcs: &WrittenCrcs) -> Vec<Tensor> {
    tensors
        .iter()
        .map(|t| match &t.data {
            TensorData::View(_) => t.clone(),
            // Made by bands of rows: kept banded (memory stays flat); the checksum runs over the
            // bands as the writer pulls them, in order (out of order, none is recorded and
            // verification recomputes the tensor instead).
            TensorData::Rows(r) => {
                let (r, crcs, name) = (r.clone(), crcs.clone(), t.name.clone());
                let state = Mutex::new((0usize, crc32fast::Hasher::new(), true));
                Tensor::from_rows(
                    t.name.clone(),
                    t.dtype,
                    t.shape.clone(),
                    r.rows,
                    r.row_bytes,
                    move |range, dst| {
                        (r.fill)(range.clone(), dst)?;
                        let mut st = state.lock().unwrap();
                        if st.2 && range.start == st.0 {
                            st.1.update(dst);
                            st.0 = range.end;
                            if st.0 == r.rows {
                                let crc = st.1.clone().finalize();
                                crcs.lock().unwrap().insert(name.clone(), crc);
                            }
                        } else {
                            st.2 = false;
                        }
                        Ok(())
                    },
                )
            }
            TensorData::Computed(_) => {
                let (inner, crcs) = (t.clone(), crcs.clone());
                Tensor::computed(t.name.clone(), t.dtype, t.shape.clone(), move || {
                    let bytes = inner.bytes()?.into_owned();
                    crcs.lock()
                        .unwrap()
                        .insert(inner.name.clone(), crc32fast::hash(&bytes));
                    Ok(bytes)
                })
            }
        })
        .collect()
}

/// Re-reads each written file and checks every tensor: views byte for byte against the source,
/// computed tensors against the checksum recorded while writing them.
pub(crate) fn verify_outputs(
    outputs: &[(PathBuf, Vec<Tensor>)],
    written_crcs: &WrittenCrcs,
    progress: &Option<SharedProgress>,
) -> Result<()> {
    let total: u64 = outputs
        .iter()
        .flat_map(|(_, ts)| ts.iter().map(|t| t.nbytes()))
        .sum();
    emit(
        progress,
        ProgressEvent::Start {
            phase: "verifying",
            total,
        },
    );
    for (path, expected) in outputs {
        let back = source::open_file(path, &OpenOptions::default())?;
        if back.tensors.len() != expected.len() {
            return Err(Error::Mismatch(format!(
                "verification failed: {} holds {} tensors, expected {}",
                path.display(),
                back.tensors.len(),
                expected.len()
            )));
        }
        let by_name: HashMap<&str, &Tensor> =
            back.tensors.iter().map(|t| (t.name.as_str(), t)).collect();
        expected.par_iter().try_for_each(|want| -> Result<()> {
            let got = by_name.get(want.name.as_str()).ok_or_else(|| {
                Error::Mismatch(format!("verification failed: tensor '{}' is missing from {}", want.name, path.display()))
            })?;
            if got.dtype != want.dtype || got.shape != want.shape {
                return Err(Error::Mismatch(format!(
                    "verification failed: tensor '{}' in {} is {} {:?}, expected {} {:?}",
                    want.name,
                    path.display(),
                    got.dtype,
                    got.shape,
                    want.dtype,
                    want.shape
                )));
            }
            if let Some(&crc) = written_crcs.lock().unwrap().get(&want.name) {
                let bytes = got.bytes()?;
                let same = crc32fast::hash(&bytes) == crc;
                drop(bytes);
                got.release();
                if !same {
                    return Err(Error::Mismatch(format!(
                        "verification failed: tensor '{}' in {} does not hold the bytes that were written",
                        want.name,
                        path.display()
                    )));
                }
            } else if let Some(at) = got.first_difference(want)? {
                return Err(Error::Mismatch(format!(
                    "verification failed: tensor '{}' in {} differs from the source at byte {at}",
                    want.name,
                    path.display()
                )));
            }
            let n = want.nbytes();
            emit(progress, ProgressEvent::Advance { bytes: n });
            Ok(())
        })?;
    }
    emit(progress, ProgressEvent::Finish);
    Ok(())
}

fn refuse_overwriting_source(src: &Path, dst: &Path) -> Result<()> {
    let canon = |p: &Path| std::fs::canonicalize(p).ok();
    if let (Some(a), Some(b)) = (canon(src), canon(dst)) {
        if a == b || a.starts_with(&b) {
            return Err(Error::Usage(format!(
                "the output {} would replace the source {}; choose another output path",
                dst.display(),
                src.display()
            )));
        }
    }
    Ok(())
}
