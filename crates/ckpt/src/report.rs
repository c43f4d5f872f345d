//! The JSON documents of the operations' reports: what `ckpt … --json` prints and what the
//! Python package returns as dicts, built in this one place so the two cannot drift.
//!
//! Reports that are plain data serialise themselves (`ConvertReport`, `DiffReport`,
//! `VerifyReport`, …, and [`hub::PushReport::to_json`](crate::hub::PushReport::to_json)); the
//! functions here build the documents that combine several values: [`inspect`] (local files,
//! folders, GGUF and `hf://`), [`scan`] (with [`ScanReport::to_json`]), [`quantize`], [`pull`],
//! [`merge_gguf`] and [`ollama_create`].
//!
//! Key order is part of the output (serde_json keeps insertion order in this workspace).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ckpt_gguf::GgufValue;
use ckpt_torch::scan::FileScan;
use serde_json::{json, Map, Value};

use crate::{Checkpoint, Error, Result, Tensor};

/// Items of a GGUF metadata array kept by `inspect` with `summary` (`--json --summary`).
pub const SUMMARY_ITEMS: usize = 64;

/// `ckpt inspect --json PATH`: a local file, folder or `*.index.json` (read from headers), a
/// GGUF (or the first shard of a split GGUF), or an `hf://` URI (read with range requests,
/// nothing downloaded). `key` picks one entry of a pickled checkpoint; `summary` keeps only the
/// first [`SUMMARY_ITEMS`] items of long GGUF metadata arrays.
pub fn inspect(path: &Path, key: Option<String>, summary: bool) -> Result<Value> {
    let as_text = path.to_string_lossy();
    if ckpt_remote::is_remote(&as_text) {
        return Ok(ckpt_remote::inspect_remote(&as_text)?.to_json());
    }
    if crate::is_gguf_file(path)? {
        let lenient = ckpt_gguf::ParseOptions {
            allow_nested_arrays: true,
        };
        let split = ckpt_gguf::open_split_with(path, &lenient)?;
        return Ok(gguf(&split, summary));
    }
    let ck = crate::open(path, &crate::OpenOptions { key })?;
    Ok(checkpoint(&ck))
}

fn file_of(t: &Tensor) -> Option<&Path> {
    t.view().map(|v| v.storage.buffer.path.as_path())
}

/// The `inspect` document of an opened (non-GGUF) checkpoint: format, files, tensors,
/// parameter counts per dtype, metadata and non-tensor values.
pub fn checkpoint(ck: &Checkpoint) -> Value {
    let (per_dtype, total) = ck.parameter_counts();
    let files: Vec<Value> = ck
        .files
        .iter()
        .map(|f| {
            let ts: Vec<_> = ck
                .tensors
                .iter()
                .filter(|t| file_of(t) == Some(f.as_path()))
                .collect();
            json!({
                "path": f,
                "tensors": ts.len(),
                "bytes": ts.iter().map(|t| t.nbytes()).sum::<u64>(),
                "file_size": std::fs::metadata(f).map(|m| m.len()).unwrap_or(0),
            })
        })
        .collect();
    let tensors: Vec<Value> = ck
        .tensors
        .iter()
        .map(|t| {
            let mut v = json!({
                "name": t.name,
                "dtype": t.dtype.to_string(),
                "shape": t.shape,
                "bytes": t.nbytes(),
            });
            if ck.files.len() > 1 {
                if let Some(f) = file_of(t).and_then(|p| p.file_name()) {
                    v["file"] = json!(f.to_string_lossy());
                }
            }
            v
        })
        .collect();
    json!({
        "format": ck.format.name(),
        "files": files,
        "tensors": tensors,
        "parameters": per_dtype,
        "total_parameters": total,
        "total_bytes": ck.tensors.iter().map(|t| t.nbytes()).sum::<u64>(),
        "metadata": ck.metadata,
        "values": ck.extras,
    })
}

