"""Attacks on reverse_proxy (asgikit/proxy/ belongs to another helper: found holes are xfail)."""

from __future__ import annotations

import httpx
import pytest

from asgikit.proxy import reverse_proxy
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio


def upstream_seeing(seen: list[httpx.Request]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, stream=httpx.ByteStream(b"upstream"))

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


@pytest.mark.xfail(
    strict=True,
    reason="reverse_proxy(preserve_host=True) forwards the LAST Host header (and builds "
    "X-Forwarded-Host/Forwarded host= from it) while request.url, host() routing and "
    "every other reader use the first: issue 12 #5 asks for 400 or agreement",
)
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
