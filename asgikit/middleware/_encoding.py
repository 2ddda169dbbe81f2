"""Content codings for ``compress``: choosing one, and the encoders behind it.

``select_encoding`` negotiates by ``Accept-Encoding`` (RFC 9110 §12.5.3) over
the codings the server offers, in the server's order.  The encoders wrap
zlib (gzip framing), ``brotli`` and ``zstandard`` behind one shape: ``chunk``
compresses and flushes so a streamed piece reaches the client at once,
``last`` finishes the stream.  The optional packages are imported only when a
``compress`` instance asks for their coding; nothing here looks at responses.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Protocol

from asgikit.datastructures import parse_accept_encoding

#: The server's default preference order; each optional one only if importable.
DEFAULT_ENCODINGS = ("zstd", "br", "gzip")
_PACKAGES = {"br": "brotli", "zstd": "zstandard", "gzip": None}
_INSTALL_HINTS = {
    "br": "pip install 'asgikit-toolkit[brotli]'",
    "zstd": "pip install 'asgikit-toolkit[zstd]'",
}


def select_encoding(accept_encoding: str, available: Sequence[str]) -> str | None:
    """The coding of ``available`` (in server preference order) to use, or ``None``.

    ``None`` means send the body as it is: nothing acceptable was offered,
    or the client prefers ``identity``.  Malformed entries are ignored; this
    never raises for any header value.
    """
    weights = parse_accept_encoding(accept_encoding)
    star = weights.get("*", 0.0)
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = weights.get(coding, star)
        if q > best_q:
            best, best_q = coding, q
    # Only an explicit "identity;q=..." competes: an unlisted identity is
    # merely acceptable (§12.5.3), not preferred over what was listed.
    if best is None or weights.get("identity", 0.0) > best_q:
        return None
    return best


def load_encodings(encodings: Sequence[str] | None) -> dict[str, Any]:
    """The module behind each coding, in preference order.

    With ``encodings=None`` the defaults whose package is missing are left
    out; a coding named explicitly must be importable (``ImportError``) and
    known (``ValueError``).
    """
    if isinstance(encodings, str):
        raise TypeError("encodings must be a list, not a single string")
    required = encodings is not None
    modules: dict[str, Any] = {}
    for name in encodings if encodings is not None else DEFAULT_ENCODINGS:
        if name not in _PACKAGES:
            raise ValueError(f"unknown encoding {name!r}; choose from gzip, br, zstd")
        package = _PACKAGES[name]
        if package is None:
            modules[name] = zlib
            continue
        try:
            modules[name] = __import__(package)
        except ImportError:
            if required:
                raise ImportError(
                    f"encoding {name!r} needs the {package!r} package ({_INSTALL_HINTS[name]})"
                ) from None
    return modules


class Encoder(Protocol):
    """One response's compression stream."""

    def chunk(self, data: bytes) -> bytes:
        """Compress ``data`` and flush, so the client can decode it now."""
        ...

    def last(self, data: bytes) -> bytes:
        """Compress ``data`` and end the stream."""
        ...


class _Gzip:
    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)  # 16 + 15: gzip framing

    def chunk(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def last(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_FINISH)


class _Brotli:
    def __init__(self, module: Any, quality: int) -> None:
        self._b = module.Compressor(quality=quality)

    def chunk(self, data: bytes) -> bytes:
        out: bytes = self._b.process(data) + self._b.flush()
        return out

    def last(self, data: bytes) -> bytes:
        out: bytes = self._b.process(data) + self._b.finish()
        return out


class _Zstd:
    def __init__(self, module: Any, level: int) -> None:
        # One compressobj per response: a zstd context is not shareable
        # between interleaved streams.
        self._flush_block = module.COMPRESSOBJ_FLUSH_BLOCK
        self._z = module.ZstdCompressor(level=level).compressobj()

    def chunk(self, data: bytes) -> bytes:
        out: bytes = self._z.compress(data) + self._z.flush(self._flush_block)
        return out

    def last(self, data: bytes) -> bytes:
        out: bytes = self._z.compress(data) + self._z.flush()
        return out


def new_encoder(encoding: str, module: Any, level: int) -> Encoder:
    """A fresh encoder for one streamed response."""
    if encoding == "gzip":
        return _Gzip(level)
    if encoding == "br":
        return _Brotli(module, level)
    return _Zstd(module, level)


def compress_whole(encoding: str, module: Any, level: int, body: bytes) -> bytes:
    """``body`` compressed in one go (a response sent in one message)."""
    if encoding == "zstd":
        # The one-shot API writes the content size into the frame header.
        out: bytes = module.ZstdCompressor(level=level).compress(body)
        return out
    return new_encoder(encoding, module, level).last(body)


__all__ = [
    "DEFAULT_ENCODINGS",
    "Encoder",
    "compress_whole",
    "load_encodings",
    "new_encoder",
    "select_encoding",
]
