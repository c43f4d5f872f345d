//! Store layout and exact bytes of blobs, config and manifest, checked against the formats
//! Ollama's Go code writes (manifest/manifest.go, manifest/layer.go, types/model/config.go,
//! server/create.go at v0.33.0-rc2), plus list/show/rm/cp behaviour.

use crate::common;

use std::fs;
use std::path::Path;

use ckpt_ollama::{
    copy, create, create_with, list, remove, show, ConvertInput, ConvertJob, CreateOptions,
    CreateSpec, Message, ModelPreparer, ModelSource, OllamaError, Progress, QuantizeLevel, Store,
};
use common::{fixture, sha256_hex, tiny_model};
use serde_json::json;

fn blob_bytes(store: &Store, digest: &str) -> Vec<u8> {
    fs::read(store.root().join("blobs").join(digest.replace(':', "-"))).unwrap()
}

fn blob_names(store: &Store) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(store.root().join("blobs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn full_spec(gguf: &Path) -> CreateSpec {
    let mut spec = CreateSpec::new(ModelSource::Gguf(gguf.to_path_buf()));
    spec.template = Some(
        "{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>".into(),
    );
    spec.system = Some("You are terse.".into());
    spec.licenses = vec!["MIT <license> & more".into()];
    spec.parameters.insert("temperature".into(), json!(0.7));
    spec.parameters
        .insert("stop".into(), json!(["<|im_end|>", "</s>"]));
    spec.parameters.insert("num_ctx".into(), json!(4096));
    spec.messages = vec![
        Message::new("user", "hi"),
        Message::new("assistant", "hello"),
    ];
    spec
}

#[test]
fn layout_config_and_manifest_bytes_match_ollama() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("models"));
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    let report = create(&store, "tiny", &full_spec(&gguf)).unwrap();

    // Blob file names are the SHA-256 of their bytes; no temporaries are left behind.
    for name in blob_names(&store) {
        let hex = name
            .strip_prefix("sha256-")
            .unwrap_or_else(|| panic!("unexpected file {name} in blobs/"));
        let data = fs::read(store.root().join("blobs").join(&name)).unwrap();
        assert_eq!(sha256_hex(&data), hex);
    }
    let manifest_path = store
        .root()
        .join("manifests/registry.ollama.ai/library/tiny/latest");
    let manifest_bytes = fs::read(&manifest_path).unwrap();
    assert_eq!(report.manifest_digest, sha256_hex(&manifest_bytes));

    // The config blob, field for field in ConfigV2 order; 18688 parameters -> "19K"; file_type 10.
    let config = br#"{"model_format":"gguf","model_family":"llama","model_families":["llama"],"model_type":"19K","file_type":"Q2_K","architecture":"amd64","os":"linux"}
"#;
    // Text layers are stored raw; params and messages as Go's json.Encoder writes them.
    let template =
        b"{{ if .System }}<|system|>{{ .System }}{{ end }}<|user|>{{ .Prompt }}<|assistant|>";
    let params = b"{\"num_ctx\":4096,\"stop\":[\"\\u003c|im_end|\\u003e\",\"\\u003c/s\\u003e\"],\"temperature\":0.7}\n";
    let messages = b"[{\"role\":\"user\",\"content\":\"hi\"},{\"role\":\"assistant\",\"content\":\"hello\"}]\n";
    let model = fs::read(&gguf).unwrap();
    let d = |b: &[u8]| format!("sha256:{}", sha256_hex(b));
    let expected = format!(
        concat!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","#,
            r#""config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{cfg}","size":{cfg_n}}},"#,
            r#""layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"{model}","size":{model_n}}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.template","digest":"{tpl}","size":{tpl_n}}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.system","digest":"{sys}","size":14}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.license","digest":"{lic}","size":20}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.params","digest":"{par}","size":{par_n}}},"#,
            r#"{{"mediaType":"application/vnd.ollama.image.messages","digest":"{msg}","size":{msg_n}}}]}}"#,
            "\n"
        ),
        cfg = d(config),
        cfg_n = config.len(),
        model = d(&model),
        model_n = model.len(),
        tpl = d(template),
        tpl_n = template.len(),
        sys = d(b"You are terse."),
        lic = d(b"MIT <license> & more"),
        par = d(params),
        par_n = params.len(),
        msg = d(messages),
        msg_n = messages.len(),
    );
    assert_eq!(String::from_utf8(manifest_bytes).unwrap(), expected);
    assert_eq!(blob_bytes(&store, &d(config)), config);
    assert_eq!(blob_bytes(&store, &d(params)), params);
    assert_eq!(blob_bytes(&store, &d(messages)), messages);
    assert_eq!(blob_bytes(&store, &d(&model)), model);
    assert_eq!(blob_names(&store).len(), 7);
    assert_eq!(
        report.statuses,
        vec![
            "parsing GGUF".to_string(),
            // a file copied into a fresh store is a new layer, not an "existing" one
            format!("creating new layer {}", d(&model)),
            format!("creating new layer {}", d(template)),
            format!("creating new layer {}", d(b"You are terse.")),
            format!("creating new layer {}", d(b"MIT <license> & more")),
            format!("creating new layer {}", d(params)),
            format!("creating new layer {}", d(messages)),
            "writing manifest".to_string(),
            "success".to_string(),
        ]
    );
}

