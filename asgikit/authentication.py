"""Authentication: who is asking (``authentication``) and may they (``requires``).

``authentication(app, backend=...)`` asks the backend, once per HTTP request
or WebSocket handshake, who the client is: ``await backend.authenticate(conn)``
returns ``(AuthCredentials, user)``, or ``None`` for an anonymous client.  The
app then sees ``scope["auth"]`` and ``scope["user"]`` (``request.auth`` and
``request.user``); an anonymous client is an :class:`UnauthenticatedUser`
with no scopes.  A backend raises :class:`AuthenticationError` for credentials
it cannot make sense of: that answers 400 (or ``on_error(conn, exc)``'s
response), and closes a WebSocket handshake with 1008, policy violation
(RFC 6455 §7.4.1).

``@requires("admin")`` on a handler then checks the scopes: 403 by default, a
redirect to a named route with ``?next=`` if asked, and for a WebSocket a close
with 1008.

Two ready backends read the ``Authorization`` header: :class:`BasicAuthBackend`
(RFC 7617) and :class:`BearerAuthBackend` (RFC 6750), each calling a ``verify``
function you give it.  A malformed header is an ``AuthenticationError`` (400),
never a 500.
"""

from __future__ import annotations

import base64
import binascii
import functools
import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlencode

import anyio.to_thread

from asgikit.composition import middleware
from asgikit.exceptions import HTTPException
from asgikit.requests import HTTPConnection
from asgikit.responses import PlainTextResponse, RedirectResponse
from asgikit.types import ASGIApp, Receive, Scope, Send
from asgikit.websockets import WebSocket

_F = TypeVar("_F", bound=Callable[..., Any])


class AuthenticationError(Exception):
    """Credentials that could not be understood; the message is shown to the client."""


class AuthCredentials:
    """What an authenticated client may do: a list of scope names."""

    def __init__(self, scopes: Sequence[str] | None = None) -> None:
        self.scopes = list(scopes or ())

    def __repr__(self) -> str:
        return f"AuthCredentials({self.scopes!r})"


class BaseUser:
    """A user, as ``scope["user"]`` holds it."""

    @property
    def is_authenticated(self) -> bool:
        """Whether the client proved who it is."""
        raise NotImplementedError

    @property
    def display_name(self) -> str:
        """A name to show."""
        raise NotImplementedError

    @property
    def identity(self) -> str:
        """A stable identifier."""
        raise NotImplementedError


class SimpleUser(BaseUser):
    """An authenticated user known by ``username`` only."""

    def __init__(self, username: str) -> None:
        self.username = username

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.username

    @property
    def identity(self) -> str:
        return self.username

    def __repr__(self) -> str:
        return f"SimpleUser({self.username!r})"


class UnauthenticatedUser(BaseUser):
    """The user of an anonymous client."""

    @property
    def is_authenticated(self) -> bool:
        return False

    @property
    def display_name(self) -> str:
        return ""

    @property
    def identity(self) -> str:
        return ""

    def __repr__(self) -> str:
        return "UnauthenticatedUser()"


AuthResult = tuple[AuthCredentials, BaseUser] | None
OnError = Callable[[HTTPConnection, AuthenticationError], ASGIApp | Awaitable[ASGIApp]]


class AuthenticationBackend(Protocol):
    """Anything with ``async def authenticate(conn) -> (credentials, user) | None``."""

    async def authenticate(self, conn: HTTPConnection) -> AuthResult:
        """Who the client is, ``None`` if anonymous; ``AuthenticationError`` if unclear."""
        ...


def _default_on_error(conn: HTTPConnection, exc: AuthenticationError) -> ASGIApp:
    return PlainTextResponse(str(exc) or "Bad credentials", status_code=400)


@middleware
def authentication(
    app: ASGIApp, backend: AuthenticationBackend, *, on_error: OnError | None = None
) -> ASGIApp:
    """Set ``scope["auth"]`` and ``scope["user"]`` from ``backend`` for ``app``.

    ``authentication(app, backend)`` as the issue spells it, or
    ``authentication(backend=backend)`` for a layer in ``stack()``.

    ``on_error(conn, exc)`` builds the answer (a response, or an awaitable of
    one) when the backend raises ``AuthenticationError``; by default a 400
    with the error's message.  WebSocket handshakes are closed with 1008.
    Other scopes (lifespan) pass through.
    """
    handle_error = on_error if on_error is not None else _default_on_error

    async def authentication_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        try:
            result = await backend.authenticate(conn)
        except AuthenticationError as exc:
            if scope["type"] == "websocket":
                await WebSocket(scope, receive, send).close(1008)
                return
            response = handle_error(conn, exc)
            if inspect.isawaitable(response):
                response = await response
            await response(scope, receive, send)
            return
        scope = dict(scope)
        if result is None:
            scope["auth"], scope["user"] = AuthCredentials(), UnauthenticatedUser()
        else:
            scope["auth"], scope["user"] = result
        await app(scope, receive, send)

    return authentication_app


def has_required_scope(conn: HTTPConnection, scopes: Sequence[str]) -> bool:
    """Whether the connection's credentials hold every one of ``scopes``."""
    auth = conn.scope.get("auth")
    granted = getattr(auth, "scopes", ())
    return all(scope in granted for scope in scopes)


