"""The `docent` command line (docs/user-guide.md), the outermost layer: it starts the app and the API."""

from __future__ import annotations

import sys

from retrieval.settings import SettingsError, load_settings
from webapp.cli.access import manage_access
from webapp.cli.answers import ask, evaluate_set, search
from webapp.cli.documents import (
    collections,
    crawl_site,
    ingest_files,
    list_documents,
    remove_document,
    restore_document,
)
from webapp.cli.parser import build_parser
from webapp.cli.service import cluster_status, prepare, serve_app

READING = {"list", "remove", "restore", "search", "ask"}  # commands that need the collection to exist
COMMANDS = {
    "ingest": ingest_files,
    "crawl": crawl_site,
    "search": search,
    "ask": ask,
    "list": list_documents,
    "remove": remove_document,
    "restore": restore_document,
    "collections": collections,
    "eval": evaluate_set,
    "prepare": prepare,
    "cluster": cluster_status,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        settings = load_settings(
            home=getattr(args, "home", None),
            collection=getattr(args, "collection", None),
            ray_address=getattr(args, "ray", None),
        )
    except SettingsError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return serve_app(args, settings)
    if args.command == "api":
        from webapp.api import serve as serve_api

        serve_api(settings, args.host, args.port)
        return 0
    if args.command == "mcp":
        import os

        from webapp.mcp_server import serve_stdio

        return serve_stdio(settings, os.environ.get("DOCENT_API_KEY"))
    if args.command == "slack":
        from webapp.slack import serve_slack

        return serve_slack(settings)
    if args.command in ("users", "keys", "access"):
        return manage_access(args, settings, as_json)
    if args.command == "backup":
        from webapp.cli.backup import backup

        return backup(args, settings, as_json)

    from retrieval.service import Docent
    from retrieval.store import CollectionError

    docent = Docent(settings)
    try:
        named = getattr(args, "collection", None)
        if named and args.command in READING and named not in docent.collection_names():
            raise CollectionError(f"no collection '{named}'")  # reading one makes none
        return COMMANDS[args.command](docent, args, as_json)
    except CollectionError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    finally:
        docent.close()
