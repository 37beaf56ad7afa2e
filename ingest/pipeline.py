"""The ingest pipeline: sources -> documents -> chunks -> embeddings -> a collection.

    pipeline = IngestPipeline(embedder, collection, overlap_tokens=40, new_fetcher=...)
    outcomes = pipeline.ingest(expand_paths(["report.pdf", "manuals/"]))

Each source goes in on its own: one that fails is reported with the reason and the rest go in.
A document is chunked in the embedding model's own tokens, only the chunks whose text the
collection does not hold yet are embedded, and it is written in one transaction. A document
arrives either whole or, for a PDF of more than STREAM_FROM_PAGES pages, as parts of
PAGES_PER_PART pages that are staged as they are embedded and become the document in one commit
at the end; both go through the same chunking, embedding and keyword terms (`_prepare`). A
document of more than STAGE_FROM_CHUNKS passages is embedded and staged CHUNKS_PER_PART at a time
in the same way.
Web pages are fetched here; files are parsed in worker processes ahead of the embedding.
A crawl stores its pages through the same pipeline (`crawl`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np

from ingest.chunking import chunk_document
from ingest.errors import IngestError
from ingest.limits import ExpansionLimits, set_limits
from ingest.models import Chunk, Document, IngestOutcome, Page
from ingest.pdf import PdfStream
from ingest.sources import LargePdf, Loaded, Source, load_file
from ingest.web.crawl import CrawlOptions, CrawlProgress, Crawler, PageState, load_url, normalize_url
from ingest.web.fetch import Fetcher
from ingest.workers import FileReaders
from retrieval.keywords import keyword_terms
from retrieval.store import Collection, PreparedDocument, StorageFullError, text_hash

LOAD_AHEAD = 4  # files parsed ahead of the one being embedded
STREAM_FROM_PAGES = 300  # a PDF with more pages is read, embedded and staged a part at a time
PAGES_PER_PART = 32
STAGE_FROM_CHUNKS = 4096  # a document of more passages is embedded and staged a part at a time
CHUNKS_PER_PART = 1024
WAIT_STEP_SECONDS = 0.25  # how often a cancel is looked for while a file is parsed

log = logging.getLogger(__name__)

# Reports (stage, done, total) while a source is processed; stage is "embedding" or "pages".
IngestProgress = Callable[[str, int, int], None]


class Cancelled(Exception):
    """Raised from a progress callback to drop the source being embedded."""


class IngestPipeline:
    """Puts sources into one collection with one embedder. new_fetcher(cancel) makes the HTTP
    client for web pages (with the deployment's address guard and time-outs, stopped in flight
    when cancel is set); without it URLs cannot be ingested."""

    def __init__(
        self,
        embedder,  # an Embedder, or a function that gives one when the first text is embedded
        collection: Collection,
        *,
        overlap_tokens: int = 40,
        new_fetcher: Callable[[threading.Event | None], Fetcher] | None = None,
        max_chunks: int = 50_000,
        limits: ExpansionLimits = ExpansionLimits(),
    ):
        self._embedder = embedder
        self.collection = collection
        self.overlap_tokens = overlap_tokens
        self.new_fetcher = new_fetcher
        self.max_chunks = max_chunks  # passages one file may become; past it the file is refused
        self.limits = limits  # what one file may expand to while it is read (ingest/limits.py)

    @property
    def embedder(self):
        if not hasattr(self._embedder, "embed"):
            self._embedder = self._embedder()
        return self._embedder

    # ---- sources ---------------------------------------------------------------------------

    def ingest(
        self,
        sources: Iterable[Source],
        *,
        progress: IngestProgress | None = None,
        cancel: threading.Event | None = None,
        on_outcome: Callable[[IngestOutcome], None] | None = None,
    ) -> list[IngestOutcome]:
        """Ingests each source on its own. When cancel is set, the source being embedded is
        dropped (nothing of it is stored) and no further one starts; the outcomes returned are
        those of the sources finished before."""
        outcomes = []

        def watched(stage: str, done: int, total: int) -> None:
            if progress:
                progress(stage, done, total)
            if cancel is not None and cancel.is_set():  # the last call comes before the write
                raise Cancelled

        def reading() -> None:  # while a file is parsed: a cancel is taken (from another process too)
            watched("reading", 0, 0)

        set_limits(self.limits)  # for a file read in this process; the workers are given them
        loads = self._load_ahead(list(sources), cancel, reading)
        try:
            for source, loaded in loads:
                if cancel is not None and cancel.is_set():
                    break
                outcome = self._store_loaded(source, loaded, watched)
                outcomes.append(outcome)
                if on_outcome:
                    on_outcome(outcome)
        except Cancelled:
            pass
        finally:
            loads.close()  # the parses still running are ended, not waited for
        return outcomes

    def _store_loaded(self, source: Source, loaded: Loaded, progress: IngestProgress) -> IngestOutcome:
        """The file's outcome. Whatever goes wrong with one file stays that file's failure: the
        files beside it in the same upload still go in."""
        if source.refused is not None:
            return IngestOutcome(source.name, "skipped", error=source.refused)
        if isinstance(loaded, IngestError):
            return IngestOutcome(source.name, "failed", error=loaded.reason)
        try:
            if isinstance(loaded, LargePdf):
                return self._store_streamed(source, progress)
            document, data = loaded
            originals = {document.source: data} if data is not None else None
            return self.store_documents([document], progress, originals=originals)[0]
        except Cancelled:
            raise
        except IngestError as exc:  # a streamed PDF's error shows only as its pages are read
            return IngestOutcome(source.name, "failed", error=exc.reason)
        except StorageFullError as exc:
            return IngestOutcome(source.name, "failed", error=str(exc))
        except Exception as exc:  # a fault of ours on one file: logged with its trace, named to the user
            log.exception("storing %s failed", source.name)
            return IngestOutcome(source.name, "failed", error=f"could not be stored ({type(exc).__name__}: {exc})")

    def _load_url(self, url: str, cancel: threading.Event | None) -> tuple[Document, bytes | None] | IngestError:
        if self.new_fetcher is None:
            return IngestError(url, "web pages cannot be added here")
        fetcher = self.new_fetcher(cancel)  # a cancelled ingest stops its page mid-fetch
        try:
            return load_url(fetcher, url)
        except IngestError as exc:
            return exc
        finally:
            fetcher.close()

    def _load_ahead(
        self, sources: list[Source], cancel: threading.Event | None, reading: Callable[[], None]
    ) -> Iterator[tuple[Source, Loaded]]:
        """Yields (source, what loading it gave) in order. Web pages are fetched here; files
        are parsed in worker processes, a few ahead of the consumer. reading() is called while
        a parse is waited for, and raises Cancelled to stop: the workers are then killed, not
        waited for. A CLI ingest of one file (nothing can cancel it) parses it here."""

        def load_file_of(source: Source) -> tuple:
            return source.name, source.data, str(source.path) if source.path else None, STREAM_FROM_PAGES

        def load_now(source: Source) -> Loaded:
            if source.refused is not None:  # nothing to read: _store_loaded says it was skipped
                return IngestError(source.name, source.refused)
            return self._load_url(source.name, cancel) if source.is_url else load_file(*load_file_of(source))

        if cancel is None and len(sources) < 2:
            for source in sources:
                yield source, load_now(source)
            return
        # A few files ahead, not all: a folder of thousands must not be held in memory at once.
        readers = FileReaders(min(2, len(sources)), load_file, self.limits)
        window: deque = deque()  # (source, its parse (None: loaded in its turn), times tried)

        def submit(source: Source, tries: int = 0) -> tuple:
            ahead = source.refused is None and not source.is_url
            return source, readers.submit(*load_file_of(source)) if ahead else None, tries

        upcoming = iter(sources)
        window.extend(submit(source) for source in itertools.islice(upcoming, LOAD_AHEAD))
        try:
            while window:
                source, future, tries = window.popleft()
                if future is None:
                    loaded = load_now(source)
                else:
                    try:
                        loaded = _waited_for(future, reading)
                    except BrokenProcessPool:
                        # A worker died, and every parse in flight with it. Each is run again once;
                        # the file that kills its worker twice is the one that fails.
                        readers.restart()
                        again = [submit(s, t) for s, _, t in window]
                        window.clear()
                        if tries == 0:
                            window.extend([submit(source, 1), *again])
                            continue
                        window.extend(again)
                        loaded = IngestError(source.name, _WORKER_DIED)
                following = next(upcoming, None)
                if following is not None:
                    window.append(submit(following))
                yield source, loaded
        except BaseException:  # cancelled, or the consumer stopped: no parse is waited for
            readers.stop()
            raise
        readers.close()

    # ---- documents ---------------------------------------------------------------------------

    def store_documents(
        self,
        documents: Sequence[Document],
        progress: IngestProgress | None = None,
        *,
        originals: dict[str, bytes] | None = None,
    ) -> list[IngestOutcome]:
        """Chunks, embeds (in one pass) and stores documents already loaded, in one transaction;
        unchanged documents cost nothing. originals: the files to keep, by source."""
        outcomes: dict[int, IngestOutcome] = {}
        todo: list[tuple[int, Document, list[Chunk]]] = []
        in_batch: dict[str, Document] = {}  # content hash -> the first document of this batch with it
        for i, document in enumerate(documents):
            held = self._already_held(document.source, document.content_hash)
            if held is None and document.content_hash in in_batch:
                first = in_batch[document.content_hash]
                held = IngestOutcome(document.source, "duplicate", title=first.title, duplicate_of=first.source)
            if held is not None:
                outcomes[i] = held
                continue
            in_batch[document.content_hash] = document
            chunks = self._chunk(document, document.pages, progress)
            if not chunks:
                outcomes[i] = IngestOutcome(document.source, "failed", error="no text to index was found")
                continue
            if len(chunks) > self.max_chunks:
                outcomes[i] = IngestOutcome(document.source, "failed", error=self._too_many(len(chunks)))
                continue
            todo.append((i, document, chunks))
        for i, document, chunks in [t for t in todo if len(t[2]) > STAGE_FROM_CHUNKS]:
            original = (originals or {}).get(document.source)
            outcomes[i] = self._stage_chunks(document, chunks, progress, original)
        todo = [t for t in todo if len(t[2]) <= STAGE_FROM_CHUNKS]
        if todo:
            vectors, terms = self._prepare([c for _, _, chunks in todo for c in chunks], progress)
            prepared, offset = [], 0
            for _, document, chunks in todo:
                end = offset + len(chunks)
                original = (originals or {}).get(document.source)
                prepared.append(PreparedDocument(document, chunks, vectors[offset:end], terms[offset:end], original))
                offset = end
            for (i, document, chunks), status in zip(todo, self.collection.write_documents(prepared)):
                outcomes[i] = stored_outcome(document, status, len(chunks))
        return [outcomes[i] for i in range(len(documents))]

    def _store_streamed(self, source: Source, progress: IngestProgress) -> IngestOutcome:
        """A PDF too large to hold at once: PAGES_PER_PART pages at a time are extracted, chunked,
        embedded and staged; the document appears in one commit at the end (or not at all)."""
        stream = PdfStream(source.data if source.data is not None else source.path, source.name)
        try:
            held = self._already_held(stream.source, stream.content_hash)
            if held is not None:
                return held
            document = Document(
                stream.source,
                stream.title,
                "pdf",
                stream.content_hash,
                [],
                stream.size_bytes,
                stream.warnings,
                missing_pages=stream.missing_pages,
                about=stream.about,
            )
            return self._stage_parts(
                source, document, _parts(stream.pages(), PAGES_PER_PART), stream.page_count, progress
            )
        finally:
            stream.close()

    def _stage_chunks(
        self, document: Document, chunks: list[Chunk], progress: IngestProgress | None, original: bytes | None
    ) -> IngestOutcome:
        """A document of many passages (a 10 MB line of text makes 28,000): embedded and staged
        CHUNKS_PER_PART at a time, so its vectors and keyword terms are never all held at once,
        then made the document in one commit (or not at all)."""
        store, total = self.collection, len(chunks)
        token = store.begin_staging(document.source)
        committed = False
        try:
            for start in range(0, total, CHUNKS_PER_PART):
                part = chunks[start : start + CHUNKS_PER_PART]

                def counted(stage: str, done: int, _: int, before: int = start) -> None:
                    progress(stage, before + done, total)

                vectors, terms = self._prepare(part, counted if progress else None)
                store.stage(token, part, vectors, terms)
            status = store.commit_staged(token, document, pages=len(document.pages), chunks=total, original=original)
            committed = True
            return stored_outcome(document, status, total)
        finally:
            if not committed:
                store.abandon_staged(token)

    def _stage_parts(
        self, source: Source, document: Document, parts: Iterable[list[Page]], page_total: int, progress: IngestProgress
    ) -> IngestOutcome:
        store = self.collection
        token = store.begin_staging(document.source)
        committed, chunk_count, page_count = False, 0, 0
        try:
            for part in parts:
                chunks = [replace(c, ordinal=c.ordinal + chunk_count) for c in self._chunk(document, part, progress)]
                if chunk_count + len(chunks) > self.max_chunks:  # refused before more is embedded
                    return IngestOutcome(
                        source.name, "failed", error=self._too_many(chunk_count + len(chunks), "at least ")
                    )
                if chunks:
                    vectors, terms = self._prepare(chunks, None)
                    store.stage(token, chunks, vectors, terms)
                chunk_count, page_count = chunk_count + len(chunks), page_count + len(part)
                progress("pages", part[-1].number, page_total)
            if not chunk_count:
                return IngestOutcome(source.name, "failed", error="no text to index was found")
            original = source.path if source.data is None else source.data
            status = store.commit_staged(token, document, pages=page_count, chunks=chunk_count, original=original)
            committed = True
            return replace(stored_outcome(document, status, chunk_count, page_count), source=source.name)
        finally:
            if not committed:
                store.abandon_staged(token)

    def _too_many(self, chunks: int, at_least: str = "") -> str:
        return (
            f"it makes {at_least}{chunks:,} passages, more than this server takes from one file"
            f" ({self.max_chunks:,}: DOCENT_MAX_FILE_CHUNKS)"
        )

    def _already_held(self, source: str, content_hash: str) -> IngestOutcome | None:
        return already_held(self.collection, source, content_hash)

    def _chunk(self, document: Document, pages: Sequence[Page], progress: IngestProgress | None) -> list[Chunk]:
        """Chunking 50 MB of text takes half a minute: the progress callback is called from it now
        and then (stage "reading"), so a cancel is taken while it runs."""
        embedder = self.embedder
        if progress is None:
            return chunk_pages(document, pages, embedder, self.overlap_tokens)
        count_tokens, looked = embedder.count_tokens, time.monotonic()

        def counted(text: str) -> int:
            nonlocal looked
            if time.monotonic() - looked > WAIT_STEP_SECONDS:
                looked = time.monotonic()
                progress("reading", 0, 0)
            return count_tokens(text)

        return chunk_pages(document, pages, embedder, self.overlap_tokens, count_tokens=counted)

    def _prepare(self, chunks: Sequence[Chunk], progress: IngestProgress | None) -> tuple[np.ndarray, list[list[str]]]:
        """The chunks' embeddings and keyword terms, both of the indexed text (context included)."""
        texts = [c.index_text for c in chunks]
        return self._embed_new(texts, progress), [keyword_terms(t) for t in texts]

    def _embed_new(self, texts: list[str], progress: IngestProgress | None) -> np.ndarray:
        """Embeddings of texts, computing only those the collection (or this batch) lacks:
        a repeated boilerplate passage or a re-ingest under another name costs nothing."""
        digests = [text_hash(t) for t in texts]
        known = self.collection.embeddings_for(digests)
        missing = {d: t for d, t in zip(digests, texts) if d not in known}
        report = (lambda done, total: progress("embedding", done, total)) if progress else None
        if missing:
            known.update(zip(missing, self.embedder.embed(list(missing.values()), progress=report)))
        elif report:
            report(0, 0)
        return np.stack([known[d] for d in digests]).astype(np.float32, copy=False)

    # ---- sites -------------------------------------------------------------------------------

    def crawl(
        self,
        url: str,
        options: CrawlOptions,
        *,
        progress: Callable[[CrawlProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> CrawlProgress:
        """Crawls a site into the collection; a second crawl redoes only what changed.

        Each page is committed as soon as it is embedded, so a crawl that is cancelled or killed
        keeps every page it finished. Raises IngestError when the crawl cannot start at all.
        """
        if self.new_fetcher is None:
            raise IngestError(url, "sites cannot be crawled here")
        root = normalize_url(url)
        known = {
            u: PageState(u, r["etag"], r["last_modified"], r["sitemap_lastmod"], r["content_hash"])
            for u, r in self.collection.web_pages(root).items()
        }
        fetcher = self.new_fetcher(cancel)
        try:
            return Crawler(fetcher, options).run(
                root, known=known, sink=CollectionSink(self, root), progress_callback=progress, cancel=cancel
            )
        finally:
            fetcher.close()


# ---- the stages both executors run: this module's and Ray Data's (ingest/distributed.py) ----------


def already_held(collection, source: str, content_hash: str) -> IngestOutcome | None:
    """Unchanged (this source, the same content), or a duplicate: a new source whose content
    another document holds is not stored again (search would return every hit twice). A
    source already held that changes to another's content is stored: it is an update."""
    existing = collection.find_document(source)
    if existing is not None:
        if existing.content_hash != content_hash:
            return None
        return IngestOutcome(source, "unchanged", existing.chunks, existing.pages, existing.title)
    same = collection.find_by_content(content_hash)
    if same is None:
        return None
    return IngestOutcome(source, "duplicate", same.chunks, same.pages, same.title, duplicate_of=same.source)


def chunk_pages(
    document: Document, pages: Sequence[Page], embedder, overlap_tokens: int, count_tokens=None
) -> list[Chunk]:
    """The chunks of a document's pages (all of them, or a part), in the embedder's own tokens
    (counted by count_tokens when given: the embedder's count, watched)."""
    part = document if pages is document.pages else replace(document, pages=list(pages))
    return chunk_document(
        part,
        count_tokens=count_tokens or embedder.count_tokens,
        max_tokens=embedder.max_tokens,
        overlap_tokens=overlap_tokens,
    )


def stored_outcome(document: Document, status: str, chunks: int, pages: int | None = None) -> IngestOutcome:
    return IngestOutcome(
        document.source,
        status,
        chunks,
        len(document.pages) if pages is None else pages,
        document.title,
        warnings=document.warnings,
        missing_pages=document.missing_pages,
    )


class CollectionSink:
    """Where a crawl puts its pages: the collection, with what to remember for the next crawl."""

    def __init__(self, pipeline: IngestPipeline, crawl_root: str):
        self.pipeline, self.collection, self.crawl_root = pipeline, pipeline.collection, crawl_root

    def store(self, document: Document, state: PageState, original: bytes | None) -> str:
        originals = {document.source: original} if original is not None else None
        outcome = self.pipeline.store_documents([document], originals=originals)[0]
        if not outcome.ok:
            raise IngestError(document.source, outcome.error or "could not be stored")
        if outcome.status != "duplicate":  # not remembered: the next crawl checks it again
            self.remember(state)
        return outcome.status

    def remember(self, state: PageState) -> None:
        self.collection.remember_web_page(
            self.crawl_root,
            state.url,
            etag=state.etag,
            last_modified=state.last_modified,
            sitemap_lastmod=state.sitemap_lastmod,
            content_hash=state.content_hash,
        )

    def remove(self, url: str) -> bool:
        return self.collection.remove_document(url)


def _waited_for(future: Future, reading: Callable[[], None]) -> Loaded:
    while True:
        try:
            return future.result(timeout=WAIT_STEP_SECONDS)
        except FutureTimeout:
            reading()


_WORKER_DIED = (
    "the process reading it ended unexpectedly, twice (it may need more memory than this server"
    " has, or a parsing library crashed on it)"
)


def _parts(pages: Iterable[Page], size: int) -> Iterator[list[Page]]:
    """Pages in lists of `size` (the last may be shorter)."""
    pages = iter(pages)
    while part := list(itertools.islice(pages, size)):
        yield part