#[test]
fn legacy_config_with_rootfs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    let mut spec = CreateSpec::new(ModelSource::Gguf(gguf.clone()));
    spec.system = Some("s".into());
    let opts = CreateOptions {
        config_rootfs: true,
        ..CreateOptions::default()
    };
    let report = create_with(&store, "legacy", &spec, &opts, &mut |_| {}).unwrap();
    let model = format!("sha256:{}", sha256_hex(&fs::read(&gguf).unwrap()));
    let system = format!("sha256:{}", sha256_hex(b"s"));
    let expected = format!(
        "{{\"model_format\":\"gguf\",\"model_family\":\"llama\",\"model_families\":[\"llama\"],\"model_type\":\"19K\",\"file_type\":\"Q2_K\",\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"{model}\",\"{system}\"]}}}}\n"
    );
    assert_eq!(
        String::from_utf8(blob_bytes(&store, &report.manifest.config.digest)).unwrap(),
        expected
    );
}

#[test]
fn identical_layers_are_reused_and_rm_keeps_shared_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    create(&store, "a", &full_spec(&gguf)).unwrap();
    let after_a = blob_names(&store);
    let mut spec_b = full_spec(&gguf);
    spec_b.system = Some("Only in b.".into());
    let report_b = create(&store, "me/b:v1", &spec_b).unwrap();
    assert!(report_b
        .statuses
        .iter()
        .any(|s| s.starts_with("using existing layer sha256:")));
    let after_b = blob_names(&store);
    // b shares the model, template, params, config... blobs with a: only its system text is new.
    assert_eq!(
        after_b.len(),
        after_a.len() + 1,
        "{after_a:?} -> {after_b:?}"
    );

    let removed = remove(&store, "a").unwrap();
    // Only a's system blob was unique to a.
    assert_eq!(
        removed.removed_blobs,
        vec![format!("sha256:{}", sha256_hex(b"You are terse."))]
    );
    assert_eq!(blob_names(&store).len(), after_b.len() - 1);
    assert!(
        !store
            .root()
            .join("manifests/registry.ollama.ai/library/a")
            .exists(),
        "empty manifest dirs are pruned"
    );
    assert!(show(&store, "me/b:v1", false).is_ok());
    let err = remove(&store, "a").unwrap_err();
    assert_eq!(
        (err.kind.status(), err.message.as_str()),
        (404, "model 'a' not found")
    );
    assert_eq!(
        remove(&store, "bad name!").unwrap_err().message,
        "name \"bad name!\" is invalid"
    );

    remove(&store, "me/b:v1").unwrap();
    assert!(blob_names(&store).is_empty());
}

