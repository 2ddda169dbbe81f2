"""Believe what trusted proxies say about the client, from ONE header family.

The operator names the family its balancer writes, ``headers=``:

- ``"x-forwarded"`` (the default): ``X-Forwarded-For`` and
  ``X-Forwarded-Proto``, plus ``X-Forwarded-Host`` and ``-Port`` only with
  ``forwarded_host=True``.  nginx (``$proxy_add_x_forwarded_for``), HAProxy
  (``option forwardfor``), AWS ALB, Google Cloud and Azure load balancers,
  Cloudflare, Traefik, Caddy and uvicorn's own ``--proxy-headers`` speak it.
- ``"forwarded"``: RFC 7239 ``Forwarded``, for a balancer set up to write it
  (HAProxy 2.8+ ``option forwarded``, Envoy, nginx with an explicit
  ``proxy_set_header Forwarded ...``).

The other family is never read and is removed from the scope's headers
before the app runs, from every peer: a balancer that speaks one family
passes a client's own headers of the other through untouched, and neither
asgikit nor the app may then believe them.

Only when the connection comes from a trusted peer (``trusted_hosts``:
addresses and CIDR ranges, parsed once; an IPv4-mapped ``::ffff:a.b.c.d``
is its IPv4 address) are the headers read.  Each proxy
appends the address it received the request from, so the list is walked
from the right: trusted hops are skipped and the first untrusted one is the
client (RFC 7239 §7.4; entries left of it could be anything a client wrote).
From that same hop come ``scope["client"]``, ``scope["scheme"]`` (``https``
→ ``wss`` for a WebSocket) and the ``Host`` header.

``X-Forwarded-Proto`` and ``X-Forwarded-Host`` are not tied to hops the way
``Forwarded`` elements are: a balancer that does not *set* them passes a
client's values through.  So the balancer must overwrite
``X-Forwarded-Proto`` (nginx: ``proxy_set_header X-Forwarded-Proto
$scheme``), and ``X-Forwarded-Host``/``-Port`` are read only with
``forwarded_host=True``, for a balancer that overwrites them too (Traefik,
Caddy; nginx with ``proxy_set_header X-Forwarded-Host $host``).  Without
it they are removed like the other family.

A hop that is ``unknown``, obfuscated (RFC 7239 §6.3) or malformed gives
``scope["client"] = None`` — never the proxy's own address, which an app
might trust, and never an entry further left.  A malformed proto or host is
ignored.  A request with more than one ``Host`` header is answered ``400``
(RFC 9112 §3.2), so no two layers can disagree on which one counts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Literal, NamedTuple

from asgikit.composition import middleware
from asgikit.datastructures import valid_host
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._forwarded import MAX_HOPS, parse_forwarded, parse_node
from asgikit.middleware._http import text_response
from asgikit.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
HeaderFamily = Literal["x-forwarded", "forwarded"]

_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
_X_PREFIX = b"x-forwarded-"


class Hop(NamedTuple):
    """What the chosen hop says: the client (``None`` if unknown), proto, host and port.

    ``has_client`` is false when the headers name no client at all
    (``X-Forwarded-Proto`` alone, say): the scope's client is then kept.
    """

    has_client: bool
    client: tuple[str, int] | None
    proto: str | None
    host: str | None
    port: str | None


class _Trust:
    """The peers whose forwarding headers are believed, parsed once."""

    def __init__(self, trusted_hosts: str | Sequence[str]) -> None:
        entries = trusted_hosts.split(",") if isinstance(trusted_hosts, str) else trusted_hosts
        self.always = False
        self.unix = False
        self.addresses: set[str] = set()
        self.networks: list[IPNetwork] = []
        for raw_entry in entries:
            entry = raw_entry.strip()
            try:
                if entry == "*":
                    self.always = True
                elif entry == "unix:":
                    self.unix = True
                elif "/" in entry:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                elif entry:
                    self.addresses.add(str(_unmapped(ipaddress.ip_address(entry.strip("[]")))))
            except ValueError:
                raise ValueError(
                    f"trusted_hosts: {entry!r} is not an IP address, a CIDR range, '*' or 'unix:'"
                ) from None

    def __call__(self, host: str) -> bool:
        if self.always or host in self.addresses:
            return True
        # An IPv6 spelling may name a listed address: a dual-stack socket
        # reports an IPv4 peer as ::ffff:a.b.c.d.
        if not self.networks and ":" not in host:
            return False
        try:
            address = _unmapped(ipaddress.ip_address(host))
        except ValueError:
            return False
        if str(address) in self.addresses:
            return True
        return any(address in network for network in self.networks)

    def peer(self, client: Sequence[object] | None) -> bool:
        """Whether the connection's own peer (``scope["client"]``) is trusted."""
        if self.always:
            return True
        return self(str(client[0])) if client else self.unix

    def walk(self, nodes: list[tuple[str, int] | None]) -> int:
        """Index of the right-most untrusted hop (the left-most if all are trusted)."""
        index = len(nodes) - 1
        while index > 0:
            node = nodes[index]
            if node is None or not self(node[0]):
                break
            index -= 1
        return index


