"""What this CPU does fast, as far as the embedding model's precision goes: bf16 products (AVX-512
BF16, AMX) and exact int8 products (VNNI, AMX).

OpenVINO's kernels come from oneDNN, which honours ONEDNN_MAX_CPU_ISA: set to AVX2, an AVX-512
machine runs the kernels of an AVX2-only server (no bf16, int8 products without VNNI). The
features read here are capped the same way, so that Docent chooses what such a server needs,
and the test suite exercises those paths on any machine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# oneDNN's ISA names, weakest first (its CPU ISA hints; AVX10 and later are above AMX).
_ISA_ORDER = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
)
_VNNI = {"avx512_vnni": "AVX512_CORE_VNNI", "avx_vnni": "AVX2_VNNI", "amx_int8": "AVX512_CORE_AMX"}
_BF16 = {"avx512_bf16": "AVX512_CORE_BF16", "amx_bf16": "AVX512_CORE_AMX"}


@dataclass(frozen=True)
class CpuPrecision:
    vnni: bool  # int8 products summed exactly in 32 bits
    bf16: bool  # bf16 products in hardware
    capped_at: str | None  # ONEDNN_MAX_CPU_ISA, when set

    @property
    def float_precision(self) -> str:
        """OpenVINO's inference precision for the float model: bf16 where the CPU has it."""
        return "bf16" if self.bf16 else "f32"

    def describe(self) -> str:
        cap = f", capped at {self.capped_at} by ONEDNN_MAX_CPU_ISA" if self.capped_at else ""
        return (
            f"this CPU has {'VNNI' if self.vnni else 'no VNNI'} (int8 products"
            f" {'exact' if self.vnni else 'with 16-bit intermediate sums'}) and"
            f" {'bf16' if self.bf16 else 'no bf16'}{cap}"
        )


def cpu_precision() -> CpuPrecision:
    flags = cpu_flags()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper() or None
    allowed = (lambda isa: True) if cap not in _ISA_ORDER else (lambda isa: _rank(isa) <= _rank(cap))
    return CpuPrecision(
        vnni=any(flag in flags and allowed(isa) for flag, isa in _VNNI.items()),
        bf16=any(flag in flags and allowed(isa) for flag, isa in _BF16.items()),
        capped_at=cap,
    )


def _rank(isa: str) -> int:
    return _ISA_ORDER.index(isa)


def cpu_model_name() -> str:
    """The CPU's model as /proc/cpuinfo names it ("" where it cannot be read)."""
    return _cpuinfo_field("model name")


def cpu_flags() -> set[str]:
    """The CPU's feature flags as /proc/cpuinfo lists them (empty where it cannot be read)."""
    return set(_cpuinfo_field("flags").split())


def _cpuinfo_field(name: str) -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
