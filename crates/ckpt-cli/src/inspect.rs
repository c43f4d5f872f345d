//! `ckpt inspect`: what a checkpoint holds, read from headers only.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ckpt::{Checkpoint, Error};
use clap::Args;
use serde_json::Value;

use crate::GlobalArgs;

#[derive(Args)]
pub struct InspectArgs {
    /// A .safetensors, .bin/.pt, .gguf file, an *.index.json, or a model folder
    path: PathBuf,
    /// Use only this entry of a pickled checkpoint (e.g. state_dict)
    #[arg(long)]
    key: Option<String>,
    /// Print at most this many tensors in text mode (0 = all)
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// GGUF: with --json, keep only the first 64 items of long metadata arrays (marked
    /// "truncated"); without it --json lists every item
    #[arg(long)]
    summary: bool,
}

pub fn run(a: &InspectArgs, g: &GlobalArgs) -> Result<(), Error> {
    if g.json {
        let v = ckpt::report::inspect(&a.path, a.key.clone(), a.summary)?;
        println!("{}", serde_json::to_string_pretty(&v).unwrap());
        return Ok(());
    }
    let as_text = a.path.to_string_lossy();
    if ckpt::crates::remote::is_remote(&as_text) {
        return crate::remote::inspect(&as_text);
    }
    if ckpt::is_gguf_file(&a.path)? {
        return run_gguf(a);
    }
    let ckpt = ckpt::open(&a.path, &ckpt::OpenOptions { key: a.key.clone() })?;
    let summary = ckpt::report::checkpoint(&ckpt);
    print_text(&ckpt, &summary, a.limit);
    Ok(())
}

fn print_text(ckpt: &Checkpoint, s: &Value, limit: usize) {
    println!("format: {}", ckpt.format.name());
    if ckpt.files.len() > 1 {
        println!("shards: {}", ckpt.files.len());
        for f in s["files"].as_array().unwrap() {
            println!(
                "  {}  {} tensors, {}",
                f["path"].as_str().unwrap_or(""),
                f["tensors"],
                human_bytes(f["bytes"].as_u64().unwrap_or(0))
            );
        }
    } else if let Some(f) = ckpt.files.first() {
        println!("file: {}", f.display());
    }
    let shown = if limit == 0 {
        ckpt.tensors.len()
    } else {
        limit.min(ckpt.tensors.len())
    };
    let width = ckpt
        .tensors
        .iter()
        .take(shown)
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "\n{:<width$}  {:<8}  {:<20}  {:>10}",
        "name", "dtype", "shape", "size"
    );
    for t in ckpt.tensors.iter().take(shown) {
        println!(
            "{:<width$}  {:<8}  {:<20}  {:>10}",
            t.name,
            t.dtype.to_string(),
            format!("{:?}", t.shape),
            human_bytes(t.nbytes())
        );
    }
    if shown < ckpt.tensors.len() {
        println!(
            "… {} more tensors (use --limit 0 or --json to see all)",
            ckpt.tensors.len() - shown
        );
    }
    println!("\ntensors: {}", ckpt.tensors.len());
    println!("parameters:");
    let per: BTreeMap<String, u64> =
        serde_json::from_value(s["parameters"].clone()).unwrap_or_default();
    for (d, n) in &per {
        println!("  {d:<8} {}", group_digits(*n));
    }
    println!(
        "  total    {} ({})",
        group_digits(s["total_parameters"].as_u64().unwrap_or(0)),
        human_count(s["total_parameters"].as_u64().unwrap_or(0))
    );
    if !ckpt.metadata.is_empty() {
        println!("metadata:");
        for (k, v) in &ckpt.metadata {
            println!("  {k}: {}", truncate(v, 200));
        }
    }
    if !ckpt.extras.is_empty() {
        println!("non-tensor values:");
        for (k, v) in &ckpt.extras {
            println!("  {k}: {}", truncate(&v.to_string(), 200));
        }
    }
}

/// GGUF as text: header, KV metadata in file order (long arrays summarised) and tensor infos
/// with offsets (`--json` is [`ckpt::report::gguf`]).
fn run_gguf(a: &InspectArgs) -> Result<(), Error> {
    // Like gguf-py (and unlike llama.cpp), inspect also shows arrays of arrays.
    let lenient = ckpt::crates::gguf::ParseOptions {
        allow_nested_arrays: true,
    };
    let split = ckpt::crates::gguf::open_split_with(&a.path, &lenient)?;
    let ckpt = split.to_checkpoint();
    let (per_dtype, total) = ckpt.parameter_counts();
    let infos = split.tensor_infos();
    let first = &split.shards[0];
    println!(
        "format: gguf v{} (alignment {}, data at byte {}{})",
        first.version,
        first.alignment,
        first.data_offset,
        if first.big_endian { ", big-endian" } else { "" }
    );
    for p in split.paths() {
        println!("file: {}", p.display());
    }
    if let Some(line) = ckpt::report::projector_summary(|k| split.get(k)) {
        println!("{line}");
    }
    println!("\nmetadata ({} keys):", split.kvs().len());
    for line in ckpt::crates::gguf::describe_kvs(split.kvs(), 8) {
        println!("  {}", truncate(&line, 300));
    }
    let shown = if a.limit == 0 {
        infos.len()
    } else {
        a.limit.min(infos.len())
    };
    let width = infos
        .iter()
        .take(shown)
        .map(|(_, t)| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "\n{:<width$}  {:<6}  {:<20}  {:>12}  {:>10}",
        "name", "type", "shape", "offset", "size"
    );
    for (_, t) in infos.iter().take(shown) {
        println!(
            "{:<width$}  {:<6}  {:<20}  {:>12}  {:>10}",
            t.name,
            t.dtype().to_string(),
            format!("{:?}", t.shape()),
            t.offset,
            human_bytes(t.nbytes())
        );
    }
    if shown < infos.len() {
        println!(
            "… {} more tensors (use --limit 0 or --json to see all)",
            infos.len() - shown
        );
    }
    println!("\ntensors: {}", infos.len());
    println!("parameters:");
    for (d, n) in &per_dtype {
        println!("  {d:<8} {}", group_digits(*n));
    }
    println!(
        "  total    {} ({})",
        group_digits(total),
        human_count(total)
    );
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(n).collect::<String>())
    }
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn human_count(n: u64) -> String {
    match n {
        0..=999 => n.to_string(),
        1_000..=999_999 => format!("{:.1}K", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
