//! PEFT LoRA adapters merged into their base, tensor by tensor, with PEFT's math
//! (`merge_and_unload`): W' = W + s·B·A with s = alpha/r (alpha/√r for rsLoRA, per-module
//! overrides from rank_pattern / alpha_pattern), the transpose for fan_in_fan_out (GPT-2 Conv1D),
//! embedding LoRA, DoRA's magnitude re-normalisation, LoRA biases, and tensors the adapter
//! replaces outright (modules_to_save, `bias="lora_only"`, saved embeddings). Deltas are computed
//! in f32 and rounded once to the output dtype.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ckpt_core::{Checkpoint, DType, Error, Result, Tensor};
use half::{bf16, f16};
use rayon::prelude::*;
use serde::Serialize;
use serde_json::Value;

use ckpt_convert::cast::{is_castable, to_f32};
use ckpt_convert::convert::{self, Companion, ConvertOptions, Layout, Plan, Target};
use ckpt_convert::source::{self, OpenOptions};

const PREFIX: &str = "base_model.model.";

/// The parts of `adapter_config.json` that matter for merging (PEFT's `LoraConfig`), read with
/// [`AdapterConfig::parse_str`]; refused there are adapters PEFT would not merge or ckpt does not
/// (another `peft_type`, `layer_replication`, aLoRA, `target_parameters`, trainable tokens).
#[derive(Debug, Clone)]
pub struct AdapterConfig {
    /// `r`: the default rank (8 when absent, as in PEFT).
    pub(crate) r: f64,
    /// `lora_alpha` (default 8).
    pub(crate) lora_alpha: f64,
    /// `use_rslora`: scale by alpha/√r instead of alpha/r.
    pub(crate) use_rslora: bool,
    /// `rank_pattern`: per-module rank overrides, (regex key, value) in the file's order; the
    /// first match wins.
    pub(crate) rank_pattern: Vec<(String, f64)>,
    /// Per-module `lora_alpha` overrides, as `rank_pattern`.
    pub(crate) alpha_pattern: Vec<(String, f64)>,
    /// `fan_in_fan_out`: the base weights are stored (in, out) (GPT-2's Conv1D).
    pub(crate) fan_in_fan_out: bool,
    /// `modules_to_save`: modules the adapter stores in full.
    pub(crate) modules_to_save: Vec<String>,
}

impl AdapterConfig {
    /// Reads and parses the `adapter_config.json` at `path`.
    pub(crate) fn parse(path: &Path) -> Result<AdapterConfig> {
        let text = ckpt_core::hf::read_side_text(path)?;
        Self::parse_str(&text, path)
    }

    /// Parses the text of an `adapter_config.json`; `path` names it in errors. Fails on invalid
    /// JSON, a `rank_pattern`/`alpha_pattern` that is not an object of numbers, or an adapter that cannot be merged (an
    /// [`Error::Unsupported`] saying why).
    pub fn parse_str(text: &str, path: &Path) -> Result<AdapterConfig> {
        let v: Value = serde_json::from_str(text)
            .map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
        let peft_type = v.get("peft_type").and_then(Value::as_str).unwrap_or("LORA");
        if !peft_type.eq_ignore_ascii_case("LORA") {
            return Err(Error::Unsupported(format!(
                "{}: peft_type {peft_type} cannot be merged by ckpt (only LORA adapters, incl. rsLoRA and DoRA)",
                path.display()
            )));
        }
        for (key, why) in [
            (
                "layer_replication",
                "PEFT itself refuses to merge adapters with layer_replication",
            ),
            (
                "alora_invocation_tokens",
                "activated LoRA (aLoRA) cannot be merged",
            ),
            (
                "target_parameters",
                "LoRA on raw parameters (MoE experts) is not supported",
            ),
            (
                "trainable_token_indices",
                "trainable-token adapters are not supported",
            ),
        ] {
            if v.get(key)
                .is_some_and(|x| !x.is_null() && x != &Value::Object(Default::default()))
            {
                return Err(Error::Unsupported(format!(
                    "{}: {key} is set: {why}",
                    path.display()
                )));
            }
        }
        let num = |k: &str, default: f64| v.get(k).and_then(Value::as_f64).unwrap_or(default);
        let flag = |k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
        let pattern = |k: &str| -> Result<Vec<(String, f64)>> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Object(m)) => m
                    .iter()
                    .map(|(key, val)| {
                        val.as_f64().map(|x| (key.clone(), x)).ok_or_else(|| {
                            Error::invalid(path, format!("{k}['{key}'] is not a number"))
                        })
                    })
                    .collect(),
                Some(_) => Err(Error::invalid(path, format!("{k} must be an object"))),
            }
        };
        let modules_to_save = match v.get("modules_to_save") {
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        Ok(AdapterConfig {
            r: num("r", 8.0),
            lora_alpha: num("lora_alpha", 8.0),
            use_rslora: flag("use_rslora"),
            rank_pattern: pattern("rank_pattern")?,
            alpha_pattern: pattern("alpha_pattern")?,
            fan_in_fan_out: flag("fan_in_fan_out"),
            modules_to_save,
        })
    }

    /// PEFT's pattern lookup: the first key whose regex `(.*\.)?(KEY)$` matches the module name
    /// from its start.
    fn lookup(patterns: &[(String, f64)], module: &str) -> Result<Option<f64>> {
        for (key, val) in patterns {
            let re = regex::Regex::new(&format!(r"^(?:.*\.)?(?:{key})$")).map_err(|e| {
                Error::Unsupported(format!(
                    "pattern '{key}' is not a regex ckpt understands: {e}"
                ))
            })?;
            if re.is_match(module) {
                return Ok(Some(*val));
            }
        }
        Ok(None)
    }

    /// The scaling s of a module: alpha/r (alpha/√r with rsLoRA), each taken from the first
    /// matching pattern; fails on a pattern that is not a valid regex.
    pub(crate) fn scaling(&self, module: &str) -> Result<f32> {
        let r = Self::lookup(&self.rank_pattern, module)?.unwrap_or(self.r);
        let alpha = Self::lookup(&self.alpha_pattern, module)?.unwrap_or(self.lora_alpha);
        Ok(if self.use_rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        } as f32)
    }
}

