//! PEFT LoRA adapters to GGUF adapters, byte-identical to llama.cpp's `convert_lora_to_gguf.py`
//! (commit 0c1e57098): the adapter's tensor pairs renamed through the base architecture's
//! tensor map (`<gguf name>.lora_a` / `.lora_b`), the base architecture's row transforms applied
//! to the `B` side (the Q/K head permutation), `token_embd`'s `A` transposed, the KVs
//! `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`, the adapter folder's
//! `general.*` metadata and nothing of the base model's hyper-parameters or vocabulary.
//!
//! Where the script writes an adapter llama.cpp would apply with the wrong scale (rsLoRA, per-module
//! alphas) or fails with a traceback, ckpt either writes what PEFT computes (noted in the report)
//! or refuses with the reason.

use std::path::{Path, PathBuf};

use ckpt_core::{DType, Error, Result, Tensor};
use ckpt_gguf::{GgufValue, GgufValueType, GgufWriter};
use serde_json::{Map, Value};

use crate::arch::{self, TensorAction, Transform};
use crate::hparams::{read_optional_json, Hparams};
use crate::kv::KvList;
use crate::metadata::ModelMetadata;
use crate::tensors::PlannedTensor;
use crate::OutType;

/// `adapter_config.json`'s settings that the GGUF adapter carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdapterSettings {
    /// `lora_alpha`.
    pub lora_alpha: f64,
    /// `r` (the default rank).
    pub r: Option<f64>,
    /// `use_rslora`: PEFT scales by `alpha / sqrt(r)` instead of `alpha / r`.
    pub use_rslora: bool,
    /// `alpha_pattern` values (per-module alphas).
    pub alpha_pattern: Vec<(String, f64)>,
    /// `alora_invocation_tokens` (activated LoRA).
    pub alora_invocation_tokens: Option<Vec<u32>>,
}

impl AdapterSettings {
    /// Reads `adapter_config.json` (the path names it in errors).
    pub(crate) fn read(path: &Path) -> Result<AdapterSettings> {
        let text = ckpt_core::hf::read_side_text(path)?;
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| Error::invalid(path, format!("invalid JSON: {e}")))?;
        let Value::Object(m) = v else {
            return Err(Error::invalid(path, "expected a JSON object"));
        };
        Self::from_map(&m, path)
    }

    fn from_map(m: &Map<String, Value>, path: &Path) -> Result<AdapterSettings> {
        if let Some(t) = m.get("peft_type").and_then(Value::as_str) {
            if !t.eq_ignore_ascii_case("LORA") {
                return Err(Error::Unsupported(format!(
                    "{}: peft_type {t}: only LoRA adapters can be converted to a GGUF adapter",
                    path.display()
                )));
            }
        }
        let set = |k: &str| {
            m.get(k)
                .is_some_and(|x| !x.is_null() && x != &Value::Bool(false))
        };
        if set("use_dora") {
            return Err(Error::Unsupported(format!(
                "{}: use_dora is set: llama.cpp adapters cannot express DoRA's magnitude vectors \
                 (convert_lora_to_gguf.py stops at the first lora_magnitude_vector); merge it with \
                 `ckpt merge-lora` instead",
                path.display()
            )));
        }
        let lora_alpha = match m.get("lora_alpha") {
            Some(v) => v.as_f64().ok_or_else(|| {
                Error::invalid(path, format!("lora_alpha must be a number, found {v}"))
            })?,
            None => {
                return Err(Error::invalid(
                    path,
                    "no lora_alpha: the GGUF adapter's adapter.lora.alpha comes from it",
                ))
            }
        };
        let alpha_pattern = match m.get("alpha_pattern") {
            Some(Value::Object(p)) => p
                .iter()
                .map(|(k, v)| {
                    v.as_f64().map(|x| (k.clone(), x)).ok_or_else(|| {
                        Error::invalid(path, format!("alpha_pattern['{k}'] is not a number"))
                    })
                })
                .collect::<Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let alora_invocation_tokens = match m.get("alora_invocation_tokens") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|x| {
                        x.as_u64()
                            .and_then(|x| u32::try_from(x).ok())
                            .ok_or_else(|| {
                                Error::invalid(
                                    path,
                                    format!("alora_invocation_tokens holds {x}, not a token id"),
                                )
                            })
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(other) => {
                return Err(Error::invalid(
                    path,
                    format!("alora_invocation_tokens must be a list of token ids, found {other}"),
                ))
            }
        };
        if alora_invocation_tokens.is_none()
            && m.get("invocation_string")
                .and_then(Value::as_str)
                .is_some_and(|s| !s.is_empty())
        {
            return Err(Error::Unsupported(format!(
                "{}: invocation_string without alora_invocation_tokens: tokenizing it needs the \
                 base model's tokenizer, which ckpt does not run; put the token ids in \
                 alora_invocation_tokens",
                path.display()
            )));
        }
        Ok(AdapterSettings {
            lora_alpha,
            r: m.get("r").and_then(Value::as_f64),
            use_rslora: m
                .get("use_rslora")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            alpha_pattern,
            alora_invocation_tokens,
        })
    }
}

