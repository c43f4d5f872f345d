#!/usr/bin/env python3
"""Writes tests/fixtures/ollama/moe-templates/: real chat templates of the mixture-of-experts
families ckpt converts, and the template Ollama picks for each.

usage: PYTHONPATH=DIR_WITH_LEVENSHTEIN gen-ollama-template-fixtures.py LLAMA_CPP_PYTHON_SDIST

LLAMA_CPP_PYTHON_SDIST is the unpacked llama-cpp-python sdist (0.3.36 here): its
llama_cpp/llama_chat_format.py and its vendored llama.cpp (models/templates/*.jinja, the Hub
templates llama.cpp tests with, and tests/test-chat-template.cpp) are where the templates come
from. Needs the `levenshtein` package from PyPI (pip install --target DIR levenshtein).

Ollama's rule (template/template.go `Named`, used by server/model.go `detectChatTemplate` on
the GGUF's tokenizer.chat_template when a model is created): the Levenshtein distance, over
Unicode code points, between the chat template and the `template` of every entry of Ollama's
template/index.json, in index order; the first entry with the smallest distance wins, and only
if that distance is below 100. expected.json records, per template, that entry's name (or null),
the nearest entry and the distance, computed here with the levenshtein package (not with ckpt)
over the index.json ckpt embeds (crates/ckpt-ollama/templates/index.json, Ollama's own file).
"""

import ast
import hashlib
import json
import re
import sys
from pathlib import Path

import Levenshtein

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "ollama" / "moe-templates"
INDEX = ROOT / "crates" / "ckpt-ollama" / "templates" / "index.json"

# (fixture file, architecture family, model the template is from, where it is read)
TEMPLATES = [
    ("mistralai-Mixtral-8x7B-Instruct-v0.1.jinja", "MixtralForCausalLM", "mistralai/Mixtral-8x7B-Instruct-v0.1",
     ("python", "llama_cpp/llama_chat_format.py", "MIXTRAL_INSTRUCT_CHAT_TEMPLATE")),
    ("Qwen-Qwen3-0.6B.jinja", "Qwen3MoeForCausalLM", "Qwen/Qwen3-0.6B (the Qwen3 release's template, shipped by Qwen3-30B-A3B too)",
     ("file", "vendor/llama.cpp/models/templates/Qwen-Qwen3-0.6B.jinja")),
    ("Qwen3-Coder.jinja", "Qwen3MoeForCausalLM", "Qwen3-Coder (Qwen3-Coder-30B-A3B-Instruct is a Qwen3-MoE)",
     ("file", "vendor/llama.cpp/models/templates/Qwen3-Coder.jinja")),
    ("DeepSeek-V2.jinja", "DeepseekV2ForCausalLM", "DeepSeek-V2",
     ("cpp", "vendor/llama.cpp/tests/test-chat-template.cpp", "DeepSeek-V2")),
    ("deepseek-ai-DeepSeek-V3.1.jinja", "DeepseekV3ForCausalLM", "deepseek-ai/DeepSeek-V3.1",
     ("file", "vendor/llama.cpp/models/templates/deepseek-ai-DeepSeek-V3.1.jinja")),
    ("Kimi-K2-Instruct.jinja", "DeepseekV3ForCausalLM", "moonshotai/Kimi-K2-Instruct",
     ("file", "vendor/llama.cpp/models/templates/Kimi-K2-Instruct.jinja")),
    ("openai-gpt-oss-120b.jinja", "GptOssForCausalLM", "openai/gpt-oss-120b",
     ("file", "vendor/llama.cpp/models/templates/openai-gpt-oss-120b.jinja")),
    ("ibm-granite-granite-3.0-8b-instruct.jinja", "GraniteMoeForCausalLM", "ibm-granite/granite-3.0-8b-instruct (the Granite 3.0 template; granite-3.0-1b-a400m / 3b-a800m are its MoE models)",
     ("cpp", "vendor/llama.cpp/tests/test-chat-template.cpp", "ibm-granite/granite-3.0-8b-instruct")),
    ("ibm-granite-granite-4.0.jinja", "GraniteMoeHybridForCausalLM", "ibm-granite/granite-4.0 (granite-4.0-h-tiny / h-small are MoE)",
     ("file", "vendor/llama.cpp/models/templates/ibm-granite-granite-4.0.jinja")),
    ("GLM-4.6.jinja", "Glm4MoeForCausalLM", "zai-org/GLM-4.6 (GLM-4.5's architecture)",
     ("file", "vendor/llama.cpp/models/templates/GLM-4.6.jinja")),
]


def cpp_string(body: str) -> str:
    """A C++ narrow string literal's contents (ASCII, simple escapes) as text."""
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "0": "\0"}
    while i < len(body):
        c = body[i]
        if c == "\\":
            nxt = body[i + 1]
            if nxt not in escapes:
                raise SystemExit(f"unhandled escape \\{nxt} in a C++ template string")
            out.append(escapes[nxt])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def read_template(sdist: Path, how) -> str:
    kind, rel, *rest = how
    text = (sdist / rel).read_bytes().decode("utf-8")
    if kind == "file":
        return text
    if kind == "python":
        for node in ast.parse(text).body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == rest[0] for t in node.targets):
                return ast.literal_eval(node.value)
        raise SystemExit(f"{rel}: no {rest[0]}")
    # The test case whose .name is rest[0]: its .template_str, one literal on one line.
    m = re.search(r'/\* \.name= \*/ "' + re.escape(rest[0]) + r'",\s*/\* \.template_str= \*/ (?:u8)?"((?:[^"\\\n]|\\.)*)",', text)
    if not m:
        raise SystemExit(f"{rel}: no test case {rest[0]!r} with a one-literal template")
    return cpp_string(m.group(1))


def ollama_choice(template: str, index: list) -> dict:
    best, score = None, None
    for entry in index:
        d = Levenshtein.distance(template, entry["template"])
        if score is None or d < score:
            best, score = entry["name"], d
    return {"ollama": best if score < 100 else None, "nearest": best, "distance": score}


def main() -> int:
    sdist = Path(sys.argv[1]).resolve()
    index_bytes = INDEX.read_bytes()
    index = json.loads(index_bytes)
    OUT.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, family, model, how in TEMPLATES:
        template = read_template(sdist, how)
        (OUT / name).write_bytes(template.encode("utf-8"))
        choice = ollama_choice(template, index)
        cases.append({"file": name, "family": family, "model": model, "source": f"llama-cpp-python 0.3.36: {how[1]}" + (f" ({how[2]})" if len(how) > 2 else ""), **choice})
        print(f"{name}: {choice}")
    expected = {"index_sha256": hashlib.sha256(index_bytes).hexdigest(), "templates": cases}
    (OUT / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
