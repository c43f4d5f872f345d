//! Quantized checkpoints that `convert_hf_to_gguf.py` dequantizes while it reads them
//! (`ModelBase.dequant_model`), independent of the architecture:
//!
//! - `quant_method: "fp8"`: every `X_scale_inv` multiplies the tensor `X` (DeepSeek-V3, Qwen3
//!   FP8…); with `weight_block_size` `[b0, b1]` each scale covers one `b0 x b1` block of the last
//!   two dimensions (the scale holds `ceil(rows / b0) x ceil(cols / b1)` blocks, the last ones
//!   partial); without it the scale is per tensor (`[]`, `[1]`) or per channel (`[rows]`,
//!   `[rows, 1]`) and broadcasts after padding with trailing 1s, as torch does. Mistral's
//!   `qscale_weight` is the same scale under another name. `activation_scale`, `qscale_act` are
//!   unused and dropped.
//! - `quant_method: "compressed-tensors"` with format `float-quantized` (FP8): `X.weight_scale`
//!   multiplies `X.weight`, per channel or by `block_structure`.
//! - `quant_method: "modelopt"` (NVIDIA ModelOpt FP8, `quant_algo: "FP8"`): `X.weight_scale`
//!   (per tensor, or per channel) multiplies `X.weight`; `input_scale`, `k_scale`, `v_scale` are
//!   unused and dropped, and so is a `weight_scale` whose weight is absent, as the converter does.
//!   A folder whose config.json has no `quant_method` but which ships ModelOpt's
//!   `hf_quant_config.json` gets the method from its `producer.name`, like the converter. NVFP4
//!   (`quant_algo` NVFP4, or NVFP4 layers in `quantized_layers`) is refused (exit 5).
//!
//! The converter's arithmetic is torch's `weight.float() * scale.float()`: both widened exactly to
//! f32 (FP8 as [`ckpt_core::codec`] does), one f32 product each. The scales are dropped from the
//! output. A dequantized weight is an F32 tensor produced by bands of outer rows, so a band reads
//! only its rows of the weight and the scale rows that cover them (see `tensors.rs`).
//!
//! Stricter than the converter where it would silently produce garbage: an FP8 weight without
//! its scale (the converter would cast the raw FP8 values), a scale without its weight, a scale
//! whose shape does not cover the weight in whole blocks, are errors naming the tensor (exit 3);
//! a `quant_method` it does not handle is exit 5 with the supported ones listed.

use std::collections::HashMap;
use std::sync::Arc;

use ckpt_core::codec::{self, Nan};
use ckpt_core::{DType, Error, Result, Tensor};
use serde_json::Value;

use crate::hparams::Hparams;

/// What `quant_method` values ckpt dequantizes (for the error listing them).
pub const SUPPORTED: &str = "fp8 (weight_scale_inv: block-wise with weight_block_size, or per tensor / per channel), compressed-tensors (format float-quantized: FP8 weight_scale, channel or block strategy), modelopt (quant_algo FP8: per-tensor or per-channel weight_scale)";

/// How one quantization scheme names its scales.
struct Scheme {
    method: &'static str,
    /// (scale name suffix, what replaces it to name the weight)
    scales: &'static [(&'static str, &'static str)],
    /// Tensors the converter removes without using them.
    unused: &'static [&'static str],
    block: Option<Vec<u64>>,
    /// A scale whose weight is absent is dropped (ModelOpt) rather than refused.
    orphan_scales_dropped: bool,
}

