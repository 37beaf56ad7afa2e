"""Crawling a real site on 127.0.0.1: sitemaps, robots.txt, failures, re-crawls, and the guard."""

from __future__ import annotations

import functools
import gzip
import json
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ingest import IngestError
from ingest.web.crawl import CrawlOptions, normalize_url, page_links
from ingest.web.html import load_html
from ingest.web.netguard import AllowList, BlockedAddressError, check_url
from ingest.web.sitemap import gunzip_capped, parse_sitemap
from retrieval.service import Docent, Source
from retrieval.settings import load_settings
from support.cli import run
from support.website import CRAWL_DELAY, MODULES, Site, SiteServer


class CountingEmbedder:
    """The real embedder, counting the texts it is asked to embed."""

    def __init__(self, inner):
        self.inner = inner
        self.embedded = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def embed(self, texts, **kwargs):
        self.embedded += len(texts)
        return self.inner.embed(texts, **kwargs)


@pytest.fixture()
def site():
    server = SiteServer(Site())
    yield server
    server.close()


@pytest.fixture()
def crawler_docent(docent, tmp_path):
    """A Docent on its own home that may reach 127.0.0.1, counting what it embeds."""
    local = Docent(load_settings(home=str(tmp_path / "home"), allowed_hosts="127.0.0.1", fetch_timeout=1))
    local._embedder = CountingEmbedder(docent.embedder)
    return local


def test_first_crawl_stores_the_site_and_records_every_failure(crawler_docent, site):
    progress = crawler_docent.crawl(site.base, collection="docs")
    library = {f"{site.base}/library/{m}.html" for m in MODULES}
    stored = {d.source for d in crawler_docent.documents(collection="docs")}
    assert stored == library  # json-copy is a canonical duplicate; /private/ is disallowed
    assert progress.added == len(MODULES) and progress.skipped == 2
    reasons = dict(progress.failed)
    assert "404" in reasons[f"{site.base}/library/missing.html"]
    assert "500" in reasons[f"{site.base}/library/broken.html"]
    assert "timed out" in reasons[f"{site.base}/library/slow.html"]
    assert "redirect loop" in reasons[f"{site.base}/loop-a"]
    assert progress.finished and not progress.cancelled and progress.left == 0

    hits = crawler_docent.search("read a CSV file with a dialect", k=3, collection="docs")
    assert hits[0].source == f"{site.base}/library/csv.html" and hits[0].page is None
    assert hits[0].section and hits[0].section.startswith("csv")

    # Crawl-delay: the requests to the host were spread over at least (n - 1) delays
    # (measured on the whole run, so one late thread's jitter cannot fail it).
    times = sorted(t for t, _, _ in site.page_gets())
    assert times[-1] - times[0] >= (len(times) - 1) * CRAWL_DELAY * 0.9


def test_a_recrawl_of_an_unchanged_site_embeds_nothing_and_asks_conditionally(crawler_docent, site):
    crawler_docent.crawl(site.base, collection="docs")
    embedded = crawler_docent.embedder.embedded
    site.clear_log()
    again = crawler_docent.crawl(site.base, collection="docs")
    assert crawler_docent.embedder.embedded == embedded
    assert (again.added, again.replaced, again.removed) == (0, 0, 0)
    assert again.unchanged == len(MODULES)
    gets = {p: h for _, p, h in site.page_gets()}
    assert "/library/json.html" not in gets  # its sitemap lastmod has not moved: no request at all
    assert gets["/library/csv.html"].get("If-None-Match")  # the others are asked with their ETag


def test_changed_and_removed_pages_are_replaced_and_removed(crawler_docent, site):
    crawler_docent.crawl(site.base, collection="docs")
    site.site.pages["/library/heapq.html"] = site.site.pages["/library/heapq.html"].replace(
        "</article>",
        "<h2>Changelog</h2><p>The harbor master now keeps the heap of mooring permits sorted.</p></article>",
    )
    del site.site.pages["/library/glob.html"]  # answers 404 now (it stays in the sitemap)
    site.site.extra_listed.remove("/library/missing.html")
    del site.site.pages["/library/shlex.html"]  # gone from the sitemap too
    site.site.extra_listed.append("/library/glob.html")
    embedded = crawler_docent.embedder.embedded
    progress = crawler_docent.crawl(site.base, collection="docs")
    assert progress.replaced == 1 and progress.removed == 2
    assert crawler_docent.embedder.embedded > embedded
    stored = {d.source for d in crawler_docent.documents(collection="docs")}
    assert f"{site.base}/library/glob.html" not in stored and f"{site.base}/library/shlex.html" not in stored
    hits = crawler_docent.search("harbor master mooring permits heap", k=1, collection="docs")
    assert hits[0].source == f"{site.base}/library/heapq.html"


