"""rate_limit across processes: two uvicorn workers behind nginx, one Redis.

This module is also the app the workers run (``app`` below, configured
from the environment): ``proxy_headers`` trusting nginx, then
``rate_limit`` with a :class:`RedisStore` made in the lifespan, around a
handler that names its process.  nginx balances round-robin (one worker,
so the rotation is strict) and names the backend in ``X-Upstream``.

The proofs: requests alternating between the two processes are counted
as one client — exactly the quota gets through, the ``RateLimit``
remaining counts down across processes — and a burst of concurrent
clients through nginx lets exactly the quota through.  Skips when
``nginx`` or ``redis-server`` is missing.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
import json
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from asgikit.lifespan import lifespan
from asgikit.middleware.proxy_headers import proxy_headers
from asgikit.middleware.rate_limit import RedisStore, rate_limit
from asgikit.types import Receive, Scope, Send

QUOTA = 20
LIMIT = f"{QUOTA}/hour"  # one more every 3 minutes: nothing refills during a test


async def whoami(scope: Scope, receive: Receive, send: Send) -> None:
    body = json.dumps({"pid": os.getpid()}).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@contextlib.asynccontextmanager
async def resources() -> AsyncIterator[dict[str, Any]]:
    store = RedisStore.from_url(os.environ["RATE_LIMIT_REDIS"], prefix="scale-out:")
    yield {"rate_limits": store}
    await store.aclose()


app = lifespan(
    proxy_headers(
        rate_limit(whoami, limits=LIMIT, store_from_state="rate_limits", exclude=["/health"]),
        trusted_hosts=["127.0.0.1"],
    ),
    resources,
)

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module")
def balancer() -> Iterator[str]:
    from tests.servers.live import serve_process
    from tests.servers.redis_server import redis_server
    from tests.servers.test_scale_out import nginx, nginx_binary

    if nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    target = "tests.servers.test_rate_limit_scale_out:app"
    with redis_server() as redis_url:
        env = {"RATE_LIMIT_REDIS": redis_url}
        with (
            serve_process(target, env=env, probe="/health") as one,
            serve_process(target, env=env, probe="/health") as two,
            nginx([one.removeprefix("http://"), two.removeprefix("http://")]) as url,
        ):
            yield url


def test_processes_sharing_redis_let_exactly_the_quota_through(balancer: str) -> None:
    client_address = {"x-forwarded-for": "203.0.113.1"}
    with httpx.Client(base_url=balancer, timeout=10, headers=client_address) as client:
        answers = [client.get("/") for _ in range(QUOTA + 10)]
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * QUOTA + [429] * 10
    # Round robin: both processes answered, in turn, and counted as one.
    upstreams = [answer.headers["x-upstream"] for answer in answers]
    assert len(set(upstreams)) == 2
    assert all(a != b for a, b in itertools.pairwise(upstreams))
    assert len({answer.json()["pid"] for answer in answers[:QUOTA]}) == 2
    fields = [answer.headers["ratelimit"].split(";") for answer in answers[:QUOTA]]
    assert [field[1] for field in fields] == [f"r={r}" for r in range(QUOTA - 1, -1, -1)]
    assert all(0 < int(field[2].removeprefix("t=")) <= 180 for field in fields)
    assert all(int(answer.headers["retry-after"]) <= 180 for answer in answers[QUOTA:])
    # Another client still has its whole quota.
    other = httpx.get(balancer + "/", headers={"x-forwarded-for": "203.0.113.2"}, timeout=10)
    assert other.status_code == 200


def test_a_concurrent_burst_lets_exactly_the_quota_through(balancer: str) -> None:
    clients = 50

    def one_request(_: int) -> tuple[int, str]:
        answer = httpx.get(balancer + "/", headers={"x-forwarded-for": "198.51.100.7"}, timeout=20)
        return answer.status_code, answer.headers["x-upstream"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(one_request, range(clients)))
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] * QUOTA + [429] * (clients - QUOTA)
    assert len({upstream for _, upstream in results}) == 2
