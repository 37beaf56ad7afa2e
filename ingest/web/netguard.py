"""Which hosts the crawler may reach: no private, loopback or link-local address unless allowed.

A URL's host is resolved and every address it resolves to is checked, before the first request
and again after every redirect, so a public name pointing inside the network (or a redirect to
one) is refused too. DOCENT_ALLOWED_HOSTS lists host names, addresses or networks (CIDR) that
an intranet deployment allows.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ingest.errors import IngestError


class BlockedAddressError(IngestError):
    """The URL leads to an address the crawler must not reach."""


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str] = frozenset()
    networks: tuple = ()

    @classmethod
    def parse(cls, entries) -> "AllowList":
        hosts, networks = set(), []
        for entry in entries or ():
            entry = entry.strip().lower()
            if entry.startswith("[") and entry.endswith("]"):
                entry = entry[1:-1]  # an IPv6 address as a URL writes it: "[::1]"
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry)
        return cls(frozenset(hosts), tuple(networks))

    def allows_ip(self, ip) -> bool:
        return any(ip in net for net in self.networks if ip.version == net.version)


def _is_internal(ip) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_multicast or ip.is_unspecified


def check_url(url: str, allow: AllowList) -> None:
    """Raises IngestError for a URL that is not http(s) or whose host is internal and not allowed."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise IngestError(url, f"only http and https URLs can be fetched, not {parts.scheme or 'a bare path'}")
    host = (parts.hostname or "").lower()
    if not host:
        raise IngestError(url, "the URL has no host")
    if host in allow.hosts:
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise IngestError(url, "the URL has an invalid port") from None
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise IngestError(url, f"the host {host} cannot be resolved ({exc.strerror})") from None
    for info in infos:
        ip = ipaddress.ip_address(info[4][0].split("%")[0])
        if _is_internal(ip) and not allow.allows_ip(ip):
            raise BlockedAddressError(
                url,
                f"{host} resolves to {ip}, a private, loopback or link-local address; the crawler refuses it "
                "unless the host is listed in DOCENT_ALLOWED_HOSTS",
            )
