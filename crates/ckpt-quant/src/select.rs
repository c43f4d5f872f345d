//! llama-quantize's per-tensor type choice (src/llama-quant.cpp at 0c1e57098): which tensors may
//! be quantized, the ftype mix rules by tensor category and layer, and the shape fallback.
//!
//! The rules keep running counters (attn_v-like tensors, ffn_down/gate/up), so the decisions
//! depend on the order tensors are visited; llama-quantize visits them sorted by
//! [`tensor_order_key`], and [`choose_types`] does the same.

use std::cmp::Ordering;

use ckpt_core::{Error, GgmlType, Result};

use crate::ftype::Ftype;
use crate::options::TensorTypeOverride;

/// The model hyper-parameters the rules look at (from the GGUF KVs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelParams {
    pub arch: String,
    /// `{arch}.block_count`.
    pub n_layer: u32,
    /// `{arch}.expert_count` (0 for dense models).
    pub n_expert: u32,
    /// `{arch}.attention.head_count` (first layer's value when per-layer).
    pub n_head: u32,
    /// `{arch}.attention.head_count_kv` (defaults to n_head).
    pub n_head_kv: u32,
}

impl ModelParams {
    fn n_gqa(&self) -> u32 {
        self.n_head.checked_div(self.n_head_kv).unwrap_or(0)
    }
    /// llama.cpp's LLM_TYPE_70B (80-layer Llama with grouped-query attention).
    fn is_llama_70b(&self) -> bool {
        self.arch == "llama" && self.n_layer == 80 && self.n_head != self.n_head_kv
    }
    fn is_falcon(&self) -> bool {
        self.arch == "falcon"
    }
}

/// The knobs of llama-quantize that affect the type choice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SelectOptions {
    pub ftype: Ftype,
    /// `--pure`: every quantizable tensor gets the default type (shape fallback still applies).
    pub pure: bool,
    /// `--output-tensor-type`
    pub output_tensor_type: Option<GgmlType>,
    /// `--token-embedding-type`
    pub token_embedding_type: Option<GgmlType>,
    /// `--leave-output-tensor`: output.weight keeps its type.
    pub leave_output_tensor: bool,
    /// Whether an importance matrix is used (changes a few rules).
    pub has_imatrix: bool,
    /// `--tensor-type PATTERN=TYPE` rules, in command-line order (the first match wins).
    pub tensor_types: Vec<TensorTypeOverride>,
}

impl SelectOptions {
    #[cfg(test)]
    pub fn new(ftype: Ftype) -> SelectOptions {
        SelectOptions {
            ftype,
            pure: false,
            output_tensor_type: None,
            token_embedding_type: None,
            leave_output_tensor: false,
            has_imatrix: false,
            tensor_types: Vec::new(),
        }
    }
}

/// One tensor as the rules see it: name, ggml dims (`ne0` first) and current type.
#[derive(Clone, Debug)]
pub struct TensorDesc<'a> {
    pub name: &'a str,
    pub ne: &'a [u64],
    pub ggml_type: GgmlType,
}

/// The decision for one tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TypeChoice {
    pub ggml_type: GgmlType,
    /// Whether the tensor is eligible for quantization at all (2-D+, a weight, not a norm, ...).
    pub quantizable: bool,
    /// The type the mix asked for when ne0 did not fit its block size (then `ggml_type` is the fallback).
    pub fallback_from: Option<GgmlType>,
    /// Whether llama-quantize would refuse this type without an importance matrix.
    pub requires_imatrix: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Category {
    TokenEmbd,
    AttnQ,
    AttnV,
    AttnK,
    AttnQkv,
    AttnKvB,
    AttnOutput,
    FfnUp,
    FfnGate,
    FfnDown,
    Output,
    Other,
}

fn is_token_embd(name: &str) -> bool {
    name == "token_embd.weight" || name == "per_layer_token_embd.weight"
}

