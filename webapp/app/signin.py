"""Signing in: no one with sign-in off, a password form, or the company's identity provider."""

from __future__ import annotations

import streamlit as st

from retrieval.settings import Settings
from webapp.access import LOCAL, AccessControl, AuthenticationFailed, Principal


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
