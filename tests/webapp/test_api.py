"""The HTTP API: every route on the real engine and model, roles and collection access, and a
`docent api` process answering on 127.0.0.1."""

from __future__ import annotations

import json
import urllib.request

import pytest
from fastapi.testclient import TestClient

from support.docents import docent_on
from support.net import free_port
from support.processes import api_process
from support.officegen import make_docx, make_pptx, make_xlsx
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_manual, make_pdf
from support.team import SECRET_PAGES
from webapp.access import AccessControl, hash_password
from webapp.api import create_app
from webapp.uploads import UploadSpool

QUESTION = "How much does a mooring permit cost?"


def _upload(client: TestClient, collection: str, files: list[tuple[str, bytes]], key: str | None = None):
    return client.post(
        f"/collections/{collection}/files?wait=true",
        files=[("files", (name, data, "application/pdf")) for name, data in files],
        headers=_auth(key),
    )


def _auth(key: str | None) -> dict:
    return {"Authorization": f"Bearer {key}"} if key else {}


# ---- one local user (sign-in off) --------------------------------------------------------------


@pytest.fixture(scope="module")
def open_api(docent, tmp_path_factory):
    own = docent_on(docent, tmp_path_factory.mktemp("api-open"))
    with TestClient(create_app(own.settings, docent=own)) as client:
        yield client
    own.close()


def test_office_files_go_in_through_the_api_with_their_provenance(open_api):
    assert open_api.post("/collections", json={"name": "office"}).status_code in (200, 201)
    reply = open_api.post(
        "/collections/office/files?wait=true",
        files=[
            ("files", ("handbook.docx", make_docx(), "application/octet-stream")),
            ("files", ("review.pptx", make_pptx(), "application/octet-stream")),
            ("files", ("revenue.xlsx", make_xlsx(6), "application/octet-stream")),
        ],
    )
    assert reply.status_code == 200, reply.text
    assert {o["source"]: o["status"] for o in reply.json()["outcomes"]} == {
        "handbook.docx": "added",
        "review.pptx": "added",
        "revenue.xlsx": "added",
    }
    hits = open_api.post("/collections/office/search", json={"query": "crane lift price", "k": 1}).json()["hits"]
    assert hits[0]["source"] == "review.pptx" and hits[0]["section"] == "Slide 2: Prices"


def test_upload_search_ask_and_stream_through_the_api(open_api):
    assert open_api.get("/health").json()["status"] == "ok"
    reply = _upload(
        open_api,
        "default",
        [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE)), ("broken.pdf", b"not a pdf at all")],
    )
    assert reply.status_code == 200, reply.text
    job = reply.json()
    assert job["state"] == "finished" and job["done"] == 2
    outcomes = {o["source"]: o for o in job["outcomes"]}
    assert outcomes["handbook.pdf"]["status"] == "added" and outcomes["handbook.pdf"]["pages"] == 4
    assert outcomes["broken.pdf"]["status"] == "failed" and outcomes["broken.pdf"]["error"]

    documents = open_api.get("/collections/default/documents").json()
    assert [d["source"] for d in documents] == ["handbook.pdf"]

    hits = open_api.post("/collections/default/search", json={"query": "mooring permit fee", "k": 3}).json()["hits"]
    assert hits and hits[0]["source"] == "handbook.pdf" and hits[0]["page"] == 3

    answer = open_api.post("/collections/default/ask", json={"question": QUESTION}).json()
    assert answer["answered"] and "120 euros per month" in answer["answer"]
    assert answer["citations"][0]["page"] == 3 and answer["citations"][0]["ref"] == 1

    with open_api.stream("POST", "/collections/default/ask/stream", json={"question": QUESTION}) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        events = [block for block in stream.iter_text() for block in block.split("\n\n") if block.strip()]
    parsed = [
        (e.split("\n")[0].removeprefix("event: "), json.loads(e.split("\n")[1].removeprefix("data: "))) for e in events
    ]
    assert parsed[-1][0] == "answer" and parsed[-1][1]["citations"]
    assert "".join(d["text"] for name, d in parsed if name == "token") == parsed[-1][1]["answer"]

    job_id = job["id"]
    assert open_api.get(f"/jobs/{job_id}").json()["state"] == "finished"
    assert job_id in [j["id"] for j in open_api.get("/jobs").json()]

    assert open_api.delete("/collections/default/documents", params={"source": "handbook.pdf"}).status_code == 204
    assert open_api.get("/collections/default/documents").json() == []
    assert open_api.delete("/collections/default/documents", params={"source": "handbook.pdf"}).status_code == 404
    removed = open_api.get("/collections/default/removed").json()
    assert [(r["source"], r["title"]) for r in removed] == [("handbook.pdf", HANDBOOK_TITLE)]
    restore = "/collections/default/removed/restore"
    assert open_api.post(restore, params={"source": "handbook.pdf"}).status_code == 204
    assert [d["source"] for d in open_api.get("/collections/default/documents").json()] == ["handbook.pdf"]
    again = open_api.post(restore, params={"source": "handbook.pdf"})
    assert again.status_code == 404 and "no removed document 'handbook.pdf'" in again.json()["detail"]
    assert open_api.delete("/collections/default/documents", params={"source": "handbook.pdf"}).status_code == 204


