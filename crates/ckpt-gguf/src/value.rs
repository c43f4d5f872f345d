//! GGUF metadata values: the 13 value types, typed array constructors, a short human summary for
//! `inspect` and a JSON form for `--json`.

use std::fmt::Write as _;

/// `gguf_type` in gguf.h; the numbers are what the file stores.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum GgufValueType {
    /// `GGUF_TYPE_UINT8`: unsigned 8-bit integer.
    U8 = 0,
    /// `GGUF_TYPE_INT8`: signed 8-bit integer.
    I8 = 1,
    /// `GGUF_TYPE_UINT16`: unsigned 16-bit integer.
    U16 = 2,
    /// `GGUF_TYPE_INT16`: signed 16-bit integer.
    I16 = 3,
    /// `GGUF_TYPE_UINT32`: unsigned 32-bit integer.
    U32 = 4,
    /// `GGUF_TYPE_INT32`: signed 32-bit integer.
    I32 = 5,
    /// `GGUF_TYPE_FLOAT32`: IEEE 754 single precision.
    F32 = 6,
    /// `GGUF_TYPE_BOOL`: one byte, 0 or 1.
    Bool = 7,
    /// `GGUF_TYPE_STRING`: u64 byte length, then that many bytes of UTF-8.
    String = 8,
    /// `GGUF_TYPE_ARRAY`: element type (u32), u64 count, then the elements.
    Array = 9,
    /// `GGUF_TYPE_UINT64`: unsigned 64-bit integer.
    U64 = 10,
    /// `GGUF_TYPE_INT64`: signed 64-bit integer.
    I64 = 11,
    /// `GGUF_TYPE_FLOAT64`: IEEE 754 double precision.
    F64 = 12,
}

const ALL_TYPES: [GgufValueType; 13] = [
    GgufValueType::U8,
    GgufValueType::I8,
    GgufValueType::U16,
    GgufValueType::I16,
    GgufValueType::U32,
    GgufValueType::I32,
    GgufValueType::F32,
    GgufValueType::Bool,
    GgufValueType::String,
    GgufValueType::Array,
    GgufValueType::U64,
    GgufValueType::I64,
    GgufValueType::F64,
];

impl GgufValueType {
    /// The type stored as `id`, if it is one of the 13.
    pub(crate) fn from_id(id: u32) -> Option<GgufValueType> {
        ALL_TYPES.get(id as usize).copied()
    }

    /// The number the file stores for this type.
    pub(crate) fn id(self) -> u32 {
        self as u32
    }

    /// The name gguf-py uses (`GGUFValueType.UINT8` …), also used in the fixtures' manifests.
    pub fn name(self) -> &'static str {
        match self {
            GgufValueType::U8 => "UINT8",
            GgufValueType::I8 => "INT8",
            GgufValueType::U16 => "UINT16",
            GgufValueType::I16 => "INT16",
            GgufValueType::U32 => "UINT32",
            GgufValueType::I32 => "INT32",
            GgufValueType::F32 => "FLOAT32",
            GgufValueType::Bool => "BOOL",
            GgufValueType::String => "STRING",
            GgufValueType::Array => "ARRAY",
            GgufValueType::U64 => "UINT64",
            GgufValueType::I64 => "INT64",
            GgufValueType::F64 => "FLOAT64",
        }
    }

    /// Encoded size of one value of a fixed-size type; None for strings and arrays.
    pub fn fixed_size(self) -> Option<usize> {
        match self {
            GgufValueType::U8 | GgufValueType::I8 | GgufValueType::Bool => Some(1),
            GgufValueType::U16 | GgufValueType::I16 => Some(2),
            GgufValueType::U32 | GgufValueType::I32 | GgufValueType::F32 => Some(4),
            GgufValueType::U64 | GgufValueType::I64 | GgufValueType::F64 => Some(8),
            GgufValueType::String | GgufValueType::Array => None,
        }
    }

    /// The fewest bytes one value of this type can take (a string is at least its u64 length,
    /// an array its element type and count). Used to reject absurd counts before reading on.
    pub(crate) fn min_encoded_size(self) -> usize {
        match self {
            GgufValueType::String => 8,
            GgufValueType::Array => 12,
            fixed => fixed.fixed_size().unwrap_or(1),
        }
    }
}

