"""Ingests and crawls that run in the server process, apart from any browser tab or request.

A job runs on its own thread, so it goes on when the tab that started it is closed or the
HTTP client hangs up; anyone allowed to see its collection can watch its progress again, or
cancel it. One crawl per collection at a time; file ingests queue behind each other only in
the collection's write lock, which holds for one document's commit at a time.

With a data home, the jobs are also posted to jobs.sqlite3 there (at most twice a second, and
at each file and at the end), so the app and the API, two processes on one home, each show the
other's jobs and can cancel them: the running process reads the cancel request from the board.
A job whose process is gone shows as "interrupted".
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from ingest import IngestError
from ingest.web.crawl import CrawlOptions, CrawlProgress, preload
from ingest.models import IngestOutcome
from retrieval.settings import prepare_home
from retrieval.store import process_alive
from webapp import metrics
from webapp.uploads import UploadSpool

KEEP_FINISHED = 200  # finished jobs remembered for their reports
POST_EVERY_SECONDS = 0.5


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
    unit: str = "chunks"  # what chunks_done counts: chunks, or pages of a PDF streamed in parts; "reading": parsing
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
            "id": self.id,
            "kind": self.kind,
            "collection": self.collection,
            "owner": self.owner,
            "target": self.target,
            "state": self.state,
            "error": self.error,
            "started": self.started,
            "finished": self.finished,
        }
        if self.kind == "ingest":
            out.update(
                total=self.total,
                done=len(self.outcomes),
                current=self.current,
                chunks_done=self.chunks_done,
                chunks_total=self.chunks_total,
                unit=self.unit,
                outcomes=[o.to_dict() for o in self.outcomes],
            )
        else:
            p = self.crawl or CrawlProgress()
            out.update(
                discovered=p.discovered,
                done=p.done,
                added=p.added,
                replaced=p.replaced,
                unchanged=p.unchanged,
                skipped=p.skipped,
                removed=p.removed,
                left=p.left,
                failed=[{"url": url, "reason": reason} for url, reason in p.failed],
                method=p.method or None,
                note=p.note or None,
            )
        return out


class JobManager:
    """The jobs of one server process, and (with a home) those other processes posted."""

    def __init__(self, home: str | Path | None = None):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._board = _JobBoard(Path(home) / "jobs.sqlite3") if home is not None else None
        self._posted: dict[str, float] = {}
        self._forgotten_here: dict[str, float] = {}

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None and self._board is not None:
            job = self._board.get(job_id)
        return job if job is not None and not self._forgotten(job, self._cutoffs()) else None

    def jobs(self, collections: Sequence[str] | None = None) -> list[Job]:
        """Newest first; only those in the given collections when they are named."""
        with self._lock:
            jobs = list(self._jobs.values())
        if self._board is not None:
            own = {j.id for j in jobs}
            jobs += [j for j in self._board.jobs() if j.id not in own]
        cutoffs = self._cutoffs()
        jobs = [j for j in jobs if not self._forgotten(j, cutoffs)]
        if collections is not None:
            jobs = [j for j in jobs if j.collection in collections]
        return sorted(jobs, key=lambda j: j.started, reverse=True)

    def forget(self, collection: str) -> None:
        """Drops the finished jobs of a collection that is being deleted, in every process on this
        home: their reports name its files, and whoever gets the name next must not see them."""
        now = time.time()
        with self._lock:
            self._forgotten_here[collection] = now
            for job_id in [i for i, j in self._jobs.items() if j.collection == collection and not j.running]:
                del self._jobs[job_id]
        if self._board is not None:
            self._board.forget(collection, now)

    def _cutoffs(self) -> dict[str, float]:
        """collection -> when its jobs were forgotten (by this process or another)."""
        cutoffs = dict(self._forgotten_here)
        if self._board is not None:
            for collection, at in self._board.forgotten().items():
                cutoffs[collection] = max(at, cutoffs.get(collection, 0.0))
        return cutoffs

    @staticmethod
    def _forgotten(job, cutoffs: dict[str, float]) -> bool:
        return not job.running and job.started <= cutoffs.get(job.collection, -1.0)

    def latest(self, collection: str, kind: str, owner: str | None = None) -> Job | None:
        for job in self.jobs([collection]):
            if job.kind == kind and (owner is None or job.owner == owner):
                return job
        return None

    def start_ingest(
        self, docent, sources: list, collection: str, owner: str, *, spool: UploadSpool | None = None
    ) -> Job:
        """Ingests the sources in order. spool: the uploaded files' folder, removed at the end."""
        job = Job(
            "ingest", collection, owner, ", ".join(s.name for s in sources[:3]) + (" …" if len(sources) > 3 else "")
        )
        job.total = len(sources)

        def progress(stage: str, done: int, total: int) -> None:
            job.unit = stage if stage in ("pages", "reading") else "chunks"
            job.chunks_done, job.chunks_total = done, total
            self._post(job)

        last_done = time.perf_counter()

        def finished_one(outcome: IngestOutcome) -> None:
            nonlocal last_done
            metrics.observe_ingest(outcome, time.perf_counter() - last_done)
            last_done = time.perf_counter()
            job.outcomes.append(outcome)
            job.chunks_done = job.chunks_total = 0
            job.current = sources[len(job.outcomes)].name if len(job.outcomes) < len(sources) else None
            self._post(job, now=True)

        def work() -> None:
            job.current = sources[0].name if sources else None
            try:
                docent.ingest(
                    sources, collection=collection, progress=progress, cancel=job.cancel, on_outcome=finished_one
                )
            finally:
                job.current = None
                if spool is not None:
                    spool.remove()

        return self._run(job, work)

    def start_crawl(self, docent, url: str, collection: str, owner: str, options: CrawlOptions) -> Job:
        posted = self._board.jobs() if self._board is not None else []  # another process's crawls too
        with self._lock:
            for other in [*self._jobs.values(), *posted]:
                if other.kind == "crawl" and other.collection == collection and other.running:
                    raise JobConflict(f"a crawl of {other.target} is already running in '{collection}'")
            job = Job("crawl", collection, owner, url, crawl=CrawlProgress())
            self._jobs[job.id] = job
        preload()  # here, not on the crawl's threads: see ingest.web.crawl.preload

        def report(progress: CrawlProgress) -> None:
            job.crawl = progress
            self._post(job)

        def work() -> None:
            job.crawl = docent.crawl(url, options=options, collection=collection, progress=report, cancel=job.cancel)
            metrics.observe_crawl(job.crawl)

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
                self._post(job, now=True)
                _give_memory_back()

        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        self._post(job, now=True)
        job.thread = threading.Thread(target=run, name=f"docent-{job.kind}-{job.collection}", daemon=True)
        job.thread.start()
        return job

    def _post(self, job: Job, now: bool = False) -> None:
        """Puts the job's progress on the board, and takes a cancel request from it."""
        if self._board is None:
            return
        moment = time.monotonic()
        if not now and moment - self._posted.get(job.id, 0.0) < POST_EVERY_SECONDS:
            return
        self._posted[job.id] = moment
        try:
            if self._board.post(job):
                job.cancel.set()
        except sqlite3.Error:  # the board is for watching; a job never fails because of it
            pass

    def _forget_old(self) -> None:
        done = sorted((j for j in self._jobs.values() if not j.running), key=lambda j: j.started)
        for job in done[: max(0, len(done) - KEEP_FINISHED)]:
            del self._jobs[job.id]


