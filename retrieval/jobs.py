"""Ingests and crawls that run in the server process, apart from any browser tab or request.

A job runs on its own thread, so it goes on when the tab that started it is closed or the
HTTP client hangs up; anyone allowed to see its collection can watch its progress again, or
cancel it. One crawl per collection at a time; file ingests queue behind each other only in
the collection's write lock, which holds for one document's commit at a time.
"""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ingest import IngestError
from ingest.crawl import CrawlOptions, CrawlProgress, preload
from retrieval.models import IngestOutcome

KEEP_FINISHED = 200  # finished jobs remembered for their reports


@dataclass
class Job:
    """One ingest of files or URLs, or one crawl, with its live progress."""

    kind: str  # "ingest" or "crawl"
    collection: str
    owner: str
    target: str  # what it works on: the crawl's URL, or the names of the files
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    total: int = 0  # sources to ingest (an ingest job)
    outcomes: list[IngestOutcome] = field(default_factory=list)
    current: str | None = None  # the source being embedded
    unit: str = "chunks"  # what chunks_done counts: chunks, or pages of a PDF streamed in parts
    chunks_done: int = 0
    chunks_total: int = 0
    crawl: CrawlProgress | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.finished is None

    @property
    def state(self) -> str:
        if self.running:
            return "cancelling" if self.cancel.is_set() else "running"
        if self.error:
            return "failed"
        return "cancelled" if self.cancel.is_set() else "finished"

    def wait(self, timeout: float | None = None) -> bool:
        """True once the job has ended."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running

    def summary(self) -> dict:
        """What an API client or a status line shows."""
        out = {
            "id": self.id, "kind": self.kind, "collection": self.collection, "owner": self.owner, "target": self.target,
            "state": self.state, "error": self.error, "started": self.started, "finished": self.finished,
        }
        if self.kind == "ingest":
            out.update(
                total=self.total, done=len(self.outcomes), current=self.current,
                chunks_done=self.chunks_done, chunks_total=self.chunks_total, unit=self.unit,
                outcomes=[o.to_dict() for o in self.outcomes],
            )
        else:
            p = self.crawl or CrawlProgress()
            out.update(
                discovered=p.discovered, done=p.done, added=p.added, replaced=p.replaced, unchanged=p.unchanged,
                skipped=p.skipped, removed=p.removed, left=p.left,
                failed=[{"url": url, "reason": reason} for url, reason in p.failed],
            )
        return out


class JobManager:
    """The jobs of one server process."""

    def __init__(self):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self, collections: Sequence[str] | None = None) -> list[Job]:
        """Newest first; only those in the given collections when they are named."""
        with self._lock:
            jobs = list(self._jobs.values())
        if collections is not None:
            jobs = [j for j in jobs if j.collection in collections]
        return sorted(jobs, key=lambda j: j.started, reverse=True)

    def latest(self, collection: str, kind: str, owner: str | None = None) -> Job | None:
        for job in self.jobs([collection]):
            if job.kind == kind and (owner is None or job.owner == owner):
                return job
        return None

    def start_ingest(self, docent, sources: list, collection: str, owner: str, *, spool: Path | None = None) -> Job:
        """Ingests the sources in order. spool: a folder of uploaded files, deleted at the end."""
        job = Job("ingest", collection, owner, ", ".join(s.name for s in sources[:3]) + (" …" if len(sources) > 3 else ""))
        job.total = len(sources)

        def progress(stage: str, done: int, total: int) -> None:
            job.unit = "pages" if stage == "pages" else "chunks"
            job.chunks_done, job.chunks_total = done, total

        def finished_one(outcome: IngestOutcome) -> None:
            job.outcomes.append(outcome)
            job.chunks_done = job.chunks_total = 0
            job.current = sources[len(job.outcomes)].name if len(job.outcomes) < len(sources) else None

        def work() -> None:
            job.current = sources[0].name if sources else None
            try:
                docent.ingest(sources, collection=collection, progress=progress, cancel=job.cancel, on_outcome=finished_one)
            finally:
                job.current = None
                if spool is not None:
                    shutil.rmtree(spool, ignore_errors=True)

        return self._run(job, work)

    def start_crawl(self, docent, url: str, collection: str, owner: str, options: CrawlOptions) -> Job:
        with self._lock:
            for other in self._jobs.values():
                if other.kind == "crawl" and other.collection == collection and other.running:
                    raise JobConflict(f"a crawl of {other.target} is already running in '{collection}'")
            job = Job("crawl", collection, owner, url, crawl=CrawlProgress())
            self._jobs[job.id] = job
        preload()  # here, not on the crawl's threads: see ingest.crawl.preload

        def report(progress: CrawlProgress) -> None:
            job.crawl = progress

        def work() -> None:
            job.crawl = docent.crawl(url, options=options, collection=collection, progress=report, cancel=job.cancel)

        return self._run(job, work)

    def _run(self, job: Job, work) -> Job:
        def run() -> None:
            try:
                work()
            except IngestError as exc:
                job.error = exc.reason
            except Exception as exc:  # reported with the job, never lost in a thread
                job.error = f"{type(exc).__name__}: {exc}"
            finally:
                job.finished = time.time()

        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        job.thread = threading.Thread(target=run, name=f"docent-{job.kind}-{job.collection}", daemon=True)
        job.thread.start()
        return job

    def _forget_old(self) -> None:
        done = sorted((j for j in self._jobs.values() if not j.running), key=lambda j: j.started)
        for job in done[: max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[job.id]


class JobConflict(RuntimeError):
    """The job cannot start now: another one holds what it needs."""
