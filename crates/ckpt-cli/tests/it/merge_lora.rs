//! `ckpt merge-lora` against the tensors PEFT's `merge_and_unload()` produced
//! (tests/fixtures/lora, see its README for how they were made).
//!
//! Tolerances, per the fixture README: tensors the adapter changes may differ from PEFT by float
//! rounding of the matmul — f32: at most 1e-5 × the tensor's largest magnitude; bf16: at most 1 ulp
//! per element. Every other tensor, and all names, dtypes and shapes, must match exactly.

use std::path::{Path, PathBuf};
use std::process::Command;

use ckpt_core::{Checkpoint, DType};
use half::bf16;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/lora")
}

fn read(p: &Path) -> Checkpoint {
    ckpt_safetensors::read(p).unwrap_or_else(|e| panic!("{e}"))
}

fn floats(t: &ckpt_core::Tensor) -> Vec<f32> {
    let b = t.bytes().unwrap();
    match t.dtype {
        DType::F32 => b
            .chunks(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        DType::BF16 => b
            .chunks(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        d => panic!("unexpected {d}"),
    }
}

fn ulp_distance(a: f32, b: f32) -> u32 {
    let (x, y) = (
        bf16::from_f32(a).to_bits() as i32,
        bf16::from_f32(b).to_bits() as i32,
    );
    if (x < 0x8000) == (y < 0x8000) {
        (x - y).unsigned_abs()
    } else {
        (x & 0x7fff) as u32 + (y & 0x7fff) as u32
    }
}

/// Compares a merged model with PEFT's, returning how many tensors differ in bytes.
fn compare(got: &Checkpoint, want: &Checkpoint, base: &Checkpoint, case: &str) -> usize {
    let mut names: Vec<_> = got.tensors.iter().map(|t| &t.name).collect();
    let mut want_names: Vec<_> = want.tensors.iter().map(|t| &t.name).collect();
    names.sort();
    want_names.sort();
    assert_eq!(names, want_names, "{case}: tensor names");
    let mut changed = 0;
    for w in &want.tensors {
        let g = got.get(&w.name).unwrap();
        assert_eq!(
            (g.dtype, &g.shape),
            (w.dtype, &w.shape),
            "{case}: {}",
            w.name
        );
        let (gb, wb) = (g.bytes().unwrap(), w.bytes().unwrap());
        if gb == wb {
            continue;
        }
        changed += 1;
        let untouched = base.get(&w.name).is_some_and(|b| b.bytes().unwrap() == wb);
        assert!(
            !untouched,
            "{case}: {} is not changed by the adapter but differs",
            w.name
        );
        let (gf, wf) = (floats(g), floats(w));
        match w.dtype {
            DType::F32 => {
                let max = wf.iter().fold(0f32, |m, x| m.max(x.abs()));
                let err = gf
                    .iter()
                    .zip(&wf)
                    .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
                assert!(
                    err <= 1e-5 * max,
                    "{case}: {} max abs error {err} > 1e-5 x {max}",
                    w.name
                );
            }
            DType::BF16 => {
                let worst = gf
                    .iter()
                    .zip(&wf)
                    .map(|(a, b)| ulp_distance(*a, *b))
                    .max()
                    .unwrap();
                assert!(worst <= 1, "{case}: {} differs by {worst} bf16 ulp", w.name);
            }
            d => panic!("{d}"),
        }
    }
    changed
}

fn merge(set: &str, case: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dir = fixtures().join(set).join(case);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("adapter/adapter_config.json")).unwrap())
            .unwrap();
    let base = dir
        .join("adapter")
        .join(cfg["base_model_name_or_path"].as_str().unwrap());
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("merged");
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["merge-lora", "--base"])
        .arg(&base)
        .arg("--adapter")
        .arg(dir.join("adapter"))
        .arg("--out")
        .arg(&out)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "{set}/{case}: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    (work, base)
}

