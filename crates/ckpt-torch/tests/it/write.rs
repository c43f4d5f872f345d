//! The writer: round trips through our reader, torch's zip layout (folder, alignment, CRCs,
//! records), tied weights, refusals; and, when CKPT_TORCH_PYTHON names a Python with torch,
//! torch.load(weights_only=True) of what we wrote (scripts/interop-torch.py).

use crate::common;

use std::path::{Path, PathBuf};

use ckpt_core::{DType, Error, GgmlType, Tensor};
use ckpt_torch::zip::ZipArchive;
use ckpt_torch::ReadOptions;
use common::{assert_same_tensors, fixture, layout, read, scratch};

fn round_trip(source: &str, out_dir: &Path) -> (Vec<Tensor>, PathBuf) {
    let ck = read(source);
    let stem = Path::new(source).file_stem().unwrap().to_str().unwrap();
    let out = out_dir.join(format!("{stem}.bin"));
    ckpt_torch::write(&out, &ck.tensors, false).unwrap_or_else(|e| panic!("writing {source}: {e}"));
    let back = ckpt_torch::read(&out, &ReadOptions::default())
        .unwrap_or_else(|e| panic!("re-reading {source}: {e}"));
    assert_same_tensors(&back.tensors, &ck.tensors, source);
    let names = |ts: &[Tensor]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&back.tensors),
        names(&ck.tensors),
        "{source}: order is kept"
    );
    (back.tensors, out)
}

