"""Docent's web app: sign in, add PDFs and web pages, see and remove documents, chat with cited answers.

The file only draws. Heavy objects come from st.cache_resource (one Docent, so one engine per
collection, for every browser session of the server), each user's conversation lives in
st.session_state, and everything a user does goes through a webapp.session.UserSession,
which checks their role and collection access exactly as the HTTP API does. Ingests and crawls
run as background jobs of the server, so they go on when the tab is closed, and their progress
shows again when it is reopened.
"""

from __future__ import annotations

import streamlit as st

from ingest.sources import FILE_TYPES, SUFFIXES, Source
from ingest.web.crawl import CrawlOptions
from retrieval.answer import BACKEND_NAMES
from retrieval.models import Answer, Hit
from retrieval.search import FUSIONS, MODES
from retrieval.service import Docent
from retrieval.settings import Settings, SettingsError, load_settings
from retrieval.store import CollectionError
from webapp.access import ADMIN, ROLES, WRITE, AccessControl, AccessDenied, AuthenticationFailed, LOCAL, Principal
from webapp.app.render import highlighted_passage, page_image, where
from webapp.jobs import Job, JobConflict, JobManager
from webapp.session import NotFound, UserSession

st.set_page_config(page_title="Docent", page_icon="📚", layout="wide")


@st.cache_resource(
    show_spinner="Loading the embedding model… (the first start on a machine also prepares it: about a minute, once)"
)
def get_docent(home: str) -> Docent:
    docent = Docent(load_settings(home=home))
    docent.load_model()  # once, up front, under the spinner
    return docent


@st.cache_resource
def get_access(home: str) -> AccessControl:
    return AccessControl(load_settings(home=home))


@st.cache_resource
def get_jobs(home: str) -> JobManager:
    return JobManager(home)


@st.cache_resource(show_spinner="Preparing the answer backend…", max_entries=8)
def get_variant(home: str, llm: str, search_mode: str, fusion: str, fusion_alpha: float) -> Docent:
    """The shared Docent with the answer settings chosen in the sidebar (a local model loads once)."""
    return get_docent(home).variant(llm=llm, search_mode=search_mode, fusion=fusion, fusion_alpha=fusion_alpha)


def answer_settings(docent: Docent) -> Docent:
    settings = docent.settings
    with st.sidebar.expander("Answering"):
        llm = st.selectbox("Answer backend", BACKEND_NAMES, index=BACKEND_NAMES.index(settings.llm), key="llm")
        mode = st.selectbox("Search mode", MODES, index=MODES.index(settings.search_mode), key="search_mode")
        fusion, alpha = settings.fusion, settings.fusion_alpha
        if mode == "hybrid":
            fusion = st.selectbox(
                "Fusion",
                FUSIONS,
                index=FUSIONS.index(settings.fusion),
                key="fusion",
                format_func={"rrf": "Reciprocal Rank Fusion", "convex": "Convex combination"}.get,
            )
            if fusion == "convex":
                alpha = st.slider("Weight of vector search (alpha)", 0.0, 1.0, settings.fusion_alpha, 0.05, key="alpha")
    if (llm, mode, fusion, alpha) == (settings.llm, settings.search_mode, settings.fusion, settings.fusion_alpha):
        return docent
    return get_variant(str(settings.home), llm, mode, fusion, alpha)


@st.cache_data(max_entries=64, show_spinner=False)
def cached_page_image(path: str, page: int) -> bytes:
    from pathlib import Path

    return page_image(Path(path), page)


def show_passage(user: UserSession, collection: str, hit: Hit, key: str) -> None:
    st.caption(hit.source)
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
            st.image(cached_page_image(str(original), hit.page), caption=f"{hit.title}, page {hit.page}")
        except Exception as exc:  # a page pdfium cannot draw still leaves the text above
            st.warning(f"Page {hit.page} could not be drawn: {exc}")


