"""Fetching one URL with the limits a crawler needs: time-outs, a redirect cap, a size cap, the
address guard on every hop, and conditional requests (ETag, Last-Modified).

A read time-out alone does not bound a fetch: a server that sends one byte every few seconds
resets it forever. So every fetch also has a total deadline, and can be cancelled in flight; a
watchdog thread ends it by shutting its connection down, which wakes a blocked read at once.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from ingest.errors import IngestError
from ingest.web.netguard import AllowList, check_url

USER_AGENT = "DocentBot/0.1"


class FetchError(IngestError):
    """The URL could not be fetched; `status` holds the HTTP status when there was one."""

    def __init__(self, source: str, reason: str, status: int | None = None):
        super().__init__(source, reason)
        self.status = status

    def __reduce__(self):
        return (self.__class__, (self.source, self.reason, self.status))


@dataclass
class FetchResult:
    url: str  # after redirects
    status: int
    content_type: str
    body: bytes
    etag: str | None
    last_modified: str | None

    @property
    def not_modified(self) -> bool:
        return self.status == 304


class _Watchdog:
    """Ends a fetch past its deadline, or once cancel is set, even in the middle of a read."""

    def __init__(self, deadline: float, cancel: threading.Event | None):
        self.deadline, self.cancel = deadline, cancel
        self.tripped: str | None = None  # "deadline" or "cancel"
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="docent-fetch-watchdog", daemon=True)

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()

    def trace(self, event: str, info: dict) -> None:
        """httpx's trace hook: the connection's socket as soon as it is connected."""
        if event == "connection.connect_tcp.complete":
            self.attach(info["return_value"])

    def attach(self, stream) -> None:
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock)
            if self.tripped:
                _shut(sock)

    def _watch(self) -> None:
        while not self._done.wait(0.1):
            why = "cancel" if self.cancel is not None and self.cancel.is_set() else None
            why = why or ("deadline" if time.monotonic() > self.deadline else None)
            if why:
                with self._lock:
                    self.tripped = why
                    for sock in self._sockets:
                        _shut(sock)
                return


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # already closed
        pass


class Fetcher:
    def __init__(
        self,
        allow: AllowList = AllowList(),
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        total_timeout: float = 60.0,
        max_bytes: int = 25 * 2**20,
        max_redirects: int = 5,
        cancel: threading.Event | None = None,
    ):
        """total_timeout bounds a whole fetch, redirects included; cancel stops one in flight."""
        self.allow = allow
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.cancel = cancel
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.client = httpx.Client(
            follow_redirects=False,  # each hop is checked by the address guard first
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            headers={"User-Agent": USER_AGENT},
            trust_env=False,
        )

    def close(self) -> None:
        self.client.close()

    def get(self, url: str, *, etag: str | None = None, last_modified: str | None = None) -> FetchResult:
        with _Watchdog(time.monotonic() + self.total_timeout, self.cancel) as watchdog:
            try:
                return self._get(url, etag, last_modified, watchdog)
            except (FetchError, httpx.HTTPError):
                if watchdog.tripped == "cancel":
                    raise FetchError(url, "cancelled") from None
                if watchdog.tripped == "deadline":
                    raise FetchError(url, f"took longer than {self.total_timeout:g} s in all") from None
                raise

    def _get(self, url: str, etag: str | None, last_modified: str | None, watchdog: _Watchdog) -> FetchResult:
        headers = {}
        if etag:
            headers["If-None-Match"] = etag
        if last_modified:
            headers["If-Modified-Since"] = last_modified
        visited: list[str] = []
        current = url
        for _ in range(self.max_redirects + 1):
            check_url(current, self.allow)
            if current in visited:
                raise FetchError(url, f"redirect loop ({' -> '.join(visited + [current])})")
            visited.append(current)
            try:
                with self.client.stream(
                    "GET", current, headers=headers, extensions={"trace": watchdog.trace}
                ) as response:
                    watchdog.attach(response.extensions.get("network_stream"))  # a reused connection
                    if response.status_code in (301, 302, 303, 307, 308):
                        location = response.headers.get("location")
                        if not location:
                            raise FetchError(
                                url, f"HTTP {response.status_code} redirect without a Location", response.status_code
                            )
                        current = urljoin(current, location)
                        continue
                    if response.status_code == 304:
                        return FetchResult(current, 304, "", b"", etag, last_modified)
                    if response.status_code >= 400:
                        raise FetchError(
                            url, f"HTTP {response.status_code} {response.reason_phrase}", response.status_code
                        )
                    body = self._read_capped(response, url)
                    return FetchResult(
                        current,
                        response.status_code,
                        response.headers.get("content-type", "").split(";")[0].strip().lower(),
                        body,
                        response.headers.get("etag"),
                        response.headers.get("last-modified"),
                    )
            except httpx.TimeoutException:
                raise FetchError(url, f"timed out (no answer within {self.read_timeout:g} s)") from None
            except httpx.ConnectError as exc:
                raise FetchError(url, f"cannot connect ({exc})") from None
            except httpx.HTTPError as exc:
                raise FetchError(url, f"request failed ({type(exc).__name__}: {exc})") from None
        raise FetchError(url, f"more than {self.max_redirects} redirects")

    def _read_capped(self, response: httpx.Response, url: str) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(url, f"larger than the {self.max_bytes // 2**20} MiB limit ({int(declared) // 2**20} MiB)")
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise FetchError(url, f"larger than the {self.max_bytes // 2**20} MiB limit")
            chunks.append(chunk)
        return b"".join(chunks)