/// The `inspect` document of a GGUF (all shards of a split one): header facts, metadata in
/// file order with typed values, tensor infos with offsets, and a `projector` line for a
/// multimodal projector file.
pub fn gguf(split: &ckpt_gguf::GgufSplit, summary: bool) -> Value {
    let ck = split.to_checkpoint();
    let (per_dtype, total) = ck.parameter_counts();
    let infos = split.tensor_infos();
    let max = if summary { SUMMARY_ITEMS } else { usize::MAX };
    let kvs: Map<String, Value> = split
        .kvs()
        .iter()
        .map(|(k, v)| (k.clone(), ckpt_gguf::to_typed_json(v, max)))
        .collect();
    let tensors: Vec<Value> = infos
        .iter()
        .map(|(shard, t)| {
            json!({
                "name": t.name,
                "dtype": t.dtype().to_string(),
                "shape": t.shape(),
                "ne": t.ne,
                "offset": t.offset,
                "bytes": t.nbytes(),
                "shard": shard,
            })
        })
        .collect();
    let first = &split.shards[0];
    let mut out = json!({
        "format": "gguf",
        "files": split.paths(),
        "version": first.version,
        "alignment": first.alignment,
        "data_offset": first.data_offset,
        "byte_order": if first.big_endian { "big" } else { "little" },
        "metadata": kvs,
        "tensors": tensors,
        "parameters": per_dtype,
        "total_parameters": total,
        "total_bytes": infos.iter().map(|(_, t)| t.nbytes()).sum::<u64>(),
    });
    if let Some(line) = projector_summary(|k| split.get(k)) {
        out["projector"] = json!(line.trim_start_matches("projector: "));
    }
    out
}

/// One line about a multimodal projector GGUF (`general.type` mmproj, `clip.*` keys): the
/// projector type and the vision encoder's shape, as llama.cpp's mtmd reads them
/// (`projector: TYPE (vision encoder …)`); `None` for other GGUFs.
pub fn projector_summary<'a>(get: impl Fn(&str) -> Option<&'a GgufValue>) -> Option<String> {
    let is_mmproj = get("general.type").and_then(|v| v.as_str()) == Some("mmproj")
        || get("general.architecture").and_then(|v| v.as_str()) == Some("clip");
    if !is_mmproj {
        return None;
    }
    let num = |k: &str| get(k).and_then(|v| v.as_u64());
    let mut parts = Vec::new();
    if get("clip.has_vision_encoder").and_then(|v| v.as_bool()) == Some(true) {
        let mut v = String::from("vision encoder");
        for (key, label) in [
            ("clip.vision.block_count", "blocks"),
            ("clip.vision.embedding_length", "wide"),
            ("clip.vision.attention.head_count", "heads"),
        ] {
            if let Some(n) = num(key) {
                v.push_str(&format!(" {n} {label},"));
            }
        }
        if let (Some(i), Some(p)) = (num("clip.vision.image_size"), num("clip.vision.patch_size")) {
            v.push_str(&format!(" image {i}px in {p}px patches,"));
        }
        if let Some(d) = num("clip.vision.projection_dim") {
            v.push_str(&format!(" projected to {d}"));
        }
        parts.push(v.trim_end_matches(',').to_string());
    }
    if get("clip.has_audio_encoder").and_then(|v| v.as_bool()) == Some(true) {
        parts.push("audio encoder".into());
    }
    let kind = get("clip.projector_type")
        .or_else(|| get("clip.vision.projector_type"))
        .and_then(|v| v.as_str())
        .unwrap_or("unknown");
    Some(format!("projector: {kind} ({})", parts.join("; ")))
}

/// Whether torch's safe loader, and ckpt, accept a pickle global `module.name`:
/// `"allowed"`, `"allowed-unsupported"` (safe, but ckpt cannot rebuild it) or `"DANGEROUS"`.
pub fn global_verdict(global: &str) -> &'static str {
    let (module, name) = global.rsplit_once('.').unwrap_or(("", global));
    match ckpt_torch::globals::resolve(module, name) {
        Some(ckpt_torch::globals::Global::Unsupported(_)) => "allowed-unsupported",
        Some(_) => "allowed",
        None => "DANGEROUS",
    }
}

