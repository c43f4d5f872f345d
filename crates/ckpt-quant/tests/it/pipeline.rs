//! Whole-file checks of `quantize_gguf` against llama-quantize's outputs (fixture cases 1 and 3).

use crate::common;

use std::path::{Path, PathBuf};

use ckpt_quant::{parse_ftype, quantize_gguf, QuantizeOptions};
use common::fixtures;
use sha2::{Digest, Sha256};

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn manifest_entry(path: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).unwrap();
    // Python's json writes NaN/Infinity for float KVs; serde_json does not accept them
    let text = text
        .replace("-Infinity", "null")
        .replace("Infinity", "null")
        .replace("NaN", "null");
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} in manifest"))
        .clone()
}

/// Compares a produced file with the manifest: whole-file hash, and per tensor when it differs.
fn check_against_manifest(produced: &Path, manifest_path: &str) {
    let entry = manifest_entry(manifest_path);
    let bytes = std::fs::read(produced).unwrap();
    if sha256_hex(&bytes) == entry["sha256"].as_str().unwrap() {
        return;
    }
    let data_offset = entry["data_offset"].as_u64().unwrap() as usize;
    let mut problems = Vec::new();
    if bytes.len() as u64 != entry["size"].as_u64().unwrap() {
        problems.push(format!("size {} != {}", bytes.len(), entry["size"]));
    }
    let header_file = fixtures()
        .join("headers")
        .join(format!("{manifest_path}.header"));
    if let Ok(header) = std::fs::read(&header_file) {
        if bytes.get(..header.len()) != Some(&header[..]) {
            let at = bytes.iter().zip(&header).position(|(a, b)| a != b);
            problems.push(format!("header differs at byte {at:?}"));
        }
    }
    for t in entry["tensors"].as_array().unwrap() {
        let start = data_offset + t["offset"].as_u64().unwrap() as usize;
        let end = start + t["nbytes"].as_u64().unwrap() as usize;
        match bytes.get(start..end) {
            Some(data) if sha256_hex(data) == t["data_sha256"].as_str().unwrap() => {}
            _ => problems.push(format!("tensor {} ({}) differs", t["name"], t["type"])),
        }
    }
    panic!(
        "{manifest_path}: not byte-identical to llama-quantize's output:\n{}",
        problems.join("\n")
    );
}

#[test]
fn quant_vectors_files_are_reproduced_byte_for_byte() {
    let dir = fixtures().join("quant-vectors");
    let tmp = tempfile::tempdir().unwrap();
    for t in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
        "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "F16", "BF16",
    ] {
        let out = tmp.path().join(format!("{t}.gguf"));
        let mut opts = QuantizeOptions::new(parse_ftype(t).unwrap());
        opts.pure = true;
        let report = quantize_gguf(&dir.join("quant-vectors.f32.gguf"), &out, &opts).unwrap();
        assert_eq!(report.n_fallback, 0);
        let expected = std::fs::read(dir.join(format!("quant-vectors.{t}.gguf"))).unwrap();
        let got = std::fs::read(&out).unwrap();
        if got != expected {
            let at = got.iter().zip(&expected).position(|(a, b)| a != b);
            panic!(
                "{t}: differs from llama-quantize (sizes {} / {}, first difference at {at:?})",
                got.len(),
                expected.len()
            );
        }
    }
}

