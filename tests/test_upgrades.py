"""A data home written by release 0.1.0 (tests/data/home-0.1.0: a collection with its index
files and kept PDF, a user with two API keys, a saved chat with feedback) and a backup taken by
it (tests/data/backup-0.1.0) open in this release and every later one: each schema change
migrates them, or is refused with a message that names the version. Keep both fixtures as
they are; add a new pair when a release changes what it writes."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from retrieval.service import Source
from retrieval.store import CollectionError
from support.docents import docent_on
from support.pdfgen import make_manual
from webapp.access import AccessControl
from webapp.backup import restore_backup, verify_backup
from webapp.chats import ChatStore

DATA = Path(__file__).parent / "data"


def check_home(docent, home: Path) -> None:
    own = docent_on(docent, home, auth="password")
    try:
        assert own.collection_names() == ["manuals"]
        (document,) = own.documents(collection="manuals")
        assert (document.source, document.pages, document.chunks) == ("pump-manual.pdf", 2, 2)
        assert own.collection("manuals").original_file("pump-manual.pdf").read_bytes().startswith(b"%PDF")
        hits = own.search("valve 33 stays shut below", k=2, collection="manuals")
        assert (hits[0].source, hits[0].page) == ("pump-manual.pdf", 1)
        access = AccessControl(own.settings)
        assert access.sign_in("ada", "fixture password 1").role == "editor"
        assert len(access.api_keys("ada")) == 2
        chats = ChatStore(home)
        (chat,) = chats.list("ada")
        assert (chat.title, chat.collection, chat.turns) == ("Valves", "manuals", 1)
        assert "3 bar" in chats.turns(chat.id)[0].answer.text
        (feedback,) = chats.feedback()
        assert (feedback.rating, feedback.comment) == ("down", "too short")
        # and it takes new documents
        added = own.ingest([Source("valve-manual.pdf", data=make_manual("Valve", 2))], collection="manuals")
        assert added[0].status == "added" and len(own.documents(collection="manuals")) == 2
    finally:
        own.close()


def test_a_data_home_written_by_0_1_0_opens(docent, tmp_path):
    home = shutil.copytree(DATA / "home-0.1.0", tmp_path / "home")
    check_home(docent, home)


def test_a_backup_written_by_0_1_0_verifies_and_restores(docent, tmp_path):
    backup = shutil.copytree(DATA / "backup-0.1.0", tmp_path / "backup")
    verify_backup(backup)
    restore_backup(backup, tmp_path / "home")
    check_home(docent, tmp_path / "home")


def test_a_collection_from_a_newer_release_is_refused_naming_its_version(docent, tmp_path):
    home = shutil.copytree(DATA / "home-0.1.0", tmp_path / "home")
    db = sqlite3.connect(home / "collections" / "manuals" / "docent.sqlite3")
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    own = docent_on(docent, home, auth="password")
    try:
        with pytest.raises(CollectionError, match=r"written by a newer Docent \(schema 99\)"):
            own.collection("manuals")
    finally:
        own.close()
