"""Docent as one object: settings, the embedding model, collections, ingest, search and ask.

The CLI and the app both go through this class, so they behave alike.
"""

from __future__ import annotations

import itertools
import re
import shutil
import threading
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ingest import Document, IngestError, chunk_document
from ingest.crawl import CrawlOptions, CrawlProgress, Crawler, PageState, document_from_response, normalize_url
from ingest.fetch import Fetcher
from ingest.netguard import AllowList
from ingest.pdf import PdfStream
from ingest.sources import LargePdf, load_pdf_file
from retrieval.answer import Answerer, AnswerStream, UnavailableBackend, make_backend
from retrieval.conversation import Turn, standalone_question
from retrieval.llm import BackendError
from retrieval.keywords import keyword_terms
from retrieval.models import Answer, DocumentInfo, Hit, IngestOutcome
from retrieval.search import search as run_search
from retrieval.settings import Settings
from retrieval.store import Collection, CollectionError, PreparedDocument, StorageFullError, text_hash

LOAD_AHEAD = 4  # files parsed ahead of the one being embedded
STREAM_FROM_PAGES = 300  # a PDF with more pages is read, embedded and staged a part at a time
PAGES_PER_PART = 32
COLLECTION_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Reports (stage, done, total) while a source is processed; stage is "embedding".
IngestProgress = Callable[[str, int, int], None]


@dataclass
class Source:
    """Something to ingest: a name for citations, and its bytes or its path."""

    name: str
    data: bytes | None = None
    path: Path | None = None

    @classmethod
    def from_path(cls, path: str | Path) -> "Source":
        return cls(name=str(path), path=Path(path))


