"""bench/avx2_cpu.sh: a process shown an AVX2-only CPU on a CPU with AVX-512 (the engine's own
run-time dispatch is the witness), and a real crash inside it still a crash."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from retrieval.embed.cpu import cpu_flags

ROOT = Path(__file__).resolve().parents[1]
RUN = ROOT / "bench" / "avx2_cpu.sh"

pytestmark = [
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler to build bench/avx2_cpu.c"),
    pytest.mark.skipif("cpuid_fault" not in cpu_flags(), reason="this CPU or VM cannot trap cpuid (no cpuid_fault)"),
    pytest.mark.skipif("avx512f" not in cpu_flags(), reason="this CPU has no AVX-512 to hide"),
]


def _python(code: str, where: Path) -> subprocess.CompletedProcess:
    # cwd: the installed package, with its compiled engine, not the source tree's
    return subprocess.run(
        [str(RUN), sys.executable, "-c", code], cwd=where, capture_output=True, text=True, timeout=120
    )


def test_every_library_sees_avx2_only(tmp_path):
    from retrieval.index import _engine

    assert "avx512" in _engine.supported_simd_levels()  # unmasked, this process sees it
    shown = _python(
        "from retrieval.index import _engine as e; print(*e.supported_simd_levels()); print(e.simd_level())", tmp_path
    )
    assert shown.returncode == 0, shown.stderr
    levels, chosen = shown.stdout.split("\n")[:2]
    assert levels.split() == ["generic", "avx2"]
    assert chosen == "avx2"


def test_a_real_crash_still_crashes(tmp_path):
    crashed = _python("import ctypes; ctypes.string_at(0)", tmp_path)
    assert crashed.returncode == -signal.SIGSEGV
    reported = _python("import faulthandler, ctypes; faulthandler.enable(); ctypes.string_at(0)", tmp_path)
    assert reported.returncode == -signal.SIGSEGV
    assert "Segmentation fault" in reported.stderr  # Python's own handler, installed after the mask's, was called
