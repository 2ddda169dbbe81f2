"""Byte ranges (RFC 9110 §14): parsing ``Range`` and framing ``multipart/byteranges``.

``parse_range`` reads a ``Range`` value against a representation of ``size``
bytes and answers one of three things:

- ``None``: ignore the header and send the whole file (200).  That is the
  answer for a syntactically invalid value, for a unit other than ``bytes``
  (§14.2), and for a request that still names more than ``max_ranges``
  separate ranges after coalescing (§14.2 lets a server ignore those);
- ``[]``: nothing satisfiable (416 with ``Content-Range: bytes */size``);
- a sorted list of ``(start, stop)`` half-open intervals, with overlapping and
  adjacent ranges merged and ranges past the end clipped.

The work is linear in the header length (plus a sort of the ranges), so a
header with thousands of parts costs milliseconds; numbers longer than 18
digits are not converted (they are past the end of any file anyway).

``Multipart`` lays out a ``multipart/byteranges`` body (RFC 9110 §14.6) and
knows its exact length before a byte is read.
"""

from __future__ import annotations

#: Separate ranges accepted after coalescing; beyond that the header is ignored.
MAX_RANGES = 100

# Past any real file size, and still cheap to compare.
_HUGE = 10**18
_MAX_DIGITS = 18


def _number(text: str) -> int | None:
    if not text or not text.isascii() or not text.isdigit():
        return None
    return _HUGE if len(text) > _MAX_DIGITS else int(text)


def parse_range(
    value: str, size: int, *, max_ranges: int = MAX_RANGES
) -> list[tuple[int, int]] | None:
    """The ranges ``value`` asks for in a ``size``-byte file (see the module docs)."""
    unit, equals, spec = value.partition("=")
    if not equals or unit.lower() != "bytes":
        return None
    ranges: list[tuple[int, int]] = []
    members = 0
    suffix_of_empty = False
    for part in spec.split(","):
        part = part.strip(" \t")
        if not part:
            # §5.6.1: recipients ignore empty list members.
            continue
        members += 1
        first, dash, last = part.partition("-")
        if not dash:
            return None
        if first:
            start = _number(first)
            if start is None:
                return None
            if last:
                end = _number(last)
                # §14.1.1: last-pos below first-pos makes the whole set invalid.
                if end is None or end < start:
                    return None
                stop = min(end + 1, size)
            else:
                stop = size
            if start < size:
                ranges.append((start, stop))
        else:
            length = _number(last)
            if length is None:
                return None
            if length > 0:
                if size == 0:
                    suffix_of_empty = True
                else:
                    ranges.append((max(size - length, 0), size))
    if not members:
        return None
    if not ranges:
        # §14.1.1: for an empty representation only a non-zero suffix range
        # is satisfiable; it selects all zero bytes, so send the (empty) 200.
        return None if suffix_of_empty else []
    return _coalesce(ranges, max_ranges)


def _coalesce(ranges: list[tuple[int, int]], max_ranges: int) -> list[tuple[int, int]] | None:
    ranges.sort()
    merged = [ranges[0]]
    for start, stop in ranges[1:]:
        last_start, last_stop = merged[-1]
        if start <= last_stop:
            if stop > last_stop:
                merged[-1] = (last_start, stop)
        else:
            merged.append((start, stop))
            if len(merged) > max_ranges:
                return None
    return merged


def content_range(start: int, stop: int, size: int) -> str:
    """A ``Content-Range`` value for the half-open interval ``[start, stop)``."""
    return f"bytes {start}-{stop - 1}/{size}"


class Multipart:
    """The layout of a ``multipart/byteranges`` body for ``ranges`` of a ``size``-byte file.

    ``parts`` pairs each range with the part header that precedes its bytes;
    ``trailer`` closes the body; ``content_length`` is the exact total.
    """

    __slots__ = ("boundary", "content_length", "content_type", "parts", "trailer")

    def __init__(
        self,
        ranges: list[tuple[int, int]],
        size: int,
        media_type: str | None,
        boundary: str,
    ) -> None:
        self.boundary = boundary
        self.content_type = f"multipart/byteranges; boundary={boundary}"
        type_line = f"content-type: {media_type}\r\n" if media_type else ""
        self.parts: list[tuple[bytes, int, int]] = []
        total = 0
        for index, (start, stop) in enumerate(ranges):
            # The CRLF before each boundary belongs to the delimiter (RFC 2046
            # §5.1.1); the first part has nothing before it to end.
            lead = "" if index == 0 else "\r\n"
            header = (
                f"{lead}--{boundary}\r\n{type_line}"
                f"content-range: {content_range(start, stop, size)}\r\n\r\n"
            ).encode("latin-1")
            self.parts.append((header, start, stop))
            total += len(header) + stop - start
        self.trailer = f"\r\n--{boundary}--\r\n".encode("latin-1")
        self.content_length = total + len(self.trailer)


__all__ = ["MAX_RANGES", "Multipart", "content_range", "parse_range"]
