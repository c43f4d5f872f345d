//! Mixtures of experts against what llama.cpp's convert_hf_to_gguf.py wrote for the same tiny
//! models (tests/fixtures/arch-moe, made by scripts/gen-arch-moe-fixtures.py): the whole f16
//! GGUF must be byte-identical. Also: bad expert sets are refused naming the tensor, and a
//! stacked tensor reads its experts one at a time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ckpt_core::{Checkpoint, DType, Format, GgmlType, Tensor, TensorData};
use ckpt_gguf::GgufFile;
use ckpt_model::tensors::PlannedTensor;
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};
use ckpt_testhub::fixtures::moe_tensor as tensor;
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The case's model folder (config + tokenizer) and checkpoint, with `edit` applied to the
/// tensor list before the values are assigned.
fn setup(
    case: &str,
    edit: impl FnOnce(&mut Vec<(String, Vec<u64>)>),
) -> (tempfile::TempDir, PathBuf, Checkpoint, Value) {
    let fx = fixtures().join("arch-moe").join(case);
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(format!("tiny-{case}"));
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(fx.join("config.json"), dir.join("config.json")).unwrap();
    let tok = expected["tokenizer"].as_str().unwrap();
    let (tok_dir, files): (&str, &[&str]) = match tok {
        "bpe" | "glm" => (
            "gguf/tiny-smol-bpe",
            &[
                "tokenizer.json",
                "tokenizer_config.json",
                "chat_template.jinja",
            ],
        ),
        _ => (
            "gguf/tiny-llama-spm",
            &["tokenizer.model", "tokenizer_config.json"],
        ),
    };
    for f in files {
        let src = fixtures().join(tok_dir).join(f);
        if src.is_file() {
            std::fs::copy(src, dir.join(f)).unwrap();
        }
    }
    if tok == "glm" {
        glm_tokenizer(&dir.join("tokenizer.json"));
    }
    let mut list: Vec<(String, Vec<u64>)> =
        serde_json::from_str(&std::fs::read_to_string(fx.join("hf_tensors.json")).unwrap())
            .unwrap();
    edit(&mut list);
    let mut ck = Checkpoint::new(Format::Safetensors, vec![]);
    ck.tensors = list
        .into_iter()
        .enumerate()
        .map(|(k, (n, s))| tensor(&n, s, k as u64))
        .collect();
    (tmp, dir, ck, expected)
}

/// The tiny BPE tokenizer with GLM's added tokens, as the generator renames them.
fn glm_tokenizer(path: &Path) {
    let mut tok: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for (old, new) in [
        ("<repo_name>", "<|user|>"),
        ("<file_sep>", "[gMASK]"),
        ("<filename>", "<|observation|>"),
    ] {
        for t in tok["added_tokens"].as_array_mut().unwrap() {
            if t["content"] == old {
                t["content"] = Value::from(new);
            }
        }
        let vocab = tok["model"]["vocab"].as_object_mut().unwrap();
        let id = vocab.shift_remove(old).unwrap();
        vocab.insert(new.to_string(), id);
    }
    std::fs::write(path, serde_json::to_string(&tok).unwrap()).unwrap();
}

