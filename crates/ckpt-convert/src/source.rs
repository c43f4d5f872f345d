//! Opening anything a user points at — a safetensors or PyTorch file, a sharded index, or a model
//! folder — as one [`Checkpoint`] whose tensors are in shard order.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use ckpt_core::hf::{self, Weights};
use ckpt_core::{Checkpoint, Error, Format, Result};

/// Options of [`open`] and the other openers of this module.
#[derive(Debug, Clone, Default)]
pub struct OpenOptions {
    /// Select a subtree of a pickled checkpoint (`state_dict`, `model`, …).
    pub key: Option<String>,
}

pub use ckpt_core::sniff::{sniff_file, FileKind};

/// Opens one weight file of any supported format.
pub fn open_file(path: &Path, opts: &OpenOptions) -> Result<Checkpoint> {
    match sniff_file(path)? {
        FileKind::Safetensors => ckpt_safetensors::read(path),
        FileKind::TorchZip | FileKind::TorchLegacy => {
            crate::torch_io::read(path, opts.key.as_deref())
        }
        FileKind::Gguf => Ok(ckpt_gguf::open_split(path)?.to_checkpoint()),
        FileKind::Unknown => {
            let head = ckpt_core::sniff::read_head(path).map_or(Vec::new(), |(h, _)| h);
            if ckpt_core::sniff::is_lfs_pointer(&head) {
                return Err(Error::invalid(path, "this is a Git LFS pointer file, not the weights (run git lfs pull or ckpt pull)"));
            }
            Err(Error::invalid(
                path,
                "not a safetensors, PyTorch (zip or legacy) or GGUF file (unrecognised first bytes)",
            ))
        }
    }
}

/// A model folder's weight files, as found on disk.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    /// Weight files in shard order.
    pub weights: Vec<PathBuf>,
    /// The index file, when the weights are sharded.
    pub index: Option<PathBuf>,
    /// The index's weight_map, when there is one.
    pub weight_map: Option<BTreeMap<String, String>>,
}

/// Finds the weights of a Hugging Face style folder by the rules of [`ckpt_core::hf`]
/// (transformers' order, safetensors preferred over `.bin`; GGUF files are not a folder's weights).
pub fn find_model_files(dir: &Path) -> Result<ModelFiles> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
            if p.is_file() {
                names.push(name.to_string());
            }
        }
    }
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    match hf::choose_weights(&names, false) {
        Some(Weights::Index(index)) => read_index(&dir.join(index)),
        Some(Weights::Files(files)) => Ok(ModelFiles {
            weights: files.iter().map(|f| dir.join(f)).collect(),
            index: None,
            weight_map: None,
        }),
        None => Err(Error::invalid(
            dir,
            "no weights found (expected model.safetensors, pytorch_model.bin, a *.index.json, or *.safetensors files)",
        )),
    }
}

/// Reads a `*.index.json` and lists its shards (sorted, as `-00001-of-` names sort in order).
pub(crate) fn read_index(index: &Path) -> Result<ModelFiles> {
    let text = hf::read_side_text(index)?;
    let (weights, weight_map) = parse_index(&text, index)?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut paths = Vec::new();
    for s in &weights {
        let p = dir.join(s);
        if !p.is_file() {
            return Err(Error::invalid(
                index,
                format!("shard '{s}' listed in weight_map is missing"),
            ));
        }
        paths.push(p);
    }
    Ok(ModelFiles {
        weights: paths,
        index: Some(index.to_path_buf()),
        weight_map: Some(weight_map),
    })
}

/// Parses the text of a `*.index.json` ([`ckpt_core::hf::parse_index`]): its shard file names
/// (sorted) and weight_map.
pub fn parse_index(text: &str, index: &Path) -> Result<(Vec<String>, BTreeMap<String, String>)> {
    let parsed = hf::parse_index(text.as_bytes()).map_err(|msg| Error::invalid(index, msg))?;
    Ok((parsed.shards, parsed.weight_map))
}

