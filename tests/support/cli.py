"""The `docent` command as a user runs it: a real process, with a home of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DOCENT = shutil.which("docent", path=str(Path(sys.executable).parent)) or shutil.which("docent")


def environment_with(**settings: str) -> dict[str, str]:
    """This process's environment without its own DOCENT_* settings, plus the given ones."""
    return {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")} | settings


def run(home: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    if DOCENT is None:
        pytest.fail("the docent console script is not installed next to this Python")
    env = environment_with(**(env or {}))
    result = subprocess.run([DOCENT, "--home", str(home), *args], capture_output=True, text=True, env=env, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"docent {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result
