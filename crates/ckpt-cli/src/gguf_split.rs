//! `ckpt gguf-split`: llama-gguf-split's --split and --merge, byte for byte.

use std::path::PathBuf;

use ckpt::Error;
use clap::Args;
use serde_json::json;

use crate::GlobalArgs;

#[derive(Args)]
pub struct GgufSplitArgs {
    /// Split IN into OUT_PREFIX-00001-of-0000N.gguf, … (the default operation)
    #[arg(long, conflicts_with = "merge")]
    split: bool,
    /// Merge the split set whose first shard is IN (…-00001-of-0000N.gguf) into the file OUT
    #[arg(long)]
    merge: bool,
    /// At most N tensors per shard (default 128)
    #[arg(long, value_name = "N", conflicts_with = "split_max_size")]
    split_max_tensors: Option<usize>,
    /// At most this much tensor data per shard: N followed by M or G (decimal: 5G = 5*10^9 bytes)
    #[arg(long, value_name = "N(M|G)")]
    split_max_size: Option<String>,
    /// The first shard holds only the metadata
    #[arg(long)]
    no_tensor_first_split: bool,
    /// Print the plan, write nothing
    #[arg(long)]
    dry_run: bool,
    /// Replace existing outputs
    #[arg(long)]
    force: bool,
    /// Input GGUF (for --merge: the first shard)
    input: PathBuf,
    /// Output prefix (for --merge: the output file)
    output: PathBuf,
}

pub fn run(a: &GgufSplitArgs, g: &GlobalArgs) -> Result<(), Error> {
    let report = if a.merge {
        for (on, flag) in [
            (a.split_max_tensors.is_some(), "--split-max-tensors"),
            (a.split_max_size.is_some(), "--split-max-size"),
            (a.no_tensor_first_split, "--no-tensor-first-split"),
        ] {
            if on {
                return Err(Error::Usage(format!(
                    "{flag} applies to --split, not --merge"
                )));
            }
        }
        ckpt::gguf_merge(&a.input, &a.output, a.dry_run, a.force)?
    } else {
        let by = match (&a.split_max_size, a.split_max_tensors) {
            (Some(s), _) => ckpt::SplitBy::MaxBytes(ckpt::crates::gguf::parse_split_size(s)?),
            (None, Some(0)) => {
                return Err(Error::Usage(
                    "--split-max-tensors must be at least 1".into(),
                ))
            }
            (None, n) => ckpt::SplitBy::MaxTensors(n.unwrap_or(128)),
        };
        let opts = ckpt::SplitOptions {
            by,
            no_tensor_first_split: a.no_tensor_first_split,
        };
        ckpt::gguf_split(&a.input, &a.output, &opts, a.dry_run, a.force)?
    };
    if g.json {
        let shards: Vec<_> = report
            .shards
            .iter()
            .map(|s| json!({"path": s.path, "tensors": s.tensors, "bytes": s.bytes}))
            .collect();
        let out = json!({
            "operation": if a.merge { "merge" } else { "split" },
            "dry_run": report.dry_run, "tensors": report.tensors, "outputs": shards,
        });
        println!("{}", serde_json::to_string_pretty(&out).unwrap());
        return Ok(());
    }
    if g.quiet {
        return Ok(());
    }
    if !a.merge {
        println!("n_split: {}", report.shards.len());
    }
    for (i, s) in report.shards.iter().enumerate() {
        println!(
            "{} {:05}: n_tensors = {}, total_size = {}M{}",
            if a.merge { "merged" } else { "split" },
            i + 1,
            s.tensors,
            s.reported_bytes / 1000 / 1000,
            if report.dry_run {
                String::new()
            } else {
                format!(" -> {}", s.path.display())
            }
        );
    }
    if report.dry_run {
        println!("dry run: nothing written");
    }
    Ok(())
}
