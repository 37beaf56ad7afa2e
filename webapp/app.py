"""Docent's web app: add PDFs, see and remove documents, chat with cited answers.

The file only draws. Heavy objects come from st.cache_resource, each user's conversation lives
in st.session_state, and all the work is done by retrieval.service.Docent.
"""

from __future__ import annotations

import time

import streamlit as st

from ingest.crawl import CrawlOptions
from retrieval.answer import BACKENDS
from retrieval.models import Answer, Hit
from retrieval.search import FUSIONS, MODES
from retrieval.service import Docent, Source
from retrieval.settings import SettingsError, load_settings
from webapp.crawls import CrawlJob, CrawlRegistry
from webapp.render import highlighted_passage, page_image, where

st.set_page_config(page_title="Docent", page_icon="📚", layout="wide")


@st.cache_resource(show_spinner="Loading the embedding model…")
def get_docent(home: str) -> Docent:
    docent = Docent(load_settings(home=home))
    docent.load_model()  # once, up front, under the spinner
    return docent


@st.cache_resource(show_spinner="Preparing the answer backend…", max_entries=8)
def get_variant(home: str, llm: str, search_mode: str, fusion: str, fusion_alpha: float) -> Docent:
    """The shared Docent with the answer settings chosen in the sidebar (a local model loads once)."""
    return get_docent(home).variant(llm=llm, search_mode=search_mode, fusion=fusion, fusion_alpha=fusion_alpha)


def answer_settings(docent: Docent) -> Docent:
    settings = docent.settings
    with st.sidebar.expander("Answering"):
        llm = st.selectbox("Answer backend", BACKENDS, index=BACKENDS.index(settings.llm), key="llm")
        mode = st.selectbox("Search mode", MODES, index=MODES.index(settings.search_mode), key="search_mode")
        fusion, alpha = settings.fusion, settings.fusion_alpha
        if mode == "hybrid":
            fusion = st.selectbox("Fusion", FUSIONS, index=FUSIONS.index(settings.fusion), key="fusion",
                                  format_func={"rrf": "Reciprocal Rank Fusion", "convex": "Convex combination"}.get)
            if fusion == "convex":
                alpha = st.slider("Weight of vector search (alpha)", 0.0, 1.0, settings.fusion_alpha, 0.05, key="alpha")
    if (llm, mode, fusion, alpha) == (settings.llm, settings.search_mode, settings.fusion, settings.fusion_alpha):
        return docent
    return get_variant(str(settings.home), llm, mode, fusion, alpha)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_page_image(path: str, page: int) -> bytes:
    from pathlib import Path

    return page_image(Path(path), page)


def show_passage(docent: Docent, collection: str, hit: Hit, key: str) -> None:
    st.caption(hit.source)
    st.markdown(highlighted_passage(hit))
    if hit.ref is not None and not hit.highlights:
        st.warning("No sentence of this passage matches the statement that cites it: check it before relying on it.")
    original = docent.collection(collection).original_file(hit.source) if hit.page is not None else None
    if original is None:
        if hit.source.startswith(("http://", "https://")):
            st.link_button("Open the page", hit.source)
        return
    left, right = st.columns(2)
    show = left.toggle(f"Show page {hit.page}", key=f"page-{key}")
    right.download_button(
        "Download the PDF", data=original.read_bytes(), file_name=hit.source.rsplit("/", 1)[-1],
        mime="application/pdf", key=f"download-{key}",
    )
    if show:
        try:
            st.image(cached_page_image(str(original), hit.page), caption=f"{hit.title}, page {hit.page}")
        except Exception as exc:  # a page pdfium cannot draw still leaves the text above
            st.warning(f"Page {hit.page} could not be drawn: {exc}")


def show_sources(docent: Docent, collection: str, answer: Answer, turn: int) -> None:
    if answer.error:
        st.error(f"The answer backend failed: {answer.error}")
    for hit in answer.citations:
        with st.expander(f"[{hit.ref}] {where(hit)}"):
            show_passage(docent, collection, hit, f"{turn}-{hit.ref}")
    if not answer.answered and answer.closest:
        st.caption("What came closest:" if not answer.error else "The passages that matched:")
        for n, hit in enumerate(answer.closest):
            with st.expander(where(hit)):
                show_passage(docent, collection, hit, f"{turn}-closest-{n}")


@st.cache_resource
def crawl_registry() -> CrawlRegistry:
    return CrawlRegistry()


def web_pages(docent: Docent, collection: str) -> None:
    registry = crawl_registry()
    with st.sidebar.expander("Add web pages", expanded=registry.get(collection) is not None):
        url = st.text_input("A page, a sitemap, or a site's address", key="crawl_url", placeholder="https://intranet/docs/")
        max_pages = st.number_input("At most this many pages", 1, 100_000, docent.settings.crawl_max_pages, key="crawl_max")
        if st.button("Add", key="crawl", disabled=not url):
            options = CrawlOptions(
                max_pages=int(max_pages), concurrency=docent.settings.crawl_concurrency, per_host=docent.settings.crawl_per_host
            )
            try:
                registry.start(docent, url.strip(), collection, options)
            except RuntimeError as exc:
                st.warning(str(exc))
        job = registry.get(collection)
        if job is not None:
            st.fragment(crawl_status, run_every=1.0 if job.running else None)(job)


