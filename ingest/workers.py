"""The worker processes that parse files ahead of the embedding (OCR on one thread each), and
their tie to the process that started them: a worker whose parent is gone (killed with
SIGKILL, or crashed) exits within a second instead of living on under PID 1, holding memory
and an open file."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

PARENT_CHECK_SECONDS = 0.5


def file_workers(count: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent holds model threads that a forked child would inherit broken.
    return ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(),),
    )


def _start_worker(parent: int) -> None:
    """Runs in each worker as it starts. The workers run beside each other and the embedding,
    so each reads scans by OCR on one thread."""
    from ingest import ocr

    ocr.use_one_thread()
    _exit_with_parent(parent)


def _exit_with_parent(parent: int) -> None:
    """Its call queue holds both ends of the pipe, so a dead parent is never seen as end of
    input: it is watched for instead."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
