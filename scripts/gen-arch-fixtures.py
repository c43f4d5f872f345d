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
# A tiktoken vocabulary written into the case folder (Hunyuan's layout, no tokenizer.json); the
# converter loads it through a tokenizer module the script writes beside it (HY_TOKENIZER).
TIKTOKEN_FILES = ["hy.tiktoken", "tokenizer_config.json", "generation_config.json"]
# The split pattern and special tokens of Hunyuan's tokenizer module (tokenization_hy.py):
# ids from the number of ranks on, five named tokens then <|extra_0|> ... <|extra_204|>.
HY_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
HY_SPECIALS = ["<|endoftext|>", "<|startoftext|>", "<|bos|>", "<|eos|>", "<|pad|>"] + [f"<|extra_{i}|>" for i in range(205)]
HY_MERGES = 64
# A tokenizer module with the behaviour of Hunyuan's (written for this script): ranks in file
# order with repeats skipped, NFC, tiktoken encoding with every special token allowed.
HY_TOKENIZER = """
import base64, json, unicodedata
import tiktoken
from transformers import PreTrainedTokenizer

PATTERN = %r
SPECIALS = %r


class HYTokenizer(PreTrainedTokenizer):
    vocab_files_names = {"vocab_file": "hy.tiktoken"}

    def __init__(self, vocab_file, errors="replace", **kwargs):
        self.mergeable_ranks = {}
        with open(vocab_file, "rb") as f:
            for line in f:
                tok = base64.b64decode(line.split()[0])
                self.mergeable_ranks.setdefault(tok, len(self.mergeable_ranks))
        n = len(self.mergeable_ranks)
        self.special_tokens = {t: n + i for i, t in enumerate(SPECIALS)}
        self.tokenizer = tiktoken.Encoding("hy", pat_str=PATTERN, mergeable_ranks=self.mergeable_ranks, special_tokens=self.special_tokens)
        self.decoder = {v: k for k, v in {**self.mergeable_ranks, **self.special_tokens}.items()}
        self.errors = errors
        super().__init__(**kwargs)

    @property
    def vocab_size(self):
        return self.tokenizer.n_vocab

    def __len__(self):
        return self.tokenizer.n_vocab

    def get_vocab(self):
        return self.mergeable_ranks

    def tokenize(self, text, **kwargs):
        text = unicodedata.normalize("NFC", text)
        return [self.decoder[t] for t in self.tokenizer.encode(text, allowed_special="all")]

    def _convert_token_to_id(self, token):
        return self.special_tokens.get(token, self.mergeable_ranks.get(token))

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, (str, bytes)):
            return self._convert_token_to_id(tokens)
        return [self._convert_token_to_id(t) for t in tokens]

    def _convert_id_to_token(self, index):
        return self.decoder[index]

    def _decode(self, token_ids, skip_special_tokens=False, **kwargs):
        return self.tokenizer.decode([token_ids] if isinstance(token_ids, int) else token_ids, errors=self.errors)

    def save_vocabulary(self, save_directory, filename_prefix=None):
        return ()
""" % (HY_PATTERN, HY_SPECIALS)
HY_TRAINING_TEXT = (
    "Hunyuan ships a tiktoken vocabulary: one base64 token and its rank per line. The converter "
    "rebuilds the byte-pair merges from the ranks, writes the special tokens after them, and "
    "fingerprints the pre-tokenizer by encoding a probe text. 混元模型的词表是 tiktoken 格式。"
    " Numbers 12345 and punctuation!!! ... don't, we'll, they're\n\n  indented\tcode() {}\n"
) * 3
# Runs the converter with a fixed pre-tokenizer name when the fingerprint is unknown (a tiny
# WordPiece vocabulary cannot have a known one); the Rust test passes the same name.
CONVERTER_SHIM = r"""
import logging, runpy, sys
src, pre = sys.argv[1], sys.argv[2]
sys.argv = [src + "/convert_hf_to_gguf.py"] + sys.argv[3:]
sys.path.insert(0, src)
sys.path.insert(1, src + "/gguf-py")
from conversion import base
orig = base.TextModel.get_vocab_base_pre
class Fingerprint(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if "chkhsh:" in msg:
            print("CHKHSH=" + msg.split("chkhsh:")[1].strip(), flush=True)
def get_vocab_base_pre(self, tokenizer):
    try:
        return orig(self, tokenizer)
    except NotImplementedError:
        return pre
logging.getLogger("hf-to-gguf").addHandler(Fingerprint())
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
    hy_vocab = 256 + HY_MERGES
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
        # no tokenizer.json: the GPT-2 vocabulary from hy.tiktoken (merges from the ranks, the
        # special tokens after them as CONTROL), eot from generation_config.json.
        "hunyuan_tiktoken": ("HunYuanDenseV1ForCausalLM", tf.HunYuanDenseV1Config(
            num_key_value_heads=1, head_dim=4, eod_token_id=hy_vocab, pad_token_id=hy_vocab + 4, bos_token_id=hy_vocab + 1, eos_token_id=hy_vocab + 3,
            **dict(TINY, vocab_size=hy_vocab + len(HY_SPECIALS))), "tiktoken", {}),
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


def nomic_moe_config() -> dict:
    """nomic-embed-text-v2-moe's config.json at tiny sizes (plus the names transformers reads):
    every second layer a mixture of 4 experts, biases, GELU, XLM-RoBERTa's vocabulary size."""
    h, f = TINY["hidden_size"], TINY["intermediate_size"]
    return {
        "activation_function": "gelu", "architectures": ["NomicBertModel"], "causal": False, "expert_choice_router": False,
        "ffn_div": 1, "layer_norm_epsilon": 1e-05, "max_trained_positions": 2048, "mlp_fc1_bias": True, "mlp_fc2_bias": True,
        "model_type": "nomic_bert", "moe_every_n_layers": 2, "moe_normalize_expert_weights": False, "moe_top_k": 2,
        "n_embd": h, "n_head": 2, "n_inner": f, "n_layer": 2, "n_positions": 2048, "num_experts": 4, "num_shared_experts": 0,
        "pad_token_id": 1, "prenorm": False, "qkv_proj_bias": True, "rotary_emb_base": 10000, "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": False, "rotary_emb_scale_base": None, "rotary_scaling_factor": None, "type_vocab_size": 1,
        "vocab_size": 250048, "hidden_size": h, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": f,
    }


