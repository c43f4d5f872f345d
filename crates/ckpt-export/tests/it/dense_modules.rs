//! EmbeddingGemma with its sentence-transformers Dense modules (issue #17): the fixture folder
//! (tests/fixtures/dense-modules, scripts/gen-dense-modules-fixtures.py) converted with
//! `--sentence-transformers-dense-modules` (the bytes convert_hf_to_gguf.py wrote) and exported
//! back must give the original's tensors, `2_Dense`/`3_Dense` folders and module JSON files.

use std::path::{Path, PathBuf};

use ckpt_core::DType;
use ckpt_export::{gguf_to_hf, ExportOptions};
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use serde_json::Value;

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/dense-modules")
        .join(p)
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .unwrap()
}

/// The tensor's values as f32 (F32, F16 or BF16 data).
use crate::round_trip::f32s as values;

/// `original` (float32) rounded to `dtype` the way numpy's `astype` rounds (to nearest even).
fn rounded(original: &[f32], dtype: DType) -> Vec<f32> {
    original
        .iter()
        .map(|&x| match dtype {
            DType::F32 => x,
            DType::F16 => half::f16::from_f32(x).to_f32(),
            DType::BF16 => half::bf16::from_f32(x).to_f32(),
            d => panic!("unexpected dtype {d}"),
        })
        .collect()
}

/// Every tensor of `original` is in `exported` under its name with its shape and the original
/// values rounded to the exported dtype (bit for bit), which is `dtype` for matrices; nothing
/// else is exported.
fn compare(what: &str, original: &Path, exported: &Path, dtype: DType) {
    let o = ckpt_safetensors::read(original).unwrap();
    let e = ckpt_safetensors::read(exported).unwrap();
    let mut names: Vec<&str> = e.tensors.iter().map(|t| t.name.as_str()).collect();
    let mut want: Vec<&str> = o.tensors.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    want.sort_unstable();
    assert_eq!(names, want, "{what}: exported tensor names");
    for ot in &o.tensors {
        let et = e.get(&ot.name).unwrap();
        assert_eq!(et.shape, ot.shape, "{what}: {}", ot.name);
        assert_eq!(ot.dtype, DType::F32, "{what}: {}", ot.name);
        if ot.shape.len() == 2 {
            assert_eq!(et.dtype, dtype, "{what}: {}", ot.name);
        }
        let got: Vec<u32> = values(et).iter().map(|x| x.to_bits()).collect();
        let want: Vec<u32> = rounded(&values(ot), et.dtype)
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert!(
            got == want,
            "{what}: {} ({}) differs from the original rounded to {}",
            ot.name,
            et.dtype,
            et.dtype
        );
    }
}

