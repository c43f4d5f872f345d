//! Tensors the converter cuts out of one checkpoint tensor (DeepSeek's `kv_b_proj` halves,
//! Granite MoE's fused gate/up projections), produced lazily by bands of outer rows in the
//! source dtype: only byte moves, so the values are exact and the usual conversion follows.

use std::borrow::Cow;
use std::ops::Range;

use ckpt_core::{Error, Result, Tensor, TensorData};

/// Outer rows `rows` of `t` (each `row_bytes`), reading only those rows when `t` is produced
/// by rows (a dequantized FP8 weight) or mapped.
pub fn read_rows(t: &Tensor, rows: Range<usize>, row_bytes: usize) -> Result<Cow<'_, [u8]>> {
    if let TensorData::Rows(r) = &t.data {
        let mut buf = vec![0u8; rows.len() * r.row_bytes];
        (r.fill)(rows, &mut buf)?;
        return Ok(Cow::Owned(buf));
    }
    Ok(match t.bytes()? {
        Cow::Borrowed(b) => Cow::Borrowed(&b[rows.start * row_bytes..rows.end * row_bytes]),
        Cow::Owned(b) => Cow::Owned(b[rows.start * row_bytes..rows.end * row_bytes].to_vec()),
    })
}

/// torch's `t[..., range, :]` (a slice of the second-to-last dimension) of a 2-D or 3-D
/// tensor, named `name`.
pub fn slice_rows(
    t: &Tensor,
    name: String,
    range: Range<usize>,
    config: &std::path::Path,
) -> Result<Tensor> {
    let n = t.shape.len();
    let elem = t.dtype.elem_size();
    let (Some(elem), true) = (elem, n == 2 || n == 3) else {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' ({}, shape {:?}) cannot be split: expected a 2-D or 3-D tensor",
                t.name, t.dtype, t.shape
            ),
        ));
    };
    let b = t.shape[n - 2] as usize;
    let c = t.shape[n - 1] as usize;
    if range.end > b {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' has shape {:?}: dimension {} has no rows {range:?}",
                t.name,
                t.shape,
                n - 2
            ),
        ));
    }
    let mut shape = t.shape.clone();
    shape[n - 2] = range.len() as u64;
    let src = t.clone();
    let len = range.len();
    if n == 2 {
        let row = c * elem;
        let start = range.start;
        return Ok(Tensor::from_rows(
            name,
            t.dtype,
            shape,
            len,
            row,
            move |r, dst| {
                let rows = read_rows(&src, start + r.start..start + r.end, row)?;
                dst.copy_from_slice(&rows);
                Ok(())
            },
        ));
    }
    let a = t.shape[0] as usize;
    let src_row = b * c * elem;
    let (lo, hi) = (range.start * c * elem, range.end * c * elem);
    Ok(Tensor::from_rows(
        name,
        t.dtype,
        shape,
        a,
        len * c * elem,
        move |r, dst| {
            let out = hi - lo;
            for (i, outer) in r.enumerate() {
                let rows = read_rows(&src, outer..outer + 1, src_row)?;
                dst[i * out..(i + 1) * out].copy_from_slice(&rows[lo..hi]);
            }
            Ok(())
        },
    ))
}

/// A tensor whose every outer row (a whole expert) is made from the same outer row of `t` by
/// `f(src_row, dst_row)`; `inner` is the output shape after the outer dimension.
pub fn per_outer_row(
    t: &Tensor,
    name: String,
    inner: Vec<u64>,
    f: impl Fn(&[u8], &mut [u8]) + Send + Sync + 'static,
    config: &std::path::Path,
) -> Result<Tensor> {
    let (Some(elem), Some(&outer)) = (t.dtype.elem_size(), t.shape.first()) else {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' ({}, shape {:?}) cannot be rearranged",
                t.name, t.dtype, t.shape
            ),
        ));
    };
    let src_row = t.shape[1..].iter().product::<u64>() as usize * elem;
    let dst_row = inner.iter().product::<u64>() as usize * elem;
    let mut shape = vec![outer];
    shape.extend(inner);
    let src = t.clone();
    Ok(Tensor::from_rows(
        name,
        t.dtype,
        shape,
        outer as usize,
        dst_row,
        move |r, dst| {
            for (i, o) in r.enumerate() {
                let rows = read_rows(&src, o..o + 1, src_row)?;
                f(&rows, &mut dst[i * dst_row..(i + 1) * dst_row]);
            }
            Ok(())
        },
    ))
}

