#!/usr/bin/env bash
# Runs every test: the Rust suite (unit, integration, CLI) plus interop checks against the real
# Python packages (safetensors, gguf-py, numpy, huggingface_hub, ollama, picklescan), which it installs into ./.venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c "import safetensors, gguf, numpy, huggingface_hub, ollama, picklescan" 2>/dev/null; then
  echo "setting up $venv (safetensors, gguf, numpy, huggingface_hub, ollama, picklescan) for interop tests" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "safetensors==0.8.0" "gguf==0.19.0" "numpy>=2,<3" "huggingface_hub>=1,<3" "ollama" "picklescan==1.0.5"
fi
export CKPT_PYTHON="$PWD/$venv/bin/python"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Gates: formatting and lints (warnings are errors).
cargo fmt --all --check || { echo "cargo fmt --check failed: run cargo fmt --all" >&2; status=1; }
cargo clippy --workspace --all-targets --locked -- -D warnings || status=1
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=1

# A short smoke of every fuzz target (longer runs by hand: scripts/fuzz.sh 3600).
if [ "${CKPT_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh "${CKPT_FUZZ_SECONDS:-8}" || status=1
fi

# One closing line over every test binary.
passed=$(grep -o '[0-9]* passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "summary: $passed passed, $failed failed"
exit $status
