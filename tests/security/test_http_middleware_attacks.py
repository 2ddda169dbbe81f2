"""Attacks on ``http_middleware``'s inline path and on the plain-function send layers.

The app runs in ``func``'s own task, stepped by hand (``_inline_app``); the
header layers hand back the server's awaitable from a plain function
(``asgikit._send``).  These tests try what a hurried optimisation tends to
break: memory a request leaves behind, and what the layers do with the
messages and awaitables they pass on.  Every test runs on asyncio and trio.
"""

from __future__ import annotations

import gc
import types
from collections.abc import Iterator

import anyio
import pytest

from asgikit.middleware.http_middleware import CallNext, StreamedResponse, http_middleware
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from tests.conftest import run_app


async def passthrough(request: Request, call_next: CallNext) -> StreamedResponse:
    return await call_next(request)


async def with_header(request: Request, call_next: CallNext) -> StreamedResponse:
    response = await call_next(request)
    response.headers["X-Seen"] = "yes"
    return response


@pytest.fixture
def collector_off() -> Iterator[list[object]]:
    """The cycle collector off, and what it finds afterwards saved (``DEBUG_SAVEALL``)."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        yield gc.garbage
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if was_enabled:
            gc.enable()


def asgikit_objects(garbage: list[object]) -> list[str]:
    """asgikit's objects and coroutines among ``garbage`` (the test runner leaves its own)."""
    found: list[str] = []
    for thing in garbage:
        if type(thing).__module__.startswith("asgikit"):
            found.append(type(thing).__qualname__)
        elif isinstance(thing, types.CoroutineType) and "asgikit" in thing.cr_code.co_filename:
            found.append(thing.cr_code.co_qualname)
    return found


@pytest.mark.parametrize("func", [passthrough, with_header])
async def test_a_request_through_the_inline_path_leaves_no_reference_cycle(
    func: object, collector_off: list[object]
) -> None:
    # A cycle (the caller naming itself as its runner) kept each request's
    # coroutine, context and start message until the next collection.
    app = http_middleware(func, PlainTextResponse("hello"))  # type: ignore[arg-type]
    with anyio.fail_after(10):
        sent = await run_app(app)
    assert sent.status == 200
    gc.collect()
    assert asgikit_objects(collector_off) == []
