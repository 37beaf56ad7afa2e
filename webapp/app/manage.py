"""Admins: collections, who may see each, users and their API keys, and feedback on answers."""

from __future__ import annotations

import streamlit as st

from retrieval.store import CollectionError
from webapp.access import ROLES, AccessDenied
from webapp.chats import eval_set_jsonl, review_jsonl
from webapp.session import NotFound, UserSession


def manage(user: UserSession, collection: str) -> None:
    """Admins (and the local user when sign-in is off): collections; with sign-in on, also who
    may see them, users and API keys."""
    signin = user.access.enabled
    with st.sidebar.expander("Manage collections and users" if signin else "Manage collections"):
        _collections(user, collection, signin)
        if signin:
            _users(user)
    with st.sidebar.expander("Feedback on answers"):
        _feedback(user, collection)


def _collections(user: UserSession, collection: str, signin: bool) -> None:
    # A form: Create takes the name as typed, without Enter first (a button disabled until the
    # name was entered ignored the click that followed typing).
    with st.form("new-collection-form", border=False):
        st.markdown("**New collection**")
        name = st.text_input("Name", key="new-collection", placeholder="handbooks")
        limit = ""
        if signin:
            limit = st.text_input("Only for these users and @groups (blank: everyone)", key="new-collection-access")
        create = st.form_submit_button("Create", key="create-collection")
    if create:
        if not name.strip():
            st.error("Give the new collection a name.")
        else:
            users, groups = _people(limit)
            _act(
                lambda: user.create_collection(name.strip(), users=users or None, groups=groups),
                f"Created '{name.strip()}'",
                select=name.strip(),
            )
    if signin:
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
    if st.session_state.get("confirm-delete") == collection and st.button("Yes, delete it", key="confirm-delete-yes"):
        del st.session_state["confirm-delete"]
        _act(
            lambda: user.delete_collection(collection),
            f"Deleted '{collection}'",
            select=user.docent.settings.collection,
        )


def _users(user: UserSession) -> None:
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


FEEDBACK_SHOWN = 200
FEEDBACK_EXPORTED = 10_000  # thumbs-down answers in one export


def _feedback(user: UserSession, collection: str) -> None:
    recent = user.feedback(limit=FEEDBACK_SHOWN)
    if not recent:
        st.caption("No feedback yet: readers give it with the thumbs under each answer.")
        return
    shown = st.segmented_control(
        "Show", ["all", "👎 only"], default="all", key="feedback-filter", label_visibility="collapsed"
    )
    st.dataframe(
        [
            {
                "given": f.given_at[:16].replace("T", " "),
                "user": f.user,
                "rating": "👍" if f.rating == "up" else "👎",
                "question": f.answer.question,
                "comment": f.comment,
                "answer": f.answer.text,
                "collection": f.collection,
                "backend": f.backend,
            }
            for f in recent
            if shown != "👎 only" or f.rating == "down"
        ],
        hide_index=True,
        key="feedback-table",
    )
    approved = user.approved_count(collection)
    st.download_button(
        f"Export '{collection}' thumbs-up answers ({approved})",
        data=lambda: eval_set_jsonl(user.approved_answers(collection)),  # made when clicked, not on every run
        file_name=f"feedback-{collection}.jsonl",
        mime="application/x-ndjson",
        key="export-feedback",
        disabled=not approved,
        help="A question set for `docent eval`: each approved answer's question, text and cited pages.",
    )
    disapproved = user.disapproved_answers(collection, limit=FEEDBACK_EXPORTED)
    st.download_button(
        f"Export '{collection}' thumbs-down answers ({len(disapproved)})",
        data=review_jsonl(disapproved),
        file_name=f"thumbs-down-{collection}.jsonl",
        mime="application/x-ndjson",
        key="export-thumbs-down",
        disabled=not disapproved,
        help="To look into: each question, the answer and what it cited, and the reader's comment.",
    )


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
