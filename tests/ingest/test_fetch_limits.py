"""A web server cannot hold Docent: every fetch has a total deadline and stops when cancelled,
even mid-read, and a sitemap index cannot make a crawl read one sitemap many times or without
end. A real HTTP server on 127.0.0.1 serves a page that drips one byte at a time, and sitemaps."""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ingest.web.crawl import Crawler, CrawlOptions, CrawlProgress
from ingest.web.fetch import Fetcher, FetchError
from ingest.web.netguard import AllowList

LOOPBACK = AllowList.parse(["127.0.0.0/8"])


def _urlset(base: str, paths) -> bytes:
    urls = "".join(f"<url><loc>{base}{p}</loc></url>" for p in paths)
    return f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()


def _index(base: str, paths) -> bytes:
    maps = "".join(f"<sitemap><loc>{base}{p}</loc></sitemap>" for p in paths)
    return f'<?xml version="1.0"?><sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{maps}</sitemapindex>'.encode()


class _Server:
    """/drip sends one byte every 0.5 s; /fanout.xml lists /child.xml 100 times (and itself);
    /wide.xml lists 50 sitemaps of 10 pages each; /slow-index.xml drips."""

    def __init__(self):
        self.requests: Counter[str] = Counter()
        self.big_robots = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests[self.path] += 1
                base = f"http://127.0.0.1:{server.port}"
                if self.path in ("/drip", "/slow-index.xml"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html" if self.path == "/drip" else "application/xml")
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    try:
                        for _ in range(1000):
                            self.wfile.write(b"<")
                            self.wfile.flush()
                            time.sleep(0.5)
                    except OSError:
                        pass
                    return
                if self.path == "/fanout.xml":
                    body = _index(base, ["/child.xml"] * 100 + ["/fanout.xml"])
                elif self.path == "/child.xml":
                    body = _urlset(base, ["/p1", "/p2", "/p3"])
                elif self.path == "/wide.xml":
                    body = _index(base, [f"/part-{i}.xml" for i in range(50)])
                elif self.path.startswith("/part-"):
                    n = self.path.removeprefix("/part-").removesuffix(".xml")
                    body = _urlset(base, [f"/page-{n}-{i}" for i in range(10)])
                elif self.path == "/robots.txt":
                    if not server.big_robots:
                        self.send_error(404)
                        return
                    body = b"User-agent: *\nDisallow: /private/\n" + b"# padding\n" * 1000
                else:
                    body = b"<html><head><title>A page</title></head><body><p>Some text for the page.</p></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "application/xml" if self.path.endswith(".xml") else "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = _Server()
    yield s
    s.close()


def test_a_page_that_drips_ends_at_the_fetch_deadline(server):
    fetcher = Fetcher(LOOPBACK, read_timeout=15, total_timeout=2)
    started = time.monotonic()
    with pytest.raises(FetchError, match="took longer than 2 s in all"):
        fetcher.get(f"{server.base}/drip")
    assert time.monotonic() - started < 15  # not 500 s of drip, nor a read time-out's worth
    fetcher.close()


def test_cancel_stops_a_fetch_in_the_middle_of_a_read(server):
    cancel = threading.Event()
    fetcher = Fetcher(LOOPBACK, read_timeout=15, total_timeout=600, cancel=cancel)
    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(FetchError, match="cancelled"):
        fetcher.get(f"{server.base}/drip")
    assert time.monotonic() - started < 15
    fetcher.close()


def test_an_index_listing_one_sitemap_a_hundred_times_reads_it_once(server):
    fetcher = Fetcher(LOOPBACK)
    entries, complete = Crawler(fetcher).discover(f"{server.base}/fanout.xml", CrawlProgress())
    assert complete and sorted(e.url for e in entries) == [f"{server.base}/p{i}" for i in (1, 2, 3)]
    assert server.requests["/child.xml"] == 1 and server.requests["/fanout.xml"] == 1
    fetcher.close()


def test_sitemaps_and_their_urls_are_capped_and_the_crawl_says_where(server):
    fetcher = Fetcher(LOOPBACK)
    progress = CrawlProgress()
    entries, complete = Crawler(fetcher, CrawlOptions(max_sitemaps=5)).discover(f"{server.base}/wide.xml", progress)
    assert not complete and len(entries) == 40 and sum(server.requests[f"/part-{i}.xml"] for i in range(50)) == 4
    assert "more than 5 sitemaps" in progress.failed[-1][1]
    progress = CrawlProgress()
    crawler = Crawler(fetcher, CrawlOptions(max_sitemap_urls=25))
    entries, complete = crawler.discover(f"{server.base}/wide.xml", progress)
    assert not complete and len(entries) == 25 and "more than 25 pages" in progress.failed[-1][1]
    fetcher.close()


def test_a_crawl_cancelled_while_it_reads_a_slow_sitemap_ends_at_once(server):
    cancel = threading.Event()
    fetcher = Fetcher(LOOPBACK, total_timeout=600, cancel=cancel)

    class Sink:
        def store(self, *args):
            raise AssertionError("nothing is stored")

        remember = remove = store

    threading.Timer(1.0, cancel.set).start()
    started = time.monotonic()
    progress = Crawler(fetcher).run(f"{server.base}/slow-index.xml", known={}, sink=Sink(), cancel=cancel)
    assert progress.cancelled and progress.finished and progress.done == 0
    assert time.monotonic() - started < 15
    fetcher.close()


def test_a_robots_txt_too_large_to_read_is_named_as_the_reason_its_pages_are_skipped(server):
    server.big_robots = True
    fetcher = Fetcher(LOOPBACK, max_bytes=2048)
    progress = CrawlProgress()
    entries, _ = Crawler(fetcher).discover(f"{server.base}/child.xml", progress)
    assert entries == [] and progress.skipped == 3
    assert progress.failed == [(f"{server.base}/robots.txt", progress.failed[0][1])]
    assert "larger than" in progress.failed[0][1] and "robots.txt could not be read" in progress.failed[0][1]
    fetcher.close()


def test_an_ipv6_address_keeps_its_brackets():
    from ingest.web.crawl import normalize_url

    assert normalize_url("HTTP://[::1]:8080/docs#part") == "http://[::1]:8080/docs"
    assert normalize_url("http://[fd00::7]/") == "http://[fd00::7]/"


def test_an_allowed_host_with_a_port_is_refused_with_the_reason():
    from retrieval.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="'127.0.0.1:8713' names a port"):
        load_settings(allowed_hosts="127.0.0.1:8713")
    allowed = load_settings(allowed_hosts="wiki.corp, 10.0.0.0/8, ::1, fd00::/8").allowed_hosts
    assert allowed == ["wiki.corp", "10.0.0.0/8", "::1", "fd00::/8"]
