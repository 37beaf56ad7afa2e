"""Docent as one object: settings, the embedding model, collections, ingest, search and ask.

The CLI and the app both go through this class, so they behave alike.
"""

from __future__ import annotations

import re
import shutil
import threading
import time
from functools import partial
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ingest.errors import IngestError
from ingest.models import Document, IngestOutcome
from ingest.pipeline import IngestPipeline, IngestProgress
from ingest.sources import Source
from ingest.web.crawl import CrawlOptions, CrawlProgress
from ingest.web.fetch import Fetcher
from ingest.web.netguard import AllowList
from retrieval.answer import (
    Answerer,
    AnswerStream,
    BackendError,
    Turn,
    UnavailableBackend,
    figure_passages,
    make_backend,
    measure_words,
    parse_calculation,
    standalone_question,
)
from retrieval.distributed import LAYOUT_FILE as SHARD_LAYOUT_FILE
from retrieval.embed import Embedder, model_identity
from retrieval.models import Answer, DocumentInfo, Hit
from retrieval.scope import named_sources
from retrieval.search import passages_with_lines
from ingest.limits import ExpansionLimits
from retrieval.search import search as run_search
from retrieval.settings import COLLECTION_NAME_PATTERN, Settings, load_settings, prepare_home
from retrieval.store import Collection, CollectionError, RemovedDocument

COLLECTION_NAME = re.compile(COLLECTION_NAME_PATTERN)
FIGURE_SEARCH_DEPTH = 10  # passages looked at for each figure a calculation needs

__all__ = ["COLLECTION_NAME", "Docent", "Source"]