/// Applies the checkpoint's `quantization_config` to `tensors` (in the converter's order): each
/// quantized weight is replaced in place by its dequantized F32 form, its scale and the unused
/// activation scales are moved to `dropped`.
pub fn apply(hp: &Hparams, tensors: Vec<Tensor>, dropped: &mut Vec<String>) -> Result<Vec<Tensor>> {
    let Some(scheme) = scheme(hp)? else {
        return Ok(tensors);
    };
    let index: HashMap<String, usize> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| (t.name.clone(), i))
        .collect();
    let mut replaced: Vec<Option<Tensor>> = vec![None; tensors.len()];
    let mut removed = vec![false; tensors.len()];
    for (si, s) in tensors.iter().enumerate() {
        if scheme.unused.iter().any(|u| s.name.ends_with(u)) {
            removed[si] = true;
            continue;
        }
        let Some(weight_name) = scheme.scales.iter().find_map(|(suffix, with)| {
            s.name
                .strip_suffix(suffix)
                .map(|base| format!("{base}{with}"))
        }) else {
            continue;
        };
        let Some(&wi) = index.get(&weight_name) else {
            if scheme.orphan_scales_dropped {
                removed[si] = true;
                continue;
            }
            return Err(invalid(
                s,
                format!(
                    "tensor '{}' is the scale of '{weight_name}' (quantization_config quant_method {}), but the checkpoint has no tensor '{weight_name}'",
                    s.name, scheme.method
                ),
            ));
        };
        if replaced[wi].is_some() {
            return Err(invalid(
                s,
                format!(
                    "tensor '{weight_name}' has more than one scale ('{}' is another)",
                    s.name
                ),
            ));
        }
        replaced[wi] = Some(dequantized(&tensors[wi], s, scheme.block.as_deref())?);
        removed[si] = true;
    }
    let mut out = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.into_iter().enumerate() {
        if removed[i] {
            dropped.push(t.name);
            continue;
        }
        match replaced[i].take() {
            Some(d) => out.push(d),
            None if codec::is_f8(t.dtype) => {
                let suffix = scheme.scales[0].0;
                let base = t.name.strip_suffix(scheme.scales[0].1).unwrap_or(&t.name);
                return Err(invalid(
                    &t,
                    format!(
                        "tensor '{}' is {} but has no scale '{base}{suffix}' (quantization_config quant_method {}: FP8 values alone are not the weights)",
                        t.name, t.dtype, scheme.method
                    ),
                ));
            }
            None => out.push(t),
        }
    }
    Ok(out)
}

