"""Responses, each an ASGI app: build one, then ``await response(scope, receive, send)``.

Headers are checked when the response is built: a name outside RFC 9110's
token grammar, or a value with CR, LF or NUL, raises ``ValueError`` there, so
no header (a redirect ``Location`` included) can split a response.  A HEAD
request gets the headers and no body.
"""

from __future__ import annotations

import json
import json.encoder
from collections.abc import Callable, Mapping
from typing import Any

from asgikit._accept import accept_values, preferred
from asgikit._cookies import format_set_cookie
from asgikit._json import dumps_fast, to_builtins
from asgikit.background import BackgroundTask
from asgikit.datastructures import URL, MutableHeaders, validate_header
from asgikit.exceptions import HTTPException
from asgikit.types import Receive, Scope, Send


class Response:
    """A response with a body known up front (``bytes`` or ``str``)."""

    media_type: str | None = None
    charset = "utf-8"
    # The headers to send: a list, or, in ``__init__``'s common case, a tuple
    # shared by every response of one shape.  Change them only through
    # ``_header_list()`` (a tuple has no ``append``: a slip fails loudly,
    # never in another response).
    _raw_headers: list[tuple[bytes, bytes]] | tuple[tuple[bytes, bytes], ...]
    # Whether render is Response's own: then a str body is encoded in place,
    # without the call (see __init_subclass__).
    _own_render = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._own_render = cls.render is Response.render

    def __init__(
        self,
        content: Any = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.status_code = status_code
        self.background = background
        if media_type is None:
            media_type = self.media_type
        else:
            self.media_type = media_type
        if type(content) is str and self._own_render:
            charset = self.charset
            # ``encode()`` takes its UTF-8 fast path; a named codec is looked up.
            body = self.body = content.encode() if charset == "utf-8" else content.encode(charset)
        else:
            charset = None
            body = self.body = self.render(content)
        # RFC 9110 §15.3.5, §15.4.5, §15.2: 1xx, 204 and 304 have no content,
        # whatever was given (a server writing it anyway would mix it into the
        # next answer).  Checked off the common path, which has a body.
        if (
            headers is None
            and media_type is not None
            and status_code >= 200
            and status_code != 204
            and status_code != 304
        ):
            # The common case, kept short: it runs for nearly every response
            # (a 404 or a 400 too).  Its two headers depend only on the media
            # type, the charset and the length: built once per such triple.
            length = len(body)
            if length < _SHAPED_LENGTHS and (charset or self.charset) == "utf-8":
                try:
                    shape = _SHAPES[media_type][length]
                except KeyError:  # once per media type and length
                    shape = _shape(media_type, length)
                # Shared and immutable: a list is made on the first change.
                self._raw_headers = shape
            else:
                self._raw_headers = [
                    (b"content-length", b"%d" % length),
                    (b"content-type", _content_type(media_type, self.charset)),
                ]
            return
        if status_code < 200 or status_code == 204 or status_code == 304:
            self.body = b""
        self._raw_headers = self._init_headers(headers)

    def render(self, content: Any) -> bytes:
        """The body bytes for ``content``."""
        kind = type(content)
        if kind is str:
            return content.encode(self.charset)  # type: ignore[no-any-return]
        if kind is bytes:
            return content  # type: ignore[no-any-return]
        if content is None:
            return b""
        if isinstance(content, bytes):
            return content
        if isinstance(content, (bytearray, memoryview)):
            return bytes(content)
        if isinstance(content, str):
            return content.encode(self.charset)
        raise TypeError(f"{type(self).__name__} cannot render {type(content).__name__}")

    def _init_headers(self, headers: Mapping[str, str] | None) -> list[tuple[bytes, bytes]]:
        raw: list[tuple[bytes, bytes]] = []
        has_length = has_type = False
        if headers:
            for key, value in headers.items():
                name = key.lower().encode("latin-1")
                encoded = value.encode("latin-1")
                validate_header(name, encoded)
                has_length = has_length or name == b"content-length"
                has_type = has_type or name == b"content-type"
                raw.append((name, encoded))
        body = getattr(self, "body", None)
        status = self.status_code
        if body is not None and not has_length and not (status < 200 or status in (204, 304)):
            raw.append((b"content-length", b"%d" % len(body)))
        if self.media_type is not None and not has_type:
            raw.append((b"content-type", _content_type(self.media_type, self.charset)))
        return raw

    def _header_list(self) -> list[tuple[bytes, bytes]]:
        """The headers as this response's own list, made on the first change."""
        raw = self._raw_headers
        if type(raw) is not list:
            raw = self._raw_headers = list(raw)
        return raw

    @property
    def headers(self) -> MutableHeaders:
        """The response headers; changes made through this view are sent."""
        return _LiveHeaders(self)

    def set_cookie(
        self,
        key: str,
        value: str = "",
        max_age: int | None = None,
        expires: Any = None,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Add a ``Set-Cookie`` header (RFC 6265 §4.1); a bad name or value is a ``ValueError``."""
        cookie = format_set_cookie(
            key,
            value,
            max_age=max_age,
            expires=expires,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )
        self._header_list().append((b"set-cookie", cookie.encode("latin-1")))

    def delete_cookie(
        self,
        key: str,
        path: str | None = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
        partitioned: bool = False,
    ) -> None:
        """Tell the client to drop cookie ``key``.

        Give the attributes it was set with: browsers tell cookies apart by name,
        ``path`` and ``domain`` (RFC 6265 §5.3), and a ``partitioned`` (CHIPS)
        cookie lives in its own jar, so only a ``Partitioned`` deletion reaches it.
        """
        self.set_cookie(
            key,
            "",
            max_age=0,
            expires=0,
            path=path,
            domain=domain,
            secure=secure,
            httponly=httponly,
            samesite=samesite,
            partitioned=partitioned,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # ``routes.run_request_handler`` sends a handler's response as this
        # does, without the call: a change here is a change there.
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                # A copy: a response object may be reused for many requests,
                # and a middleware may change the list it is sent.
                "headers": list(self._raw_headers),
            }
        )
        body = b"" if scope.get("method") == "HEAD" else self.body
        await send({"type": "http.response.body", "body": body})
        if self.background is not None:
            await self.background()


_CONTENT_TYPES: dict[str, dict[str, bytes]] = {}


def _content_type(media_type: str, charset: str) -> bytes:
    """The ``Content-Type`` value, ``charset`` added for text; cached per pair."""
    by_type = _CONTENT_TYPES.get(charset)
    if by_type is None:
        by_type = _CONTENT_TYPES.setdefault(charset, {})
    value = by_type.get(media_type)
    if value is None:
        text = media_type
        if text.startswith("text/") and "charset=" not in text.lower():
            text += "; charset=" + charset
        value = text.encode("latin-1")
        validate_header(b"content-type", value)
        if len(by_type) < 256:
            by_type[media_type] = value
    return value


#: Bodies shorter than this have their two headers prepared once per length.
_SHAPED_LENGTHS = 1024
#: How many media types have their headers prepared (each up to about 200 KB).
_SHAPED_TYPES = 16
# Media type -> body length -> the headers of a UTF-8 response with no
# others: ``Content-Length`` and ``Content-Type``.
_SHAPES: dict[str, dict[int, tuple[tuple[bytes, bytes], ...]]] = {}


def _shape(media_type: str, length: int) -> tuple[tuple[bytes, bytes], ...]:
    """A UTF-8 response's two headers for ``media_type`` and ``length``; kept."""
    shape = (
        (b"content-length", b"%d" % length),
        (b"content-type", _content_type(media_type, "utf-8")),
    )
    lengths = _SHAPES.get(media_type)
    if lengths is None:
        if len(_SHAPES) >= _SHAPED_TYPES:
            return shape
        lengths = _SHAPES[media_type] = {}
    lengths[length] = shape
    return shape


class _LiveHeaders(MutableHeaders):
    """``MutableHeaders`` over the response's own header list (edits happen in place)."""

    __slots__ = ()

    def __init__(self, response: Response) -> None:
        super().__init__()
        self._raw = response._header_list()

    def _lookup(self) -> dict[str, str]:
        # The list is shared with the response (set_cookie appends to it), so
        # never trust an index built before.
        self._index = None
        return super()._lookup()


class PlainTextResponse(Response):
    """A ``text/plain`` response."""

    media_type = "text/plain"


class HTMLResponse(Response):
    """A ``text/html`` response."""

    media_type = "text/html"


def _not_serializable(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _json_renderer(default: Callable[[Any], Any]) -> Callable[[Any], bytes]:
    """The fastest compact, UTF-8, NaN-refusing JSON renderer this Python has.

    ``default`` is called for values of other types.  ``JSONEncoder.encode``
    builds its C encoder anew on every call; built once here it is about
    twice as fast.  Without the circular-reference markers (shared markers
    would race between threads), a circular structure raises
    ``RecursionError`` instead of ``ValueError``.
    """
    options: dict[str, Any] = {"allow_nan": False, "separators": (",", ":"), "default": default}
    encode_ascii = json.JSONEncoder(**options).encode
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (PyPy): the standard path
        encode = json.JSONEncoder(ensure_ascii=False, **options).encode

        def render_json(content: Any) -> bytes:
            try:
                return encode(content).encode("utf-8")
            except UnicodeEncodeError:
                return encode_ascii(content).encode("ascii")

    else:
        chunks = make(None, default, json.encoder.encode_basestring, None, ":", ",", *[False] * 3)

        def render_json(content: Any) -> bytes:
            try:
                return "".join(
                    chunks(content, 0)
                ).encode()  # UTF-8, the fast path (no codec look-up)
            except UnicodeEncodeError:
                # A lone surrogate (a client's JSON may carry "\ud800") has no
                # UTF-8 form; escaped as \ud800 it is valid JSON for the same value.
                return encode_ascii(content).encode("ascii")

    return render_json


_render_json = _json_renderer(_not_serializable)


class JSONResponse(Response):
    """A JSON response: compact, UTF-8, and NaN/Infinity refused (RFC 8259 has none).

    Encoded by the standard library whatever is installed; see
    ``FastJSONResponse`` for msgspec.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON."""
        return _render_json(content)


_render_json_builtins = _json_renderer(to_builtins or _not_serializable)


class FastJSONResponse(JSONResponse):
    """``JSONResponse`` encoded by msgspec when it is installed (the ``fast`` extra).

    The output is compact UTF-8 JSON with the same meaning as
    ``JSONResponse``'s, NaN and Infinity are still refused, and without
    msgspec it is ``JSONResponse``.  It is opt-in, not what ``JSONResponse``
    does whenever msgspec happens to be installed (another package may
    have brought it), because msgspec also encodes types the standard
    library refuses: datetimes and UUIDs as strings, dataclasses and
    msgspec structs as objects, sets as arrays, ``bytes`` as base64.  Numbers
    may be written differently (``1e16`` for ``1e+16``), never with another
    value.  A value msgspec cannot write identically (a lone surrogate, a
    ``None`` or ``bool`` key, anything holding ``null``, which might be a
    NaN) goes through the standard library with msgspec's type conversions.
    """

    def render(self, content: Any) -> bytes:
        """``content`` as compact UTF-8 JSON, by msgspec where it can."""
        fast = dumps_fast(content)
        return fast if fast is not None else _render_json_builtins(content)


# Characters a Location keeps as they are; everything else is percent-encoded.
_LOCATION_SAFE = ":/%#?=@[]!$&'()*+,;~"


class RedirectResponse(Response):
    """A redirect to ``url`` (307 by default, so the method and body are kept)."""

    def __init__(
        self,
        url: str | URL,
        status_code: int = 307,
        headers: Mapping[str, str] | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        from urllib.parse import quote

        location = str(url)
        if any(c in location for c in "\r\n\0"):
            raise ValueError(f"redirect URL contains CR, LF or NUL: {location!r}")
        super().__init__(b"", status_code=status_code, headers=headers, background=background)
        self._header_list().append(
            (b"location", quote(location, safe=_LOCATION_SAFE).encode("latin-1"))
        )


_ERROR_SHAPES = ("text/plain", "application/json")


def wants_json(scope: Scope) -> bool:
    """Whether the client's ``Accept`` prefers JSON to plain text (q-values honoured)."""
    accept = accept_values(scope.get("headers", ()))
    return bool(accept) and preferred(accept, _ERROR_SHAPES) == "application/json"


def _with_vary_accept(headers: Mapping[str, str] | None) -> dict[str, str]:
    out = dict(headers) if headers else {}
    for name, value in out.items():
        if name.lower() == "vary":
            listed = {token.strip().lower() for token in value.split(",")}
            if not listed & {"accept", "*"}:
                out[name] = f"{value}, Accept" if value.strip() else "Accept"
            return out
    out["Vary"] = "Accept"
    return out


def http_exception_response(scope: Scope, exc: HTTPException) -> Response:
    """The answer to ``exc``: JSON ``{"detail": ...}`` if preferred, else text.

    The choice follows the client's ``Accept`` with its q-values (see
    ``asgikit._accept``), and the answer says so with ``Vary: Accept``
    (RFC 9110 §12.5.5).  A status that has no body (1xx, 204, 304) gets none.
    """
    status = exc.status_code
    if status in (204, 304) or status < 200:
        return Response(status_code=status, headers=exc.headers)
    headers = _with_vary_accept(exc.headers)
    if wants_json(scope):
        return JSONResponse({"detail": exc.detail}, status, headers)
    return PlainTextResponse(exc.detail, status, headers)


__all__ = [
    "FastJSONResponse",
    "HTMLResponse",
    "JSONResponse",
    "PlainTextResponse",
    "RedirectResponse",
    "Response",
    "http_exception_response",
    "wants_json",
]
