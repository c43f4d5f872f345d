#!/usr/bin/env bash
# Opt-in interop checks against the heavy reference tools (torch, transformers, peft, llama.cpp).
# Creates a separate venv (default ./.venv-full, or $CKPT_FULL_VENV) on first use; building
# llama-cpp-python compiles llama.cpp from source and takes a while.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
venv=${CKPT_FULL_VENV:-$root/.venv-full}
py=$venv/bin/python

if ! "$py" -c "import torch, safetensors, numpy, gguf" 2>/dev/null; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check torch safetensors numpy gguf
fi

cargo build --release --bin ckpt
ckpt=$root/target/release/ckpt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fx=$root/tests/fixtures/torch

echo "== torch.load(weights_only=True) of ckpt's .bin output"
pairs=()
for case in all_dtypes all_dtypes_legacy extra_dtypes parameters big_endian legacy_float8 shared_partial_views; do
  src=$fx/$case.bin
  # .bin -> .bin through safetensors, and safetensors -> .bin directly
  "$ckpt" convert -q "$src" "$work/$case.safetensors"
  "$ckpt" convert -q "$work/$case.safetensors" "$work/$case.bin"
  "$ckpt" convert -q "$fx/$case.expected.safetensors" "$work/$case.direct.bin"
  pairs+=("$work/$case.bin" "$fx/$case.expected.safetensors" "$work/$case.direct.bin" "$fx/$case.expected.safetensors")
done
"$ckpt" convert -q "$fx/training_checkpoint.pt" "$work/tc.bin" --to bin
pairs+=("$work/tc.bin" "$fx/training_checkpoint.expected-all.safetensors")
"$ckpt" convert -q "$fx/sharded" "$work/sharded-bin" --to bin --max-shard-size 24KB
for f in "$work"/sharded-bin/pytorch_model-*.bin; do
  shard=$(basename "$f" .bin)
  pairs+=("$f" "$fx/sharded.expected/${shard/pytorch_model/model}.safetensors")
done
"$py" scripts/interop/torch_load_check.py "${pairs[@]}"

echo "== llama.cpp (llama-cpp-python) loads ckpt's GGUF and generates the same greedy tokens"
if ! "$py" -c "import llama_cpp" 2>/dev/null; then
  # llama-cpp-python builds llama.cpp from source; a native build dies with an illegal instruction here.
  CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAMA_CURL=OFF" \
    "$venv/bin/pip" install --quiet llama-cpp-python==0.3.36
fi
gx=$root/tests/fixtures/gguf
cp -r "$gx/tiny-llama-spm" "$work/tiny-llama-spm"   # general.name comes from the folder name
"$ckpt" convert -q "$work/tiny-llama-spm" "$work/ours.f16.gguf" --outtype f16
"$ckpt" convert -q "$work/tiny-llama-spm" "$work/ours.q4km.gguf" --outtype q4_k_m --intermediate bf16
"$ckpt" convert -q "$gx/tiny-smol-bpe" "$work/ours.smol.gguf" --outtype f16
# Split GGUFs written by ckpt (convert, quantize, gguf-split): llama.cpp opens the first shard.
"$ckpt" convert -q "$work/tiny-llama-spm" "$work/split-f16.gguf" --outtype f16 --split-max-tensors 10
"$ckpt" quantize -q "$gx/tiny-llama-spm.f16.gguf" "$work/split-q4km.gguf" q4_k_m --split-max-size 1M
"$ckpt" gguf-split -q --split-max-tensors 7 "$gx/tiny-smol-bpe.f16.gguf" "$work/split-smol"
"$py" scripts/interop/llama_greedy.py \
  "$work/ours.f16.gguf" "$gx/tiny-llama-spm.f16.gguf" \
  "$work/ours.q4km.gguf" "$gx/tiny-llama-spm.Q4_K_M.gguf" \
  "$work/ours.smol.gguf" "$gx/tiny-smol-bpe.f16.gguf" \
  "$work/split-f16-00001-of-00004.gguf" "$gx/tiny-llama-spm.f16.gguf" \
  "$work/split-q4km-00001-of-00003.gguf" "$gx/tiny-llama-spm.Q4_K_M.gguf" \
  "$work/split-smol-00001-of-00003.gguf" "$gx/tiny-smol-bpe.f16.gguf"

echo "== transformers loads ckpt's GGUF -> Hugging Face export and gives llama.cpp's logits"
if ! "$py" -c "import transformers" 2>/dev/null; then
  "$venv/bin/pip" install --quiet transformers sentencepiece protobuf
fi
"$ckpt" convert -q "$gx/tiny-llama-spm.f16.gguf" "$work/export-spm"
"$ckpt" convert -q "$gx/tiny-llama-spm.Q4_K_M.gguf" "$work/export-q4km"
"$ckpt" convert -q "$gx/tiny-smol-bpe.f16.gguf" "$work/export-smol"
"$py" scripts/interop/export_logits.py \
  "$gx/tiny-llama-spm.f16.gguf" "$work/export-spm" \
  "$gx/tiny-llama-spm.Q4_K_M.gguf" "$work/export-q4km" \
  "$gx/tiny-smol-bpe.f16.gguf" "$work/export-smol"