/// Options of [`plan_lora_to_gguf`].
#[derive(Clone, Debug)]
pub struct LoraToGgufOptions {
    /// The script's `--outtype` (default `f32`, as there).
    pub outtype: OutType,
    /// The script's `--dry-run`: plan the file and report it, write nothing.
    pub dry_run: bool,
    /// The script's `--bigendian` ([`ckpt_gguf::ByteOrder::Big`]): header numbers and F32/F16
    /// tensor data big-endian, BF16 and Q8_0 data as in a little-endian file, byte for byte
    /// what the script writes. Default little-endian.
    pub byte_order: ckpt_gguf::ByteOrder,
}

impl Default for LoraToGgufOptions {
    fn default() -> Self {
        LoraToGgufOptions {
            outtype: OutType::F32,
            dry_run: false,
            byte_order: ckpt_gguf::ByteOrder::Little,
        }
    }
}

/// What [`plan_lora_to_gguf`] decided.
#[derive(Debug, Clone)]
pub struct LoraReport {
    /// The base model's `architectures[0]`.
    pub hf_architecture: String,
    /// `general.architecture`.
    pub gguf_architecture: String,
    /// `adapter.lora.alpha` as written.
    pub alpha: f32,
    /// The LoRA pairs written (two tensors each).
    pub pairs: usize,
    /// All tensors written (pairs and the norms some tools add to adapters).
    pub tensor_count: usize,
    /// The file's size.
    pub output_bytes: u64,
    /// Tensors stored in another type than asked, and why.
    pub fallbacks: Vec<String>,
    /// Adapter tensors left out on purpose (multimodal towers, saved base layers, tensors the
    /// base architecture drops).
    pub dropped: Vec<String>,
    /// Where ckpt's output deliberately differs from the script's.
    pub warnings: Vec<String>,
}

/// The pieces of one adapter module.
struct Pair {
    base_name: String,
    a: Option<Tensor>,
    b: Option<Tensor>,
}

/// `get_base_tensor_name` of the script.
fn base_tensor_name(name: &str) -> String {
    name.replace("base_model.model.", "")
        .replace(".lora_A.weight", ".weight")
        .replace(".lora_B.weight", ".weight")
        .replace(".lora_embedding_A", ".weight")
        .replace(".lora_embedding_B", ".weight")
}

