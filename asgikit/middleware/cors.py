"""Cross-Origin Resource Sharing, as the Fetch standard defines it (§3.2, "CORS protocol").

A request with an ``Origin`` header is answered with the CORS headers when
the origin is allowed.  A *preflight* (``OPTIONS`` with ``Origin`` and
``Access-Control-Request-Method``) is answered here, without calling the app:
``200`` with the allowed method, headers and ``Access-Control-Max-Age``, or
``400`` when the origin, the method, a header or a private-network request is
not allowed.  With ``allow_credentials`` the origin is echoed, never ``*``
(Fetch §3.2.5: a credentialed request fails on a wildcard), and every
answer that depends on the ``Origin`` header carries ``Vary: Origin`` —
including answers to requests without one, so that a shared cache never
hands one origin's answer to another.

``allow_origins=["*"]`` with ``allow_credentials=True`` is refused when the
layer is built: echoing every origin (``null`` included, which sandboxed
iframes and ``data:`` pages send) with credentials would let any site read a
logged-in user's answers.  List the origins, or give ``allow_origin_regex``.

Deliberate differences from Starlette's ``CORSMiddleware``: the pair above is
refused (Starlette echoes every origin); ``allow_methods=["*"]`` echoes any
method token (Starlette refuses one outside its list); a wildcard's answers
carry no ``Vary: Origin`` (they are the same for every origin) and a
preflight varies only on the request headers it echoes; allowed header
names are listed lower-case (they are case-insensitive); the app's own CORS
headers are removed from an answer to a refused origin.

This layer owns the CORS headers of every answer it handles: those the app
(or an upstream behind ``reverse_proxy``) wrote are replaced for an allowed
origin and removed for a refused one or a request without ``Origin``.

It deliberately does not protect anything: CORS only tells browsers which
cross-origin responses a page may *read*.  Requests still reach the app; use
``csrf`` against cross-site writes, ``websocket_origin`` for WebSockets (which
CORS does not cover: WebSocket scopes pass through untouched here).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Sequence

from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, ScopePredicate, compile_exclude
from asgikit.middleware._http import HeaderEdit, RawHeaders, add_vary, text_response
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

_StartEdit = Callable[[Message], Message]

#: Request headers a browser may send cross-origin without listing them
#: (Fetch §2.2.2, "CORS-safelisted request-header"; ``Content-Type`` is
#: allowed with any value, as Starlette does, so JSON bodies work).
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})

_ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
_CORS_HEADERS = frozenset(
    {
        b"access-control-allow-origin",
        b"access-control-allow-credentials",
        b"access-control-expose-headers",
    }
)
_CACHE_SIZE = 256  # unlisted origins' answers remembered per instance
_CACHE_KEY_MAX = 256  # longer Origin values are matched each time, never kept
# RFC 9110 §5.6.2 token characters: what a method or a header name is made of.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


@middleware
def cors(
    app: ASGIApp,
    *,
    allow_origins: Sequence[str] = (),
    allow_methods: Sequence[str] = ("GET",),
    allow_headers: Sequence[str] = (),
    allow_credentials: bool = False,
    allow_origin_regex: str | None = None,
    expose_headers: Sequence[str] = (),
    max_age: int = 600,
    allow_private_network: bool = False,
    exclude: Exclude = None,
) -> ASGIApp:
    """Answer CORS preflights and add CORS headers to the app's responses.

    ``allow_origins`` lists exact origins (``"https://example.com"``) or is
    ``["*"]`` for any; ``allow_origin_regex`` must match a whole origin.
    ``allow_methods`` and ``allow_headers`` accept ``["*"]`` (then the
    requested method and headers are echoed, which also works with
    credentials; any method that is a valid token, ``QUERY`` or WebDAV's
    included).  ``allow_origins=["*"]`` with ``allow_credentials=True`` is
    a ``ValueError``: list the origins or use ``allow_origin_regex``.
    ``allow_private_network`` answers Private Network Access preflights
    (``Access-Control-Request-Private-Network: true``), which are refused
    otherwise.  Paths in ``exclude`` (or scopes it accepts) pass
    through untouched.
    """
    if isinstance(allow_origins, str):
        raise TypeError("allow_origins must be a list of origins, not a single string")
    _check_list("allow_methods", allow_methods)
    _check_list("allow_headers", allow_headers)
    _check_list("expose_headers", expose_headers)
    if max_age < 0:
        raise ValueError("max_age must not be negative")
    if allow_credentials and "*" in allow_origins:
        raise ValueError(
            'cors: allow_origins=["*"] with allow_credentials=True would let every '
            "site (and the 'null' origin) read credentialed answers; list the origins "
            '(allow_origins=["https://app.example"]) or match them with '
            "allow_origin_regex"
        )
    any_method = "*" in allow_methods
    any_header = "*" in allow_headers
    headers = SAFELISTED_HEADERS | {h.lower() for h in allow_headers if h != "*"}
    simple: RawHeaders = []
    if allow_credentials:
        simple.append((b"access-control-allow-credentials", b"true"))
    if expose_headers:
        simple.append((b"access-control-expose-headers", ", ".join(expose_headers).encode()))
    preflight: RawHeaders = []
    if allow_credentials:
        preflight.append((b"access-control-allow-credentials", b"true"))
    if not any_method:
        preflight.append(
            (b"access-control-allow-methods", ", ".join(allow_methods).encode("latin-1"))
        )
    if not any_header:
        listed = sorted(headers)
        preflight.append((b"access-control-allow-headers", ", ".join(listed).encode()))
    preflight.append((b"access-control-max-age", str(max_age).encode()))
    policy = _Policy(
        excluded=compile_exclude(exclude),
        any_origin="*" in allow_origins,
        # Browsers serialise an origin as scheme://host[:port], lower-case and
        # without a path; a configured trailing slash would never match.
        origins=frozenset(
            o.lower().rstrip("/").encode("latin-1") for o in allow_origins if o != "*"
        ),
        origin_regex=re.compile(allow_origin_regex) if allow_origin_regex else None,
        private_network=allow_private_network,
        any_method=any_method,
        methods=frozenset(_ALL_METHODS if any_method else allow_methods),
        any_header=any_header,
        headers=headers,
        simple_headers=tuple(simple),
        preflight_headers=tuple(preflight),
    )
    return _CORS(app, policy)


def _check_list(kind: str, values: Sequence[str]) -> None:
    if isinstance(values, str):
        raise TypeError(f"{kind} must be a list of strings, not a single string")
    for value in values:
        if value != "*" and (not value or not _TOKEN.issuperset(value)):
            raise ValueError(f"invalid entry in {kind}: {value!r}")


def _request_method(scope: Scope) -> bytes | None:
    # Read for OPTIONS only: the other requests skip a comparison a header.
    found: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"access-control-request-method":
            found = value
    return found


@dataclasses.dataclass(frozen=True)
class _Policy:
    """``cors()``'s options, checked and compiled: what every answer is decided by."""

    excluded: ScopePredicate | None
    any_origin: bool
    origins: frozenset[bytes]
    origin_regex: re.Pattern[str] | None
    private_network: bool
    any_method: bool
    methods: frozenset[str]
    any_header: bool
    headers: frozenset[str]
    simple_headers: tuple[tuple[bytes, bytes], ...]  # for every allowed simple request
    preflight_headers: tuple[tuple[bytes, bytes], ...]  # for every allowed preflight


