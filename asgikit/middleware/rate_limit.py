"""``rate_limit``: at most N requests per window for each client, with the IETF headers.

``rate_limit(app, limits="100/minute")`` counts the requests (and WebSocket
handshakes) of each key — by default the client's address — and answers
``429 Too Many Requests`` (RFC 6585 §4) with ``Retry-After`` (RFC 9110
§10.2.3, whole seconds, rounded up) once a key is over its limit.

Limits are written ``"<count>/<unit>"`` or ``"<count>/<n> <unit>"`` with
units ``second``, ``minute``, ``hour``, ``day`` (singular or plural):
``"100/minute"``, ``"10/second"``, ``"5/10 seconds"``.  Several at once
(a list, or a mapping of policy name to limit) must all allow a request;
a refused request is charged to none of them.

The algorithm is GCRA (see :mod:`asgikit.middleware._rate_limit_stores`):
``"100/minute"`` lets 100 requests through at once, then one more every
0.6 s, exactly; it is a sliding window, with no boundary at which a
client could spend two windows' worth at once.

The key:

- ``"client"`` (the default): ``scope["client"]``'s host, as the server
  or ``proxy_headers`` (put it outside) left it.  An IPv6 address counts
  by its /64 prefix, which one subscriber usually holds whole (RFC 6177),
  so that a client cannot get a fresh quota, nor flush a memory store,
  by hopping addresses.  Requests without a client (a Unix socket) share
  one counter.
- ``"route"``: ``scope["route_template"]`` when a router has set it (that
  is, when ``rate_limit`` wraps one route's endpoint, inside the router),
  else the request's path — so, outside a router, each path counts apart.
- ``"client_route"``: both; ``"global"``: one counter for everybody.
- a function ``(scope) -> str | None``; ``None`` leaves the request
  unlimited (and unmarked).

Keys longer than 64 characters are replaced by their SHA-256, so a client
cannot make the store keep long strings.

Headers (draft-ietf-httpapi-ratelimit-headers-10 and -11, Structured Field
syntax, RFC 9651): every answer to a limited request carries
``RateLimit-Policy`` listing each limit (``"default";q=100;w=60``) and
``RateLimit`` for the limit closest to refusing: ``r``, the requests still
allowed at once, and ``t``, the seconds until one more is (draft-10's
"until additional quota is made available"; within them the client can
use no more than ``r``, draft-11's "effective window").  A WebSocket
accept carries them too.  With ``headers=False`` only refusals carry them
(the draft, §6.2, lets a server leave them out): an allowed request then
goes through with its ``send`` unwrapped, which is most of this
middleware's cost.

A refused WebSocket handshake gets the 429 through the
``websocket.http.response`` extension where the server offers it, else a
close before accept, with code 1013 "Try Again Later" (RFC 6455 §7.4.2's
registry): the refusal is temporary, which 1008 "Policy Violation" would
not say.  Servers turn such a close into a 403 (the code never reaches
the client).

Stores: a :class:`MemoryStore` per middleware by default (bounded; each
process counts alone), or :class:`RedisStore` to share the limit across
processes and hosts; ``store_from_state`` names a lifespan-state key
holding the store instead, so it can be made (and closed) in ``lifespan``.
Middleware instances sharing a store share the counters of a policy name
and key (give distinct names, ``limits={"login": "5/minute"}``, to count
apart).  Litestar builds app-level middleware once per route handler:
give it one store object (``store=MemoryStore()``) to count across routes.
When the store cannot answer, ``on_store_error`` decides: ``"allow"``
(fail open: the request goes through, unmarked) or ``"deny"`` (fail
closed: ``503``).  The first failure is logged as a warning on the
``asgikit.rate_limit`` logger and the recovery as info; nothing becomes
a 500.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._rate_limit_stores import (
    DEFAULT_MAX_KEYS,
    MemoryStore,
    Quota,
    RateLimitStore,
    RedisStore,
    StoreUnavailable,
    Verdict,
)
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("asgikit.rate_limit")

#: Keys longer than this are stored as their SHA-256 (hex).
MAX_KEY_LENGTH = 64

#: The close code for a refused handshake without ``websocket.http.response``.
WS_TRY_AGAIN_LATER = 1013

KeyFunction = Callable[[Scope], "str | None"]
Limits = str | Sequence[str] | Mapping[str, str]

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_LIMIT = re.compile(r"([0-9]+)/(?:([0-9]+) ?)?(second|minute|hour|day)s?")
_ACCEPTED = (
    "expected '<count>/<unit>' or '<count>/<n> <unit>' with unit second, minute, hour "
    "or day, e.g. '100/minute', '10/second', '5/10 seconds'"
)


class Policy:
    """One parsed limit: ``quota`` requests per ``window`` seconds, under ``name``."""

    __slots__ = ("item", "name", "quota", "window")

    def __init__(self, name: str, quota: int, window: int) -> None:
        self.name = name
        self.quota = quota
        self.window = window
        # µs between two requests, rounded up so that the arithmetic stays exact.
        interval = -(-window * 1_000_000 // quota)
        self.item = Quota(f"{name}/{quota}/{window}", quota, interval)

    def __repr__(self) -> str:
        return f"Policy({self.name!r}, quota={self.quota}, window={self.window})"


def parse_limit(text: str, name: str = "default") -> Policy:
    """``"100/minute"`` as a :class:`Policy`; a clear ``ValueError`` for anything else."""
    if not isinstance(text, str):
        raise TypeError(f"a rate limit is a string like '100/minute', not {text!r}")
    normal = " ".join(text.strip().lower().split())
    match = _LIMIT.fullmatch(normal.replace(" / ", "/").replace("/ ", "/"))
    if match is None:
        raise ValueError(f"invalid rate limit {text!r}: {_ACCEPTED}")
    count, every, unit = match.groups()
    quota = int(count)
    window = (int(every) if every is not None else 1) * _UNITS[unit]
    if quota < 1 or window < 1:
        raise ValueError(f"invalid rate limit {text!r}: the count and the window must be >= 1")
    if quota > window * 1_000_000 or window > 10 * 366 * 86400:
        raise ValueError(
            f"invalid rate limit {text!r}: at most one request a microsecond, "
            "and windows up to ten years"
        )
    _check_name(name)
    return Policy(name, quota, window)


def _check_name(name: str) -> None:
    # An sf-string (RFC 9651 §3.3.3): printable ASCII; '"' and '\' are escaped.
    if not isinstance(name, str) or not name or not all(" " <= c <= "~" for c in name):
        raise ValueError(f"a policy name must be printable ASCII text: {name!r}")


def parse_limits(limits: Limits) -> list[Policy]:
    """The policies of a ``limits`` option: one string, a list, or ``{name: limit}``."""
    if isinstance(limits, str):
        policies = [parse_limit(limits)]
    elif isinstance(limits, Mapping):
        policies = [parse_limit(text, name) for name, text in limits.items()]
    else:
        policies = [
            parse_limit(text, " ".join(text.split()) if isinstance(text, str) else "default")
            for text in limits
        ]
    if not policies:
        raise ValueError("rate_limit needs at least one limit")
    names = [policy.name for policy in policies]
    if len(set(names)) != len(names):
        raise ValueError(f"rate limits must differ (policy names {names})")
    return policies


def _sf_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=4096)
def _ipv6_prefix(host: str) -> str:
    """An IPv6 address's /64 network (``2001:db8::/64``); other text as it is."""
    try:
        return str(ipaddress.IPv6Network((host.partition("%")[0], 64), strict=False))
    except ValueError:
        return host


