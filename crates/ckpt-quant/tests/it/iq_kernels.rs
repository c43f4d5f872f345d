//! IQ kernels against ggml itself: tests/fixtures/iq/vectors holds rows quantized by the pinned
//! ggml's `ggml_quantize_chunk` (scripts/gen-iq-vectors.py); ckpt must produce the same bytes,
//! with and without importance weights, and dequantize them to values gguf-py agrees with
//! (tests/python_interop.rs checks every dequantizer on arbitrary bytes).

use std::path::{Path, PathBuf};

use ckpt_core::GgmlType;

const NROWS: usize = 8;
const NPR: usize = 512;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/iq/vectors")
}

fn f32s(p: &Path) -> Vec<f32> {
    std::fs::read(p)
        .unwrap()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// The first differing block, for a readable failure.
fn first_diff(t: GgmlType, ours: &[u8], theirs: &[u8]) -> Option<String> {
    if ours == theirs {
        return None;
    }
    let ts = t.type_size();
    let bi = ours
        .chunks(ts)
        .zip(theirs.chunks(ts))
        .position(|(a, b)| a != b)
        .unwrap_or(0);
    Some(format!(
        "{t}: {} vs {} bytes, block {bi} differs:\n ours  {:02x?}\n ggml  {:02x?}",
        ours.len(),
        theirs.len(),
        &ours[bi * ts..((bi + 1) * ts).min(ours.len())],
        &theirs[bi * ts..((bi + 1) * ts).min(theirs.len())]
    ))
}

fn check(t: GgmlType, with_imatrix: bool) -> Option<String> {
    let x = f32s(&dir().join("input.f32"));
    let im = f32s(&dir().join("imatrix.f32"));
    assert_eq!((x.len(), im.len()), (NROWS * NPR, NPR));
    let suffix = if with_imatrix { ".imatrix.bin" } else { ".bin" };
    let theirs = std::fs::read(dir().join(format!("{}{suffix}", t.name()))).unwrap();
    let ours = ckpt_quant::quantize(t, &x, NPR, with_imatrix.then_some(&im[..])).unwrap();
    first_diff(t, &ours, &theirs)
}

fn check_all(t: GgmlType, variants: &[bool]) {
    let failures: Vec<String> = variants.iter().filter_map(|&w| check(t, w)).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn iq4_nl_matches_ggml() {
    check_all(GgmlType::IQ4_NL, &[false, true]);
}

#[test]
fn iq4_xs_matches_ggml() {
    check_all(GgmlType::IQ4_XS, &[false, true]);
}

#[test]
fn iq3_xxs_matches_ggml() {
    check_all(GgmlType::IQ3_XXS, &[false, true]);
}

#[test]
fn iq3_s_matches_ggml() {
    check_all(GgmlType::IQ3_S, &[false, true]);
}

#[test]
fn iq2_xxs_matches_ggml() {
    check_all(GgmlType::IQ2_XXS, &[true]);
}

#[test]
fn iq2_xs_matches_ggml() {
    check_all(GgmlType::IQ2_XS, &[true]);
}

#[test]
fn iq2_s_matches_ggml() {
    check_all(GgmlType::IQ2_S, &[false, true]);
}

#[test]
fn iq1_s_matches_ggml() {
    check_all(GgmlType::IQ1_S, &[true]);
}

#[test]
fn iq1_m_matches_ggml() {
    check_all(GgmlType::IQ1_M, &[false, true]);
}

#[test]
fn imatrix_only_types_refuse_without_one() {
    for t in [GgmlType::IQ2_XXS, GgmlType::IQ2_XS, GgmlType::IQ1_S] {
        assert!(ckpt_quant::requires_importance(t));
        let err = ckpt_quant::quantize(t, &[0.5; 256], 256, None).unwrap_err();
        assert_eq!(err.kind(), ckpt_core::ErrorKind::Usage, "{err}");
        assert!(err.to_string().contains("importance matrix"), "{err}");
    }
    assert!(!ckpt_quant::requires_importance(GgmlType::IQ1_M));
}