/// A file's verdict in a [`ScanReport`], most severe last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Every global is allowed and the file was scanned to the end.
    Clean,
    /// The file could not be parsed to the end: not reported clean.
    Unscanned,
    /// A global outside the allowlist, or refused (an ambiguous zip, a compressed pickle
    /// record).
    Dangerous,
}

impl Verdict {
    /// `clean`, `unscanned` or `DANGEROUS`, as the report says it.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Dangerous => "DANGEROUS",
            Verdict::Unscanned => "unscanned",
            Verdict::Clean => "clean",
        }
    }
}

/// One scanned file: the static scan and what it means.
#[derive(Debug)]
pub struct ScannedFile {
    /// The scanner's findings.
    pub scan: FileScan,
    /// Globals the pickles import, sorted, once each.
    pub globals: Vec<String>,
    /// Callables the pickles call, sorted, once each.
    pub calls: Vec<String>,
    /// The globals outside the allowlist.
    pub dangerous: Vec<String>,
    /// The verdict.
    pub verdict: Verdict,
}

/// What [`scan`] found: one entry per pickle or archive, in path order.
#[derive(Debug, Default)]
pub struct ScanReport {
    /// The scanned files.
    pub files: Vec<ScannedFile>,
    /// Files that are neither pickles nor archives (not scanned).
    pub skipped: usize,
}

fn sorted_once(items: &[String]) -> Vec<String> {
    let mut v = items.to_vec();
    v.sort();
    v.dedup();
    v
}

fn judge(scan: FileScan) -> ScannedFile {
    let globals = sorted_once(&scan.report.globals);
    let calls = sorted_once(&scan.report.calls);
    let dangerous: Vec<String> = globals
        .iter()
        .filter(|g| global_verdict(g) == "DANGEROUS")
        .cloned()
        .collect();
    let verdict = if !dangerous.is_empty() || matches!(scan.error, Some(Error::Unsafe { .. })) {
        Verdict::Dangerous
    } else if scan.error.is_some() {
        Verdict::Unscanned
    } else {
        Verdict::Clean
    };
    ScannedFile {
        scan,
        globals,
        calls,
        dangerous,
        verdict,
    }
}

/// Every file under `p` (recursively, sorted; directories reached twice through links are
/// walked once); `explicit` marks paths named by the caller.
fn files_under(
    p: &Path,
    explicit: bool,
    seen: &mut HashSet<PathBuf>,
    out: &mut Vec<(PathBuf, bool)>,
) {
    if p.is_dir() {
        if let Ok(c) = p.canonicalize() {
            if !seen.insert(c) {
                return;
            }
        }
        let mut entries: Vec<PathBuf> = match std::fs::read_dir(p) {
            Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
            Err(_) => {
                out.push((p.to_path_buf(), true));
                return;
            }
        };
        entries.sort();
        for e in entries {
            files_under(&e, false, seen, out);
        }
    } else {
        out.push((p.to_path_buf(), explicit));
    }
}

/// `ckpt scan`: what files (any name; folders are walked) would import and call if torch or
/// pickle loaded them, found statically — nothing is executed (picklescan's job). Files are
/// recognised by content.
pub fn scan(paths: &[PathBuf]) -> ScanReport {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        files_under(p, true, &mut seen, &mut files);
    }
    let mut report = ScanReport::default();
    for (f, explicit) in &files {
        match ckpt_torch::scan::scan_file(f, *explicit) {
            Some(s) => report.files.push(judge(s)),
            None => report.skipped += 1,
        }
    }
    report
}

impl ScanReport {
    /// The paths of the files with this verdict.
    pub fn with_verdict(&self, verdict: Verdict) -> Vec<String> {
        self.files
            .iter()
            .filter(|f| f.verdict == verdict)
            .map(|f| f.scan.path.display().to_string())
            .collect()
    }

