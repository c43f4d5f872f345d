//! Reading the reference fixtures (gguf-py and llama.cpp outputs) and writing them back
//! byte for byte.

use crate::common;

use std::fs;

use ckpt_core::{DType, Format};
use ckpt_gguf::*;
use common::*;
use serde_json::Value as J;

fn expected_zoo() -> J {
    read_json(&zoo("metadata-zoo.expected.json"))
}

fn expected_file<'a>(exp: &'a J, file: &str) -> &'a J {
    exp["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["file"] == file)
        .unwrap()
}

fn expected_kv<'a>(exp: &'a J, file: &'a J, key: &str) -> &'a J {
    exp["kv"]
        .as_array()
        .unwrap()
        .iter()
        .chain(file["extra_kv"].as_array().unwrap())
        .find(|kv| kv["key"] == key)
        .unwrap_or_else(|| panic!("no expectation for {key}"))
}

fn float_bits(v: &GgufValue) -> String {
    match v {
        GgufValue::F32(x) => format!("0x{:08x}", x.to_bits()),
        GgufValue::F64(x) => format!("0x{:016x}", x.to_bits()),
        other => panic!("not a float: {other:?}"),
    }
}

/// Compares a decoded value with the expectation's `value`/`values`/`bits`/`utf8_*` fields.
fn check_decoded(key: &str, v: &GgufValue, e: &J) {
    match v {
        GgufValue::F32(_) | GgufValue::F64(_) => assert_eq!(float_bits(v), e["bits"], "{key}"),
        GgufValue::String(s) => match e.get("utf8_hex") {
            Some(h) => assert_eq!(hex(s.as_bytes()), *h, "{key}"),
            None => {
                assert_eq!(sha256_hex(s.as_bytes()), e["utf8_sha256"], "{key}");
                assert_eq!(s.len() as u64, e["utf8_len"].as_u64().unwrap(), "{key}");
            }
        },
        GgufValue::Array(a) => {
            assert_eq!(a.elem_type.name(), e["element_type"], "{key}");
            if a.elem_type == GgufValueType::Array {
                let arrays = e["arrays"].as_array().unwrap();
                assert_eq!(a.items.len(), arrays.len(), "{key}");
                for (item, ea) in a.items.iter().zip(arrays) {
                    check_decoded(key, item, ea);
                }
                return;
            }
            let values = e["values"].as_array().unwrap();
            assert_eq!(a.items.len(), values.len(), "{key}");
            if let Some(c) = e.get("count") {
                assert_eq!(a.items.len() as u64, c.as_u64().unwrap(), "{key}");
            }
            match a.elem_type {
                GgufValueType::F32 | GgufValueType::F64 => {
                    let bits = e["bits"].as_array().unwrap();
                    for (item, b) in a.items.iter().zip(bits) {
                        assert_eq!(float_bits(item), *b, "{key}");
                    }
                }
                _ => {
                    for (item, ev) in a.items.iter().zip(values) {
                        assert_eq!(to_json(item), *ev, "{key}");
                    }
                }
            }
        }
        other => assert_eq!(to_json(other), e["value"], "{key}"),
    }
}

