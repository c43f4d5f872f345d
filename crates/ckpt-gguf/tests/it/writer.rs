//! The writer against llama.cpp's and gguf-py's header bytes, llama-gguf-split's shards, and its
//! own validation.

use crate::common;

use std::fs;

use ckpt_core::{DType, GgmlType, Tensor};
use ckpt_gguf::*;
use common::*;

/// A tensor with the info's type and shape whose data is never asked for.
fn placeholder(info: &TensorInfo) -> Tensor {
    let name = info.name.clone();
    Tensor::computed(info.name.clone(), info.dtype(), info.shape(), move || {
        panic!("data of '{name}' should not be read when only the header is built")
    })
}

fn header_of(bytes: &[u8]) -> GgufHeader {
    match parse_header(bytes).unwrap() {
        HeaderParse::Complete(h) => h,
        HeaderParse::NeedMore { at_least } => panic!("header needs {at_least} bytes"),
    }
}

/// The stored headers of hash-only files (llama-quantize, convert_hf_to_gguf.py and
/// llama-gguf-split outputs) are reproduced exactly from their parsed KVs and tensor infos.
#[test]
fn headers_of_reference_files_are_reproduced() {
    let dir = fixtures().join("headers");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        let header = header_of(&bytes);
        assert_eq!(
            header.data_offset as usize,
            bytes.len(),
            "{}",
            path.display()
        );
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let rel = name.strip_suffix(".header").unwrap();
        let manifest_path = if rel.contains("-split-") {
            format!("split-f16/{rel}")
        } else {
            rel.to_string()
        };
        let m = manifest_entry(&manifest_path);
        assert_eq!(header.data_offset, m["data_offset"].as_u64().unwrap());
        let c_writer = m["command"].as_str().unwrap().starts_with("llama-");
        let modes: &[DimsMode] = if c_writer {
            &[DimsMode::TrimTrailingOnes, DimsMode::AsGiven]
        } else {
            &[DimsMode::AsGiven]
        };
        for &mode in modes {
            let mut w = GgufWriter::new();
            w.set_dims_mode(mode);
            for (k, v) in &header.kvs {
                w.add_kv(k, v.clone());
            }
            for info in &header.tensor_infos {
                w.add_tensor(placeholder(info));
            }
            assert!(
                w.header_bytes().unwrap() == bytes,
                "{name} ({mode:?}) differs"
            );
            assert_eq!(
                w.total_size().unwrap(),
                m["size"].as_u64().unwrap(),
                "{name}"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 14);
}

#[test]
fn trailing_ones_are_dropped_only_in_c_mode() {
    let t = || Tensor::computed("t", DType::F32, vec![1, 3, 1, 4], || Ok(vec![0; 48]));
    let s = || Tensor::computed("s", DType::F32, vec![], || Ok(vec![0; 4]));
    let o = || Tensor::computed("o", DType::F32, vec![1, 1], || Ok(vec![0; 4]));
    let mut w = GgufWriter::new();
    w.add_tensor(t());
    w.add_tensor(s());
    w.add_tensor(o());
    let ne: Vec<Vec<u64>> = w
        .planned_tensor_infos()
        .unwrap()
        .into_iter()
        .map(|i| i.ne)
        .collect();
    assert_eq!(ne, vec![vec![4, 1, 3, 1], vec![], vec![1, 1]]);
    w.set_dims_mode(DimsMode::TrimTrailingOnes);
    let ne: Vec<Vec<u64>> = w
        .planned_tensor_infos()
        .unwrap()
        .into_iter()
        .map(|i| i.ne)
        .collect();
    assert_eq!(ne, vec![vec![4, 1, 3], vec![1], vec![1]]);
    // Both read back with the same element count.
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    let f = GgufFile::from_buffer(
        ckpt_core::Buffer::owned("mem.gguf", out),
        &ParseOptions::default(),
    )
    .unwrap();
    assert_eq!(f.tensors()[0].shape, vec![3, 1, 4]);
    assert_eq!(f.tensors()[1].shape, vec![1]);
}

#[test]
fn split_writer_reproduces_llama_gguf_split() {
    let set = open_split(&split_shard(1)).unwrap();
    let dir = scratch("write-split");
    let mut w = GgufWriter::new();
    w.set_dims_mode(DimsMode::TrimTrailingOnes);
    // The unsplit model's KVs: the first shard's without the split keys.
    for (k, v) in set.kvs() {
        if !k.starts_with("split.") {
            w.add_kv(k, v.clone());
        }
    }
    for t in set.tensors() {
        w.add_tensor(t);
    }
    let progress = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = progress.clone();
    w.set_progress("writing", running_totals(sink));
    let prefix = dir.join("tiny-llama-spm.Q2_K-split");
    let options = SplitOptions {
        by: SplitBy::MaxTensors(16),
        no_tensor_first_split: false,
    };
    let paths = w.write_split(&prefix, &options, false).unwrap();
    assert_eq!(paths.len(), 3);
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(p.file_name(), split_shard(i + 1).file_name());
        assert!(
            fs::read(p).unwrap() == fs::read(split_shard(i + 1)).unwrap(),
            "shard {} differs",
            i + 1
        );
    }
    let progress = progress.lock().unwrap();
    assert_eq!(progress.len(), 39);
    let total: u64 = set.shards.iter().map(|s| s.file_size - s.data_offset).sum();
    assert_eq!(*progress.last().unwrap(), (total, total));

    // Existing shards are not replaced without overwrite, and nothing is left half-written.
    let mut again = GgufWriter::new();
    again.add_tensor(Tensor::computed("x", DType::F32, vec![1], || {
        Ok(vec![0; 4])
    }));
    again.add_tensor(Tensor::computed("y", DType::F32, vec![1], || {
        Ok(vec![0; 4])
    }));
    again.add_tensor(Tensor::computed("z", DType::F32, vec![1], || {
        Ok(vec![0; 4])
    }));
    assert!(again
        .write_split(
            &prefix,
            &SplitOptions {
                by: SplitBy::MaxTensors(1),
                ..options
            },
            false
        )
        .is_err());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 3);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn split_by_size_follows_llama_gguf_split() {
    let dir = scratch("split-size");
    let tensor = |name: &str, n: u64| {
        Tensor::computed(name, DType::F32, vec![n], move || {
            Ok(vec![1; n as usize * 4])
        })
    };
    let build = || {
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", GgufValue::string("x"));
        // padded sizes 64, 32, 96, 32
        for (name, n) in [("a", 16), ("b", 3), ("c", 24), ("d", 8)] {
            w.add_tensor(tensor(name, n));
        }
        w
    };
    let by_size = |max, first| SplitOptions {
        by: SplitBy::MaxBytes(max),
        no_tensor_first_split: first,
    };
    let paths = build()
        .write_split(&dir.join("m"), &by_size(100, false), false)
        .unwrap();
    let names: Vec<Vec<String>> = paths
        .iter()
        .map(|p| {
            GgufFile::open(p)
                .unwrap()
                .tensor_infos
                .iter()
                .map(|t| t.name.clone())
                .collect()
        })
        .collect();
    assert_eq!(names, vec![vec!["a", "b"], vec!["c"], vec!["d"]]);
    let set = open_split(&paths[1]).unwrap();
    assert_eq!(set.tensors().len(), 4);
    assert_eq!(
        set.get("general.architecture"),
        Some(&GgufValue::string("x"))
    );

    let paths = build()
        .write_split(&dir.join("n"), &by_size(1000, true), false)
        .unwrap();
    assert_eq!(paths.len(), 2);
    let first = GgufFile::open(&paths[0]).unwrap();
    assert!(first.tensor_infos.is_empty());
    assert_eq!(first.kvs.len(), 4);
    assert_eq!(GgufFile::open(&paths[1]).unwrap().kvs.len(), 3);

    let err = build()
        .write_split(&dir.join("o"), &by_size(50, false), false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("tensor 'a'"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn writer_refuses_what_readers_would_reject() {
    let f32 = |name: &str| Tensor::computed(name, DType::F32, vec![2], || Ok(vec![0; 8]));
    let write = |w: GgufWriter| {
        w.write_to(&mut Vec::new())
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };

    let mut w = GgufWriter::new();
    w.add_kv("k", GgufValue::U8(1));
    w.add_kv("k", GgufValue::U8(2));
    assert!(write(w).contains("key 'k' is added twice"));

    let mut w = GgufWriter::new();
    w.add_tensor(f32("t"));
    w.add_tensor(f32("t"));
    assert!(write(w).contains("tensor 't' is added twice"));

    let mut w = GgufWriter::new();
    w.add_kv(
        "mixed",
        GgufValue::Array(GgufArray::new(
            GgufValueType::I32,
            vec![GgufValue::I32(1), GgufValue::U8(2)],
        )),
    );
    assert!(write(w).contains("item #1 is UINT8 in an array of INT32"));

    let mut w = GgufWriter::new();
    w.add_tensor(Tensor::computed("u", DType::U16, vec![2], || {
        Ok(vec![0; 4])
    }));
    assert!(write(w).contains("U16 has no GGUF"));

    let mut w = GgufWriter::new();
    w.add_tensor(Tensor::computed(
        "q",
        DType::Ggml(GgmlType::Q4_K),
        vec![2, 100],
        || Ok(vec![]),
    ));
    assert!(write(w).contains("block size 256"));

    let mut w = GgufWriter::new();
    w.add_tensor(Tensor::computed(
        "five",
        DType::F32,
        vec![1, 1, 1, 1, 2],
        || Ok(vec![0; 8]),
    ));
    assert!(write(w).contains("5 dimensions"));

    // A tensor whose data does not match its declared size is caught while writing.
    let mut w = GgufWriter::new();
    w.add_tensor(Tensor::computed("short", DType::F32, vec![4], || {
        Ok(vec![0; 12])
    }));
    assert!(write(w).contains("'short'"));
}

#[test]
fn set_kv_moves_the_key_to_the_end_like_gguf_set_val() {
    let mut w = GgufWriter::new();
    w.add_kv("a", GgufValue::U32(1));
    w.add_kv("b", GgufValue::U32(2));
    w.set_kv("a", GgufValue::U32(3));
    let keys: Vec<&str> = w.kvs().iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["b", "a"]);
    assert_eq!(w.remove_kv("b"), Some(GgufValue::U32(2)));
    assert_eq!(w.kvs().len(), 1);
}

/// A tensor produced by bands of rows is streamed in several pieces (it is larger than one
/// piece) and lands byte for byte where a whole-tensor write puts it; a band that fails stops
/// the write with its error and leaves no output.
#[test]
fn row_banded_tensors_stream_in_pieces_and_match_whole_writes() {
    let (rows, cols) = (3000usize, 1100usize); // 13.2 MB of f32: two pieces and a partial one
    let value = |r: usize, c: usize| (r * 31 + c * 7) as f32 * 0.25;
    let banded = Tensor::from_rows(
        "banded.weight",
        DType::F32,
        vec![rows as u64, cols as u64],
        rows,
        cols * 4,
        move |range, dst| {
            for (r, row) in range.zip(dst.chunks_exact_mut(cols * 4)) {
                for (c, x) in row.chunks_exact_mut(4).enumerate() {
                    x.copy_from_slice(&value(r, c).to_le_bytes());
                }
            }
            Ok(())
        },
    );
    let whole = Tensor::computed(
        "banded.weight",
        DType::F32,
        vec![rows as u64, cols as u64],
        move || {
            Ok((0..rows)
                .flat_map(|r| (0..cols).flat_map(move |c| value(r, c).to_le_bytes()))
                .collect())
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |t: Tensor, name: &str| {
        let mut w = GgufWriter::new();
        w.add_kv("general.architecture", GgufValue::String("llama".into()));
        w.add_tensor(Tensor::computed("small", DType::F32, vec![3], || {
            Ok(vec![0u8; 12])
        }));
        w.add_tensor(t);
        let out = dir.path().join(name);
        w.write(&out, false).map(|()| out)
    };
    let a = write(banded, "banded.gguf").unwrap();
    let b = write(whole, "whole.gguf").unwrap();
    assert!(fs::read(&a).unwrap() == fs::read(&b).unwrap());
    assert_eq!(GgufFile::open(&a).unwrap().tensor_infos.len(), 2);

    let failing = Tensor::from_rows(
        "bad.weight",
        DType::F32,
        vec![rows as u64, cols as u64],
        rows,
        cols * 4,
        |range, _| {
            if range.end == 3000 {
                Err(ckpt_core::Error::Other("band 3 refused".into()))
            } else {
                Ok(())
            }
        },
    );
    let err = write(failing, "failing.gguf").unwrap_err().to_string();
    assert!(err.contains("band 3 refused"), "{err}");
    assert!(!dir.path().join("failing.gguf").exists());
}
