//! `ckpt quantize`: llama-quantize's job, byte for byte, without a C++ build.

use std::path::PathBuf;

use ckpt::{Error, GgmlType};
use clap::Args;

use crate::GlobalArgs;

#[derive(Args)]
pub struct QuantizeArgs {
    /// Input GGUF (F32, F16 or BF16; a quantized input needs --allow-requantize)
    input: PathBuf,
    /// Output GGUF
    output: PathBuf,
    /// Target: a llama-quantize type (Q4_0 … Q8_0, Q2_K … Q6_K and the K mixes, IQ types, TQ1_0, TQ2_0, MXFP4_MOE, F16, BF16, F32; case-insensitive; Q4_K = Q4_K_M) or its number
    #[arg(value_name = "TYPE")]
    ftype: String,
    /// Worker threads, as llama-quantize's positional NTHREADS (same as --threads)
    #[arg(value_name = "NTHREADS", conflicts_with = "threads")]
    nthreads: Option<usize>,
    #[command(flatten)]
    mix: MixArgs,
    /// Quantize an already quantized input (dequantized first, with quality loss)
    #[arg(long)]
    allow_requantize: bool,
    /// Write the output in the input's shards (OUTPUT without .gguf, then -00001-of-0000N.gguf …),
    /// as llama-quantize --keep-split
    #[arg(long, conflicts_with_all = ["split_max_size", "split_max_tensors"])]
    keep_split: bool,
    #[command(flatten)]
    split: SplitOutArgs,
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
    ckpt::crates::quant::parse_ggml_type(s, flag)
}

/// llama-quantize's options that choose tensor types and metadata (shared by `ckpt quantize` and
/// a one-step `ckpt convert --outtype q4_k_m`).
#[derive(Args, Default)]
pub struct MixArgs {
    /// Every quantizable tensor gets the type's default, without llama.cpp's per-tensor mix
    #[arg(long)]
    pub pure: bool,
    /// Type of output.weight (e.g. q8_0)
    #[arg(long)]
    output_tensor_type: Option<String>,
    /// Type of token_embd.weight
    #[arg(long)]
    token_embedding_type: Option<String>,
    /// Keep output.weight unquantized
    #[arg(long)]
    leave_output_tensor: bool,
    /// Tensors whose name matches the regular expression PATTERN get TYPE (repeatable; the first
    /// matching rule wins; PATTERN is lower-cased as llama-quantize does), e.g. attn_v=q8_0
    #[arg(long, value_name = "PATTERN=TYPE")]
    tensor_type: Vec<String>,
    /// More PATTERN=TYPE rules, separated by spaces or newlines (they come after --tensor-type's)
    #[arg(long, value_name = "FILE")]
    tensor_type_file: Option<PathBuf>,
    /// Set a metadata key in the output: KEY=int:N, KEY=float:X, KEY=bool:true|false, KEY=str:TEXT
    /// (repeatable; int is written as UINT32, as llama-quantize does)
    #[arg(long, value_name = "KEY=TYPE:VALUE")]
    override_kv: Vec<String>,
    /// Remove these blocks (comma-separated layer numbers); the others are renumbered and
    /// block_count updated
    #[arg(long, value_name = "L1,L2,...")]
    prune_layers: Option<String>,
    /// Importance matrix from llama-imatrix (GGUF or legacy .dat)
    #[arg(long)]
    imatrix: Option<PathBuf>,
    /// Use the importance matrix only for tensors whose name contains NAME (repeatable)
    #[arg(long, value_name = "NAME", conflicts_with = "exclude_weights")]
    include_weights: Vec<String>,
    /// Do not use the importance matrix for tensors whose name contains NAME (repeatable)
    #[arg(long, value_name = "NAME")]
    exclude_weights: Vec<String>,
}

impl MixArgs {
    /// Whether any option was given (for refusing them where they do not apply).
    pub fn any(&self) -> Option<&'static str> {
        [
            (self.pure, "--pure"),
            (self.output_tensor_type.is_some(), "--output-tensor-type"),
            (
                self.token_embedding_type.is_some(),
                "--token-embedding-type",
            ),
            (self.leave_output_tensor, "--leave-output-tensor"),
            (!self.tensor_type.is_empty(), "--tensor-type"),
            (self.tensor_type_file.is_some(), "--tensor-type-file"),
            (!self.override_kv.is_empty(), "--override-kv"),
            (self.prune_layers.is_some(), "--prune-layers"),
            (self.imatrix.is_some(), "--imatrix"),
            (!self.include_weights.is_empty(), "--include-weights"),
            (!self.exclude_weights.is_empty(), "--exclude-weights"),
        ]
        .into_iter()
        .find(|(on, _)| *on)
        .map(|(_, flag)| flag)
    }

    /// The library options for `ftype`.
    pub fn options(&self, ftype: ckpt::Ftype) -> Result<ckpt::QuantizeOptions, Error> {
        let mut opts = ckpt::QuantizeOptions::new(ftype);
        opts.pure = self.pure;
        opts.output_tensor_type = self
            .output_tensor_type
            .as_deref()
            .map(|s| ggml_type(s, "--output-tensor-type"))
            .transpose()?;
        opts.token_embedding_type = self
            .token_embedding_type
            .as_deref()
            .map(|s| ggml_type(s, "--token-embedding-type"))
            .transpose()?;
        opts.leave_output_tensor = self.leave_output_tensor;
        for t in &self.tensor_type {
            opts.tensor_types.push(ckpt::TensorTypeOverride::parse(t)?);
        }
        if let Some(f) = &self.tensor_type_file {
            let text = std::fs::read_to_string(f).map_err(|e| {
                Error::Usage(format!(
                    "--tensor-type-file: cannot read {}: {e}",
                    f.display()
                ))
            })?;
            opts.tensor_types
                .extend(ckpt::TensorTypeOverride::parse_list(&text)?);
        }
        for o in &self.override_kv {
            opts.kv_overrides.push(ckpt::KvOverride::parse(o)?);
        }
        if let Some(p) = &self.prune_layers {
            opts.prune_layers = ckpt::crates::quant::parse_prune_layers(p)?;
        }
        opts.imatrix = self.imatrix.clone();
        opts.imatrix_weights = if !self.include_weights.is_empty() {
            ckpt::ImatrixWeights::Include(self.include_weights.clone())
        } else if !self.exclude_weights.is_empty() {
            ckpt::ImatrixWeights::Exclude(self.exclude_weights.clone())
        } else {
            ckpt::ImatrixWeights::All
        };
        Ok(opts)
    }
}

