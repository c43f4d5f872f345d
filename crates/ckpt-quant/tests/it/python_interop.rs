//! Dequantization must equal gguf-py's `gguf.quants.dequantize` bit for bit (x86-64 numpy).
//! Runs only when CKPT_PYTHON names an interpreter with `gguf` and `numpy`.

use crate::common;

use ckpt_core::GgmlType;
use common::{fixtures, read_gguf};

const SCRIPT: &str = r#"
import sys, json
import numpy as np
from gguf import GGMLQuantizationType, GGML_QUANT_SIZES
from gguf.quants import dequantize
cases = json.load(open(sys.argv[1]))
for c in cases:
    qt = GGMLQuantizationType[c["type"]]
    block, size = GGML_QUANT_SIZES[qt]
    raw = np.fromfile(c["input"], dtype=np.uint8)
    n = c["n"]
    if qt in (GGMLQuantizationType.F32, GGMLQuantizationType.F16):
        arr = raw.view(np.float32 if qt == GGMLQuantizationType.F32 else np.float16)
    else:
        arr = raw.reshape(n // block, size)
    out = dequantize(arr, qt).astype(np.float32, copy=False).reshape(-1)
    assert out.size == n, (c["type"], out.size, n)
    out.tofile(c["output"])
"#;

const QUANTIZE_SCRIPT: &str = r#"
import sys, json
import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize
cases = json.load(open(sys.argv[1]))
for c in cases:
    x = np.fromfile(c["input"], dtype=np.float32).reshape(c["rows"], c["cols"])
    quantize(x, GGMLQuantizationType[c["type"]]).tofile(c["output"])
"#;

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            (s.wrapping_mul(0x2545F4914F6CDD1D) >> 56) as u8
        })
        .collect()
}

#[test]
fn dequantize_matches_gguf_py() {
    let Ok(python) = std::env::var("CKPT_PYTHON") else {
        eprintln!(
            "skipping dequantize_matches_gguf_py: set CKPT_PYTHON to a Python with gguf and numpy"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let mut cases = Vec::new(); // (type, bytes, n)
    for suffix in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_M", "Q6_K",
        "F16", "BF16",
    ] {
        let file =
            read_gguf(&fixtures().join(format!("quant-vectors/quant-vectors.{suffix}.gguf")));
        for t in file.tensors.iter().filter(|t| t.ne.len() == 2) {
            let ty = GgmlType::from_id(t.ggml_type).unwrap();
            cases.push((ty, t.data.clone(), t.ne.iter().product::<u64>() as usize));
        }
    }
    // every type both sides can dequantize, on arbitrary bytes (incl. odd scales, inf/NaN)
    let types = ckpt_quant::dequantizable_types().filter(|t| *t != GgmlType::Q8_K);
    for (i, ty) in types.enumerate() {
        let blocks = 64;
        let bytes = random_bytes(0x5eed + i as u64, blocks * ty.type_size());
        cases.push((ty, bytes, blocks * ty.block_size()));
    }
    let mut manifest = Vec::new();
    for (i, (ty, bytes, n)) in cases.iter().enumerate() {
        let input = tmp.path().join(format!("{i}.in"));
        std::fs::write(&input, bytes).unwrap();
        manifest.push(serde_json::json!({
            "type": ty.name(), "n": n, "input": input, "output": tmp.path().join(format!("{i}.out")),
        }));
    }
    let manifest_path = tmp.path().join("cases.json");
    std::fs::write(&manifest_path, serde_json::to_vec(&manifest).unwrap()).unwrap();
    let script = tmp.path().join("dequant.py");
    std::fs::write(&script, SCRIPT).unwrap();
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg(&manifest_path)
        .status()
        .unwrap();
    assert!(status.success(), "gguf-py script failed");

    let mut failures = Vec::new();
    for (i, (ty, bytes, n)) in cases.iter().enumerate() {
        let theirs =
            common::f32_values(&std::fs::read(tmp.path().join(format!("{i}.out"))).unwrap());
        let ours = ckpt_quant::dequantize(*ty, bytes, *n).unwrap();
        let same = |a: f32, b: f32| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
        if let Some(j) = (0..*n).find(|&j| !same(ours[j], theirs[j])) {
            failures.push(format!(
                "case {i} {ty}: element {j}: ours {:e} ({:#x}) gguf-py {:e} ({:#x})",
                ours[j],
                ours[j].to_bits(),
                theirs[j],
                theirs[j].to_bits()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Values with a spread of magnitudes, exact zeros, ties and signs (xorshift-driven).
fn test_values(rows: usize, cols: usize) -> Vec<f32> {
    let bytes = random_bytes(0xfeed, rows * cols * 4);
    let mut v: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| {
            let u = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let unit = (u >> 8) as f32 / (1u32 << 24) as f32 - 0.5; // [-0.5, 0.5)
            let scale = 10f32.powi((u & 7) as i32 - 4);
            unit * scale
        })
        .collect();
    v[..cols].iter_mut().for_each(|x| *x = 0.0); // an all-zero row
    for (i, x) in v[cols..2 * cols].iter_mut().enumerate() {
        *x = (i as f32 - 128.0) * 0.5; // half-integer ties
    }
    v
}

#[test]
fn quantize_matches_gguf_py() {
    let Ok(python) = std::env::var("CKPT_PYTHON") else {
        eprintln!(
            "skipping quantize_matches_gguf_py: set CKPT_PYTHON to a Python with gguf and numpy"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let (rows, cols) = (16usize, 512usize);
    let values = test_values(rows, cols);
    let input = tmp.path().join("values.f32");
    std::fs::write(
        &input,
        values
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect::<Vec<u8>>(),
    )
    .unwrap();
    let types = [
        GgmlType::F16,
        GgmlType::BF16,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q5_1,
        GgmlType::Q8_0,
        GgmlType::TQ1_0,
        GgmlType::TQ2_0,
        GgmlType::MXFP4,
    ];
    let cases: Vec<serde_json::Value> = types
        .iter()
        .map(|t| serde_json::json!({"type": t.name(), "rows": rows, "cols": cols, "input": input, "output": tmp.path().join(format!("{t}.out"))}))
        .collect();
    let manifest = tmp.path().join("cases.json");
    std::fs::write(&manifest, serde_json::to_vec(&cases).unwrap()).unwrap();
    let script = tmp.path().join("quant.py");
    std::fs::write(&script, QUANTIZE_SCRIPT).unwrap();
    let status = std::process::Command::new(&python)
        .arg(&script)
        .arg(&manifest)
        .status()
        .unwrap();
    assert!(status.success(), "gguf-py script failed");
    let mut failures = Vec::new();
    for t in types {
        let theirs = std::fs::read(tmp.path().join(format!("{t}.out"))).unwrap();
        let ours = ckpt_quant::quantize(t, &values, cols, None).unwrap();
        if ours != theirs {
            let at = ours.iter().zip(&theirs).position(|(a, b)| a != b);
            failures.push(format!(
                "{t}: first differing byte {at:?} (sizes {} / {})",
                ours.len(),
                theirs.len()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