def _connection_parameter(func: Callable[..., Any]) -> tuple[int, str]:
    """Where the request or WebSocket is among ``func``'s parameters: index and name."""
    parameters = list(inspect.signature(func).parameters)
    for index, name in enumerate(parameters):
        if name in ("request", "websocket"):
            return index, name
    for index, name in enumerate(parameters):
        if name not in ("self", "cls"):
            return index, name
    raise TypeError(f"@requires: {func.__qualname__} takes no request or websocket")


def requires(
    *scopes: str, status_code: int = 403, redirect: str | None = None
) -> Callable[[_F], _F]:
    """Let the decorated handler run only for credentials with every one of ``scopes``.

    Works on request handlers (plain functions or methods, async or not) and
    WebSocket handlers.  A refused request raises ``HTTPException(status_code)``,
    or with ``redirect`` (a route name) answers 303 to that route with the
    requested URL in ``?next=``.  A refused WebSocket is closed with 1008.
    """

    def decorate(func: _F) -> _F:
        index, name = _connection_parameter(func)

        def connection(args: tuple[Any, ...], kwargs: dict[str, Any]) -> HTTPConnection:
            conn = args[index] if index < len(args) else kwargs.get(name)
            if not isinstance(conn, HTTPConnection):
                raise TypeError(f"@requires: {func.__qualname__} got no request or websocket")
            return conn

        def refusal(conn: HTTPConnection) -> Any:
            if redirect is None:
                raise HTTPException(status_code)
            target = str(conn.url_for(redirect)) + "?" + urlencode({"next": str(conn.url)})
            return RedirectResponse(target, status_code=303)

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                conn = connection(args, kwargs)
                if has_required_scope(conn, scopes):
                    return await func(*args, **kwargs)
                if isinstance(conn, WebSocket):
                    await conn.close(1008)
                    return None
                return refusal(conn)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            conn = connection(args, kwargs)
            if has_required_scope(conn, scopes):
                return func(*args, **kwargs)
            return refusal(conn)

        return sync_wrapper  # type: ignore[return-value]

    return decorate


# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def _authorization(conn: HTTPConnection, scheme: str) -> str | None:
    """The credentials after ``scheme`` in ``Authorization``, ``None`` for another scheme."""
    header: str | None = conn.headers.get("authorization")
    if header is None:
        return None
    given, _, credentials = header.strip().partition(" ")
    # RFC 9110 §11.1: the scheme is case-insensitive.
    if given.lower() != scheme:
        return None
    return credentials.strip()


def _caller(func: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """An async function calling ``func``; a sync one runs in a worker thread."""
    if inspect.iscoroutinefunction(func):
        return func

    async def call(*args: Any) -> Any:
        return await anyio.to_thread.run_sync(func, *args)

    return call


class BasicAuthBackend:
    """HTTP Basic credentials (RFC 7617) checked by ``verify(username, password)``.

    ``verify`` returns ``(AuthCredentials, user)`` or ``None`` for wrong
    credentials (the client stays anonymous); a plain ``def`` runs in a worker
    thread, so a slow password hash does not block the event loop.  Credentials
    that are not base64 of UTF-8 ``user:password`` raise ``AuthenticationError``.
    """

    def __init__(self, verify: Callable[[str, str], AuthResult | Awaitable[AuthResult]]) -> None:
        self._verify = _caller(verify)

    async def authenticate(self, conn: HTTPConnection) -> AuthResult:
        """Read ``Authorization: Basic ...`` and verify it."""
        credentials = _authorization(conn, "basic")
        if credentials is None:
            return None
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise AuthenticationError("Invalid basic auth credentials") from None
        username, sep, password = decoded.partition(":")
        if not sep:
            raise AuthenticationError("Invalid basic auth credentials")
        result: AuthResult = await self._verify(username, password)
        return result


class BearerAuthBackend:
    """Bearer tokens (RFC 6750 §2.1) checked by ``verify(token)``.

    ``verify`` returns ``(AuthCredentials, user)`` or ``None`` for an unknown
    token; a plain ``def`` runs in a worker thread.  A token outside the
    RFC's ``b64token`` grammar raises ``AuthenticationError``.
    """

    def __init__(self, verify: Callable[[str], AuthResult | Awaitable[AuthResult]]) -> None:
        self._verify = _caller(verify)

    async def authenticate(self, conn: HTTPConnection) -> AuthResult:
        """Read ``Authorization: Bearer ...`` and verify it."""
        token = _authorization(conn, "bearer")
        if token is None:
            return None
        if not _B64TOKEN.fullmatch(token):
            raise AuthenticationError("Invalid bearer token")
        result: AuthResult = await self._verify(token)
        return result


__all__ = [
    "AuthCredentials",
    "AuthResult",
    "AuthenticationBackend",
    "AuthenticationError",
    "BaseUser",
    "BasicAuthBackend",
    "BearerAuthBackend",
    "OnError",
    "SimpleUser",
    "UnauthenticatedUser",
    "authentication",
    "has_required_scope",
    "requires",
]
