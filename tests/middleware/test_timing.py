"""timing: a Server-Timing field with the app's time, after the app's own."""

from __future__ import annotations

import re

import httpx
import pytest

from asgikit.middleware.timing import timing
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.middleware._fast_send import messages_through
from tests.servers.live import serve

DURATION = re.compile(r"app;dur=\d+\.\d{3}")


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello", headers={"server-timing": "db;dur=1"})(scope, receive, send)


def test_server_timing_is_appended_after_the_apps_own() -> None:
    response = TestClient(timing(hello)).get("/")
    values = response.headers.get_list("server-timing")
    assert values[0] == "db;dur=1"
    assert DURATION.fullmatch(values[1])


def test_name_and_description_options() -> None:
    response = TestClient(timing(hello, name="total", description="whole app")).get("/")
    assert re.fullmatch(
        r'total;dur=\d+\.\d{3};desc="whole app"', response.headers.get_list("server-timing")[1]
    )
    with pytest.raises(ValueError):
        timing(hello, name="bad name")
    with pytest.raises(ValueError):
        timing(hello, description='say "hi"')


def test_through_uvicorn_with_httpx() -> None:
    with serve(timing(hello), lifespan="off") as base:
        assert DURATION.fullmatch(httpx.get(base).headers.get_list("server-timing")[1])


async def test_the_apps_send_hands_back_the_servers_awaitable_and_copies_the_start() -> None:
    sent = await messages_through(timing)
    names = [name for name, _ in sent[0]["headers"]]
    assert names == [b"content-type", b"server-timing"]


async def test_a_percent_sign_in_the_name_or_description_is_written_as_it_is() -> None:
    sent = await messages_through(lambda app: timing(app, name="p%d", description="50%s"))
    value = dict(sent[0]["headers"])[b"server-timing"]
    assert re.fullmatch(rb'p%d;dur=\d+\.\d{3};desc="50%s"', value)
