"""The page a citation given outside the app links to (webapp/references.py: Slack, the
OpenAI-compatible API, MCP): `?collection=NAME&source=SOURCE&page=N` shows the cited page, a
PDF's drawn and its text as Docent holds it, to a reader who may read that collection."""

from __future__ import annotations

import streamlit as st

from retrieval.store import CollectionError
from webapp.app.chat import show_page_image
from webapp.app.render import md
from webapp.session import NotFound, UserSession

PARAMS = ("collection", "source", "page")


def requested_page(user: UserSession) -> bool:
    """Draws the page the address names, if it names one; says whether it did."""
    source = st.query_params.get("source")
    if not source:
        return False
    collection = st.query_params.get("collection") or user.docent.settings.collection
    number = st.query_params.get("page", "")
    page = int(number) if number.isdigit() else None
    st.title("📚 Docent")
    try:
        info, text = user.read_page(source, page, collection)
    except (NotFound, CollectionError) as exc:
        st.error(f"{md(str(exc))}: it may have been removed, or it is not yours to read.")
    else:
        paged = info.kind == "pdf" and page is not None
        st.subheader(md(f"{info.title}, page {page}" if paged else info.title))
        st.caption(md(f"{info.source} in {collection}"))
        if source.startswith(("http://", "https://")):
            st.link_button("Open the page", source)
        original = user.original_file(source, collection) if paged else None
        if original is not None:
            show_page_image(original, page, info.title)
        st.markdown(md(text).replace("\n", "  \n") if text else "_No text of this page is stored._")
    if st.button("Back to the chat", icon=":material/arrow_back:"):
        for name in PARAMS:
            st.query_params.pop(name, None)
        st.rerun()
    return True
