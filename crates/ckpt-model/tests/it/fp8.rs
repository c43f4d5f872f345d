//! FP8 checkpoints (tests/fixtures/fp8, made by scripts/gen-fp8-fixtures.py): a block-scaled
//! F8_E4M3 Llama and a ModelOpt FP8 Llama converted exactly like the pinned
//! convert_hf_to_gguf.py, and the bad inputs (a weight without its scale, a scale of the wrong
//! shape, an unknown quant_method, NVFP4).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ckpt_core::{Error, Tensor};
use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/fp8")
}

fn convert(model_dir: &Path, out: &Path, outtype: OutType) -> ckpt_core::Result<()> {
    let checkpoint = ckpt_safetensors::read(&model_dir.join("model.safetensors"))?;
    let opts = HfToGgufOptions {
        outtype,
        ..Default::default()
    };
    convert_hf_to_gguf(model_dir, &checkpoint, out, &opts).map(|_| ())
}

/// A copy of the fixture model in `tmp`, with `edit` applied to its tensors and `config` to its
/// config.json.
fn variant(
    tmp: &Path,
    edit: impl FnOnce(&mut Vec<Tensor>),
    config: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    variant_of("tiny-llama-fp8", tmp, edit, config)
}

/// [`variant`] of the fixture model `name`.
fn variant_of(
    name: &str,
    tmp: &Path,
    edit: impl FnOnce(&mut Vec<Tensor>),
    config: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let src = fixture().join(name);
    let dir = tmp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["tokenizer.model", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(src.join("config.json")).unwrap()).unwrap();
    config(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    let ck = ckpt_safetensors::read(&src.join("model.safetensors")).unwrap();
    let mut tensors = ck.tensors.clone();
    edit(&mut tensors);
    ckpt_safetensors::write(
        &dir.join("model.safetensors"),
        &tensors,
        &BTreeMap::new(),
        false,
        &mut |_| {},
    )
    .unwrap();
    dir
}

#[test]
fn block_scaled_fp8_llama_matches_the_converter() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    convert(&fixture().join("tiny-llama-fp8"), &out, OutType::F16).unwrap();
    let ours = std::fs::read(&out).unwrap();
    let reference = std::fs::read(fixture().join("tiny-llama-fp8.f16.gguf")).unwrap();
    assert!(
        ours == reference,
        "not byte-identical to convert_hf_to_gguf.py's tiny-llama-fp8.f16.gguf"
    );
    // `auto` picks BF16 from the first stored BF16 matrix, not the FP8 or F32 scale tensors
    let auto = tmp.path().join("auto.gguf");
    convert(&fixture().join("tiny-llama-fp8"), &auto, OutType::Auto).unwrap();
    let f = ckpt_gguf::GgufFile::open(&auto).unwrap();
    let t = f
        .tensor_infos
        .iter()
        .find(|t| t.name == "blk.0.attn_q.weight")
        .unwrap();
    assert_eq!(t.ggml_type, ckpt_core::GgmlType::BF16);
}

/// The exit code the `ckpt` command maps this error's kind to.
fn cli_exit_code(err: &Error) -> i32 {
    use ckpt_core::ErrorKind::*;
    match err.kind() {
        Mismatch => 1,
        Usage => 2,
        Invalid => 3,
        Unsafe => 4,
        Unsupported => 5,
        Io => 6,
        _ => 1,
    }
}

fn expect_err(dir: &Path, code: i32, needles: &[&str]) {
    let out = dir.parent().unwrap().join("out.gguf");
    let err: Error = convert(dir, &out, OutType::F16).unwrap_err();
    let msg = err.to_string();
    assert_eq!(cli_exit_code(&err), code, "{msg}");
    for n in needles {
        assert!(msg.contains(n), "{n:?} not in: {msg}");
    }
    assert!(!out.exists(), "nothing may be written");
}

#[test]
fn fp8_weight_without_its_scale_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = variant(
        tmp.path(),
        |t| t.retain(|t| t.name != "model.layers.0.mlp.up_proj.weight_scale_inv"),
        |_| {},
    );
    expect_err(
        &dir,
        3,
        &[
            "'model.layers.0.mlp.up_proj.weight'",
            "F8_E4M3",
            "model.layers.0.mlp.up_proj.weight_scale_inv",
        ],
    );
}

