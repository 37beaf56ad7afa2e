"""Commands for a team's server: users, API keys, and who may see each collection."""

from __future__ import annotations

import json
import sys


def _read_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def manage_access(args, settings, as_json: bool) -> int:
    from webapp.access import AccessControl, AccessDenied, hash_password
    from webapp.chats import ChatStore

    access = AccessControl(settings)
    try:
        if (args.command, args.action if args.command != "access" else None) == ("users", "hash"):
            print(hash_password(_read_password(args.password_stdin)))
        elif args.command == "users" and args.action == "list":
            users = [
                {"name": u.name, "role": u.role, "groups": u.groups, "in_settings": u.fixed} for u in access.users()
            ]
            if as_json:
                print(json.dumps(users, indent=2))
            for u in users if not as_json else []:
                print(
                    f"{u['name']}  {u['role']}"
                    + (f"  groups: {', '.join(u['groups'])}" if u["groups"] else "")
                    + ("  (settings file)" if u["in_settings"] else "")
                )
        elif args.command == "users" and args.action == "add":
            password = None
            if args.password_stdin or access.user(args.name) is None:
                password = _read_password(args.password_stdin)
            user = access.set_user(args.name, args.role, args.group, password)
            print(f"{user.name}: {user.role}")
        elif args.command == "users" and args.action == "remove":
            if not access.delete_user(args.name):
                print(f"docent: no user {args.name!r}", file=sys.stderr)
                return 1
            ChatStore(access.settings.home).delete_owned_by(args.name)  # their chats go with them
            print(f"removed {args.name}")
        elif args.command == "keys" and args.action == "create":
            key_id, key = access.create_api_key(args.user, args.label)
            print(
                json.dumps({"id": key_id, "key": key})
                if as_json
                else f"key {key_id} for {args.user} (shown once):\n{key}"
            )
        elif args.command == "keys" and args.action == "list":
            keys = access.api_keys()
            if as_json:
                print(json.dumps(keys, indent=2))
            for k in keys if not as_json else []:
                print(f"{k['id']}  {k['user']}  {k['label']}  created {k['created_at']}")
        elif args.command == "keys" and args.action == "revoke":
            if not access.revoke_api_key(args.id):
                print(f"docent: no API key {args.id!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.id}")
        else:  # access
            if args.open == bool(args.user or args.group):
                print("docent: give --open, or the users and groups who may see the collection", file=sys.stderr)
                return 2
            access.set_collection_access(args.name, None if args.open else args.user, args.group)
            print(
                f"'{args.name}': "
                + (
                    "open to every signed-in user"
                    if args.open
                    else f"users {', '.join(args.user) or '-'}, groups {', '.join(args.group) or '-'}"
                )
            )
    except (ValueError, AccessDenied) as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    finally:
        access.close()
    return 0
