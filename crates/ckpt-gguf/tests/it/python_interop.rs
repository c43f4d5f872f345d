//! Interop with gguf-py (the reference Python reader/writer). Skips unless CKPT_PYTHON names an
//! interpreter with the `gguf` package.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use ckpt_core::{Buffer, DType, GgmlType, Storage, Tensor};
use ckpt_gguf::*;
use common::*;
use serde_json::{json, Value as J};

fn python() -> Option<String> {
    match std::env::var("CKPT_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            eprintln!("skipping gguf-py interop test: CKPT_PYTHON is not set");
            None
        }
    }
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/gguf_py_interop.py")
}

fn run(py: &str, mode: &str, path: &Path) -> String {
    let out = Command::new(py)
        .arg(script())
        .arg(mode)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "gguf-py {mode} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A value in the dump's notation: floats as IEEE bits, strings as UTF-8 hex.
fn dump_value(v: &GgufValue) -> J {
    match v {
        GgufValue::F32(x) => json!(format!("0x{:08x}", x.to_bits())),
        GgufValue::F64(x) => json!(format!("0x{:016x}", x.to_bits())),
        GgufValue::String(s) => json!(hex(s.as_bytes())),
        GgufValue::Array(a) => J::Array(a.items.iter().map(dump_value).collect()),
        other => to_json(other),
    }
}

fn dump_types(v: &GgufValue) -> J {
    match v {
        GgufValue::Array(a) => json!(["ARRAY", a.elem_type.name()]),
        other => json!([other.value_type().name()]),
    }
}

/// Compares our reading of `path` with gguf-py's dump of it.
fn assert_same_as_gguf_py(path: &Path, dump: &J) {
    let f = GgufFile::open(path).unwrap();
    assert_eq!(f.alignment, dump["alignment"].as_u64().unwrap());
    assert_eq!(f.data_offset, dump["data_offset"].as_u64().unwrap());
    let fields = dump["fields"].as_array().unwrap();
    assert_eq!(f.kvs.len(), fields.len());
    for ((k, v), d) in f.kvs.iter().zip(fields) {
        assert_eq!(k, d["key"].as_str().unwrap());
        assert_eq!(dump_types(v), d["types"], "{k}");
        assert_eq!(dump_value(v), d["value"], "{k}");
    }
    let tensors = dump["tensors"].as_array().unwrap();
    assert_eq!(f.tensor_infos.len(), tensors.len());
    for (i, (t, d)) in f.tensor_infos.iter().zip(tensors).enumerate() {
        assert_eq!(t.name, d["name"].as_str().unwrap());
        assert_eq!(t.ggml_type.name(), d["type"].as_str().unwrap());
        assert_eq!(json!(t.ne), d["ne"], "{}", t.name);
        assert_eq!(t.nbytes(), d["n_bytes"].as_u64().unwrap(), "{}", t.name);
        assert_eq!(
            f.data_offset + t.offset,
            d["data_offset"].as_u64().unwrap(),
            "{}",
            t.name
        );
        assert_eq!(
            sha256_hex(f.tensor_data(i).unwrap()),
            d["sha256"].as_str().unwrap(),
            "{}",
            t.name
        );
    }
}

fn owned_tensor(name: &str, dtype: DType, shape: Vec<u64>, bytes: Vec<u8>) -> Tensor {
    let len = bytes.len();
    let storage = Storage::new(Buffer::owned(name, bytes), 0, len, name).unwrap();
    Tensor::contiguous(name, dtype, shape, storage)
}

/// Every value type (scalars at their limits, special floats, empty and multi-byte strings,
/// arrays of every element type including empty ones) and every plain tensor type plus blocks.
fn every_type_writer() -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", GgufValue::string("interop"));
    w.add_kv("general.alignment", GgufValue::U32(64));
    w.add_kv("t.u8", GgufValue::U8(u8::MAX));
    w.add_kv("t.i8", GgufValue::I8(i8::MIN));
    w.add_kv("t.u16", GgufValue::U16(u16::MAX));
    w.add_kv("t.i16", GgufValue::I16(i16::MIN));
    w.add_kv("t.u32", GgufValue::U32(u32::MAX));
    w.add_kv("t.i32", GgufValue::I32(i32::MIN));
    w.add_kv("t.f32", GgufValue::F32(f32::from_bits(1)));
    w.add_kv("t.f32_nan", GgufValue::F32(f32::NAN));
    w.add_kv("t.f32_neg_inf", GgufValue::F32(f32::NEG_INFINITY));
    w.add_kv("t.bool_true", GgufValue::Bool(true));
    w.add_kv("t.bool_false", GgufValue::Bool(false));
    w.add_kv(
        "t.str",
        GgufValue::string("naïve ✓ 東京 🙂 \u{2581}tok \"q\"\n\t"),
    );
    w.add_kv("t.str_empty", GgufValue::string(""));
    w.add_kv("t.u64", GgufValue::U64(u64::MAX));
    w.add_kv("t.i64", GgufValue::I64(i64::MIN));
    w.add_kv("t.f64", GgufValue::F64(-0.0));
    w.add_kv("t.arr_u8", GgufValue::u8_array([0, 1, 255]));
    w.add_kv("t.arr_i8", GgufValue::i8_array([-128, 0, 127]));
    w.add_kv("t.arr_u16", GgufValue::u16_array([0, 65535]));
    w.add_kv("t.arr_i16", GgufValue::i16_array([-32768, 32767]));
    w.add_kv("t.arr_u32", GgufValue::u32_array([0, u32::MAX]));
    w.add_kv(
        "t.arr_i32",
        GgufValue::i32_array([i32::MIN, -1, 0, i32::MAX]),
    );
    w.add_kv(
        "t.arr_f32",
        GgufValue::f32_array([0.1, -0.0, f32::INFINITY, f32::NAN, f32::MAX]),
    );
    w.add_kv("t.arr_bool", GgufValue::bool_array([true, false, true]));
    w.add_kv(
        "t.arr_str",
        GgufValue::string_array(["<unk>", "", "\u{2581}the", "🙂"]),
    );
    w.add_kv("t.arr_u64", GgufValue::u64_array([0, u64::MAX]));
    w.add_kv("t.arr_i64", GgufValue::i64_array([i64::MIN, i64::MAX]));
    w.add_kv(
        "t.arr_f64",
        GgufValue::f64_array([5e-324, f64::NEG_INFINITY]),
    );
    w.add_kv("t.arr_empty_i32", GgufValue::i32_array([]));
    w.add_kv(
        "t.arr_empty_str",
        GgufValue::string_array(Vec::<String>::new()),
    );

    let pattern = |n: usize| (0..n).map(|i| (i * 37 + 11) as u8).collect::<Vec<u8>>();
    w.add_tensor(owned_tensor(
        "f32_3d",
        DType::F32,
        vec![2, 3, 5],
        pattern(120),
    ));
    w.add_tensor(owned_tensor("f16", DType::F16, vec![4, 8], pattern(64)));
    w.add_tensor(owned_tensor("bf16", DType::BF16, vec![3, 2], pattern(12)));
    w.add_tensor(owned_tensor("i8", DType::I8, vec![5], pattern(5)));
    w.add_tensor(owned_tensor("i16", DType::I16, vec![3], pattern(6)));
    w.add_tensor(owned_tensor("i32", DType::I32, vec![1, 2], pattern(8)));
    w.add_tensor(owned_tensor("i64", DType::I64, vec![2], pattern(16)));
    w.add_tensor(owned_tensor("f64", DType::F64, vec![3], pattern(24)));
    w.add_tensor(owned_tensor(
        "q8_0",
        DType::Ggml(GgmlType::Q8_0),
        vec![2, 64],
        pattern(136),
    ));
    w.add_tensor(owned_tensor(
        "q4_k",
        DType::Ggml(GgmlType::Q4_K),
        vec![1, 256],
        pattern(144),
    ));
    w
}

