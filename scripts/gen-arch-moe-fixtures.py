#!/usr/bin/env python3
"""Writes tests/fixtures/arch-moe/: tiny mixture-of-experts cases with what llama.cpp's
convert_hf_to_gguf.py produced for them (the same layout as tests/fixtures/arch-tables, see
scripts/gen-arch-fixtures.py).

usage: gen-arch-moe-fixtures.py LLAMA_CPP_SRC [CASE ...]   (python with torch, transformers, safetensors, numpy;
       only the named cases, all by default)

Unlike arch-tables, element i of the k-th tensor (in sorted name order) is
((i + 5 * k) % 13) * 0.125 in float32, so every expert differs and a stacking order or
expert mix-up changes the output. MXFP4 tensors (names ending in _blocks / _scales, uint8) hold
(7 * i + 3 * k) % 256 and 118 + (i + k) % 8 instead.

The "glm" tokenizer is the tiny BPE one with three added tokens renamed to GLM's
(<repo_name> -> <|user|>, <file_sep> -> [gMASK], <filename> -> <|observation|>), as in the
architecture matrix.
"""

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gen_arch_fixtures", ROOT / "scripts" / "gen-arch-fixtures.py")
base = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(base)
OUT = base.FX / "arch-moe"
TINY = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, max_position_embeddings=128)


