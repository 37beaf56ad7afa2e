"""Fetching one URL with the limits a crawler needs: time-outs, a redirect cap, a size cap, the
address guard on every hop, and conditional requests (ETag, Last-Modified)."""

from __future__ import annotations

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


class Fetcher:
    def __init__(
        self,
        allow: AllowList = AllowList(),
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 15.0,
        max_bytes: int = 25 * 2**20,
        max_redirects: int = 5,
    ):
        self.allow = allow
        self.read_timeout = read_timeout
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
                with self.client.stream("GET", current, headers=headers) as response:
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
