"""Docent's web app: add PDFs, see and remove documents, chat with cited answers.

The file only draws. Heavy objects come from st.cache_resource, per-user chat history lives
in st.session_state, and all the work is done by retrieval.service.Docent.
"""

from __future__ import annotations

import streamlit as st

from retrieval.models import Answer, Hit
from retrieval.service import Docent, Source
from retrieval.settings import SettingsError, load_settings

st.set_page_config(page_title="Docent", page_icon="📚", layout="wide")


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_docent(home: str) -> Docent:
    docent = Docent(load_settings(home=home))
    docent.load_model()  # once, up front, under the spinner
    return docent


def where(hit: Hit) -> str:
    return f"{hit.title}, page {hit.page}" if hit.page is not None else f"{hit.title} ({hit.source})"


def show_citations(answer: Answer) -> None:
    for hit in answer.citations:
        with st.expander(f"[{hit.ref}] {where(hit)}"):
            st.caption(hit.source)
            st.markdown(hit.text)
    if not answer.answered and answer.closest:
        st.caption("What came closest:")
        for hit in answer.closest:
            with st.expander(where(hit)):
                st.markdown(hit.text)


def sidebar(docent: Docent, collection: str) -> None:
    st.sidebar.header("Documents")
    uploads = st.sidebar.file_uploader("Add PDFs", type=["pdf"], accept_multiple_files=True, key="uploads")
    if uploads and st.sidebar.button(f"Add {len(uploads)} file(s)", type="primary", key="add"):
        ingest(docent, collection, uploads)
    for message in st.session_state.get("ingest_report", []):
        kind, text = message
        getattr(st.sidebar, kind)(text)

    documents = docent.documents(collection=collection)
    st.sidebar.subheader(f"In '{collection}' ({len(documents)})")
    if not documents:
        st.sidebar.caption("No documents yet.")
    for doc in documents:
        left, right = st.sidebar.columns([5, 1])
        left.markdown(f"**{doc.title}**  \n{doc.source} · {doc.pages} pages · {doc.chunks} chunks")
        if right.button("✕", key=f"remove-{doc.id}", help=f"Remove {doc.source}"):
            docent.remove(doc.source, collection=collection)
            st.session_state["ingest_report"] = [("info", f"Removed {doc.source}")]
            st.rerun()


def ingest(docent: Docent, collection: str, uploads) -> None:
    report = []
    with st.sidebar.status(f"Adding {len(uploads)} file(s)…", expanded=True) as status:
        bar = st.progress(0.0)
        for n, upload in enumerate(uploads):
            def progress(stage: str, done: int, total: int, n=n, name=upload.name) -> None:
                bar.progress((n + done / max(total, 1)) / len(uploads), text=f"{name}: {stage} {done}/{total} chunks")

            outcome = docent.ingest([Source(upload.name, data=upload.getvalue())], collection=collection, progress=progress)[0]
            if not outcome.ok:
                report.append(("error", f"{outcome.source}: {outcome.error}"))
            elif outcome.status == "unchanged":
                report.append(("info", f"{outcome.source}: already in the collection, unchanged"))
            else:
                report.append(("success", f"{outcome.source}: {outcome.status}, {outcome.pages} pages, {outcome.chunks} chunks"))
            for warning in outcome.warnings:
                report.append(("warning", f"{outcome.source}: {warning}"))
            bar.progress((n + 1) / len(uploads))
        failed = sum(kind == "error" for kind, _ in report)
        status.update(label=f"Done: {len(uploads) - failed} added, {failed} failed", state="error" if failed else "complete")
    st.session_state["ingest_report"] = report


def chat(docent: Docent, collection: str) -> None:
    history = st.session_state.setdefault("history", [])
    for turn in history:
        with st.chat_message(turn["role"]):
            st.markdown(turn["text"])
            if turn.get("answer"):
                show_citations(turn["answer"])

    question = st.chat_input("Ask a question about your documents")
    if not question:
        return
    history.append({"role": "user", "text": question})
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        with st.spinner("Searching…"):
            _, stream = docent.ask_stream(question, collection=collection)
        st.write_stream(stream)
        show_citations(stream.answer)
    history.append({"role": "assistant", "text": stream.answer.text, "answer": stream.answer})


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        st.error(str(exc))
        st.stop()
    docent = get_docent(str(settings.home))
    names = docent.collection_names() or [settings.collection]
    if settings.collection not in names:
        names.insert(0, settings.collection)
    collection = st.sidebar.selectbox("Collection", names, index=names.index(settings.collection), key="collection")
    st.title("📚 Docent")
    st.caption("Answers come only from your documents, and every statement cites its page.")
    sidebar(docent, collection)
    chat(docent, collection)


main()
