#!/usr/bin/env python3
"""Writes tests/fixtures/fp8/ (see its README.md).

usage: gen-fp8-fixtures.py LLAMA_CPP_SRC [casts|fp8|modelopt ...]   (python with torch,
       transformers, safetensors; the named parts only, all by default)

casts.safetensors / casts.bin: every F8_E4M3 and F8_E5M2 bit pattern (16 x 16) and torch's
`.to(float32 | float16 | bfloat16)` of each. tiny-llama-fp8/: a 1-layer Llama whose projections
are F8_E4M3 with 32 x 32 block scales (`weight_scale_inv`, DeepSeek-V3 layout, partial blocks),
and tiny-llama-fp8.f16.gguf: what the pinned convert_hf_to_gguf.py writes for it.
tiny-llama-modelopt/ and tiny-llama-modelopt.f16.gguf: the same for an NVIDIA ModelOpt FP8
checkpoint (quant_method modelopt, per-tensor / per-channel weight_scale, input/k/v scales).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "fp8"
SPM_DIR = ROOT / "tests" / "fixtures" / "gguf" / "tiny-llama-spm"


def quantize_fp8_blocks(w: torch.Tensor, block: list[int] | None):
    """DeepSeek-V3 style: per block scale = amax / 448, weight = (w / scale) as float8_e4m3fn,
    the stored weight_scale_inv is the scale (float32)."""
    w = w.float()
    if block is None:
        s = (w.abs().amax() / 448.0).clamp(min=1e-12).reshape(1)
        return (w / s).to(torch.float8_e4m3fn), s
    b0, b1 = block
    lead, (r, c) = w.shape[:-2], w.shape[-2:]
    nr, nc = -(-r // b0), -(-c // b1)
    s = torch.empty(*lead, nr, nc)
    q = torch.empty(w.shape, dtype=torch.float8_e4m3fn)
    for i in range(nr):
        for j in range(nc):
            blk = w[..., i * b0:(i + 1) * b0, j * b1:(j + 1) * b1]
            sc = (blk.abs().amax(dim=(-2, -1)) / 448.0).clamp(min=1e-12)
            s[..., i, j] = sc
            q[..., i * b0:(i + 1) * b0, j * b1:(j + 1) * b1] = (blk / sc[..., None, None]).to(torch.float8_e4m3fn)
    return q, s


def fp8_checkpoint(folder: Path, block: list[int] | None) -> None:
    """Rewrites a saved HF folder as an FP8 checkpoint: every 2-D+ `*_proj.weight` quantized,
    quantization_config set the way DeepSeek-V3 / Qwen3-FP8 set it."""
    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    idx = json.loads(index.read_text()) if index.is_file() else None
    for f in files:
        tensors = load_file(str(f))
        out = {}
        for name, t in tensors.items():
            if name.endswith("_proj.weight") and t.dim() >= 2:
                q, s = quantize_fp8_blocks(t, block)
                out[name] = q
                out[name + "_scale_inv"] = s.contiguous()
                if idx is not None:
                    idx["weight_map"][name + "_scale_inv"] = f.name
            else:
                out[name] = t
        save_file(out, str(f), metadata={"format": "pt"})
    if idx is not None:
        index.write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n")
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    qc = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8"}
    if block is not None:
        qc["weight_block_size"] = block
    cfg["quantization_config"] = qc
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def modelopt_checkpoint(folder: Path, per_channel: tuple[str, ...] = (), hf_quant_config_only: bool = False) -> None:
    """Rewrites a saved HF folder as an NVIDIA ModelOpt FP8 checkpoint (quant_algo FP8): every
    2-D+ `*_proj.weight` F8_E4M3 with a per-tensor F32 `weight_scale` (shape [], amax / 448), or
    per channel ([rows, 1]) for names ending with one of `per_channel`; a per-tensor
    `input_scale` beside each, and `k_scale` / `v_scale` on the attention, as ModelOpt exports
    them (the converter drops those three). With `hf_quant_config_only` the method is described
    by hf_quant_config.json alone, as in older ModelOpt exports."""
    files = sorted(folder.glob("*.safetensors"))
    index = folder / "model.safetensors.index.json"
    idx = json.loads(index.read_text()) if index.is_file() else None
    for f in files:
        tensors = load_file(str(f))
        out = {}
        for name, t in tensors.items():
            if name.endswith("_proj.weight") and t.dim() >= 2:
                w = t.float()
                if name.endswith(per_channel) and per_channel:
                    s = (w.abs().amax(dim=-1, keepdim=True) / 448.0).clamp(min=1e-12)
                else:
                    s = (w.abs().amax() / 448.0).clamp(min=1e-12).reshape(())
                base = name.removesuffix(".weight")
                extra = {
                    base + ".weight_scale": s.contiguous(),
                    base + ".input_scale": (w.abs().mean() / 448.0).reshape(()),
                }
                if name.endswith(("k_proj.weight", "v_proj.weight")):
                    kv = name.split(".")[-2][0]
                    extra[base + f".{kv}_scale"] = torch.tensor(1.0)
                out[name] = (w / s).to(torch.float8_e4m3fn)
                out.update(extra)
                if idx is not None:
                    for k in extra:
                        idx["weight_map"][k] = f.name
            else:
                out[name] = t
        save_file(out, str(f), metadata={"format": "pt"})
    if idx is not None:
        index.write_text(json.dumps(idx, indent=2, sort_keys=True) + "\n")
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    quant = {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8", "exclude_modules": ["lm_head"]}
    if hf_quant_config_only:
        # Older ModelOpt exports: no quantization_config, only hf_quant_config.json.
        doc = {"producer": {"name": "modelopt", "version": "0.33.0"}, "quantization": quant}
        (folder / "hf_quant_config.json").write_text(json.dumps(doc, indent=2) + "\n")
    else:
        cfg["quantization_config"] = {"quant_method": "modelopt", **quant}
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def casts() -> None:
    bits = torch.arange(256, dtype=torch.uint8).reshape(16, 16)
    t = {}
    for key, dt in (("e4m3", torch.float8_e4m3fn), ("e5m2", torch.float8_e5m2)):
        x = bits.clone().view(dt)
        t[key] = x
        for to_key, to in (("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)):
            t[f"{key}.{to_key}"] = x.to(to)
    save_file(t, str(OUT / "casts.safetensors"))
    torch.save({"e4m3": t["e4m3"].clone(), "e5m2": t["e5m2"].clone()}, str(OUT / "casts.bin"))


def tiny_llama(src: Path) -> None:
    import transformers as tf

    d = OUT / "tiny-llama-fp8"
    if d.exists():
        shutil.rmtree(d)
    vocab = json.loads((SPM_DIR / "config.json").read_text())["vocab_size"]
    cfg = tf.LlamaConfig(hidden_size=72, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=80, vocab_size=vocab, max_position_embeddings=256, tie_word_embeddings=False)
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for p in model.parameters():
            p.add_((torch.randn(p.shape, generator=g) * 0.05).to(p.dtype))
    model.save_pretrained(str(d), safe_serialization=True)
    (d / "generation_config.json").unlink(missing_ok=True)
    fp8_checkpoint(d, [32, 32])
    for n in ["tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile(SPM_DIR / n, d / n)
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    subprocess.run([sys.executable, str(src / "convert_hf_to_gguf.py"), str(d), "--outtype", "f16",
                    "--outfile", str(OUT / "tiny-llama-fp8.f16.gguf")], check=True, env=env)


def tiny_llama_modelopt(src: Path) -> None:
    """A smaller Llama (hidden 32, tied embeddings) as a ModelOpt FP8 checkpoint: per-tensor
    weight scales, down_proj per channel, input/k/v scales to drop."""
    import transformers as tf

    d = OUT / "tiny-llama-modelopt"
    if d.exists():
        shutil.rmtree(d)
    vocab = json.loads((SPM_DIR / "config.json").read_text())["vocab_size"]
    cfg = tf.LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                         intermediate_size=48, vocab_size=vocab, max_position_embeddings=256, tie_word_embeddings=True)
    cfg.architectures = ["LlamaForCausalLM"]
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(cfg).to(torch.bfloat16).eval()
    with torch.no_grad():
        g = torch.Generator().manual_seed(2)
        for p in model.parameters():
            p.add_((torch.randn(p.shape, generator=g) * 0.05).to(p.dtype))
    model.save_pretrained(str(d), safe_serialization=True)
    (d / "generation_config.json").unlink(missing_ok=True)
    modelopt_checkpoint(d, per_channel=("down_proj.weight",))
    for n in ["tokenizer.model", "tokenizer_config.json"]:
        shutil.copyfile(SPM_DIR / n, d / n)
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    subprocess.run([sys.executable, str(src / "convert_hf_to_gguf.py"), str(d), "--outtype", "f16",
                    "--outfile", str(OUT / "tiny-llama-modelopt.f16.gguf")], check=True, env=env)


def main() -> None:
    src = Path(sys.argv[1]).resolve()
    OUT.mkdir(parents=True, exist_ok=True)
    only = sys.argv[2:]
    if not only or "casts" in only:
        casts()
    if not only or "fp8" in only:
        tiny_llama(src)
    if not only or "modelopt" in only:
        tiny_llama_modelopt(src)


if __name__ == "__main__":
    main()
