//! Importance matrices written by llama-imatrix, in its GGUF format (`<tensor>.in_sum2` and
//! `<tensor>.counts` per weight) or the legacy `.dat` format, normalised exactly like
//! llama-quantize's loader.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use ckpt_core::{Error, GgmlType, Result};
use ckpt_gguf::{GgufFile, GgufValue, TensorInfo};

const SUMS_SUFFIX: &str = ".in_sum2";
const COUNTS_SUFFIX: &str = ".counts";
/// llama-quantize copies strings into a 128-byte override buffer.
const MAX_KV_STRING: usize = 127;

/// An importance matrix as llama-quantize uses it: per weight tensor, the mean squared
/// activation of each input column (per expert for MoE weights).
pub struct ImportanceMatrix {
    /// Recorded as `quantize.imatrix.file`.
    pub(crate) label: String,
    /// The calibration data it was computed from (`imatrix.datasets`; at most one name, from the
    /// optional trailer, for the legacy format).
    pub datasets: Vec<String>,
    /// Chunks the matrix was computed on (0 when unknown).
    pub chunk_count: u32,
    /// Per-weight importance, `ne0 * n_expert` values each.
    pub entries: HashMap<String, Arc<Vec<f32>>>,
}

impl ImportanceMatrix {
    /// Loads either format; `label` is what llama-quantize records as the file name (the path
    /// as given on its command line).
    pub fn load(path: &Path, label: &str) -> Result<ImportanceMatrix> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let mut m = if bytes.starts_with(b"GGUF") {
            Self::load_gguf(path)?
        } else {
            Self::load_legacy(path, &bytes)?
        };
        m.label = label.to_string();
        for (name, values) in &m.entries {
            if let Some(v) = values.iter().find(|v| !v.is_finite()) {
                return Err(Error::invalid(
                    path,
                    format!("entry {name} contains the non-finite value {v}"),
                ));
            }
        }
        Ok(m)
    }

    fn load_gguf(path: &Path) -> Result<ImportanceMatrix> {
        let file = GgufFile::open(path)?;
        let datasets = match file.get("imatrix.datasets") {
            Some(GgufValue::Array(a)) => a
                .as_strings()
                .unwrap_or_default()
                .into_iter()
                .map(String::from)
                .collect(),
            _ => Vec::new(),
        };
        let chunk_count = file
            .get("imatrix.chunk_count")
            .and_then(GgufValue::as_u64)
            .unwrap_or(0) as u32;
        if file.get("imatrix.chunk_count").is_none() && file.get("imatrix.datasets").is_none() {
            return Err(Error::invalid(
                path,
                "missing imatrix metadata (imatrix.chunk_count, imatrix.datasets)",
            ));
        }
        let f32_data = |index: usize, info: &TensorInfo| -> Result<Vec<f32>> {
            if info.ggml_type != GgmlType::F32 {
                return Err(Error::invalid(
                    path,
                    format!("tensor {} is {}, expected F32", info.name, info.ggml_type),
                ));
            }
            let data = file
                .tensor_data(index)
                .ok_or_else(|| Error::invalid(path, format!("tensor {} has no data", info.name)))?;
            Ok(data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect())
        };
        let mut entries = HashMap::new();
        for (i, info) in file.tensor_infos.iter().enumerate() {
            let Some(name) = info.name.strip_suffix(SUMS_SUFFIX) else {
                continue;
            };
            let counts_name = format!("{name}{COUNTS_SUFFIX}");
            let Some(ci) = file.tensor_infos.iter().position(|t| t.name == counts_name) else {
                return Err(Error::invalid(
                    path,
                    format!("tensor {} has no matching {counts_name}", info.name),
                ));
            };
            let sums = f32_data(i, info)?;
            let counts = f32_data(ci, &file.tensor_infos[ci])?;
            if counts.is_empty() || sums.is_empty() {
                continue;
            }
            if sums.len() % counts.len() != 0 {
                return Err(Error::invalid(
                    path,
                    format!(
                        "{}: {} sums do not split into {} count groups",
                        info.name,
                        sums.len(),
                        counts.len()
                    ),
                ));
            }
            let ne0 = sums.len() / counts.len();
            let mut values = vec![0f32; sums.len()];
            for (j, &count) in counts.iter().enumerate() {
                for k in j * ne0..(j + 1) * ne0 {
                    // a matrix that never saw input gets neutral weights
                    values[k] = if count > 0.0 { sums[k] / count } else { 1.0 };
                }
            }
            entries.insert(name.to_string(), Arc::new(values));
        }
        Ok(ImportanceMatrix {
            label: String::new(),
            datasets,
            chunk_count,
            entries,
        })
    }

    fn load_legacy(path: &Path, bytes: &[u8]) -> Result<ImportanceMatrix> {
        let mut pos = 0usize;
        let mut take = |n: usize, what: &str| -> Result<&[u8]> {
            let end = pos
                .checked_add(n)
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| {
                    Error::invalid(
                        path,
                        format!("truncated legacy imatrix: {what} at byte {pos} needs {n} bytes"),
                    )
                })?;
            let s = &bytes[pos..end];
            pos = end;
            Ok(s)
        };
        let read_i32 = |b: &[u8]| i32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let n_entries = read_i32(take(4, "entry count")?);
        if n_entries < 1 {
            return Err(Error::invalid(
                path,
                format!("legacy imatrix declares {n_entries} entries"),
            ));
        }
        let mut entries = HashMap::new();
        for _ in 0..n_entries {
            let len = read_i32(take(4, "name length")?);
            let len = usize::try_from(len)
                .map_err(|_| Error::invalid(path, format!("negative name length {len}")))?;
            let name = String::from_utf8_lossy(take(len, "entry name")?).into_owned();
            let ncall = read_i32(take(4, "call count")?);
            let nval = read_i32(take(4, "value count")?);
            let nval = usize::try_from(nval)
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| {
                    Error::invalid(path, format!("entry {name}: invalid value count {nval}"))
                })?;
            let raw = take(nval.saturating_mul(4), "values")?;
            let mut values: Vec<f32> = raw
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if ncall > 0 {
                for v in &mut values {
                    *v /= ncall as f32;
                }
            }
            entries.insert(name, Arc::new(values));
        }
        // optional trailer: the chunk count and the dataset name
        let mut chunk_count = 0;
        let mut datasets = Vec::new();
        if let Ok(b) = take(4, "chunk count") {
            chunk_count = read_i32(b).max(0) as u32;
            if let Ok(b) = take(4, "dataset length") {
                let len = read_i32(b).max(0) as usize;
                if let Ok(name) = take(len, "dataset name") {
                    datasets.push(String::from_utf8_lossy(name).into_owned());
                }
            }
        }
        Ok(ImportanceMatrix {
            label: String::new(),
            datasets,
            chunk_count,
            entries,
        })
    }

    /// The weights for one tensor, or None when the matrix has no entry for it (llama-quantize
    /// then quantizes without). A size mismatch is an error except for token_embd.
    pub(crate) fn for_tensor(
        &self,
        input: &Path,
        info: &TensorInfo,
    ) -> Result<Option<Arc<Vec<f32>>>> {
        let Some(values) = self.entries.get(&info.name) else {
            return Ok(None);
        };
        let ne0 = info.ne.first().copied().unwrap_or(1);
        let ne2 = info.ne.get(2).copied().unwrap_or(1);
        if values.len() as u64 == ne0 * ne2 {
            return Ok(Some(values.clone()));
        }
        if info.name == "token_embd.weight" || info.name == "per_layer_token_embd.weight" {
            return Ok(None);
        }
        Err(Error::invalid(
            input,
            format!(
                "tensor {}: importance matrix '{}' has {} values, the tensor needs {} (ne0 * experts)",
                info.name,
                self.label,
                values.len(),
                ne0 * ne2
            ),
        ))
    }

    /// The `quantize.imatrix.*` KVs llama-quantize appends, in its order.
    pub fn metadata_kvs(&self) -> Vec<(String, GgufValue)> {
        let mut kvs = vec![(
            "quantize.imatrix.file".to_string(),
            GgufValue::String(truncate(&self.label)),
        )];
        if let Some(first) = self.datasets.first() {
            kvs.push((
                "quantize.imatrix.dataset".to_string(),
                GgufValue::String(truncate(first)),
            ));
        }
        kvs.push((
            "quantize.imatrix.entries_count".to_string(),
            GgufValue::U32(self.entries.len() as u32),
        ));
        if self.chunk_count > 0 {
            kvs.push((
                "quantize.imatrix.chunks_count".to_string(),
                GgufValue::U32(self.chunk_count),
            ));
        }
        kvs
    }
}

fn truncate(s: &str) -> String {
    if s.len() <= MAX_KV_STRING {
        return s.to_string();
    }
    String::from_utf8_lossy(&s.as_bytes()[..MAX_KV_STRING]).into_owned()
}
