//! `ckpt pull`, remote `inspect`, and `hf://` sources for every command that reads a model.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ckpt::Error;
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

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
    /// Download into this folder instead of the cache, as `hf download --local-dir` does in
    /// huggingface_hub >= 0.23: real files, plus .cache/huggingface/download/*.metadata so later
    /// pulls (ckpt's or huggingface_hub's) skip what is up to date
    #[arg(long)]
    local_dir: Option<PathBuf>,
    /// Hub token for this pull, overriding HF_TOKEN and the saved token (as `hf download --token`)
    #[arg(long)]
    token: Option<String>,
}

/// Remote `inspect` as text (`--json` is [`ckpt::report::inspect`]).
pub fn inspect(uri: &str) -> Result<(), Error> {
    let r = ckpt::crates::remote::inspect_remote(uri)?;
    let v = r.to_json();
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
            f.get("note")
                .and_then(|n| n.as_str())
                .map(|n| format!("  ({n})"))
                .unwrap_or_default()
        );
    }
    let tensors: Vec<_> = r.tensors().collect();
    let width = tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!("\n{:<width$}  {:<8}  {:<20}", "name", "dtype", "shape");
    for t in &tensors {
        println!(
            "{:<width$}  {:<8}  {:<20}",
            t.name,
            t.dtype,
            format!("{:?}", t.shape)
        );
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
    println!(
        "{} requests, {} transferred",
        r.requests,
        crate::inspect::human_bytes(r.bytes_transferred)
    );
    Ok(())
}