/// One adapter folder, with the user's weight for it (`--adapter DIR:WEIGHT`).
pub(crate) struct Adapter {
    pub(crate) config: AdapterConfig,
    pub(crate) tensors: Checkpoint,
    pub(crate) weight: f32,
}

impl Adapter {
    /// Reads the folder's `adapter_config.json` and opens its weights (safetensors first).
    pub(crate) fn open(dir: &Path, weight: f32) -> Result<Adapter> {
        let config = AdapterConfig::parse(&dir.join("adapter_config.json"))?;
        let file = ["adapter_model.safetensors", "adapter_model.bin"]
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Error::invalid(dir, "no adapter_model.safetensors or adapter_model.bin")
            })?;
        let tensors = source::open_file(&file, &OpenOptions::default())?;
        Ok(Adapter {
            config,
            tensors,
            weight,
        })
    }
}

/// What one adapter does to one module `<M>`.
#[derive(Default)]
struct ModuleParts {
    a: Option<Tensor>,
    b: Option<Tensor>,
    b_bias: Option<Tensor>,
    emb_a: Option<Tensor>,
    emb_b: Option<Tensor>,
    magnitude: Option<Tensor>,
}

/// An edit of one base tensor, in application order.
#[derive(Clone)]
enum Edit {
    /// The tensor is replaced by this one (modules_to_save, lora_only biases, saved embeddings).
    Replace(Tensor),
    Lora {
        a: Tensor,
        b: Tensor,
        scale: f32,
        transpose: bool,
        magnitude: Option<Tensor>,
    },
    Embedding {
        a: Tensor,
        b: Tensor,
        scale: f32,
    },
    Bias {
        b_bias: Tensor,
        scale: f32,
    },
}

/// What [`merge_lora`] wrote (the `--json` report of `ckpt merge-lora`).
#[derive(Debug, Clone, Serialize)]
pub struct MergeReport {
    /// The model folder written.
    pub output: PathBuf,
    /// The weight files written in it (one, or the shards and their index).
    pub files: Vec<PathBuf>,
    /// Base tensors changed by a LoRA delta (W + s·B·A, DoRA, embedding LoRA, LoRA bias).
    pub merged: Vec<String>,
    /// Base tensors replaced outright by a tensor the adapter saves (`modules_to_save`,
    /// `bias="lora_only"`, saved embeddings), and tensors the adapter adds (an untied output
    /// head).
    pub replaced: Vec<String>,
    /// The base folder's other files copied beside the weights (config, tokenizer, chat
    /// template; `config.json` rewritten when the dtype or tied embeddings change).
    pub copied_files: Vec<String>,
    /// Files transformers needs that the base folder lacks (config.json, tokenizer files).
    pub missing_files: Vec<String>,
    /// Whether the written tensors were read back and compared with the computed merge
    /// (`write.verify` of [`MergeOptions`]).
    pub verified: bool,
    /// Things the user should know about the output.
    pub warnings: Vec<String>,
}

/// Options of [`merge_lora`] and [`merge_lora_to_gguf`].
#[derive(Clone, Default)]
pub struct MergeOptions {
    /// The weight format of the merged folder (safetensors when `None`).
    pub to: Option<Target>,
    /// Cast floating-point tensors to this dtype (each keeps the base's dtype when `None`).
    pub dtype: Option<DType>,
    /// How the folder is written (shard size, read-back verification, overwrite, progress).
    pub write: ConvertOptions,
}

