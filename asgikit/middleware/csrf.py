"""``csrf``: cross-site request forgery protection for cookie-authenticated apps.

Safe methods (RFC 9110 §9.2.1: GET, HEAD, OPTIONS, TRACE) pass.  Every other
request must pass two checks, or gets a 403 that says which one failed:

1. Where it comes from.  ``Sec-Fetch-Site: same-origin`` (or ``none``, a
   request the user made directly) passes.  Otherwise an ``Origin`` header
   (RFC 6454) must be the request's own origin or one of ``trusted_origins``;
   a request that says it is cross-site or same-site without an allowed
   ``Origin`` fails.  A request with neither header (not from a browser that
   sends them) is left to the second check.
2. A signed double-submit token.  The secret lives in a cookie (set on the
   first response that lacks it) and must come back in the ``X-CSRF-Token``
   header or the ``csrf_token`` form field; its HMAC-SHA256 signature must
   verify, so that a cookie planted by a sibling subdomain with a made-up
   value does not pass.

The app gets a token at ``scope["csrf_token"]`` (or :func:`csrf_token`) to put
in forms and pages: the secret masked with a fresh random pad on every request
(``base64url(pad + (pad XOR secret))``, as Django does), so that no two
answers carry the same bytes and ``compress`` plus a reflected parameter cannot
recover it byte by byte (BREACH).  A masked token is unmasked and compared with
the cookie.  The bare cookie value is accepted too, in the header or the
field: it is what a page's script copies from the cookie, and it never appears
in a response body unless the app itself prints the cookie, so accepting it
gives BREACH nothing to measure.  The form field is read by peeking at most
``max_body_peek`` bytes of the body, which the app still receives whole; a
token further in (after a large file part) must be sent in the header.

Not covered: the token is not tied to a user's session, so a token the
attacker obtained is only useless to them together with the origin check;
requests authenticated without cookies (API tokens) need no CSRF check at
all — ``exclude`` their paths.  WebSockets: see ``websocket_origin``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

from asgikit._cookies import format_set_cookie
from asgikit._send import wrap_send
from asgikit.composition import middleware
from asgikit.datastructures import normalize_origin, parse_cookie_header
from asgikit.exceptions import ClientDisconnect, HTTPException
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.requests import Request
from asgikit.responses import http_exception_response
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# A token is 32 random characters, a dot and a 43-character signature.
_MAX_TOKEN = 128


def csrf_token(connection: Mapping[str, Any]) -> str:
    """The CSRF token for this request (a scope or a ``Request``), to put in a form.

    It is masked afresh on every request, so it changes from page to page;
    every one of them stays valid as long as the cookie does.
    """
    token = connection.get("csrf_token")
    if not isinstance(token, str):
        raise RuntimeError("no CSRF token here: wrap the app in csrf()")
    return token


def _own_origin(scope: Scope, host: bytes | None) -> str | None:
    if host is None:
        return None
    scheme = "https" if scope.get("scheme") in ("https", "wss") else "http"
    return normalize_origin(f"{scheme}://{host.decode('latin-1')}")


class _TokenSigner:
    def __init__(self, secret_key: str | bytes | Sequence[str | bytes]) -> None:
        keys = [secret_key] if isinstance(secret_key, (str, bytes)) else list(secret_key)
        if not keys or not all(isinstance(k, (str, bytes)) and k for k in keys):
            raise ValueError("secret_key must be a non-empty str or bytes, or a list of them")
        self._keys = [
            hmac.new(
                k.encode("utf-8") if isinstance(k, str) else k, b"asgikit.csrf", hashlib.sha256
            ).digest()
            for k in keys
        ]

    def _signature(self, key: bytes, nonce: str) -> str:
        digest = hmac.new(key, nonce.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def new_token(self) -> str:
        nonce = secrets.token_urlsafe(24)
        return f"{nonce}.{self._signature(self._keys[0], nonce)}"

    def valid(self, token: str) -> bool:
        nonce, dot, signature = token.partition(".")
        if not dot or len(token) > _MAX_TOKEN or not token.isascii():
            return False
        return any(
            hmac.compare_digest(self._signature(key, nonce), signature) for key in self._keys
        )


def _mask(secret: str) -> str:
    """``secret`` XORed with a fresh random pad: ``base64url(pad + masked)``, unpadded."""
    raw = secret.encode("ascii")
    pad = secrets.token_bytes(len(raw))
    masked = bytes(a ^ b for a, b in zip(pad, raw, strict=True))
    return base64.urlsafe_b64encode(pad + masked).rstrip(b"=").decode("ascii")


def _unmask(token: str) -> bytes | None:
    """The secret a masked token carries, or ``None`` when ``token`` is not one."""
    # Two secrets' worth of bytes in base64: anything longer is not a token.
    if len(token) > _MAX_TOKEN * 3 or not token.isascii():
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        return None
    half, odd = divmod(len(raw), 2)
    if odd or not half:
        return None
    return bytes(a ^ b for a, b in zip(raw[:half], raw[half:], strict=True))


def _matches(sent: str, cookie: str) -> bool:
    """Whether the submitted token (masked, or the bare cookie value) stands for ``cookie``."""
    expected = cookie.encode("ascii")
    # A signed secret always holds a dot; base64url never does.
    if "." in sent:
        return hmac.compare_digest(sent.encode("utf-8"), expected)
    secret = _unmask(sent)
    return secret is not None and hmac.compare_digest(secret, expected)


def _urlencoded_field(body: bytes, complete: bool, field: str) -> str | None:
    pairs = body.split(b"&")
    if not complete:
        pairs.pop()  # may be cut short by the peek
    for pair in pairs:
        name, _, value = pair.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == field:
            return unquote_plus(value.decode("latin-1"))
    return None


def _multipart_field(body: bytes, boundary: str, field: str) -> str | None:
    from multipart import ParserError, PushMultipartParser  # type: ignore[import-untyped]

    parser = PushMultipartParser(boundary, max_segment_count=1000)
    found: list[bytes] | None = None
    try:
        for event in parser.parse(body):
            if event is None:
                if found is not None:
                    return b"".join(found).decode("latin-1")
            elif isinstance(event, (bytes, bytearray)):
                if found is not None:
                    found.append(bytes(event))
            elif event.name == field and event.filename is None:
                found = []
    except ParserError:
        return None
    return None


@middleware
def csrf(
    app: ASGIApp,
    *,
    secret_key: str | bytes | Sequence[str | bytes],
    cookie_name: str = "csrftoken",
    header_name: str = "x-csrf-token",
    form_field: str | None = "csrf_token",
    trusted_origins: Iterable[str] = (),
    cookie_path: str = "/",
    cookie_domain: str | None = None,
    cookie_secure: bool = False,
    cookie_samesite: str = "lax",
    cookie_max_age: int | None = 365 * 24 * 60 * 60,
    max_body_peek: int = 64 * 1024,
    exclude: Exclude = None,
) -> ASGIApp:
    """Refuse unsafe requests from other origins or without the signed token (403).

    ``secret_key`` may be a list (the first signs, all verify).  The token cookie
    is readable by scripts (not ``HttpOnly``), so a page can copy it into the
    header.  ``form_field=None`` accepts the header only (no body is read).
    ``exclude`` exempts paths (or requests matching a scope predicate).
    """
    signer = _TokenSigner(secret_key)
    header_key = header_name.lower().encode("latin-1")
    trusted = frozenset(normalize_origin(o) for o in trusted_origins)
    attributes = format_set_cookie(
        cookie_name,
        max_age=cookie_max_age,
        path=cookie_path,
        domain=cookie_domain,
        secure=cookie_secure,
        samesite=cookie_samesite,
    ).partition("; ")[2]
    cookie_suffix = f"; {attributes}" if attributes else ""
    skip = compile_exclude(exclude)

    def origin_problem(scope: Scope, headers: dict[bytes, bytes]) -> str | None:
        site = headers.get(b"sec-fetch-site")
        if site in (b"same-origin", b"none"):
            return None
        origin = headers.get(b"origin")
        if origin is None:
            return None if site is None else "a cross-site request without an Origin header"
        normalized = normalize_origin(origin.decode("latin-1"))
        if normalized in trusted or normalized == _own_origin(scope, headers.get(b"host")):
            return None
        return f"the origin {normalized!r} is not trusted"

    async def submitted_token(
        request: Request, headers: dict[bytes, bytes]
    ) -> tuple[str | None, bool]:
        """The token the client sent, and whether the body was peeked at."""
        value = headers.get(header_key)
        if value is not None:
            return value.decode("latin-1"), False
        if form_field is None:
            return None, False
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        kind = content_type.partition(";")[0]
        kind = kind.strip().lower()
        if kind == "application/x-www-form-urlencoded":
            body = await request.peek(max_body_peek + 1)
            complete = len(body) <= max_body_peek
            return _urlencoded_field(body[:max_body_peek], complete, form_field), True
        if kind == "multipart/form-data":
            from multipart import parse_options_header

            boundary = parse_options_header(content_type)[1].get("boundary")
            if not boundary:
                return None, False
            body = await request.peek(max_body_peek)
            return _multipart_field(body, boundary, form_field), True
        return None, False

    async def check(
        scope: Scope, request: Request, headers: dict[bytes, bytes], cookie: str | None
    ) -> tuple[str | None, bool]:
        """Why the request fails, if it does, and whether the body was peeked at."""
        problem = origin_problem(scope, headers)
        if problem is not None:
            return f"CSRF check failed: {problem}.", False
        if cookie is None:
            return f"CSRF check failed: the {cookie_name} cookie is missing or invalid.", False
        sent, peeked = await submitted_token(request, headers)
        if sent is None:
            where = f"the {header_name} header"
            if form_field is not None:
                where += f" or the {form_field} form field"
            return f"CSRF check failed: the token is missing; send it in {where}.", peeked
        if not _matches(sent, cookie):
            return "CSRF check failed: the token does not match the cookie.", peeked
        return None, peeked

    async def csrf_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (skip is not None and skip(scope)):
            await app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        cookie_header: list[str] = []
        for key, value in scope.get("headers", ()):
            if key == b"cookie":
                cookie_header.append(value.decode("latin-1"))
            elif key not in headers:
                headers[key] = value
        cookie = parse_cookie_header("; ".join(cookie_header)).get(cookie_name)
        if cookie is not None and not signer.valid(cookie):
            cookie = None
        token = cookie if cookie is not None else signer.new_token()
        scope = {**scope, "csrf_token": _mask(token)}
        if cookie is None:
            set_cookie = f"{cookie_name}={token}{cookie_suffix}".encode("latin-1")

            server_send = send

            async def on_start(message: Message) -> None:
                headers = [*message.get("headers", ()), (b"set-cookie", set_cookie)]
                await server_send({**message, "headers": headers})

            send = wrap_send(server_send, {"http.response.start": on_start})
        if scope["method"] not in SAFE_METHODS:
            request = Request(scope, receive)
            try:
                problem, peeked = await check(scope, request, headers, cookie)
            except ClientDisconnect:
                return
            if problem is not None:
                await http_exception_response(scope, HTTPException(403, problem))(
                    scope, request.receive, send
                )
                return
            if peeked:
                receive = request.receive
        await app(scope, receive, send)

    return csrf_app


__all__ = ["SAFE_METHODS", "csrf", "csrf_token"]