#[test]
fn list_copy_and_case_insensitive_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    let report = create(
        &store,
        "MyModel:Q2",
        &CreateSpec::new(ModelSource::Gguf(gguf.clone())),
    )
    .unwrap();
    // Same name in another case replaces the stored spelling instead of adding a model.
    create(
        &store,
        "mymodel:q2",
        &CreateSpec::new(ModelSource::Gguf(gguf.clone())),
    )
    .unwrap();
    assert!(store
        .root()
        .join("manifests/registry.ollama.ai/library/MyModel/Q2")
        .is_file());
    assert!(!store
        .root()
        .join("manifests/registry.ollama.ai/library/mymodel")
        .exists());

    copy(&store, "mymodel:Q2", "other/copy").unwrap();
    let models = list(&store).unwrap();
    let names: Vec<&str> = models.iter().map(|m| m.display_name.as_str()).collect();
    assert_eq!(models.len(), 2, "{names:?}");
    assert!(names.contains(&"MyModel:Q2") && names.contains(&"other/copy:latest"));
    let a = models
        .iter()
        .find(|m| m.display_name == "MyModel:Q2")
        .unwrap();
    let b = models
        .iter()
        .find(|m| m.display_name == "other/copy:latest")
        .unwrap();
    assert_eq!(a.digest, b.digest, "cp copies the manifest bytes");
    assert_eq!(a.digest, report.manifest_digest);
    assert_eq!(a.id().len(), 12);
    assert_eq!(
        a.size,
        report.manifest.layers.iter().map(|l| l.size).sum::<u64>() + report.manifest.config.size
    );
    assert_eq!(a.details.family, "llama");
    assert_eq!(a.details.quantization_level, "Q2_K");
    assert_eq!(a.details.parameter_size, "19K");
    let tags = a.to_json();
    assert_eq!(tags["name"], "MyModel:Q2");
    // No `from` on an imported file, so no parent model (as in Ollama >= 0.30).
    assert_eq!(tags["details"]["parent_model"], "");

    let err = copy(&store, "missing", "x").unwrap_err();
    assert_eq!(
        (err.kind.status(), err.message.as_str()),
        (404, "model \"missing\" not found")
    );
    assert_eq!(
        copy(&store, "a/b/c/d", "x").unwrap_err().message,
        "source \"a/b/c/d\" is invalid"
    );
    assert_eq!(
        copy(&store, "MyModel:Q2", "-x").unwrap_err().message,
        "destination \"-x\" is invalid"
    );
}

#[test]
fn show_prints_the_modelfile_like_ollama() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    let mut spec = full_spec(&gguf);
    spec.template = Some("{{ .System }}\nUSER: {{ .Prompt }}\nASSISTANT: \"ok\"".into());
    let report = create(&store, "shown", &spec).unwrap();
    let info = show(&store, "shown", false).unwrap();
    let model_blob = store
        .root()
        .join("blobs")
        .join(report.manifest.layers[0].digest.replace(':', "-"));
    let expected = format!(
        "# Modelfile generated by \"ollama show\"\n\
         # To build a new Modelfile based on this, replace FROM with:\n\
         # FROM shown:latest\n\n\
         FROM {}\n\
         TEMPLATE \"\"\"{{{{ .System }}}}\nUSER: {{{{ .Prompt }}}}\nASSISTANT: \"ok\"\"\"\"\n\
         SYSTEM You are terse.\n\
         PARAMETER num_ctx 4096\n\
         PARAMETER stop <|im_end|>\n\
         PARAMETER stop </s>\n\
         PARAMETER temperature 0.7\n\
         LICENSE MIT <license> & more\n\
         MESSAGE user hi\n\
         MESSAGE assistant hello\n",
        model_blob.display()
    );
    assert_eq!(info.modelfile, expected);
    assert_eq!(
        info.parameters,
        "num_ctx                        4096\nstop                           \"<|im_end|>\"\nstop                           \"</s>\"\ntemperature                    0.7"
    );
    assert_eq!(info.system, "You are terse.");
    assert_eq!(info.license, "MIT <license> & more");
    assert_eq!(info.details.quantization_level, "Q2_K");
    assert_eq!(info.capabilities, vec!["completion"]);
    assert_eq!(info.model_info["general.architecture"], "llama");
    assert_eq!(info.model_info["general.parameter_count"], 18688);
    assert!(!info.model_info.contains_key("general.name"));
    assert_eq!(info.tensors.len(), 10);
    assert_eq!(info.messages.len(), 2);

    // No template layer: Ollama shows its default template.
    create(&store, "bare", &CreateSpec::new(ModelSource::Gguf(gguf))).unwrap();
    let bare = show(&store, "bare", false).unwrap();
    assert_eq!(bare.template, "{{ .Prompt }}");
    assert!(bare.modelfile.ends_with("TEMPLATE {{ .Prompt }}\n"));
    let err = show(&store, "nope", false).unwrap_err();
    assert_eq!(
        (err.kind.status(), err.message.as_str()),
        (404, "model 'nope:latest' not found")
    );
}

