//! `ckpt scan`: what a file would import and call if torch (or pickle) loaded it, found by the
//! static scanner ([`ckpt::report::scan`]), without executing anything (the picklescan job).
//!
//! Files are found by content, whatever their name. Every file gets a verdict: `clean`,
//! `DANGEROUS` (a global outside the allowlist, or refused: an ambiguous zip, a compressed
//! pickle record) or `unscanned` (it could not be parsed to the end). The exit code is the most
//! severe verdict: 4 dangerous > 3 unscanned > 0 clean.

use std::path::PathBuf;

use ckpt::report::Verdict;
use ckpt::Error;
use clap::Args;

use crate::GlobalArgs;

#[derive(Args)]
pub struct ScanArgs {
    /// Files (any name: checkpoints, pickles) or folders to scan
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(a: &ScanArgs, g: &GlobalArgs) -> Result<(), Error> {
    let report = ckpt::report::scan(&a.paths);
    if g.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap()
        );
    } else {
        for f in &report.files {
            let s = &f.scan;
            let what = s.content.map(|c| c.name()).unwrap_or("unrecognised");
            println!("{}: {} ({what})", s.path.display(), f.verdict.label());
            for gl in &f.globals {
                println!("  import {gl:<50} {}", ckpt::report::global_verdict(gl));
            }
            for c in &f.calls {
                println!("  call   {c}");
            }
            if let Some(e) = &s.error {
                let kind = if matches!(e, Error::Unsafe { .. }) {
                    "refused"
                } else {
                    "not scanned to the end"
                };
                println!("  {kind}: {e}");
            }
        }
        let count = |v: Verdict| report.files.iter().filter(|f| f.verdict == v).count();
        println!(
            "{} file(s) scanned: {} dangerous, {} unscanned, {} clean; {} other file(s) are not pickles or archives",
            report.files.len(),
            count(Verdict::Dangerous),
            count(Verdict::Unscanned),
            count(Verdict::Clean),
            report.skipped
        );
    }
    match report.error() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}
