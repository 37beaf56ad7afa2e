"""Backups that restore: taken while the server ingests and searches, verified by checksum,
restored into a new home that searches as the source did at the backup's moment; a backup
killed midway leaves the home as it was and nothing that verifies."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
import zipfile
from pathlib import Path

import pytest

from support.cli import DOCENT
from support.docents import docent_on
from support.officegen import make_docx
from support.pdfgen import make_manual
from retrieval.service import Docent, Source
from webapp.access import AccessControl
from webapp.backup import BackupError, create_backup, restore_backup, verify_backup
from webapp.chats import ChatStore
from webapp.jobs import JobManager

QUERIES = ["valve stays shut below 3 bar", "pump manual rule 4.2", "boiler pressure", "rule 12 of the crane manual"]


def manuals(names: list[str], pages: int) -> list[Source]:
    return [Source(f"{name.lower()}.pdf", data=make_manual(f"{name} manual", pages)) for name in names]


def held(home: Path, collection: str = "default") -> dict[str, tuple[int, int]]:
    """Each stored document: (chunks it says it has, chunks stored for it)."""
    db = sqlite3.connect(f"file:{home / 'collections' / collection / 'docent.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT d.source, d.chunks, count(c.id) FROM documents d LEFT JOIN chunks c ON c.doc_id = d.id"
            " GROUP BY d.id"
        ).fetchall()
    finally:
        db.close()
    return {source: (said, stored) for source, said, stored in rows}


def hits(docent: Docent) -> list[list[tuple]]:
    return [
        [(h.source, h.page, h.text, round(h.score, 5)) for h in docent.search(q, k=8, collection="default")]
        for q in QUERIES
    ]


def test_a_backup_taken_during_an_ingest_and_searches_restores_the_moment_it_was_taken(docent, tmp_path):
    home = tmp_path / "home"
    source = docent_on(docent, home)
    before = manuals(["Pump", "Valve", "Boiler"], 6)
    during = manuals(["Crane", "Hoist", "Winch", "Drill", "Lathe", "Press", "Mixer", "Kiln"], 24)
    assert all(o.status == "added" for o in source.ingest(before, collection="default"))
    access = AccessControl(source.settings)
    access.set_user("rita", "reader", password="a long password")
    chats = ChatStore(home)
    chat = chats.create("rita", "default", "Pumps")

    job = JobManager(home).start_ingest(source, during, "default", "ed")
    stop, failures, searched = threading.Event(), [], [0]

    def searching() -> None:
        while not stop.is_set():
            try:
                source.search("valve pressure rule", k=5, collection="default")
                searched[0] += 1
            except Exception as exc:  # noqa: BLE001 - any failure is the test's finding
                failures.append(repr(exc))

    searchers = [threading.Thread(target=searching) for _ in range(20)]
    for thread in searchers:
        thread.start()
    try:
        deadline = time.monotonic() + 300
        while not job.outcomes and time.monotonic() < deadline:
            time.sleep(0.05)
        assert job.running, "the ingest ended before the backup could be taken during it"
        manifest = create_backup(home, tmp_path / "backup")
        assert job.wait(timeout=600) and job.state == "finished"
    finally:
        stop.set()
        for thread in searchers:
            thread.join()
    assert not failures and searched[0] > 20
    assert len(held(home)) == 3 + 8  # the ingest went on to its end

    verify_backup(tmp_path / "backup")
    restore_backup(tmp_path / "backup", tmp_path / "restored")
    restored_held = held(tmp_path / "restored")
    assert {s.name for s in before} <= set(restored_held)  # stored before the backup began: all there
    assert 3 < len(restored_held) < 3 + 8  # taken during the ingest: some of it, not all
    assert all(said == stored for said, stored in restored_held.values())  # none half there
    assert manifest.collections["default"]["documents"] == len(restored_held)

    # The moment it was taken: a home holding exactly those documents, stored in the same order,
    # searches alike (same passages, same scores).
    reference = docent_on(docent, tmp_path / "reference")
    reference.ingest(before, collection="default")
    reference.ingest([s for s in during if s.name in restored_held], collection="default")
    restored = docent_on(docent, tmp_path / "restored")
    try:
        assert hits(restored) == hits(reference)
        assert AccessControl(restored.settings).user("rita") is not None
        assert ChatStore(tmp_path / "restored").info(chat.id).title == "Pumps"
    finally:
        for d in (source, reference, restored):
            d.close()


def home_with_a_manual(docent, home: Path) -> Path:
    own = docent_on(docent, home)
    own.ingest(manuals(["Pump"], 3), collection="default")
    own.close()
    return home


def test_verify_names_a_damaged_missing_or_stray_file(docent, tmp_path):
    create_backup(home_with_a_manual(docent, tmp_path / "home"), tmp_path / "good")
    for damage, expected in (
        (lambda b: (b / "collections/default/docent.sqlite3").open("ab").write(b"x"), "is damaged"),
        (lambda b: next((b / "collections/default/files").iterdir()).unlink(), "is missing"),
        (lambda b: (b / "collections/default/stray.txt").write_text("?"), "does not list"),
        (lambda b: (b / "manifest.json").unlink(), "is not a finished backup"),
    ):
        copy = tmp_path / f"copy-{expected.replace(' ', '-')}"
        shutil.copytree(tmp_path / "good", copy)
        damage(copy)
        with pytest.raises(BackupError, match=expected):
            verify_backup(copy)
        with pytest.raises(BackupError):
            restore_backup(copy, tmp_path / f"into-{copy.name}")
        assert not (tmp_path / f"into-{copy.name}").exists()


def test_restore_refuses_a_home_that_is_not_empty_unless_told(docent, tmp_path):
    home = home_with_a_manual(docent, tmp_path / "home")
    create_backup(home, tmp_path / "backup")
    with pytest.raises(BackupError, match="is not empty"):
        restore_backup(tmp_path / "backup", home)
    with pytest.raises(BackupError, match="inside the data home"):
        create_backup(home, home / "backup")
    restore_backup(tmp_path / "backup", home, replace=True)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("home.replaced-")]
    assert len(aside) == 1 and held(aside[0]) == held(home)


def docx_with_a_large_picture(megabytes: int) -> bytes:
    """A Word file whose text is short and whose picture (random bytes, incompressible) is
    large: a home that takes a while to back up, and little to ingest."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(make_docx())) as original, zipfile.ZipFile(out, "w") as copy:
        for item in original.infolist():
            copy.writestr(item, original.read(item.filename))
        copy.writestr("word/media/photo.bin", os.urandom(megabytes << 20))
    return out.getvalue()