fn category(name: &str) -> Category {
    if name == "output.weight" {
        return Category::Output;
    }
    if is_token_embd(name) {
        return Category::TokenEmbd;
    }
    const BY_SUBSTRING: &[(&str, Category)] = &[
        ("attn_qkv.weight", Category::AttnQkv),
        ("attn_kv_b.weight", Category::AttnKvB),
        ("attn_v.weight", Category::AttnV),
        ("attn_k.weight", Category::AttnK),
        ("attn_q.weight", Category::AttnQ),
        ("attn_output.weight", Category::AttnOutput),
        ("ffn_up", Category::FfnUp),
        ("ffn_gate", Category::FfnGate),
        ("ffn_down", Category::FfnDown),
    ];
    BY_SUBSTRING
        .iter()
        .find(|(s, _)| name.contains(s))
        .map_or(Category::Other, |e| e.1)
}

fn is_attn_v_like(c: Category) -> bool {
    matches!(c, Category::AttnV | Category::AttnQkv | Category::AttnKvB)
}

/// ggml_n_dims: index of the last dimension > 1, plus one (at least 1).
pub fn ggml_n_dims(ne: &[u64]) -> usize {
    ne.iter().rposition(|&d| d > 1).map_or(1, |i| i + 1)
}

/// Name fragments of tensors llama-quantize never quantizes (small, or precision-critical).
const NEVER_QUANTIZED: &[&str] = &[
    "_norm.weight",
    "ffn_gate_inp.weight",
    "ffn_gate_tid2eid.weight",
    "altup",
    "laurel",
    "per_layer_model_proj",
    "ssm_conv1d",
    "shortconv.conv.weight",
    "indexer.k_proj.weight",
    "indexer.q_proj.weight",
    "time_mix_first.weight",
    "time_mix_w0.weight",
    "time_mix_w1.weight",
    "time_mix_w2.weight",
    "time_mix_v0.weight",
    "time_mix_v1.weight",
    "time_mix_v2.weight",
    "time_mix_a0.weight",
    "time_mix_a1.weight",
    "time_mix_a2.weight",
    "time_mix_g1.weight",
    "time_mix_g2.weight",
    "time_mix_decay_w1.weight",
    "time_mix_decay_w2.weight",
    "time_mix_lerp_fused.weight",
    "attn_rel_b.weight",
    ".position_embd",
    "sam.pos_embd",
    "sam.neck.",
    "sam.net_",
    ".rel_pos",
    ".patch_embd",
    ".patch_merger",
    "a.rvq.codebook",
    "mm.a.code_embd",
];