/// The inverse of [`slice_rows`] for a tensor cut into consecutive pieces: the parts (2-D or
/// 3-D, the same in every dimension but the second-to-last) concatenated along the
/// second-to-last dimension (torch's `cat(parts, dim=-2)`).
pub fn concat_rows_shape(parts: &[&[u64]]) -> std::result::Result<Vec<u64>, String> {
    let first = parts.first().ok_or("nothing to concatenate")?;
    let n = first.len();
    if !(n == 2 || n == 3) {
        return Err(format!("{first:?} is not a 2-D or 3-D shape"));
    }
    let mut out = first.to_vec();
    out[n - 2] = 0;
    for p in parts {
        if p.len() != n || p[..n - 2] != first[..n - 2] || p[n - 1] != first[n - 1] {
            return Err(format!(
                "shapes {parts:?} differ in more than the second-to-last dimension"
            ));
        }
        out[n - 2] += p[n - 2];
    }
    Ok(out)
}

/// Values of [`concat_rows_shape`]'s concatenation.
pub fn concat_rows(parts: &[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String> {
    let shapes: Vec<&[u64]> = parts.iter().map(|p| p.1).collect();
    let shape = concat_rows_shape(&shapes)?;
    let outer = if shape.len() == 3 {
        shape[0] as usize
    } else {
        1
    };
    let mut out = Vec::with_capacity(shape.iter().product::<u64>() as usize);
    for o in 0..outer {
        for (v, s) in parts {
            let per = (s[s.len() - 2] * s[s.len() - 1]) as usize;
            let chunk = v
                .get(o * per..(o + 1) * per)
                .ok_or("a part has fewer values than its shape")?;
            out.extend_from_slice(chunk);
        }
    }
    Ok(out)
}

/// torch's `t[..., cols].transpose(-1, -2)` of a 3-D tensor `[outer, rows, n]`: `[outer,
/// cols.len(), rows]`, every outer row (an expert) made from the same outer row of `t`.
pub fn transposed_cols(
    t: &Tensor,
    name: String,
    cols: Range<usize>,
    config: &std::path::Path,
) -> Result<Tensor> {
    let (Some(elem), &[_, rows, n]) = (t.dtype.elem_size(), &t.shape[..]) else {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' ({}, shape {:?}) cannot be transposed per expert: expected a 3-D tensor [experts, rows, columns]",
                t.name, t.dtype, t.shape
            ),
        ));
    };
    let (rows, n) = (rows as usize, n as usize);
    if cols.end > n {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' has shape {:?}: no columns {cols:?}",
                t.name, t.shape
            ),
        ));
    }
    per_outer_row(
        t,
        name,
        vec![cols.len() as u64, rows as u64],
        move |src, dst| {
            for (j, c) in cols.clone().enumerate() {
                for r in 0..rows {
                    let s = (r * n + c) * elem;
                    let d = (j * rows + r) * elem;
                    dst[d..d + elem].copy_from_slice(&src[s..s + elem]);
                }
            }
        },
        config,
    )
}

/// Experts packed in two 3-D tensors per layer, as Llama 4 and Qwen3-VL-MoE checkpoints store
/// them (the converter's `modify_tensors` for both): `gate_up` `[experts, hidden, 2 * ffn]`
/// becomes gate (the first half of the columns) and up (the second half), each transposed to
/// `[experts, ffn, hidden]`.
pub fn packed_gate_up(
    t: &Tensor,
    gate: String,
    up: String,
    config: &std::path::Path,
) -> Result<Vec<Tensor>> {
    let n = t.shape.last().copied().unwrap_or(0) as usize;
    if t.shape.len() != 3 || !n.is_multiple_of(2) {
        return Err(Error::invalid(
            config,
            format!(
                "tensor '{}' has shape {:?}, expected packed experts [experts, hidden, 2 * ffn]",
                t.name, t.shape
            ),
        ));
    }
    Ok(vec![
        transposed_cols(t, gate, 0..n / 2, config)?,
        transposed_cols(t, up, n / 2..n, config)?,
    ])
}