def written(folder: Path) -> int:
    """Bytes in the files under a folder so far (os.walk passes over what vanishes meanwhile)."""
    total = 0
    for parent, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.stat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                pass
    return total


def test_a_backup_killed_midway_leaves_the_home_untouched_and_no_backup_that_verifies(docent, tmp_path):
    home = tmp_path / "home"
    own = docent_on(docent, home)
    files = [Source(f"site-{n}.docx", data=docx_with_a_large_picture(40)) for n in range(3)]
    outcomes = own.ingest([*files, *manuals(["Pump", "Valve"], 6)], collection="default")
    assert [o.status for o in outcomes].count("added") >= 3  # the docx files share their text: duplicates
    before, searched = held(home), hits(own)
    own.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCENT_")}
    dest = tmp_path / "backup"

    def started(destination: Path) -> subprocess.Popen:
        """`docent backup create`, once it has begun writing (its .partial folder is there)."""
        process = subprocess.Popen([DOCENT, "--home", str(home), "backup", "create", str(destination)], env=env)
        partial = destination.with_name(f"{destination.name}.partial-{process.pid}")
        deadline = time.monotonic() + 60
        while not partial.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return process

    # How much a whole backup writes: the kills below fall when a fraction of it is written (by
    # bytes, not time, which a busy machine stretches unevenly).
    whole = started(tmp_path / "whole")
    assert whole.wait() == 0
    size = written(tmp_path / "whole")
    for attempt in range(5):
        process = started(dest)
        partial = tmp_path / f"backup.partial-{process.pid}"
        while written(partial) < size * 0.15 * attempt and process.poll() is None:
            time.sleep(0.002)  # a later moment each time, always before the end
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert not dest.exists(), "the backup finished before it was killed: the home is too small for this test"
        if partial.exists():
            with pytest.raises(BackupError, match="not a finished backup"):
                verify_backup(partial)
    assert held(home) == before  # the home as it was, and it still writes and searches alike
    again = docent_on(docent, home)
    try:
        assert hits(again) == searched
        assert again.ingest(manuals(["Crane"], 2), collection="default")[0].status == "added"
    finally:
        again.close()
    create_backup(home, dest)  # the next backup is whole
    verify_backup(dest)
