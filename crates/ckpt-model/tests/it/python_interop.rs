//! gguf-py's GGUFReader reads our converter output (skipped unless CKPT_PYTHON is set).

use std::path::{Path, PathBuf};
use std::process::Command;

use ckpt_model::{convert_hf_to_gguf, HfToGgufOptions, OutType};

const CHECK: &str = r#"
import sys, gguf
r = gguf.GGUFReader(sys.argv[1])
f = r.fields
assert f["general.architecture"].contents() == "llama", f["general.architecture"].contents()
assert f["general.name"].contents() == sys.argv[2], f["general.name"].contents()
toks = f["tokenizer.ggml.tokens"].contents()
assert len(toks) == int(sys.argv[3]), len(toks)
names = [t.name for t in r.tensors]
assert "token_embd.weight" in names and "blk.0.attn_q.weight" in names, names
q = next(t for t in r.tensors if t.name == "blk.0.attn_q.weight")
assert q.tensor_type.name == sys.argv[4], q.tensor_type.name
x = gguf.quants.dequantize(q.data, q.tensor_type)
assert x.size == q.n_elements and abs(float(x.astype("float64").sum())) < 1e9
print("ok", len(names), "tensors", len(f), "fields")
"#;

fn check(model: &str, outtype: OutType, name: &str, n_tokens: usize, qtype: &str) {
    let Ok(python) = std::env::var("CKPT_PYTHON") else {
        eprintln!(
            "skipped: set CKPT_PYTHON to a Python with the gguf package to run this interop test"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf")
        .join(model);
    let ck = ckpt_safetensors::read(&model_dir.join("model.safetensors")).unwrap();
    let out = dir.path().join("out.gguf");
    convert_hf_to_gguf(
        &model_dir,
        &ck,
        &out,
        &HfToGgufOptions {
            outtype,
            ..Default::default()
        },
    )
    .unwrap();
    let result = Command::new(python)
        .arg("-c")
        .arg(CHECK)
        .arg(&out)
        .arg(name)
        .arg(n_tokens.to_string())
        .arg(qtype)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "gguf-py rejected our {model} output:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn gguf_py_reads_the_spm_llama_q8_0_output() {
    check(
        "tiny-llama-spm",
        OutType::Q8_0,
        "Tiny Llama Spm",
        512,
        "Q8_0",
    );
}

#[test]
fn gguf_py_reads_the_smollm_bf16_output() {
    check(
        "tiny-smol-bpe",
        OutType::BF16,
        "Tiny Smol Bpe",
        49152,
        "BF16",
    );
}

const METADATA: &str = r#"
import gguf, json, sys
from pathlib import Path
d = Path(sys.argv[1]); n = int(sys.argv[2])
md = gguf.Metadata.load(None, d, None, n)
if md.name is None: md.name = d.name
if md.size_label is None and n > 0: md.size_label = gguf.size_label(n, 0, 0, 0)
w = gguf.GGUFWriter(None, "llama")
md.set_gguf_meta_model(w)
print(json.dumps([[k, v.value] for k, v in w.kv_data[0].items() if k != "general.architecture"]))
"#;

/// general.* keys from model cards and folder names, against gguf-py's own Metadata code.
#[test]
fn model_card_metadata_matches_gguf_py() {
    let Ok(python) = std::env::var("CKPT_PYTHON") else {
        eprintln!(
            "skipped: set CKPT_PYTHON to a Python with the gguf package to run this interop test"
        );
        return;
    };
    let cards = [
        "---\nlicense: apache-2.0\nlanguage:\n- en\n- fr\ntags:\n- chat\n- text-generation\nbase_model:\n- Qwen/Qwen2.5-0.5B\n- https://huggingface.co/org/Other-7B\npipeline_tag: text-generation\ndatasets:\n- HuggingFaceTB/smoltalk\n---\n# Model\n",
        "---\nlicense: other\nlicense_name: custom\nlicense_link: LICENSE\nmodel_name: My Model\nmodel_creator: Someone\n---\n",
        "no front matter here\n",
    ];
    for (i, card) in cards.iter().enumerate() {
        let root = tempfile::tempdir().unwrap();
        let dir = root
            .path()
            .join(["Qwen2.5-0.5B-Instruct", "tiny-llama-spm", "Mistral-7B-v0.3"][i]);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("README.md"), card).unwrap();
        let params = [494_032_768u64, 3_410_176, 7_248_023_552][i];
        let mut cmd = Command::new(&python);
        if let Ok(gguf_py) = std::env::var("CKPT_LLAMA_GGUF_PY") {
            cmd.env("PYTHONPATH", gguf_py);
        }
        let out = cmd
            .arg("-c")
            .arg(METADATA)
            .arg(&dir)
            .arg(params.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let md = ckpt_model::metadata::ModelMetadata::derive(
            &dir,
            &serde_json::Map::new(),
            None,
            params,
        );
        let mut kv = ckpt_model::kv::KvList::new();
        md.write(&mut kv);
        let got: Vec<serde_json::Value> = kv
            .entries()
            .iter()
            .map(|(k, v)| serde_json::json!([k, ckpt_gguf::to_json(v)]))
            .collect();
        assert_eq!(serde_json::Value::Array(got), want, "card #{i}");
    }
}

const SPECIAL: &str = r#"
import gguf, json, sys
d = sys.argv[1]; merges = sys.argv[2] == "1"; n = None if sys.argv[3] == "-" else int(sys.argv[3])
sv = gguf.SpecialVocab(d, load_merges=merges, n_vocab=n)
w = gguf.GGUFWriter(None, "llama")
sv.add_to_gguf(w, quiet=True)
print(json.dumps([[k, v.value] for k, v in w.kv_data[0].items() if k != "general.architecture"]))
"#;

fn write_json(dir: &Path, name: &str, v: serde_json::Value) {
    std::fs::write(dir.join(name), v.to_string()).unwrap();
}

/// Special ids, add_* flags, merges and chat templates against gguf-py's SpecialVocab. The
/// PyPI gguf 0.19.0 predates the pinned llama.cpp commit's SpecialVocab (normalizer flags), so
/// this needs that commit's gguf-py: CKPT_LLAMA_GGUF_PY=<llama.cpp>/gguf-py.
#[test]
fn special_vocab_matches_gguf_py() {
    let (Ok(python), Ok(gguf_py)) = (
        std::env::var("CKPT_PYTHON"),
        std::env::var("CKPT_LLAMA_GGUF_PY"),
    ) else {
        eprintln!("skipped: set CKPT_PYTHON and CKPT_LLAMA_GGUF_PY (llama.cpp 0c1e57098's gguf-py folder) to run this interop test");
        return;
    };
    use serde_json::json;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf");
    let root = tempfile::tempdir().unwrap();
    let tok = |pp: serde_json::Value, added: &[(&str, u32)]| {
        json!({"added_tokens": added.iter().map(|(c, i)| json!({"id": i, "content": c, "special": true, "normalized": false})).collect::<Vec<_>>(),
               "post_processor": pp, "normalizer": {"type": "Sequence", "normalizers": [{"type": "Lowercase"}]},
               "model": {"type": "BPE", "merges": [["a b", "c"], ["d", "e"]]}})
    };
    // Roberta-style: add bos/eos/sep, cls/sep filled from the processor.
    let roberta = root.path().join("roberta");
    std::fs::create_dir(&roberta).unwrap();
    write_json(
        &roberta,
        "tokenizer.json",
        tok(
            json!({"type": "RobertaProcessing", "sep": ["</s>", 2], "cls": ["<s>", 0]}),
            &[("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<mask>", 3)],
        ),
    );
    write_json(
        &roberta,
        "tokenizer_config.json",
        json!({"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "mask_token": "<mask>", "add_eos_token": false}),
    );
    // Llama-3 style template: bos added, eos list in config.json ignored, eot from a different last token.
    let llama3 = root.path().join("llama3");
    std::fs::create_dir(&llama3).unwrap();
    let single = json!([{"SpecialToken": {"id": "<|begin|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|eot|>", "type_id": 0}}]);
    let pair = json!([{"SpecialToken": {"id": "<|begin|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<|sep|>", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}, {"SpecialToken": {"id": "<|eot|>", "type_id": 1}}]);
    write_json(
        &llama3,
        "tokenizer.json",
        tok(
            json!({"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "TemplateProcessing", "single": single, "pair": pair}]}),
            &[
                ("<|begin|>", 5),
                ("<|end|>", 6),
                ("<|eot|>", 7),
                ("<|sep|>", 8),
            ],
        ),
    );
    write_json(
        &llama3,
        "tokenizer_config.json",
        json!({"bos_token": "<|begin|>", "eos_token": "<|end|>", "sep_token": "<|sep|>", "chat_template": [{"name": "default", "template": "D"}, {"name": "tool use", "template": "T"}]}),
    );
    write_json(
        &llama3,
        "config.json",
        json!({"eos_token_id": [6, 7], "pad_token_id": 9}),
    );
    let cases: Vec<(PathBuf, bool, Option<usize>)> = vec![
        (fixtures.join("tiny-smol-bpe"), true, None),
        (fixtures.join("tiny-llama-spm"), false, Some(512)),
        (roberta, true, None),
        (llama3, true, Some(8)),
    ];
    for (dir, merges, n_vocab) in cases {
        let out = Command::new(&python)
            .env("PYTHONPATH", &gguf_py)
            .arg("-c")
            .arg(SPECIAL)
            .arg(&dir)
            .arg(if merges { "1" } else { "0" })
            .arg(n_vocab.map(|n| n.to_string()).unwrap_or("-".into()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let sv = ckpt_model::vocab::special::SpecialVocab::load(&dir, merges, n_vocab).unwrap();
        let mut kv = ckpt_model::kv::KvList::new();
        sv.write(&mut kv);
        let got: Vec<serde_json::Value> = kv
            .entries()
            .iter()
            .map(|(k, v)| serde_json::json!([k, ckpt_gguf::to_json(v)]))
            .collect();
        assert_eq!(serde_json::Value::Array(got), want, "{}", dir.display());
    }
}
