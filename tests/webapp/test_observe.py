"""Running Docent as a team service: Prometheus metrics with the right counts, a sample Grafana
dashboard that names only real series, request ids and JSON log lines without questions,
readiness, and a request-rate limit per key."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from support.docents import docent_on
from support.processes import api_process
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf
from webapp.access import AccessControl
from webapp.api import create_app
from retrieval.service import Docent
from retrieval.settings import load_settings


DASHBOARD = Path(__file__).resolve().parents[2] / "docs" / "grafana-dashboard.json"
QUESTION = "How much does a mooring permit cost?"


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of a /metrics answer: (name, sorted labels) -> value."""
    reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(reply.text)
        for s in family.samples
    }


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def served(docent, tmp_path_factory):
    own = docent_on(docent, tmp_path_factory.mktemp("observed"))
    with TestClient(create_app(own.settings, docent=own)) as client:
        yield client
    own.close()


def test_metrics_count_searches_asks_and_an_ingest(served):
    before = scrape(served)
    assert served.post("/collections", json={"name": "harbour"}).status_code in (200, 201)
    pdf = make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)
    reply = served.post(
        "/collections/harbour/files?wait=true", files=[("files", ("handbook.pdf", pdf, "application/pdf"))]
    )
    assert reply.status_code == 200, reply.text
    outcome = reply.json()["outcomes"][0]
    assert outcome["status"] == "added"
    for query in ("mooring permit", "harbour office hours"):
        assert served.post("/collections/harbour/search", json={"query": query, "mode": "hybrid"}).status_code == 200
    assert served.post("/collections/harbour/ask", json={"question": QUESTION}).status_code == 200
    assert served.post("/collections/nowhere/search", json={"query": "x"}).status_code == 404
    after = scrape(served)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    search = {"route": "/collections/{collection}/search", "method": "POST"}
    assert grew("docent_http_requests_total", **search, status="200") == 2
    assert grew("docent_http_requests_total", **search, status="404") == 1  # the template, not the path
    assert grew("docent_http_request_duration_seconds_count", **search) == 3
    assert grew("docent_search_duration_seconds_count", mode="hybrid") == 2
    assert grew("docent_ask_duration_seconds_count") == 1 and grew("docent_ask_first_token_seconds_count") == 1
    assert grew("docent_ingest_files_total", status="added") == 1
    assert grew("docent_ingest_pages_total") == outcome["pages"] == len(HANDBOOK_PAGES)
    assert grew("docent_ingest_chunks_total") == outcome["chunks"]
    assert grew("docent_ingest_page_duration_seconds_count") == 1
    assert value(after, "docent_collection_documents", collection="harbour") == 1
    assert value(after, "docent_collection_chunks", collection="harbour") == outcome["chunks"]
    assert value(after, "docent_index_lag_changes", collection="harbour") == 0
    assert value(after, "docent_jobs", kind="ingest", state="finished") >= 1
    assert value(after, "docent_embedding_model_loaded") == 1
    info = [labels for (name, labels) in after if name == "docent_embedding_info"]
    assert len(info) == 1 and dict(info[0])["backend"] not in ("", "not loaded")
    assert value(after, "process_resident_memory_bytes") > 0
    # No label holds a question, a query or a file name.
    text = served.get("/metrics").text
    assert "mooring" not in text and "handbook.pdf" not in text and "nowhere" not in text


def test_the_sample_dashboard_names_only_series_that_exist(served):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert len(expressions) >= 8
    exposed = {f.name for f in text_string_to_metric_families(served.get("/metrics").text)}
    exposed |= {f"{n}_total" for n in exposed} | {f"{n}_{p}" for n in exposed for p in ("bucket", "count", "sum")}
    exposed |= {f"{n}_info" for n in exposed}
    named = {m for e in expressions for m in re.findall(r"\b((?:docent|process)_[a-z_]+)\b", e)}
    assert named and named <= exposed, f"the dashboard names series that do not exist: {named - exposed}"


def test_every_answer_carries_a_request_id(served):
    reply = served.get("/health")
    assert re.fullmatch(r"[0-9a-f]{16}", reply.headers["x-request-id"])
    assert served.get("/health", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    spoofed = served.get("/health", headers={"X-Request-ID": "bad id\nwith a line"}).headers["x-request-id"]
    assert spoofed != "bad id\nwith a line" and re.fullmatch(r"[0-9a-f]{16}", spoofed)


def test_ready_only_once_the_model_is_loaded(tmp_path):
    fresh = Docent(load_settings(home=str(tmp_path / "home")))
    try:
        with TestClient(create_app(fresh.settings, docent=fresh)) as client:
            reply = client.get("/ready")
            assert reply.status_code == 503
            assert reply.json()["problems"] == ["the embedding model is not loaded yet"]
            assert client.get("/health").status_code == 200  # alive all the same
            fresh.load_model()
            assert client.get("/ready").status_code == 200 and client.get("/ready").json()["status"] == "ready"
    finally:
        fresh.close()


def test_ready_says_when_the_data_home_is_gone(docent, tmp_path):
    """As when its volume is unmounted under a running server (a permission test would pass as root)."""
    home = tmp_path / "home"
    own = docent_on(docent, home)
    try:
        with TestClient(create_app(own.settings, docent=own)) as client:
            assert client.get("/ready").status_code == 200
            home.rename(tmp_path / "elsewhere")
            reply = client.get("/ready")
            assert reply.status_code == 503 and f"the data home {home} is not writable" in reply.json()["problems"][0]
            assert client.get("/health").status_code == 200
    finally:
        own.close()


def test_each_key_has_its_own_allowance_of_requests(docent, tmp_path):
    home = tmp_path / "home"
    own = docent_on(docent, home, auth="password", rate_limit_per_minute=3)
    settings = own.settings
    access = AccessControl(settings)
    for name in ("rita", "rob"):
        access.set_user(name, "reader", password="a long password")
    rita, rob = access.create_api_key("rita")[1], access.create_api_key("rob")[1]
    try:
        with TestClient(create_app(settings, docent=own)) as client:
            for _ in range(3):
                assert client.get("/me", headers={"Authorization": f"Bearer {rita}"}).status_code == 200
            refused = client.get("/me", headers={"Authorization": f"Bearer {rita}"})
            assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 20
            assert "at most 3 a minute" in refused.json()["detail"]
            assert client.get("/me", headers={"Authorization": f"Bearer {rob}"}).status_code == 200
            assert client.get("/health").status_code == 200  # probes are never limited
            assert scrape(client)  # nor the scrape
    finally:
        own.close()


def test_docent_api_logs_json_lines_with_request_ids_and_no_question(tmp_path):
    log_path = tmp_path / "api.log"
    with api_process(tmp_path / "home", log_path, DOCENT_LOG_FORMAT="json") as (_, base):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{base}/ready", timeout=5).read()
                break
            except OSError:  # 503 until the model is in
                time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}/collections/default/ask",
            data=json.dumps({"question": "What does the secret mooring clause say?"}).encode(),
            headers={"Content-Type": "application/json", "X-Request-ID": "ask-1"},
        )
        try:
            urllib.request.urlopen(request, timeout=60).read()
        except urllib.error.HTTPError as exc:
            assert exc.code == 404  # no collection yet: still a logged request
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    asked = [line for line in lines if line.get("request_id") == "ask-1"]
    assert asked and asked[-1]["route"] == "/collections/{collection}/ask" and asked[-1]["status"] in (200, 404)
    assert asked[-1]["collection"] == "default" and asked[-1]["user"] == "local"
    assert "duration_ms" in asked[-1]
    assert "mooring" not in log_path.read_text()
