//! What every reader produces: an ordered list of lazy tensors plus the file's metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::tensor::Tensor;

/// The container format a checkpoint was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// A `.safetensors` file (or an indexed set of them).
    Safetensors,
    /// A PyTorch zip checkpoint (`torch.save` since 1.6): `data.pkl` plus one record per storage.
    TorchZip,
    /// A PyTorch legacy checkpoint (before 1.6): pickles followed by the raw storages.
    TorchLegacy,
    /// A GGUF file or split set.
    Gguf,
}

impl Format {
    /// The name shown in reports and `--json` output (`safetensors`, `pytorch-zip`,
    /// `pytorch-legacy`, `gguf`).
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "pytorch-zip",
            Format::TorchLegacy => "pytorch-legacy",
            Format::Gguf => "gguf",
        }
    }
}

/// A checkpoint as read: lazy tensors (nothing is read until asked) plus the file's metadata.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// The format it was read from.
    pub format: Format,
    /// The files the tensors come from (several for a sharded checkpoint), in shard order.
    pub files: Vec<PathBuf>,
    /// Tensors in source order: shard order, then the order inside each file.
    pub tensors: Vec<Tensor>,
    /// String metadata (`__metadata__` of safetensors; the scalar KVs of a GGUF as text; empty
    /// for torch).
    pub metadata: BTreeMap<String, String>,
    /// Non-tensor leaves of a pickled checkpoint, flattened with `.` (epoch, optimizer hyper-parameters…).
    pub extras: BTreeMap<String, serde_json::Value>,
}

impl Checkpoint {
    /// An empty checkpoint of `format` read from `files`; readers then fill in the tensors and
    /// metadata.
    pub fn new(format: Format, files: Vec<PathBuf>) -> Checkpoint {
        Checkpoint {
            format,
            files,
            tensors: Vec::new(),
            metadata: BTreeMap::new(),
            extras: BTreeMap::new(),
        }
    }

    /// The tensor named `name`, if any (the first one, should a name repeat).
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// Parameter count per dtype (safetensors tag or ggml name) and in total; a 0-d tensor counts 1,
    /// as huggingface_hub counts it.
    pub fn parameter_counts(&self) -> (BTreeMap<String, u64>, u64) {
        let mut per = BTreeMap::new();
        let mut total = 0u64;
        for t in &self.tensors {
            let n = t.numel();
            *per.entry(t.dtype.to_string()).or_insert(0) += n;
            total += n;
        }
        (per, total)
    }
}
