#!/usr/bin/env python3
"""Writes tests/fixtures/gguf/tiny-xlmr-unigram/: a tiny XLM-RoBERTa tokenizer made the way the
family's is: a SentencePiece Unigram model (`sentencepiece.bpe.model`, despite its name a Unigram
model, with <unk> <s> </s> as ids 0-2) trained with the sentencepiece package on a small fixed
multilingual text, wrapped by transformers' XLMRobertaTokenizer (fairseq's id shift, <mask> last)
and saved with save_pretrained (tokenizer.json, tokenizer_config.json, ...).

usage: gen-unigram-tokenizer.py   (python with sentencepiece and transformers)
"""

import io
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "gguf" / "tiny-xlmr-unigram"

WORDS = (
    "the quick brown fox jumps over the lazy dog while a model reads every token of the text "
    "der schnelle braune fuchs springt über den faulen hund und das modell liest jeden satz "
    "le renard brun rapide saute par dessus le chien paresseux et le modèle lit chaque phrase "
    "быстрая коричневая лиса прыгает через ленивую собаку 敏捷的棕色狐狸跳过了懒狗 "
    "embedding retrieval search query passage document sentence vector similarity 0123456789"
).split()


def corpus() -> str:
    lines = []
    for i in range(400):
        n = 5 + i % 9
        lines.append(" ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(n)))
    return "\n".join(lines) + "\n"


def main() -> int:
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    # A few NFKC-style rules instead of the full nmt_nfkc table (which alone is 237 KB), so the
    # model keeps a (small) precompiled_charsmap as XLM-RoBERTa's does.
    rules = OUT / "rules.tsv"
    rules.write_text("FF21\t41\nFF22\t42\nFF41\t61\nFF42\t62\n3000\t20\n2160\t49\n", encoding="utf-8")
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus().splitlines()), model_writer=buf, model_type="unigram", vocab_size=120,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, character_coverage=1.0, seed_sentencepiece_size=10000,
        shuffle_input_sentence=False, minloglevel=2, normalization_rule_tsv=str(rules),
    )
    model = OUT / "sentencepiece.bpe.model"
    model.write_bytes(buf.getvalue())
    rules.unlink()
    # transformers converts the sentencepiece model to its fast tokenizer on load.
    tok = XLMRobertaTokenizer.from_pretrained(str(OUT))
    tok.save_pretrained(str(OUT))
    # The model's vocabulary size as an XLM-RoBERTa config states it (pieces + 1 shift + <mask>).
    (OUT / "config.json").write_text(json.dumps({"vocab_size": len(tok)}, indent=2) + "\n")
    print(f"{OUT}: {len(tok)} tokens; files {sorted(p.name for p in OUT.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
