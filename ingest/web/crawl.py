"""Crawling a site through its sitemaps, or by its links, politely, and only re-doing what changed.

What the start URL is decides the way (CrawlProgress.method): a sitemap (a nested sitemap
index, a gzipped sitemap) is read; a site's address (a path ending in "/", or an index page)
is crawled through the sitemaps its robots.txt names or /sitemap.xml, and when it has none by
following its links, breadth first, within its host and that path; any other page's URL adds
that page only. The crawler obeys robots.txt (Disallow and Crawl-delay for our user agent),
fetches concurrently with a per-host limit, and hands each page to a sink. What
the sink already holds is not redone: a page whose sitemap lastmod has not moved is not
requested; otherwise the request is conditional (ETag, Last-Modified), and a page whose main
text hashes the same is not re-embedded. Pages that answer 404 or 410, or that left the
sitemap, are removed. Every failure is recorded per page and never stops the crawl.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol
from urllib.parse import urldefrag, urljoin, urlsplit, urlunsplit
from urllib.robotparser import RobotFileParser

from ingest.errors import IngestError
from ingest.web.fetch import USER_AGENT, Fetcher, FetchError, FetchResult
from ingest.web.html import LXML_LOCK, canonical_url, decode, html_tree, load_html
from ingest.web.netguard import BlockedAddressError
from ingest.models import Document, Page
from ingest.pdf import load_pdf
from ingest.web.sitemap import MAX_DEPTH, SitemapEntry, parse_sitemap


@dataclass(frozen=True)
class PageState:
    """What the collection remembers of a crawled page, to ask only for what changed."""

    url: str
    etag: str | None = None
    last_modified: str | None = None
    sitemap_lastmod: str | None = None
    content_hash: str | None = None


@dataclass
class CrawlOptions:
    max_pages: int = 1000
    include: tuple[str, ...] = ()  # glob patterns over the URL; empty: everything
    exclude: tuple[str, ...] = ()
    concurrency: int = 4
    per_host: int = 2
    max_sitemaps: int = 1000  # sitemap files read (an index's children, each once)
    max_sitemap_urls: int = 200_000  # page URLs read from them, before filtering and max_pages
    max_depth: int = 20  # links followed from the start page, when a site has no sitemap


@dataclass
class CrawlProgress:
    discovered: int = 0
    done: int = 0
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    removed: int = 0
    skipped: int = 0  # robots.txt, duplicates (by canonical link or by content)
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    finished: bool = False
    method: str = ""  # sitemap | links | page: how the pages were found (see the module's docstring)
    note: str = ""  # the same, said for a person: "no sitemap: following links from …"
    seconds: dict[str, float] = field(default_factory=lambda: {"fetch": 0.0, "extract": 0.0, "store": 0.0})

    @property
    def left(self) -> int:
        return self.discovered - self.done


class CrawlSink(Protocol):
    def store(
        self, document: Document, state: PageState, original: bytes | None
    ) -> str: ...  # added | replaced | unchanged | duplicate
    def remember(self, state: PageState) -> None: ...
    def remove(self, url: str) -> bool: ...


def preload() -> None:
    """Imports now what a crawl would import lazily on its threads.

    A server that changes sys.path while a crawl thread imports (Streamlit does, around every
    script run) can make that import miss site-packages; importing up front avoids the race.
    """
    import httpcore  # noqa: F401  (httpx imports it when its first client is made)
    import trafilatura

    with LXML_LOCK:
        trafilatura.extract(
            "<html><body><article><p>A paragraph long enough to be kept as main text.</p></article></body></html>"
        )


def normalize_url(url: str) -> str:
    """Lower-case scheme and host, no default port, no fragment, '/' for an empty path."""
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def is_site_address(url: str) -> bool:
    """A site's (or a folder's) address, crawled whole: its path ends in "/" or names an index
    page. Any other URL is a page, added alone."""
    path = urlsplit(url).path or "/"
    return path.endswith("/") or re.fullmatch(r"index\.(html?|php|aspx?)", path.rsplit("/", 1)[-1], re.I) is not None


def folder_of(url: str) -> str:
    """The part of the site a crawl by links stays in: the start URL's host and folder."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path[: parts.path.rfind("/") + 1] or "/", "", ""))


# Links to these are not pages: not fetched when a site's links are followed.
_NOT_PAGES = re.compile(
    r"\.(png|jpe?g|gif|svg|webp|ico|bmp|tiff?|css|js|mjs|json|zip|gz|tgz|tar|bz2|xz|7z|rar|exe|msi|dmg|iso|"
    r"mp3|mp4|m4a|wav|ogg|webm|avi|mov|mkv|woff2?|ttf|otf|eot)$",
    re.I,
)


