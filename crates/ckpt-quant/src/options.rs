//! llama-quantize's advanced options as typed values, parsed exactly as its command line parses
//! them (tools/quantize/quantize.cpp and common's `string_parse_kv_override` at 0c1e57098):
//! `--tensor-type PATTERN=TYPE`, `--override-kv KEY=TYPE:VALUE`, `--prune-layers L1,L2,…`,
//! `--include-weights` / `--exclude-weights`; and the layer renumbering of `--prune-layers`
//! (src/llama-quant.cpp's `remap_layer`).

use std::collections::BTreeMap;

use ckpt_core::{Error, GgmlType, Result};
use ckpt_gguf::GgufValue;

/// `--tensor-type PATTERN=TYPE`: tensors whose name matches the regular expression `PATTERN`
/// (searched anywhere in the name, as `std::regex_search`) get `TYPE`. The first matching rule
/// wins; a rule applies only to tensors llama-quantize may quantize, only when the target ftype
/// is a quantized one, after `--token-embedding-type` / `--output-tensor-type`, and the shape
/// fallback still applies to the type it gives.
#[derive(Clone, Debug)]
pub struct TensorTypeOverride {
    /// The pattern as given (lower-cased, as llama-quantize lower-cases it).
    pub pattern: String,
    regex: regex::Regex,
    /// The type the matching tensors get.
    pub ggml_type: GgmlType,
}

impl PartialEq for TensorTypeOverride {
    fn eq(&self, other: &Self) -> bool {
        self.pattern == other.pattern && self.ggml_type == other.ggml_type
    }
}

impl Eq for TensorTypeOverride {}

impl TensorTypeOverride {
    /// A rule from a pattern and a type. The pattern is lower-cased first (llama-quantize does).
    pub fn new(pattern: &str, ggml_type: GgmlType) -> Result<TensorTypeOverride> {
        if pattern.is_empty() {
            return Err(Error::Usage("`tensor_types`: missing tensor name".into()));
        }
        let pattern = pattern.to_ascii_lowercase();
        let regex = regex::Regex::new(&pattern).map_err(|e| {
            Error::Usage(format!(
                "`tensor_types`: '{pattern}' is not a regular expression ckpt understands: {e}"
            ))
        })?;
        Ok(TensorTypeOverride {
            pattern,
            regex,
            ggml_type,
        })
    }

    /// Parses `PATTERN=TYPE` (split at the first `=`; TYPE is any ggml type name, any case).
    pub fn parse(arg: &str) -> Result<TensorTypeOverride> {
        let Some((name, ty)) = arg.split_once('=') else {
            return Err(Error::Usage(format!(
                "`tensor_types`: malformed '{arg}' (expected PATTERN=TYPE, e.g. attn_q=q8_0)"
            )));
        };
        if name.is_empty() {
            return Err(Error::Usage(format!(
                "`tensor_types`: missing tensor name in '{arg}'"
            )));
        }
        if ty.is_empty() {
            return Err(Error::Usage(format!(
                "`tensor_types`: missing quantization type in '{arg}'"
            )));
        }
        TensorTypeOverride::new(name, parse_ggml_type(ty, "`tensor_types`")?)
    }

    /// Parses llama-quantize's `--tensor-type-file`: `PATTERN=TYPE` items separated by
    /// whitespace.
    pub fn parse_list(text: &str) -> Result<Vec<TensorTypeOverride>> {
        text.split_whitespace()
            .map(TensorTypeOverride::parse)
            .collect()
    }

    /// Whether the rule applies to a tensor name.
    pub fn matches(&self, tensor_name: &str) -> bool {
        self.regex.is_match(tensor_name)
    }
}

/// ggml's type names, any case (llama-quantize's `parse_ggml_type`).
pub fn parse_ggml_type(s: &str, flag: &str) -> Result<GgmlType> {
    GgmlType::from_name(s).ok_or_else(|| {
        let names: Vec<&str> = crate::quantizable_types().map(|t| t.name()).collect();
        Error::Usage(format!(
            "{flag}: invalid ggml type '{s}' (ckpt writes: {})",
            names.join(", ")
        ))
    })
}

/// The value of a `--override-kv`, typed as llama.cpp stores it in the output.
#[derive(Clone, Debug, PartialEq)]
pub enum KvOverrideValue {
    /// `int:N` (read like C's `atol`); written as UINT32 of `|N|` (truncated), as llama-quantize
    /// writes integer overrides.
    Int(i64),
    /// `float:X` (read like C's `atof`); written as FLOAT32.
    Float(f64),
    /// `bool:true` / `bool:false`.
    Bool(bool),
    /// `str:TEXT` (at most 127 bytes).
    Str(String),
}