/// Finds the base tensor an adapter module name refers to: exact, or the single base name that
/// ends with it (an adapter trained on a bare `AutoModel` lacks the leading `model.`).
fn resolve<'a>(base_names: &'a HashSet<String>, wanted: &str) -> Option<&'a str> {
    if let Some(n) = base_names.get(wanted) {
        return Some(n.as_str());
    }
    let suffix = format!(".{wanted}");
    let mut hits = base_names.iter().filter(|n| n.ends_with(&suffix));
    let first = hits.next()?;
    if hits.next().is_some() {
        return None;
    }
    Some(first.as_str())
}

/// [`resolve`], then the other direction: the adapter's path is longer than the base's (a base
/// saved as a bare `AutoModel` under a `*ForCausalLM` adapter).
fn resolve_either<'a>(base_names: &'a HashSet<String>, wanted: &str) -> Option<&'a str> {
    resolve(base_names, wanted).or_else(|| {
        let mut parts = wanted.split('.').collect::<Vec<_>>();
        while parts.len() > 2 {
            parts.remove(0);
            let shorter = parts.join(".");
            if let Some(n) = base_names.get(&shorter) {
                return Some(n.as_str());
            }
        }
        None
    })
}

fn collect_edits(
    adapter: &Adapter,
    base: &Checkpoint,
    base_names: &HashSet<String>,
    edits: &mut HashMap<String, Vec<Edit>>,
    added: &mut Vec<Tensor>,
) -> Result<()> {
    let mut modules: BTreeMap<String, ModuleParts> = BTreeMap::new();
    let mut replacements: Vec<(String, Tensor)> = Vec::new();
    let file = &adapter.tensors.files[0];
    for t in &adapter.tensors.tensors {
        let name = t.name.strip_prefix(PREFIX).unwrap_or(&t.name);
        let (module, part) = if let Some(m) = name.strip_suffix(".lora_A.weight") {
            (m, "A")
        } else if let Some(m) = name.strip_suffix(".lora_B.weight") {
            (m, "B")
        } else if let Some(m) = name.strip_suffix(".lora_B.bias") {
            (m, "Bbias")
        } else if let Some(m) = name.strip_suffix(".lora_embedding_A") {
            (m, "EA")
        } else if let Some(m) = name.strip_suffix(".lora_embedding_B") {
            (m, "EB")
        } else if let Some(m) = name.strip_suffix(".lora_magnitude_vector") {
            (m, "M")
        } else if name.contains(".lora_") {
            return Err(Error::Unsupported(format!(
                "{}: adapter tensor '{}' is of a kind ckpt does not merge",
                file.display(),
                t.name
            )));
        } else {
            // A full tensor that replaces the base one: `<M>.base_layer.weight|bias`,
            // `<M>.modules_to_save.<name>.weight`, or `<M>.weight|bias` of modules_to_save.
            let clean = name.replace(".base_layer.", ".");
            let clean = match clean.find(".modules_to_save.") {
                Some(i) => {
                    let rest = &clean[i + ".modules_to_save.".len()..];
                    format!(
                        "{}.{}",
                        &clean[..i],
                        rest.split_once('.').map(|x| x.1).unwrap_or(rest)
                    )
                }
                None => clean,
            };
            replacements.push((clean, t.clone()));
            continue;
        };
        let slot = modules.entry(module.to_string()).or_default();
        let target = match part {
            "A" => &mut slot.a,
            "B" => &mut slot.b,
            "Bbias" => &mut slot.b_bias,
            "EA" => &mut slot.emb_a,
            "EB" => &mut slot.emb_b,
            _ => &mut slot.magnitude,
        };
        *target = Some(t.clone());
    }

    for (name, t) in replacements {
        match resolve_either(base_names, &name) {
            Some(base_name) => {
                let bt = base.get(base_name).unwrap();
                if bt.shape != t.shape {
                    return Err(Error::invalid(
                        file,
                        format!("'{}' replaces base tensor '{base_name}' but has shape {:?}, base has {:?}", t.name, t.shape, bt.shape),
                    ));
                }
                edits
                    .entry(base_name.to_string())
                    .or_default()
                    .push(Edit::Replace(t));
            }
            None if adapter
                .config
                .modules_to_save
                .iter()
                .any(|m| name.starts_with(m.as_str()) || name.contains(&format!(".{m}"))) =>
            {
                // A saved module the base does not store (lm_head of a model with tied embeddings).
                let mut t = t.clone();
                t.name = name;
                added.push(t);
            }
            None => {
                return Err(Error::invalid(
                    file,
                    format!(
                        "adapter tensor '{}' has no matching tensor '{name}' in the base model",
                        t.name
                    ),
                ))
            }
        }
    }

    for (module, parts) in modules {
        let scale = adapter.config.scaling(&module)? * adapter.weight;
        let weight_name = format!("{module}.weight");
        let base_name = resolve_either(base_names, &weight_name).ok_or_else(|| {
            Error::invalid(
                file,
                format!(
                    "adapter module '{module}' has no weight '{weight_name}' in the base model"
                ),
            )
        })?;
        let bt = base.get(base_name).unwrap();
        if bt.shape.len() != 2 {
            return Err(Error::Unsupported(format!("module '{module}': base tensor '{base_name}' has shape {:?}; only 2-D (linear, Conv1D, embedding) weights can be merged", bt.shape)));
        }
        let (rows, cols) = (bt.shape[0], bt.shape[1]);
        if let (Some(a), Some(b)) = (parts.emb_a, parts.emb_b) {
            // A_e (r, vocab), B_e (dim, r): delta = (B_e @ A_e)^T is (vocab, dim).
            let r = a.shape[0];
            if a.shape != [r, rows] || b.shape != [cols, r] {
                return Err(Error::invalid(file, format!(
                    "embedding LoRA of '{module}': lora_embedding_A {:?} and lora_embedding_B {:?} do not fit base '{base_name}' {:?}",
                    a.shape, b.shape, bt.shape
                )));
            }
            edits
                .entry(base_name.to_string())
                .or_default()
                .push(Edit::Embedding { a, b, scale });
            continue;
        }
        let (Some(a), Some(b)) = (parts.a, parts.b) else {
            return Err(Error::invalid(
                file,
                format!("adapter module '{module}' lacks lora_A or lora_B"),
            ));
        };
        let r = a.shape[0];
        // PEFT forces fan_in_fan_out for Conv1D: the base stores (in, out).
        let transpose = adapter.config.fan_in_fan_out;
        let (out_f, in_f) = if transpose {
            (cols, rows)
        } else {
            (rows, cols)
        };
        if a.shape != [r, in_f] || b.shape != [out_f, r] {
            return Err(Error::invalid(file, format!(
                "module '{module}': lora_A {:?} and lora_B {:?} do not fit base '{base_name}' {:?}{}",
                a.shape,
                b.shape,
                bt.shape,
                if transpose { " (fan_in_fan_out)" } else { "" }
            )));
        }
        if let Some(m) = &parts.magnitude {
            if m.numel() != out_f {
                return Err(Error::invalid(
                    file,
                    format!(
                        "module '{module}': lora_magnitude_vector has {} values, expected {out_f}",
                        m.numel()
                    ),
                ));
            }
        }
        edits
            .entry(base_name.to_string())
            .or_default()
            .push(Edit::Lora {
                a,
                b,
                scale,
                transpose,
                magnitude: parts.magnitude,
            });
        if let Some(bb) = parts.b_bias {
            let bias_name = format!("{module}.bias");
            let base_bias = resolve_either(base_names, &bias_name).ok_or_else(|| {
                Error::invalid(
                    file,
                    format!("module '{module}' has a LoRA bias but the base has no '{bias_name}'"),
                )
            })?;
            edits
                .entry(base_bias.to_string())
                .or_default()
                .push(Edit::Bias { b_bias: bb, scale });
        }
    }
    Ok(())
}