class Docent:
    def __init__(self, settings: Settings):
        self.settings = settings
        prepare_home(settings.home)
        self._embedder = None
        self._identity: tuple[str, int] | None = None
        self._backend = None
        self._collections: dict[str, Collection] = {}
        self._lock = threading.Lock()

    # ---- shared resources -------------------------------------------------------------------

    @property
    def embedder(self):
        with self._lock:
            return self._embedder_unlocked()

    def _embedder_unlocked(self, on_stage=None):
        if self._embedder is None:
            self._embedder = self._embedder_factory()(on_stage=on_stage)
        return self._embedder

    def _embedder_factory(self) -> partial:
        """Makes the settings' Embedder when called: in this process, and in a Ray ingest's
        embedding actors (it is sent to them)."""
        s = self.settings
        return partial(
            Embedder, s.embedding_model, device=s.device, backend=s.embedding_backend, cache_dir=s.model_cache
        )

    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    def open_collections(self) -> dict[str, Collection]:
        """The collections this process has open, by name (opening one loads its indexes)."""
        with self._lock:
            return dict(self._collections)

    @property
    def embedding_precision(self) -> str | None:
        """Which precision embeds and why ("int8 (this CPU has VNNI ...)"), once the model is
        loaded; None before (asking must not load it)."""
        embedder = self._embedder
        return None if embedder is None else f"{embedder.precision} ({embedder.precision_reason})"

    def variant(self, **overrides) -> "Docent":
        """The same data and embedding model with other settings (backend, search mode, fusion).

        Collections are shared with this instance; the answer backend is the variant's own.
        """
        other = Docent(load_settings(**{**self.settings.model_dump(), **overrides}))
        other._embedder = self._embedder
        other._collections = self._collections
        other._lock = self._lock
        return other

    def load_model(self, on_stage: Callable[[str], None] | None = None) -> None:
        """Loads the embedding model now rather than on first use; on_stage(name) is called as
        each stage of a first start begins (retrieval.embed.STAGES: load, export, int8)."""
        with self._lock:
            self._embedder_unlocked(on_stage)

    @property
    def collections_dir(self) -> Path:
        return Path(self.settings.home) / "collections"

    def collection_names(self) -> list[str]:
        """Collections on this machine and, sharded, on the Ray cluster (their shards.json here)."""
        if not self.collections_dir.is_dir():
            return []
        return sorted(
            p.name
            for p in self.collections_dir.iterdir()
            if (p / "docent.sqlite3").exists() or (p / SHARD_LAYOUT_FILE).exists()
        )

    @property
    def on_ray(self) -> bool:
        return self.settings.ray_address is not None

    def _ray(self):
        """retrieval.distributed.cluster, connected to the cluster (imported only when used)."""
        from retrieval.distributed import cluster

        cluster.connect(self.settings.ray_address, self.settings.home)
        return cluster

    def _open(self, name: str):
        folder = self.collections_dir / name
        model_name, dim = self.model_identity()
        if (folder / SHARD_LAYOUT_FILE).exists() and not self.on_ray:
            raise CollectionError(
                f"collection '{name}' is sharded on a Ray cluster: run with --ray ADDRESS (or DOCENT_RAY_ADDRESS)"
            )
        if not self.on_ray:
            return Collection(folder, model_name=model_name, dim=dim, gpu_search=self.settings.gpu_search)
        s = self.settings
        cluster = self._ray()
        placement = cluster.ShardPlacement(s.ray_shard_cpus, s.ray_shard_resource, s.gpu_search)
        return cluster.open_sharded(
            folder,
            model_name=model_name,
            dim=dim,
            shards=s.ray_shards,
            timeout=s.ray_shard_timeout,
            placement=placement,
        )

    def cluster_status(self) -> dict:
        """The Ray cluster's nodes, and each shard of every sharded collection: size and health."""
        if not self.on_ray:
            raise CollectionError("Docent is not running on a Ray cluster: give --ray ADDRESS (or DOCENT_RAY_ADDRESS)")
        cluster = self._ray()
        sharded = {
            n: self.collection(n) for n in self.collection_names() if cluster.is_sharded(self.collections_dir / n)
        }
        return cluster.cluster_status(sharded, self.settings.ray_shard_timeout)

    def model_identity(self) -> tuple[str, int]:
        """(name, dimension) of the embedding model, from its folder: opening a collection, listing
        or removing documents never waits for the model to load."""
        if self._identity is None:
            self._identity = model_identity(self.settings.embedding_model) or (self.embedder.name, self.embedder.dim)
        return self._identity

    def collection(self, name: str | None = None) -> Collection:
        """An open collection, made if it does not exist yet. The app, the API and the CLI check
        that a collection exists before they read from it, so only writes make one."""
        name = name or self.settings.collection
        if not COLLECTION_NAME.match(name):
            raise CollectionError(
                f"invalid collection name {name!r}: use letters, digits, '.', '_' or '-'"
                " (at most 64, not starting with a symbol)"
            )
        with self._lock:
            if name not in self._collections:
                self._collections[name] = self._open(name)
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
        if (folder / SHARD_LAYOUT_FILE).exists():
            if not self.on_ray:
                raise CollectionError(
                    f"collection '{name}' is sharded on a Ray cluster: delete it with --ray ADDRESS"
                    " (its shard actors run there)"
                )
            self._ray().stop_shards(folder)  # its shard actors end before their files go
        elif not (folder / "docent.sqlite3").exists():
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

    def pipeline(self, collection: str | None = None) -> IngestPipeline:
        """The ingest pipeline into a collection (made if need be), with this Docent's embedder
        (loaded when the first text is embedded) and settings."""
        return IngestPipeline(
            lambda: self.embedder,
            self.collection(collection),
            overlap_tokens=self.settings.chunk_overlap_tokens,
            new_fetcher=self.fetcher,
            max_chunks=self.settings.max_file_chunks,
            limits=self.expansion_limits(),
        )

    def expansion_limits(self) -> ExpansionLimits:
        s = self.settings
        return ExpansionLimits(
            max_file_characters=s.max_file_characters,
            max_unpacked_bytes=s.max_unpacked_bytes,
            max_image_pixels=s.max_image_pixels,
            max_image_frames=s.max_image_frames,
        )

    def ingest(
        self,
        sources: Iterable[Source],
        *,
        collection: str | None = None,
        progress: IngestProgress | None = None,
        cancel: threading.Event | None = None,
        on_outcome: Callable[[IngestOutcome], None] | None = None,
    ) -> list[IngestOutcome]:
        """Ingests each source on its own: one that fails is reported and the rest go in
        (see ingest.pipeline). On a Ray cluster files go through Ray Data (ingest/distributed.py)
        and web pages through this process; the outcomes come back in the order of sources."""
        sources = list(sources)
        if not self.on_ray:
            return self.pipeline(collection).ingest(sources, progress=progress, cancel=cancel, on_outcome=on_outcome)
        from ingest.distributed import ingest_on_ray

        files = [i for i, s in enumerate(sources) if not s.is_url]
        urls = [i for i, s in enumerate(sources) if s.is_url]
        s = self.settings
        on_cluster = ingest_on_ray(
            [sources[i] for i in files],
            self.collection(collection),
            new_embedder=self._embedder_factory(),
            overlap_tokens=s.chunk_overlap_tokens,
            embed_actors=s.ray_embed_actors,
            on_outcome=on_outcome,
            cancel=cancel,
            limits=self.expansion_limits(),
        )
        outcomes = {files[position]: outcome for position, outcome in on_cluster.items()}
        if urls and not (cancel is not None and cancel.is_set()):
            fetched = self.pipeline(collection).ingest(
                [sources[i] for i in urls], progress=progress, cancel=cancel, on_outcome=on_outcome
            )
            outcomes.update(zip(urls, fetched))
        return [outcomes[i] for i in sorted(outcomes)]

    def ingest_documents(
        self, documents: Sequence[Document], *, collection: str | None = None, progress: IngestProgress | None = None
    ) -> list[IngestOutcome]:
        """Stores documents already loaded (text corpora, evaluation sets) in one batch."""
        return self.pipeline(collection).store_documents(documents, progress)

    def fetcher(self, cancel: threading.Event | None = None) -> Fetcher:
        """The HTTP client for web pages: the address guard, the time-outs, and a cancel that
        stops a fetch in flight."""
        return Fetcher(
            AllowList.parse(self.settings.allowed_hosts),
            read_timeout=self.settings.fetch_timeout,
            total_timeout=self.settings.fetch_total_timeout,
            cancel=cancel,
        )

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
        Raises IngestError when the crawl cannot start at all (and leaves no collection behind
        that the crawl made)."""
        name = collection or self.settings.collection
        existed = name in self.collection_names()
        try:
            return self.pipeline(name).crawl(url, options or self.crawl_options(), progress=progress, cancel=cancel)
        except IngestError:
            if not existed and not self.collection(name).documents():
                self.delete_collection(name)
            raise

    def crawl_options(
        self, *, max_pages: int | None = None, include: Sequence[str] = (), exclude: Sequence[str] = ()
    ) -> CrawlOptions:
        """A crawl's limits from the settings; max_pages, include and exclude as the user asked."""
        s = self.settings
        return CrawlOptions(
            max_pages=max_pages or s.crawl_max_pages,
            include=tuple(include),
            exclude=tuple(exclude),
            concurrency=s.crawl_concurrency,
            per_host=s.crawl_per_host,
            max_sitemaps=s.crawl_max_sitemaps,
            max_sitemap_urls=s.crawl_max_sitemap_urls,
        )

    def remove(self, source: str, *, collection: str | None = None) -> bool:
        """Removes a document (a copy is kept a while for restore); False when there is none."""
        return self.collection(collection).remove_document(source)

    def restore(self, source: str, *, collection: str | None = None) -> None:
        """Undoes the latest removal of source; CollectionError says why when it cannot."""
        self.collection(collection).restore_document(source)

    def removed_documents(self, *, collection: str | None = None) -> list[RemovedDocument]:
        return self.collection(collection).removed_documents()

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
        """sources: search only these documents (file names or URLs as listed). Without them, a
        query that names files (retrieval/scope.py) is searched in those first; when they hold
        nothing relevant, in the whole collection."""
        require_text(query, "search query")
        mode = mode or self.settings.search_mode
        query_vector = None if mode == "keyword" else self.embedder.embed_query(query)
        store = self.collection(collection)

        def run(within: Sequence[str] | None) -> list[Hit]:
            return self._ranked(store, query, query_vector, k=k, mode=mode, fusion=fusion, sources=within)

        if sources is None and self.settings.scope_by_name:
            named = named_sources(query, store.file_sources(), store.sources_using)
            if named:
                hits = run(named)
                if any(h.similarity is None or h.similarity >= self.settings.min_relevance for h in hits):
                    return hits
        return run(sources)

    def _ranked(self, store, query: str, query_vector, *, k: int, mode: str, fusion: str | None = None, sources=None):
        """One ranked search of a collection with this deployment's fusion settings."""
        return run_search(
            store,
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
        """The answer backend the settings name, set up once (a local model loads only once);
        auto's extractive stand-in is replaced once a model server answers (retrieval/answer/auto.py)."""
        with self._lock:
            again_at = getattr(self._backend, "probe_again_at", None)
            if again_at is not None and time.monotonic() >= again_at:
                self._backend = None
            if self._backend is None:
                try:
                    self._backend = make_backend(self.settings, self._embedder_unlocked())
                except BackendError as exc:
                    # Not cached: the next question tries again (the server may be up by then).
                    return UnavailableBackend(self.settings.llm, str(exc))
            return self._backend

    def _answerer(self, backend) -> Answerer:
        s = self.settings
        return Answerer(
            backend,
            min_relevance=s.min_relevance,
            max_passages=s.top_k,
            term_share=s.answer_term_share,
            sure_relevance=s.sure_relevance,
        )

    def ask_stream(
        self,
        question: str,
        *,
        history: Sequence[Turn] = (),
        collection: str | None = None,
        sources: Sequence[str] | None = None,
    ) -> AnswerStream:
        """Rewrites a follow-up into a standalone question, retrieves, and streams the answer.

        Iterate over the result for the text; afterwards `.answer` holds the Answer (its
        question as asked, its `.rewritten` the one searched for, when it differs), and `.hits`
        and `.rewritten` say what was searched and found.
        """
        require_text(question, "question")
        backend = self.backend
        searched = standalone_question(question, history, backend)
        hits = self.search(searched, k=max(10, self.settings.top_k), collection=collection, sources=sources)
        rows, worked = self._figure_rows(searched, hits, collection)
        stream = self._answerer(backend).stream(searched, hits, leading=rows, worked=worked)
        stream.hits = hits
        stream.rewritten = searched if searched != question else None
        stream.pieces = _naming_the_question(stream, stream.pieces, question)
        return stream

    def _figure_rows(self, question: str, hits: Sequence[Hit], collection: str | None) -> tuple[list[Hit], str]:
        """For a question that asks for a figure to be worked out (retrieval/answer/calculations.py),
        the passages that may hold its figures (a search for each figure's phrase and year within
        the documents the hits come from) and the name of a measure worked out from them that a
        document need not print ("working capital")."""
        calculation = parse_calculation(question)
        if calculation is None or not hits:
            return [], ""

        store = self.collection(collection)

        def search(queries: list[str], sources: list[str]) -> list[list[Hit]]:
            mode = self.settings.search_mode
            # One embedding call for every figure's query: most of a search's cost.
            vectors = [None] * len(queries) if mode == "keyword" else list(self.embedder.embed(queries))
            return [
                self._ranked(store, query, vector, k=FIGURE_SEARCH_DEPTH, mode=mode, sources=sources)
                for query, vector in zip(queries, vectors)
            ]

        def lines(beginnings: list[str], source: str) -> list[Hit]:
            return passages_with_lines(store, source, beginnings, limit=FIGURE_SEARCH_DEPTH)

        return figure_passages(calculation, hits, search, lines), measure_words(question)

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
        return stream.answer


def _naming_the_question(stream: AnswerStream, pieces, question: str):
    """The answer's pieces; once they are all out, the Answer names the question as asked (the
    answerer was given the standalone one) and the one searched for."""
    yield from pieces
    stream.answer.question, stream.answer.rewritten = question, stream.rewritten
    stream.answer.missing_shards = getattr(stream.hits, "missing_shards", ())


def require_text(text: str, what: str) -> None:
    """A search or a question needs words: ValueError naming what is empty otherwise."""
    if not text or not text.strip():
        raise ValueError(f"the {what} is empty: type some words to search for")
