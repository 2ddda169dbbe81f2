"""Attacks on reverse_proxy: requests two servers could read two ways never reach the upstream."""

from __future__ import annotations

import pytest

from asgikit._httpx import httpx
from asgikit.proxy import reverse_proxy
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio


def upstream_seeing(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"upstream"))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_two_host_headers_never_reach_the_upstream_as_the_other_one() -> None:
    seen: list[httpx.Request] = []
    async with upstream_seeing(seen) as client:
        app = reverse_proxy("http://upstream.internal", client=client, preserve_host=True)
        scope = make_scope(headers=[(b"host", b"good.example"), (b"host", b"evil.example")])
        sent = await run_app(app, scope)
    forwarded_hosts = [r.headers.get("host") for r in seen]
    assert sent.status == 400 or forwarded_hosts == ["good.example"]


async def test_one_host_header_is_preserved() -> None:
    seen: list[httpx.Request] = []
    async with upstream_seeing(seen) as client:
        app = reverse_proxy("http://upstream.internal", client=client, preserve_host=True)
        sent = await run_app(app, make_scope(headers=[(b"host", b"good.example")]))
    assert sent.status == 200
    assert seen[0].headers["host"] == "good.example"


@pytest.mark.parametrize(
    "raw", [b"/webhook/..;/admin", b"/webhook/..%5cadmin", b"/webhook/..%5Cadmin"]
)
async def test_a_dot_dot_the_upstream_resolves_is_refused_not_forwarded(raw: bytes) -> None:
    seen: list[httpx.Request] = []
    async with upstream_seeing(seen) as client:
        app = reverse_proxy("http://upstream.internal", client=client)
        scope = make_scope("POST")
        scope["raw_path"] = raw
        scope["path"] = raw.decode().replace("%5c", "\\").replace("%5C", "\\")
        sent = await run_app(app, scope)
    assert (sent.status, seen) == (400, [])


@pytest.mark.parametrize(
    "raw", [b"/webhook/%2e%2e/admin", b"/webhook/%2E%2E/admin", b"/webhook/%2e/admin"]
)
async def test_an_encoded_dot_segment_is_refused_not_forwarded(raw: bytes) -> None:
    seen: list[httpx.Request] = []
    async with upstream_seeing(seen) as client:
        app = reverse_proxy("http://upstream.internal", client=client)
        scope = make_scope("POST")
        scope["raw_path"] = raw
        scope["path"] = "/webhook/../admin" if b"%2e%2e" in raw.lower() else "/webhook/./admin"
        sent = await run_app(app, scope)
    assert (sent.status, seen) == (400, [])