/// `--override-kv KEY=TYPE:VALUE`: the KV is set in the output (removed where it was and
/// appended after `general.file_type`, as ggml's `gguf_set_val_*` does), and the model's
/// hyper-parameters the type rules read see the new value.
#[derive(Clone, Debug, PartialEq)]
pub struct KvOverride {
    /// The key (at most 127 bytes).
    pub key: String,
    /// The value.
    pub value: KvOverrideValue,
}

impl KvOverride {
    /// Parses `KEY=int:N`, `KEY=float:X`, `KEY=bool:true|false` or `KEY=str:TEXT` like
    /// llama.cpp's `string_parse_kv_override`.
    pub fn parse(arg: &str) -> Result<KvOverride> {
        let malformed = |why: &str| {
            Error::Usage(format!(
                "`kv_overrides`: malformed '{arg}': {why} (expected KEY=TYPE:VALUE with TYPE int, float, bool or str)"
            ))
        };
        let Some((key, rest)) = arg.split_once('=') else {
            return Err(malformed("no '='"));
        };
        if key.len() >= 128 {
            return Err(malformed("the key is longer than 127 bytes"));
        }
        let value = if let Some(v) = rest.strip_prefix("int:") {
            KvOverrideValue::Int(c_atol(v))
        } else if let Some(v) = rest.strip_prefix("float:") {
            KvOverrideValue::Float(c_atof(v))
        } else if let Some(v) = rest.strip_prefix("bool:") {
            match v {
                "true" => KvOverrideValue::Bool(true),
                "false" => KvOverrideValue::Bool(false),
                _ => return Err(malformed("a bool is 'true' or 'false'")),
            }
        } else if let Some(v) = rest.strip_prefix("str:") {
            if v.len() > 127 {
                return Err(malformed("the value cannot exceed 127 bytes"));
            }
            KvOverrideValue::Str(v.to_string())
        } else {
            return Err(malformed("unknown type"));
        };
        Ok(KvOverride {
            key: key.to_string(),
            value,
        })
    }

    /// The GGUF value llama-quantize writes for this override.
    pub(crate) fn gguf_value(&self) -> GgufValue {
        match &self.value {
            KvOverrideValue::Int(n) => GgufValue::U32(n.unsigned_abs() as u32),
            KvOverrideValue::Float(x) => GgufValue::F32(*x as f32),
            KvOverrideValue::Bool(b) => GgufValue::Bool(*b),
            KvOverrideValue::Str(s) => GgufValue::String(s.clone()),
        }
    }

    /// The value the model loader sees (for the hyper-parameters the type rules read).
    fn loader_value(&self) -> GgufValue {
        match &self.value {
            KvOverrideValue::Int(n) => GgufValue::I64(*n),
            KvOverrideValue::Float(x) => GgufValue::F64(*x),
            other => KvOverride {
                key: String::new(),
                value: other.clone(),
            }
            .gguf_value(),
        }
    }
}

/// The KVs as llama.cpp's model loader sees them with overrides applied (same order).
pub fn apply_overrides(
    kvs: &[(String, GgufValue)],
    overrides: &[KvOverride],
) -> Vec<(String, GgufValue)> {
    let mut out = kvs.to_vec();
    for o in overrides {
        match out.iter_mut().find(|(k, _)| *k == o.key) {
            Some(slot) => slot.1 = o.loader_value(),
            None => out.push((o.key.clone(), o.loader_value())),
        }
    }
    out
}

/// C's `atol`: leading white space, an optional sign, decimal digits; 0 without digits;
/// saturating on overflow (glibc's `strtol`).
fn c_atol(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    let mut v: i64 = 0;
    for d in digits[..end].bytes() {
        let d = (d - b'0') as i64;
        v = match v.checked_mul(10).and_then(|x| {
            if neg {
                x.checked_sub(d)
            } else {
                x.checked_add(d)
            }
        }) {
            Some(x) => x,
            None => return if neg { i64::MIN } else { i64::MAX },
        };
    }
    v
}

