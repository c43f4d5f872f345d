//! JSON and `fmt` output byte-for-byte as Go writes it, because manifest digests (the model id)
//! and blob digests depend on the exact bytes: `encoding/json` escapes `<`, `>`, `&`, U+2028 and
//! U+2029, sorts map keys, and formats floats its own way; `fmt`'s `%v`/`%#v` format floats
//! like `%g`.

use serde_json::Value;

/// Encodes `value` like Go's `json.Encoder.Encode` (HTML escaping on), without the trailing
/// newline. Objects are written in their stored order: build Go *maps* with sorted keys
/// ([`sorted`]) and Go *structs* in field order.
pub fn encode(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// [`encode`] plus the newline `json.Encoder` appends.
pub fn encode_line(value: &Value) -> Vec<u8> {
    let mut s = encode(value);
    s.push('\n');
    s.into_bytes()
}

/// A copy of `value` whose objects (at every depth) have their keys sorted, as Go writes maps.
pub fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = serde_json::Map::new();
            for k in keys {
                out.insert(k.clone(), sorted(&map[k]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&json_float64(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_value(v, out);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Go's encoder writes it with HTML escaping (the default).
pub fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' | '\u{0}'..='\u{1f}' => {
                let v = c as u32;
                out.push_str("\\u");
                for shift in [12, 8, 4, 0] {
                    out.push(HEX[((v >> shift) & 0xf) as usize] as char);
                }
            }
            _ => out.push(c),
        }
    }
    out.push('"');
}

/// Shortest round-trip decimal digits and decimal exponent of a finite non-zero `f`:
/// `f = 0.d1d2d3… × 10^point`.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` is the shortest representation that round-trips, like Go's precision -1.
    let s = format!("{:e}", f.abs());
    let (mantissa, exp) = s.split_once('e').expect("LowerExp always has an exponent");
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().expect("LowerExp exponent is an integer");
    (digits, exp + 1)
}

/// `d.ddde±XX` with at least two exponent digits, as Go's `strconv` 'e' format.
fn go_exponent_form(f: f64) -> String {
    let (digits, point) = shortest_digits(f);
    let mut s = String::new();
    if f.is_sign_negative() {
        s.push('-');
    }
    s.push_str(&digits[..1]);
    if digits.len() > 1 {
        s.push('.');
        s.push_str(&digits[1..]);
    }
    let exp = point - 1;
    s.push('e');
    s.push(if exp < 0 { '-' } else { '+' });
    let abs = exp.unsigned_abs();
    if abs < 10 {
        s.push('0');
    }
    s.push_str(&abs.to_string());
    s
}

/// A float64 as `encoding/json` writes it.
pub fn json_float64(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let mut s = go_exponent_form(f);
        // Go trims `e-07` to `e-7` (but keeps `e+21`).
        let n = s.len();
        let b = s.as_bytes();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            s.remove(n - 2);
        }
        s
    } else {
        // Rust's Display is the shortest round-trip digits without an exponent, like Go's 'f'.
        let s = format!("{f}");
        if s == "-0" {
            "-0".to_string()
        } else {
            s
        }
    }
}

/// A float64 as `fmt`'s `%v` / `%g` writes it (shortest digits, exponent when < -4 or >= 6).
pub fn fmt_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    let (_, point) = shortest_digits(f);
    let exp = point - 1;
    if !(-4..6).contains(&exp) {
        go_exponent_form(f)
    } else {
        format!("{f}")
    }
}

/// A string as Go's `%#v` / `strconv.Quote` writes it.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if crate::modelfile::is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// A decoded JSON value as Go's `%v` prints an `any` holding it (float64 numbers, maps sorted).
pub fn fmt_v(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => fmt_g(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(fmt_v).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", fmt_v(&map[*k])))
                .collect();
            format!("map[{}]", parts.join(" "))
        }
    }
}

/// A decoded JSON value as Go's `%#v` prints an `any` holding it (strings quoted).
pub fn fmt_sharp_v(value: &Value) -> String {
    match value {
        Value::String(s) => go_quote(s),
        Value::Null => "<nil>".into(),
        Value::Array(items) => {
            format!(
                "[]interface {{}}{{{}}}",
                items.iter().map(fmt_sharp_v).collect::<Vec<_>>().join(", ")
            )
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", go_quote(k), fmt_sharp_v(&map[*k])))
                .collect();
            format!("map[string]interface {{}}{{{}}}", parts.join(", "))
        }
        other => fmt_v(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_like_go() {
        assert_eq!(json_float64(0.7), "0.7");
        assert_eq!(json_float64(40.0), "40");
        assert_eq!(json_float64(1e-7), "1e-7");
        assert_eq!(json_float64(1e21), "1e+21");
        assert_eq!(json_float64(123456789.0), "123456789");
        assert_eq!(fmt_g(1e6), "1e+06");
        assert_eq!(fmt_g(100000.0), "100000");
        assert_eq!(fmt_g(0.0001), "0.0001");
        assert_eq!(fmt_g(0.00001), "1e-05");
        assert_eq!(fmt_g(1.5e-7), "1.5e-07");
        assert_eq!(fmt_g(0.7), "0.7");
    }

    #[test]
    fn html_escaping_and_sorted_maps() {
        let v =
            sorted(&json!({"stop": ["<|im_start|>", "a&b"], "num_ctx": 4096, "temperature": 0.7}));
        assert_eq!(
            encode(&v),
            r#"{"num_ctx":4096,"stop":["\u003c|im_start|\u003e","a\u0026b"],"temperature":0.7}"#
        );
        assert_eq!(go_quote("a\"b\n\u{1}"), "\"a\\\"b\\n\\x01\"");
    }
}
