//! `ckpt diff` and `ckpt verify`.

use std::path::PathBuf;

use ckpt::Error;
use clap::Args;

use crate::GlobalArgs;

#[derive(Args)]
pub struct DiffArgs {
    a: PathBuf,
    b: PathBuf,
    /// Largest absolute difference per element still counted as the same
    #[arg(long, default_value_t = 0.0)]
    tolerance: f64,
    /// Print every tensor, not only the ones that differ
    #[arg(long)]
    all: bool,
}

#[derive(Args)]
pub struct VerifyArgs {
    path: PathBuf,
    /// Also scan every float tensor for NaN and Inf
    #[arg(long)]
    scan_values: bool,
}

const LIST_LIMIT: usize = 20;

fn list(title: &str, names: &[String]) {
    if names.is_empty() {
        return;
    }
    println!("{title} ({}):", names.len());
    for n in names.iter().take(LIST_LIMIT) {
        println!("  {n}");
    }
    if names.len() > LIST_LIMIT {
        println!("  … {} more", names.len() - LIST_LIMIT);
    }
}

pub fn run_diff(a: &DiffArgs, g: &GlobalArgs) -> Result<bool, Error> {
    let outcome = ckpt::diff(&a.a, &a.b, a.tolerance)?;
    let report = outcome.report;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return Ok(report.same);
    }
    if report.compared.is_empty() {
        println!(
            "nothing in common: no tensor name of {} ({} tensors) appears in {} ({} tensors)",
            a.a.display(),
            outcome.tensors_a,
            a.b.display(),
            outcome.tensors_b
        );
        return Ok(false);
    }
    let shown: Vec<_> = report
        .compared
        .iter()
        .filter(|d| a.all || !d.within_tolerance)
        .collect();
    if !shown.is_empty() {
        println!(
            "{:<48} {:>8} {:>8} {:>12} {:>12} {:>10}",
            "tensor", "dtype A", "dtype B", "max abs err", "rmse", "cosine"
        );
        for d in shown.iter().take(if a.all { usize::MAX } else { 200 }) {
            let num = |x: Option<f64>| x.map(|v| format!("{v:.3e}")).unwrap_or_else(|| "-".into());
            println!(
                "{:<48} {:>8} {:>8} {:>12} {:>12} {:>10}{}",
                d.name,
                d.dtype_a,
                d.dtype_b,
                if d.bytes_identical {
                    "identical".into()
                } else {
                    num(d.max_abs_error)
                },
                num(d.rmse),
                d.cosine_similarity
                    .map(|c| format!("{c:.6}"))
                    .unwrap_or_else(|| "-".into()),
                d.note
                    .as_ref()
                    .map(|n| format!("  ({n})"))
                    .unwrap_or_default()
            );
        }
    }
    list(&format!("only in {}", a.a.display()), &report.only_in_a);
    list(&format!("only in {}", a.b.display()), &report.only_in_b);
    println!(
        "{}: {} tensors compared, {} byte-identical, {} within tolerance {}, {} different, {} only in A, {} only in B",
        if report.same { "same" } else { "different" },
        report.compared.len(),
        report.identical_bytes,
        report.within_tolerance,
        report.tolerance,
        report.different,
        report.only_in_a.len(),
        report.only_in_b.len()
    );
    if let (true, Some(t)) = (report.rounding_only, report.suggested_tolerance) {
        println!(
            "every difference is within float rounding of the coarser dtype (a cast, not a change); `--tolerance {t:e}` accepts them"
        );
    }
    Ok(report.same)
}

pub fn run_verify(a: &VerifyArgs, g: &GlobalArgs) -> Result<(), Error> {
    let report = ckpt::verify(&a.path, a.scan_values)?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
    } else {
        for f in &report.files {
            let mark = match &f.expected_sha256 {
                Some(e) if *e == f.sha256 => "  (matches the cache)",
                Some(_) => "  (MISMATCH)",
                None => "",
            };
            println!(
                "{}  {}  sha256 {}{mark}",
                f.path.display(),
                crate::inspect::human_bytes(f.size),
                f.sha256
            );
        }
        if let Some(fmt) = &report.format {
            println!("{fmt}: {} tensors", report.tensors);
        }
        for f in &report.findings {
            println!("{}: {}", f.severity, f.message);
        }
        println!("{}", if report.ok { "ok" } else { "problems found" });
    }
    if report.ok {
        Ok(())
    } else {
        Err(Error::Mismatch(format!(
            "{}: verification found problems",
            a.path.display()
        )))
    }
}