#[test]
fn recreating_a_model_prunes_its_old_layers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    let mut spec = CreateSpec::new(ModelSource::Gguf(gguf.clone()));
    spec.system = Some("first".into());
    create(&store, "m", &spec).unwrap();
    let first = format!("sha256-{}", sha256_hex(b"first"));
    assert!(blob_names(&store).contains(&first));
    spec.system = Some("second".into());
    create(&store, "m", &spec).unwrap();
    assert!(
        !blob_names(&store).contains(&first),
        "the replaced system layer is deleted"
    );
    // With no_prune (OLLAMA_NOPRUNE) it is kept.
    spec.system = Some("third".into());
    let opts = CreateOptions {
        no_prune: true,
        ..CreateOptions::default()
    };
    create_with(&store, "m", &spec, &opts, &mut |_| {}).unwrap();
    assert!(blob_names(&store).contains(&format!("sha256-{}", sha256_hex(b"second"))));
}

#[test]
fn concurrent_creates_into_one_store_are_safe() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let gguf = fixture("tiny-llama.Q2_K.gguf");
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let (root, gguf) = (root.clone(), gguf.clone());
            std::thread::spawn(move || {
                let store = Store::new(root);
                let mut spec = full_spec(&gguf);
                spec.system = Some(format!("model {i}"));
                create(&store, &format!("m{i}"), &spec).map(|r| r.manifest_digest)
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap().unwrap();
    }
    let store = Store::new(&root);
    assert_eq!(list(&store).unwrap().len(), 4);
    for m in list(&store).unwrap() {
        for layer in store
            .read_manifest(&m.name)
            .unwrap()
            .unwrap()
            .manifest
            .all_digests()
        {
            assert!(store
                .root()
                .join("blobs")
                .join(layer.replace(':', "-"))
                .is_file());
        }
    }
}

#[test]
fn errors_use_ollama_texts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let q2 = fixture("tiny-llama.Q2_K.gguf");
    let err = create(
        &store,
        "bad/name/with/too/many",
        &CreateSpec::new(ModelSource::Gguf(q2.clone())),
    )
    .unwrap_err();
    assert_eq!(
        (err.kind.status(), err.message.as_str()),
        (400, "invalid model name")
    );

    let mut spec = CreateSpec::new(ModelSource::Gguf(q2.clone()));
    spec.quantize = Some("q5_k_m".into());
    assert_eq!(
        create(&store, "q", &spec).unwrap_err().message,
        "unsupported quantization type Q5_K_M - supported types are F32, F16, Q4_K_S, Q4_K_M, Q8_0"
    );
    spec.quantize = Some("q4_K_M".into());
    assert_eq!(
        create(&store, "q", &spec).unwrap_err().message,
        "quantization is only supported for F16, BF16 and F32 models"
    );

    let not_gguf = dir.path().join("x.gguf");
    fs::write(&not_gguf, b"not a gguf at all").unwrap();
    let err = create(&store, "x", &CreateSpec::new(ModelSource::Gguf(not_gguf))).unwrap_err();
    assert_eq!(err.message, "supplied file was not in GGUF format");

    let err = create(
        &store,
        "x",
        &CreateSpec::new(ModelSource::HfDir(dir.path().into())),
    )
    .unwrap_err();
    assert_eq!(err.kind.status(), 501);
    assert!(err.message.contains("not supported yet"), "{}", err.message);

    let mut spec = CreateSpec::new(ModelSource::Gguf(q2));
    spec.template = Some("{{ if .System }}unterminated".into());
    let err = create(&store, "t", &spec).unwrap_err();
    assert_eq!(err.kind.status(), 400);
    assert!(
        err.message.starts_with("template error: "),
        "{}",
        err.message
    );

    let err = create(
        &store,
        "f",
        &CreateSpec::new(ModelSource::Model("not-here".into())),
    )
    .unwrap_err();
    assert_eq!(err.kind.status(), 404);
    // Nothing half-written is left behind by failures.
    assert!(list(&store).unwrap().is_empty());
}

/// A preparer standing in for the ckpt converter/quantizer: it proves `--from DIR --quantize`
/// flows through the hook into the store unchanged.
struct FakePreparer;

impl ModelPreparer for FakePreparer {
    fn convert(
        &self,
        job: ConvertJob<'_>,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<Vec<std::path::PathBuf>, OllamaError> {
        let ConvertInput::Dir(dir) = job.input else {
            panic!("expected a directory")
        };
        assert!(dir.join("model.safetensors").is_file());
        progress(Progress::status("fake converter ran"));
        Ok(vec![tiny_model(
            job.out_dir,
            "converted.gguf",
            Some("{% for m in messages %}{{ m['content'] }}{% endfor %}"),
            1,
        )])
    }

