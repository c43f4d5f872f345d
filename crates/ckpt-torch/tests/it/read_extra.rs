//! ckpt's own torch fixtures (tests/fixtures/torch/extra, written by real torch) and files built
//! here: rarer rebuild paths, a big-endian legacy checkpoint, TorchScript, F4.

use crate::common;

use ckpt_core::{DType, Error, Tensor};
use ckpt_torch::ReadOptions;
use common::{assert_same_as_safetensors, fixture, scratch};
use serde_json::json;

#[test]
fn odd_objects() {
    let ck = common::read("extra/odd_objects.pt");
    assert_same_as_safetensors(
        &ck.tensors,
        &fixture("extra/odd_objects.expected.safetensors"),
    );
    let names: Vec<&str> = ck.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["param", "tensor_with_attr", "list.0", "list.1"]);
    let extras: Vec<(&str, serde_json::Value)> = ck
        .extras
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    assert_eq!(
        extras,
        vec![
            ("meta.blob", json!("00ff")),
            ("meta.c", json!([1.0, 2.0])),
            ("meta.cfg_a.k", json!(1)),
            ("meta.cfg_b.k", json!(1)),
            ("meta.device", json!("cpu")),
            ("meta.dtype", json!("torch.float16")),
            ("meta.nested", json!([[1, 2], [3]])),
            ("meta.set", json!([3])),
            ("meta.size", json!([2, 3])),
        ]
    );
}

#[test]
fn tensor_subclass_is_refused() {
    let err = ckpt_torch::read(
        &fixture("extra/tensor_subclass.pt"),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Unsafe { msg, .. } if msg.contains("'__main__.Tagged'")),
        "{err}"
    );
}

#[test]
fn cuda_storages_load_on_cpu() {
    let ck = common::read("extra/cuda_storages.pt");
    assert_same_as_safetensors(
        &ck.tensors,
        &fixture("extra/cuda_storages.expected.safetensors"),
    );
}

#[test]
fn torchscript_is_refused() {
    let path = fixture("extra/torchscript.pt");
    let err = ckpt_torch::read(&path, &ReadOptions::default()).unwrap_err();
    assert!(
        matches!(&err, Error::Unsupported(m) if m.contains("TorchScript") && m.contains("torchscript.pt")),
        "{err}"
    );
    // Its pickles can still be listed.
    let globals = ckpt_torch::scan_globals(&path).unwrap();
    assert!(
        globals.iter().any(|g| g.starts_with("__torch__.")),
        "{globals:?}"
    );
}

/// A legacy checkpoint from a big-endian machine (sys_info little_endian=False): counts and data
/// are big-endian. Built here from all_dtypes_legacy.bin by flipping the flag and byte-swapping.
#[test]
fn big_endian_legacy() {
    let src = fixture("all_dtypes_legacy.bin");
    let ck = ckpt_torch::read(&src, &ReadOptions::default()).unwrap();
    let mut bytes = std::fs::read(&src).unwrap();
    let flag = b"X\x0d\x00\x00\x00little_endianq";
    let at = bytes.windows(flag.len()).position(|w| w == flag).unwrap() + flag.len() + 1;
    assert_eq!(bytes[at], 0x88, "NEWTRUE follows the little_endian key");
    bytes[at] = 0x89;
    for t in &ck.tensors {
        let storage = &t.view().unwrap().storage;
        let count = &mut bytes[storage.start - 8..storage.start];
        count.reverse();
        let unit = t.dtype.swap_unit();
        for element in bytes[storage.start..storage.start + storage.len].chunks_exact_mut(unit) {
            element.reverse();
        }
    }
    let dir = scratch("be-legacy");
    let path = dir.join("be_legacy.bin");
    std::fs::write(&path, &bytes).unwrap();
    let be = ckpt_torch::read(&path, &ReadOptions::default()).unwrap();
    assert!(be
        .tensors
        .iter()
        .all(|t| t.view().unwrap().storage.big_endian));
    assert_same_as_safetensors(
        &be.tensors,
        &fixture("all_dtypes_legacy.expected.safetensors"),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// F4 is written as torch's float4_e2m1fn_x2 (last dimension halved) and read back as F4.
#[test]
fn float4_round_trip() {
    let dir = scratch("f4");
    let out = dir.join("f4.bin");
    let t = Tensor::computed("w", DType::F4, vec![3, 8], || Ok((0..12u8).collect()));
    ckpt_torch::write(&out, std::slice::from_ref(&t), false).unwrap();
    assert!(ckpt_torch::scan_globals(&out)
        .unwrap()
        .contains(&"torch.float4_e2m1fn_x2".to_string()));
    let back = ckpt_torch::read(&out, &ReadOptions::default()).unwrap();
    common::assert_same_tensors(&back.tensors, &[t], "f4");
    let odd = Tensor::computed("odd", DType::F4, vec![2, 3], || Ok(vec![0; 3]));
    assert!(matches!(
        ckpt_torch::write(&dir.join("odd.bin"), &[odd], false),
        Err(Error::Unsupported(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Quantized and sparse tensors use globals torch's safe loader accepts: they are refused as
/// unsupported, not as unsafe.
#[test]
fn quantized_and_sparse_are_unsupported() {
    for (file, what) in [
        ("extra/quantized.pt", "quantized tensors"),
        ("extra/sparse.pt", "sparse tensors"),
    ] {
        let err = ckpt_torch::read(&fixture(file), &ReadOptions::default()).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains(what) && m.contains(file.trim_start_matches("extra/"))),
            "{err}"
        );
        assert_eq!(err.kind(), ckpt_core::ErrorKind::Unsupported);
    }
}
