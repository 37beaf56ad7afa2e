"""Saved conversations and the feedback on their answers, in chats.sqlite3 in the data home.

A chat belongs to one user and one collection. Each turn keeps the whole answer as it was shown
(text, citations with their passages and highlights, the "Searched for" line, the backend), so
a chat still opens after its documents or its collection are gone. A turn is written in one
transaction with the chat's new time (and its title, from the first question): a process killed
while saving leaves the whole turn or none of it.

Feedback is kept apart from the chat, with a copy of the question, the answer, its citations and
the backend: deleting a chat, or the retention setting, does not lose what users said about its
answers. Who may read, share or delete what is decided in webapp.session; this module stores.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterable

from retrieval.models import Answer
from webapp.homedb import HomeDatabase

log = logging.getLogger(__name__)

DB_NAME = "chats.sqlite3"
TITLE_CHARS = 80
RATINGS = {"up": 1, "down": -1}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chats (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    collection TEXT NOT NULL,
    title TEXT NOT NULL,
    shared INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chats_by_owner ON chats(owner, collection, updated_at);
CREATE TABLE IF NOT EXISTS turns (
    id TEXT PRIMARY KEY,
    chat_id TEXT NOT NULL REFERENCES chats(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    answer TEXT NOT NULL,
    backend TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    UNIQUE (chat_id, position)
);
CREATE TABLE IF NOT EXISTS feedback (
    answer_id TEXT NOT NULL,
    user TEXT NOT NULL,
    rating INTEGER NOT NULL CHECK (rating IN (-1, 1)),
    comment TEXT NOT NULL,
    collection TEXT NOT NULL,
    answer TEXT NOT NULL,
    backend TEXT NOT NULL,
    given_at TEXT NOT NULL,
    PRIMARY KEY (answer_id, user)
);
CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback(given_at);
"""


@dataclass
class ChatInfo:
    id: str
    owner: str
    collection: str
    title: str  # "" until the first question names it
    shared: bool
    created_at: str
    updated_at: str
    turns: int = 0

    @property
    def label(self) -> str:
        return self.title or "New chat"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "owner": self.owner,
            "collection": self.collection,
            "title": self.label,
            "shared": self.shared,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "turns": self.turns,
        }


@dataclass
class SavedTurn:
    id: str  # the answer's id, which feedback names
    position: int
    answer: Answer  # answer.question is the question as asked
    backend: str
    asked_at: str
    gone: set[str] = field(default_factory=set)  # cited sources no longer in the collection
    withheld: bool = False  # the reader lost access to the collection: no answer, no passages

    def to_dict(self) -> dict:
        answer = None if self.withheld else self.answer.to_dict()
        if answer is not None:
            for hit in answer["citations"] + answer["closest"]:
                hit["gone"] = hit["source"] in self.gone
        return {
            "id": self.id,
            "position": self.position,
            "question": self.answer.question,
            "answer": answer,
            "backend": self.backend,
            "asked_at": self.asked_at,
        }


@dataclass
class Chat:
    info: ChatInfo
    turns: list[SavedTurn]
    read_only: bool = False  # opened through a shared link by someone other than its owner
    notice: str | None = None  # why answers are withheld or sources gone, in words for the reader

    def to_dict(self) -> dict:
        return {
            **self.info.to_dict(),
            "read_only": self.read_only,
            "notice": self.notice,
            "turn_list": [t.to_dict() for t in self.turns],
        }


@dataclass
class Feedback:
    answer_id: str
    user: str
    rating: str  # up or down
    comment: str
    collection: str
    answer: Answer
    backend: str
    given_at: str

    def to_dict(self) -> dict:
        return {
            "answer_id": self.answer_id,
            "user": self.user,
            "rating": self.rating,
            "comment": self.comment,
            "collection": self.collection,
            "question": self.answer.question,
            "answer": self.answer.text,
            "citations": [{"ref": h.ref, "source": h.source, "page": h.page} for h in self.answer.citations],
            "backend": self.backend,
            "given_at": self.given_at,
        }


def now() -> str:
    # Microseconds, so that turns saved in the same second still sort in the order they came.
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def title_from_question(question: str) -> str:
    """The first line of the question, cut at a word within TITLE_CHARS."""
    line = " ".join(question.split())
    if len(line) <= TITLE_CHARS:
        return line
    cut = line[: TITLE_CHARS - 1].rsplit(" ", 1)[0] or line[: TITLE_CHARS - 1]
    return cut.rstrip(",;:") + "…"


def open_chats(settings) -> "ChatStore":
    """The data home's chats, with the retention setting applied (the app and the API call this
    as they start)."""
    store = ChatStore(settings.home)
    if settings.chat_retention_days:
        forgotten = store.forget_older_than(settings.chat_retention_days)
        if forgotten:
            log.info("deleted %d chats unused for %d days", forgotten, settings.chat_retention_days)
    return store


