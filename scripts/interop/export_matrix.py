#!/usr/bin/env python3
"""GGUF -> Hugging Face export against transformers, on the architecture matrix's tiny models.

For every family the export supports, build the tiny random transformers model of
scripts/interop/arch_matrix.py (bf16 weights), convert it to a BF16 GGUF (with ckpt, or with
llama.cpp's convert_hf_to_gguf.py when --llama-cpp is given), export the GGUF back with
`ckpt convert MODEL.gguf OUT_DIR`, and check:

  (a) every tensor of the original checkpoint is in the export, under the same name, with the
      same shape and bit-identical values (norms and routers, which the converter stores as F32,
      are exported as F32 and must equal the bf16 values exactly); nothing else is exported.
      Dropped by the converter and so not expected: DeepSeek V3's multi-token-prediction layer,
      a tied lm_head. GLM-4.5's NextN layer is kept by the converter, so it is expected back.
  (b) transformers loads the exported folder (AutoModelForCausalLM, AutoModel for embedding
      models) and gives the same logits (hidden states) as the original model, in float32.

GPT-OSS as released (+mxfp4: experts stored as MXFP4 blocks/scales, which the GGUF keeps as
MXFP4 tensors): the export holds what transformers writes for that checkpoint loaded
dequantized (Mxfp4Config(dequantize=True), saved with save_pretrained): BF16 experts and no
quantization_config. (a) compares the export with that folder, bit for bit (the experts value
for value: transformers writes -0 for the code of negative zero, ggml +0); (b) compares
transformers' logits on the export with its logits on the original MXFP4 folder loaded
dequantized.

Families whose export is refused must fail with "cannot be exported" and write nothing.

usage: export_matrix.py CKPT_BINARY [--llama-cpp LLAMA_CPP_SRC] [--arch ARCH ...] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import arch_matrix  # noqa: E402  (build_model: the same tiny models as the conversion matrix)

EXPORTED = [
    "MistralForCausalLM",
    "Qwen2ForCausalLM",
    "Qwen3ForCausalLM",
    "GraniteForCausalLM",
    "SeedOssForCausalLM",
    "Ernie4_5_ForCausalLM",
    "Qwen3MoeForCausalLM",
    "Qwen2MoeForCausalLM",
    "MixtralForCausalLM",
    "OlmoeForCausalLM",
    "Ernie4_5_MoeForCausalLM",
    "DeepseekV2ForCausalLM",
    "DeepseekV3ForCausalLM",
    "GraniteMoeForCausalLM",
    "GraniteMoeSharedForCausalLM",
    "Olmo2ForCausalLM",
    "Olmo3ForCausalLM",
    "StableLmForCausalLM",
    "CohereForCausalLM",
    "Cohere2ForCausalLM",
    "Exaone4ForCausalLM",
    "Glm4ForCausalLM",
    "Glm4ForCausalLM+mrope",
    "Lfm2ForCausalLM",
    "GptOssForCausalLM",
    "GptOssForCausalLM+mxfp4",
    "GptOssForCausalLM+wide+mxfp4",
    "Glm4MoeForCausalLM",
    "Llama4ForCausalLM",
    "ApertusForCausalLM",
    "SmolLM3ForCausalLM",
    "HunYuanDenseV1ForCausalLM",
    "HunYuanDenseV1ForCausalLM+ropescale",
    "Qwen3Model",
    "ModernBertModel",
    "Gemma3TextModel",
]
REFUSED = [
    "NomicBertModel",
    "XLMRobertaModel",
]
EMBEDDING = {"Qwen3Model", "ModernBertModel", "Gemma3TextModel"}
# Multi-token-prediction layers (past num_hidden_layers) the converter keeps in the GGUF.
KEEPS_MTP = {"Glm4MoeForCausalLM"}
# What llama.cpp's graph does that the GGUF does not record, set in the original's config.json
# before converting so both sides compute the same thing (the released models have it): Qwen 3
# MoE renormalises the chosen experts' weights; EmbeddingGemma scales queries by 1/sqrt(head_dim)
# (query_pre_attn_scalar = head_dim, 256 in the released model; transformers' default is 256
# whatever the head size); SmolLM3 skips rope on every 4th layer (llama.cpp's fixed pattern, the
# released model's).
CONFIG_AS_RELEASED = {
    "Qwen3MoeForCausalLM": {"norm_topk_prob": True},
    "SmolLM3ForCausalLM": {"no_rope_layers": [int((i + 1) % 4 != 0) for i in range(arch_matrix.LAYERS)]},
    "Gemma3TextModel": {"query_pre_attn_scalar": arch_matrix.HIDDEN // arch_matrix.HEADS},
}


def run(cmd: list[str], env: dict | None = None) -> tuple[int, str]:
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace", env=env)
    return p.returncode, p.stdout


def load_folder(folder: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(folder.glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


def to_gguf(ckpt: str, llama_cpp: Path | None, arch: str, model: Path, out: Path) -> tuple[int, str]:
    # Tiny vocabularies whose pre-tokenizer fingerprint llama.cpp cannot know (see arch_matrix.py).
    pre = arch_matrix.FALLBACK_PRE.get(arch)
    if llama_cpp is None:
        return run([ckpt, "convert", "-q", str(model), str(out), "--outtype", "bf16", "--force"] + (["--pre-tokenizer", pre] if pre else []))
    return arch_matrix.run_converter(sys.executable, llama_cpp, model, "bf16", out, pre)


def compare_tensors(arch: str, original: dict, exported: dict, config: dict) -> list[str]:
    import torch

    # Dequantized MXFP4 experts: ggml's E2M1 table has no -0 where transformers' has one, so
    # they are compared value for value (the sign of zero aside), everything else bit for bit.
    by_value = ("mlp.experts.gate_up_proj", "mlp.experts.down_proj") if is_mxfp4(arch) else ()

    problems = []
    layers = config.get("num_hidden_layers")
    tied = config.get("tie_word_embeddings", False)
    expected = set()
    for name, t in original.items():
        parts = name.split(".")
        block = next((int(p) for p in parts if p.isdigit()), None)
        if arch not in KEEPS_MTP and name.startswith("model.layers.") and layers is not None and block is not None and block >= layers:
            continue  # multi-token-prediction layer, skipped by the converter
        if tied and name == "lm_head.weight":
            continue
        expected.add(name)
        e = exported.get(name)
        if e is None:
            problems.append(f"{name}: not exported")
            continue
        if tuple(e.shape) != tuple(t.shape):
            problems.append(f"{name}: shape {tuple(e.shape)}, original {tuple(t.shape)}")
            continue
        if name.endswith(by_value) and e.dtype == t.dtype:
            same = torch.equal(e.float(), t.float())
        elif e.dtype == t.dtype:
            same = torch.equal(e.view(torch.int16) if e.dtype == torch.bfloat16 else e, t.view(torch.int16) if t.dtype == torch.bfloat16 else t)
        else:
            # kept F32 by the converter: the f32 values must be the bf16 ones exactly
            same = torch.equal(e.float(), t.float()) and torch.equal(e.to(t.dtype).float(), e.float())
        if not same:
            d = (e.float() - t.float()).abs().max().item()
            problems.append(f"{name}: values differ ({e.dtype} vs {t.dtype}, max |diff| {d:g})")
    extra = sorted(set(exported) - expected)
    if extra:
        problems.append(f"exported tensors the checkpoint does not have: {extra[:5]}")
    return problems


def is_mxfp4(arch: str) -> bool:
    return "mxfp4" in arch.split("+")[1:]


def dequantized_folder(model: Path, dst: Path) -> Path:
    """The MXFP4 checkpoint as transformers writes it once dequantized (BF16 experts)."""
    import torch
    import transformers as tf

    m = tf.AutoModelForCausalLM.from_pretrained(str(model), quantization_config=tf.Mxfp4Config(dequantize=True), dtype=torch.bfloat16)
    if dst.exists():
        shutil.rmtree(dst)
    m.save_pretrained(str(dst))
    return dst


def outputs(folder: Path, embedding: bool, dequantize_mxfp4: bool = False):
    import torch
    import transformers as tf

    cls = tf.AutoModel if embedding else tf.AutoModelForCausalLM
    extra = {"quantization_config": tf.Mxfp4Config(dequantize=True)} if dequantize_mxfp4 else {}
    model = cls.from_pretrained(str(folder), dtype=torch.float32, **extra).eval()
    ids = torch.tensor([[5, 17, 3, 99, 42, 7, 250, 11, 64, 2]])
    with torch.no_grad():
        out = model(ids)
    return (out.last_hidden_state if embedding else out.logits)[0].float()


def check(arch: str, ckpt: str, llama_cpp: Path | None, work: Path) -> tuple[bool, str]:
    model = work / f"tiny-{arch}"
    if model.exists():
        shutil.rmtree(model)
    arch_matrix.build_model(arch, model)
    cfg_path = model / "config.json"
    cfg = json.loads(cfg_path.read_text())
    if arch in CONFIG_AS_RELEASED:
        cfg.update(CONFIG_AS_RELEASED[arch])
        cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    gguf = work / f"{arch}.bf16.gguf"
    rc, log = to_gguf(ckpt, llama_cpp, arch, model, gguf)
    if rc != 0:
        return False, f"HF -> GGUF failed (exit {rc}): {log.strip()[-400:]}"
    out = work / f"{arch}-export"
    rc, log = run([ckpt, "convert", "-q", str(gguf), str(out), "--force"])
    if arch in REFUSED:
        if rc != 0 and "cannot be exported" in log and not out.exists():
            why = log.strip().splitlines()[-1]
            return True, f"refused: {why[why.find('cannot be exported'):][:150]}"
        return False, f"expected a refusal, got exit {rc}: {log.strip()[-300:]}"
    if rc != 0:
        return False, f"export failed (exit {rc}): {log.strip()[-400:]}"
    mx = is_mxfp4(arch)
    original = dequantized_folder(model, work / f"tiny-{arch}-dequantized") if mx else model
    if mx:
        exported_cfg = json.loads((out / "config.json").read_text())
        if "quantization_config" in exported_cfg:
            return False, "the export of dequantized MXFP4 experts keeps quantization_config"
    problems = compare_tensors(arch, load_folder(original), load_folder(out), cfg)
    if problems:
        return False, "tensors: " + "; ".join(problems[:6])
    ref = outputs(model, arch in EMBEDDING, dequantize_mxfp4=mx)
    ours = outputs(out, arch in EMBEDDING)
    if ref.shape != ours.shape:
        return False, f"output shape {tuple(ours.shape)}, original {tuple(ref.shape)}"
    diff = (ref - ours).abs().max().item()
    scale = max(1.0, ref.abs().max().item())
    what = "hidden states" if arch in EMBEDDING else "logits"
    if diff > 1e-5 * scale:
        return False, f"{what} differ: max |diff| {diff:g} (largest |value| {scale:g})"
    n = len(load_folder(out))
    if mx:
        return True, f"{n} tensors identical (MXFP4 experts value for value, the rest bit for bit), {what} max |diff| {diff:g} against the MXFP4 original loaded dequantized"
    return True, f"{n} tensors bit-identical, {what} max |diff| {diff:g}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("ckpt", help="path to the ckpt binary")
    ap.add_argument("--llama-cpp", type=Path, help="export convert_hf_to_gguf.py's GGUF (llama.cpp source tree) instead of ckpt's")
    ap.add_argument("--arch", action="append", help="only these architectures (repeatable)")
    ap.add_argument("--keep", type=Path, help="keep the models, GGUFs and exports in this folder")
    args = ap.parse_args()
    ckpt = str(Path(args.ckpt).resolve())
    llama_cpp = args.llama_cpp.resolve() if args.llama_cpp else None
    if llama_cpp is not None:
        sys.path.insert(0, str(llama_cpp / "gguf-py"))
    archs = args.arch or (EXPORTED + REFUSED)
    work = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="ckpt-export-matrix-"))
    work.mkdir(parents=True, exist_ok=True)
    failures = []
    try:
        for arch in archs:
            try:
                ok, msg = check(arch, ckpt, llama_cpp, work)
            except Exception as e:  # noqa: BLE001
                ok, msg = False, f"{type(e).__name__}: {e}"
            print(f"{'ok' if ok else 'FAIL'} {arch}: {msg}", flush=True)
            if not ok:
                failures.append(arch)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"export matrix: {len(archs) - len(failures)} of {len(archs)} as expected")
    if failures:
        print("failed: " + ", ".join(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
