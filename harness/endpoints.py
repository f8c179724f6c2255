"""Hosts named in configuration values, normalised so that one host has one spelling.

A host is compared after percent-decoding, lower-casing and dropping a trailing dot; an IP literal in any form
the C resolver accepts (``127.1``, ``0x7f000001``, ``::ffff:10.0.0.7``) becomes its canonical address; every
loopback or wildcard spelling (``localhost``, ``127.0.0.0/8``, ``::1``, ``0.0.0.0``, ``::``) is the one host
:data:`LOOPBACK`. A name may also stand for the addresses it resolves to: :func:`resolve` asks
``socket.getaddrinfo`` (the machine's own resolver) on a daemon thread and waits at most half a second, so a
resolver that hangs costs that, not the drill.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import threading
from collections.abc import Iterator
from functools import cache
from urllib.parse import unquote, urlsplit

__all__ = ["LOOPBACK", "decode", "hosts_in", "normalise_host", "resolve"]

LOOPBACK = "loopback"
"""The one spelling of every loopback and wildcard address: a server there is on this machine."""

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_RESOLVE_TIMEOUT_S = 0.5
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_SEPARATORS = re.compile(r"[\s,;=@'\"()<>]+")
_HOST_PORT = re.compile(r"^(?P<host>\[[^\]/]+\]|[^:\[\]/]+):(?P<port>\d{1,5})(?:/\S*)?$")
_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.%\w]+\]|[\w.%-]*[\w%]\.?|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)$")


def decode(value: str) -> str:
    """``value`` percent-decoded until it stops changing (``%252E`` is a dot too), at most three times."""
    for _ in range(3):
        decoded = unquote(value)
        if decoded == value:
            break
        value = decoded
    return value


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address an IP literal stands for (any spelling the resolver accepts), ``None`` for a name."""
    if not host:
        return None
    try:
        info = socket.getaddrinfo(host, None, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError, ValueError):
        return None
    address = ipaddress.ip_address(str(info[0][4][0]).split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def normalise_host(host: str) -> str:
    """The one spelling of ``host``: decoded, lower case, no brackets or trailing dot, loopback as ``loopback``."""
    host = decode(host).strip().strip("[]").lower().rstrip(".")
    address = _address(host)
    if address is None:
        return LOOPBACK if host in _LOOPBACK_NAMES else host
    return LOOPBACK if address.is_loopback or address.is_unspecified else str(address)


@cache
def resolve(host: str) -> frozenset[str]:
    """``host`` normalised and, for a name, every address it resolves to within half a second (normalised)."""
    normal = normalise_host(host)
    if normal == LOOPBACK or _address(normal) is not None or not normal:
        return frozenset({normal})
    found: list[str] = []

    def lookup() -> None:
        with contextlib.suppress(OSError, UnicodeError):
            found.extend(str(info[4][0]) for info in socket.getaddrinfo(normal, None, proto=socket.IPPROTO_TCP))

    thread = threading.Thread(target=lookup, name=f"resolve {normal}", daemon=True)
    thread.start()
    thread.join(_RESOLVE_TIMEOUT_S)
    return frozenset({normal, *(normalise_host(address) for address in list(found))})


def hosts_in(value: str) -> Iterator[tuple[str, int | None, bool]]:
    """Every host ``value`` names: ``(host as written, port or None, whether it is in a URL or host:port)``.

    URLs give their host and port; the rest is split at blanks, ``=``, ``@``, commas and quotes, and each
    piece that is ``host:port`` or looks like a host name or address is yielded. Module paths such as
    ``sandbox.app:create_app`` look like names too; the caller only compares them, it never resolves them.
    """
    value = decode(value)
    for match in _URL.finditer(value):
        try:
            parts = urlsplit(match.group())
            port = parts.port
        except ValueError:
            continue
        if parts.hostname:
            yield parts.hostname, port, True
    for piece in _SEPARATORS.split(_URL.sub(" ", value)):
        host_port = _HOST_PORT.match(piece)
        if host_port:
            yield host_port.group("host"), int(host_port.group("port")), True
        elif _HOST.match(piece):
            yield piece, None, False
