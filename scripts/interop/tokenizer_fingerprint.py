"""Pre-tokenizer fingerprints: transformers' AutoTokenizer against ckpt.

llama.cpp's get_vocab_base_pre hashes str(tokenizer.encode(chktxt)) with the tokenizer loaded by
AutoTokenizer. For every tokenizer.json under the given roots (plus variants of each with a
stored truncation and padding, as sentence-transformers models ship), compute that hash with
transformers and compare with ckpt's (the `pre_fingerprint` example, path given as argv[1]).
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

from transformers import AutoTokenizer

ckpt_example = sys.argv[1]
roots = sys.argv[2:]

# llama.cpp's chktxt, taken from ckpt's source so both sides hash the same text.
src = open(os.path.join(os.path.dirname(__file__), "../../crates/ckpt-model/src/vocab/bpe.rs"),
           encoding="utf-8").read()
# (whatever the constant's visibility)
lit = re.search(r'const CHECK_TEXT: &str = (".*?");\n', src, re.S).group(1)
# Rust literal -> Python string: \u{XXXX} escapes, \n, \t, \" only.
body = lit[1:-1]
body = re.sub(r"\\u\{([0-9a-fA-F]+)\}", lambda m: chr(int(m.group(1), 16)), body)
body = body.replace("\\n", "\n").replace("\\t", "\t").replace('\\"', '"')
chktxt = body
assert len(chktxt) == 350, len(chktxt)

work = tempfile.mkdtemp()
cases = []  # (label, folder)
for root in roots:
    for dirpath, _, files in os.walk(root):
        if "tokenizer.json" not in files:
            continue
        base = json.load(open(os.path.join(dirpath, "tokenizer.json"), encoding="utf-8"))
        variants = {
            "as-is": base,
            "truncation 128": dict(base, truncation={"direction": "Right", "max_length": 128,
                                                     "strategy": "LongestFirst", "stride": 0}),
            "truncation 8": dict(base, truncation={"direction": "Right", "max_length": 8,
                                                   "strategy": "LongestFirst", "stride": 0}),
        }
        pad_id = 0
        variants["padding 512"] = dict(base, padding={
            "strategy": {"Fixed": 512}, "direction": "Right", "pad_to_multiple_of": None,
            "pad_id": pad_id, "pad_type_id": 0, "pad_token": base["model"].get("unk_token") or "<pad>"})
        for label, tok in variants.items():
            d = os.path.join(work, str(len(cases)))
            os.makedirs(d)
            json.dump(tok, open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8"))
            for extra in ("tokenizer_config.json", "special_tokens_map.json"):
                p = os.path.join(dirpath, extra)
                if os.path.exists(p):
                    open(os.path.join(d, extra), "w").write(open(p).read())
            cases.append((f"{dirpath} [{label}]", d))

out = subprocess.run([ckpt_example] + [os.path.join(d, "tokenizer.json") for _, d in cases],
                     check=True, capture_output=True, text=True).stdout
ours = dict(line.split("\t") for line in out.splitlines())
bad = 0
for label, d in cases:
    tok = AutoTokenizer.from_pretrained(d)
    ref = hashlib.sha256(str(tok.encode(chktxt)).encode()).hexdigest()
    mine = ours[os.path.join(d, "tokenizer.json")]
    ok = ref == mine
    bad += not ok
    print(f"{'ok  ' if ok else 'DIFF'} {label}: transformers {ref[:16]}… ckpt {mine[:16]}…")
print(f"{len(cases) - bad}/{len(cases)} fingerprints agree")
sys.exit(1 if bad else 0)
