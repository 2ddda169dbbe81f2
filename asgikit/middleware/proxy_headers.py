"""Believe what trusted proxies say about the client: ``Forwarded`` and ``X-Forwarded-*``.

Only when the connection comes from a trusted peer (``trusted_hosts``:
addresses and CIDR ranges, parsed once) are the headers read.  RFC 7239
``Forwarded`` is used when present, otherwise ``X-Forwarded-For``,
``-Proto``, ``-Host`` and ``-Port``.  Each proxy appends the address it
received the request from, so the list is walked from the right: trusted
hops are skipped and the first untrusted one is the client (RFC 7239 §7.4;
left-most entries could be anything a client wrote).  From that hop come
``scope["client"]``, ``scope["scheme"]`` (``https`` → ``wss`` for a
WebSocket) and the ``Host`` header.

A hop that is ``unknown``, obfuscated (RFC 7239 §6.3) or malformed gives
``scope["client"] = None`` — never the proxy's own address, which an app
might trust.  A malformed proto or host is ignored.  The headers themselves
are left in the scope as they came.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import NamedTuple

from asgikit.composition import middleware
from asgikit.datastructures import valid_host
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.types import ASGIApp, Receive, Scope, Send

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_HOPS = 64  # right-most entries looked at; a longer chain is cut on the left
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LENIENT_TOKEN = _TOKEN | frozenset(":[]")
_WS_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}


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


def parse_node(value: str) -> tuple[str, int] | None:
    """An RFC 7239 §6 node (``1.2.3.4``, ``"[2001:db8::1]:80"``, bare IPv6) as ``(ip, port)``.

    ``None`` for ``unknown``, obfuscated identifiers and anything malformed.
    The port is 0 when absent or obfuscated.
    """
    value = value.strip()
    port = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host = value
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    # isascii(): "²".isdigit() is true, but int("²") fails.
    if port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535:
        return (str(address), int(port))
    if port and not port.startswith("_"):
        return None
    return (str(address), 0)


def _split(text: str, separator: str) -> list[str] | None:
    """``text`` split at ``separator`` outside quoted strings; ``None`` if a quote is open."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:i])
            start = i + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def parse_forwarded(header: str) -> list[dict[str, str] | None]:
    """The elements of a ``Forwarded`` header (RFC 7239 §4), left to right.

    Each element maps lower-cased parameter names to values (quotes and
    escapes removed); a malformed or empty element is ``None``, and so is a
    header with an unbalanced quote (as one element).  Only the right-most
    64 elements are kept.  Never raises.
    """
    elements = _split(header, ",")
    if elements is None:
        return [None]
    return [_parse_element(element) for element in elements[-_MAX_HOPS:]]


def _parse_element(element: str) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for pair in _split(element, ";") or ():
        pair = pair.strip()
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        name = name.strip().lower()
        value = value.strip()
        # §4: each parameter at most once per element.
        if not eq or not name or not _TOKEN.issuperset(name) or name in params:
            return None
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"'):
                return None
            value = _unquote(value[1:-1])
        # Unquoted "1.2.3.4:80" and "[::1]" break the grammar but are common.
        elif not value or not _LENIENT_TOKEN.issuperset(value):
            return None
        params[name] = value
    return params or None


def _unquote(inner: str) -> str:
    # RFC 9110 §5.6.4: a backslash takes the next character as it is.
    out: list[str] = []
    escaped = False
    for char in inner:
        if char == "\\" and not escaped:
            escaped = True
            continue
        out.append(char)
        escaped = False
    return "".join(out)


@middleware
def proxy_headers(
    app: ASGIApp,
    *,
    trusted_hosts: str | Sequence[str] = "127.0.0.1",
    exclude: Exclude = None,
) -> ASGIApp:
    """Set client, scheme and host from forwarding headers sent by ``trusted_hosts``.

    ``trusted_hosts`` is a list (or a comma-separated string) of addresses
    and CIDR ranges (``"10.0.0.0/8"``, ``"::1"``); ``"*"`` trusts every peer
    (only when nothing else can reach the server), and ``"unix:"`` trusts a
    connection without a client address (a Unix socket).  Invalid entries
    raise ``ValueError`` here.
    """
    return _ProxyHeaders(app, trusted_hosts=trusted_hosts, exclude=exclude)


