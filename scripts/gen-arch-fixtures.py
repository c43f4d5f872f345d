#!/usr/bin/env python3
"""Writes tests/fixtures/arch-tables/: one tiny case per table-driven architecture, with what
llama.cpp's convert_hf_to_gguf.py produced for it.

usage: gen-arch-fixtures.py LLAMA_CPP_SRC [CASE ...]   (python with torch, transformers, safetensors, numpy)

Per case CASE/: config.json (a transformers config at tiny sizes, saved by transformers),
hf_tensors.json (the checkpoint's tensor names and shapes; element i of every tensor is
(i % 13) * 0.125 in float32, which the Rust test rebuilds without storing weights) and
expected.json: every KV of the converter's `--outtype f16` GGUF in order (type and value; the
long tokenizer arrays as a sha256 of their items) and every tensor (name, ggml type, shape,
sha256 of its bytes). The tokenizer is the repository's tiny SentencePiece or SmolLM BPE fixture,
copied in by the test (a case's own tokenizer_config.json, when it has one, replaces the
shared one).
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FX = ROOT / "tests" / "fixtures"
OUT = FX / "arch-tables"
SPM_DIR = FX / "gguf" / "tiny-llama-spm"
BPE_DIR = FX / "gguf" / "tiny-smol-bpe"
BPE_FILES = ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]
SPM_FILES = ["tokenizer.model", "tokenizer_config.json"]
XLMR_DIR = FX / "gguf" / "tiny-xlmr-unigram"
XLMR_FILES = ["sentencepiece.bpe.model", "tokenizer.json", "tokenizer_config.json"]
# WordPiece tokenizers are written into the case folder (tokenizer.json, tokenizer_config.json).
WORDPIECE_FILES = ["tokenizer.json", "tokenizer_config.json"]
# Runs the converter with a fixed pre-tokenizer name when the fingerprint is unknown (a tiny
# WordPiece vocabulary cannot have a known one); the Rust test passes the same name.
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
TINY = dict(hidden_size=8, num_hidden_layers=2, num_attention_heads=2, intermediate_size=16, max_position_embeddings=128)
NO_SPECIAL = dict(pad_token_id=None, bos_token_id=None, eos_token_id=None)


def cases():
    import transformers as tf

    bpe_vocab = json.loads((BPE_DIR / "config.json").read_text())["vocab_size"]
    spm_vocab = json.loads((SPM_DIR / "config.json").read_text())["vocab_size"]
    xlmr_vocab = json.loads((XLMR_DIR / "config.json").read_text())["vocab_size"]
    b = dict(TINY, vocab_size=bpe_vocab)
    return {
        # LlamaModel under another arch name: permuted Q/K, rope dims from hidden/heads.
        "smollm3": ("SmolLM3ForCausalLM", tf.SmolLM3Config(num_key_value_heads=1, pad_token_id=None, **b), "bpe", {}),
        # head_dim dropped, the four multipliers.
        "granite": ("GraniteForCausalLM", tf.GraniteConfig(num_key_value_heads=1, attention_multiplier=0.125, embedding_multiplier=12.0, residual_multiplier=0.22, logits_scaling=8.0, **b), "bpe", {"head_dim": 4}),
        # sliding_window_pattern from layer_types.
        "olmo3": ("Olmo3ForCausalLM", tf.Olmo3Config(num_key_value_heads=1, sliding_window=64, layer_types=["sliding_attention", "full_attention"], **b), "bpe", {}),
        # post_attention_layernorm as post_attention_norm.
        "seed_oss": ("SeedOssForCausalLM", tf.SeedOssConfig(num_key_value_heads=1, head_dim=4, **b), "bpe", {}),
        # its own key list: partial rotary dims, parallel residual flag (absent: true).
        "stablelm": ("StableLmForCausalLM", tf.StableLmConfig(num_key_value_heads=1, **b), "bpe", {"use_parallel_residual": None}),
        # model_max_length overrides max_position_embeddings; rope scaling "none"; q/k norms.
        "command_r": ("CohereForCausalLM", tf.CohereConfig(num_key_value_heads=1, use_qk_norm=True, logit_scale=0.125, **NO_SPECIAL, **b), "bpe", {"model_max_length": 512}),
        # rotary_pct, window, vocab_size.
        "cohere2": ("Cohere2ForCausalLM", tf.Cohere2Config(num_key_value_heads=1, head_dim=4, sliding_window=64, logit_scale=0.25, **NO_SPECIAL, **b), "bpe", {"rotary_pct": 0.5}),
        # window pattern from layer_types, vocab_size.
        "exaone4": ("Exaone4ForCausalLM", tf.Exaone4Config(num_key_value_heads=1, sliding_window=64, layer_types=["sliding_attention", "full_attention"], **NO_SPECIAL, **b), "bpe", {}),
        # SentencePiece, add_space_prefix written after the vocabulary.
        # partial rotary dims (0.5 by default), eot/eos/unk/bos from the added tokens <|user|> and
        # <|endoftext|> (the test renames <repo_name> to <|user|> in the copied tokenizer.json).
        "glm4": ("Glm4ForCausalLM", tf.Glm4Config(num_key_value_heads=1, head_dim=4, **NO_SPECIAL, **b), "bpe", {}),
        # GLM-4 with M-RoPE sections (GLM-4.1V-style text config): Q/K weights and biases
        # reordered to NeoX order over the rotary half of each 8-row head; rope.dimension_sections.
        "glm4_mrope": ("Glm4ForCausalLM", tf.Glm4Config(num_key_value_heads=1, head_dim=8, **NO_SPECIAL, **b), "bpe",
                       {"rope_parameters": {"partial_rotary_factor": 0.5, "rope_theta": 10000.0, "rope_type": "default", "mrope_section": [1, 1, 0]}}),
        # eod_token_id as eos; NTK-alpha ("dynamic") rope: scaled base, 256k context.
        "hunyuan_dense": ("HunYuanDenseV1ForCausalLM", tf.HunYuanDenseV1Config(
            num_key_value_heads=1, head_dim=4, eod_token_id=0, **NO_SPECIAL,
            **dict(b, max_position_embeddings=32768, rope_parameters={"rope_type": "dynamic", "alpha": 1000.0, "factor": 1.0, "rope_theta": 10000.0})), "bpe", {}),
        # short-conv layer (kernel squeezed to 2-D, kept F32), KV heads per layer, adjusted FFN width.
        "lfm2": ("Lfm2ForCausalLM", tf.Lfm2Config(num_key_value_heads=1, layer_types=["conv", "full_attention"], **NO_SPECIAL, **b), "bpe", {}),
        # Unigram vocabulary from sentencepiece.bpe.model (t5 model, fairseq shift, charsmap), the
        # first pad_token_id + 1 position rows dropped and the context shortened by as much.
        "xlm_roberta": ("XLMRobertaModel", tf.XLMRobertaConfig(type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **dict(TINY, max_position_embeddings=130, vocab_size=xlmr_vocab)), "xlmr", {}),
        # The same without sentencepiece.bpe.model: the Unigram vocabulary from tokenizer.json.
        "xlm_roberta_json": ("XLMRobertaModel", tf.XLMRobertaConfig(type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2, **dict(TINY, max_position_embeddings=130, vocab_size=xlmr_vocab)), "xlmrjson", {}),
        # EmbeddingGemma: names without "model.", gemma-embedding keys, config.json's window.
        "embeddinggemma": ("Gemma3TextModel", tf.Gemma3TextConfig(num_key_value_heads=1, head_dim=4, sliding_window=64, use_bidirectional_attention=True, **dict(TINY, vocab_size=spm_vocab)), "spm", {}),
        "ernie4_5": ("Ernie4_5_ForCausalLM", tf.Ernie4_5Config(num_key_value_heads=1, head_dim=4, tie_word_embeddings=False, **NO_SPECIAL, **dict(TINY, vocab_size=spm_vocab)), "spm", {}),
    }


def nomic_config() -> dict:
    """nomic-embed-text-v1.5's config.json at tiny sizes (plus the names transformers reads)."""
    h, f = TINY["hidden_size"], TINY["intermediate_size"]
    return {
        "activation_function": "swiglu", "architectures": ["NomicBertModel"], "causal": False, "layer_norm_epsilon": 1e-12,
        "max_trained_positions": 2048, "mlp_fc1_bias": False, "mlp_fc2_bias": False, "model_type": "nomic_bert",
        "n_embd": h, "n_head": 2, "n_inner": f, "n_layer": 2, "n_positions": 8192, "prenorm": False, "qkv_proj_bias": False,
        "rotary_emb_base": 1000, "rotary_emb_fraction": 1.0, "rotary_emb_interleaved": False, "rotary_emb_scale_base": None,
        "type_vocab_size": 2, "vocab_size": 32, "hidden_size": h, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": f,
    }


