"""A sharded collection: the Collection interface over S shard actors (shard.py).

A document lives whole in one shard, chosen by its source (`shard_of`), so a document is
written, replaced and removed in one shard's transaction, as in a single collection. A chunk's
global id is its shard's id with the shard number above SHARD_BITS; hits, filters and rows go
through `_local` and `_global`.

Search fans out and merges: the vector lists by similarity (exact search over shards gives the
same top k as exact search over one index); the keyword lists scored with the whole
collection's BM25 statistics (its chunk count, average length and each query term's document
frequency, summed over the shards and kept until a shard reports a change), so a keyword score
is the one an unsharded collection would give. Fusion then runs on the merged lists in
retrieval/search.py, exactly as for one collection.

A shard that does not answer within `timeout` seconds is left out and named in the result's
missing_shards (a partial answer, never a hang); a shard actor that died is restarted by Ray
from its folder and answers the next call.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from retrieval.keywords import keyword_terms
from retrieval.models import DocumentInfo, Results
from retrieval.store import CollectionError, PreparedDocument
from retrieval.store.collection import KeywordScoring

log = logging.getLogger(__name__)

SHARD_BITS = 40  # a shard's own chunk ids stay below 2**40
WRITE_TIMEOUT = 600.0  # seconds a shard may take to commit a batch of documents
RESTART_WAIT = 120.0  # seconds a call that needs every shard waits (a dead shard actor restarting)
BM25_EPSILON = 0.25  # as BM25Index's default: a negative idf becomes epsilon * the mean idf


def shard_of(source: str, shards: int) -> int:
    """The shard a document lives in: stable across processes and runs (not Python's hash)."""
    return int.from_bytes(hashlib.blake2b(source.encode(), digest_size=8).digest(), "big") % shards


class ShardUnavailable(CollectionError):
    """A shard did not answer a call that cannot go on without it (a write, a document's rows)."""


class ShardedCollection:
    def __init__(self, name: str, folder: Path, shards: Sequence, *, model_name: str, dim: int, timeout: float):
        self.name, self.folder = name, Path(folder)
        self.shards = list(shards)  # Ray actor handles, shard i at position i
        self.model_name, self.dim, self.timeout = model_name, dim, timeout
        self._statistics: tuple[tuple[int, ...], int, float, dict[str, int], float] | None = None
        self._statistics_lock = threading.Lock()

    # ---- ids -----------------------------------------------------------------------------------

    @staticmethod
    def _global(shard: int, local: int) -> int:
        return (shard << SHARD_BITS) | int(local)

    @staticmethod
    def _local(global_id: int) -> tuple[int, int]:
        return int(global_id) >> SHARD_BITS, int(global_id) & ((1 << SHARD_BITS) - 1)

    def _by_shard(self, global_ids: Iterable[int]) -> dict[int, list[int]]:
        parts: dict[int, list[int]] = defaultdict(list)
        for global_id in global_ids:
            shard, local = self._local(global_id)
            if shard < len(self.shards):
                parts[shard].append(local)
        return parts

    def _home(self, source: str) -> int:
        return shard_of(source, len(self.shards))

    # ---- calling shards ------------------------------------------------------------------------

    def _call(self, shard: int, method: str, *args, timeout: float | None = None, **kwargs):
        """One shard's answer; raises ShardUnavailable when it does not come in time."""
        ref = self.shards[shard].call.remote(method, *args, **kwargs)
        return self._wait({shard: ref}, timeout, whole=True)[0][shard]

    def _fan_out(
        self, method: str, args_by_shard: dict[int, tuple] | None = None, *, whole: bool, timeout: float | None = None
    ):
        """{shard: answer} of every shard (or those in args_by_shard), and the shards that did
        not answer in time. whole: a missing shard raises ShardUnavailable instead."""
        calls = args_by_shard if args_by_shard is not None else {i: () for i in range(len(self.shards))}
        refs = {i: self.shards[i].call.remote(method, *args) for i, args in calls.items()}
        return self._wait(refs, timeout, whole=whole)

    def _wait(self, refs: dict, timeout: float | None, *, whole: bool) -> tuple[dict, list[int]]:
        """Searches wait `self.timeout` and go on without a late shard; a call that needs every
        shard's answer waits long enough for Ray to restart a shard actor that died."""
        if timeout is None:
            timeout = max(self.timeout, RESTART_WAIT) if whole else self.timeout
        ready, _ = ray.wait(list(refs.values()), num_returns=len(refs), timeout=timeout)
        ready = set(ready)
        answers, missing = {}, []
        for shard, ref in refs.items():
            if ref not in ready:
                ray.cancel(ref)
                missing.append(shard)
                continue
            try:
                answers[shard] = ray.get(ref)
            except RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, Exception) else None
                raise (cause or CollectionError(f"shard {shard} of '{self.name}' failed: {exc}")) from None
            except RayActorError as exc:
                log.warning("shard %d of collection '%s' is down: %s", shard, self.name, exc)
                missing.append(shard)
        if missing and whole:
            raise ShardUnavailable(
                f"collection '{self.name}': shard(s) {', '.join(map(str, missing))} did not answer within"
                f" {timeout:g} s; try again once `docent cluster status` shows them healthy (a write"
                " that was cut off is whole or absent there: ingesting again skips what is stored)"
            )
        return answers, missing

    # ---- documents -----------------------------------------------------------------------------

    def find_document(self, source: str) -> DocumentInfo | None:
        shard = self._home(source)
        info = self._call(shard, "find_document", source)
        return self._global_document(shard, info) if info else None

    def find_by_content(self, content_hash: str) -> DocumentInfo | None:
        answers, _ = self._fan_out("find_by_content", {i: (content_hash,) for i in range(len(self.shards))}, whole=True)
        found = [(info.added_at, shard, info) for shard, info in answers.items() if info is not None]
        if not found:
            return None
        _, shard, info = min(found, key=lambda f: (f[0], f[1]))
        return self._global_document(shard, info)

    def _global_document(self, shard: int, info: DocumentInfo) -> DocumentInfo:
        return replace(info, id=self._global(shard, info.id))

    def documents(self) -> list[DocumentInfo]:
        answers, _ = self._fan_out("documents", whole=True)
        merged = [self._global_document(s, d) for s, docs in answers.items() for d in docs]
        return sorted(merged, key=lambda d: (d.added_at, d.id))

    def file_sources(self) -> list[str]:
        answers, _ = self._fan_out("file_sources", whole=False)
        return [source for shard in sorted(answers) for source in answers[shard]]

    def chunk_count(self) -> int:
        answers, _ = self._fan_out("chunk_count", whole=True)
        return sum(answers.values())

    # ---- writing -------------------------------------------------------------------------------

    def write_document(self, document, chunks, embeddings, terms) -> str:
        return self.write_documents([PreparedDocument(document, chunks, embeddings, terms)])[0]

    def write_documents(self, items: Sequence[PreparedDocument]) -> list[str]:
        """Each document into its shard; the shards write at once, each in one transaction."""
        for item in items:
            item.validate(self.dim)
        positions: dict[int, list[int]] = defaultdict(list)
        for position, item in enumerate(items):
            positions[self._home(item.document.source)].append(position)
        answers, _ = self._fan_out(
            "write_documents",
            {s: ([items[p] for p in ps],) for s, ps in positions.items()},
            whole=True,
            timeout=WRITE_TIMEOUT,
        )
        statuses: list[str] = [""] * len(items)
        for shard, ps in positions.items():
            for position, status in zip(ps, answers[shard]):
                statuses[position] = status
        return statuses

    def begin_staging(self, source: str | None = None) -> str:
        if source is None:
            raise CollectionError("a sharded collection stages a document's parts in its shard: name the source")
        shard = self._home(source)
        return f"{shard}:{self._call(shard, 'begin_staging', source)}"

    def _staged(self, token: str) -> tuple[int, str]:
        shard, _, local = token.partition(":")
        return int(shard), local

    def stage(self, token: str, chunks, embeddings, terms) -> None:
        shard, local = self._staged(token)
        self._call(shard, "stage", local, chunks, embeddings, terms, timeout=WRITE_TIMEOUT)

    def commit_staged(self, token: str, document, *, pages: int, chunks: int, original) -> str:
        shard, local = self._staged(token)
        if isinstance(original, Path):  # the shard's machine may not see this one's disk
            original = original.read_bytes()
        return self._call(
            shard,
            "commit_staged",
            local,
            document,
            pages=pages,
            chunks=chunks,
            original=original,
            timeout=WRITE_TIMEOUT,
        )

    def abandon_staged(self, token: str) -> None:
        shard, local = self._staged(token)
        self._call(shard, "abandon_staged", local)

    def remove_document(self, source: str) -> bool:
        return self._call(self._home(source), "remove_document", source, timeout=WRITE_TIMEOUT)

    def removed_documents(self):
        answers, _ = self._fan_out("removed_documents", whole=True)
        return sorted((r for removed in answers.values() for r in removed), key=lambda r: r.removed_at, reverse=True)

    def restore_document(self, source: str) -> None:
        self._call(self._home(source), "restore_document", source, timeout=WRITE_TIMEOUT)

    def web_pages(self, crawl_root: str) -> dict[str, dict]:
        answers, _ = self._fan_out("web_pages", {i: (crawl_root,) for i in range(len(self.shards))}, whole=True)
        return {url: fields for pages in answers.values() for url, fields in pages.items()}

    def remember_web_page(self, crawl_root: str, url: str, **fields) -> None:
        self._call(self._home(url), "remember_web_page", crawl_root, url, **fields)

    def embeddings_for(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        hashes = list(set(hashes))
        answers, _ = self._fan_out("embeddings_for", {i: (hashes,) for i in range(len(self.shards))}, whole=False)
        return {digest: vector for found in answers.values() for digest, vector in found.items()}

    def original_file(self, source: str) -> Path | None:
        """The document's kept file, copied from its shard into this machine's cache once."""
        ref = self.shards[self._home(source)].original.remote(source)
        found = self._wait({0: ref}, None, whole=True)[0][0]
        if found is None:
            return None
        name, data = found
        path = self.folder / "originals" / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            partial.write_bytes(data)
            partial.replace(path)
        return path

    # ---- searching -----------------------------------------------------------------------------

    def _allowed_by_shard(self, allowed: Sequence[int] | None) -> dict[int, list[int] | None]:
        if allowed is None:
            return {i: None for i in range(len(self.shards))}
        return dict(self._by_shard(allowed))  # a shard none of whose chunks is allowed is not asked

    def vector_search(self, query: np.ndarray, k: int, *, allowed: Sequence[int] | None = None) -> Results:
        """(global chunk id, cosine similarity) of the k nearest chunks over every shard."""
        return self._vector_results(self._ask_vector_search(query, k, allowed), k)

    def hybrid_lists(
        self, query: np.ndarray, terms: Sequence[str], k: int, *, allowed: Sequence[int] | None = None
    ) -> tuple[Results, Results]:
        """Both lists of a hybrid search, the shards searching for both at once (one wait, not two)."""
        asked = self._ask_vector_search(query, k, allowed)
        by_keyword = self.keyword_search(terms, k, allowed=allowed)
        return self._vector_results(asked, k), by_keyword

    def _ask_vector_search(self, query: np.ndarray, k: int, allowed: Sequence[int] | None) -> dict:
        per_shard = self._allowed_by_shard(allowed)
        return {s: self.shards[s].call.remote("vector_search", query, k, allowed=a) for s, a in per_shard.items()}

    def _vector_results(self, asked: dict, k: int) -> Results:
        answers, missing = self._wait(asked, None, whole=False)
        return Results(self._merge(answers, k), missing)

    def keyword_search(self, terms: Sequence[str], k: int, *, allowed: Sequence[int] | None = None) -> Results:
        """(global chunk id, BM25 score) of the k best keyword matches, scored as one collection
        of all the shards' chunks would score them."""
        per_shard = self._allowed_by_shard(allowed)
        for attempt in range(2):
            versions, scoring = self._scoring(terms, refresh=attempt > 0)
            if scoring is None:
                return Results([], ())
            refs = {s: self.shards[s].keyword_search.remote(terms, k, a, scoring) for s, a in per_shard.items()}
            answers, missing = self._wait(refs, None, whole=False)
            if all(answers[s][0] == versions[s] for s in answers):
                break  # every shard scored with statistics of its current state
        return Results(self._merge({s: hits for s, (_, hits) in answers.items()}, k), missing)

    def _scoring(self, terms: Sequence[str], *, refresh: bool) -> tuple[tuple[int, ...], KeywordScoring | None]:
        """The query terms' collection-wide idfs and the average chunk length, from statistics
        summed over the shards (kept until a shard has changed)."""
        with self._statistics_lock:
            if self._statistics is None or refresh:
                self._statistics = self._sum_statistics()
            versions, documents, avgdl, frequencies, mean_idf = self._statistics
        if documents == 0:
            return versions, None
        idf = {}
        for term in set(terms):
            df = frequencies.get(term)
            if df:
                value = math.log(documents - df + 0.5) - math.log(df + 0.5)
                idf[term] = value if value >= 0 else BM25_EPSILON * mean_idf
        return versions, KeywordScoring(idf, avgdl)

    def _sum_statistics(self):
        refs = {i: shard.keyword_statistics.remote() for i, shard in enumerate(self.shards)}
        answers, missing = self._wait(refs, None, whole=False)
        versions = tuple(answers[i][0] if i in answers else -1 for i in range(len(self.shards)))
        documents = sum(a[1] for a in answers.values())
        length = sum(a[2] for a in answers.values())
        frequencies: dict[str, int] = defaultdict(int)
        for _, _, _, shard_frequencies in answers.values():
            for term, df in shard_frequencies.items():
                frequencies[term] += df
        # As BM25Index: the mean idf over every term held, negative ones included.
        dfs = np.fromiter(frequencies.values(), dtype=np.float64, count=len(frequencies))
        mean_idf = float(np.mean(np.log(documents - dfs + 0.5) - np.log(dfs + 0.5))) if len(dfs) else 0.0
        avgdl = length / documents if documents else 0.0
        return versions, documents, avgdl, dict(frequencies), mean_idf

    def _merge(self, answers: dict[int, list[tuple[int, float]]], k: int) -> list[tuple[int, float]]:
        merged = [(self._global(s, i), score) for s, hits in answers.items() for i, score in hits]
        merged.sort(key=lambda hit: (-hit[1], hit[0]))
        return merged[:k]

    def sources_using(self, word: str, limit: int = 200) -> list[str]:
        ids = [i for i, _ in self.keyword_search(keyword_terms(word), limit)]
        return [row["source"] for row in self.chunk_rows(ids).values()]

    def chunk_ids_for_sources(self, sources: Sequence[str]) -> list[int]:
        by_shard: dict[int, list[str]] = defaultdict(list)
        for source in sources:
            by_shard[self._home(source)].append(source)
        answers, _ = self._fan_out("chunk_ids_for_sources", {s: (v,) for s, v in by_shard.items()}, whole=True)
        return [self._global(s, i) for s, ids in answers.items() for i in ids]

    def chunks_with_lines(self, source: str, beginnings: Sequence[str], limit: int = 30) -> list[int]:
        shard = self._home(source)
        return [self._global(shard, i) for i in self._call(shard, "chunks_with_lines", source, beginnings, limit)]

    def page_text(self, source: str, page: int | None = None) -> str | None:
        return self._call(self._home(source), "page_text", source, page)

    def chunk_rows(self, chunk_ids: Sequence[int], query: np.ndarray | None = None) -> dict[int, dict]:
        """Text and provenance by global id (and similarity to query, when given); a shard that
        does not answer leaves its rows out (search then drops those hits, as it does a chunk
        removed since the lookup)."""
        parts = self._by_shard(chunk_ids)
        answers, _ = self._fan_out("chunk_rows", {s: (ids, query) for s, ids in parts.items()}, whole=False)
        return {self._global(s, i): row for s, rows in answers.items() for i, row in rows.items()}

    # ---- the rest ------------------------------------------------------------------------------

    def flush(self) -> None:
        self._fan_out("flush", whole=False)

    def close(self) -> None:
        """Writes what the shards' index files lack; the shard actors stay up for other callers."""
        try:
            self.flush()
        except Exception as exc:  # a down cluster: the shards' databases hold everything anyway
            log.warning("could not flush the shards of collection '%s': %s", self.name, exc)