    fn quantize(
        &self,
        gguf: &Path,
        level: QuantizeLevel,
        out_dir: &Path,
        _progress: &mut dyn FnMut(Progress),
    ) -> Result<std::path::PathBuf, OllamaError> {
        assert!(gguf.is_file());
        Ok(tiny_model(
            out_dir,
            "quantized.gguf",
            None,
            level.llama_ftype(),
        ))
    }
}

#[test]
fn preparer_hook_converts_and_quantizes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path().join("store"));
    let hf = dir.path().join("hf");
    fs::create_dir_all(&hf).unwrap();
    fs::write(hf.join("model.safetensors"), b"{}").unwrap();
    fs::write(hf.join("config.json"), b"{}").unwrap();
    let mut spec = CreateSpec::new(ModelSource::HfDir(hf));
    spec.quantize = Some("q4_K_M".into());
    let opts = CreateOptions {
        preparer: &FakePreparer,
        ..CreateOptions::default()
    };
    let mut seen = Vec::new();
    let report = create_with(&store, "converted", &spec, &opts, &mut |p| {
        seen.push(p.status)
    })
    .unwrap();
    assert_eq!(seen[0], "converting model");
    assert!(seen.contains(&"fake converter ran".to_string()));
    assert!(seen.contains(&"quantizing F16 model to Q4_K_M".to_string()));
    let model_layer = &report.manifest.layers[0];
    assert_eq!(model_layer.media_type, "application/vnd.ollama.image.model");
    assert_eq!(
        model_layer.from, "",
        "converted/quantized layers are new layers"
    );
    let info = show(&store, "converted", false).unwrap();
    assert_eq!(info.details.quantization_level, "Q4_K_M");
    // The intermediate F16 never entered the store: every blob is referenced by the manifest.
    let referenced: Vec<String> = report
        .manifest
        .all_digests()
        .map(|d| d.replace(':', "-"))
        .collect();
    assert_eq!(blob_names(&store).len(), referenced.len());

    // A local F16 GGUF with --quantize: quantized before import, the F16 is not copied in.
    let f16 = tiny_model(dir.path(), "local-f16.gguf", None, 1);
    let mut spec = CreateSpec::new(ModelSource::Gguf(f16.clone()));
    spec.quantize = Some("q8_0".into());
    let report = create_with(&store, "local-q8", &spec, &opts, &mut |_| {}).unwrap();
    assert!(
        !blob_names(&store).contains(&format!("sha256-{}", sha256_hex(&fs::read(&f16).unwrap())))
    );
    assert_eq!(
        show(&store, "local-q8", false)
            .unwrap()
            .details
            .quantization_level,
        "Q8_0"
    );
    assert_eq!(
        report.statuses[..2],
        [
            "parsing GGUF".to_string(),
            "quantizing F16 model to Q8_0".to_string()
        ]
    );
    // Scratch outputs are cleaned up: only blobs, manifests and the lock file remain.
    let mut top: Vec<String> = fs::read_dir(store.root())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    top.sort();
    assert_eq!(top, vec![".ckpt-ollama.lock", "blobs", "manifests"]);
}

/// Run as root (as the packaged tools often are) in a store owned by another user (packaged
/// Ollama runs as `ollama`): everything ckpt adds belongs to the store's owner.
#[test]
fn new_files_take_the_store_owner_when_running_as_root() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    fs::create_dir_all(&root).unwrap();
    let me = fs::metadata(dir.path()).unwrap().uid();
    if me != 0 {
        eprintln!("skipped: needs root to chown");
        return;
    }
    std::os::unix::fs::chown(&root, Some(4242), Some(4343)).unwrap();
    let store = Store::new(&root);
    let gguf = tiny_model(dir.path(), "tiny.gguf", None, 1);
    let mut spec = CreateSpec::new(ModelSource::Gguf(gguf));
    spec.system = Some("owned".into());
    create(&store, "owned", &spec).unwrap();
    let mut checked = 0;
    let mut stack = vec![root.clone()];
    while let Some(p) = stack.pop() {
        for e in fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(".ckpt") {
                continue; // ckpt's own lock file
            }
            let m = fs::symlink_metadata(e.path()).unwrap();
            assert_eq!((m.uid(), m.gid()), (4242, 4343), "{}", e.path().display());
            checked += 1;
            if m.is_dir() {
                stack.push(e.path());
            }
        }
    }
    assert!(
        checked >= 8,
        "blobs, manifests and their folders: {checked}"
    );
}
