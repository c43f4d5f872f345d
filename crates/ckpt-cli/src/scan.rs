//! `ckpt scan`: what a file would import and call if torch (or pickle) loaded it, found by the
//! static scanner (`ckpt::crates::torch::scan`), without executing anything (the picklescan job).
//!
//! Files are found by content, whatever their name. Every file gets a verdict: `clean`,
//! `DANGEROUS` (a global outside the allowlist, or refused: an ambiguous zip, a compressed
//! pickle record) or `unscanned` (it could not be parsed to the end). The exit code is the most
//! severe verdict: 4 dangerous > 3 unscanned > 0 clean.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use ckpt::crates::torch::scan::FileScan;
use ckpt::Error;
use clap::Args;
use serde_json::json;

use crate::GlobalArgs;

#[derive(Args)]
pub struct ScanArgs {
    /// Files (any name: checkpoints, pickles) or folders to scan
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Whether torch's safe loader, and ckpt, accept this global.
fn verdict(global: &str) -> &'static str {
    let (module, name) = global.rsplit_once('.').unwrap_or(("", global));
    match ckpt::crates::torch::globals::resolve(module, name) {
        Some(ckpt::crates::torch::globals::Global::Unsupported(_)) => "allowed-unsupported",
        Some(_) => "allowed",
        None => "DANGEROUS",
    }
}

/// Every file under `p` (recursively, sorted; directories reached twice through links are
/// walked once); `explicit` marks paths named on the command line.
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

struct Verdict {
    scan: FileScan,
    dangerous: Vec<String>,
    severity: u8,
}

fn judge(scan: FileScan) -> Verdict {
    let mut globals = scan.report.globals.clone();
    globals.sort();
    globals.dedup();
    let dangerous: Vec<String> = globals
        .into_iter()
        .filter(|g| verdict(g) == "DANGEROUS")
        .collect();
    let severity = if !dangerous.is_empty() || matches!(scan.error, Some(Error::Unsafe { .. })) {
        4
    } else if scan.error.is_some() {
        3
    } else {
        0
    };
    Verdict {
        scan,
        dangerous,
        severity,
    }
}

fn label(severity: u8) -> &'static str {
    match severity {
        4 => "DANGEROUS",
        3 => "unscanned",
        _ => "clean",
    }
}

pub fn run(a: &ScanArgs, g: &GlobalArgs) -> Result<(), Error> {
    let mut files = Vec::new();
    let mut seen = HashSet::new();
    for p in &a.paths {
        files_under(p, true, &mut seen, &mut files);
    }
    let mut verdicts = Vec::new();
    let mut skipped = 0usize;
    for (f, explicit) in &files {
        match ckpt::crates::torch::scan::scan_file(f, *explicit) {
            Some(s) => verdicts.push(judge(s)),
            None => skipped += 1,
        }
    }
    let mut reports = Vec::new();
    for v in &verdicts {
        let s = &v.scan;
        let mut globals: Vec<&String> = s.report.globals.iter().collect();
        globals.sort();
        globals.dedup();
        let mut calls: Vec<&String> = s.report.calls.iter().collect();
        calls.sort();
        calls.dedup();
        let error = s.error.as_ref().map(|e| e.to_string());
        if !g.json {
            let what = s.content.map(|c| c.name()).unwrap_or("unrecognised");
            println!("{}: {} ({what})", s.path.display(), label(v.severity));
            for gl in &globals {
                println!("  import {gl:<50} {}", verdict(gl));
            }
            for c in &calls {
                println!("  call   {c}");
            }
            if let Some(e) = &error {
                let kind = if matches!(s.error, Some(Error::Unsafe { .. })) {
                    "refused"
                } else {
                    "not scanned to the end"
                };
                println!("  {kind}: {e}");
            }
        }
        reports.push(json!({
            "path": s.path,
            "verdict": label(v.severity),
            "format": s.content.map(|c| c.name()),
            "pickles": s.pickles,
            "globals": globals,
            "calls": calls,
            "dangerous": v.dangerous,
            "error": error,
        }));
    }
    let named = |sev: u8| -> Vec<String> {
        verdicts
            .iter()
            .filter(|v| v.severity == sev)
            .map(|v| v.scan.path.display().to_string())
            .collect()
    };
    let (dangerous, unscanned) = (named(4), named(3));
    let clean = verdicts.len() - dangerous.len() - unscanned.len();
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "files": reports,
                "dangerous_files": dangerous.len(),
                "unscanned_files": unscanned.len(),
                "clean_files": clean,
                "skipped_files": skipped,
            }))
            .unwrap()
        );
    } else {
        println!(
            "{} file(s) scanned: {} dangerous, {} unscanned, {clean} clean; {skipped} other file(s) are not pickles or archives",
            verdicts.len(),
            dangerous.len(),
            unscanned.len()
        );
    }
    if !dangerous.is_empty() {
        return Err(Error::unsafe_input(
            &dangerous[0],
            format!(
                "{} file(s) import globals outside the allowlist or were refused (nothing was executed): {}",
                dangerous.len(),
                dangerous.join(", ")
            ),
        ));
    }
    if !unscanned.is_empty() {
        return Err(Error::invalid(
            &unscanned[0],
            format!(
                "{} file(s) could not be scanned to the end (not reported clean): {}",
                unscanned.len(),
                unscanned.join(", ")
            ),
        ));
    }
    Ok(())
}