/// Converts the fixture folder with the flag (checking the bytes against the converter's file),
/// exports the GGUF and compares the folder with the original.
fn round_trip(outtype: OutType, reference: &str, dtype: DType) {
    let tmp = tempfile::tempdir().unwrap();
    let src = fixture("tiny-embeddinggemma");
    let gguf = tmp.path().join("out.gguf");
    let ck = ckpt_safetensors::read(&src.join("model.safetensors")).unwrap();
    convert_hf_to_gguf(
        &src,
        &ck,
        &gguf,
        &HfToGgufOptions {
            outtype,
            sentence_transformers_dense_modules: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(
        std::fs::read(&gguf).unwrap() == std::fs::read(fixture(reference)).unwrap(),
        "{reference}: ckpt's conversion is not the converter's"
    );
    let out = tmp.path().join("export");
    let report = gguf_to_hf(&gguf, &out, &ExportOptions::default()).unwrap();
    assert_eq!(report.hf_architecture.as_deref(), Some("Gemma3TextModel"));
    for f in [
        "model.safetensors",
        "2_Dense/model.safetensors",
        "3_Dense/model.safetensors",
        "2_Dense/config.json",
        "3_Dense/config.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(
            report.files.iter().any(|x| x == f),
            "{reference}: {f} not in {:?}",
            report.files
        );
    }
    compare(
        reference,
        &src.join("model.safetensors"),
        &out.join("model.safetensors"),
        dtype,
    );
    for m in ["2_Dense", "3_Dense"] {
        compare(
            &format!("{reference} {m}"),
            &src.join(m).join("model.safetensors"),
            &out.join(m).join("model.safetensors"),
            dtype,
        );
    }
    let original_count: usize = [
        "model.safetensors",
        "2_Dense/model.safetensors",
        "3_Dense/model.safetensors",
    ]
    .iter()
    .map(|f| ckpt_safetensors::read(&src.join(f)).unwrap().tensors.len())
    .sum();
    assert_eq!(report.tensor_count, original_count, "{reference}");
    for f in [
        "modules.json",
        "1_Pooling/config.json",
        "2_Dense/config.json",
        "3_Dense/config.json",
    ] {
        assert_eq!(
            json(&out.join(f)),
            json(&src.join(f)),
            "{reference}: {f} differs from the original's"
        );
    }
}

#[test]
fn dense_modules_come_back_as_sentence_transformers_modules_f32() {
    round_trip(
        OutType::F32,
        "tiny-embeddinggemma.dense.f32.gguf",
        DType::F32,
    );
}

#[test]
fn dense_modules_come_back_as_sentence_transformers_modules_f16() {
    round_trip(
        OutType::F16,
        "tiny-embeddinggemma.dense.f16.gguf",
        DType::F16,
    );
}

#[test]
fn dense_modules_come_back_as_sentence_transformers_modules_bf16() {
    round_trip(
        OutType::BF16,
        "tiny-embeddinggemma.dense.bf16.gguf",
        DType::BF16,
    );
}

/// Without the flag the GGUF has no Dense tensors: the export writes the pooling modules only.
#[test]
fn without_dense_tensors_no_dense_modules_are_written() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("export");
    gguf_to_hf(
        &fixture("tiny-embeddinggemma.f32.gguf"),
        &out,
        &ExportOptions::default(),
    )
    .unwrap();
    assert!(!out.join("2_Dense").exists() && !out.join("3_Dense").exists());
    let modules = json(&out.join("modules.json"));
    let types: Vec<&str> = modules
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "sentence_transformers.models.Transformer",
            "sentence_transformers.models.Pooling",
            "sentence_transformers.models.Normalize"
        ]
    );
}

/// The converter's dense f32 GGUF with `edit` applied to its KVs, written to `path`.
fn edited(path: &Path, edit: impl Fn(&mut ckpt_gguf::GgufWriter)) {
    crate::edited_gguf(&fixture("tiny-embeddinggemma.dense.f32.gguf"), path, edit);
}

/// Feature counts that contradict the weight's shape, or Dense weights without a pooling to
/// follow, are refused with the key or tensor named, and nothing is written.
#[test]
fn inconsistent_dense_modules_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    type Edit<'a> = &'a dyn Fn(&mut ckpt_gguf::GgufWriter);
    let cases: [(&str, Edit, &[&str]); 2] = [
        (
            "features",
            &|w| {
                w.set_kv(
                    "gemma-embedding.dense_2_feat_in",
                    ckpt_gguf::GgufValue::U32(9),
                )
            },
            &["gemma-embedding.dense_2_feat_in is 9", "dense_2.weight"],
        ),
        (
            "pooling",
            &|w| {
                w.remove_kv("gemma-embedding.pooling_type").unwrap();
            },
            &["dense_2.weight", "pooling_type"],
        ),
    ];
    for (case, edit, needles) in cases {
        let gguf = tmp.path().join(format!("{case}.gguf"));
        edited(&gguf, edit);
        let out = tmp.path().join(case);
        let err = gguf_to_hf(&gguf, &out, &ExportOptions::default())
            .unwrap_err()
            .to_string();
        for n in needles {
            assert!(err.contains(n), "{case}: {err}");
        }
        assert!(!out.exists(), "{case}: nothing may be written");
    }
}
