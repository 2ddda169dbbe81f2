"""Decoding ``application/x-www-form-urlencoded`` bytes (URL standard §5.1), in C.

``+`` is a space and ``%XX`` (two hex digits) its byte; a ``%`` that starts
no such escape stays as it is.  One regular-expression split finds the valid
escapes and one dictionary lookup per escape, mapped in C, gives its byte:
no Python loop runs per byte and nothing raises per escape, so a body or a
query string of ``%`` costs about what the same length of letters costs
(``urllib.parse.unquote_to_bytes`` raised and caught an exception for each
bad ``%``, about a second of CPU per MiB).  Query strings and urlencoded
bodies both decode here.
"""

from __future__ import annotations

import re

_HEX_DIGITS = "0123456789abcdefABCDEF"
_BYTE_OF_ESCAPE = {
    (high + low).encode(): bytes([int(high + low, 16)])
    for high in _HEX_DIGITS
    for low in _HEX_DIGITS
}
_ESCAPE = re.compile(rb"%([0-9A-Fa-f]{2})")


_PLUS, _PERCENT = ord("+"), ord("%")


def unescape(raw: bytes) -> bytes:
    """``raw`` with ``+`` as a space and each ``%XX`` as its byte; other ``%`` stay."""
    # ord(), not b"+": a bytes operand of ``in`` costs CPython a raised and
    # cleared TypeError (it is tried as an int first), ten times the search.
    if _PLUS in raw:
        raw = raw.replace(b"+", b" ")
    if _PERCENT not in raw:
        return raw
    # split() with a group alternates text and each escape's two hex digits.
    parts = _ESCAPE.split(raw)
    if len(parts) == 1:
        return raw
    parts[1::2] = map(_BYTE_OF_ESCAPE.__getitem__, parts[1::2])
    return b"".join(parts)


def text(raw: bytes) -> str:
    """``raw`` unescaped and decoded as UTF-8, U+FFFD for invalid sequences."""
    return unescape(raw).decode("utf-8", "replace")


def pairs(raw: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of a whole urlencoded string; empty pieces skipped."""
    out = []
    for piece in raw.split(b"&"):
        if piece:
            name, _, value = piece.partition(b"=")
            out.append((text(name), text(value)))
    return out


#: Default cap on the number of ``name=value`` pairs in a query string.
MAX_QUERY_FIELDS = 1000


def query_pairs(
    query: str | bytes, max_fields: int | None = MAX_QUERY_FIELDS
) -> list[tuple[str, str]]:
    """A query string's ``(name, value)`` pairs; more than ``max_fields`` raise ``ValueError``.

    Percent-escapes and raw characters are both UTF-8 bytes, decoded
    together, as the URL standard reads them.
    """
    if isinstance(query, str):
        query = query.encode("utf-8", "surrogatepass")
    if max_fields is not None and query.count(b"&") >= max_fields:
        # Count before parsing so a hostile string costs nothing.
        pieces = [p for p in query.split(b"&") if p]
        if len(pieces) > max_fields:
            raise ValueError(f"more than {max_fields} query parameters")
    return pairs(query)


__all__ = ["MAX_QUERY_FIELDS", "pairs", "query_pairs", "text", "unescape"]
