"""The worker processes that parse files ahead of the embedding (OCR on one thread each), and
their tie to the process that started them: a worker whose parent is gone (killed with
SIGKILL, or crashed) exits within a second instead of living on under PID 1, holding memory
and an open file.

FileReaders is how the ingest uses them: an ingest that stops early (cancelled) ends its
workers at once rather than waiting for a parse nobody will use (a 50 MB text file takes tens
of seconds), and a worker that dies (out of memory, a crash in a parsing library) is replaced.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

from ingest.limits import ExpansionLimits, set_limits

PARENT_CHECK_SECONDS = 0.5


def file_workers(count: int, limits: ExpansionLimits | None = None) -> ProcessPoolExecutor:
    # spawn, not fork: the parent holds model threads that a forked child would inherit broken.
    return ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), limits or ExpansionLimits()),
    )


class FileReaders:
    """count worker processes running one function; stop() kills them without waiting."""

    def __init__(self, count: int, function, limits: ExpansionLimits):
        self.count, self.function, self.limits = count, function, limits
        self._pool = file_workers(count, limits)

    def submit(self, *args) -> Future:
        return self._pool.submit(self.function, *args)

    def restart(self) -> None:
        """New workers after one died: the pool it belonged to takes no more work."""
        self.stop()
        self._pool = file_workers(self.count, self.limits)

    def stop(self) -> None:
        # ProcessPoolExecutor has no public kill before Python 3.14 (kill_workers).
        processes = list((getattr(self._pool, "_processes", None) or {}).values())
        for process in processes:
            process.kill()
        # A worker killed while it sent a parsed file back leaves half a message in the results
        # pipe; the pool's manager thread then waits for the rest forever (and shutdown, and the
        # interpreter's exit, with it), since this process holds the pipe's other write end.
        # Closing that end lets it see the end of the pipe and shut down as for a broken pool.
        results = getattr(self._pool, "_result_queue", None)
        writer = getattr(results, "_writer", None)
        if processes and writer is not None:
            writer.close()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _start_worker(parent: int, limits: ExpansionLimits) -> None:
    """Runs in each worker as it starts: the deployment's limits on what a file may expand to,
    and OCR on one thread (the workers run beside each other and the embedding)."""
    from ingest import ocr

    set_limits(limits)
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
