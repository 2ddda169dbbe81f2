"""The entries of a router: ``Route``, ``WebSocketRoute``, ``Mount`` and ``Host``.

Each entry is an ASGI app in its own right (a ``Route`` checks the method and
runs its endpoint), and knows how to build its own URL for ``url_path_for``.
An endpoint is told apart once, when the route is built: a function of one
argument is a request (or WebSocket) handler, anything else an ASGI app.

An exception from an endpoint (and the router's 404 and 405) is answered
right here, with the handler an ``exception_handlers`` layer outside left in
the scope, or by default for an ``HTTPException`` (see ``asgikit._errors``):
the answer then passes out through every layer in between.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import anyio.to_thread

from asgikit._errors import HANDLERS_KEY, RAISE_KEY, answer_error
from asgikit._url import host_header
from asgikit.convertors import CompiledPath, compile_host, compile_path
from asgikit.exceptions import ClientDisconnect, HTTPException, WebSocketDisconnect
from asgikit.requests import Request
from asgikit.responses import Response, http_exception_response
from asgikit.types import ASGIApp, Receive, Scope, Send
from asgikit.websockets import WebSocket

# A response whose class keeps this ``__call__`` is sent by the runner itself.
_RESPONSE_CALL = Response.__call__

RequestHandler = Callable[[Request], Awaitable[ASGIApp]]
WebSocketHandler = Callable[[WebSocket], Awaitable[None]]


def _positional_arity(func: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return 3
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is p.empty)


def _is_handler(endpoint: Any) -> bool:
    """A request handler takes one argument; an ASGI app takes three.  Decided once."""
    if inspect.isclass(endpoint):
        return False
    target = endpoint.func if isinstance(endpoint, functools.partial) else endpoint
    if inspect.isfunction(target) or inspect.ismethod(target):
        return _positional_arity(endpoint) == 1
    return False


async def answer_http_exception(
    scope: Scope, receive: Receive, send: Send, exc: HTTPException
) -> None:
    """Answer ``exc`` here (with an ``exception_handlers`` handler if one matches).

    Raised instead only for a scope that asks for that (``asgikit.raise_http_exceptions``)
    and has no handler table.
    """
    if not await answer_error(scope, receive, send, exc):
        raise exc


async def run_request_handler(
    func: Callable[[Request], Any], is_async: bool, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run ``func(request)`` (a sync one in a worker thread), then its response.

    An exception it raises is answered here (see ``answer_error``) or goes
    on; a client that left mid-body ends the request quietly; uploaded files
    are closed after the response.  Routes and ``HTTPEndpoint`` both answer
    through this.  A response whose class keeps ``Response.__call__`` is sent
    right here, the same two messages (a hot path: one coroutine less).
    """
    request = Request(scope, receive)
    try:
        try:
            if is_async:
                response = await func(request)
            else:
                response = await anyio.to_thread.run_sync(func, request)
        except ClientDisconnect:
            # The client left while sending its body: nobody is there to
            # answer, and it is not the application's error to report.
            return
        except Exception as exc:
            if not await answer_error(scope, receive, send, exc, request):
                raise
            return
        try:
            own_call = type(response).__call__ is _RESPONSE_CALL
        except AttributeError:  # not callable: reported below
            own_call = False
        if own_call:
            # ``Response.__call__`` written out here: one coroutine less a request.
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    # A copy, as Response.__call__ sends: the response may be reused.
                    "headers": list(response._raw_headers),
                }
            )
            body = b"" if scope.get("method") == "HEAD" else response.body
            await send({"type": "http.response.body", "body": body})
            if response.background is not None:
                await response.background()
            return
        # The request's own receive replays a body that was read; else the server's.
        try:
            await response(scope, request.receive if request._buffer else receive, send)
        except TypeError:
            # Only on the failure path: a response that is not callable.
            if callable(response):
                raise
            raise TypeError(_not_a_response(func, response)) from None
    finally:
        if "asgikit.forms" in scope:
            # Uploaded files live until the response (and its background
            # tasks) are done; then their spooled files are deleted.
            from asgikit.forms import close_request_forms

            await close_request_forms(scope)


def _not_a_response(func: Callable[..., Any], returned: object) -> str:
    target = func.func if isinstance(func, functools.partial) else func
    name = f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"
    what = "None" if returned is None else f"a {type(returned).__name__}"
    hint = "return JSONResponse(...) (or another response)"
    if isinstance(returned, (dict, list)):
        hint = "return JSONResponse(data)"
    elif isinstance(returned, (str, bytes)):
        hint = "return PlainTextResponse(text) (or HTMLResponse, JSONResponse(...))"
    elif returned is None:
        hint = "return a response, e.g. return JSONResponse(...); is a return missing?"
    return f"endpoint {name} returned {what}; an endpoint returns a response: {hint}"


