"""What every bench writes: its figures as JSON and a Markdown table under bench/results/,
with the CPU they were measured on."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from retrieval.embed.cpu import cpu_flags, cpu_model_name


# The features that decide which kernels run: the engine's SIMD level, OpenVINO's int8 and bf16.
FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")


def cpu_name() -> str:
    """The CPU's model, its core count and the features that decide its speed:
    "AMD EPYC, 2 cores (avx2 fma avx512f avx512_vnni avx512_bf16)"."""
    model = cpu_model_name() or "unknown CPU"
    flags = cpu_flags()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA")
    model += f", OpenVINO capped at {cap} (ONEDNN_MAX_CPU_ISA)" if cap else ""
    if "avx2_cpu" in os.environ.get("LD_PRELOAD", ""):  # bench/avx2_cpu.sh: cpuid answers without AVX-512
        model += ", shown to every library as AVX2-only (bench/avx2_cpu.sh)"
        flags = {f for f in flags if not f.startswith(("avx512", "avx_vnni", "amx"))}
    return f"{model}, {_cores()} cores ({' '.join(f for f in FEATURES if f in flags) or 'no AVX2'})"


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


class BusyCores:
    """How many cores the whole machine kept busy between start() and stop(), from /proc/stat
    (run a bench on an otherwise idle machine): 2.0 is both of two cores all the time."""

    def start(self) -> "BusyCores":
        self._first = _cpu_jiffies()
        return self

    def stop(self) -> float | None:
        last = _cpu_jiffies()
        if self._first is None or last is None:
            return None
        busy, total = last[0] - self._first[0], last[1] - self._first[1]
        return _cores() * busy / total if total else None


def per_query_ms(search, queries, warm_up: int = 20) -> float:
    """Mean milliseconds of `search(query)` asked one query at a time (a (1, d) array each), after
    `warm_up` unmeasured queries."""
    for q in queries[:warm_up]:
        search(q[None, :])
    started = time.perf_counter()
    for q in queries:
        search(q[None, :])
    return (time.perf_counter() - started) / len(queries) * 1e3


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot; idle and iowait are not busy."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def write_report(out: Path, stem: str, figures: dict, title: str, header: list[str], rows: list[list]) -> str:
    """Writes out/stem.json and out/stem.md (a title line and a table); returns the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(figures, indent=2))
    lines = [f"# {title}\n", "| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(text)
    return text
