"""Where ``rate_limit`` keeps its counters, and the GCRA that updates them.

GCRA, the generic cell rate algorithm (ITU-T I.371; the "virtual
scheduling" form), keeps one number per key: the *theoretical arrival
time* ``tat``, the time at which the key's bucket would be empty again.  A
quota of ``q`` requests per window ``w`` gives an *emission interval*
``T = w / q``.  A request at ``now`` is allowed when
``max(tat, now) + T - now <= q * T`` (so at most ``q`` at once, and one
more every ``T``), and then ``tat`` becomes ``max(tat, now) + T``.  A
refused request changes nothing, so hammering a closed limit does not
push its reopening further away.

Times are whole microseconds (Redis's ``TIME`` resolution) and ``T`` is
rounded up to one, so the arithmetic is exact: exactly ``q`` requests
pass at once, the next is refused, and one passes again exactly ``T``
later.  A request checks several limits at once, all or nothing: when
one refuses, none is charged.

:class:`MemoryStore` keeps the numbers in this process, bounded.
:class:`RedisStore` keeps them in Redis and runs the algorithm there, in
one Lua script (one round trip a request, atomic, on the Redis server's
clock: correct across processes and hosts).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from time import monotonic_ns
from typing import Any, NamedTuple, Protocol, runtime_checkable

from asgikit._redis import INSTALL_HINT, client_from_url, close_client

#: The default bound on the number of keys a :class:`MemoryStore` holds.
DEFAULT_MAX_KEYS = 100_000


class Quota(NamedTuple):
    """One limit as a store sees it: ``quota`` requests, one more every ``interval`` µs.

    ``name`` tells the limit's counters apart from another's for the same key.
    """

    name: str
    quota: int
    interval: int


class Verdict(NamedTuple):
    """A store's answer for one limit.

    ``allowed``: whether this limit let the request through; ``remaining``:
    requests still allowed right away; ``wait``: microseconds until one more
    request is allowed (for a refused request, until it would be).
    """

    allowed: bool
    remaining: int
    wait: int


class StoreUnavailable(Exception):
    """The store could not be reached or did not answer (``on_store_error`` decides)."""


@runtime_checkable
class RateLimitStore(Protocol):
    """What ``rate_limit`` needs from a store."""

    async def consume(self, key: str, quotas: Sequence[Quota]) -> list[Verdict]:
        """Charge one request from ``key`` to every quota, all or nothing.

        Raises :class:`StoreUnavailable` when the store cannot answer.
        """
        ...


def gcra(tat: int, now: int, quota: Quota) -> tuple[Verdict, int]:
    """The verdict for one request at ``now`` and the key's new ``tat`` if it is charged."""
    interval = quota.interval
    start = tat if tat > now else now
    new_tat = start + interval
    ahead = new_tat - now
    burst = quota.quota * interval
    if ahead > burst:
        return Verdict(False, 0, ahead - burst), tat
    used = -(-ahead // interval)  # requests still "in the bucket", rounded up
    return Verdict(True, quota.quota - used, ahead - (used - 1) * interval), new_tat


class MemoryStore:
    """Counters in this process: at most ``max_keys`` keys, evicted fairly.

    Fine for one process (each worker of a multi-process server counts on
    its own: use :class:`RedisStore` there).  A key's state is one integer.
    When the table is full, a new key first displaces keys whose state has
    fully decayed (their bucket is empty: forgetting them changes no answer);
    the table is swept for those at most once every ``max_keys // 4`` new
    keys, so the sweep costs O(1) a request on average.  When none has
    decayed, the least recently used key goes, and its client starts afresh:
    size ``max_keys`` for the clients active within one window.  ``clock``
    (monotonic seconds) is there for tests.
    """

    def __init__(
        self, *, max_keys: int = DEFAULT_MAX_KEYS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be at least 1")
        self.max_keys = max_keys
        self._clock = clock
        self._monotonic = clock is time.monotonic  # then whole µs, without a float
        # (quota name, key) -> tat, least recently used first.  A tuple, not
        # one string: building it costs a fifth of joining the two.
        self._tats: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._sweep_every = max(1, max_keys // 4)
        self._new_since_sweep = self._sweep_every

    def _now(self) -> int:
        if self._monotonic:
            return monotonic_ns() // 1000
        return round(self._clock() * 1_000_000)

    async def consume(self, key: str, quotas: Sequence[Quota]) -> list[Verdict]:
        """Charge one request from ``key`` to every quota, if every quota allows it."""
        return self.take(key, quotas)

    def take_one(self, key: str, quota: Quota) -> tuple[bool, int, int]:
        """:meth:`consume` for one quota, without awaiting: ``(allowed, remaining, wait)``.

        The middleware's hot path; :func:`gcra` inlined.
        """
        now = monotonic_ns() // 1000 if self._monotonic else round(self._clock() * 1_000_000)
        quota_name, limit, interval = quota
        name = (quota_name, key)
        tats = self._tats
        tat = tats.get(name, 0)
        # How far past now the key's tat would move: max(tat, now) + T - now,
        # written so that only this line works on clock-sized numbers.
        ahead = tat - now + interval if tat > now else interval
        burst = limit * interval
        if ahead > burst:
            # A refused client is an active one: its state is the last to lose.
            tats.move_to_end(name)
            return False, 0, ahead - burst
        if tat:
            tats[name] = now + ahead
            tats.move_to_end(name)
        else:
            self._add(name, now + ahead, now)
        # gcra()'s remaining and wait, each in one step: limit - ceil(ahead / T)
        # is (burst - ahead) // T, and ahead - (ceil(ahead / T) - 1) * T is
        # the remainder of ahead by T, taken in 1..T rather than 0..T-1.
        return True, (burst - ahead) // interval, (ahead - 1) % interval + 1

    def take(self, key: str, quotas: Sequence[Quota]) -> list[Verdict]:
        """:meth:`consume`, without awaiting."""
        now = self._now()
        tats = self._tats
        verdicts: list[Verdict] = []
        charges: list[tuple[tuple[str, str], int]] = []
        everything = True
        for quota in quotas:
            name = (quota.name, key)
            verdict, new_tat = gcra(tats.get(name, 0), now, quota)
            verdicts.append(verdict)
            charges.append((name, new_tat))
            everything = everything and verdict.allowed
        for name, new_tat in charges:
            if name in tats:
                if everything:
                    tats[name] = new_tat
                tats.move_to_end(name)
            elif everything:
                self._add(name, new_tat, now)
        return verdicts

    def _add(self, key: tuple[str, str], tat: int, now: int) -> None:
        tats = self._tats
        if len(tats) >= self.max_keys:
            self._make_room(now)
        tats[key] = tat
        self._new_since_sweep += 1

    def _make_room(self, now: int) -> None:
        tats = self._tats
        if self._new_since_sweep >= self._sweep_every:
            self._new_since_sweep = 0
            for key in [key for key, tat in tats.items() if tat <= now]:
                del tats[key]
        while len(tats) >= self.max_keys:
            tats.popitem(last=False)

    def __len__(self) -> int:
        return len(self._tats)


# KEYS: one per limit (same client key).  ARGV: interval, quota for each limit (µs, count).
# Returns 1/0 (all allowed), then allowed, remaining, wait for each limit.
# Numbers are Lua doubles: exact for integers below 2**53 µs (285 years).
GCRA_SCRIPT = """
if redis.replicate_commands then redis.replicate_commands() end
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local all = 1
local out = {0}
local charged = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local quota = tonumber(ARGV[2 * i])
  local stored = redis.call('GET', KEYS[i])
  local tat = now
  if stored then tat = math.max(tonumber(stored), now) end
  local new_tat = tat + interval
  local ahead = new_tat - now
  local burst = quota * interval
  if ahead > burst then
    all = 0
    out[#out + 1] = 0
    out[#out + 1] = 0
    out[#out + 1] = ahead - burst
  else
    local used = math.ceil(ahead / interval)
    out[#out + 1] = 1
    out[#out + 1] = quota - used
    out[#out + 1] = ahead - (used - 1) * interval
    charged[i] = {new_tat, ahead}
  end
end
if all == 1 then
  for i = 1, #KEYS do
    local tat, ahead = charged[i][1], charged[i][2]
    redis.call('SET', KEYS[i], string.format('%.0f', tat), 'PX', math.ceil(ahead / 1000))
  end
end
out[1] = all
return out
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode("utf-8")).hexdigest()


class RedisClient(Protocol):
    """The part of ``redis.asyncio.Redis`` that :class:`RedisStore` uses."""

    def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]:
        """Run a cached script."""
        ...

    def eval(self, script: str, numkeys: int, *keys_and_args: Any) -> Awaitable[Any]:
        """Run (and cache) a script."""
        ...


class RedisStore:
    """Counters in Redis: one key per client and limit (``prefix`` + key), expiring by itself.

    Each request is one ``EVALSHA`` of the GCRA script (``EVAL`` once more
    when Redis answers ``NOSCRIPT``, e.g. after a restart), atomic and timed
    by the Redis server's clock, so every process and host sharing the Redis
    shares the limit exactly.  The client key is a hash tag (``{key}``), so
    the keys of one request live in one Redis Cluster slot: the Redis key is
    ``prefix + "{" + key + "}:" + quota name``.

    ``client`` is a ``redis.asyncio.Redis``; :meth:`from_url` makes one with
    socket timeouts of ``timeout`` seconds (give a client of your own the
    same: an unreachable Redis must fail fast, not hang the request).  Any
    Redis error, timeout or connection error raises :class:`StoreUnavailable`.
    Needs asyncio (``redis.asyncio`` does not run on trio).
    """

    def __init__(self, client: RedisClient, *, prefix: str = "ratelimit:") -> None:
        try:
            from redis.exceptions import NoScriptError, RedisError
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(INSTALL_HINT) from exc
        self.client = client
        self.prefix = prefix
        self._no_script: type[Exception] = NoScriptError
        # asyncio.TimeoutError is TimeoutError only from Python 3.11.
        self._errors: tuple[type[Exception], ...] = (
            RedisError,
            OSError,
            TimeoutError,
            asyncio.TimeoutError,
        )

    @classmethod
    def from_url(
        cls, url: str, *, prefix: str = "ratelimit:", timeout: float = 0.5, **options: Any
    ) -> RedisStore:
        """A store with a new ``redis.asyncio`` client for ``url``."""
        options.setdefault("socket_timeout", timeout)
        options.setdefault("socket_connect_timeout", timeout)
        client: RedisClient = client_from_url(url, **options)
        return cls(client, prefix=prefix)

    async def consume(self, key: str, quotas: Sequence[Quota]) -> list[Verdict]:
        """Run the GCRA script for every quota at once; see the module."""
        base = f"{self.prefix}{{{key}}}:"
        names = [base + quota.name for quota in quotas]
        args = [n for quota in quotas for n in (quota.interval, quota.quota)]
        try:
            try:
                raw = await self.client.evalsha(GCRA_SHA, len(names), *names, *args)
            except self._no_script:
                raw = await self.client.eval(GCRA_SCRIPT, len(names), *names, *args)
        except self._errors as exc:
            raise StoreUnavailable(f"Redis did not answer: {exc!r}") from exc
        try:
            # One flag, then three numbers a limit.  Anything else (a
            # Redis-compatible server or proxy that answers otherwise) is no
            # answer: the policy of on_store_error applies, not a 500.
            if not isinstance(raw, list) or len(raw) != 1 + 3 * len(quotas):
                raise TypeError(f"an answer of the wrong shape: {raw!r:.80}")
            return [
                Verdict(bool(int(raw[i])), int(raw[i + 1]), int(raw[i + 2]))
                for i in range(1, len(raw), 3)
            ]
        except (TypeError, ValueError, OverflowError) as exc:
            raise StoreUnavailable(f"Redis answered no verdict: {exc}") from exc

    async def aclose(self) -> None:
        """Close the client's connections (if it has ``aclose``)."""
        await close_client(self.client)


__all__ = [
    "DEFAULT_MAX_KEYS",
    "GCRA_SCRIPT",
    "MemoryStore",
    "Quota",
    "RateLimitStore",
    "RedisClient",
    "RedisStore",
    "StoreUnavailable",
    "Verdict",
    "gcra",
]