/// Why an adapter tensor that is neither `lora_A` nor `lora_B` cannot be converted.
fn unexpected(name: &str, file: &Path) -> Error {
    let why = if name.contains("lora_magnitude_vector") {
        "a DoRA magnitude vector: llama.cpp adapters cannot express DoRA; merge it with `ckpt merge-lora` instead"
            .to_string()
    } else if name.contains(".lora_A.bias") || name.contains(".lora_B.bias") {
        "a LoRA bias (lora_bias=true): llama.cpp adapters have no biases; merge it with `ckpt merge-lora` instead"
            .to_string()
    } else if name.ends_with(".bias") {
        "a bias the adapter replaces (bias=\"all\"/\"lora_only\"): llama.cpp adapters have no biases; merge it with `ckpt merge-lora` instead"
            .to_string()
    } else if name.contains(".embed_tokens.weight") || name.contains(".lm_head.weight") {
        "embeddings are present in the adapter (modules_to_save, or new tokens added during fine-tuning): \
         llama.cpp adapters cannot replace them (see llama.cpp PR #9948); merge it with `ckpt merge-lora` instead"
            .to_string()
    } else {
        "a weight the adapter replaces outright (modules_to_save): llama.cpp adapters carry only lora_A/lora_B pairs; \
         merge it with `ckpt merge-lora` instead"
            .to_string()
    };
    Error::Unsupported(format!(
        "{}: unexpected tensor '{name}': not a lora_A or lora_B tensor, but {why}",
        file.display()
    ))
}

fn file_of(t: &Tensor) -> PathBuf {
    t.view()
        .map(|v| v.storage.buffer.path.clone())
        .unwrap_or_default()
}

/// The script's float handling: torch widens anything that is not f16/f32 to f32 (and a pair
/// of mixed dtypes to f32). Values are widened exactly either way; only `--outtype auto` looks
/// at the stored dtype.
fn check_dtype(t: &Tensor) -> Result<()> {
    match t.dtype {
        DType::F32 | DType::F16 | DType::BF16 | DType::F64 => Ok(()),
        other => Err(Error::invalid(
            file_of(t),
            format!(
                "tensor '{}': dtype {other} is not a floating-point LoRA weight",
                t.name
            ),
        )),
    }
}