class ChatStore:
    """The saved chats and feedback of one data home. Thread-safe."""

    def __init__(self, home: str | Path):
        self._db = HomeDatabase(Path(home) / DB_NAME, _SCHEMA)
        self._query = self._db.query

    def check(self) -> None:
        """Raises sqlite3.Error when its database cannot be opened or read (the readiness probe)."""
        self._db.check()

    def close(self) -> None:
        self._db.close()

    # ---- chats ------------------------------------------------------------------------------

    def create(self, owner: str, collection: str, title: str = "") -> ChatInfo:
        stamp = now()
        info = ChatInfo(secrets.token_urlsafe(12), owner, collection, title.strip()[:200], False, stamp, stamp)
        self._query(
            "INSERT INTO chats(id, owner, collection, title, shared, created_at, updated_at) VALUES (?, ?, ?, ?, 0, ?, ?)",
            (info.id, owner, collection, info.title, stamp, stamp),
        )
        return info

    _INFO = (
        "SELECT id, owner, collection, title, shared, created_at, updated_at,"
        " (SELECT count(*) FROM turns WHERE chat_id = chats.id) FROM chats"
    )

    @staticmethod
    def _info(row: tuple) -> ChatInfo:
        return ChatInfo(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6], row[7])

    def info(self, chat_id: str) -> ChatInfo | None:
        rows = self._query(f"{self._INFO} WHERE id = ?", (chat_id,))
        return self._info(rows[0]) if rows else None

    def list(self, owner: str, collection: str | None = None, limit: int = 100) -> list[ChatInfo]:
        """The owner's chats, the most recently used first."""
        if collection is None:
            rows = self._query(f"{self._INFO} WHERE owner = ? ORDER BY updated_at DESC LIMIT ?", (owner, limit))
        else:
            rows = self._query(
                f"{self._INFO} WHERE owner = ? AND collection = ? ORDER BY updated_at DESC LIMIT ?",
                (owner, collection, limit),
            )
        return [self._info(r) for r in rows]

    def turns(self, chat_id: str) -> list[SavedTurn]:
        rows = self._query(
            "SELECT id, position, answer, backend, asked_at FROM turns WHERE chat_id = ? ORDER BY position", (chat_id,)
        )
        return [SavedTurn(r[0], r[1], Answer.from_dict(json.loads(r[2])), r[3], r[4]) for r in rows]

    def rename(self, chat_id: str, title: str) -> None:
        self._query("UPDATE chats SET title = ? WHERE id = ?", (title.strip()[:200], chat_id))

    def set_shared(self, chat_id: str, shared: bool) -> None:
        self._query("UPDATE chats SET shared = ? WHERE id = ?", (int(shared), chat_id))

    def delete(self, chat_id: str) -> bool:
        return self._db.change("DELETE FROM chats WHERE id = ?", (chat_id,)) > 0

    def unshare_collection(self, collection: str) -> int:
        """Ends the sharing of every chat over a collection being deleted: whoever gets the name
        next, with other readers, must not open its answers. Their owners keep them."""
        return self._db.change("UPDATE chats SET shared = 0 WHERE collection = ? AND shared = 1", (collection,))

    def delete_owned_by(self, owner: str) -> int:
        """Deletes a removed user's chats (someone given the name later must not inherit them)."""
        return self._db.change("DELETE FROM chats WHERE owner = ?", (owner,))

    def add_turn(self, chat_id: str, answer: Answer, backend: str) -> SavedTurn:
        """Appends a turn; the turn, the chat's time and its first title are one transaction."""
        stamp, turn_id = now(), secrets.token_urlsafe(12)
        with self._db.transaction() as db:
            (position,) = db.execute("SELECT count(*) FROM turns WHERE chat_id = ?", (chat_id,)).fetchone()
            db.execute(
                "INSERT INTO turns(id, chat_id, position, answer, backend, asked_at) VALUES (?, ?, ?, ?, ?, ?)",
                (turn_id, chat_id, position, json.dumps(answer.to_dict()), backend, stamp),
            )
            db.execute(
                "UPDATE chats SET updated_at = ?, title = CASE WHEN title = '' THEN ? ELSE title END WHERE id = ?",
                (stamp, title_from_question(answer.question), chat_id),
            )
        return SavedTurn(turn_id, position, answer, backend, stamp)

    def turn(self, turn_id: str) -> tuple[ChatInfo, SavedTurn] | None:
        rows = self._query("SELECT chat_id, position, answer, backend, asked_at FROM turns WHERE id = ?", (turn_id,))
        if not rows:
            return None
        chat_id, position, answer, backend, asked_at = rows[0]
        info = self.info(chat_id)
        return (info, SavedTurn(turn_id, position, Answer.from_dict(json.loads(answer)), backend, asked_at))

    def forget_older_than(self, days: int) -> int:
        """Deletes chats unused for `days` days (the retention setting); returns how many."""
        cutoff = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="microseconds")
        return self._db.change("DELETE FROM chats WHERE updated_at < ?", (cutoff,))

    # ---- feedback ---------------------------------------------------------------------------

    def give_feedback(self, turn: SavedTurn, collection: str, user: str, rating: str, comment: str = "") -> Feedback:
        """One rating per user and answer: giving it again replaces it."""
        if rating not in RATINGS:
            raise ValueError(f"unknown rating {rating!r}: use up or down")
        feedback = Feedback(turn.id, user, rating, comment.strip()[:4000], collection, turn.answer, turn.backend, now())
        self._query(
            "INSERT INTO feedback(answer_id, user, rating, comment, collection, answer, backend, given_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(answer_id, user) DO UPDATE SET rating = excluded.rating,"
            " comment = excluded.comment, given_at = excluded.given_at",
            (
                feedback.answer_id,
                user,
                RATINGS[rating],
                feedback.comment,
                collection,
                json.dumps(turn.answer.to_dict()),
                turn.backend,
                feedback.given_at,
            ),
        )
        return feedback

    def feedback_on(self, answer_ids: Iterable[str], user: str) -> dict[str, Feedback]:
        """The user's own feedback on these answers (to show the thumbs they chose)."""
        ids = list(answer_ids)
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self._query(f"{self._FEEDBACK} WHERE user = ? AND answer_id IN ({marks})", (user, *ids))
        return {f.answer_id: f for f in map(self._feedback, rows)}

    _FEEDBACK = "SELECT answer_id, user, rating, comment, collection, answer, backend, given_at FROM feedback"

    @staticmethod
    def _feedback(row: tuple) -> Feedback:
        rating = "up" if row[2] > 0 else "down"
        return Feedback(row[0], row[1], rating, row[3], row[4], Answer.from_dict(json.loads(row[5])), row[6], row[7])

    def feedback(self, limit: int = 100, collection: str | None = None) -> list[Feedback]:
        """The most recent feedback first, on every collection or on one."""
        if collection is None:
            rows = self._query(f"{self._FEEDBACK} ORDER BY given_at DESC LIMIT ?", (limit,))
        else:
            rows = self._query(
                f"{self._FEEDBACK} WHERE collection = ? ORDER BY given_at DESC LIMIT ?", (collection, limit)
            )
        return [self._feedback(r) for r in rows]

    # An approved answer: a thumbs-up on an answer that cites something (a question with evidence).
    _APPROVED = "WHERE collection = ? AND rating = 1 AND json_array_length(answer, '$.citations') > 0"

    def approved(self, collection: str, limit: int) -> list[Feedback]:
        """The collection's approved answers, the most recent first."""
        rows = self._query(f"{self._FEEDBACK} {self._APPROVED} ORDER BY given_at DESC LIMIT ?", (collection, limit))
        return [self._feedback(r) for r in rows]

    def approved_count(self, collection: str) -> int:
        return self._query(f"SELECT count(*) FROM feedback {self._APPROVED}", (collection,))[0][0]

    def disapproved(self, collection: str, limit: int) -> list[Feedback]:
        """The collection's thumbs-down answers, the most recent first: what to look into."""
        rows = self._query(
            f"{self._FEEDBACK} WHERE collection = ? AND rating < 0 ORDER BY given_at DESC LIMIT ?", (collection, limit)
        )
        return [self._feedback(r) for r in rows]


