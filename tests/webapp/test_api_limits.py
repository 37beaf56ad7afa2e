"""What the API reads before a route runs: no body from a caller without a key, and no body past
its limit. Driven at the ASGI level, so the test sees exactly how much of a body was pulled."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from retrieval.service import Docent
from retrieval.settings import load_settings
from support.pdfgen import HANDBOOK_PAGES, make_pdf
from webapp.access import AccessControl, hash_password
from webapp.api import create_app

MB = 1 << 20


def _call(app, path: str, chunks: list[bytes], headers: dict[str, str]) -> tuple[int, dict, int]:
    """(status, response headers, body messages pulled) for a POST sent as chunks."""
    pulled = 0

    async def receive():
        nonlocal pulled
        if pulled < len(chunks):
            pulled += 1
            return {"type": "http.request", "body": chunks[pulled - 1], "more_body": pulled < len(chunks)}
        await asyncio.sleep(3600)  # a client that sends nothing more

    sent = []

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000),
    }  # fmt: skip
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 60))
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, pulled


@pytest.fixture(scope="module")
def guarded(docent, tmp_path_factory):
    """Sign-in on, one editor with a key, uploads limited to 64 KiB a file."""
    home = tmp_path_factory.mktemp("api-limits")
    users = {
        "ed": {"role": "editor", "password_hash": hash_password("ed-pw")},
        "rita": {"role": "reader", "password_hash": hash_password("rita-pw")},
    }
    own = Docent(load_settings(home=str(home), auth="password", users=users, max_upload_bytes=64 * 1024))
    own._embedder = docent.embedder
    access = AccessControl(own.settings)
    key = access.create_api_key("ed")[1]
    reader_key = access.create_api_key("rita")[1]
    access.close()
    app = create_app(own.settings, docent=own)
    yield app, key, home, reader_key
    own.close()


def test_a_request_without_a_valid_key_is_refused_before_its_body_is_read(guarded):
    app, _, _, _ = guarded
    for headers in ({}, {"authorization": "Bearer docent_wrong"}):
        status, reply_headers, pulled = _call(
            app, "/collections/default/search", [b"x" * MB] * 300, {"content-type": "application/json", **headers}
        )
        assert status == 401 and pulled == 0 and reply_headers["www-authenticate"] == "Bearer"


def test_a_body_past_its_limit_is_refused_as_announced_or_as_it_arrives(guarded):
    app, key, _, reader_key = guarded
    auth = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    status, _, pulled = _call(
        app, "/collections/default/search", [b"x" * MB] * 300, {**auth, "content-length": "314572800"}
    )
    assert status == 413 and pulled == 0
    status, _, pulled = _call(app, "/collections/default/search", [b" " * (400 * 1024)] * 300, auth)  # no length
    assert status == 413 and pulled == 3  # the third block passed 1 MiB: nothing more was read
    status, _, _ = _call(app, "/collections/default/search", [b'{"query": "mooring"}'], auth)
    assert status == 200


def test_an_invalid_request_does_not_get_its_input_echoed_back(guarded):
    app, key, _, reader_key = guarded
    with TestClient(app) as client:
        reply = client.post(
            "/collections/default/search", json={"query": "q" * 500_000}, headers={"authorization": f"Bearer {key}"}
        )
    assert reply.status_code == 422 and len(reply.content) < 2000 and "500,000 characters" in reply.text


def test_a_file_past_the_upload_limit_is_refused_by_name_and_nothing_is_kept(guarded):
    app, key, home, _ = guarded
    small, large = make_pdf(HANDBOOK_PAGES[:1]), make_pdf(HANDBOOK_PAGES * 40)
    assert len(small) < 64 * 1024 < len(large)
    with TestClient(app) as client:
        reply = client.post(
            "/collections/default/files?wait=true",
            files=[
                ("files", ("small.pdf", small, "application/pdf")),
                ("files", ("large.pdf", large, "application/pdf")),
            ],
            headers={"authorization": f"Bearer {key}"},
        )
        assert reply.status_code == 413 and "large.pdf is larger than this server accepts (65,536 bytes)" in reply.text
        documents = client.get("/collections/default/documents", headers={"authorization": f"Bearer {key}"}).json()
    assert documents == [] and not list(Path(home, "uploads").glob("upload-*"))


def multipart(files: list[tuple[str, int]], boundary: str = "docent-test-boundary") -> list[bytes]:
    """A multipart upload of files of these sizes, in blocks of 64 KiB as a client sends it."""
    body = b""
    for name, size in files:
        body += (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
                "Content-Type: application/pdf\r\n\r\n"
            ).encode()
            + b"%" * size
            + b"\r\n"
        )
    body += f"--{boundary}--\r\n".encode()
    return [body[i : i + 64 * 1024] for i in range(0, len(body), 64 * 1024)]


def test_an_upload_the_caller_may_not_make_is_refused_before_its_body_is_read(guarded):
    app, key, _, reader_key = guarded
    blocks = multipart([("big.pdf", 300 * MB)])[:50] + [b"%" * MB] * 250  # 300 MB, sent as it would be
    content_type = {"content-type": "multipart/form-data; boundary=docent-test-boundary"}
    reader = {"authorization": f"Bearer {reader_key}", **content_type}
    status, _, pulled = _call(app, "/collections/default/files", blocks, reader)
    assert status == 403 and pulled == 0
    editor = {"authorization": f"Bearer {key}", **content_type}
    status, _, pulled = _call(app, "/collections/elsewhere/files", blocks, editor)
    assert status == 404 and pulled == 0  # no such collection: refused before the body too


def test_a_file_past_the_limit_is_refused_as_soon_as_it_passes_it(guarded):
    app, key, home, _ = guarded
    headers = {
        "authorization": f"Bearer {key}",
        "content-type": "multipart/form-data; boundary=docent-test-boundary",
    }
    blocks = multipart([("small.pdf", 1000), ("huge.pdf", 40 * MB)])  # no length announced
    status, _, pulled = _call(app, "/collections/default/files", blocks, headers)
    assert status == 413 and pulled <= 3 and len(blocks) > 600  # 64 KiB + headers passed: nothing more read
    assert not list(Path(home, "uploads").glob("upload-*"))
