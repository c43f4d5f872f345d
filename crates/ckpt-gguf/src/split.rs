//! `llama-gguf-split --split` and `--merge` (tools/gguf-split at llama.cpp 0c1e57098), byte for
//! byte: which tensors go to which shard, the `split.*` keys and their order, file names, ggml's
//! header rules (`ggml_n_dims`, alignment 32), and the merged file (which keeps `split.no`,
//! `split.tensors.count` and a `split.count` of 0, as llama-gguf-split leaves them).

use std::path::{Path, PathBuf};

use ckpt_core::{Error, Result};

use crate::file::{split_path, GgufFile, SPLIT_COUNT_KEY};
use crate::header::DEFAULT_ALIGNMENT;
use crate::value::GgufValue;
use crate::writer::{DimsMode, GgufWriter, SplitOptions};

/// One output file of a split or merge, as planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardPlan {
    /// Where it goes.
    pub path: PathBuf,
    /// Tensors it holds.
    pub tensors: usize,
    /// Its size: header (with padding) plus every tensor's data, padded.
    pub bytes: u64,
    /// The size the tool itself prints for it: llama-gguf-split's `total_size` for `--dry-run`
    /// (the header plus the unpadded tensor data); for convert_hf_to_gguf.py's split
    /// ([`crate::GgufWriter::plan_converter_split`]), the unpadded tensor data alone.
    pub reported_bytes: u64,
}

/// What a split or merge wrote (or, for a dry run, would write).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitReport {
    /// The outputs, in order.
    pub shards: Vec<ShardPlan>,
    /// Tensors in all.
    pub tensors: usize,
    /// Nothing was written.
    pub dry_run: bool,
}

/// Opens a single GGUF the way llama.cpp's C reader takes it (big-endian files are refused).
fn open_input(path: &Path) -> Result<GgufFile> {
    let f = GgufFile::open(path)?;
    if f.big_endian {
        return Err(Error::Unsupported(format!(
            "{}: big-endian GGUF; llama.cpp's tools read only little-endian files",
            path.display()
        )));
    }
    Ok(f)
}

/// A writer with ggml's header conventions (what llama-gguf-split and llama-quantize write).
fn ggml_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.set_dims_mode(DimsMode::TrimTrailingOnes)
        .set_alignment(DEFAULT_ALIGNMENT);
    w
}

fn unpadded_data(f: &GgufFile) -> u64 {
    f.tensor_infos.iter().map(|t| t.nbytes()).sum()
}

/// `llama-gguf-split --split [--split-max-tensors N | --split-max-size S] [--no-tensor-first-split]
/// [--dry-run] INPUT OUT_PREFIX`: writes `OUT_PREFIX-00001-of-0000N.gguf` … (all shards to
/// temporaries, renamed into place only when every one is complete).
pub fn split_gguf(
    input: &Path,
    out_prefix: &Path,
    options: &SplitOptions,
    dry_run: bool,
    overwrite: bool,
) -> Result<SplitReport> {
    let file = open_input(input)?;
    let mut w = ggml_writer();
    for (k, v) in &file.kvs {
        w.add_kv(k, v.clone());
    }
    for t in file.tensors() {
        w.add_tensor(t);
    }
    let n_tensors = file.tensor_infos.len();
    if dry_run {
        let shards = w.plan_split(out_prefix, options)?;
        return Ok(SplitReport {
            shards,
            tensors: n_tensors,
            dry_run,
        });
    }
    let paths = w.write_split(out_prefix, options, overwrite)?;
    Ok(SplitReport {
        shards: describe_outputs(&paths)?,
        tensors: n_tensors,
        dry_run,
    })
}

fn describe_outputs(paths: &[PathBuf]) -> Result<Vec<ShardPlan>> {
    paths
        .iter()
        .map(|p| {
            let f = GgufFile::open(p)?;
            Ok(ShardPlan {
                path: p.clone(),
                tensors: f.tensor_infos.len(),
                bytes: f.file_size,
                reported_bytes: f.data_offset + unpadded_data(&f),
            })
        })
        .collect()
}

/// `llama-gguf-split --merge [--dry-run] FIRST-00001-of-0000N.gguf OUTPUT`: one GGUF with the
/// first shard's KVs (`split.count` set to 0 and moved last, as llama-gguf-split does) and every
/// shard's tensors in order. The input must be the first shard, named by llama.cpp's pattern.
pub fn merge_gguf(
    first_shard: &Path,
    output: &Path,
    dry_run: bool,
    overwrite: bool,
) -> Result<SplitReport> {
    if !dry_run {
        ckpt_core::atomic::check_destination(output, overwrite)?;
    }
    let first = open_input(first_shard)?;
    let n_split = match first.get(SPLIT_COUNT_KEY) {
        None => {
            return Err(Error::invalid(
                first_shard,
                format!("not the first shard of a split GGUF: no {SPLIT_COUNT_KEY} key"),
            ))
        }
        Some(GgufValue::U16(n)) => *n as usize,
        Some(other) => {
            return Err(Error::invalid(
                first_shard,
                format!(
                    "{SPLIT_COUNT_KEY} is {}, llama.cpp expects UINT16",
                    other.value_type()
                ),
            ))
        }
    };
    if n_split < 1 {
        return Err(Error::invalid(
            first_shard,
            format!("{SPLIT_COUNT_KEY} = {n_split} is not a valid shard count"),
        ));
    }
    let name = first_shard.to_string_lossy().into_owned();
    let suffix = split_path("", 0, n_split);
    let prefix = match name.strip_suffix(&suffix) {
        Some(p) if !p.is_empty() => p.to_string(),
        _ => {
            return Err(Error::invalid(
                first_shard,
                format!(
                    "the first of {n_split} shards must be named '<prefix>{suffix}' (llama.cpp's split file names)"
                ),
            ))
        }
    };
    let mut w = ggml_writer();
    for (k, v) in &first.kvs {
        w.add_kv(k, v.clone());
    }
    w.set_kv(SPLIT_COUNT_KEY, GgufValue::U16(0));
    let mut n_tensors = 0;
    let mut shards = vec![first];
    for i in 1..n_split {
        let p = PathBuf::from(split_path(&prefix, i, n_split));
        if !p.is_file() {
            return Err(Error::invalid(
                first_shard,
                format!(
                    "split set of {n_split} shards: shard {} ({}) is missing",
                    i + 1,
                    p.display()
                ),
            ));
        }
        shards.push(open_input(&p)?);
    }
    for s in &shards {
        n_tensors += s.tensor_infos.len();
        for t in s.tensors() {
            w.add_tensor(t);
        }
    }
    let bytes = w.total_size()?;
    let header = w.header_bytes()?.len() as u64;
    let plan = ShardPlan {
        path: output.to_path_buf(),
        tensors: n_tensors,
        bytes,
        reported_bytes: header + shards.iter().map(unpadded_data).sum::<u64>(),
    };
    if !dry_run {
        w.write(output, overwrite)?;
    }
    Ok(SplitReport {
        shards: vec![plan],
        tensors: n_tensors,
        dry_run,
    })
}
