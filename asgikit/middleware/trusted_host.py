"""Refuse requests for hosts the app does not serve (Host header attacks).

The ``Host`` header (HTTP/2's ``:authority``, which servers put there) is
compared with ``allowed_hosts``: exact names, ``*.example.com`` for any
subdomain of ``example.com`` (not ``example.com`` itself, and never
``example.com.evil.com``), or ``"*"`` for any.  Names compare without case,
without the port and without a trailing dot (RFC 1034 §3.1).  A name with
an empty label, a second trailing dot or a percent-escape is malformed.
Anything else — a missing, empty or malformed Host (a port past 65535 included),
and two Host headers (RFC 9112 §3.2), even with ``"*"`` — gets ``400``; a
WebSocket handshake is refused the same way.  With ``www_redirect`` a
request for ``example.com`` is redirected (307) to ``www.example.com`` when
only the latter is allowed.

It does not look at ``X-Forwarded-Host``: put ``proxy_headers`` outside it
to have that believed from trusted proxies.

Unlike Starlette's ``TrustedHostMiddleware``: ``allowed_hosts`` has no
default (``["*"]`` checks nothing), a port past 65535 makes the Host
malformed, and IPvFuture literals (``[v1.foo]``) are refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from asgikit._url import URL, host_header, valid_host
from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._http import text_response
from asgikit.types import ASGIApp, Receive, Scope, Send


def host_name(host: str) -> str | None:
    """The name part of a ``host[:port]`` value, lower-cased, or ``None`` if malformed.

    A name has no empty label (``.example.com``, ``a..example.com``), at most
    one trailing dot (RFC 1034 §3.1), and no percent-escape: a browser would
    decode ``evil%2f.example.com`` to another name, and none sends one.
    """
    if not valid_host(host):
        return None
    if host.startswith("["):
        return host[: host.index("]") + 1].lower()
    name = host.partition(":")[0].lower().removesuffix(".")
    if not name or name[0] == "." or name[-1] == "." or ".." in name or "%" in name:
        return None
    return name


@middleware
def trusted_host(
    app: ASGIApp,
    *,
    allowed_hosts: Sequence[str],
    www_redirect: bool = True,
    exclude: Exclude = None,
) -> ASGIApp:
    """Answer ``400`` unless the request's Host matches one of ``allowed_hosts``.

    ``allowed_hosts`` takes names (``"example.com"``, ``"[::1]"``),
    ``"*.example.com"`` patterns, or ``"*"``; ports are not part of a pattern.
    """
    if isinstance(allowed_hosts, str):
        raise TypeError("allowed_hosts must be a list of host names, not a single string")
    exact: set[str] = set()
    suffixes: list[str] = []
    any_host = False
    for pattern in allowed_hosts:
        pattern = pattern.strip().lower()
        if pattern == "*":
            any_host = True
        elif pattern.startswith("*."):
            domain = pattern[2:].rstrip(".")
            if not domain or host_name(domain) != domain:
                raise ValueError(f"invalid host pattern: {pattern!r}")
            suffixes.append("." + domain)
        elif "*" in pattern or host_name(pattern) != pattern.rstrip("."):
            raise ValueError(f"invalid host pattern (no port, '*' only as '*.'): {pattern!r}")
        else:
            exact.add(pattern.rstrip("."))
    suffix_tuple = tuple(suffixes)
    excluded = compile_exclude(exclude)

    def allowed(name: str) -> bool:
        return any_host or name in exact or name.endswith(suffix_tuple)

    async def trusted_host_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await app(scope, receive, send)
            return
        if excluded is not None and excluded(scope):
            await app(scope, receive, send)
            return
        host, twice = host_header(scope)
        if twice:
            await text_response(scope, receive, send, 400, "Invalid host header")
            return
        if any_host:
            await app(scope, receive, send)
            return
        name = host_name(host)
        if name is not None and allowed(name):
            await app(scope, receive, send)
            return
        if (
            www_redirect
            and name is not None
            and scope["type"] == "http"
            and not name.startswith("www.")
            and ("www." + name) in exact
        ):
            url = URL.from_scope(scope)
            location = str(url.replace(netloc="www." + host.lower())).encode("latin-1")
            await text_response(
                scope, receive, send, 307, "Redirecting", [(b"location", location)]
            )
            return
        await text_response(scope, receive, send, 400, "Invalid host header")

    return trusted_host_app


__all__ = ["host_name", "trusted_host"]