/// Plans the GGUF adapter of `adapter` (the tensors of `adapter_dir`'s adapter file, in the
/// order the script reads them: sorted by name for safetensors, file order for `.bin`) for the
/// base model whose `config.json` is in `base_dir`. Returns the writer with the KVs and lazy
/// tensors, and the report (`output_bytes` is the size the file will have).
pub fn plan_lora_to_gguf(
    base_dir: &Path,
    adapter_dir: &Path,
    adapter: &[Tensor],
    opts: &LoraToGgufOptions,
) -> Result<(GgufWriter, LoraReport)> {
    let config_path = adapter_dir.join("adapter_config.json");
    let settings = AdapterSettings::read(&config_path)?;
    let mut hp = Hparams::load(base_dir)?;
    let hf_arch = hp
        .get("architectures")
        .and_then(|a| a.get(0))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Error::invalid(&hp.path, "config.json has no \"architectures\" list"))?;
    let arch = arch::find_for(&hf_arch, &hp).ok_or_else(|| {
        Error::Unsupported(format!(
            "{}: base architecture {hf_arch} is not supported; supported: {}",
            hp.path.display(),
            crate::supported_architectures().join(", ")
        ))
    })?;
    arch.config_defaults(&mut hp);
    let block_count =
        hp.require_u32(&["n_layers", "num_hidden_layers", "n_layer", "num_layers"])?;

    // get_tensors: norms (mergekit-extract-lora) are yielded as they come, pairs afterwards in
    // the order their first half was seen.
    let mut dropped = Vec::new();
    let mut plain: Vec<Tensor> = Vec::new();
    let mut pairs: Vec<Pair> = Vec::new();
    for t in adapter {
        check_dtype(t)?;
        let mut base_name = base_tensor_name(&t.name);
        if crate::is_multimodal(&base_name) {
            dropped.push(t.name.clone());
            continue;
        }
        if base_name.ends_with("e_score_correction_bias") {
            base_name = base_name.replace("e_score_correction_bias", "e_score_correction.bias");
        }
        if base_name.contains("language_model.") {
            base_name = base_name.replace("language_model.", "");
        }
        let is_a = t.name.contains(".lora_A.weight") || t.name.contains(".lora_embedding_A");
        let is_b = t.name.contains(".lora_B.weight") || t.name.contains(".lora_embedding_B");
        if !is_a && !is_b {
            if t.name.contains(".base_layer.weight") {
                dropped.push(t.name.clone());
                continue;
            }
            if t.name.contains("_layernorm") || t.name.contains(".norm") {
                let mut n = t.clone();
                n.name = base_name;
                plain.push(n);
                continue;
            }
            return Err(unexpected(&t.name, &file_of(t)));
        }
        let slot = match pairs.iter_mut().position(|p| p.base_name == base_name) {
            Some(i) => &mut pairs[i],
            None => {
                pairs.push(Pair {
                    base_name: base_name.clone(),
                    a: None,
                    b: None,
                });
                pairs.last_mut().expect("just pushed")
            }
        };
        // A later duplicate replaces the earlier one, as the script's dict assignment does.
        if is_a {
            slot.a = Some(t.clone());
        } else {
            slot.b = Some(t.clone());
        }
    }

    // `--outtype auto`: the script's heuristic (it fails on LoRA pairs; ckpt applies what it
    // describes: the first matrix's stored dtype).
    let first_matrix = plain
        .iter()
        .chain(pairs.iter().filter_map(|p| p.a.as_ref()))
        .find(|t| t.shape.len() >= 2 && matches!(t.dtype, DType::BF16 | DType::F16))
        .map(|t| t.dtype);
    let (target, _) = opts.outtype.resolve(first_matrix);

    let mut planned: Vec<PlannedTensor> = Vec::new();
    let mut fallbacks = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for t in plain {
        let bid = crate::block_id(&t.name);
        let action = arch.tensor(
            &arch::TensorRef {
                name: &t.name,
                bid,
                dtype: t.dtype,
                model_dir: base_dir,
            },
            &hp,
            block_count,
        )?;
        let TensorAction::Keep { name, transforms } = action else {
            dropped.push(t.name.clone());
            continue;
        };
        if !name.contains("_norm") {
            return Err(Error::Unsupported(format!(
                "{}: adapter tensor '{}' maps to {name}, which is not a norm: only lora_A/lora_B \
                 pairs and norms can be stored in a GGUF adapter",
                file_of(&t).display(),
                t.name
            )));
        }
        let hf_name = t.name.clone();
        planned.push(crate::plan_tensor(
            &hf_name,
            &t,
            name,
            transforms,
            target,
            &mut seen,
            &mut fallbacks,
            Vec::new(),
        )?);
    }
    let mut n_pairs = 0;
    for p in pairs {
        let (a, b) = match (p.a, p.b) {
            (Some(a), Some(b)) => (a, b),
            (Some(x), None) | (None, Some(x)) => {
                let missing = if x.name.contains("_A") {
                    "lora_B"
                } else {
                    "lora_A"
                };
                return Err(Error::invalid(
                    file_of(&x),
                    format!(
                        "tensor '{}' has no {missing} partner: every adapted module needs both halves",
                        x.name
                    ),
                ));
            }
            (None, None) => unreachable!("a pair is made from one of its halves"),
        };
        if a.shape.len() != b.shape.len()
            || a.shape.len() < 2
            || a.shape[a.shape.len() - 2] != b.shape[b.shape.len() - 1]
        {
            return Err(Error::invalid(
                file_of(&a),
                format!(
                    "'{}' has shape {:?} and '{}' has {:?}: lora_A must be [rank, in] and lora_B [out, rank]",
                    a.name, a.shape, b.name, b.shape
                ),
            ));
        }
        if a.shape.len() != 2 {
            return Err(Error::Unsupported(format!(
                "{}: '{}' has shape {:?}: only LoRA on 2-D weights can be converted",
                file_of(&a).display(),
                a.name,
                a.shape
            )));
        }
        let base_name = p.base_name;
        let bid = crate::block_id(&base_name);
        if let Some(mut st) = arch::moe::Stacker::new(arch, &hp)? {
            let mut probe = b.clone();
            probe.name = base_name.clone();
            if st.offer(&probe, bid, block_count)?.is_some() {
                return Err(Error::Unsupported(format!(
                    "{}: '{}' adapts the per-expert weight {base_name}: LoRA on stacked experts \
                     cannot be converted",
                    file_of(&a).display(),
                    a.name
                )));
            }
        }
        // A fused weight the conversion splits by rows (Granite's input_linear into gate and up)
        // splits B's rows the same way; A is shared (the script's LoraTorchTensor.split).
        let mut probe = b.clone();
        probe.name = base_name.clone();
        let refuse = |why: String| {
            Error::Unsupported(format!(
                "{}: '{}' adapts {base_name}, which the {} conversion {why}: LoRA on it cannot be \
                 converted",
                file_of(&a).display(),
                a.name,
                arch.gguf_arch()
            ))
        };
        let units: Vec<(String, Tensor)> = match arch.expand(&probe, bid, &hp, block_count) {
            Ok(None) => vec![(base_name.clone(), b)],
            Ok(Some(pieces)) if pieces.is_empty() => {
                dropped.push(a.name.clone());
                dropped.push(b.name.clone());
                continue;
            }
            Ok(Some(pieces)) => {
                let rows: u64 = pieces
                    .iter()
                    .map(|p| p.shape.first().copied().unwrap_or(0))
                    .sum();
                if rows != b.shape[0]
                    || pieces
                        .iter()
                        .any(|p| p.shape.len() != 2 || p.shape[1] != b.shape[1])
                {
                    return Err(refuse("reshapes".into()));
                }
                pieces.into_iter().map(|p| (p.name.clone(), p)).collect()
            }
            Err(e) => return Err(refuse(format!("splits ({e})"))),
        };
        'units: for (base_name, b) in units {
            let action = arch
                .tensor(
                    &arch::TensorRef {
                        name: &base_name,
                        bid,
                        dtype: a.dtype,
                        model_dir: base_dir,
                    },
                    &hp,
                    block_count,
                )
                .map_err(|e| {
                    if base_name.contains(".experts.") {
                        Error::Unsupported(format!(
                            "{}: '{}' adapts the mixture-of-experts weight {base_name} (PEFT \
                         target_parameters): LoRA on experts cannot be converted to a GGUF adapter \
                         (convert_lora_to_gguf.py fails on it too)",
                            file_of(&a).display(),
                            a.name
                        ))
                    } else {
                        e
                    }
                })?;
            let (name, transforms) = match action {
                TensorAction::Keep { name, transforms } => (name, transforms),
                TensorAction::Drop if base_name == "lm_head.weight" => {
                    return Err(Error::Unsupported(format!(
                        "{}: lm_head is present in the adapter, but the base model has no separate \
                         lm_head (tied embeddings; llama.cpp issue #9065)",
                        file_of(&a).display()
                    )))
                }
                TensorAction::Drop => {
                    dropped.push(a.name.clone());
                    dropped.push(b.name.clone());
                    continue 'units;
                }
            };
            if name.contains("_norm") {
                return Err(Error::Unsupported(format!(
                    "{}: '{}' adapts the norm {name}: LoRA pairs on vectors cannot be converted",
                    file_of(&a).display(),
                    a.name
                )));
            }
            // The LoRA product B·A goes through the base tensor's transforms: row operations act on
            // B's rows, a transpose swaps the halves (A' = Bᵀ, B' = Aᵀ).
            let (mut a_src, mut b_src) = (a.clone(), b);
            let (mut a_tr, mut b_tr): (Vec<Transform>, Vec<Transform>) = (Vec::new(), Vec::new());
            for tr in transforms {
                match tr {
                    Transform::PermuteRows { .. }
                    | Transform::TruncateRows { .. }
                    | Transform::SkipRows { .. } => b_tr.push(tr),
                    Transform::Transpose => {
                        std::mem::swap(&mut a_src, &mut b_src);
                        std::mem::swap(&mut a_tr, &mut b_tr);
                        a_tr.push(Transform::Transpose);
                        b_tr.push(Transform::Transpose);
                    }
                    other => {
                        return Err(Error::Unsupported(format!(
                            "{}: '{}' adapts {base_name}, which the {} conversion transforms by \
                             {other:?}: that cannot be applied to a LoRA pair",
                            file_of(&a_src).display(),
                            a_src.name,
                            arch.gguf_arch()
                        )))
                    }
                }
            }
            if name.contains("token_embd.weight") {
                a_tr.push(Transform::Transpose);
            }
            for (suffix, src, tr) in [(".lora_a", a_src, a_tr), (".lora_b", b_src, b_tr)] {
                let hf_name = src.name.clone();
                planned.push(crate::plan_tensor(
                    &hf_name,
                    &src,
                    format!("{name}{suffix}"),
                    tr,
                    target,
                    &mut seen,
                    &mut fallbacks,
                    Vec::new(),
                )?);
            }
            n_pairs += 1;
        }
    }

    // adapter.lora.alpha: llama.cpp scales each pair by alpha / rank.
    let mut warnings = Vec::new();
    let alpha = effective_alpha(&settings, &planned, &config_path, &mut warnings)?;

    // gguf-py's parameter count of an adapter: the full matrices the pairs change, negated.
    let mut total: u64 = 0;
    let mut last_a: Option<&PlannedTensor> = None;
    for p in &planned {
        if p.name.ends_with(".lora_a") {
            last_a = Some(p);
            continue;
        }
        let size = if p.name.ends_with(".lora_b") {
            match last_a {
                Some(a) if a.name[..a.name.len() - 1] == p.name[..p.name.len() - 1] => {
                    p.shape[..p.shape.len() - 1].iter().product::<u64>()
                        * a.shape.last().copied().unwrap_or(1)
                }
                _ => {
                    total = 0;
                    break;
                }
            }
        } else {
            p.shape.iter().product()
        };
        total += size;
    }

    let mut kv = KvList::new();
    kv.string("general.architecture", arch.gguf_arch());
    kv.string("general.type", "adapter");
    kv.string("adapter.type", "lora");
    let card_config = read_optional_json(&adapter_dir.join("config.json"))
        .unwrap_or(None)
        .unwrap_or_default();
    let generation =
        read_optional_json(&adapter_dir.join("generation_config.json")).unwrap_or(None);
    let metadata =
        ModelMetadata::derive_adapter(adapter_dir, &card_config, generation.as_ref(), total);
    warnings.extend(metadata.warnings.iter().cloned());
    metadata.write(&mut kv);
    kv.f32("adapter.lora.alpha", alpha);
    if let Some(tokens) = &settings.alora_invocation_tokens {
        kv.array(
            "adapter.alora.invocation_tokens",
            GgufValue::Array(ckpt_gguf::GgufArray::new(
                GgufValueType::U32,
                tokens.iter().map(|&t| GgufValue::U32(t)).collect(),
            )),
        );
    }
    kv.u32("general.quantization_version", 2);

    let tensor_count = planned.len();
    let mut writer = GgufWriter::new();
    writer.set_byte_order(opts.byte_order);
    kv.into_writer(&mut writer);
    for p in planned {
        writer.add_tensor(p.into_tensor());
    }
    let output_bytes = writer.total_size()?;
    Ok((
        writer,
        LoraReport {
            hf_architecture: hf_arch,
            gguf_architecture: arch.gguf_arch().to_string(),
            alpha,
            pairs: n_pairs,
            tensor_count,
            output_bytes,
            fallbacks,
            dropped,
            warnings,
        },
    ))
}