impl std::fmt::Display for GgufValueType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One metadata value of a GGUF KV pair (gguf-py's `GGUFValue`); the variant is the stored type.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    /// `UINT8`.
    U8(u8),
    /// `INT8`.
    I8(i8),
    /// `UINT16`.
    U16(u16),
    /// `INT16`.
    I16(i16),
    /// `UINT32` (e.g. `general.file_type`, `general.alignment`).
    U32(u32),
    /// `INT32`.
    I32(i32),
    /// `FLOAT32`.
    F32(f32),
    /// `BOOL`.
    Bool(bool),
    /// `STRING` (UTF-8).
    String(String),
    /// `ARRAY` of one element type.
    Array(GgufArray),
    /// `UINT64`.
    U64(u64),
    /// `INT64`.
    I64(i64),
    /// `FLOAT64`.
    F64(f64),
}

/// An array value: every item has type `elem_type` (checked by the writer). Arrays of arrays are
/// representable (gguf-py reads them) even though llama.cpp's reader rejects them.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufArray {
    /// The type of every item (written once, before the count).
    pub elem_type: GgufValueType,
    /// The items, in order.
    pub items: Vec<GgufValue>,
}

impl GgufArray {
    /// An array of `items`, all of type `elem_type` (not checked here; the writer checks).
    pub fn new(elem_type: GgufValueType, items: Vec<GgufValue>) -> GgufArray {
        GgufArray { elem_type, items }
    }

    /// The number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the array has no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The items as strings, when this is a string array.
    pub fn as_strings(&self) -> Option<Vec<&str>> {
        self.items.iter().map(GgufValue::as_str).collect()
    }

    /// The items as f32, when this is an f32 array.
    pub fn as_f32s(&self) -> Option<Vec<f32>> {
        self.items
            .iter()
            .map(|v| {
                if let GgufValue::F32(x) = v {
                    Some(*x)
                } else {
                    None
                }
            })
            .collect()
    }

    /// Integer items (any integer element type) widened to i64; None if any is not an integer
    /// or does not fit.
    pub fn as_i64s(&self) -> Option<Vec<i64>> {
        self.items.iter().map(GgufValue::as_i64).collect()
    }
}

macro_rules! array_constructor {
    ($fn:ident, $t:ty, $variant:ident) => {
        #[doc = concat!("An array of `", stringify!($variant), "` values.")]
        pub fn $fn(values: impl IntoIterator<Item = $t>) -> GgufValue {
            GgufValue::Array(GgufArray {
                elem_type: GgufValueType::$variant,
                items: values.into_iter().map(GgufValue::$variant).collect(),
            })
        }
    };
}

impl GgufValue {
    /// The stored type of this value.
    pub fn value_type(&self) -> GgufValueType {
        match self {
            GgufValue::U8(_) => GgufValueType::U8,
            GgufValue::I8(_) => GgufValueType::I8,
            GgufValue::U16(_) => GgufValueType::U16,
            GgufValue::I16(_) => GgufValueType::I16,
            GgufValue::U32(_) => GgufValueType::U32,
            GgufValue::I32(_) => GgufValueType::I32,
            GgufValue::F32(_) => GgufValueType::F32,
            GgufValue::Bool(_) => GgufValueType::Bool,
            GgufValue::String(_) => GgufValueType::String,
            GgufValue::Array(_) => GgufValueType::Array,
            GgufValue::U64(_) => GgufValueType::U64,
            GgufValue::I64(_) => GgufValueType::I64,
            GgufValue::F64(_) => GgufValueType::F64,
        }
    }

    /// A `STRING` value.
    pub fn string(s: impl Into<String>) -> GgufValue {
        GgufValue::String(s.into())
    }

    /// An array of `STRING` values.
    pub fn string_array<S: Into<String>>(values: impl IntoIterator<Item = S>) -> GgufValue {
        GgufValue::Array(GgufArray {
            elem_type: GgufValueType::String,
            items: values
                .into_iter()
                .map(|s| GgufValue::String(s.into()))
                .collect(),
        })
    }