class Docent:
    def __init__(self, settings: Settings):
        self.settings = settings
        self._embedder = None
        self._backend = None
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    # ---- shared resources -------------------------------------------------------------------

    @property
    def embedder(self):
        with self._lock:
            return self._embedder_unlocked()

    def _embedder_unlocked(self):
        if self._embedder is None:
            from retrieval.embed import Embedder

            self._embedder = Embedder(
                self.settings.embedding_model,
                device=self.settings.device,
                backend=self.settings.embedding_backend,
                cache_dir=self.settings.model_cache,
            )
        return self._embedder

    def variant(self, **overrides) -> "Docent":
        """The same data and embedding model with other settings (backend, search mode, fusion).

        Collections are shared with this instance; the answer backend is the variant's own.
        """
        from retrieval.settings import load_settings

        other = Docent(load_settings(**{**self.settings.model_dump(), **overrides}))
        other._embedder = self._embedder
        other._collections = self._collections
        other._lock = self._lock
        return other

    def load_model(self) -> None:
        """Loads the embedding model now rather than on first use."""
        _ = self.embedder

    @property
    def collections_dir(self) -> Path:
        return Path(self.settings.home) / "collections"

    def collection_names(self) -> list[str]:
        if not self.collections_dir.is_dir():
            return []
        return sorted(p.name for p in self.collections_dir.iterdir() if (p / "docent.sqlite3").exists())

    def collection(self, name: str | None = None) -> Collection:
        name = name or self.settings.collection
        if not COLLECTION_NAME.match(name):
            raise CollectionError(
                f"invalid collection name {name!r}: use letters, digits, '.', '_' or '-' (at most 64, not starting with a symbol)"
            )
        embedder = self.embedder
        with self._lock:
            if name not in self._collections:
                self._collections[name] = Collection(
                    self.collections_dir / name, model_name=embedder.name, dim=embedder.dim,
                    gpu_search=self.settings.gpu_search,
                )
            return self._collections[name]

    def delete_collection(self, name: str) -> bool:
        """Deletes a collection and everything in it (database, indexes, kept files)."""
        if not COLLECTION_NAME.match(name):
            raise CollectionError(f"invalid collection name {name!r}")
        with self._lock:
            store = self._collections.pop(name, None)
        if store is not None:
            store.close()
        folder = self.collections_dir / name
        if not (folder / "docent.sqlite3").exists():
            return False
        shutil.rmtree(folder)
        return True

    def close(self) -> None:
        """Writes what the index files lack and closes the collections this Docent opened."""
        with self._lock:
            collections, self._collections = list(self._collections.values()), {}
        for collection in collections:
            collection.close()

    # ---- ingest -----------------------------------------------------------------------------

    def ingest(
        self,
        sources: Iterable[Source],
        *,
        collection: str | None = None,
        progress: IngestProgress | None = None,
        cancel: threading.Event | None = None,
        on_outcome: Callable[[IngestOutcome], None] | None = None,
    ) -> list[IngestOutcome]:
        """Ingests each source on its own: one that fails is reported and the rest go in.

        With several files, PDF text extraction runs in worker processes ahead of the
        embedding, so the cores are not idle while one of them waits on the other.
        When cancel is set, the source being embedded is dropped (nothing of it is stored) and
        no further one starts; the outcomes returned are those of the sources finished before.
        """
        store = self.collection(collection)
        outcomes = []

        def watched(stage: str, done: int, total: int) -> None:
            if progress:
                progress(stage, done, total)
            if cancel is not None and cancel.is_set():  # the last call comes before the write
                raise _Cancelled

        for source, loaded in _load_ahead(list(sources), self._fetch_document):
            if cancel is not None and cancel.is_set():
                break
            if isinstance(loaded, IngestError):
                outcome = IngestOutcome(source.name, "failed", error=loaded.reason)
            else:
                try:
                    if isinstance(loaded, LargePdf):
                        outcome = self._store_streamed(store, source, watched)
                    else:
                        document, data = loaded
                        originals = {document.source: data} if data is not None else None
                        outcome = self._store_documents(store, [document], watched, originals=originals)[0]
                except _Cancelled:
                    break
                except IngestError as exc:  # a streamed PDF's error shows only as its pages are read
                    outcome = IngestOutcome(source.name, "failed", error=exc.reason)
                except StorageFullError as exc:
                    outcome = IngestOutcome(source.name, "failed", error=str(exc))
            outcomes.append(outcome)
            if on_outcome:
                on_outcome(outcome)
        return outcomes

    def fetcher(self) -> Fetcher:
        return Fetcher(AllowList.parse(self.settings.allowed_hosts), read_timeout=self.settings.fetch_timeout)

    def _fetch_document(self, url: str) -> tuple[Document, bytes | None]:
        """One web page (or a linked PDF, with its pages); the PDF's bytes are kept."""
        fetcher = self.fetcher()
        try:
            result = fetcher.get(normalize_url(url))
        finally:
            fetcher.close()
        document = document_from_response(result, normalize_url(url))
        return document, result.body if document.kind == "pdf" else None

    def crawl(
        self,
        url: str,
        *,
        options: CrawlOptions | None = None,
        collection: str | None = None,
        progress: Callable[[CrawlProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> CrawlProgress:
        """Crawls a site into a collection; a second crawl redoes only what changed.

        Each page is committed as soon as it is embedded, so a crawl that is cancelled or killed
        keeps every page it finished. Raises IngestError when the crawl cannot start at all.
        """
        store = self.collection(collection)
        root = normalize_url(url)
        known = {
            u: PageState(u, r["etag"], r["last_modified"], r["sitemap_lastmod"], r["content_hash"])
            for u, r in store.web_pages(root).items()
        }
        options = options or CrawlOptions(
            max_pages=self.settings.crawl_max_pages,
            concurrency=self.settings.crawl_concurrency,
            per_host=self.settings.crawl_per_host,
        )
        fetcher = self.fetcher()
        try:
            return Crawler(fetcher, options).run(
                root, known=known, sink=_CollectionSink(self, store, root), progress_callback=progress, cancel=cancel
            )
        finally:
            fetcher.close()


    def ingest_documents(
        self, documents: Sequence[Document], *, collection: str | None = None, progress: IngestProgress | None = None
    ) -> list[IngestOutcome]:
        """Stores documents already loaded (text corpora, evaluation sets) in one batch."""
        return self._store_documents(self.collection(collection), documents, progress)

    def _store_documents(
        self,
        store: Collection,
        documents: Sequence[Document],
        progress: IngestProgress | None,
        originals: dict[str, bytes] | None = None,
    ) -> list[IngestOutcome]:
        """Chunks, embeds (in one pass) and stores; unchanged documents cost nothing."""
        outcomes: dict[int, IngestOutcome] = {}
        todo: list[tuple[int, Document, list]] = []
        embedder = self.embedder
        for i, document in enumerate(documents):
            existing = store.find_document(document.source)
            if existing is not None and existing.content_hash == document.content_hash:
                outcomes[i] = IngestOutcome(document.source, "unchanged", existing.chunks, existing.pages, existing.title)
                continue
            chunks = chunk_document(
                document,
                count_tokens=embedder.count_tokens,
                max_tokens=embedder.max_tokens,
                overlap_tokens=self.settings.chunk_overlap_tokens,
            )
            if not chunks:
                outcomes[i] = IngestOutcome(document.source, "failed", error="no text to index was found")
                continue
            todo.append((i, document, chunks))
        if todo:
            texts = [c.index_text for _, _, chunks in todo for c in chunks]
            vectors = self._embed_new(store, texts, progress)
            prepared, offset = [], 0
            for _, document, chunks in todo:
                own = vectors[offset : offset + len(chunks)]
                terms = [keyword_terms(c.index_text) for c in chunks]
                original = (originals or {}).get(document.source)
                prepared.append(PreparedDocument(document, chunks, own, terms, original))
                offset += len(chunks)
            for (i, document, chunks), status in zip(todo, store.write_documents(prepared)):
                outcomes[i] = IngestOutcome(
                    document.source, status, len(chunks), len(document.pages), document.title, warnings=document.warnings
                )
        return [outcomes[i] for i in range(len(documents))]

    def _store_streamed(self, store: Collection, source: Source, progress: IngestProgress) -> IngestOutcome:
        """A PDF too large to hold at once: PAGES_PER_PART pages at a time are extracted, chunked,
        embedded and staged; the document appears in one commit at the end (or not at all)."""
        stream = PdfStream(source.data if source.data is not None else source.path, source.name)
        existing = store.find_document(stream.source)
        if existing is not None and existing.content_hash == stream.content_hash:
            stream.close()
            return IngestOutcome(stream.source, "unchanged", existing.chunks, existing.pages, existing.title)
        embedder = self.embedder
        document = Document(stream.source, stream.title, "pdf", stream.content_hash, [], stream.size_bytes, stream.warnings)
        token = store.begin_staging()
        committed, chunk_count, page_count = False, 0, 0
        try:
            part: list = []
            for page in itertools.chain(stream.pages(), [None]):  # None: the end, to stage the last part
                if page is not None:
                    part.append(page)
                    if len(part) < PAGES_PER_PART:
                        continue
                if not part:
                    break
                chunks = chunk_document(
                    Document(document.source, document.title, "pdf", document.content_hash, part),
                    count_tokens=embedder.count_tokens, max_tokens=embedder.max_tokens,
                    overlap_tokens=self.settings.chunk_overlap_tokens,
                )
                chunks = [replace(c, ordinal=c.ordinal + chunk_count) for c in chunks]
                if chunks:
                    vectors = self._embed_new(store, [c.index_text for c in chunks], None)
                    store.stage(token, chunks, vectors, [keyword_terms(c.index_text) for c in chunks])
                chunk_count, page_count = chunk_count + len(chunks), page_count + len(part)
                progress("pages", part[-1].number, stream.page_count)
                part = []
            if not chunk_count:
                return IngestOutcome(source.name, "failed", error="no text to index was found")
            original = source.path if source.data is None else source.data
            status = store.commit_staged(token, document, pages=page_count, chunks=chunk_count, original=original)
            committed = True
            return IngestOutcome(source.name, status, chunk_count, page_count, document.title, warnings=stream.warnings)
        finally:
            stream.close()
            if not committed:
                store.abandon_staged(token)

    def _embed_new(self, store: Collection, texts: list[str], progress: IngestProgress | None) -> np.ndarray:
        """Embeddings of texts, computing only those the collection (or this batch) lacks:
        a repeated boilerplate passage or a re-ingest under another name costs nothing."""
        digests = [text_hash(t) for t in texts]
        known = store.embeddings_for(digests)
        missing = {d: t for d, t in zip(digests, texts) if d not in known}
        report = (lambda done, total: progress("embedding", done, total)) if progress else None
        if missing:
            known.update(zip(missing, self.embedder.embed(list(missing.values()), progress=report)))
        elif report:
            report(0, 0)
        return np.stack([known[d] for d in digests]).astype(np.float32, copy=False)

    def remove(self, source: str, *, collection: str | None = None) -> bool:
        return self.collection(collection).remove_document(source)

    def documents(self, *, collection: str | None = None) -> list[DocumentInfo]:
        return self.collection(collection).documents()

    # ---- search and answers -----------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str | None = None,
        fusion: str | None = None,
        collection: str | None = None,
        sources: Sequence[str] | None = None,
    ) -> list[Hit]:
        """sources: search only these documents (file names or URLs as listed)."""
        mode = mode or self.settings.search_mode
        query_vector = None if mode == "keyword" else self.embedder.embed_query(query)
        return run_search(
            self.collection(collection),
            query,
            query_vector=query_vector,
            k=k,
            mode=mode,
            fusion=fusion or self.settings.fusion,
            rrf_k=self.settings.rrf_k,
            alpha=self.settings.fusion_alpha,
            sources=sources,
        )

    @property
    def backend(self):
        """The answer backend the settings name, set up once (a local model loads only once)."""
        with self._lock:
            if self._backend is None:
                try:
                    self._backend = make_backend(self.settings, self._embedder_unlocked())
                except BackendError as exc:
                    # Not cached: the next question tries again (the server may be up by then).
                    return UnavailableBackend(self.settings.llm, str(exc))
            return self._backend

    def _answerer(self, backend) -> Answerer:
        return Answerer(backend, min_relevance=self.settings.min_relevance, max_passages=self.settings.top_k)

    def ask_stream(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        collection: str | None = None,
        sources: Sequence[str] | None = None,
    ) -> AnswerStream:
        """Rewrites a follow-up into a standalone question, retrieves, and streams the answer.

        Iterate over the result for the text; afterwards `.answer` holds the Answer, and
        `.hits` and `.rewritten` say what was searched and found.
        """
        backend = self.backend
        searched = standalone_question(question, history, backend)
        hits = self.search(searched, k=max(10, self.settings.top_k), collection=collection, sources=sources)
        stream = self._answerer(backend).stream(searched, hits)
        stream.hits = hits
        stream.rewritten = searched if searched != question else None
        return stream

    def ask(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        collection: str | None = None,
        sources: Sequence[str] | None = None,
    ) -> Answer:
        stream = self.ask_stream(question, history=history, collection=collection, sources=sources)
        for _ in stream:
            pass
        stream.answer.question = question
        stream.answer.rewritten = stream.rewritten
        return stream.answer


class _Cancelled(Exception):
    """Raised from a progress callback to drop the source being embedded."""


class _CollectionSink:
    """Where a crawl puts its pages: the collection, with what to remember for the next crawl."""

    def __init__(self, docent: Docent, store: Collection, crawl_root: str):
        self.docent, self.collection, self.crawl_root = docent, store, crawl_root

    def store(self, document: Document, state: PageState, original: bytes | None) -> str:
        originals = {document.source: original} if original is not None else None
        outcome = self.docent._store_documents(self.collection, [document], None, originals=originals)[0]
        if not outcome.ok:
            raise IngestError(document.source, outcome.error or "could not be stored")
        self.remember(state)
        return outcome.status

    def remember(self, state: PageState) -> None:
        self.collection.remember_web_page(
            self.crawl_root, state.url, etag=state.etag, last_modified=state.last_modified,
            sitemap_lastmod=state.sitemap_lastmod, content_hash=state.content_hash,
        )

    def remove(self, url: str) -> bool:
        return self.collection.remove_document(url)


def _load_ahead(sources: list[Source], fetch: Callable[[str], tuple[Document, bytes | None]]):
    """Yields (source, (document, bytes) or IngestError) in order. Web pages are fetched here;
    PDFs are parsed in two worker processes, ahead of the consumer."""

    def load_here(source: Source):
        if source.data is None and is_url(source.name):
            try:
                return fetch(source.name)
            except IngestError as exc:
                return exc
        return load_pdf_file(source.name, source.data, str(source.path) if source.path else None, STREAM_FROM_PAGES)

    if len(sources) < 2:
        for source in sources:
            yield source, load_here(source)
        return
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    def submit(pool, source: Source):
        if source.data is None and is_url(source.name):
            return None  # fetched when its turn comes
        return pool.submit(load_pdf_file, source.name, source.data, str(source.path) if source.path else None, STREAM_FROM_PAGES)

    # A few files ahead, not all: a folder of thousands must not be held in memory at once.
    # spawn, not fork: the parent holds model threads that a forked child would inherit broken.
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        window: deque = deque()
        upcoming = iter(sources)
        for source in upcoming:
            window.append((source, submit(pool, source)))
            if len(window) >= LOAD_AHEAD:
                break
        while window:
            source, future = window.popleft()
            following = next(upcoming, None)
            if following is not None:
                window.append((following, submit(pool, following)))
            yield source, load_here(source) if future is None else future.result()


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def expand_paths(paths: Sequence[str]) -> list[Source]:
    """Files as given; a folder stands for the PDFs in it and its subfolders, sorted."""
    sources: list[Source] = []
    for given in paths:
        path = Path(given)
        if is_url(given):
            sources.append(Source(name=given))
        elif path.is_dir():
            sources.extend(Source.from_path(p) for p in sorted(path.rglob("*")) if p.suffix.lower() == ".pdf" and p.is_file())
        else:
            sources.append(Source.from_path(given))
    return sources
