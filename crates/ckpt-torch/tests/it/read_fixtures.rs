//! Every valid fixture of tests/fixtures/torch/README.md reads to exactly the reference tensors.

use crate::common;

use ckpt_core::{DType, Error, Format};
use ckpt_torch::ReadOptions;
use common::{assert_same_as_safetensors, fixture, layout, read};

fn check(source: &str, expected: &str) -> ckpt_core::Checkpoint {
    let ck = read(source);
    assert_same_as_safetensors(&ck.tensors, &fixture(expected));
    ck
}

#[test]
fn all_dtypes_zip() {
    let ck = check("all_dtypes.bin", "all_dtypes.expected.safetensors");
    assert_eq!(ck.format, Format::TorchZip);
    assert_eq!(ck.files, vec![fixture("all_dtypes.bin")]);
    let scalar = ck.get("dtypes.scalar").unwrap();
    assert_eq!(scalar.shape, Vec::<u64>::new());
    let empty = ck.get("dtypes.empty").unwrap();
    assert_eq!(empty.shape, vec![0, 4]);
    assert_eq!(empty.bytes().unwrap().len(), 0);
    // Pickle order is kept.
    assert_eq!(ck.tensors[0].name, "dtypes.float32");
    assert_eq!(ck.tensors.last().unwrap().name, "dtypes.float32_large");
}

#[test]
fn all_dtypes_legacy() {
    let ck = check(
        "all_dtypes_legacy.bin",
        "all_dtypes_legacy.expected.safetensors",
    );
    assert_eq!(ck.format, Format::TorchLegacy);
}

#[test]
fn legacy_float8_is_float8_not_uint8() {
    let ck = check("legacy_float8.bin", "legacy_float8.expected.safetensors");
    assert_eq!(ck.get("dtypes.float8_e4m3fn").unwrap().dtype, DType::F8E4M3);
    assert_eq!(ck.get("dtypes.float8_e5m2").unwrap().dtype, DType::F8E5M2);
}

#[test]
fn extra_dtypes() {
    check("extra_dtypes.bin", "extra_dtypes.expected.safetensors");
}

#[test]
fn unsupported_dtypes_are_refused_by_tensor_and_dtype() {
    let path = fixture("unsupported_dtypes.bin");
    let err = ckpt_torch::read(&path, &ReadOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Unsupported(_)), "{msg}");
    assert!(msg.contains("unsupported_dtypes.bin"), "{msg}");
    assert!(
        msg.contains("'dtypes.complex128'") && msg.contains("complex128"),
        "{msg}"
    );
    // Selecting only the complex32 tensor names that one.
    let err = ckpt_torch::read(
        &path,
        &ReadOptions {
            key: Some("dtypes.complex32".into()),
        },
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("'dtypes.complex32'") && err.to_string().contains("complex32"),
        "{err}"
    );
}

#[test]
fn parameters_keep_their_data() {
    check("parameters.bin", "parameters.expected.safetensors");
}

#[test]
fn pickle_protocol_4() {
    check(
        "pickle_protocol4.bin",
        "pickle_protocol4.expected.safetensors",
    );
}

#[test]
fn byte_order() {
    check("big_endian.bin", "big_endian.expected.safetensors");
    check(
        "no_byteorder_record.bin",
        "no_byteorder_record.expected.safetensors",
    );
    let be = read("big_endian.bin");
    assert!(be
        .tensors
        .iter()
        .all(|t| t.view().unwrap().storage.big_endian));
    let le = read("no_byteorder_record.bin");
    assert!(le
        .tensors
        .iter()
        .all(|t| !t.view().unwrap().storage.big_endian));
}

#[test]
fn shared_tensors_keep_storage_identity() {
    let ck = check(
        "shared_tensors.bin",
        "shared_tensors.expected-all.safetensors",
    );
    let get = |n: &str| ck.get(n).unwrap_or_else(|| panic!("{n}"));
    let embed = layout(get("model.embed_tokens.weight"));
    let head = layout(get("lm_head.weight"));
    assert_eq!(embed, head, "tied weights are one view of one storage");
    let qkv = layout(get("model.layers.0.self_attn.qkv_proj.weight"));
    let k = layout(get("model.layers.0.self_attn.k_proj.weight"));
    assert_eq!(k.0, qkv.0, "k_proj views qkv_proj's storage");
    assert_eq!((qkv.1, k.1), (0, 256));
    assert_ne!(embed.0, qkv.0);
    let down = get("model.layers.0.mlp.down_proj.weight");
    assert_eq!(layout(down).2, Some(vec![1, 24]));
    assert!(down.covers_storage());
    assert!(get("model.layers.0.self_attn.qkv_proj.weight").covers_storage());
    assert!(!get("model.layers.0.self_attn.k_proj.weight").covers_storage());
}