def _client_key(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return "-"
    host = str(client[0])
    return _ipv6_prefix(host) if ":" in host else host


def _route_key(scope: Scope) -> str:
    template = scope.get("route_template")
    if template:
        return str(template)
    return str(scope.get("root_path", "")) + str(scope.get("path", ""))


def _client_route_key(scope: Scope) -> str:
    return f"{_client_key(scope)} {_route_key(scope)}"


def _global_key(scope: Scope) -> str:
    return "*"


#: The named keys ``rate_limit(key=...)`` accepts.
KEYS: dict[str, KeyFunction] = {
    "client": _client_key,
    "route": _route_key,
    "client_route": _client_route_key,
    "global": _global_key,
}


def _seconds(microseconds: int) -> int:
    return -(-microseconds // 1_000_000)


@middleware
def rate_limit(
    app: ASGIApp,
    *,
    limits: Limits = "100/minute",
    key: str | KeyFunction = "client",
    store: RateLimitStore | None = None,
    store_from_state: str | None = None,
    max_keys: int = DEFAULT_MAX_KEYS,
    on_store_error: Literal["allow", "deny"] = "allow",
    headers: bool = True,
    exclude: Exclude = None,
) -> ASGIApp:
    """Answer ``429`` with ``Retry-After`` once a key goes over ``limits``.

    ``limits``: ``"100/minute"``, a list of such, or ``{policy name: limit}``
    (a single string is the policy ``"default"``).  ``key``: ``"client"``,
    ``"route"``, ``"client_route"``, ``"global"`` or ``(scope) -> str | None``.
    ``store``: where counters live (default: a :class:`MemoryStore` of
    ``max_keys`` counters, one per middleware); ``store_from_state`` names
    the lifespan-state key that holds it instead.  ``on_store_error``:
    ``"allow"`` (fail open) or ``"deny"`` (``503``) when the store is down.
    ``headers``: whether allowed answers carry the ``RateLimit`` fields too
    (refusals always do).  ``exclude`` (paths or a scope predicate) skips
    the middleware.
    """
    policies = parse_limits(limits)
    if isinstance(key, str):
        if key not in KEYS:
            raise ValueError(
                f"unknown rate limit key {key!r}: one of {sorted(KEYS)} or a function"
            )
        key_of = KEYS[key]
    elif callable(key):
        key_of = key
    else:
        raise TypeError("key must be the name of a built-in key or a function of the scope")
    if on_store_error not in ("allow", "deny"):
        raise ValueError("on_store_error must be 'allow' (fail open) or 'deny' (fail closed)")
    if store is not None and store_from_state is not None:
        raise TypeError("give store or store_from_state, not both")
    if store is None and store_from_state is None:
        store = MemoryStore(max_keys=max_keys)
    fixed_store = store
    deny = on_store_error == "deny"
    excluded = compile_exclude(exclude)
    quotas = [policy.item for policy in policies]
    names = [_sf_string(policy.name) for policy in policies]
    policy_header = (
        b"ratelimit-policy",
        ", ".join(
            f"{name};q={policy.quota};w={policy.window}"
            for name, policy in zip(names, policies, strict=True)
        ).encode("ascii"),
    )
    single = len(policies) == 1
    failing = False

    def find_store(scope: Scope) -> RateLimitStore:
        if fixed_store is not None:
            return fixed_store
        found: RateLimitStore | None = (scope.get("state") or {}).get(store_from_state)
        if found is None:
            raise RuntimeError(
                f"no rate limit store at lifespan state key {store_from_state!r}: "
                "yield it from the lifespan handler"
            )
        return found

    def headers_for(verdicts: list[Verdict]) -> list[tuple[bytes, bytes]]:
        # The limit closest to refusing: refused first, then fewest left,
        # then the longest wait.
        index = 0
        best = verdicts[0]
        for i in range(1, len(verdicts)):
            verdict = verdicts[i]
            if (verdict.allowed, verdict.remaining, -verdict.wait) < (
                best.allowed,
                best.remaining,
                -best.wait,
            ):
                index, best = i, verdict
        value = f"{names[index]};r={best.remaining};t={_seconds(best.wait)}"
        return [policy_header, (b"ratelimit", value.encode("ascii"))]

    # The hot path: a MemoryStore is asked without awaiting.
    memory = fixed_store if type(fixed_store) is MemoryStore else None
    fast = memory is not None and single
    only = quotas[0]
    by_client = key_of is _client_key
    template = names[0].replace("%", "%%").encode("ascii") + b";r=%d;t=%d"

    async def checked(
        scope: Scope, receive: Receive, send: Send, client_key: str
    ) -> Sequence[tuple[bytes, bytes]] | None:
        """The header fields for an allowed request; ``None`` once it is answered."""
        nonlocal failing
        try:
            if memory is not None:
                verdicts = memory.take(client_key, quotas)
            else:
                verdicts = await find_store(scope).consume(client_key, quotas)
        except StoreUnavailable as exc:
            if not failing:
                failing = True
                logger.warning(
                    "rate limit store unavailable, %s requests: %s",
                    "refusing" if deny else "allowing",
                    exc,
                )
            if deny:
                await _refuse(scope, receive, send, 503, "Service Unavailable", [])
            else:
                await app(scope, receive, send)
            return None
        if failing:
            failing = False
            logger.info("rate limit store reachable again")
        extra = headers_for(verdicts)
        if not all(verdict.allowed for verdict in verdicts):
            wait = max(verdict.wait for verdict in verdicts if not verdict.allowed)
            retry = (b"retry-after", str(_seconds(wait)).encode("ascii"))
            await _refuse(scope, receive, send, 429, "Too Many Requests", [retry, *extra])
            return None
        return extra

    async def rate_limit_app(scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            await app(scope, receive, send)
            return
        if excluded is not None and excluded(scope):
            await app(scope, receive, send)
            return
        if by_client:
            client = scope.get("client")
            client_key = client[0] if client else "-"
            if ":" in client_key:
                client_key = _ipv6_prefix(client_key)
        else:
            found_key = key_of(scope)
            if found_key is None:
                await app(scope, receive, send)
                return
            client_key = found_key
        if len(client_key) > MAX_KEY_LENGTH:
            client_key = hashlib.sha256(client_key.encode("utf-8", "surrogatepass")).hexdigest()
        extra: Sequence[tuple[bytes, bytes]] | None
        if fast:
            allowed, remaining, wait = memory.take_one(client_key, only)  # type: ignore[union-attr]
            if allowed and not headers:
                await app(scope, receive, send)
                return
            seconds = -(-wait // 1_000_000)
            extra = [policy_header, (b"ratelimit", template % (remaining, seconds))]
            if not allowed:
                retry = (b"retry-after", b"%d" % seconds)
                await _refuse(scope, receive, send, 429, "Too Many Requests", [retry, *extra])
                return
        else:
            extra = await checked(scope, receive, send, client_key)
            if extra is None:
                return
        if not headers:
            await app(scope, receive, send)
            return
        start_type = "http.response.start" if kind == "http" else "websocket.accept"

        # A plain function handing back the server's awaitable (see asgikit._send).
        def send_with_fields(message: Message) -> Awaitable[None]:
            if message["type"] == start_type:
                message = {**message}
                message["headers"] = [*message.get("headers", ()), *extra]
            return send(message)

        await app(scope, receive, send_with_fields)

    return rate_limit_app


async def _refuse(
    scope: Scope,
    receive: Receive,
    send: Send,
    status: int,
    text: str,
    headers: list[tuple[bytes, bytes]],
) -> None:
    """Answer ``status`` in plain text; refuse a WebSocket handshake (see the module)."""
    body = text.encode("ascii")
    raw = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *headers,
    ]
    if scope["type"] == "websocket":
        message = await receive()
        if message["type"] != "websocket.connect":
            return  # the client left already
        if "websocket.http.response" not in (scope.get("extensions") or {}):
            await send({"type": "websocket.close", "code": WS_TRY_AGAIN_LATER})
            return
        await send({"type": "websocket.http.response.start", "status": status, "headers": raw})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    if scope.get("method") == "HEAD":
        body = b""
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


__all__ = [
    "DEFAULT_MAX_KEYS",
    "KEYS",
    "MAX_KEY_LENGTH",
    "WS_TRY_AGAIN_LATER",
    "MemoryStore",
    "Policy",
    "Quota",
    "RateLimitStore",
    "RedisStore",
    "StoreUnavailable",
    "Verdict",
    "parse_limit",
    "parse_limits",
    "rate_limit",
]
