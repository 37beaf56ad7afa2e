"""Jobs posted to the data home's board: two processes on one home (the app and the API) see,
and can cancel, each other's ingests; a job whose process died shows as interrupted."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from support.pdfgen import HANDBOOK_PAGES, make_manual, make_pdf
from webapp.jobs import JobManager
from retrieval.service import Docent, Source
from retrieval.settings import load_settings


def test_another_process_sees_and_cancels_a_running_ingest(docent, tmp_path):
    home = tmp_path / "home"
    own = Docent(load_settings(home=str(home)))
    own._embedder = docent.embedder
    running_here, watching = JobManager(home), JobManager(home)  # as the API's and the app's would be
    files = [Source(f"{n}.pdf", data=make_manual(n, 40)) for n in ("alpha", "bravo", "charlie", "delta")]
    job = running_here.start_ingest(own, files, "default", "ed")
    deadline = time.monotonic() + 120
    seen = None
    while time.monotonic() < deadline:  # the board is written just after the job's own list grows
        seen = watching.get(job.id)
        if seen is not None and seen.outcomes:
            break
        time.sleep(0.1)
    assert seen is not None and seen is not job and seen.running and seen.owner == "ed"
    assert [o.source for o in seen.outcomes][:1] == ["alpha.pdf"]
    assert watching.latest("default", "ingest", owner="ed").id == job.id
    seen.cancel.set()  # from the other process
    assert job.wait(timeout=120) and job.state == "cancelled"
    after = watching.get(job.id)
    assert after.state == "cancelled" and not after.running
    assert 1 <= len(after.outcomes) < 4 and after.summary()["done"] == len(job.outcomes)
    own.close()


def test_one_crawl_per_collection_across_processes(docent, tmp_path):
    from ingest.web.crawl import CrawlOptions
    from webapp.jobs import JobConflict
    from support.website import Site, SiteServer

    server = SiteServer(Site())
    home = tmp_path / "home"
    own = Docent(load_settings(home=str(home), allowed_hosts=["127.0.0.1"]))
    own._embedder = docent.embedder
    first, second = JobManager(home), JobManager(home)
    try:
        job = first.start_crawl(own, server.base, "default", "ed", CrawlOptions())
        try:
            with pytest.raises(JobConflict, match="already running in 'default'"):
                second.start_crawl(own, server.base, "default", "ed", CrawlOptions())
        finally:
            job.cancel.set()
            job.wait(timeout=120)
    finally:
        server.close()
        own.close()


def test_a_job_whose_process_died_shows_as_interrupted(tmp_path):
    board = JobManager(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    summary = {
        "id": "j1",
        "kind": "ingest",
        "collection": "default",
        "owner": "ed",
        "target": "a.pdf",
        "state": "running",
        "error": None,
        "started": time.time(),
        "finished": None,
        "total": 1,
        "done": 0,
        "current": "a.pdf",
        "chunks_done": 0,
        "chunks_total": 0,
        "unit": "chunks",
        "outcomes": [],
    }
    board._board._db.execute(
        "INSERT INTO jobs(id, summary, pid, host, started) VALUES ('j1', ?, ?, ?, ?)",
        (json.dumps(summary), dead.pid, __import__("socket").gethostname(), time.time()),
    )
    job = board.get("j1")
    assert job.state == "interrupted" and not job.running
    assert [j.id for j in board.jobs(["default"])] == ["j1"]


def test_without_a_home_jobs_stay_in_the_process(docent, tmp_path):
    own = Docent(load_settings(home=str(tmp_path / "home")))
    own._embedder = docent.embedder
    alone = JobManager()
    job = alone.start_ingest(own, [Source("h.pdf", data=make_pdf(HANDBOOK_PAGES))], "default", "me")
    assert job.wait(timeout=120) and job.state == "finished"
    assert JobManager(tmp_path / "home").get(job.id) is None
    own.close()


def test_a_deleted_collections_jobs_are_gone_for_everyone_and_stay_gone_when_the_name_returns(docent, tmp_path):
    """Job reports name files: once an admin deletes a restricted collection, nobody reads its
    jobs by id, in this process or another, and a new collection of that name lists none."""
    from webapp.access import AccessControl, Principal
    from webapp.session import NotFound, UserSession

    home = tmp_path / "home"
    own = Docent(load_settings(home=str(home), auth="password"))
    own._embedder = docent.embedder
    access = AccessControl(own.settings)
    access.set_user("rita", "reader", [], "rita-pw")
    here, other = JobManager(home), JobManager(home)  # the API's and the app's
    admin = UserSession(own, access, here, Principal("ada", "admin", frozenset(), "password"))
    rita = UserSession(own, access, other, Principal("rita", "reader", frozenset(), "password"))
    admin.create_collection("merger", users=["ada"])
    job = admin.start_ingest([Source("Merger-plan-confidential.pdf", data=make_manual("merger", 2))], "merger")
    assert job.wait(timeout=120) and job.state == "finished"
    assert admin.cancel_job(job.id).state == "finished"  # cancelling an ended job changes nothing
    with pytest.raises(NotFound):
        rita.job(job.id)  # restricted: not hers to see
    admin.delete_collection("merger")
    for session in (admin, rita):
        with pytest.raises(NotFound):
            session.job(job.id)
    assert here.get(job.id) is None and other.get(job.id) is None and JobManager(home).get(job.id) is None
    admin.create_collection("merger")  # the name comes back, open to everyone
    assert rita.visible_jobs("merger") == [] and admin.visible_jobs("merger") == []
    access.close()
    own.close()