fn check_zoo_file(name: &str, f: &GgufFile) {
    let exp = expected_zoo();
    let ef = expected_file(&exp, name);
    let order: Vec<&str> = f.kvs.iter().map(|(k, _)| k.as_str()).collect();
    let expected_order: Vec<&str> = ef["kv_order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    assert_eq!(order, expected_order, "{name}: key order");
    assert_eq!(f.alignment, ef["alignment"].as_u64().unwrap(), "{name}");
    for (key, v) in &f.kvs {
        let e = expected_kv(&exp, ef, key);
        assert_eq!(v.value_type().name(), e["type"], "{name}: {key}");
        let encoded = encode_value(v);
        match e.get("le_value_bytes_hex") {
            Some(h) => assert_eq!(hex(&encoded), *h, "{name}: {key} bytes"),
            None => {
                assert_eq!(
                    sha256_hex(&encoded),
                    e["le_value_bytes_sha256"],
                    "{name}: {key} bytes"
                );
                assert_eq!(
                    encoded.len() as u64,
                    e["le_value_bytes_len"].as_u64().unwrap(),
                    "{name}: {key}"
                );
            }
        }
        check_decoded(key, v, e);
        assert!(std::ptr::eq(f.get(key).unwrap(), v), "{key}");
    }

    let et = ef["tensors"].as_array().unwrap();
    assert_eq!(f.tensor_infos.len(), et.len(), "{name}");
    let tensors = f.tensors();
    for (i, (info, e)) in f.tensor_infos.iter().zip(et).enumerate() {
        assert_eq!(info.name, e["name"].as_str().unwrap());
        assert_eq!(info.ggml_type.name(), e["type"], "{}", info.name);
        let ne: Vec<u64> = e["ne"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(info.ne, ne, "{}", info.name);
        assert_eq!(
            info.nbytes(),
            e["nbytes"].as_u64().unwrap(),
            "{}",
            info.name
        );
        let data = f.tensor_data(i).unwrap();
        assert_eq!(sha256_hex(data), e["data_sha256"], "{}", info.name);

        let t = &tensors[i];
        assert_eq!(t.name, info.name);
        assert_eq!(t.shape, ne.iter().rev().copied().collect::<Vec<_>>());
        assert_eq!(t.dtype, DType::from_ggml(info.ggml_type));
        // Tensors come out little-endian; the stored bytes (hashed above) may not be. A
        // big-endian file's BF16 and block data has no agreed byte order: refused when read.
        if f.big_endian && matches!(t.dtype, DType::BF16 | DType::Ggml(_)) {
            let err = t.bytes().unwrap_err().to_string();
            assert!(
                err.contains(name) && err.contains(&format!("'{}'", info.name)),
                "{err}"
            );
            assert!(err.contains("not supported"), "{err}");
            continue;
        }
        let le = t.bytes().unwrap();
        if !f.big_endian {
            assert_eq!(&*le, data);
        }
        if let (Some(values), DType::F32) = (e.get("values"), t.dtype) {
            let got: Vec<f32> = le
                .chunks(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            let want: Vec<f32> = values
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().parse().unwrap())
                .collect();
            assert_eq!(got, want, "{}", info.name);
        }
    }
}

#[test]
fn zoo_kvs_and_tensors_match_expected() {
    for name in ["metadata-zoo.gguf", "metadata-zoo-align64.gguf"] {
        let f = GgufFile::open(&zoo(name)).unwrap();
        assert_eq!(f.version, 3);
        check_zoo_file(name, &f);
    }
    let f = GgufFile::open(&zoo("metadata-zoo-align64.gguf")).unwrap();
    assert_eq!(f.alignment, 64);
    assert_eq!(f.data_offset % 64, 0);
}

#[test]
fn zoo_matches_manifest_layout() {
    for name in ["metadata-zoo.gguf", "metadata-zoo-align64.gguf"] {
        let f = GgufFile::open(&zoo(name)).unwrap();
        let m = manifest_entry(&format!("metadata-zoo/{name}"));
        assert_eq!(f.data_offset, m["data_offset"].as_u64().unwrap(), "{name}");
        assert_eq!(f.file_size, m["size"].as_u64().unwrap(), "{name}");
        for (info, e) in f.tensor_infos.iter().zip(m["tensors"].as_array().unwrap()) {
            assert_eq!(
                info.offset,
                e["offset"].as_u64().unwrap(),
                "{name}: {}",
                info.name
            );
        }
    }
}

#[test]
fn nested_arrays_are_rejected_like_llama_cpp_unless_allowed() {
    let path = zoo("metadata-zoo-nested.gguf");
    let err = GgufFile::open(&path).unwrap_err().to_string();
    assert!(err.contains("metadata-zoo-nested.gguf"), "{err}");
    assert!(
        err.contains("zoo.nested.arr_of_arr_str") && err.contains("array of arrays"),
        "{err}"
    );
    assert!(err.contains("at byte"), "{err}");

    let lenient = ParseOptions {
        allow_nested_arrays: true,
    };
    let f = GgufFile::open_with(&path, &lenient).unwrap();
    check_zoo_file("metadata-zoo-nested.gguf", &f);
    // The empty arrays alone are fine for llama.cpp and for us.
    assert_eq!(
        f.get("zoo.empty.arr_str"),
        Some(&GgufValue::string_array(Vec::<String>::new()))
    );
}

#[test]
fn big_endian_file_reads_like_gguf_py() {
    let f = GgufFile::open(&zoo("metadata-zoo-bigendian.gguf")).unwrap();
    assert!(f.big_endian);
    assert_eq!(f.version, 3);
    check_zoo_file("metadata-zoo-bigendian.gguf", &f);
    // Number tensors come out as in the little-endian twin; BF16 and Q8_0 data (swapped here as
    // gguf_convert_endian.py does, left alone by convert_hf_to_gguf.py --bigendian) is refused.
    let le = GgufFile::open(&zoo("metadata-zoo.gguf")).unwrap();
    let mut compared = 0;
    for (a, b) in f.tensors().iter().zip(le.tensors()) {
        match a.bytes() {
            Ok(bytes) => {
                assert_eq!(bytes, b.bytes().unwrap(), "{}", a.name);
                compared += 1;
            }
            Err(e) => {
                assert!(
                    matches!(a.dtype, DType::BF16 | DType::Ggml(_)),
                    "{}: {e}",
                    a.name
                );
                assert!(e.to_string().contains("metadata-zoo-bigendian.gguf"), "{e}");
            }
        }
    }
    assert_eq!(compared, f.tensors().len() - 2);
}

#[test]
fn big_endian_block_types_fail_when_read() {
    // MXFP4 has no multi-byte field: both ways of writing a big-endian file agree on it. Q5_1
    // has fp16 fields, whose byte order depends on the tool that wrote the file.
    let mut w = GgufWriter::new();
    w.add_tensor(ckpt_core::Tensor::computed(
        "q5",
        DType::Ggml(ckpt_core::GgmlType::Q5_1),
        vec![32],
        || Ok(vec![0; 24]),
    ));
    let mut le = Vec::new();
    w.write_to(&mut le).unwrap();
    let be = swap_header_to_big_endian(&le);
    let f = GgufFile::from_buffer(
        ckpt_core::Buffer::owned("be.gguf", be),
        &ParseOptions::default(),
    )
    .unwrap();
    assert!(f.big_endian);
    let err = f.tensors()[0].bytes().unwrap_err().to_string();
    assert!(
        err.contains("be.gguf") && err.contains("'q5'") && err.contains("Q5_1"),
        "{err}"
    );
}

/// Byte-swaps the numbers of a little-endian header with one tensor and no KVs.
fn swap_header_to_big_endian(le: &[u8]) -> Vec<u8> {
    let mut be = le.to_vec();
    let swap = |b: &mut Vec<u8>, at: usize, n: usize| b[at..at + n].reverse();
    swap(&mut be, 4, 4); // version
    swap(&mut be, 8, 8); // tensor count
    swap(&mut be, 16, 8); // kv count
    let name_len = u64::from_le_bytes(le[24..32].try_into().unwrap()) as usize;
    swap(&mut be, 24, 8);
    let mut at = 32 + name_len;
    let n_dims = u32::from_le_bytes(le[at..at + 4].try_into().unwrap()) as usize;
    swap(&mut be, at, 4);
    at += 4;
    for _ in 0..n_dims {
        swap(&mut be, at, 8);
        at += 8;
    }
    swap(&mut be, at, 4); // type
    swap(&mut be, at + 4, 8); // offset
    be
}

/// Reads a file and writes everything back through the writer.
fn rewrite(f: &GgufFile, mode: DimsMode) -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.set_dims_mode(mode);
    for (k, v) in &f.kvs {
        w.add_kv(k, v.clone());
    }
    for t in f.tensors() {
        w.add_tensor(t);
    }
    assert_eq!(w.header_bytes().unwrap(), f.header_bytes());
    let expected_size = w.total_size().unwrap();
    let mut out = Vec::new();
    let n = w.write_to(&mut out).unwrap();
    assert_eq!(n, out.len() as u64);
    assert_eq!(n, expected_size);
    out
}

#[test]
fn zoo_round_trips_byte_for_byte() {
    for name in ["metadata-zoo.gguf", "metadata-zoo-align64.gguf"] {
        let path = zoo(name);
        let f = GgufFile::open(&path).unwrap();
        let out = rewrite(&f, DimsMode::AsGiven);
        assert!(
            out == fs::read(&path).unwrap(),
            "{name} differs after a round trip"
        );
    }
    let f = GgufFile::open_with(
        &zoo("metadata-zoo-nested.gguf"),
        &ParseOptions {
            allow_nested_arrays: true,
        },
    )
    .unwrap();
    assert!(rewrite(&f, DimsMode::AsGiven) == fs::read(zoo("metadata-zoo-nested.gguf")).unwrap());
}

#[test]
fn split_shards_round_trip_byte_for_byte_with_the_c_dims_rule() {
    for i in 1..=3 {
        let path = split_shard(i);
        let f = GgufFile::open(&path).unwrap();
        // llama-gguf-split is ggml's C writer: both modes give the same bytes for files whose
        // n_dims already follow its rule.
        for mode in [DimsMode::TrimTrailingOnes, DimsMode::AsGiven] {
            assert!(
                rewrite(&f, mode) == fs::read(&path).unwrap(),
                "shard {i} differs ({mode:?})"
            );
        }
    }
}

#[test]
fn write_to_disk_is_atomic_and_reports_progress() {
    let dir = scratch("atomic");
    let src = GgufFile::open(&zoo("metadata-zoo-align64.gguf")).unwrap();
    let out = dir.join("copy.gguf");
    let calls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut w = GgufWriter::new();
    for (k, v) in &src.kvs {
        w.add_kv(k, v.clone());
    }
    for t in src.tensors() {
        w.add_tensor(t);
    }
    let sink = calls.clone();
    w.set_progress("writing", running_totals(sink));
    w.write(&out, false).unwrap();
    assert!(fs::read(&out).unwrap() == fs::read(zoo("metadata-zoo-align64.gguf")).unwrap());
    let calls = calls.lock().unwrap();
    assert_eq!(calls.len(), src.tensor_infos.len());
    let total = src.file_size - src.data_offset;
    assert_eq!(*calls.last().unwrap(), (total, total));
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
    // No overwrite without asking; nothing else left in the directory.
    assert!(GgufWriter::new().write(&out, false).is_err());
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn split_set_opens_as_one_model() {
    let unsplit = manifest_entry("tiny-llama-spm.Q2_K.gguf");
    let unsplit_tensors = unsplit["tensors"].as_array().unwrap();
    for given in [1, 2, 3] {
        let set = open_split(&split_shard(given)).unwrap();
        assert_eq!(set.shards.len(), 3);
        assert_eq!(set.paths(), (1..=3).map(split_shard).collect::<Vec<_>>());
        // The model's KVs are the unsplit file's followed by the split keys.
        let keys: Vec<&str> = set.kvs().iter().map(|(k, _)| k.as_str()).collect();
        let mut want: Vec<&str> = unsplit["kv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|kv| kv["key"].as_str().unwrap())
            .collect();
        want.extend([SPLIT_NO_KEY, SPLIT_TENSORS_COUNT_KEY, SPLIT_COUNT_KEY]);
        assert_eq!(keys, want);

        let tensors = set.tensors();
        assert_eq!(tensors.len(), unsplit_tensors.len());
        for (t, e) in tensors.iter().zip(unsplit_tensors) {
            assert_eq!(t.name, e["name"].as_str().unwrap());
            assert_eq!(
                t.dtype.to_string(),
                e["type"].as_str().unwrap(),
                "{}",
                t.name
            );
            let ne: Vec<u64> = e["ne"]
                .as_array()
                .unwrap()
                .iter()
                .rev()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(t.shape, ne, "{}", t.name);
            assert_eq!(
                sha256_hex(&t.bytes().unwrap()),
                e["data_sha256"],
                "{}",
                t.name
            );
        }
        let ck = set.to_checkpoint();
        assert_eq!(ck.format, Format::Gguf);
        assert_eq!(ck.files.len(), 3);
        assert_eq!(ck.tensors.len(), tensors.len());
        assert_eq!(
            ck.metadata.get("general.architecture").map(String::as_str),
            Some("llama")
        );
        assert!(ck.extras.contains_key("tokenizer.ggml.tokens"));
    }
    // Each shard alone also matches its own manifest entry (offsets and hashes).
    for i in 1..=3 {
        let f = GgufFile::open(&split_shard(i)).unwrap();
        let m = manifest_entry(&format!(
            "split/tiny-llama-spm.Q2_K-split-{i:05}-of-00003.gguf"
        ));
        assert_eq!(f.data_offset, m["data_offset"].as_u64().unwrap());
        for (k, (info, e)) in f
            .tensor_infos
            .iter()
            .zip(m["tensors"].as_array().unwrap())
            .enumerate()
        {
            assert_eq!(info.offset, e["offset"].as_u64().unwrap());
            assert_eq!(sha256_hex(f.tensor_data(k).unwrap()), e["data_sha256"]);
        }
        for (kv, e) in f.kvs.iter().zip(m["kv"].as_array().unwrap()) {
            assert_eq!(kv.0, e["key"].as_str().unwrap());
            assert_eq!(
                sha256_hex(&encode_value(&kv.1)),
                e["value_sha256"],
                "{}",
                kv.0
            );
        }
    }
}

#[test]
fn split_set_with_a_missing_shard_is_an_error() {
    let dir = scratch("missing-shard");
    for i in [1, 3] {
        fs::copy(
            split_shard(i),
            dir.join(split_shard(i).file_name().unwrap()),
        )
        .unwrap();
    }
    let err = open_split(&dir.join(split_shard(1).file_name().unwrap()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("shard 2") && err.contains("missing"), "{err}");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_plain_file_is_a_split_set_of_one() {
    let set = open_split(&zoo("metadata-zoo.gguf")).unwrap();
    assert_eq!(set.shards.len(), 1);
    assert_eq!(set.tensors().len(), 11);
}

#[test]
fn incremental_header_parse_asks_for_more_until_complete() {
    let bytes = fs::read(split_shard(1)).unwrap();
    let full = GgufFile::open(&split_shard(1)).unwrap();
    let mut have = 0usize;
    let mut rounds = 0;
    let header = loop {
        rounds += 1;
        match parse_header(&bytes[..have]).unwrap() {
            HeaderParse::Complete(h) => break h,
            HeaderParse::NeedMore { at_least } => {
                assert!(
                    at_least > have && at_least <= bytes.len(),
                    "{at_least} after {have}"
                );
                have = at_least;
            }
        }
    };
    assert!(rounds > 3);
    assert_eq!(header, full.header());
    assert_eq!(have as u64, full.infos_end);
}
