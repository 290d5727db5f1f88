#!/usr/bin/env bash
# The GPU checks, in one device call: build the CUDA extension, run the GPU tests (tests/test_cuda_gpu.py, the
# CUDA cases of the backend suite tests/test_backend.py, and tests/test_cuda_host.py), then benchmarks/gpu.py.
# Logs, the tests' junit XML and gpu.json go to $OUT, which the device tool brings back; commit gpu.json as
# benchmarks/results/gpu.json (it names the GPU).
#
#   here first (no device time):  bash benchmarks/gpu_wheels.sh
#   then one device call:         command "bash benchmarks/gpu_check.sh", carry [".whl"], timeout_s 560
#
# BUDGET (seconds, default 540) bounds the whole script: each step gets what is left, the tests at most
# TESTS_S (default 240), so that the benchmark's partial output and every log still come back. --quick passes
# --quick to benchmarks/gpu.py. On a machine without a GPU the tests skip their CUDA cases and the benchmark
# exits with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
BUDGET=${BUDGET:-540}
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
QUICK=()
[ "${1:-}" = "--quick" ] && QUICK=(--quick)
left() { echo $((BUDGET - ($(date +%s) - START))); }
step() { printf '\n== %s (%s s in, load %s)\n' "$*" $(($(date +%s) - START)) "$(cut -d' ' -f1-3 /proc/loadavg)"; }
status=()

step environment
{
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv 2>&1
    nvcc --version 2>&1 | tail -1
    echo "cpus $(nproc)"
} | tee "$OUT/environment.txt"

if [ -d .whl ]; then
    step "install .whl"
    SITE=/tmp/blursynth-site
    rm -rf "$SITE"
    mkdir -p "$SITE"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        || exit 1
    for t in .whl/*.tar.xz; do
        [ -e "$t" ] && "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$t" "$SITE"
    done
    export PYTHONPATH=$SITE
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
"$PY" - <<'PY' 2>&1 | tee -a "$OUT/environment.txt" || exit 1
import sys
import cv2, numba, numpy, torch
import blursynth.commands  # noqa: F401  (every dependency of the CLI imports)
cv2.ximgproc  # the built-in source's segmenter
print("python", sys.version.split()[0], "| torch", torch.__version__, "cuda", torch.version.cuda,
      "|", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device",
      "| numpy", numpy.__version__, "numba", numba.__version__, "cv2", cv2.__version__)
PY

step "build the extension"
export BLURSYNTH_CUDA_CACHE=$PWD/.cuda-cache
timeout "$(left)" "$PY" -c "
import time; t = time.perf_counter()
from blursynth.cuda import unavailable_reason
r = unavailable_reason()
print('extension:', r or 'loads', '(%.0f s)' % (time.perf_counter() - t))
" 2>&1 | tee "$OUT/build.log"

step tests
t=$(left); [ "$t" -gt "${TESTS_S:-240}" ] && t=${TESTS_S:-240}
timeout "$t" "$PY" -m pytest -q -p no:cacheprovider -rs --junitxml="$OUT/tests.xml" tests/test_cuda_gpu.py \
    tests/test_backend.py tests/test_cuda_host.py > "$OUT/tests.log" 2>&1
status+=("tests: exit $?")
tail -n 30 "$OUT/tests.log"

step benchmarks/gpu.py
timeout "$(left)" "$PY" benchmarks/gpu.py "${QUICK[@]}" --out "$OUT/gpu.json" > "$OUT/gpu.log" 2>&1
status+=("benchmarks/gpu.py: exit $?")
tail -n 40 "$OUT/gpu.log"

step done
printf '%s\n' "${status[@]}" | tee "$OUT/status.txt"
