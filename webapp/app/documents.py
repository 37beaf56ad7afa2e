"""The sidebar's documents: adding files and web pages (as background jobs, with their progress),
crawling a site, the documents held, and limiting answers to some of them."""

from __future__ import annotations

import streamlit as st

from ingest.sources import FILE_TYPES, SUFFIXES, Source
from retrieval.store import CollectionError
from webapp.access import WRITE
from webapp.app.render import md
from webapp.jobs import Job, JobConflict
from webapp.session import NotFound, UserSession


def sidebar(user: UserSession, collection: str) -> None:
    st.sidebar.header("Documents")
    if user.principal.can(WRITE):
        upload_files(user, collection)
        web_pages(user, collection)
    for kind, text in st.session_state.pop("notice", []):
        getattr(st.sidebar, kind)(md(text))

    documents = user.documents(collection)
    st.sidebar.subheader(f"In '{collection}' ({len(documents)})")
    if not documents:
        st.sidebar.caption("No documents yet.")
    editor = user.principal.can(WRITE)
    if editor:
        undo_removal(user, collection)
    for doc in documents:
        left, right = st.sidebar.columns([5, 1])
        left.markdown(f"**{md(doc.title)}**  \n{md(doc.source)} · {doc.pages} pages · {doc.chunks} chunks")
        if editor and right.button("✕", key=f"remove-{doc.id}", help=f"Remove {md(doc.source)}"):
            st.session_state["confirm-remove"] = (collection, doc.source)
        if editor and st.session_state.get("confirm-remove") == (collection, doc.source):
            confirm_removal(user, collection, doc.source)


def confirm_removal(user: UserSession, collection: str, source: str) -> None:
    """A removal asks first; once done it can be undone (the collection keeps a copy a while)."""
    st.sidebar.warning(f"Remove {md(source)} and its passages?")
    yes, no = st.sidebar.columns(2)
    if yes.button("Remove", key="confirm-remove-yes", type="primary"):
        del st.session_state["confirm-remove"]
        user.remove(source, collection)
        st.session_state["undo-remove"] = (collection, source)
        st.rerun()
    if no.button("Keep it", key="confirm-remove-no"):
        del st.session_state["confirm-remove"]
        st.rerun()


def undo_removal(user: UserSession, collection: str) -> None:
    """The last removal in this collection, with an Undo button, until undone or another one."""
    removed = st.session_state.get("undo-remove")
    if removed is None or removed[0] != collection:
        return
    source = removed[1]
    left, right = st.sidebar.columns([3, 1])
    left.info(f"Removed {md(source)}")
    if right.button("Undo", key="undo-remove-button"):
        del st.session_state["undo-remove"]
        try:
            user.restore(source, collection)
            st.session_state["notice"] = [("success", f"Restored {source}")]
        except (CollectionError, NotFound) as exc:
            st.session_state["notice"] = [("error", str(exc))]
        st.rerun()


def upload_files(user: UserSession, collection: str) -> None:
    # A new key once files are handed over: the uploader starts empty again, its files added.
    round_ = st.session_state.setdefault("upload-round", 0)
    uploads = st.sidebar.file_uploader(
        f"Add files ({', '.join(t.name for t in FILE_TYPES)})",
        type=[s.lstrip(".") for s in SUFFIXES],
        accept_multiple_files=True,
        key=f"uploads-{round_}",
    )
    if uploads and st.sidebar.button(f"Add {len(uploads)} file(s)", type="primary", key="add"):
        user.start_ingest([Source(u.name, data=u.getvalue()) for u in uploads], collection)
        st.session_state["upload-round"] = round_ + 1
        st.rerun()
    # This user's latest ingest here: after a closed tab or a reload it shows again.
    job = user.jobs.latest(collection, "ingest", owner=user.principal.name)
    if job is not None:
        with st.sidebar:
            st.fragment(ingest_status, run_every=1.0 if job.running else None)(job)


