//! Big-endian GGUF (`--bigendian` of llama.cpp's converters): the reference files of
//! tests/fixtures/bigendian (written by convert_hf_to_gguf.py / convert_lora_to_gguf.py
//! --bigendian, see scripts/gen-bigendian-fixtures.py) are read, and written back byte for byte.

use crate::common;

use std::fs;
use std::path::PathBuf;

use ckpt_core::{DType, Tensor};
use ckpt_gguf::*;
use common::*;

fn be_fixture(name: &str) -> PathBuf {
    fixtures().join("../bigendian").join(name)
}

const STORED: [&str; 8] = [
    "tiny-llama.f16.be.gguf",
    "mmproj-tiny-gemma3-vision.f16.be.gguf",
    "tiny-llama.bf16.be.gguf",
    "tiny-llama.q8_0.be.gguf",
    "lora/llama-a-f32.be.gguf",
    "lora/llama-a-q8_0.be.gguf",
    "lora/llama-a-bf16adapter-bf16.be.gguf",
    "lora/llama-a-bf16adapter-f16.be.gguf",
];

/// Every KV and tensor of `f` into a writer of the given byte order: number tensors as the
/// reader presents them (little-endian), BF16 and block data as stored (the converters store it
/// unswapped, so that is its little-endian form).
fn rewrite(f: &GgufFile, order: ByteOrder) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set_byte_order(order);
    for (k, v) in &f.kvs {
        w.add_kv(k, v.clone());
    }
    for (i, t) in f.tensors().into_iter().enumerate() {
        if matches!(t.dtype, DType::BF16 | DType::Ggml(_)) {
            let raw = f.tensor_data(i).unwrap().to_vec();
            w.add_tensor(Tensor::computed(t.name, t.dtype, t.shape, move || {
                Ok(raw.clone())
            }));
        } else {
            w.add_tensor(t);
        }
    }
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    out
}

#[test]
fn converter_big_endian_files_are_read_and_written_back_byte_for_byte() {
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(be_fixture("manifest.json")).unwrap()).unwrap();
    for name in STORED {
        let path = be_fixture(name);
        let f = GgufFile::open(&path).unwrap();
        assert!(f.big_endian, "{name}");
        assert_eq!(f.version, 3);
        let entry = manifest["models"]
            .get(name)
            .or_else(|| manifest["adapters"].get(name.trim_start_matches("lora/")))
            .unwrap();
        assert_eq!(entry["byte_order"], "BIG", "{name}: gguf-py's reader says");
        assert_eq!(f.data_offset, entry["data_offset"].as_u64().unwrap());
        assert_eq!(f.tensors().len() as u64, entry["tensors"].as_u64().unwrap());
        assert!(f.get("general.architecture").is_some());
        let bytes = fs::read(&path).unwrap();
        assert_eq!(sha256_hex(&bytes), entry["sha256"], "{name}");
        assert!(
            rewrite(&f, ByteOrder::Big) == bytes,
            "{name}: rewritten big-endian differs"
        );
        // Little-endian the same content reads the same.
        let le = rewrite(&f, ByteOrder::Little);
        let g = GgufFile::from_buffer(
            ckpt_core::Buffer::owned("le.gguf", le),
            &ParseOptions::default(),
        )
        .unwrap();
        assert!(!g.big_endian);
        assert_eq!(g.kvs, f.kvs, "{name}");
        for (a, b) in f.tensors().iter().zip(g.tensors()) {
            if let Ok(x) = a.bytes() {
                assert_eq!(x, b.bytes().unwrap(), "{name}: {}", a.name);
            }
        }
    }
}

#[test]
fn number_tensors_are_swapped_bf16_and_blocks_are_not() {
    // The f16 and q8_0 files of one model: F32 norms swapped in both, Q8_0 blocks stored as in
    // a little-endian file (the converter hands them to gguf-py as bytes).
    let f16 = GgufFile::open(&be_fixture("tiny-llama.f16.be.gguf")).unwrap();
    let q8 = GgufFile::open(&be_fixture("tiny-llama.q8_0.be.gguf")).unwrap();
    let bf16 = GgufFile::open(&be_fixture("tiny-llama.bf16.be.gguf")).unwrap();
    let mut seen = (0, 0, 0);
    for (i, info) in q8.tensor_infos.iter().enumerate() {
        let t = q8.tensors()[i].clone();
        match t.dtype {
            DType::F32 => {
                let le = t.bytes().unwrap();
                let mut swapped = q8.tensor_data(i).unwrap().to_vec();
                swapped.chunks_exact_mut(4).for_each(|c| c.reverse());
                assert_eq!(*le, swapped[..], "{}", info.name);
                seen.0 += 1;
            }
            DType::Ggml(ckpt_core::GgmlType::Q8_0) => {
                let err = t.bytes().unwrap_err();
                assert!(
                    matches!(err, ckpt_core::Error::Unsupported(_)),
                    "{}: {err}",
                    info.name
                );
                let msg = err.to_string();
                assert!(msg.contains("tiny-llama.q8_0.be.gguf") && msg.contains("not supported"));
                // Its scales are the little-endian fp16 of the F16 file's values (finite, small).
                let raw = q8.tensor_data(i).unwrap();
                let j = f16
                    .tensor_infos
                    .iter()
                    .position(|x| x.name == info.name)
                    .unwrap();
                let values = f16.tensors()[j].bytes().unwrap().into_owned();
                let first: Vec<f32> = values[..64]
                    .chunks(2)
                    .map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]])))
                    .collect();
                let amax = first.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = half_to_f32(u16::from_le_bytes([raw[0], raw[1]]));
                assert!(
                    (d - amax / 127.0).abs() <= amax / 127.0 * 1e-2,
                    "{}",
                    info.name
                );
                seen.1 += 1;
            }
            other => panic!("{}: unexpected {other}", info.name),
        }
    }
    for t in bf16.tensors() {
        if t.dtype == DType::BF16 {
            assert!(t.bytes().is_err(), "{}", t.name);
            seen.2 += 1;
        }
    }
    assert!(seen.0 > 0 && seen.1 > 0 && seen.2 > 0, "{seen:?}");
}

