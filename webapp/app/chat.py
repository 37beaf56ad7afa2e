"""The open chat: its saved turns, a new question's streamed answer, each citation with its
passage and page, feedback on each answer, and the answer as Markdown to copy."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from retrieval.models import Answer, Hit
from retrieval.service import Docent
from webapp.app.chats import open_chat
from webapp.app.resources import get_limiter
from webapp.app.render import answer_markdown, highlighted_passage, md, page_image, where
from webapp.chats import Chat, Feedback, SavedTurn
from webapp.session import UserSession


def chat(user: UserSession, answering: Docent, collection: str, opened: Chat | None, sources=None) -> None:
    """The open chat's turns as they were answered, then the question box (a new chat starts
    with the first question; a shared chat, or one over another collection, is read only)."""
    if opened is not None:
        if opened.notice:
            st.info(md(opened.notice))
        if opened.read_only:
            st.caption(f"{md(opened.info.owner)} shared this chat with you: you can read it, not add to it.")
        given = user.my_feedback([t.id for t in opened.turns])
        for turn in opened.turns:
            show_turn(user, opened, turn, given.get(turn.id))
        if opened.read_only or opened.info.collection != collection or any(t.withheld for t in opened.turns):
            return

    question = st.chat_input("Ask a question about your documents")
    if question is not None and not question.strip():
        st.warning("Type a question first: a blank one has nothing to search for.")
        return
    if not question:
        return
    limiter = get_limiter(str(user.docent.settings.home))
    wait = limiter.wait_for("user:" + user.principal.name)
    if wait:  # one person (or script) cannot take the server from the team
        st.warning(f"Too many questions: at most {limiter.per_minute} a minute each. Ask again in {wait} s.")
        return
    created = opened is None
    chat_id = user.create_chat(collection).id if created else opened.info.id
    with st.chat_message("user"):
        st.markdown(md(question))
    with st.chat_message("assistant"):
        try:
            with st.spinner("Searching…"):
                stream = user.ask_in_chat(chat_id, question, sources=sources, docent=answering)
            if stream.rewritten:
                st.caption(f"Searched for: {md(stream.rewritten)}")
            st.write_stream(md(piece) for piece in stream)  # escaped a character at a time, so a split marker too
        except Exception:
            if created:  # no chat without a turn is left behind
                user.delete_chat(chat_id)
            raise
    if created:
        open_chat(chat_id)
    st.rerun()  # the saved turn, drawn with its sources and feedback as a reload draws it


def show_turn(user: UserSession, chat: Chat, turn: SavedTurn, given: Feedback | None) -> None:
    answer = turn.answer
    with st.chat_message("user"):
        st.markdown(md(answer.question))
    with st.chat_message("assistant"):
        if turn.withheld:
            st.caption("The answer is hidden: you no longer have access to this collection.")
            return
        if answer.rewritten:
            st.caption(f"Searched for: {md(answer.rewritten)}")
        st.markdown(md(answer.text))
        show_sources(user, chat.info.collection, answer, turn.position, gone=turn.gone)
        feedback(user, turn, given)
        with st.expander("Copy answer as Markdown"):
            st.code(answer_markdown(answer), language="markdown")


def feedback(user: UserSession, turn: SavedTurn, given: Feedback | None) -> None:
    """Thumbs up or down, saved as soon as chosen, and an optional comment."""
    rating_key, comment_key = f"rating-{turn.id}", f"comment-{turn.id}"
    if given is not None and rating_key not in st.session_state:
        st.session_state[rating_key] = 1 if given.rating == "up" else 0
        st.session_state[comment_key] = given.comment
    value = st.feedback("thumbs", key=rating_key)
    if value is None:
        return
    rating = "up" if value == 1 else "down"
    if given is None or given.rating != rating:
        given = user.give_feedback(turn.id, rating, st.session_state.get(comment_key, ""))
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    comment = left.text_input("Comment (optional)", key=comment_key, placeholder="What was right or wrong?")
    if right.button("Send", key=f"send-comment-{turn.id}"):
        user.give_feedback(turn.id, rating, comment)
        st.toast("Thank you: your comment is saved.")


def show_sources(user: UserSession, collection: str, answer: Answer, turn: int, gone: set[str] = frozenset()) -> None:
    if answer.error:
        st.error(f"The answer backend failed: {md(answer.error)}")
    for hit in answer.citations:
        with st.expander(f"[{hit.ref}] {where(hit)}" + (GONE_LABEL if hit.source in gone else "")):
            show_passage(user, collection, hit, f"{turn}-{hit.ref}", gone=hit.source in gone)
    if not answer.answered and answer.closest:
        st.caption("What came closest:" if not answer.error else "The passages that matched:")
        for n, hit in enumerate(answer.closest):
            with st.expander(where(hit) + (GONE_LABEL if hit.source in gone else "")):
                show_passage(user, collection, hit, f"{turn}-closest-{n}", gone=hit.source in gone)


GONE_LABEL = " (no longer in the collection)"


def show_passage(user: UserSession, collection: str, hit: Hit, key: str, *, gone: bool = False) -> None:
    st.caption(md(hit.source))
    st.markdown(highlighted_passage(hit))
    if gone:
        st.warning("This document was removed after the answer was given: the passage is shown as it was.")
        return
    if hit.ref is not None and not hit.highlights:
        st.warning("No sentence of this passage matches the statement that cites it: check it before relying on it.")
    original = user.original_file(hit.source, collection) if hit.page is not None else None
    if original is None:
        if hit.source.startswith(("http://", "https://")):
            st.link_button("Open the page", hit.source)
        return
    left, right = st.columns(2)
    show = left.toggle(f"Show page {hit.page}", key=f"page-{key}")
    right.download_button(
        "Download the PDF",
        data=original.read_bytes(),
        file_name=hit.source.rsplit("/", 1)[-1],
        mime="application/pdf",
        key=f"download-{key}",
    )
    if show:
        show_page_image(original, hit.page, hit.title)


def show_page_image(pdf: Path, page: int, title: str) -> None:
    """A PDF's page drawn, captioned with its document's title; a warning where pdfium cannot
    draw it (the passage's text is shown beside it anyway)."""
    try:
        st.image(cached_page_image(str(pdf), page), caption=f"{md(title)}, page {page}")
    except Exception as exc:
        st.warning(f"Page {page} could not be drawn: {exc}")


@st.cache_data(max_entries=64, show_spinner=False)
def cached_page_image(path: str, page: int) -> bytes:
    return page_image(Path(path), page)
