#!/usr/bin/env bash
# Runs every fuzz target (cargo fuzz / libFuzzer) for SECONDS each (default 10) from seed corpora
# made of the test fixtures, and prints executions and findings per target. Exit status is
# non-zero if any target found a crash, a timeout or an out-of-memory.
#
#   scripts/fuzz.sh            # short smoke, as run by scripts/test.sh
#   scripts/fuzz.sh 3600       # an hour per target, by hand
#   scripts/fuzz.sh --runs 10000000 gguf_read pickle_scan   # a number of executions, chosen targets
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=10
runs=
if [ "${1:-}" = "--runs" ]; then
  runs=${2:?--runs needs a count}
  shift 2
elif [ $# -gt 0 ]; then
  seconds=$1
  shift
fi
only=("$@")
export RUSTC_BOOTSTRAP=1   # cargo fuzz needs nightly flags; the stable toolchain accepts them this way

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz" >&2
  cargo install --quiet --locked cargo-fuzz
fi

corpus=$root/fuzz/corpus
seed() {  # seed TARGET FILES...
  local dir=$corpus/$1; shift
  mkdir -p "$dir"
  for f in "$@"; do [ -f "$f" ] && cp -n "$f" "$dir/$(basename "$f")" 2>/dev/null || true; done
}
fx=$root/tests/fixtures
seed safetensors_header "$fx"/torch/*.safetensors "$fx"/lora/f32/base-llama/model.safetensors
seed torch_read "$fx"/torch/*.bin "$fx"/torch/*.pt
seed zip_parse "$fx"/torch/all_dtypes.bin "$fx"/torch/zip_deflate.bin "$fx"/torch/truncated_half.bin
seed gguf_read "$fx"/gguf/metadata-zoo/*.gguf "$fx"/gguf/split/*00003*.gguf
seed scan_content "$fx"/torch/*.bin "$fx"/torch/*.pt "$fx"/hostile/*.bin "$fx"/hostile/*.tar "$fx"/hostile/plain_pickle/*.bin
seed zip_layout "$fx"/torch/all_dtypes.bin "$fx"/torch/no_byteorder_record.bin "$fx"/hostile/zip_*.bin "$fx"/hostile/tar_*.tar
seed json_configs "$fx"/lora/f32/*/adapter/adapter_config.json "$fx"/torch/sharded/pytorch_model.bin.index.json
# Raw pickle streams: data.pkl of the zip fixtures.
mkdir -p "$corpus/pickle_scan"
for f in "$fx"/torch/*.bin; do
  python3 - "$f" "$corpus/pickle_scan" <<'PY' 2>/dev/null || true
import sys, zipfile, os
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(src) as z:
    for n in z.namelist():
        if n.endswith("data.pkl"):
            open(os.path.join(out, os.path.basename(src) + ".pkl"), "wb").write(z.read(n))
PY
done

targets=$(cd fuzz && cargo fuzz list)
if [ ${#only[@]} -gt 0 ]; then targets="${only[*]}"; fi
if [ -n "$runs" ]; then limit=(-runs="$runs"); else limit=(-max_total_time="$seconds"); fi
status=0
for t in $targets; do
  (cd fuzz && cargo fuzz build -O "$t" >/dev/null 2>&1) || { echo "$t: build failed"; status=1; continue; }
  log=$(mktemp)
  set +e
  (cd fuzz && cargo fuzz run -O "$t" "corpus/$t" -- "${limit[@]}" -rss_limit_mb=2048 \
      -malloc_limit_mb=1024 -timeout=10 -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  took=$(grep -o 'Done [0-9]* runs in [0-9]* second' "$log" | grep -o 'in [0-9]*' | grep -o '[0-9]*' || echo "$seconds")
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
  if [ $rc -eq 0 ]; then
    echo "$t: $execs executions in ${took}s, no findings"
  else
    echo "$t: FINDING after $execs executions (exit $rc); artifacts in fuzz/artifacts/$t"
    grep -E 'ERROR|panicked|SUMMARY' "$log" | head -5
    status=1
  fi
  rm -f "$log"
done
exit $status
