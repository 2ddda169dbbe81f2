"""``URL`` and the path rules of the ASGI scope.

A URL is built from the scope's parts and never by re-parsing a string put
together from several parts, so a Host header or a path cannot move the
authority (RFC 3986 §3.2; Starlette's 2026 "BadHost" advisory).  A Host
header that is not a valid ``host[:port]`` (RFC 9110 §7.2) is ignored in
favour of the server's address.
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import IPv6Address
from typing import Any, NamedTuple
from urllib.parse import SplitResult, quote, urlencode, urlsplit

from asgikit._percent import query_pairs
from asgikit.types import Scope

# RFC 3986 §3.2.2 reg-name / IPv4 characters, plus ':' for the port and the
# brackets of an IPv6 literal.  A Host header with anything else is ignored.
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:[]%")
# Characters kept as they are when a decoded path is encoded again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# A raw query string keeps its printable ASCII (escapes included); other bytes,
# and '#' which would start a fragment, are percent-encoded.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")
_ORIGIN_DEFAULT_PORTS = {"http": "80", "https": "443"}
_NETLOC_PIECES = ("username", "password", "hostname", "port")


def path_bytes(path: str) -> bytes:
    """A decoded ASGI path as UTF-8, lone surrogates included (never an error)."""
    try:
        # A server that decoded undecodable bytes with "surrogateescape" gets them back.
        return path.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return path.encode("utf-8", "surrogatepass")


class Address(NamedTuple):
    """A ``(host, port)`` pair for the client or the server."""

    host: str
    port: int | None


def valid_host(host: str) -> bool:
    """Whether ``host`` is a syntactically valid ``host[:port]`` (RFC 9110 §7.2)."""
    if not host or len(host) > 255 or not _HOST_CHARS.issuperset(host):
        return False
    if host[0] == "[":
        end = host.find("]")
        if end == -1:
            return False
        rest = host[end + 1 :]
        if rest and (rest[0] != ":" or not _valid_port(rest[1:] or "x")):
            return False
        try:
            # RFC 3986 §3.2.2: only an IPv6 address goes inside brackets.
            IPv6Address(host[1:end])
        except ValueError:
            return False
        return True
    name, colon, port = host.partition(":")
    if colon and not _valid_port(port or "x"):
        return False
    return bool(name) and "[" not in name and "]" not in name


def _valid_port(port: str) -> bool:
    # RFC 3986 §3.2.3: port = *DIGIT, leading zeros allowed; a TCP port is at
    # most 65535.  An empty port ("host:") is refused: no client sends one.
    # The caller bounds the length, so int() is cheap.
    return port.isdigit() and int(port) <= 65535


def host_header(scope: Scope) -> tuple[str, bool]:
    """The request's first ``Host`` header (``""`` when absent), and whether it came twice.

    Every reader of Host goes through here, so all agree on the first one;
    a layer that answers for Host refuses a request with two (RFC 9112 §3.2:
    "more than one Host header field" is answered 400).
    """
    found: str | None = None
    for key, value in scope.get("headers", ()):
        if len(key) == 4 and key.lower() == b"host":
            if found is not None:
                return found, True
            found = value.decode("latin-1")
    return found or "", False


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` lower-cased, the scheme's default port dropped.

    Two spellings of one origin (RFC 6454 §4) then compare equal as strings:
    ``HTTPS://Example.com:443/`` is ``https://example.com``.
    """
    origin = origin.strip().rstrip("/").lower()
    scheme, sep, rest = origin.partition("://")
    host, colon, port = rest.rpartition(":")
    # "]" in what follows the last colon: that colon was inside an IPv6 literal.
    if sep and colon and "]" not in port and _ORIGIN_DEFAULT_PORTS.get(scheme) == port:
        return f"{scheme}://{host}"
    return origin


