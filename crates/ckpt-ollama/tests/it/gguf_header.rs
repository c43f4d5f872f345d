//! The KV/tensor-info reader against gguf-py's metadata-zoo file (every value type) and
//! malformed inputs.

use crate::common;

use ckpt_ollama::gguf_meta::GgufValue;
use ckpt_ollama::GgufHeader;
use common::fixture;

#[test]
fn reads_every_value_type_of_the_metadata_zoo() {
    let h = GgufHeader::open(&fixture("metadata-zoo.gguf")).unwrap();
    assert_eq!(h.version, 3);
    assert_eq!(h.architecture(), "zoo");
    assert_eq!(h.tensors.len(), 11);
    assert_eq!(h.get("zoo.u8.max"), Some(&GgufValue::U8(255)));
    assert_eq!(h.get("zoo.i16.min"), Some(&GgufValue::I16(-32768)));
    assert_eq!(h.get("zoo.u64.max"), Some(&GgufValue::U64(u64::MAX)));
    assert_eq!(h.get("zoo.i64.min"), Some(&GgufValue::I64(i64::MIN)));
    assert_eq!(
        h.get("zoo.f32.pi"),
        Some(&GgufValue::F32(std::f32::consts::PI))
    );
    assert_eq!(
        h.get("zoo.f64.e"),
        Some(&GgufValue::F64(std::f64::consts::E))
    );
    assert_eq!(h.get("zoo.bool.false"), Some(&GgufValue::Bool(false)));
    assert_eq!(
        h.get_str("zoo.str.utf8"),
        Some("naïve café ✓ 東京 🙂 ▁token")
    );
    assert_eq!(
        h.get_str("zoo.str.newlines"),
        Some("line1\nline2\r\n\ttabbed \"quoted\" \\backslash")
    );
    match h.get("zoo.arr.i8") {
        Some(GgufValue::Array(a)) => {
            assert_eq!(a.items, [-128i8, -1, 0, 1, 127].map(GgufValue::I8))
        }
        other => panic!("zoo.arr.i8 = {other:?}"),
    }
    // general.file_type 0 (ALL_F32) reads as "unknown", exactly as Ollama's KV.FileType().
    assert_eq!(h.file_type_name(), "unknown");
}

#[test]
fn big_endian_files_read_the_same_values() {
    let le = GgufHeader::open(&fixture("metadata-zoo.gguf")).unwrap();
    let be = GgufHeader::open(&fixture("metadata-zoo-bigendian.gguf")).unwrap();
    assert!(be.big_endian && !le.big_endian);
    // Compared through Debug text because NaN != NaN; a short message keeps failures readable.
    for ((bk, bv), (lk, lv)) in be.kvs.iter().zip(&le.kvs) {
        assert!(
            bk == lk && format!("{bv:?}") == format!("{lv:?}"),
            "{bk} differs between byte orders"
        );
    }
    assert_eq!(be.kvs.len(), le.kvs.len());
    assert_eq!(be.tensors, le.tensors);
}

#[test]
fn rejects_truncated_and_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(fixture("metadata-zoo.gguf")).unwrap();
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &whole[..300]).unwrap();
    let err = GgufHeader::open(&cut).unwrap_err();
    assert!(
        err.message.contains("cut.gguf") && err.message.contains("byte"),
        "{}",
        err.message
    );

    let huge = dir.path().join("huge.gguf");
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&u64::MAX.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    std::fs::write(&huge, bytes).unwrap();
    assert!(GgufHeader::open(&huge)
        .unwrap_err()
        .message
        .contains("tensor count"));

    let text = dir.path().join("t.gguf");
    std::fs::write(&text, b"hello world, not gguf").unwrap();
    assert_eq!(
        GgufHeader::open(&text).unwrap_err().message,
        "supplied file was not in GGUF format"
    );
}