def review_jsonl(disapproved: Iterable[Feedback]) -> str:
    """Thumbs-down answers to look into, one JSON line each: who, when, the question, the answer
    and what it cited, and the reader's comment."""
    lines = []
    for item in disapproved:
        line = {
            "given_at": item.given_at,
            "user": item.user,
            "collection": item.collection,
            "question": item.answer.question,
            "answer": item.answer.text,
            "cited": [{"source": h.source, "page": h.page} for h in item.answer.citations],
            "comment": item.comment,
            "backend": item.backend,
        }
        lines.append(json.dumps(line, ensure_ascii=False) + "\n")
    return "".join(lines)


def eval_set_jsonl(approved: Iterable[Feedback]) -> str:
    """Approved answers as a question set `docent eval` reads, one JSON line each: the question,
    the answer (citation marks dropped) as its gold answer, and the pages it cited as evidence."""
    lines = []
    for item in approved:
        cited = {(h.source, h.page): {"source": h.source, "page": h.page} for h in item.answer.citations}
        line = {
            "question": item.answer.question,
            "collection": item.collection,
            "evidence": list(cited.values()),
            "answer": re.sub(r"\s*\[\d+\]", "", item.answer.text).strip(),
        }
        lines.append(json.dumps(line) + "\n")
    return "".join(lines)