def _page_like(url: str) -> bool:
    return not _NOT_PAGES.search(urlsplit(url).path)


def page_links(body: bytes, url: str) -> list[str]:
    """A page's links (a href), absolute and without fragments; none from a page whose robots
    meta tag says nofollow, nor those marked rel="nofollow"."""
    text = decode(body[:5_000_000])
    with LXML_LOCK:
        tree = html_tree(text, whole=True)
        if tree is None:
            return []
        if any("nofollow" in (m.get("content") or "").lower() for m in tree.xpath("//meta[@name='robots']")):
            return []
        base = [str(href) for href in tree.xpath("//base/@href")]
        anchors = [(a.get("href"), a.get("rel") or "") for a in tree.xpath("//a[@href]")]
        del tree
    base_url = urljoin(url, base[0].strip()) if base else url
    links = []
    for href, rel in anchors:
        if "nofollow" in rel.lower():
            continue
        absolute = urldefrag(urljoin(base_url, href.strip()))[0]
        if urlsplit(absolute).scheme in ("http", "https"):
            links.append(absolute)
    return links


def document_from_response(result: FetchResult, source: str) -> Document:
    """A PDF goes through the PDF loader with its pages; HTML through the main-text extractor."""
    is_pdf = result.content_type == "application/pdf" or (
        result.content_type in ("", "application/octet-stream") and result.body[:5] == b"%PDF-"
    )
    if is_pdf:
        return load_pdf(result.body, source=source)
    if result.content_type in ("text/html", "application/xhtml+xml", ""):
        return load_html(decode(result.body), source)
    if result.content_type == "text/plain":
        text = decode(result.body)
        return Document(
            source,
            source.rsplit("/", 1)[-1] or source,
            "web",
            hashlib.sha256(text.encode()).hexdigest(),
            [Page(1, text)],
        )
    raise IngestError(source, f"unsupported content type {result.content_type!r}")


def crawl_delay(lines: list[str], agent: str = USER_AGENT.split("/")[0].lower()) -> float:
    """The Crawl-delay for our agent (its own group first, else '*'), in seconds; fractions too,
    which urllib.robotparser reads as no delay at all."""
    delays: dict[str, float] = {}
    group: list[str] = []
    in_agents = False
    for raw in lines:
        line = raw.split("#", 1)[0].strip()
        if ":" not in line:
            continue
        key, value = (part.strip() for part in line.split(":", 1))
        key = key.lower()
        if key == "user-agent":
            group = group if in_agents else []
            group.append(value.lower())
            in_agents = True
            continue
        in_agents = False
        if key == "crawl-delay":
            try:
                seconds = max(0.0, min(float(value), 60.0))  # a hostile value must not stall us for hours
            except ValueError:
                continue
            for name in group:
                delays[name] = seconds
    for name, seconds in delays.items():
        if name != "*" and name in agent:
            return seconds
    return delays.get("*", 0.0)


class _HostGate:
    """At most `limit` requests at once to one host, spaced by its Crawl-delay."""

    def __init__(self, limit: int, delay: float):
        self.slots = threading.Semaphore(limit)
        self.delay = delay
        self.lock = threading.Lock()
        self.next_start = 0.0

    def __enter__(self):
        self.slots.acquire()
        with self.lock:
            wait = self.next_start - time.monotonic()
            self.next_start = max(self.next_start, time.monotonic()) + self.delay
        if wait > 0:
            time.sleep(wait)

    def __exit__(self, *exc):
        self.slots.release()


@dataclass
class _Outcome:
    kind: str  # document | unchanged | gone | failed | skipped
    url: str
    state: PageState | None = None
    document: Document | None = None
    original: bytes | None = None
    reason: str | None = None
    links: list[str] = field(default_factory=list)  # the page's links, when they are followed


