//! Damaged and hostile inputs: every one must give an error naming the file, never a panic or
//! a huge allocation.

use crate::common;

use std::fs;
use std::path::Path;

use ckpt_core::{Buffer, DType, Error, GgmlType, Tensor};
use ckpt_gguf::*;
use common::*;

fn open_bytes(bytes: &[u8]) -> ckpt_core::Result<GgufFile> {
    GgufFile::from_buffer(
        Buffer::owned("mutated.gguf", bytes.to_vec()),
        &ParseOptions::default(),
    )
}

/// Everything a consumer might do with a file that opened.
fn exercise(f: &GgufFile) {
    for (_, v) in &f.kvs {
        let _ = describe_value(v, 4);
        let _ = to_json(v);
    }
    for t in f.tensors() {
        // Block data of a (damaged into) big-endian file may have no known layout.
        if let Err(e) = t.bytes() {
            assert!(f.big_endian, "{e}");
        }
    }
}

fn assert_invalid(result: ckpt_core::Result<GgufFile>, context: &str) {
    match result {
        Err(Error::Invalid { path, msg }) => {
            assert_eq!(path, Path::new("mutated.gguf"), "{context}");
            assert!(!msg.is_empty());
        }
        Err(other) => panic!("{context}: unexpected error kind {other:?}"),
        Ok(_) => panic!("{context}: damaged file accepted"),
    }
}

#[test]
fn truncation_anywhere_is_an_error() {
    for path in [
        zoo("metadata-zoo.gguf"),
        zoo("metadata-zoo-bigendian.gguf"),
        split_shard(2),
    ] {
        let bytes = fs::read(&path).unwrap();
        let f = GgufFile::open(&path).unwrap();
        let last_tensor_end = (f.data_offset
            + f.tensor_infos
                .iter()
                .map(|t| t.offset + t.nbytes())
                .max()
                .unwrap()) as usize;
        let mut cuts: Vec<usize> = (0..f.data_offset as usize + 64).collect();
        cuts.extend((f.data_offset as usize..last_tensor_end).step_by(97));
        cuts.push(last_tensor_end - 1);
        for cut in cuts {
            assert_invalid(
                open_bytes(&bytes[..cut]),
                &format!("{} cut at {cut}", path.display()),
            );
        }
        // Only the last tensor's padding may be missing: the data is complete.
        open_bytes(&bytes[..last_tensor_end]).unwrap();
    }
}

#[test]
fn truncated_header_prefix_asks_for_more_or_errors_without_file_size() {
    let bytes = fs::read(zoo("metadata-zoo.gguf")).unwrap();
    let f = GgufFile::open(&zoo("metadata-zoo.gguf")).unwrap();
    for cut in 0..f.infos_end as usize {
        match parse_header(&bytes[..cut]).unwrap() {
            HeaderParse::NeedMore { at_least } => {
                assert!(at_least > cut && at_least <= f.infos_end as usize)
            }
            HeaderParse::Complete(_) => panic!("complete at {cut}"),
        }
    }
}

#[test]
fn huge_counts_and_lengths_anywhere_in_the_header_are_errors() {
    let bytes = fs::read(zoo("metadata-zoo.gguf")).unwrap();
    let f = GgufFile::open(&zoo("metadata-zoo.gguf")).unwrap();
    let huge = [
        u64::MAX,
        1 << 62,
        i64::MAX as u64,
        1 << 40,
        bytes.len() as u64,
    ];
    for pos in 4..f.infos_end as usize - 8 {
        for h in huge {
            let mut m = bytes.clone();
            m[pos..pos + 8].copy_from_slice(&h.to_le_bytes());
            match open_bytes(&m) {
                // Overwriting the payload of a u64/f64 KV or of array items is legitimate.
                Ok(f) => exercise(&f),
                Err(Error::Invalid { .. }) => {}
                Err(e) => panic!("at {pos}: unexpected error kind {e:?}"),
            }
            // Without the file size the parser must not allocate for the claimed counts either.
            if let Ok(HeaderParse::Complete(h)) = parse_header(&m) {
                assert!(h.infos_end as usize <= m.len());
            }
        }
    }
}

