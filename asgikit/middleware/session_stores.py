"""Server-side session stores for ``sessions(store=...)``: the cookie holds only an id.

A store maps a random session id to the session's data, as JSON, with an
expiry.  :class:`MemoryStore` keeps it in this process (bounded; lost on
restart; not shared between workers).  :class:`RedisStore` keeps it in Redis
through ``redis.asyncio`` (the ``redis`` extra), which runs on asyncio only.
Any object with the three methods of :class:`SessionStore` will do.

Make the Redis client in the lifespan and hand the store over in its state::

    from contextlib import asynccontextmanager

    from asgikit import PlainTextResponse, lifespan, route, router, sessions
    from asgikit.middleware.session_stores import RedisStore


    async def home(request):
        request.session["visits"] = request.session.get("visits", 0) + 1
        return PlainTextResponse(f"visit {request.session['visits']}")


    @asynccontextmanager
    async def resources():
        store = RedisStore.from_url("redis://localhost")
        yield {"session_store": store}
        await store.aclose()


    app = lifespan(
        sessions(
            router(route("/", home)),
            secret_key="a long random secret, from the environment",
            store_from_state="session_store",
        ),
        resources,
    )
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

from asgikit._redis import client_from_url, close_client

#: How long a stored session lives when the middleware gives no ``max_age``.
DEFAULT_TTL = 14 * 24 * 60 * 60

#: Session keys that say who is logged in: a change to any of them moves the
#: session to a new id (``sessions``), and a session holding one is evicted
#: from a full :class:`MemoryStore` only after every anonymous one.
IDENTITY_KEYS = ("user", "user_id", "username", "_auth_user_id")


@runtime_checkable
class SessionStore(Protocol):
    """Where server-side sessions live.  Ids are URL-safe random strings."""

    async def load(self, session_id: str) -> dict[str, Any] | None:
        """The data saved under ``session_id``, or ``None`` if unknown or expired."""
        ...

    async def save(self, session_id: str, data: Mapping[str, Any], ttl: int | None) -> None:
        """Keep ``data`` under ``session_id`` for ``ttl`` seconds (``None``: a default)."""
        ...

    async def delete(self, session_id: str) -> None:
        """Forget ``session_id`` (no error if it is unknown)."""
        ...


def _dumps(data: Mapping[str, Any]) -> str:
    try:
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        try:
            text.encode("utf-8")  # what a store such as Redis will do with it
        except UnicodeEncodeError:
            # A lone surrogate has no UTF-8 form; escaped it is the same JSON.
            text = json.dumps(data, separators=(",", ":"))
        return text
    except (TypeError, ValueError) as exc:
        raise TypeError(f"session values must be JSON-serializable: {exc}") from exc


_Entries = OrderedDict[str, tuple[float, str]]


def _loads(raw: str | bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


class MemoryStore:
    """Sessions in this process's memory: at most ``max_entries``, evicted fairly.

    Fine for development, tests and single-process servers.  The bound is the
    number of sessions (memory is about ``max_entries`` times a session's JSON).
    When it is reached, the least recently used session (saved or loaded) goes,
    taken from the first non-empty of three groups:

    1. new anonymous sessions, never loaded since they were made: what a
       client that never sends its cookie back leaves behind;
    2. anonymous sessions whose client came back (a cart, an OAuth state);
    3. logged-in sessions, those holding one of ``identity_keys``.

    So a flood of clients that write a session without logging in (each
    request without a cookie makes one) pushes out only its own kind, never a
    logged-in user's session nor a returning visitor's, as long as those alone
    fit.  One account holds at most ``max_sessions_per_identity`` sessions
    (its devices and browsers): a further login forgets that account's least
    recently saved one, so a client that logs in to its own account again and
    again pushes out only its own sessions, never another user's.  ``ttl`` is
    the lifetime when the middleware gives none; ``clock`` (monotonic seconds)
    is there for tests.
    """

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        ttl: int = DEFAULT_TTL,
        identity_keys: Iterable[str] = IDENTITY_KEYS,
        max_sessions_per_identity: int = 16,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        if max_sessions_per_identity < 1:
            raise ValueError("max_sessions_per_identity must be at least 1")
        if isinstance(identity_keys, str):
            raise TypeError("identity_keys is a list of session keys, not one string")
        self.max_entries = max_entries
        self.ttl = ttl
        self.identity_keys = tuple(identity_keys)
        self.max_sessions_per_identity = max_sessions_per_identity
        self._clock = clock
        # Logged-in sessions by identity (least recently saved first), and back.
        self._sessions_of: dict[str, dict[str, None]] = {}
        self._identity_of: dict[str, str] = {}
        # id -> (expires at, JSON), least recently used first; JSON so that
        # callers never share mutable data.  One dict per eviction group, in
        # eviction order.
        self._new: _Entries = OrderedDict()
        self._returning: _Entries = OrderedDict()
        self._identified: _Entries = OrderedDict()
        self._groups = (self._new, self._returning, self._identified)

    def _identity(self, data: Mapping[str, Any]) -> str | None:
        values = [data.get(key) for key in self.identity_keys]
        if all(value is None for value in values):
            return None
        return json.dumps(values, sort_keys=True, default=repr)

    def _release(self, session_id: str) -> None:
        """Forget which identity ``session_id`` belonged to (it left the store)."""
        identity = self._identity_of.pop(session_id, None)
        if identity is not None:
            ids = self._sessions_of[identity]
            del ids[session_id]
            if not ids:
                del self._sessions_of[identity]

    def _find(self, session_id: str) -> _Entries | None:
        for entries in self._groups:
            if session_id in entries:
                return entries
        return None

    async def load(self, session_id: str) -> dict[str, Any] | None:
        """The data under ``session_id``, or ``None``."""
        entries = self._find(session_id)
        if entries is None:
            return None
        entry = entries[session_id]
        if entry[0] <= self._clock():
            del entries[session_id]
            self._release(session_id)
            return None
        if entries is self._new:
            # Its client came back with the cookie: a visitor, not a one-off.
            del entries[session_id]
            self._returning[session_id] = entry
        else:
            entries.move_to_end(session_id)
        return _loads(entry[1])

    async def save(self, session_id: str, data: Mapping[str, Any], ttl: int | None) -> None:
        """Keep ``data``; past ``max_entries`` the least recently used session goes.

        New anonymous sessions go first, logged-in ones last (see the class).
        """
        now = self._clock()
        entry = (now + (self.ttl if ttl is None else ttl), _dumps(data))
        was = self._find(session_id)
        if was is not None:
            del was[session_id]
            self._release(session_id)
        identity = self._identity(data)
        if identity is not None:
            group = self._identified
        elif was is None or was is self._new:
            group = self._new
        else:
            group = self._returning
        group[session_id] = entry
        if identity is not None:
            ids = self._sessions_of.setdefault(identity, {})
            ids[session_id] = None
            self._identity_of[session_id] = identity
            if len(ids) > self.max_sessions_per_identity:
                first_saved = next(iter(ids))
                del self._identified[first_saved]
                self._release(first_saved)
        while len(self) > self.max_entries:
            evicted, _ = next(entries for entries in self._groups if entries).popitem(last=False)
            self._release(evicted)
        # Drop expired sessions from the old ends while we are here, so memory
        # does not hold dead sessions until the bound is reached.
        for entries in self._groups:
            for _ in range(2):
                oldest = next(iter(entries.items()), None)
                if oldest is None or oldest[1][0] > now:
                    break
                del entries[oldest[0]]
                self._release(oldest[0])

    async def delete(self, session_id: str) -> None:
        """Forget ``session_id``."""
        for entries in self._groups:
            entries.pop(session_id, None)
        self._release(session_id)

    def __len__(self) -> int:
        return len(self._new) + len(self._returning) + len(self._identified)


class RedisClient(Protocol):
    """The part of ``redis.asyncio.Redis`` that :class:`RedisStore` uses."""

    def get(self, name: str) -> Awaitable[Any]:
        """The value at key ``name``, or ``None``."""
        ...

    def set(self, name: str, value: str, *, ex: int) -> Awaitable[Any]:
        """Store ``value`` at ``name``, expiring in ``ex`` seconds."""
        ...

    def delete(self, *names: str) -> Awaitable[Any]:
        """Remove the keys."""
        ...


class RedisStore:
    """Sessions in Redis: one key per session (``prefix`` + id), expired by Redis itself.

    ``client`` is a ``redis.asyncio.Redis`` (or anything with its ``get``,
    ``set(..., ex=)`` and ``delete``); :meth:`from_url` makes one.  ``ttl`` is the
    lifetime when the middleware gives no ``max_age``.  Needs asyncio.
    """

    def __init__(
        self, client: RedisClient, *, prefix: str = "session:", ttl: int = DEFAULT_TTL
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl = ttl

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "session:", ttl: int = DEFAULT_TTL, **options: Any
    ) -> RedisStore:
        """A store with a new ``redis.asyncio`` client for ``url`` (needs the ``redis`` extra)."""
        client: RedisClient = client_from_url(url, **options)
        return cls(client, prefix=prefix, ttl=ttl)

    async def load(self, session_id: str) -> dict[str, Any] | None:
        """The data under ``session_id``, or ``None`` (also for data that is not JSON)."""
        raw = await self.client.get(self.prefix + session_id)
        return None if raw is None else _loads(raw)

    async def save(self, session_id: str, data: Mapping[str, Any], ttl: int | None) -> None:
        """``SET key json EX ttl``."""
        seconds = self.ttl if ttl is None else ttl
        await self.client.set(self.prefix + session_id, _dumps(data), ex=max(1, seconds))

    async def delete(self, session_id: str) -> None:
        """``DEL key``."""
        await self.client.delete(self.prefix + session_id)

    async def aclose(self) -> None:
        """Close the client's connections (if it has ``aclose``)."""
        await close_client(self.client)


__all__ = [
    "DEFAULT_TTL",
    "IDENTITY_KEYS",
    "MemoryStore",
    "RedisClient",
    "RedisStore",
    "SessionStore",
]
