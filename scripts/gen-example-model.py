#!/usr/bin/env python3
"""Writes examples/tiny-llama: the tiny model the README's "try it" commands run on.

A 1-layer LlamaForCausalLM (hidden 32, vocab 512, tied embeddings, random bf16 weights, seed 0)
with the real SentencePiece tokenizer and chat template that transformers wrote for
tests/fixtures/gguf/tiny-llama-spm (tokenizer.model, tokenizer_config.json). The weights are
saved as model.safetensors in a scratch folder, then turned into pytorch_model.bin by
`ckpt convert` (a torch zip that torch.load(weights_only=True) loads) so the README can start
from a PyTorch checkpoint.

usage: scripts/gen-example-model.py CKPT_BINARY   (needs numpy and safetensors)
"""
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

root = Path(__file__).resolve().parent.parent
src = root / "tests/fixtures/gguf/tiny-llama-spm"
out = root / "examples/tiny-llama"
H, I, V, HEADS, KV, D = 32, 64, 512, 4, 2, 8

config = json.loads((src / "config.json").read_text())
config.update(
    hidden_size=H, intermediate_size=I, num_hidden_layers=1, num_attention_heads=HEADS,
    num_key_value_heads=KV, head_dim=D, vocab_size=V, max_position_embeddings=128,
    tie_word_embeddings=True, dtype="bfloat16",
)

rng = np.random.default_rng(0)


def bf16(shape, scale=0.02):
    x = (rng.standard_normal(shape) * scale).astype(np.float32)
    # bfloat16 bits by round-to-nearest-even of the f32 bits (as torch's .to(torch.bfloat16)).
    b = x.view(np.uint32)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16).astype(np.uint16)
    return b


tensors = {
    "model.embed_tokens.weight": bf16((V, H)),
    "model.norm.weight": bf16((H,), 0.0) + np.uint16(0x3F80),  # ones
    "model.layers.0.input_layernorm.weight": bf16((H,), 0.0) + np.uint16(0x3F80),
    "model.layers.0.post_attention_layernorm.weight": bf16((H,), 0.0) + np.uint16(0x3F80),
    "model.layers.0.self_attn.q_proj.weight": bf16((HEADS * D, H)),
    "model.layers.0.self_attn.k_proj.weight": bf16((KV * D, H)),
    "model.layers.0.self_attn.v_proj.weight": bf16((KV * D, H)),
    "model.layers.0.self_attn.o_proj.weight": bf16((H, HEADS * D)),
    "model.layers.0.mlp.gate_proj.weight": bf16((I, H)),
    "model.layers.0.mlp.up_proj.weight": bf16((I, H)),
    "model.layers.0.mlp.down_proj.weight": bf16((H, I)),
}

with tempfile.TemporaryDirectory() as tmp:
    st = Path(tmp) / "st"
    st.mkdir()
    # safetensors.numpy has no bfloat16: write u16 and patch the dtype in the header.
    save_file(tensors, str(st / "model.safetensors"), metadata={"format": "pt"})
    raw = (st / "model.safetensors").read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    for k, v in header.items():
        if k != "__metadata__":
            v["dtype"] = "BF16"
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    (st / "model.safetensors").write_bytes(len(h).to_bytes(8, "little") + h + raw[8 + n :])
    (st / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if out.exists():
        shutil.rmtree(out)
    subprocess.run([sys.argv[1], "convert", str(st / "model.safetensors"), str(Path(tmp) / "pytorch_model.bin"), "-q"], check=True)
    out.mkdir(parents=True)
    shutil.copy(Path(tmp) / "pytorch_model.bin", out / "pytorch_model.bin")
(out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
for f in ["generation_config.json", "tokenizer.model", "tokenizer_config.json"]:
    shutil.copy(src / f, out / f)
print("wrote", out)
