"""Saved chats, sharing and feedback: through the HTTP API on the real engine and model, the
store on its own (titles, retention, a SIGKILL while a turn is saved), and a feedback export
read back by `docent eval`."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from support.answers import big_answer
from support.pdfgen import HANDBOOK_PAGES, HANDBOOK_TITLE, make_pdf
from support.team import SECRET_PAGES
from retrieval.evaluate import evaluate, load_eval_set
from retrieval.service import Docent
from retrieval.settings import load_settings
from webapp.access import AccessControl, hash_password
from webapp.api import create_app
from webapp.chats import DB_NAME, ChatStore, open_chats, title_from_question

TESTS = Path(__file__).resolve().parents[1]
QUESTION = "How much does a mooring permit cost?"


def _auth(key: str) -> dict:
    return {"Authorization": f"Bearer {key}"}


def _upload(client: TestClient, collection: str, name: str, data: bytes, key: str) -> dict:
    reply = client.post(
        f"/collections/{collection}/files?wait=true",
        files=[("files", (name, data, "application/pdf"))],
        headers=_auth(key),
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.fixture(scope="module")
def team(docent, tmp_path_factory):
    """ada (admin), rita (reader), fiona and fred (readers in 'finance'); 'payroll' is open only
    to finance; the handbook is in 'default'."""
    home = tmp_path_factory.mktemp("chats-team")
    users = {"ada": {"role": "admin", "password_hash": hash_password("ada-pw")}}
    own = Docent(load_settings(home=str(home), auth="password", users=users))
    own._embedder = docent.embedder
    access = AccessControl(own.settings)
    access.set_user("rita", "reader", [], "rita-pw")
    for name in ("fiona", "fred"):
        access.set_user(name, "reader", ["finance"], f"{name}-pw")
    keys = {name: access.create_api_key(name)[1] for name in ("ada", "rita", "fiona", "fred")}
    access.close()
    app = create_app(own.settings, docent=own)
    with TestClient(app) as client:
        admin = _auth(keys["ada"])
        assert client.post("/collections", json={"name": "payroll", "groups": ["finance"]}, headers=admin).is_success
        _upload(client, "payroll", "payroll.pdf", make_pdf(SECRET_PAGES), keys["ada"])
        _upload(client, "default", "handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE), keys["ada"])
        yield client, keys, app
    own.close()


def _ask(client: TestClient, chat_id: str, question: str, key: str) -> dict:
    reply = client.post(f"/chats/{chat_id}/ask", json={"question": question}, headers=_auth(key))
    assert reply.status_code == 200, reply.text
    return reply.json()


def _events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_a_chat_keeps_its_turns_with_citations_and_is_renamed_and_deleted(team):
    client, keys, _ = team
    rita = _auth(keys["rita"])
    chat = client.post("/chats", json={"collection": "default"}, headers=rita).json()
    assert chat["title"] == "New chat" and chat["turns"] == 0
    first = _ask(client, chat["id"], QUESTION, keys["rita"])
    assert "120 euros per month" in first["answer"]["answer"]
    assert first["answer"]["citations"][0]["source"] == "handbook.pdf"
    # The follow-up streams, is rewritten with the first turn as context, and is saved at the end.
    reply = client.post(f"/chats/{chat['id']}/ask/stream", json={"question": "And for a week?"}, headers=rita)
    events = _events(reply.text)
    assert {name for name, _ in events[:-1]} == {"token"} and events[-1][0] == "turn"
    second = events[-1][1]
    assert second["position"] == 1 and second["answer"]["rewritten"]

    saved = client.get(f"/chats/{chat['id']}", headers=rita).json()
    assert saved["title"] == QUESTION and saved["turns"] == 2 and not saved["read_only"]
    assert [t["question"] for t in saved["turn_list"]] == [QUESTION, "And for a week?"]
    assert saved["turn_list"][0]["answer"] == first["answer"]  # citations, highlights and all, as answered
    assert saved["turn_list"][1]["answer"]["rewritten"] == second["answer"]["rewritten"]

    later = client.post("/chats", json={"collection": "default", "title": "Boats"}, headers=rita).json()
    listed = client.get("/chats", params={"collection": "default"}, headers=rita).json()
    assert [c["id"] for c in listed] == [later["id"], chat["id"]]  # the most recently used first
    _ask(client, chat["id"], "Who issues permits?", keys["rita"])
    assert client.get("/chats", headers=rita).json()[0]["id"] == chat["id"]

    renamed = client.patch(f"/chats/{chat['id']}", json={"title": "Mooring"}, headers=rita).json()
    assert renamed["title"] == "Mooring"
    assert client.patch(f"/chats/{chat['id']}", json={"title": "  "}, headers=rita).status_code == 422
    assert client.delete(f"/chats/{later['id']}", headers=rita).status_code == 204
    assert client.get(f"/chats/{later['id']}", headers=rita).status_code == 404
    assert [c["title"] for c in client.get("/chats", headers=rita).json()] == ["Mooring"]


def test_another_user_sees_nothing_and_a_shared_chat_opens_read_only_for_those_with_access(team):
    client, keys, _ = team
    fiona = _auth(keys["fiona"])
    chat = client.post("/chats", json={"collection": "payroll"}, headers=fiona).json()
    assert "4.2 million" in _ask(client, chat["id"], "What is the payroll budget?", keys["fiona"])["answer"]["answer"]
    for other in ("rita", "fred"):  # not shared yet: no one else finds it, nor lists it
        assert client.get(f"/chats/{chat['id']}", headers=_auth(keys[other])).status_code == 404
        assert chat["id"] not in {c["id"] for c in client.get("/chats", headers=_auth(keys[other])).json()}
    assert client.patch(f"/chats/{chat['id']}", json={"shared": True}, headers=fiona).json()["shared"]

    shared = client.get(f"/chats/{chat['id']}", headers=_auth(keys["fred"]))
    assert shared.status_code == 200 and shared.json()["read_only"] and "4.2 million" in shared.text
    reply = client.post(f"/chats/{chat['id']}/ask", json={"question": "And in March?"}, headers=_auth(keys["fred"]))
    assert reply.status_code == 403 and "read only" in reply.json()["detail"]
    assert client.patch(f"/chats/{chat['id']}", json={"title": "x"}, headers=_auth(keys["fred"])).status_code == 403
    assert client.delete(f"/chats/{chat['id']}", headers=_auth(keys["fred"])).status_code == 403
    outsider = client.get(f"/chats/{chat['id']}", headers=_auth(keys["rita"]))  # shared, but payroll is not hers
    assert outsider.status_code == 404 and "4.2 million" not in outsider.text

    # fiona leaves finance: her chat still opens, without the collection's answers or passages.
    access = AccessControl(team[2].state.settings)
    access.set_user("fiona", "reader", [], None)
    try:
        lost = client.get(f"/chats/{chat['id']}", headers=fiona).json()
        assert "no longer have access" in lost["notice"] and lost["turn_list"][0]["answer"] is None
        assert "4.2 million" not in json.dumps(lost)
        answer_id = lost["turn_list"][0]["id"]
        assert client.post(f"/answers/{answer_id}/feedback", json={"rating": "up"}, headers=fiona).status_code == 404
    finally:
        access.set_user("fiona", "reader", ["finance"], None)
        access.close()
    # An admin may delete anyone's chat.
    assert client.delete(f"/chats/{chat['id']}", headers=_auth(keys["ada"])).status_code == 204
    assert client.get(f"/chats/{chat['id']}", headers=fiona).status_code == 404


def test_a_shared_chat_over_a_deleted_collection_is_not_opened_through_a_new_one_of_its_name(team):
    client, keys, _ = team
    admin, fiona = _auth(keys["ada"]), _auth(keys["fiona"])
    assert client.post("/collections", json={"name": "bonuses", "groups": ["finance"]}, headers=admin).is_success
    _upload(client, "bonuses", "payroll.pdf", make_pdf(SECRET_PAGES), keys["ada"])
    chat = client.post("/chats", json={"collection": "bonuses"}, headers=fiona).json()
    _ask(client, chat["id"], "What is the payroll budget?", keys["fiona"])
    assert client.patch(f"/chats/{chat['id']}", json={"shared": True}, headers=fiona).json()["shared"]
    # The finance-only collection is deleted and a new one, open to all, takes its name.
    assert client.delete("/collections/bonuses", headers=admin).status_code == 204
    assert client.post("/collections", json={"name": "bonuses"}, headers=admin).is_success
    opened = client.get(f"/chats/{chat['id']}", headers=_auth(keys["rita"]))
    assert opened.status_code == 404 and "4.2 million" not in opened.text
    own = client.get(f"/chats/{chat['id']}", headers=fiona).json()  # its owner keeps it
    assert not own["shared"] and "4.2 million" in json.dumps(own)
    assert client.delete("/collections/bonuses", headers=admin).status_code == 204


def test_a_chat_whose_documents_or_collection_are_gone_still_opens_and_says_so(team):
    client, keys, _ = team
    admin = _auth(keys["ada"])
    assert client.post("/collections", json={"name": "temporary"}, headers=admin).is_success
    _upload(client, "temporary", "handbook.pdf", make_pdf(HANDBOOK_PAGES, title=HANDBOOK_TITLE), keys["ada"])
    chat = client.post("/chats", json={"collection": "temporary"}, headers=admin).json()
    _ask(client, chat["id"], QUESTION, keys["ada"])
    fresh = client.get(f"/chats/{chat['id']}", headers=admin).json()
    assert fresh["notice"] is None and not fresh["turn_list"][0]["answer"]["citations"][0]["gone"]

    client.delete("/collections/temporary/documents", params={"source": "handbook.pdf"}, headers=admin)
    removed = client.get(f"/chats/{chat['id']}", headers=admin).json()
    assert "removed" in removed["notice"] and removed["turn_list"][0]["answer"]["citations"][0]["gone"]
    assert "120 euros" in removed["turn_list"][0]["answer"]["answer"]  # the answer as it was given

    assert client.delete("/collections/temporary", headers=admin).status_code == 204
    deleted = client.get(f"/chats/{chat['id']}", headers=admin)
    assert deleted.status_code == 200 and "was deleted" in deleted.json()["notice"]
    assert deleted.json()["turn_list"][0]["answer"]["citations"][0]["gone"]
    again = client.post(f"/chats/{chat['id']}/ask", json={"question": QUESTION}, headers=admin)
    assert again.status_code == 404 and "temporary" in again.json()["detail"]


def test_feedback_reaches_the_admins_and_its_export_is_a_set_docent_eval_reads(team, tmp_path):
    client, keys, app = team
    rita = _auth(keys["rita"])
    chat = client.post("/chats", json={"collection": "default"}, headers=rita).json()
    good = _ask(client, chat["id"], QUESTION, keys["rita"])
    bad = _ask(client, chat["id"], "Who won the football cup?", keys["rita"])
    given = client.post(
        f"/answers/{good['id']}/feedback", json={"rating": "up", "comment": "exactly right"}, headers=rita
    ).json()
    assert given["question"] == QUESTION and given["citations"][0] == {"ref": 1, "source": "handbook.pdf", "page": 3}
    assert client.post(f"/answers/{bad['id']}/feedback", json={"rating": "down"}, headers=rita).is_success
    assert client.post(f"/answers/{bad['id']}/feedback", json={"rating": "meh"}, headers=rita).status_code == 422
    assert client.post("/answers/nope/feedback", json={"rating": "up"}, headers=rita).status_code == 404
    assert client.get("/feedback", headers=rita).status_code == 403  # admins only

    table = client.get("/feedback", params={"collection": "default"}, headers=_auth(keys["ada"])).json()
    assert [(f["question"], f["rating"], f["user"]) for f in table[:2]] == [
        ("Who won the football cup?", "down", "rita"),
        (QUESTION, "up", "rita"),
    ]
    assert table[1]["comment"] == "exactly right" and table[1]["backend"].startswith("extractive")
    # Deleting the chat keeps what was said about its answers.
    assert client.delete(f"/chats/{chat['id']}", headers=rita).status_code == 204
    export = client.get("/feedback/export", params={"collection": "default"}, headers=_auth(keys["ada"]))
    assert export.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in export.text.splitlines()]
    assert [line["question"] for line in lines] == [QUESTION]  # thumbs-up answers only

    path = tmp_path / "feedback-default.jsonl"
    path.write_text(export.text)
    eval_set = load_eval_set(path)
    assert eval_set.collection == "default" and eval_set.qrels == {"1": {"handbook.pdf#3": 1}}
    results = evaluate(app.state.docent, eval_set, collection="default")
    assert results["default"]["page_hit@1"] == 1.0


def test_a_removed_users_chats_go_with_them(team):
    client, keys, _ = team
    admin = _auth(keys["ada"])
    assert client.put("/users/tom", json={"role": "reader", "password": "tom-pw-long"}, headers=admin).is_success
    tom = client.post("/users/tom/keys", json={}, headers=admin).json()["key"]
    chat = client.post("/chats", json={"collection": "default"}, headers=_auth(tom)).json()
    assert client.get("/chats", params={"owner": "tom"}, headers=admin).json()[0]["id"] == chat["id"]
    assert client.get("/chats", params={"owner": "ada"}, headers=_auth(tom)).status_code == 403
    assert client.delete("/users/tom", headers=admin).status_code == 204
    # Someone given the name later starts with nothing.
    assert client.put("/users/tom", json={"role": "reader", "password": "tom-pw-long"}, headers=admin).is_success
    tom = client.post("/users/tom/keys", json={}, headers=admin).json()["key"]
    assert client.get("/chats", headers=_auth(tom)).json() == []


def test_chats_unused_past_the_retention_are_deleted_on_start(tmp_path):
    store = ChatStore(tmp_path)
    old, recent = store.create("local", "default", "Old"), store.create("local", "default", "Recent")
    store.close()
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("UPDATE chats SET updated_at = '2020-01-01T00:00:00.000000+00:00' WHERE id = ?", (old.id,))
    kept = open_chats(load_settings(home=str(tmp_path)))  # no retention: kept forever
    assert {c.id for c in kept.list("local")} == {old.id, recent.id}
    kept.close()
    pruned = open_chats(load_settings(home=str(tmp_path), chat_retention_days=30))
    assert [c.id for c in pruned.list("local")] == [recent.id]
    pruned.close()


def test_a_title_is_the_first_question_cut_at_a_word():
    assert title_from_question("  What is\nthe fee?  ") == "What is the fee?"
    long = "How much does a mooring permit cost for a sailing boat longer than twelve metres in the summer season?"
    title = title_from_question(long)
    assert title.endswith("…") and len(title) <= 80 and long.startswith(title[:-1])


def test_sigkill_while_a_turn_is_saved_leaves_the_whole_turn_or_none_of_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])))
    store = ChatStore(tmp_path)
    chat = store.create("local", "default")
    store.close()
    for kill in range(4):
        child = subprocess.Popen(
            [sys.executable, str(TESTS / "support" / "chat_crash_child.py"), str(tmp_path), chat.id],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert child.stdout.readline().startswith("saved"), "the child saved nothing"
        time.sleep(0.05 + 0.1 * kill)
        child.send_signal(signal.SIGKILL)
        said = child.stdout.read().splitlines()
        child.wait()
        saved = {int(line.split()[1]) for line in said if line.startswith("saved")}

        store = ChatStore(tmp_path)
        turns = store.turns(chat.id)
        assert [t.position for t in turns] == list(range(len(turns)))
        for turn in turns:  # each one whole: every citation with its passage
            assert turn.answer.to_dict() == big_answer(turn.position).to_dict()
        assert saved <= {t.position for t in turns}
        assert store.info(chat.id).updated_at == turns[-1].asked_at
        store.close()