/// The `down` half of [`packed_gate_up`]'s layout: `[experts, ffn, hidden]` transposed to
/// `[experts, hidden, ffn]`.
pub fn packed_down(t: &Tensor, name: String, config: &std::path::Path) -> Result<Tensor> {
    let n = t.shape.last().copied().unwrap_or(0) as usize;
    transposed_cols(t, name, 0..n, config)
}

/// The inverse of the converters' cuts of packed experts (GPT-OSS's interleaved `gate_up_proj`,
/// Llama 4's halves) for the export: parts `[experts, ffn, hidden]` (weights) or `[experts,
/// ffn]` (biases), all the same shape, packed into `[experts, hidden, n * ffn]` or
/// `[experts, n * ffn]`.
pub fn packed_cols_shape(parts: &[&[u64]]) -> std::result::Result<Vec<u64>, String> {
    let first = parts.first().ok_or("nothing to pack")?;
    if parts.iter().any(|p| p != first) {
        return Err(format!("parts of shapes {parts:?} differ"));
    }
    let n = parts.len() as u64;
    match **first {
        [e, f, h] => Ok(vec![e, h, n * f]),
        [e, f] => Ok(vec![e, n * f]),
        _ => Err(format!(
            "{first:?} is not [experts, ffn, hidden] or [experts, ffn]"
        )),
    }
}

/// Packs [`packed_cols_shape`]'s parts: `part[p][e][k][h]` goes to column `col(p, k)` of row `h`
/// of expert `e` (`part[p][e][k]` to column `col(p, k)` of expert `e` for biases).
fn pack_cols(
    parts: &[(&[f32], &[u64])],
    col: impl Fn(usize, usize, usize) -> usize,
) -> std::result::Result<Vec<f32>, String> {
    let shapes: Vec<&[u64]> = parts.iter().map(|p| p.1).collect();
    packed_cols_shape(&shapes)?;
    let n = parts.len();
    let (e, f, h) = match *shapes[0] {
        [e, f, h] => (e as usize, f as usize, h as usize),
        [e, f] => (e as usize, f as usize, 1),
        _ => unreachable!("checked by packed_cols_shape"),
    };
    let mut out = vec![0f32; e * f * h * n];
    for (p, (v, _)) in parts.iter().enumerate() {
        if v.len() != e * f * h {
            return Err("a part has fewer values than its shape".into());
        }
        for x in 0..e {
            for k in 0..f {
                for r in 0..h {
                    out[(x * h + r) * n * f + col(p, k, f)] = v[(x * f + k) * h + r];
                }
            }
        }
    }
    Ok(out)
}

