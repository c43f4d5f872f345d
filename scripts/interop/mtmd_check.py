#!/usr/bin/env python3
"""llama.cpp's multimodal tooling on ckpt's vision-language GGUFs.

For each vision architecture below, build a tiny random model (scripts/gen-vision-fixtures.py's
build_vision), convert it with the pinned convert_hf_to_gguf.py (text model, then --mmproj) and
with one `ckpt convert --mmproj` run, then let `llama-mtmd-cli` describe the same test image
(tools/mtmd/test-1.jpeg of the llama.cpp tree) with each pair of files, greedy. Both runs must
succeed, encode the image, and print the same text; "ok ARCH" otherwise "FAIL ARCH" and a
nonzero exit at the end.

usage: mtmd_check.py CKPT_BINARY LLAMA_CPP_SRC LLAMA_MTMD_CLI [--arch ARCH ...] [--keep DIR]

LLAMA_MTMD_CLI is built from the same llama.cpp tree, e.g.
  cmake -S LLAMA_CPP_SRC -B build-mtmd -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
  cmake --build build-mtmd --target llama-mtmd-cli
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# Architecture -> the chat template llama-mtmd-cli is given (the tiny tokenizers carry none).
# Not here: the tiny Qwen3-VL, SmolVLM and Mistral 3 models, whose converter-written files
# already fail in llama-mtmd-cli (a ggml shape assertion in the DeepStack graph; an abort after
# the image slices are encoded; an exit right after the projector is loaded), so they cannot
# serve as a reference. Nor can the tiny Llama 4 and Qwen3-VL-MoE models: llama-mtmd-cli (the
# pinned 0.3.36 tree) stops on a ggml assertion with the converter's own pair (ggml_can_mul_mat
# for Llama 4, ggml_can_repeat for Qwen3-VL-MoE), before any image is encoded.
CASES = {
    "Gemma3ForConditionalGeneration": "gemma",
    "Qwen2_5_VLForConditionalGeneration": "chatml",
    "Qwen2VLForConditionalGeneration": "chatml",
}


def builder():
    spec = importlib.util.spec_from_file_location("gen_vision_fixtures", ROOT / "scripts" / "gen-vision-fixtures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(cmd: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, errors="replace")


def describe(cli: str, model: Path, mmproj: Path, image: Path, template: str) -> tuple[bool, str, str]:
    """(success, generated text, log tail) of one greedy llama-mtmd-cli run."""
    p = run([cli, "-m", str(model), "--mmproj", str(mmproj), "--image", str(image), "-p", "Describe the image.",
             "-n", "12", "--temp", "0", "--seed", "1", "-t", "2", "--chat-template", template, "--image-max-tokens", "16"])
    tail = " | ".join(p.stderr.strip().splitlines()[-4:])
    encoded = "batch encoding done" in p.stderr or "image slice encoded" in p.stderr
    return p.returncode == 0 and encoded, p.stdout, tail


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ckpt")
    ap.add_argument("llama_cpp")
    ap.add_argument("mtmd_cli")
    ap.add_argument("--arch", action="append", choices=sorted(CASES))
    ap.add_argument("--keep", type=Path)
    args = ap.parse_args()
    src = Path(args.llama_cpp).resolve()
    image = src / "tools" / "mtmd" / "test-1.jpeg"
    work = args.keep or Path(tempfile.mkdtemp(prefix="ckpt-mtmd-"))
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(src / "gguf-py"))
    failures = []
    gen = builder()
    for arch in args.arch or list(CASES):
        model = work / f"tiny-{arch}"
        if model.exists():
            shutil.rmtree(model)
        gen.build_vision(arch, model, small=False)
        files = {}
        for who in ("converter", "ckpt"):
            files[who] = (work / f"{arch}.{who}.gguf", work / f"mmproj-{arch}.{who}.gguf")
        conv = [sys.executable, str(src / "convert_hf_to_gguf.py"), str(model), "--outtype", "f16", "--outfile"]
        steps = [
            conv + [str(files["converter"][0])],
            conv + [str(files["converter"][1]), "--mmproj"],
            [args.ckpt, "convert", "-q", str(model), str(files["ckpt"][0]), "--to", "gguf", "--outtype", "f16",
             "--mmproj", str(files["ckpt"][1]), "--force"],
        ]
        problem = None
        for cmd in steps:
            p = run(cmd, env)
            if p.returncode != 0:
                problem = f"{Path(cmd[1]).name if cmd[0] == sys.executable else 'ckpt'} failed: " + " | ".join(p.stderr.strip().splitlines()[-3:])
                break
        outputs = {}
        if problem is None:
            for who, (text, mmproj) in files.items():
                ok, out, tail = describe(args.mtmd_cli, text, mmproj, image, CASES[arch])
                if not ok:
                    problem = f"llama-mtmd-cli on the {who} files failed or encoded no image: {tail}"
                    break
                outputs[who] = out
        if problem is None and outputs["ckpt"] != outputs["converter"]:
            # The same pair of files run again: llama-mtmd-cli is not always deterministic on these
            # tiny models (Gemma 3's, even with one thread); then the comparison says nothing.
            text, mmproj = files["converter"]
            ok, again, _ = describe(args.mtmd_cli, text, mmproj, image, CASES[arch])
            if ok and again != outputs["converter"]:
                same = all(files["ckpt"][i].read_bytes() == files["converter"][i].read_bytes() for i in (0, 1))
                print(f"SKIP {arch}: llama-mtmd-cli gives different text for the converter's own pair on two runs "
                      f"({outputs['converter']!r}, then {again!r}); ckpt's files are "
                      f"{'byte-identical to' if same else 'NOT identical to'} the converter's")
                if not same:
                    failures.append(arch)
                continue
            problem = f"different output: ckpt {outputs['ckpt']!r} vs converter {outputs['converter']!r}"
        if problem is None and not outputs["ckpt"].strip():
            problem = "no text generated"
        if problem:
            failures.append(arch)
            print(f"FAIL {arch}: {problem}")
        else:
            print(f"ok {arch}: both pairs load, encode the image and generate {outputs['ckpt'].strip()!r}")
        if not args.keep:
            shutil.rmtree(model, ignore_errors=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    print(f"mtmd check: {len(args.arch or CASES) - len(failures)} of {len(args.arch or CASES)} identical")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
