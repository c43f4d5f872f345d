//! Byte-for-byte checks of every kernel against llama-quantize's outputs (fixture case 3).

use crate::common;

use ckpt_core::GgmlType;
use common::{f32_values, fixtures, read_gguf};

/// (fixture file suffix, ggml type its 2-D tensors were quantized to)
const CASES: &[(&str, GgmlType)] = &[
    ("Q4_0", GgmlType::Q4_0),
    ("Q4_1", GgmlType::Q4_1),
    ("Q5_0", GgmlType::Q5_0),
    ("Q5_1", GgmlType::Q5_1),
    ("Q8_0", GgmlType::Q8_0),
    ("Q2_K", GgmlType::Q2_K),
    ("Q3_K_S", GgmlType::Q3_K),
    ("Q3_K_M", GgmlType::Q3_K),
    ("Q3_K_L", GgmlType::Q3_K),
    ("Q4_K_S", GgmlType::Q4_K),
    ("Q4_K_M", GgmlType::Q4_K),
    ("Q5_K_S", GgmlType::Q5_K),
    ("Q5_K_M", GgmlType::Q5_K),
    ("Q6_K", GgmlType::Q6_K),
    ("F16", GgmlType::F16),
    ("BF16", GgmlType::BF16),
];

fn quant_vectors_dir() -> std::path::PathBuf {
    fixtures().join("quant-vectors")
}

#[test]
fn quantize_matches_llama_quantize_for_every_vector() {
    let source = read_gguf(&quant_vectors_dir().join("quant-vectors.f32.gguf"));
    let mut failures = Vec::new();
    for (suffix, ty) in CASES {
        let expected = read_gguf(&quant_vectors_dir().join(format!("quant-vectors.{suffix}.gguf")));
        for src in &source.tensors {
            let exp = expected
                .tensors
                .iter()
                .find(|t| t.name == src.name)
                .expect("tensor in output");
            let values = f32_values(&src.data);
            let n_per_row = src.ne[0] as usize;
            let (target, want) = if src.ne.len() < 2 {
                (GgmlType::F32, &src.data)
            } else {
                (*ty, &exp.data)
            };
            assert_eq!(exp.ggml_type, target.id(), "{suffix} {}", src.name);
            let got = ckpt_quant::quantize(target, &values, n_per_row, None).unwrap();
            if &got != want {
                let bs = target.type_size();
                let first = got
                    .iter()
                    .zip(want.iter())
                    .position(|(a, b)| a != b)
                    .unwrap_or(0);
                failures.push(format!(
                    "{suffix} {}: first differing byte {first} (block {})",
                    src.name,
                    first / bs
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn float_targets_round_trip_exactly() {
    // F16 / BF16 widen exactly, so converting their dequantization gives back the same bytes.
    let source = read_gguf(&quant_vectors_dir().join("quant-vectors.f32.gguf"));
    for ty in [GgmlType::F16, GgmlType::BF16] {
        for src in source.tensors.iter().filter(|t| t.ne.len() == 2) {
            let values = f32_values(&src.data);
            let n = src.ne[0] as usize;
            let q = ckpt_quant::quantize(ty, &values, n, None).unwrap();
            let back = ckpt_quant::dequantize(ty, &q, values.len()).unwrap();
            assert_eq!(
                ckpt_quant::quantize(ty, &back, n, None).unwrap(),
                q,
                "{ty} {}",
                src.name
            );
        }
    }
}

#[test]
fn bad_shapes_are_errors_not_panics() {
    assert!(ckpt_quant::quantize(GgmlType::Q4_K, &[0.0; 128], 128, None).is_err());
    assert!(ckpt_quant::quantize(GgmlType::Q4_0, &[0.0; 48], 32, None).is_err());
    assert!(ckpt_quant::quantize(GgmlType::IQ2_XXS, &[0.0; 256], 256, None).is_err());
    assert!(ckpt_quant::dequantize(GgmlType::Q4_0, &[0u8; 17], 32).is_err());
    assert!(ckpt_quant::dequantize(GgmlType::Q6_K, &[0u8; 210], 255).is_err());
}

/// Deterministic pseudo-random u32s (xorshift32).
fn random_words(seed: u32, n: usize) -> Vec<u32> {
    let mut s = seed.max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        })
        .collect()
}

#[test]
fn arbitrary_bit_patterns_never_panic() {
    // every f32 class: NaN payloads, infinities, subnormals, huge and tiny values (debug builds
    // check integer overflow, so this also catches unintended wrapping)
    let n = 1024;
    let values: Vec<f32> = random_words(7, n).into_iter().map(f32::from_bits).collect();
    let importance: Vec<f32> = random_words(11, n)
        .into_iter()
        .map(|w| (w >> 9) as f32 / 1e5)
        .collect();
    for ty in ckpt_quant::quantizable_types() {
        if !ckpt_quant::requires_importance(ty) {
            let q = ckpt_quant::quantize(ty, &values, n, None).unwrap();
            assert_eq!(ckpt_quant::dequantize(ty, &q, n).unwrap().len(), n);
        }
        let q = ckpt_quant::quantize(ty, &values, n, Some(&importance)).unwrap();
        assert_eq!(ckpt_quant::dequantize(ty, &q, n).unwrap().len(), n);
    }
    for ty in ckpt_quant::dequantizable_types() {
        let blocks = 8;
        let bytes: Vec<u8> = random_words(13, blocks * ty.type_size())
            .into_iter()
            .map(|w| w as u8)
            .collect();
        ckpt_quant::dequantize(ty, &bytes, blocks * ty.block_size()).unwrap();
    }
}
