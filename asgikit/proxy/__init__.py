"""``reverse_proxy``: an ASGI app that forwards what it receives to an upstream.

Mount it anywhere (``mount("/api", reverse_proxy("http://backend:8000"))``):
the path below ``root_path`` is what the upstream sees, after the upstream
URL's own path.  HTTP goes through one shared ``httpx.AsyncClient`` with a
keep-alive pool (see :mod:`asgikit.proxy.http`); the client made here runs
on asgikit's own lean HTTP/1.1 transport (:mod:`asgikit.proxy._transport`)
rather than httpcore, whose pool costs grow with its size.  WebSockets go
through the ``websockets`` protocol engine (see
:mod:`asgikit.proxy.websocket`).  Both come with the ``proxy`` extra:
``pip install 'asgikit-toolkit[proxy]'``.

The client is opened on ``lifespan.startup`` and closed on shutdown (the
app answers lifespan itself, so a router forwards it here); without a
lifespan it is opened on the first request (and again if the event loop
changed: a pooled connection belongs to its loop), and ``await app.aclose()``
closes it.  A client passed in is the caller's to close.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http.cookiejar import Cookie, CookieJar
from typing import Any

from asgikit._httpx import httpx
from asgikit.proxy._config import ProxyOptions, Upstream
from asgikit.proxy._transport import ProxyTransport
from asgikit.proxy.http import forward_http
from asgikit.types import ASGIApp, Receive, Scope, Send


class _NoCookies(CookieJar):
    # A proxy relays Set-Cookie to its clients and must never keep one: a
    # shared jar would leak one user's cookies into another's requests.
    def extract_cookies(self, response: Any, request: Any) -> None:
        return None

    def set_cookie(self, cookie: Cookie) -> None:
        return None


def _current_loop() -> object:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:  # not asyncio: the only other backend anyio runs on is trio
        import trio

        return trio.lowlevel.current_trio_token()


class ReverseProxy:
    """The app :func:`reverse_proxy` returns; its attributes are not a public API."""

    def __init__(
        self,
        options: ProxyOptions,
        client: httpx.AsyncClient | None,
        limits: httpx.Limits,
        timeout: httpx.Timeout,
        verify: Any,
    ) -> None:
        self.options = options
        self._client = client
        self._transport: ProxyTransport | None = None
        self._own_client = client is None
        self._limits = limits
        self._timeout = timeout
        self._timeouts = timeout.as_dict()
        self._verify = verify
        self._client_loop: object = None

    def _new_client(self) -> httpx.AsyncClient:
        self._transport = ProxyTransport(limits=self._limits, verify=self._verify)
        return httpx.AsyncClient(
            transport=self._transport,
            timeout=self._timeout,
            follow_redirects=False,
            trust_env=False,  # an upstream is reached directly, never through $HTTP_PROXY
            cookies=_NoCookies(),
        )

    def _lazy_client(self) -> httpx.AsyncClient:
        # No lifespan: the client is made on first use, and made again if the
        # event loop changed (its pooled connections belong to the old one).
        loop = _current_loop()
        if self._client is None or self._client_loop is not loop:
            self._client = self._new_client()
            self._client_loop = loop
        return self._client

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            client = self._client
            if self._own_client and (client is None or self._client_loop is not None):
                client = self._lazy_client()
            assert client is not None
            await forward_http(
                scope, receive, send, client, self.options, self._transport, self._timeouts
            )
        elif kind == "websocket":
            from asgikit.proxy.websocket import forward_websocket

            await forward_websocket(scope, receive, send, self.options)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        else:
            raise RuntimeError(f"reverse_proxy cannot handle a {kind!r} scope")

    async def aclose(self) -> None:
        """Close the client this app made (for use without a lifespan; a no-op otherwise)."""
        if self._own_client and self._client is not None:
            client, self._client = self._client, None
            self._transport = None
            await client.aclose()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self._own_client:
                    await self.aclose()  # one made lazily before the startup, if any
                    self._client = self._new_client()
                    self._client_loop = None  # owned by the lifespan, not lazily made
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def reverse_proxy(
    upstream: str,
    *,
    client: httpx.AsyncClient | None = None,
    timeout: float | None = 60.0,
    connect_timeout: float | None = 5.0,
    pool_timeout: float | None = 10.0,
    deadline: float | None = 300.0,
    body_timeout: float | None = 30.0,
    rewrite_path: Callable[[str], str] | None = None,
    preserve_host: bool = False,
    add_forwarded: bool = True,
    max_connections: int | None = 100,
    max_keepalive_connections: int | None = 100,
    keepalive_expiry: float | None = 5.0,
    verify: Any = True,
    websocket_max_size: int | None = 16 * 1024 * 1024,
) -> ASGIApp:
    """An ASGI app forwarding HTTP and WebSocket traffic to ``upstream``.

    ``upstream`` is ``http(s)://host[:port][/base]``; a request for ``/x``
    below the app's ``root_path`` goes to ``/base/x``, with the client's
    query string and percent-encoding.  ``rewrite_path`` maps that
    percent-encoded path (``/x``) to another before ``/base`` is prepended.

    ``timeout`` bounds each wait for the upstream (a read, a write) and
    ``connect_timeout`` the connection; past them the client gets a ``504``.
    An unreachable upstream is a ``502``; with every one of the
    ``max_connections`` busy for ``pool_timeout``, a ``503``.  These, the
    keep-alive pool options and ``verify`` (TLS, as httpx takes it) shape the
    client made here.  A ``client`` passed in is used as is and never closed
    here (let it keep no cookies: it is shared); each of ``timeout``,
    ``connect_timeout`` and ``pool_timeout`` given with it applies to every
    request it sends (one left at its default takes the client's own), and
    the pool options and ``verify``, which it cannot take, are refused with
    a ``TypeError`` rather than ignored.  ``verify`` also applies to a
    ``wss`` upstream.

    Slow clients are bounded too, so that they cannot hold every upstream
    connection: ``body_timeout`` is how long the client's body may pause
    (before its first chunk and between two), ``deadline`` how long the
    request may take from its arrival until the upstream's response starts
    (a body that keeps trickling in, then the upstream's answer).  A client
    past either gets a ``408`` (an upstream past the deadline, a ``504``) and
    its upstream connection is closed.  Once the response has started,
    ``timeout`` bounds each read: a long download or an event stream is not
    cut by the deadline.

    ``preserve_host`` sends the client's ``Host`` instead of the upstream's.
    ``add_forwarded`` appends to ``X-Forwarded-For`` and ``Forwarded``
    (RFC 7239), sets ``X-Forwarded-Proto``, ``X-Forwarded-Host``,
    ``X-Forwarded-Port``, ``X-Real-IP`` and (under a ``root_path``)
    ``X-Forwarded-Prefix`` from what it saw, and drops every header a client
    could write to pass for a proxy (``X-Original-URL``, ``X-Rewrite-URL``,
    ``X-Client-IP``...); without it these pass untouched (an outer balancer
    owns them).  Requests two servers could read two ways are refused with
    a ``400`` and never forwarded: two ``Host`` headers, ``Content-Length``
    with ``Transfer-Encoding``, a malformed ``Content-Length``, a dot segment
    in any spelling (``..``, ``%2e%2e``, ``..;``, ``..%5c``).  An upstream
    that sends more than it declared never reaches the next client: its
    connection is closed (a body on a ``204``/``304``/``HEAD`` answer, when
    already there, makes it a ``502``).  A response head past 100 KiB
    (interim ``1xx`` answers included) is a ``502``; an answer framed both
    by ``Transfer-Encoding`` and ``Content-Length`` goes down without the
    latter (RFC 9112 §6.3).  A request that is not idempotent is never sent
    twice: only one whose connection was found dead before any of its bytes
    left is retried (RFC 9110 §9.2.2).
    ``websocket_max_size`` limits one message from the upstream, in bytes.
    """
    if client is not None:
        _refuse_pool_options(
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            verify=verify,
        )
    timeouts = _request_timeouts(client, timeout, connect_timeout, pool_timeout)
    options = ProxyOptions(
        upstream=Upstream.parse(upstream),
        timeout=timeout,
        connect_timeout=connect_timeout,
        deadline=deadline,
        body_timeout=body_timeout,
        rewrite_path=rewrite_path,
        preserve_host=preserve_host,
        add_forwarded=add_forwarded,
        websocket_max_size=websocket_max_size,
        verify=verify,
    )
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry,
    )
    return ReverseProxy(options, client, limits, timeouts, verify)


# What ``reverse_proxy``'s signature says; an option equal to its default was
# not given (the only way to tell, short of a sentinel in the signature).
_DEFAULTS: dict[str, Any] = {
    "timeout": 60.0,
    "connect_timeout": 5.0,
    "pool_timeout": 10.0,
    "max_connections": 100,
    "max_keepalive_connections": 100,
    "keepalive_expiry": 5.0,
    "verify": True,
}


def _request_timeouts(
    client: httpx.AsyncClient | None,
    timeout: float | None,
    connect_timeout: float | None,
    pool_timeout: float | None,
) -> httpx.Timeout:
    # Sent with every request.  With a client passed in, a timeout left at
    # its default takes the client's own value; one given here wins.
    if client is None:
        return httpx.Timeout(timeout, connect=connect_timeout, pool=pool_timeout)
    own = client.timeout
    if timeout == _DEFAULTS["timeout"]:
        read, write = own.read, own.write
    else:
        read = write = timeout
    if connect_timeout == _DEFAULTS["connect_timeout"]:
        connect_timeout = own.connect
    if pool_timeout == _DEFAULTS["pool_timeout"]:
        pool_timeout = own.pool
    return httpx.Timeout(connect=connect_timeout, read=read, write=write, pool=pool_timeout)


def _refuse_pool_options(**given: Any) -> None:
    # These shape the pool of the client made here: a client passed in has
    # its own, which they cannot reach.  Silently ignoring them would leave
    # the operator believing in a limit that does not exist.
    shaped = [name for name, value in given.items() if value != _DEFAULTS[name]]
    if shaped:
        names = ", ".join(shaped)
        raise TypeError(
            f"reverse_proxy(client=...) cannot apply {names}: they shape the client "
            "reverse_proxy makes. Set them on the client you pass (httpx.AsyncClient("
            "limits=httpx.Limits(...), verify=...)), or pass no client."
        )


__all__ = ["reverse_proxy"]