#[test]
fn gguf_py_reads_our_big_endian_files_and_the_converters() {
    let Some(py) = python() else { return };
    let dir = scratch("py-reads-be");
    let path = dir.join("every-type-be.gguf");
    let mut w = every_type_writer();
    w.set_byte_order(ByteOrder::Big);
    w.write(&path, false).unwrap();
    let mut files = vec![path];
    for name in [
        "tiny-llama.f16.be.gguf",
        "tiny-llama.q8_0.be.gguf",
        "lora/llama-a-bf16adapter-bf16.be.gguf",
    ] {
        files.push(fixtures().join("../bigendian").join(name));
    }
    for path in &files {
        let dump: J = serde_json::from_str(&run(&py, "dump", path)).unwrap();
        assert_eq!(dump["byte_order"], "BIG", "{}", path.display());
        assert_same_as_gguf_py(path, &dump);
    }
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn gguf_py_reads_what_we_write() {
    let Some(py) = python() else { return };
    let dir = scratch("py-reads");
    let path = dir.join("every-type.gguf");
    every_type_writer().write(&path, false).unwrap();
    let dump: J = serde_json::from_str(&run(&py, "dump", &path)).unwrap();
    assert_eq!(dump["alignment"], 64);
    assert_eq!(dump["fields"].as_array().unwrap().len(), 32);
    assert_eq!(dump["tensors"].as_array().unwrap().len(), 10);
    assert_same_as_gguf_py(&path, &dump);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn we_read_and_rewrite_what_gguf_py_writes() {
    let Some(py) = python() else { return };
    let dir = scratch("py-writes");
    let path = dir.join("gguf-py.gguf");
    run(&py, "write", &path);
    let dump: J = serde_json::from_str(&run(&py, "dump", &path)).unwrap();
    assert_same_as_gguf_py(&path, &dump);

    let f = GgufFile::open(&path).unwrap();
    let mut w = GgufWriter::new();
    for (k, v) in &f.kvs {
        w.add_kv(k, v.clone());
    }
    for t in f.tensors() {
        w.add_tensor(t);
    }
    let copy = dir.join("copy.gguf");
    w.write(&copy, false).unwrap();
    assert!(
        fs::read(&copy).unwrap() == fs::read(&path).unwrap(),
        "rewriting gguf-py's file changed its bytes"
    );
    fs::remove_dir_all(dir).unwrap();
}
