"""An incremental ``application/x-www-form-urlencoded`` parser (URL standard §5.1).

The body is split on ``&`` as it arrives; only the unfinished last pair is
kept between chunks (as a list of pieces, so a client sending one byte at a
time costs linear, not quadratic, work).  Each pair is split on its first
``=``; ``+`` becomes a space, percent-escapes are decoded to bytes (a ``%``
not followed by two hex digits stays as it is), and the bytes are decoded as
UTF-8 with U+FFFD for invalid sequences.  A ``charset`` parameter on the
content type is ignored, as the standard says.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote_to_bytes

from asgikit.exceptions import HTTPException
from asgikit.forms import FormData, FormLimits, UploadFile


def _decode(raw: bytes) -> str:
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        raw = unquote_to_bytes(raw)
    return raw.decode("utf-8", "replace")


class UrlencodedParser:
    """Feed it chunks; it returns the ``(name, value)`` pairs each one completes."""

    __slots__ = ("_count", "_limits", "_tail", "_tail_size")

    def __init__(self, limits: FormLimits) -> None:
        self._limits = limits
        self._tail: list[bytes] = []
        self._tail_size = 0
        self._count = 0

    def _too_large(self) -> HTTPException:
        limit = self._limits.max_part_size
        return HTTPException(413, f"Form field larger than {limit} bytes (max_part_size)")

    def _pairs(self, pieces: list[bytes]) -> list[tuple[str, str]]:
        pairs = []
        limit = self._limits.max_part_size
        for piece in pieces:
            if not piece:
                continue  # "a&&b": empty sequences are skipped
            if len(piece) > limit:
                raise self._too_large()
            self._count += 1
            if self._count > self._limits.max_fields:
                raise HTTPException(
                    400, f"Too many form fields: more than {self._limits.max_fields} (max_fields)"
                )
            name, _, value = piece.partition(b"=")
            pairs.append((_decode(name), _decode(value)))
        return pairs

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """The pairs completed by ``chunk``."""
        if b"&" not in chunk:
            self._tail.append(chunk)
            self._tail_size += len(chunk)
            if self._tail_size > self._limits.max_part_size:
                raise self._too_large()
            return []
        pieces = chunk.split(b"&")
        if self._tail:
            self._tail.append(pieces[0])
            pieces[0] = b"".join(self._tail)
        last = pieces.pop()
        if len(last) > self._limits.max_part_size:
            raise self._too_large()
        self._tail = [last]
        self._tail_size = len(last)
        return self._pairs(pieces)

    def close(self) -> list[tuple[str, str]]:
        """The last pair, once the body has ended."""
        last = b"".join(self._tail)
        self._tail = []
        self._tail_size = 0
        return self._pairs([last])


async def parse_urlencoded(body: AsyncIterator[bytes], limits: FormLimits) -> FormData:
    """Read ``body`` to its end as an urlencoded form."""
    parser = UrlencodedParser(limits)
    items: list[tuple[str, str | UploadFile]] = []
    async for chunk in body:
        items.extend(parser.feed(chunk))
    items.extend(parser.close())
    return FormData(items)


__all__ = ["UrlencodedParser", "parse_urlencoded"]
