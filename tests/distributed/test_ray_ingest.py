"""Ingest on Ray Data: the same outcomes as the local pipeline, resumable, and a worker node lost
mid-ingest loses no committed document."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ingest.sources import expand_paths
from support.docstrings import docstring_documents
from support.ray_settings import RAY_SETTINGS

pytestmark = pytest.mark.ray


def _write_files(folder: Path, count: int) -> Path:
    folder.mkdir()
    for document in docstring_documents()[:count]:
        (folder / document.source).write_text("\n\n".join(p.text for p in document.pages))
    return folder


def test_ray_data_ingest_gives_the_local_pipelines_outcomes(docent, ray_cluster, tmp_path):
    folder = _write_files(tmp_path / "files", 8)
    (folder / "broken.pdf").write_bytes(b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer <<>>\n%%EOF")
    (folder / "empty.txt").write_text("   \n")
    on_ray = docent.variant(ray_address=ray_cluster.address, **RAY_SETTINGS)

    local = {o.source: o for o in docent.ingest(expand_paths([str(folder)]), collection="files-local")}
    seen = []
    distributed = on_ray.ingest(expand_paths([str(folder)]), collection="files-ray", on_outcome=seen.append)
    assert [o.source for o in distributed] == sorted(local) == sorted(o.source for o in seen)
    for outcome in distributed:
        expected = local[outcome.source]
        assert (outcome.status, outcome.chunks, outcome.pages) == (expected.status, expected.chunks, expected.pages)
        assert outcome.error == expected.error
    assert "broken.pdf" in local[str(folder / "broken.pdf")].error or local[str(folder / "broken.pdf")].error
    assert on_ray.collection("files-ray").chunk_count() == docent.collection("files-local").chunk_count()

    again = on_ray.ingest(expand_paths([str(folder)]), collection="files-ray")  # resumable: nothing redone
    assert {o.status for o in again if o.ok} == {"unchanged"}
    # No telemetry thread is left polling a Prometheus that is not there (its tracebacks, made
    # beside other work, once broke CPython 3.11's AST builder in a later test).
    assert "data-usage-metrics-poller" not in {t.name for t in threading.enumerate()}


def test_a_worker_node_lost_mid_ingest_loses_nothing_committed(docent, ray_cluster, tmp_path):
    folder = _write_files(tmp_path / "files", 25)
    on_ray = docent.variant(ray_address=ray_cluster.address, **RAY_SETTINGS)
    extra = ray_cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1", object_store_memory=256 << 20)
    ray_cluster.wait_for_nodes()
    outcomes, killed = [], threading.Event()

    def on_outcome(outcome) -> None:
        outcomes.append(outcome)
        if len(outcomes) == 2:  # work is under way on every node: this one goes, without warning
            ray_cluster.remove_node(extra, allow_graceful=False)
            killed.set()

    first = on_ray.ingest(expand_paths([str(folder)]), collection="node-lost", on_outcome=on_outcome)
    assert killed.is_set() and len(first) == 25
    for outcome in first:  # stored, or said to be left, with what to do
        assert outcome.ok or "ingest again" in outcome.error, outcome
    stored = {o.source for o in first if o.ok}
    collection = on_ray.collection("node-lost")
    assert {d.source for d in collection.documents()} == stored  # what was said stored is there, whole

    second = on_ray.ingest(expand_paths([str(folder)]), collection="node-lost")
    assert all(o.ok for o in second)
    assert {o.source for o in second if o.status == "unchanged"} == stored
    documents = collection.documents()
    assert len(documents) == len({d.source for d in documents}) == 25
    assert collection.chunk_count() == sum(d.chunks for d in documents)


def test_an_ingest_the_cluster_stops_feeding_says_so_instead_of_hanging():
    from ingest.distributed import Stalled, _watched

    def stuck():
        yield {"position": [0]}
        time.sleep(30)  # resources that never come: Ray Data would wait for ever
        yield {"position": [1]}

    batches = _watched(stuck(), stall_after=0.5)
    assert next(batches) == {"position": [0]}
    started = time.monotonic()
    with pytest.raises(Stalled, match="no document came out of the cluster for 0.5 s"):
        next(batches)
    assert time.monotonic() - started < 5


def test_a_site_is_crawled_into_a_sharded_collection_and_recrawled_without_work(docent, ray_cluster, tmp_path):
    from retrieval.service import Docent
    from retrieval.settings import load_settings
    from support.website import MODULES, Site, SiteServer

    server = SiteServer(Site())
    try:
        on_ray = Docent(
            load_settings(
                home=str(tmp_path / "home"),
                allowed_hosts="127.0.0.1",
                fetch_timeout=1,
                ray_address=ray_cluster.address,
                **RAY_SETTINGS,
            )
        )
        on_ray._embedder = docent.embedder
        first = on_ray.crawl(server.base, collection="site")
        stored = {d.source for d in on_ray.documents(collection="site")}
        assert stored == {f"{server.base}/library/{m}.html" for m in MODULES} and first.added == len(MODULES)
        again = on_ray.crawl(server.base, collection="site")  # the crawl state lives in the shards
        assert again.added == 0 and again.unchanged == len(MODULES)
        hits = on_ray.search("heap queue push", k=3, collection="site")
        assert hits and hits[0].source.endswith("heapq.html") and hits.missing_shards == ()
    finally:
        server.close()