def test_a_cancelled_crawl_keeps_what_it_finished(crawler_docent, site):
    cancel = threading.Event()
    seen = []

    def progress(p):
        seen.append(p.done)
        if p.done >= 3:
            cancel.set()

    result = crawler_docent.crawl(site.base, collection="docs", progress=progress, cancel=cancel)
    assert result.cancelled and 3 <= result.done < result.discovered
    stored = crawler_docent.documents(collection="docs")
    assert len(stored) == result.added >= 1
    assert crawler_docent.search("json", k=1, collection="docs") or result.added < len(MODULES)


def test_the_guard_refuses_private_addresses_unless_allowed(docent, tmp_path, site):
    guarded = Docent(load_settings(home=str(tmp_path / "guarded")))
    guarded._embedder = docent.embedder
    with pytest.raises(IngestError, match="127.0.0.1, a private, loopback or link-local address.*DOCENT_ALLOWED_HOSTS"):
        guarded.crawl(site.base, collection="docs")
    assert site.page_gets() == []  # refused before any request
    with pytest.raises(BlockedAddressError):
        check_url("http://10.1.2.3/", AllowList())
    with pytest.raises(BlockedAddressError):
        check_url("http://[::1]:8080/", AllowList())
    check_url("http://10.1.2.3/", AllowList.parse(["10.0.0.0/8"]))
    check_url("http://[::1]:8080/", AllowList.parse(["[::1]"]))  # as a URL writes it


def test_a_redirect_to_a_private_address_is_refused(crawler_docent, site):
    outcome = crawler_docent.ingest([Source(f"{site.base}/to-private")], collection="docs")[0]
    assert outcome.status == "failed" and "10.255.255.1" in outcome.error and "DOCENT_ALLOWED_HOSTS" in outcome.error


def test_a_single_url_is_ingested_with_its_sections(crawler_docent, site):
    outcome = crawler_docent.ingest([Source(f"{site.base}/library/bisect.html")], collection="one")[0]
    assert outcome.status == "added"
    hit = crawler_docent.search("insert into a sorted list", k=1, collection="one")[0]
    assert hit.source == f"{site.base}/library/bisect.html" and hit.section.startswith("bisect")