def cases():
    import transformers as tf

    bpe_vocab = json.loads((base.BPE_DIR / "config.json").read_text())["vocab_size"]
    spm_vocab = json.loads((base.SPM_DIR / "config.json").read_text())["vocab_size"]
    b = dict(TINY, vocab_size=bpe_vocab)
    return {
        # Routed experts stacked down, gate, up; router kept f32; q/k norms.
        "qwen3moe": ("Qwen3MoeForCausalLM", tf.Qwen3MoeConfig(num_key_value_heads=1, head_dim=4, num_experts=3, num_experts_per_tok=2, moe_intermediate_size=4, **b), "bpe"),
        # A shared expert and its sigmoid gate (ffn_gate_inp_shexp, kept f32) next to the routed ones.
        "qwen2moe": ("Qwen2MoeForCausalLM", tf.Qwen2MoeConfig(num_key_value_heads=1, num_experts=3, num_experts_per_tok=2, moe_intermediate_size=4, shared_expert_intermediate_size=12, **b), "bpe"),
        # block_sparse_moe w1/w2/w3 stacked as gate, down, up; Q/K permuted; size label "3x…".
        "mixtral": ("MixtralForCausalLM", tf.MixtralConfig(num_key_value_heads=1, num_local_experts=3, num_experts_per_tok=2, **dict(TINY, vocab_size=spm_vocab)), "spm"),
        # Leading dense layer, experts stacked gate, up, down, shared experts, and the
        # moe_statics.e_score_correction_bias renamed to exp_probs_b.bias.
        "ernie4_5_moe": ("Ernie4_5_MoeForCausalLM", tf.Ernie4_5_MoeConfig(num_key_value_heads=1, head_dim=4, moe_num_experts=3, moe_k=2, moe_intermediate_size=4, moe_num_shared_experts=1, moe_layer_start_index=1, tie_word_embeddings=False, pad_token_id=None, bos_token_id=None, eos_token_id=None, **dict(TINY, vocab_size=spm_vocab)), "spm"),
        # Multi-head latent attention without q LoRA (q_proj), kv_b_proj split per head into
        # attn_k_b (transposed) and attn_v_b; a leading dense layer and a shared expert.
        "deepseek_v2": ("DeepseekV2ForCausalLM", tf.DeepseekV2Config(num_key_value_heads=2, n_routed_experts=3, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=4, first_k_dense_replace=1, kv_lora_rank=4, q_lora_rank=None, qk_rope_head_dim=2, qk_nope_head_dim=4, v_head_dim=6, pad_token_id=None, bos_token_id=None, eos_token_id=None, **b), "bpe"),
        # q LoRA, sigmoid routing with groups and the expert bias, yarn mscale_all_dim, and a
        # multi-token-prediction layer (model.layers.2.*) that the converter skips.
        "deepseek_v3": ("DeepseekV3ForCausalLM", tf.DeepseekV3Config(num_key_value_heads=2, n_routed_experts=3, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=4, first_k_dense_replace=1, kv_lora_rank=4, q_lora_rank=4, qk_rope_head_dim=2, qk_nope_head_dim=4, v_head_dim=6, n_group=1, topk_group=1, routed_scaling_factor=2.5, num_nextn_predict_layers=1, rope_parameters={"rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 32, "beta_fast": 32.0, "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "rope_theta": 10000.0}, pad_token_id=None, bos_token_id=None, eos_token_id=None, **b), "bpe"),
        # Experts stored stacked with gate and up fused (input_linear [experts, 2 * ffn, hidden]),
        # split into ffn_gate_exps / ffn_up_exps; the shared expert's fused gate/up likewise.
        "granitemoe_shared": ("GraniteMoeSharedForCausalLM", tf.GraniteMoeSharedConfig(num_key_value_heads=1, num_local_experts=3, num_experts_per_tok=2, shared_intermediate_size=12, attention_multiplier=0.125, embedding_multiplier=12.0, residual_multiplier=0.22, logits_scaling=8.0, **b), "bpe"),
        # bf16-style GPT-OSS experts: stored stacked and transposed, gate/up interleaved (split
        # even/odd per expert, biases too), attention sinks, sliding window.
        "gpt_oss": ("GptOssForCausalLM", tf.GptOssConfig(num_key_value_heads=1, head_dim=4, num_local_experts=3, num_experts_per_tok=2, sliding_window=64, pad_token_id=None, bos_token_id=None, eos_token_id=None, **b), "bpe"),
        # GLM-4.5: a leading dense layer, sigmoid routing over experts plus a shared one, partial
        # rotary, and a NextN layer (model.layers.2.*, added by the generator) that is kept.
        "glm4moe": ("Glm4MoeForCausalLM", tf.Glm4MoeConfig(num_key_value_heads=1, n_routed_experts=3, num_experts_per_tok=2, n_shared_experts=1, moe_intermediate_size=4, first_k_dense_replace=1, num_nextn_predict_layers=1, pad_token_id=None, bos_token_id=None, eos_token_id=None, **b), "glm"),
        # GPT-OSS as released: experts as MXFP4 blocks/scales (gate and up rows interleaved),
        # repacked into GGUF MXFP4 tensors written first; general.file_type MOSTLY_MXFP4_MOE.
        # Not a mixture of experts, but its per-layer xIELU scalars (mlp.act_fn.*) need this
        # generator's per-tensor values: they become the xielu.* KV arrays in block
        # order. No Q/K permutation, q/k norms, Llama 3 rope factors.
        "apertus": ("ApertusForCausalLM", tf.ApertusConfig(num_key_value_heads=1, rope_parameters={"rope_type": "llama3", "rope_theta": 12000000.0, "factor": 8.0, "original_max_position_embeddings": 64, "low_freq_factor": 1.0, "high_freq_factor": 4.0}, pad_token_id=None, bos_token_id=None, eos_token_id=None, **b), "bpe"),
        # OLMoE: q/k norms over the whole projection, experts stacked down, gate, up.
        "olmoe": ("OlmoeForCausalLM", tf.OlmoeConfig(num_key_value_heads=1, num_experts=3, num_experts_per_tok=2, pad_token_id=None, bos_token_id=None, eos_token_id=None, **b), "bpe"),
        # Granite MoE without a shared expert: fused input_linear split, Granite's multipliers.
        "granitemoe": ("GraniteMoeForCausalLM", tf.GraniteMoeConfig(num_key_value_heads=1, num_local_experts=3, num_experts_per_tok=2, attention_multiplier=0.125, embedding_multiplier=12.0, residual_multiplier=0.22, logits_scaling=8.0, **b), "bpe"),
        # Llama 4: dense and MoE layers interleaved (every 2nd), experts packed (gate_up_proj
        # [E, H, 2F] cut in halves, down_proj [E, F, H], both transposed), a shared expert, the
        # dense width in intermediate_size_mlp, no rope on the 4th layer, chunked attention, and
        # Scout-style Llama 3 rope factors (low_freq_factor == high_freq_factor).
        "llama4": ("Llama4ForCausalLM", tf.Llama4TextConfig(num_key_value_heads=1, head_dim=4, num_local_experts=3, num_experts_per_tok=1, interleave_moe_layer_step=2, intermediate_size_mlp=16, attention_chunk_size=64, rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 16.0, "low_freq_factor": 1.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 8}, pad_token_id=None, bos_token_id=None, eos_token_id=None, **dict(b, num_hidden_layers=4, intermediate_size=4)), "bpe"),
        "gpt_oss_mxfp4": ("GptOssForCausalLM", tf.GptOssConfig(num_key_value_heads=1, head_dim=4, num_local_experts=3, num_experts_per_tok=2, sliding_window=64, pad_token_id=None, bos_token_id=None, eos_token_id=None, **dict(b, hidden_size=32, intermediate_size=32)), "bpe"),
    }


