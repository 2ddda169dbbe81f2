"""Header rules of a proxy: hop-by-hop removal and the forwarding headers.

Hop-by-hop fields (RFC 9110 §7.6.1) describe one connection, not the
message: ``Connection`` and every field it names, plus ``Proxy-Connection``,
``Keep-Alive``, ``TE``, ``Transfer-Encoding`` and ``Upgrade``.  Also dropped:
``Trailer`` (its fields are never forwarded here) and the two
``Proxy-Auth*`` fields, which address a proxy and not the origin (§11.7).
A few end-to-end fields are kept even when ``Connection`` names them, so that
a client cannot strip the ``Host`` or the trail an earlier proxy left in
``X-Forwarded-For`` or ``Forwarded``.

The forwarding headers: ``X-Forwarded-For`` is appended to (the de facto
convention), and ``Forwarded`` (RFC 7239) gets one more element, with nodes
written as §6 requires (IPv6 in brackets, quoted; obfuscated ``_name``
identifiers kept; anything else becomes ``unknown``).  Every other header a
client could write to pass for a proxy (``CLIENT_WRITTEN``: ``X-Real-IP``,
``X-Forwarded-Proto/Host/Port/Prefix``, ``X-Original-URL``...) is dropped,
and the ones this proxy knows are set from what it saw.  Nothing here
decides which proxies to trust: that is the reading side's job
(``proxy_headers``).

Before any of that, ``check_request_framing`` refuses headers that two
servers could read two ways (two ``Host``; ``Content-Length`` with
``Transfer-Encoding``; a malformed ``Content-Length``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from ipaddress import IPv6Address, ip_address
from urllib.parse import quote

from asgikit.datastructures import valid_host
from asgikit.types import Scope

RawHeaders = list[tuple[bytes, bytes]]

HOP_BY_HOP: frozenset[bytes] = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Never removed because ``Connection`` lists them (see the module docstring).
PROTECTED: frozenset[bytes] = frozenset(
    {
        b"host",
        b"content-length",
        b"forwarded",
        b"x-forwarded-for",
        b"x-forwarded-host",
        b"x-forwarded-proto",
    }
)
# Headers that tell an upstream where a request came from or what it was
# before this proxy: a client must not write them.  With ``add_forwarded``
# each is dropped, and the ones this proxy knows are set again from what it
# saw: ``X-Real-IP`` (nginx), ``X-Forwarded-Port``, ``X-Forwarded-Prefix``.
# ``X-Original-URL`` and ``X-Rewrite-URL`` override the request path in IIS
# and Symfony, which would let a client reach a path the gateway refused.
CLIENT_WRITTEN: frozenset[bytes] = frozenset(
    {
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-forwarded-prefix",
        b"x-forwarded-server",
        b"x-forwarded-scheme",
        b"x-forwarded-ssl",
        b"x-url-scheme",
        b"front-end-https",
        b"x-real-ip",
        b"x-client-ip",
        b"true-client-ip",
        b"x-cluster-client-ip",
        b"x-original-url",
        b"x-rewrite-url",
        b"x-original-host",
    }
)
# RFC 9110 §5.6.2 tchar: a parameter value made only of these needs no quotes.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# RFC 7239 §6.3 obfnode / §6.4 obfport.
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_WEB_SCHEME = {"ws": "http", "wss": "https"}
_PREFIX_SAFE = "/:@!$&'()*+,;=-._~"  # a path, percent-encoded (RFC 3986 §3.3)
_LONGEST_HOST = 255  # what ``valid_host`` accepts at most


def connection_listed(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    """The field names a ``Connection`` header lists, lower-cased (RFC 9110 §7.6.1)."""
    names: set[bytes] = set()
    for name, value in headers:
        if name.lower() == b"connection":
            for token in value.split(b","):
                token = token.strip().lower()
                if token and token not in PROTECTED:
                    names.add(token)
    return names


def drop_hop_by_hop(
    headers: Sequence[tuple[bytes, bytes]], extra: frozenset[bytes] = frozenset()
) -> RawHeaders:
    """``headers`` without hop-by-hop fields, names lower-cased, order and repeats kept.

    ``extra`` names more fields to drop (for example the WebSocket handshake's).
    With a ``Transfer-Encoding``, ``Content-Length`` goes too (RFC 9112
    §6.3: the encoding overrides it, and an intermediary "MUST first remove
    the received Content-Length field"): the length it states is not the
    length of the body relayed.
    """
    drop = HOP_BY_HOP | extra if extra else HOP_BY_HOP
    out: RawHeaders = []
    has_connection = False
    encoded = False
    for name, value in headers:
        name = name.lower()
        if name not in drop:
            out.append((name, value))
        elif name == b"connection":
            has_connection = True
        elif name == b"transfer-encoding":
            encoded = True
    if has_connection:
        listed = connection_listed(headers)
        if listed:
            out = [(name, value) for name, value in out if name not in listed]
    if encoded:
        out = [(name, value) for name, value in out if name != b"content-length"]
    return out


class RefusedRequest(ValueError):
    """The request's headers are ambiguous and must not be forwarded (answer 400)."""


def check_request_framing(headers: Iterable[tuple[bytes, bytes]]) -> None:
    """Raise :class:`RefusedRequest` for headers two servers could read two ways.

    - More than one ``Host`` (RFC 9112 §3.2: "MUST respond with a 400").
    - ``Content-Length`` with ``Transfer-Encoding`` (RFC 9112 §6.1: a
      smuggling attempt or an error; an intermediary must not forward both).
    - A ``Content-Length`` that is not exactly one run of digits (RFC 9110
      §8.6): repeated, a list, signed, empty.
    """
    hosts = 0
    lengths = 0
    transfer_encoding = False
    for name, value in headers:
        if name == b"host":
            hosts += 1
        elif name == b"content-length":
            lengths += 1
            if not value.isdigit():  # bytes: ASCII digits only
                raise RefusedRequest("malformed Content-Length")
        elif name == b"transfer-encoding":
            transfer_encoding = True
    if hosts > 1:
        raise RefusedRequest("more than one Host header")
    if lengths > 1:
        raise RefusedRequest("more than one Content-Length header")
    if lengths and transfer_encoding:
        raise RefusedRequest("both Content-Length and Transfer-Encoding")


def _param(value: str) -> str:
    # RFC 7239 §4: value = token / quoted-string (RFC 9110 §5.6.4).
    if value and _TCHAR.issuperset(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def forwarded_node(host: str | None, port: int | str | None = None) -> str:
    """A ``Forwarded`` node (RFC 7239 §6), unquoted: ``192.0.2.1``, ``[2001:db8::1]:80``.

    An IP address is written as such (IPv6 in brackets), ``unknown`` and an
    obfuscated ``_identifier`` are kept, and any other name (a Unix socket
    path, a host name) becomes ``unknown``.  ``port`` may be a number or an
    obfuscated ``_identifier``.
    """
    node = "unknown" if host is None else _host_node(host)
    if isinstance(port, int):
        port = str(port) if 0 <= port <= 65535 else None
    if port is not None and (port.isdigit() or _OBFUSCATED.fullmatch(port)):
        node += f":{port}"
    return node


# Cached: a proxy sees the same few client addresses (its own front proxies,
# a load balancer) again and again, and parsing one costs more than the rest
# of the header work.
@lru_cache(maxsize=1024)
def _host_node(host: str) -> str:
    try:
        address = ip_address(host)
    except ValueError:
        return host if host == "unknown" or _OBFUSCATED.fullmatch(host) else "unknown"
    return f"[{address}]" if isinstance(address, IPv6Address) else str(address)


def forwarded_element(
    *,
    for_: str | None = None,
    by: str | None = None,
    host: str | None = None,
    proto: str | None = None,
) -> str:
    """One ``Forwarded`` element, ``for=...;host=...;proto=...``, quoted where needed.

    ``for_`` and ``by`` are nodes as :func:`forwarded_node` writes them.
    """
    pairs = (("by", by), ("for", for_), ("host", host), ("proto", proto))
    return ";".join(f"{key}={_param(value)}" for key, value in pairs if value is not None)


def upstream_request_headers(
    scope: Scope,
    upstream_host: bytes,
    *,
    preserve_host: bool,
    add_forwarded: bool,
    extra_drop: frozenset[bytes] = frozenset(),
) -> RawHeaders:
    """The headers to send upstream for ``scope``: hop-by-hop out, ``Host`` set, trail added.

    ``Host`` is ``upstream_host`` unless ``preserve_host`` keeps the client's.
    """
    raw: Sequence[tuple[bytes, bytes]] = scope.get("headers", ())
    client_host: bytes | None = None
    trail_for: list[bytes] = []
    trail: list[bytes] = []
    kept = drop_hop_by_hop(raw, extra_drop)
    out: RawHeaders = []
    for name, value in kept:
        if name == b"host":
            client_host = value
        elif not add_forwarded:
            out.append((name, value))
        elif name == b"x-forwarded-for":
            trail_for.append(value)
        elif name == b"forwarded":
            trail.append(value)
        elif name not in CLIENT_WRITTEN:
            out.append((name, value))
    host = client_host if preserve_host and client_host is not None else upstream_host
    out.insert(0, (b"host", host))
    if add_forwarded:
        out.extend(_forwarding(scope, client_host, trail_for, trail))
    return out


def _forwarding(
    scope: Scope, client_host: bytes | None, trail_for: list[bytes], trail: list[bytes]
) -> RawHeaders:
    client = scope.get("client")
    server = scope.get("server")
    if client_host is not None and len(client_host) > _LONGEST_HOST:
        # Never valid (so it is left out either way), and never a cache key:
        # 1024 of them would pin what the server let through, 16 KiB or more each.
        client_host = None
    address, own, element = _own_forwarding(
        client[0] if client else None,
        client_host,
        scope.get("scheme", "http"),
        server[1] if server else None,
        scope.get("root_path", ""),
    )
    out: RawHeaders = []
    if address is not None:
        trail_for.append(address)
        out.append((b"x-forwarded-for", b", ".join(trail_for)))
        out.append((b"x-real-ip", address))
    elif trail_for:
        out.append((b"x-forwarded-for", b", ".join(trail_for)))
    out += own
    trail.append(element)
    out.append((b"forwarded", b", ".join(trail)))
    return out


# Cached: a proxy sees the same few clients, hosts and mounts again and
# again (its front proxies, a load balancer), and working these out costs
# more than the rest of the header work.  A miss costs what no cache would.
@lru_cache(maxsize=1024)
def _own_forwarding(
    client_ip: str | None,
    client_host: bytes | None,
    scheme: str,
    server_port: int | None,
    root_path: str,
) -> tuple[bytes | None, RawHeaders, bytes]:
    """This proxy's part: the client's address, the ``X-Forwarded-*`` it sets, its element."""
    proto = _WEB_SCHEME.get(scheme, scheme)
    host: str | None = None
    if client_host is not None:
        decoded = client_host.decode("latin-1")
        if valid_host(decoded):
            host = decoded
    own: RawHeaders = [(b"x-forwarded-proto", proto.encode("latin-1"))]
    if host is not None:
        own.append((b"x-forwarded-host", host.encode("latin-1")))
    if server_port is not None:
        own.append((b"x-forwarded-port", str(server_port).encode("ascii")))
    if root_path:
        own.append((b"x-forwarded-prefix", quote(root_path, safe=_PREFIX_SAFE).encode("ascii")))
    element = forwarded_element(for_=forwarded_node(client_ip), host=host, proto=proto)
    address = None if client_ip is None else client_ip.encode("latin-1")
    return address, own, element.encode("latin-1")


__all__ = [
    "CLIENT_WRITTEN",
    "HOP_BY_HOP",
    "PROTECTED",
    "RefusedRequest",
    "check_request_framing",
    "connection_listed",
    "drop_hop_by_hop",
    "forwarded_element",
    "forwarded_node",
    "upstream_request_headers",
]