def request_handler_app(func: Callable[[Request], Any]) -> ASGIApp:
    """The ASGI app that runs ``func(request)`` and then the response it returns.

    A sync ``func`` runs in a worker thread.  An ``HTTPException`` it raises
    becomes its response.
    """
    is_async = inspect.iscoroutinefunction(
        func.func if isinstance(func, functools.partial) else func
    )
    # A partial, not a closure around the coroutine: one frame less per request.
    return functools.partial(run_request_handler, func, is_async)


def websocket_handler_app(func: Callable[[WebSocket], Awaitable[None]]) -> ASGIApp:
    """The ASGI app that runs ``func(websocket)``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        try:
            await func(websocket)
        except WebSocketDisconnect:
            pass  # the peer left: a normal end for a WebSocket, nothing to report
        except HTTPException as exc:
            from asgikit.websockets import WebSocketState

            if websocket.application_state is WebSocketState.CONNECTING:
                await deny_websocket(scope, receive, send, exc.status_code, exc.detail)
            else:
                raise

    return app


async def deny_websocket(
    scope: Scope, receive: Receive, send: Send, status: int, detail: str = ""
) -> None:
    """Refuse a handshake: an HTTP response where the server allows it, else a close (403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = detail.encode("utf-8")
        await send(
            {
                "type": "websocket.http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 1008 if status < 500 else 1011})


class BaseRoute:
    """What a router knows of each entry: how it matches and how to build its URL."""

    name: str | None = None
    path: CompiledPath

    def lifespan_app(self) -> ASGIApp | None:
        """The app to forward lifespan to, if this entry holds one."""
        return None

    def url_path_for(self, name: str, params: dict[str, Any]) -> str | None:
        """The path below the router for route ``name``, or ``None``."""
        if name != self.name:
            return None
        try:
            path, rest = self.path.build(params)
        except KeyError:
            return None
        return None if rest else path


class _EndpointRoute(BaseRoute):
    """A path and its endpoint: a handler (wrapped once into an app) or an ASGI app."""

    def __init__(
        self,
        path: str,
        endpoint: Any,
        name: str | None,
        handler_app: Callable[[Any], ASGIApp],
    ) -> None:
        if not path.startswith("/"):
            raise ValueError(f"route paths start with '/': {path!r}")
        self.path = compile_path(path)
        self.endpoint = endpoint
        if name is None:  # a callable object is named after its class, as in Starlette
            name = getattr(endpoint, "__name__", None) or type(endpoint).__name__
        self.name = name
        self.is_handler = _is_handler(endpoint)
        self.app: ASGIApp = handler_app(endpoint) if self.is_handler else endpoint

    def lifespan_app(self) -> ASGIApp | None:
        return None if self.is_handler else self.app

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path.template!r}, name={self.name!r})"


class Route(_EndpointRoute):
    """An HTTP route; see ``route``."""

    def __init__(
        self,
        path: str,
        endpoint: Any,
        *,
        methods: Iterable[str] | None = None,
        name: str | None = None,
        schema: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(path, endpoint, name, request_handler_app)
        if schema is not None and not isinstance(schema, Mapping):
            raise TypeError("schema= takes a mapping: an OpenAPI operation object")
        self.schema = schema
        if methods is None:
            self.methods: frozenset[str] | None = (
                frozenset({"GET", "HEAD"}) if self.is_handler else None
            )
        else:
            upper = {m.upper() for m in methods}
            if "GET" in upper:
                upper.add("HEAD")
            self.methods = frozenset(upper)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the endpoint (the method is checked; the path is not)."""
        if self.methods is not None and scope.get("method") not in self.methods:
            await method_not_allowed(scope, receive, send, self.methods)
            return
        await self.app(scope, receive, send)


class WebSocketRoute(_EndpointRoute):
    """A WebSocket route; see ``websocket_route``."""

    def __init__(self, path: str, endpoint: Any, *, name: str | None = None) -> None:
        super().__init__(path, endpoint, name, websocket_handler_app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the endpoint."""
        await self.app(scope, receive, send)


def _find_router(app: Any) -> Any:
    """The router inside ``app``, looking through middleware that record their app."""
    for _ in range(32):
        if hasattr(app, "_url_path_for"):
            return app
        inner = getattr(app, "__asgikit_app__", None) or getattr(app, "app", None)
        if inner is None or inner is app:
            return None
        app = inner
    return None


def _below(own: str | None, name: str) -> str | None:
    """``name`` as the app inside a named mount or host knows it, or ``None``.

    ``"admin:users"`` is ``"users"`` inside the entry named ``admin``; an
    unnamed entry passes every name through.
    """
    if own is None:
        return name
    prefix = own + ":"
    return name[len(prefix) :] if name.startswith(prefix) else None


def _inner_url_path_for(app: ASGIApp, name: str, params: dict[str, Any]) -> str | None:
    router = _find_router(app)
    if router is None:
        return None
    found: str | None = router._url_path_for(name, params)
    return found


class Mount(BaseRoute):
    """An app mounted below a path prefix; see ``mount``."""

    def __init__(self, prefix: str, app: ASGIApp, *, name: str | None = None) -> None:
        if prefix and not prefix.startswith("/"):
            raise ValueError(f"mount prefixes start with '/': {prefix!r}")
        prefix = prefix.rstrip("/")
        self.prefix = prefix
        self.path = compile_path(prefix, prefix=True)
        self.app = app
        self.name = name

    def lifespan_app(self) -> ASGIApp | None:
        return self.app

    def url_path_for(self, name: str, params: dict[str, Any]) -> str | None:
        if self.name is not None and name == self.name:
            # The mount itself: its prefix, and what is left as ``path``.
            inner = params.pop("path", None)
            try:
                path, rest = self.path.build(params)
            except KeyError:
                return None
            if rest:
                return None
            return path + "/" + str(inner).lstrip("/") if inner is not None else path + "/"
        inner_name = _below(self.name, name)
        if inner_name is None:
            return None
        mine = {k: v for k, v in params.items() if k in self.path.convertors}
        try:
            prefix, _ = self.path.build(mine)
        except KeyError:
            return None
        rest = {k: v for k, v in params.items() if k not in self.path.convertors}
        inner_path = _inner_url_path_for(self.app, inner_name, rest)
        return None if inner_path is None else prefix + inner_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"Mount({self.prefix!r}, name={self.name!r})"


class Host(BaseRoute):
    """An app chosen by the ``Host`` header; see ``host``."""

    def __init__(self, pattern: str, app: ASGIApp, *, name: str | None = None) -> None:
        if "/" in pattern:
            raise ValueError(f"a host pattern has no '/': {pattern!r}")
        self.pattern = pattern
        self.host_pattern = compile_host(pattern)
        self.host = self.host_pattern.name
        self.path = compile_path("")
        self.app = app
        self.name = name

    def match_host(self, scope: Scope) -> dict[str, Any] | None:
        """The host parameters if the request's ``Host`` matches the pattern, else ``None``.

        The router's rule (``HostPattern``): names without case, ports as
        numbers, a malformed Host matches nothing; the first Host counts.
        """
        return self.host_pattern.match(host_header(scope)[0], scope.get("scheme") or "http")

    def lifespan_app(self) -> ASGIApp | None:
        return self.app

    def url_path_for(self, name: str, params: dict[str, Any]) -> str | None:
        inner_name = _below(self.name, name)
        if inner_name is None:
            return None
        # The host's own parameters name the host, not a path: they are dropped.
        rest = {k: v for k, v in params.items() if k not in self.host.convertors}
        return _inner_url_path_for(self.app, inner_name, rest)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


async def method_not_allowed(
    scope: Scope, receive: Receive, send: Send, methods: Iterable[str]
) -> None:
    """Answer 405 with the ``Allow`` header (RFC 9110 §15.5.6)."""
    allow = ", ".join(sorted(methods))
    if scope["type"] == "websocket":
        await deny_websocket(scope, receive, send, 404, "Not Found")
        return
    await answer_http_exception(scope, receive, send, HTTPException(405, headers={"Allow": allow}))


#: The default 404 as a request without ``Accept`` gets it, built once: a miss
#: with no handler table and no ``Accept`` (most of them: scanners, bots) then
#: costs little more than a raw ASGI 404.  A response object is reusable.
PLAIN_NOT_FOUND = http_exception_response({}, HTTPException(404))


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The default answer when nothing matches: 404 (a refused handshake for WebSockets)."""
    if scope["type"] == "websocket":
        await deny_websocket(scope, receive, send, 404, "Not Found")
        return
    if HANDLERS_KEY not in scope and RAISE_KEY not in scope:
        for name, _ in scope.get("headers", ()):
            if name == b"accept":
                break
        else:
            await PLAIN_NOT_FOUND(scope, receive, send)
            return
    await answer_http_exception(scope, receive, send, HTTPException(404))


__all__ = [
    "PLAIN_NOT_FOUND",
    "BaseRoute",
    "Host",
    "Mount",
    "RequestHandler",
    "Route",
    "WebSocketHandler",
    "WebSocketRoute",
    "answer_http_exception",
    "deny_websocket",
    "method_not_allowed",
    "not_found",
    "request_handler_app",
    "run_request_handler",
    "websocket_handler_app",
]
