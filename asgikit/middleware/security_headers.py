"""Security response headers with safe defaults, never overwriting what the app set.

Defaults: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy:
strict-origin-when-cross-origin``, ``X-Frame-Options: DENY`` and
``Cross-Origin-Opener-Policy: same-origin``.  By option:
``Strict-Transport-Security`` (RFC 6797; sent on ``https`` requests only, as
§7.2 requires), ``Content-Security-Policy`` (and its ``-Report-Only``
twin), ``Permissions-Policy`` and ``Cross-Origin-Resource-Policy``.  Pass
``None`` to leave a default out.  A header the app already set is kept as
the app set it, so a page can loosen (or tighten) its own policy.
"""

from __future__ import annotations

from collections.abc import Awaitable

from asgikit.composition import middleware
from asgikit.datastructures import validate_header
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

Fields = list[tuple[bytes, bytes]]


@middleware
def security_headers(
    app: ASGIApp,
    *,
    content_type_options: str | None = "nosniff",
    referrer_policy: str | None = "strict-origin-when-cross-origin",
    frame_options: str | None = "DENY",
    cross_origin_opener_policy: str | None = "same-origin",
    hsts_max_age: int | None = None,
    hsts_include_subdomains: bool = False,
    hsts_preload: bool = False,
    content_security_policy: str | None = None,
    content_security_policy_report_only: str | None = None,
    permissions_policy: str | None = None,
    cross_origin_resource_policy: str | None = None,
    exclude: Exclude = None,
) -> ASGIApp:
    """Add security headers the app did not set itself.

    ``hsts_max_age`` (seconds; a year is ``31536000``) turns HSTS on, with
    ``includeSubDomains`` and ``preload`` by option.  Values are checked
    here: one with CR, LF or NUL raises ``ValueError``.
    """
    chosen = {
        "x-content-type-options": content_type_options,
        "referrer-policy": referrer_policy,
        "x-frame-options": frame_options,
        "cross-origin-opener-policy": cross_origin_opener_policy,
        "content-security-policy": content_security_policy,
        "content-security-policy-report-only": content_security_policy_report_only,
        "permissions-policy": permissions_policy,
        "cross-origin-resource-policy": cross_origin_resource_policy,
    }
    defaults: list[tuple[bytes, bytes]] = []
    for name, value in chosen.items():
        if value is not None:
            pair = (name.encode("ascii"), value.encode("latin-1"))
            validate_header(*pair)
            defaults.append(pair)
    hsts: tuple[bytes, bytes] | None = None
    if hsts_max_age is not None:
        if hsts_max_age < 0:
            raise ValueError("hsts_max_age must not be negative")
        value = f"max-age={hsts_max_age}"
        if hsts_include_subdomains:
            value += "; includeSubDomains"
        if hsts_preload:
            value += "; preload"
        hsts = (b"strict-transport-security", value.encode("ascii"))
    elif hsts_include_subdomains or hsts_preload:
        raise ValueError("hsts_include_subdomains and hsts_preload need hsts_max_age")
    plain: Fields = list(defaults)
    secure = [*defaults, hsts] if hsts is not None else plain
    # Lengths of the names this may add: an app header of another length
    # cannot be one of them, so the usual start message (content-type,
    # content-length...) is extended in one step, no name lower-cased.
    lengths = frozenset(len(name) for name, _ in secure)
    excluded = compile_exclude(exclude)

    def secured(message: Message, headers: list[tuple[bytes, bytes]], wanted: Fields) -> Message:
        # An app header of a length this may add: each one needs a look.
        present = {name.lower() for name, _ in headers if len(name) in lengths}
        copy = {**message}
        copy["headers"] = [*headers, *(pair for pair in wanted if pair[0] not in present)]
        return copy

    async def security_headers_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (excluded is not None and excluded(scope)):
            await app(scope, receive, send)
            return
        wanted = secure if scope.get("scheme") == "https" else plain
        if not wanted:
            await app(scope, receive, send)
            return

        # A plain function handing back the server's awaitable (see asgikit._send).
        def send_secured(message: Message) -> Awaitable[None]:
            if message["type"] != "http.response.start":
                return send(message)
            headers = message.get("headers", ())
            if type(headers) is not list:
                headers = list(headers)  # read twice below
            for name, _ in headers:
                if len(name) in lengths:
                    return send(secured(message, headers, wanted))
            message = {**message}
            message["headers"] = headers + wanted  # a new list: the app's is left as it was
            return send(message)

        await app(scope, receive, send_secured)

    return security_headers_app


__all__ = ["security_headers"]