/// tensor_allows_quantization.
pub fn allows_quantization(name: &str, ne: &[u64], leave_output_tensor: bool) -> bool {
    ggml_n_dims(ne) >= 2
        && name.ends_with("weight")
        && !(leave_output_tensor && name == "output.weight")
        && !NEVER_QUANTIZED.iter().any(|s| name.contains(s))
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

/// llama-quantize's tensor order: by the layer number of a `blk.N.` prefix (-1 when absent),
/// then byte-wise by name.
pub fn tensor_order_key(name: &str) -> (i64, &str) {
    (layer_of(name).unwrap_or(-1), name)
}

/// Compares two tensor names in llama-quantize's output order.
pub fn compare_tensor_names(a: &str, b: &str) -> Ordering {
    tensor_order_key(a).cmp(&tensor_order_key(b))
}

/// sscanf("blk.%d."): the layer number of a block tensor.
fn layer_of(name: &str) -> Option<i64> {
    let rest = name.strip_prefix("blk.")?;
    let digits_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let (digits, tail) = rest.split_at(digits_end);
    // %d also accepts a sign; llama.cpp names never carry one
    if digits.is_empty() || !tail.starts_with('.') {
        return None;
    }
    digits.parse().ok()
}

fn use_more_bits(i_layer: i64, n_layers: i64) -> bool {
    i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2
}

/// The stateful chooser: create it with every tensor name of the model, then ask for each
/// tensor in llama-quantize's order.
pub struct TypeSelector {
    model: ModelParams,
    opts: SelectOptions,
    n_attention_wv: i64,
    i_attention_wv: i64,
    i_ffn_down: i64,
    i_ffn_gate: i64,
    i_ffn_up: i64,
    has_tied_embeddings: bool,
    /// How many tensors needed the shape fallback so far.
    pub n_fallback: usize,
}

impl TypeSelector {
    pub fn new<'a>(
        model: ModelParams,
        opts: SelectOptions,
        names: impl IntoIterator<Item = &'a str>,
    ) -> TypeSelector {
        let mut n_attention_wv = 0;
        let mut has_tied_embeddings = true;
        for name in names {
            let c = category(name);
            if is_attn_v_like(c) {
                n_attention_wv += 1;
            }
            if c == Category::Output {
                has_tied_embeddings = false;
            }
        }
        TypeSelector {
            model,
            opts,
            n_attention_wv,
            i_attention_wv: 0,
            i_ffn_down: 0,
            i_ffn_gate: 0,
            i_ffn_up: 0,
            has_tied_embeddings,
            n_fallback: 0,
        }
    }

    /// The type llama-quantize gives `t` (call in [`tensor_order_key`] order).
    pub fn choose_type(&mut self, t: &TensorDesc) -> Result<TypeChoice> {
        let opts = self.opts.clone();
        let quantizable = allows_quantization(t.name, t.ne, opts.leave_output_tensor);
        let keep = TypeChoice {
            ggml_type: t.ggml_type,
            quantizable,
            fallback_from: None,
            requires_imatrix: false,
        };
        if !quantizable {
            return Ok(keep);
        }
        let cat = category(t.name);
        let requires = |ty: GgmlType| requires_imatrix(t.name, ty, opts.ftype);
        let rule = opts.tensor_types.iter().find(|r| r.matches(t.name));
        if let (Some(ty), Category::TokenEmbd) = (opts.token_embedding_type, cat) {
            // per_layer_token_embd follows --token-embedding-type unless a --tensor-type rule
            // names it.
            if t.name != "per_layer_token_embd.weight" || rule.is_none() {
                return Ok(TypeChoice {
                    ggml_type: ty,
                    requires_imatrix: requires(ty),
                    ..keep
                });
            }
        }
        if let (Some(ty), Category::Output) = (opts.output_tensor_type, cat) {
            return Ok(TypeChoice {
                ggml_type: ty,
                requires_imatrix: requires(ty),
                ..keep
            });
        }
        let default_type = opts.ftype.default_type();
        let mut new_type = default_type;
        let mut fallback_from = None;
        if default_type.is_quantized() {
            // A --tensor-type rule replaces the mix rules for the tensors it matches (their
            // counters do not advance either).
            if let Some(r) = rule {
                new_type = r.ggml_type;
            } else if !opts.pure {
                new_type = self.mix_rules(new_type, t, cat)?;
            }
            let fallback = self.shape_fallback(t, new_type)?;
            if fallback != new_type {
                fallback_from = Some(new_type);
                new_type = fallback;
            }
        }
        Ok(TypeChoice {
            ggml_type: new_type,
            quantizable,
            fallback_from,
            requires_imatrix: requires(new_type),
        })
    }

    /// tensor_type_fallback: a type whose block size divides ne0.
    fn shape_fallback(&mut self, t: &TensorDesc, target: GgmlType) -> Result<GgmlType> {
        let ncols = t.ne.first().copied().unwrap_or(1);
        if ncols % target.block_size() as u64 == 0 {
            return Ok(target);
        }
        self.n_fallback += 1;
        use GgmlType::*;
        let fallback = match target {
            IQ1_S | IQ1_M | IQ2_XXS | IQ2_XS | IQ2_S | IQ3_XXS | IQ3_S | IQ4_XS => IQ4_NL,
            Q2_0 | Q2_K | Q3_K | TQ1_0 | TQ2_0 => Q4_0,
            Q4_K => Q5_0,
            Q5_K => Q5_1,
            Q6_K => Q8_0,
            // Already a block-32 (or smaller) type: nothing smaller to demote to, so the check
            // below makes it F16, as llama.cpp does.
            other if other.block_size() <= 32 => other,
            other => {
                return Err(Error::Unsupported(format!(
                    "tensor {}: ne0 = {ncols} is not a multiple of the {other} block size {} and llama.cpp defines no fallback for {other}",
                    t.name,
                    other.block_size()
                )))
            }
        };
        Ok(if ncols % fallback.block_size() as u64 != 0 {
            F16
        } else {
            fallback
        })
    }

    /// layer_info: the running counter, or the layer parsed from the name for MoE models.
    fn layer_info(&self, counter: i64, name: &str) -> Result<(i64, i64)> {
        let n_layer = self.model.n_layer as i64;
        if self.model.n_expert.max(1) > 1 {
            let layer = layer_of(name).ok_or_else(|| {
                Error::Unsupported(format!("failed to determine the layer of tensor {name}"))
            })?;
            if layer >= n_layer {
                return Err(Error::Unsupported(format!(
                    "bad layer {layer} for tensor {name}: must be in [0, {n_layer})"
                )));
            }
            return Ok((layer, n_layer));
        }
        Ok((counter, n_layer))
    }

    /// llama_tensor_get_type_impl: the ftype mix rules (branch order kept as in llama.cpp, even
    /// where two branches give the same type).
    #[allow(clippy::if_same_then_else)]
    fn mix_rules(
        &mut self,
        mut new_type: GgmlType,
        t: &TensorDesc,
        cat: Category,
    ) -> Result<GgmlType> {
        use Ftype as F;
        use GgmlType as G;
        let ftype = self.opts.ftype;
        let m = &self.model;
        let falcon = m.is_falcon();
        let n_gqa = m.n_gqa();
        let n_expert = m.n_expert;
        let has_imatrix = self.opts.has_imatrix;

        if cat == Category::Output || (self.has_tied_embeddings && cat == Category::TokenEmbd) {
            if let Some(ty) = self.opts.output_tensor_type {
                new_type = ty;
            } else {
                let nx = t.ne.first().copied().unwrap_or(1);
                if ftype == F::MXFP4_MOE || falcon || nx % new_type.block_size() as u64 != 0 {
                    new_type = G::Q8_0;
                } else if matches!(
                    ftype,
                    F::IQ2_XXS | F::IQ2_XS | F::IQ3_XXS | F::IQ1_S | F::IQ2_S | F::IQ2_M | F::IQ1_M
                ) {
                    new_type = G::Q5_K;
                } else if new_type != G::Q8_0 {
                    new_type = G::Q6_K;
                }
            }
        } else if ftype == F::MXFP4_MOE {
            // expert tensors (3-D) -> MXFP4, everything else Q8_0; BailingMoE3's 3-D MLA
            // projections are not experts
            let ne2 = t.ne.get(2).copied().unwrap_or(1);
            let expert_role =
                matches!(cat, Category::FfnUp | Category::FfnGate | Category::FfnDown);
            new_type = if ne2 > 1 && (m.arch != "bailingmoe3" || expert_role) {
                G::MXFP4
            } else {
                G::Q8_0
            };
        } else if cat == Category::TokenEmbd {
            if let Some(ty) = self.opts.token_embedding_type {
                new_type = ty;
            } else if matches!(ftype, F::IQ2_XXS | F::IQ2_XS | F::IQ1_S | F::IQ1_M) {
                new_type = G::Q2_K;
            } else if matches!(ftype, F::IQ2_S | F::IQ2_M | F::IQ3_XXS) {
                new_type = G::IQ3_S;
            } else if matches!(ftype, F::TQ1_0 | F::TQ2_0 | F::Q2_0) {
                new_type = G::Q4_K;
            }
        } else if ftype.is_iq_low_bit() {
            let iq3s_or_q2k = if matches!(ftype, F::IQ2_S | F::IQ2_M) {
                G::IQ3_S
            } else {
                G::Q2_K
            };
            if is_attn_v_like(cat) {
                new_type = if n_gqa >= 4 || n_expert >= 4 {
                    G::Q4_K
                } else {
                    iq3s_or_q2k
                };
                self.i_attention_wv += 1;
            } else if n_expert == 8 && cat == Category::AttnK {
                new_type = G::Q4_K;
            } else if cat == Category::FfnDown {
                if self.i_ffn_down < m.n_layer as i64 / 8 {
                    new_type = iq3s_or_q2k;
                }
                self.i_ffn_down += 1;
            } else if cat == Category::AttnOutput {
                if n_expert == 8 {
                    new_type = G::Q5_K;
                } else if matches!(ftype, F::IQ1_S | F::IQ1_M) {
                    new_type = G::IQ2_XXS;
                } else if matches!(ftype, F::IQ2_S | F::IQ2_M) {
                    new_type = G::IQ3_S;
                }
            }
        } else if is_attn_v_like(cat) {
            let i = self.i_attention_wv;
            if ftype == F::Q2_K {
                new_type = if n_gqa >= 4 { G::Q4_K } else { G::Q3_K };
            } else if ftype == F::Q2_K_S && n_gqa >= 4 {
                new_type = G::Q4_K;
            } else if ftype == F::IQ3_XXS {
                new_type = if n_gqa >= 4 {
                    G::Q4_K
                } else if !has_imatrix {
                    G::IQ3_S
                } else {
                    G::IQ3_XXS
                };
            } else if matches!(ftype, F::IQ3_XS | F::IQ3_S) && n_gqa >= 4 {
                new_type = G::Q4_K;
            } else if ftype == F::IQ3_M {
                new_type = G::Q4_K;
            } else if ftype == F::Q3_K_M {
                new_type = if i < 2 { G::Q5_K } else { G::Q4_K };
            } else if ftype == F::Q3_K_L {
                new_type = G::Q5_K;
            } else if matches!(ftype, F::IQ4_NL | F::IQ4_XS) && n_gqa >= 4 {
                new_type = G::Q5_K;
            } else if matches!(ftype, F::Q4_K_M | F::Q5_K_M)
                && use_more_bits(i, self.n_attention_wv)
            {
                new_type = G::Q6_K;
            } else if ftype == F::Q4_K_S && i < 4 {
                new_type = G::Q5_K;
            }
            if m.is_llama_70b() && matches!(new_type, G::Q3_K | G::Q4_K) {
                new_type = G::Q5_K;
            }
            if n_expert == 8 {
                new_type = G::Q8_0;
            }
            self.i_attention_wv += 1;
        } else if cat == Category::AttnK {
            if n_expert == 8 {
                new_type = G::Q8_0;
            } else if ftype == F::IQ3_XS {
                new_type = G::IQ3_XXS;
            } else if ftype == F::IQ3_XXS {
                new_type = G::IQ2_S;
            }
        } else if cat == Category::AttnQ {
            if ftype == F::IQ3_XS {
                new_type = G::IQ3_XXS;
            } else if ftype == F::IQ3_XXS {
                new_type = G::IQ2_S;
            }
        } else if cat == Category::FfnDown {
            let (i_layer, n_layer) = self.layer_info(self.i_ffn_down, t.name)?;
            if ftype == F::Q2_K {
                new_type = G::Q3_K;
            } else if ftype == F::Q2_K_S {
                if i_layer < n_layer / 8 {
                    new_type = G::Q4_K;
                }
            } else if ftype == F::IQ3_XXS && !has_imatrix {
                new_type = if i_layer < n_layer / 8 {
                    G::Q4_K
                } else {
                    G::Q3_K
                };
            } else if ftype == F::Q3_K_M {
                new_type = if i_layer < n_layer / 16 {
                    G::Q5_K
                } else if !falcon || use_more_bits(i_layer, n_layer) {
                    G::Q4_K
                } else {
                    G::Q3_K
                };
            } else if ftype == F::IQ3_M
                && (i_layer < n_layer / 8 || (n_expert == 8 && use_more_bits(i_layer, n_layer)))
            {
                new_type = G::Q4_K;
            } else if ftype == F::Q3_K_L {
                new_type = if falcon { G::Q4_K } else { G::Q5_K };
            } else if ftype == F::Q4_K_M {
                if falcon {
                    new_type = if i_layer < n_layer / 16 {
                        G::Q6_K
                    } else if use_more_bits(i_layer, n_layer) {
                        G::Q5_K
                    } else {
                        G::Q4_K
                    };
                } else if use_more_bits(i_layer, n_layer) {
                    new_type = G::Q6_K;
                }
            } else if i_layer < n_layer / 8
                && matches!(ftype, F::IQ4_NL | F::IQ4_XS)
                && !has_imatrix
            {
                new_type = G::Q5_K;
            } else if ftype == F::Q5_K_M && use_more_bits(i_layer, n_layer) {
                new_type = G::Q6_K;
            } else if ftype == F::Q4_K_S && !falcon && i_layer < n_layer / 8 {
                new_type = G::Q5_K;
            } else if matches!(ftype, F::Q4_0 | F::Q5_0) && has_imatrix && i_layer < n_layer / 8 {
                new_type = if ftype == F::Q4_0 { G::Q4_1 } else { G::Q5_1 };
            }
            self.i_ffn_down += 1;
        } else if cat == Category::AttnOutput {
            if !falcon {
                if n_expert == 8 {
                    if matches!(
                        ftype,
                        F::Q2_K
                            | F::IQ3_XS
                            | F::IQ3_XXS
                            | F::Q3_K_S
                            | F::Q3_K_M
                            | F::IQ4_NL
                            | F::Q4_K_S
                            | F::Q4_K_M
                            | F::IQ3_S
                            | F::IQ3_M
                            | F::IQ4_XS
                    ) {
                        new_type = G::Q5_K;
                    }
                } else {
                    match ftype {
                        F::Q2_K => new_type = G::Q3_K,
                        F::IQ3_XXS => new_type = G::IQ3_S,
                        F::Q3_K_M => new_type = G::Q4_K,
                        F::Q3_K_L => new_type = G::Q5_K,
                        F::IQ3_M => new_type = G::Q4_K,
                        _ => {}
                    }
                }
            } else if ftype == F::Q3_K_L {
                new_type = G::Q4_K;
            }
        } else if cat == Category::FfnGate || cat == Category::FfnUp {
            let counter = if cat == Category::FfnGate {
                self.i_ffn_gate
            } else {
                self.i_ffn_up
            };
            let (i_layer, n_layer) = self.layer_info(counter, t.name)?;
            if ftype == F::IQ3_XS && i_layer >= n_layer / 8 && i_layer < 7 * n_layer / 8 {
                new_type = G::IQ3_XXS;
            }
            if cat == Category::FfnGate {
                self.i_ffn_gate += 1;
            } else {
                self.i_ffn_up += 1;
            }
        }
        Ok(new_type)
    }
}

