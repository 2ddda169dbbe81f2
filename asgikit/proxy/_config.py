"""What a reverse proxy is told once, when it is built: the upstream and its options."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_from_bytes, unquote, urlsplit

from asgikit._httpx import httpx
from asgikit._url import path_bytes
from asgikit.datastructures import route_path
from asgikit.types import Scope

# Characters a decoded path keeps when it is percent-encoded again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# Printable ASCII but '#', which would end the target (RFC 3986 §3.5).
_ASCII_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")
_PRINTABLE = frozenset(_ASCII_SAFE)
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_WEB_TO_WS = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_WS_TO_WEB = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass(frozen=True)
class Upstream:
    """An upstream base URL taken apart once: scheme, host, port and base path."""

    scheme: str  # "http" or "https"
    host: str  # without brackets
    port: int
    base_path: str  # no trailing slash; "" for the root
    host_header: bytes  # the ``Host`` value for requests to this upstream
    origin: tuple[bytes, bytes, int]  # scheme, host and port as httpx spells them

    @classmethod
    def parse(cls, url: str) -> Upstream:
        """Parse ``http(s)://host[:port][/base]`` (``ws``/``wss`` are accepted as aliases)."""
        parts = urlsplit(url)
        scheme = _WS_TO_WEB.get(parts.scheme.lower())
        if scheme is None or not parts.hostname:
            raise ValueError(f"upstream must be an http(s):// or ws(s):// URL, not {url!r}")
        if parts.query or parts.fragment:
            raise ValueError("the upstream URL cannot have a query or a fragment")
        port = parts.port or _DEFAULT_PORTS[scheme]
        netloc = parts.netloc.rpartition("@")[2]
        host_header = netloc.encode("idna" if not netloc.isascii() else "ascii")
        parsed = httpx.URL(f"{scheme}://{host_header.decode('ascii')}/")
        return cls(
            scheme=scheme,
            host=parts.hostname,
            port=port,
            base_path=parts.path.rstrip("/"),
            host_header=host_header,
            origin=(parsed.raw_scheme, parsed.raw_host, parsed.port or port),
        )

    @property
    def websocket_scheme(self) -> str:
        """``ws`` or ``wss``, matching the upstream's TLS."""
        return _WEB_TO_WS[self.scheme]


@dataclass(frozen=True)
class ProxyOptions:
    """The options of one ``reverse_proxy``, shared by its HTTP and WebSocket halves."""

    upstream: Upstream
    timeout: float | None
    connect_timeout: float | None
    deadline: float | None
    body_timeout: float | None
    rewrite_path: Callable[[str], str] | None
    preserve_host: bool
    add_forwarded: bool
    websocket_max_size: int | None
    verify: Any = True  # TLS to a wss upstream, as httpx takes it (the HTTP client has its own)

    def target(self, scope: Scope) -> str:
        """The upstream request target for ``scope``: base path, path, ``?query``.

        A path with a ``.`` or ``..`` segment raises ``UnsafeTarget``:
        forwarded, it would be resolved against the upstream's base path
        (RFC 3986 §5.2.4) and could leave it.  See :func:`climbs` for the
        spellings servers read as a dot segment.
        """
        decoded = route_path(scope)
        if climbs(decoded):
            raise UnsafeTarget(f"dot segment in {decoded!r}")
        path = raw_path_below_root(scope)
        if self.rewrite_path is not None:
            path = self.rewrite_path(path)
        target = self.upstream.base_path + _ascii_safe(path)
        query: bytes = scope.get("query_string", b"")
        if query:
            target += "?" + _ascii_safe(query.decode("latin-1"))
        return target


class UnsafeTarget(ValueError):
    """The request path has a dot segment that could climb out of the upstream's base path."""


_DOT_SEGMENTS = frozenset({".", ".."})
_SEPARATORS = re.compile(r"[/\\]")


def climbs(decoded: str) -> bool:
    """Whether a decoded path has a segment some server reads as ``.`` or ``..``.

    Besides ``/../``: a backslash separates segments on Windows servers and
    in many URL parsers (``..\\``, sent as ``..%5c``); Tomcat and other Java
    servers drop a ``;parameter`` from a segment (``..;/``); and a lenient
    upstream decodes once more (``%252e%252e`` arrives as ``%2e%2e``).
    """
    if "%" in decoded:
        texts: tuple[str, ...] = (decoded, unquote(decoded))
    elif "." in decoded:
        texts = (decoded,)
    else:
        return False  # the common case, decided without a split
    for text in texts:
        for segment in _SEPARATORS.split(text):
            if segment.partition(";")[0] in _DOT_SEGMENTS:
                return True
    return False


def _ascii_safe(text: str) -> str:
    # Bytes a lenient server let through (non-ASCII, spaces, controls) are
    # percent-encoded; escapes already there and everything else are kept.
    if text.isascii() and _PRINTABLE.issuperset(text):
        return text
    return quote_from_bytes(text.encode("latin-1"), safe=_ASCII_SAFE)


def raw_path_below_root(scope: Scope) -> str:
    """The path below ``root_path``, percent-encoded as the client sent it.

    The client's encoding (``raw_path``) is kept when it decodes to the same
    path as ``scope["path"]``; when it does not (something rewrote ``path``),
    the decoded path is encoded again.
    """
    path = route_path(scope)
    raw: bytes | None = scope.get("raw_path")
    if raw:
        text = raw.decode("latin-1").partition("?")[0]
        candidate = _strip_root(text, scope.get("root_path", ""))
        if candidate is not None and unquote(candidate) == path:
            return candidate
    return quote(path_bytes(path), safe=_PATH_SAFE)


def _strip_root(raw: str, root: str) -> str | None:
    root = root.rstrip("/")
    if not root:
        return raw or "/"
    # The root is decoded and the raw path is not: try each '/' of the raw
    # path until the decoded prefix matches, stopping once it is too long.
    index = raw.find("/", 1)
    while True:
        end = len(raw) if index == -1 else index
        prefix = unquote(raw[:end])
        if prefix == root:
            return raw[end:] or "/"
        if len(prefix) >= len(root) or index == -1:
            return None
        index = raw.find("/", index + 1)


__all__ = ["ProxyOptions", "UnsafeTarget", "Upstream", "climbs", "raw_path_below_root"]