def test_sections_come_from_the_pages_own_headings(crawler_docent):
    """DocBook puts each heading in a title-page wrapper that the main-text extractor drops:
    the heading path is read from the page itself (a real manual page, tests/data/web)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(WEB_PAGES))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/xsltproc.html"
        outcome = crawler_docent.ingest([Source(url)], collection="docbook")[0]
        assert outcome.status == "added" and outcome.pages >= 6
    finally:
        server.shutdown()
    hits = {q: crawler_docent.search(q, k=1, collection="docbook")[0] for q in QUESTIONS_BY_SECTION}
    assert {q: h.section for q, h in hits.items()} == QUESTIONS_BY_SECTION


WEB_PAGES = Path(__file__).parents[1] / "data" / "web"


def test_an_xhtml_page_that_declares_its_encoding_gives_its_links_and_its_heading():
    """lxml refuses a decoded text with an XML declaration: such a page (DocBook's XHTML, a real
    one in tests/data/web) once gave no links, so a crawl by links stopped at its start page."""
    body = (WEB_PAGES / "sect.kali.html").read_bytes()
    assert body.startswith(b"<?xml")
    links = page_links(body, "http://127.0.0.1:8000/sect.kali.html")
    assert {"http://127.0.0.1:8000/sect.tails.html", "http://127.0.0.1:8000/sect.devuan.html"} <= set(links)
    document = load_html(body.decode(), "http://127.0.0.1:8000/sect.kali.html")
    assert any(page.section and "Kali" in page.section for page in document.pages)


QUESTIONS_BY_SECTION = {
    "which return codes does xsltproc exit with": "DIAGNOSTICS",
    "SGML_CATALOG_FILES catalog behavior": "ENVIRONMENT",
    "--novalid skip loading the DTD": "OPTIONS",
}


def test_hostile_sitemaps_are_refused():
    bomb = gzip.compress(b"<" + b"a" * (2 * 2**20))
    with pytest.raises(IngestError, match="more than 1 MiB"):
        gunzip_capped(bomb, 2**20, "bomb.xml.gz")
    laughs = b"""<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>
    <urlset><url><loc>&lol2;</loc></url></urlset>"""
    with pytest.raises(IngestError, match="forbidden XML features"):
        parse_sitemap(laughs, "laughs.xml")
    with pytest.raises(IngestError, match="not a sitemap"):
        parse_sitemap(b"<html><body>hi</body></html>", "page.xml")


def test_urls_are_normalized():
    assert normalize_url("HTTP://Example.COM:80/a/b.html#part") == "http://example.com/a/b.html"
    assert normalize_url("https://example.com") == "https://example.com/"
    assert normalize_url("https://example.com:8443/x?q=1") == "https://example.com:8443/x?q=1"


def test_include_and_exclude_patterns_and_page_cap(crawler_docent, site):
    options = CrawlOptions(include=("*/library/*",), exclude=("*json*", "*csv*"), max_pages=4)
    progress = crawler_docent.crawl(site.base, options=options, collection="few")
    assert progress.discovered == 4
    sources = {d.source for d in crawler_docent.documents(collection="few")}
    assert not any("json" in s or "csv" in s for s in sources)


def test_cli_crawl_prints_a_summary_and_names_failures(tmp_path, site):
    env = {"DOCENT_ALLOWED_HOSTS": "127.0.0.1", "DOCENT_FETCH_TIMEOUT": "1"}
    result = run(tmp_path / "cli-home", "crawl", site.base, "--max-pages", "30", "--json", check=False, env=env)
    summary = json.loads(result.stdout)
    assert summary["added"] == len(MODULES)
    assert any("500" in f["reason"] for f in summary["failed"])
    assert result.returncode == 1  # pages failed, and the exit status says so


# ---- a site without a sitemap: its links are followed ----------------------------------------

CHAPTERS = {
    "handbook/index.html": (
        "The harbour handbook",
        "Welcome to the harbour handbook, which collects the rules every berth holder follows.",
        [
            "ch1.html", "ch2.html", "sub/ch3.html", "ch1.html#mooring", "../other/outside.html",
            "http://elsewhere.invalid/page.html", "mailto:office@example.org", "private/secret.html",
            "logo.png", ("nofollow.html", "nofollow"),
        ],
    ),
    "handbook/ch1.html": ("Mooring", "A mooring permit costs 120 euros a month and is renewed every spring.",
                          ["ch2.html", "index.html", "ch4.html"]),
    "handbook/ch2.html": ("Fuel", "The fuel dock opens at seven and closes at nine in the evening.", ["sub/ch3.html"]),
    "handbook/sub/ch3.html": ("Waste", "Oily waste goes in the red bins beside the harbour office.", ["../ch5.html"]),
    "handbook/ch4.html": ("Guests", "Guest boats may stay three nights before they pay the weekly rate.", []),
    "handbook/ch5.html": ("Storms", "In a storm warning every boat doubles its lines and clears the pontoon.", []),
    "handbook/private/secret.html": ("Secret", "The safe code is kept here and robots may not read it.", []),
    "handbook/nofollow.html": ("Hidden", "Only a nofollow link points at this page about the old slipway.", []),
    "other/outside.html": ("Outside", "This page is outside the handbook's folder and is not crawled.", []),
}  # fmt: skip


def write_site(root: Path, pages: dict) -> None:
    for path, (title, text, links) in pages.items():
        anchors = "".join(
            f"<li><a href='{link[0]}' rel='{link[1]}'>{link[0]}</a></li>"
            if isinstance(link, tuple)
            else f"<li><a href='{link}'>{link}</a></li>"
            for link in links
        )
        body = f"<h1>{title}</h1><p>{text} {text}</p><p>{text}</p><ul>{anchors}</ul>"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(f"<html><head><title>{title}</title></head><body><main>{body}</main></body></html>")
    (root / "robots.txt").write_text("User-agent: *\nDisallow: /handbook/private/\n")


@pytest.fixture()
def linked_site(tmp_path):
    """A static site with no sitemap, served from a folder on 127.0.0.1; yields (base, root)."""
    root = tmp_path / "site"
    write_site(root, CHAPTERS)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()


def test_a_site_without_a_sitemap_is_crawled_by_its_links_within_its_folder(crawler_docent, linked_site):
    base, _ = linked_site
    progress = crawler_docent.crawl(f"{base}/handbook/", collection="links")
    assert progress.method == "links"
    assert progress.note == f"no sitemap: following links from {base}/handbook/ within {base}/handbook/"
    stored = {d.source.removeprefix(base) for d in crawler_docent.documents(collection="links")}
    assert stored == {
        "/handbook/",  # the start page, as given
        "/handbook/ch1.html",
        "/handbook/ch2.html",
        "/handbook/sub/ch3.html",
        "/handbook/ch4.html",
        "/handbook/ch5.html",
    }  # not the folder's outside, another host, a picture, a nofollow link, nor what robots.txt disallows
    # Skipped: the private page (robots.txt) and index.html, the start page's own content again.
    assert progress.skipped == 2 and not progress.failed and progress.discovered == progress.done == 8
    hit = crawler_docent.search("how much is a mooring permit", k=1, collection="links")[0]
    assert hit.source == f"{base}/handbook/ch1.html"


DEBIAN_HANDBOOK = Path("/usr/share/doc/debian-handbook/html/en-US")  # Debian's debian-handbook package


@pytest.mark.skipif(
    not DEBIAN_HANDBOOK.is_dir(), reason="Debian's debian-handbook package is not installed (.ci/run installs it)"
)
def test_the_debian_handbook_which_has_no_sitemap_is_crawled_by_its_links(crawler_docent):
    """A real site of 127 pages and no sitemap (The Debian Administrator's Handbook, as Debian
    ships it), served from its folder on 127.0.0.1."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(DEBIAN_HANDBOOK))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        progress = crawler_docent.crawl(f"{base}/", collection="debian")
    finally:
        server.shutdown()
    pages = len(list(DEBIAN_HANDBOOK.glob("*.html")))
    assert progress.method == "links" and not progress.failed
    stored = crawler_docent.documents(collection="debian")
    assert pages == 127 and len(stored) >= 120, f"{len(stored)} of {pages} pages stored"
    hit = crawler_docent.search("How do I configure the APT sources.list?", k=1, collection="debian")[0]
    assert hit.source.startswith(base)