/// Byte positions of every count, length, dimension and offset field of a parsed file's header.
fn length_fields(f: &GgufFile) -> Vec<(usize, String)> {
    fn value_fields(v: &GgufValue, pos: &mut usize, key: &str, out: &mut Vec<(usize, String)>) {
        match v {
            GgufValue::String(s) => {
                out.push((*pos, format!("length of string {key}")));
                *pos += 8 + s.len();
            }
            GgufValue::Array(a) => {
                *pos += 4;
                out.push((*pos, format!("count of array {key}")));
                *pos += 8;
                for item in &a.items {
                    value_fields(item, pos, key, out);
                }
            }
            scalar => *pos += scalar.value_type().fixed_size().unwrap(),
        }
    }
    let mut out = vec![
        (8, "tensor count".to_string()),
        (16, "KV count".to_string()),
    ];
    let mut pos = 24;
    for (k, v) in &f.kvs {
        out.push((pos, format!("length of key {k}")));
        pos += 8 + k.len() + 4;
        value_fields(v, &mut pos, k, &mut out);
    }
    for t in &f.tensor_infos {
        out.push((pos, format!("name length of {}", t.name)));
        pos += 8 + t.name.len() + 4;
        for d in 0..t.ne.len() {
            out.push((pos, format!("ne[{d}] of {}", t.name)));
            pos += 8;
        }
        pos += 4;
        out.push((pos, format!("offset of {}", t.name)));
        pos += 8;
    }
    assert_eq!(pos as u64, f.infos_end);
    out
}

#[test]
fn every_count_length_and_dimension_field_set_huge_is_rejected() {
    for path in [zoo("metadata-zoo.gguf"), split_shard(1)] {
        let bytes = fs::read(&path).unwrap();
        let f = GgufFile::open(&path).unwrap();
        let fields = length_fields(&f);
        assert!(fields.len() > 60);
        for (pos, what) in fields {
            for h in [
                u64::MAX,
                1 << 62,
                i64::MAX as u64,
                1 << 40,
                bytes.len() as u64,
            ] {
                let mut m = bytes.clone();
                m[pos..pos + 8].copy_from_slice(&h.to_le_bytes());
                assert_invalid(open_bytes(&m), &format!("{what} at {pos} set to {h}"));
            }
        }
    }
}

#[test]
fn limits_apply_even_when_the_file_size_is_unknown() {
    let mut w = GgufWriter::new();
    w.add_kv("s", GgufValue::string("abc"));
    w.add_kv("a", GgufValue::u8_array([1, 2]));
    let mut good = Vec::new();
    w.write_to(&mut good).unwrap();
    let string_len = find(&good, b"abc") - 8;
    let mut m = good.clone();
    m[string_len..string_len + 8].copy_from_slice(&(MAX_STRING_LENGTH + 1).to_le_bytes());
    let err = parse_header(&m).unwrap_err().to_string();
    assert!(err.contains("key 's'") && err.contains("limit"), "{err}");
    let count = find(&good, &[1, 2]) - 8;
    let mut m = good.clone();
    m[count..count + 8].copy_from_slice(&(MAX_ARRAY_ELEMENTS + 1).to_le_bytes());
    let err = parse_header(&m).unwrap_err().to_string();
    assert!(err.contains("array 'a'") && err.contains("limit"), "{err}");
}

#[test]
fn the_count_fields_name_what_is_wrong() {
    let bytes = fs::read(zoo("metadata-zoo.gguf")).unwrap();
    let mut m = bytes.clone();
    m[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
    let err = open_bytes(&m).unwrap_err().to_string();
    assert!(
        err.contains("mutated.gguf") && err.contains("KV count"),
        "{err}"
    );
    let mut m = bytes.clone();
    m[8..16].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let err = open_bytes(&m).unwrap_err().to_string();
    assert!(
        err.contains("tensor count") && err.contains("at byte 8"),
        "{err}"
    );
}

/// xorshift64*, enough to scatter mutations reproducibly.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545F4914F6CDD1D)
    }
}