def test_files_sent_without_a_name_do_not_replace_each_other(open_api):
    for text in ("The first unnamed note is about anchors.", "The second unnamed note is about buoys."):
        reply = _upload(open_api, "default", [("  ", make_pdf([[text]]))])  # a name of blanks
        assert reply.status_code == 200 and reply.json()["outcomes"][0]["status"] == "added", reply.text
    names = [d["source"] for d in open_api.get("/collections/default/documents").json()]
    assert len([n for n in names if n.startswith("upload-")]) == 2


def test_bad_requests_get_clear_errors_not_crashes(open_api):
    assert open_api.post("/collections/default/search", json={"query": ""}).status_code == 422
    for blank in (" ", " \n\t "):
        assert open_api.post("/collections/default/search", json={"query": blank}).status_code == 422
        assert open_api.post("/collections/default/ask", json={"question": blank}).status_code == 422
        assert open_api.post("/collections/default/ask/stream", json={"question": blank}).status_code == 422
    assert open_api.post("/collections/default/search", json={"query": "x", "k": 0}).status_code == 422
    assert open_api.post("/collections/bad name!/search", json={"query": "x"}).status_code == 422
    assert open_api.get("/jobs/nosuchjob").status_code == 404
    assert open_api.post("/collections/default/urls", json={"urls": ["ftp://example.org/"]}).status_code == 422
    assert open_api.delete("/collections/never-made").status_code == 404
    # Naming a collection that does not exist finds nothing, and creates nothing.
    assert open_api.post("/collections/never-made/search", json={"query": "x"}).status_code == 404
    assert open_api.get("/collections/never-made/documents").status_code == 404
    assert "never-made" not in open_api.get("/collections").json()


def test_a_url_ingest_of_a_dead_address_fails_in_its_job_with_the_reason(open_api):
    dead = f"http://127.0.0.1:{free_port()}/gone.html"
    job = open_api.post("/collections/default/urls?wait=true", json={"urls": [dead]}).json()
    assert job["state"] == "finished" and job["outcomes"][0]["status"] == "failed"
    assert job["outcomes"][0]["error"]


# ---- sign-in on: roles and collection access ---------------------------------------------------


