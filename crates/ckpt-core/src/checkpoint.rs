//! What every reader produces: an ordered list of lazy tensors plus the file's metadata.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::tensor::Tensor;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Safetensors,
    TorchZip,
    TorchLegacy,
    Gguf,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::TorchZip => "pytorch-zip",
            Format::TorchLegacy => "pytorch-legacy",
            Format::Gguf => "gguf",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub format: Format,
    /// The files the tensors come from (several for a sharded checkpoint), in shard order.
    pub files: Vec<PathBuf>,
    /// Tensors in source order: shard order, then the order inside each file.
    pub tensors: Vec<Tensor>,
    /// String metadata (`__metadata__` of safetensors; empty for torch).
    pub metadata: BTreeMap<String, String>,
    /// Non-tensor leaves of a pickled checkpoint, flattened with `.` (epoch, optimizer hyper-parameters…).
    pub extras: BTreeMap<String, serde_json::Value>,
}

impl Checkpoint {
    pub fn new(format: Format, files: Vec<PathBuf>) -> Checkpoint {
        Checkpoint {
            format,
            files,
            tensors: Vec::new(),
            metadata: BTreeMap::new(),
            extras: BTreeMap::new(),
        }
    }

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