echo "== GGUF -> Hugging Face export of every family: tensors bit-identical to the checkpoint, transformers gives its logits"
# The architecture matrix's tiny models; with CKPT_LLAMA_CPP_SRC the GGUF exported is the one
# convert_hf_to_gguf.py wrote. Families whose export is refused must say why and write nothing.
"$py" scripts/interop/export_matrix.py "$ckpt" ${CKPT_LLAMA_CPP_SRC:+--llama-cpp "$CKPT_LLAMA_CPP_SRC"}

echo "== EmbeddingGemma with its Dense modules: sentence-transformers encodes the exported folder as the original"
# tests/fixtures/dense-modules converted with --sentence-transformers-dense-modules (by the
# converter with CKPT_LLAMA_CPP_SRC) and exported back: SentenceTransformer(...).encode equal, f32 and f16.
if ! "$py" -c "import sentence_transformers" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check sentence-transformers
fi
"$py" scripts/interop/st_dense_check.py "$ckpt" ${CKPT_LLAMA_CPP_SRC:+--llama-cpp "$CKPT_LLAMA_CPP_SRC"}

echo "== convert_hf_to_gguf.py vs ckpt on tiny models of every supported architecture (byte-identical GGUF)"
# Needs the llama.cpp source tree whose converter ckpt follows (commit 0c1e57098, e.g.
# llama_cpp_python-0.3.36/vendor/llama.cpp from the PyPI sdist): convert_hf_to_gguf.py + gguf-py.
if [ -z "${CKPT_LLAMA_CPP_SRC:-}" ]; then
  echo "skipped: set CKPT_LLAMA_CPP_SRC to a llama.cpp source tree (with convert_hf_to_gguf.py) to run it"
else
  "$py" scripts/interop/arch_matrix.py "$ckpt" "$CKPT_LLAMA_CPP_SRC"
  # the arch-tables fixture cases (hy.tiktoken, nomic-bert-moe, ...) in bf16, q8_0 and f32
  "$py" scripts/interop/arch_tables_outtypes.py "$ckpt" "$CKPT_LLAMA_CPP_SRC"
fi

echo "== llama-mtmd-cli: ckpt's text GGUF + mmproj describe an image like the converter's pair (greedy)"
# LLAMA_MTMD_CLI: llama-mtmd-cli built from the same llama.cpp tree (see scripts/interop/mtmd_check.py).
if [ -z "${CKPT_LLAMA_CPP_SRC:-}" ] || [ -z "${LLAMA_MTMD_CLI:-}" ]; then
  echo "skipped: set CKPT_LLAMA_CPP_SRC and LLAMA_MTMD_CLI (a llama-mtmd-cli binary) to run it"
else
  "$py" scripts/interop/mtmd_check.py "$ckpt" "$CKPT_LLAMA_CPP_SRC" "$LLAMA_MTMD_CLI"
fi

echo "== LoRA adapters: convert_lora_to_gguf.py vs ckpt (byte-identical), llama.cpp applies both alike"
# Needs peft and the pinned llama.cpp source tree (convert_lora_to_gguf.py + gguf-py); LLAMA_CLI
# (llama.cpp's llama-cli, e.g. /work/llama-build/bin/llama-cli) adds a `llama-cli --lora` run.
if [ -z "${CKPT_LLAMA_CPP_SRC:-}" ]; then
  echo "skipped: set CKPT_LLAMA_CPP_SRC to a llama.cpp source tree (with convert_lora_to_gguf.py) to run it"
else
  if ! "$py" -c "import peft, transformers" 2>/dev/null; then
    "$venv/bin/pip" install --quiet --disable-pip-version-check peft transformers
  fi
  "$py" scripts/interop/lora_interop.py "$ckpt" "$CKPT_LLAMA_CPP_SRC" "$work/lora" ${LLAMA_CLI:+"$LLAMA_CLI"}
  # an all-linear adapter on the tiny model of every architecture of the matrix
  "$py" scripts/interop/lora_matrix.py "$ckpt" "$CKPT_LLAMA_CPP_SRC"
fi

echo "== ckpt merge-lora vs PEFT merge_and_unload() on every dense family's tiny model (all-linear adapters)"
if ! "$py" -c "import peft, transformers" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check peft transformers
fi
"$py" scripts/interop/merge_matrix.py "$ckpt"

echo "== pre-tokenizer fingerprint: transformers' AutoTokenizer.encode vs ckpt (stored truncation/padding off)"
if ! "$py" -c "import transformers, tokenizers" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check transformers tokenizers
fi
cargo build --release -p ckpt-model --example pre_fingerprint
roots=("$root/tests/fixtures")
[ -d "$root/../shared/fixtures" ] && roots+=("$root/../shared/fixtures")
"$py" scripts/interop/tokenizer_fingerprint.py "$root/target/release/examples/pre_fingerprint" "${roots[@]}"

echo "== the Python package: ckpt.load_file / ckpt.save_file against torch.load / torch.save"
if ! "$py" -c "import maturin, pytest, ml_dtypes" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "maturin==1.16.0" "pytest==9.0.2" "ml_dtypes==0.6.0"
fi
# Dev profile, as scripts/test.sh builds it (the editable install's extension is shared with ./.venv).
VIRTUAL_ENV="$venv" "$venv/bin/maturin" develop --locked -q -m crates/ckpt-py/Cargo.toml
cargo build -p ckpt-cli --locked
CKPT_BIN="$root/target/debug/ckpt" "$py" -m pytest -q -p no:cacheprovider crates/ckpt-py/tests/interop_torch.py