#[test]
fn random_byte_damage_never_panics() {
    let mut rng = Rng(0x9E3779B97F4A7C15);
    for path in [
        zoo("metadata-zoo.gguf"),
        zoo("metadata-zoo-align64.gguf"),
        zoo("metadata-zoo-bigendian.gguf"),
        split_shard(3),
    ] {
        let bytes = fs::read(&path).unwrap();
        let header_len = GgufFile::open(&path).unwrap().data_offset as usize;
        for _ in 0..3000 {
            let mut m = bytes.clone();
            for _ in 0..1 + rng.next() % 4 {
                let pos = (rng.next() % header_len as u64) as usize;
                m[pos] = match rng.next() % 4 {
                    0 => 0xFF,
                    1 => 0,
                    2 => m[pos] ^ (1 << (rng.next() % 8)),
                    _ => rng.next() as u8,
                };
            }
            if let Ok(f) = open_bytes(&m) {
                exercise(&f);
            }
            let _ = parse_header(&m);
        }
    }
}

/// Builds a small valid file, then patches one field to make it invalid in a specific way.
fn small_file() -> (Vec<u8>, GgufFile) {
    let mut w = GgufWriter::new();
    w.add_kv("general.architecture", GgufValue::string("test"));
    w.add_kv("test.flag", GgufValue::Bool(true));
    let q = Tensor::computed("q", DType::Ggml(GgmlType::Q8_0), vec![2, 32], || {
        Ok(vec![0; 68])
    });
    let f = Tensor::computed("f", DType::F32, vec![3], || Ok(vec![0; 12]));
    w.add_tensor(q);
    w.add_tensor(f);
    let mut out = Vec::new();
    w.write_to(&mut out).unwrap();
    let parsed = open_bytes(&out).unwrap();
    (out, parsed)
}

fn find(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).position(|w| w == needle).unwrap()
}

fn expect_error(bytes: &[u8], words: &[&str]) {
    let err = open_bytes(bytes).unwrap_err().to_string();
    assert!(err.starts_with("mutated.gguf: "), "{err}");
    for w in words {
        assert!(err.contains(w), "expected '{w}' in: {err}");
    }
}

