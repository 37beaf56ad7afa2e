"""Who may do what: users, roles, API keys, and which collections each may see.

Roles, each with everything the one before may do:
- reader: search, ask, list documents, watch jobs
- editor: also ingest, crawl and remove documents
- admin:  also create and delete collections, and manage users, API keys and collection access

Users come from two places. The settings may define them (`[users.NAME]` in docent.toml, with
a password hash from `docent users hash`); those are fixed and cannot be changed from the app.
Admins add the rest, in the app or with `docent users`, and they live in access.sqlite3 in
the data home, beside the API keys and the collection access lists. A collection with no access
list is open to every signed-in user; one with a list only to the users and groups on it (and
to admins). An API key acts as the user it belongs to, with that user's role and access.

With `auth = "none"` (the default, for a one-person local run) everyone is the local admin.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from retrieval.settings import ROLES
from webapp.homedb import HomeDatabase

READ, WRITE, ADMIN = "read", "write", "admin"
_NEEDS = {READ: "reader", WRITE: "editor", ADMIN: "admin"}
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$"
DB_NAME = "access.sqlite3"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL CHECK (role IN ('reader', 'editor', 'admin')),
    groups TEXT NOT NULL,
    password_hash TEXT
);
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    user TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS collection_access (
    collection TEXT PRIMARY KEY,
    users TEXT NOT NULL,
    groups TEXT NOT NULL
);
"""


class AuthenticationFailed(Exception):
    """The name and password, the API key or the identity do not match a user."""


class AccessDenied(Exception):
    """The user is known but may not do this; the message says what is missing."""


