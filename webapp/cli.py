"""The `docent` command line (docs/user-guide.md), the outermost layer: it starts the app and the API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from retrieval.search import MODES
from retrieval.settings import ROLES, SettingsError, load_settings


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home", default=argparse.SUPPRESS, help="data home (default: DOCENT_HOME or ~/.local/share/docent)"
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    with_collection = argparse.ArgumentParser(add_help=False, parents=[common])
    with_collection.add_argument(
        "-c", "--collection", default=argparse.SUPPRESS, help="collection (default: DOCENT_COLLECTION or 'default')"
    )

    parser = argparse.ArgumentParser(
        prog="docent", description="Chat with your documents, with cited answers.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("ingest", parents=[with_collection], help="add PDFs (files, folders) or web pages (URLs)")
    p.add_argument("paths", nargs="+", metavar="PATH_OR_URL")
    p = commands.add_parser(
        "crawl", parents=[with_collection], help="add a site through its sitemap; re-crawls redo only changes"
    )
    p.add_argument("url", help="a sitemap (or index, or .gz), or a site root whose robots.txt names its sitemaps")
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
    p = commands.add_parser("api", parents=[common], help="start the HTTP API (OpenAPI document at /docs)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1")

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
    commands.add_parser("collections", parents=[common], help="list collections")
    commands.add_parser(
        "prepare",
        parents=[common],
        help="make the embedding model ready now (export, int8 copy) rather than on first use;"
        " says where search runs (CPU or GPU)",
    )
    p = commands.add_parser("eval", parents=[with_collection], help="measure retrieval quality on a labelled set")
    p.add_argument(
        "path", help="a BEIR folder (corpus.jsonl, queries.jsonl, qrels/) or a .jsonl of {question, source, page}"
    )
    p.add_argument("--plot", type=Path, default=None, help="where to write the PNG plot (default: eval-NAME.png)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    as_json = getattr(args, "json", False)
    try:
        settings = load_settings(home=getattr(args, "home", None), collection=getattr(args, "collection", None))
    except SettingsError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 2
    if args.command == "serve":
        return _serve(args, settings)
    if args.command == "api":
        from webapp.api import serve

        serve(settings, args.host, args.port)
        return 0
    if args.command in ("users", "keys", "access"):
        return _manage_access(args, settings, as_json)

    from retrieval.service import Docent
    from retrieval.store import CollectionError

    docent = Docent(settings)
    try:
        return COMMANDS[args.command](docent, args, as_json)
    except CollectionError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    finally:
        docent.close()


def _ingest(docent, args, as_json: bool) -> int:
    from ingest.sources import expand_paths

    sources = expand_paths(args.paths)
    if not sources:
        print("docent: no PDF files found in the given folders", file=sys.stderr)
        return 1
    bar = _ProgressBar()
    outcomes = []
    for n, source in enumerate(sources, start=1):
        bar.label = f"[{n}/{len(sources)}] {Path(source.name).name}"
        outcome = docent.ingest([source], progress=bar.update)[0]
        bar.close()
        outcomes.append(outcome)
        if not as_json:
            print(_describe(outcome))
    if as_json:
        print(json.dumps([o.to_dict() for o in outcomes], indent=2))
    else:
        failed = sum(not o.ok for o in outcomes)
        print(
            f"{len(outcomes) - failed} of {len(outcomes)} ingested into '{docent.settings.collection}'"
            + (f", {failed} failed" if failed else "")
        )
    return 0 if all(o.ok for o in outcomes) else 1


def _describe(outcome) -> str:
    if not outcome.ok:
        return f"failed     {outcome.source}: {outcome.error}"
    line = f"{outcome.status:<10} {outcome.source} ({outcome.pages} pages, {outcome.chunks} chunks)"
    return line + "".join(f"\n           warning: {w}" for w in outcome.warnings)


def _crawl(docent, args, as_json: bool) -> int:
    from ingest import IngestError
    from ingest.web.crawl import CrawlOptions

    settings = docent.settings
    options = CrawlOptions(
        max_pages=args.max_pages or settings.crawl_max_pages,
        include=tuple(args.include),
        exclude=tuple(args.exclude),
        concurrency=settings.crawl_concurrency,
        per_host=settings.crawl_per_host,
    )
    bar = _ProgressBar()
    bar.label = args.url

    def report(p) -> None:
        bar.update(
            f"{p.added + p.replaced} stored, {p.unchanged} unchanged, {len(p.failed)} failed", p.done, p.discovered
        )

    try:
        progress = docent.crawl(args.url, options=options, progress=report)
    except IngestError as exc:
        bar.close()
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    bar.close()
    summary = {
        "url": args.url,
        "discovered": progress.discovered,
        "added": progress.added,
        "replaced": progress.replaced,
        "unchanged": progress.unchanged,
        "removed": progress.removed,
        "skipped": progress.skipped,
        "failed": [{"url": u, "reason": r} for u, r in progress.failed],
    }
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{progress.discovered} pages: {progress.added} added, {progress.replaced} replaced,"
            f" {progress.unchanged} unchanged, "
            f"{progress.removed} removed, {progress.skipped} skipped, {len(progress.failed)} failed"
        )
        for url, reason in progress.failed:
            print(f"failed     {url}: {reason}")
    return 1 if progress.failed else 0


def _unknown_sources(docent, sources) -> list[str]:
    known = {d.source for d in docent.documents()}
    return [s for s in sources or () if s not in known]


def _search(docent, args, as_json: bool) -> int:
    if unknown := _unknown_sources(docent, args.source):
        print(
            f"error: no document named {', '.join(map(repr, unknown))} in this collection (see `docent list`)",
            file=sys.stderr,
        )
        return 2
    hits = docent.search(args.query, k=args.k, mode=args.mode, sources=args.source)
    if as_json:
        print(json.dumps([h.to_dict() for h in hits], indent=2))
        return 0
    if not hits:
        print("no matches")
    for rank, hit in enumerate(hits, start=1):
        print(f"{rank:>2}. {hit.score:.4f}  {_where(hit)}")
        print(f"    {_shorten(hit.text, 200)}")
    return 0


def _ask(docent, args, as_json: bool) -> int:
    if unknown := _unknown_sources(docent, args.source):
        print(
            f"error: no document named {', '.join(map(repr, unknown))} in this collection (see `docent list`)",
            file=sys.stderr,
        )
        return 2
    if as_json:
        print(json.dumps(docent.ask(args.question, sources=args.source).to_dict(), indent=2))
        return 0
    stream = docent.ask_stream(args.question, sources=args.source)
    for piece in stream:  # token by token, as the backend writes
        sys.stdout.write(piece)
        sys.stdout.flush()
    print()
    answer = stream.answer
    if answer.citations:
        print()
        for hit in answer.citations:
            print(f"[{hit.ref}] {_where(hit)}")
            print(f"    {_shorten(hit.text, 300)}")
    elif answer.closest:
        print("\nClosest passages:")
        for hit in answer.closest:
            print(f"  - {_where(hit)}: {_shorten(hit.text, 160)}")
    return 0


def _list(docent, args, as_json: bool) -> int:
    documents = docent.documents()
    if as_json:
        print(json.dumps([d.to_dict() for d in documents], indent=2))
        return 0
    if not documents:
        print(f"collection '{docent.settings.collection}' is empty")
    for d in documents:
        print(f'{d.source}  "{d.title}"  {d.pages} pages, {d.chunks} chunks, added {d.added_at}')
    return 0


def _remove(docent, args, as_json: bool) -> int:
    removed = docent.remove(args.source)
    if as_json:
        print(json.dumps({"source": args.source, "removed": removed}))
    elif removed:
        print(f"removed {args.source}")
    if not removed:
        known = ", ".join(d.source for d in docent.documents()[:10]) or "none"
        print(
            f"docent: no document with source {args.source!r} in '{docent.settings.collection}' (sources: {known})",
            file=sys.stderr,
        )
        return 1
    return 0


def _collections(docent, args, as_json: bool) -> int:
    names = docent.collection_names()
    rows = [
        {"name": n, "documents": len(docent.documents(collection=n)), "chunks": docent.collection(n).chunk_count()}
        for n in names
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no collections yet")
    for row in rows if not as_json else []:
        print(f"{row['name']}  {row['documents']} documents, {row['chunks']} chunks")
    return 0


def _prepare(docent, args, as_json: bool) -> int:
    from retrieval.embed import export_folder, quantize
    from retrieval.index import gpu

    embedder = docent.embedder
    info = {"model": embedder.name, "backend": embedder.backend}
    if embedder.backend.startswith("openvino"):
        folder = export_folder(embedder.name, docent.settings.model_cache)
        info.update(folder=str(folder), int8=quantize.read_report(folder))
    why_not_gpu = "DOCENT_GPU_SEARCH is off" if not docent.settings.gpu_search else gpu.unavailable_reason()
    info["search"] = {"on": "cpu" if why_not_gpu else "gpu", "why_not_gpu": why_not_gpu, "gpus": gpu.devices()}
    if as_json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"{info['model']}: {info['backend']}" + (f", kept in {info['folder']}" if "folder" in info else ""))
    if info.get("int8"):
        report = info["int8"]
        verdict = "used" if report["accepted"] else f"not used (below {report['min_mean_cosine']})"
        print(
            f"int8 copy {verdict}: mean cosine {report['mean_cosine']} to the float model"
            f" on {report['held_out_texts']} held-out texts"
        )
    if why_not_gpu:
        print(f"vector search: on the CPU ({why_not_gpu})")
    else:
        best = max(info["search"]["gpus"], key=lambda d: d["free_memory"])
        print(
            f"vector search: on GPU {best['id']}, {best['name']} ({best['free_memory'] >> 20:,} of "
            f"{best['total_memory'] >> 20:,} MiB free)"
        )
    return 0


def _eval(docent, args, as_json: bool) -> int:
    from retrieval.evaluate import evaluate, format_table, load_eval_set, plot

    try:
        eval_set = load_eval_set(args.path)
    except ValueError as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    collection = getattr(args, "collection", None) or f"eval-{eval_set.name}"
    bar = _ProgressBar()
    bar.label = f"ingesting {eval_set.name}"
    try:
        results = evaluate(docent, eval_set, collection=collection, progress=bar.update)
    except ValueError as exc:
        bar.close()
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    bar.close()
    for problem in eval_set.skipped:
        print(f"docent: skipped {problem}", file=sys.stderr)
    image = plot(
        results, args.plot or Path(f"eval-{eval_set.name}.png"), f"{eval_set.name}: {len(eval_set.queries)} queries"
    )
    if as_json:
        print(json.dumps(results, indent=2))
    else:
        print(f"{eval_set.name}: {len(eval_set.queries)} queries, collection '{collection}'\n")
        print(format_table(results))
        print(f"\nplot: {image}")
    return 0


def _serve(args, settings) -> int:
    app = Path(__file__).with_name("app") / "main.py"
    os.environ["DOCENT_HOME"] = str(settings.home)
    # `python -m` puts the working directory first on sys.path; started from a source checkout,
    # that would shadow the installed package (and its compiled engine) with the bare sources.
    Path(settings.home).mkdir(parents=True, exist_ok=True)
    os.chdir(settings.home)
    command = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        args.host,
        "--server.port",
        str(args.port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    os.execv(sys.executable, command)
    return 0  # not reached


def _read_password(from_stdin: bool) -> str:
    import getpass

    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the two passwords differ")
    return first


def _manage_access(args, settings, as_json: bool) -> int:
    from webapp.access import AccessControl, AccessDenied, hash_password

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


def _where(hit) -> str:
    place = f"p. {hit.page}" if hit.page is not None else hit.source
    return f"{hit.title} ({Path(hit.source).name}, {place})" if hit.page is not None else f"{hit.title} ({place})"


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _ProgressBar:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self):
        self.label = ""
        self.active = sys.stderr.isatty()
        self.drawn = False
        self.started: float | None = None

    def update(self, stage: str, done: int, total: int) -> None:
        if not self.active:
            return
        import time

        now = time.monotonic()
        if self.started is None:
            self.started = now
        width = 30
        filled = int(width * done / max(total, 1))
        rate = done / (now - self.started) if now > self.started and done else 0.0
        pace = f" {rate:.1f}/s, {(total - done) / rate:.0f} s left" if rate else ""
        sys.stderr.write(f"\r{self.label} {stage} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}{pace}\033[K")
        sys.stderr.flush()
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            sys.stderr.write("\n")
            self.drawn = False
        self.started = None


COMMANDS = {
    "ingest": _ingest,
    "crawl": _crawl,
    "search": _search,
    "ask": _ask,
    "list": _list,
    "remove": _remove,
    "collections": _collections,
    "eval": _eval,
    "prepare": _prepare,
}


if __name__ == "__main__":
    sys.exit(main())
