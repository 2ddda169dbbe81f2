"""Conditional requests for files: validators and RFC 9110 §13 precondition evaluation.

A file's validators are a strong ``ETag`` built from its modification time
(nanoseconds) and size, and ``Last-Modified`` (whole seconds).  ``evaluate``
applies the preconditions in the order of RFC 9110 §13.2.2:

1. ``If-Match`` (strong comparison) fails -> 412;
2. otherwise, without ``If-Match``, ``If-Unmodified-Since`` fails -> 412;
3. ``If-None-Match`` (weak comparison) fails -> 304 for GET/HEAD, else 412;
4. otherwise, without ``If-None-Match``, for GET/HEAD, ``If-Modified-Since``
   fails -> 304;
5. ``If-Range`` (§13.1.5) decides whether a ``Range`` is honoured; see
   ``if_range_holds``.

An unparseable date is ignored, as §13.1.3/§13.1.4 require.  This module does
not decide *whether* preconditions apply (only to a 2xx answer, §13.2.1); the
caller does.
"""

from __future__ import annotations

import calendar
from email.utils import formatdate, parsedate_tz

# Longer dates are not dates; bounding the input bounds the parser's work.
_MAX_DATE_LENGTH = 64
_SAFE_METHODS = frozenset({"GET", "HEAD"})


class FileRequest:
    """The request headers file serving looks at, gathered in one pass over the scope."""

    __slots__ = (
        "accept_encoding",
        "if_match",
        "if_modified_since",
        "if_none_match",
        "if_range",
        "if_unmodified_since",
        "range",
    )

    def __init__(self) -> None:
        self.if_match: str | None = None
        self.if_none_match: str | None = None
        self.if_modified_since: str | None = None
        self.if_unmodified_since: str | None = None
        self.range: str | None = None
        self.if_range: str | None = None
        self.accept_encoding: str | None = None

    @classmethod
    def from_headers(cls, headers: list[tuple[bytes, bytes]]) -> FileRequest:
        """Read the relevant fields from raw ASGI headers (list fields are joined)."""
        request = cls()
        for name, value in headers:
            attr = _FIELDS.get(name)
            if attr is None:
                continue
            text = value.decode("latin-1")
            previous = getattr(request, attr)
            if previous is None:
                setattr(request, attr, text)
            elif attr in _LIST_FIELDS:
                setattr(request, attr, previous + ", " + text)
            else:
                # A singleton field sent twice has no meaning; poison it so
                # the parsers reject it (and the precondition is ignored).
                setattr(request, attr, "\0")
        return request

    def has_preconditions(self) -> bool:
        """Whether any of the four precondition fields was sent."""
        return (
            self.if_match is not None
            or self.if_none_match is not None
            or self.if_modified_since is not None
            or self.if_unmodified_since is not None
        )


_FIELDS = {
    b"if-match": "if_match",
    b"if-none-match": "if_none_match",
    b"if-modified-since": "if_modified_since",
    b"if-unmodified-since": "if_unmodified_since",
    b"range": "range",
    b"if-range": "if_range",
    b"accept-encoding": "accept_encoding",
}
_LIST_FIELDS = frozenset({"if_match", "if_none_match", "accept_encoding"})


def make_etag(size: int, mtime_ns: int, suffix: str = "") -> str:
    """A strong entity tag for a file of ``size`` bytes last modified at ``mtime_ns``."""
    return f'"{mtime_ns:x}-{size:x}{suffix}"'


def http_date(timestamp: float) -> str:
    """``timestamp`` as an IMF-fixdate (RFC 9110 §5.6.7)."""
    return formatdate(timestamp, usegmt=True)


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch for an HTTP-date in any of its three forms, or ``None``."""
    if len(value) > _MAX_DATE_LENGTH:
        return None
    try:
        parts = parsedate_tz(value)
        if parts is None:
            return None
        return calendar.timegm(parts[:6]) - (parts[9] or 0)
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def parse_etags(value: str) -> list[str] | None:
    """The entity tags in an ``If-Match``/``If-None-Match`` value; ``None`` means ``*``.

    Tags keep their ``W/`` prefix and quotes.  Malformed members are skipped
    (they can match nothing).  Linear in the length of ``value``.
    """
    if value.strip(" \t") == "*":
        return None
    tags: list[str] = []
    i, n = 0, len(value)
    while i < n:
        char = value[i]
        if char in " \t,":
            i += 1
            continue
        start = i
        if value.startswith("W/", i):
            i += 2
        if i < n and value[i] == '"':
            end = value.find('"', i + 1)
            if end != -1:
                tags.append(value[start : end + 1])
                i = end + 1
                continue
        # Not an entity-tag: skip to the next list member.
        comma = value.find(",", i)
        i = n if comma == -1 else comma + 1
    return tags


def _strong_match(tags: list[str] | None, etag: str) -> bool:
    # RFC 9110 §8.8.3.2: strong comparison: both strong and identical.
    return tags is None or (not etag.startswith("W/") and etag in tags)


def _weak_match(tags: list[str] | None, etag: str) -> bool:
    if tags is None:
        return True
    opaque = etag.removeprefix("W/")
    return any(tag.removeprefix("W/") == opaque for tag in tags)


def evaluate(method: str, request: FileRequest, etag: str, last_modified: int) -> int | None:
    """The status the preconditions call for (304 or 412), or ``None`` to go on.

    ``last_modified`` is in whole seconds, as ``Last-Modified`` carries it.
    """
    if request.if_match is not None:
        if not _strong_match(parse_etags(request.if_match), etag):
            return 412
    elif request.if_unmodified_since is not None:
        date = parse_http_date(request.if_unmodified_since)
        if date is not None and last_modified > date:
            return 412
    if request.if_none_match is not None:
        if _weak_match(parse_etags(request.if_none_match), etag):
            return 304 if method in _SAFE_METHODS else 412
    elif request.if_modified_since is not None and method in _SAFE_METHODS:
        date = parse_http_date(request.if_modified_since)
        if date is not None and last_modified <= date:
            return 304
    return None


def if_range_holds(value: str, etag: str, last_modified: int) -> bool:
    """Whether an ``If-Range`` value still names the current file (RFC 9110 §13.1.5).

    An entity tag must match strongly (a weak one never does); a date must
    equal ``Last-Modified`` exactly.  Anything else is false: send the whole file.
    """
    value = value.strip(" \t")
    if value.startswith(('"', "W/")):
        return value == etag and not etag.startswith("W/")
    date = parse_http_date(value)
    return date is not None and date == last_modified


__all__ = [
    "FileRequest",
    "evaluate",
    "http_date",
    "if_range_holds",
    "make_etag",
    "parse_etags",
    "parse_http_date",
]
