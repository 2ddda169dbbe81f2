"""``Request``: a thin, lazy view of an HTTP connection's scope and body.

Nothing is parsed until it is asked for.  The body can be read more than once,
and a middleware can peek at it (``await request.peek(n)`` or ``body()``) and
pass ``request.receive`` inward, which replays what was read before handing
over to the server's ``receive`` — the app inside sees the body intact.

Every ``Request`` over one scope shares one body.  Once a ``Request`` has read
the whole body (``body()``, ``json()``, a ``peek()`` that reached its end) or
the form, both are kept in a ``SharedBody`` in the scope, under
``"asgikit.body"``, so an exception handler or a middleware that builds its
own ``Request`` after the endpoint still gets them, as in Starlette.  A body
handed out by ``stream()`` is not kept: another ``Request`` that asks for it
then gets a ``RuntimeError`` at once, never a wait on a drained ``receive``.
The scope's copies made later (by a router, say) share the same
``SharedBody``; a layer whose copies are made before any ``Request`` reads
should call ``shared_body(scope)`` first; a layer that changes the body it
passes inward (decompressing it, say) must pass a scope without the
``"asgikit.body"`` key.  Nothing of this is done when a ``Request`` is
built: only reading the body looks it up.

Where Starlette differs, on purpose: a ``Request`` takes no ``send``, so it
has no ``send_push_promise`` (HTTP/2 push is gone from browsers) nor
``send_early_hints``; ``stream()`` hands each chunk out once, so a second
``stream()`` while one is running is a ``RuntimeError``, not a second reader
splitting the chunks.

The client's disconnect has one source of truth per connection, kept in the
scope under ``"asgikit.disconnect"``, so ``is_disconnected()`` and a
streaming response never race each other for ``receive()``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from asgikit._headers import content_length_over
from asgikit._json import loads as _json_loads
from asgikit._reverse import url_path_for
from asgikit.datastructures import (
    URL,
    Address,
    Headers,
    QueryParams,
    State,
    parse_cookie_header,
    route_path,
)
from asgikit.exceptions import ClientDisconnect, HTTPException
from asgikit.types import Message, Receive, Scope

if TYPE_CHECKING:
    from asgikit.forms import FormContext, FormData, FormLimits

#: Default cap for ``body()`` and ``json()``; pass ``max_size=None`` to lift it.
DEFAULT_MAX_BODY_SIZE = 16 * 1024 * 1024

_DISCONNECT_KEY = "asgikit.disconnect"
#: The scope key of the ``SharedBody`` every ``Request`` over the scope reads.
BODY_SCOPE_KEY = "asgikit.body"


class DisconnectState:
    """Whether the client has gone, shared by everything that reads one connection."""

    __slots__ = ("disconnected", "listening")

    def __init__(self) -> None:
        self.disconnected = False
        #: Set while a streaming response owns ``receive()``; others only read the flag.
        self.listening = False


def disconnect_state(scope: Scope) -> DisconnectState:
    """The connection's one ``DisconnectState`` (created on first use)."""
    state: DisconnectState | None = scope.get(_DISCONNECT_KEY)
    if state is None:
        state = scope[_DISCONNECT_KEY] = DisconnectState()
    return state


class SharedBody:
    """What the ``Request``s over one scope know of its body, kept in the scope.

    ``body`` is the whole body once one of them read and kept it; ``form``
    the form one of them read; ``lost`` names how the body was handed out
    without being kept (``"stream()"``, ``"form()"``, a ``body()`` stopped
    at its ``max_size``), after which no ``Request`` but ``lost_by`` can read
    it: the others get a ``RuntimeError`` rather than a truncated body or a
    wait on a drained ``receive``.
    """

    __slots__ = ("body", "form", "lost", "lost_by")
    body: bytes | None
    form: FormData | None
    lost: str | None
    lost_by: Request | None

    def __init__(self, body: bytes | None = None) -> None:
        # One line: this runs on every request that reads its body.
        self.body, self.form, self.lost, self.lost_by = body, None, None, None


def shared_body(scope: Scope) -> SharedBody:
    """The scope's ``SharedBody`` (made on first use), for a layer to create before copying it."""
    shared: SharedBody | None = scope.get(BODY_SCOPE_KEY)
    if shared is None:
        shared = scope[BODY_SCOPE_KEY] = SharedBody()
    return shared


async def empty_receive() -> Message:
    """A ``receive`` for a request built without one: no body, never disconnects."""
    raise RuntimeError("this Request was built without a receive channel")


