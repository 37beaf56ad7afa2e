"""Sitemaps (urlset and sitemap index, plain or gzipped), parsed safely with defusedxml.

Limits defeat hostile input: a decompressed size cap stops gzip bombs, defusedxml refuses
entity expansion and external entities, and the crawler caps how deep indexes may nest.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

from ingest.errors import IngestError

MAX_SITEMAP_BYTES = 50 * 2**20  # the sitemap protocol's own limit, decompressed
MAX_DEPTH = 3  # an index of indexes of sitemaps is as deep as real sites go


@dataclass(frozen=True)
class SitemapEntry:
    url: str
    lastmod: str | None = None


@dataclass
class Sitemap:
    is_index: bool
    entries: list[SitemapEntry]


def gunzip_capped(data: bytes, limit: int, source: str) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise IngestError(source, f"the gzipped sitemap is damaged ({exc})") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise IngestError(source, f"the sitemap decompresses to more than {limit // 2**20} MiB; refused")
    return out


def parse_sitemap(data: bytes, source: str) -> Sitemap:
    if data[:2] == b"\x1f\x8b":
        data = gunzip_capped(data, MAX_SITEMAP_BYTES, source)
    if len(data) > MAX_SITEMAP_BYTES:
        raise IngestError(source, f"the sitemap is larger than {MAX_SITEMAP_BYTES // 2**20} MiB; refused")
    try:
        root = ElementTree.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise IngestError(source, f"the sitemap uses forbidden XML features ({type(exc).__name__}); refused") from None
    except ElementTree.ParseError as exc:
        raise IngestError(source, f"not a valid sitemap: {exc}") from None
    kind = _local(root.tag)
    if kind not in ("urlset", "sitemapindex"):
        raise IngestError(source, f"not a sitemap: the document's root is <{kind}>")
    entries = []
    for item in root:
        fields = {_local(child.tag): (child.text or "").strip() for child in item}
        if fields.get("loc"):
            entries.append(SitemapEntry(fields["loc"], fields.get("lastmod") or None))
    return Sitemap(kind == "sitemapindex", entries)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
