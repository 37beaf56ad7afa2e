"""Crawl and ingest the Python documentation served on 127.0.0.1, then crawl it again.

    apt-get install python3.11-doc          # the HTML documentation, about 530 pages
    python bench/crawl_bench.py [--docs /usr/share/doc/python3.11/html] [--max-pages 1000]

The documentation is served by http.server (which answers If-Modified-Since with 304) next
to a generated sitemap whose lastmod is each file's mtime, and a robots.txt naming it. Reports
pages per second, the share of time spent fetching, extracting and storing (embedding is most
of storing, and is also timed alone), and the time of a second crawl of the unchanged site as
a share of the first. Writes bench/results/crawl.md and crawl.json.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import tempfile
import threading
import time
from datetime import datetime, timezone
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from ingest.web.crawl import CrawlOptions
from retrieval.service import Docent
from retrieval.settings import load_settings


class TimedEmbedder:
    def __init__(self, inner):
        self.inner, self.seconds, self.texts = inner, 0.0, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts, **kwargs):
        started = time.perf_counter()
        try:
            return self.inner.embed(texts, **kwargs)
        finally:
            self.seconds += time.perf_counter() - started
            self.texts += len(texts)


def serve(docs: Path, root: Path) -> tuple[ThreadingHTTPServer, str]:
    (root / "docs").symlink_to(docs)
    pages = sorted(p for p in docs.rglob("*.html") if "_static" not in p.parts)
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    urls = "".join(
        f"<url><loc>{base}/docs/{p.relative_to(docs).as_posix()}</loc>"
        f"<lastmod>{datetime.fromtimestamp(p.stat().st_mtime, timezone.utc).date().isoformat()}</lastmod></url>"
        for p in pages
    )
    (root / "sitemap.xml").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    )
    (root / "robots.txt").write_text(f"User-agent: *\nDisallow:\nSitemap: {base}/sitemap.xml\n")
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=Path, default=Path("/usr/share/doc/python3.11/html"))
    parser.add_argument("--max-pages", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if not args.docs.is_dir():
        raise SystemExit(f"{args.docs} not found: apt-get install python3.11-doc")

    with tempfile.TemporaryDirectory() as tmp:
        server, base = serve(args.docs.resolve(), Path(tmp))
        docent = Docent(load_settings(home=os.path.join(tmp, "home"), allowed_hosts="127.0.0.1"))
        embedder = TimedEmbedder(docent.embedder)
        docent._embedder = embedder
        options = CrawlOptions(max_pages=args.max_pages, concurrency=os.cpu_count() or 2, per_host=4)

        started = time.perf_counter()
        first = docent.crawl(base, options=options)
        first_s = time.perf_counter() - started
        embed_s, texts = embedder.seconds, embedder.texts

        started = time.perf_counter()
        second = docent.crawl(base, options=options)
        second_s = time.perf_counter() - started
        server.shutdown()

    stored = first.added + first.replaced
    busy = sum(first.seconds.values())
    result = {
        "pages_discovered": first.discovered,
        "pages_stored": stored,
        "pages_failed": len(first.failed),
        "chunks_embedded": texts,
        "first_crawl_s": first_s,
        "pages_per_s": stored / first_s,
        "stage_seconds": {**first.seconds, "embed (part of store)": embed_s},
        "stage_share": {k: v / busy for k, v in first.seconds.items()},
        "embed_share_of_first_crawl": embed_s / first_s,
        "second_crawl_s": second_s,
        "second_crawl_embedded": embedder.texts - texts,
        "second_crawl_unchanged": second.unchanged,
        "second_over_first": second_s / first_s,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "crawl.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# Crawl of the Python {args.docs.parent.name} documentation on 127.0.0.1 ({first.discovered} pages)",
        "",
        "| measure | value |",
        "|---|---:|",
        f"| pages stored (failed) | {stored} ({len(first.failed)}) |",
        f"| chunks embedded | {texts} |",
        f"| first crawl | {first_s:.1f} s, {stored / first_s:.2f} pages/s |",
        f"| time in fetching / extracting / storing (of worker + main thread time) | "
        f"{result['stage_share']['fetch']:.0%} / {result['stage_share']['extract']:.0%} / {result['stage_share']['store']:.0%} |",
        f"| embedding, share of the first crawl's wall time | {embed_s / first_s:.0%} |",
        f"| second crawl, unchanged site | {second_s:.2f} s ({second_s / first_s:.1%} of the first), "
        f"{embedder.texts - texts} chunks embedded |",
    ]
    (args.out / "crawl.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
