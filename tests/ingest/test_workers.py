"""A killed ingest leaves nothing running: its file-parsing workers exit with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from support.cli import DOCENT
from support.pdfgen import make_manual


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_workers_exit_when_the_ingesting_process_is_killed(tmp_path):
    folder = tmp_path / "manuals"
    folder.mkdir()
    for n in range(16):
        (folder / f"manual-{n:02d}.pdf").write_bytes(make_manual(f"Manual {n}", 12))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    cli = subprocess.Popen(
        [DOCENT, "--home", str(tmp_path / "home"), "ingest", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline, workers = time.monotonic() + 120, set()
        while len(workers) < 2 and time.monotonic() < deadline and cli.poll() is None:
            # the two parsing workers (spawned Python processes), not the resource tracker
            workers = {
                p
                for p in children_of(cli.pid)
                if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text(errors="replace")
            }
            time.sleep(0.1)
        assert len(workers) == 2, "the ingest ended or never started its two file workers"
        cli.send_signal(signal.SIGKILL)
        cli.wait()
        deadline = time.monotonic() + 15
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not any(alive(p) for p in workers), "file workers lived on after their parent was killed"
    finally:
        cli.kill()
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_workers_read_scans_by_ocr_on_one_thread_each():
    from ingest import ocr
    from ingest.workers import file_workers

    with file_workers(1) as pool:  # two of them, and the embedding, share the cores
        assert pool.submit(eval, "__import__('ingest.ocr').ocr._threads").result() == 1
    assert ocr._threads == -1  # alone in a process, OCR takes every core
