"""A request id on every request: taken from the client (when well-formed) or made here.

The id is set on the response (``X-Request-ID`` by default; on the
``websocket.accept`` message for a WebSocket), in ``scope["asgikit.request_id"]``,
and in a :class:`contextvars.ContextVar` while the app runs, so that log
records can carry it.  Each middleware instance has its own variable
(``app.context_var``, read with ``app.current()``); pass ``context_var=``
to use one you define next to your logging setup — the way to reach it when
the middleware is built inside ``stack()``.

An incoming id is used only if it is 1 to 128 characters of letters, digits and
``-_.:+/=@``; anything else (too long, spaces, quotes, control characters)
is refused and replaced by a new id, so that a client cannot inject text
into logs or headers.  Ids are ``uuid4().hex`` unless ``generator`` says
otherwise.
"""

from __future__ import annotations

import contextvars
import dataclasses
import os
from collections.abc import Awaitable, Callable

from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, ScopePredicate, compile_exclude
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

#: Scope key holding the request's id.
SCOPE_KEY = "asgikit.request_id"
MAX_LENGTH = 128
_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:+/=@")


def is_safe_id(value: bytes) -> bool:
    """Whether an incoming id is short and plain enough to pass on (and to log)."""
    return 0 < len(value) <= MAX_LENGTH and _SAFE.issuperset(value)


# Ids are made _BATCH at a time, in a few C calls for all of them (one
# os.urandom read, two translations, one hex with a separator, one split),
# so that a request takes a ready id off a list: a fifth of making one
# alone.  Each is uuid.uuid4().hex's equal: 122 random bits, the version (4)
# in the high nibble of octet 6 and the variant (10) in the top bits of
# octet 8 (RFC 9562 §5.4).
_BATCH = 64
_VERSION_4 = bytes(octet & 0x0F | 0x40 for octet in range(256))
_VARIANT_10 = bytes(octet & 0x3F | 0x80 for octet in range(256))
_ready: list[str] = []
if hasattr(os, "register_at_fork"):
    # A child must not hand out the ids its parent holds ready.
    os.register_at_fork(after_in_child=_ready.clear)


def _new_id() -> str:
    try:
        # list.pop is atomic: two threads never get the same id.
        return _ready.pop()
    except IndexError:
        pass
    octets = bytearray(os.urandom(16 * _BATCH))
    octets[6::16] = octets[6::16].translate(_VERSION_4)
    octets[8::16] = octets[8::16].translate(_VARIANT_10)
    ids = octets.hex(" ", 16).split(" ")
    new = ids.pop()
    _ready.extend(ids)
    return new


@dataclasses.dataclass(frozen=True)
class _Settings:
    """``request_id()``'s options, checked and compiled."""

    header: bytes  # lower-cased
    generator: Callable[[], str]
    trust_incoming: bool
    context_var: contextvars.ContextVar[str | None] | None
    excluded: ScopePredicate | None


class RequestIDApp:
    """The app ``request_id`` returns; ``current()`` is the id of the request being served."""

    def __init__(self, app: ASGIApp, settings: _Settings) -> None:
        self.app = app
        self.settings = settings
        #: The variable holding the id while the app runs (``None`` outside).
        self.context_var: contextvars.ContextVar[str | None] = (
            settings.context_var
            if settings.context_var is not None
            else contextvars.ContextVar(f"asgikit.request_id.{id(self):x}", default=None)
        )

    def current(self) -> str | None:
        """The id of the request this code runs for, or ``None`` outside a request."""
        return self.context_var.get()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        settings = self.settings
        if kind not in ("http", "websocket") or (
            settings.excluded is not None and settings.excluded(scope)
        ):
            await self.app(scope, receive, send)
            return
        request_id: str | None = None
        if settings.trust_incoming:
            for name, value in scope["headers"]:
                if name == settings.header:
                    if is_safe_id(value):
                        request_id = value.decode("ascii")
                    break
        if request_id is None:
            request_id = settings.generator()
            if settings.generator is not _new_id and not is_safe_id(
                request_id.encode("latin-1", "replace")
            ):
                raise ValueError(f"request id generator gave an unsafe id: {request_id!r}")
        pair = (settings.header, request_id.encode("ascii"))
        header = settings.header
        length = len(header)
        start = "http.response.start" if kind == "http" else "websocket.accept"

        # A plain function handing back the server's awaitable (see asgikit._send).
        def send_with_id(message: Message) -> Awaitable[None]:
            if message["type"] == start:
                headers = message.get("headers", ())
                if type(headers) is not list and type(headers) is not tuple:
                    headers = list(headers)  # any iterable (ASGI): read twice below
                # The app's own field of that name is replaced; only names of
                # its length can be it, so most are never lower-cased.
                for name, _ in headers:
                    if len(name) == length and name.lower() == header:
                        headers = [(k, v) for k, v in headers if k.lower() != header]
                        break
                message = {**message}
                message["headers"] = [*headers, pair]
            return send(message)

        scope = {**scope}
        scope[SCOPE_KEY] = request_id
        token = self.context_var.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self.context_var.reset(token)


@middleware
def request_id(
    app: ASGIApp,
    *,
    header: str = "X-Request-ID",
    generator: Callable[[], str] = _new_id,
    trust_incoming: bool = True,
    context_var: contextvars.ContextVar[str | None] | None = None,
    exclude: Exclude = None,
) -> RequestIDApp:
    """Give every request an id: in ``header`` on the response, in the scope, in a context var.

    ``trust_incoming=False`` always makes a new id (for servers facing
    clients directly, where an incoming id means nothing).  ``generator``
    must return ids that pass :func:`is_safe_id`.
    """
    encoded = header.lower().encode("latin-1")
    if not encoded or not _SAFE.issuperset(encoded):
        raise ValueError(f"invalid header name: {header!r}")
    settings = _Settings(
        header=encoded,
        generator=generator,
        trust_incoming=trust_incoming,
        context_var=context_var,
        excluded=compile_exclude(exclude),
    )
    return RequestIDApp(app, settings)


__all__ = ["MAX_LENGTH", "SCOPE_KEY", "RequestIDApp", "is_safe_id", "request_id"]
