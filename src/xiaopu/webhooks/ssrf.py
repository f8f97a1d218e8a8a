"""Refuse to connect webhook deliveries to internal addresses (checked at delivery time)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services not covered by the link-local range (e.g. Alibaba Cloud's 100.100.100.200
# sits in the shared/CGNAT range, which is_private does not cover on every Python).
_METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class BlockedDestination(Exception):
    """The URL resolves to an address deliveries may not reach."""


def _unwrap(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
    return address


def is_forbidden(address: IPAddress, *, allow_loopback: bool) -> bool:
    address = _unwrap(address)
    if address.is_loopback:
        return not allow_loopback
    return (
        address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address in _METADATA
        or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED)
    )


async def resolve_allowed(url: str, *, allow_loopback: bool) -> list[str]:
    """The addresses to connect to, or BlockedDestination if any of them is internal.

    Every resolved address must be public: a name that also resolves to an internal address is
    refused, since the HTTP client might pick that one.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if parts.scheme not in ("https", "http") or not host:
        raise BlockedDestination("only http(s) URLs with a host can receive webhooks")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError) as exc:
            raise BlockedDestination(f"cannot resolve {host[:100]}") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not addresses:
        raise BlockedDestination(f"cannot resolve {host[:100]}")
    for address in addresses:
        if is_forbidden(address, allow_loopback=allow_loopback):
            raise BlockedDestination(f"{host[:100]} resolves to a non-public address")
    return [str(a) for a in addresses]