# Per case: config.json keys the released checkpoints have (transformers' class has no field
# for them), and tensors save_pretrained does not write (DeepSeek-V3's MTP layer).
CONFIG_EXTRA = {
    "deepseek_v3": {"scoring_func": "sigmoid", "topk_method": "noaux_tc"},
    "gpt_oss_mxfp4": {"quantization_config": {"modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"], "quant_method": "mxfp4"}},
}


def extra_tensors(case, tensors):
    if case not in ("deepseek_v3", "glm4moe"):
        return []
    last, mtp = "model.layers.1.", "model.layers.2."
    extra = [(mtp + n[len(last):], s) for n, s in tensors if n.startswith(last)]
    h = TINY["hidden_size"]
    extra += [(mtp + "eh_proj.weight", [h, 2 * h]), (mtp + "enorm.weight", [h]), (mtp + "hnorm.weight", [h]), (mtp + "shared_head.norm.weight", [h])]
    if case == "glm4moe":
        embed = dict(tensors)["model.embed_tokens.weight"]
        extra += [(mtp + "shared_head.head.weight", embed), (mtp + "embed_tokens.weight", embed)]
    return extra


def mxfp4_layout(tensors):
    """The bf16 experts (gate_up_proj [E, H, 2F], down_proj [E, F, H]) as the released MXFP4
    checkpoints store them: *_blocks [E, rows, cols / 32, 16] and *_scales [E, rows, cols / 32]
    of the transposed weights."""
    out = []
    for n, s in tensors:
        if n.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
            e, cols, rows = s
            out += [(n + "_blocks", [e, rows, cols // 32, 16]), (n + "_scales", [e, rows, cols // 32])]
        else:
            out.append((n, s))
    return out


def values(k, name, shape):
    import numpy as np

    i = np.arange(int(np.prod(shape)))
    if name.endswith("_blocks"):
        return ((7 * i + 3 * k) % 256).astype(np.uint8).reshape(shape)
    if name.endswith("_scales"):
        return (118 + (i + k) % 8).astype(np.uint8).reshape(shape)
    return ((i + 5 * k) % 13 * 0.125).astype(np.float32).reshape(shape)


def glm_tokenizer(dst):
    """The tiny BPE tokenizer.json with GLM's added tokens (see the module docstring)."""
    path = dst / "tokenizer.json"
    tok = json.loads(path.read_text(encoding="utf-8"))
    for old, new in (("<repo_name>", "<|user|>"), ("<file_sep>", "[gMASK]"), ("<filename>", "<|observation|>")):
        for t in tok["added_tokens"]:
            if t["content"] == old:
                t["content"] = new
        vocab = tok["model"]["vocab"]
        vocab[new] = vocab.pop(old)
    path.write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")


def dequantized_experts(model_dir, reader, dst):
    """What the GGUF -> HF export of the MXFP4 case must give back for the experts: transformers'
    own dequantization of the MXFP4 checkpoint (loaded with Mxfp4Config(dequantize=True), as it
    does without an MXFP4 kernel, and saved with save_pretrained), the two experts tensors of
    each layer as BF16. Checked first against gguf-py's dequantization of the converter's GGUF
    MXFP4 tensors (gate and up interleaved back into gate_up_proj, down transposed back), value
    for value: transformers writes -0 for the E2M1 code of negative zero, ggml (and gguf-py) +0."""
    import numpy as np
    import torch
    import transformers as tf
    from gguf.quants import dequantize
    from safetensors import safe_open
    from safetensors.torch import save_file

    model = tf.GptOssForCausalLM.from_pretrained(str(model_dir), quantization_config=tf.Mxfp4Config(dequantize=True), dtype=torch.bfloat16)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        if "quantization_config" in json.loads((Path(tmp) / "config.json").read_text()):
            raise SystemExit("transformers kept quantization_config for the dequantized model")
        with safe_open(str(Path(tmp) / "model.safetensors"), "pt") as f:
            experts = {n: f.get_tensor(n) for n in f.keys() if n.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj"))}
    ggml = {t.name: dequantize(t.data, t.tensor_type) for t in reader.tensors if t.name.endswith("_exps.weight")}
    for name, t in experts.items():
        if t.dtype != torch.bfloat16:
            raise SystemExit(f"{name}: transformers saved {t.dtype}, expected bfloat16")
        bid = name.split(".")[2]
        if name.endswith("gate_up_proj"):
            gate, up = (ggml[f"blk.{bid}.ffn_{w}_exps.weight"].transpose(0, 2, 1) for w in ("gate", "up"))
            ref = np.stack([gate, up], axis=-1).reshape(gate.shape[0], gate.shape[1], -1)
        else:
            ref = ggml[f"blk.{bid}.ffn_down_exps.weight"].transpose(0, 2, 1)
        if not np.array_equal(t.float().numpy(), ref):
            raise SystemExit(f"{name}: transformers and gguf-py dequantize the MXFP4 experts differently")
    if len(experts) != 4:
        raise SystemExit(f"expected 4 expert tensors, transformers saved {sorted(experts)}")
    save_file({n: experts[n].contiguous() for n in sorted(experts)}, str(dst), metadata={"format": "pt"})


def main() -> int:
    src = Path(sys.argv[1]).resolve()
    sys.path.insert(0, str(src / "gguf-py"))
    import numpy as np
    import torch
    import transformers as tf
    from gguf import GGUFReader
    from safetensors.numpy import save_file

    tf.utils.logging.set_verbosity_error()
    OUT.mkdir(exist_ok=True)
    only = sys.argv[2:]
    for case, (arch, cfg, tok) in cases().items():
        if only and case not in only:
            continue
        cfg.architectures = [arch]
        d = OUT / case
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        cfg.save_pretrained(str(d))
        if case in CONFIG_EXTRA:
            c = json.loads((d / "config.json").read_text())
            c.update(CONFIG_EXTRA[case])
            (d / "config.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
        cls = getattr(tf, arch)
        with torch.device("meta"):
            model = cls(cfg)
        with tempfile.TemporaryDirectory() as tmp:
            # The per-expert names as save_pretrained writes them (transformers 5 fuses experts
            # in memory and splits them again on saving).
            model.to_empty(device="cpu").save_pretrained(tmp)
            from safetensors import safe_open
            with safe_open(str(Path(tmp) / "model.safetensors"), "np") as f:
                tensors = sorted((n, list(f.get_slice(n).get_shape())) for n in f.keys())
        tensors = sorted(tensors + extra_tensors(case, tensors))
        if case == "gpt_oss_mxfp4":
            tensors = sorted(mxfp4_layout(tensors))
        (d / "hf_tensors.json").write_text(json.dumps(tensors, indent=1) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            m = Path(tmp) / f"tiny-{case}"
            m.mkdir()
            shutil.copyfile(d / "config.json", m / "config.json")
            tok_dir, files = (base.SPM_DIR, base.SPM_FILES) if tok == "spm" else (base.BPE_DIR, base.BPE_FILES)
            for f in files:
                if (tok_dir / f).is_file():
                    shutil.copyfile(tok_dir / f, m / f)
            if tok == "glm":
                glm_tokenizer(m)
            arrays = {n: values(k, n, s) for k, (n, s) in enumerate(tensors)}
            save_file(arrays, str(m / "model.safetensors"))
            out = Path(tmp) / "out.gguf"
            env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
            p = subprocess.run([sys.executable, str(src / "convert_hf_to_gguf.py"), str(m), "--outtype", "f16", "--outfile", str(out)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                print(p.stdout[-3000:])
                raise SystemExit(f"{case}: converter failed")
            r = GGUFReader(str(out))
            kvs = [[k, base.field_json(f)] for k, f in r.fields.items() if not k.startswith("GGUF.")]
            ts = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
                   "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()} for t in r.tensors]
            expected = {"case": case, "architecture": arch, "tokenizer": tok, "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "kvs": kvs, "tensors": ts}
            (d / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
            if case == "gpt_oss_mxfp4":
                dequantized_experts(m, r, d / "dequantized.safetensors")
        print(f"{case}: {len(kvs)} KVs, {len(ts)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