def _give_memory_back() -> None:
    """After a job, the memory glibc keeps for reuse is returned to the system: after a large
    ingest the API held 1.7 GB of its 2.4 GB peak."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class JobConflict(RuntimeError):
    """The job cannot start now: another one holds what it needs."""


class _JobBoard:
    """jobs.sqlite3: each job's summary, by the process that runs it, for the others to read."""

    def __init__(self, path: Path):
        prepare_home(path.parent)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, summary TEXT NOT NULL, pid INTEGER NOT NULL,"
            " host TEXT NOT NULL, cancel INTEGER NOT NULL DEFAULT 0, started REAL NOT NULL)"
        )
        # When each deleted collection's jobs were dropped: older finished jobs of that name,
        # still in some process's memory, are not shown again.
        self._db.execute("CREATE TABLE IF NOT EXISTS forgotten (collection TEXT PRIMARY KEY, at REAL NOT NULL)")
        self._lock = threading.Lock()
        self._pid, self._host = os.getpid(), socket.gethostname()

    def post(self, job: Job) -> bool:
        """Records the job; True when someone asked to cancel it."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs(id, summary, pid, host, started) VALUES (?, ?, ?, ?, ?) ON CONFLICT(id)"
                " DO UPDATE SET summary = excluded.summary",
                (job.id, json.dumps(job.summary()), self._pid, self._host, job.started),
            )
            # Finished jobs past the newest KEEP_FINISHED are forgotten.
            self._db.execute(
                "DELETE FROM jobs WHERE id NOT IN (SELECT id FROM jobs ORDER BY started DESC LIMIT ?)",
                (KEEP_FINISHED * 2,),
            )
            row = self._db.execute("SELECT cancel FROM jobs WHERE id = ?", (job.id,)).fetchone()
        return bool(row and row[0])

    def jobs(self) -> list["PostedJob"]:
        with self._lock:
            rows = self._db.execute("SELECT id, summary, pid, host, cancel FROM jobs ORDER BY started DESC").fetchall()
        return [PostedJob(self, *row) for row in rows]

    def get(self, job_id: str) -> "PostedJob | None":
        with self._lock:
            row = self._db.execute("SELECT id, summary, pid, host, cancel FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return PostedJob(self, *row) if row else None

    def forget(self, collection: str, at: float) -> None:
        with self._lock:
            rows = self._db.execute("SELECT id, summary FROM jobs").fetchall()
            doomed = [(job_id,) for job_id, summary in rows if json.loads(summary)["collection"] == collection]
            self._db.executemany("DELETE FROM jobs WHERE id = ?", doomed)
            self._db.execute(
                "INSERT INTO forgotten(collection, at) VALUES (?, ?) ON CONFLICT(collection) DO UPDATE SET at = excluded.at",
                (collection, at),
            )

    def forgotten(self) -> dict[str, float]:
        with self._lock:
            return dict(self._db.execute("SELECT collection, at FROM forgotten"))

    def request_cancel(self, job_id: str) -> None:
        with self._lock:
            self._db.execute("UPDATE jobs SET cancel = 1 WHERE id = ?", (job_id,))

    def alive(self, pid: int, host: str) -> bool:
        # From another machine nothing can be told; its own process marks it finished.
        return host != self._host or process_alive(pid)


class _BoardCancel:
    """A posted job's cancel: a request the running process picks up within a second or so."""

    def __init__(self, board: _JobBoard, job_id: str, requested: bool):
        self._board, self._id, self._requested = board, job_id, requested

    def set(self) -> None:
        self._board.request_cancel(self._id)
        self._requested = True

    def is_set(self) -> bool:
        return self._requested


