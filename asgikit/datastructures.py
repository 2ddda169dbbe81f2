"""Immutable views of what a request carries: URL, headers, query, cookies, state.

Everything here is built lazily from ASGI scope parts and never re-parses a
string that was put together from several parts, so a Host header or a path
cannot move the authority of a URL.  Parsing follows the URL standard for
query strings and RFC 6265 §5.4 for the ``Cookie`` header as browsers send it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from ipaddress import IPv6Address
from typing import Any, NamedTuple, TypeVar, overload
from urllib.parse import SplitResult, parse_qsl, quote, urlencode, urlsplit

from asgikit.types import Scope

_T = TypeVar("_T")

#: Default cap on the number of ``name=value`` pairs in a query string.
MAX_QUERY_FIELDS = 1000

# RFC 3986 §3.2.2 reg-name / IPv4 characters, plus ':' for the port and the
# brackets of an IPv6 literal.  A Host header with anything else is ignored.
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:[]%")
# Characters kept as they are when a decoded path is encoded again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# A raw query string keeps its printable ASCII (escapes included); other bytes,
# and '#' which would start a fragment, are percent-encoded.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


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
        if not (rest == "" or (rest[0] == ":" and rest[1:].isdigit() and len(rest) <= 6)):
            return False
        try:
            # RFC 3986 §3.2.2: only an IPv6 address goes inside brackets.
            IPv6Address(host[1:end])
        except ValueError:
            return False
        return True
    name, _, port = host.partition(":")
    return (
        bool(name)
        and "[" not in name
        and "]" not in name
        and (not port or (port.isdigit() and len(port) <= 5))
    )


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
        host = ""
        for key, value in scope.get("headers", ()):
            if key == b"host":
                host = value.decode("latin-1")
                break
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
        return cls._from_parts(SplitResult(scheme, host, quote(path, safe=_PATH_SAFE), query, ""))

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
        return self.parts.scheme

    @property
    def netloc(self) -> str:
        return self.parts.netloc

    @property
    def path(self) -> str:
        return self.parts.path

    @property
    def query(self) -> str:
        return self.parts.query

    @property
    def fragment(self) -> str:
        return self.parts.fragment

    @property
    def hostname(self) -> str | None:
        return self.parts.hostname

    @property
    def port(self) -> int | None:
        try:
            return self.parts.port
        except ValueError:
            return None

    @property
    def is_secure(self) -> bool:
        return self.scheme in ("https", "wss")

    def replace(self, **parts: str) -> URL:
        """A copy with some of its parts (``scheme``, ``netloc``, ``path``...) changed."""
        return URL._from_parts(self.parts._replace(**parts))

    def include_query_params(self, **params: Any) -> URL:
        """A copy with ``params`` set in the query, replacing values of the same names."""
        query = QueryParams(self.query).multi_items()
        query = [(k, v) for k, v in query if k not in params]
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
        return f"URL({str(self)!r})"

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
    if root and _is_under(path, root):
        path = path[len(root.rstrip("/")) :]
        if not path.startswith("/"):
            path = "/" + path
    return path


def _is_under(path: str, root: str) -> bool:
    # "/apiary" is not under "/api": the prefix must end at a segment boundary.
    root = root.rstrip("/")
    return not root or path == root or path.startswith(root + "/")


class ImmutableMultiDict(Mapping[str, _T]):
    """A mapping where a key may have several values; ``[]`` and ``get`` give the first."""

    __slots__ = ("_dict", "_list")

    def __init__(self, items: Iterable[tuple[str, _T]] | Mapping[str, _T] = ()) -> None:
        pairs = list(items.items()) if isinstance(items, Mapping) else list(items)
        self._list: list[tuple[str, _T]] = pairs
        self._dict: dict[str, _T] = {}
        for key, value in reversed(pairs):
            self._dict[key] = value

    def getlist(self, key: str) -> list[_T]:
        """Every value for ``key``, in order."""
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, _T]]:
        """Every ``(key, value)`` pair, in order, repeated keys included."""
        return list(self._list)

    def __getitem__(self, key: str) -> _T:
        return self._dict[key]

    def __contains__(self, key: object) -> bool:
        return key in self._dict

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ImmutableMultiDict):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __hash__(self) -> int:
        raise TypeError(f"unhashable type: {type(self).__name__!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(ImmutableMultiDict[str]):
    """The query string as an immutable multi-dict of strings.

    Parsed as ``application/x-www-form-urlencoded`` (URL standard §5.1): ``+``
    is a space, bad percent-escapes stay as they are and bad UTF-8 becomes
    U+FFFD.  More than ``max_fields`` pairs raise ``ValueError``.
    """

    __slots__ = ()

    def __init__(
        self,
        query: str | bytes | Iterable[tuple[str, str]] | Mapping[str, str] = "",
        *,
        max_fields: int | None = MAX_QUERY_FIELDS,
    ) -> None:
        if isinstance(query, bytes):
            # Raw non-ASCII bytes are UTF-8 as the URL standard reads them.
            query = query.decode("utf-8", "replace")
        if isinstance(query, str):
            if max_fields is not None and query.count("&") + query.count(";") >= max_fields:
                # Count before parsing so a hostile string costs nothing.
                pairs = [p for p in query.split("&") if p]
                if len(pairs) > max_fields:
                    raise ValueError(f"more than {max_fields} query parameters")
            super().__init__(
                parse_qsl(query, keep_blank_values=True, encoding="utf-8", errors="replace")
            )
        else:
            super().__init__(query)

    def __str__(self) -> str:
        return urlencode(self._list)


class Headers(Mapping[str, str]):
    """Immutable, case-insensitive, multi-valued HTTP headers.

    Backed by the raw ASGI list of ``(name, value)`` byte pairs; names are
    looked up lower-cased, values are decoded as latin-1 (every byte maps to a
    character, so bytes a client sent can never raise here).
    """

    __slots__ = ("_index", "_raw")

    def __init__(
        self,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        *,
        raw: Sequence[tuple[bytes, bytes]] | None = None,
        scope: Scope | None = None,
    ) -> None:
        if raw is not None:
            self._raw: list[tuple[bytes, bytes]] = list(raw)
        elif scope is not None:
            self._raw = list(scope.get("headers", ()))
        elif headers is not None:
            items = headers.items() if isinstance(headers, Mapping) else headers
            self._raw = [(_name_bytes(k), _value_bytes(v)) for k, v in items]
        else:
            self._raw = []
        self._index: dict[str, str] | None = None

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The headers as the ASGI list of ``(lower-case name, value)`` bytes."""
        return self._raw

    def _lookup(self) -> dict[str, str]:
        index = self._index
        if index is None:
            index = {}
            for key, value in self._raw:
                name = key.decode("latin-1").lower()
                if name not in index:
                    index[name] = value.decode("latin-1")
            self._index = index
        return index

    def get(self, key: str, default: Any = None) -> Any:
        return self._lookup().get(key.lower(), default)

    def getlist(self, key: str) -> list[str]:
        """Every value of ``key``, in the order received."""
        name = _lookup_bytes(key)
        return [v.decode("latin-1") for k, v in self._raw if k.lower() == name]

    def __getitem__(self, key: str) -> str:
        return self._lookup()[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def multi_items(self) -> list[tuple[str, str]]:
        """Every ``(name, value)`` pair, repeated names included."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]

    def mutablecopy(self) -> MutableHeaders:
        """A ``MutableHeaders`` with the same content."""
        return MutableHeaders(raw=list(self._raw))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted((k.lower(), v) for k, v in self._raw) == sorted(
                (k.lower(), v) for k, v in other._raw
            )
        return NotImplemented

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'Headers'")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.multi_items()!r})"


class MutableHeaders(Headers):
    """Headers that can be changed; values with CR, LF or NUL are refused.

    Changes are made in place in the ``raw`` list, so a view sharing that list
    (a response's headers) sees them.
    """

    __slots__ = ()

    def __setitem__(self, key: str, value: str) -> None:
        name = _name_bytes(key)
        encoded = _value_bytes(value)
        self._raw[:] = [(k, v) for k, v in self._raw if k.lower() != name]
        self._raw.append((name, encoded))
        self._index = None

    def __delitem__(self, key: str) -> None:
        name = _lookup_bytes(key)
        kept = [(k, v) for k, v in self._raw if k.lower() != name]
        if len(kept) == len(self._raw):
            raise KeyError(key)
        self._raw[:] = kept
        self._index = None

    def append(self, key: str, value: str) -> None:
        """Add a value, keeping the ones already there (for ``Set-Cookie``, ``Vary``...)."""
        self._raw.append((_name_bytes(key), _value_bytes(value)))
        self._index = None

    def setdefault(self, key: str, value: str) -> str:
        existing: str | None = self.get(key)
        if existing is not None:
            return existing
        self.append(key, value)
        return value

    def update(self, other: Mapping[str, str] | Iterable[tuple[str, str]] = (), /) -> None:
        items = other.items() if isinstance(other, Mapping) else other
        for key, value in items:
            self[key] = value

    def pop(self, key: str, default: Any = None) -> Any:
        """Remove ``key`` and return its first value (or ``default``)."""
        value = self.get(key, default)
        if key in self:
            del self[key]
        return value

    def add_vary_header(self, value: str) -> None:
        """Add ``value`` to ``Vary`` unless it is already listed there."""
        existing = self.get("vary")
        if existing is None:
            self["vary"] = value
            return
        listed = {v.strip().lower() for v in existing.split(",")}
        if value.lower() not in listed and "*" not in listed:
            self["vary"] = f"{existing}, {value}"


def _lookup_bytes(key: str) -> bytes | None:
    # A name that is not latin-1 cannot be in the raw list: match nothing.
    try:
        return key.lower().encode("latin-1")
    except UnicodeEncodeError:
        return None


def _name_bytes(name: str) -> bytes:
    encoded = name.lower().encode("latin-1")
    if not encoded or not _TOKEN_BYTES.issuperset(encoded):
        raise ValueError(f"invalid header name: {name!r}")
    return encoded


def _value_bytes(value: str) -> bytes:
    encoded = value.encode("latin-1")
    if b"\r" in encoded or b"\n" in encoded or b"\0" in encoded:
        raise ValueError(f"header value contains CR, LF or NUL: {value!r}")
    return encoded


# RFC 9110 §5.6.2 tchar.
_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def validate_header(name: bytes, value: bytes) -> None:
    """Raise ``ValueError`` for a header that could split or smuggle a response."""
    if not name or not _TOKEN_BYTES.issuperset(name):
        raise ValueError(f"invalid header name: {name!r}")
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise ValueError(f"header value contains CR, LF or NUL: {value!r}")


def parse_cookie_header(header: str, *, max_cookies: int = 200) -> dict[str, str]:
    """Cookies from a ``Cookie`` header, as browsers actually send them.

    RFC 6265 §5.4 lists cookies ``name=value; name2=value2``.  Browsers also
    send names without ``=`` (taken as an empty name, as they do), quotes
    around values (removed) and bytes outside the RFC's grammar (kept).  When
    a name repeats, the first wins: §5.4 puts the most specific cookie first.
    """
    cookies: dict[str, str] = {}
    for count, chunk in enumerate(header.split(";")):
        if count >= max_cookies:
            break
        name, sep, value = chunk.partition("=")
        if not sep:
            name, value = "", name
        name = name.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
            value = value[1:-1]
        if (name or value) and name not in cookies:
            cookies[name] = value
    return cookies


class State:
    """Attribute access over a dict: ``request.state.db`` is ``scope["state"]["db"]``."""

    __slots__ = ("_state",)

    def __init__(self, state: dict[str, Any] | None = None) -> None:
        object.__setattr__(self, "_state", {} if state is None else state)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._state[name]
        except KeyError:
            raise AttributeError(f"no {name!r} in the state") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._state[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self._state[name]
        except KeyError:
            raise AttributeError(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._state

    @overload
    def get(self, name: str) -> Any: ...
    @overload
    def get(self, name: str, default: _T) -> Any | _T: ...
    def get(self, name: str, default: Any = None) -> Any:
        """The value of ``name``, or ``default``."""
        return self._state.get(name, default)

    def __repr__(self) -> str:
        return f"State({self._state!r})"


__all__ = [
    "URL",
    "Address",
    "Headers",
    "ImmutableMultiDict",
    "MutableHeaders",
    "QueryParams",
    "State",
    "full_path",
    "parse_cookie_header",
    "route_path",
    "valid_host",
    "validate_header",
]