/// The alpha llama.cpp needs so that its `alpha / rank` is PEFT's scale. That is `lora_alpha`
/// (what the script writes) unless the adapter uses rsLoRA (`alpha / sqrt(r)`: ckpt writes
/// `lora_alpha · sqrt(r)`, which needs one rank) or per-module alphas (refused unless they all
/// equal `lora_alpha`).
fn effective_alpha(
    s: &AdapterSettings,
    planned: &[PlannedTensor],
    config: &Path,
    warnings: &mut Vec<String>,
) -> Result<f32> {
    if let Some((k, v)) = s.alpha_pattern.iter().find(|(_, v)| *v != s.lora_alpha) {
        return Err(Error::Unsupported(format!(
            "{}: alpha_pattern gives '{k}' alpha {v} (lora_alpha is {}): a GGUF adapter has one \
             alpha for all modules; merge it with `ckpt merge-lora` instead",
            config.display(),
            s.lora_alpha
        )));
    }
    if !s.use_rslora {
        return Ok(s.lora_alpha as f32);
    }
    let mut ranks: Vec<u64> = planned
        .iter()
        .filter(|p| p.name.ends_with(".lora_b"))
        .map(|p| p.shape.last().copied().unwrap_or(0))
        .collect();
    ranks.sort_unstable();
    ranks.dedup();
    let r = match ranks.as_slice() {
        [r] => *r as f64,
        [] => s.r.unwrap_or(8.0),
        many => {
            return Err(Error::Unsupported(format!(
                "{}: use_rslora with modules of different ranks {many:?}: llama.cpp scales by \
                 alpha / rank with one alpha, which cannot give PEFT's alpha / sqrt(rank) for all \
                 of them; merge it with `ckpt merge-lora` instead",
                config.display()
            )))
        }
    };
    let alpha = (s.lora_alpha * r.sqrt()) as f32;
    warnings.push(format!(
        "use_rslora: adapter.lora.alpha is lora_alpha·sqrt(r) = {alpha} (convert_lora_to_gguf.py \
         writes {} and llama.cpp would then scale by alpha/r instead of PEFT's alpha/sqrt(r))",
        s.lora_alpha as f32
    ));
    Ok(alpha)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_names_follow_the_script() {
        assert_eq!(
            base_tensor_name("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"),
            "model.layers.0.self_attn.q_proj.weight"
        );
        assert_eq!(
            base_tensor_name("base_model.model.model.embed_tokens.lora_embedding_B"),
            "model.embed_tokens.weight"
        );
    }

    #[test]
    fn settings_refuse_what_a_gguf_adapter_cannot_hold() {
        let p = Path::new("adapter_config.json");
        let parse = |s: &str| {
            let Value::Object(m) = serde_json::from_str::<Value>(s).unwrap() else {
                panic!()
            };
            AdapterSettings::from_map(&m, p)
        };
        assert!(matches!(
            parse(r#"{"lora_alpha": 16, "use_dora": true}"#),
            Err(Error::Unsupported(_))
        ));
        assert!(matches!(parse(r#"{"r": 8}"#), Err(Error::Invalid { .. })));
        assert!(matches!(
            parse(r#"{"lora_alpha": 16, "peft_type": "IA3"}"#),
            Err(Error::Unsupported(_))
        ));
        let s = parse(r#"{"lora_alpha": 16, "alora_invocation_tokens": [5, 7]}"#).unwrap();
        assert_eq!(s.alora_invocation_tokens, Some(vec![5, 7]));
        assert!(matches!(
            parse(r#"{"lora_alpha": 16, "invocation_string": "<x>"}"#),
            Err(Error::Unsupported(_))
        ));
    }
}
