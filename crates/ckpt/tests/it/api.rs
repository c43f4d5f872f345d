//! The library API: typed options, matchable errors without command-line wording, and the
//! operations the CLI is built on.

use std::path::{Path, PathBuf};

use ckpt::convert::{ConvertKind, GgufOptions, OutputFormat};
use ckpt::{Error, ErrorKind, Ftype, Intermediate, OutType};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn outtype_parses_converter_types_first_then_llama_quantize_types() {
    assert_eq!("auto".parse::<OutType>().unwrap(), OutType::Auto);
    assert_eq!("F16".parse::<OutType>().unwrap(), OutType::F16);
    assert_eq!("q8_0".parse::<OutType>().unwrap(), OutType::Q8_0);
    assert_eq!(
        "q4_k_m".parse::<OutType>().unwrap(),
        OutType::Quantized(Ftype::Q4_K_M)
    );
    // llama-quantize's alias and numeric llama_ftype.
    assert_eq!(
        "Q4_K".parse::<OutType>().unwrap(),
        OutType::Quantized(Ftype::Q4_K_M)
    );
    assert_eq!(
        "18".parse::<OutType>().unwrap(),
        OutType::Quantized(Ftype::Q6_K)
    );
    assert_eq!(OutType::Quantized(Ftype::Q6_K).name(), "Q6_K");
    assert_eq!(OutType::Auto.name(), "AUTO");
    assert!(OutType::Q8_0.is_direct() && !OutType::Quantized(Ftype::Q8_0).is_direct());
    let e = "q9_z".parse::<OutType>().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert!(
        e.to_string().contains("'q9_z'") && !e.to_string().contains("--"),
        "{e}"
    );
    assert_eq!("bf16".parse::<Intermediate>().unwrap(), Intermediate::BF16);
    let e = "q8_0".parse::<Intermediate>().unwrap_err();
    assert!(!e.to_string().contains("--"), "{e}");
    assert_eq!("Q5_K_S".parse::<Ftype>().unwrap(), Ftype::Q5_K_S);
    assert_eq!("bin".parse::<OutputFormat>().unwrap(), OutputFormat::Bin);
}

#[test]
fn existing_output_is_a_matchable_usage_error_without_flag_names() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    std::fs::write(&out, b"keep").unwrap();
    let e = ckpt::convert::to_gguf(
        &root().join("examples/tiny-llama"),
        &out,
        &GgufOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Exists { path } if path == &out),
        "{e:?}"
    );
    assert_eq!(e.kind(), ErrorKind::Usage);
    assert_eq!(e.path(), Some(out.as_path()));
    assert!(!e.to_string().contains("--force"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep");
}

#[test]
fn convert_kind_follows_destination_and_source() {
    let tiny = root().join("examples/tiny-llama");
    let gguf = root().join("tests/fixtures/gguf/tiny-llama-spm.f16.gguf");
    let k = |src: &Path, dst: &str, to| ckpt::convert::kind(src, Path::new(dst), to).unwrap();
    assert_eq!(k(&tiny, "out.gguf", None), ConvertKind::Gguf);
    assert_eq!(k(&tiny, "out", Some(OutputFormat::Gguf)), ConvertKind::Gguf);
    assert_eq!(k(&tiny, "out", None), ConvertKind::Plain);
    assert_eq!(k(&gguf, "out", None), ConvertKind::Export);
    assert_eq!(
        k(&gguf, "out", Some(OutputFormat::Bin)),
        ConvertKind::Export
    );
    assert_eq!(k(&gguf, "model.safetensors", None), ConvertKind::Plain);
}

#[test]
fn gguf_against_its_source_is_compared_through_the_hf_view_with_stored_types() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m.gguf");
    let tiny = root().join("examples/tiny-llama");
    let opts = GgufOptions {
        outtype: OutType::Q8_0,
        ..Default::default()
    };
    ckpt::convert::to_gguf(&tiny, &out, &opts).unwrap();
    let d = ckpt::diff(&tiny, &out, 1e-1).unwrap();
    assert!(d.report.only_in_a.is_empty(), "{:?}", d.report.only_in_a);
    assert!(d
        .report
        .compared
        .iter()
        .any(|t| t.dtype_b == "Q8_0" && t.name.ends_with("q_proj.weight")));
    assert_eq!(d.tensors_a, d.report.compared.len());
    let v = ckpt::verify(&out, false).unwrap();
    assert!(v.ok);
}

#[test]
fn api_create_adapter_files_are_converted_like_convert_lora_to_gguf() {
    // `/api/create` sends an adapter as named files; the preparer converts them for the model
    // (its config rebuilt from the GGUF) at F16: convert_lora_to_gguf.py --outtype f16's bytes.
    use ckpt::crates::ollama::{create_with, CreateOptions, CreateSpec, ModelSource, Store};
    let fx = root().join("tests/fixtures");
    let work = tempfile::tempdir().unwrap();
    let store = Store::new(work.path().join("models"));
    let adapter = fx.join("lora/bf16/a_lora_bf16_adapter/adapter");
    let mut spec = CreateSpec::new(ModelSource::Gguf(fx.join("gguf/tiny-llama-spm.f16.gguf")));
    spec.adapter = Some(ModelSource::Files(
        ["adapter_config.json", "adapter_model.safetensors"]
            .iter()
            .map(|n| (n.to_string(), adapter.join(n)))
            .collect(),
    ));
    let opts = CreateOptions {
        preparer: &ckpt::ollama::CkptPreparer,
        ..Default::default()
    };
    let report = create_with(&store, "tuned", &spec, &opts, &mut |_| {}).unwrap();
    let layer = report
        .manifest
        .layers
        .iter()
        .find(|l| l.media_type == "application/vnd.ollama.image.adapter")
        .expect("an adapter layer");
    let blob = store
        .root()
        .join("blobs")
        .join(layer.digest.replace(':', "-"));
    assert!(
        std::fs::read(blob).unwrap()
            == std::fs::read(fx.join("lora-gguf/expected/llama-a-bf16adapter-f16.gguf")).unwrap()
    );
    assert!(
        report.statuses.iter().any(|s| s == "converting adapter"),
        "{:?}",
        report.statuses
    );
}