class _ProxyHeaders:
    def __init__(
        self, app: ASGIApp, *, trusted_hosts: str | Sequence[str], exclude: Exclude
    ) -> None:
        entries = trusted_hosts.split(",") if isinstance(trusted_hosts, str) else trusted_hosts
        self.app = app
        self.excluded = compile_exclude(exclude)
        self.always = False
        self.unix = False
        self.addresses: set[str] = set()
        self.networks: list[IPNetwork] = []
        for raw_entry in entries:
            entry = raw_entry.strip()
            if entry == "*":
                self.always = True
            elif entry == "unix:":
                self.unix = True
            elif "/" in entry:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            elif entry:
                self.addresses.add(str(ipaddress.ip_address(entry.strip("[]"))))

    def trusted(self, host: str) -> bool:
        if self.always or host in self.addresses:
            return True
        if not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        peer_trusted = self.always or (self.unix if not client else self.trusted(client[0]))
        if not peer_trusted or (self.excluded is not None and self.excluded(scope)):
            await self.app(scope, receive, send)
            return
        forwarded: list[bytes] = []
        x_for: list[bytes] = []
        x_proto: list[bytes] = []
        x_host: list[bytes] = []
        x_port: list[bytes] = []
        lists = {
            b"forwarded": forwarded,
            b"x-forwarded-for": x_for,
            b"x-forwarded-proto": x_proto,
            b"x-forwarded-host": x_host,
            b"x-forwarded-port": x_port,
        }
        for name, value in scope["headers"]:
            found = lists.get(name)
            if found is not None:
                found.append(value)
        if forwarded:
            hop = self._from_forwarded(b",".join(forwarded).decode("latin-1"))
        elif x_for or x_proto or x_host or x_port:
            hop = self._from_x_forwarded(x_for, x_proto, x_host, x_port)
        else:
            await self.app(scope, receive, send)
            return
        await self.app(self._apply(scope, hop), receive, send)

    def _walk(self, nodes: list[tuple[str, int] | None]) -> int:
        """Index of the right-most untrusted hop (the left-most if all are trusted)."""
        index = len(nodes) - 1
        while index > 0:
            node = nodes[index]
            if node is None or not self.trusted(node[0]):
                break
            index -= 1
        return index

    def _from_forwarded(self, header: str) -> Hop:
        elements = parse_forwarded(header)
        if not any(e is None or "for" in e for e in elements):
            # Only proto/host given: they come from the nearest proxy.
            last = elements[-1] or {}
            return Hop(False, None, last.get("proto"), last.get("host"), None)
        nodes = [parse_node(e["for"]) if e and "for" in e else None for e in elements]
        index = self._walk(nodes)
        element = elements[index]
        if element is None:
            return Hop(True, None, None, None, None)
        return Hop(True, nodes[index], element.get("proto"), element.get("host"), None)

    def _from_x_forwarded(
        self, x_for: list[bytes], x_proto: list[bytes], x_host: list[bytes], x_port: list[bytes]
    ) -> Hop:
        def values(raw: list[bytes]) -> list[str]:
            joined = b",".join(raw).decode("latin-1")
            return [v.strip() for v in joined.split(",")][-_MAX_HOPS:]

        from_right = 0
        client = None
        if x_for:
            nodes = [parse_node(v) for v in values(x_for)]
            index = self._walk(nodes)
            from_right = len(nodes) - 1 - index
            client = nodes[index]

        def pick(raw: list[bytes]) -> str | None:
            # The value of the same hop; a shorter list (one value set by
            # the nearest proxy, usually) gives its left-most value.
            if not raw:
                return None
            listed = values(raw)
            return listed[max(len(listed) - 1 - from_right, 0)] or None

        return Hop(bool(x_for), client, pick(x_proto), pick(x_host), pick(x_port))

    def _apply(self, scope: Scope, hop: Hop) -> Scope:
        scope = dict(scope)
        if hop.has_client:
            scope["client"] = hop.client
        if hop.proto is not None:
            schemes = _WS_SCHEMES if scope["type"] == "websocket" else _HTTP_SCHEMES
            scheme = schemes.get(hop.proto.lower())
            if scheme is not None:
                scope["scheme"] = scheme
        host = hop.host if hop.host is not None and valid_host(hop.host) else None
        port = hop.port if hop.port and hop.port.isdigit() and len(hop.port) <= 5 else None
        if port is not None:
            if host is None:
                host = next((v for k, v in scope["headers"] if k == b"host"), b"").decode(
                    "latin-1"
                )
            host = _with_port(host, port) if valid_host(host) else None
        if host is not None:
            headers = [(k, v) for k, v in scope["headers"] if k != b"host"]
            headers.append((b"host", host.encode("latin-1")))
            scope["headers"] = headers
        return scope


def _with_port(host: str, port: str) -> str:
    name = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
    return f"{name}:{port}"


__all__ = ["Hop", "IPNetwork", "parse_forwarded", "parse_node", "proxy_headers"]