fn floats(t: &Tensor) -> Result<Vec<f32>> {
    if !is_castable(t.dtype) {
        return Err(Error::Unsupported(format!(
            "tensor '{}' is {}; LoRA math needs float tensors",
            t.name, t.dtype
        )));
    }
    let bytes = t.bytes()?;
    let out = to_f32(t.dtype, &bytes);
    drop(bytes);
    t.release();
    out
}

/// (B @ A) * s, f32, row-major (out, in); transposed to (in, out) when `transpose`.
fn delta(
    b: &[f32],
    a: &[f32],
    out_f: usize,
    r: usize,
    in_f: usize,
    scale: f32,
    transpose: bool,
) -> Vec<f32> {
    let mut d = vec![0f32; out_f * in_f];
    d.par_chunks_mut(in_f).enumerate().for_each(|(o, row)| {
        for k in 0..r {
            let bk = b[o * r + k];
            let arow = &a[k * in_f..(k + 1) * in_f];
            for (x, &av) in row.iter_mut().zip(arow) {
                *x += bk * av;
            }
        }
        for x in row.iter_mut() {
            *x *= scale;
        }
    });
    if !transpose {
        return d;
    }
    let mut t = vec![0f32; out_f * in_f];
    for o in 0..out_f {
        for i in 0..in_f {
            t[i * out_f + o] = d[o * in_f + i];
        }
    }
    t
}

