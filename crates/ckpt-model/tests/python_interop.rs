//! gguf-py's GGUFReader reads our converter output (skipped unless CKPT_PYTHON is set).

use std::path::Path;
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
        eprintln!("skipped: set CKPT_PYTHON to a Python with the gguf package to run this interop test");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf").join(model);
    let ck = ckpt_safetensors::read(&model_dir.join("model.safetensors")).unwrap();
    let out = dir.path().join("out.gguf");
    convert_hf_to_gguf(&model_dir, &ck, &out, &HfToGgufOptions { outtype, ..Default::default() }).unwrap();
    let result = Command::new(python).arg("-c").arg(CHECK).arg(&out).arg(name).arg(n_tokens.to_string()).arg(qtype).output().unwrap();
    assert!(
        result.status.success(),
        "gguf-py rejected our {model} output:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
}

#[test]
fn gguf_py_reads_the_spm_llama_q8_0_output() {
    check("tiny-llama-spm", OutType::Q8_0, "Tiny Llama Spm", 512, "Q8_0");
}

#[test]
fn gguf_py_reads_the_smollm_bf16_output() {
    check("tiny-smol-bpe", OutType::BF16, "Tiny Smol Bpe", 49152, "BF16");
}