    /// The most severe verdict as an error (the command line's exit code): unsafe when a file
    /// is dangerous, invalid when one could not be scanned, `None` when all are clean.
    pub fn error(&self) -> Option<Error> {
        let dangerous = self.with_verdict(Verdict::Dangerous);
        if !dangerous.is_empty() {
            return Some(Error::unsafe_input(
                &dangerous[0],
                format!(
                    "{} file(s) import globals outside the allowlist or were refused (nothing was executed): {}",
                    dangerous.len(),
                    dangerous.join(", ")
                ),
            ));
        }
        let unscanned = self.with_verdict(Verdict::Unscanned);
        if !unscanned.is_empty() {
            return Some(Error::invalid(
                &unscanned[0],
                format!(
                    "{} file(s) could not be scanned to the end (not reported clean): {}",
                    unscanned.len(),
                    unscanned.join(", ")
                ),
            ));
        }
        None
    }

    /// `ckpt scan --json`: one entry per file (`verdict`, `globals`, `calls`, `dangerous`,
    /// `error`) and the counts.
    pub fn to_json(&self) -> Value {
        let files: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                let s = &f.scan;
                json!({
                    "path": s.path,
                    "verdict": f.verdict.label(),
                    "format": s.content.map(|c| c.name()),
                    "pickles": s.pickles,
                    "globals": f.globals,
                    "calls": f.calls,
                    "dangerous": f.dangerous,
                    "error": s.error.as_ref().map(|e| e.to_string()),
                })
            })
            .collect();
        let count = |v: Verdict| self.files.iter().filter(|f| f.verdict == v).count();
        json!({
            "files": files,
            "dangerous_files": count(Verdict::Dangerous),
            "unscanned_files": count(Verdict::Unscanned),
            "clean_files": count(Verdict::Clean),
            "skipped_files": self.skipped,
        })
    }
}

/// `ckpt quantize --json`: the output (and every output file of a split), the type, one entry
/// per tensor (types before and after, fallbacks, imatrix use, sizes) and totals.
pub fn quantize(output: &Path, ftype: &crate::Ftype, report: &crate::QuantizeReport) -> Value {
    let tensors: Vec<Value> = report
        .tensors
        .iter()
        .map(|t| {
            json!({
                "name": t.name, "ne": t.ne, "from": t.from.name(), "to": t.to.name(),
                "fallback_from": t.fallback_from.map(|f| f.name()), "imatrix": t.used_imatrix,
                "bytes_in": t.bytes_in, "bytes_out": t.bytes_out,
            })
        })
        .collect();
    json!({
        "output": output, "outputs": report.outputs, "ftype": ftype.name(), "tensors": tensors,
        "fallbacks": report.n_fallback, "input_bytes": report.input_bytes,
        "output_bytes": report.output_bytes,
    })
}

/// `ckpt pull --json`: the resolved commit, the snapshot folder and every file (downloaded or
/// already cached).
pub fn pull(report: &crate::hub::PullReport) -> Value {
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|f| {
            json!({
                "path": f.path, "local_path": f.local_path, "size": f.size,
                "downloaded": f.downloaded, "cached": f.cached,
            })
        })
        .collect();
    json!({
        "repo": report.repo, "revision": report.revision, "commit": report.commit,
        "snapshot": report.snapshot, "files": files,
        "downloaded_bytes": report.downloaded_bytes, "requests": report.requests,
    })
}

/// `ckpt merge-lora --to gguf --json`: the merge's report and the GGUF conversion's.
pub fn merge_gguf(
    merged: &crate::lora::MergeReport,
    converted: &crate::convert::GgufReport,
) -> Value {
    json!({ "merge": merged, "gguf": converted })
}

/// `ckpt ollama create --json`: the model name, its manifest digest, the named template
/// detected, Ollama's status lines and the warnings given on the way.
pub fn ollama_create(
    report: &crate::ollama::CreateReport,
    statuses: &[String],
    warnings: &[String],
) -> Value {
    json!({
        "name": report.name.to_string(),
        "digest": report.manifest_digest,
        "template": report.detected_template,
        "status": statuses,
        "warnings": warnings,
    })
}
