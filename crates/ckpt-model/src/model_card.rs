//! The YAML front matter of a model card (`README.md`), read just far enough for the keys the
//! converter takes from it: top-level scalars and lists of scalars (block `- item` or inline
//! `[a, b]`). Nested mappings are reported as not understood instead of being guessed at.

use serde_json::{Map, Value};

pub struct FrontMatter {
    pub values: Map<String, Value>,
    /// Top-level keys whose value is a nested structure this reader does not interpret.
    pub skipped: Vec<String>,
}

/// `None` when the card has no front matter (first line is not `---`).
pub fn parse(card: &str) -> Option<FrontMatter> {
    let mut lines = card.lines();
    if lines.next() != Some("---") {
        return None;
    }
    // The converter's fixes: quote the Norway problem, tabs to two spaces.
    let body: Vec<String> = lines
        .take_while(|l| *l != "---")
        .map(|l| l.replace('\t', "  "))
        .collect();
    let mut fm = FrontMatter {
        values: Map::new(),
        skipped: Vec::new(),
    };
    let mut i = 0;
    while i < body.len() {
        let line = &body[i];
        i += 1;
        if line.trim().is_empty()
            || line.trim_start().starts_with('#')
            || line.starts_with(' ')
            || line.starts_with('-')
        {
            continue;
        }
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let key = key.trim().trim_matches('"').trim_matches('\'').to_string();
        let rest = strip_comment(rest).trim();
        if !rest.is_empty() {
            match inline(rest) {
                Some(v) => {
                    fm.values.insert(key, v);
                }
                None => fm.skipped.push(key),
            }
            continue;
        }
        // A block: list items, or a nested mapping we do not interpret.
        let mut items = Vec::new();
        let mut nested = false;
        while i < body.len()
            && (body[i].starts_with(' ') || body[i].starts_with('-') || body[i].trim().is_empty())
        {
            let l = body[i].trim();
            i += 1;
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            match l.strip_prefix("- ").or_else(|| (l == "-").then_some("")) {
                Some(item) if !nested && !looks_like_mapping(item) => {
                    items.push(scalar(strip_comment(item).trim()))
                }
                _ => nested = true,
            }
        }
        if nested {
            fm.skipped.push(key);
        } else if items.is_empty() {
            fm.values.insert(key, Value::Null);
        } else {
            fm.values.insert(key, Value::Array(items));
        }
    }
    Some(fm)
}

fn strip_comment(s: &str) -> &str {
    match s.find(" #") {
        Some(i) if !s.trim_start().starts_with(['"', '\'']) => &s[..i],
        _ => s,
    }
}

fn looks_like_mapping(item: &str) -> bool {
    let t = item.trim();
    !(t.starts_with('"') || t.starts_with('\'')) && t.contains(": ")
}

fn inline(s: &str) -> Option<Value> {
    if let Some(inner) = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        if inner.contains(['[', '{']) {
            return None;
        }
        let items = inner
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(scalar)
            .collect();
        return Some(Value::Array(items));
    }
    if s.starts_with('{')
        || s.starts_with('|')
        || s.starts_with('>')
        || s.starts_with('&')
        || s.starts_with('*')
    {
        return None;
    }
    Some(scalar(s))
}

/// A YAML 1.1 plain or quoted scalar the way PyYAML's safe_load reads the common cases.
fn scalar(s: &str) -> Value {
    if s.len() >= 2
        && ((s.starts_with('"') && s.ends_with('"')) || (s.starts_with('\'') && s.ends_with('\'')))
    {
        return Value::String(s[1..s.len() - 1].to_string());
    }
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "false" | "False" | "FALSE" | "No" | "NO" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        // "- no" is quoted by the converter before parsing (the Norway problem), so it stays "no".
        "no" => return Value::String("no".into()),
        _ => {}
    }
    if let Ok(i) = s.parse::<i64>() {
        return Value::from(i);
    }
    if s.contains('.') || s.contains('e') {
        if let Ok(f) = s.parse::<f64>() {
            if s.chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == '-' || c == '+' || c == '.')
            {
                return Value::from(f);
            }
        }
    }
    Value::String(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_front_matter() {
        let card = "---\nlicense: apache-2.0\nlanguage:\n- en\n- no\ntags: [text-generation, 'llama']\nbase_model: meta-llama/Llama-2-7b\nmodel-index:\n  - name: x\n    results: []\npipeline_tag: text-generation # why\n---\n# Title\n";
        let fm = parse(card).unwrap();
        assert_eq!(fm.values["license"], "apache-2.0");
        assert_eq!(fm.values["language"], serde_json::json!(["en", "no"]));
        assert_eq!(
            fm.values["tags"],
            serde_json::json!(["text-generation", "llama"])
        );
        assert_eq!(fm.values["base_model"], "meta-llama/Llama-2-7b");
        assert_eq!(fm.values["pipeline_tag"], "text-generation");
        assert_eq!(fm.skipped, vec!["model-index"]);
        assert!(parse("# no front matter").is_none());
    }
}