/// tensor_requires_imatrix.
fn requires_imatrix(name: &str, ty: GgmlType, ftype: Ftype) -> bool {
    if is_token_embd(name) || name == "output.weight" {
        return false;
    }
    match ty {
        GgmlType::IQ3_XXS
        | GgmlType::IQ2_XXS
        | GgmlType::IQ2_XS
        | GgmlType::IQ2_S
        | GgmlType::IQ1_M
        | GgmlType::IQ1_S => true,
        GgmlType::Q2_K => ftype == Ftype::Q2_K_S,
        _ => false,
    }
}

#[cfg(test)]
/// The whole model's decisions, visiting tensors in llama-quantize's order; results are in the
/// order of `tensors`. This is what a one-step HF->GGUF `--outtype q4_k_m` needs.
pub fn choose_types(
    model: &ModelParams,
    opts: &SelectOptions,
    tensors: &[TensorDesc],
) -> Result<Vec<TypeChoice>> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by(|&a, &b| compare_tensor_names(tensors[a].name, tensors[b].name));
    let mut selector =
        TypeSelector::new(model.clone(), opts.clone(), tensors.iter().map(|t| t.name));
    let mut out = vec![None; tensors.len()];
    for i in order {
        out[i] = Some(selector.choose_type(&tensors[i])?);
    }
    Ok(out
        .into_iter()
        .map(|c| c.expect("every tensor visited"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn use_more_bits_layers() {
        let on: Vec<i64> = (0..32).filter(|&i| use_more_bits(i, 32)).collect();
        assert_eq!(
            on,
            vec![0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]
        );
        let on: Vec<i64> = (0..28).filter(|&i| use_more_bits(i, 28)).collect();
        assert_eq!(on, vec![0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]);
    }

    #[test]
    fn order_puts_layers_numerically() {
        let mut names = vec![
            "blk.10.attn_q.weight",
            "blk.2.ffn_up.weight",
            "token_embd.weight",
            "blk.2.attn_k.weight",
            "output.weight",
        ];
        names.sort_by(|a, b| compare_tensor_names(a, b));
        assert_eq!(
            names,
            vec![
                "output.weight",
                "token_embd.weight",
                "blk.2.attn_k.weight",
                "blk.2.ffn_up.weight",
                "blk.10.attn_q.weight"
            ]
        );
    }

    fn llama(n_layer: u32) -> ModelParams {
        ModelParams {
            arch: "llama".into(),
            n_layer,
            n_expert: 0,
            n_head: 32,
            n_head_kv: 8,
        }
    }

    #[test]
    fn q4_k_m_mix_on_a_28_layer_model() {
        let mut names = vec![
            "token_embd.weight".to_string(),
            "output.weight".to_string(),
            "output_norm.weight".to_string(),
        ];
        for l in 0..28 {
            for t in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "ffn_gate",
                "ffn_up",
                "ffn_down",
                "attn_norm",
            ] {
                names.push(format!("blk.{l}.{t}.weight"));
            }
        }
        let ne2 = [1024u64, 1024];
        let ne1 = [1024u64];
        let descs: Vec<TensorDesc> = names
            .iter()
            .map(|n| TensorDesc {
                name: n,
                ne: if n.contains("norm") { &ne1 } else { &ne2 },
                ggml_type: GgmlType::F32,
            })
            .collect();
        let choices = choose_types(&llama(28), &SelectOptions::new(Ftype::Q4_K_M), &descs).unwrap();
        let ty = |n: &str| choices[names.iter().position(|x| x == n).unwrap()].ggml_type;
        assert_eq!(ty("output.weight"), GgmlType::Q6_K);
        assert_eq!(ty("token_embd.weight"), GgmlType::Q4_K); // untied
        assert_eq!(ty("output_norm.weight"), GgmlType::F32);
        for l in 0..28 {
            let more = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27].contains(&l);
            let want = if more { GgmlType::Q6_K } else { GgmlType::Q4_K };
            assert_eq!(ty(&format!("blk.{l}.attn_v.weight")), want, "attn_v {l}");
            assert_eq!(
                ty(&format!("blk.{l}.ffn_down.weight")),
                want,
                "ffn_down {l}"
            );
            assert_eq!(ty(&format!("blk.{l}.attn_q.weight")), GgmlType::Q4_K);
        }
    }

    #[test]
    fn tied_embeddings_and_shape_fallback() {
        let names = [
            "token_embd.weight",
            "blk.0.attn_q.weight",
            "blk.0.attn_v.weight",
        ];
        let ne = [2880u64, 64];
        let descs: Vec<TensorDesc> = names
            .iter()
            .map(|n| TensorDesc {
                name: n,
                ne: &ne,
                ggml_type: GgmlType::F16,
            })
            .collect();
        let c = choose_types(&llama(1), &SelectOptions::new(Ftype::Q4_K_M), &descs).unwrap();
        // tied token_embd gets the output rule; 2880 % 256 != 0 -> Q8_0 directly
        assert_eq!(c[0].ggml_type, GgmlType::Q8_0);
        assert_eq!(
            (c[1].ggml_type, c[1].fallback_from),
            (GgmlType::Q5_0, Some(GgmlType::Q4_K))
        );
        assert_eq!(
            (c[2].ggml_type, c[2].fallback_from),
            (GgmlType::Q8_0, Some(GgmlType::Q6_K))
        );
        let ne_odd = [100u64, 4];
        let d = [TensorDesc {
            name: "blk.0.attn_q.weight",
            ne: &ne_odd,
            ggml_type: GgmlType::F32,
        }];
        let c = choose_types(&llama(1), &SelectOptions::new(Ftype::Q4_K_M), &d).unwrap();
        assert_eq!(c[0].ggml_type, GgmlType::F16);
    }
}

