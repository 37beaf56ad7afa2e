"""Users, roles, API keys and collection access, and the `docent users/keys/access` commands."""

from __future__ import annotations

import json

import pytest

from webapp.access import AccessControl, AccessDenied, AuthenticationFailed, hash_password, verify_password
from webapp.cli import main
from retrieval.settings import SettingsError, load_settings


def test_passwords_are_stored_salted_and_checked_in_constant_form():
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first != second and first.startswith("scrypt$") and "correct horse" not in first
    assert verify_password("correct horse", first) and not verify_password("wrong", first)
    assert not verify_password("anything", "not-a-hash") and not verify_password("anything", None)


def test_settings_name_a_bad_user_entry(tmp_path):
    with pytest.raises(SettingsError, match="users.bob.role"):
        load_settings(home=str(tmp_path), users={"bob": {"role": "owner"}})
    with pytest.raises(SettingsError, match="users.bob.password_hash"):
        load_settings(home=str(tmp_path), users={"bob": {"password_hash": "plain-text"}})
    with pytest.raises(SettingsError, match="auth"):
        load_settings(home=str(tmp_path), auth="kerberos")


def test_users_from_the_settings_file_and_from_admins(tmp_path):
    (tmp_path / "docent.toml").write_text(
        f'auth = "password"\n[users.ada]\nrole = "admin"\npassword_hash = "{hash_password("ada-pw")}"\n'
        '[collection_access.hr]\ngroups = ["people"]\n'
    )
    settings = load_settings(home=str(tmp_path))
    access = AccessControl(settings)
    assert access.enabled and access.sign_in("ada", "ada-pw").role == "admin"
    with pytest.raises(AuthenticationFailed):
        access.sign_in("ada", "nope")
    with pytest.raises(AuthenticationFailed):
        access.sign_in("nobody", "ada-pw")
    with pytest.raises(AccessDenied, match="settings file"):
        access.set_user("ada", "reader")  # fixed by the settings

    access.set_user("pat", "reader", ["people"], "pat-pw")
    access.set_user("pat", "editor", ["people"])  # a new role, the password kept
    pat = access.sign_in("pat", "pat-pw")
    assert (pat.role, pat.groups) == ("editor", frozenset({"people"}))
    assert access.may_see(pat, "hr") and access.may_see(pat, "anything-open")
    outsider = access.set_user("sam", "reader", [], "sam-pw") and access.sign_in("sam", "sam-pw")
    assert not access.may_see(outsider, "hr")
    with pytest.raises(AccessDenied, match="settings file"):
        access.set_collection_access("hr", None)

    key_id, key = access.create_api_key("pat")
    assert access.principal_for_key(key).name == "pat" and key not in json.dumps(access.api_keys())
    assert access.delete_user("pat")
    with pytest.raises(AuthenticationFailed):
        access.principal_for_key(key)  # a removed user's keys go with them
    access.close()


def test_the_cli_manages_users_keys_and_access(tmp_path, capsys, monkeypatch):
    home = ["--home", str(tmp_path)]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO("s3cret pass\n"))
    assert main(["users", "add", "lee", "--role", "editor", "--group", "ops", "--password-stdin", *home]) == 0
    assert main(["users", "list", "--json", *home]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("[") :]) == [
        {"name": "lee", "role": "editor", "groups": ["ops"], "in_settings": False}
    ]
    assert main(["keys", "create", "lee", "--json", *home]) == 0
    created = json.loads(capsys.readouterr().out)
    assert main(["access", "ops-notes", "--group", "ops", *home]) == 0
    assert main(["access", "ops-notes", *home]) == 2  # neither --open nor who
    assert main(["keys", "revoke", created["id"], *home]) == 0
    assert main(["keys", "revoke", created["id"], *home]) == 1
    assert main(["users", "remove", "nobody", *home]) == 1
    access = AccessControl(load_settings(home=str(tmp_path), auth="password"))
    assert access.sign_in("lee", "s3cret pass").role == "editor"
    assert access.collection_access("ops-notes") == ([], ["ops"])
    access.close()