fn check(case: &str) {
    let (tmp, dir, ck, expected) = setup(case, |_| {});
    let out = tmp.path().join("out.gguf");
    convert_hf_to_gguf(
        &dir,
        &ck,
        &out,
        &HfToGgufOptions {
            outtype: OutType::F16,
            overwrite: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let sha = hex(&Sha256::digest(std::fs::read(&out).unwrap()));
    if sha == expected["file_sha256"].as_str().unwrap() {
        return;
    }
    // Say where the files differ.
    let f = GgufFile::open(&out).unwrap();
    let ours: Vec<&str> = f.kvs.iter().map(|(k, _)| k.as_str()).collect();
    let theirs: Vec<&str> = expected["kvs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kv| kv[0].as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "{case}: KV keys differ");
    let names: Vec<String> = f.tensors().into_iter().map(|t| t.name.clone()).collect();
    let want: Vec<String> = expected["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, want, "{case}: tensor names differ");
    for (i, (t, e)) in f
        .tensors()
        .into_iter()
        .zip(expected["tensors"].as_array().unwrap())
        .enumerate()
    {
        let data = f.tensor_data(i).unwrap();
        assert_eq!(
            hex(&Sha256::digest(data)),
            e["sha256"].as_str().unwrap(),
            "{case}: tensor {} data differs",
            t.name
        );
    }
    panic!("{case}: files differ (sha256 {sha}) although KVs and tensor names agree");
}

#[test]
fn qwen3_moe_stacks_experts_like_the_converter() {
    check("qwen3moe");
}

#[test]
fn qwen2_moe_keeps_the_shared_expert_and_its_gate() {
    check("qwen2moe");
}

#[test]
fn mixtral_stacks_w1_w2_w3_as_gate_down_up() {
    check("mixtral");
}

#[test]
fn ernie4_5_moe_writes_the_expert_bias_and_leading_dense_layer() {
    check("ernie4_5_moe");
}

#[test]
fn deepseek_v2_splits_kv_b_into_k_b_and_v_b() {
    check("deepseek_v2");
}

#[test]
fn deepseek_v3_routes_by_groups_and_skips_the_mtp_layer() {
    check("deepseek_v3");
}

#[test]
fn olmoe_stacks_experts_with_whole_projection_qk_norms() {
    check("olmoe");
}

#[test]
fn granite_moe_without_a_shared_expert_splits_the_fused_projections() {
    check("granitemoe");
}

#[test]
fn granite_moe_splits_the_fused_gate_and_up_projections() {
    check("granitemoe_shared");
}

#[test]
fn a_fused_input_linear_of_the_wrong_height_is_refused_by_name() {
    let err = convert_err("granitemoe_shared", |list| {
        for (n, s) in list.iter_mut() {
            if n == "model.layers.1.block_sparse_moe.input_linear.weight" {
                s[1] -= 2;
            }
        }
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'model.layers.1.block_sparse_moe.input_linear.weight' has shape"),
        "{msg}"
    );
}

#[test]
fn gpt_oss_splits_interleaved_gate_up_experts_and_keeps_the_sinks() {
    check("gpt_oss");
}

#[test]
fn glm4_moe_keeps_the_nextn_layer_and_its_tensors() {
    check("glm4moe");
}

#[test]
fn llama4_splits_packed_experts_on_interleaved_moe_layers() {
    check("llama4");
}

#[test]
fn apertus_writes_its_xielu_scalars_as_kv_arrays() {
    check("apertus");
}

#[test]
fn gpt_oss_mxfp4_experts_are_repacked_first_as_the_converter_does() {
    check("gpt_oss_mxfp4");
}

#[test]
fn mxfp4_scales_without_their_blocks_are_refused_by_name() {
    let err = convert_err("gpt_oss_mxfp4", |list| {
        list.retain(|(n, _)| n != "model.layers.1.mlp.experts.gate_up_proj_blocks")
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'model.layers.1.mlp.experts.gate_up_proj_scales' have no 'model.layers.1.mlp.experts.gate_up_proj_blocks'"),
        "{msg}"
    );
}

#[test]
fn mxfp4_blocks_that_disagree_with_their_scales_are_refused_by_name() {
    let err = convert_err("gpt_oss_mxfp4", |list| {
        for (n, s) in list.iter_mut() {
            if n == "model.layers.0.mlp.experts.down_proj_scales" {
                s[1] -= 1;
            }
        }
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'model.layers.0.mlp.experts.down_proj_blocks'")
            && msg.contains("expected U8 blocks"),
        "{msg}"
    );
}

#[test]
fn a_kv_b_proj_that_does_not_split_into_heads_is_refused_by_name() {
    let err = convert_err("deepseek_v3", |list| {
        for (n, s) in list.iter_mut() {
            if n == "model.layers.0.self_attn.kv_b_proj.weight" {
                s[0] -= 2;
            }
        }
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'model.layers.0.self_attn.kv_b_proj.weight' has shape [18, 4]"),
        "{msg}"
    );
}

#[test]
fn a_missing_deepseek_expert_is_refused_by_name() {
    let err = convert_err("deepseek_v3", |list| {
        list.retain(|(n, _)| n != "model.layers.1.mlp.experts.1.gate_proj.weight")
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'model.layers.1.mlp.experts.1.gate_proj.weight' is missing"),
        "{msg}"
    );
}

fn convert_err(case: &str, edit: impl FnOnce(&mut Vec<(String, Vec<u64>)>)) -> ckpt_core::Error {
    let (tmp, dir, ck, _) = setup(case, edit);
    let out = tmp.path().join("out.gguf");
    let err = convert_hf_to_gguf(&dir, &ck, &out, &HfToGgufOptions::default()).unwrap_err();
    assert!(!out.exists(), "nothing may be written");
    err
}

#[test]
fn an_expert_beyond_the_configured_count_is_refused_by_name() {
    // Config says 3 experts; the checkpoint has a fourth.
    let err = convert_err("qwen3moe", |list| {
        for w in ["down_proj", "gate_proj", "up_proj"] {
            let src = list
                .iter()
                .find(|(n, _)| n == &format!("model.layers.1.mlp.experts.0.{w}.weight"))
                .unwrap()
                .clone();
            list.push((src.0.replace("experts.0.", "experts.3."), src.1));
        }
        list.sort();
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("model.layers.1.mlp.experts.3."), "{msg}");
    assert!(msg.contains("experts = 3 in the config"), "{msg}");
}

#[test]
fn a_missing_expert_is_refused_by_name() {
    let err = convert_err("mixtral", |list| {
        list.retain(|(n, _)| n != "model.layers.0.block_sparse_moe.experts.2.w3.weight")
    });
    assert!(matches!(err, ckpt_core::Error::Invalid { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("'model.layers.0.block_sparse_moe.experts.2.w3.weight' is missing"),
        "{msg}"
    );
}

/// A stacked tensor is produced in bands: each band reads only the experts whose rows it
/// covers, one after the other, so memory does not grow with the expert count.
#[test]
fn stacking_reads_one_expert_at_a_time() {
    let reads: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (n, rows, cols) = (6usize, 4u64, 32u64);
    let experts: Vec<Tensor> = (0..n)
        .map(|e| {
            let reads = reads.clone();
            Tensor::computed(
                format!("model.layers.0.mlp.experts.{e}.up_proj.weight"),
                DType::F32,
                vec![rows, cols],
                move || {
                    reads.lock().unwrap().push(e);
                    Ok((0..rows * cols)
                        .flat_map(|i| ((e as u64 * 1000 + i) as f32).to_le_bytes())
                        .collect())
                },
            )
        })
        .collect();
    let stacked = PlannedTensor {
        name: "blk.0.ffn_up_exps.weight".into(),
        source: experts[0].clone(),
        shape: vec![n as u64, rows, cols],
        transforms: vec![],
        ggml_type: GgmlType::F32,
        experts,
    }
    .into_tensor();
    let TensorData::Rows(fill) = &stacked.data else {
        panic!("a stacked tensor must be produced by bands of rows");
    };
    assert_eq!(fill.rows, n * rows as usize);
    assert!(
        reads.lock().unwrap().is_empty(),
        "nothing read while planning"
    );
    let row_bytes = fill.row_bytes;
    // One band per expert: each reads exactly that expert.
    for e in 0..n {
        let r = e * rows as usize..(e + 1) * rows as usize;
        let mut dst = vec![0u8; r.len() * row_bytes];
        (fill.fill)(r, &mut dst).unwrap();
        assert_eq!(*reads.lock().unwrap(), vec![e], "band of expert {e}");
        let first = f32::from_le_bytes(dst[..4].try_into().unwrap());
        assert_eq!(first, (e * 1000) as f32);
        reads.lock().unwrap().clear();
    }
    // A band across the boundary of experts 2 and 3 reads those two, in order.
    let mut dst = vec![0u8; 4 * row_bytes];
    (fill.fill)(10..14, &mut dst).unwrap();
    assert_eq!(*reads.lock().unwrap(), vec![2, 3]);
}

/// The DeepSeek-V2 fixture has no q LoRA and 2 layers: the converter writes it without a word,
/// llama.cpp's deepseek2 loader (llama-quantize, llama-cli) then stops for the missing
/// `deepseek2.attention.q_lora_rank`. The conversion (still the converter's bytes) says so;
/// DeepSeek-V3's fixture has q LoRA and gets no such warning.
#[test]
fn deepseek_v2_without_q_lora_warns_that_llama_cpp_will_not_load_it() {
    let convert = |case: &str| {
        let (tmp, dir, ck, _) = setup(case, |_| {});
        let out = tmp.path().join("out.gguf");
        let opts = HfToGgufOptions {
            outtype: OutType::F16,
            overwrite: true,
            ..Default::default()
        };
        convert_hf_to_gguf(&dir, &ck, &out, &opts).unwrap()
    };
    let v2 = convert("deepseek_v2");
    assert!(
        v2.warnings
            .iter()
            .any(|w| w.contains("llama.cpp will not load") && w.contains("2 layers")),
        "{:?}",
        v2.warnings
    );
    let v3 = convert("deepseek_v3");
    assert!(
        !v3.warnings.iter().any(|w| w.contains("llama.cpp")),
        "{:?}",
        v3.warnings
    );
}