/// Rounds f32 values to the output dtype and back (PEFT adds in the base dtype).
fn round_to(dtype: DType, xs: &mut [f32]) {
    match dtype {
        DType::BF16 => xs.iter_mut().for_each(|x| *x = bf16::from_f32(*x).to_f32()),
        DType::F16 => xs.iter_mut().for_each(|x| *x = f16::from_f32(*x).to_f32()),
        _ => {}
    }
}

fn apply(base: &Tensor, edits: &[Edit], out_dtype: DType) -> Result<Vec<u8>> {
    // Replacements come first (PEFT loads them before merging).
    let mut current = base.clone();
    for e in edits {
        if let Edit::Replace(t) = e {
            current = t.clone();
        }
    }
    let dtype = current.dtype;
    let mut w = floats(&current)?;
    let (rows, cols) = match current.shape.as_slice() {
        [r, c] => (*r as usize, *c as usize),
        [n] => (1, *n as usize),
        _ => (1, w.len()),
    };
    for e in edits {
        match e {
            Edit::Replace(_) => {}
            Edit::Lora {
                a,
                b,
                scale,
                transpose,
                magnitude,
            } => {
                let (av, bv) = (floats(a)?, floats(b)?);
                let r = a.shape[0] as usize;
                let (out_f, in_f) = if *transpose {
                    (cols, rows)
                } else {
                    (rows, cols)
                };
                match magnitude {
                    // The common case, without a full-size delta buffer: each row of (B @ A) * s
                    // is built in a scratch row and added, the same f32 operations as PEFT's.
                    None if !*transpose => add_lora_rows(&mut w, &bv, &av, r, in_f, *scale),
                    None => {
                        let d = delta(&bv, &av, out_f, r, in_f, *scale, true);
                        w.par_iter_mut()
                            .zip(d.par_iter())
                            .for_each(|(x, y)| *x += y);
                    }
                    Some(m) => {
                        // DoRA: V = W + delta; W' = (m / ||V||) * V per output feature.
                        let d = delta(&bv, &av, out_f, r, in_f, *scale, *transpose);
                        let mv = floats(m)?;
                        let mut v: Vec<f32> = w.iter().zip(&d).map(|(x, y)| x + y).collect();
                        let mut norms = vec![0f32; out_f];
                        for (o, n) in norms.iter_mut().enumerate() {
                            let mut sum = 0f32;
                            for i in 0..in_f {
                                let x = if *transpose {
                                    v[i * out_f + o]
                                } else {
                                    v[o * in_f + i]
                                };
                                sum += x * x;
                            }
                            *n = sum.sqrt();
                        }
                        for o in 0..out_f {
                            let f = mv[o] / norms[o];
                            for i in 0..in_f {
                                let idx = if *transpose {
                                    i * out_f + o
                                } else {
                                    o * in_f + i
                                };
                                v[idx] *= f;
                            }
                        }
                        w = v;
                    }
                }
            }
            Edit::Embedding { a, b, scale } => {
                // delta (vocab, dim) = (B_e (dim, r) @ A_e (r, vocab))^T, rounded to the base dtype
                // before the add, as PEFT does for embeddings.
                let (av, bv) = (floats(a)?, floats(b)?);
                let r = a.shape[0] as usize;
                let mut d = delta(&bv, &av, cols, r, rows, *scale, true);
                round_to(dtype, &mut d);
                w.par_iter_mut()
                    .zip(d.par_iter())
                    .for_each(|(x, y)| *x += y);
            }
            Edit::Bias { b_bias, scale } => {
                let bv = floats(b_bias)?;
                w.iter_mut().zip(&bv).for_each(|(x, y)| *x += scale * y);
            }
        }
    }
    Ok(from_f32(&w, out_dtype))
}

/// w[o, :] += (sum_k B[o, k] * A[k, :]) * s, row by row in parallel.
fn add_lora_rows(w: &mut [f32], b: &[f32], a: &[f32], r: usize, in_f: usize, scale: f32) {
    w.par_chunks_mut(in_f).enumerate().for_each_init(
        || vec![0f32; in_f],
        |row, (o, wrow)| {
            row.iter_mut().for_each(|x| *x = 0.0);
            for k in 0..r {
                let bk = b[o * r + k];
                for (x, &av) in row.iter_mut().zip(&a[k * in_f..(k + 1) * in_f]) {
                    *x += bk * av;
                }
            }
            for (x, d) in wrow.iter_mut().zip(row.iter()) {
                *x += *d * scale;
            }
        },
    );
}

