"""The conversation: questions, streamed answers, and each citation with its passage and page."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from retrieval.models import Answer, Hit
from retrieval.service import Docent
from webapp.app.render import highlighted_passage, md, page_image, where
from webapp.session import UserSession


def chat(user: UserSession, answering: Docent, collection: str, sources: list[str] | None = None) -> None:
    history = st.session_state.setdefault("history", [])
    for n, turn in enumerate(history):
        with st.chat_message("user"):
            st.markdown(md(turn["question"]))
        with st.chat_message("assistant"):
            if turn["answer"].rewritten:
                st.caption(f"Searched for: {md(turn['answer'].rewritten)}")
            st.markdown(md(turn["answer"].text))
            show_sources(user, collection, turn["answer"], n)

    question = st.chat_input("Ask a question about your documents")
    if question is not None and not question.strip():
        st.warning("Type a question first: a blank one has nothing to search for.")
        return
    if not question:
        return
    with st.chat_message("user"):
        st.markdown(md(question))
    with st.chat_message("assistant"):
        with st.spinner("Searching…"):
            conversation = [(t["answer"].rewritten or t["question"], t["answer"].text) for t in history]
            stream = user.ask_stream(
                question, history=conversation, collection=collection, sources=sources, docent=answering
            )
        if stream.rewritten:
            st.caption(f"Searched for: {md(stream.rewritten)}")
        st.write_stream(md(piece) for piece in stream)  # escaped a character at a time, so a split marker too
        answer = stream.answer
        answer.question, answer.rewritten = question, stream.rewritten
        show_sources(user, collection, answer, len(history))
    history.append({"question": question, "answer": answer})


def show_sources(user: UserSession, collection: str, answer: Answer, turn: int) -> None:
    if answer.error:
        st.error(f"The answer backend failed: {md(answer.error)}")
    for hit in answer.citations:
        with st.expander(f"[{hit.ref}] {where(hit)}"):
            show_passage(user, collection, hit, f"{turn}-{hit.ref}")
    if not answer.answered and answer.closest:
        st.caption("What came closest:" if not answer.error else "The passages that matched:")
        for n, hit in enumerate(answer.closest):
            with st.expander(where(hit)):
                show_passage(user, collection, hit, f"{turn}-closest-{n}")


def show_passage(user: UserSession, collection: str, hit: Hit, key: str) -> None:
    st.caption(md(hit.source))
    st.markdown(highlighted_passage(hit))
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
        try:
            st.image(cached_page_image(str(original), hit.page), caption=f"{md(hit.title)}, page {hit.page}")
        except Exception as exc:  # a page pdfium cannot draw still leaves the text above
            st.warning(f"Page {hit.page} could not be drawn: {exc}")


@st.cache_data(max_entries=64, show_spinner=False)
def cached_page_image(path: str, page: int) -> bytes:
    return page_image(Path(path), page)