def show_sources(user: UserSession, collection: str, answer: Answer, turn: int) -> None:
    if answer.error:
        st.error(f"The answer backend failed: {answer.error}")
    for hit in answer.citations:
        with st.expander(f"[{hit.ref}] {where(hit)}"):
            show_passage(user, collection, hit, f"{turn}-{hit.ref}")
    if not answer.answered and answer.closest:
        st.caption("What came closest:" if not answer.error else "The passages that matched:")
        for n, hit in enumerate(answer.closest):
            with st.expander(where(hit)):
                show_passage(user, collection, hit, f"{turn}-closest-{n}")


# ---- signing in ----------------------------------------------------------------------------------


def signed_in(settings: Settings, access: AccessControl) -> Principal | None:
    """The user of this browser session, or None after drawing the sign-in page."""
    if not access.enabled:
        return LOCAL
    if settings.auth == "oidc":
        return _identity_provider_user(access)
    principal = st.session_state.get("principal")
    if principal is not None:
        # Looked up again on every run: a user removed or given another role by an admin is
        # signed out, or gets the new role, at their next click.
        current = access.refresh(principal)
        if current is not None:
            st.session_state["principal"] = current
            return current
        del st.session_state["principal"]
    st.title("📚 Docent")
    if not access.users():
        st.warning("No users are set up yet: an admin adds the first with `docent users add NAME --role admin`.")
    with st.form("sign-in"):
        name = st.text_input("User name", key="sign-in-name")
        password = st.text_input("Password", type="password", key="sign-in-password")
        if st.form_submit_button("Sign in", type="primary"):
            try:
                st.session_state["principal"] = access.sign_in(name.strip(), password)
                st.rerun()
            except AuthenticationFailed as exc:
                st.error(str(exc))
    return None


def _identity_provider_user(access: AccessControl) -> Principal | None:
    """Sign-in through the company's OpenID Connect provider (Streamlit's [auth] secrets)."""
    if not st.user.is_logged_in:
        st.title("📚 Docent")
        st.button("Sign in with your company account", type="primary", on_click=st.login)
        return None
    try:
        return access.principal_for_identity(st.user.get("email"))
    except AuthenticationFailed as exc:
        st.error(str(exc))
        st.button("Sign out", on_click=st.logout)
        return None


def account(principal: Principal) -> None:
    if principal.via == "local":
        return
    left, right = st.sidebar.columns([3, 2])
    left.caption(f"Signed in as **{principal.name}** ({principal.role})")
    if right.button("Sign out", key="sign-out"):
        if principal.via == "oidc":
            st.logout()
        for key in list(st.session_state):
            del st.session_state[key]
        st.rerun()


# ---- adding documents ----------------------------------------------------------------------------


def web_pages(user: UserSession, collection: str) -> None:
    settings = user.docent.settings
    job = user.jobs.latest(collection, "crawl")
    with st.sidebar.expander("Add web pages", expanded=job is not None and job.running):
        url = st.text_input(
            "A page, a sitemap, or a site's address", key="crawl_url", placeholder="https://intranet/docs/"
        )
        max_pages = st.number_input("At most this many pages", 1, 100_000, settings.crawl_max_pages, key="crawl_max")
        if st.button("Add", key="crawl", disabled=not url):
            options = CrawlOptions(
                max_pages=int(max_pages), concurrency=settings.crawl_concurrency, per_host=settings.crawl_per_host
            )
            try:
                job = user.start_crawl(url.strip(), collection, options=options)
            except JobConflict as exc:
                st.warning(str(exc))
        if job is not None:
            st.fragment(crawl_status, run_every=1.0 if job.running else None)(job)


def crawl_status(job: Job) -> None:
    """Redrawn every second while the crawl runs."""
    p = job.crawl
    if job.error:
        st.error(f"The crawl of {job.target} could not run: {job.error}")
        return
    st.caption(f"Crawl of {job.target}: {job.state}")
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