/// Little-endian bytes of `xs` in `dtype` (F32, F16 or BF16, rounding to nearest even).
fn from_f32(xs: &[f32], dtype: DType) -> Vec<u8> {
    let unit = dtype.elem_size().unwrap_or(4);
    let mut out = vec![0u8; xs.len() * unit];
    out.par_chunks_mut(unit << 14)
        .zip(xs.par_chunks(1 << 14))
        .for_each(|(dst, src)| {
            for (d, &x) in dst.chunks_exact_mut(unit).zip(src) {
                match dtype {
                    DType::BF16 => d.copy_from_slice(&bf16::from_f32(x).to_le_bytes()),
                    DType::F16 => d.copy_from_slice(&f16::from_f32(x).to_le_bytes()),
                    DType::F64 => d.copy_from_slice(&(x as f64).to_le_bytes()),
                    _ => d.copy_from_slice(&x.to_le_bytes()),
                }
            }
        });
    out
}

/// Merges into a GGUF: the merged model folder is written (safetensors) into a temporary folder
/// named like the output, then converted exactly as `ckpt convert FOLDER OUT.gguf` would.
pub fn merge_lora_to_gguf(
    base_dir: &Path,
    adapters: &[(PathBuf, f32)],
    out: &Path,
    opts: &MergeOptions,
    gguf: &ckpt_convert::gguf::GgufOptions,
) -> Result<(MergeReport, ckpt_convert::gguf::GgufReport)> {
    ckpt_core::atomic::check_destination(out, gguf.overwrite)?;
    // Refused before merging: a byte order the converter cannot write with this type.
    ckpt_convert::gguf::check_byte_order(gguf)?;
    // A private folder made exclusively under a fresh name (never one planted beside `out`);
    // removed when dropped, on success and on failure alike.
    let scratch = ckpt_core::atomic::ScratchDir::create(out, "merge")?;
    let stem = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "merged".into());
    let folder = scratch.path().join(stem);
    let result = (|| {
        let mut folder_opts = opts.clone();
        folder_opts.to = Some(Target::Safetensors);
        let merged = merge_lora(base_dir, adapters, &folder, &folder_opts)?;
        let converted = ckpt_convert::gguf::convert_to_gguf(&folder, out, gguf)?;
        Ok((merged, converted))
    })();
    drop(scratch);
    result
}

/// Merges `adapters` (each an adapter folder and the weight its deltas are scaled by, applied in
/// order) into the model folder `base_dir` and writes a complete model folder at `out`: the
/// merged weights, and the base's config, tokenizer and other companion files. Fails when the
/// base is quantized, an adapter cannot be merged or touches no base tensor, or a saved tensor's
/// shape differs from the base tensor it replaces.
pub fn merge_lora(
    base_dir: &Path,
    adapters: &[(PathBuf, f32)],
    out: &Path,
    opts: &MergeOptions,
) -> Result<MergeReport> {
    let target = opts.to.unwrap_or(Target::Safetensors);
    let files = source::find_model_files(base_dir)?;
    let base = source::open_model_files(&files, &OpenOptions::default())?;
    if let Some(t) = base
        .tensors
        .iter()
        .find(|t| matches!(t.dtype, DType::Ggml(_)) || t.name.ends_with(".qweight"))
    {
        return Err(Error::Unsupported(format!(
            "base tensor '{}' is quantized ({}); merge into an unquantized base model",
            t.name, t.dtype
        )));
    }
    let base_names: HashSet<String> = base.tensors.iter().map(|t| t.name.clone()).collect();
    let mut edits: HashMap<String, Vec<Edit>> = HashMap::new();
    let mut added: Vec<Tensor> = Vec::new();
    for (dir, weight) in adapters {
        let adapter = Adapter::open(dir, *weight)?;
        let before = edits.values().map(Vec::len).sum::<usize>() + added.len();
        collect_edits(&adapter, &base, &base_names, &mut edits, &mut added)?;
        if edits.values().map(Vec::len).sum::<usize>() + added.len() == before {
            return Err(Error::invalid(
                dir,
                "the adapter touches no tensor of the base model",
            ));
        }
    }

    let mut merged = Vec::new();
    let mut replaced = Vec::new();
    let mut tensors = Vec::with_capacity(base.tensors.len());
    for t in &base.tensors {
        let out_dtype = match opts.dtype {
            Some(d) if is_castable(t.dtype) => d,
            _ => t.dtype,
        };
        match edits.get(&t.name) {
            None => tensors.push(ckpt_convert::cast::cast_tensor(t, out_dtype)),
            Some(list) => {
                if list.iter().all(|e| matches!(e, Edit::Replace(_))) {
                    replaced.push(t.name.clone());
                } else {
                    merged.push(t.name.clone());
                }
                let (base_t, list) = (Arc::new(t.clone()), Arc::new(list.clone()));
                tensors.push(Tensor::computed(
                    t.name.clone(),
                    out_dtype,
                    t.shape.clone(),
                    move || apply(&base_t, &list, out_dtype),
                ));
            }
        }
    }
    let mut untied = false;
    for t in added {
        replaced.push(t.name.clone());
        untied = true;
        let d = opts
            .dtype
            .filter(|_| is_castable(t.dtype))
            .unwrap_or(t.dtype);
        tensors.push(ckpt_convert::cast::cast_tensor(&t, d));
    }

    let mut warnings = Vec::new();
    let mut companions = Vec::new();
    for c in source::companion_files(base_dir, &files)? {
        if c.file_name().is_some_and(|n| n == "config.json") {
            let text = ckpt_core::hf::read_side_text(&c)?;
            let mut cfg: Value = serde_json::from_str(&text)
                .map_err(|e| Error::invalid(&c, format!("invalid JSON: {e}")))?;
            let mut changed = false;
            if untied && cfg.get("tie_word_embeddings").and_then(Value::as_bool) != Some(false) {
                cfg["tie_word_embeddings"] = Value::Bool(false);
                warnings.push(
                    "the adapter saves a separate output head: tie_word_embeddings set to false"
                        .into(),
                );
                changed = true;
            }
            if let Some(d) = opts.dtype {
                cfg["dtype"] = Value::String(d.torch_name().unwrap_or("float32").to_string());
                changed = true;
            }
            if changed {
                let mut bytes = serde_json::to_vec_pretty(&cfg).unwrap();
                bytes.push(b'\n');
                companions.push(Companion::Bytes("config.json".into(), bytes));
                continue;
            }
        }
        companions.push(Companion::Copy(c));
    }
    let missing = missing_for_transformers(base_dir);
    for m in &missing {
        warnings.push(format!(
            "the base folder has no {m}; the merged model will lack it too"
        ));
    }

    let mut metadata = BTreeMap::new();
    if target == Target::Safetensors {
        metadata.insert("format".to_string(), "pt".to_string());
    }
    let plan = Plan {
        tensors,
        metadata,
        dropped: BTreeMap::new(),
        warnings: Vec::new(),
    };
    let layout = Layout::Folder(out.to_path_buf());
    let written = convert::write_output(&layout, target, &plan, &companions, &opts.write)?;
    Ok(MergeReport {
        output: out.to_path_buf(),
        files: written.files,
        merged,
        replaced,
        copied_files: written.copied,
        missing_files: missing,
        verified: written.verified,
        warnings,
    })
}

