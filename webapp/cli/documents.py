"""Commands on collections and what they hold: ingest, crawl, list, remove, restore, collections."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from webapp.cli.output import ProgressBar


def ingest_files(docent, args, as_json: bool) -> int:
    from ingest.sources import FILE_TYPES, expand_paths

    sources = expand_paths(args.paths)
    if not sources:
        kinds = ", ".join(t.name for t in FILE_TYPES)
        print(f"docent: no files Docent reads ({kinds}) were found in the given folders", file=sys.stderr)
        return 1
    bar = ProgressBar()
    outcomes = []

    def label(n: int) -> None:
        if n < len(sources):
            bar.label = f"[{n + 1}/{len(sources)}] {Path(sources[n].name).name}"

    def finished(outcome) -> None:
        bar.close()
        outcomes.append(outcome)
        label(len(outcomes))
        if not as_json:
            print(_describe(outcome), flush=True)

    # One call for all: the next files are parsed in worker processes while this one is embedded.
    label(0)
    docent.ingest(sources, progress=bar.update, on_outcome=finished)
    if as_json:
        print(json.dumps([o.to_dict() for o in outcomes], indent=2))
    else:
        failed = sum(not o.ok for o in outcomes)
        skipped = sum(o.status == "skipped" for o in outcomes)
        partial = sum(o.partial for o in outcomes)
        print(
            f"{len(outcomes) - failed - skipped} of {len(outcomes)} ingested into '{docent.settings.collection}'"
            + (f", {partial} partial (pages without text, no OCR to read them)" if partial else "")
            + (f", {failed} failed" if failed else "")
            + (f", {skipped} skipped (not a kind of file Docent reads)" if skipped else "")
        )
    return ingest_exit_code(outcomes)


def ingest_exit_code(outcomes) -> int:
    """0: every file stored whole; 1: some failed; 3: all stored, some without pages that
    need OCR (the exit code a script checks, not only the warning a person reads)."""
    if not all(o.ok for o in outcomes):
        return 1
    return 3 if any(o.partial for o in outcomes) else 0


def _describe(outcome) -> str:
    if not outcome.ok:
        return f"failed     {outcome.source}: {outcome.error}"
    if outcome.status == "skipped":
        return f"skipped    {outcome.source}: {outcome.error}"
    if outcome.status == "duplicate":
        return f"duplicate  {outcome.source}: same as {outcome.duplicate_of}, kept once"
    line = f"{outcome.status:<10} {outcome.source} ({outcome.pages} pages, {outcome.chunks} chunks)"
    if outcome.partial:
        from ingest.pdf import page_ranges

        line += f", partial: pages {page_ranges(outcome.missing_pages)} not read"
    return line + "".join(f"\n           warning: {w}" for w in outcome.warnings)


def crawl_site(docent, args, as_json: bool) -> int:
    from ingest import IngestError

    options = docent.crawl_options(max_pages=args.max_pages, include=args.include, exclude=args.exclude)
    bar = ProgressBar()
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
        "method": progress.method,
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
        print(progress.note)
        print(
            f"{progress.discovered} pages: {progress.added} added, {progress.replaced} replaced,"
            f" {progress.unchanged} unchanged, "
            f"{progress.removed} removed, {progress.skipped} skipped, {len(progress.failed)} failed"
        )
        for url, reason in progress.failed:
            print(f"failed     {url}: {reason}")
    return 1 if progress.failed else 0


def list_documents(docent, args, as_json: bool) -> int:
    documents = docent.documents()
    if as_json:
        print(json.dumps([d.to_dict() for d in documents], indent=2))
        return 0
    if not documents:
        print(f"collection '{docent.settings.collection}' is empty")
    for d in documents:
        print(f'{d.source}  "{d.title}"  {d.pages} pages, {d.chunks} chunks, added {d.added_at}')
    return 0


def remove_document(docent, args, as_json: bool) -> int:
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


def restore_document(docent, args, as_json: bool) -> int:
    name = docent.settings.collection
    removed = docent.removed_documents()
    if args.source is None:
        if as_json:
            print(json.dumps([vars(r) for r in removed], indent=2))
        elif not removed:
            print(f"no removed documents are kept in '{name}'")
        for r in removed if not as_json else []:
            print(f'{r.source}  "{r.title}"  {r.chunks} chunks, removed {r.removed_at}')
        return 0
    if args.source not in {r.source for r in removed}:
        known = ", ".join(r.source for r in removed[:10]) or "none"
        print(f"docent: no removed document {args.source!r} is kept in '{name}' (kept: {known})", file=sys.stderr)
        return 1
    docent.restore(args.source)
    print(json.dumps({"source": args.source, "restored": True}) if as_json else f"restored {args.source}")
    return 0


def collections(docent, args, as_json: bool) -> int:
    """Lists collections, or creates or deletes one as the machine's local admin (the same checks
    as the app's: a collection with a running job is not deleted)."""
    if args.action == "list":
        return list_collections(docent, as_json)
    if not args.name:
        print(f"docent: collections {args.action} needs a NAME", file=sys.stderr)
        return 2
    from webapp.access import LOCAL, AccessControl
    from webapp.jobs import JobManager
    from webapp.session import NotFound, UserSession

    access = AccessControl(docent.settings)
    user = UserSession(docent, access, JobManager(docent.settings.home), LOCAL)
    try:
        if args.action == "create":
            user.create_collection(args.name)
            done = "created"
        else:
            held = len(docent.documents(collection=args.name)) if args.name in docent.collection_names() else 0
            if held and not args.yes:
                print(
                    f"docent: '{args.name}' holds {held} document{'s' * (held != 1)}; add --yes to delete it"
                    " and all of them",
                    file=sys.stderr,
                )
                return 1
            user.delete_collection(args.name)
            done = "deleted"
    except NotFound as exc:
        print(f"docent: {exc}", file=sys.stderr)
        return 1
    finally:
        access.close()
    print(json.dumps({"name": args.name, args.action + "d": True}) if as_json else f"{done} '{args.name}'")
    return 0


def list_collections(docent, as_json: bool) -> int:
    from retrieval.store import CollectionError

    rows = []
    for name in docent.collection_names():
        try:
            rows.append(
                {
                    "name": name,
                    "documents": len(docent.documents(collection=name)),
                    "chunks": docent.collection(name).chunk_count(),
                }
            )
        except CollectionError as exc:  # one that cannot be opened here (sharded, without --ray) is named, not fatal
            rows.append({"name": name, "error": str(exc)})
    if as_json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no collections yet")
    for row in rows if not as_json else []:
        described = f"{row['documents']} documents, {row['chunks']} chunks" if "error" not in row else row["error"]
        print(f"{row['name']}  {described}")
    return 0