    array_constructor!(u8_array, u8, U8);
    array_constructor!(i8_array, i8, I8);
    array_constructor!(u16_array, u16, U16);
    array_constructor!(i16_array, i16, I16);
    array_constructor!(u32_array, u32, U32);
    array_constructor!(i32_array, i32, I32);
    array_constructor!(f32_array, f32, F32);
    array_constructor!(bool_array, bool, Bool);
    array_constructor!(u64_array, u64, U64);
    array_constructor!(i64_array, i64, I64);
    array_constructor!(f64_array, f64, F64);

    /// The text of a `STRING` value; `None` for any other type.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The array of an `ARRAY` value; `None` for any other type.
    pub fn as_array(&self) -> Option<&GgufArray> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The value of a `BOOL`; `None` for any other type (numbers are not converted).
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            GgufValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Any integer type widened to i64 (None for floats, or a u64 above i64::MAX).
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            GgufValue::U8(x) => x as i64,
            GgufValue::I8(x) => x as i64,
            GgufValue::U16(x) => x as i64,
            GgufValue::I16(x) => x as i64,
            GgufValue::U32(x) => x as i64,
            GgufValue::I32(x) => x as i64,
            GgufValue::U64(x) => i64::try_from(x).ok()?,
            GgufValue::I64(x) => x,
            _ => return None,
        })
    }

    /// Any non-negative integer widened to u64.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U64(x) => Some(x),
            _ => self.as_i64().and_then(|x| u64::try_from(x).ok()),
        }
    }

    /// Any number as f64 (integers too).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(x) => Some(x as f64),
            GgufValue::F64(x) => Some(x),
            GgufValue::U64(x) => Some(x as f64),
            _ => self.as_i64().map(|x| x as f64),
        }
    }
}

impl From<&str> for GgufValue {
    fn from(s: &str) -> GgufValue {
        GgufValue::String(s.to_string())
    }
}
impl From<String> for GgufValue {
    fn from(s: String) -> GgufValue {
        GgufValue::String(s)
    }
}

/// Longest string shown in full by [`describe_value`] (longer ones are cut, with their length).
const DESCRIBE_STRING_CHARS: usize = 200;

/// A one-line summary for humans: scalars as written, strings quoted and escaped, long arrays cut
/// after `max_items` items with the total count, e.g. `["<unk>", "<s>", … 32000 items]`.
/// `usize::MAX` shows everything, strings included.
pub fn describe_value(v: &GgufValue, max_items: usize) -> String {
    let mut out = String::new();
    describe_into(&mut out, v, max_items);
    out
}

fn describe_into(out: &mut String, v: &GgufValue, max_items: usize) {
    match v {
        GgufValue::U8(x) => write!(out, "{x}"),
        GgufValue::I8(x) => write!(out, "{x}"),
        GgufValue::U16(x) => write!(out, "{x}"),
        GgufValue::I16(x) => write!(out, "{x}"),
        GgufValue::U32(x) => write!(out, "{x}"),
        GgufValue::I32(x) => write!(out, "{x}"),
        GgufValue::U64(x) => write!(out, "{x}"),
        GgufValue::I64(x) => write!(out, "{x}"),
        GgufValue::F32(x) => write!(out, "{}", float_text(x.is_nan(), format!("{x:?}"))),
        GgufValue::F64(x) => write!(out, "{}", float_text(x.is_nan(), format!("{x:?}"))),
        GgufValue::Bool(b) => write!(out, "{b}"),
        GgufValue::String(s) => {
            let chars = s.chars().count();
            if max_items != usize::MAX && chars > DESCRIBE_STRING_CHARS {
                let head: String = s.chars().take(DESCRIBE_STRING_CHARS).collect();
                write!(out, "\"{}\"… ({chars} chars)", escape(&head))
            } else {
                write!(out, "\"{}\"", escape(s))
            }
        }
        GgufValue::Array(a) => {
            out.push('[');
            for (i, item) in a.items.iter().take(max_items).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                describe_into(out, item, max_items);
            }
            if a.items.len() > max_items {
                if max_items > 0 {
                    out.push_str(", ");
                }
                write!(out, "… {} items", a.items.len()).unwrap();
            }
            out.push(']');
            Ok(())
        }
    }
    .expect("writing to a String cannot fail");
}

/// Shortest round-trip digits, exponent form for very small or large magnitudes (`1e-5`),
/// `inf`/`-inf`, and NaN lower-case like numpy.
fn float_text(is_nan: bool, debug_form: String) -> String {
    if is_nan {
        "nan".to_string()
    } else {
        debug_form
    }
}

