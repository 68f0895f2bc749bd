"""Which webhook URLs the gateway will POST to: public addresses, unless an operator allows more.

A webhook is a request the gateway makes on a tenant's behalf, from inside the
deployment. Left open, a tenant could aim it at the cloud metadata service, the
bus's monitor port or any internal API (server-side request forgery). So every
address the host name resolves to must be globally routable, or inside a network
the operator listed in TOKENBUS_GATEWAY_WEBHOOK_ALLOWED_NETWORKS. The check runs
when the job is submitted (a clear 400) and again before each delivery, and the
delivery connects to the very address that was checked (`pinned`): a name that
answers differently a moment later (DNS rebinding) changes nothing.

An IPv6 address that carries an IPv4 one (NAT64, 6to4, Teredo, IPv4-mapped,
-compatible or -translated) reaches that IPv4 host through a translator or a
tunnel, so the IPv4 address is judged instead: 64:ff9b::a9fe:a9fe is the
metadata service, 64:ff9b::808:808 is 8.8.8.8.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "Network",
    "PinnedRequest",
    "WebhookPolicy",
    "WebhookRefused",
    "parse_networks",
    "pinned",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolve = Callable[[str, int], Awaitable[list[str]]]

_RESOLVE_TIMEOUT_S = 5.0

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052 well-known prefix
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215, the operator picks the layout
_NAT64_LOCAL_96 = ipaddress.IPv6Network("64:ff9b:1::/96")
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # ::a.b.c.d, deprecated but still routed
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")  # ::ffff:0:a.b.c.d (SIIT)


class WebhookRefused(Exception):
    """The URL may not be called; the reason names no address the caller did not give."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_networks(text: str) -> tuple[Network, ...]:
    """'127.0.0.0/8, 10.1.2.3' -> networks; a ValueError names the entry at fault."""
    networks: list[Network] = []
    for entry in (part.strip() for part in text.split(",")):
        if entry:
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                raise ValueError(f"not a network or address: {entry!r}") from None
    return tuple(networks)


async def _resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class WebhookPolicy:
    def __init__(self, allowed: Iterable[Network] = (), resolve: Resolve = _resolve) -> None:
        self._allowed = tuple(allowed)
        self._resolve = resolve

    async def check(self, url: str) -> str:
        """The address to connect to; WebhookRefused unless all the host's may be called."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise WebhookRefused("a webhook URL is http or https with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(_RESOLVE_TIMEOUT_S):  # a request waits on this
                found = await self._resolve(parts.hostname, port)
        except (OSError, UnicodeError, TimeoutError):
            raise WebhookRefused("the webhook's host name does not resolve") from None
        if not found:
            raise WebhookRefused("the webhook's host name does not resolve")
        addresses = [ipaddress.ip_address(text.split("%", 1)[0]) for text in found]  # no zone
        for address in addresses:
            if not self._may_call(address):
                raise WebhookRefused(
                    "the webhook's host is a private, loopback or reserved address"
                )
        return str(addresses[0])

    def _may_call(self, address: Address) -> bool:
        if any(address in network for network in self._allowed):
            return True
        if isinstance(address, ipaddress.IPv6Address):
            if address in _NAT64_LOCAL and address not in _NAT64_LOCAL_96:
                # A /48../64 layout puts the IPv4 address elsewhere: where it goes is unknown.
                return False
            embedded = _embedded_ipv4(address)
            if embedded:
                return all(self._may_call(ipv4) for ipv4 in embedded)
        return address.is_global and not (address.is_multicast or address.is_reserved)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 hosts a packet to `address` reaches, for the forms that carry one; else ()."""
    if address.ipv4_mapped is not None:
        return (address.ipv4_mapped,)
    if address.sixtofour is not None:  # 2002:a.b.c.d::/48
        return (address.sixtofour,)
    if address.teredo is not None:  # 2001::/32: the relay (server) and the client behind it
        return address.teredo
    last_32_bits = ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _NAT64 or address in _NAT64_LOCAL_96 or address in _IPV4_TRANSLATED:
        return (last_32_bits,)
    if address in _IPV4_COMPATIBLE and int(address) > 1:  # :: and ::1 are no IPv4 address
        return (last_32_bits,)
    return ()


@dataclass(frozen=True, slots=True)
class PinnedRequest:
    """A request to the checked address that still names the host (Host header, TLS SNI)."""

    url: str
    headers: dict[str, str]
    extensions: dict[str, str] = field(default_factory=dict)


def pinned(url: str, address: str) -> PinnedRequest:
    parts = urlsplit(url)
    host = parts.hostname or ""
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    userinfo, at, named = parts.netloc.rpartition("@")
    if at:
        netloc = f"{userinfo}@{netloc}"  # basic auth in the URL still goes, as Authorization
    # For https the certificate is still checked against the name the tenant gave.
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return PinnedRequest(
        urlunsplit((parts.scheme, netloc, parts.path, parts.query, "")),
        {"host": named},
        extensions,
    )
