//! F8_E4M3 / F8_E5M2 against torch (tests/fixtures/fp8/casts.*, written by
//! scripts/gen-fp8-fixtures.py with torch 2.15): every bit pattern, including NaNs and -0, cast
//! to F32, F16 and BF16 by `--dtype` gives torch's `.to(dtype)` bytes, from safetensors and from
//! a torch `.bin`; diff reads FP8 values.

use std::path::{Path, PathBuf};

use ckpt_convert::cast::cast_tensor;
use ckpt_convert::source::{open, OpenOptions};
use ckpt_core::DType;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/fp8")
        .join(name)
}

#[test]
fn fp8_casts_match_torch_bit_for_bit() {
    let st = open(&fixture("casts.safetensors"), &OpenOptions::default()).unwrap();
    let bin = open(&fixture("casts.bin"), &OpenOptions::default()).unwrap();
    for (key, dtype) in [("e4m3", DType::F8E4M3), ("e5m2", DType::F8E5M2)] {
        for ck in [&st, &bin] {
            let src = ck.get(key).unwrap();
            assert_eq!(src.dtype, dtype);
            for (to_key, to) in [
                ("f32", DType::F32),
                ("f16", DType::F16),
                ("bf16", DType::BF16),
            ] {
                let want = st.get(&format!("{key}.{to_key}")).unwrap();
                assert_eq!(want.dtype, to);
                let got = cast_tensor(src, to);
                assert_eq!(got.dtype, to);
                assert_eq!(got.shape, want.shape);
                let (g, w) = (got.bytes().unwrap(), want.bytes().unwrap());
                let unit = to.elem_size().unwrap();
                for (i, (a, b)) in g.chunks(unit).zip(w.chunks(unit)).enumerate() {
                    assert_eq!(a, b, "{key} bit pattern {i:#04x} -> {to_key}");
                }
            }
        }
    }
}

#[test]
fn diff_reads_fp8_values() {
    let st = open(&fixture("casts.safetensors"), &OpenOptions::default()).unwrap();
    let mut values = Vec::new();
    ckpt_convert::diff::for_each_chunk(st.get("e4m3").unwrap(), 1024, |c| {
        values.extend_from_slice(c);
        Ok(())
    })
    .unwrap();
    assert_eq!(values.len(), 256);
    assert_eq!(values[0x7E], 448.0);
    assert_eq!(values[0x01], 2f64.powi(-9));
    assert!(values[0x7F].is_nan());
}
