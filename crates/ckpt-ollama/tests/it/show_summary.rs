//! `ckpt ollama show NAME` prints what `ollama show` prints: each case gives `format_show` the
//! same reply as the Go test it is captured from (tests/data/ollama-show-summary.json) and
//! compares the text byte for byte.

use std::time::SystemTime;

use ckpt_ollama::{format_show, ModelDetails, ModelName, ShowInfo};
use serde_json::{json, Map, Value};

fn expected(name: &str) -> String {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/ollama-show-summary.json"),
    )
    .unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    doc["expect"][name].as_str().unwrap().to_string()
}

fn info(size: &str) -> ShowInfo {
    ShowInfo {
        name: ModelName::parse("test").unwrap(),
        modelfile: String::new(),
        parameters: String::new(),
        parameters_map: Map::new(),
        template: String::new(),
        system: String::new(),
        license: String::new(),
        licenses: Vec::new(),
        messages: Vec::new(),
        renderer: String::new(),
        parser: String::new(),
        requires: String::new(),
        details: ModelDetails {
            family: "test".into(),
            parameter_size: size.into(),
            quantization_level: "FP16".into(),
            ..Default::default()
        },
        capabilities: Vec::new(),
        modified: SystemTime::UNIX_EPOCH,
        model_info: Map::new(),
        projector_info: None,
        tensors: Vec::new(),
    }
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn bare_details() {
    assert_eq!(format_show(&info("7B"), false), expected("bare details"));
}

#[test]
fn bare_model_info() {
    let mut i = info("7B");
    i.model_info = map(json!({
        "general.architecture": "test",
        "general.parameter_count": 7_000_000_000u64,
        "test.context_length": 0,
        "test.embedding_length": 0,
    }));
    assert_eq!(format_show(&i, false), expected("bare model info"));
}

#[test]
fn verbose_model() {
    let mut i = info("8B");
    i.parameters = "\n\t\t\tstop up".into();
    i.model_info = map(json!({
        "general.architecture": "test",
        "general.parameter_count": 8_000_000_000u64,
        "some.true_bool": true,
        "some.false_bool": false,
        "test.context_length": 1000,
        "test.embedding_length": 11434,
    }));
    i.tensors = vec![
        json!({"name": "blk.0.attn_k.weight", "type": "BF16", "shape": [42, 3117]}),
        json!({"name": "blk.0.attn_q.weight", "type": "FP16", "shape": [3117, 42]}),
    ];
    assert_eq!(format_show(&i, true), expected("verbose model"));
}

#[test]
fn parameters() {
    let mut i = info("7B");
    i.parameters = "\n\t\t\tstop never\n\t\t\tstop gonna\n\t\t\tstop give\n\t\t\tstop you\n\t\t\tstop up\n\t\t\ttemperature 99".into();
    assert_eq!(format_show(&i, false), expected("parameters"));
}

#[test]
fn projector_info() {
    let mut i = info("7B");
    i.projector_info = Some(map(json!({
        "general.architecture": "clip",
        "general.parameter_count": 133_700_000u64,
        "clip.vision.embedding_length": 0,
        "clip.vision.projection_dim": 0,
    })));
    assert_eq!(format_show(&i, false), expected("project info"));
}

#[test]
fn system_and_license() {
    let mut i = info("7B");
    i.system = "You are a pirate!\nAhoy, matey!\nWeigh anchor!\n\t\t\t".into();
    assert_eq!(format_show(&i, false), expected("system"));
    let mut i = info("7B");
    i.license = "MIT License\nCopyright (c) Ollama\n".into();
    assert_eq!(format_show(&i, false), expected("license"));
}

#[test]
fn capabilities() {
    let mut i = info("7B");
    i.capabilities = vec!["vision".into(), "tools".into()];
    assert_eq!(format_show(&i, false), expected("capabilities"));
}
