"""Redirect plain-text requests to their secure URL: ``http`` → ``https``, ``ws`` → ``wss``.

The redirect keeps the host, path and query; an explicit ``:80`` is dropped
(and ``:443`` kept off).  ``307`` by default keeps the method and body of the
request (RFC 9110 §15.4.8); ``308`` makes it permanent.  A WebSocket
handshake gets the redirect through the ``websocket.http.response``
extension where the server has it (browsers do not follow it, but the
client learns why), and a close otherwise.

The scheme is read from the scope: behind a TLS-terminating proxy, put
``proxy_headers`` outside this middleware so the scope says ``https``.
Pair it with ``security_headers(hsts_max_age=...)`` so browsers stop asking
over http at all.

The redirect goes to the request's ``Host``, and to the server's own address
only when the client sent none (an HTTP/1.0 client).  A ``Host`` that is
malformed (a port past 65535 included), sent twice (RFC 9112 §3.2), or
missing with no server address to fall back on is answered ``400``: a
redirect to a guessed host (``localhost``) would send the client elsewhere.
"""

from __future__ import annotations

from asgikit._url import URL, host_header, valid_host
from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._http import text_response
from asgikit.types import ASGIApp, Receive, Scope, Send

_SECURE = {"http": "https", "ws": "wss"}


@middleware
def https_redirect(app: ASGIApp, *, status_code: int = 307, exclude: Exclude = None) -> ASGIApp:
    """Redirect ``http``/``ws`` requests to ``https``/``wss`` with ``status_code`` (307 or 308)."""
    if status_code not in (301, 302, 303, 307, 308):
        raise ValueError("status_code must be a redirect status (307 or 308)")
    excluded = compile_exclude(exclude)

    async def https_redirect_app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        scheme = scope.get("scheme") or ("ws" if kind == "websocket" else "http")
        secure = _SECURE.get(scheme)
        if secure is None or (excluded is not None and excluded(scope)):
            await app(scope, receive, send)
            return
        host, twice = host_header(scope)
        if twice or (host and not valid_host(host)) or not (host or scope.get("server")):
            await text_response(scope, receive, send, 400, "Invalid host header")
            return
        url = URL.from_scope(scope)
        netloc = url.netloc
        if url.port in (80, 443):
            netloc = netloc.rpartition(":")[0]
        location = str(url.replace(scheme=secure, netloc=netloc)).encode("latin-1")
        await text_response(
            scope, receive, send, status_code, "Redirecting", [(b"location", location)]
        )

    return https_redirect_app


__all__ = ["https_redirect"]
