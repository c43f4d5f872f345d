//! Ollama's named chat templates and how Ollama picks one for an imported model
//! (template/template.go `Named`, server/model.go `detectChatTemplate`): the Levenshtein distance
//! between the model's Jinja `tokenizer.chat_template` and each of the known Jinja templates in
//! `index.json`; the closest one wins if the distance is below 100.
//!
//! The files under `templates/` are Ollama's own data (template/*.gotmpl, *.json, index.json at
//! v0.33.0-rc2), embedded unchanged. Copyright (c) Ollama, MIT License: see
//! `templates/LICENSE-ollama`.

use std::sync::OnceLock;

use serde_json::Value;

const INDEX_JSON: &str = include_str!("../templates/index.json");

/// (name, Go template, parameters JSON)
const TEMPLATE_FILES: &[(&str, &str, &str)] = &[
    (
        "alfred",
        include_str!("../templates/alfred.gotmpl"),
        include_str!("../templates/alfred.json"),
    ),
    (
        "alpaca",
        include_str!("../templates/alpaca.gotmpl"),
        include_str!("../templates/alpaca.json"),
    ),
    (
        "chatml",
        include_str!("../templates/chatml.gotmpl"),
        include_str!("../templates/chatml.json"),
    ),
    (
        "chatqa",
        include_str!("../templates/chatqa.gotmpl"),
        include_str!("../templates/chatqa.json"),
    ),
    (
        "codellama-70b-instruct",
        include_str!("../templates/codellama-70b-instruct.gotmpl"),
        include_str!("../templates/codellama-70b-instruct.json"),
    ),
    (
        "command-r",
        include_str!("../templates/command-r.gotmpl"),
        include_str!("../templates/command-r.json"),
    ),
    (
        "falcon-instruct",
        include_str!("../templates/falcon-instruct.gotmpl"),
        include_str!("../templates/falcon-instruct.json"),
    ),
    (
        "gemma-instruct",
        include_str!("../templates/gemma-instruct.gotmpl"),
        include_str!("../templates/gemma-instruct.json"),
    ),
    (
        "gemma3-instruct",
        include_str!("../templates/gemma3-instruct.gotmpl"),
        include_str!("../templates/gemma3-instruct.json"),
    ),
    (
        "granite-instruct",
        include_str!("../templates/granite-instruct.gotmpl"),
        include_str!("../templates/granite-instruct.json"),
    ),
    (
        "llama2-chat",
        include_str!("../templates/llama2-chat.gotmpl"),
        include_str!("../templates/llama2-chat.json"),
    ),
    (
        "llama3-instruct",
        include_str!("../templates/llama3-instruct.gotmpl"),
        include_str!("../templates/llama3-instruct.json"),
    ),
    (
        "magicoder",
        include_str!("../templates/magicoder.gotmpl"),
        include_str!("../templates/magicoder.json"),
    ),
    (
        "mistral-instruct",
        include_str!("../templates/mistral-instruct.gotmpl"),
        include_str!("../templates/mistral-instruct.json"),
    ),
    (
        "openchat",
        include_str!("../templates/openchat.gotmpl"),
        include_str!("../templates/openchat.json"),
    ),
    (
        "phi-3",
        include_str!("../templates/phi-3.gotmpl"),
        include_str!("../templates/phi-3.json"),
    ),
    (
        "solar-instruct",
        include_str!("../templates/solar-instruct.gotmpl"),
        include_str!("../templates/solar-instruct.json"),
    ),
    (
        "starcoder2-instruct",
        include_str!("../templates/starcoder2-instruct.gotmpl"),
        include_str!("../templates/starcoder2-instruct.json"),
    ),
    (
        "vicuna",
        include_str!("../templates/vicuna.gotmpl"),
        include_str!("../templates/vicuna.json"),
    ),
    (
        "zephyr",
        include_str!("../templates/zephyr.gotmpl"),
        include_str!("../templates/zephyr.json"),
    ),
];

/// Accept the closest template only below this distance (Ollama's threshold).
const MAX_DISTANCE: usize = 100;

/// One of Ollama's named chat templates (its `template/*.gotmpl` and `*.json` files).
#[derive(Debug, Clone)]
pub struct NamedTemplate {
    /// The name (`chatml`, `llama3-instruct`, …).
    pub name: &'static str,
    /// The Go template text stored as the `template` layer (CRLF normalized to LF, as Ollama).
    pub template: String,
    /// The `stop` list from `<name>.json`: `Some` whenever that file exists (Ollama then
    /// writes a params layer, `{"stop":null}` if the file has no `stop`).
    pub stop: Option<Option<Vec<String>>>,
}

