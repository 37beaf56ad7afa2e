"""Docent's web app (`streamlit run` this file; `docent serve` does): sign in, add files and web
pages, see and remove documents, chat with cited answers.

The app only draws, one module per part of the page: signin, documents (the sidebar), manage
(admins), chats (the sidebar's list), chat, page_view (a citation's page, linked from
elsewhere), with render for passages and pages. Heavy objects come from st.cache_resource
(resources: one Docent, so one engine per collection, for every browser session of the server),
each user's chats are saved in the data home (webapp.chats; the open one is named in the page's
address, so a reload brings it back), and everything a user does goes through a
webapp.session.UserSession, which checks their role and collection access exactly as the HTTP
API does. Ingests and crawls run as background jobs of the server, so they go on when the tab is
closed, and their progress shows again when it is reopened.
"""

from __future__ import annotations

import streamlit as st

from retrieval.settings import SettingsError, load_settings
from webapp.access import ADMIN
from webapp.app.chat import chat
from webapp.app.chats import chat_list, requested_chat
from webapp.app.documents import sidebar, source_filter
from webapp.app.manage import manage
from webapp.app.page_view import requested_page
from webapp.app.preparing import wait_for_model
from webapp.app.resources import answer_settings, get_access, get_chats, get_jobs, get_preparation, start_metrics
from webapp.app.signin import account, signed_in
from webapp.session import UserSession

st.set_page_config(page_title="Docent", page_icon="📚", layout="wide")


def main() -> None:
    try:
        settings = load_settings()
    except SettingsError as exc:
        st.error(str(exc))
        st.stop()
    preparation = get_preparation(str(settings.home))  # from the first request, sign-in page or not
    start_metrics(str(settings.home))
    access = get_access(str(settings.home))
    principal = signed_in(settings, access)
    if principal is None:
        st.stop()
    docent = preparation.docent
    if docent is None:
        wait_for_model(preparation)
    user = UserSession(docent, access, get_jobs(str(settings.home)), principal, get_chats(str(settings.home)))
    names = user.collections()
    if not names:
        st.title("📚 Docent")
        st.info("You have no collection to read yet: ask an admin for access.")
        account(principal)
        st.stop()
    if requested_page(user):  # a citation's link from Slack, an OpenAI-style client or MCP
        account(principal)
        st.stop()
    if st.session_state.get("select-collection") in names:
        st.session_state["collection"] = st.session_state.pop("select-collection")
    opened = requested_chat(user, names)
    if st.session_state.get("collection") not in names:
        st.session_state["collection"] = settings.collection if settings.collection in names else names[0]
    collection = st.sidebar.selectbox("Collection", names, key="collection")
    st.title("📚 Docent")
    st.caption("Answers come only from your documents, and every statement cites its page.")
    account(principal)
    chat_list(user, collection, opened)
    sidebar(user, collection)
    if principal.can(ADMIN):
        manage(user, collection)
    sources = source_filter(user, collection)
    chat(user, answer_settings(docent), collection, opened, sources)


# Streamlit runs this file as __main__; the file workers of an ingest are spawned processes that
# import __main__ again (as __mp_main__), and must not start a second app inside each worker.
if __name__ == "__main__":
    main()
