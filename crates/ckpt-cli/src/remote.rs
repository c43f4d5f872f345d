//! `ckpt pull`, remote `inspect`, and `hf://` sources for every command that reads a model.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use clap::Args;
use ckpt_core::Error;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::json;

use crate::GlobalArgs;

#[derive(Args)]
pub struct PullArgs {
    /// ORG/NAME or hf://ORG/NAME[@REVISION]
    repo: String,
    /// Branch, tag, commit or refs/pr/N
    #[arg(long)]
    revision: Option<String>,
    /// Only files matching this glob (repeatable)
    #[arg(long)]
    include: Vec<String>,
    /// Skip files matching this glob (repeatable)
    #[arg(long)]
    exclude: Vec<String>,
    /// Cache folder instead of $HF_HUB_CACHE / $HF_HOME/hub
    #[arg(long)]
    cache_dir: Option<PathBuf>,
}

/// A local path for a command's model argument: `hf://…` and Hub URLs are resolved through the
/// Hugging Face cache (downloading what is missing); anything else is returned as it is.
pub fn local(path: &Path) -> Result<PathBuf, Error> {
    let s = path.to_string_lossy();
    if !ckpt_remote::is_remote(&s) {
        return Ok(path.to_path_buf());
    }
    Ok(ckpt_remote::resolve_to_local(&s)?)
}

pub fn inspect(uri: &str, g: &GlobalArgs) -> Result<(), Error> {
    let r = ckpt_remote::inspect_remote(uri)?;
    let v = r.to_json();
    if g.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    println!("location: {}", r.location);
    if let Some(c) = &r.commit {
        println!("commit: {c}");
    }
    println!("format: {}", r.format);
    for f in v["files"].as_array().into_iter().flatten() {
        println!(
            "  {}  {} tensors, {}{}",
            f["path"].as_str().unwrap_or(""),
            f["tensors"],
            crate::inspect::human_bytes(f["file_size"].as_u64().unwrap_or(0)),
            f.get("note").and_then(|n| n.as_str()).map(|n| format!("  ({n})")).unwrap_or_default()
        );
    }
    let tensors: Vec<_> = r.tensors().collect();
    let width = tensors.iter().map(|t| t.name.len()).max().unwrap_or(4).max(4);
    println!("\n{:<width$}  {:<8}  {:<20}", "name", "dtype", "shape");
    for t in &tensors {
        println!("{:<width$}  {:<8}  {:<20}", t.name, t.dtype, format!("{:?}", t.shape));
    }
    let (per, total) = r.parameter_counts();
    println!("\ntensors: {}", tensors.len());
    println!("parameters:");
    for (d, n) in &per {
        println!("  {d:<8} {n}");
    }
    println!("  total    {total}");
    for n in &r.notes {
        println!("note: {n}");
    }
    println!("{} requests, {} transferred", r.requests, crate::inspect::human_bytes(r.bytes_transferred));
    Ok(())
}

pub fn pull(a: &PullArgs, g: &GlobalArgs) -> Result<(), Error> {
    let show = !g.quiet && !g.json && std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let total = multi.add(ProgressBar::new(0));
    total.set_style(ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}").unwrap().progress_chars("=> "));
    total.set_message("total");
    if !show {
        total.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bars: Arc<Mutex<HashMap<String, ProgressBar>>> = Default::default();
    let progress: Option<ckpt_remote::ProgressFn> = show.then(|| {
        let (multi, total, bars) = (multi.clone(), total.clone(), bars.clone());
        Arc::new(move |p: &ckpt_remote::PullProgress<'_>| {
            total.set_length(p.total_size);
            total.set_position(p.total_bytes);
            let mut bars = bars.lock().unwrap();
            let bar = bars.entry(p.file.to_string()).or_insert_with(|| {
                let b = multi.insert_before(&total, ProgressBar::new(p.file_size.unwrap_or(0)));
                b.set_style(ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes}").unwrap().progress_chars("=> "));
                b.set_message(p.file.rsplit('/').next().unwrap_or(p.file).chars().take(28).collect::<String>());
                b
            });
            bar.set_position(p.file_bytes);
            if p.file_done {
                bar.finish_and_clear();
            }
        }) as ckpt_remote::ProgressFn
    });
    let opts = ckpt_remote::PullOptions {
        revision: a.revision.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        cache_dir: a.cache_dir.clone(),
        progress,
        ..Default::default()
    };
    let report = ckpt_remote::pull(&a.repo, &opts);
    total.finish_and_clear();
    let report = report?;
    if g.json {
        let files: Vec<_> = report
            .files
            .iter()
            .map(|f| json!({"path": f.path, "local_path": f.local_path, "size": f.size, "downloaded": f.downloaded, "cached": f.cached}))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "repo": report.repo, "revision": report.revision, "commit": report.commit,
                "snapshot": report.snapshot, "files": files,
                "downloaded_bytes": report.downloaded_bytes, "requests": report.requests,
            }))
            .unwrap()
        );
        return Ok(());
    }
    if !g.quiet {
        let cached = report.files.iter().filter(|f| f.cached).count();
        println!(
            "{}@{} ({}): {} files, {} downloaded, {} already cached",
            report.repo,
            report.revision,
            &report.commit[..report.commit.len().min(12)],
            report.files.len(),
            crate::inspect::human_bytes(report.downloaded_bytes),
            cached
        );
        println!("{}", report.snapshot.display());
    }
    Ok(())
}
