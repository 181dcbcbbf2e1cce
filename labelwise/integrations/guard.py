"""Outbound address guard: refuse private, loopback, link-local, site-local, multicast and metadata addresses.

The check sits in the connection layer (an httpcore network backend), so it judges the very addresses
the socket will connect to: names are resolved once, every address is checked, and the connection goes
to a checked address. Nothing is sent when any address is refused. Redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefusedError(Exception):
    """The destination resolves to an address outbound deliveries may not reach."""


def parse_allow(spec: str) -> list[Network]:
    """``"127.0.0.0/8, ::1"`` -> networks; raises ValueError on a bad entry."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in spec.split(",") if part.strip()]


def refusal(ip: IPAddress, allow: Iterable[Network] = ()) -> str | None:
    """Why ``ip`` is refused, or None when it may be reached."""
    if any(ip.version == net.version and ip in net for net in allow):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = (
            ip.ipv4_mapped or ip.sixtofour or (ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF) if ip in NAT64 else None)
        )
        if embedded is not None:
            inner = refusal(embedded, allow)
            return f"embeds {embedded}: {inner}" if inner else None
    # is_site_local: fec0::/10, deprecated but still routed inside some networks, and not is_private
    attributes = ("is_loopback", "is_link_local", "is_site_local", "is_multicast", "is_unspecified", "is_reserved")
    for attribute in (*attributes, "is_private"):
        if getattr(ip, attribute, False):
            return attribute.removeprefix("is_").replace("_", "-")
    if not ip.is_global:
        return "not globally routable"
    return None


def check_host(host: str, port: int, allow: Iterable[Network] = ()) -> list[str]:
    """Resolve ``host`` and return its addresses; raises OutboundRefusedError if any is refused."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise httpcore.ConnectError(f"cannot resolve {host}: {e}") from e
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = refusal(ipaddress.ip_address(address.split("%")[0]), list(allow))
        if reason:
            raise OutboundRefusedError(f"refused to connect to {host} ({address}: {reason})")
    return addresses


class GuardedBackend(httpcore.SyncBackend):
    def __init__(self, allow: list[Network]) -> None:
        self._allow = allow

    def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        addresses = check_host(host, port, self._allow)
        return super().connect_tcp(addresses[0], port, *args, **kwargs)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport with the guarded backend; no proxies from the environment."""

    def __init__(self, *, allow: list[Network], **kwargs: Any) -> None:
        super().__init__(trust_env=False, **kwargs)
        # httpx offers no public hook for httpcore's network backend; its pool takes ours.
        self._pool._network_backend = GuardedBackend(allow)


def make_client(*, allow: str = "", timeout_s: float = 10.0) -> httpx.Client:
    """The one way labelwise talks to the outside: guarded, no redirects, bounded time."""
    return httpx.Client(
        transport=GuardedTransport(allow=parse_allow(allow)),
        timeout=timeout_s,
        follow_redirects=False,
        headers={"User-Agent": "labelwise"},
    )
