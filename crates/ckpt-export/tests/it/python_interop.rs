//! safetensors and gguf-py check an exported folder (skipped unless CKPT_PYTHON is set): the
//! shards load, and every tensor equals gguf-py's own dequantization of the GGUF tensor, with
//! the Q/K rows put back in the Hugging Face order by numpy.

use std::path::Path;
use std::process::Command;

use ckpt_export::{gguf_to_hf, ExportOptions};

const CHECK: &str = r#"
import sys, json, os
import numpy as np
import gguf
from safetensors.numpy import load_file

gguf_path, folder = sys.argv[1], sys.argv[2]
index_path = os.path.join(folder, "model.safetensors.index.json")
if os.path.exists(index_path):
    files = sorted(set(json.load(open(index_path))["weight_map"].values()))
else:
    files = ["model.safetensors"]
hf = {}
for f in files:
    hf.update(load_file(os.path.join(folder, f)))
config = json.load(open(os.path.join(folder, "config.json")))
n_head, n_kv = config["num_attention_heads"], config["num_key_value_heads"]

names = {
    "token_embd": "model.embed_tokens", "output": "lm_head", "output_norm": "model.norm",
    "attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}

def hf_name(n):
    base, suffix = n.rsplit(".", 1)
    parts = base.split(".")
    if parts[0] == "blk":
        return f"model.layers.{parts[1]}.{names[parts[2]]}.{suffix}"
    return f"{names[base]}.{suffix}"

def unpermute(w, heads):
    # inverse of convert_hf_to_gguf.py's LlamaModel.permute
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

reader = gguf.GGUFReader(gguf_path)
checked = 0
for t in reader.tensors:
    x = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    x = x.reshape([int(d) for d in reversed(t.shape)])
    if ".attn_q." in t.name:
        x = unpermute(x, n_head)
    elif ".attn_k." in t.name:
        x = unpermute(x, n_kv)
    y = hf[hf_name(t.name)]
    assert y.dtype == np.float32, (t.name, y.dtype)
    assert y.shape == x.shape, (t.name, y.shape, x.shape)
    assert np.array_equal(x, y), t.name
    checked += 1
assert checked == len(hf), (checked, len(hf))
print("ok", checked)
"#;

#[test]
fn gguf_py_dequantization_matches_the_exported_q4_k_m_folder() {
    let Ok(python) = std::env::var("CKPT_PYTHON") else {
        eprintln!("skipped: set CKPT_PYTHON to a Python with numpy, gguf and safetensors to run this interop test");
        return;
    };
    let gguf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/gguf/tiny-llama-spm.Q4_K_M.gguf");
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("out");
    gguf_to_hf(
        &gguf,
        &folder,
        &ExportOptions {
            max_shard_size: Some(3_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    let result = Command::new(python)
        .arg("-c")
        .arg(CHECK)
        .arg(&gguf)
        .arg(&folder)
        .output()
        .unwrap();
    assert!(
        result.status.success(),
        "safetensors/gguf-py check failed:\n{}\n{}",
        String::from_utf8_lossy(&result.stdout),
        String::from_utf8_lossy(&result.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&result.stdout).trim(), "ok 39");
}
