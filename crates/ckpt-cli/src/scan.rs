//! `ckpt scan`: what a pickle would import and call, found by the same restricted parser that
//! reads checkpoints, without executing anything (the picklescan job).

use std::path::PathBuf;

use ckpt_core::Error;
use clap::Args;
use serde_json::json;

use crate::GlobalArgs;

#[derive(Args)]
pub struct ScanArgs {
    /// PyTorch checkpoints (.bin, .pt, .pth, .ckpt) or folders to scan
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Whether torch's safe loader, and ckpt, accept this global.
fn verdict(global: &str) -> &'static str {
    let (module, name) = global.rsplit_once('.').unwrap_or(("", global));
    match ckpt_torch::globals::resolve(module, name) {
        Some(ckpt_torch::globals::Global::Unsupported(_)) => "allowed-unsupported",
        Some(_) => "allowed",
        None => "DANGEROUS",
    }
}

fn files_under(p: &PathBuf, out: &mut Vec<PathBuf>) -> Result<(), Error> {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| Error::io(p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            if e.is_dir() || ckpt_torch::is_torch_file(&e) {
                files_under(&e, out)?;
            }
        }
    } else {
        out.push(p.clone());
    }
    Ok(())
}

pub fn run(a: &ScanArgs, g: &GlobalArgs) -> Result<(), Error> {
    let mut files = Vec::new();
    for p in &a.paths {
        files_under(p, &mut files)?;
    }
    let mut reports = Vec::new();
    let mut dangerous_files = 0;
    for f in &files {
        let report = ckpt_torch::scan(f)?;
        let mut globals: Vec<&String> = report.globals.iter().collect();
        globals.sort();
        globals.dedup();
        let flagged: Vec<&String> = globals
            .iter()
            .copied()
            .filter(|gl| verdict(gl) == "DANGEROUS")
            .collect();
        let mut calls: Vec<&String> = report.calls.iter().collect();
        calls.sort();
        calls.dedup();
        if !flagged.is_empty() {
            dangerous_files += 1;
        }
        if !g.json {
            let status = if flagged.is_empty() {
                "ok"
            } else {
                "DANGEROUS"
            };
            println!("{}: {status}", f.display());
            for gl in &globals {
                println!("  import {gl:<50} {}", verdict(gl));
            }
            for c in &calls {
                println!("  call   {c}");
            }
        }
        reports.push(json!({
            "path": f,
            "globals": globals,
            "calls": calls,
            "dangerous": flagged,
        }));
    }
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "files": reports, "dangerous_files": dangerous_files })
            )
            .unwrap()
        );
    } else {
        println!(
            "{} file(s) scanned, {dangerous_files} with globals outside the allowlist",
            files.len()
        );
    }
    if dangerous_files > 0 {
        return Err(Error::unsafe_input(
            &files[0],
            format!("{dangerous_files} file(s) import globals outside the allowlist (nothing was executed)"),
        ));
    }
    Ok(())
}