class Crawler:
    def __init__(self, fetcher: Fetcher, options: CrawlOptions | None = None):
        self.fetcher = fetcher
        self.options = options or CrawlOptions()
        self._robots: dict[str, RobotFileParser | None] = {}
        self._gates: dict[str, _HostGate] = {}
        self._delays: dict[str, float] = {}  # origin -> seconds between requests
        self._progress = CrawlProgress()
        self._lock = threading.Lock()
        self._sitemaps_read: set[str] = set()
        self._cancel = threading.Event()
        self._start = ""  # the start URL discover() settled on (a redirect may make it a site's address)

    # ---- discovery --------------------------------------------------------------------------

    def discover(self, start_url: str, progress: CrawlProgress) -> tuple[list[SitemapEntry], bool]:
        """The pages to crawl, and whether the whole sitemap was read (only then can pages
        missing from it be removed)."""
        start_url = normalize_url(start_url)
        self._progress = progress  # where robots.txt failures and stage times are recorded too
        self._sitemaps_read = {start_url}
        first, first_error = None, None
        try:
            first = self.fetcher.get(start_url)
        except BlockedAddressError:
            raise
        except IngestError as exc:  # a site root may well answer 404: its robots.txt can still help
            first_error = exc.reason
        if self._cancel.is_set():
            return [], False
        if first is not None and not is_site_address(start_url) and is_site_address(normalize_url(first.url)):
            start_url = normalize_url(first.url)  # "/docs" redirected to "/docs/": the site's address
        self._start = start_url
        entries: list[SitemapEntry] = []
        complete = True
        if first is not None and self._looks_like_sitemap(first):
            progress.method, progress.note = "sitemap", f"reading the sitemap {start_url}"
            complete = self._read_sitemap(start_url, first.body, entries, progress, depth=0)
        elif not is_site_address(start_url):
            if first is None:
                raise IngestError(start_url, f"cannot add the page: {first_error}")
            progress.method = "page"
            progress.note = f"one page: {start_url} (a site's address, ending in '/', crawls the site)"
            entries = [SitemapEntry(start_url)]
        else:
            robots = self._robots_for(start_url)
            sitemaps = robots.site_maps() if robots is not None and robots.site_maps() else []
            if not sitemaps:
                sitemaps = [urljoin(start_url, "/sitemap.xml")]
            read_any = False
            for sitemap_url in sitemaps:
                if self._cancel.is_set():
                    return [], False
                if normalize_url(sitemap_url) in self._sitemaps_read:
                    continue
                self._sitemaps_read.add(normalize_url(sitemap_url))
                try:
                    body = self.fetcher.get(sitemap_url).body
                    complete = self._read_sitemap(sitemap_url, body, entries, progress, depth=0) and complete
                    read_any = True
                except IngestError as exc:
                    progress.failed.append((sitemap_url, exc.reason))
                    complete = False
            if not read_any:  # no sitemap at all: its links are followed from the start page
                if first is None:
                    raise IngestError(
                        start_url, f"cannot start the crawl: {first_error}, and the site names no sitemap"
                    )
                progress.failed.clear()  # a missing sitemap is not a failure of a crawl by links
                progress.method = "links"
                progress.note = f"no sitemap: following links from {start_url} within {folder_of(start_url)}"
                entries = [SitemapEntry(start_url)]
            else:
                progress.method, progress.note = "sitemap", f"reading the sitemaps of {start_url}"
        return self._select(entries, progress), complete

    def _looks_like_sitemap(self, result: FetchResult) -> bool:
        if result.body[:2] == b"\x1f\x8b":
            return True
        head = result.body[:500].lstrip().lower()
        return result.content_type in ("application/xml", "text/xml", "application/gzip") or (
            head.startswith(b"<?xml") and (b"<urlset" in result.body[:2000] or b"<sitemapindex" in result.body[:2000])
        )

    def _read_sitemap(
        self, url: str, body: bytes, out: list[SitemapEntry], progress: CrawlProgress, depth: int
    ) -> bool:
        try:
            sitemap = parse_sitemap(body, url)
        except IngestError as exc:
            progress.failed.append((url, exc.reason))
            return False
        if not sitemap.is_index:
            room = self.options.max_sitemap_urls - len(out)
            out.extend(sitemap.entries[: max(room, 0)])
            if len(sitemap.entries) > room:
                limit = self.options.max_sitemap_urls
                progress.failed.append((url, f"the sitemaps list more than {limit:,} pages; the rest was not read"))
                return False
            return True
        if depth + 1 >= MAX_DEPTH:
            progress.failed.append((url, f"sitemap indexes nest deeper than {MAX_DEPTH} levels; the rest was not read"))
            return False
        complete = True
        for child in sitemap.entries:
            child_url = normalize_url(child.url)
            if child_url in self._sitemaps_read:  # an index may list a sitemap twice, or itself
                continue
            if self._cancel.is_set() or len(out) >= self.options.max_sitemap_urls:
                return False
            if len(self._sitemaps_read) >= self.options.max_sitemaps:
                limit = self.options.max_sitemaps
                progress.failed.append((url, f"the site has more than {limit:,} sitemaps; the rest were not read"))
                return False
            self._sitemaps_read.add(child_url)
            try:
                child_body = self.fetcher.get(child.url).body
            except IngestError as exc:
                progress.failed.append((child.url, exc.reason))
                complete = False
                continue
            complete = self._read_sitemap(child.url, child_body, out, progress, depth + 1) and complete
        return complete

    def _select(self, entries: list[SitemapEntry], progress: CrawlProgress) -> list[SitemapEntry]:
        """Normalized, de-duplicated, filtered by the patterns and robots.txt, capped."""
        chosen: dict[str, SitemapEntry] = {}
        for entry in entries:
            url = normalize_url(entry.url)
            if url in chosen or not self._wanted(url):
                continue
            robots = self._robots_for(url)
            if robots is not None and not robots.can_fetch(USER_AGENT, url):
                progress.skipped += 1
                continue
            chosen[url] = SitemapEntry(url, entry.lastmod)
        return list(chosen.values())

    def _wanted(self, url: str) -> bool:
        if self.options.include and not any(fnmatch.fnmatch(url, p) for p in self.options.include):
            return False
        return not any(fnmatch.fnmatch(url, p) for p in self.options.exclude)

    def _robots_for(self, url: str) -> RobotFileParser | None:
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        with self._lock:
            if origin in self._robots:
                return self._robots[origin]
        parser: RobotFileParser | None = RobotFileParser()
        try:
            lines = decode(self.fetcher.get(f"{origin}/robots.txt").body).splitlines()
            parser.parse(lines)
            with self._lock:
                self._delays[origin] = crawl_delay(lines)
        except FetchError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                parser = None  # no robots.txt: everything is allowed
            else:
                parser.parse(["User-agent: *", "Disallow: /"])  # unreachable robots.txt: be safe
                with self._lock:
                    reason = f"{exc.reason}; the site's pages are skipped, as robots.txt could not be read"
                    self._progress.failed.append((f"{origin}/robots.txt", reason))
        except IngestError:
            parser.parse(["User-agent: *", "Disallow: /"])
        with self._lock:
            self._robots[origin] = parser
        return parser

    def _gate(self, url: str) -> _HostGate:
        parts = urlsplit(url)
        host = parts.netloc
        self._robots_for(url)
        with self._lock:
            delay = self._delays.get(f"{parts.scheme}://{host}", 0.0)
            if host not in self._gates:
                self._gates[host] = _HostGate(self.options.per_host if delay == 0 else 1, delay)
            return self._gates[host]

    # ---- crawling ---------------------------------------------------------------------------

    def run(
        self,
        start_url: str,
        *,
        known: dict[str, PageState],
        sink: CrawlSink,
        progress_callback: Callable[[CrawlProgress], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> CrawlProgress:
        progress = CrawlProgress()
        report = progress_callback or (lambda p: None)
        cancel = self._cancel = cancel or threading.Event()
        entries, complete = self.discover(start_url, progress)
        if cancel.is_set():  # while the sitemaps were read: nothing was crawled
            progress.cancelled = progress.finished = True
            report(progress)
            return progress
        if progress.method == "links":
            listed, complete = self._follow_links(self._start, entries, known, sink, progress, report)
        else:
            listed = {e.url for e in entries}
            entries = entries[: self.options.max_pages]
            progress.discovered = len(entries)
            report(progress)
            self._crawl(entries, known, listed, sink, progress, report)
        if not progress.cancelled and complete and progress.method != "page":
            for url in sorted(set(known) - listed):  # dropped from the sitemap, or no longer linked
                if sink.remove(url):
                    progress.removed += 1
        progress.finished = True
        report(progress)
        return progress

    def _crawl(self, entries, known, listed, sink, progress, report, follow: bool = False) -> tuple[list[str], int]:
        """Fetches the entries concurrently and stores each as it comes; (the links of the pages
        fetched, when follow is given; how many pages failed other than as gone)."""
        links, failures = [], 0
        pool = ThreadPoolExecutor(max_workers=self.options.concurrency, thread_name_prefix="docent-crawl")
        try:
            futures = [pool.submit(self._process, e, known.get(e.url), listed, follow) for e in entries]
            for future in as_completed(futures):
                if self._cancel.is_set():
                    progress.cancelled = True
                    break
                outcome = future.result()
                links += outcome.links
                failures += outcome.kind == "failed"
                self._apply(outcome, sink, progress)
                progress.done += 1
                report(progress)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        return links, failures

    def _follow_links(self, start, entries, known, sink, progress, report) -> tuple[set[str], bool]:
        """A site without a sitemap, breadth first from its start page, a level at a time:
        links within its host and folder, wanted by the patterns and robots.txt, up to the page
        cap and max_depth. (the pages reached; whether that is the whole site: only then are
        pages no longer linked removed)."""
        scope, seen = folder_of(start), {e.url for e in entries}
        level, depth, complete = entries, 0, True
        while level and not progress.cancelled:
            progress.discovered = len(seen)
            links, failures = self._crawl(level, known, seen, sink, progress, report, follow=True)
            complete = complete and not failures  # a page that failed may link to more
            depth, level = depth + 1, []
            for link in links:
                url = normalize_url(link)
                if url in seen or not url.startswith(scope) or not _page_like(url) or not self._wanted(url):
                    continue
                if depth > self.options.max_depth or len(seen) >= self.options.max_pages:
                    complete = False  # more of the site is linked than the limits let in
                    break
                seen.add(url)
                robots = self._robots_for(url)
                if robots is not None and not robots.can_fetch(USER_AGENT, url):
                    progress.skipped += 1
                    progress.done += 1
                    continue
                level.append(SitemapEntry(url))
        progress.discovered = len(seen)
        return seen, complete

    def _add_time(self, stage: str, seconds: float) -> None:
        with self._lock:
            self._progress.seconds[stage] += seconds

    def _process(self, entry: SitemapEntry, state: PageState | None, listed: set[str], follow: bool) -> _Outcome:
        """follow: the page's links are wanted, so it is fetched whole (not asked whether it changed)."""
        url = entry.url
        if state and state.content_hash and entry.lastmod and state.sitemap_lastmod == entry.lastmod:
            return _Outcome("unchanged", url, state)  # the sitemap says it has not moved: no request
        try:
            with self._gate(url):
                cached = state if state and state.content_hash and not follow else None
                started = time.perf_counter()
                result = self.fetcher.get(
                    url, etag=cached.etag if cached else None, last_modified=cached.last_modified if cached else None
                )
                self._add_time("fetch", time.perf_counter() - started)
            if result.not_modified:
                return _Outcome("unchanged", url, replace(state, sitemap_lastmod=entry.lastmod))
            canonical = None
            if result.content_type in ("text/html", "application/xhtml+xml"):
                canonical = canonical_url(decode(result.body[:200_000]))
            if canonical:
                canonical = normalize_url(urljoin(url, canonical))
                if canonical != url and canonical in listed:
                    return _Outcome("skipped", url, reason=f"duplicate of its canonical {canonical}")
            started = time.perf_counter()
            document = document_from_response(result, url)
            self._add_time("extract", time.perf_counter() - started)
        except FetchError as exc:
            if exc.status in (404, 410):
                return _Outcome("gone", url, reason=exc.reason)
            return _Outcome("failed", url, reason=exc.reason)
        except IngestError as exc:
            return _Outcome("failed", url, reason=exc.reason)
        except Exception as exc:  # an extractor crash on one page must not end the crawl
            return _Outcome("failed", url, reason=f"{type(exc).__name__}: {exc}")
        new_state = PageState(url, result.etag, result.last_modified, entry.lastmod, document.content_hash)
        links = page_links(result.body, url) if follow and document.kind != "pdf" else []
        if state and state.content_hash == document.content_hash:
            return _Outcome("unchanged", url, new_state, links=links)
        original = result.body if document.kind == "pdf" else None
        return _Outcome("document", url, new_state, document, original, links=links)

    def _apply(self, outcome: _Outcome, sink: CrawlSink, progress: CrawlProgress) -> None:
        if outcome.kind == "unchanged":
            sink.remember(outcome.state)
            progress.unchanged += 1
        elif outcome.kind == "skipped":
            progress.skipped += 1
        elif outcome.kind == "gone":
            if sink.remove(outcome.url):
                progress.removed += 1
            progress.failed.append((outcome.url, outcome.reason))
        elif outcome.kind == "failed":
            progress.failed.append((outcome.url, outcome.reason))
        else:
            started = time.perf_counter()
            try:
                status = sink.store(outcome.document, outcome.state, outcome.original)
            except IngestError as exc:
                progress.failed.append((outcome.url, exc.reason))
                return
            finally:
                progress.seconds["store"] += time.perf_counter() - started
            if status == "added":
                progress.added += 1
            elif status == "replaced":
                progress.replaced += 1
            elif status == "duplicate":  # the same page under another URL: kept once
                progress.skipped += 1
            else:
                progress.unchanged += 1


def load_url(fetcher: Fetcher, url: str) -> tuple[Document, bytes | None]:
    """One web page (or a linked PDF, with its pages); the PDF's bytes are kept."""
    result = fetcher.get(normalize_url(url))
    document = document_from_response(result, normalize_url(url))
    return document, result.body if document.kind == "pdf" else None
