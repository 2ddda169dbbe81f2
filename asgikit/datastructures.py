"""Immutable views of what a request carries: URL, headers, query, cookies, state.

Everything here is built lazily from ASGI scope parts.  Query strings parse
by the URL standard (``application/x-www-form-urlencoded``), the ``Cookie``
header by RFC 6265 §5.4 as browsers send it, ``Accept-Encoding`` weights by
RFC 9110 §12.5.3.  ``URL`` lives in ``_url`` and
``Headers`` in ``_headers``; both are re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar, overload
from urllib.parse import urlencode

from asgikit._headers import Headers, MutableHeaders, validate_header
from asgikit._percent import MAX_QUERY_FIELDS, query_pairs
from asgikit._url import URL, Address, full_path, normalize_origin, route_path, valid_host

_T = TypeVar("_T")

#: Default cap on the number of ``Accept-Encoding`` members looked at.
MAX_ACCEPT_CODINGS = 32


class ImmutableMultiDict(Mapping[str, _T]):
    """A mapping where a key may have several values; ``[]`` and ``get`` give the first.

    Keys, values and items follow the input: each key where it first appears,
    with its first value (Werkzeug's choice; Starlette gives the last).  Two
    multi-dicts are equal when every key has the same values in the same
    order; the order between different keys does not count.
    """

    __slots__ = ("_dict", "_list")

    def __init__(
        self, items: ImmutableMultiDict[_T] | Iterable[tuple[str, _T]] | Mapping[str, _T] = ()
    ) -> None:
        if isinstance(items, ImmutableMultiDict):
            pairs = list(items._list)
        elif isinstance(items, Mapping):
            pairs = list(items.items())
        else:
            pairs = list(items)
        self._list: list[tuple[str, _T]] = pairs
        first: dict[str, _T] = {}
        for key, value in pairs:
            if key not in first:
                first[key] = value
        self._dict = first

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
            # Grouped by key rather than sorted: values need not be orderable
            # (two uploads under one key) nor hashable.
            return len(self._list) == len(other._list) and _grouped(self._list) == _grouped(
                other._list
            )
        return NotImplemented

    def __hash__(self) -> int:
        raise TypeError(f"unhashable type: {type(self).__name__!r}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


def _grouped(pairs: list[tuple[str, _T]]) -> dict[str, list[_T]]:
    groups: dict[str, list[_T]] = {}
    for key, value in pairs:
        groups.setdefault(key, []).append(value)
    return groups


class QueryParams(ImmutableMultiDict[str]):
    """The query string as an immutable multi-dict of strings.

    Parsed as ``application/x-www-form-urlencoded`` (URL standard §5.1): ``+``
    is a space, bad percent-escapes stay as they are and bad UTF-8 becomes
    U+FFFD; only ``&`` separates pairs.  Decoding runs in C (``_percent``),
    so no query string costs much more than its length in letters.  More
    than ``max_fields`` pairs raise ``ValueError``.
    """

    __slots__ = ()

    def __init__(
        self,
        query: str | bytes | Iterable[tuple[str, str]] | Mapping[str, str] = "",
        *,
        max_fields: int | None = MAX_QUERY_FIELDS,
    ) -> None:
        if isinstance(query, (str, bytes)):
            super().__init__(query_pairs(query, max_fields))
        else:
            super().__init__(query)

    def __str__(self) -> str:
        return urlencode(self._list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


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


def parse_accept_encoding(
    value: str, *, max_codings: int = MAX_ACCEPT_CODINGS
) -> dict[str, float]:
    """The q-value of each content coding an ``Accept-Encoding`` value names.

    RFC 9110 §12.5.3: ``coding [ ;q=qvalue ]``, names compared
    case-insensitively; ``x-gzip`` counts as ``gzip`` (§8.4.1.3).  A member
    whose q-value is malformed is ignored; a coding listed twice keeps its
    lower weight, so ``q=0`` anywhere means never.  Only the first
    ``max_codings`` members are read.  Never raises.
    """
    weights: dict[str, float] = {}
    for member in value.split(",", max_codings)[:max_codings]:
        coding, _, params = member.partition(";")
        coding = coding.strip(" \t").lower()
        if not coding:
            continue
        q: float | None = 1.0
        if params:
            for param in params.split(";"):
                key, _, number = param.partition("=")
                if key.strip(" \t").lower() == "q":
                    q = _qvalue(number.strip(" \t"))
        if q is None:
            continue
        if coding == "x-gzip":
            coding = "gzip"
        weights[coding] = min(q, weights.get(coding, q))
    return weights


def _qvalue(text: str) -> float | None:
    # RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
    whole, _, fraction = text.partition(".")
    if whole not in ("0", "1") or len(fraction) > 3:
        return None
    if fraction and not (fraction.isascii() and fraction.isdigit()):
        return None
    if whole == "1" and fraction.strip("0"):
        return None
    return float(text)


class State:
    """Attribute access over a dict: ``request.state.db`` is ``scope["state"]["db"]``.

    Item access works too (``state["db"]``), as do ``in``, ``len`` and
    iteration over the names.
    """

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

    def __getitem__(self, name: str) -> Any:
        return self._state[name]

    def __setitem__(self, name: str, value: Any) -> None:
        self._state[name] = value

    def __delitem__(self, name: str) -> None:
        del self._state[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._state)

    def __len__(self) -> int:
        return len(self._state)

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
    "MAX_ACCEPT_CODINGS",
    "MAX_QUERY_FIELDS",
    "URL",
    "Address",
    "Headers",
    "ImmutableMultiDict",
    "MutableHeaders",
    "QueryParams",
    "State",
    "full_path",
    "normalize_origin",
    "parse_accept_encoding",
    "parse_cookie_header",
    "route_path",
    "valid_host",
    "validate_header",
]
