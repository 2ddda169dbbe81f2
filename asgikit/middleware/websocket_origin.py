"""``websocket_origin``: refuse WebSocket handshakes from other origins.

Browsers send cookies with a WebSocket handshake from any page, and CORS does
not apply to WebSockets, so a hostile page can open a socket with the user's
session (cross-site WebSocket hijacking).  Browsers always send ``Origin``
with the handshake (RFC 6455 §4.1, §10.2), which this layer checks: the
request's own origin and the ``allowed_origins`` pass; any other is refused
with 403 before the app sees it.  ``"https://*.example.com"`` allows every
subdomain; ``"*"`` allows all.  A handshake without ``Origin`` cannot come from
a browser page and passes unless ``allow_missing=False``.  HTTP and lifespan
pass through untouched.
"""

from __future__ import annotations

from collections.abc import Iterable

from asgikit.composition import middleware
from asgikit.datastructures import normalize_origin
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.routes import deny_websocket
from asgikit.types import ASGIApp, Receive, Scope, Send

_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")


@middleware
def websocket_origin(
    app: ASGIApp,
    *,
    allowed_origins: Iterable[str] = (),
    allow_missing: bool = True,
    exclude: Exclude = None,
) -> ASGIApp:
    """Refuse (403) WebSocket handshakes whose ``Origin`` is neither the site's own nor allowed.

    ``allowed_origins`` are ``scheme://host[:port]`` (``https://*.example.com``
    for subdomains, ``"*"`` for any).  ``exclude`` skips paths or scopes.
    """
    exact: set[str] = set()
    suffixes: list[tuple[str, str]] = []  # (scheme://, .domain[:port])
    allow_all = False
    for entry in allowed_origins:
        origin = normalize_origin(entry)
        if origin == "*":
            allow_all = True
            continue
        scheme, sep, host = origin.partition("://")
        if not sep or not scheme or not host:
            raise ValueError(f"allowed origins look like https://example.com, not {entry!r}")
        if host.startswith("*."):
            suffixes.append((scheme + "://", host[1:]))
        else:
            exact.add(origin)
    skip = compile_exclude(exclude)

    def allowed(scope: Scope) -> bool:
        origin = host = None
        for key, value in scope.get("headers", ()):
            if key == b"origin" and origin is None:
                origin = value
            elif key == b"host" and host is None:
                host = value
        if origin is None:
            return allow_missing
        if allow_all:
            return True
        normalized = normalize_origin(origin.decode("latin-1"))
        if normalized in exact:
            return True
        for scheme, suffix in suffixes:
            if normalized.startswith(scheme) and normalized.endswith(suffix):
                # One or more labels before the suffix ("*.example.com" is not
                # "example.com"), and nothing that is not part of a host name.
                labels = normalized[len(scheme) : -len(suffix)]
                if labels and _LABEL_CHARS.issuperset(labels):
                    return True
        if host is not None:
            scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
            return normalized == normalize_origin(f"{scheme}://{host.decode('latin-1')}")
        return False

    async def websocket_origin_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or (skip is not None and skip(scope)) or allowed(scope):
            await app(scope, receive, send)
            return
        await deny_websocket(scope, receive, send, 403, "WebSocket origin not allowed")

    return websocket_origin_app


__all__ = ["websocket_origin"]