def nomic_tensors() -> list:
    h, f = TINY["hidden_size"], TINY["intermediate_size"]
    t = [["embeddings.word_embeddings.weight", [32, h]], ["embeddings.token_type_embeddings.weight", [2, h]], ["emb_ln.weight", [h]], ["emb_ln.bias", [h]]]
    for b in range(2):
        p = f"encoder.layers.{b}."
        t += [[p + "attn.Wqkv.weight", [3 * h, h]], [p + "attn.out_proj.weight", [h, h]], [p + "mlp.fc11.weight", [f, h]],
              [p + "mlp.fc12.weight", [f, h]], [p + "mlp.fc2.weight", [h, f]], [p + "norm1.weight", [h]], [p + "norm1.bias", [h]],
              [p + "norm2.weight", [h]], [p + "norm2.bias", [h]]]
    return sorted(t)


def write_wordpiece(d: Path) -> None:
    """A 32-token WordPiece vocabulary saved by transformers' BertTokenizerFast."""
    from transformers import BertTokenizerFast

    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("abcdefghijklmnopqrstu") + ["the", "##s", "##ing", "model", "text", "##ed"]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
        BertTokenizerFast(vocab_file=str(Path(tmp) / "vocab.txt"), do_lower_case=True).save_pretrained(tmp)
        for f in WORDPIECE_FILES:
            shutil.copyfile(Path(tmp) / f, d / f)


