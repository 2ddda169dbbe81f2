"""Attacks on trusted_host: Host values that look like an allowed name but are not one."""

from __future__ import annotations

import pytest

from asgikit.middleware.trusted_host import trusted_host
from asgikit.responses import PlainTextResponse
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio

ALLOWED = ["example.com", "*.example.org", "[::1]", "10.0.0.1"]


async def ok(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("ok")(scope, receive, send)


async def status_for(host: bytes, allowed: list[str] = ALLOWED) -> int:
    app = trusted_host(ok, allowed_hosts=allowed, www_redirect=False)
    return (await run_app(app, make_scope(headers=[(b"host", host)]))).status


@pytest.mark.parametrize(
    "host",
    [
        b".example.org",  # an empty label is no subdomain
        b"a..example.org",
        b"..example.org",
        b"example.com..",  # RFC 1034 §3.1 allows one trailing dot, not two
        b"example.com...:443",
        b"evil%2f.example.org",  # percent-decoded by a browser: "evil/.example.org"
        b"evil.com%23.example.org",
        b"%65xample.com",
        b"example.com%2e",
    ],
)
async def test_empty_labels_extra_dots_and_escapes_do_not_pass_as_allowed_names(
    host: bytes,
) -> None:
    assert await status_for(host) == 400


@pytest.mark.parametrize(
    ("host", "status"),
    [
        (b"example.com", 200),
        (b"EXAMPLE.com", 200),
        (b"example.com.", 200),
        (b"example.com.:8080", 200),
        (b"a.example.org", 200),
        (b"a.b.example.org.", 200),
        (b"A-1_b.example.org", 200),
        (b"[::1]", 200),
        (b"[::1]:8000", 200),
        (b"10.0.0.1:80", 200),
        (b"example.org", 400),  # "*.x" is the subdomains only
        (b"example.com.evil.com", 400),
        (b"evilexample.org", 400),
        (b"example.org.evil.com", 400),
        (b"evil@example.com", 400),
        (b"example.com@evil", 400),
        (b"example.com:443@evil", 400),
        (b"example.com\\@evil", 400),
        (b"example.com/evil", 400),
        (b"example.com:", 400),
        (b"example.com:65536", 400),
        (b"example.com:80:80", 400),
        (b"[::1%25lo]", 400),
        (b"[0:0:0:0:0:0:0:1]", 400),  # another spelling: not the listed literal
        (b"::1", 400),
        (b"xn--exmple-cua.com", 400),
        (b"ex\xc3\xa4mple.com", 400),
        (b"example.com\x00", 400),
        (b"example.com ", 400),
        (b"", 400),
        (b".", 400),
        (b"*.example.org", 400),
        (b"a" * 300 + b".example.org", 400),
    ],
)
async def test_host_table(host: bytes, status: int) -> None:
    assert await status_for(host) == status


async def test_a_missing_host_is_refused_even_for_an_http10_client() -> None:
    app = trusted_host(ok, allowed_hosts=ALLOWED)
    assert (await run_app(app, make_scope())).status == 400


async def test_the_www_redirect_never_goes_to_a_name_that_is_not_allowed() -> None:
    app = trusted_host(ok, allowed_hosts=["www.example.com"])
    for host in (b".example.com", b"example.com..", b"evil%2f.example.com"):
        sent = await run_app(app, make_scope(headers=[(b"host", host)]))
        assert sent.status == 400, host
    sent = await run_app(
        app, make_scope("GET", "//evil.com/x", headers=[(b"host", b"example.com")])
    )
    assert sent.status == 307
    assert sent.header(b"location") == [b"http://www.example.com//evil.com/x"]