def nomic_moe_tensors() -> list:
    """Layer 0 a biased GELU MLP (fc1/fc2), layer 1 the experts: router, w1 and w2 as
    [experts * n_inner, n_embd] matrices, one shared output bias."""
    h, f, e = TINY["hidden_size"], TINY["intermediate_size"], 4
    t = [["embeddings.word_embeddings.weight", [250048, h]], ["embeddings.token_type_embeddings.weight", [1, h]], ["emb_ln.weight", [h]], ["emb_ln.bias", [h]]]
    for b in range(2):
        p = f"encoder.layers.{b}."
        t += [[p + "attn.Wqkv.weight", [3 * h, h]], [p + "attn.Wqkv.bias", [3 * h]], [p + "attn.out_proj.weight", [h, h]],
              [p + "attn.out_proj.bias", [h]], [p + "norm1.weight", [h]], [p + "norm1.bias", [h]], [p + "norm2.weight", [h]], [p + "norm2.bias", [h]]]
        if b % 2 == 1:
            t += [[p + "mlp.router.layer.weight", [e, h]], [p + "mlp.experts.mlp.w1", [e * f, h]], [p + "mlp.experts.mlp.w2", [e * f, h]],
                  [p + "mlp.experts.bias", [h]]]
        else:
            t += [[p + "mlp.fc1.weight", [f, h]], [p + "mlp.fc1.bias", [f]], [p + "mlp.fc2.weight", [h, f]], [p + "mlp.fc2.bias", [h]]]
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