/// The converter's f32 GGUF of tiny-llama-spm is not stored; rebuild it from its stored header and
/// the HF bf16 weights (widened exactly; attn_q/attn_k rows permuted like convert_hf_to_gguf.py).
fn rebuild_tiny_llama_f32(dir: &Path) -> PathBuf {
    let header = std::fs::read(fixtures().join("headers/tiny-llama-spm.f32.gguf.header")).unwrap();
    let st = std::fs::read(fixtures().join("tiny-llama-spm/model.safetensors")).unwrap();
    let n = u64::from_le_bytes(st[..8].try_into().unwrap()) as usize;
    let meta: serde_json::Value = serde_json::from_slice(&st[8..8 + n]).unwrap();
    let data = &st[8 + n..];
    let (n_head, n_head_kv) = (4usize, 2usize);
    let mut file = header.clone();
    for t in manifest_entry("tiny-llama-spm.f32.gguf")["tensors"]
        .as_array()
        .unwrap()
    {
        let name = t["name"].as_str().unwrap();
        let hf = hf_name(name);
        let info = &meta[&hf];
        assert_eq!(info["dtype"], "BF16", "{hf}");
        let off = info["data_offsets"].as_array().unwrap();
        let raw = &data[off[0].as_u64().unwrap() as usize..off[1].as_u64().unwrap() as usize];
        let shape: Vec<usize> = info["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let mut values: Vec<u32> = raw
            .chunks_exact(2)
            .map(|b| (u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
            .collect();
        if name.ends_with("attn_q.weight") {
            values = permute_rows(&values, shape[0], shape[1], n_head);
        } else if name.ends_with("attn_k.weight") {
            values = permute_rows(&values, shape[0], shape[1], n_head_kv);
        }
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            sha256_hex(&bytes),
            t["data_sha256"].as_str().unwrap(),
            "rebuilt {name}"
        );
        file.extend_from_slice(&bytes);
        file.resize(file.len().div_ceil(32) * 32, 0);
    }
    assert_eq!(
        sha256_hex(&file),
        manifest_entry("tiny-llama-spm.f32.gguf")["sha256"]
            .as_str()
            .unwrap()
    );
    let path = dir.join("tiny-llama-spm.f32.gguf");
    std::fs::write(&path, file).unwrap();
    path
}

fn hf_name(gguf: &str) -> String {
    let fixed = [
        ("token_embd.weight", "model.embed_tokens.weight"),
        ("output.weight", "lm_head.weight"),
        ("output_norm.weight", "model.norm.weight"),
    ];
    if let Some((_, hf)) = fixed.iter().find(|(g, _)| *g == gguf) {
        return hf.to_string();
    }
    let rest = gguf.strip_prefix("blk.").unwrap();
    let (layer, part) = rest.split_once('.').unwrap();
    let hf_part = match part {
        "attn_q.weight" => "self_attn.q_proj.weight",
        "attn_k.weight" => "self_attn.k_proj.weight",
        "attn_v.weight" => "self_attn.v_proj.weight",
        "attn_output.weight" => "self_attn.o_proj.weight",
        "ffn_gate.weight" => "mlp.gate_proj.weight",
        "ffn_up.weight" => "mlp.up_proj.weight",
        "ffn_down.weight" => "mlp.down_proj.weight",
        "attn_norm.weight" => "input_layernorm.weight",
        "ffn_norm.weight" => "post_attention_layernorm.weight",
        other => panic!("unexpected tensor {other}"),
    };
    format!("model.layers.{layer}.{hf_part}")
}

/// LlamaModel.permute: rows (n_head, 2, half) -> (n_head, half, 2).
fn permute_rows(values: &[u32], rows: usize, cols: usize, n_head: usize) -> Vec<u32> {
    let per_head = rows / n_head;
    let half = per_head / 2;
    let mut out = vec![0u32; values.len()];
    for h in 0..n_head {
        for i in 0..half {
            for j in 0..2 {
                let src = h * per_head + j * half + i;
                let dst = h * per_head + i * 2 + j;
                out[dst * cols..(dst + 1) * cols]
                    .copy_from_slice(&values[src * cols..(src + 1) * cols]);
            }
        }
    }
    out
}

#[test]
fn tiny_llama_every_ftype_matches_llama_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    let input = rebuild_tiny_llama_f32(tmp.path());
    let mut failures = Vec::new();
    for t in [
        "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L", "Q4_K_S",
        "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
    ] {
        let out = tmp.path().join(format!("tiny-llama-spm.{t}.gguf"));
        let opts = QuantizeOptions::new(parse_ftype(t).unwrap());
        quantize_gguf(&input, &out, &opts).unwrap();
        if let Err(e) = std::panic::catch_unwind(|| {
            check_against_manifest(&out, &format!("tiny-llama-spm.{t}.gguf"))
        }) {
            failures.push(e.downcast_ref::<String>().cloned().unwrap_or_default());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn tiny_llama_from_f16_matches_llama_quantize() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    let report = quantize_gguf(
        &fixtures().join("tiny-llama-spm.f16.gguf"),
        &out,
        &QuantizeOptions::new(parse_ftype("Q4_K_M").unwrap()),
    )
    .unwrap();
    check_against_manifest(&out, "tiny-llama-spm.f16-to-Q4_K_M.gguf");
    let q6: Vec<&str> = report
        .tensors
        .iter()
        .filter(|t| t.to == ckpt_core::GgmlType::Q6_K)
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(q6.len(), 5, "{q6:?}");
}

#[test]
fn quantized_input_needs_allow_requantize() {
    let tmp = tempfile::tempdir().unwrap();
    let q8 = tmp.path().join("q8.gguf");
    let mut opts = QuantizeOptions::new(parse_ftype("Q8_0").unwrap());
    opts.pure = true;
    quantize_gguf(
        &fixtures().join("quant-vectors/quant-vectors.f32.gguf"),
        &q8,
        &opts,
    )
    .unwrap();
    let out = tmp.path().join("q4.gguf");
    let mut opts = QuantizeOptions::new(parse_ftype("Q4_0").unwrap());
    let err = quantize_gguf(&q8, &out, &opts).unwrap_err().to_string();
    assert!(
        err.contains("already quantized") && err.contains("Q8_0"),
        "{err}"
    );
    assert!(!out.exists());
    opts.allow_requantize = true;
    let report = quantize_gguf(&q8, &out, &opts).unwrap();
    assert!(report
        .tensors
        .iter()
        .any(|t| t.from == ckpt_core::GgmlType::Q8_0 && t.to == ckpt_core::GgmlType::Q4_0));
    // existing output is not replaced without overwrite
    let err = quantize_gguf(&q8, &out, &opts).unwrap_err();
    assert_eq!(err.kind(), ckpt_core::ErrorKind::Usage, "{err}");
}

#[test]
fn dry_run_plans_the_same_file_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = fixtures().join("tiny-llama-spm.f16.gguf");
    let opts = QuantizeOptions::new(parse_ftype("q4_k_m").unwrap());
    let plan = ckpt_quant::plan_quantization(&input, &opts).unwrap();
    assert_eq!(
        plan.output_bytes,
        manifest_entry("tiny-llama-spm.f16-to-Q4_K_M.gguf")["size"]
            .as_u64()
            .unwrap()
    );
    let out = tmp.path().join("out.gguf");
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    let report = ckpt_quant::quantize_gguf_with_progress(
        &input,
        &out,
        &opts,
        std::sync::Arc::new(move |ev: ckpt_core::ProgressEvent<'_>| {
            if let ckpt_core::ProgressEvent::Advance { bytes } = ev {
                assert!(bytes > 0);
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }),
    )
    .unwrap();
    // One advance per tensor: every tensor of the output has data.
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        report.tensors.len()
    );
    assert_eq!(report.tensors, plan.tensors);
    assert_eq!(report.output_bytes, plan.output_bytes);
    // output order: non-block tensors first, then blk.0.*, each sorted by name
    let names: Vec<&str> = report.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        &names[..4],
        &[
            "output.weight",
            "output_norm.weight",
            "token_embd.weight",
            "blk.0.attn_k.weight"
        ]
    );
}