def test_a_crawl_by_links_keeps_to_its_depth_and_page_limits(crawler_docent, linked_site):
    base, _ = linked_site
    shallow = crawler_docent.crawl(f"{base}/handbook/", options=CrawlOptions(max_depth=1), collection="shallow")
    stored = {d.source.removeprefix(base) for d in crawler_docent.documents(collection="shallow")}
    assert stored == {"/handbook/", "/handbook/ch1.html", "/handbook/ch2.html", "/handbook/sub/ch3.html"}
    assert shallow.added == 4
    few = crawler_docent.crawl(f"{base}/handbook/", options=CrawlOptions(max_pages=3), collection="few")
    assert few.discovered == 3 and len(crawler_docent.documents(collection="few")) == 3


def test_a_recrawl_by_links_embeds_nothing_unchanged_and_drops_what_is_no_longer_linked(crawler_docent, linked_site):
    base, root = linked_site
    crawler_docent.crawl(f"{base}/handbook/", collection="links")
    title, text, links = CHAPTERS["handbook/ch1.html"]
    write_site(root, {"handbook/ch1.html": (title, text, [link for link in links if link != "ch4.html"])})
    embedded = crawler_docent.embedder.embedded
    again = crawler_docent.crawl(f"{base}/handbook/", collection="links")
    # ch1's text is the same (its links are not its main text): nothing is embedded again.
    assert (again.removed, again.added, again.replaced) == (1, 0, 0)
    assert crawler_docent.embedder.embedded == embedded
    stored = {d.source.removeprefix(base) for d in crawler_docent.documents(collection="links")}
    assert "/handbook/ch4.html" not in stored and len(stored) == 5


def test_a_pages_address_adds_that_page_only_sitemap_or_not(crawler_docent, site, linked_site):
    base, _ = linked_site
    alone = crawler_docent.crawl(f"{base}/handbook/ch1.html", collection="one")
    assert alone.method == "page" and alone.added == 1
    listed = crawler_docent.crawl(f"{site.base}/library/csv.html", collection="two")  # its site has a sitemap
    assert listed.method == "page" and listed.added == 1
    assert [d.source for d in crawler_docent.documents(collection="two")] == [f"{site.base}/library/csv.html"]


def test_a_folder_given_without_its_slash_is_crawled_as_the_site_it_redirects_to(crawler_docent, linked_site):
    base, _ = linked_site
    progress = crawler_docent.crawl(f"{base}/handbook", collection="redirected")  # answers 301 to /handbook/
    assert progress.method == "links" and progress.added == 6