class _CORS:
    """The layer ``cors()`` builds: one ``_Policy``, and the header edits made from it."""

    def __init__(self, app: ASGIApp, policy: _Policy) -> None:
        self.app = app
        self.policy = policy
        # Read on every request, so kept as attributes of their own.
        self.excluded = policy.excluded
        self.origin_regex = policy.origin_regex
        # A wildcard answer (never with credentials, refused by cors()) is the
        # same for every origin: only then is no Vary: Origin needed (Fetch
        # §3.2.5, "CORS protocol and HTTP caches").
        self.static_wildcard = policy.any_origin
        # The start-message edit for a simple request, made once per answer:
        # one for a wildcard, one for each configured origin, one for a
        # refusal.  When allowed, the middleware owns the CORS headers: the
        # app's go.  Every answer that depends on the origin varies on it;
        # the wildcard's does not.
        self.wildcard_edit = HeaderEdit(
            drop=_CORS_HEADERS,
            add=((b"access-control-allow-origin", b"*"), *policy.simple_headers),
        ).message
        self.origin_edits = {origin: self._allowed_edit(origin) for origin in policy.origins}
        # Also the edit for a request without Origin: the answer would differ
        # with one, unless it is a wildcard's.  The app's own CORS headers go
        # here too: this layer is the policy, and an app or upstream that
        # echoes every origin must not open the answer to a refused one.
        self.refused_edit = HeaderEdit(drop=_CORS_HEADERS, vary=b"Origin").message
        # Origins neither listed nor refused at a glance: tried against the regex.
        self.seen_edits: dict[bytes, _StartEdit] = {}

    def origin_allowed(self, origin: bytes) -> bool:
        if self.policy.any_origin or origin in self.policy.origins:
            return True
        if self.origin_regex is not None:
            return self.origin_regex.fullmatch(origin.decode("latin-1")) is not None
        return False

    def allow_origin_value(self, origin: bytes) -> bytes:
        return b"*" if self.static_wildcard else origin

    def _allowed_edit(self, origin: bytes) -> _StartEdit:
        add = ((b"access-control-allow-origin", origin), *self.policy.simple_headers)
        return HeaderEdit(drop=_CORS_HEADERS, vary=b"Origin", add=add).message

    def start_edit(self, origin: bytes) -> _StartEdit:
        """The start-message edit for a simple request from ``origin``."""
        if self.static_wildcard:
            return self.wildcard_edit
        edit = self.origin_edits.get(origin)
        if edit is not None:
            return edit
        if not origin or self.origin_regex is None:
            return self.refused_edit
        edit = self.seen_edits.get(origin)
        if edit is None:
            edit = self._allowed_edit(origin) if self.origin_allowed(origin) else self.refused_edit
            # Real origins are short; remembering long ones would let a client
            # park _CACHE_SIZE header-sized keys in memory.
            if len(origin) <= _CACHE_KEY_MAX:
                if len(self.seen_edits) >= _CACHE_SIZE:
                    self.seen_edits.clear()
                self.seen_edits[origin] = edit
        return edit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (self.excluded is not None and self.excluded(scope)):
            await self.app(scope, receive, send)
            return
        origin: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"origin":
                # Two different origins: allow neither.
                origin = b"" if origin is not None and origin != value else value
        if origin is None:
            if self.static_wildcard:
                await self.app(scope, receive, send)
                return
            edit: _StartEdit = self.refused_edit
        elif scope["method"] == "OPTIONS" and (method := _request_method(scope)) is not None:
            await self._preflight(scope, receive, send, origin, method)
            return
        else:
            edit = self.start_edit(origin)

        # edit_start's send, written here: one call less a request.
        def send_edited(message: Message) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                return send(edit(message))
            return send(message)

        await self.app(scope, receive, send_edited)

    async def _preflight(
        self, scope: Scope, receive: Receive, send: Send, origin: bytes, method: bytes
    ) -> None:
        requested_headers: list[bytes] = []
        private_network = False
        for name, value in scope["headers"]:
            if name == b"access-control-request-headers":
                requested_headers.extend(h.strip().lower() for h in value.split(b",") if h.strip())
            elif name == b"access-control-request-private-network":
                private_network = value.strip().lower() == b"true"

        vary: RawHeaders = []
        if not self.static_wildcard:
            vary.append((b"vary", b"Origin"))
        failures: list[str] = []
        if not origin or not self.origin_allowed(origin):
            failures.append("origin")
        method_text = method.decode("latin-1")
        # Methods are case-sensitive (Fetch §2.2.1); browsers upper-case the
        # standard ones before asking.
        if not (
            method_text in self.policy.methods
            or (self.policy.any_method and method_text and _TOKEN.issuperset(method_text))
        ):
            failures.append("method")
        header_texts = [h.decode("latin-1") for h in requested_headers]
        if not self.policy.any_header and any(h not in self.policy.headers for h in header_texts):
            failures.append("headers")
        if any(not h or not _TOKEN.issuperset(h) for h in header_texts):
            failures.append("headers")
        if private_network and not self.policy.private_network:
            failures.append("private-network")
        if failures:
            reason = ", ".join(dict.fromkeys(failures))
            await text_response(scope, receive, send, 400, f"Disallowed CORS {reason}", vary)
            return

        headers: RawHeaders = [(b"access-control-allow-origin", self.allow_origin_value(origin))]
        headers.extend(self.policy.preflight_headers)
        if self.policy.any_method:
            headers.append((b"access-control-allow-methods", method))
        if self.policy.any_header and requested_headers:
            headers.append((b"access-control-allow-headers", b", ".join(requested_headers)))
        if private_network:
            headers.append((b"access-control-allow-private-network", b"true"))
        headers.extend(vary)
        if self.policy.any_method:
            add_vary(headers, b"Access-Control-Request-Method")
        if self.policy.any_header:
            add_vary(headers, b"Access-Control-Request-Headers")
        await text_response(scope, receive, send, 200, "OK", headers)


__all__ = ["SAFELISTED_HEADERS", "cors"]