pub fn pull(a: &PullArgs, g: &GlobalArgs) -> Result<(), Error> {
    let show = !g.quiet && !g.json && std::io::stderr().is_terminal();
    let multi = MultiProgress::new();
    let total = multi.add(ProgressBar::new(0));
    total.set_style(
        ProgressStyle::with_template(
            "{msg:>12} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    total.set_message("total");
    if !show {
        total.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bars: Arc<Mutex<HashMap<String, ProgressBar>>> = Default::default();
    let progress: Option<ckpt::SharedProgress> = show.then(|| {
        let (multi, total, bars) = (multi.clone(), total.clone(), bars.clone());
        Arc::new(move |ev: ckpt::ProgressEvent<'_>| match ev {
            ckpt::ProgressEvent::Start { total: size, .. } => total.set_length(size),
            ckpt::ProgressEvent::Advance { bytes } => total.inc(bytes),
            ckpt::ProgressEvent::File {
                name,
                done,
                size,
                complete,
            } => {
                let mut bars = bars.lock().unwrap();
                let bar = bars.entry(name.to_string()).or_insert_with(|| {
                    let b = multi.insert_before(&total, ProgressBar::new(size.unwrap_or(0)));
                    b.set_style(
                        ProgressStyle::with_template("{msg:>12} [{bar:40}] {bytes}/{total_bytes}")
                            .unwrap()
                            .progress_chars("=> "),
                    );
                    b.set_message(
                        name.rsplit('/')
                            .next()
                            .unwrap_or(name)
                            .chars()
                            .take(28)
                            .collect::<String>(),
                    );
                    b
                });
                bar.set_position(done);
                if complete {
                    bar.finish_and_clear();
                }
            }
            _ => {}
        }) as ckpt::SharedProgress
    });
    let opts = ckpt::crates::remote::PullOptions {
        revision: a.revision.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        cache_dir: a.cache_dir.clone(),
        local_dir: a.local_dir.clone(),
        progress,
        ..Default::default()
    };
    let report = ckpt::hub::pull(&a.repo, &opts, a.token.as_deref());
    total.finish_and_clear();
    let report = report?;
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ckpt::report::pull(&report)).unwrap()
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

#[derive(Args)]
pub struct PushArgs {
    /// A file or a folder to upload
    local: PathBuf,
    /// ORG/NAME (or hf://ORG/NAME@REVISION)
    repo: String,
    /// Branch to commit to, or that the pull request targets
    #[arg(long)]
    revision: Option<String>,
    /// Open a pull request (refs/pr/N) instead of committing to the branch
    #[arg(long)]
    create_pr: bool,
    /// Destination folder in the repo (for a single file: its path)
    #[arg(long)]
    path_in_repo: Option<String>,
    /// Commit title
    #[arg(long, short = 'm')]
    message: Option<String>,
    /// Only files matching this glob (repeatable)
    #[arg(long)]
    include: Vec<String>,
    /// Skip files matching this glob (repeatable)
    #[arg(long)]
    exclude: Vec<String>,
    /// With --create-repo: make it private
    #[arg(long)]
    private: bool,
    /// Create the repository if it does not exist
    #[arg(long)]
    create_repo: bool,
    /// Also upload symlinked files whose target is outside the folder (skipped with a warning by
    /// default; huggingface_hub's upload_folder always follows them)
    #[arg(long)]
    follow_symlinks: bool,
}

pub fn push(a: &PushArgs, g: &GlobalArgs) -> Result<(), Error> {
    let show = !g.quiet && !g.json && std::io::stderr().is_terminal();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg:>10} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap()
        .progress_chars("=> "),
    );
    if !show {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let progress: Option<ckpt::SharedProgress> = show.then(|| {
        let bar = bar.clone();
        Arc::new(move |ev: ckpt::ProgressEvent<'_>| match ev {
            ckpt::ProgressEvent::Start { phase, total } => {
                bar.set_message(phase.to_string());
                bar.set_length(total);
                bar.set_position(0);
            }
            ckpt::ProgressEvent::Advance { bytes } => bar.inc(bytes),
            _ => {}
        }) as ckpt::SharedProgress
    });
    let opts = ckpt::crates::remote::push::PushOptions {
        revision: a.revision.clone(),
        create_pr: a.create_pr,
        path_in_repo: a.path_in_repo.clone(),
        message: a.message.clone(),
        include: a.include.clone(),
        exclude: a.exclude.clone(),
        private: a.private,
        create_repo: a.create_repo,
        follow_symlinks: a.follow_symlinks,
        progress,
        ..Default::default()
    };
    let report = ckpt::hub::push(&a.local, &a.repo, &opts);
    bar.finish_and_clear();
    let report = report?;
    warn_skipped(&report.skipped);
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap()
        );
        return Ok(());
    }
    if !g.quiet {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for f in &report.files {
            *counts.entry(f.action.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(k, v)| format!("{v} {k}")).collect();
        println!(
            "{}: {} files ({})",
            report.repo,
            report.files.len(),
            summary.join(", ")
        );
        match (&report.pull_request, &report.commit_url) {
            (Some(pr), _) => println!("pull request {} ({}): {}", pr.number, pr.revision, pr.url),
            (None, Some(url)) => println!("committed: {url}"),
            (None, None) => println!("nothing to commit: every file is already on the Hub"),
        }
    }
    Ok(())
}

/// Opens the pull request convert.py opens: the converted weights (and index) only, with a
/// description of what was converted and which shared tensors were written once.
pub fn push_conversion_pr(
    src: &str,
    report: &ckpt::convert::ConvertReport,
    g: &GlobalArgs,
) -> Result<(), Error> {
    let pushed = ckpt::hub::push_conversion_pr(src, report)?;
    warn_skipped(&pushed.skipped);
    if g.json {
        println!(
            "{}",
            serde_json::json!({ "convert": report, "push": pushed.to_json() })
        );
    } else if !g.quiet {
        match &pushed.pull_request {
            Some(pr) => println!("pull request {} ({}): {}", pr.number, pr.revision, pr.url),
            None => println!("nothing to push: the Hub already has these files"),
        }
    }
    Ok(())
}

/// One warning line per file a push left out (also listed under "skipped" in --json output).
fn warn_skipped(skipped: &[ckpt::crates::remote::push::SkippedFile]) {
    for f in skipped {
        eprintln!(
            "warning: skipped {} -> {}: {}",
            f.local_path.display(),
            f.target.display(),
            crate::flags_for_options(&f.reason)
        );
    }
}