#[test]
fn scale_of_the_wrong_block_shape_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    // q_proj is [72, 72]: 32 x 32 blocks need a [3, 3] scale; k_proj's [2, 3] is given instead
    let dir = variant(
        tmp.path(),
        |t| {
            let k = t
                .iter()
                .find(|t| t.name == "model.layers.0.self_attn.k_proj.weight_scale_inv")
                .unwrap()
                .clone();
            let q = t
                .iter_mut()
                .find(|t| t.name == "model.layers.0.self_attn.q_proj.weight_scale_inv")
                .unwrap();
            assert_eq!(k.shape, vec![2, 3]);
            q.data = k.data;
            q.shape = k.shape;
        },
        |_| {},
    );
    expect_err(
        &dir,
        3,
        &[
            "model.layers.0.self_attn.q_proj.weight_scale_inv",
            "[2, 3]",
            "[3, 3]",
        ],
    );
    // blocks that do not match the scales' layout
    let tmp = tempfile::tempdir().unwrap();
    let dir = variant(
        tmp.path(),
        |_| {},
        |c| c["quantization_config"]["weight_block_size"] = serde_json::json!([128, 128]),
    );
    expect_err(&dir, 3, &["weight_scale_inv", "[128, 128]", "[1, 1]"]);
}

#[test]
fn unknown_quant_method_is_unsupported_with_the_list() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = variant(
        tmp.path(),
        |_| {},
        |c| c["quantization_config"]["quant_method"] = serde_json::json!("bitsandbytes"),
    );
    expect_err(
        &dir,
        5,
        &["'bitsandbytes'", "fp8", "compressed-tensors", "config.json"],
    );
}

#[test]
fn scale_without_its_weight_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = variant(
        tmp.path(),
        |t| t.retain(|t| t.name != "model.layers.0.mlp.down_proj.weight"),
        |_| {},
    );
    expect_err(
        &dir,
        3,
        &["model.layers.0.mlp.down_proj.weight_scale_inv", "no tensor"],
    );
}

fn assert_same_as(out: &Path, reference: &str) {
    let ours = std::fs::read(out).unwrap();
    let theirs = std::fs::read(fixture().join(reference)).unwrap();
    assert!(
        ours == theirs,
        "not byte-identical to convert_hf_to_gguf.py's {reference}"
    );
}

#[test]
fn modelopt_fp8_llama_matches_the_converter() {
    // Per-tensor weight_scale ([]), per-channel on down_proj ([rows, 1]); input_scale, k_scale
    // and v_scale dropped.
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.gguf");
    convert(&fixture().join("tiny-llama-modelopt"), &out, OutType::F16).unwrap();
    assert_same_as(&out, "tiny-llama-modelopt.f16.gguf");

    // An older export described only by hf_quant_config.json (producer modelopt): the converter
    // takes the method from it, and so does ckpt.
    let dir = variant_of(
        "tiny-llama-modelopt",
        tmp.path(),
        |_| {},
        |c| {
            c.as_object_mut().unwrap().remove("quantization_config");
        },
    );
    std::fs::write(
        dir.join("hf_quant_config.json"),
        r#"{"producer": {"name": "modelopt", "version": "0.33.0"},
            "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]}}"#,
    )
    .unwrap();
    let out = tmp.path().join("hfq.gguf");
    convert(&dir, &out, OutType::F16).unwrap();
    assert_same_as(&out, "tiny-llama-modelopt.f16.gguf");
}

#[test]
fn modelopt_scale_without_its_weight_is_dropped_like_the_converter() {
    // The converter drops a ModelOpt weight_scale whose weight is absent; the rest converts.
    let tmp = tempfile::tempdir().unwrap();
    let dir = variant_of(
        "tiny-llama-modelopt",
        tmp.path(),
        |t| {
            let s = t
                .iter()
                .find(|t| t.name == "model.layers.0.mlp.up_proj.weight_scale")
                .unwrap()
                .clone();
            let mut orphan = s;
            orphan.name = "model.layers.0.mlp.extra_proj.weight_scale".into();
            t.push(orphan);
        },
        |_| {},
    );
    let out = tmp.path().join("out.gguf");
    convert(&dir, &out, OutType::F16).unwrap();
    assert_same_as(&out, "tiny-llama-modelopt.f16.gguf");
}

#[test]
fn modelopt_weight_without_its_scale_and_nvfp4_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = variant_of(
        "tiny-llama-modelopt",
        tmp.path(),
        |t| t.retain(|t| t.name != "model.layers.0.self_attn.o_proj.weight_scale"),
        |_| {},
    );
    expect_err(
        &dir,
        3,
        &[
            "'model.layers.0.self_attn.o_proj.weight'",
            "F8_E4M3",
            "model.layers.0.self_attn.o_proj.weight_scale",
            "modelopt",
        ],
    );
    for (what, edit) in [
        (
            "quant_algo",
            serde_json::json!({"quant_method": "modelopt", "quant_algo": "NVFP4"}),
        ),
        (
            "quantized_layers",
            serde_json::json!({"quant_method": "modelopt", "quant_algo": "MIXED_PRECISION",
                "quantized_layers": {"model.layers.0.mlp.up_proj": {"quant_algo": "NVFP4"}}}),
        ),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = variant_of(
            "tiny-llama-modelopt",
            tmp.path(),
            |_| {},
            |c| c["quantization_config"] = edit,
        );
        eprintln!("{what}");
        expect_err(&dir, 5, &["NVFP4", "modelopt", "config.json"]);
    }
}
