"""``Headers`` and ``MutableHeaders``: case-insensitive, multi-valued, raw-backed.

Backed by the ASGI list of ``(name, value)`` byte pairs.  Values decode as
latin-1, so bytes a client sent can never raise; values set by the app are
refused when they hold CR, LF or NUL, and names outside RFC 9110 §5.6.2's
token grammar are refused, so no header can split a response.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from asgikit.types import Scope


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
        """The first value of ``key``, or ``default``."""
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
        """Set ``key`` to ``value``: in the place of its first field, the others dropped."""
        name = _name_bytes(key)
        encoded = _value_bytes(value)
        raw = self._raw
        self._index = None
        place = 0
        size = len(name)
        for field, _ in raw:
            # Lengths first: most names differ there, without lower-casing.
            if len(field) == size and (field == name or field.lower() == name):
                break
            place += 1
        else:
            raw.append((name, encoded))
            return
        raw[place] = (name, encoded)
        rest = raw[place + 1 :]
        if rest:
            raw[place + 1 :] = [(k, v) for k, v in rest if k.lower() != name]

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
        """The value of ``key``; set it to ``value`` first if it is absent."""
        existing: str | None = self.get(key)
        if existing is not None:
            return existing
        self.append(key, value)
        return value

    def update(self, other: Mapping[str, str] | Iterable[tuple[str, str]] = (), /) -> None:
        """Set each ``key: value`` of ``other``, replacing the fields of that name."""
        items = other.items() if isinstance(other, Mapping) else other
        for key, value in items:
            self[key] = value

    def __or__(self, other: Mapping[str, str]) -> MutableHeaders:
        """A copy with each ``key: value`` of ``other`` set, as ``update`` sets them."""
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = self.mutablecopy()
        merged.update(other)
        return merged

    def __ior__(self, other: Mapping[str, str]) -> MutableHeaders:
        if not isinstance(other, Mapping):
            return NotImplemented
        self.update(other)
        return self

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
    encoded = _CHECKED_NAMES.get(name)
    if encoded is None:
        encoded = name.lower().encode("latin-1")
        if not encoded or not _TOKEN_BYTES.issuperset(encoded):
            raise ValueError(f"invalid header name: {name!r}")
        if len(_CHECKED_NAMES) < _MAX_CHECKED_NAMES:
            _CHECKED_NAMES[name] = encoded
    return encoded


#: Names already checked, as given -> lower-case bytes: an app sets the same
#: few names over and over.  Bounded, so names made per request cannot grow it.
_CHECKED_NAMES: dict[str, bytes] = {}
_MAX_CHECKED_NAMES = 512


def _value_bytes(value: str) -> bytes:
    encoded = value.encode("latin-1")
    if _has_cr_lf_or_nul(encoded):
        raise ValueError(f"header value contains CR, LF or NUL: {value!r}")
    return encoded


def _has_cr_lf_or_nul(value: bytes) -> bool:
    # Ints, not b"\r": CPython tries a bytes operand of ``in`` as an int
    # first, and the TypeError it raises and clears costs ten times the
    # search (6.9k instructions for the three tests, 0.7k like this).
    return 13 in value or 10 in value or 0 in value


# RFC 9110 §5.6.2 tchar.
_TOKEN_BYTES = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


def validate_header(name: bytes, value: bytes) -> None:
    """Raise ``ValueError`` for a header that could split or smuggle a response."""
    if not name or not _TOKEN_BYTES.issuperset(name):
        raise ValueError(f"invalid header name: {name!r}")
    if _has_cr_lf_or_nul(value):
        raise ValueError(f"header value contains CR, LF or NUL: {value!r}")


def content_length_over(content_length: str, limit: int) -> bool:
    """Whether a ``Content-Length`` value declares more than ``limit`` bytes.

    Only ASCII digits count (``"²".isdigit()`` is true, ``int("²")`` fails),
    and thousands of them are never given to ``int()`` (a ``ValueError`` past
    ``sys.get_int_max_str_digits()``); anything else is no declaration at all.
    """
    digits = content_length.lstrip("0")
    if not (digits.isascii() and digits.isdigit()):
        return False
    return len(digits) > 18 or int(digits) > limit


__all__ = ["Headers", "MutableHeaders", "content_length_over", "validate_header"]