/// Writing the GGUF output as a split set: `quantize` as llama-gguf-split would split it,
/// `convert` as convert_hf_to_gguf.py splits its output.
#[derive(Args, Default)]
pub struct SplitOutArgs {
    /// Write OUTPUT as shards of at most this much tensor data (N followed by M or G, decimal:
    /// 5G = 5*10^9 bytes, read as llama-gguf-split reads it), named OUTPUT without .gguf, then
    /// -00001-of-0000N.gguf …; the same bytes as writing one file and running llama-gguf-split
    /// --split-max-size on it. `convert` reads and splits as convert_hf_to_gguf.py
    /// --split-max-size does (also K or a plain byte count, 0 = no split; unpadded sizes; shards
    /// named after OUTPUT without its extension; one file when everything fits)
    #[arg(long, value_name = "N(M|G)")]
    pub split_max_size: Option<String>,
    /// Like --split-max-size, at most N tensors per shard (`convert`: as convert_hf_to_gguf.py
    /// --split-max-tensors, which may be combined with --split-max-size; 0 = no limit)
    #[arg(long, value_name = "N")]
    pub split_max_tensors: Option<usize>,
}

impl SplitOutArgs {
    /// The split, if one was asked for.
    pub fn options(&self) -> Result<Option<ckpt::SplitOptions>, Error> {
        let by = match (&self.split_max_size, self.split_max_tensors) {
            (Some(_), Some(_)) => {
                return Err(Error::Usage(
                    "--split-max-size and --split-max-tensors cannot be used together (llama-gguf-split takes one limit)".into(),
                ))
            }
            (Some(s), None) => ckpt::SplitBy::MaxBytes(ckpt::crates::gguf::parse_split_size(s)?),
            (None, Some(0)) => {
                return Err(Error::Usage(
                    "--split-max-tensors must be at least 1".into(),
                ))
            }
            (None, Some(n)) => ckpt::SplitBy::MaxTensors(n),
            (None, None) => return Ok(None),
        };
        Ok(Some(ckpt::SplitOptions {
            by,
            no_tensor_first_split: false,
        }))
    }

    /// The split of `ckpt convert … --to gguf`, whose options read as convert_hf_to_gguf.py
    /// reads its own: `--split-max-size` also takes `K` and plain byte counts, 0 (of either
    /// option) is no limit, both limits may be given; `no_tensor_first_split` is its
    /// `--no-tensor-first-split`. `None` when nothing asks for a split.
    pub fn convert_options(
        &self,
        no_tensor_first_split: bool,
    ) -> Result<Option<ckpt::ConverterSplit>, Error> {
        let max_bytes = match &self.split_max_size {
            Some(s) => ckpt::crates::gguf::parse_convert_split_size(s)?,
            None => 0,
        };
        let split = ckpt::ConverterSplit {
            max_tensors: self.split_max_tensors.unwrap_or(0),
            max_bytes,
            small_first_shard: no_tensor_first_split,
        };
        Ok(split.any().then_some(split))
    }

    /// Whether a split was asked for.
    pub fn any(&self) -> bool {
        self.split_max_size.is_some() || self.split_max_tensors.is_some()
    }
}

pub fn run(a: &QuantizeArgs, g: &GlobalArgs) -> Result<(), Error> {
    let ftype: ckpt::Ftype = a.ftype.parse()?;
    if a.mix.pure && !ftype.default_type().is_quantized() {
        // llama.cpp's per-tensor mix applies only to quantized targets: with a float target the
        // output is the same with or without --pure.
        return Err(Error::Usage(format!(
            "--pure has no effect when the target is {ftype}: the per-tensor type mix it turns off applies only to quantized types"
        )));
    }
    let mut opts = a.mix.options(ftype)?;
    opts.allow_requantize = a.allow_requantize;
    opts.keep_split = a.keep_split;
    opts.split = a.split.options()?;
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
        let out = ckpt::report::quantize(&a.output, &ftype, &report);
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
        let written = match report.outputs.as_slice() {
            [one] => one.display().to_string(),
            many => format!(
                "{} shards ({} … {})",
                many.len(),
                many.first()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
                many.last()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            ),
        };
        println!(
            "{} -> {} ({}): {} tensors [{}], {} -> {}",
            a.input.display(),
            written,
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
