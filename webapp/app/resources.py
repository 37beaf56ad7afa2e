"""The objects every browser session of the server shares (st.cache_resource): one Docent, so
one engine per collection, the access control, the saved chats, the job manager, and the answer
settings chosen in the sidebar."""

from __future__ import annotations

import streamlit as st

from retrieval.answer import BACKEND_NAMES
from retrieval.search import FUSIONS, MODES
from retrieval.service import Docent
from retrieval.settings import load_settings
from webapp.app.preparing import ModelPreparation
from webapp.access import AccessControl
from webapp.app.render import md
from webapp.chats import ChatStore, open_chats
from webapp.jobs import JobManager
from webapp.limits import RateLimiter
from webapp.metrics import ServerState, serve_metrics


@st.cache_resource
def get_preparation(home: str) -> ModelPreparation:
    """The server's one Docent, made with its embedding model on a thread started by the first
    request (preparing.py shows its progress until .docent is set)."""
    return ModelPreparation(home)


@st.cache_resource
def start_metrics(home: str) -> str | None:
    """The app process's /metrics, once per server, where DOCENT_APP_METRICS_ADDRESS says."""
    address = load_settings(home=home).app_metrics_address
    if address:
        preparation = get_preparation(home)
        serve_metrics(address, ServerState(lambda: preparation.docent, get_jobs(home)))
    return address


@st.cache_resource
def get_limiter(home: str) -> RateLimiter:
    """Questions a minute per signed-in user (DOCENT_RATE_LIMIT_PER_MINUTE), as the API's per key."""
    return RateLimiter(load_settings(home=home).rate_limit_per_minute)


@st.cache_resource
def get_access(home: str) -> AccessControl:
    return AccessControl(load_settings(home=home))


@st.cache_resource
def get_chats(home: str) -> ChatStore:
    """The saved chats, with the retention setting applied as the server starts."""
    return open_chats(load_settings(home=home))


@st.cache_resource
def get_jobs(home: str) -> JobManager:
    return JobManager(home)


@st.cache_resource(show_spinner="Preparing the answer backend…", max_entries=8)
def get_variant(home: str, llm: str, search_mode: str, fusion: str, fusion_alpha: float) -> Docent:
    """The shared Docent with the answer settings chosen in the sidebar (a local model loads once)."""
    docent = get_preparation(home).docent  # ready: the page waits for it before any answer
    return docent.variant(llm=llm, search_mode=search_mode, fusion=fusion, fusion_alpha=fusion_alpha)


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
                format_func={
                    "leaders": "RRF keeping decisive leaders",
                    "rrf": "Reciprocal Rank Fusion",
                    "convex": "Convex combination",
                }.get,
            )
            if fusion == "convex":
                alpha = st.slider("Weight of vector search (alpha)", 0.0, 1.0, settings.fusion_alpha, 0.05, key="alpha")
    chosen = docent
    if (llm, mode, fusion, alpha) != (settings.llm, settings.search_mode, settings.fusion, settings.fusion_alpha):
        chosen = get_variant(str(settings.home), llm, mode, fusion, alpha)
    st.sidebar.caption(f"Answers: {md(chosen.backend.description)}")
    if docent.embedding_precision:
        st.sidebar.caption(f"Embedding: {md(docent.embedding_precision)}")
    return chosen
