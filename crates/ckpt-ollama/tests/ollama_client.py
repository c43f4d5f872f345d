"""Drives a ckpt-ollama server with the official `ollama` Python client.

Usage: python ollama_client.py HOST GGUF_PATH
Prints one JSON object with what the client saw; the Rust test checks it.
"""
import json
import sys

import ollama

host, gguf = sys.argv[1], sys.argv[2]
client = ollama.Client(host=host)
out = {}

digest = client.create_blob(gguf)
out["digest"] = digest

progress = [
    p.status
    for p in client.create(
        model="py-model",
        files={"model.gguf": digest},
        template="{{ .System }}\nUSER: {{ .Prompt }}\nASSISTANT:",
        system="You answer in one word.",
        parameters={"stop": ["USER:", "</s>"], "temperature": 0.3, "num_ctx": 2048},
        stream=True,
    )
]
out["progress"] = progress
out["create_nostream"] = client.create(model="py-model-2", files={"model.gguf": digest}, stream=False).status

listed = client.list()
out["list"] = sorted(
    [{"model": m.model, "digest": m.digest, "size": m.size, "family": m.details.family, "format": m.details.format,
      "quantization": m.details.quantization_level, "has_time": m.modified_at is not None} for m in listed.models],
    key=lambda m: m["model"],
)

shown = client.show("py-model")
out["show"] = {
    "modelfile": shown.modelfile,
    "parameters": shown.parameters,
    "template": shown.template,
    "family": shown.details.family,
    "capabilities": list(shown.capabilities or []),
    "arch": (shown.modelinfo or {}).get("general.architecture"),
}

out["copy"] = client.copy("py-model", "py-copy:v2").status
out["after_copy"] = sorted(m.model for m in client.list().models)
out["delete"] = client.delete("py-model").status
out["after_delete"] = sorted(m.model for m in client.list().models)
try:
    client.show("py-model")
    out["show_deleted"] = None
except ollama.ResponseError as e:
    out["show_deleted"] = [e.status_code, e.error]
try:
    client.generate(model="py-copy:v2", prompt="hi")
    out["generate"] = None
except ollama.ResponseError as e:
    out["generate"] = [e.status_code, e.error]

print(json.dumps(out))
