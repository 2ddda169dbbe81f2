"""The hot path must not grow unnoticed: Python-level calls per request, counted and pinned.

Not a timing: ``sys.setprofile`` counts every Python function call
(``call``) and every call of a C function (``c_call``) while the router
answers one request, after warm-up.  The count is the same on any machine
and any load, so a change that adds work to every request (one more helper
call, a new per-request object) fails here even when a benchmark would not
notice it.

The request is driven without an event loop (``coroutine.send(None)``): on
these paths nothing waits, so the count holds no scheduler noise, and a
change that makes them wait fails too.

Re-pinning after a deliberate change: run
``pytest tests/test_hot_path.py -q -s``, which prints each count, and set
the constant to the new count in the same commit as the change, saying
why in its message.  The margin (10 %) absorbs Python patch releases, not
new work.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from typing import Any

import pytest

from asgikit import JSONResponse, PlainTextResponse, Request, http_middleware, route, router
from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.middleware.rate_limit import rate_limit
from asgikit.middleware.request_id import request_id
from asgikit.middleware.security_headers import security_headers
from asgikit.middleware.timing import timing

# Counted on CPython 3.11 (see the module docstring to re-pin).
HELLO_CALLS = 19
JSON_CALLS = 39
MISS_CALLS = 16


async def _add_header(request: Request, call_next: Any) -> Any:
    response = await call_next(request)
    response.headers["X-Layer"] = "1"
    return response


# What each header middleware adds around the JSON route.
LAYERS = {
    "request_id": (request_id, 13),
    "security_headers": (security_headers, 7),
    "timing": (timing, 6),
    "rate_limit": (lambda app: rate_limit(app, limits="1000000/minute"), 10),
    # The app runs inline in func's task: nothing waits (see _request), no task.
    "http_middleware": (lambda app: http_middleware(_add_header, app), 50),
    # A small answer: compress's start alone says "nothing to do".
    "compress": (compress, 10),
    "cors": (lambda app: cors(app, allow_origins=["https://a.example"]), 7),
}
MARGIN = 1.10


def _app() -> Any:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Hello, world!")

    async def user(request: Request) -> JSONResponse:
        return JSONResponse({"id": request.path_params["id"], "name": "user"})

    async def other(request: Request) -> PlainTextResponse:
        return PlainTextResponse("other")

    filler = [route(f"/section{i}/{{item:int}}", other) for i in range(18)]
    return router(route("/", hello), *filler, route("/users/{id:int}", user))


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.com")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


def _request(app: Any, path: str, answers: list[int]) -> Callable[[], None]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answers.append(message["status"])

    def one() -> None:
        coroutine = app(dict(_scope(path)), receive, send)
        try:
            coroutine.send(None)
        except StopIteration:
            return
        coroutine.close()
        raise AssertionError(f"GET {path} waited for something: the hot path must not")

    return one


def calls_per_request(
    path: str, layer: Callable[[Any], Any] | None = None, status: int = 200
) -> int:
    """Python and C calls the router makes answering ``GET path``, after warm-up.

    The fewest of five requests: the common path.  Work done once in a
    while (``request_id`` makes its ids 64 at a time) would otherwise make
    the count depend on how many requests came before.
    """
    answers: list[int] = []
    app = _app() if layer is None else layer(_app())
    one = _request(app, path, answers)
    for _ in range(20):
        one()
    count = 0

    def profile(frame: Any, event: str, arg: Any) -> None:
        nonlocal count
        if event == "call" or event == "c_call":
            count += 1

    # A garbage collection inside the counted request would count its
    # finalizers: collect first, and hold the collector off while counting.
    counts = []
    for _ in range(5):
        count = 0
        gc.collect()
        gc.disable()
        sys.setprofile(profile)
        try:
            one()
        finally:
            sys.setprofile(None)
            gc.enable()
        counts.append(count)
    assert answers, "no response"
    assert all(answer == status for answer in answers), answers
    return min(counts)


@pytest.mark.parametrize(
    ("name", "path", "status", "pinned"),
    [
        ("HELLO_CALLS", "/", 200, HELLO_CALLS),
        ("JSON_CALLS", "/users/123", 200, JSON_CALLS),
        ("MISS_CALLS", "/nothing/here", 404, MISS_CALLS),
    ],
)
def test_calls_per_request_stay_within_the_pinned_count(
    name: str, path: str, status: int, pinned: int
) -> None:
    count = calls_per_request(path, status=status)
    print(f"\n{name}: {count} calls per request (pinned {pinned})")
    assert count <= pinned * MARGIN, (
        f"GET {path} now makes {count} Python/C calls per request; {name} pins {pinned} "
        f"(+{(MARGIN - 1) * 100:.0f} %).  Every request pays for this.  If the growth is "
        f"deliberate, set {name} = {count} in tests/test_hot_path.py and say why in the "
        "commit; if not, find the new calls (e.g. with pyinstrument, or by diffing "
        "sys.setprofile traces of the two versions)."
    )
    # A pin far above the count would let the path grow unseen: keep it tight.
    assert count >= pinned / MARGIN - 1, (
        f"GET {path} now makes {count} calls per request, well below {name} = {pinned}: "
        f"lower the pin to {count} so that growth is caught again."
    )


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_a_header_middleware_adds_at_most_its_pinned_calls(name: str) -> None:
    layer, pinned = LAYERS[name]
    added = calls_per_request("/users/123", layer) - calls_per_request("/users/123")
    print(f"\n{name}: +{added} calls per request (pinned +{pinned})")
    assert added <= pinned * MARGIN + 1, (
        f"{name} now adds {added} Python/C calls per request; LAYERS pins +{pinned}.  "
        f"If the growth is deliberate, set its count to {added} in tests/test_hot_path.py "
        "and say why in the commit."
    )
    assert added >= pinned / MARGIN - 1, (
        f"{name} now adds {added} calls per request, well below its pin +{pinned}: "
        f"lower it to {added} so that growth is caught again."
    )