#[test]
fn every_fixture_adapter_merges_like_peft() {
    // dense/: module names of the newer dense families (LFM2's short-conv in_proj/out_proj,
    // GLM-4's fused gate_up_proj), from scripts/gen-lora-dense-fixtures.py.
    for (set, min_cases) in [("f32", 6), ("bf16", 6), ("dense", 2)] {
        let mut cases: Vec<String> = std::fs::read_dir(fixtures().join(set))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("base-"))
            .collect();
        cases.sort();
        assert!(cases.len() >= min_cases, "{set}: {cases:?}");
        for case in cases {
            let (work, base) = merge(set, &case, &[]);
            let out = work.path().join("merged");
            let got = read(&out.join("model.safetensors"));
            let want = read(
                &fixtures()
                    .join(set)
                    .join(&case)
                    .join("expected-merged/model.safetensors"),
            );
            let changed = compare(
                &got,
                &want,
                &read(&base.join("model.safetensors")),
                &format!("{set}/{case}"),
            );
            assert!(changed <= want.tensors.len());
            assert!(
                out.join("config.json").exists(),
                "{set}/{case}: config copied"
            );
        }
    }
}

#[test]
fn scaled_adapter_and_stacked_adapters() {
    // Applying a_lora twice at weight 0.5 equals applying it once (f32, within rounding).
    let dir = fixtures().join("f32/a_lora/adapter");
    let spec = format!("{}:0.5", dir.display());
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("m");
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["merge-lora", "--base"])
        .arg(fixtures().join("f32/base-llama"))
        .args(["--adapter", &spec, "--adapter", &spec, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let want = read(&fixtures().join("f32/a_lora/expected-merged/model.safetensors"));
    compare(
        &read(&out.join("model.safetensors")),
        &want,
        &read(&fixtures().join("f32/base-llama/model.safetensors")),
        "2 x 0.5",
    );
}

#[test]
fn bad_adapters_are_refused_clearly() {
    let work = tempfile::tempdir().unwrap();
    // An adapter for GPT-2 applied to a Llama base: its modules are not there.
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["merge-lora", "--base"])
        .arg(fixtures().join("f32/base-llama"))
        .arg("--adapter")
        .arg(fixtures().join("f32/e_gpt2_fan_in_fan_out/adapter"))
        .arg("--out")
        .arg(work.path().join("x"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(
        err.contains("transformer.h.0.attn.c_attn"),
        "names the module: {err}"
    );
    // Shapes that do not fit the base: lora_A with the wrong input size.
    let wrong = work.path().join("wrong");
    std::fs::create_dir_all(&wrong).unwrap();
    std::fs::write(
        wrong.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 8, "lora_alpha": 16}"#,
    )
    .unwrap();
    let zeros = |n: usize| {
        ckpt_core::Storage::new(
            ckpt_core::Buffer::owned("m", vec![0u8; n * 4]),
            0,
            n * 4,
            "m",
        )
        .unwrap()
    };
    let m = "base_model.model.model.layers.0.self_attn.q_proj";
    let tensors = vec![
        ckpt_core::Tensor::contiguous(
            format!("{m}.lora_A.weight"),
            DType::F32,
            vec![8, 32],
            zeros(256),
        ),
        ckpt_core::Tensor::contiguous(
            format!("{m}.lora_B.weight"),
            DType::F32,
            vec![64, 8],
            zeros(512),
        ),
    ];
    ckpt_safetensors::write(
        &wrong.join("adapter_model.safetensors"),
        &tensors,
        &Default::default(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["merge-lora", "--base"])
        .arg(fixtures().join("f32/base-llama"))
        .arg("--adapter")
        .arg(&wrong)
        .arg("--out")
        .arg(work.path().join("z"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{err}");
    assert!(
        err.contains("q_proj") && err.contains("[8, 32]") && err.contains("[64, 64]"),
        "names module and shapes: {err}"
    );
    // An adapter type ckpt does not merge.
    let bad = work.path().join("ia3");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(
        fixtures().join("f32/a_lora/adapter/adapter_model.safetensors"),
        bad.join("adapter_model.safetensors"),
    )
    .unwrap();
    std::fs::write(bad.join("adapter_config.json"), r#"{"peft_type": "IA3"}"#).unwrap();
    let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
        .args(["merge-lora", "--base"])
        .arg(fixtures().join("f32/base-llama"))
        .arg("--adapter")
        .arg(&bad)
        .arg("--out")
        .arg(work.path().join("y"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(5), "{err}");
    assert!(err.contains("IA3"), "{err}");
    for out in ["x", "y", "z"] {
        assert!(
            !work.path().join(out).exists(),
            "no output for a refused merge"
        );
    }
}

/// `--to gguf` gives the same file as merging to safetensors and converting that folder.
#[test]
fn merge_to_gguf_equals_merge_then_convert() {
    let base =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf/tiny-llama-spm");
    let work = tempfile::tempdir().unwrap();
    let adapter = work.path().join("adapter");
    std::fs::create_dir(&adapter).unwrap();
    std::fs::write(
        adapter.join("adapter_config.json"),
        r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}"#,
    )
    .unwrap();
    let vals = |n: usize, seed: u32| -> ckpt_core::Tensor {
        let bytes: Vec<u8> = (0..n)
            .flat_map(|i| {
                ((((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 1e5 - 0.005)
                    .to_le_bytes()
            })
            .collect();
        let len = bytes.len();
        let st =
            ckpt_core::Storage::new(ckpt_core::Buffer::owned("m", bytes), 0, len, "m").unwrap();
        ckpt_core::Tensor::contiguous("x", DType::F32, vec![], st)
    };
    let m = "base_model.model.model.layers.0.self_attn.q_proj";
    let mut a = vals(4 * 256, 1);
    a.name = format!("{m}.lora_A.weight");
    a.shape = vec![4, 256];
    let mut b = vals(256 * 4, 2);
    b.name = format!("{m}.lora_B.weight");
    b.shape = vec![256, 4];
    ckpt_safetensors::write(
        &adapter.join("adapter_model.safetensors"),
        &[a, b],
        &Default::default(),
        false,
        &mut |_| {},
    )
    .unwrap();
    let run = |args: Vec<&std::ffi::OsStr>| {
        let r = Command::new(env!("CARGO_BIN_EXE_ckpt"))
            .args(args)
            .output()
            .unwrap();
        assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    };
    let (x, y) = (work.path().join("x"), work.path().join("y"));
    std::fs::create_dir_all(&x).unwrap();
    std::fs::create_dir_all(&y).unwrap();
    run(vec![
        "merge-lora".as_ref(),
        "--base".as_ref(),
        base.as_os_str(),
        "--adapter".as_ref(),
        adapter.as_os_str(),
        "--out".as_ref(),
        y.join("merged").as_os_str(),
    ]);
    run(vec![
        "convert".as_ref(),
        y.join("merged").as_os_str(),
        y.join("merged.gguf").as_os_str(),
        "--outtype".as_ref(),
        "q8_0".as_ref(),
    ]);
    run(vec![
        "merge-lora".as_ref(),
        "--base".as_ref(),
        base.as_os_str(),
        "--adapter".as_ref(),
        adapter.as_os_str(),
        "--out".as_ref(),
        x.join("merged.gguf").as_os_str(),
        "--to".as_ref(),
        "gguf".as_ref(),
        "--outtype".as_ref(),
        "q8_0".as_ref(),
    ]);
    assert!(
        std::fs::read(x.join("merged.gguf")).unwrap()
            == std::fs::read(y.join("merged.gguf")).unwrap()
    );
    assert_eq!(
        std::fs::read_dir(&x).unwrap().count(),
        1,
        "no scratch folder left"
    );
}
