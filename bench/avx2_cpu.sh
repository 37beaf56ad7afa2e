#!/usr/bin/env bash
# Runs a command as on an AVX2-only CPU (see avx2_cpu.c): bench/avx2_cpu.sh python bench/embed_bench.py ...
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
lib="$here/../build/avx2_cpu.so"
if [[ ! -f "$lib" || "$here/avx2_cpu.c" -nt "$lib" ]]; then
  mkdir -p "$(dirname "$lib")"
  cc -O2 -shared -fPIC -o "$lib" "$here/avx2_cpu.c" -ldl
fi
LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"