def raw_cases():
    """Cases whose config.json and tensor list are written by hand: CASE -> (arch, config, tokenizer,
    tensors, pre-tokenizer fallback)."""
    return {
        # fused Wqkv, SwiGLU fc11/fc12/fc2, n_positions 8192 -> 2048, WordPiece vocabulary.
        "nomic_bert": ("NomicBertModel", nomic_config(), "wordpiece", nomic_tensors(), "bert-bge"),
    }


def field_json(field):
    from gguf import GGUFValueType

    types = [GGUFValueType(t).name for t in field.types]
    main = GGUFValueType(field.types[0])
    if main == GGUFValueType.ARRAY:
        sub = GGUFValueType(field.types[-1])
        if sub == GGUFValueType.STRING:
            vals = [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        else:
            vals = [field.parts[i].tolist()[0] for i in field.data]
        if len(vals) > 16:
            h = hashlib.sha256(json.dumps(vals, ensure_ascii=False).encode()).hexdigest()
            return {"type": "/".join(types), "len": len(vals), "sha256": h}
        return {"type": "/".join(types), "value": vals}
    if main == GGUFValueType.STRING:
        return {"type": types[0], "value": bytes(field.parts[field.data[0]]).decode("utf-8")}
    return {"type": types[0], "value": field.parts[field.data[0]].tolist()[0]}


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
    all_cases = {k: v + (None, None) for k, v in cases().items()}
    for case, (arch, cfg, tok, tensors, pre) in raw_cases().items():
        all_cases[case] = (arch, cfg, tok, {}, tensors, pre)
    only = sys.argv[2:]
    for case, (arch, cfg, tok, extra, tensors, pre) in all_cases.items():
        if only and case not in only:
            continue
        d = OUT / case
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        if isinstance(cfg, dict):
            (d / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
        else:
            cfg.architectures = [arch]
            cfg.save_pretrained(str(d))
        if tok == "wordpiece":
            write_wordpiece(d)
        if extra:
            # None removes a key.
            c = json.loads((d / "config.json").read_text())
            c.update(extra)
            c = {k: v for k, v in c.items() if v is not None or k not in extra}
            (d / "config.json").write_text(json.dumps(c, indent=2, sort_keys=True) + "\n")
        if tensors is None:
            cls = getattr(tf, arch, None) or getattr(tf, arch.replace("_ForCausalLM", "ForCausalLM"))
            with torch.device("meta"):
                model = cls(cfg)
            tensors = [(n, list(p.shape)) for n, p in model.state_dict().items()]
            if getattr(cfg, "tie_word_embeddings", False):
                tensors = [t for t in tensors if t[0] != "lm_head.weight"]
            tensors.sort()
        (d / "hf_tensors.json").write_text(json.dumps(tensors, indent=1) + "\n")
        with tempfile.TemporaryDirectory() as tmp:
            m = Path(tmp) / f"tiny-{case}"
            m.mkdir()
            shutil.copyfile(d / "config.json", m / "config.json")
            tok_dir, files = {"bpe": (BPE_DIR, BPE_FILES), "spm": (SPM_DIR, SPM_FILES), "xlmr": (XLMR_DIR, XLMR_FILES), "xlmrjson": (XLMR_DIR, XLMR_FILES[1:]), "wordpiece": (d, WORDPIECE_FILES)}[tok]
            for f in files:
                if (tok_dir / f).is_file():
                    shutil.copyfile(tok_dir / f, m / f)
            if case in ("glm4", "glm4_mrope"):
                tj = m / "tokenizer.json"
                tok_json = json.loads(tj.read_text(encoding="utf-8"))
                for t in tok_json["added_tokens"]:
                    if t["content"] == "<repo_name>":
                        t["content"] = "<|user|>"
                tok_json["model"]["vocab"]["<|user|>"] = tok_json["model"]["vocab"].pop("<repo_name>")
                tj.write_text(json.dumps(tok_json, ensure_ascii=False), encoding="utf-8")
            if case == "ernie4_5":
                # ERNIE writes add_space_prefix from tokenizer_config.json after the vocabulary.
                tc = json.loads((m / "tokenizer_config.json").read_text())
                tc["add_prefix_space"] = False
                (d / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
                shutil.copyfile(d / "tokenizer_config.json", m / "tokenizer_config.json")
            arrays = {n: ((np.arange(int(np.prod(s))) % 13) * 0.125).astype(np.float32).reshape(s) for n, s in tensors}
            save_file(arrays, str(m / "model.safetensors"))
            out = Path(tmp) / "out.gguf"
            env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
            args = [str(m), "--outtype", "f16", "--outfile", str(out)]
            cmd = [sys.executable, "-c", CONVERTER_SHIM, str(src), pre] + args if pre else [sys.executable, str(src / "convert_hf_to_gguf.py")] + args
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                print(p.stdout[-3000:])
                raise SystemExit(f"{case}: converter failed")
            r = GGUFReader(str(out))
            kvs = [[k, field_json(f)] for k, f in r.fields.items() if not k.startswith("GGUF.")]
            ts = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
                   "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()} for t in r.tensors]
            expected = {"case": case, "architecture": arch, "tokenizer": tok, "pre_tokenizer": pre, "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "kvs": kvs, "tensors": ts}
            (d / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        print(f"{case}: {len(kvs)} KVs, {len(ts)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
