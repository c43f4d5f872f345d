//! The Hugging Face Hub: `hf://` sources, `ckpt pull`, `ckpt push`, and the pull request that
//! adds converted weights to a repo (the job of safetensors' `convert.py`).

use std::path::{Path, PathBuf};

use ckpt_core::{Error, Result};

pub use ckpt_remote::push::{PushOptions, PushReport};
pub use ckpt_remote::{HubConfig, PullOptions, PullReport};

use crate::convert::ConvertReport;
use crate::Target;

/// A local path for a model argument: `hf://…` and Hub URLs are resolved through the Hugging
/// Face cache (downloading what is missing); anything else is returned as it is.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let s = path.to_string_lossy();
    if !ckpt_remote::is_remote(&s) {
        return Ok(path.to_path_buf());
    }
    Ok(ckpt_remote::resolve_to_local(&s)?)
}

/// Downloads `repo` (`ORG/NAME` or `hf://ORG/NAME[@REV]`) into the Hugging Face cache (or
/// `opts.local_dir`), resumable and sha256-verified. The settings come from the environment
/// (`HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, …); `token` overrides the token for this pull.
pub fn pull(repo: &str, opts: &PullOptions, token: Option<&str>) -> Result<PullReport> {
    let mut config = HubConfig::from_env();
    if let Some(t) = token.map(str::trim).filter(|t| !t.is_empty()) {
        config.token = Some(t.to_string());
    }
    Ok(ckpt_remote::Hub::new(config).pull(repo, opts)?)
}

/// Uploads a file or folder with the Hub's commit API (preupload, LFS, one commit).
pub fn push(local: &Path, repo: &str, opts: &PushOptions) -> Result<PushReport> {
    Ok(ckpt_remote::push::push(local, repo, opts)?)
}

/// Opens the pull request safetensors' `convert.py` opens on the repo `src` (`hf://ORG/NAME…`)
/// was converted from: the converted weights (and index) only, with a description of what was
/// converted and which shared tensors were written once.
pub fn push_conversion_pr(src: &str, report: &ConvertReport) -> Result<PushReport> {
    let ckpt_remote::RemoteLocation::Hub(uri) = ckpt_remote::RemoteLocation::parse(src)? else {
        return Err(Error::Usage(format!(
            "a conversion pull request needs an hf:// source, not {src}"
        )));
    };
    let local = &report.output;
    let include = if local.is_dir() {
        report
            .files
            .iter()
            .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let opts = PushOptions {
        revision: uri.revision.clone(),
        create_pr: true,
        message: Some("Adding `safetensors` variant of this model".into()),
        description: Some(conversion_pr_description(report)),
        include,
        ..Default::default()
    };
    push(local, &uri.repo_id, &opts)
}

/// The body of a conversion pull request.
fn conversion_pr_description(report: &ConvertReport) -> String {
    let mut description = format!(
        "This is an automated PR created with ckpt. It adds the {} weights of this model ({} tensors, converted from {} and verified tensor by tensor against the source).\n\nFiles:\n",
        match report.target {
            Target::Safetensors => "safetensors",
            Target::Bin => "PyTorch .bin",
        },
        report.tensors,
        report.source_format
    );
    for f in &report.files {
        description.push_str(&format!(
            "- {}\n",
            f.file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default()
        ));
    }
    if !report.dropped_shared.is_empty() {
        description.push_str("\nTensors that share memory were written once (recorded in the safetensors metadata):\n");
        for (d, k) in &report.dropped_shared {
            description.push_str(&format!("- {d} -> {k}\n"));
        }
    }
    description
}
