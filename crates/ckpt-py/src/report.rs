//! The JSON the command line prints with `--json`, built here from the library's reports so the
//! Python functions return the same documents (the CLI keeps these shapes in its own crate).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ckpt::crates::torch::scan::FileScan;
use ckpt::{Checkpoint, Error, Result};
use serde_json::{json, Value};

/// `ckpt inspect --json` of a local path or an `hf://` URI.
pub fn inspect(path: &Path, key: Option<String>, summary: bool) -> Result<Value> {
    let as_text = path.to_string_lossy();
    if ckpt::crates::remote::is_remote(&as_text) {
        return Ok(ckpt::crates::remote::inspect_remote(&as_text)?.to_json());
    }
    if ckpt::is_gguf_file(path)? {
        return inspect_gguf(path, summary);
    }
    let ck = ckpt::open(path, &ckpt::OpenOptions { key })?;
    Ok(summarize(&ck))
}

fn file_of(t: &ckpt::Tensor) -> Option<&Path> {
    t.view().map(|v| v.storage.buffer.path.as_path())
}

fn summarize(ck: &Checkpoint) -> Value {
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

/// Items of a GGUF metadata array kept with `summary`.
const SUMMARY_ITEMS: usize = 64;

fn inspect_gguf(path: &Path, summary: bool) -> Result<Value> {
    let lenient = ckpt::crates::gguf::ParseOptions {
        allow_nested_arrays: true,
    };
    let split = ckpt::crates::gguf::open_split_with(path, &lenient)?;
    let ck = split.to_checkpoint();
    let (per_dtype, total) = ck.parameter_counts();
    let infos = split.tensor_infos();
    let max = if summary { SUMMARY_ITEMS } else { usize::MAX };
    let kvs: serde_json::Map<String, Value> = split
        .kvs()
        .iter()
        .map(|(k, v)| (k.clone(), ckpt::crates::gguf::to_typed_json(v, max)))
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
    Ok(json!({
        "format": "gguf",
        "files": split.paths(),
        "version": first.version,
        "alignment": first.alignment,
        "data_offset": first.data_offset,
        "metadata": kvs,
        "tensors": tensors,
        "parameters": per_dtype,
        "total_parameters": total,
        "total_bytes": infos.iter().map(|(_, t)| t.nbytes()).sum::<u64>(),
    }))
}

/// Whether torch's safe loader, and ckpt, accept this global (`ckpt scan`'s verdict).
fn verdict(global: &str) -> &'static str {
    let (module, name) = global.rsplit_once('.').unwrap_or(("", global));
    match ckpt::crates::torch::globals::resolve(module, name) {
        Some(ckpt::crates::torch::globals::Global::Unsupported(_)) => "allowed-unsupported",
        Some(_) => "allowed",
        None => "DANGEROUS",
    }
}

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

fn severity(s: &FileScan, dangerous: &[String]) -> u8 {
    if !dangerous.is_empty() || matches!(s.error, Some(Error::Unsafe { .. })) {
        4
    } else if s.error.is_some() {
        3
    } else {
        0
    }
}

fn label(severity: u8) -> &'static str {
    match severity {
        4 => "DANGEROUS",
        3 => "unscanned",
        _ => "clean",
    }
}

/// `ckpt scan --json` of files and folders: the static pickle scan, nothing executed. Unlike the
/// command line (exit code 4 or 3) this returns the report whatever the verdicts.
pub fn scan(paths: &[PathBuf]) -> Value {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for p in paths {
        files_under(p, true, &mut seen, &mut files);
    }
    let mut reports = Vec::new();
    let (mut dangerous_files, mut unscanned_files, mut clean, mut skipped) = (0, 0, 0, 0);
    for (f, explicit) in &files {
        let Some(s) = ckpt::crates::torch::scan::scan_file(f, *explicit) else {
            skipped += 1;
            continue;
        };
        let mut globals: Vec<&String> = s.report.globals.iter().collect();
        globals.sort();
        globals.dedup();
        let mut calls: Vec<&String> = s.report.calls.iter().collect();
        calls.sort();
        calls.dedup();
        let dangerous: Vec<String> = globals
            .iter()
            .filter(|g| verdict(g) == "DANGEROUS")
            .map(|g| g.to_string())
            .collect();
        let sev = severity(&s, &dangerous);
        match sev {
            4 => dangerous_files += 1,
            3 => unscanned_files += 1,
            _ => clean += 1,
        }
        reports.push(json!({
            "path": s.path,
            "verdict": label(sev),
            "format": s.content.map(|c| c.name()),
            "pickles": s.pickles,
            "globals": globals,
            "calls": calls,
            "dangerous": dangerous,
            "error": s.error.as_ref().map(|e| e.to_string()),
        }));
    }
    json!({
        "files": reports,
        "dangerous_files": dangerous_files,
        "unscanned_files": unscanned_files,
        "clean_files": clean,
        "skipped_files": skipped,
    })
}

/// `ckpt quantize --json`.
pub fn quantize(output: &Path, ftype: &ckpt::Ftype, report: &ckpt::QuantizeReport) -> Value {
    let tensors: Vec<_> = report
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
        "output": output, "ftype": ftype.name(), "tensors": tensors, "fallbacks": report.n_fallback,
        "input_bytes": report.input_bytes, "output_bytes": report.output_bytes,
    })
}

/// `ckpt pull --json`.
pub fn pull(report: &ckpt::hub::PullReport) -> Value {
    let files: Vec<_> = report
        .files
        .iter()
        .map(|f| json!({"path": f.path, "local_path": f.local_path, "size": f.size, "downloaded": f.downloaded, "cached": f.cached}))
        .collect();
    json!({
        "repo": report.repo, "revision": report.revision, "commit": report.commit,
        "snapshot": report.snapshot, "files": files,
        "downloaded_bytes": report.downloaded_bytes, "requests": report.requests,
    })
}
