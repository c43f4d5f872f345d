//! `ckpt verify`: integrity of a checkpoint without a second model to compare with — every file
//! parses with full validation, an index's shards and tensors are all there, file hashes match
//! what the Hugging Face cache recorded, a model folder has its config and tokenizer, and
//! optionally no tensor holds NaN or Inf.

use std::io::Read;
use std::path::{Path, PathBuf};

use ckpt_core::{DType, Result};
use rayon::prelude::*;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::diff::for_each_chunk;
use crate::source::{self, OpenOptions};

/// One weight file's size and hash.
#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    /// The weight file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub size: u64,
    /// The SHA-256 of its content, lowercase hex.
    pub sha256: String,
    /// The hash the file should have, when known (the blob name in a Hugging Face cache).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_sha256: Option<String>,
}

/// A problem [`verify`] found.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// `error` (the checkpoint fails verification) or `warning` (a model folder without config
    /// or tokenizer files).
    pub severity: &'static str,
    /// What is wrong, naming the file or tensor.
    pub message: String,
}

/// A tensor holding non-finite values.
#[derive(Debug, Clone, Serialize)]
pub struct ValueScan {
    /// The tensor's name.
    pub tensor: String,
    /// How many of its elements are NaN.
    pub nan: u64,
    /// How many are +Inf or -Inf.
    pub inf: u64,
}

/// The result of [`verify`] (the `--json` report of `ckpt verify`).
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    /// The path verified.
    pub path: PathBuf,
    /// The checkpoint's format name, when its files could be opened.
    pub format: Option<String>,
    /// Every weight file, hashed.
    pub files: Vec<FileCheck>,
    /// Number of tensors, when the files could be opened.
    pub tensors: usize,
    /// Errors and warnings, in the order found.
    pub findings: Vec<Finding>,
    /// With a value scan: the float tensors holding NaN or Inf.
    pub non_finite: Vec<ValueScan>,
    /// No finding of severity `error`.
    pub ok: bool,
}

fn sha256_file(p: &Path) -> std::io::Result<(u64, String)> {
    let mut f = std::fs::File::open(p)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((n, h.finalize().iter().map(|b| format!("{b:02x}")).collect()))
}

/// In a Hugging Face cache, snapshot files are symlinks to `blobs/<etag>`; for LFS files the etag
/// is the sha256 of the content.
fn cache_etag(p: &Path) -> Option<String> {
    let target = std::fs::canonicalize(p).ok()?;
    let parent = target.parent()?;
    if parent.file_name()? != "blobs" {
        return None;
    }
    let name = target.file_name()?.to_str()?;
    (name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| name.to_ascii_lowercase())
}

/// Verifies a weight file, an index or a model folder; with `scan_values` also reads every float
/// tensor for NaN and Inf. Problems are findings in the report (`ok` false), not errors: the
/// `Result` is an `Ok` report for any path, including one that does not open.
pub fn verify(path: &Path, scan_values: bool) -> Result<VerifyReport> {
    let mut report = VerifyReport {
        path: path.to_path_buf(),
        format: None,
        files: Vec::new(),
        tensors: 0,
        findings: Vec::new(),
        non_finite: Vec::new(),
        ok: true,
    };
    let error = |report: &mut VerifyReport, msg: String| {
        report.findings.push(Finding {
            severity: "error",
            message: msg,
        });
        report.ok = false;
    };

    let weight_files = if path.is_dir() {
        match source::find_model_files(path) {
            Ok(files) => {
                if !path.join("config.json").is_file() {
                    report.findings.push(Finding {
                        severity: "warning",
                        message: "no config.json in the folder".into(),
                    });
                }
                let tok = [
                    "tokenizer.json",
                    "tokenizer.model",
                    "vocab.json",
                    "vocab.txt",
                    "spiece.model",
                ];
                if !tok.iter().any(|f| path.join(f).is_file()) {
                    report.findings.push(Finding {
                        severity: "warning",
                        message: "no tokenizer files (tokenizer.json or tokenizer.model)".into(),
                    });
                }
                files
            }
            Err(e) => {
                error(&mut report, e.to_string());
                return Ok(report);
            }
        }
    } else {
        source::ModelFiles {
            weights: vec![path.to_path_buf()],
            index: None,
            weight_map: None,
        }
    };

    // Hashes first: they do not depend on the files parsing.
    let checks: Vec<std::io::Result<FileCheck>> = weight_files
        .weights
        .par_iter()
        .map(|p| {
            let (size, sha256) = sha256_file(p)?;
            Ok(FileCheck {
                path: p.clone(),
                size,
                sha256,
                expected_sha256: cache_etag(p),
            })
        })
        .collect();
    for c in checks {
        match c {
            Ok(c) => {
                if let Some(want) = &c.expected_sha256 {
                    if *want != c.sha256 {
                        error(
                            &mut report,
                            format!(
                                "{}: sha256 {} does not match the cache's {want}",
                                c.path.display(),
                                c.sha256
                            ),
                        );
                    }
                }
                report.files.push(c);
            }
            Err(e) => error(&mut report, format!("reading a weight file: {e}")),
        }
    }

    let ckpt = match source::open_model_files(&weight_files, &OpenOptions::default()) {
        Ok(c) => c,
        Err(e) => {
            error(&mut report, e.to_string());
            return Ok(report);
        }
    };
    report.format = Some(ckpt.format.name().to_string());
    report.tensors = ckpt.tensors.len();
    for t in &ckpt.tensors {
        if let Err(e) = t.validate() {
            error(&mut report, e.to_string());
        }
    }
    if scan_values {
        let scans: Vec<Result<ValueScan>> = ckpt
            .tensors
            .par_iter()
            .filter(|t| matches!(t.dtype, DType::F16 | DType::BF16 | DType::F32 | DType::F64))
            .map(|t| {
                let (mut nan, mut inf) = (0u64, 0u64);
                for_each_chunk(t, 1 << 16, |xs| {
                    for x in xs {
                        nan += x.is_nan() as u64;
                        inf += x.is_infinite() as u64;
                    }
                    Ok(())
                })?;
                Ok(ValueScan {
                    tensor: t.name.clone(),
                    nan,
                    inf,
                })
            })
            .collect();
        for s in scans {
            match s {
                Ok(s) if s.nan + s.inf > 0 => {
                    error(
                        &mut report,
                        format!(
                            "tensor '{}' holds {} NaN and {} Inf values",
                            s.tensor, s.nan, s.inf
                        ),
                    );
                    report.non_finite.push(s);
                }
                Ok(_) => {}
                Err(e) => error(&mut report, e.to_string()),
            }
        }
    }
    Ok(report)
}
