//! `ckpt diff` and `ckpt verify`: two checkpoints compared, one checked.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ckpt_core::{Checkpoint, Format, Result};

pub use ckpt_convert::diff::{DiffReport, TensorDiff};
pub use ckpt_convert::verify::VerifyReport;

use crate::resolve;

/// What [`diff`] found, with the number of tensors on each side.
#[derive(Debug)]
pub struct DiffOutcome {
    /// Tensor by tensor, and the verdict.
    pub report: DiffReport,
    /// Tensors of A (after the Hugging Face view of a GGUF).
    pub tensors_a: usize,
    /// Tensors of B (after the Hugging Face view of a GGUF).
    pub tensors_b: usize,
}

/// Compares two checkpoints tensor by tensor (`hf://…` allowed), across formats. A GGUF against
/// a Hugging Face checkpoint is compared through its Hugging Face view (names mapped,
/// dequantized, Q/K permutation undone), each of its tensors labelled with its stored type
/// (`Q8_0`, not the f32 it is compared as). `tolerance` is the largest absolute difference per
/// element still counted as the same.
pub fn diff(a: &Path, b: &Path, tolerance: f64) -> Result<DiffOutcome> {
    let open = |p: &Path| -> Result<(Checkpoint, PathBuf)> {
        let local = resolve(p)?;
        Ok((ckpt_convert::open(&local, &Default::default())?, local))
    };
    let ((mut ca, pa), (mut cb, pb)) = (open(a)?, open(b)?);
    let is_gguf = |c: &Checkpoint| c.format == Format::Gguf;
    // The GGUF side is read as dequantized f32 tensors; label them with their stored type.
    let mut stored: Option<(bool, HashMap<String, String>)> = None;
    let mut names = ckpt_convert::diff::NameMap::new();
    let projector_a = is_gguf(&ca) && !is_gguf(&cb) && is_mmproj(&pa)? && pb.is_dir();
    let projector_b = is_gguf(&cb) && !is_gguf(&ca) && is_mmproj(&pb)? && pa.is_dir();
    if projector_a {
        // The folder's vision tensors as the projector plans them, compared by mmproj name.
        let (view, map) = projector_view(&pb, &cb)?;
        cb = view;
        names = map;
    } else if projector_b {
        let (view, map) = projector_view(&pa, &ca)?;
        ca = view;
        names = map.into_iter().map(|(hf, gguf)| (gguf, hf)).collect();
    } else if is_gguf(&ca) != is_gguf(&cb) {
        if is_gguf(&ca) {
            ca = ckpt_export::hf_view(&pa)?;
            stored = Some((true, stored_types(&pa)?));
            add_module_weights(&mut cb, &pb, &ca)?;
        } else {
            cb = ckpt_export::hf_view(&pb)?;
            stored = Some((false, stored_types(&pb)?));
            add_module_weights(&mut ca, &pa, &cb)?;
        }
    }
    let mut report = ckpt_convert::diff::diff(&ca, &cb, &names, tolerance)?;
    if let Some((side_a, types)) = &stored {
        for d in &mut report.compared {
            if let Some(t) = types.get(&d.name) {
                if *side_a {
                    d.dtype_a = t.clone();
                } else {
                    d.dtype_b = t.clone();
                }
            }
        }
    }
    Ok(DiffOutcome {
        report,
        tensors_a: ca.tensors.len(),
        tensors_b: cb.tensors.len(),
    })
}

/// The weights of the sentence-transformers modules (`2_Dense/model.safetensors`…) of the
/// folder `dir` that the GGUF's Hugging Face view `view` holds, added to the folder's checkpoint
/// `ck` under the view's names (`2_Dense/linear.weight`). A GGUF converted without its modules
/// adds nothing, so those folders are not reported as missing from it.
fn add_module_weights(ck: &mut Checkpoint, dir: &Path, view: &Checkpoint) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut folders: Vec<&str> = view
        .tensors
        .iter()
        .filter_map(|t| t.name.split_once('/').map(|(folder, _)| folder))
        .collect();
    folders.dedup();
    for folder in folders {
        let file = dir.join(folder).join("model.safetensors");
        if !file.is_file() {
            continue;
        }
        for mut t in ckpt_safetensors::read(&file)?.tensors {
            t.name = format!("{folder}/{}", t.name);
            ck.tensors.push(t);
        }
    }
    Ok(())
}

/// Whether a GGUF is a multimodal projector (`general.architecture` clip).
fn is_mmproj(gguf: &Path) -> Result<bool> {
    let split = ckpt_gguf::open_split(gguf)?;
    Ok(split
        .kvs()
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| v.as_str())
        == Some("clip"))
}

/// The vision tensors of the Hugging Face folder `dir` (weights `ck`) as `--mmproj` would write
/// them in F32 (split, permuted, renamed), each named after its checkpoint tensor (with `[k]`
/// for the k-th part of a split one), and the map from those names to the mmproj names.
fn projector_view(
    dir: &Path,
    ck: &Checkpoint,
) -> Result<(Checkpoint, ckpt_convert::diff::NameMap)> {
    let (writer, _, sources) = ckpt_model::mmproj::plan_mmproj(dir, ck, ckpt_model::OutType::F32)?;
    let mut count: HashMap<&str, usize> = HashMap::new();
    for s in &sources {
        *count.entry(s.as_str()).or_default() += 1;
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut map = ckpt_convert::diff::NameMap::new();
    let mut view = Checkpoint::new(ck.format, Vec::new());
    for (t, src) in writer.tensors().iter().zip(&sources) {
        let label = if count[src.as_str()] > 1 {
            let k = seen.entry(src.as_str()).or_default();
            *k += 1;
            format!("{src}[{}]", *k - 1)
        } else {
            src.clone()
        };
        map.insert(label.clone(), t.name.clone());
        let mut t = t.clone();
        t.name = label;
        view.tensors.push(t);
    }
    Ok((view, map))
}

/// Hugging Face name -> the GGUF tensor's stored type (Q8_0, F16, …), for the labels of a GGUF
/// compared through its Hugging Face view.
fn stored_types(gguf: &Path) -> Result<HashMap<String, String>> {
    let split = ckpt_gguf::open_split(gguf)?;
    let arch = split
        .kvs()
        .iter()
        .find(|(k, _)| k == "general.architecture")
        .and_then(|(_, v)| v.as_str())
        .and_then(ckpt_export::names::find);
    let Some(arch) = arch else {
        return Ok(Default::default());
    };
    use ckpt_model::arch::gemma::{DENSE_LINEAR, DENSE_MODULES};
    // EmbeddingGemma's Dense weights, named by module folder (see `add_module_weights`).
    let module_name = |gguf_name: &str| {
        DENSE_MODULES
            .iter()
            .find(|(_, prefix)| gguf_name == format!("{prefix}.weight"))
            .map(|(folder, _)| format!("{folder}/{DENSE_LINEAR}.weight"))
    };
    Ok(split
        .tensors()
        .into_iter()
        .filter_map(|t| {
            ckpt_export::names::hf_name(&arch, &t.name)
                .or_else(|| module_name(&t.name))
                .map(|hf| (hf, t.dtype.to_string()))
        })
        .collect())
}

/// Checks a checkpoint's integrity without a second model: every file parses with full
/// validation, shards and tensors are complete, files in a Hugging Face cache match the sha256
/// their blob is named after, config and tokenizer are present; `scan_values` also looks for
/// NaN/Inf. Problems are findings in the report (`ok` false), not errors.
pub fn verify(path: &Path, scan_values: bool) -> Result<VerifyReport> {
    ckpt_convert::verify::verify(&resolve(path)?, scan_values)
}