@pytest.fixture(scope="module")
def team(docent, tmp_path_factory):
    """An admin and an editor from the settings file; a reader in no group and a reader in
    'finance' added by the admin; a collection 'payroll' open only to the finance group."""
    home = tmp_path_factory.mktemp("api-team")
    users = {
        "ada": {"role": "admin", "password_hash": hash_password("ada-pw")},
        "ed": {"role": "editor", "password_hash": hash_password("ed-pw")},
    }
    own = docent_on(docent, home, auth="password", users=users)
    access = AccessControl(own.settings)
    access.set_user("rita", "reader", [], "rita-pw")
    access.set_user("fiona", "reader", ["finance"], "fiona-pw")
    keys = {name: access.create_api_key(name)[1] for name in ("ada", "ed", "rita", "fiona")}
    access.close()
    with TestClient(create_app(own.settings, docent=own)) as client:
        assert (
            client.post(
                "/collections", json={"name": "payroll", "groups": ["finance"]}, headers=_auth(keys["ada"])
            ).status_code
            == 201
        )
        assert (
            _upload(client, "payroll", [("payroll.pdf", make_pdf(SECRET_PAGES))], keys["ada"]).json()["state"]
            == "finished"
        )
        reply = _upload(
            client, "default", [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))], keys["ed"]
        )
        assert reply.json()["outcomes"][0]["status"] == "added"
        yield client, keys
    own.close()


def test_without_a_valid_key_nothing_but_health_answers(team):
    client, _ = team
    assert client.get("/health").status_code == 200
    assert client.get("/collections").status_code == 401
    assert (
        client.post("/collections/default/search", json={"query": "x"}, headers=_auth("docent_bad_key")).status_code
        == 401
    )


def test_a_reader_can_search_and_ask_but_not_ingest_or_remove(team):
    client, keys = team
    rita = _auth(keys["rita"])
    assert client.get("/me", headers=rita).json() == {"name": "rita", "role": "reader", "groups": [], "via": "api_key"}
    answer = client.post("/collections/default/ask", json={"question": QUESTION}, headers=rita).json()
    assert "120 euros per month" in answer["answer"]
    assert _upload(client, "default", [("x.pdf", make_pdf(HANDBOOK_PAGES))], keys["rita"]).status_code == 403
    assert (
        client.post("/collections/default/urls", json={"urls": ["http://127.0.0.1/"]}, headers=rita).status_code == 403
    )
    assert (
        client.post("/collections/default/crawls", json={"url": "http://127.0.0.1/"}, headers=rita).status_code == 403
    )
    reply = client.delete("/collections/default/documents", params={"source": "handbook.pdf"}, headers=rita)
    assert reply.status_code == 403 and "reader" in reply.json()["detail"]
    assert [d["source"] for d in client.get("/collections/default/documents", headers=rita).json()] == ["handbook.pdf"]
    assert (
        client.post("/collections", json={"name": "mine"}, headers=_auth(keys["ed"])).status_code == 403
    )  # editors too


def test_a_collection_outside_a_users_access_gives_them_nothing(team):
    client, keys = team
    for outsider in ("rita", "ed"):
        headers = _auth(keys[outsider])
        assert "payroll" not in client.get("/collections", headers=headers).json()
        for method, path, body in (
            ("post", "/collections/payroll/search", {"query": "payroll budget"}),
            ("post", "/collections/payroll/ask", {"question": "What is the payroll budget?"}),
            ("post", "/collections/payroll/ask/stream", {"question": "What is the payroll budget?"}),
            ("get", "/collections/payroll/documents", None),
        ):
            reply = getattr(client, method)(path, headers=headers, **({"json": body} if body else {}))
            assert reply.status_code == 404 and "4.2 million" not in reply.text, (outsider, path)
        assert all(j["collection"] != "payroll" for j in client.get("/jobs", headers=headers).json())
        # Searching their own collection never cites the other one.
        answer = client.post(
            "/collections/default/ask", json={"question": "What is the payroll budget?"}, headers=headers
        ).json()
        assert "4.2 million" not in json.dumps(answer)
    fiona = _auth(keys["fiona"])
    assert "payroll" in client.get("/collections", headers=fiona).json()
    answer = client.post(
        "/collections/payroll/ask", json={"question": "What is the payroll budget?"}, headers=fiona
    ).json()
    assert "4.2 million" in answer["answer"] and answer["citations"][0]["source"] == "payroll.pdf"