class URL:
    """An immutable URL with lazy access to its parts.

    ``URL("https://example.com/a?b=1")`` parses a string (lazily: a malformed
    one raises ``ValueError`` when its parts are read); ``URL.from_scope``
    builds one from an ASGI scope part by part.
    """

    __slots__ = ("_parts", "_url")

    def __init__(self, url: str = "") -> None:
        self._url = url
        self._parts: SplitResult | None = None

    @classmethod
    def from_scope(cls, scope: Scope) -> URL:
        """The URL the client asked for, with the full path (``root_path`` included)."""
        scheme: str = scope.get("scheme") or ("ws" if scope.get("type") == "websocket" else "http")
        host = host_header(scope)[0]
        if not valid_host(host):
            server = scope.get("server")
            if server and server[1] is not None:
                default = 443 if scheme in ("https", "wss") else 80
                name = server[0]
                if ":" in name and not name.startswith("["):
                    name = f"[{name}]"
                host = name if server[1] == default else f"{name}:{server[1]}"
            elif server:
                host = server[0]
            else:
                host = "localhost"
        path = full_path(scope)
        if not path.startswith("/"):
            # With an authority the path must be empty or absolute (RFC 3986
            # §3.3), or its first segment would run into the port.
            path = "/" + path
        query = scope.get("query_string", b"")
        query = quote(query, safe=_QUERY_SAFE) if query else ""
        path = quote(path_bytes(path), safe=_PATH_SAFE)
        return cls._from_parts(SplitResult(scheme, host, path, query, ""))

    @classmethod
    def _from_parts(cls, parts: SplitResult) -> URL:
        url = cls.__new__(cls)
        url._parts = parts
        url._url = ""
        return url

    @property
    def parts(self) -> SplitResult:
        """The five parts of the URL, as ``urllib.parse.urlsplit`` gives them."""
        if self._parts is None:
            self._parts = urlsplit(self._url)
        return self._parts

    @property
    def scheme(self) -> str:
        """``http``, ``https``, ``ws`` or ``wss``."""
        return self.parts.scheme

    @property
    def netloc(self) -> str:
        """``host[:port]`` as it appears in the URL."""
        return self.parts.netloc

    @property
    def path(self) -> str:
        """The percent-encoded path."""
        return self.parts.path

    @property
    def query(self) -> str:
        """The query string, without ``?``."""
        return self.parts.query

    @property
    def fragment(self) -> str:
        """The fragment, without ``#`` (never sent by a client)."""
        return self.parts.fragment

    @property
    def hostname(self) -> str | None:
        """The host, lower-cased, without port or IPv6 brackets."""
        return self.parts.hostname

    @property
    def username(self) -> str | None:
        """The user name of the userinfo (``user:pass@``), or ``None``."""
        return self.parts.username

    @property
    def password(self) -> str | None:
        """The password of the userinfo, or ``None``; ``repr`` masks it."""
        return self.parts.password

    @property
    def port(self) -> int | None:
        """The explicit port, or ``None`` (also for a port out of range)."""
        try:
            return self.parts.port
        except ValueError:
            return None

    @property
    def is_secure(self) -> bool:
        """Whether the scheme is ``https`` or ``wss``."""
        return self.scheme in ("https", "wss")

    def replace(self, **parts: Any) -> URL:
        """A copy with some parts changed: ``scheme``, ``netloc``, ``path``, ``query``,
        ``fragment``, or the pieces of the netloc ``username``, ``password``,
        ``hostname`` and ``port`` (``None`` removes one).
        """
        pieces = {k: parts.pop(k) for k in _NETLOC_PIECES if k in parts}
        if pieces:
            if "netloc" in parts:
                raise TypeError("replace() takes netloc or its pieces, not both")
            parts["netloc"] = self._netloc_with(**pieces)
        return URL._from_parts(self.parts._replace(**parts))

    def _netloc_with(self, **pieces: Any) -> str:
        current = self.parts
        # The host as written, IPv6 brackets kept (``.hostname`` drops them).
        host = current.netloc.rpartition("@")[2]
        host = host[: host.find("]") + 1] if host.startswith("[") else host.partition(":")[0]
        try:
            port: Any = current.port
        except ValueError:
            port = None
        username = pieces.get("username", current.username)
        password = pieces.get("password", current.password)
        if "hostname" in pieces:
            host = pieces["hostname"]
            if ":" in host and not host.startswith("[") and host.count(":") > 1:
                host = f"[{host}]"  # a bare IPv6 address
        port = pieces.get("port", port)
        netloc = host
        if port is not None:
            netloc += f":{port}"
        if username is not None or password is not None:
            userinfo = username or ""
            if password is not None:
                userinfo += f":{password}"
            netloc = f"{userinfo}@{netloc}"
        return netloc

    def replace_query_params(self, **params: Any) -> URL:
        """A copy whose query is exactly ``params``."""
        return self.replace(query=urlencode([(k, str(v)) for k, v in params.items()]))

    def remove_query_params(self, keys: str | Sequence[str]) -> URL:
        """A copy without the query parameters named ``keys``."""
        drop = {keys} if isinstance(keys, str) else set(keys)
        query = [(k, v) for k, v in query_pairs(self.query, None) if k not in drop]
        return self.replace(query=urlencode(query))

    def include_query_params(self, **params: Any) -> URL:
        """A copy with ``params`` set in the query, replacing values of the same names."""
        query = [(k, v) for k, v in query_pairs(self.query, None) if k not in params]
        query.extend((k, str(v)) for k, v in params.items())
        return self.replace(query=urlencode(query))

    def __str__(self) -> str:
        if not self._url:
            p = self.parts
            if p.scheme:
                url = f"{p.scheme}://{p.netloc}{p.path}"
            elif p.netloc:
                url = f"//{p.netloc}{p.path}"
            else:
                url = p.path
            if p.query:
                url += "?" + p.query
            if p.fragment:
                url += "#" + p.fragment
            self._url = url
        return self._url

    def __repr__(self) -> str:
        text = str(self)
        if self.password is not None:
            text = str(self.replace(password="********"))
        return f"{type(self).__name__}({text!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (str, URL)):
            return str(self) == str(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(str(self))


def full_path(scope: Scope) -> str:
    """The request path including ``root_path``, whichever way the server set them.

    The current ASGI spec puts ``root_path`` inside ``path``; older servers give
    ``path`` relative to it.  Both are accepted.
    """
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root and not _is_under(path, root):
        return root.rstrip("/") + path
    return path


def route_path(scope: Scope) -> str:
    """The part of the path below ``root_path``: what a router matches against."""
    path: str = scope.get("path", "/")
    root: str = scope.get("root_path", "")
    if root:
        rest = _below_root(path, root)
        if rest is not None:
            return rest
    return path


def without_trailing_slash_root(scope: Scope) -> Scope:
    """A copy of ``scope`` whose ``root_path`` does not end in ``/``, ``path`` to match.

    ``uvicorn --root-path /x/`` gives ``root_path="/x/"`` and ``path="/x//users"``
    (root and request path joined): that is ``/x`` and ``/x/users``.
    """
    root: str = scope["root_path"]
    child = dict(scope)
    child["root_path"] = stripped = root.rstrip("/")
    path: str = scope.get("path", "/")
    rest = _below_root(path, root)
    if rest is not None:
        child["path"] = stripped + rest
    return child


def _below_root(path: str, root: str) -> str | None:
    # The path below root ("/" at least), or None when the server gave a path
    # relative to root.  A root ending in "/" has that slash joined to the
    # path's own: "/x//users" below "/x/" is "/users".
    if root.endswith("/") and path.startswith(root):
        rest = path[len(root) :]
        return rest if rest.startswith("/") else "/" + rest
    if _is_under(path, root):
        return path[len(root.rstrip("/")) :] or "/"
    return None


def _is_under(path: str, root: str) -> bool:
    # "/apiary" is not under "/api": the prefix must end at a segment boundary.
    root = root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")


__all__ = [
    "URL",
    "Address",
    "full_path",
    "host_header",
    "normalize_origin",
    "path_bytes",
    "route_path",
    "valid_host",
    "without_trailing_slash_root",
]