#[cfg(test)]
mod moe_tests {
    //! A gpt-oss-120b-like MoE layout (36 layers, 64 heads / 8 KV heads, 128 experts); expected
    //! types as listed in llama.cpp's tests/snapshots/gpt-oss-120b.schema, but with ne0 = 4096:
    //! the real n_embd 2880 is no multiple of 256, which is why the schema has output.weight at
    //! q8_0 where a 4096-wide model gets q6_K (q5_K for the IQ2 mixes).
    use super::*;

    fn model() -> (ModelParams, Vec<String>) {
        let mut names = vec![
            "output.weight".to_string(),
            "output_norm.weight".into(),
            "token_embd.weight".into(),
        ];
        for l in 0..36 {
            for t in [
                "attn_q",
                "attn_k",
                "attn_v",
                "attn_output",
                "attn_norm",
                "ffn_gate_inp",
                "ffn_up_exps",
                "ffn_gate_exps",
                "ffn_down_exps",
            ] {
                names.push(format!("blk.{l}.{t}.weight"));
            }
        }
        (
            ModelParams {
                arch: "gpt-oss".into(),
                n_layer: 36,
                n_expert: 128,
                n_head: 64,
                n_head_kv: 8,
            },
            names,
        )
    }

    /// Tensors whose type differs from the ftype's default, as (name, type).
    fn overrides(ftype: Ftype) -> Vec<(String, GgmlType)> {
        let (m, names) = model();
        let (ne1, ne2, ne3) = ([4096u64], [4096u64, 4096], [4096u64, 4096, 128]);
        let descs: Vec<TensorDesc> = names
            .iter()
            .map(|n| {
                let ne: &[u64] = if n.contains("norm") {
                    &ne1
                } else if n.contains("_exps") {
                    &ne3
                } else {
                    &ne2
                };
                TensorDesc {
                    name: n,
                    ne,
                    ggml_type: GgmlType::F32,
                }
            })
            .collect();
        let choices = choose_types(&m, &SelectOptions::new(ftype), &descs).unwrap();
        names
            .iter()
            .zip(choices)
            .filter(|(n, c)| {
                c.quantizable && c.ggml_type != ftype.default_type() && !n.contains("norm")
            })
            .map(|(n, c)| (n.clone(), c.ggml_type))
            .collect()
    }

