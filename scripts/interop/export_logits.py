"""transformers loads a folder written by `ckpt export` (GGUF -> Hugging Face) and computes the
same next-token logits as llama.cpp (through llama-cpp-python) on the GGUF it came from.

usage: export_logits.py MODEL.gguf EXPORTED_DIR [MODEL.gguf EXPORTED_DIR ...]

For each pair: the prompt is tokenized by the exported tokenizer (AutoTokenizer) and by
llama.cpp, and the ids must be equal; then the logits of every prompt position are compared.
The two sides do not compute identically: transformers runs in float32 on the dequantized
weights, llama.cpp's CPU kernels round activations to f16 (for F16 weights) or quantize them to
8 bits (Q8_K/Q8_0, for quantized weights) before each matrix product. The tolerance is relative
to the largest logit magnitude: 1% for F16/F32 GGUFs, 5% for quantized ones.
"""
import sys

import numpy as np
import torch
from llama_cpp import Llama
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = "The history of the city begins"
# Texts whose tokenization must agree too (runs of spaces, byte fallback, special tokens).
TEXTS = ["Hello  world", "  leading spaces\tand tabs\n\nnewlines", "\u00fcn\u00efc\u00f6d\u00e9 \U0001F680 3.14159",
         "a</s> b <|im_end|>"]


def llama_cpp_logits(gguf_path, n_ctx=256):
    llm = Llama(model_path=gguf_path, n_ctx=n_ctx, n_threads=2, seed=0, verbose=False, logits_all=True)
    tokens = llm.tokenize(PROMPT.encode(), add_bos=True, special=False)
    llm.eval(tokens)
    scores = np.array(llm.scores[: len(tokens)], dtype=np.float32)
    quantized = any(t in gguf_path.lower() for t in ("q2_k", "q3_k", "q4_", "q5_", "q6_k", "q8_0", "iq"))
    return tokens, scores, quantized


def transformers_logits(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.eval()
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits[0].float().numpy()
    return ids[0].tolist(), logits


def check_tokenization(gguf_path, folder):
    llm = Llama(model_path=gguf_path, n_ctx=64, verbose=False, vocab_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    for text in TEXTS:
        a = llm.tokenize(text.encode(), add_bos=True, special=True)
        b = tokenizer(text).input_ids
        assert a == b, f"{folder}: {text!r} tokenized as {b} by transformers, {a} by llama.cpp"


def check(gguf_path, folder):
    check_tokenization(gguf_path, folder)
    ref_tokens, ref, quantized = llama_cpp_logits(gguf_path)
    tokens, ours = transformers_logits(folder)
    assert tokens == ref_tokens, f"{folder}: transformers tokens {tokens} != llama.cpp tokens {ref_tokens}"
    assert ours.shape == ref.shape, f"{folder}: logits shape {ours.shape} != {ref.shape}"
    scale = max(1.0, float(np.abs(ref).max()))
    diff = float(np.abs(ours - ref).max())
    tol = (0.05 if quantized else 0.01) * scale
    assert diff <= tol, f"{folder}: max |logit difference| {diff:.5f} > {tol:.5f} (largest |logit| {scale:.3f})"
    same_top = int((ours.argmax(-1) == ref.argmax(-1)).sum())
    print(f"ok  {folder}: {len(tokens)} tokens identical, max |logit diff| {diff:.5f} (tolerance {tol:.5f}), "
          f"argmax equal at {same_top}/{len(tokens)} positions")


args = sys.argv[1:]
if not args or len(args) % 2:
    sys.exit(__doc__)
for gguf_path, folder in zip(args[0::2], args[1::2]):
    check(gguf_path, folder)
print(f"transformers loaded {len(args) // 2} exported folders and matched llama.cpp's logits")