def crawl_status(job: CrawlJob) -> None:
    """Redrawn every second while the crawl runs."""
    p = job.progress
    if job.error:
        st.error(f"The crawl of {job.url} could not run: {job.error}")
        return
    state = "cancelled" if p.cancelled else "finished" if p.finished else "running"
    st.caption(f"Crawl of {job.url}: {state}")
    st.progress(p.done / p.discovered if p.discovered else 0.0)
    st.markdown(
        f"**{p.done}** done (**{p.added + p.replaced}** stored, **{p.unchanged}** unchanged), "
        f"**{p.skipped}** skipped, **{len(p.failed)}** failed, **{p.left}** left"
        + (f", **{p.removed}** removed" if p.removed else "")
    )
    if job.running and st.button("Cancel the crawl", key="crawl-cancel"):
        job.cancel.set()
    if p.failed:
        st.dataframe([{"page": url, "reason": reason} for url, reason in p.failed], hide_index=True, key="crawl-failures")
    if not job.running and st.session_state.get("crawl_seen") != job.started:
        st.session_state["crawl_seen"] = job.started
        st.rerun(scope="app")  # show the new documents


def sidebar(docent: Docent, collection: str) -> None:
    report_stopped_ingest()
    st.sidebar.header("Documents")
    uploads = st.sidebar.file_uploader("Add PDFs", type=["pdf"], accept_multiple_files=True, key="uploads")
    if uploads and st.sidebar.button(f"Add {len(uploads)} file(s)", type="primary", key="add"):
        ingest(docent, collection, uploads)
    for kind, text in st.session_state.get("ingest_report", []):
        getattr(st.sidebar, kind)(text)
    web_pages(docent, collection)

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
    if st.session_state.get("history") and st.sidebar.button("New conversation", key="new-conversation"):
        st.session_state["history"] = []
        st.rerun()


def ingest(docent: Docent, collection: str, uploads) -> None:
    """Adds the uploads one by one, with a Stop button. Each file is stored whole or not at all,
    so stopping (any click reruns the page, which ends this run at its next progress update)
    keeps every file finished before it; the report says how far it got."""
    report: list[tuple[str, str]] = []
    st.session_state["ingest_report"] = report
    st.session_state["ingest_running"] = {"done": 0, "total": len(uploads)}
    stop = st.sidebar.empty()
    stop.button("Stop adding", key="stop-ingest", help="Files already added stay; the one in progress is not stored.")
    with st.sidebar.status(f"Adding {len(uploads)} file(s)…", expanded=True) as status:
        bar = st.progress(0.0)
        started = time.monotonic()
        embedded = 0
        for n, upload in enumerate(uploads):
            def progress(stage: str, done: int, total: int, n=n, name=upload.name) -> None:
                rate = (embedded + done) / max(time.monotonic() - started, 1e-6)
                pace = f", {rate:.0f} chunks/s, about {(total - done) / rate:.0f} s left for this file" if done and rate else ""
                bar.progress((n + done / max(total, 1)) / len(uploads), text=f"{name}: {stage} {done}/{total} chunks{pace}")

            outcome = docent.ingest([Source(upload.name, data=upload.getvalue())], collection=collection, progress=progress)[0]
            embedded += outcome.chunks if outcome.status in ("added", "replaced") else 0
            if not outcome.ok:
                report.append(("error", f"{outcome.source}: {outcome.error}"))
            elif outcome.status == "unchanged":
                report.append(("info", f"{outcome.source}: already in the collection, unchanged"))
            else:
                report.append(("success", f"{outcome.source}: {outcome.status}, {outcome.pages} pages, {outcome.chunks} chunks"))
            for warning in outcome.warnings:
                report.append(("warning", f"{outcome.source}: {warning}"))
            st.session_state["ingest_running"]["done"] = n + 1
            bar.progress((n + 1) / len(uploads))
        failed = sum(kind == "error" for kind, _ in report)
        status.update(label=f"Done: {len(uploads) - failed} added, {failed} failed", state="error" if failed else "complete")
    stop.empty()
    del st.session_state["ingest_running"]


def report_stopped_ingest() -> None:
    """After a run that was adding files ended early (Stop, or any other click), say how far it got."""
    running = st.session_state.pop("ingest_running", None)
    if running is not None:
        st.session_state.setdefault("ingest_report", []).append(
            ("warning", f"Stopped: {running['done']} of {running['total']} file(s) were added; the rest were not.")
        )


def source_filter(docent: Docent, collection: str) -> list[str] | None:
    """The documents chosen under "Search only in", or None for all of them."""
    sources = [d.source for d in docent.documents(collection=collection)]
    if len(sources) < 2:
        return None
    chosen = st.sidebar.multiselect("Search only in", sources, key=f"sources-{collection}",
                                    placeholder="All documents", help="Answers then come only from these documents.")
    return chosen or None


def chat(docent: Docent, collection: str, sources: list[str] | None = None) -> None:
    history = st.session_state.setdefault("history", [])
    for n, turn in enumerate(history):
        with st.chat_message("user"):
            st.markdown(turn["question"])
        with st.chat_message("assistant"):
            if turn["answer"].rewritten:
                st.caption(f"Searched for: {turn['answer'].rewritten}")
            st.markdown(turn["answer"].text)
            show_sources(docent, collection, turn["answer"], n)

    question = st.chat_input("Ask a question about your documents")
    if not question:
        return
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        with st.spinner("Searching…"):
            conversation = [(t["answer"].rewritten or t["question"], t["answer"].text) for t in history]
            stream = docent.ask_stream(question, history=conversation, collection=collection, sources=sources)
        if stream.rewritten:
            st.caption(f"Searched for: {stream.rewritten}")
        st.write_stream(stream)
        answer = stream.answer
        answer.question, answer.rewritten = question, stream.rewritten
        show_sources(docent, collection, answer, len(history))
    history.append({"question": question, "answer": answer})


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
    sources = source_filter(docent, collection)
    chat(answer_settings(docent), collection, sources)


main()