    fn expect(ftype: Ftype, want: &[(String, GgmlType)]) {
        let got = overrides(ftype);
        assert_eq!(got, want, "{ftype}");
    }

    fn per_layer(
        layers: impl Iterator<Item = i64>,
        parts: &[(&str, GgmlType)],
    ) -> Vec<(String, GgmlType)> {
        let mut v = Vec::new();
        for l in layers {
            for (p, t) in parts {
                v.push((format!("blk.{l}.{p}.weight"), *t));
            }
        }
        v
    }

    #[test]
    fn gpt_oss_like_mixes() {
        use GgmlType as G;
        let out = |t| vec![("output.weight".to_string(), t)];
        let mut q2k = out(G::Q6_K);
        // per layer in name order: attn_output, attn_v, ffn_down_exps
        q2k.extend(per_layer(
            0..36,
            &[
                ("attn_v", G::Q4_K),
                ("attn_output", G::Q3_K),
                ("ffn_down_exps", G::Q3_K),
            ],
        ));
        q2k.sort();
        let mut got = overrides(Ftype::Q2_K);
        got.sort();
        assert_eq!(got, q2k);

        let mut q4km = out(G::Q6_K);
        let more: Vec<i64> = (0..36).filter(|&i| use_more_bits(i, 36)).collect();
        assert_eq!(
            more,
            [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 31, 32, 33, 34, 35]
        );
        q4km.extend(per_layer(
            more.into_iter(),
            &[("attn_v", G::Q6_K), ("ffn_down_exps", G::Q6_K)],
        ));
        let mut got = overrides(Ftype::Q4_K_M);
        got.sort();
        q4km.sort();
        assert_eq!(got, q4km);

        let mut q4ks = out(G::Q6_K);
        q4ks.extend(per_layer(
            0..4,
            &[("attn_v", G::Q5_K), ("ffn_down_exps", G::Q5_K)],
        ));
        let mut got = overrides(Ftype::Q4_K_S);
        got.sort();
        q4ks.sort();
        assert_eq!(got, q4ks);

        let mut q3km = out(G::Q6_K);
        q3km.extend(per_layer(
            0..2,
            &[("attn_v", G::Q5_K), ("ffn_down_exps", G::Q5_K)],
        ));
        q3km.extend(per_layer(
            2..36,
            &[("attn_v", G::Q4_K), ("ffn_down_exps", G::Q4_K)],
        ));
        q3km.extend(per_layer(0..36, &[("attn_output", G::Q4_K)]));
        let mut got = overrides(Ftype::Q3_K_M);
        got.sort();
        q3km.sort();
        assert_eq!(got, q3km);

        let mut iq2 = out(G::Q5_K);
        iq2.push(("token_embd.weight".into(), G::Q2_K));
        iq2.extend(per_layer(0..36, &[("attn_v", G::Q4_K)]));
        iq2.extend(per_layer(0..4, &[("ffn_down_exps", G::Q2_K)]));
        let mut got = overrides(Ftype::IQ2_XXS);
        got.sort();
        iq2.sort();
        assert_eq!(got, iq2);

        expect(Ftype::Q6_K, &[]);
        expect(Ftype::Q8_0, &[]);
    }
}
