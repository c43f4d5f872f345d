"""llama.cpp (through llama-cpp-python) loads GGUF files written by ckpt and generates the same
greedy tokens as from the reference file written by llama.cpp's own tools.

usage: llama_greedy.py OURS.gguf REFERENCE.gguf [OURS.gguf REFERENCE.gguf ...]
"""
import sys

from llama_cpp import Llama

PROMPT = "The history of the city begins"


def greedy(path):
    llm = Llama(model_path=path, n_ctx=256, n_threads=2, seed=0, verbose=False, logits_all=False)
    tokens = llm.tokenize(PROMPT.encode())
    out = llm(PROMPT, max_tokens=24, temperature=0.0, top_k=1, top_p=1.0, repeat_penalty=1.0)
    return tokens, out["choices"][0]["text"]


args = sys.argv[1:]
for ours, ref in zip(args[0::2], args[1::2]):
    a, b = greedy(ours), greedy(ref)
    assert a == b, f"{ours}: {a!r} != {b!r}"
    print(f"ok  {ours}: prompt tokens {a[0][:8]}..., greedy continuation {a[1][:40]!r} identical to {ref}")
print(f"llama.cpp loaded {len(args) // 2} ckpt GGUF files and generated the same greedy tokens as the references")
