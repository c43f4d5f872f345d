#!/usr/bin/env bash
# Runs every test: the Rust suite (unit, integration, CLI) plus interop checks against the real
# Python packages (safetensors, gguf-py, numpy, huggingface_hub, ollama, picklescan, tqdm), which it installs into ./.venv when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv
if ! "$venv/bin/python" -c "import safetensors, gguf, numpy, huggingface_hub, ollama, picklescan, maturin, pytest, ml_dtypes, tqdm" 2>/dev/null; then
  echo "setting up $venv (safetensors, gguf, numpy, huggingface_hub, ollama, picklescan, maturin, pytest, ml_dtypes, tqdm) for interop and Python tests" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "safetensors==0.8.0" "gguf==0.19.0" "numpy>=2,<3" "huggingface_hub>=1,<3" "ollama" "picklescan==1.0.5" \
    "maturin==1.16.0" "pytest==9.0.2" "ml_dtypes==0.6.0" "tqdm==4.70.1"
fi
# The Ray recipe test (crates/ckpt-py/tests/test_batch.py) runs when ray installs (~70 MB wheel);
# CKPT_SKIP_RAY=1 leaves it out (the test is then skipped, not failed).
if [ "${CKPT_SKIP_RAY:-0}" != 1 ] && ! "$venv/bin/python" -c "import ray" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check "ray==2.60.0" \
    || echo "ray did not install: the Ray recipe test will be skipped" >&2
fi
export CKPT_PYTHON="$PWD/$venv/bin/python"

# A clean run gains nothing from incremental caches (~3 GB on disk); a developer can still set it.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# MSRV: README.md states the workspace's rust-version, no locked dependency needs a newer Rust,
# and the workspace's own code uses no std API newer than it (a table of the recent ones it uses
# or might). Only one toolchain exists here, so this stands in for building with that version.
msrv_check() {
  local msrv
  msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
  if [ -z "$msrv" ]; then echo "MSRV: no rust-version in Cargo.toml" >&2; return 1; fi
  if ! grep -q "Needs Rust $msrv or newer" README.md; then
    echo "MSRV: README.md does not say 'Needs Rust $msrv or newer' (Cargo.toml's rust-version)" >&2
    return 1
  fi
  cargo metadata --locked --format-version 1 | "$CKPT_PYTHON" -c '
import json, pathlib, re, sys
msrv = sys.argv[1]
def v(s):
    return tuple(int(x) for x in (s.split(".") + ["0", "0"])[:3])
bad = []
for p in json.load(sys.stdin)["packages"]:
    rv = p.get("rust_version")
    if rv and v(rv) > v(msrv):
        bad.append(p["name"] + " " + p["version"] + " needs Rust " + rv)
# std APIs stabilised after 1.80, by the release that stabilised them.
apis = {r"\.is_none_or\(": "1.82", r"\.repeat_n\(|iter::repeat_n\(": "1.82", r"\.isqrt\(": "1.84",
        r"\.get_disjoint_mut\(": "1.86", r"\.pop_if\(": "1.86", r"\.is_multiple_of\(": "1.87",
        r"\.extract_if\(": "1.87", r"\.cast_signed\(|\.cast_unsigned\(": "1.87",
        r"\.unbounded_sh[lr]\(": "1.87", r"\.as_chunks\(|\.as_rchunks\(": "1.88",
        r"hint::select_unpredictable": "1.88", r"File::lock\b|\.try_lock_shared\(": "1.89"}
for f in sorted(pathlib.Path("crates").rglob("*.rs")):
    text = f.read_text(errors="replace")
    for pat, rv in apis.items():
        if v(rv) > v(msrv) and re.search(pat, text):
            bad.append(f"{f} uses {pat} (Rust {rv})")
for b in bad:
    print(f"MSRV {msrv} exceeded: {b}", file=sys.stderr)
sys.exit(1 if bad else 0)
' "$msrv"
}
msrv_check || status=1

# Gates: formatting and lints (warnings are errors).
cargo fmt --all --check || { echo "cargo fmt --check failed: run cargo fmt --all" >&2; status=1; }
cargo clippy --workspace --all-targets --locked -- -D warnings || status=1
# The docs (missing_docs is on in each library crate): no broken or private intra-doc links.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked \
  || { echo "cargo doc: the library docs have warnings" >&2; status=1; }
# Every target is built once with one feature set: the binaries the Python tests run below
# (target/debug/ckpt, target/debug/ckpt-testhub) come from this build, not from a second one
# with the features resolved differently.
cargo build --workspace --all-targets --locked || status=1
cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log" || status=1

# A short smoke of every fuzz target (longer runs by hand: scripts/fuzz.sh 3600).
if [ "${CKPT_SKIP_FUZZ:-0}" != 1 ]; then
  scripts/fuzz.sh "${CKPT_FUZZ_SECONDS:-8}" || status=1
fi

# The Python package (crates/ckpt-py): built into the venv in the dev profile (maturin develop:
# an editable install, rebuilt only when the Rust changed) and tested with pytest against the
# ckpt binary's output and the reference Python libraries; pull/push/remote inspect against the
# fake Hub of crate ckpt-testhub run as a process (its ckpt-testhub binary).
py_tests() {
  cargo build --workspace --all-targets --locked || return 1
  VIRTUAL_ENV="$PWD/$venv" "$venv/bin/maturin" develop --locked -q -m crates/ckpt-py/Cargo.toml || return 1
  CKPT_BIN="$PWD/target/debug/ckpt" CKPT_TESTHUB_BIN="$PWD/target/debug/ckpt-testhub" \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider crates/ckpt-py/tests
}
if [ "${CKPT_SKIP_PY:-0}" != 1 ]; then
  py_tests 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" = 0 ] || status=1
fi

# One closing line over every test binary (and pytest's "N passed, M failed").
passed=$(grep -o '[0-9]* passed' "$log" | awk '{s += $1} END {print s + 0}')
failed=$(grep -o '[0-9]* failed' "$log" | awk '{s += $1} END {print s + 0}')
echo "summary: $passed passed, $failed failed"
exit $status
