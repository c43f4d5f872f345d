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

/// Real chat templates of the mixture-of-experts families (tests/fixtures/ollama/moe-templates,
/// copied from llama-cpp-python's sources by scripts/gen-ollama-template-fixtures.py) and the
/// template Ollama picks for each: computed by that script under Ollama's rule (`Named`: the
/// first index.json entry at the smallest Levenshtein distance, if below 100) with an
/// independent Levenshtein implementation, not with ckpt. `create` on a GGUF carrying each
/// template must pick the same, with the same template layer.
#[test]
fn moe_family_chat_templates_get_the_template_ollama_picks() {
    let dir = fixture("moe-templates");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    assert_eq!(
        expected["index_sha256"],
        sha256_hex(include_bytes!("../../templates/index.json")),
        "expected.json was computed over another index.json"
    );
    let cases = expected["templates"].as_array().unwrap();
    assert!(cases.len() >= 8);
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("store"));
    let mut detected = 0;
    for (i, case) in cases.iter().enumerate() {
        let file = case["file"].as_str().unwrap();
        let jinja = std::fs::read_to_string(dir.join(file)).unwrap();
        let ollama = case["ollama"].as_str();
        let nearest = case["nearest"].as_str().unwrap();
        let distance = case["distance"].as_u64().unwrap() as usize;
        assert_eq!(
            templates::closest(&jinja),
            Some((nearest, distance)),
            "{file}: nearest index entry"
        );
        assert_eq!(
            templates::detect(&jinja).map(|(t, _)| t.name),
            ollama,
            "{file}: Ollama's choice"
        );
        let gguf = tiny_model(tmp.path(), &format!("{i}.gguf"), Some(&jinja), 1);
        let name = format!("moe-template-{i}");
        let report = create(&store, &name, &CreateSpec::new(ModelSource::Gguf(gguf))).unwrap();
        assert_eq!(
            report.detected_template.as_deref(),
            ollama,
            "{file}: create"
        );
        let info = show(&store, &name, false).unwrap();
        match ollama {
            Some(n) => {
                detected += 1;
                assert_eq!(
                    info.template,
                    templates::named(n).unwrap().template,
                    "{file}"
                );
            }
            None => assert_eq!(report.manifest.layers.len(), 1, "{file}: no template layer"),
        }
    }
    assert!(detected >= 1, "some template is one Ollama knows");
}

/// Converts any folder to a GGUF carrying the folder's `chat_template.jinja` (as llama.cpp's
/// converter, and so ckpt's, stores it).
struct JinjaFileConverter;

impl ckpt_ollama::ModelPreparer for JinjaFileConverter {
    fn convert(
        &self,
        job: ckpt_ollama::ConvertJob<'_>,
        _progress: &mut dyn FnMut(ckpt_ollama::Progress),
    ) -> Result<Vec<std::path::PathBuf>, ckpt_ollama::OllamaError> {
        let ckpt_ollama::ConvertInput::Dir(dir) = job.input else {
            panic!("expected a directory")
        };
        let jinja = std::fs::read_to_string(dir.join("chat_template.jinja")).ok();
        Ok(vec![tiny_model(
            job.out_dir,
            "converted.gguf",
            jinja.as_deref(),
            1,
        )])
    }
}

/// A folder is converted by Ollama's own converter, which stores `chat_template` of
/// `tokenizer_config.json` (a string, or the entry named "default" of a list) and never reads
/// `chat_template.jinja` (convert/tokenizer.go); its detection runs on that. ckpt's GGUF keeps
/// llama.cpp's template, but the template layer must be the one Ollama would choose.
#[test]
fn a_folder_gets_the_template_ollama_detects_from_its_tokenizer_config() {
    use ckpt_ollama::ModelPreparer as _;
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::new(tmp.path().join("store"));
    let opts = ckpt_ollama::CreateOptions {
        preparer: &JinjaFileConverter,
        ..Default::default()
    };
    let mixtral = std::fs::read_to_string(
        fixture("moe-templates").join("mistralai-Mixtral-8x7B-Instruct-v0.1.jinja"),
    )
    .unwrap();
    let cases = [
        // ChatML in chat_template.jinja only: Ollama's GGUF has no chat template.
        ("jinja-only", json!({"bos_token": "<s>"}), None),
        (
            "config-string",
            json!({"chat_template": mixtral}),
            Some("mistral-instruct"),
        ),
        (
            "config-list",
            json!({"chat_template": [
                {"name": "tool_use", "template": smol_template()},
                {"name": "default", "template": mixtral},
            ]}),
            Some("mistral-instruct"),
        ),
        (
            "config-list-without-default",
            json!({"chat_template": [{"name": "tool_use", "template": mixtral}]}),
            None,
        ),
    ];
    for (case, config, want) in cases {
        let dir = tmp.path().join(case);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("model.safetensors"), b"{}").unwrap();
        std::fs::write(dir.join("chat_template.jinja"), smol_template()).unwrap();
        std::fs::write(
            dir.join("tokenizer_config.json"),
            serde_json::to_vec(&config).unwrap(),
        )
        .unwrap();
        let report = ckpt_ollama::create_with(
            &store,
            case,
            &CreateSpec::new(ModelSource::HfDir(dir.clone())),
            &opts,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(report.detected_template.as_deref(), want, "{case}");
        // The same GGUF given directly is detected from its own chat template (ChatML).
        let gguf = JinjaFileConverter
            .convert(
                ckpt_ollama::ConvertJob {
                    input: ckpt_ollama::ConvertInput::Dir(&dir),
                    adapter: false,
                    base_model: None,
                    out_dir: tmp.path(),
                    model_name: "model",
                },
                &mut |_| {},
            )
            .unwrap()
            .remove(0);
        let report = create(
            &store,
            &format!("{case}-gguf"),
            &CreateSpec::new(ModelSource::Gguf(gguf)),
        )
        .unwrap();
        assert_eq!(
            report.detected_template.as_deref(),
            Some("chatml"),
            "{case}"
        );
    }
}