/// Opens a file, an index, or a model folder as one checkpoint.
///
/// Fails with [`Error::Io`] when `path` does not exist, and with [`Error::Invalid`] when it is no
/// supported format (a Git LFS pointer is named as such), or when the shards of an index or
/// folder disagree with each other or with the index.
pub fn open(path: &Path, opts: &OpenOptions) -> Result<Checkpoint> {
    if path.is_dir() {
        let files = find_model_files(path)?;
        return open_model_files(&files, opts);
    }
    if !path.exists() {
        return Err(Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    if path
        .file_name()
        .is_some_and(|n| n.to_string_lossy().ends_with(".index.json"))
    {
        let files = read_index(path)?;
        return open_model_files(&files, opts);
    }
    open_file(path, opts)
}

/// Opens the weight files of [`find_model_files`] as one checkpoint: tensors in shard order,
/// metadata merged (the first shard's value wins). Fails when a tensor appears in two shards,
/// when a shard and the index's weight_map disagree, or when shards mix formats (zip and legacy
/// PyTorch files may be mixed).
pub fn open_model_files(files: &ModelFiles, opts: &OpenOptions) -> Result<Checkpoint> {
    let mut merged: Option<Checkpoint> = None;
    let mut seen = HashSet::new();
    for (i, w) in files.weights.iter().enumerate() {
        let ck = open_file(w, opts)?;
        for t in &ck.tensors {
            if !seen.insert(t.name.clone()) {
                return Err(Error::invalid(
                    w,
                    format!("tensor '{}' also appears in an earlier shard", t.name),
                ));
            }
            if let Some(map) = &files.weight_map {
                let file_name = w.file_name().unwrap().to_string_lossy();
                match map.get(&t.name) {
                    Some(f) if *f == file_name => {}
                    Some(f) => {
                        return Err(Error::invalid(
                            w,
                            format!(
                                "tensor '{}' is in this shard but the index says it is in '{f}'",
                                t.name
                            ),
                        ))
                    }
                    None => {
                        return Err(Error::invalid(
                            w,
                            format!(
                                "tensor '{}' is not listed in {}",
                                t.name,
                                files.index.as_ref().unwrap().display()
                            ),
                        ))
                    }
                }
            }
        }
        match &mut merged {
            None => merged = Some(ck),
            Some(m) => {
                if m.format != ck.format && !(is_torch(m.format) && is_torch(ck.format)) {
                    return Err(Error::invalid(
                        w,
                        format!(
                            "shard {} is {} but earlier shards are {}",
                            i + 1,
                            ck.format.name(),
                            m.format.name()
                        ),
                    ));
                }
                m.files.extend(ck.files);
                m.tensors.extend(ck.tensors);
                for (k, v) in ck.metadata {
                    m.metadata.entry(k).or_insert(v);
                }
                for (k, v) in ck.extras {
                    m.extras.entry(k).or_insert(v);
                }
            }
        }
    }
    let ck = merged.expect("find_model_files returns at least one file");
    if let Some(map) = &files.weight_map {
        // convert.py leaves de-duplicated names in the index; they are fine when the shard's
        // metadata records them as `dropped -> kept`.
        for name in map.keys() {
            if !seen.contains(name)
                && !ck
                    .metadata
                    .get(name)
                    .is_some_and(|kept| seen.contains(kept))
            {
                return Err(Error::invalid(
                    files.index.as_ref().unwrap(),
                    format!(
                        "tensor '{name}' is listed in the index but missing from shard '{}'",
                        map[name]
                    ),
                ));
            }
        }
    }
    Ok(ck)
}

fn is_torch(f: Format) -> bool {
    matches!(f, Format::TorchZip | Format::TorchLegacy)
}

/// The non-weight files of a model folder (config, tokenizer, chat template, generation config…)
/// that a converted folder needs beside its weights.
pub fn companion_files(dir: &Path, files: &ModelFiles) -> Result<Vec<PathBuf>> {
    let weights: HashSet<&PathBuf> = files.weights.iter().collect();
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let p = e.map_err(|e| Error::io(dir, e))?.path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if p.is_file() && !weights.contains(&p) && hf::is_companion(&name) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}
