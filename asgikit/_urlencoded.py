"""An incremental ``application/x-www-form-urlencoded`` parser (URL standard §5.1).

The body is split on ``&`` as it arrives.  Each pair is split on its first
``=``; ``+`` becomes a space, percent-escapes are decoded to bytes (a ``%``
not followed by two hex digits stays as it is), and the bytes are decoded as
UTF-8 with U+FFFD for invalid sequences.  A ``charset`` parameter on the
content type is ignored, as the standard says.

Cost is linear in the body with a small constant, whatever the body holds:
percent-decoding runs in C (see ``_percent``).  A pair that spans
several chunks is decoded as its bytes arrive, so finishing it costs no
more than its last chunk, and a large chunk is cut into ``SLICE``-sized
pieces with a checkpoint between them, so no field holds the event loop for
long.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio.lowlevel

from asgikit._percent import text as _text
from asgikit._percent import unescape as _unescape
from asgikit.exceptions import HTTPException
from asgikit.forms import FormData, FormLimits, UploadFile

#: Bytes of body decoded between two checkpoints (a yield to the event loop).
SLICE = 64 * 1024


class UrlencodedParser:
    """Feed it chunks; it returns the ``(name, value)`` pairs each one completes.

    The pair still open at the end of a chunk is kept decoded: ``_name`` once
    its ``=`` has come, ``_decoded`` the bytes of the part being read, and
    ``_carry`` up to two raw bytes (``%`` or ``%X``) that may begin an escape
    the next chunk finishes.
    """

    __slots__ = (
        "_carry",
        "_count",
        "_decoded",
        "_held",
        "_limits",
        "_name",
        "_open_size",
    )

    def __init__(self, limits: FormLimits) -> None:
        self._limits = limits
        self._count = 0
        self._held = 0  # bytes of the pairs kept so far (max_memory_size)
        self._name: bytes | None = None
        self._decoded: list[bytes] = []
        self._carry = b""
        self._open_size = 0  # raw bytes of the open pair (max_part_size)

    def _too_large(self) -> HTTPException:
        limit = self._limits.max_part_size
        return HTTPException(413, f"Form field larger than {limit} bytes (max_part_size)")

    def _keep(self, size: int) -> None:
        """Count a pair of ``size`` raw bytes against the limits before keeping it."""
        limits = self._limits
        if size > limits.max_part_size:
            raise self._too_large()
        self._count += 1
        if self._count > limits.max_fields:
            raise HTTPException(
                400, f"Too many form fields: more than {limits.max_fields} (max_fields)"
            )
        self._held += size
        if self._held > limits.max_memory_size:
            raise HTTPException(
                413,
                f"Form fields larger than {limits.max_memory_size} bytes in all (max_memory_size)",
            )

    def _pair(self, piece: bytes) -> tuple[str, str]:
        """A pair that is whole in ``piece``."""
        self._keep(len(piece))
        name, _, value = piece.partition(b"=")
        return _text(name), _text(value)

    def _extend(self, data: bytes) -> None:
        """Add raw bytes to the open pair, decoding all but a possible escape's start."""
        self._open_size += len(data)
        if self._open_size > self._limits.max_part_size:
            raise self._too_large()
        if self._name is None:
            name, eq, data = data.partition(b"=")
            self._append(name)
            if not eq:
                return
            self._name = self._flush()
        self._append(data)

    def _append(self, data: bytes) -> None:
        data = self._carry + data if self._carry else data
        # An escape starting in the last two bytes may end in the next chunk;
        # no escape can cross the first "%" there, since "%" is not a hex digit.
        cut = data.find(b"%", max(0, len(data) - 2))
        if cut < 0:
            cut = len(data)
        self._carry = data[cut:]
        if cut:
            self._decoded.append(_unescape(data[:cut]))

    def _flush(self) -> bytes:
        """The decoded bytes of the part being read; starts the next part."""
        if self._carry:
            self._decoded.append(_unescape(self._carry))
            self._carry = b""
        decoded = b"".join(self._decoded)
        self._decoded = []
        return decoded

    def _close_open(self) -> tuple[str, str] | None:
        """The open pair, complete now, or ``None`` when it is empty."""
        size = self._open_size
        if self._name is None:
            name, value = self._flush(), b""
        else:
            name, value = self._name, self._flush()
        self._name = None
        self._open_size = 0
        if not size:
            return None  # "a&&b": empty sequences are skipped
        self._keep(size)
        return name.decode("utf-8", "replace"), value.decode("utf-8", "replace")

    def feed(self, chunk: bytes) -> list[tuple[str, str]]:
        """The pairs completed by ``chunk``."""
        if (
            38 not in chunk
        ):  # "&"; an int: a bytes operand of `in` costs a TypeError inside CPython
            self._extend(chunk)
            return []
        pieces = chunk.split(b"&")
        pairs = []
        first = pieces[0]
        if self._open_size:
            self._extend(first)
            pair = self._close_open()
            if pair is not None:
                pairs.append(pair)
        elif first:
            pairs.append(self._pair(first))
        for piece in pieces[1:-1]:
            if piece:
                pairs.append(self._pair(piece))
        self._extend(pieces[-1])
        return pairs

    def close(self) -> list[tuple[str, str]]:
        """The last pair, once the body has ended."""
        pair = self._close_open()
        return [] if pair is None else [pair]


async def parse_urlencoded(body: AsyncIterator[bytes], limits: FormLimits) -> FormData:
    """Read ``body`` to its end as an urlencoded form."""
    parser = UrlencodedParser(limits)
    items: list[tuple[str, str | UploadFile]] = []
    async for chunk in body:
        if len(chunk) <= SLICE:
            items.extend(parser.feed(chunk))
            continue
        for start in range(0, len(chunk), SLICE):
            if start:
                await anyio.lowlevel.checkpoint()
            items.extend(parser.feed(chunk[start : start + SLICE]))
    items.extend(parser.close())
    return FormData(items)


__all__ = ["SLICE", "UrlencodedParser", "parse_urlencoded"]