@dataclass(frozen=True)
class Principal:
    """A signed-in user (or the local user when sign-in is off)."""

    name: str
    role: str
    groups: frozenset[str] = frozenset()
    via: str = "password"  # password, oidc, api_key or local

    def can(self, action: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(_NEEDS[action])


LOCAL = Principal("local", "admin", via="local")


@dataclass
class User:
    name: str
    role: str
    groups: list[str] = field(default_factory=list)
    password_hash: str | None = None
    fixed: bool = False  # defined in the settings, not editable in the app


def hash_password(password: str) -> str:
    """A salted scrypt hash, as `docent users hash` prints it for the settings file."""
    if not password:
        raise ValueError("the password is empty")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    try:
        scheme, n, r, p, salt, digest = (stored or "").split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(
            password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):  # a malformed hash matches nothing
        return False
    return hmac.compare_digest(got, expected)


def _key_hash(key: str) -> str:
    # Keys are 256 random bits, so a plain digest is enough (no salt or stretching needed).
    return hashlib.sha256(key.encode()).hexdigest()


class AccessControl:
    """The users, keys and collection access lists of one data home. Thread-safe."""

    def __init__(self, settings):
        self.settings = settings
        self._db = HomeDatabase(Path(settings.home) / DB_NAME, _SCHEMA)

    @property
    def enabled(self) -> bool:
        return self.settings.auth != "none"

    def check(self) -> None:
        """Raises sqlite3.Error when its database cannot be opened or read (the readiness probe)."""
        self._db.check()

    def _query(self, sql: str, args: Iterable = ()) -> list[tuple]:
        return self._db.query(sql, args)

    def close(self) -> None:
        self._db.close()

    # ---- users ------------------------------------------------------------------------------

    def users(self) -> list[User]:
        fixed = {
            name: User(name, spec.role, list(spec.groups), spec.password_hash, fixed=True)
            for name, spec in self.settings.users.items()
        }
        stored = {
            r[0]: User(r[0], r[1], json.loads(r[2]), r[3]) for r in self._query("SELECT * FROM users ORDER BY name")
        }
        return sorted({**stored, **fixed}.values(), key=lambda u: u.name)

    def user(self, name: str) -> User | None:
        return next((u for u in self.users() if u.name == name), None)

    def set_user(self, name: str, role: str, groups: Iterable[str] = (), password: str | None = None) -> User:
        """Adds a user or changes one; the password stays as it was when none is given."""
        import re

        if not re.match(NAME_PATTERN, name):
            raise ValueError(f"invalid user name {name!r}: letters, digits and . _ @ + - (at most 128)")
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
        if name in self.settings.users:
            raise AccessDenied(f"user {name!r} is defined in the settings file; change it there")
        groups = sorted({g.strip() for g in groups if g.strip()})
        hashed = hash_password(password) if password else None
        self._query(
            "INSERT INTO users(name, role, groups, password_hash) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET"
            " role = excluded.role, groups = excluded.groups,"
            " password_hash = coalesce(excluded.password_hash, password_hash)",
            (name, role, json.dumps(groups), hashed),
        )
        return self.user(name)

    def delete_user(self, name: str) -> bool:
        if name in self.settings.users:
            raise AccessDenied(f"user {name!r} is defined in the settings file; remove it there")
        found = bool(self._query("SELECT 1 FROM users WHERE name = ?", (name,)))
        self._query("DELETE FROM users WHERE name = ?", (name,))
        self._query("DELETE FROM api_keys WHERE user = ?", (name,))
        return found

    def _principal(self, user: User, via: str) -> Principal:
        return Principal(user.name, user.role, frozenset(user.groups), via)

    def sign_in(self, name: str, password: str) -> Principal:
        user = self.user(name)
        # Hash even for an unknown name, so the time taken does not tell which names exist.
        ok = verify_password(password, user.password_hash if user else _DUMMY_HASH)
        if user is None or not ok:
            raise AuthenticationFailed("wrong user name or password")
        return self._principal(user, "password")

    def refresh(self, principal: Principal) -> Principal | None:
        """The signed-in user as the store has them now (role and groups), or None once removed."""
        user = self.user(principal.name)
        return None if user is None else self._principal(user, principal.via)

    def principal_for_identity(self, email: str | None) -> Principal:
        """The user an identity provider signed in (matched by e-mail address as user name)."""
        user = self.user(email) if email else None
        if user is None:
            role = self.settings.oidc_default_role
            if role == "none" or not email:
                raise AuthenticationFailed(f"{email or 'this account'} is not a Docent user; ask an admin to add it")
            return Principal(email, role, frozenset(), "oidc")
        return self._principal(user, "oidc")

    def principal_for_email(self, email: str, via: str) -> Principal:
        """The Docent user an account elsewhere (Slack) belongs to, matched by e-mail address as
        user name, letter case aside. No default role: someone Docent does not know is refused."""
        wanted = email.strip().casefold()
        user = next((u for u in self.users() if wanted and u.name.casefold() == wanted), None)
        if user is None:
            raise AuthenticationFailed(f"{email or 'this account'} is not a Docent user")
        return self._principal(user, via)

    # ---- API keys ---------------------------------------------------------------------------

    def create_api_key(self, user: str, label: str = "") -> tuple[str, str]:
        """(key id, the key). The key is shown once; only its hash is kept."""
        if self.user(user) is None:
            raise ValueError(f"no user {user!r}")
        key_id = secrets.token_hex(6)
        key = f"docent_{key_id}_{secrets.token_urlsafe(32)}"
        self._query(
            "INSERT INTO api_keys(id, key_hash, user, label, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, _key_hash(key), user, label, datetime.now(timezone.utc).isoformat(timespec="seconds")),
        )
        return key_id, key

    def api_keys(self, user: str | None = None) -> list[dict]:
        rows = self._query("SELECT id, user, label, created_at FROM api_keys ORDER BY created_at, id")
        keys = [{"id": r[0], "user": r[1], "label": r[2], "created_at": r[3]} for r in rows]
        return [k for k in keys if user is None or k["user"] == user]

    def revoke_api_key(self, key_id: str) -> bool:
        found = bool(self._query("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)))
        self._query("DELETE FROM api_keys WHERE id = ?", (key_id,))
        return found

    def principal_for_key(self, key: str) -> Principal:
        rows = self._query("SELECT user FROM api_keys WHERE key_hash = ?", (_key_hash(key),))
        user = self.user(rows[0][0]) if rows else None
        if user is None:
            raise AuthenticationFailed("unknown or revoked API key")
        return self._principal(user, "api_key")

    # ---- collections ------------------------------------------------------------------------

    def collection_access(self, collection: str) -> tuple[list[str], list[str]] | None:
        """(users, groups) allowed in the collection, or None when it is open to everyone."""
        spec = self.settings.collection_access.get(collection)
        if spec is not None:
            return list(spec.users), list(spec.groups)
        rows = self._query("SELECT users, groups FROM collection_access WHERE collection = ?", (collection,))
        return (json.loads(rows[0][0]), json.loads(rows[0][1])) if rows else None

    def set_collection_access(self, collection: str, users: Iterable[str] | None, groups: Iterable[str] = ()) -> None:
        """Limits a collection to these users and groups; users=None opens it to everyone."""
        if collection in self.settings.collection_access:
            raise AccessDenied(f"the access to '{collection}' is set in the settings file; change it there")
        if users is None:
            self._query("DELETE FROM collection_access WHERE collection = ?", (collection,))
            return
        self._query(
            "INSERT INTO collection_access(collection, users, groups) VALUES (?, ?, ?) ON CONFLICT(collection)"
            " DO UPDATE SET users = excluded.users, groups = excluded.groups",
            (collection, json.dumps(sorted(set(users))), json.dumps(sorted(set(groups)))),
        )

    def may_see(self, principal: Principal, collection: str) -> bool:
        if principal.role == "admin":
            return True
        allowed = self.collection_access(collection)
        if allowed is None:
            return True
        users, groups = allowed
        return principal.name in users or bool(principal.groups & set(groups))


_DUMMY_HASH = hash_password("not a password anyone has")