/// C's `atof` for decimal input: the longest prefix (after white space) that is a number; 0
/// when there is none.
fn c_atof(s: &str) -> f64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let lower = t.to_ascii_lowercase();
    for special in ["+infinity", "-infinity", "infinity", "+inf", "-inf", "inf"] {
        if lower.starts_with(special) {
            return if special.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            };
        }
    }
    for special in ["+nan", "-nan", "nan"] {
        if lower.starts_with(special) {
            return f64::NAN;
        }
    }
    // sign, digits, '.', digits, exponent: scan the longest prefix Rust also parses.
    let b = t.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
        i += 1;
    }
    let mut mantissa_digits = 0;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
        mantissa_digits += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
            mantissa_digits += 1;
        }
    }
    if mantissa_digits == 0 {
        return 0.0;
    }
    let mantissa_end = i;
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let digits_start = j;
        while j < b.len() && b[j].is_ascii_digit() {
            j += 1;
        }
        if j > digits_start {
            i = j;
        }
    }
    t[..i]
        .parse()
        .or_else(|_| t[..mantissa_end].parse())
        .unwrap_or(0.0)
}

/// `--prune-layers L1,L2,…`: the layer numbers, sorted and without duplicates.
pub fn parse_prune_layers(arg: &str) -> Result<Vec<u32>> {
    let mut out = Vec::new();
    for item in arg.split(',') {
        let id = c_stoi(item).filter(|&v| v >= 0).ok_or_else(|| {
            Error::Usage(format!(
                "`prune_layers`: invalid layer id '{item}' in '{arg}'"
            ))
        })?;
        out.push(id as u32);
    }
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// `std::stoi`: like `atol` but an error without digits or outside int.
fn c_stoi(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    if !digits.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let v = c_atol(t);
    (i32::MIN as i64..=i32::MAX as i64)
        .contains(&v)
        .then_some(v)
}

/// Which importance-matrix entries are used (`--include-weights` / `--exclude-weights`; each
/// name is a substring of the entries it selects). Entries not used count as missing, and
/// `quantize.imatrix.entries_count` counts only those used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ImatrixWeights {
    /// Every entry.
    #[default]
    All,
    /// Only entries whose name contains one of these.
    Include(Vec<String>),
    /// Every entry except those whose name contains one of these.
    Exclude(Vec<String>),
}

impl ImatrixWeights {
    /// Whether an entry is used.
    pub fn keeps(&self, entry: &str) -> bool {
        match self {
            ImatrixWeights::All => true,
            ImatrixWeights::Include(names) => names.iter().any(|n| entry.contains(n.as_str())),
            ImatrixWeights::Exclude(names) => !names.iter().any(|n| entry.contains(n.as_str())),
        }
    }
}

/// Renumbers the blocks of a model with `prune` (sorted) removed, visiting names in
/// llama-quantize's tensor order: a pruned block's tensors disappear (None), blocks before the
/// first pruned one keep their number, later ones are numbered on from there.
pub struct LayerRemap {
    prune: Vec<u32>,
    mapped: BTreeMap<u64, Option<u64>>,
    next_id: u64,
}

impl LayerRemap {
    /// A remapper for these pruned layers (sorted, deduplicated).
    pub fn new(prune: &[u32]) -> LayerRemap {
        let mut prune = prune.to_vec();
        prune.sort_unstable();
        prune.dedup();
        LayerRemap {
            prune,
            mapped: BTreeMap::new(),
            next_id: 0,
        }
    }

    /// The new name of a tensor (None: pruned). Call in tensor order.
    pub fn remap(&mut self, name: &str) -> Option<String> {
        if self.prune.is_empty() {
            return Some(name.to_string());
        }
        let Some((start, end)) = find_block_number(name) else {
            return Some(name.to_string());
        };
        let blk: u64 = name[start..end].parse().unwrap_or(u64::MAX);
        let new = *self.mapped.entry(blk).or_insert_with(|| {
            if self.prune.iter().any(|&p| p as u64 == blk) {
                None
            } else if blk < self.prune[0] as u64 {
                self.next_id = blk + 1;
                Some(blk)
            } else {
                let id = self.next_id;
                self.next_id += 1;
                Some(id)
            }
        });
        new.map(|n| format!("{}{n}{}", &name[..start], &name[end..]))
    }

    /// The block count after pruning (what llama-quantize writes as `{arch}.block_count`).
    pub fn block_count(&self) -> u64 {
        self.next_id
    }

    #[cfg(test)]
    /// The original name of a renamed tensor (for the importance matrix, which has the
    /// original names).
    pub fn original_name(&self, new_name: &str) -> String {
        if self.mapped.is_empty() {
            return new_name.to_string();
        }
        let Some((start, end)) = find_block_number(new_name) else {
            return new_name.to_string();
        };
        let blk: Option<u64> = new_name[start..end].parse().ok();
        match self.mapped.iter().find(|(_, v)| **v == blk) {
            Some((orig, _)) => format!("{}{orig}{}", &new_name[..start], &new_name[end..]),
            None => new_name.to_string(),
        }
    }
}

