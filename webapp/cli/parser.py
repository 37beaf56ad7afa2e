"""The `docent` command's arguments: one subcommand each, with its help."""

from __future__ import annotations

import argparse
from pathlib import Path

from retrieval.search import MODES
from retrieval.settings import ROLES


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", default=argparse.SUPPRESS, help="data home (default: DOCENT_HOME or ~/.local/share/docent)"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument(
        "--ray",
        default=argparse.SUPPRESS,
        metavar="ADDRESS",
        help="run on this Ray cluster (auto, host:port): sharded collections, ingest on Ray Data"
        " (default: DOCENT_RAY_ADDRESS; unset: this machine alone)",
    )
    with_collection = argparse.ArgumentParser(add_help=False, parents=[common])
    with_collection.add_argument(
        "-c", "--collection", default=argparse.SUPPRESS, help="collection (default: DOCENT_COLLECTION or 'default')"
    )

    parser = argparse.ArgumentParser(
        prog="docent", description="Chat with your documents, with cited answers.", parents=[common]
    )
    # Also before the command, as the user guide writes it: `docent -c NAME list`.
    parser.add_argument(
        "-c", "--collection", default=argparse.SUPPRESS, help="collection (default: DOCENT_COLLECTION or 'default')"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "ingest",
        parents=[with_collection],
        help="add files of every type Docent reads (PDF, Word, PowerPoint, Excel, HTML, images by OCR,"
        " e-mail, CSV, Markdown, text), folders of them, or web pages (URLs)",
    )
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    p = commands.add_parser(
        "crawl",
        parents=[with_collection],
        help="add a site through its sitemap, or its links when it has none; re-crawls redo only changes",
    )
    p.add_argument(
        "url",
        help="a sitemap (or index, or .gz); or a site's address (ending in '/'): its sitemaps, else its links;"
        " any other page's URL adds that page alone",
    )
    p.add_argument("--max-pages", type=int, default=None, help="page cap (default: DOCENT_CRAWL_MAX_PAGES)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="only URLs matching (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="skip URLs matching (repeatable)")
    p = commands.add_parser("search", parents=[with_collection], help="find passages")
    p.add_argument("query")
    p.add_argument("-k", type=int, default=10, help="number of hits (default 10)")
    p.add_argument("--mode", choices=MODES, default=None, help="search mode (default: hybrid)")
    p.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="SOURCE",
        help="search only this document, as `docent list` names it (repeatable)",
    )
    p = commands.add_parser("ask", parents=[with_collection], help="answer a question with citations")
    p.add_argument("question")
    p.add_argument(
        "--source",
        action="append",
        default=None,
        metavar="SOURCE",
        help="answer only from this document, as `docent list` names it (repeatable)",
    )
    p = commands.add_parser("serve", parents=[common], help="start the web app")
    p.add_argument("--port", type=int, default=8501)
    p.add_argument("--host", default="127.0.0.1")
    p = commands.add_parser(
        "api",
        parents=[common],
        help="start the HTTP API (OpenAPI document at /docs), with MCP at /mcp and OpenAI's chat API at /v1",
    )
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")
    commands.add_parser(
        "mcp",
        parents=[common],
        help="serve MCP over stdin/stdout for an agent on this machine (sign-in on: acts as DOCENT_API_KEY's user)",
    )
    commands.add_parser(
        "slack",
        parents=[common],
        help="answer in Slack (Socket Mode): DOCENT_SLACK_BOT_TOKEN, DOCENT_SLACK_APP_TOKEN, DOCENT_SLACK_CHANNELS",
    )

    p = commands.add_parser("users", parents=[common], help="manage who may sign in (see docs/team-server.md)")
    users = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    users.add_parser("list", parents=[common], help="users and their roles")
    q = users.add_parser("add", parents=[common], help="add a user, or change one's role, groups or password")
    q.add_argument("name")
    q.add_argument("--role", choices=ROLES, default=ROLES[0])
    q.add_argument("--group", action="append", default=[], help="a group the user is in (repeatable)")
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    q = users.add_parser("remove", parents=[common], help="remove a user and their API keys")
    q.add_argument("name")
    q = users.add_parser("hash", parents=[common], help="print a password hash for [users.NAME] in docent.toml")
    q.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    p = commands.add_parser("keys", parents=[common], help="API keys (each acts as its user)")
    keys = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    keys.add_parser("list", parents=[common], help="keys by id, user and label (never the key itself)")
    q = keys.add_parser("create", parents=[common], help="create a key for a user; it is shown once")
    q.add_argument("user")
    q.add_argument("--label", default="")
    q = keys.add_parser("revoke", parents=[common], help="revoke a key by its id")
    q.add_argument("id")

    p = commands.add_parser("access", parents=[common], help="who may see a collection")
    p.add_argument("name", metavar="COLLECTION")
    p.add_argument("--user", action="append", default=[], help="a user who may (repeatable)")
    p.add_argument("--group", action="append", default=[], help="a group whose members may (repeatable)")
    p.add_argument("--open", action="store_true", help="open it to every signed-in user")
    commands.add_parser("list", parents=[with_collection], help="documents in a collection")
    p = commands.add_parser("remove", parents=[with_collection], help="remove a document by its source")
    p.add_argument("source")
    p = commands.add_parser(
        "restore", parents=[with_collection], help="undo a document's removal (without SOURCE: what can be restored)"
    )
    p.add_argument("source", nargs="?")
    p = commands.add_parser(
        "collections", parents=[common], help="list collections, or create or delete one (as the local admin)"
    )
    p.add_argument("action", nargs="?", choices=("list", "create", "delete"), default="list")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--yes", action="store_true", help="delete without asking (a collection with documents)")
    commands.add_parser(
        "prepare",
        parents=[common],
        help="make the embedding model ready now (export, int8 copy) rather than on first use;"
        " says where search runs (CPU or GPU)",
    )
    p = commands.add_parser(
        "backup",
        parents=[common],
        help="back up the data home while the server runs, verify a backup, or restore one (docs/team-server.md)",
    )
    backups = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    q = backups.add_parser("create", parents=[common], help="a consistent copy of the data home into a new folder")
    q.add_argument("path", metavar="DEST", help="a new (or empty) folder outside the data home")
    q = backups.add_parser("verify", parents=[common], help="check a backup's files, checksums and databases")
    q.add_argument("path", metavar="SRC")
    q = backups.add_parser("restore", parents=[common], help="restore a backup into an empty data home, verified")
    q.add_argument("path", metavar="SRC")
    q.add_argument("--replace", action="store_true", help="restore over a data home that is not empty (moved aside)")
    p = commands.add_parser(
        "cluster", parents=[common], help="the Ray cluster: its nodes, and each shard's size and health"
    )
    p.add_argument("action", nargs="?", choices=("status",), default="status")
    p = commands.add_parser("eval", parents=[with_collection], help="measure retrieval quality on a labelled set")
    p.add_argument(
        "path", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a .jsonl of {question, source, page}"
    )
    p.add_argument("--plot", type=Path, default=None, help="where to write the PNG plot (default: eval-NAME.png)")
    return parser
