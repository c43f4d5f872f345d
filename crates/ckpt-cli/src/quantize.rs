//! `ckpt quantize`: llama-quantize's job, byte for byte, without a C++ build.

use std::path::PathBuf;

use ckpt::{Error, GgmlType};
use clap::Args;
use serde_json::json;

use crate::GlobalArgs;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Input GGUF (F32, F16 or BF16; a quantized input needs --allow-requantize)
    input: PathBuf,
    /// Output GGUF
    output: PathBuf,
    /// Target: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, F16, BF16, F32 (case-insensitive; Q4_K = Q4_K_M)
    #[arg(value_name = "TYPE")]
    ftype: String,
    /// Worker threads, as llama-quantize's positional NTHREADS (same as --threads)
    #[arg(value_name = "NTHREADS", conflicts_with = "threads")]
    nthreads: Option<usize>,
    /// Every quantizable tensor gets the type's default, without llama.cpp's per-tensor mix
    #[arg(long)]
    pure: bool,
    /// Type of output.weight (e.g. q8_0)
    #[arg(long)]
    output_tensor_type: Option<String>,
    /// Type of token_embd.weight
    #[arg(long)]
    token_embedding_type: Option<String>,
    /// Keep output.weight unquantized
    #[arg(long)]
    leave_output_tensor: bool,
    /// Quantize an already quantized input (dequantized first, with quality loss)
    #[arg(long)]
    allow_requantize: bool,
    /// Importance matrix from llama-imatrix (GGUF or legacy .dat)
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Worker threads (default: all cores; llama-quantize's positional NTHREADS); the output does
    /// not depend on it
    #[arg(long)]
    threads: Option<usize>,
    /// List every tensor that needed a shape fallback (by default they are counted by type)
    #[arg(short, long)]
    verbose: bool,
    /// Replace an existing output
    #[arg(long)]
    force: bool,
}

fn ggml_type(s: &str, flag: &str) -> Result<GgmlType, Error> {
    GgmlType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = ckpt::crates::quant::quantizable_types()
            .map(|t| t.name())
            .collect();
        Error::Usage(format!(
            "{flag}: unknown type '{s}' (valid: {})",
            names.join(", ")
        ))
    })
}

pub fn run(a: &QuantizeArgs, g: &GlobalArgs) -> Result<(), Error> {
    let ftype: ckpt::Ftype = a.ftype.parse()?;
    if a.pure && !ftype.default_type().is_quantized() {
        // llama.cpp's per-tensor mix applies only to quantized targets: with a float target the
        // output is the same with or without --pure.
        return Err(Error::Usage(format!(
            "--pure has no effect when the target is {ftype}: the per-tensor type mix it turns off applies only to quantized types"
        )));
    }
    let mut opts = ckpt::QuantizeOptions::new(ftype);
    opts.pure = a.pure;
    opts.output_tensor_type = a
        .output_tensor_type
        .as_deref()
        .map(|s| ggml_type(s, "--output-tensor-type"))
        .transpose()?;
    opts.token_embedding_type = a
        .token_embedding_type
        .as_deref()
        .map(|s| ggml_type(s, "--token-embedding-type"))
        .transpose()?;
    opts.leave_output_tensor = a.leave_output_tensor;
    opts.allow_requantize = a.allow_requantize;
    opts.imatrix = a.imatrix.clone();
    opts.threads = a.threads.or(a.nthreads).unwrap_or(0);
    opts.overwrite = a.force;
    let spinner = (!g.quiet && !g.json && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .then(|| {
            let s = indicatif::ProgressBar::new_spinner();
            s.set_message(format!("quantizing to {ftype}"));
            s.enable_steady_tick(std::time::Duration::from_millis(120));
            s
        });
    let report = ckpt::quantize(&a.input, &a.output, &opts);
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    let report = report?;
    if g.json {
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
        let out = json!({
            "output": a.output, "ftype": ftype.name(), "tensors": tensors, "fallbacks": report.n_fallback,
            "input_bytes": report.input_bytes, "output_bytes": report.output_bytes,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return Ok(());
    }
    print_fallbacks(&report.tensors, a.verbose);
    if !g.quiet {
        let mut counts = std::collections::BTreeMap::<&str, usize>::new();
        for t in &report.tensors {
            *counts.entry(t.to.name()).or_default() += 1;
        }
        let mix: Vec<String> = counts.iter().map(|(k, v)| format!("{k}x{v}")).collect();
        println!(
            "{} -> {} ({}): {} tensors [{}], {} -> {}",
            a.input.display(),
            a.output.display(),
            ftype,
            report.tensors.len(),
            mix.join(", "),
            crate::inspect::human_bytes(report.input_bytes),
            crate::inspect::human_bytes(report.output_bytes)
        );
    }
    Ok(())
}

/// Tensors whose rows did not fit the wanted type's block size: one line per (wanted -> used)
/// pair with a count, or one line per tensor with `verbose`.
pub fn print_fallbacks(tensors: &[ckpt::crates::quant::TensorReport], verbose: bool) {
    let summary = ckpt::crates::quant::pipeline::fallback_summary(tensors);
    if summary.is_empty() {
        return;
    }
    let total: usize = summary.iter().map(|s| s.count).sum();
    eprintln!(
        "warning: {total} of {} tensor(s) have rows that are not a multiple of the wanted type's block size and used a fallback type (as llama-quantize does){}:",
        tensors.len(),
        if verbose { "" } else { "; --verbose lists them" }
    );
    for s in &summary {
        eprintln!("  {} -> {}: {} tensor(s)", s.wanted, s.used, s.count);
    }
    if verbose {
        for t in tensors.iter().filter(|t| t.fallback_from.is_some()) {
            eprintln!(
                "  {} {:?}: row of {} does not fit {}, stored as {}",
                t.name,
                t.ne,
                t.ne[0],
                t.fallback_from.unwrap(),
                t.to
            );
        }
    }
}
