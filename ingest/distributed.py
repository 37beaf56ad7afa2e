"""Ingest on Ray Data: the local pipeline's stages (ingest/pipeline.py), run by a Ray cluster.

    files ──► extraction (Ray tasks: ingest.sources.load_file, any node)
          ──► chunking, embedding, keyword terms (an actor pool, each actor holding the
              embedding model; GPU actors when the cluster has GPUs)
          ──► each document into its shard (ShardedCollection.write_documents, from here)

The loaders, the chunker (`chunk_pages`), the embedder, the keyword terms and the outcomes
(`already_held`, `stored_outcome`) are the local pipeline's own; only the executor differs.

Resumable: a file already stored with the same content is answered "unchanged" before it is
read, so running an ingest again after a failure does only what is left. A document is
committed whole to its shard or not at all; when the cluster loses work it cannot redo (a node
gone with retries spent), the documents committed stay and each source left is reported failed
with the reason, to be ingested again.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import pickle
import queue
import threading
from typing import Callable, Sequence

import numpy as np
import ray

from ingest.errors import IngestError
from ingest.models import IngestOutcome
from ingest.pipeline import already_held, chunk_pages, stored_outcome
from ingest.limits import ExpansionLimits, set_limits
from ingest.sources import LargePdf, Source, load_file, read_file
from retrieval.keywords import keyword_terms
from retrieval.store import CollectionError, PreparedDocument

log = logging.getLogger(__name__)

# Ray Data's usage telemetry: a thread in this process that asks a Prometheus on localhost:9090
# for the cluster's counters every 10 s, for as long as the process lives, and logs each failure
# with its traceback (a self-hosted cluster rarely runs one there). Off unless asked for.
os.environ.setdefault("RAY_DATA_USAGE_DISABLED", "1")

WHOLE = 1 << 30  # pages: a task reads a file whole (the streamed path is for one machine's memory)
DOCUMENTS_PER_BATCH = 4  # documents an embedding actor takes at a time
EXTRACTION_RETRIES = 3  # a task lost with its node runs again elsewhere
# Parsing a file is light beside embedding it: half a core each, so extraction fits beside the
# embedding actors on a small cluster.
EXTRACTION_CPUS = 0.5
STALL_SECONDS = 600.0  # no document out of the cluster for this long: the ingest stops and says so


def _extract(row: dict, limits: ExpansionLimits) -> dict:
    """A Ray task: the file's Document (or why it cannot be read), within the deployment's
    limits on what a file may expand to."""
    set_limits(limits)
    loaded = load_file(row["name"], row["data"], None, WHOLE)
    if isinstance(loaded, LargePdf):  # not reached with WHOLE; said plainly if it ever is
        loaded = IngestError(row["name"], "too many pages to read in one task")
    return {"position": row["position"], "payload": pickle.dumps(loaded)}


class _Preparer:
    """An actor of the pool: holds the embedding model; chunks, embeds and finds the keyword
    terms of the documents it is given, all their chunks embedded in one pass."""

    def __init__(self, new_embedder: Callable, overlap_tokens: int):
        self.embedder = new_embedder()
        self.overlap_tokens = overlap_tokens

    def __call__(self, batch: dict) -> dict:
        loaded = [pickle.loads(p) for p in batch["payload"]]
        chunks = [
            chunk_pages(item[0], item[0].pages, self.embedder, self.overlap_tokens)
            if not isinstance(item, IngestError)
            else []
            for item in loaded
        ]
        texts = [c.index_text for document_chunks in chunks for c in document_chunks]
        vectors = self.embedder.embed(texts) if texts else np.zeros((0, self.embedder.dim), np.float32)
        prepared, offset = [], 0
        for item, document_chunks in zip(loaded, chunks):
            if isinstance(item, IngestError):
                prepared.append(pickle.dumps(item))
                continue
            document, data = item
            end = offset + len(document_chunks)
            terms = [keyword_terms(c.index_text) for c in document_chunks]
            prepared.append(pickle.dumps(PreparedDocument(document, document_chunks, vectors[offset:end], terms, data)))
            offset = end
        return {"position": batch["position"], "payload": np.array(prepared, dtype=object)}


def ingest_on_ray(
    sources: Sequence[Source],
    collection,  # a ShardedCollection
    *,
    new_embedder: Callable,
    overlap_tokens: int,
    embed_actors: int,
    on_outcome: Callable[[IngestOutcome], None] | None = None,
    cancel: threading.Event | None = None,
    limits: ExpansionLimits = ExpansionLimits(),
) -> dict[int, IngestOutcome]:
    """Ingests files on the cluster: {position in sources: outcome}, for every source unless
    cancel was set. URLs are not taken here (the service fetches them with the local pipeline,
    into the same collection)."""
    outcomes: dict[int, IngestOutcome] = {}

    def report(position: int, outcome: IngestOutcome) -> None:
        outcomes[position] = outcome
        if on_outcome:
            on_outcome(outcome)

    rows = []
    for position, source in enumerate(sources):
        if source.refused is not None:
            report(position, IngestOutcome(source.name, "skipped", error=source.refused))
            continue
        try:
            data = source.data if source.data is not None else read_file(source.name, source.path)
        except IngestError as exc:
            report(position, IngestOutcome(source.name, "failed", error=exc.reason))
            continue
        held = already_held(collection, source.name, hashlib.sha256(data).hexdigest())
        if held is not None:  # resumable: what is stored is not read again
            report(position, held)
            continue
        rows.append({"position": position, "name": source.name, "data": data})
    if rows:
        _run(rows, sources, collection, new_embedder, overlap_tokens, embed_actors, outcomes, report, cancel, limits)
    return outcomes


def embedding_pool(embed_actors: int) -> tuple[int, bool]:
    """(embedding actors, whether each takes a GPU): as many as asked, on GPUs when the
    cluster has one for each, else at most the free CPUs less what one extraction task takes
    (actors holding every free core would leave the pipeline waiting for ever)."""
    if ray.cluster_resources().get("GPU", 0) >= embed_actors:
        return embed_actors, True
    free = ray.available_resources().get("CPU", 0)
    return max(1, min(embed_actors, math.floor(free - EXTRACTION_CPUS))), False


def _run(
    rows, sources, collection, new_embedder, overlap_tokens, embed_actors, outcomes, report, cancel, limits
) -> None:
    ray.data.DataContext.get_current().enable_progress_bars = False
    actors, on_gpus = embedding_pool(embed_actors)
    dataset = (
        ray.data.from_items(rows, override_num_blocks=min(len(rows), 64))
        # A task lost with its node runs again.
        .map(_extract, fn_kwargs={"limits": limits}, num_cpus=EXTRACTION_CPUS, max_retries=EXTRACTION_RETRIES)
        .map_batches(
            _Preparer,
            fn_constructor_args=(new_embedder, overlap_tokens),
            batch_size=DOCUMENTS_PER_BATCH,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            num_gpus=1 if on_gpus else 0,
            num_cpus=0 if on_gpus else 1,
        )
    )
    left = {row["position"] for row in rows}

    def give_up(positions, exc: Exception) -> None:
        reason = f"not stored: {exc}; ingest again to finish (stored files are skipped)"
        for position in sorted(positions):
            report(position, IngestOutcome(sources[position].name, "failed", error=reason))

    try:
        for batch in _watched(dataset.iter_batches(batch_size=DOCUMENTS_PER_BATCH, batch_format="numpy")):
            if cancel is not None and cancel.is_set():
                return
            positions = {int(p) for p in batch["position"]}
            try:
                _store(batch, collection, report)
            except CollectionError as exc:  # a shard down past its restart: this batch is left, the rest go on
                log.warning("ingest on Ray could not store a batch: %s", exc)
                give_up(positions - outcomes.keys(), exc)
            left -= positions
    except Stalled as exc:
        log.warning("ingest on Ray stopped: %s", exc)
        give_up(left, exc)
    except Exception as exc:  # the cluster lost work it could not redo: say what is left, keep what is stored
        log.warning("ingest on Ray stopped: %s", exc)
        give_up(left, RuntimeError(f"the Ray cluster lost this file's work ({type(exc).__name__})"))


class Stalled(RuntimeError):
    pass


def _watched(batches, stall_after: float | None = None):
    """The batches as they come; Stalled when none comes for STALL_SECONDS. Ray Data waits for
    ever for resources that are not there (a node lost, its cores held by other actors), so an
    ingest says so instead of hanging."""
    stall_after = STALL_SECONDS if stall_after is None else stall_after
    arrived: queue.Queue = queue.Queue(maxsize=2)
    done, stop = object(), threading.Event()

    def hand_over(item) -> None:
        while not stop.is_set():  # the consumer may have stopped (cancelled, stalled): then let go
            try:
                arrived.put(item, timeout=1.0)
                return
            except queue.Full:
                continue

    def pull() -> None:
        try:
            for batch in batches:
                hand_over(batch)
                if stop.is_set():
                    return
            hand_over(done)
        except BaseException as exc:  # raised where the batches are consumed
            hand_over(exc)

    threading.Thread(target=pull, daemon=True, name="ray-data-batches").start()
    try:
        while True:
            try:
                item = arrived.get(timeout=stall_after)
            except queue.Empty:
                raise Stalled(
                    f"no document came out of the cluster for {stall_after:g} s (too few free CPUs? see"
                    " `docent cluster status`)"
                ) from None
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def _store(batch: dict, collection, report) -> None:
    """Writes a batch's documents into their shards (the shards in parallel); a document whose
    content another already holds (in this batch or stored) is not stored twice."""
    ready: list[tuple[int, PreparedDocument]] = []
    in_batch: dict[str, str] = {}
    for position, payload in zip(batch["position"], batch["payload"]):
        item = pickle.loads(payload)
        position = int(position)
        if isinstance(item, IngestError):
            report(position, IngestOutcome(item.source, "failed", error=item.reason))
            continue
        document = item.document
        if not item.chunks:
            report(position, IngestOutcome(document.source, "failed", error="no text to index was found"))
            continue
        held = already_held(collection, document.source, document.content_hash)
        if held is None and document.content_hash in in_batch:
            held = IngestOutcome(document.source, "duplicate", duplicate_of=in_batch[document.content_hash])
        if held is not None:
            report(position, held)
            continue
        in_batch[document.content_hash] = document.source
        ready.append((position, item))
    if ready:
        statuses = collection.write_documents([item for _, item in ready])
        for (position, item), status in zip(ready, statuses):
            report(position, stored_outcome(item.document, status, len(item.chunks)))