/// [`packed_cols_shape`]'s packing with the parts interleaved (GPT-OSS: gate the even columns,
/// up the odd ones).
pub fn interleave_cols(parts: &[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String> {
    let n = parts.len();
    pack_cols(parts, |p, k, _| k * n + p)
}

/// [`packed_cols_shape`]'s packing with the parts side by side (Llama 4: gate the first half of
/// the columns, up the second).
pub fn concat_cols(parts: &[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String> {
    pack_cols(parts, |p, k, f| p * f + k)
}

/// The inverse of [`packed_down`] for the export: one part `[experts, hidden, ffn]` back to
/// `[experts, ffn, hidden]`.
pub fn transposed_experts_shape(parts: &[&[u64]]) -> std::result::Result<Vec<u64>, String> {
    match parts {
        [[e, h, f]] => Ok(vec![*e, *f, *h]),
        _ => Err(format!("{parts:?} is not one [experts, hidden, ffn] shape")),
    }
}

/// Values of [`transposed_experts_shape`]'s transpose.
pub fn transposed_experts(parts: &[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String> {
    let [(v, s)] = parts else {
        return Err("expected one part".into());
    };
    transposed_experts_shape(&[s])?;
    let (e, h, f) = (s[0] as usize, s[1] as usize, s[2] as usize);
    if v.len() != e * h * f {
        return Err("the part has fewer values than its shape".into());
    }
    let mut out = vec![0f32; v.len()];
    for x in 0..e {
        for r in 0..h {
            for c in 0..f {
                out[(x * f + c) * h + r] = v[(x * h + r) * f + c];
            }
        }
    }
    Ok(out)
}

/// One part under another name, unchanged (tensors the converter only renamed, such as
/// GPT-OSS's `sinks` -> `sinks.weight`).
pub fn renamed_shape(parts: &[&[u64]]) -> std::result::Result<Vec<u64>, String> {
    match parts {
        [s] => Ok(s.to_vec()),
        _ => Err(format!("expected one part, got {}", parts.len())),
    }
}

/// Values of [`renamed_shape`]'s tensor.
pub fn renamed(parts: &[(&[f32], &[u64])]) -> std::result::Result<Vec<f32>, String> {
    match parts {
        [(v, _)] => Ok(v.to_vec()),
        _ => Err(format!("expected one part, got {}", parts.len())),
    }
}

/// An F32 tensor's values (tests of the split/join pairs).
#[cfg(test)]
pub(crate) fn f32_values(t: &Tensor) -> Vec<f32> {
    t.bytes()
        .unwrap()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ckpt_core::DType;

    /// slice_rows then concat_rows gives back the tensor (3-D, as Granite MoE's experts).
    #[test]
    fn concatenating_the_slices_is_the_identity() {
        let shape = vec![2u64, 6, 3];
        let values: Vec<f32> = (0..36).map(|i| i as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = Tensor::computed("t", DType::F32, shape.clone(), move || Ok(bytes.clone()));
        let cfg = std::path::Path::new("config.json");
        let a = slice_rows(&t, "a".into(), 0..2, cfg).unwrap();
        let b = slice_rows(&t, "b".into(), 2..6, cfg).unwrap();
        let f32s = f32_values;
        let (va, vb) = (f32s(&a), f32s(&b));
        assert_eq!(concat_rows_shape(&[&a.shape, &b.shape]).unwrap(), shape);
        assert_eq!(
            concat_rows(&[(&va, &a.shape), (&vb, &b.shape)]).unwrap(),
            values
        );
        assert!(concat_rows_shape(&[&[2, 3, 3], &[1, 3, 3]]).is_err());
    }

    /// The converter's cuts of packed experts (interleaved and halves), undone by the export's
    /// packing: the same values back.
    #[test]
    fn packing_the_cut_columns_is_the_identity() {
        let shape = vec![2u64, 3, 4]; // [experts, hidden, 2 * ffn]
        let values: Vec<f32> = (0..24).map(|i| i as f32).collect();
        let bytes: Vec<u8> = values.iter().flat_map(|x| x.to_le_bytes()).collect();
        let t = Tensor::computed("t", DType::F32, shape.clone(), move || Ok(bytes.clone()));
        let cfg = std::path::Path::new("config.json");
        let f32s = f32_values;
        let halves = packed_gate_up(&t, "g".into(), "u".into(), cfg).unwrap();
        let (g, u) = (f32s(&halves[0]), f32s(&halves[1]));
        assert_eq!(halves[0].shape, vec![2, 2, 3]);
        let parts = [
            (&g[..], &halves[0].shape[..]),
            (&u[..], &halves[1].shape[..]),
        ];
        assert_eq!(
            packed_cols_shape(&[&halves[0].shape, &halves[1].shape]).unwrap(),
            shape
        );
        assert_eq!(concat_cols(&parts).unwrap(), values);
        // Interleaved: gate = even columns, up = odd ones (transposed).
        let gate: Vec<f32> = (0..2)
            .flat_map(|e| {
                (0..2).flat_map(move |k| (0..3).map(move |h| (e * 12 + h * 4 + 2 * k) as f32))
            })
            .collect();
        let up: Vec<f32> = gate.iter().map(|x| x + 1.0).collect();
        let s = [2u64, 2, 3];
        assert_eq!(interleave_cols(&[(&gate, &s), (&up, &s)]).unwrap(), values);
        let down = packed_down(&t, "d".into(), cfg).unwrap();
        let d = f32s(&down);
        assert_eq!(transposed_experts_shape(&[&down.shape]).unwrap(), shape);
        assert_eq!(transposed_experts(&[(&d, &down.shape)]).unwrap(), values);
        assert!(packed_cols_shape(&[&[2, 2, 3], &[2, 1, 3]]).is_err());
    }
}