#[test]
fn shared_partial_views() {
    check(
        "shared_partial_views.bin",
        "shared_partial_views.expected-all.safetensors",
    );
    let ck = check(
        "shared_partial_views.bin",
        "shared_partial_views.expected.safetensors",
    );
    let get = |n: &str| layout(ck.get(n).unwrap());
    assert_eq!(get("encoder.pos_embed").1, 12);
    let (b0, b1) = (get("encoder.block.0.scale"), get("encoder.block.1.scale"));
    assert_eq!(b0.0, b1.0, "both slices view one storage");
    assert_eq!((b0.1, b1.1), (0, 16));
    assert_eq!(
        get("encoder.proj.weight"),
        (get("encoder.proj.weight").0, 2, Some(vec![8, 1]))
    );
    assert!(ck.tensors.iter().all(|t| !t.covers_storage()));
}

#[test]
fn training_checkpoint_flattened() {
    let ck = check(
        "training_checkpoint.pt",
        "training_checkpoint.expected-all.safetensors",
    );
    assert_eq!(ck.tensors.len(), 35);
    assert!(ck.get("optimizer.state.0.exp_avg").is_some());
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(
        &std::fs::read(fixture("training_checkpoint.non_tensor.json")).unwrap(),
    )
    .unwrap();
    let expected: std::collections::BTreeMap<_, _> = expected.into_iter().collect();
    assert_eq!(ck.extras, expected);
}

#[test]
fn training_checkpoint_state_dict() {
    let path = fixture("training_checkpoint.pt");
    let ck = ckpt_torch::read(
        &path,
        &ReadOptions {
            key: Some("state_dict".into()),
        },
    )
    .unwrap();
    assert_same_as_safetensors(
        &ck.tensors,
        &fixture("training_checkpoint.expected.safetensors"),
    );
    assert!(ck.extras.is_empty(), "{:?}", ck.extras);
    assert_eq!(ck.tensors[0].name, "fc1.weight");
    assert_eq!(
        ckpt_torch::top_level_keys(&path).unwrap(),
        vec!["epoch", "state_dict", "optimizer", "config"]
    );

    let err = ckpt_torch::read(
        &path,
        &ReadOptions {
            key: Some("model".into()),
        },
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("'model'") && msg.contains("training_checkpoint.pt"),
        "{msg}"
    );
    for k in ["'epoch'", "'state_dict'", "'optimizer'", "'config'"] {
        assert!(msg.contains(k), "the error lists the top-level keys: {msg}");
    }
}

#[test]
fn sharded_source_matches_the_expected_shards() {
    let mut all = Vec::new();
    for i in 1..=4 {
        let ck = read(&format!("sharded/pytorch_model-0000{i}-of-00004.bin"));
        all.extend(ck.tensors);
    }
    assert_eq!(all.len(), 21);
    let mut expected = Vec::new();
    for i in 1..=6 {
        let p = fixture(&format!(
            "sharded.expected/model-0000{i}-of-00006.safetensors"
        ));
        expected.extend(ckpt_safetensors::read(&p).unwrap().tensors);
    }
    common::assert_same_tensors(&all, &expected, "sharded");
}

#[test]
fn globals_are_listed_without_executing() {
    let globals = ckpt_torch::scan_globals(&fixture("all_dtypes.bin")).unwrap();
    let listed = "torch._utils._rebuild_tensor_v2, torch.FloatStorage, collections.OrderedDict, torch.HalfStorage, \
                  torch.BFloat16Storage, torch.DoubleStorage, torch.LongStorage, torch.IntStorage, torch.ShortStorage, \
                  torch.CharStorage, torch.ByteStorage, torch.BoolStorage, torch._utils._rebuild_tensor_v3, \
                  torch.storage.UntypedStorage, torch.float8_e4m3fn, torch.float8_e5m2, torch.ComplexFloatStorage";
    assert_eq!(globals, listed.split(", ").collect::<Vec<_>>());
    let legacy = ckpt_torch::scan_globals(&fixture("legacy_float8.bin")).unwrap();
    assert_eq!(
        legacy,
        vec![
            "torch._utils._rebuild_tensor_v3",
            "torch.storage.UntypedStorage",
            "collections.OrderedDict",
            "torch.float8_e4m3fn",
            "torch.float8_e5m2"
        ]
    );
    let report = ckpt_torch::scan(&fixture("parameters.bin")).unwrap();
    assert_eq!(
        report
            .calls
            .iter()
            .filter(|c| *c == "torch._utils._rebuild_parameter")
            .count(),
        2,
        "{:?}",
        report.calls
    );
    assert_eq!(
        report
            .calls
            .iter()
            .filter(|c| *c == "torch._utils._rebuild_tensor_v2")
            .count(),
        3,
        "{:?}",
        report.calls
    );
}

#[test]
fn sniffing() {
    for f in [
        "all_dtypes.bin",
        "all_dtypes_legacy.bin",
        "training_checkpoint.pt",
        "legacy_float8.bin",
        "truncated_half.bin",
    ] {
        assert!(ckpt_torch::is_torch_file(&fixture(f)), "{f}");
    }
    for f in [
        "all_dtypes.expected.safetensors",
        "README.md",
        "sharded/config.json",
        "does-not-exist.bin",
    ] {
        assert!(!ckpt_torch::is_torch_file(&fixture(f)), "{f}");
    }
}
