"""A real documentation site served on 127.0.0.1 for crawl tests.

The pages are the documentation of standard-library modules (their own docstrings, real
prose), laid out like a docs site: one page per module with a heading per function. Around
them sit the awkward parts of a real site: a sitemap index pointing at a gzipped sitemap and a
plain one, robots.txt with Disallow and Crawl-delay, a dead link, a server error, a page slower
than any time-out, a redirect loop, ETag and Last-Modified with 304 answers, and a canonical
duplicate. Tests change and remove pages between crawls.
"""

from __future__ import annotations

import gzip
import hashlib
import html
import importlib
import inspect
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODULES = [
    "json",
    "csv",
    "argparse",
    "pathlib",
    "textwrap",
    "heapq",
    "bisect",
    "shlex",
    "fnmatch",
    "glob",
    "difflib",
    "statistics",
]
CRAWL_DELAY = 0.05


def module_page(name: str) -> str:
    module = importlib.import_module(name)
    parts = [f"<h1>{name} — {html.escape((module.__doc__ or name).strip().splitlines()[0])}</h1>"]
    for paragraph in (module.__doc__ or "").strip().split("\n\n")[1:4]:
        parts.append(f"<p>{html.escape(' '.join(paragraph.split()))}</p>")
    for attr, value in sorted(vars(module).items()):
        if attr.startswith("_") or not callable(value) or not (value.__doc__ or "").strip():
            continue
        if getattr(value, "__module__", None) not in (module.__name__, "_" + module.__name__):
            continue
        parts.append(f"<h2>{name}.{attr}</h2>")
        for paragraph in inspect.cleandoc(value.__doc__).split("\n\n")[:3]:
            parts.append(f"<p>{html.escape(' '.join(paragraph.split()))}</p>")
    return page(f"{name} — Python documentation", "\n".join(parts))


def page(title: str, body: str, *, canonical: str | None = None) -> str:
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{link}</head><body>"
        "<nav><a href='/'>Home</a> | <a href='/library/'>Library</a></nav>"
        f"<main><article>{body}</article></main><footer>Copyright the authors. Built {time.time()}</footer></body></html>"
    )


class Site:
    """The site's content; tests edit `pages` (path -> html) between crawls."""

    def __init__(self):
        self.pages = {f"/library/{m}.html": module_page(m) for m in MODULES}
        self.pages["/private/secret.html"] = page("Secret", "<p>Robots may not read this internal page at all.</p>")
        self.pages["/library/json-copy.html"] = self.pages["/library/json.html"].replace(
            "<head>", "<head><link rel='canonical' href='/library/json.html'>", 1
        )
        self.extra_listed = ["/library/missing.html", "/library/broken.html", "/library/slow.html", "/loop-a"]
        self.requests: list[tuple[float, str, str, dict]] = []  # (time, method, path, headers)
        self.lock = threading.Lock()

    def listed(self) -> list[str]:
        return sorted(self.pages) + self.extra_listed

    def sitemap_index(self, base: str) -> bytes:
        return (
            '<?xml version="1.0" encoding="UTF-8"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
            f"<sitemap><loc>{base}/sitemaps/library.xml.gz</loc></sitemap>"
            f"<sitemap><loc>{base}/sitemaps/other.xml</loc></sitemap></sitemapindex>"
        ).encode()

    def urlset(self, base: str, paths: list[str]) -> bytes:
        items = "".join(
            f"<url><loc>{base}{p}</loc>"
            + (f"<lastmod>{self.lastmod(p)}</lastmod>" if p in self.pages and p.endswith("json.html") else "")
            + "</url>"
            for p in paths
        )
        return f'<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{items}</urlset>'.encode()

    def lastmod(self, path: str) -> str:
        return "2026-11-01" if path in self.pages else ""

    def etag(self, path: str) -> str:
        return '"' + hashlib.sha256(self.pages[path].split("<footer>")[0].encode()).hexdigest()[:16] + '"'


def make_handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _send(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8", headers=None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self):  # noqa: N802
            with site.lock:
                site.requests.append((time.monotonic(), "GET", self.path, dict(self.headers)))
            base = f"http://{self.headers['Host']}"
            path = self.path.split("?")[0]
            library = [p for p in site.listed() if p.startswith("/library/")]
            if path == "/robots.txt":
                body = f"User-agent: *\nDisallow: /private/\nCrawl-delay: {CRAWL_DELAY}\nSitemap: {base}/sitemap_index.xml\n"
                return self._send(200, body.encode(), "text/plain")
            if path == "/sitemap_index.xml":
                return self._send(200, site.sitemap_index(base), "application/xml")
            if path == "/sitemaps/library.xml.gz":
                return self._send(200, gzip.compress(site.urlset(base, library)), "application/gzip")
            if path == "/sitemaps/other.xml":
                other = [p for p in site.listed() if not p.startswith("/library/")]
                return self._send(200, site.urlset(base, other), "application/xml")
            if path == "/library/broken.html":
                return self._send(500, b"<h1>Internal Server Error</h1>")
            if path == "/library/slow.html":
                time.sleep(3)
                return self._send(200, page("Slow", "<p>Too late.</p>").encode())
            if path == "/loop-a":
                return self._send(302, headers={"Location": "/loop-b"})
            if path == "/loop-b":
                return self._send(302, headers={"Location": "/loop-a"})
            if path == "/to-private":
                return self._send(302, headers={"Location": "http://10.255.255.1/admin"})
            if path in site.pages:
                etag = site.etag(path)
                modified = formatdate(1_790_000_000, usegmt=True)
                if self.headers.get("If-None-Match") == etag:
                    return self._send(304, headers={"ETag": etag})
                return self._send(200, site.pages[path].encode(), headers={"ETag": etag, "Last-Modified": modified})
            return self._send(404, b"<h1>Not Found</h1>")

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that gave up on the slow page closes its socket: expected, not news


class SiteServer:
    def __init__(self, site: Site):
        self.site = site
        self.server = _QuietServer(("127.0.0.1", 0), make_handler(site))
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def page_gets(self) -> list[tuple[float, str, dict]]:
        with self.site.lock:
            return [(t, p, h) for t, m, p, h in self.site.requests if m == "GET" and p.startswith("/library/")]

    def clear_log(self) -> None:
        with self.site.lock:
            self.site.requests.clear()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