class HTTPConnection(Mapping[str, Any]):
    """What HTTP requests and WebSocket connections share: the scope, lazily."""

    # Slots: a connection is built for every request, and a slotted object
    # is built in about half the time of one with a ``__dict__``.
    __slots__ = ("_cookies", "_headers", "_query", "_url", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self._url: URL | None = None
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None

    def __getitem__(self, key: str) -> Any:
        return self.scope[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.scope)

    def __len__(self) -> int:
        return len(self.scope)

    __eq__ = object.__eq__
    __hash__ = object.__hash__

    @property
    def url(self) -> URL:
        """The URL the client asked for, built from the scope's parts."""
        if self._url is None:
            self._url = URL.from_scope(self.scope)
        return self._url

    @property
    def base_url(self) -> URL:
        """The URL of the app's root (``root_path`` with a trailing slash)."""
        root = self.scope.get(
            "asgikit.app_root_path",
            self.scope.get("app_root_path", self.scope.get("root_path", "")),
        )
        return self.url.replace(path=root.rstrip("/") + "/", query="", fragment="")

    @property
    def path(self) -> str:
        """The path below ``root_path``, decoded."""
        return route_path(self.scope)

    @property
    def headers(self) -> Headers:
        """The request headers (case-insensitive, multi-valued)."""
        if self._headers is None:
            self._headers = Headers(raw=self.scope.get("headers", ()))
        return self._headers

    @property
    def query_params(self) -> QueryParams:
        """The query string as a multi-dict; too many parameters answer 400."""
        if self._query is None:
            try:
                self._query = QueryParams(self.scope.get("query_string", b""))
            except ValueError as exc:
                raise HTTPException(400, f"Bad query string: {exc}") from None
        return self._query

    @property
    def path_params(self) -> dict[str, Any]:
        """The typed parameters the router matched in the path."""
        params: dict[str, Any] = self.scope.get("path_params", {})
        return params

    @property
    def cookies(self) -> dict[str, str]:
        """The cookies the client sent (RFC 6265 §5.4, as browsers send them)."""
        if self._cookies is None:
            cookies: dict[str, str] = {}
            for value in self.headers.getlist("cookie"):
                for name, cookie in parse_cookie_header(value).items():
                    cookies.setdefault(name, cookie)
            self._cookies = cookies
        return self._cookies

    @property
    def client(self) -> Address | None:
        """The peer's ``(host, port)``, if the server knows it."""
        client = self.scope.get("client")
        return Address(client[0], client[1]) if client else None

    @property
    def state(self) -> State:
        """The lifespan state for this connection, with attribute access."""
        return State(self.scope.setdefault("state", {}))

    @property
    def session(self) -> dict[str, Any]:
        """The session dict a sessions middleware put in the scope."""
        if "session" not in self.scope:
            raise RuntimeError("no session: wrap the app in the sessions middleware")
        session: dict[str, Any] = self.scope["session"]
        return session

    @property
    def auth(self) -> Any:
        """What an authentication middleware put at ``scope["auth"]``."""
        return self.scope.get("auth")

    @property
    def user(self) -> Any:
        """What an authentication middleware put at ``scope["user"]``."""
        return self.scope.get("user")

    def url_for(self, name: str, /, **path_params: Any) -> URL:
        """The absolute URL of the route called ``name`` (``"api:user"`` through mounts)."""
        path, _, query = url_path_for(self.scope, name, **path_params).partition("?")
        return self.url.replace(path=path, query=query, fragment="")


class Request(HTTPConnection):
    """An HTTP request.  ``Request(scope, receive)``; cheap to build, lazy to read."""

    __slots__ = ("_body", "_buffer", "_consumed", "_form", "_receive", "_streamed")

    def __init__(self, scope: Scope, receive: Receive = empty_receive) -> None:
        self.scope = scope
        self._url: URL | None = None
        self._headers: Headers | None = None
        self._query: QueryParams | None = None
        self._cookies: dict[str, str] | None = None
        self._receive = receive
        self._buffer: list[bytes] = []
        self._body: bytes | None = None
        self._consumed = False  # the server's body has been read to its end
        self._streamed = False  # stream() handed chunks out without keeping them
        self._form: FormData | None = None

    @property
    def method(self) -> str:
        """The request method, upper-case."""
        method: str = self.scope["method"]
        return method

    @property
    def receive(self) -> Receive:
        """A ``receive`` for an app inside: replays what was read, then goes on."""
        if self._body is None:
            # The app inside reads over this scope or a copy: give both one
            # body (once read, the body is in the scope already).
            shared = shared_body(self.scope)
            if shared.lost_by is self and not self._streamed:
                # What was peeked reaches the app inside through this receive.
                shared.lost = shared.lost_by = None
            elif shared.body is not None and not self._consumed:
                self._keep(shared.body)  # another Request read it: replay that
        if not self._buffer and not self._consumed:
            return self._receive
        replay = list(self._buffer)
        more = not self._consumed
        if not replay and not more and not self._streamed:
            # An empty body was read: the app inside still needs its one
            # final ``http.request`` message, or it would wait for the disconnect.
            replay = [b""]
        original = self._receive

        async def replaying_receive() -> Message:
            if replay:
                chunk = replay.pop(0)
                return {
                    "type": "http.request",
                    "body": chunk,
                    "more_body": bool(replay) or more,
                }
            if not more:
                state = disconnect_state(self.scope)
                if state.disconnected:
                    return {"type": "http.disconnect"}
            return await original()

        return replaying_receive

    async def _next_chunk(self) -> bytes | None:
        """The next body chunk from the server, or ``None`` at the end."""
        if self._consumed:
            return None
        while True:
            message = await self._receive()
            kind = message["type"]
            if kind == "http.request":
                if not message.get("more_body", False):
                    self._consumed = True
                chunk: bytes = message.get("body", b"")
                if chunk or self._consumed:
                    return chunk or None
            elif kind == "http.disconnect":
                disconnect_state(self.scope).disconnected = True
                raise ClientDisconnect("the client disconnected while sending the body")

    def _check_unconsumed(self) -> None:
        if self._form is not None:
            raise RuntimeError("the body was already consumed by form()")
        if self._streamed:
            raise RuntimeError("the body was already consumed by stream()")
        if not self._consumed:
            shared: SharedBody | None = self.scope.get(BODY_SCOPE_KEY)
            if shared is not None:
                self._take_shared(shared)

    def _take_shared(self, shared: SharedBody) -> None:
        """Take the body another ``Request`` over this scope read; if it is lost, fail now."""
        if shared.body is not None:
            self._keep(shared.body)
        elif shared.lost is not None and shared.lost_by is not self:
            raise RuntimeError(
                f"the body was already consumed by {shared.lost} on another Request "
                "over this scope, and not kept: read it whole with body() to keep it"
            )

    def _lose(self, how: str) -> None:
        """Say in the scope that this request took body chunks it will not share."""
        shared = shared_body(self.scope)
        shared.lost, shared.lost_by = how, self

    def _keep(self, body: bytes) -> None:
        self._body = body
        self._buffer = [body] if body else []
        self._consumed = True

    def _publish(self, body: bytes) -> None:
        """Keep the whole body, just read, for every ``Request`` over this scope."""
        shared: SharedBody | None = self.scope.get(BODY_SCOPE_KEY)
        if shared is None:
            self.scope[BODY_SCOPE_KEY] = SharedBody(body)
        elif shared.body is None:
            shared.body = body

    async def peek(self, size: int) -> bytes:
        """Up to ``size`` bytes from the start of the body, kept for ``receive`` to replay."""
        self._check_unconsumed()
        have = sum(len(c) for c in self._buffer)
        while have < size:
            chunk = await self._next_chunk()
            if chunk is None:
                break
            self._buffer.append(chunk)
            have += len(chunk)
        body = b"".join(self._buffer)
        if self._consumed and self._body is None:
            # The whole body is here: keep it as body() would.
            self._keep(body)
            self._publish(body)
        elif self._buffer:
            # Kept here, for this request's receive to replay, but no other
            # Request over the scope can have these chunks until then.
            self._lose("peek() (hand request.receive to the app that reads the body)")
        return body[:size]

    async def stream(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk, as it arrives, without keeping it in memory."""
        self._check_unconsumed()
        if self._body is not None:
            if self._body:
                yield self._body
            return
        self._streamed = True
        self._lose("stream()")
        while self._buffer:
            yield self._buffer.pop(0)
        while (chunk := await self._next_chunk()) is not None:
            if chunk:
                yield chunk

    async def body(self, *, max_size: int | None = DEFAULT_MAX_BODY_SIZE) -> bytes:
        """The whole body; past ``max_size`` bytes, ``HTTPException(413)``."""
        if self._body is None:
            self._check_unconsumed()
        if self._body is not None:
            if max_size is not None and len(self._body) > max_size:
                raise HTTPException(413, f"Request body larger than {max_size} bytes")
            return self._body
        if max_size is not None:
            declared = self.headers.get("content-length")
            if declared is not None and content_length_over(declared, max_size):
                raise HTTPException(413, f"Request body larger than {max_size} bytes")
        have = sum(len(c) for c in self._buffer)
        while (chunk := await self._next_chunk()) is not None:
            have += len(chunk)
            self._buffer.append(chunk)
            if max_size is not None and have > max_size and not self._consumed:
                self._lose(f"body(max_size={max_size}), stopped at that size")
                raise HTTPException(413, f"Request body larger than {max_size} bytes")
        body = self._body = b"".join(self._buffer)
        self._buffer = [body] if body else []
        # Kept in the scope too, for any other Request over it (no method
        # call: this is on every request that reads its body).
        shared: SharedBody | None = self.scope.get(BODY_SCOPE_KEY)
        if shared is None:
            self.scope[BODY_SCOPE_KEY] = SharedBody(body)
        elif shared.body is None:
            shared.body = body
        if max_size is not None and have > max_size:
            # Read to its end (or by peek() before): kept, but past the limit.
            raise HTTPException(413, f"Request body larger than {max_size} bytes")
        return body

    async def json(self, *, max_size: int | None = DEFAULT_MAX_BODY_SIZE) -> Any:
        """The body parsed as JSON; a malformed body is ``HTTPException(400)``."""
        body = await self.body(max_size=max_size)
        try:
            # RFC 8259 §8.1: JSON exchanged between systems is UTF-8.
            return _json_loads(body)
        except (ValueError, RecursionError) as exc:
            # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
            raise HTTPException(400, f"Malformed JSON body: {exc}") from None

    def form(self, **limits: Any) -> FormContext:
        """The form in the body: await it, or ``async with`` it (limits: ``FormLimits``)."""
        from asgikit.forms import FormContext, FormLimits

        return FormContext(self._read_form, FormLimits(**limits))

    async def _read_form(self, limits: FormLimits) -> FormData:
        """Read the form once; later calls (by any ``Request`` over the scope) return it."""
        if self._form is not None:
            return self._form
        shared: SharedBody | None = self.scope.get(BODY_SCOPE_KEY)
        if shared is not None and shared.form is not None:
            # Another Request over this scope read it (the endpoint, before an
            # exception handler asks): the body is gone, the form is not.
            self._form = shared.form
            return shared.form
        if self._streamed:
            raise RuntimeError("the body was already consumed by stream(); form() cannot read it")
        from asgikit._form_body import parse_form
        from asgikit.forms import FORMS_SCOPE_KEY, UploadFile

        form = await parse_form(self.headers, self.stream, limits)
        self._form = form
        shared = shared_body(self.scope)
        shared.form = form
        if shared.lost is not None:
            shared.lost = "form()"
        if any(isinstance(value, UploadFile) for _, value in form._list):
            self.scope.setdefault(FORMS_SCOPE_KEY, []).append(form)
        return form

    async def close(self) -> None:
        """Close the files of the form this request read (the route does it anyway)."""
        if self._form is not None:
            await self._form.close()

    async def is_disconnected(self) -> bool:
        """Whether the client has gone, without waiting and without stealing body data.

        It looks at what ``receive()`` has ready right now.  A server whose
        ``receive`` always yields to the event loop first (on trio, every
        await does) never has a message ready that way, so there this tells
        only what a streaming response's listener already saw; a streaming
        response stops by itself when the client leaves, without asking.
        """
        state = disconnect_state(self.scope)
        if state.disconnected or state.listening:
            return state.disconnected
        if not self._consumed:
            shared: SharedBody | None = self.scope.get(BODY_SCOPE_KEY)
            if shared is not None and shared.body is not None:
                self._keep(shared.body)
        if not self._consumed:
            # A body message might come first; reading it now would lose it
            # unless it is kept, so keep it.
            with anyio.CancelScope() as scope:
                scope.cancel()
                try:
                    chunk = await self._next_chunk()
                except ClientDisconnect:
                    return True
                if chunk:
                    self._buffer.append(chunk)
            return state.disconnected
        with anyio.CancelScope() as scope:
            scope.cancel()
            message = await self._receive()
            if message["type"] == "http.disconnect":
                state.disconnected = True
        return state.disconnected


__all__ = [
    "BODY_SCOPE_KEY",
    "DEFAULT_MAX_BODY_SIZE",
    "DisconnectState",
    "HTTPConnection",
    "Request",
    "SharedBody",
    "disconnect_state",
    "empty_receive",
    "shared_body",
]