#[test]
fn specific_violations_have_specific_messages() {
    let (good, f) = small_file();
    assert_eq!(f.tensor_infos[0].ne, vec![32, 2]);

    // The tensor info of "q": name len(8) "q" n_dims(4) ne0(8) ne1(8) type(4) offset(8).
    let q_info = find(&good, b"\x01\0\0\0\0\0\0\0q") + 9;
    let f_info = find(&good, b"\x01\0\0\0\0\0\0\0f\x01") + 9;

    let mut m = good.clone();
    m[q_info..q_info + 4].copy_from_slice(&5u32.to_le_bytes());
    expect_error(&m, &["tensor 'q'", "5 dimensions", "at most 4"]);

    let mut m = good.clone();
    m[q_info + 4..q_info + 12].copy_from_slice(&33u64.to_le_bytes());
    expect_error(&m, &["tensor 'q'", "ne0 = 33", "Q8_0 block size 32"]);

    let mut m = good.clone();
    m[q_info + 20..q_info + 24].copy_from_slice(&4u32.to_le_bytes());
    expect_error(&m, &["tensor 'q'", "unknown ggml type id 4"]);

    let mut m = good.clone();
    m[f_info + 16..f_info + 24].copy_from_slice(&64u64.to_le_bytes());
    expect_error(
        &m,
        &["tensor 'f'", "offset 64", "expected 96", "contiguous"],
    );

    let mut m = good.clone();
    m[q_info + 12..q_info + 20].copy_from_slice(&(1u64 << 62).to_le_bytes());
    expect_error(&m, &["tensor 'q'", "overflows"]);

    // Rename "f" to "q": duplicate tensor names.
    let mut m = good.clone();
    m[f_info - 1] = b'q';
    expect_error(&m, &["duplicate tensor name 'q'"]);

    // The bool KV "test.flag": an invalid value type, then a bool byte that is not 0 or 1.
    let k = find(&good, b"test.flag");
    let mut m = good.clone();
    m[k + 9..k + 13].copy_from_slice(&13u32.to_le_bytes());
    expect_error(&m, &["key 'test.flag'", "invalid value type 13"]);
    let mut m = good.clone();
    m[k + 13] = 2;
    expect_error(&m, &["key 'test.flag'", "neither 0 nor 1"]);

    // Version checks.
    let mut m = good.clone();
    m[4..8].copy_from_slice(&4u32.to_le_bytes());
    expect_error(&m, &["unsupported GGUF version 4"]);
    let mut m = good.clone();
    m[4..8].copy_from_slice(&1u32.to_le_bytes());
    expect_error(&m, &["version 1"]);
    let mut m = good.clone();
    m[0] = b'X';
    expect_error(&m, &["not a GGUF file"]);

    // An empty key (the length of "general.architecture" set to 0 leaves garbage behind, so
    // build the case by hand).
    let mut bytes = b"GGUF".to_vec();
    bytes.extend(3u32.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(1u64.to_le_bytes());
    bytes.extend(0u64.to_le_bytes());
    bytes.extend(encode_value(&GgufValue::U8(1)));
    expect_error(&bytes, &["KV #0", "empty key"]);

    // Invalid UTF-8 in a key.
    let mut m = good.clone();
    m[k] = 0xFF;
    expect_error(&m, &["not valid UTF-8", "at byte"]);
}

#[test]
fn duplicate_keys_and_bad_alignment_are_rejected() {
    let mut w = GgufWriter::new();
    w.add_kv("a.b", GgufValue::U8(1));
    w.add_kv("a.c", GgufValue::U8(2));
    let mut good = Vec::new();
    w.write_to(&mut good).unwrap();
    let mut m = good.clone();
    let second = find(&m, b"a.c");
    m[second + 2] = b'b';
    expect_error(&m, &["duplicate key 'a.b'", "KV #1"]);

    for (value, words) in [
        (
            GgufValue::U32(48),
            &["general.alignment", "48", "power of two"][..],
        ),
        (
            GgufValue::U32(0),
            &["general.alignment", "power of two"][..],
        ),
        (GgufValue::U64(64), &["general.alignment", "UINT32"][..]),
    ] {
        // Written by hand: the writer itself refuses these.
        let mut bytes = b"GGUF".to_vec();
        bytes.extend(3u32.to_le_bytes());
        bytes.extend(0u64.to_le_bytes());
        bytes.extend(1u64.to_le_bytes());
        bytes.extend((ALIGNMENT_KEY.len() as u64).to_le_bytes());
        bytes.extend(ALIGNMENT_KEY.as_bytes());
        bytes.extend(encode_value(&value));
        expect_error(&bytes, words);
        let mut w = GgufWriter::new();
        w.add_kv(ALIGNMENT_KEY, value);
        assert!(w.write_to(&mut Vec::new()).is_err());
    }
}

#[test]
fn long_tensor_names_are_rejected() {
    let name = "x".repeat(64);
    let mut w = GgufWriter::new();
    w.add_tensor(Tensor::computed(name.as_str(), DType::F32, vec![1], || {
        Ok(vec![0; 4])
    }));
    let err = w.write_to(&mut Vec::new()).unwrap_err().to_string();
    assert!(err.contains("64 bytes"), "{err}");
    // The same file produced by hand is refused by the reader.
    let mut w = GgufWriter::new();
    w.add_tensor(Tensor::computed(
        "y".repeat(63),
        DType::F32,
        vec![1],
        || Ok(vec![0; 4]),
    ));
    let mut ok = Vec::new();
    w.write_to(&mut ok).unwrap();
    open_bytes(&ok).unwrap();
    let mut m = ok.clone();
    m[24..32].copy_from_slice(&64u64.to_le_bytes());
    let at = find(&m, b"yyy");
    m.insert(at, b'y');
    expect_error(&m, &["64 bytes", "at most 63"]);
}