def write_tiktoken(d: Path) -> None:
    """hy.tiktoken trained by tiktoken's reference trainer on HY_TRAINING_TEXT (256 single bytes in
    GPT-2's byte order, as tiktoken vocabularies list them, then HY_MERGES merged tokens), with
    the tokenizer_config.json and generation_config.json of a Hunyuan folder."""
    import base64
    from tiktoken._educational import bpe_train

    ranks = bpe_train(HY_TRAINING_TEXT, 256 + HY_MERGES, HY_PATTERN, visualise=None)
    printable = [b for b in range(256) if 0x21 <= b <= 0x7E or 0xA1 <= b <= 0xAC or 0xAE <= b]
    order = printable + [b for b in range(256) if b not in printable]
    tokens = [bytes([b]) for b in order] + [t for t, r in sorted(ranks.items(), key=lambda x: x[1]) if r >= 256]
    with open(d / "hy.tiktoken", "w", encoding="ascii") as f:
        for i, t in enumerate(tokens):
            f.write(base64.b64encode(t).decode("ascii") + " " + str(i) + "\n")
    n = len(tokens)
    config = {
        "auto_map": {"AutoTokenizer": ["tokenization_hy.HYTokenizer", None]}, "tokenizer_class": "HYTokenizer",
        "bos_token": "<|startoftext|>", "eos_token": "<|eos|>", "pad_token": "<|pad|>", "model_max_length": 1024,
        "chat_template": "{% for m in messages %}<|startoftext|>{{ m['content'] }}<|extra_0|>{% endfor %}",
    }
    (d / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    gen = {"bos_token_id": n + 1, "eos_token_id": [n + 5, n + 3], "pad_token_id": n + 4}
    (d / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")


def raw_cases():
    """Cases whose config.json and tensor list are written by hand: CASE -> (arch, config, tokenizer,
    tensors, pre-tokenizer fallback)."""
    return {
        # fused Wqkv, SwiGLU fc11/fc12/fc2, n_positions 8192 -> 2048, WordPiece vocabulary.
        "nomic_bert": ("NomicBertModel", nomic_config(), "wordpiece", nomic_tensors(), "bert-bge"),
        # nomic-embed-text-v2-moe: "nomic-bert-moe", n_positions 2048 -> 512, experts' w1/w2 viewed
        # as [experts, n_inner, n_embd] (w2 transposed per expert), experts.bias dropped, the
        # XLM-RoBERTa vocabulary with <mask> written at id 250001.
        "nomic_bert_moe": ("NomicBertModel", nomic_moe_config(), "xlmr", nomic_moe_tensors(), None),
    }


def model_folder(case: str, d: Path, m: Path, tok: str, tensors) -> str | None:
    """The model folder the converter reads for case folder `d`: its config.json, the tokenizer
    files (the case's own tokenizer_config.json replacing the shared one), the weights (element i
    = (i % 13) * 0.125). Returns the pre-tokenizer the converter must be given, if any."""
    import numpy as np
    from safetensors.numpy import save_file

    m.mkdir()
    shutil.copyfile(d / "config.json", m / "config.json")
    tok_dir, files = {"bpe": (BPE_DIR, BPE_FILES), "spm": (SPM_DIR, SPM_FILES), "xlmr": (XLMR_DIR, XLMR_FILES), "xlmrjson": (XLMR_DIR, XLMR_FILES[1:]), "wordpiece": (d, WORDPIECE_FILES), "tiktoken": (d, TIKTOKEN_FILES)}[tok]
    for f in files:
        if (tok_dir / f).is_file():
            shutil.copyfile(tok_dir / f, m / f)
    if (d / "tokenizer_config.json").is_file():
        shutil.copyfile(d / "tokenizer_config.json", m / "tokenizer_config.json")
    if case in ("glm4", "glm4_mrope"):
        tj = m / "tokenizer.json"
        tok_json = json.loads(tj.read_text(encoding="utf-8"))
        for t in tok_json["added_tokens"]:
            if t["content"] == "<repo_name>":
                t["content"] = "<|user|>"
        tok_json["model"]["vocab"]["<|user|>"] = tok_json["model"]["vocab"].pop("<repo_name>")
        tj.write_text(json.dumps(tok_json, ensure_ascii=False), encoding="utf-8")
    pre = None
    if tok == "tiktoken":
        # Only the converter runs this module; ckpt reads hy.tiktoken alone.
        (m / "tokenization_hy.py").write_text(HY_TOKENIZER)
        pre = "hunyuan"
    arrays = {n: ((np.arange(int(np.prod(s))) % 13) * 0.125).astype(np.float32).reshape(s) for n, s in tensors}
    save_file(arrays, str(m / "model.safetensors"))
    return pre


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
        if tok == "tiktoken":
            write_tiktoken(d)
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
            if case == "ernie4_5":
                # ERNIE writes add_space_prefix from tokenizer_config.json after the vocabulary.
                tc = json.loads((SPM_DIR / "tokenizer_config.json").read_text())
                tc["add_prefix_space"] = False
                (d / "tokenizer_config.json").write_text(json.dumps(tc, indent=2) + "\n")
            pre = model_folder(case, d, m, tok, tensors) or pre
            out = Path(tmp) / "out.gguf"
            env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
            args = [str(m), "--outtype", "f16", "--outfile", str(out)]
            cmd = [sys.executable, "-c", CONVERTER_SHIM, str(src), pre] + args if pre else [sys.executable, str(src / "convert_hf_to_gguf.py")] + args
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0:
                print(p.stdout[-3000:])
                raise SystemExit(f"{case}: converter failed")
            # The fingerprint the converter computed when it did not know it.
            chkhsh = next((l.split("=", 1)[1] for l in p.stdout.splitlines() if l.startswith("CHKHSH=")), None)
            r = GGUFReader(str(out))
            kvs = [[k, field_json(f)] for k, f in r.fields.items() if not k.startswith("GGUF.")]
            ts = [{"name": t.name, "type": t.tensor_type.name, "shape": [int(x) for x in t.shape],
                   "sha256": hashlib.sha256(np.asarray(t.data).tobytes()).hexdigest()} for t in r.tensors]
            expected = {"case": case, "architecture": arch, "tokenizer": tok, "pre_tokenizer": pre, "pre_hash": chkhsh, "file_sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "kvs": kvs, "tensors": ts}
            (d / "expected.json").write_text(json.dumps(expected, indent=1, ensure_ascii=False) + "\n")
        print(f"{case}: {len(kvs)} KVs, {len(ts)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