struct IndexEntry {
    jinja: Vec<char>,
    name: &'static str,
}

fn index() -> &'static [IndexEntry] {
    static INDEX: OnceLock<Vec<IndexEntry>> = OnceLock::new();
    INDEX.get_or_init(|| {
        let parsed: Value =
            serde_json::from_str(INDEX_JSON).expect("embedded index.json is valid JSON");
        let mut out = Vec::new();
        for entry in parsed.as_array().expect("index.json is an array") {
            let name = entry["name"].as_str().expect("index entry has a name");
            let name = TEMPLATE_FILES
                .iter()
                .find(|t| t.0 == name)
                .map(|t| t.0)
                .expect("index names an embedded template");
            let jinja = entry["template"]
                .as_str()
                .expect("index entry has a template")
                .chars()
                .collect();
            out.push(IndexEntry { jinja, name });
        }
        out
    })
}

/// The named template `name` (e.g. "chatml"), if Ollama ships it.
pub fn named(name: &str) -> Option<NamedTemplate> {
    let (name, gotmpl, params) = TEMPLATE_FILES.iter().find(|t| t.0 == name)?;
    let stop = serde_json::from_str::<Value>(params).ok().map(|v| {
        v.get("stop").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
    });
    Some(NamedTemplate {
        name,
        template: gotmpl.replace("\r\n", "\n"),
        stop,
    })
}

/// Names of all templates Ollama ships.
pub fn names() -> impl Iterator<Item = &'static str> {
    TEMPLATE_FILES.iter().map(|t| t.0)
}

/// Ollama's choice for a model whose GGUF `tokenizer.chat_template` is `jinja`, with the
/// distance that decided it; `None` when nothing is closer than 100 edits.
pub fn detect(jinja: &str) -> Option<(NamedTemplate, usize)> {
    let (name, distance) = closest(jinja)?;
    if distance < MAX_DISTANCE {
        named(name).map(|t| (t, distance))
    } else {
        None
    }
}

/// The nearest known template and its edit distance, whatever the distance (to explain why
/// nothing was detected). The first of equally near entries wins, as in Ollama.
pub fn closest(jinja: &str) -> Option<(&'static str, usize)> {
    let query: Vec<char> = jinja.chars().collect();
    let mut best: Option<(&IndexEntry, usize)> = None;
    for entry in index() {
        let bound = best.map(|b| b.1).unwrap_or(usize::MAX);
        // The length difference is a lower bound: skip work that cannot beat the best so far.
        if query.len().abs_diff(entry.jinja.len()) >= bound {
            continue;
        }
        let d = levenshtein(&query, &entry.jinja, bound);
        if d < bound {
            best = Some((entry, d));
        }
    }
    best.map(|(entry, d)| (entry.name, d))
}

/// Edit distance over Unicode scalar values (as agnivade/levenshtein on runes). Returns some
/// value >= `give_up` as soon as the distance is known to reach `give_up`.
pub(crate) fn levenshtein(a: &[char], b: &[char], give_up: usize) -> usize {
    if a.is_empty() {
        return b.len();
    }
    if b.is_empty() {
        return a.len();
    }
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0usize; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        let mut row_min = cur[0];
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
            row_min = row_min.min(cur[j + 1]);
        }
        if row_min >= give_up {
            return row_min;
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_index_entry_detects_its_own_name() {
        for entry in index() {
            let jinja: String = entry.jinja.iter().collect();
            let (t, d) = detect(&jinja).expect("exact template matches");
            assert_eq!(d, 0);
            // Several names share identical Jinja; the first in index order wins, as in Ollama.
            let first = index()
                .iter()
                .find(|e| e.jinja == entry.jinja)
                .unwrap()
                .name;
            assert_eq!(t.name, first);
        }
        assert_eq!(index().len(), 37);
    }

    #[test]
    fn distance() {
        let c = |s: &str| s.chars().collect::<Vec<_>>();
        assert_eq!(levenshtein(&c("kitten"), &c("sitting"), usize::MAX), 3);
        assert_eq!(levenshtein(&c(""), &c("abc"), usize::MAX), 3);
        assert_eq!(levenshtein(&c("héllo"), &c("hello"), usize::MAX), 1);
    }
}
