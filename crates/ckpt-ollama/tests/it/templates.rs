//! Template auto-selection the way Ollama does it (Levenshtein distance < 100 to a known Jinja
//! chat template, template/index.json), on the chat templates of the shared GGUF fixtures, and
//! the layers it produces during create.

use crate::common;

use ckpt_ollama::{create, show, templates, CreateSpec, GgufHeader, ModelSource, Store};
use common::{fixture, sha256_hex, tiny_model};
use serde_json::json;

fn smol_template() -> String {
    std::fs::read_to_string(fixture("smol-chat_template.jinja")).unwrap()
}

#[test]
fn smollm_chat_template_is_chatml() {
    let (t, distance) =
        templates::detect(&smol_template()).expect("SmolLM2's template is close to a ChatML entry");
    assert_eq!(t.name, "chatml");
    assert!(distance < 100);
    assert_eq!(
        t.stop,
        Some(Some(vec![
            "<|im_start|>".to_string(),
            "<|im_end|>".to_string()
        ]))
    );
    assert_eq!(t.template, "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n");
}

#[test]
fn tiny_llama_chat_template_matches_nothing() {
    // The KV section of llama.cpp's convert_hf_to_gguf.py output for tiny-llama-spm. Its short
    // Llama-2 style template is 111 edits from the nearest index entry (zephyr), so Ollama adds
    // no template layer for it (distances cross-checked with an independent Python Levenshtein).
    let header = GgufHeader::open(&fixture("tiny-llama-spm.bf16.header.gguf")).unwrap();
    assert_eq!(header.architecture(), "llama");
    assert_eq!(header.file_type_name(), "BF16");
    let jinja = header
        .chat_template()
        .expect("the converter stores tokenizer.chat_template");
    assert!(jinja.contains("[INST]"));
    assert_eq!(templates::closest(jinja), Some(("zephyr", 111)));
    assert!(templates::detect(jinja).is_none());
    assert_eq!(templates::closest(&smol_template()), Some(("chatml", 41)));

    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let report = create(
        &store,
        "tiny-llama",
        &CreateSpec::new(ModelSource::Gguf(fixture(
            "tiny-llama-spm.bf16.header.gguf",
        ))),
    )
    .unwrap();
    assert_eq!(report.detected_template, None);
    assert_eq!(report.manifest.layers.len(), 1);
    assert_eq!(
        show(&store, "tiny-llama", false)
            .unwrap()
            .details
            .quantization_level,
        "BF16"
    );
}

#[test]
fn llama2_chat_entries_detect_llama2_chat() {
    // A Meta Llama-2-chat template differing from the index entry by a few edits.
    let index: serde_json::Value =
        serde_json::from_str(include_str!("../../templates/index.json")).unwrap();
    let entry = index
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "llama2-chat")
        .unwrap();
    let edited = entry["template"]
        .as_str()
        .unwrap()
        .replace("<<SYS>>\\n", "<<SYS>> \\n");
    let (t, d) = templates::detect(&edited).unwrap();
    assert_eq!(t.name, "llama2-chat");
    assert!(d > 0 && d < 100, "{d}");
    assert_eq!(
        t.stop,
        Some(Some(vec![
            "[INST]".into(),
            "[/INST]".into(),
            "<<SYS>>".into(),
            "<</SYS>>".into()
        ]))
    );
}

#[test]
fn named_templates_can_be_chosen() {
    let mut spec = CreateSpec::new(ModelSource::Model("x".into()));
    spec.use_named_template("llama3-instruct").unwrap();
    assert!(spec
        .template
        .as_deref()
        .unwrap()
        .contains("<|start_header_id|>"));
    assert_eq!(
        spec.parameters["stop"],
        json!(["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    );
    assert!(spec
        .use_named_template("nope")
        .unwrap_err()
        .message
        .contains("chatml"));
}

#[test]
fn unrelated_templates_do_not_match() {
    assert!(templates::detect("{{ messages[0]['content'] }} hello there, nothing like any known template at all, really; \
        this text is long enough that every known template is more than a hundred edits away from it. \
        More filler words are here to make quite sure the distance is large for all thirty-seven entries.")
        .is_none());
}

#[test]
fn create_adds_detected_template_and_stop_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("store"));
    let gguf = tiny_model(dir.path(), "smol.gguf", Some(&smol_template()), 1);
    let report = create(
        &store,
        "smol",
        &CreateSpec::new(ModelSource::Gguf(gguf.clone())),
    )
    .unwrap();
    assert_eq!(report.detected_template.as_deref(), Some("chatml"));
    let media: Vec<&str> = report
        .manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.ollama.image.model",
            "application/vnd.ollama.image.template",
            "application/vnd.ollama.image.params"
        ]
    );
    // The params blob is exactly what Ollama encodes for chatml.json's stop list.
    let params = b"{\"stop\":[\"\\u003c|im_start|\\u003e\",\"\\u003c|im_end|\\u003e\"]}\n";
    assert_eq!(
        report.manifest.layers[2].digest,
        format!("sha256:{}", sha256_hex(params))
    );
    assert!(report
        .statuses
        .contains(&"using autodetected template chatml".to_string()));
    let info = show(&store, "smol", false).unwrap();
    assert!(info
        .modelfile
        .contains("PARAMETER stop <|im_start|>\nPARAMETER stop <|im_end|>\n"));
    assert!(info.template.starts_with("{{- range .Messages }}"));

    // An explicit template replaces the detected one; a given stop replaces the detected list,
    // other detected parameters stay (Ollama merges request parameters over the old layer).
    let mut spec = CreateSpec::new(ModelSource::Gguf(gguf.clone()));
    spec.template = Some("{{ .Prompt }}".into());
    spec.parameters.insert("temperature".into(), json!(0.2));
    let report = create(&store, "smol-custom", &spec).unwrap();
    let info = show(&store, "smol-custom", false).unwrap();
    assert_eq!(info.template, "{{ .Prompt }}");
    assert_eq!(
        serde_json::Value::Object(info.parameters_map.clone()),
        json!({"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 0.2})
    );
    let media: Vec<&str> = report
        .manifest
        .layers
        .iter()
        .map(|l| l.media_type.as_str())
        .collect();
    assert_eq!(
        media,
        [
            "application/vnd.ollama.image.model",
            "application/vnd.ollama.image.template",
            "application/vnd.ollama.image.params"
        ]
    );
    spec.parameters.insert("stop".into(), json!(["<|im_end|>"]));
    create(&store, "smol-custom", &spec).unwrap();
    assert_eq!(
        show(&store, "smol-custom", false).unwrap().parameters_map["stop"],
        json!(["<|im_end|>"])
    );

    // detect_template = false: no template or params layer.
    let mut spec = CreateSpec::new(ModelSource::Gguf(gguf));
    spec.detect_template = false;
    let report = create(&store, "smol-raw", &spec).unwrap();
    assert_eq!(report.manifest.layers.len(), 1);
}
