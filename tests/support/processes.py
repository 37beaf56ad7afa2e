"""Docent's servers started as a user starts them, for tests that talk to them over the network."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.cli import DOCENT, environment_with
from support.net import free_port


@contextmanager
def api_process(home: Path, log_path: Path, **environment: str):
    """`docent api` on a free port of 127.0.0.1, up and answering; yields (process, base URL).
    environment: DOCENT_* settings for it."""
    port = free_port()
    env = environment_with(**environment)
    log = log_path.open("w+b")
    process = subprocess.Popen(
        [DOCENT, "--home", str(home), "api", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/health", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        else:
            log.seek(0)
            pytest.fail(f"docent api did not come up: {log.read().decode(errors='replace')[-2000:]}")
        yield process, base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