def test_admins_manage_users_and_keys_through_the_api(team):
    client, keys = team
    ada, rita = _auth(keys["ada"]), _auth(keys["rita"])
    assert client.get("/users", headers=rita).status_code == 403
    reply = client.put(
        "/users/nils", json={"role": "editor", "groups": ["ops"], "password": "long enough"}, headers=ada
    )
    assert reply.status_code == 200 and reply.json() == {
        "name": "nils",
        "role": "editor",
        "groups": ["ops"],
        "in_settings": False,
    }
    assert {u["name"]: u["in_settings"] for u in client.get("/users", headers=ada).json()}["ada"] is True
    assert client.put("/users/ed", json={"role": "reader"}, headers=ada).status_code == 403  # fixed by the settings
    new = client.post("/users/nils/keys", json={"label": "ci"}, headers=ada)
    assert new.status_code == 201
    nils = _auth(new.json()["key"])
    assert client.get("/me", headers=nils).json()["role"] == "editor"
    assert new.json()["key"] not in client.get("/keys", headers=ada).text  # only ids and labels are listed
    assert client.post("/users/nobody/keys", json={}, headers=ada).status_code == 404
    assert client.delete("/users/nils", headers=ada).status_code == 204
    assert client.get("/me", headers=nils).status_code == 401  # the key went with its user
    assert client.delete("/keys/nosuchkey", headers=ada).status_code == 404


def test_a_revoked_key_stops_working(team, docent):
    client, keys = team
    access = client.app.state.access
    key_id, key = access.create_api_key("fiona", "laptop")
    assert client.get("/me", headers=_auth(key)).status_code == 200
    assert access.revoke_api_key(key_id)
    assert client.get("/me", headers=_auth(key)).status_code == 401


# ---- the API fuzzed from its own OpenAPI document ----------------------------------------------


def test_no_input_the_openapi_document_allows_makes_the_api_fail(docent, tmp_path):
    schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is not installed")
    from hypothesis import HealthCheck, given, settings as hypothesis_settings

    own = docent_on(docent, tmp_path / "home")
    app = create_app(own.settings, docent=own)
    with TestClient(app) as client:  # something to find, so searches and answers do real work
        assert (
            _upload(client, "default", [("handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE))]).status_code
            == 200
        )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures = []
    for operation in schema.get_all_operations():
        operation = operation.ok()
        strategy = operation.as_strategy()

        @hypothesis_settings(max_examples=15, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=strategy)
        def check(case):
            if case.path == "/collections/{collection}" and case.method == "DELETE":
                case.path_parameters = {"collection": "fuzz-target"}  # never delete what other cases use
            response = case.call()
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}")

        check()
    for job in app.state.jobs.jobs():  # fuzzed crawls of addresses that go nowhere
        job.cancel.set()
    own.close()
    assert not failures, "\n".join(failures[:10])


# ---- `docent api` as a process ----------------------------------------------------------------


def test_docent_api_serves_on_localhost(tmp_path):
    with api_process(tmp_path / "home", tmp_path / "api.log") as (_, base):
        health = json.loads(urllib.request.urlopen(f"{base}/health", timeout=2).read())
        assert health["status"] == "ok" and health["auth"] == "none"
        spec = json.loads(urllib.request.urlopen(f"{base}/openapi.json", timeout=5).read())
        assert "/collections/{collection}/ask/stream" in spec["paths"]


def test_uploads_left_by_a_killed_server_are_removed_on_the_next_start(tmp_path):
    home = tmp_path / "home"
    body, boundary = bytearray(), "docent-upload-boundary"
    for n in range(6):
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="manual-{n}.pdf"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + make_manual(f"Upload {n}", 20)
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    with api_process(home, tmp_path / "first.log") as (process, base):
        request = urllib.request.Request(
            f"{base}/collections/default/files",
            data=bytes(body),
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
        assert urllib.request.urlopen(request, timeout=60).status == 202
        left = list((home / "uploads").glob("upload-*"))  # the job is still ingesting them
        assert len(left) == 1
        process.kill()
        process.wait()
    assert left[0].exists()
    held = UploadSpool(home)  # a live process's upload: not to be touched
    try:
        with api_process(home, tmp_path / "second.log"):
            assert not left[0].exists() and held.path.exists()
    finally:
        held.remove()
    assert list((home / "uploads").glob("upload-*")) == []