class PostedJob:
    """A job run by another process, as it last posted itself: read-only, but cancellable."""

    def __init__(self, board: _JobBoard, job_id: str, summary: str, pid: int, host: str, cancel: int):
        self._summary = json.loads(summary)
        s = self._summary
        self.id, self.kind, self.collection, self.owner, self.target = (
            job_id,
            s["kind"],
            s["collection"],
            s["owner"],
            s["target"],
        )
        self.error, self.started, self.finished = s["error"], s["started"], s["finished"]
        self.cancel = _BoardCancel(board, job_id, bool(cancel))
        self._alive = self.finished is not None or board.alive(pid, host)
        self.total, self.current, self.unit = s.get("total", 0), s.get("current"), s.get("unit", "chunks")
        self.chunks_done, self.chunks_total = s.get("chunks_done", 0), s.get("chunks_total", 0)
        self.outcomes = [IngestOutcome(**o) for o in s.get("outcomes", [])]
        self.crawl = None
        if self.kind == "crawl":
            fields = {k: s[k] for k in ("discovered", "done", "added", "replaced", "unchanged", "skipped", "removed")}
            self.crawl = CrawlProgress(
                **fields,
                failed=[(f["url"], f["reason"]) for f in s["failed"]],
                method=s.get("method") or "",
                note=s.get("note") or "",
            )

    @property
    def running(self) -> bool:
        return self.finished is None and self._alive

    @property
    def state(self) -> str:
        if self.finished is None and not self._alive:
            return "interrupted"  # its process ended without finishing it
        return self._summary["state"]

    def wait(self, timeout: float | None = None) -> bool:
        return not self.running

    def summary(self) -> dict:
        return {**self._summary, "state": self.state}
