#!/usr/bin/env python3
"""GGUF LoRA adapters: ckpt against llama.cpp's convert_lora_to_gguf.py, and llama.cpp applying them.

    lora_interop.py CKPT LLAMA_CPP_SRC WORK [LLAMA_CLI]

For a tiny Llama (tests/fixtures/gguf/tiny-llama-spm) and a tiny random Qwen2 (with the tiny BPE
tokenizer of tests/fixtures/gguf/tiny-smol-bpe), it trains nothing: it makes a PEFT LoRA adapter on
every linear module with random non-zero weights, then
  1. converts it with convert_lora_to_gguf.py and with `ckpt convert ADAPTER out.gguf --base BASE`
     for --outtype f32, f16, bf16 and q8_0, and compares the files byte for byte;
  2. converts the base model with ckpt and has llama.cpp (llama-cpp-python, the same pinned
     llama.cpp) generate greedily with each adapter: ckpt's adapter must give the same tokens as the
     converter's, and different tokens from the base alone (the adapter is applied);
  3. with LLAMA_CLI (llama.cpp's llama-cli), runs `llama-cli --lora` greedily with a fixed seed on
     both adapters and compares the printed text.
Exits non-zero on any difference.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GX = ROOT / "tests" / "fixtures" / "gguf"
PROMPT = "Once upon a time"
N_TOKENS = 24


def make_qwen2(work: Path) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    tok = json.loads((GX / "tiny-smol-bpe" / "tokenizer.json").read_text())
    vocab = len(tok["model"]["vocab"]) + len(tok.get("added_tokens", []))
    torch.manual_seed(7)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                      tie_word_embeddings=True, architectures=["Qwen2ForCausalLM"])
    model = AutoModelForCausalLM.from_config(cfg)
    out = work / "tiny-qwen2"
    model.save_pretrained(out)
    for f in (GX / "tiny-smol-bpe").iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab", "merges")):
            shutil.copy(f, out / f.name)
    return out


def make_adapter(base: Path, out: Path, seed: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    peft_model = get_peft_model(model, cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(peft_model.named_parameters()):
            if "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    peft_model.save_pretrained(out)
    return out


def greedy(model: Path, lora: Path | None) -> list[int]:
    from llama_cpp import Llama

    kw = {"lora_path": str(lora)} if lora else {}
    llm = Llama(model_path=str(model), n_ctx=256, seed=42, verbose=False, n_threads=1, **kw)
    toks = llm.tokenize(PROMPT.encode())
    out = []
    for t in llm.generate(toks, temp=0.0, top_k=1, reset=True):
        out.append(t)
        if len(out) == N_TOKENS:
            break
    del llm
    return out


def have_llama_cpp_python() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


def cli(llama_cli: str, model: Path, lora: Path | None) -> str:
    lora_args = ["--lora", str(lora)] if lora else []
    r = subprocess.run([llama_cli, "-m", str(model), *lora_args, "-p", PROMPT, "-n", str(N_TOKENS),
                        "--temp", "0", "-s", "42", "-st", "--no-warmup", "-t", "1"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=300)
    if r.returncode != 0:
        raise SystemExit(f"llama-cli failed on {lora}: {r.stderr.decode(errors='replace')[-2000:]}")
    text = r.stdout.decode(errors="replace")
    # the answer follows the echoed prompt line; the timing line after it varies
    answer = text.split("> " + PROMPT, 1)[-1]
    return "\n".join(line for line in answer.splitlines() if not line.startswith("[ Prompt:"))


def main():
    ckpt, llama_src, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    llama_cli = sys.argv[4] if len(sys.argv) > 4 else None
    # llama-cpp-python's greedy tokens, or else (it is not installed) only llama-cli's text.
    use_python = have_llama_cpp_python()
    if not use_python and not llama_cli:
        raise SystemExit("needs llama-cpp-python or a llama-cli binary to run the adapters")
    work.mkdir(parents=True, exist_ok=True)
    llama_base = work / "tiny-llama-spm"
    if not llama_base.exists():
        shutil.copytree(GX / "tiny-llama-spm", llama_base)
    bases = {"llama": llama_base, "qwen2": make_qwen2(work)}
    failures = []
    for i, (arch, base) in enumerate(bases.items()):
        adapter = make_adapter(base, work / f"{arch}-adapter", 1000 + i)
        base_gguf = work / f"{arch}-base.f16.gguf"
        subprocess.run([ckpt, "convert", "-q", str(base), str(base_gguf), "--outtype", "f16", "--force"], check=True)
        for outtype in ["f32", "f16", "bf16", "q8_0"]:
            ref = work / f"{arch}-{outtype}.convert_lora_to_gguf.gguf"
            ours = work / f"{arch}-{outtype}.ckpt.gguf"
            subprocess.run([sys.executable, str(llama_src / "convert_lora_to_gguf.py"), "--base", str(base),
                            "--outtype", outtype, "--outfile", str(ref), str(adapter)],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run([ckpt, "convert", "-q", str(adapter), str(ours), "--base", str(base),
                            "--outtype", outtype, "--force"], check=True)
            same = ref.read_bytes() == ours.read_bytes()
            print(f"{arch:6} {outtype:5} bytes {'identical' if same else 'DIFFER'} ({ours.stat().st_size} B)")
            if not same:
                failures.append(f"{arch} {outtype}: bytes differ")
            if outtype in ("f32", "q8_0") and use_python:
                plain = greedy(base_gguf, None)
                with_ref = greedy(base_gguf, ref)
                with_ours = greedy(base_gguf, ours)
                applied = with_ours != plain
                print(f"{arch:6} {outtype:5} llama.cpp greedy tokens: ckpt {'==' if with_ours == with_ref else '!='} "
                      f"converter, adapter {'changes' if applied else 'does NOT change'} the output {with_ours[:8]}…")
                if with_ours != with_ref:
                    failures.append(f"{arch} {outtype}: tokens differ {with_ours} vs {with_ref}")
                if not applied:
                    failures.append(f"{arch} {outtype}: the adapter changed nothing")
            if outtype in ("f32", "q8_0") and llama_cli:
                a, b = cli(llama_cli, base_gguf, ours), cli(llama_cli, base_gguf, ref)
                plain_text = cli(llama_cli, base_gguf, None)
                print(f"{arch:6} {outtype:5} llama-cli --lora text: ckpt {'==' if a == b else '!='} converter, "
                      f"adapter {'changes' if a != plain_text else 'does NOT change'} the output")
                if a != b:
                    failures.append(f"{arch} {outtype}: llama-cli output differs")
                if a == plain_text:
                    failures.append(f"{arch} {outtype}: the adapter changed nothing in llama-cli's output")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok: every adapter identical to convert_lora_to_gguf.py's, and llama.cpp applies it alike")


if __name__ == "__main__":
    main()
