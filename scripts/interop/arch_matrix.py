#!/usr/bin/env python3
"""Architecture matrix: ckpt's `convert --to gguf` against llama.cpp's convert_hf_to_gguf.py.

For every architecture ckpt converts besides the fixture-tested Llama, build a tiny random
Hugging Face model (fixed seed) with the matching tokenizer, run the real converter and ckpt for
each outtype and compare the two GGUF files. Byte-identical -> "ok ARCH OUTTYPE"; otherwise the
differences are listed with gguf-py's GGUFReader (KV key/type/value/order, tensor
names/order/types/shapes/data) and the script exits nonzero at the end.

usage: arch_matrix.py CKPT_BINARY LLAMA_CPP_SRC [--arch CASE ...] [--no-variants] [--outtype T ...]
                      [--keep DIR]

A CASE is an architecture (config.json architectures[0]) or a variant ARCH+OPTION+... (see
OPTIONS and VARIANTS below); by default every architecture and every variant runs, each with
f16, q8_0, f32 and bf16.

Needs torch, transformers, sentencepiece, safetensors, numpy and gguf-py (the one in
LLAMA_CPP_SRC/gguf-py is put first on sys.path). Tokenizers come from the repository fixtures:
tests/fixtures/gguf/tiny-llama-spm (SentencePiece), tests/fixtures/gguf/tiny-smol-bpe (GPT-2 BPE,
pre-tokenizer "smollm"), tests/fixtures/gguf/tiny-xlmr-unigram (XLM-RoBERTa's SentencePiece Unigram,
from scripts/gen-unigram-tokenizer.py); BERT's and NomicBERT's WordPiece vocabulary is written
here, and NomicBERT (a remote-code model) gets a hand-written config.json and weights. Embedding
models (EMBED_POOLING) get their family's sentence-transformers pooling.

Unknown pre-tokenizers: llama.cpp only knows the fingerprints of real vocabularies. Two tiny
models cannot have a known one, and for them the converter is run with get_vocab_base_pre()
falling back to a fixed name when the hash is unknown (and ckpt gets --pre-tokenizer NAME);
everything else is the unmodified converter:
  * BertModel, NomicBertModel: the tiny WordPiece vocabulary written here ("bert-bge").
  * Qwen2ForCausalLM: with transformers 5, AutoTokenizer picks Qwen2Tokenizer from config.json's
    model_type and rebuilds the pre-tokenizer with Qwen2's regex, ignoring the SmolLM one in
    tokenizer.json. The tokenizer is therefore re-saved through AutoTokenizer (so tokenizer.json
    holds what the converter sees, as in a real Qwen2 folder) and its hash, Qwen2's regex over
    SmolLM's vocabulary, is unknown ("qwen2").
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FX = ROOT / "tests" / "fixtures" / "gguf"
SPM_DIR = FX / "tiny-llama-spm"
BPE_DIR = FX / "tiny-smol-bpe"
# XLM-RoBERTa style Unigram tokenizer (scripts/gen-unigram-tokenizer.py).
XLMR_DIR = FX / "tiny-xlmr-unigram"
# Pre-tokenizer names used when the fingerprint is unknown (see the module docstring).
FALLBACK_PRE = {"BertModel": "bert-bge", "Qwen2ForCausalLM": "qwen2", "NomicBertModel": "bert-bge"}
SEED = 0
NO_SPECIAL_TOKENS = dict(pad_token_id=None, bos_token_id=None, eos_token_id=None)

# Tiny shapes shared by every architecture.
HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 64, 2, 4, 2, 128

ALL_ARCHS = [
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "GemmaForCausalLM",
    "Gemma2ForCausalLM",
    "Gemma3ForCausalLM",
    "Phi3ForCausalLM",
    "GPT2LMHeadModel",
    "BertModel",
    "SmolLM3ForCausalLM",
    "GraniteForCausalLM",
    "Olmo2ForCausalLM",
    "Olmo3ForCausalLM",
    "SeedOssForCausalLM",
    "StableLmForCausalLM",
    "CohereForCausalLM",
    "Cohere2ForCausalLM",
    "Exaone4ForCausalLM",
    "Ernie4_5_ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Qwen2MoeForCausalLM",
    "MixtralForCausalLM",
    "OlmoeForCausalLM",
    "Ernie4_5_MoeForCausalLM",
    "Glm4ForCausalLM",
    "HunYuanDenseV1ForCausalLM",
    "Lfm2ForCausalLM",
    "Gemma3ForConditionalGeneration",
    "LlavaForConditionalGeneration",
    "Mistral3ForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration",
    "DeepseekV2ForCausalLM",
    "DeepseekV3ForCausalLM",
    "GraniteMoeForCausalLM",
    "GraniteMoeSharedForCausalLM",
    "Glm4MoeForCausalLM",
    "GptOssForCausalLM",
    "Qwen3Model",
    "Gemma3TextModel",
    "NomicBertModel",
    "XLMRobertaModel",
    "ModernBertModel",
    "ApertusForCausalLM",
    "Qwen2VLForConditionalGeneration",
    "SmolVLMForConditionalGeneration",
    "Idefics3ForConditionalGeneration",
    "Qwen3VLForConditionalGeneration",
    "Qwen3VLMoeForConditionalGeneration",
    "Llama4ForConditionalGeneration",
    "Llama4ForCausalLM",
]
# Vision-language architectures (built by scripts/gen-vision-fixtures.py's build_vision): the
# text GGUF is compared with and without --mmproj, and the projector GGUF against
# `convert_hf_to_gguf.py --mmproj`.
VISION_ARCHS = {
    "Gemma3ForConditionalGeneration", "LlavaForConditionalGeneration", "Mistral3ForConditionalGeneration",
    "Qwen2_5_VLForConditionalGeneration", "Qwen2VLForConditionalGeneration", "SmolVLMForConditionalGeneration",
    "Idefics3ForConditionalGeneration", "Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration",
    "Llama4ForConditionalGeneration",
}
# Text models built by the same builder (scripts/gen-vision-fixtures.py's build_vision).
VISION_BUILT_TEXT = {"Llama4ForCausalLM"}
# Multimodal folders whose text model only is compared (ckpt writes no projector for them yet).
VISION_TEXT_ONLY: set[str] = set()
# Variants covering paths the plain models do not reach: ARCH+OPTION+...
OPTIONS = {
    "f16src": "checkpoint stored as float16 (Gemma adds its +1 in f16)",
    "f32src": "checkpoint stored as float32",
    "sharded": "several safetensors shards with an index",
    "tied": "tie_word_embeddings (no lm_head in the checkpoint)",
    "longrope": "Phi-3 longrope scaling: rope_factors_long/short tensors generated from the config",
    "tokjson": "tokenizer.json only: Gemma 3 reads it as a GPT-2 vocab (embedding rows beyond it cut off); XLM-RoBERTa as a Unigram vocab without sentencepiece.bpe.model",
    "fullvocab": "with tokjson: no rows beyond the vocabulary, and the added tokens are also in it, so the converter's cut exceeds the rows and keeps them all",
    "pooling": "sentence-transformers modules.json with CLS pooling",
    "ropescale": "rope scaling as in released checkpoints (Qwen2.5 yarn, Gemma 3 linear x8 on global layers, Hunyuan NTK alpha)",
    "odd": "hidden size 48: rows not a multiple of 32, so q8_0 falls back to f16 for some tensors",
    "wide": "hidden and expert widths of 256, so k-quant types (q4_k_m) apply to the experts instead of falling back",
    "nan": "NaNs with unusual payloads in a permuted, a plain and a kept-f32 tensor",
    "fp8": "FP8 checkpoint (DeepSeek-V3 layout): every *_proj.weight F8_E4M3 with 128x128 block weight_scale_inv, quantization_config quant_method fp8",
    "fp8b32": "like fp8 with 32x32 blocks (several blocks per tiny tensor)",
    "fp8tensor": "like fp8 with one per-tensor scale ([1]) and no weight_block_size",
    "modelopt": "NVIDIA ModelOpt FP8 checkpoint: every *_proj.weight F8_E4M3 with a per-tensor weight_scale ([]; per channel for down_proj), input_scale, k_scale/v_scale, quantization_config quant_method modelopt",
    "modelopthfq": "like modelopt, described by hf_quant_config.json alone (no quantization_config in config.json)",
    "mrope": "GLM-4 with M-RoPE sections (rope_parameters.mrope_section): Q/K rows reordered to NeoX order over the rotary part",
    "lite27": "27 layers, DeepSeek-V2-Lite's count: llama.cpp (llama-quantize too) requires deepseek2.attention.q_lora_rank unless the layer count is 26 or 27 (or 48 with a 128256-token vocabulary), so a model without q LoRA of any other depth is refused by llama-quantize; this variant is the one-step q4_k_m check of the no-q-LoRA path",
    "mxfp4": "GPT-OSS as released: expert weights stored as MXFP4 *_blocks/*_scales (U8), quantization_config quant_method mxfp4",
}
# What the FP8 options pass to fp8_checkpoint() as the block size.
FP8_BLOCKS = {"fp8": [128, 128], "fp8b32": [32, 32], "fp8tensor": None}
VARIANTS = [
    "MistralForCausalLM+f16src",
    "Qwen2ForCausalLM+tied",
    "Qwen3ForCausalLM+f32src+sharded",
    "GemmaForCausalLM+f32src",
    "Gemma2ForCausalLM+f16src",
    "Gemma3ForCausalLM+tokjson",
    "Gemma3ForCausalLM+tokjson+fullvocab",
    "Phi3ForCausalLM+longrope",
    "BertModel+pooling",
    "Qwen2ForCausalLM+ropescale",
    "Gemma3ForCausalLM+ropescale",
    "HunYuanDenseV1ForCausalLM+ropescale",
    "MistralForCausalLM+odd",
    "Gemma2ForCausalLM+odd",
    "MistralForCausalLM+nan",
    "MistralForCausalLM+f16src+nan",
    "MistralForCausalLM+f32src+nan",
    "Gemma2ForCausalLM+f16src+nan",
    "Gemma3ForCausalLM+f32src+nan",
    "LlamaForCausalLM+fp8",
    "LlamaForCausalLM+fp8b32",
    "LlamaForCausalLM+fp8tensor",
    "Qwen3ForCausalLM+fp8",
    "Qwen3ForCausalLM+fp8b32",
    "Qwen3MoeForCausalLM+wide",
    "MixtralForCausalLM+wide",
    "Gemma3ForConditionalGeneration+f16src",
    "Gemma3ForConditionalGeneration+f32src",
    "LlavaForConditionalGeneration+f16src",
    "DeepseekV3ForCausalLM+fp8",
    "DeepseekV3ForCausalLM+fp8b32",
    "Qwen3MoeForCausalLM+fp8",
    "Qwen3MoeForCausalLM+fp8b32",
    "LlamaForCausalLM+modelopt",
    "LlamaForCausalLM+modelopthfq",
    "Qwen3MoeForCausalLM+modelopt",
    "DeepseekV3ForCausalLM+wide",
    "DeepseekV2ForCausalLM+wide+lite27",
    "GptOssForCausalLM+wide",
    "XLMRobertaModel+tokjson",
    "GptOssForCausalLM+mxfp4",
    "GptOssForCausalLM+wide+mxfp4",
    "Glm4ForCausalLM+mrope",
]
# Architectures given the tiny GPT-2 BPE tokenizer (the others get the SentencePiece one).
BPE_ARCHS = {
    "Qwen2ForCausalLM", "Qwen3ForCausalLM", "GPT2LMHeadModel", "SmolLM3ForCausalLM", "GraniteForCausalLM",
    "Olmo2ForCausalLM", "Olmo3ForCausalLM", "SeedOssForCausalLM", "StableLmForCausalLM", "CohereForCausalLM",
    "Cohere2ForCausalLM", "Exaone4ForCausalLM", "Qwen3MoeForCausalLM", "Qwen2MoeForCausalLM", "OlmoeForCausalLM",
    "Glm4ForCausalLM", "ApertusForCausalLM", "HunYuanDenseV1ForCausalLM",
    "Lfm2ForCausalLM",
    "DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "GraniteMoeForCausalLM", "GraniteMoeSharedForCausalLM",
    "Glm4MoeForCausalLM", "GptOssForCausalLM",
    "Lfm2ForCausalLM", "Qwen3Model", "ModernBertModel",
}
# Embedding models: the sentence-transformers pooling their released folders declare
# (modules.json + 1_Pooling/config.json), written with every tiny model of the architecture.
EMBED_POOLING = {"Qwen3Model": "lasttoken", "Gemma3TextModel": "mean", "NomicBertModel": "mean", "XLMRobertaModel": "cls", "ModernBertModel": "mean"}
ALL_OUTTYPES = ["f16", "q8_0", "f32", "bf16"]
# One-step llama-quantize types (opt-in with --outtype): the converter's f16 GGUF quantized by
# llama-quantize (LLAMA_QUANTIZE, default LLAMA_CPP_SRC/build/bin/llama-quantize) against
# `ckpt convert --outtype TYPE`.
QUANT_OUTTYPES = ["q4_k_m", "q6_k", "mxfp4_moe"]

# llama-quantize loads the model's hyperparameters first; llama.cpp's deepseek2 loader requires
# q_lora_rank unless the depth is one of its "lite" layer counts (see the lite27 option), so a
# tiny DeepSeek-V2 without q LoRA is refused with this message.
KNOWN_QUANTIZE_REFUSAL = "key not found in model: deepseek2.attention.q_lora_rank"

# Runs convert_hf_to_gguf.py as __main__ with the unknown-pre-tokenizer fallback (BERT only).
CONVERTER_SHIM = r"""
import runpy, sys
src, pre = sys.argv[1], sys.argv[2]
sys.argv = [src + "/convert_hf_to_gguf.py"] + sys.argv[3:]
sys.path.insert(0, src)
sys.path.insert(1, src + "/gguf-py")
from conversion import base
orig = base.TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        return pre
base.TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(src + "/convert_hf_to_gguf.py", run_name="__main__")
"""


# --------------------------------------------------------------------------- tiny models


def spm_vocab_size() -> int:
    return json.loads((SPM_DIR / "config.json").read_text())["vocab_size"]


def bpe_vocab_size() -> int:
    return json.loads((BPE_DIR / "config.json").read_text())["vocab_size"]


def copy_files(src: Path, dst: Path, names: list[str]) -> None:
    for n in names:
        if (src / n).is_file():
            shutil.copyfile(src / n, dst / n)


def rename_added_token(path: Path, old: str, new: str) -> None:
    tok = json.loads(path.read_text(encoding="utf-8"))
    for t in tok["added_tokens"]:
        if t["content"] == old:
            t["content"] = new
    vocab = tok["model"]["vocab"]
    vocab[new] = vocab.pop(old)
    path.write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")


def write_bert_tokenizer(dst: Path) -> int:
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-")
    words += ["the", "a", "is", "of", "and", "to", "in", "hello", "world", "test", "model", "token"]
    words += ["##s", "##ing", "##ed", "##er", "##ly", "##a", "##e", "##o", "##t", "##n"]
    vocab = dst / "vocab.txt"
    vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    tok = BertTokenizerFast(vocab_file=str(vocab), do_lower_case=True)
    tok.save_pretrained(str(dst))
    return len(words)


def write_nomic_bert(dst: Path, n_vocab: int, hidden: int, dtype) -> None:
    """nomic-embed-text v1.5's config.json and module names at tiny sizes (random weights)."""
    import torch
    from safetensors.torch import save_file

    cfg = {
        "activation_function": "swiglu", "architectures": ["NomicBertModel"], "attn_pdrop": 0.0,
        "auto_map": {"AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig",
                     "AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"},
        "bos_token_id": None, "causal": False, "dense_seq_output": True, "embd_pdrop": 0.0, "eos_token_id": None,
        "fused_bias_fc": True, "fused_dropout_add_ln": True, "initializer_range": 0.02, "layer_norm_epsilon": 1e-12,
        "max_trained_positions": 2048, "mlp_fc1_bias": False, "mlp_fc2_bias": False, "model_type": "nomic_bert",
        "n_embd": hidden, "n_head": HEADS, "n_inner": FFN, "n_layer": LAYERS, "n_positions": 8192,
        "pad_vocab_size_multiple": 64, "parallel_block": False, "parallel_block_tied_norm": False, "prenorm": False,
        "qkv_proj_bias": False, "reorder_and_upcast_attn": False, "resid_pdrop": 0.0, "rotary_emb_base": 1000,
        "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False, "rotary_emb_scale_base": None,
        "rotary_scaling_factor": None, "scale_attn_by_inverse_layer_idx": False, "scale_attn_weights": True,
        "summary_activation": None, "summary_first_dropout": 0.0, "summary_proj_to_labels": True,
        "summary_type": "cls_index", "summary_use_proj": True, "torch_dtype": "float32", "transformers_version": "4.34.0",
        "type_vocab_size": 2, "use_cache": True, "use_flash_attn": True, "use_rms_norm": False, "use_xentropy": True,
        "vocab_size": n_vocab,
        # transformers' NomicBertConfig reads these names (its defaults are v1.5's 768/12/12/3072).
        "hidden_size": hidden, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS, "intermediate_size": FFN,
    }
    (dst / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    shapes = {"embeddings.word_embeddings.weight": [n_vocab, hidden], "embeddings.token_type_embeddings.weight": [2, hidden],
              "emb_ln.weight": [hidden], "emb_ln.bias": [hidden]}
    for b in range(LAYERS):
        p = f"encoder.layers.{b}."
        shapes.update({p + "attn.Wqkv.weight": [3 * hidden, hidden], p + "attn.out_proj.weight": [hidden, hidden],
                       p + "mlp.fc11.weight": [FFN, hidden], p + "mlp.fc12.weight": [FFN, hidden], p + "mlp.fc2.weight": [hidden, FFN],
                       p + "norm1.weight": [hidden], p + "norm1.bias": [hidden], p + "norm2.weight": [hidden], p + "norm2.bias": [hidden]})
    g = torch.Generator().manual_seed(SEED)
    tensors = {n: (torch.randn(s, generator=g) * 0.05 + (1.0 if n.endswith("norm1.weight") or n.endswith("norm2.weight") or n == "emb_ln.weight" else 0.0)).to(dtype)
               for n, s in shapes.items()}
    save_file(tensors, str(dst / "model.safetensors"), metadata={"format": "pt"})


# NaN bit patterns with unusual payloads (signalling, quiet with payload, negative, all ones, a
# payload below f16's ten bits), as the integer view of each source dtype.
NAN_PATTERNS = {
    "bfloat16": [0x7F81, 0x7FC1, -0x003F, 0x7FFF, 0x7FA5],
    "float16": [0x7C01, 0x7E01, -0x01FF, 0x7FFF, 0x7D55],
    "float32": [0x7F800001, 0x7FC00001, -0x003FFFFF, 0x7FFFFFFF, 0x7FA55555],
}


def seed_nans(model, dtype) -> None:
    """Writes NaN_PATTERNS into a layer's q projection (permuted), down projection and input norm
    (kept f32): how each tool widens, narrows and copies NaN payloads must agree."""
    import torch

    as_int = torch.int32 if dtype == torch.float32 else torch.int16
    targets = [n for n, _ in model.named_parameters() if n.endswith(("layers.0.self_attn.q_proj.weight", "layers.0.mlp.down_proj.weight", "layers.0.input_layernorm.weight"))]
    if len(targets) != 3:
        raise SystemExit(f"nan option: expected q_proj, down_proj and input_layernorm of layer 0, found {targets}")
    params = dict(model.named_parameters())
    for name in targets:
        flat = params[name].data.view(-1).view(as_int)
        for i, bits in enumerate(NAN_PATTERNS[str(dtype).removeprefix("torch.")]):
            flat[7 * i + 3] = bits


def fp8_fixtures_module():
    """scripts/gen-fp8-fixtures.py, whose quantizers the committed fixtures use too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_fp8_fixtures", ROOT / "scripts" / "gen-fp8-fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def fp8_checkpoint(folder: Path, block: list[int] | None) -> None:
    """Turns a saved model into an FP8 checkpoint (any architecture, any shard layout)."""
    fp8_fixtures_module().fp8_checkpoint(folder, block)


# E2M1 magnitudes of the 4-bit codes 0..7 (code | 8 is the negative value).
FP4_VALUES = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0]


def mxfp4_quantize(w):
    """[..., K] float32 (K a multiple of 32) -> (blocks [..., K/32, 16] uint8, scales [..., K/32]
    uint8) in the layout of the released GPT-OSS checkpoints: per block of 32 an E8M0 exponent
    (biased by 127) and 4-bit E2M1 codes, element 2j in the low nibble of byte j, 2j+1 in the high."""
    import numpy as np

    blk = w.reshape(*w.shape[:-1], w.shape[-1] // 32, 32).astype(np.float32)
    amax = np.abs(blk).max(axis=-1, keepdims=True)
    exp = np.where(amax > 0, np.floor(np.log2(np.maximum(amax, 1e-30))) - 2, -127).astype(np.int32)
    exp = np.clip(exp, -127, 127)
    scaled = blk / np.exp2(exp.astype(np.float32))
    mags = np.array(FP4_VALUES, dtype=np.float32)
    code = np.abs(np.abs(scaled)[..., None] - mags).argmin(axis=-1).astype(np.uint8)
    code |= (scaled < 0).astype(np.uint8) << 3
    blocks = (code[..., 0::2] | (code[..., 1::2] << 4)).astype(np.uint8)
    return blocks, (exp[..., 0] + 127).astype(np.uint8)


def mxfp4_checkpoint(folder: Path) -> None:
    """Turns a saved bf16 GPT-OSS model into the released MXFP4 layout: each layer's
    mlp.experts.gate_up_proj [E, hidden, 2 * ffn] and down_proj [E, ffn, hidden] replaced by
    *_blocks/*_scales of the transposed weights ([E, 2 * ffn, hidden / 32, 16], gate and up
    rows still interleaved), biases kept; quantization_config as in openai/gpt-oss-20b."""
    import torch
    from safetensors.torch import load_file, save_file

    for part in sorted(folder.glob("model*.safetensors")):
        tensors = load_file(str(part))
        out = {}
        for name, t in tensors.items():
            if name.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
                w = t.float().transpose(1, 2).contiguous().numpy()
                blocks, scales = mxfp4_quantize(w)
                out[name + "_blocks"] = torch.from_numpy(blocks)
                out[name + "_scales"] = torch.from_numpy(scales)
            else:
                out[name] = t
        save_file(out, str(part), metadata={"format": "pt"})
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            d = json.loads(index.read_text())
            wm = d["weight_map"]
            for n in list(wm):
                if n.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
                    f = wm.pop(n)
                    wm[n + "_blocks"] = wm[n + "_scales"] = f
            index.write_text(json.dumps(d, indent=2) + "\n")
    cfg_path = folder / "config.json"
    d = json.loads(cfg_path.read_text())
    d["quantization_config"] = {
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
        "quant_method": "mxfp4",
    }
    cfg_path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")


def vision_builder():
    """scripts/gen-vision-fixtures.py as a module (its build_vision writes the vision models)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_vision_fixtures", ROOT / "scripts" / "gen-vision-fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
def append_mtp_layer(folder: Path, n_layers: int, embed: bool = False) -> None:
    """Adds DeepSeek-V3's multi-token-prediction block as layer `n_layers` (a copy of the last
    layer plus its eh_proj, enorm, hnorm and shared head) to every shard holding the last layer."""
    from safetensors.torch import load_file, save_file

    last = f"model.layers.{n_layers - 1}."
    mtp = f"model.layers.{n_layers}."
    for part in sorted(folder.glob("model*.safetensors")):
        tensors = load_file(str(part))
        extra = {mtp + k[len(last):]: v.clone() for k, v in tensors.items() if k.startswith(last)}
        if not extra:
            continue
        h = tensors["model.embed_tokens.weight"].shape[1]
        like = tensors["model.embed_tokens.weight"]
        extra[mtp + "eh_proj.weight"] = like.new_ones((h, 2 * h))
        for n in ("enorm.weight", "hnorm.weight", "shared_head.norm.weight"):
            extra[mtp + n] = like.new_ones((h,))
        extra[mtp + "shared_head.head.weight"] = like.clone()
        if embed:
            extra[mtp + "embed_tokens.weight"] = like.clone()
        tensors.update(extra)
        save_file(tensors, str(part), metadata={"format": "pt"})
        index = folder / "model.safetensors.index.json"
        if index.is_file():
            d = json.loads(index.read_text())
            d["weight_map"].update({k: part.name for k in extra})
            index.write_text(json.dumps(d, indent=2) + "\n")


def build_model(case: str, dst: Path) -> None:
    """Writes the tiny model for `case` (ARCH or ARCH+OPTION+...) into dst."""
    import torch
    import transformers as tf

    arch, *opts = case.split("+")
    unknown = set(opts) - set(OPTIONS)
    if unknown:
        raise SystemExit(f"unknown option(s) {sorted(unknown)} in {case}")
    if arch in VISION_ARCHS or arch in VISION_TEXT_ONLY or arch in VISION_BUILT_TEXT:
        dtype = "float16" if "f16src" in opts else "float32" if "f32src" in opts else "bfloat16"
        vision_builder().build_vision(arch, dst, small=False, dtype=dtype)
        return
    tf.utils.logging.disable_progress_bar()
    tf.utils.logging.set_verbosity_error()
    dst.mkdir(parents=True)
    bpe = arch in BPE_ARCHS or ("tokjson" in opts and arch != "XLMRobertaModel")
    hidden = 48 if "odd" in opts else 256 if "wide" in opts else HIDDEN
    common = dict(hidden_size=hidden, num_hidden_layers=27 if "lite27" in opts else LAYERS, num_attention_heads=HEADS, intermediate_size=256 if "wide" in opts else FFN)
    moe_ffn = 256 if "wide" in opts else 32
    if arch == "NomicBertModel":
        # Remote-code model (no transformers class): config.json as nomic-embed-text-v1.5 ships it
        # at tiny sizes, random weights under its module names.
        n_vocab = write_bert_tokenizer(dst)
        write_nomic_bert(dst, n_vocab, hidden, torch.float16 if "f16src" in opts else torch.float32 if "f32src" in opts else torch.bfloat16)
        cfg = cls = None
    elif arch == "XLMRobertaModel":
        # bge-m3 style: positions start at pad_token_id + 1 (the converter drops the first rows),
        # one token type, the Unigram tokenizer.
        n_vocab = json.loads((XLMR_DIR / "config.json").read_text())["vocab_size"]
        cfg = tf.XLMRobertaConfig(vocab_size=n_vocab, max_position_embeddings=130, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **common)
        cls = tf.XLMRobertaModel
    elif arch == "BertModel":
        n_vocab = write_bert_tokenizer(dst)
        cfg = tf.BertConfig(vocab_size=n_vocab, max_position_embeddings=128, **common)
        cls = tf.BertModel
    elif arch == "GPT2LMHeadModel":
        # <|endoftext|> is id 0 in the SmolLM vocabulary (GPT-2's 50256 is out of range here).
        cfg = tf.GPT2Config(vocab_size=bpe_vocab_size(), n_embd=hidden, n_layer=LAYERS, n_head=HEADS, n_positions=128, bos_token_id=0, eos_token_id=0)
        cls = tf.GPT2LMHeadModel
    else:
        kw = dict(common, vocab_size=bpe_vocab_size() if bpe else spm_vocab_size(), max_position_embeddings=256)
        if "tied" in opts:
            kw["tie_word_embeddings"] = True
        if "ropescale" in opts:
            if arch == "Qwen2ForCausalLM":
                kw["rope_parameters"] = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64, "rope_theta": 1000000.0}
            elif arch == "Gemma3ForCausalLM":
                kw["rope_parameters"] = {
                    "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0},
                    "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                }
            elif arch == "HunYuanDenseV1ForCausalLM":
                # Hunyuan's released configs: NTK alpha ("dynamic"), which the converter turns into a
                # scaled base and a fixed 256k context (it asserts 32k max positions).
                kw["max_position_embeddings"] = 32768
                kw["rope_parameters"] = {"rope_type": "dynamic", "alpha": 1000.0, "factor": 1.0, "rope_theta": 10000.0}
            else:
                raise SystemExit(f"{case}: no rope scaling defined for {arch}")
        if arch == "LlamaForCausalLM":
            cfg = tf.LlamaConfig(num_key_value_heads=KV_HEADS, **kw)
        elif arch == "MistralForCausalLM":
            cfg = tf.MistralConfig(num_key_value_heads=KV_HEADS, sliding_window=64, **kw)
        elif arch == "Qwen2ForCausalLM":
            cfg = tf.Qwen2Config(num_key_value_heads=KV_HEADS, **kw)
        elif arch == "Qwen3ForCausalLM":
            cfg = tf.Qwen3Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, **kw)
        elif arch == "GemmaForCausalLM":
            cfg = tf.GemmaConfig(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, **kw)
        elif arch == "Gemma2ForCausalLM":
            cfg = tf.Gemma2Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, sliding_window=64, **kw)
        elif arch == "Gemma3ForCausalLM":
            if "tokjson" in opts and "fullvocab" not in opts:
                # Embedding rows past the tokenizer's vocabulary, which the converter cuts off.
                kw["vocab_size"] += 64
            cfg = tf.Gemma3TextConfig(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, sliding_window=64, **kw)
        elif arch == "Phi3ForCausalLM":
            if "longrope" in opts:
                half = hidden // HEADS // 2
                kw["max_position_embeddings"] = 1024
                kw["rope_parameters"] = {
                    "rope_type": "longrope",
                    "rope_theta": 10000.0,
                    "long_factor": [1.0 + 0.37 * i for i in range(half)],
                    "short_factor": [1.0 + 0.011 * i for i in range(half)],
                }
            cfg = tf.Phi3Config(num_key_value_heads=KV_HEADS, original_max_position_embeddings=256, pad_token_id=0, **kw)
        elif arch == "SmolLM3ForCausalLM":
            # Layer 1 without rope (no_rope_layers), as in the released model every 4th layer.
            cfg = tf.SmolLM3Config(num_key_value_heads=KV_HEADS, no_rope_layers=[1, 0], pad_token_id=None, **kw)
        elif arch == "GraniteForCausalLM":
            cfg = tf.GraniteConfig(
                num_key_value_heads=KV_HEADS, attention_multiplier=0.125, embedding_multiplier=12.0,
                residual_multiplier=0.22, logits_scaling=8.0, **kw,
            )
        elif arch == "Olmo2ForCausalLM":
            cfg = tf.Olmo2Config(num_key_value_heads=KV_HEADS, **kw)
        elif arch == "Olmo3ForCausalLM":
            cfg = tf.Olmo3Config(num_key_value_heads=KV_HEADS, sliding_window=64, **kw)
        elif arch == "SeedOssForCausalLM":
            cfg = tf.SeedOssConfig(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, **kw)
        elif arch == "StableLmForCausalLM":
            cfg = tf.StableLmConfig(num_key_value_heads=KV_HEADS, **kw)
        elif arch == "CohereForCausalLM":
            cfg = tf.CohereConfig(num_key_value_heads=KV_HEADS, use_qk_norm=True, logit_scale=0.125, pad_token_id=None, bos_token_id=None, eos_token_id=None, **kw)
        elif arch == "Cohere2ForCausalLM":
            cfg = tf.Cohere2Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, sliding_window=64, logit_scale=0.25, pad_token_id=None, bos_token_id=None, eos_token_id=None, **kw)
        elif arch == "Exaone4ForCausalLM":
            # Two layers: one sliding, one global.
            cfg = tf.Exaone4Config(
                num_key_value_heads=KV_HEADS, sliding_window=64, layer_types=["sliding_attention", "full_attention"],
                pad_token_id=None, bos_token_id=None, eos_token_id=None, **kw,
            )
        elif arch == "Ernie4_5_ForCausalLM":
            cfg = tf.Ernie4_5Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, tie_word_embeddings=False, pad_token_id=None, bos_token_id=None, eos_token_id=None, **kw)
        elif arch == "Qwen3MoeForCausalLM":
            # Four experts of width 32 (q8_0-able rows), two used per token.
            cfg = tf.Qwen3MoeConfig(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=moe_ffn, **kw)
        elif arch == "Qwen2MoeForCausalLM":
            # Shared expert (with its sigmoid gate) next to four routed experts.
            cfg = tf.Qwen2MoeConfig(
                num_key_value_heads=KV_HEADS, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                shared_expert_intermediate_size=64, **kw,
            )
        elif arch == "MixtralForCausalLM":
            cfg = tf.MixtralConfig(num_key_value_heads=KV_HEADS, num_local_experts=4, num_experts_per_tok=2, **kw)
        elif arch == "OlmoeForCausalLM":
            cfg = tf.OlmoeConfig(num_key_value_heads=KV_HEADS, num_experts=4, num_experts_per_tok=2, pad_token_id=None, bos_token_id=None, eos_token_id=None, **kw)
        elif arch == "Ernie4_5_MoeForCausalLM":
            # Layer 0 dense, layer 1 routed experts + one shared expert + the expert bias.
            cfg = tf.Ernie4_5_MoeConfig(
                num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, moe_num_experts=4, moe_k=2, moe_intermediate_size=moe_ffn,
                moe_num_shared_experts=1, moe_layer_start_index=1, tie_word_embeddings=False, **NO_SPECIAL_TOKENS, **kw,
            )
        elif arch == "DeepseekV2ForCausalLM":
            # DeepSeek-V2-Lite's shape: no q LoRA (plain q_proj), a leading dense layer, softmax
            # routing over four experts and a shared one; kv_b_proj split by the converter.
            cfg = tf.DeepseekV2Config(
                num_key_value_heads=HEADS, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                moe_intermediate_size=moe_ffn, first_k_dense_replace=1, kv_lora_rank=32, q_lora_rank=None,
                qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32, **NO_SPECIAL_TOKENS, **kw,
            )
        elif arch == "DeepseekV3ForCausalLM":
            # DeepSeek-V3's shape: q LoRA, sigmoid routing with group limits and the expert bias,
            # yarn rope with mscale_all_dim, and one multi-token-prediction layer past the last
            # block (appended after saving; the converter skips it).
            kw["rope_parameters"] = {
                "rope_type": "yarn", "factor": 40.0, "original_max_position_embeddings": 64, "beta_fast": 32.0,
                "beta_slow": 1.0, "mscale": 1.0, "mscale_all_dim": 1.0, "rope_theta": 10000.0,
            }
            cfg = tf.DeepseekV3Config(
                num_key_value_heads=HEADS, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                moe_intermediate_size=moe_ffn, first_k_dense_replace=1, kv_lora_rank=32, q_lora_rank=32,
                qk_rope_head_dim=16, qk_nope_head_dim=32, v_head_dim=32, n_group=2, topk_group=1,
                routed_scaling_factor=2.5, norm_topk_prob=True, num_nextn_predict_layers=1, **NO_SPECIAL_TOKENS, **kw,
            )
        elif arch == "GraniteMoeForCausalLM":
            # Experts stored stacked with gate and up fused (input_linear), Granite's multipliers.
            cfg = tf.GraniteMoeConfig(
                num_key_value_heads=KV_HEADS, num_local_experts=4, num_experts_per_tok=2, attention_multiplier=0.125,
                embedding_multiplier=12.0, residual_multiplier=0.22, logits_scaling=8.0, **kw,
            )
        elif arch == "GraniteMoeSharedForCausalLM":
            # Plus a shared expert (shared_mlp, gate and up fused).
            cfg = tf.GraniteMoeSharedConfig(
                num_key_value_heads=KV_HEADS, num_local_experts=4, num_experts_per_tok=2, shared_intermediate_size=64,
                attention_multiplier=0.125, embedding_multiplier=12.0, residual_multiplier=0.22, logits_scaling=8.0, **kw,
            )
        elif arch == "Glm4MoeForCausalLM":
            # GLM-4.5's shape: a leading dense layer, sigmoid routing over four experts and a
            # shared one, and a NextN layer (appended after saving; the converter keeps it).
            cfg = tf.Glm4MoeConfig(
                num_key_value_heads=KV_HEADS, n_routed_experts=4, num_experts_per_tok=2, n_shared_experts=1,
                moe_intermediate_size=moe_ffn, first_k_dense_replace=1, num_nextn_predict_layers=1, **kw,
            )
        elif arch == "GptOssForCausalLM":
            # bf16 experts (stacked, transposed, gate/up interleaved) with biases, attention
            # sinks, alternating sliding/full layers, yarn rope as released.
            cfg = tf.GptOssConfig(
                num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, num_local_experts=4, num_experts_per_tok=2,
                sliding_window=64, **NO_SPECIAL_TOKENS, **kw,
            )
        elif arch == "Glm4ForCausalLM":
            cfg = tf.Glm4Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, pad_token_id=None, bos_token_id=None, eos_token_id=None, **kw)
        elif arch == "ApertusForCausalLM":
            # transformers' default llama3 rope scaling (rope_freqs generated), xIELU activations.
            cfg = tf.ApertusConfig(
                num_key_value_heads=KV_HEADS, pad_token_id=None, bos_token_id=None, eos_token_id=None,
                rope_parameters={"rope_type": "llama3", "rope_theta": 12000000.0, "factor": 8.0, "original_max_position_embeddings": 64,
                                 "low_freq_factor": 1.0, "high_freq_factor": 4.0}, **kw,
            )
        elif arch == "HunYuanDenseV1ForCausalLM":
            cfg = tf.HunYuanDenseV1Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, pad_token_id=None, bos_token_id=None, eos_token_id=None, eod_token_id=0, **kw)
        elif arch == "Qwen3Model":
            # Qwen3-Embedding: the bare decoder (tensor names without "model."), last-token pooling.
            cfg = tf.Qwen3Config(num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, **kw)
        elif arch == "Gemma3TextModel":
            # EmbeddingGemma: bidirectional Gemma 3 without "model.", mean pooling.
            cfg = tf.Gemma3TextConfig(
                num_key_value_heads=KV_HEADS, head_dim=hidden // HEADS, sliding_window=64, use_bidirectional_attention=True, **kw,
            )
        elif arch == "ModernBertModel":
            # Layer 0 global (no attn_norm: Identity), layer 1 local; BOS/EOS/pad from the BPE vocab.
            kw.pop("max_position_embeddings")
            cfg = tf.ModernBertConfig(
                global_attn_every_n_layers=2, local_attention=64, max_position_embeddings=256, pad_token_id=0,
                bos_token_id=0, eos_token_id=0, cls_token_id=0, sep_token_id=0, **kw,
            )
        elif arch == "Lfm2ForCausalLM":
            # One short-conv layer, one attention layer.
            cfg = tf.Lfm2Config(
                num_key_value_heads=KV_HEADS, layer_types=["conv", "full_attention"], pad_token_id=None, bos_token_id=None,
                eos_token_id=None, **kw,
            )
        else:
            raise SystemExit(f"unknown architecture {arch}")
        cls = getattr(tf, arch, None) or getattr(tf, arch.replace("_ForCausalLM", "ForCausalLM"))
    if cfg is not None:
        save_transformers_model(cfg, cls, arch, opts, dst)
    post_process(arch, opts, dst, hidden, bpe)


def save_transformers_model(cfg, cls, arch: str, opts: list[str], dst: Path) -> None:
    import torch

    cfg.architectures = [arch]
    torch.manual_seed(SEED)
    dtype = torch.float16 if "f16src" in opts else torch.float32 if "f32src" in opts else torch.bfloat16
    model = cls(cfg).to(dtype).eval()
    # Norm weights start at exactly 1 (0 for Gemma): perturb every parameter a little so that
    # +1 shifts, permutations and transposes are visible in the data.
    with torch.no_grad():
        g = torch.Generator().manual_seed(SEED + 1)
        for p in model.parameters():
            p.add_((torch.randn(p.shape, generator=g) * 0.05).to(p.dtype))
        if "nan" in opts:
            seed_nans(model, dtype)
    shard = {"max_shard_size": "100KB"} if "sharded" in opts else {}
    model.save_pretrained(str(dst), safe_serialization=True, **shard)
    if "sharded" in opts and len(list(dst.glob("model-*.safetensors"))) < 2:
        raise SystemExit(f"{arch}+{'+'.join(opts)}: expected several safetensors shards")


def post_process(arch: str, opts: list[str], dst: Path, hidden: int, bpe: bool) -> None:
    import transformers as tf

    fp8 = [o for o in opts if o in FP8_BLOCKS or o.startswith("modelopt")]
    if len(fp8) > 1:
        raise SystemExit(f"{arch}+{'+'.join(opts)}: at most one FP8 option")
    if fp8 and fp8[0] in FP8_BLOCKS:
        fp8_checkpoint(dst, FP8_BLOCKS[fp8[0]])
    elif fp8:
        fp8_fixtures_module().modelopt_checkpoint(dst, per_channel=("down_proj.weight",), hf_quant_config_only=fp8[0] == "modelopthfq")
    if "mxfp4" in opts:
        mxfp4_checkpoint(dst)
    if "mrope" in opts:
        # GLM-4.1V-style text model: three M-RoPE sections over the rotary half of each head.
        cfg_path = dst / "config.json"
        d = json.loads(cfg_path.read_text())
        d["rope_parameters"]["mrope_section"] = [1, 1, 2]
        cfg_path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    if arch == "GPT2LMHeadModel":
        # transformers 5 no longer writes n_ctx, which every GPT-2 config.json on the Hub has
        # and the converter requires.
        cfg_path = dst / "config.json"
        d = json.loads(cfg_path.read_text())
        d.setdefault("n_ctx", d["n_positions"])
        cfg_path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    if arch == "DeepseekV3ForCausalLM":
        # The released config.json names the routing (transformers' config class has no field
        # for it), and the checkpoint has the multi-token-prediction block after the last layer.
        cfg_path = dst / "config.json"
        d = json.loads(cfg_path.read_text())
        d.update(scoring_func="sigmoid", topk_method="noaux_tc")
        cfg_path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
        append_mtp_layer(dst, LAYERS)
    if arch == "Glm4MoeForCausalLM":
        append_mtp_layer(dst, LAYERS, embed=True)
    if arch == "Cohere2ForCausalLM":
        # Command R7B's config.json has rotary_pct, which the converter reads (transformers 5's
        # Cohere2Config no longer writes it).
        cfg_path = dst / "config.json"
        d = json.loads(cfg_path.read_text())
        d.setdefault("rotary_pct", 1.0)
        cfg_path.write_text(json.dumps(d, indent=2, sort_keys=True) + "\n")
    if bpe:
        copy_files(BPE_DIR, dst, ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"])
        if arch in ("Glm4ForCausalLM", "Glm4MoeForCausalLM"):
            # GLM-4's converter takes eos/eot/unk/bos from the added tokens <|endoftext|> and <|user|>.
            rename_added_token(dst / "tokenizer.json", "<repo_name>", "<|user|>")
        if arch == "Glm4MoeForCausalLM":
            # GLM-4.5's takes bos from [gMASK] and eom from <|observation|>.
            rename_added_token(dst / "tokenizer.json", "<file_sep>", "[gMASK]")
            rename_added_token(dst / "tokenizer.json", "<filename>", "<|observation|>")
        if arch == "Qwen2ForCausalLM":
            tf.AutoTokenizer.from_pretrained(str(dst)).save_pretrained(str(dst))
    elif arch == "XLMRobertaModel":
        copy_files(XLMR_DIR, dst, ["tokenizer.json", "tokenizer_config.json"] + ([] if "tokjson" in opts else ["sentencepiece.bpe.model"]))
    elif arch not in ("BertModel", "NomicBertModel"):
        copy_files(SPM_DIR, dst, ["tokenizer.model", "tokenizer_config.json"])
    if "pooling" in opts or arch in EMBED_POOLING:
        # sentence-transformers layout: modules.json + the pooling module's config.
        mode = EMBED_POOLING.get(arch, "cls")
        (dst / "modules.json").write_text(json.dumps([
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        ], indent=2))
        (dst / "1_Pooling").mkdir()
        (dst / "1_Pooling" / "config.json").write_text(json.dumps({
            "word_embedding_dimension": hidden, "pooling_mode_cls_token": mode == "cls", "pooling_mode_mean_tokens": mode == "mean",
            "pooling_mode_max_tokens": False, "pooling_mode_mean_sqrt_len_tokens": False, "pooling_mode_lasttoken": mode == "lasttoken",
        }, indent=2))


# --------------------------------------------------------------------------- running


def run(cmd: list[str], env: dict | None = None) -> tuple[int, str]:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    return p.returncode, p.stdout


def run_converter(py: str, src: Path, model: Path, outtype: str, out: Path, fallback_pre: str | None, mmproj: bool = False) -> tuple[int, str]:
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    args = [str(model), "--outtype", outtype, "--outfile", str(out)] + (["--mmproj"] if mmproj else [])
    if fallback_pre:
        return run([py, "-c", CONVERTER_SHIM, str(src), fallback_pre] + args, env)
    return run([py, str(src / "convert_hf_to_gguf.py")] + args, env)


def run_ckpt(ckpt: str, model: Path, outtype: str, out: Path, extra: list[str]) -> tuple[int, str]:
    return run([ckpt, "convert", "-q", "--force", str(model), str(out), "--to", "gguf", "--outtype", outtype] + extra)


# --------------------------------------------------------------------------- comparing


def glob_escape(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in s)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def short(v, n: int = 80) -> str:
    s = repr(v)
    return s if len(s) <= n else s[: n - 3] + "..."


def field_info(field):
    """(type name(s), python value) of a GGUFReader field."""
    from gguf import GGUFValueType

    types = [GGUFValueType(t).name for t in field.types]
    if not field.types:
        return "?", None
    main = GGUFValueType(field.types[0])
    if main == GGUFValueType.ARRAY:
        sub = GGUFValueType(field.types[-1]) if len(field.types) > 1 else None
        if sub == GGUFValueType.STRING:
            vals = [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
        else:
            vals = [field.parts[i].tolist()[0] if len(field.parts[i]) == 1 else field.parts[i].tolist() for i in field.data]
        return "/".join(types), vals
    if main == GGUFValueType.STRING:
        return types[0], bytes(field.parts[field.data[0]]).decode("utf-8", "replace")
    return types[0], field.parts[field.data[0]].tolist()[0]


def describe_value_diff(a, b) -> str:
    if isinstance(a, list) and isinstance(b, list):
        parts = []
        if len(a) != len(b):
            parts.append(f"length {len(a)} vs {len(b)}")
        diffs = [i for i in range(min(len(a), len(b))) if a[i] != b[i]]
        if diffs:
            i = diffs[0]
            parts.append(f"{len(diffs)} elements differ, first [{i}]: {short(a[i], 50)} vs {short(b[i], 50)}")
        return "; ".join(parts)
    return f"{short(a)} vs {short(b)}"


def compare(ref: Path, ours: Path) -> list[str]:
    """Differences between the converter's file (ref) and ckpt's (ours), as readable lines."""
    import numpy as np
    from gguf import GGUFReader

    out: list[str] = []
    try:
        ra, rb = GGUFReader(str(ref)), GGUFReader(str(ours))
    except Exception as e:  # noqa: BLE001
        return [f"cannot read with GGUFReader: {e}"]
    fa = {k: f for k, f in ra.fields.items() if not k.startswith("GGUF.")}
    fb = {k: f for k, f in rb.fields.items() if not k.startswith("GGUF.")}
    for k in fa:
        if k not in fb:
            ta, va = field_info(fa[k])
            out.append(f"KV {k}: only in convert_hf_to_gguf.py ({ta} {short(va)})")
    for k in fb:
        if k not in fa:
            tb, vb = field_info(fb[k])
            out.append(f"KV {k}: only in ckpt ({tb} {short(vb)})")
    common_a = [k for k in fa if k in fb]
    common_b = [k for k in fb if k in fa]
    if common_a != common_b:
        i = next(i for i, (x, y) in enumerate(zip(common_a, common_b)) if x != y)
        out.append(f"KV order differs at common key #{i}: converter {common_a[i:i + 4]} vs ckpt {common_b[i:i + 4]}")
    for k in common_a:
        ta, va = field_info(fa[k])
        tb, vb = field_info(fb[k])
        if ta != tb:
            out.append(f"KV {k}: type {ta} vs {tb}")
        if va != vb:
            out.append(f"KV {k}: value {describe_value_diff(va, vb)}")
    ta_ = {t.name: t for t in ra.tensors}
    tb_ = {t.name: t for t in rb.tensors}
    for n in ta_:
        if n not in tb_:
            out.append(f"tensor {n}: only in convert_hf_to_gguf.py ({ta_[n].tensor_type.name} {[int(d) for d in ta_[n].shape]})")
    for n in tb_:
        if n not in ta_:
            out.append(f"tensor {n}: only in ckpt ({tb_[n].tensor_type.name} {[int(d) for d in tb_[n].shape]})")
    order_a = [t.name for t in ra.tensors if t.name in tb_]
    order_b = [t.name for t in rb.tensors if t.name in ta_]
    if order_a != order_b:
        i = next(i for i, (x, y) in enumerate(zip(order_a, order_b)) if x != y)
        out.append(f"tensor order differs at #{i}: converter {order_a[i:i + 3]} vs ckpt {order_b[i:i + 3]}")
    for n in order_a:
        a, b = ta_[n], tb_[n]
        if a.tensor_type != b.tensor_type:
            out.append(f"tensor {n}: type {a.tensor_type.name} vs {b.tensor_type.name}")
            continue
        sa, sb = [int(d) for d in a.shape], [int(d) for d in b.shape]
        if sa != sb:
            out.append(f"tensor {n}: shape {sa} vs {sb}")
            continue
        da = np.asarray(a.data).view(np.uint8).reshape(-1)
        db = np.asarray(b.data).view(np.uint8).reshape(-1)
        if da.shape != db.shape or not np.array_equal(da, db):
            msg = f"tensor {n} ({a.tensor_type.name} {sa}): data differs"
            if a.tensor_type.name in ("F32", "F16") and da.shape == db.shape:
                x = np.asarray(a.data).reshape(-1).astype(np.float64)
                y = np.asarray(b.data).reshape(-1).astype(np.float64)
                bad = np.nonzero(x != y)[0]
                if len(bad):
                    i = int(bad[0])
                    msg += f" in {len(bad)} of {x.size} values, first [{i}]: {float(x[i])!r} vs {float(y[i])!r}, max |diff| {np.max(np.abs(x - y)):.3g}"
            else:
                nbad = int(np.count_nonzero(da != db)) if da.shape == db.shape else -1
                msg += f" ({nbad} of {da.size} bytes)"
            out.append(msg)
    if not out:
        if ra.data_offset != rb.data_offset:
            out.append(f"data offset {ra.data_offset} vs {rb.data_offset}")
        else:
            out.append("files differ but GGUFReader sees the same KVs and tensors (alignment/padding or tensor offsets)")
    return out


def compare_vision(py: str, src: Path, ckpt: str, model: Path, ot: str, stem: Path, ref: Path, ours: Path) -> tuple[bool, list[str]]:
    """A vision case: ckpt's text GGUF (already written without --mmproj) against the converter's,
    then ckpt's one run with --mmproj (text + projector) against the converter's two runs.
    Returns (identical, [projector size] or the differences)."""
    lines: list[str] = []
    if sha256(ref) != sha256(ours):
        lines.append("text GGUF (without --mmproj) differs:")
        lines += ["  " + x for x in compare(ref, ours)]
    mm_ref = Path(f"{stem}.mmproj.converter.gguf")
    rc, log = run_converter(py, src, model, ot, mm_ref, None, mmproj=True)
    if rc != 0:
        return False, lines + ["convert_hf_to_gguf.py --mmproj failed: " + " | ".join(log.strip().splitlines()[-4:])]
    text2 = Path(f"{stem}.with-mmproj.ckpt.gguf")
    mm_ours = Path(f"{stem}.mmproj.ckpt.gguf")
    rc, log = run_ckpt(ckpt, model, ot, text2, ["--mmproj", str(mm_ours)])
    if rc != 0:
        return False, lines + [f"ckpt --mmproj failed (exit {rc}): {log.strip()}"]
    if sha256(ref) != sha256(text2):
        lines.append("text GGUF (with --mmproj) differs:")
        lines += ["  " + x for x in compare(ref, text2)]
    if sha256(mm_ref) != sha256(mm_ours):
        lines.append("mmproj GGUF differs:")
        lines += ["  " + x for x in compare(mm_ref, mm_ours)]
    if lines:
        return False, lines
    return True, [str(mm_ref.stat().st_size)]


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="path to the ckpt binary")
    ap.add_argument("llama_cpp", help="llama.cpp source tree (convert_hf_to_gguf.py, gguf-py)")
    ap.add_argument("--arch", action="append", metavar="CASE", help="only these cases: ARCH or ARCH+OPTION... (repeatable)")
    ap.add_argument("--no-variants", action="store_true", help="only the plain model of each architecture")
    ap.add_argument("--outtype", action="append", choices=ALL_OUTTYPES + QUANT_OUTTYPES, help="only these outtypes (repeatable; the llama-quantize types are opt-in)")
    ap.add_argument("--keep", type=Path, help="keep the models and GGUF files in this folder")
    args = ap.parse_args()

    src = Path(args.llama_cpp).resolve()
    if not (src / "convert_hf_to_gguf.py").is_file():
        print(f"error: {src}/convert_hf_to_gguf.py not found", file=sys.stderr)
        return 2
    sys.path.insert(0, str(src / "gguf-py"))
    ckpt = str(Path(args.ckpt).resolve())
    archs = args.arch or (ALL_ARCHS if args.no_variants else ALL_ARCHS + VARIANTS)
    outtypes = args.outtype or ALL_OUTTYPES

    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="ckpt-arch-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    total = identical = known = 0
    failures: list[str] = []
    try:
        for arch in archs:
            # The folder name becomes general.name; keep it the same for both tools.
            model = work / f"tiny-{arch.replace('+', '-')}"
            if model.exists():
                shutil.rmtree(model)
            try:
                build_model(arch, model)
            except Exception as e:  # noqa: BLE001
                for ot in outtypes:
                    total += 1
                    failures.append(f"{arch} {ot}")
                    print(f"FAIL {arch} {ot}: building the tiny model failed: {e!r}")
                continue
            for ot in outtypes:
                total += 1
                ref = work / f"{arch}.{ot}.converter.gguf"
                ours = work / f"{arch}.{ot}.ckpt.gguf"
                t0 = time.time()
                if ot in QUANT_OUTTYPES:
                    f16 = work / f"{arch}.{ot}.converter-f16.gguf"
                    rc, log = run_converter(sys.executable, src, model, "f16", f16, FALLBACK_PRE.get(arch.split("+")[0]))
                    if rc == 0:
                        quantize = os.environ.get("LLAMA_QUANTIZE", str(src / "build" / "bin" / "llama-quantize"))
                        rc, log = run([quantize, str(f16), str(ref), ot.upper()])
                        f16.unlink(missing_ok=True)
                else:
                    rc, log = run_converter(sys.executable, src, model, ot, ref, FALLBACK_PRE.get(arch.split("+")[0]))
                pre = FALLBACK_PRE.get(arch.split("+")[0])
                extra = ["--pre-tokenizer", pre] if pre else []
                if rc != 0:
                    tail = "\n    ".join(log.strip().splitlines()[-6:])
                    # Agreement when ckpt refuses too and writes nothing (llama-quantize will not
                    # requantize GPT-OSS's MXFP4 experts to a K-quant, for one).
                    crc, clog = run_ckpt(ckpt, model, ot, ours, extra)
                    if crc != 0 and not ours.exists():
                        identical += 1
                        lines = log.strip().splitlines() or [""]
                        why = next((x for x in lines if "error" in x.lower() or "failed to quantize:" in x), lines[-1])
                        print(f"ok {arch} {ot} (both refuse: {why.strip()[-120:]} | ckpt exit {crc})")
                        continue
                    if ot in QUANT_OUTTYPES and KNOWN_QUANTIZE_REFUSAL in log and crc == 0:
                        # llama.cpp's loader quirk (see the lite27 option): llama-quantize refuses
                        # what it cannot load; ckpt writes it, and the 27-layer variant checks the
                        # bytes. Counted, not hidden.
                        known += 1
                        print(f"KNOWN {arch} {ot}: llama-quantize refuses ({KNOWN_QUANTIZE_REFUSAL}); ckpt writes it (checked at 27 layers by +lite27)")
                        continue
                    failures.append(f"{arch} {ot}")
                    print(f"SKIP {arch} {ot}: convert_hf_to_gguf.py (or llama-quantize) failed (exit {rc}):\n    {tail}")
                    continue
                rc, log = run_ckpt(ckpt, model, ot, ours, extra)
                if rc != 0:
                    failures.append(f"{arch} {ot}")
                    print(f"FAIL {arch} {ot}: ckpt failed (exit {rc}): {log.strip()}")
                    continue
                if arch.split("+")[0] in VISION_ARCHS and ot not in QUANT_OUTTYPES:
                    ok, lines = compare_vision(sys.executable, src, ckpt, model, ot, work / f"{arch}.{ot}", ref, ours)
                    if ok:
                        identical += 1
                        print(f"ok {arch} {ot} (text {ref.stat().st_size} bytes with and without --mmproj, mmproj {lines[0]} bytes, {time.time() - t0:.1f}s)")
                    else:
                        failures.append(f"{arch} {ot}")
                        print(f"DIFF {arch} {ot}:")
                        for line in lines:
                            print(f"    {line}")
                    continue
                if sha256(ref) == sha256(ours):
                    identical += 1
                    print(f"ok {arch} {ot} ({ref.stat().st_size} bytes, {time.time() - t0:.1f}s)")
                    continue
                failures.append(f"{arch} {ot}")
                print(f"DIFF {arch} {ot}: {ref.stat().st_size} vs {ours.stat().st_size} bytes")
                for line in compare(ref, ours):
                    print(f"    {line}")
            if not args.keep:
                shutil.rmtree(model, ignore_errors=True)
                for f in work.glob(f"{glob_escape(arch)}.*.gguf"):
                    f.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"arch matrix: {identical} of {total} identical to convert_hf_to_gguf.py" + (f", {known} known refusals of llama-quantize" if known else ""))
    if failures:
        print("not identical: " + ", ".join(failures))
    return 0 if identical + known == total else 1


if __name__ == "__main__":
    sys.exit(main())
