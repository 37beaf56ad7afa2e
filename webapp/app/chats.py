"""Which saved chat is open, and the sidebar's list of chats with their rename, share and delete.

The open chat is named in the page's address (?chat=ID), so a reload, a bookmark, the same
address in another browser after signing in, or a shared link brings it back.
"""

from __future__ import annotations

import streamlit as st

from webapp.app.render import md
from webapp.chats import Chat
from webapp.session import NotFound, UserSession

CHAT_PARAM = "chat"
LISTED_CHATS = 30


def requested_chat(user: UserSession, names: list[str]) -> Chat | None:
    """The chat the address names, if this user may read it. On the session's first page, or
    when the chat was just picked, its collection becomes the selected one; when the reader then
    picks another collection, the chat is closed (a new chat starts there)."""
    chat_id = st.query_params.get(CHAT_PARAM)
    if not chat_id:
        st.session_state.pop("open-chat", None)
        return None
    try:
        chat = user.chat(chat_id)
    except NotFound:
        st.session_state["chat-missing"] = True  # said in the sidebar: the page starts with its title
        close_chat()
        return None
    collection = chat.info.collection
    if collection in names:
        if st.session_state.get("open-chat") != chat_id or "collection" not in st.session_state:
            st.session_state["collection"] = collection
        elif st.session_state["collection"] != collection:
            close_chat()
            return None
    st.session_state["open-chat"] = chat_id
    return chat


def open_chat(chat_id: str) -> None:
    st.query_params[CHAT_PARAM] = chat_id
    st.session_state["open-chat"] = chat_id


def close_chat() -> None:
    st.query_params.pop(CHAT_PARAM, None)
    st.session_state.pop("open-chat", None)


def chat_list(user: UserSession, collection: str, opened: Chat | None) -> None:
    st.sidebar.header("Chats")
    if st.session_state.pop("chat-missing", False):
        st.sidebar.warning("That chat is not yours to open, or it was deleted: here is a new one.")
    if st.sidebar.button("New chat", key="new-chat", icon=":material/add:", disabled=opened is None):
        close_chat()
        st.rerun()
    mine = user.chats(collection, limit=LISTED_CHATS)
    if not mine:
        st.sidebar.caption("Your chats in this collection are kept here.")
    for info in mine:
        current = opened is not None and opened.info.id == info.id
        if st.sidebar.button(
            md(info.label), key=f"open-chat-{info.id}", type="primary" if current else "secondary", width="stretch"
        ):
            open_chat(info.id)
            st.rerun()
    if opened is not None and not opened.read_only:
        _this_chat(user, opened)


def _this_chat(user: UserSession, chat: Chat) -> None:
    info = chat.info
    with st.sidebar.expander("This chat"):
        title = st.text_input("Title", value=info.label, key=f"chat-title-{info.id}", max_chars=200)
        if st.button("Rename", key="rename-chat"):
            if title.strip():
                user.rename_chat(info.id, title)
                st.rerun()
            st.warning("Type a title first.")
        shared = st.toggle(
            f"Share with everyone who may read '{md(info.collection)}'",
            value=info.shared,
            key=f"chat-shared-{info.id}",
            help="They can open it with the link below, read only.",
        )
        if shared != info.shared:
            user.share_chat(info.id, shared)
        if shared:
            st.caption("Link to this chat:")
            st.code(share_link(info.id), language=None)
        if st.button("Delete this chat", key="delete-chat", icon=":material/delete:"):
            user.delete_chat(info.id)
            close_chat()
            st.rerun()


def share_link(chat_id: str) -> str:
    base = (st.context.url or "").split("?", 1)[0]
    return f"{base}?{CHAT_PARAM}={chat_id}"