/// The scheme `quantization_config` describes; None when there is nothing to dequantize.
fn scheme(hp: &Hparams) -> Result<Option<Scheme>> {
    let mut qc = match hp.get("quantization_config") {
        Some(Value::Object(qc)) => qc.clone(),
        _ => serde_json::Map::new(),
    };
    // ModelOpt's own description of the checkpoint, read when config.json's lacks the
    // algorithm or the per-layer list (the converter's `prepare_tensors`).
    let mut modelopt_algo = qc.get("quant_algo").cloned();
    let mut modelopt_layers = qc.get("quantized_layers").cloned();
    let hf_quant = hp
        .path
        .parent()
        .map(|d| d.join("hf_quant_config.json"))
        .filter(|p| p.is_file());
    let no = |v: &Option<Value>| v.as_ref().is_none_or(is_falsy);
    if let Some(file) = hf_quant.filter(|_| no(&modelopt_algo) || no(&modelopt_layers)) {
        let doc = crate::hparams::read_json_object(&file)?;
        let quant = doc.get("quantization").and_then(Value::as_object);
        if qc.get("quant_method").is_none_or(Value::is_null) {
            let producer = doc
                .get("producer")
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_lowercase();
            qc.insert("quant_method".into(), Value::String(producer));
        }
        if let Some(q) = quant {
            if let Some(a) = q.get("quant_algo") {
                modelopt_algo = Some(a.clone());
            }
            if let Some(l) = q.get("quantized_layers") {
                modelopt_layers = Some(l.clone());
            }
        }
    }
    if qc.is_empty() {
        return Ok(None);
    }
    let nvfp4 = modelopt_algo
        .as_ref()
        .and_then(Value::as_str)
        .is_some_and(|a| a == "NVFP4" || a == "W4A16_NVFP4")
        || modelopt_layers
            .as_ref()
            .and_then(Value::as_object)
            .is_some_and(|layers| {
                layers.values().any(|l| {
                    l.get("quant_algo")
                        .and_then(Value::as_str)
                        .is_some_and(|a| a.ends_with("NVFP4"))
                })
            });
    let qc = &qc;
    let bad = |msg: String| Error::invalid(&hp.path, format!("quantization_config: {msg}"));
    let unsupported = |what: String| {
        Error::Unsupported(format!(
            "{}: quantization_config {what} is not supported; supported quant_method values: {SUPPORTED}",
            hp.path.display()
        ))
    };
    let method = match qc.get("quant_method") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(m)) => m.as_str(),
        Some(other) => return Err(bad(format!("quant_method {other} is not a string"))),
    };
    if nvfp4 {
        return Err(unsupported(format!(
            "quant_method '{method}' with NVFP4 weights (quant_algo {})",
            modelopt_algo.unwrap_or(Value::Null)
        )));
    }
    let block_of = |v: Option<&Value>, key: &str| -> Result<Option<Vec<u64>>> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(a)) if !a.is_empty() => a
                .iter()
                .map(|x| x.as_u64().filter(|&n| n > 0))
                .collect::<Option<Vec<u64>>>()
                .map(Some)
                .ok_or_else(|| {
                    bad(format!(
                        "{key} {} is not a list of positive integers",
                        Value::Array(a.clone())
                    ))
                }),
            Some(other) => Err(bad(format!(
                "{key} {other} is not a list of positive integers"
            ))),
        }
    };
    match method {
        "fp8" => Ok(Some(Scheme {
            method: "fp8",
            scales: &[("_scale_inv", ""), (".qscale_weight", ".weight")],
            unused: &[".activation_scale", "_activation_scale", ".qscale_act"],
            block: block_of(qc.get("weight_block_size"), "weight_block_size")?,
            orphan_scales_dropped: false,
        })),
        "modelopt" => Ok(Some(Scheme {
            method: "modelopt",
            scales: &[(".weight_scale", ".weight")],
            unused: &[".input_scale", ".k_scale", ".v_scale"],
            block: None,
            orphan_scales_dropped: true,
        })),
        "compressed-tensors" => {
            let format = qc.get("format").and_then(Value::as_str).unwrap_or("");
            if format != "float-quantized" {
                return Err(unsupported(format!(
                    "quant_method compressed-tensors with format '{format}'"
                )));
            }
            let groups = match qc.get("config_groups") {
                Some(Value::Object(g)) if g.len() == 1 => g,
                _ => {
                    return Err(unsupported(
                        "compressed-tensors without exactly one config group".into(),
                    ))
                }
            };
            let weights = groups
                .values()
                .next()
                .and_then(|g| g.get("weights"))
                .and_then(Value::as_object)
                .ok_or_else(|| bad("config_groups has no \"weights\" object".into()))?;
            let strategy = weights
                .get("strategy")
                .and_then(Value::as_str)
                .unwrap_or("");
            if strategy != "channel" && strategy != "block" {
                return Err(unsupported(format!(
                    "compressed-tensors weights strategy '{strategy}' (the converter handles channel and block)"
                )));
            }
            if weights.get("group_size").is_some_and(|g| !g.is_null()) {
                return Err(unsupported(
                    "compressed-tensors weights with group_size".into(),
                ));
            }
            Ok(Some(Scheme {
                method: "compressed-tensors",
                scales: &[(".weight_scale", ".weight")],
                unused: &[],
                block: block_of(weights.get("block_structure"), "block_structure")?,
                orphan_scales_dropped: false,
            }))
        }
        // GPT-OSS's MXFP4 experts are repacked by the architecture, not dequantized here.
        "mxfp4" => Ok(None),
        other => Err(unsupported(format!("quant_method '{other}'"))),
    }
}

