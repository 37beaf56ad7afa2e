#!/usr/bin/env bash
# The one prepared run for a machine with an NVIDIA GPU (the device tool's H200, whose image has
# Python with numpy, torch, pybind11, scikit-build-core, CMake, nvcc and pytest, and no network):
#   1. builds Docent with its GPU engine into /tmp/docent-site (no dependencies fetched),
#   2. runs the GPU tests (the engine against numpy and the CPU engine; the app's GPU search),
#   3. runs bench/gpu_bench.py (1,000,000 x 384, 1,024 queries, against torch on the same GPU).
# Everything it prints, and the benchmark's tables, go to $OUT (default bench/results).
#
# The app's GPU-search test imports the ingest package, which needs pypdf (pure Python, not in
# that image). Before the run, here:  echo /.whl/ >> .git/info/exclude;
#   python3 -m pip download --no-deps -d .whl pypdf
# and name .whl in the device tool's carry. Without it that test file is left out, saying so.
#
#   bash bench/gpu_check.sh            # or: make gpu-check
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/results}
mkdir -p "$OUT"
PY=${PYTHON:-python3}  # run with -P below: the source tree (no compiled engine) must not shadow the build
SITE=/tmp/docent-site
log() { echo "== $*" | tee -a "$OUT/gpu-check.log"; }

log "$(date -u +%FT%TZ) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee -a "$OUT/gpu-check.log"

log "build (CUDA architecture 90 only, to save time)"
started=$(date +%s)
if ! $PY -m pip install -q --no-deps --no-build-isolation --no-index --target "$SITE" --upgrade \
        --config-settings=cmake.define.CMAKE_CUDA_ARCHITECTURES=90 --config-settings=build-dir=/tmp/docent-build . \
        >"$OUT/gpu-build.log" 2>&1; then
    tail -40 "$OUT/gpu-build.log"
    log "the build failed (whole log: gpu-build.log)"
    exit 1
fi
log "built in $(( $(date +%s) - started )) s"
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --target "$SITE" .whl/*.whl
fi
export PYTHONPATH="$SITE" PYTHONUNBUFFERED=1
$PY -P -c "from retrieval.index import gpu; print('GPU engine:', gpu.unavailable_reason() or gpu.devices())" 2>&1 | tee -a "$OUT/gpu-check.log"

tests=(tests/gpu/test_gpu.py)
if $PY -c "import pypdf" 2>/dev/null; then
    tests+=(tests/gpu/test_gpu_search.py)
else
    log "tests/gpu/test_gpu_search.py left out: pypdf is not installed (carry it in .whl, see this script's header)"
fi
log "GPU tests: ${tests[*]}"
# --noconftest: the shared fixtures need packages (the embedding model, PDF tools) that the GPU
# tests do not use and that machine does not have.
$PY -P -m pytest -q -rs --noconftest -p no:cacheprovider "${tests[@]}" 2>&1 | tee "$OUT/gpu-tests.log"
tests_status=${PIPESTATUS[0]}
log "GPU tests exit status: $tests_status"

log "benchmark"
$PY bench/gpu_bench.py "$@" 2>&1 | tee "$OUT/gpu-bench.log"
bench_status=${PIPESTATUS[0]}
[ -f bench/results/gpu.md ] && [ "$OUT" != bench/results ] && cp bench/results/gpu.md bench/results/gpu.json "$OUT/"
log "benchmark exit status: $bench_status"
exit $(( tests_status || bench_status ))