/// Quotes, backslashes and control characters escaped; everything else (any script, emoji,
/// the SentencePiece `▁`) shown as is.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// The value as JSON: numbers as numbers (f32 widened exactly to f64), NaN and ±infinity as the
/// strings `"nan"`, `"inf"`, `"-inf"` (JSON has no such numbers), arrays as JSON arrays.
pub fn to_json(v: &GgufValue) -> serde_json::Value {
    use serde_json::Value as J;
    let float = |x: f64| match serde_json::Number::from_f64(x) {
        Some(n) => J::Number(n),
        None if x.is_nan() => J::String("nan".into()),
        None if x > 0.0 => J::String("inf".into()),
        None => J::String("-inf".into()),
    };
    match v {
        GgufValue::U8(x) => J::from(*x),
        GgufValue::I8(x) => J::from(*x),
        GgufValue::U16(x) => J::from(*x),
        GgufValue::I16(x) => J::from(*x),
        GgufValue::U32(x) => J::from(*x),
        GgufValue::I32(x) => J::from(*x),
        GgufValue::U64(x) => J::from(*x),
        GgufValue::I64(x) => J::from(*x),
        GgufValue::F32(x) => float(*x as f64),
        GgufValue::F64(x) => float(*x),
        GgufValue::Bool(b) => J::Bool(*b),
        GgufValue::String(s) => J::String(s.clone()),
        GgufValue::Array(a) => J::Array(a.items.iter().map(to_json).collect()),
    }
}

/// Like [`to_json`] but with the type spelled out: `{"type": "ARRAY", "element_type": "STRING",
/// "count": 3, "value": [...]}`; arrays longer than `max_items` keep only their first items.
pub fn to_typed_json(v: &GgufValue, max_items: usize) -> serde_json::Value {
    let mut obj = serde_json::Map::new();
    obj.insert("type".into(), v.value_type().name().into());
    match v {
        GgufValue::Array(a) => {
            obj.insert("element_type".into(), a.elem_type.name().into());
            obj.insert("count".into(), a.items.len().into());
            let shown = a.items.iter().take(max_items).map(|item| match item {
                GgufValue::Array(_) => to_typed_json(item, max_items),
                other => to_json(other),
            });
            obj.insert("value".into(), serde_json::Value::Array(shown.collect()));
            if a.items.len() > max_items {
                obj.insert("truncated".into(), true.into());
            }
        }
        other => {
            obj.insert("value".into(), to_json(other));
        }
    }
    serde_json::Value::Object(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_cuts_long_arrays() {
        let v = GgufValue::string_array((0..32000).map(|i| format!("t{i}")));
        assert_eq!(describe_value(&v, 2), "[\"t0\", \"t1\", … 32000 items]");
        assert_eq!(
            describe_value(&GgufValue::f32_array([1.5, f32::NAN]), 8),
            "[1.5, nan]"
        );
        assert_eq!(
            describe_value(&GgufValue::F32(f32::NEG_INFINITY), 8),
            "-inf"
        );
        assert_eq!(
            describe_value(&GgufValue::string("a\"\n'▁\u{1}"), 8),
            "\"a\\\"\\n'▁\\u{1}\""
        );
        assert_eq!(describe_value(&GgufValue::F32(1e-5), 8), "1e-5");
        assert_eq!(describe_value(&GgufValue::F32(100000.0), 8), "100000.0");
        assert_eq!(describe_value(&GgufValue::F64(0.1), 8), "0.1");
    }

    #[test]
    fn json_special_floats() {
        assert_eq!(
            to_json(&GgufValue::F32(f32::INFINITY)),
            serde_json::json!("inf")
        );
        assert_eq!(
            to_json(&GgufValue::F32(0.1)),
            serde_json::json!(0.10000000149011612)
        );
        assert_eq!(
            to_json(&GgufValue::U64(u64::MAX)),
            serde_json::json!(u64::MAX)
        );
        let t = to_typed_json(&GgufValue::i32_array([1, 2, 3]), 2);
        assert_eq!(t["count"], 3);
        assert_eq!(t["value"], serde_json::json!([1, 2]));
    }
}