def upload_files(user: UserSession, collection: str) -> None:
    uploads = st.sidebar.file_uploader(
        f"Add files ({', '.join(t.name for t in FILE_TYPES)})",
        type=[s.lstrip(".") for s in SUFFIXES],
        accept_multiple_files=True,
        key="uploads",
    )
    if uploads and st.sidebar.button(f"Add {len(uploads)} file(s)", type="primary", key="add"):
        user.start_ingest([Source(u.name, data=u.getvalue()) for u in uploads], collection)
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
        detail = f"{job.current}: embedding {job.chunks_done}/{job.chunks_total} {job.unit}" if job.current else ""
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
            st.error(f"{outcome.source}: {outcome.error}")
        elif outcome.status == "unchanged":
            st.info(f"{outcome.source}: already in the collection, unchanged")
        else:
            st.success(f"{outcome.source}: {outcome.status}, {outcome.pages} pages, {outcome.chunks} chunks")
        for warning in outcome.warnings:
            st.warning(f"{outcome.source}: {warning}")
    if job.error:
        st.error(f"Adding files failed: {job.error}")
    elif job.state == "cancelled":
        added = sum(o.ok for o in job.outcomes)
        st.warning(f"Stopped: {added} of {job.total} file(s) were added; the rest were not.")
    _refresh_when_ended(job)


def _refresh_when_ended(job: Job) -> None:
    """Once a job ends, redraw the whole page once, so the document list shows its result."""
    if not job.running and job.id not in st.session_state.setdefault("jobs_seen", set()):
        st.session_state["jobs_seen"].add(job.id)
        st.rerun(scope="app")


# ---- the sidebar -------------------------------------------------------------------------------


def sidebar(user: UserSession, collection: str) -> None:
    st.sidebar.header("Documents")
    if user.principal.can(WRITE):
        upload_files(user, collection)
        web_pages(user, collection)
    for kind, text in st.session_state.pop("notice", []):
        getattr(st.sidebar, kind)(text)

    documents = user.documents(collection)
    st.sidebar.subheader(f"In '{collection}' ({len(documents)})")
    if not documents:
        st.sidebar.caption("No documents yet.")
    for doc in documents:
        left, right = st.sidebar.columns([5, 1])
        left.markdown(f"**{doc.title}**  \n{doc.source} · {doc.pages} pages · {doc.chunks} chunks")
        if user.principal.can(WRITE) and right.button("✕", key=f"remove-{doc.id}", help=f"Remove {doc.source}"):
            user.remove(doc.source, collection)
            st.session_state["notice"] = [("info", f"Removed {doc.source}")]
            st.rerun()
    if st.session_state.get("history") and st.sidebar.button("New conversation", key="new-conversation"):
        st.session_state["history"] = []
        st.rerun()


def manage(user: UserSession, collection: str) -> None:
    """Admins: collections, who may see them, users and API keys."""
    with st.sidebar.expander("Manage collections and users"):
        st.markdown("**New collection**")
        name = st.text_input("Name", key="new-collection", placeholder="handbooks")
        limit = st.text_input("Only for these users and @groups (blank: everyone)", key="new-collection-access")
        if st.button("Create", key="create-collection", disabled=not name):
            users, groups = _people(limit)
            _act(
                lambda: user.create_collection(name.strip(), users=users or None, groups=groups),
                f"Created '{name.strip()}'",
                select=name.strip(),
            )

        st.markdown(f"**Who may see '{collection}'**")
        allowed = user.access.collection_access(collection)
        current = "" if allowed is None else " ".join(allowed[0] + [f"@{g}" for g in allowed[1]])
        people = st.text_input("Users and @groups (blank: everyone)", value=current, key=f"access-{collection}")
        if st.button("Save access", key="save-access"):
            users, groups = _people(people)
            _act(
                lambda: user.set_collection_access(collection, users if (users or groups) else None, groups),
                f"Access to '{collection}' saved",
            )
        if st.button(f"Delete '{collection}' and all its documents", key="delete-collection"):
            st.session_state["confirm-delete"] = collection
        if st.session_state.get("confirm-delete") == collection and st.button(
            "Yes, delete it", key="confirm-delete-yes"
        ):
            del st.session_state["confirm-delete"]
            _act(
                lambda: user.delete_collection(collection),
                f"Deleted '{collection}'",
                select=user.docent.settings.collection,
            )

        st.markdown("**Users**")
        st.dataframe(
            [
                {
                    "user": u.name,
                    "role": u.role,
                    "groups": ", ".join(u.groups),
                    "from": "settings" if u.fixed else "app",
                }
                for u in user.users()
            ],
            hide_index=True,
            key="users-table",
        )
        who = st.text_input("User name", key="user-name")
        role = st.selectbox("Role", ROLES, key="user-role")
        groups = st.text_input("Groups (space-separated)", key="user-groups")
        password = st.text_input("Password (blank: keep)", type="password", key="user-password")
        left, right = st.columns(2)
        if left.button("Save user", key="save-user", disabled=not who):
            _act(lambda: user.set_user(who.strip(), role, groups.split(), password or None), f"Saved {who.strip()}")
        if right.button("Remove user", key="remove-user", disabled=not who):
            _act(lambda: user.delete_user(who.strip()), f"Removed {who.strip()}")
        if st.button("New API key for this user", key="new-key", disabled=not who):
            try:
                key_id, key = user.create_api_key(who.strip(), "made in the app")
                st.code(key, language=None)
                st.caption(f"Key {key_id}: copy it now, it is not shown again.")
            except (ValueError, AccessDenied) as exc:
                st.error(str(exc))