/// What `AutoModelForCausalLM` + `AutoTokenizer.from_pretrained` need beside the weights.
fn missing_for_transformers(dir: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !dir.join("config.json").is_file() {
        missing.push("config.json".to_string());
    }
    let tokenizer = [
        "tokenizer.json",
        "tokenizer.model",
        "vocab.json",
        "vocab.txt",
        "spiece.model",
    ];
    if !tokenizer.iter().any(|f| dir.join(f).is_file()) {
        missing.push("tokenizer files (tokenizer.json or tokenizer.model)".to_string());
    }
    missing
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, shape: &[u64], xs: &[f32]) -> Tensor {
        let bytes: Vec<u8> = xs.iter().flat_map(|x| x.to_le_bytes()).collect();
        Tensor::computed(name, DType::F32, shape.to_vec(), move || Ok(bytes.clone()))
    }

    fn f32s(bytes: &[u8]) -> Vec<f32> {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect()
    }

    fn config(json: &str) -> AdapterConfig {
        AdapterConfig::parse_str(json, Path::new("adapter_config.json")).unwrap()
    }

    #[test]
    fn scaling_is_alpha_over_r_or_over_sqrt_r_with_pattern_overrides() {
        let c = config(r#"{"r": 16, "lora_alpha": 32}"#);
        assert_eq!(c.scaling("model.layers.0.self_attn.q_proj").unwrap(), 2.0);
        let c = config(r#"{"r": 16, "lora_alpha": 32, "use_rslora": true}"#);
        assert_eq!(c.scaling("q_proj").unwrap(), 8.0);
        // PEFT: the first key whose `(.*\.)?KEY$` matches wins; a key matches whole name parts.
        let c = config(
            r#"{"r": 8, "lora_alpha": 16,
                "rank_pattern": {"layers.1.self_attn.q_proj": 4, "q_proj": 2},
                "alpha_pattern": {"v_proj": 1}}"#,
        );
        assert_eq!(c.scaling("model.layers.1.self_attn.q_proj").unwrap(), 4.0);
        assert_eq!(c.scaling("model.layers.0.self_attn.q_proj").unwrap(), 8.0);
        assert_eq!(c.scaling("model.layers.0.self_attn.xq_proj").unwrap(), 2.0);
        assert_eq!(c.scaling("model.layers.0.self_attn.v_proj").unwrap(), 0.125);
        let bad = config(r#"{"r": 8, "lora_alpha": 8, "rank_pattern": {"(": 2}}"#);
        assert!(bad.scaling("q_proj").is_err());
    }

    #[test]
    fn adapters_peft_cannot_merge_are_refused() {
        let p = Path::new("adapter_config.json");
        for json in [
            r#"{"peft_type": "IA3"}"#,
            r#"{"peft_type": "LORA", "layer_replication": [[0, 2]]}"#,
            r#"{"target_parameters": ["experts.gate_up_proj"]}"#,
        ] {
            let e = AdapterConfig::parse_str(json, p).unwrap_err();
            assert_eq!(e.kind(), ckpt_core::ErrorKind::Unsupported, "{json}: {e}");
        }
        assert!(AdapterConfig::parse_str("{", p).is_err());
    }

    /// W + s·(B·A), summed over k first and scaled once, as PEFT's f32 matmul then `* scaling`.
    fn naive(w: &[f32], b: &[f32], a: &[f32], r: usize, in_f: usize, s: f32) -> Vec<f32> {
        let mut out = w.to_vec();
        for (o, row) in out.chunks_mut(in_f).enumerate() {
            for (i, x) in row.iter_mut().enumerate() {
                let mut d = 0f32;
                for k in 0..r {
                    d += b[o * r + k] * a[k * in_f + i];
                }
                *x += d * s;
            }
        }
        out
    }

    #[test]
    fn low_rank_update_matches_the_naive_product_bit_for_bit() {
        let (out_f, r, in_f) = (5, 3, 7);
        let val = |i: usize, m: f32| ((i * 37 % 11) as f32 - 5.0) * m;
        let w: Vec<f32> = (0..out_f * in_f).map(|i| val(i, 0.25)).collect();
        let b: Vec<f32> = (0..out_f * r).map(|i| val(i + 3, 0.125)).collect();
        let a: Vec<f32> = (0..r * in_f).map(|i| val(i + 7, 0.0625)).collect();
        let want = naive(&w, &b, &a, r, in_f, 1.5);
        let mut got = w.clone();
        add_lora_rows(&mut got, &b, &a, r, in_f, 1.5);
        assert_eq!(got, want);
        // The full delta, and its transpose for fan_in_fan_out (GPT-2's Conv1D).
        let d = delta(&b, &a, out_f, r, in_f, 1.5, false);
        let via_delta: Vec<f32> = w.iter().zip(&d).map(|(x, y)| x + y).collect();
        assert_eq!(via_delta, want);
        let dt = delta(&b, &a, out_f, r, in_f, 1.5, true);
        for o in 0..out_f {
            for i in 0..in_f {
                assert_eq!(dt[i * out_f + o], d[o * in_f + i]);
            }
        }
    }

    #[test]
    fn dora_rescales_each_output_row_to_its_magnitude() {
        // W = [[3, 0], [0, 0]], B·A = [[0, 0], [0, 4]]: V = [[3, 0], [0, 4]], row norms 3 and 4,
        // magnitudes 6 and 2 -> W' = [[6, 0], [0, 2]].
        let base = t("w", &[2, 2], &[3.0, 0.0, 0.0, 0.0]);
        let edit = Edit::Lora {
            a: t("a", &[1, 2], &[0.0, 1.0]),
            b: t("b", &[2, 1], &[0.0, 4.0]),
            scale: 1.0,
            transpose: false,
            magnitude: Some(t("m", &[2], &[6.0, 2.0])),
        };
        let out = apply(&base, &[edit], DType::F32).unwrap();
        assert_eq!(f32s(&out), [6.0, 0.0, 0.0, 2.0]);
    }

    #[test]
    fn replacements_come_first_then_biases_add_scaled() {
        let base = t("bias", &[3], &[1.0, 1.0, 1.0]);
        let edits = [
            Edit::Bias {
                b_bias: t("lb", &[3], &[1.0, 2.0, 3.0]),
                scale: 0.5,
            },
            Edit::Replace(t("saved", &[3], &[10.0, 20.0, 30.0])),
        ];
        let out = apply(&base, &edits, DType::F32).unwrap();
        assert_eq!(f32s(&out), [10.5, 21.0, 31.5]);
    }

    #[test]
    fn outputs_round_to_nearest_even_in_the_base_dtype() {
        // 1 + 2^-8 is halfway between two bf16 values: it rounds to the even one, 1.0;
        // 1 + 3·2^-8 rounds up to 1 + 2^-6.
        let (tie, above) = (1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8));
        let out = from_f32(&[tie, above], DType::BF16);
        assert_eq!(out, [0x80, 0x3f, 0x82, 0x3f]);
        let mut xs = [tie, above];
        round_to(DType::BF16, &mut xs);
        assert_eq!(xs, [1.0, 1.0 + 2f32.powi(-6)]);
    }
}