fn half_to_f32(h: u16) -> f32 {
    let (sign, exp, man) = (
        (h >> 15) as u32,
        ((h >> 10) & 0x1f) as i32,
        (h & 0x3ff) as f32,
    );
    let v = match exp {
        0 => man * 2f32.powi(-24),
        31 => f32::INFINITY,
        e => (1.0 + man / 1024.0) * 2f32.powi(e - 15),
    };
    if sign == 1 {
        -v
    } else {
        v
    }
}

#[test]
fn header_of_the_big_endian_zoo_is_reproduced() {
    // metadata-zoo-bigendian.gguf (gguf-py's writer with GGUFEndian.BIG) holds every KV value
    // type: its header is exactly what writing the little-endian zoo big-endian gives.
    let le = GgufFile::open(&zoo("metadata-zoo.gguf")).unwrap();
    let be = GgufFile::open(&zoo("metadata-zoo-bigendian.gguf")).unwrap();
    let mut w = GgufWriter::new();
    w.set_byte_order(ByteOrder::Big);
    for (k, v) in &le.kvs {
        w.add_kv(k, v.clone());
    }
    for t in le.tensors() {
        w.add_tensor(t);
    }
    assert!(w.header_bytes().unwrap() == be.header_bytes());
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    let written = GgufFile::from_buffer(
        ckpt_core::Buffer::owned("out.gguf", out),
        &ParseOptions::default(),
    )
    .unwrap();
    // Number tensors are stored as in the reference; its BF16 and Q8_0 data was swapped the
    // gguf_convert_endian.py way, which the converters' --bigendian does not do.
    for (i, info) in be.tensor_infos.iter().enumerate() {
        let same = written.tensor_data(i) == be.tensor_data(i);
        let unswapped = written.tensor_data(i) == le.tensor_data(i);
        match info.ggml_type {
            ckpt_core::GgmlType::BF16 | ckpt_core::GgmlType::Q8_0 => {
                assert!(unswapped && !same, "{}", info.name)
            }
            _ => assert!(same, "{}", info.name),
        }
    }
}

/// The converter's big-endian split sets (split/<case>/ of the fixtures) open as one set: every
/// shard big-endian, split.* keys read in that order, every tensor once; and the F16 set reads
/// the same tensors as the little-endian set the converter wrote with the same limits. A set
/// whose shards disagree on the byte order is refused, naming the odd shard.
#[test]
fn big_endian_split_sets_open_and_mixed_sets_are_refused() {
    let manifest: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(be_fixture("manifest.json")).unwrap()).unwrap();
    let splits = manifest["splits"].as_object().unwrap();
    assert_eq!(splits.len(), 2);
    for (case, e) in splits {
        let files = e["files"].as_array().unwrap();
        let first = be_fixture(&format!(
            "split/{case}/{}",
            files[0]["file"].as_str().unwrap()
        ));
        let set = open_split(&first).unwrap();
        assert_eq!(set.shards.len(), files.len(), "{case}");
        for (s, fe) in set.shards.iter().zip(files) {
            assert!(s.big_endian, "{case}");
            assert_eq!(fe["byte_order"], "BIG", "{case}: gguf-py's reader says");
            assert_eq!(s.tensor_infos.len() as u64, fe["tensors"].as_u64().unwrap());
            assert_eq!(s.data_offset, fe["data_offset"].as_u64().unwrap());
        }
        let total: u64 = files.iter().map(|f| f["tensors"].as_u64().unwrap()).sum();
        assert_eq!(
            set.shards[0]
                .get("split.tensors.count")
                .and_then(|v| v.as_u64()),
            Some(total),
            "{case}"
        );
        assert_eq!(
            set.shards[0].get("split.count").and_then(|v| v.as_u64()),
            Some(files.len() as u64),
            "{case}"
        );
    }

    let le_dir = fixtures().join("../convert-split/expected/tensors-7");
    let be_dir = be_fixture("split/f16-tensors-7");
    let name = |i: usize| format!("tiny-0000{i}-of-00003.gguf");
    let (be_set, le_set) = (
        open_split(&be_dir.join(name(1))).unwrap(),
        open_split(&le_dir.join(name(1))).unwrap(),
    );
    let (bt, lt) = (be_set.to_checkpoint(), le_set.to_checkpoint());
    assert_eq!(bt.tensors.len(), lt.tensors.len());
    for (a, b) in bt.tensors.iter().zip(&lt.tensors) {
        assert_eq!((&a.name, a.dtype, &a.shape), (&b.name, b.dtype, &b.shape));
        assert_eq!(a.bytes().unwrap(), b.bytes().unwrap(), "{}", a.name);
    }

    // Shard 2 little-endian among big-endian ones.
    let dir = tempfile::tempdir().unwrap();
    for i in 1..=3 {
        let from = if i == 2 { &le_dir } else { &be_dir };
        fs::copy(from.join(name(i)), dir.path().join(name(i))).unwrap();
    }
    let err = open_split(&dir.path().join(name(1)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&name(2)) && err.contains("little-endian") && err.contains("one byte order"),
        "{err}"
    );
}