/// Python's falsiness of a JSON value (`not x`): null, false, 0, "", [] and {}.
fn is_falsy(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

fn invalid(t: &Tensor, msg: String) -> Error {
    match t.view() {
        Some(v) => Error::invalid(&v.storage.buffer.path, msg),
        None => Error::Other(msg),
    }
}

/// One dimension of the weight and how the scale follows it.
#[derive(Clone, Copy, Debug)]
struct Dim {
    /// Weight elements per scale element along this dimension (1 when not blocked).
    block: u64,
    /// The scale has size 1 here and broadcasts.
    broadcast: bool,
    /// Stride of this dimension in the scale (elements).
    stride: u64,
}

/// The dequantized F32 form of `weight` scaled by `scale`, checked now and computed by rows.
fn dequantized(weight: &Tensor, scale: &Tensor, block: Option<&[u64]>) -> Result<Tensor> {
    let decodable = |d: DType| codec::is_float(d) || codec::is_f8(d);
    if !decodable(weight.dtype) {
        return Err(invalid(
            weight,
            format!(
                "tensor '{}' is {}, which cannot be dequantized with its scale '{}' (expected F8_E4M3, F8_E5M2, BF16, F16 or F32)",
                weight.name, weight.dtype, scale.name
            ),
        ));
    }
    if !codec::is_float(scale.dtype) {
        return Err(invalid(
            scale,
            format!(
                "scale '{}' of '{}' is {} (expected F32, BF16, F16 or F64)",
                scale.name, weight.name, scale.dtype
            ),
        ));
    }
    let dims = scale_dims(&weight.shape, &scale.shape, block).map_err(|expected| {
        invalid(
            scale,
            format!(
                "scale '{}' has shape {:?}, which does not fit weight '{}' of shape {:?}: {expected}",
                scale.name, scale.shape, weight.name, weight.shape
            ),
        )
    })?;
    let shape = weight.shape.clone();
    let rows = shape.first().copied().unwrap_or(1) as usize;
    let row_len = shape.iter().skip(1).product::<u64>() as usize;
    let job = Arc::new(Job {
        weight: weight.clone(),
        scale: scale.clone(),
        dims,
        shape: shape.clone(),
        rows,
        row_len,
    });
    Ok(Tensor::from_rows(
        weight.name.clone(),
        DType::F32,
        shape,
        rows,
        row_len * 4,
        move |range, dst| job.fill(range, dst),
    ))
}

/// How each weight dimension indexes the scale, or what the scale's shape should have been.
fn scale_dims(
    weight: &[u64],
    scale: &[u64],
    block: Option<&[u64]>,
) -> std::result::Result<Vec<Dim>, String> {
    let n = weight.len();
    let mut padded: Vec<u64> = scale.to_vec();
    let mut blocks = vec![1u64; n];
    match block {
        Some(b) => {
            // The block covers the last b.len() dimensions; the scale has the weight's rank.
            if scale.len() != n || b.len() > n {
                let want: Vec<u64> = expected_blocks(weight, b);
                return Err(format!(
                    "in blocks of {b:?} (weight_block_size) the scale must have shape {want:?}"
                ));
            }
            blocks[n - b.len()..].copy_from_slice(b);
            let want = expected_blocks(weight, b);
            if padded != want {
                return Err(format!(
                    "in blocks of {b:?} (weight_block_size) the scale must have shape {want:?}"
                ));
            }
        }
        None => {
            if scale.len() > n {
                return Err(format!(
                    "a per-tensor or per-channel scale has at most {n} dimensions"
                ));
            }
            padded.resize(n, 1);
            if padded.iter().zip(weight).any(|(&s, &w)| s != 1 && s != w) {
                return Err(
                    "without weight_block_size the scale is per tensor ([] or [1]) or per channel ([rows] or [rows, 1]) and must broadcast against the weight"
                        .to_string(),
                );
            }
        }
    }
    let mut dims = vec![
        Dim {
            block: 1,
            broadcast: false,
            stride: 1,
        };
        n
    ];
    let mut stride = 1u64;
    for i in (0..n).rev() {
        dims[i] = Dim {
            block: blocks[i],
            broadcast: padded[i] == 1 && weight[i] != 1 && blocks[i] < weight[i],
            stride,
        };
        stride *= padded[i];
    }
    Ok(dims)
}

/// `ceil(weight / block)` over the blocked (last) dimensions, the weight's size elsewhere.
fn expected_blocks(weight: &[u64], b: &[u64]) -> Vec<u64> {
    let n = weight.len();
    let lead = n.saturating_sub(b.len());
    weight
        .iter()
        .enumerate()
        .map(|(i, &w)| {
            if i < lead {
                w
            } else {
                w.div_ceil(b[i - lead].max(1))
            }
        })
        .collect()
}

struct Job {
    weight: Tensor,
    scale: Tensor,
    dims: Vec<Dim>,
    shape: Vec<u64>,
    rows: usize,
    row_len: usize,
}

impl Job {
    /// Scale element index of weight index `i` along dimension `d`.
    fn sidx(&self, d: usize, i: u64) -> u64 {
        let dim = self.dims[d];
        if dim.broadcast {
            0
        } else {
            i / dim.block
        }
    }

    fn fill(&self, range: std::ops::Range<usize>, dst: &mut [u8]) -> Result<()> {
        let welem = self.weight.dtype.elem_size().unwrap_or(1);
        let wbytes = self.weight.bytes()?;
        let n = self.rows * self.row_len;
        if wbytes.len() != n * welem {
            return Err(invalid(
                &self.weight,
                format!(
                    "tensor '{}' has {} data bytes for shape {:?}",
                    self.weight.name,
                    wbytes.len(),
                    self.weight.shape
                ),
            ));
        }
        let count = range.len() * self.row_len;
        if dst.len() != count * 4 {
            return Err(Error::Other(format!(
                "tensor '{}': rows {range:?} need {} bytes, got {}",
                self.weight.name,
                count * 4,
                dst.len()
            )));
        }
        let mut values = vec![0f32; count];
        let src = &wbytes[range.start * self.row_len * welem..range.end * self.row_len * welem];
        codec::decode(self.weight.dtype, src, &mut values, Nan::Quiet)
            .map_err(|d| Error::Other(format!("cannot widen {d}")))?;

        // The scale elements these rows use: a range of the scale's outer rows (all of it for
        // a 0-d or 1-d weight).
        let selem = self.scale.dtype.elem_size().unwrap_or(4);
        let sbytes = self.scale.bytes()?;
        let (s_lo, s_hi) = if self.shape.is_empty() || range.is_empty() {
            (0, sbytes.len() / selem)
        } else {
            let stride0 = self.dims[0].stride as usize;
            let lo = self.sidx(0, range.start as u64) as usize;
            let hi = self.sidx(0, range.end as u64 - 1) as usize + 1;
            (lo * stride0, hi * stride0)
        };
        if s_hi * selem > sbytes.len() {
            return Err(invalid(
                &self.scale,
                format!(
                    "scale '{}' has {} data bytes, too few for its shape {:?}",
                    self.scale.name,
                    sbytes.len(),
                    self.scale.shape
                ),
            ));
        }
        let mut scales = vec![0f32; s_hi - s_lo];
        codec::decode(
            self.scale.dtype,
            &sbytes[s_lo * selem..s_hi * selem],
            &mut scales,
            Nan::Quiet,
        )
        .map_err(|d| Error::Other(format!("cannot widen {d}")))?;

        // Lines along the last dimension: one scale offset per line, then one per column block.
        let n_dims = self.shape.len();
        let cols = self.shape.last().copied().unwrap_or(1).max(1) as usize;
        let last = n_dims.checked_sub(1);
        let first_line = range.start * self.row_len / cols;
        let mut idx = vec![0u64; n_dims.saturating_sub(1)];
        for (li, line) in values.chunks_mut(cols).enumerate() {
            // multi-index of this line over the leading dimensions
            let mut rest = (first_line + li) as u64;
            for d in (0..idx.len()).rev() {
                idx[d] = rest % self.shape[d];
                rest /= self.shape[d];
            }
            let base: u64 = idx
                .iter()
                .enumerate()
                .map(|(d, &i)| self.sidx(d, i) * self.dims[d].stride)
                .sum();
            let base = base as usize - s_lo;
            match last {
                None => line[0] *= scales[base],
                Some(l) => {
                    let dim = self.dims[l];
                    if dim.broadcast {
                        let s = scales[base];
                        line.iter_mut().for_each(|x| *x *= s);
                    } else {
                        let block = dim.block as usize;
                        for (bi, chunk) in line.chunks_mut(block).enumerate() {
                            let s = scales[base + bi * dim.stride as usize];
                            chunk.iter_mut().for_each(|x| *x *= s);
                        }
                    }
                }
            }
        }
        for (d, x) in dst.as_chunks_mut::<4>().0.iter_mut().zip(&values) {
            *d = x.to_le_bytes();
        }
        drop(wbytes);
        drop(sbytes);
        if range.end == self.rows {
            self.weight.release();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scale_shapes() {
        // DeepSeek-V3: partial last blocks
        assert!(scale_dims(&[576, 7168], &[5, 56], Some(&[128, 128])).is_ok());
        let err = scale_dims(&[576, 7168], &[4, 56], Some(&[128, 128])).unwrap_err();
        assert!(err.contains("[5, 56]"), "{err}");
        assert!(scale_dims(&[576, 7168], &[6, 56], Some(&[128, 128])).is_err());
        assert!(scale_dims(&[576, 7168], &[5], Some(&[128, 128])).is_err());
        // stacked experts: blocks over the last two dimensions
        assert!(scale_dims(&[4, 256, 64], &[4, 2, 1], Some(&[128, 128])).is_ok());
        // per tensor and per channel
        assert!(scale_dims(&[8, 4], &[], None).is_ok());
        assert!(scale_dims(&[8, 4], &[1], None).is_ok());
        assert!(scale_dims(&[8, 4], &[8], None).is_ok());
        assert!(scale_dims(&[8, 4], &[8, 1], None).is_ok());
        assert!(scale_dims(&[8, 4], &[4], None).is_err());
        assert!(scale_dims(&[8, 4], &[8, 4, 1], None).is_err());
    }
}
