"""Crawls that run in the server process, apart from any browser session.

A crawl started in the app runs on its own thread, so it goes on when the tab is closed or
the page reruns, and anyone who opens the app can watch its progress or cancel it. One crawl
per collection at a time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from ingest import IngestError
from ingest.crawl import CrawlOptions, CrawlProgress, preload


@dataclass
class CrawlJob:
    url: str
    collection: str
    progress: CrawlProgress = field(default_factory=CrawlProgress)
    cancel: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    started: float = field(default_factory=time.time)
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


class CrawlRegistry:
    def __init__(self):
        self._jobs: dict[str, CrawlJob] = {}
        self._lock = threading.Lock()

    def get(self, collection: str) -> CrawlJob | None:
        with self._lock:
            return self._jobs.get(collection)

    def start(self, docent, url: str, collection: str, options: CrawlOptions) -> CrawlJob:
        with self._lock:
            current = self._jobs.get(collection)
            if current is not None and current.running:
                raise RuntimeError(f"a crawl of {current.url} is already running in '{collection}'")
            job = CrawlJob(url, collection)
            self._jobs[collection] = job
        preload()  # here, not on the crawl's threads: see ingest.crawl.preload

        def work():
            def report(progress: CrawlProgress) -> None:
                job.progress = progress

            try:
                job.progress = docent.crawl(url, options=options, collection=collection, progress=report, cancel=job.cancel)
            except IngestError as exc:
                job.error = exc.reason
            except Exception as exc:  # reported in the app, never lost in a thread
                job.error = f"{type(exc).__name__}: {exc}"

        job.thread = threading.Thread(target=work, name=f"docent-crawl-{collection}", daemon=True)
        job.thread.start()
        return job