/// The first match of `blk\.(\d+)\.` in a name: the byte range of the digits.
fn find_block_number(name: &str) -> Option<(usize, usize)> {
    let b = name.as_bytes();
    let mut from = 0;
    while let Some(at) = name[from..].find("blk.") {
        let start = from + at + 4;
        let mut end = start;
        while end < b.len() && b[end].is_ascii_digit() {
            end += 1;
        }
        if end > start && end < b.len() && b[end] == b'.' {
            return Some((start, end));
        }
        from = from + at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_type_rules() {
        let r = TensorTypeOverride::parse("ATTN_Q=q8_0").unwrap();
        assert_eq!(r.pattern, "attn_q");
        assert_eq!(r.ggml_type, GgmlType::Q8_0);
        assert!(r.matches("blk.0.attn_q.weight"));
        assert!(!r.matches("blk.0.attn_k.weight"));
        let r = TensorTypeOverride::parse(r"blk\.[0-1]\.ffn_down=Q6_K").unwrap();
        assert!(r.matches("blk.1.ffn_down.weight") && !r.matches("blk.2.ffn_down.weight"));
        for bad in ["attn_q", "=q8_0", "attn_q=", "attn_q=q9_9"] {
            assert!(TensorTypeOverride::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            TensorTypeOverride::parse_list("a=q8_0\n b=f16 ")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn kv_overrides_like_llama_cpp() {
        let o = KvOverride::parse("llama.context_length=int:-4096").unwrap();
        assert_eq!(o.gguf_value(), GgufValue::U32(4096));
        assert_eq!(
            KvOverride::parse("a=int:12abc").unwrap().value,
            KvOverrideValue::Int(12)
        );
        assert_eq!(
            KvOverride::parse("a=int:x").unwrap().value,
            KvOverrideValue::Int(0)
        );
        assert_eq!(
            KvOverride::parse("a=float:1.5e2x").unwrap().gguf_value(),
            GgufValue::F32(150.0)
        );
        assert_eq!(
            KvOverride::parse("a=bool:true").unwrap().gguf_value(),
            GgufValue::Bool(true)
        );
        assert_eq!(
            KvOverride::parse("general.name=str:a=b")
                .unwrap()
                .gguf_value(),
            GgufValue::String("a=b".into())
        );
        for bad in [
            "novalue",
            "a=bool:yes",
            "a=u32:1",
            &format!("a=str:{}", "x".repeat(128)),
        ] {
            assert!(KvOverride::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn prune_list_and_renumbering() {
        assert_eq!(parse_prune_layers("3,1,1").unwrap(), vec![1, 3]);
        assert!(parse_prune_layers("1,-2").is_err());
        assert!(parse_prune_layers("1,,2").is_err());
        let mut r = LayerRemap::new(&[1, 3]);
        let names = [
            "output.weight",
            "blk.0.attn_q.weight",
            "blk.1.attn_q.weight",
            "blk.2.attn_q.weight",
            "blk.3.attn_q.weight",
            "blk.4.attn_q.weight",
        ];
        let got: Vec<Option<String>> = names.iter().map(|n| r.remap(n)).collect();
        assert_eq!(
            got,
            vec![
                Some("output.weight".into()),
                Some("blk.0.attn_q.weight".into()),
                None,
                Some("blk.1.attn_q.weight".into()),
                None,
                Some("blk.2.attn_q.weight".into()),
            ]
        );
        assert_eq!(r.block_count(), 3);
        assert_eq!(
            r.original_name("blk.2.attn_q.weight"),
            "blk.4.attn_q.weight"
        );
        assert_eq!(find_block_number("v.blk.12.x"), Some((6, 8)));
        assert_eq!(find_block_number("blk.x.blk.3.y"), Some((10, 11)));
    }

    #[test]
    fn imatrix_selection() {
        let inc = ImatrixWeights::Include(vec!["attn".into()]);
        assert!(inc.keeps("blk.0.attn_q.weight") && !inc.keeps("blk.0.ffn_up.weight"));
        let exc = ImatrixWeights::Exclude(vec!["attn".into()]);
        assert!(!exc.keeps("blk.0.attn_q.weight") && exc.keeps("blk.0.ffn_up.weight"));
    }
}
