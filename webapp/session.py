"""What one signed-in user may do, and the one place that checks it.

The app and the HTTP API both act through a UserSession, so a reader cannot ingest through
either, and a collection outside a user's access is invisible to both: it is not listed, not
searched, and never cited.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Sequence

from ingest.sources import Source
from ingest.web.crawl import CrawlOptions
from retrieval.answer import AnswerStream, Turn
from retrieval.models import Answer, DocumentInfo, Hit
from retrieval.service import COLLECTION_NAME, Docent
from retrieval.store import CollectionError, RemovedDocument
from webapp.access import ADMIN, READ, WRITE, AccessControl, AccessDenied, Principal, User
from webapp import metrics
from webapp.chats import Chat, ChatInfo, ChatStore, Feedback, SavedTurn
from webapp.jobs import Job, JobManager
from webapp.uploads import UploadSpool


class NotFound(LookupError):
    """No such collection, document or job, or none this user may see."""


HISTORY_TURNS = 10  # earlier turns of a saved chat given to the question rewriter


class SavingStream:
    """An answer stream that saves its turn to the chat once the whole answer has been written
    (a reader who leaves mid-answer saves nothing); then `.turn` holds the saved turn."""

    def __init__(self, stream: AnswerStream, save):
        self._stream, self._save = stream, save
        self.rewritten = stream.rewritten
        self.turn: SavedTurn | None = None

    def __iter__(self) -> Iterator[str]:
        yield from self._stream
        self.turn = self._save(self._stream.answer)


class UserSession:
    def __init__(
        self,
        docent: Docent,
        access: AccessControl,
        jobs: JobManager,
        principal: Principal,
        chats: ChatStore | None = None,
    ):
        """chats: the server's one ChatStore (a session made per request must not open its own)."""
        self.docent, self.access, self.jobs, self.principal = docent, access, jobs, principal
        self.chat_store = chats or ChatStore(docent.settings.home)

    # ---- checks -----------------------------------------------------------------------------

    def require(self, action: str) -> None:
        if not self.principal.can(action):
            what = {READ: "read", WRITE: "add or remove documents", ADMIN: "manage collections and users"}[action]
            raise AccessDenied(f"{self.principal.name} is a {self.principal.role} and may not {what}")

    def _open(self, collection: str | None, action: str = READ) -> str:
        """The collection's name once the user may act on it; NotFound when it is not theirs to see."""
        name = collection or self.docent.settings.collection
        if not COLLECTION_NAME.match(name):
            raise CollectionError(f"invalid collection name {name!r}")
        self.require(action)
        # The same answer for "exists, not yours" as for "does not exist": no probing of names.
        # Only admins create collections: naming an unknown one creates nothing.
        if not self._exists(name) or not self.access.may_see(self.principal, name):
            raise NotFound(f"no collection '{name}'")
        return name

    def check_may_add(self, collection: str | None) -> None:
        """Raises AccessDenied or NotFound unless this user may add documents to the collection:
        the API asks before it reads an upload's body."""
        self._open(collection, WRITE)

    def _exists(self, name: str) -> bool:
        return name == self.docent.settings.collection or name in self.docent.collection_names()

    # ---- collections ------------------------------------------------------------------------

    def collections(self) -> list[str]:
        """The collections this user may see (the default one always exists for those who may)."""
        self.require(READ)
        names = set(self.docent.collection_names()) | {self.docent.settings.collection}
        return sorted(n for n in names if self.access.may_see(self.principal, n))

    def create_collection(self, name: str, *, users: Sequence[str] | None = None, groups: Sequence[str] = ()) -> None:
        self.require(ADMIN)
        if name in self.docent.collection_names():
            raise CollectionError(f"collection '{name}' already exists")
        self.docent.collection(name)
        if users is not None or groups:
            self.access.set_collection_access(name, users or [], groups)

    def delete_collection(self, name: str) -> None:
        self.require(ADMIN)
        if any(j.running for j in self.jobs.jobs([name])):
            raise CollectionError(f"collection '{name}' has a running ingest or crawl; cancel it first")
        if not self.docent.delete_collection(name):
            raise NotFound(f"no collection '{name}'")
        self.jobs.forget(name)  # their reports name the deleted files
        self.chat_store.unshare_collection(name)  # a new collection of that name has its own readers
        if name not in self.docent.settings.collection_access:
            self.access.set_collection_access(name, None)

    def set_collection_access(self, name: str, users: Sequence[str] | None, groups: Sequence[str] = ()) -> None:
        self.require(ADMIN)
        self.access.set_collection_access(name, users, groups)

    # ---- users and keys (admins) ---------------------------------------------------------------

    def users(self) -> list[User]:
        self.require(ADMIN)
        return self.access.users()

    def set_user(self, name: str, role: str, groups: Sequence[str] = (), password: str | None = None) -> User:
        self.require(ADMIN)
        return self.access.set_user(name, role, groups, password)

    def delete_user(self, name: str) -> None:
        self.require(ADMIN)
        if name == self.principal.name:
            raise AccessDenied("you cannot remove yourself")
        if not self.access.delete_user(name):
            raise NotFound(f"no user {name!r}")
        self.chat_store.delete_owned_by(name)

    def create_api_key(self, user: str, label: str = "") -> tuple[str, str]:
        """(key id, key) for a user; admins make keys for anyone."""
        self.require(ADMIN)
        if self.access.user(user) is None:
            raise NotFound(f"no user {user!r}")
        return self.access.create_api_key(user, label)

    def api_keys(self) -> list[dict]:
        self.require(ADMIN)
        return self.access.api_keys()

    def revoke_api_key(self, key_id: str) -> None:
        self.require(ADMIN)
        if not self.access.revoke_api_key(key_id):
            raise NotFound(f"no API key {key_id!r}")

    # ---- reading ----------------------------------------------------------------------------

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        return self.docent.documents(collection=self._open(collection))

    def original_file(self, source: str, collection: str | None = None) -> Path | None:
        return self.docent.collection(self._open(collection)).original_file(source)

    def read_page(
        self, source: str, page: int | None = None, collection: str | None = None
    ) -> tuple[DocumentInfo, str]:
        """A stored document and its text: one page of a PDF, or the whole document (page None,
        or any document other than a PDF: a web page, an e-mail, a sheet)."""
        name = self._open(collection)
        store = self.docent.collection(name)
        info = store.find_document(source)
        if info is None:
            raise NotFound(f"no document {source!r} in '{name}'")
        if info.kind != "pdf":
            page = None  # only a PDF's passages carry page numbers
        elif page is not None and not 1 <= page <= info.pages:
            raise NotFound(f"{info.title} has {info.pages} page(s), not page {page}")
        return info, store.page_text(source, page) or ""

    def search(
        self,
        query: str,
        *,
        collection: str | None = None,
        k: int = 10,
        mode: str | None = None,
        sources: Sequence[str] | None = None,
    ) -> list[Hit]:
        name = self._open(collection)
        started = time.perf_counter()
        hits = self.docent.search(query, k=k, mode=mode, collection=name, sources=sources)
        metrics.SEARCH_SECONDS.labels(mode or self.docent.settings.search_mode).observe(time.perf_counter() - started)
        return hits

    def ask_stream(
        self,
        question: str,
        *,
        collection: str | None = None,
        history: Sequence[Turn] = (),
        sources: Sequence[str] | None = None,
        docent: Docent | None = None,
    ) -> AnswerStream:
        """docent: a variant with other answer settings (the app's sidebar), same data."""
        name = self._open(collection)
        started = time.perf_counter()
        stream = (docent or self.docent).ask_stream(question, history=history, collection=name, sources=sources)
        stream.pieces = metrics.timed_answer(stream.pieces, started)
        return stream

    def ask(
        self,
        question: str,
        *,
        collection: str | None = None,
        history: Sequence[Turn] = (),
        sources: Sequence[str] | None = None,
    ) -> Answer:
        stream = self.ask_stream(question, collection=collection, history=history, sources=sources)
        for _ in stream:
            pass
        return stream.answer

    # ---- writing ----------------------------------------------------------------------------

    def remove(self, source: str, collection: str | None = None) -> None:
        if not self.docent.remove(source, collection=self._open(collection, WRITE)):
            raise NotFound(f"no document {source!r} in '{collection or self.docent.settings.collection}'")

    def restore(self, source: str, collection: str | None = None) -> None:
        name = self._open(collection, WRITE)
        if source not in {r.source for r in self.docent.removed_documents(collection=name)}:
            raise NotFound(f"no removed document {source!r} is kept in '{name}' to restore")
        self.docent.restore(source, collection=name)

    def removed_documents(self, collection: str | None = None) -> list[RemovedDocument]:
        return self.docent.removed_documents(collection=self._open(collection, WRITE))

    def start_ingest(
        self, sources: list[Source], collection: str | None = None, *, spool: UploadSpool | None = None
    ) -> Job:
        name = self._open(collection, WRITE)
        return self.jobs.start_ingest(self.docent, sources, name, self.principal.name, spool=spool)

    def start_crawl(self, url: str, collection: str | None = None, *, options: CrawlOptions | None = None) -> Job:
        name = self._open(collection, WRITE)
        options = options or self.docent.crawl_options()
        return self.jobs.start_crawl(self.docent, url, name, self.principal.name, options)

    # ---- jobs -------------------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None or not self.principal.can(READ) or not self.access.may_see(self.principal, job.collection):
            raise NotFound(f"no job {job_id!r}")
        return job

    def visible_jobs(self, collection: str | None = None) -> list[Job]:
        names = [self._open(collection)] if collection else self.collections()
        return self.jobs.jobs(names)

    def cancel_job(self, job_id: str) -> Job:
        """Stops a running job; a job that has ended is left as it ended."""
        job = self.job(job_id)
        self._open(job.collection, WRITE)
        if job.running:
            job.cancel.set()
        return job

    # ---- saved chats ------------------------------------------------------------------------

    def chats(self, collection: str | None = None, limit: int = 100) -> list[ChatInfo]:
        """This user's chats over a collection, the most recently used first."""
        return self.chat_store.list(self.principal.name, self._open(collection), limit)

    def all_chats(self, owner: str | None = None, collection: str | None = None, limit: int = 100) -> list[ChatInfo]:
        """A user's chats, over any collection or one, even one since deleted (their own; an
        admin may name anyone)."""
        if owner not in (None, self.principal.name):
            self.require(ADMIN)
        return self.chat_store.list(owner or self.principal.name, collection, limit)

    def create_chat(self, collection: str | None = None, title: str = "") -> ChatInfo:
        return self.chat_store.create(self.principal.name, self._open(collection), title)

    def _readable_chat(self, chat_id: str) -> ChatInfo:
        """The chat when it is this user's, or shared over a collection they may read."""
        info = self.chat_store.info(chat_id)
        if info is not None and info.owner == self.principal.name:
            return info
        if (
            info is not None
            and info.shared
            and self.principal.can(READ)
            and self._exists(info.collection)
            and self.access.may_see(self.principal, info.collection)
        ):
            return info
        raise NotFound(f"no chat {chat_id!r}")

    def _own_chat(self, chat_id: str, *, or_admin: bool = False) -> ChatInfo:
        """The chat when this user may change it: their own (or_admin: an admin, anyone's).
        A chat shared with them gets AccessDenied; any other, NotFound."""
        info = self.chat_store.info(chat_id)
        if info is not None and (info.owner == self.principal.name or (or_admin and self.principal.can(ADMIN))):
            return info
        shared = self._readable_chat(chat_id)
        raise AccessDenied(f"this chat is {shared.owner}'s, shared with you to read only")

    def chat(self, chat_id: str) -> Chat:
        """The chat with its turns as they were answered. Answers over a collection the reader
        may no longer see are withheld; citations of documents since removed say they are gone."""
        info = self._readable_chat(chat_id)
        turns = self.chat_store.turns(chat_id)
        chat = Chat(info, turns, read_only=info.owner != self.principal.name)
        cited = {h.source for t in turns for h in t.answer.citations + t.answer.closest}
        if not self._exists(info.collection):
            gone = cited
            chat.notice = (
                f"Collection '{info.collection}' was deleted: answers are shown as given, their sources are gone."
            )
        elif not self.access.may_see(self.principal, info.collection):
            for turn in turns:
                turn.withheld = True
            chat.notice = f"You no longer have access to collection '{info.collection}': its answers are hidden."
            return chat
        else:
            store = self.docent.collection(info.collection)
            gone = {source for source in cited if store.find_document(source) is None}
            if gone:
                chat.notice = "Some documents this chat cites were removed since: their citations say so."
        for turn in turns:
            turn.gone = gone
        return chat

    def rename_chat(self, chat_id: str, title: str) -> ChatInfo:
        if not title.strip():
            raise ValueError("the chat's title is empty: type a title")
        self.chat_store.rename(self._own_chat(chat_id).id, title)
        return self.chat_store.info(chat_id)

    def share_chat(self, chat_id: str, shared: bool = True) -> ChatInfo:
        """Shared, the chat opens read-only for anyone with access to its collection."""
        self.chat_store.set_shared(self._own_chat(chat_id).id, shared)
        return self.chat_store.info(chat_id)

    def delete_chat(self, chat_id: str) -> None:
        """The owner deletes their chat; an admin may delete anyone's."""
        self.chat_store.delete(self._own_chat(chat_id, or_admin=True).id)

    def ask_in_chat(
        self, chat_id: str, question: str, *, sources: Sequence[str] | None = None, docent: Docent | None = None
    ) -> SavingStream:
        """Asks in the user's chat (its earlier turns as context); the turn is saved when the
        returned stream has been read to its end."""
        info = self._own_chat(chat_id)
        answering = docent or self.docent
        history = [
            (t.answer.rewritten or t.answer.question, t.answer.text)
            for t in self.chat_store.turns(chat_id)[-HISTORY_TURNS:]
        ]
        stream = self.ask_stream(
            question, collection=info.collection, history=history, sources=sources, docent=answering
        )
        backend = answering.backend.description
        return SavingStream(stream, lambda answer: self.chat_store.add_turn(chat_id, answer, backend))

    # ---- feedback ---------------------------------------------------------------------------

    def give_feedback(self, answer_id: str, rating: str, comment: str = "") -> Feedback:
        """A thumbs up or down on an answer of a chat this user may read (one per user and answer)."""
        found = self.chat_store.turn(answer_id)
        if found is None:
            raise NotFound(f"no answer {answer_id!r}")
        info, turn = found
        try:
            self._readable_chat(info.id)
            self._open(info.collection)
        except (NotFound, CollectionError):
            raise NotFound(f"no answer {answer_id!r}") from None
        return self.chat_store.give_feedback(turn, info.collection, self.principal.name, rating, comment)

    def my_feedback(self, answer_ids: Sequence[str]) -> dict[str, Feedback]:
        return self.chat_store.feedback_on(answer_ids, self.principal.name)

    def feedback(self, collection: str | None = None, limit: int = 100) -> list[Feedback]:
        """Recent feedback, newest first (admins)."""
        self.require(ADMIN)
        return self.chat_store.feedback(limit, collection)

    def disapproved_answers(self, collection: str, limit: int = 100_000) -> list[Feedback]:
        """The collection's thumbs-down answers with their comments, newest first (admins)."""
        self.require(ADMIN)
        return self.chat_store.disapproved(collection, limit)

    def approved_answers(self, collection: str, limit: int = 100_000) -> list[Feedback]:
        """The collection's thumbs-up answers that cite something, newest first (admins)."""
        self.require(ADMIN)
        return self.chat_store.approved(collection, limit)

    def approved_count(self, collection: str) -> int:
        self.require(ADMIN)
        return self.chat_store.approved_count(collection)
