//! `ckpt diff` and `ckpt verify`.

use std::path::PathBuf;

use ckpt_core::Error;
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
    let open = |p: &PathBuf| -> Result<(ckpt_core::Checkpoint, PathBuf), Error> {
        let local = crate::remote::local(p)?;
        Ok((ckpt_convert::open(&local, &Default::default())?, local))
    };
    let ((mut ca, pa), (mut cb, pb)) = (open(&a.a)?, open(&a.b)?);
    // A GGUF against a Hugging Face checkpoint: compare the GGUF as HF tensors (names mapped,
    // dequantized, Q/K permutation undone).
    let is_gguf = |c: &ckpt_core::Checkpoint| c.format == ckpt_core::Format::Gguf;
    // The GGUF side is read as dequantized f32 tensors; label them with their stored type.
    let mut stored: Option<(bool, std::collections::HashMap<String, String>)> = None;
    if is_gguf(&ca) != is_gguf(&cb) {
        if is_gguf(&ca) {
            ca = ckpt_export::hf_view(&pa)?;
            stored = Some((true, stored_types(&pa)?));
        } else {
            cb = ckpt_export::hf_view(&pb)?;
            stored = Some((false, stored_types(&pb)?));
        }
    }
    let mut report = ckpt_convert::diff::diff(&ca, &cb, &Default::default(), a.tolerance)?;
    if let Some((side_a, types)) = &stored {
        for d in &mut report.compared {
            if let Some(t) = types.get(&d.name) {
                if *side_a {
                    d.dtype_a = t.clone();
                } else {
                    d.dtype_b = t.clone();
                }
            }
        }
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report).unwrap());
        return Ok(report.same);
    }
    if report.compared.is_empty() {
        println!(
            "nothing in common: no tensor name of {} ({} tensors) appears in {} ({} tensors)",
            a.a.display(),
            ca.tensors.len(),
            a.b.display(),
            cb.tensors.len()
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

/// Hugging Face name -> the GGUF tensor's stored type (Q8_0, F16, …), for the labels of a GGUF
/// compared through its Hugging Face view.
fn stored_types(
    gguf: &std::path::Path,
) -> Result<std::collections::HashMap<String, String>, Error> {
    let split = ckpt_gguf::open_split(gguf)?;
    let arch = split
        .kvs()
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| v.as_str())
        .and_then(ckpt_export::names::find);
    let Some(arch) = arch else {
        return Ok(Default::default());
    };
    Ok(split
        .tensors()
        .into_iter()
        .filter_map(|t| {
            ckpt_export::names::hf_name(&arch, &t.name).map(|hf| (hf, t.dtype.to_string()))
        })
        .collect())
}

pub fn run_verify(a: &VerifyArgs, g: &GlobalArgs) -> Result<(), Error> {
    let report = ckpt_convert::verify::verify(&crate::remote::local(&a.path)?, a.scan_values)?;
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
