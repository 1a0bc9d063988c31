"""Outbound safety: a tenant's webhook or SMS URL must not make CLM call internal services.

A target is checked twice: when it is configured (a clear field error) and again right before
each send, because DNS may answer differently later (rebinding). The check resolves the host,
refuses the target if *any* address is loopback, link-local, private, shared, multicast or
otherwise not globally routable (unless an operator listed its network in
``CLM_OUTBOUND_ALLOWED_NETWORKS``), and requires https unless ``CLM_OUTBOUND_ALLOW_HTTP``.
The send then connects to the very address that was checked (the URL carries the IP, the
``Host`` header and the TLS server name carry the hostname, so certificates still verify)
instead of letting the HTTP client resolve the name a second time. Redirects are not followed.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from clm.config import Settings, get_settings

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Sequence[str]]


class OutboundRefused(Exception):
    """A target URL CLM will not call; the message says why, without secrets."""


class Unresolvable(OutboundRefused):
    """The host does not resolve now: refused, though a later attempt may succeed."""


def system_resolve(host: str, port: int) -> list[str]:
    """Every address the system resolver gives for ``host`` (IPv4 and IPv6)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolvable(f"host {host!r} does not resolve") from exc
    return sorted({str(info[4][0]) for info in infos})


def _networks(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    given = [part.strip() for part in settings.outbound_allowed_networks.split(",")]
    return [ipaddress.ip_network(part, strict=False) for part in given if part]


def _plain(address: IpAddress) -> IpAddress:
    """An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4 it maps."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _refusal(address: IpAddress) -> str | None:
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if address.is_private:
        return "private"
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class Target:
    """A checked target: where to connect (the IP) and what to call it (the hostname)."""

    url: str  # the URL with the checked IP in place of the hostname
    headers: dict[str, str] = field(default_factory=dict)
    extensions: dict[str, Any] = field(default_factory=dict)


def check_target(
    url: str, *, settings: Settings | None = None, resolve: Resolver | None = None
) -> Target:
    """The pinned target for ``url``, or :class:`OutboundRefused` with the reason."""
    settings = settings or get_settings()
    resolve = resolve or system_resolve
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise OutboundRefused("not a valid URL") from exc
    allowed_schemes = ("https", "http") if settings.outbound_allow_http else ("https",)
    if parsed.scheme not in allowed_schemes:
        raise OutboundRefused(
            "only https targets are allowed"
            if parsed.scheme == "http"
            else f"scheme {parsed.scheme!r} is not allowed"
        )
    host = parsed.host
    if not host:
        raise OutboundRefused("the URL has no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        literal: IpAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    found = [str(literal)] if literal is not None else list(resolve(host, port))
    if not found:
        raise Unresolvable(f"host {host!r} does not resolve")
    allowed = _networks(settings)
    addresses = [ipaddress.ip_address(a.split("%", 1)[0]) for a in found]
    for address in addresses:
        plain = _plain(address)
        reason = _refusal(plain)
        if reason and not any(plain in net for net in allowed if net.version == plain.version):
            raise OutboundRefused(
                f"{host} resolves to {plain}, a {reason} address; an operator may allow its "
                "network with CLM_OUTBOUND_ALLOWED_NETWORKS"
            )
    if literal is not None:
        return Target(url=str(parsed))
    pinned = addresses[0]
    ip_host = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    netloc = f"{ip_host}:{parsed.port}" if parsed.port else ip_host
    host_header = f"{host}:{parsed.port}" if parsed.port else host
    extensions = {"sni_hostname": host} if parsed.scheme == "https" else {}
    return Target(
        url=str(parsed.copy_with(netloc=netloc.encode("ascii"))),
        headers={"Host": host_header},
        extensions=extensions,
    )