def _unmapped(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> IPAddress:
    """The IPv4 address an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) stands for."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class _Read(NamedTuple):
    """One pass over the request headers: what is kept and what the family says."""

    kept: list[tuple[bytes, bytes]]
    dropped: bool  # whether ``kept`` differs from the scope's headers
    hosts: int
    forwarded: list[bytes]
    x_for: list[bytes]
    x_proto: list[bytes]
    x_host: list[bytes]
    x_port: list[bytes]


def _read(
    headers: Sequence[tuple[bytes, bytes]], use_forwarded: bool, forwarded_host: bool
) -> _Read:
    kept: list[tuple[bytes, bytes]] = []
    forwarded: list[bytes] = []
    x_for: list[bytes] = []
    x_proto: list[bytes] = []
    x_host: list[bytes] = []
    x_port: list[bytes] = []
    dropped = False
    hosts = 0
    for pair in headers:
        raw = pair[0]
        size = len(raw)
        # Only names as long as "host", "forwarded" or "x-forwarded-*" are looked
        # at.  ASGI says lower case; a server that does not comply is no way round.
        if size != 4 and size != 9 and (size < 13 or raw[:2].lower() != b"x-"):
            kept.append(pair)
            continue
        name = raw.lower()
        if name == b"host":
            hosts += 1
        elif name == b"forwarded":
            if not use_forwarded:
                dropped = True
                continue
            forwarded.append(pair[1])
        elif name.startswith(_X_PREFIX):
            if use_forwarded:
                dropped = True
                continue
            if name == b"x-forwarded-for":
                x_for.append(pair[1])
            elif name == b"x-forwarded-proto":
                x_proto.append(pair[1])
            elif name in (b"x-forwarded-host", b"x-forwarded-port"):
                if not forwarded_host:
                    dropped = True
                    continue
                (x_host if name == b"x-forwarded-host" else x_port).append(pair[1])
        kept.append(pair)
    return _Read(kept, dropped, hosts, forwarded, x_for, x_proto, x_host, x_port)


@middleware
def proxy_headers(
    app: ASGIApp,
    *,
    trusted_hosts: str | Sequence[str] = "127.0.0.1",
    headers: HeaderFamily = "x-forwarded",
    forwarded_host: bool = False,
    exclude: Exclude = None,
) -> ASGIApp:
    """Set client, scheme and host from the ``headers`` family sent by ``trusted_hosts``.

    ``trusted_hosts`` is a list (or a comma-separated string) of addresses
    and CIDR ranges (``"10.0.0.0/8"``, ``"::1"``); ``"*"`` trusts every peer
    (only when nothing else can reach the server), and ``"unix:"`` trusts a
    connection without a client address (a Unix socket).

    ``headers`` is the one family the balancer writes: ``"x-forwarded"``
    (nginx, HAProxy's ``option forwardfor``, cloud load balancers, Traefik,
    Caddy) or ``"forwarded"`` (RFC 7239: HAProxy's ``option forwarded``,
    Envoy, nginx set up to write it).  The other family is removed from the
    request.  ``forwarded_host=True`` also reads ``X-Forwarded-Host`` and
    ``X-Forwarded-Port``: only for a balancer that overwrites them.

    Invalid entries and values raise ``ValueError`` here.
    """
    if headers not in ("x-forwarded", "forwarded"):
        raise ValueError(
            "headers must be 'x-forwarded' or 'forwarded' (the one family your "
            f"balancer sets), not {headers!r}"
        )
    use_forwarded = headers == "forwarded"
    if use_forwarded and forwarded_host:
        raise ValueError(
            "forwarded_host=True reads X-Forwarded-Host, which headers='forwarded' ignores; "
            "a Forwarded element's host= is always read"
        )
    trust = _Trust(trusted_hosts)
    excluded = compile_exclude(exclude)

    async def proxy_headers_app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket") or (excluded is not None and excluded(scope)):
            await app(scope, receive, send)
            return
        read = _read(scope["headers"], use_forwarded, forwarded_host)
        if read.hosts > 1:
            # RFC 9112 §3.2: more than one Host is answered 400.
            await text_response(scope, receive, send, 400, "Bad Request: more than one Host")
            return
        hop: Hop | None = None
        if trust.peer(scope.get("client")):
            if use_forwarded:
                if read.forwarded:
                    hop = _from_forwarded(trust, b",".join(read.forwarded).decode("latin-1"))
            elif read.x_for or read.x_proto or read.x_host or read.x_port:
                hop = _from_x_forwarded(trust, read)
        if hop is not None:
            scope = _apply(scope, read.kept, hop)
        elif read.dropped:
            scope = dict(scope)
            scope["headers"] = read.kept
        await app(scope, receive, send)

    return proxy_headers_app


def _from_forwarded(trust: _Trust, header: str) -> Hop:
    elements = parse_forwarded(header)
    if not any(e is None or "for" in e for e in elements):
        # Only proto/host given: they come from the nearest proxy.
        last = elements[-1] or {}
        return Hop(False, None, last.get("proto"), last.get("host"), None)
    nodes = [parse_node(e["for"]) if e and "for" in e else None for e in elements]
    index = trust.walk(nodes)
    element = elements[index]
    if element is None:
        return Hop(True, None, None, None, None)
    return Hop(True, nodes[index], element.get("proto"), element.get("host"), None)


def _from_x_forwarded(trust: _Trust, read: _Read) -> Hop:
    def values(raw: list[bytes]) -> list[str]:
        joined = b",".join(raw).decode("latin-1")
        return [v.strip() for v in joined.split(",")][-MAX_HOPS:]

    from_right = 0
    client = None
    if read.x_for:
        nodes = [parse_node(v) for v in values(read.x_for)]
        index = trust.walk(nodes)
        from_right = len(nodes) - 1 - index
        client = nodes[index]

    def pick(raw: list[bytes]) -> str | None:
        # The value of the same hop; a shorter list (one value set by the
        # nearest proxy, usually) gives its left-most value.
        if not raw:
            return None
        listed = values(raw)
        return listed[max(len(listed) - 1 - from_right, 0)] or None

    return Hop(bool(read.x_for), client, pick(read.x_proto), pick(read.x_host), pick(read.x_port))


def _apply(scope: Scope, headers: list[tuple[bytes, bytes]], hop: Hop) -> Scope:
    scope = dict(scope)
    scope["headers"] = headers
    if hop.has_client:
        scope["client"] = hop.client
    if hop.proto is not None:
        schemes = _WS_SCHEMES if scope["type"] == "websocket" else _HTTP_SCHEMES
        scheme = schemes.get(hop.proto.lower())
        if scheme is not None:
            scope["scheme"] = scheme
    host = hop.host if hop.host is not None and valid_host(hop.host) else None
    port = hop.port
    # Five digits at most: int() of a long digit string costs quadratic CPU and
    # past 4300 digits raises.
    if not (port and len(port) <= 5 and port.isascii() and port.isdigit() and int(port) <= 65535):
        port = None
    if port is not None:
        if host is None:
            host = next((v for k, v in headers if k.lower() == b"host"), b"").decode("latin-1")
        host = _with_port(host, str(int(port))) if valid_host(host) else None
    if host is not None:
        kept = [(k, v) for k, v in headers if k.lower() != b"host"]
        kept.append((b"host", host.encode("latin-1")))
        scope["headers"] = kept
    return scope


def _with_port(host: str, port: str) -> str:
    name = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return f"{name}:{port}"


__all__ = [
    "HeaderFamily",
    "Hop",
    "IPNetwork",
    "parse_forwarded",
    "parse_node",
    "proxy_headers",
]