#[test]
fn unsupported_ftype_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    let err = quantize_gguf(
        &fixtures().join("tiny-llama-spm.f16.gguf"),
        &out,
        &QuantizeOptions::new(parse_ftype("NVFP4").unwrap()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("NVFP4") && err.contains("cannot produce"),
        "{err}"
    );
    assert!(!out.exists());
    let err = quantize_gguf(
        &fixtures().join("tiny-llama-spm.f16.gguf"),
        &out,
        &QuantizeOptions::new(parse_ftype("IQ2_XXS").unwrap()),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ckpt_core::ErrorKind::Usage, "{err}");
    let err = err.to_string();
    assert!(
        err.contains("IQ2_XXS") && err.contains("importance matrix"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn split_input_is_read_as_one_model() {
    // Re-running Q2_K on the 3-shard split of llama-quantize's own Q2_K output keeps every
    // tensor (already the chosen type) and drops the split.* keys: the original file comes back.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("merged.gguf");
    let report = quantize_gguf(
        &fixtures().join("split/tiny-llama-spm.Q2_K-split-00002-of-00003.gguf"),
        &out,
        &QuantizeOptions::new(parse_ftype("Q2_K").unwrap()),
    )
    .unwrap();
    assert!(report.tensors.iter().all(|t| t.from == t.to));
    check_against_manifest(&out, "tiny-llama-spm.Q2_K.gguf");
}

#[test]
fn nan_weights_and_same_file_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    // poison one value of blk.0.attn_q.weight in a copy of the quant-vector input
    let src = fixtures().join("quant-vectors/quant-vectors.f32.gguf");
    let file = ckpt_gguf::GgufFile::open(&src).unwrap();
    let i = file
        .tensor_infos
        .iter()
        .position(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    let at = (file.data_offset + file.tensor_infos[i].offset) as usize + 4 * 100;
    let mut bytes = std::fs::read(&src).unwrap();
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let poisoned = tmp.path().join("nan.gguf");
    std::fs::write(&poisoned, bytes).unwrap();
    let out = tmp.path().join("out.gguf");
    let err = quantize_gguf(
        &poisoned,
        &out,
        &QuantizeOptions::new(parse_ftype("Q4_0").unwrap()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("blk.0.attn_q.weight") && err.contains("invalid data") && err.contains("100"),
        "{err}"
    );
    assert!(!out.exists());

    let mut opts = QuantizeOptions::new(parse_ftype("Q8_0").unwrap());
    opts.overwrite = true;
    let err = quantize_gguf(&poisoned, &poisoned, &opts)
        .unwrap_err()
        .to_string();
    assert!(err.contains("same file"), "{err}");
}

#[test]
fn nan_in_a_copied_tensor_is_refused_too() {
    // the 1-D norm is copied unchanged, but llama-quantize validates every tensor it loads
    let tmp = tempfile::tempdir().unwrap();
    let src = fixtures().join("quant-vectors/quant-vectors.f32.gguf");
    let file = ckpt_gguf::GgufFile::open(&src).unwrap();
    let info = file
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.attn_norm.weight")
        .unwrap();
    let at = (file.data_offset + info.offset) as usize;
    let mut bytes = std::fs::read(&src).unwrap();
    bytes[at..at + 4].copy_from_slice(&f32::INFINITY.to_le_bytes());
    let poisoned = tmp.path().join("inf.gguf");
    std::fs::write(&poisoned, bytes).unwrap();
    let opts = QuantizeOptions::new(parse_ftype("Q8_0").unwrap());
    let err = quantize_gguf(&poisoned, &tmp.path().join("out.gguf"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("blk.0.attn_norm.weight") && err.contains("invalid data"),
        "{err}"
    );
    // a dry run does not load tensor data (like llama-quantize --dry-run)
    assert!(ckpt_quant::plan_quantization(&poisoned, &opts).is_ok());
}

/// Deterministic pseudo-random weights (xorshift) for row `row` of a synthetic tensor.
fn synthetic_row(row: usize, cols: usize) -> Vec<f32> {
    let mut state = (row as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..cols)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.04
        })
        .collect()
}

/// A GGUF whose one tensor (`name`, row-major `shape`, F32 or F16) is generated band by band
/// while it is written, so making a big input costs no memory either.
fn write_synthetic_gguf(path: &Path, name: &str, shape: &[u64], dtype: ckpt_core::DType) {
    use ckpt_core::{DType, Tensor};
    let cols = *shape.last().unwrap() as usize;
    let rows: usize = shape[..shape.len() - 1].iter().product::<u64>() as usize;
    let elem = dtype.elem_size().unwrap();
    let t = Tensor::from_rows(
        name,
        dtype,
        shape.to_vec(),
        rows,
        cols * elem,
        move |range, dst| {
            for (r, out) in range.zip(dst.chunks_exact_mut(cols * elem)) {
                let row = synthetic_row(r, cols);
                match dtype {
                    DType::F32 => out
                        .chunks_exact_mut(4)
                        .zip(&row)
                        .for_each(|(o, v)| o.copy_from_slice(&v.to_le_bytes())),
                    _ => out.chunks_exact_mut(2).zip(&row).for_each(|(o, v)| {
                        o.copy_from_slice(&half::f16::from_f32(*v).to_le_bytes())
                    }),
                }
            }
            Ok(())
        },
    );
    let mut w = ckpt_gguf::GgufWriter::new();
    w.add_kv(
        "general.architecture",
        ckpt_gguf::GgufValue::String("llama".into()),
    );
    w.add_tensor(t);
    w.write(path, true).unwrap();
}

const MEMORY_CHILD_ENV: &str = "CKPT_QUANT_TEST_MEMORY_CHILD";

/// Quantizing a GGUF holding one 256 MB tensor (in a child process, so only the quantization
/// counts) peaks far below the tensor's size: the data is read, widened and quantized by bands
/// of rows and written as it goes. Holding the tensor whole (as f32, or its mapped pages, or the
/// whole output) would cross the bound (the whole-tensor pipeline peaked at 515 MB here).
/// Spot-checks the bytes against whole-tensor quantization at the start, across band
/// boundaries and at the end.
#[test]
fn a_large_tensor_is_quantized_in_flat_memory() {
    if let Ok(paths) = std::env::var(MEMORY_CHILD_ENV) {
        let (input, output) = paths.split_once('\n').unwrap();
        let mut opts = QuantizeOptions::new(parse_ftype("Q8_0").unwrap());
        opts.threads = 2;
        quantize_gguf(Path::new(input), Path::new(output), &opts).unwrap();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let hwm = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
        println!("CHILD {hwm}");
        return;
    }
    let (rows, cols) = (8192usize, 8192usize);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("big.f32.gguf");
    let output = tmp.path().join("big.q8_0.gguf");
    write_synthetic_gguf(
        &input,
        "blk.0.attn_q.weight",
        &[rows as u64, cols as u64],
        ckpt_core::DType::F32,
    );
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pipeline::a_large_tensor_is_quantized_in_flat_memory",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            MEMORY_CHILD_ENV,
            format!("{}\n{}", input.display(), output.display()),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hwm_kb: u64 = stdout
        .lines()
        .find_map(|l| l.split_once("CHILD VmHWM:").map(|(_, v)| v))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no VmHWM in {stdout}"));
    let tensor_mb = (rows * cols * 4) >> 20;
    assert!(
        hwm_kb < 96 * 1024,
        "peak RSS {} MB quantizing a {tensor_mb} MB tensor (bound 96 MB)",
        hwm_kb / 1024
    );

    let file = ckpt_gguf::GgufFile::open(&output).unwrap();
    assert_eq!(file.tensor_infos[0].ggml_type, ckpt_core::GgmlType::Q8_0);
    let data = file.tensor_data(0).unwrap();
    let row_bytes = cols / 32 * 34;
    for r in [0, 1, 127, 128, 129, 4095, 4096, rows - 1] {
        let want = ckpt_quant::quantize(
            ckpt_core::GgmlType::Q8_0,
            &synthetic_row(r, cols),
            cols,
            None,
        )
        .unwrap();
        assert_eq!(
            &data[r * row_bytes..(r + 1) * row_bytes],
            &want[..],
            "row {r}"
        );
    }
}

/// A legacy `.dat` importance matrix (llama-imatrix's old format): one entry.
fn write_legacy_imatrix(path: &Path, name: &str, values: &[f32]) {
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&(name.len() as i32).to_le_bytes());
    b.extend_from_slice(name.as_bytes());
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&(values.len() as i32).to_le_bytes());
    values
        .iter()
        .for_each(|v| b.extend_from_slice(&v.to_le_bytes()));
    std::fs::write(path, b).unwrap();
}

/// An expert tensor larger than one band, quantized with per-expert importance weights: the
/// bands (whose edges fall inside an expert) give the bytes of quantizing each expert's
/// matrix whole with its own weights.
#[test]
fn bands_across_experts_match_whole_matrix_quantization() {
    let (experts, rows, cols) = (4usize, 300usize, 1024usize);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("experts.f16.gguf");
    let name = "blk.0.ffn_down_exps.weight";
    write_synthetic_gguf(
        &input,
        name,
        &[experts as u64, rows as u64, cols as u64],
        ckpt_core::DType::F16,
    );
    let weights: Vec<f32> = (0..experts * cols)
        .map(|i| 0.5 + ((i * 7919) % 1000) as f32 / 250.0)
        .collect();
    let imatrix = tmp.path().join("imatrix.dat");
    write_legacy_imatrix(&imatrix, name, &weights);
    let output = tmp.path().join("experts.iq4_xs.gguf");
    let mut opts = QuantizeOptions::new(parse_ftype("IQ4_XS").unwrap());
    opts.pure = true;
    opts.imatrix = Some(imatrix);
    let report = quantize_gguf(&input, &output, &opts).unwrap();
    assert!(report.tensors[0].used_imatrix);
    let to = report.tensors[0].to;
    let data = ckpt_gguf::GgufFile::open(&output).unwrap();
    let data = data.tensor_data(0).unwrap().to_vec();
    let per_expert = data.len() / experts;
    for e in 0..experts {
        let values: Vec<f32> = (e * rows..(e + 1) * rows)
            .flat_map(|r| {
                synthetic_row(r, cols)
                    .into_iter()
                    .map(|v| half::f16::from_f32(v).to_f32())
            })
            .collect();
        let want =
            ckpt_quant::quantize(to, &values, cols, Some(&weights[e * cols..(e + 1) * cols]))
                .unwrap();
        assert_eq!(
            &data[e * per_expert..(e + 1) * per_expert],
            &want[..],
            "expert {e}"
        );
    }
}
