//! Go `text/template` parsing as Ollama does it, against a corpus whose expected results were
//! produced by Go's own parser (see `source` in tests/data/gotemplate-corpus.json), plus every
//! template ckpt ships.

use ckpt_ollama::gotemplate::check_ollama_template;
use ckpt_ollama::templates;
use serde_json::Value;

#[test]
fn corpus_matches_go() {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/gotemplate-corpus.json"),
    )
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let cases = doc["cases"].as_array().unwrap();
    assert!(cases.len() > 70);
    let mut failures = Vec::new();
    for case in cases {
        let template = case["template"].as_str().unwrap();
        let want = case["go_error"].as_str().unwrap();
        let got = match check_ollama_template(template) {
            Ok(()) => String::new(),
            Err(e) => e,
        };
        if got != want {
            failures.push(format!("{template:?}\n   go:   {want:?}\n   ckpt: {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn shipped_templates_parse() {
    for name in templates::names() {
        let t = templates::named(name).unwrap();
        check_ollama_template(&t.template).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}
