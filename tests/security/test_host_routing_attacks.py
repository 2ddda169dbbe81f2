"""Attacks on host() routing: Host values that must never pick a host route."""

from __future__ import annotations

import pytest

from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import host, route, router
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio


async def tenant(request: Request) -> PlainTextResponse:
    return PlainTextResponse("tenant:" + request.path_params["sub"])


async def admin(request: Request) -> PlainTextResponse:
    return PlainTextResponse("admin")


APP = router(
    host("admin.example.com", router(route("/", admin))),
    host("{sub}.example.com", router(route("/", tenant))),
)


async def answer(host_value: bytes) -> tuple[int, bytes]:
    sent = await run_app(APP, make_scope(headers=[(b"host", host_value)]))
    return sent.status, sent.body


@pytest.mark.parametrize(
    "value",
    [
        b"..example.com",  # sub "." : no label is empty or a dot
        b"a..example.com",
        b".a.example.com",
        b"evil%2f.example.com",  # a browser decodes it to another name
        b"%61dmin.example.com",  # "admin", spelled so a check on the name misses it
        b"admin.example.com..",
        b"a.example.com:99999",
        b"a.example.com:x",
        b"evil@a.example.com",
        b"a.example.com.evil.com",
        b".",
        b".:80",
        b"..",
    ],
)
async def test_malformed_names_match_no_host_route(value: bytes) -> None:
    assert (await answer(value))[0] == 404


@pytest.mark.parametrize(
    ("value", "body"),
    [
        (b"admin.example.com", b"admin"),
        (b"ADMIN.Example.com.", b"admin"),
        (b"admin.example.com:8443", b"admin"),
        (b"acme.example.com", b"tenant:acme"),
        (b"a.b.example.com", b"tenant:a.b"),
    ],
)
async def test_well_formed_names_match(value: bytes, body: bytes) -> None:
    assert await answer(value) == (200, body)


async def test_the_first_of_two_host_headers_is_the_one_routed_on() -> None:
    scope = make_scope(headers=[(b"host", b"acme.example.com"), (b"host", b"admin.example.com")])
    sent = await run_app(APP, scope)
    assert sent.body == b"tenant:acme"


@pytest.mark.parametrize(
    "huge",
    [
        b"a." * 100_000 + b"example.com",  # 100,000 labels
        b"a" * 200_000 + b".example.com",  # one label far past DNS's 63
        b"sub.example.com:" + b"9" * 100_000,  # a port of 100,000 digits
        b"[" + b":" * 100_000 + b"]",  # an endless bracketed literal
    ],
    ids=["labels", "long-label", "long-port", "bracketed"],
)
async def test_a_huge_host_header_matches_no_host_route_and_is_no_500(huge: bytes) -> None:
    async def sub(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.path_params["sub"])

    app = router(host("{sub}.example.com", router(route("/", sub))))
    sent = await run_app(app, make_scope(headers=[(b"host", huge)]))
    assert sent.status == 404