def ingest_status(job: Job) -> None:
    """Redrawn every second while files are added. Each file is stored whole or not at all, so
    Stop keeps every file finished before it; the report says how far it got."""
    done = len(job.outcomes)
    if job.running:
        fraction = (done + job.chunks_done / max(job.chunks_total, 1)) / max(job.total, 1)
        step = "reading" if job.unit == "reading" else f"embedding {job.chunks_done}/{job.chunks_total} {job.unit}"
        detail = f"{md(job.current)}: {step}" if job.current else ""
        st.progress(min(fraction, 1.0), text=f"Adding {done + 1} of {job.total} file(s)… {detail}")
        st.button(
            "Stop adding",
            key="stop-ingest",
            on_click=job.cancel.set,
            help="Files already added stay; the one in progress is not stored.",
            disabled=job.cancel.is_set(),
        )
    for outcome in job.outcomes:
        if not outcome.ok:
            st.error(f"{md(outcome.source)}: {md(outcome.error)}")
        elif outcome.status == "unchanged":
            st.info(f"{md(outcome.source)}: already in the collection, unchanged")
        elif outcome.status == "duplicate":
            st.info(f"{md(outcome.source)}: same as {md(outcome.duplicate_of)}, kept once")
        else:
            st.success(f"{md(outcome.source)}: {outcome.status}, {outcome.pages} pages, {outcome.chunks} chunks")
        for warning in outcome.warnings:
            st.warning(f"{md(outcome.source)}: {md(warning)}")
    if job.error:
        st.error(f"Adding files failed: {md(job.error)}")
    elif job.state == "cancelled":
        added = sum(o.ok for o in job.outcomes)
        st.warning(f"Stopped: {added} of {job.total} file(s) were added; the rest were not.")
    _refresh_when_ended(job)


def web_pages(user: UserSession, collection: str) -> None:
    settings = user.docent.settings
    job = user.jobs.latest(collection, "crawl")
    with st.sidebar.expander("Add web pages", expanded=job is not None and job.running):
        url = st.text_input(
            "A page, a sitemap, or a site's address",
            key="crawl_url",
            placeholder="https://intranet/docs/",
            help="A page's address adds that page. A site's address (ending in /) adds the site: the pages its"
            " sitemap lists, or, without one, the pages its links lead to within that folder.",
        )
        max_pages = st.number_input("At most this many pages", 1, 100_000, settings.crawl_max_pages, key="crawl_max")
        if st.button("Add", key="crawl", disabled=not url):
            options = user.docent.crawl_options(max_pages=int(max_pages))
            try:
                job = user.start_crawl(url.strip(), collection, options=options)
            except JobConflict as exc:
                st.warning(md(str(exc)))
        if job is not None:
            st.fragment(crawl_status, run_every=1.0 if job.running else None)(job)


def crawl_status(job: Job) -> None:
    """Redrawn every second while the crawl runs."""
    p = job.crawl
    if job.error:
        st.error(md(f"The crawl of {job.target} could not run: {job.error}"))
        return
    st.caption(f"Crawl of {md(job.target)}: {job.state}")
    if p.note:
        st.caption(md(p.note))
    st.progress(p.done / p.discovered if p.discovered else 0.0)
    st.markdown(
        f"**{p.done}** done (**{p.added + p.replaced}** stored, **{p.unchanged}** unchanged), "
        f"**{p.skipped}** skipped, **{len(p.failed)}** failed, **{p.left}** left"
        + (f", **{p.removed}** removed" if p.removed else "")
    )
    if job.running and st.button("Cancel the crawl", key="crawl-cancel"):
        job.cancel.set()
    if p.failed:
        st.dataframe(
            [{"page": url, "reason": reason} for url, reason in p.failed], hide_index=True, key="crawl-failures"
        )
    _refresh_when_ended(job)


def _refresh_when_ended(job: Job) -> None:
    """Once a job ends, redraw the whole page once, so the document list shows its result."""
    if not job.running and job.id not in st.session_state.setdefault("jobs_seen", set()):
        st.session_state["jobs_seen"].add(job.id)
        st.rerun(scope="app")


def source_filter(user: UserSession, collection: str) -> list[str] | None:
    """The documents chosen under "Search only in", or None for all of them."""
    sources = [d.source for d in user.documents(collection)]
    if len(sources) < 2:
        return None
    chosen = st.sidebar.multiselect(
        "Search only in",
        sources,
        key=f"sources-{collection}",
        placeholder="All documents",
        help="Answers then come only from these documents.",
    )
    return chosen or None
