"""Prometheus metrics of a Docent server: what it answered, how fast, and what it holds.

Counters and histograms live in the process's default registry (with prometheus_client's own
process_* series: resident memory, CPU, open files), so the API and the app count alike.
What the server holds (documents, chunks, jobs, index lag, whether the model server answers)
is read when scraped, by ServerState, from the Docent and JobManager it is given.

Labels take only bounded values: a route's template (never its path), a status code, a search
mode, a job's kind and state, a collection's name (collections are made by admins). Never a
user, a question or a file name.
"""

from __future__ import annotations

import time
from typing import Iterator

import httpx
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

JOB_STATES = ("running", "cancelling", "finished", "cancelled", "failed", "interrupted")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Searches take milliseconds, answers up to tens of seconds with a model server.
_FAST = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_SLOW = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)

REQUESTS = Counter(
    "docent_http_requests",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "docent_http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"], buckets=_SLOW
)
SEARCH_SECONDS = Histogram("docent_search_duration_seconds", "Time of one search", ["mode"], buckets=_FAST)
ASK_FIRST_TOKEN_SECONDS = Histogram(
    "docent_ask_first_token_seconds", "Time from a question to the first words of its answer", buckets=_SLOW
)
ASK_SECONDS = Histogram("docent_ask_duration_seconds", "Time from a question to the end of its answer", buckets=_SLOW)
INGEST_FILES = Counter("docent_ingest_files", "Files and pages through ingest, by outcome", ["status"])
INGEST_PAGES = Counter("docent_ingest_pages", "Pages (or sections) of the files stored")
INGEST_CHUNKS = Counter("docent_ingest_chunks", "Passages made of the files stored")
INGEST_PAGE_SECONDS = Histogram(
    "docent_ingest_page_duration_seconds",
    "Time to read, chunk, embed and store a file, per page",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)


def observe_ingest(outcome, seconds: float) -> None:
    """One file's outcome (retrieval.models.IngestOutcome), and the time it took."""
    INGEST_FILES.labels(outcome.status).inc()
    if outcome.status in ("added", "replaced"):
        pages = outcome.pages or 1
        INGEST_PAGES.inc(pages)
        INGEST_CHUNKS.inc(outcome.chunks or 0)
        INGEST_PAGE_SECONDS.observe(seconds / pages)


CRAWL_PAGES = Counter("docent_crawl_pages", "Pages of finished crawls, by what became of them", ["status"])


def observe_crawl(progress) -> None:
    """A crawl's final counts (ingest.web.crawl.CrawlProgress)."""
    for status in ("added", "replaced", "unchanged", "removed", "skipped"):
        CRAWL_PAGES.labels(status).inc(getattr(progress, status))
    CRAWL_PAGES.labels("failed").inc(len(progress.failed))


def timed_answer(pieces: Iterator[str], started: float) -> Iterator[str]:
    """An answer's text pieces, timing its first piece and its end (from started, perf_counter)."""
    first = True
    for piece in pieces:
        if first:
            ASK_FIRST_TOKEN_SECONDS.observe(time.perf_counter() - started)
            first = False
        yield piece
    ASK_SECONDS.observe(time.perf_counter() - started)


class ServerState:
    """A collector read at each scrape: what one server's Docent and jobs hold now. docent: the
    Docent, or a function that gives it (None while the app's model is being prepared)."""

    PROBE_EVERY_SECONDS = 30.0  # the model server is asked at most this often

    def __init__(self, docent, jobs):
        self._docent, self.jobs = docent, jobs
        self._probed: tuple[float, bool] | None = None

    @property
    def docent(self):
        return self._docent() if callable(self._docent) else self._docent

    def collect(self):
        docent = self.docent
        if docent is None:
            return
        documents = GaugeMetricFamily("docent_collection_documents", "Documents stored", labels=["collection"])
        chunks = GaugeMetricFamily("docent_collection_chunks", "Passages stored", labels=["collection"])
        lag = GaugeMetricFamily(
            "docent_index_lag_changes",
            "Database changes the open indexes do not reflect yet (catch-up lag)",
            labels=["collection"],
        )
        for name, collection in sorted(docent.open_collections().items()):
            try:
                held_documents, held_chunks = collection.counts()
                documents.add_metric([name], held_documents)
                chunks.add_metric([name], held_chunks)
                lag.add_metric([name], collection.index_lag())
            except Exception:  # noqa: BLE001 - deleted while scraped, or sharded: not counted here
                continue
        yield from (documents, chunks, lag)
        yield GaugeMetricFamily(
            "docent_collections", "Collections in the data home", value=len(docent.collection_names())
        )

        jobs = GaugeMetricFamily(
            "docent_jobs", "Jobs this server knows of, by kind and state", labels=["kind", "state"]
        )
        counts: dict[tuple[str, str], int] = {}
        for job in self.jobs.jobs():
            counts[job.kind, job.state] = counts.get((job.kind, job.state), 0) + 1
        for kind in ("ingest", "crawl"):
            for state in JOB_STATES:
                jobs.add_metric([kind, state], counts.get((kind, state), 0))
        yield jobs

        model = InfoMetricFamily("docent_embedding", "The embedding model in use, its backend and precision")
        embedder = docent.embedder if docent.model_loaded else None  # a scrape never loads it
        model.add_metric(
            [],
            {
                "model": getattr(embedder, "name", "not loaded"),
                "backend": getattr(embedder, "backend", "not loaded"),
                "precision": getattr(embedder, "precision", "not loaded"),
            },
        )
        yield model
        yield GaugeMetricFamily(
            "docent_embedding_model_loaded", "1 once the embedding model is loaded", value=int(docent.model_loaded)
        )
        up = GaugeMetricFamily(
            "docent_model_server_up",
            "1 when the answer backend's model server answers GET /models (1 for a backend that needs none)",
            labels=["backend"],
        )
        reachable = self._model_server_up(docent)
        up.add_metric([docent.settings.llm], 1 if reachable is None else int(reachable))
        yield up

    def _model_server_up(self, docent) -> bool | None:
        """Whether the OpenAI-compatible server answers GET /models; None without one."""
        base = docent.settings.openai_base_url
        if not base:
            return None
        now = time.monotonic()
        if self._probed is None or now - self._probed[0] > self.PROBE_EVERY_SECONDS:
            try:
                up = httpx.get(base.rstrip("/") + "/models", timeout=2.0).status_code < 500
            except httpx.HTTPError:
                up = False
            self._probed = (now, up)
        return self._probed[1]


class _Everything:
    """The process's counters, and what the server holds, as one collector."""

    def __init__(self, state: ServerState | None):
        self.state = state

    def collect(self):
        yield from REGISTRY.collect()
        if self.state is not None:
            yield from self.state.collect()


def registry_of(state: ServerState | None) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Everything(state))
    return registry


def exposition(state: ServerState | None) -> bytes:
    """The text a scrape gets: the process's counters, and what the server holds."""
    return generate_latest(registry_of(state))


def serve_metrics(address: str, state: ServerState) -> None:
    """/metrics on a port of its own (the app's process: Streamlit serves no routes of ours)."""
    host, _, port = address.rpartition(":")
    start_http_server(int(port), addr=host.strip("[]") or "127.0.0.1", registry=registry_of(state))