#[test]
fn round_trips() {
    let dir = scratch("round-trips");
    for source in [
        "all_dtypes.bin",
        "all_dtypes_legacy.bin",
        "legacy_float8.bin",
        "extra_dtypes.bin",
        "big_endian.bin",
        "parameters.bin",
        "pickle_protocol4.bin",
        "shared_partial_views.bin",
        "training_checkpoint.pt",
    ] {
        round_trip(source, &dir);
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn layout_matches_torch() {
    let dir = scratch("layout");
    let (_, out) = round_trip("all_dtypes.bin", &dir);
    let bytes = std::fs::read(&out).unwrap();
    let zip = ZipArchive::parse(&out, &bytes).unwrap();
    let names: Vec<&str> = zip.entries().iter().map(|e| e.name.as_str()).collect();
    let mut expected = vec![
        "all_dtypes/data.pkl".to_string(),
        "all_dtypes/byteorder".to_string(),
    ];
    expected.extend((0..16).map(|i| format!("all_dtypes/data/{i}")));
    expected.push("all_dtypes/version".into());
    assert_eq!(names, expected);
    for e in zip.entries() {
        assert_eq!(e.method, 0, "{} is STORED", e.name);
        let range = zip.data_range(e).unwrap();
        assert_eq!(range.start % 64, 0, "{} starts 64-byte aligned", e.name);
        assert_eq!(
            crc32fast::hash(&bytes[range.clone()]),
            e.crc32,
            "CRC of {}",
            e.name
        );
        // Streamed tensor records carry their CRC and size in a data descriptor, as torch's do.
        let crc_after_data = if e.name.contains("/data/") {
            assert_eq!(e.flags & 8, 8, "{} has a data descriptor", e.name);
            assert_eq!(&bytes[range.end..range.end + 4], b"PK\x07\x08");
            assert_eq!(
                u32::from_le_bytes(bytes[range.end + 8..][..4].try_into().unwrap()) as u64,
                e.size
            );
            &bytes[range.end + 4..range.end + 8]
        } else {
            &bytes[e.local_header_offset as usize + 14..][..4]
        };
        assert_eq!(
            u32::from_le_bytes(crc_after_data.try_into().unwrap()),
            e.crc32,
            "CRC of {}",
            e.name
        );
    }
    let record = |n: &str| {
        zip.data(zip.find(&format!("all_dtypes/{n}")).unwrap())
            .unwrap()
    };
    assert_eq!(record("version"), b"3\n");
    assert_eq!(record("byteorder"), b"little");
    // Only globals torch's weights-only unpickler allows by default.
    let allowed = [
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
        "torch.storage.UntypedStorage",
        "torch.FloatStorage",
        "torch.HalfStorage",
        "torch.BFloat16Storage",
        "torch.DoubleStorage",
        "torch.LongStorage",
        "torch.IntStorage",
        "torch.ShortStorage",
        "torch.CharStorage",
        "torch.ByteStorage",
        "torch.BoolStorage",
        "torch.ComplexFloatStorage",
        "torch.float8_e4m3fn",
        "torch.float8_e5m2",
    ];
    for g in ckpt_torch::scan_globals(&out).unwrap() {
        assert!(allowed.contains(&g.as_str()), "unexpected global {g}");
    }
    // Opcodes: protocol 2 only (no FRAME / MEMOIZE / SHORT_BINUNICODE / STACK_GLOBAL).
    let pickle = record("data.pkl");
    assert_eq!(&pickle[..2], &[0x80, 2]);
    assert!(ckpt_torch::is_torch_file(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tied_weights_stay_tied() {
    let dir = scratch("tied");
    let (back, out) = round_trip("shared_tensors.bin", &dir);
    let get = |n: &str| back.iter().find(|t| t.name == n).unwrap();
    assert_eq!(
        layout(get("model.embed_tokens.weight")),
        layout(get("lm_head.weight"))
    );
    // Other views are written as dense copies of their own.
    let k = get("model.layers.0.self_attn.k_proj.weight");
    assert!(k.covers_storage());
    assert_ne!(
        layout(k).0,
        layout(get("model.layers.0.self_attn.qkv_proj.weight")).0
    );
    let bytes = std::fs::read(&out).unwrap();
    let zip = ZipArchive::parse(&out, &bytes).unwrap();
    let storages = zip
        .entries()
        .iter()
        .filter(|e| e.name.starts_with("shared_tensors/data/"))
        .count();
    assert_eq!(storages, 4, "five tensors, one tied pair");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn computed_and_scalar_tensors() {
    let dir = scratch("computed");
    let out = dir.join("pytorch_model.bin");
    let values: Vec<u8> = (0..6u16)
        .flat_map(|v| half_bits(v as f32).to_le_bytes())
        .collect();
    let data = values.clone();
    let tensors = vec![
        Tensor::computed("a.weight", DType::F16, vec![2, 3], move || Ok(data.clone())),
        Tensor::computed("a.scale", DType::F32, vec![], || {
            Ok(2.5f32.to_le_bytes().to_vec())
        }),
        Tensor::computed("big", DType::I64, vec![1], || {
            Ok((3u64 << 40).to_le_bytes().to_vec())
        }),
    ];
    ckpt_torch::write(&out, &tensors, false).unwrap();
    let back = ckpt_torch::read(&out, &ReadOptions::default()).unwrap();
    assert_same_tensors(&back.tensors, &tensors, "computed");
    let bytes = std::fs::read(&out).unwrap();
    let zip = ZipArchive::parse(&out, &bytes).unwrap();
    assert!(
        zip.find("pytorch_model/data.pkl").is_some(),
        "the folder is the output's stem"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn half_bits(v: f32) -> u16 {
    // Small integers only: exact in f16.
    if v == 0.0 {
        return 0;
    }
    let e = v.log2().floor() as i32;
    let m = ((v / 2f32.powi(e) - 1.0) * 1024.0) as u16;
    (((e + 15) as u16) << 10) | m
}

#[test]
fn refusals() {
    let dir = scratch("refusals");
    let out = dir.join("x.bin");
    let f6 = Tensor::computed("f6", DType::F6E2M3, vec![4], || Ok(vec![0; 3]));
    let err = ckpt_torch::write(&out, &[f6], false).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported(_)) && err.to_string().contains("'f6'"),
        "{err}"
    );
    let q = Tensor::computed("q", DType::Ggml(GgmlType::Q4_0), vec![32], || {
        Ok(vec![0; 18])
    });
    assert!(ckpt_torch::write(&out, &[q], false).is_err());
    let t = || Tensor::computed("t", DType::U8, vec![1], || Ok(vec![1]));
    let err = ckpt_torch::write(&out, &[t(), t()], false).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    let short = Tensor::computed("short", DType::F32, vec![4], || Ok(vec![0; 8]));
    assert!(ckpt_torch::write(&out, &[short], false).is_err());
    assert!(!out.exists(), "failed writes leave nothing behind");
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "no temporary left"
    );
    ckpt_torch::write(&out, &[t()], false).unwrap();
    assert_eq!(
        ckpt_torch::write(&out, &[t()], false).unwrap_err().kind(),
        ckpt_core::ErrorKind::Usage
    );
    ckpt_torch::write(&out, &[t()], true).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// torch.load(weights_only=True) of our output, with the real torch (opt-in).
#[test]
fn torch_interop() {
    let Ok(python) = std::env::var("CKPT_TORCH_PYTHON") else {
        eprintln!(
            "skipping torch interop: set CKPT_TORCH_PYTHON to a Python with torch and safetensors"
        );
        return;
    };
    let dir = scratch("torch-interop");
    let cases = [
        ("all_dtypes.bin", "all_dtypes.expected.safetensors", vec![]),
        (
            "all_dtypes_legacy.bin",
            "all_dtypes_legacy.expected.safetensors",
            vec![],
        ),
        (
            "legacy_float8.bin",
            "legacy_float8.expected.safetensors",
            vec![],
        ),
        (
            "extra_dtypes.bin",
            "extra_dtypes.expected.safetensors",
            vec![],
        ),
        ("big_endian.bin", "big_endian.expected.safetensors", vec![]),
        ("parameters.bin", "parameters.expected.safetensors", vec![]),
        (
            "pickle_protocol4.bin",
            "pickle_protocol4.expected.safetensors",
            vec![],
        ),
        (
            "shared_partial_views.bin",
            "shared_partial_views.expected.safetensors",
            vec![],
        ),
        (
            "training_checkpoint.pt",
            "training_checkpoint.expected-all.safetensors",
            vec![],
        ),
        (
            "shared_tensors.bin",
            "shared_tensors.expected-all.safetensors",
            vec![["model.embed_tokens.weight", "lm_head.weight"]],
        ),
    ];
    let mut manifest = Vec::new();
    for (source, expected, tied) in &cases {
        let (_, out) = round_trip(source, &dir);
        std::fs::copy(fixture(expected), dir.join(expected)).unwrap();
        manifest.push(serde_json::json!({
            "bin": out.file_name().unwrap().to_str().unwrap(),
            "expected": expected,
            "tied": tied,
        }));
    }
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/interop-torch.py");
    let status = std::process::Command::new(python)
        .arg(script)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(
        status.success(),
        "torch could not load what ckpt wrote (files kept in {})",
        dir.display()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// More than 65535 records need a zip64 end of central directory; our reader follows it.
#[test]
fn many_records_use_zip64_directory() {
    let dir = scratch("many");
    let out = dir.join("many.bin");
    let tensors: Vec<Tensor> = (0..65_600u32)
        .map(|i| {
            Tensor::computed(format!("t.{i}"), DType::I32, vec![], move || {
                Ok(i.to_le_bytes().to_vec())
            })
        })
        .collect();
    ckpt_torch::write(&out, &tensors, false).unwrap();
    let back = ckpt_torch::read(&out, &ReadOptions::default()).unwrap();
    assert_eq!(back.tensors.len(), tensors.len());
    let last = back.tensors.last().unwrap();
    assert_eq!(
        (last.name.as_str(), &*last.bytes().unwrap()),
        ("t.65599", &65_599u32.to_le_bytes()[..])
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `write_to` streams into any writer (no seeking) and reports each storage's bytes.
#[test]
fn write_to_streams_and_reports_progress() {
    let ck = read("shared_tensors.bin");
    let mut out = Vec::new();
    let mut reported = Vec::new();
    ckpt_torch::write_to(&mut out, "pytorch_model", &ck.tensors, &mut |n| {
        reported.push(n)
    })
    .unwrap();
    assert_eq!(
        reported,
        vec![2048, 2048, 512, 1536],
        "one report per stored storage (the tied pair once)"
    );
    let dir = scratch("stream");
    let path = dir.join("streamed.bin");
    std::fs::write(&path, &out).unwrap();
    let back = ckpt_torch::read(&path, &ReadOptions::default()).unwrap();
    assert_same_tensors(&back.tensors, &ck.tensors, "streamed");
    assert_eq!(
        ckpt_torch::archive_folder(Path::new("out/pytorch_model-00001-of-00002.bin")),
        "pytorch_model-00001-of-00002"
    );
    assert_eq!(
        ckpt_torch::archive_folder(Path::new("модель.bin")),
        "archive"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