def _people(text: str) -> tuple[list[str], list[str]]:
    words = text.replace(",", " ").split()
    return [w for w in words if not w.startswith("@")], [w[1:] for w in words if w.startswith("@") and len(w) > 1]


def _act(action, done: str, select: str | None = None) -> None:
    try:
        action()
    except (ValueError, AccessDenied, CollectionError, NotFound) as exc:
        st.error(str(exc))
        return
    st.session_state["notice"] = [("success", done)]
    if select:
        st.session_state["select-collection"] = select  # applied before the selector is drawn
    st.rerun()


# ---- asking ------------------------------------------------------------------------------------


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


def chat(user: UserSession, answering: Docent, collection: str, sources: list[str] | None = None) -> None:
    history = st.session_state.setdefault("history", [])
    for n, turn in enumerate(history):
        with st.chat_message("user"):
            st.markdown(turn["question"])
        with st.chat_message("assistant"):
            if turn["answer"].rewritten:
                st.caption(f"Searched for: {turn['answer'].rewritten}")
            st.markdown(turn["answer"].text)
            show_sources(user, collection, turn["answer"], n)

    question = st.chat_input("Ask a question about your documents")
    if not question:
        return
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        with st.spinner("Searching…"):
            conversation = [(t["answer"].rewritten or t["question"], t["answer"].text) for t in history]
            stream = user.ask_stream(
                question, history=conversation, collection=collection, sources=sources, docent=answering
            )
        if stream.rewritten:
            st.caption(f"Searched for: {stream.rewritten}")
        st.write_stream(stream)
        answer = stream.answer
        answer.question, answer.rewritten = question, stream.rewritten
        show_sources(user, collection, answer, len(history))
    history.append({"question": question, "answer": answer})


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        st.error(str(exc))
        st.stop()
    access = get_access(str(settings.home))
    principal = signed_in(settings, access)
    if principal is None:
        st.stop()
    docent = get_docent(str(settings.home))
    user = UserSession(docent, access, get_jobs(str(settings.home)), principal)
    names = user.collections()
    if not names:
        st.title("📚 Docent")
        st.info("You have no collection to read yet: ask an admin for access.")
        account(principal)
        st.stop()
    if st.session_state.get("select-collection") in names:
        st.session_state["collection"] = st.session_state.pop("select-collection")
    if st.session_state.get("collection") not in names:
        st.session_state["collection"] = settings.collection if settings.collection in names else names[0]
    collection = st.sidebar.selectbox("Collection", names, key="collection")
    if st.session_state.get("history_of") != collection:  # a conversation belongs to one collection
        st.session_state["history"], st.session_state["history_of"] = [], collection
    st.title("📚 Docent")
    st.caption("Answers come only from your documents, and every statement cites its page.")
    account(principal)
    sidebar(user, collection)
    if principal.can(ADMIN) and access.enabled:
        manage(user, collection)
    sources = source_filter(user, collection)
    chat(user, answer_settings(docent), collection, sources)


main()
