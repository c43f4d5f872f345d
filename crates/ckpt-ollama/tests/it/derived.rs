//! Models built on other models (`FROM existing-model`), adapters, projectors, and the
//! Modelfile entry point.

use crate::common;

use ckpt_ollama::{
    create, create_from_modelfile, list, remove, show, CreateOptions, CreateSpec, ModelSource,
    Store,
};
use common::{fixture, sha256_hex, tiny_model, write_gguf, Kv};
use serde_json::json;

#[test]
fn from_an_existing_model_inherits_and_overrides_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("store"));
    let smol = std::fs::read_to_string(fixture("smol-chat_template.jinja")).unwrap();
    let gguf = tiny_model(dir.path(), "base.gguf", Some(&smol), 1);
    let base = create(&store, "base", &CreateSpec::new(ModelSource::Gguf(gguf))).unwrap();

    let mut spec = CreateSpec::new(ModelSource::Model("BASE".into()));
    spec.system = Some("derived".into());
    spec.parameters.insert("temperature".into(), json!(1.5));
    let derived = create(&store, "derived", &spec).unwrap();
    let layers = &derived.manifest.layers;
    let kinds: Vec<(&str, &str)> = layers
        .iter()
        .map(|l| (l.media_type.rsplit('.').next().unwrap(), l.from.as_str()))
        .collect();
    // Inherited layers keep their blobs and say where they come from; the params layer is
    // rewritten with the merged values, the system layer is new.
    assert_eq!(
        kinds,
        [
            ("model", "base:latest"),
            ("template", "base:latest"),
            ("system", ""),
            ("params", "")
        ]
    );
    assert_eq!(layers[0].digest, base.manifest.layers[0].digest);
    let info = show(&store, "derived", false).unwrap();
    assert_eq!(
        serde_json::Value::Object(info.parameters_map),
        json!({"stop": ["<|im_start|>", "<|im_end|>"], "temperature": 1.5})
    );
    assert_eq!(info.details.parent_model, "base:latest");
    // The base is untouched, and removing the derived model keeps every blob the base uses.
    remove(&store, "derived").unwrap();
    let base_info = show(&store, "base", false).unwrap();
    assert_eq!(
        serde_json::Value::Object(base_info.parameters_map),
        json!({"stop": ["<|im_start|>", "<|im_end|>"]})
    );
    for l in &base.manifest.layers {
        assert!(store
            .root()
            .join("blobs")
            .join(l.digest.replace(':', "-"))
            .is_file());
    }
}

#[test]
fn adapters_and_projectors_get_their_layer_types() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("store"));
    let model = tiny_model(dir.path(), "model.gguf", None, 1);
    let adapter = dir.path().join("lora.gguf");
    write_gguf(
        &adapter,
        &[
            ("general.architecture", Kv::Str("llama")),
            ("general.type", Kv::Str("adapter")),
            // llama.cpp loads only LoRA adapters; create checks for it
            ("adapter.type", Kv::Str("lora")),
        ],
        &[("blk.0.attn_q.weight.lora_a", &[8, 2])],
    );
    let mmproj = dir.path().join("mmproj.gguf");
    write_gguf(
        &mmproj,
        &[
            ("general.architecture", Kv::Str("clip")),
            ("general.type", Kv::Str("mmproj")),
            ("clip.has_vision_encoder", Kv::Bool(true)),
        ],
        &[("v.patch_embd.weight", &[4, 4])],
    );

    let mut spec = CreateSpec::new(ModelSource::Files(vec![
        ("model.gguf".into(), model.clone()),
        ("mmproj.gguf".into(), mmproj),
    ]));
    spec.adapter = Some(ModelSource::Gguf(adapter.clone()));
    let report = create(&store, "vision", &spec).unwrap();
    let kinds: Vec<(&str, &str)> = report
        .manifest
        .layers
        .iter()
        .map(|l| (l.media_type.rsplit('.').next().unwrap(), l.from.as_str()))
        .collect();
    // Files are taken in name order, as Ollama sorts the request's file names; imported files
    // carry no `from` (Ollama >= 0.30 writes none; its /save would try to pull that "model").
    assert_eq!(kinds, [("projector", ""), ("model", ""), ("adapter", "")]);
    let info = show(&store, "vision", false).unwrap();
    let blob = |p: &std::path::Path| {
        store
            .root()
            .join("blobs")
            .join(format!("sha256-{}", sha256_hex(&std::fs::read(p).unwrap())))
    };
    let lines: Vec<&str> = info.modelfile.lines().skip(4).take(3).collect();
    assert_eq!(
        lines,
        [
            format!("FROM {}", blob(&model).display()),
            format!("ADAPTER {}", blob(&adapter).display()),
            format!("FROM {}", blob(&dir.path().join("mmproj.gguf")).display()),
        ]
    );
    assert!(info.capabilities.contains(&"vision".to_string()));
    assert_eq!(
        info.projector_info.as_ref().unwrap()["general.architecture"],
        "clip"
    );
}

#[test]
fn modelfile_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("store"));
    std::fs::copy(
        fixture("tiny-llama.Q2_K.gguf"),
        dir.path().join("weights.gguf"),
    )
    .unwrap();
    let text = "# my model\nFROM ./weights.gguf\nTEMPLATE \"\"\"{{ .Prompt }}\"\"\"\nPARAMETER stop <eos>\nPARAMETER seed 1234567\nPARAMETER mirostat 1\nLICENSE \"\"\"multi\nline\"\"\"\n";
    let (report, warnings) = create_from_modelfile(
        &store,
        "from-file",
        text,
        dir.path(),
        None,
        &CreateOptions::default(),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(warnings, ["parameter mirostat is deprecated"]);
    assert_eq!(report.manifest.layers.len(), 4);
    let info = show(&store, "from-file", false).unwrap();
    // Go prints float64 1234567 with %v as 1.234567e+06 (the params JSON holds an integer).
    assert!(info.modelfile.ends_with("TEMPLATE {{ .Prompt }}\nPARAMETER seed 1.234567e+06\nPARAMETER stop <eos>\nLICENSE \"multi\nline\"\n"), "{}", info.modelfile);
    assert_eq!(
        info.parameters,
        "seed                           1.234567e+06\nstop                           \"<eos>\""
    );
    // Asking to quantize a Q2_K model fails like Ollama.
    let err = create_from_modelfile(
        &store,
        "q",
        text,
        dir.path(),
        Some("q8_0"),
        &CreateOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(
        err.message,
        "quantization is only supported for F16, BF16 and F32 models"
    );
    let err = create_from_modelfile(
        &store,
        "q",
        "FROM ./weights.gguf\nPARAMETER nope 1\n",
        dir.path(),
        None,
        &CreateOptions::default(),
        &mut |_| {},
    )
    .unwrap_err();
    assert_eq!(err.message, "unknown parameter 'nope'");
    assert_eq!(list(&store).unwrap().len(), 1);
}
