"""The router's hot paths keep their shape: a 404 miss and a route two mounts deep.

Not timed: the number of Python-level calls a request makes inside asgikit
is counted with ``sys.setprofile`` and pinned, so a change that grows the
path fails here on any machine.  The shortcuts those paths take (a prebuilt
404, the static routes of mounted routers joined into the outer table) are
checked to answer exactly as the long way does.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

import asgikit
from asgikit import (
    PlainTextResponse,
    Request,
    exception_handlers,
    host,
    mount,
    route,
    router,
)
from asgikit.routing import ROUTE_TEMPLATE_SINK
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

PACKAGE = os.path.dirname(asgikit.__file__)


def _scope(path: str, method: str = "GET", **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"example.org")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(extra)
    return scope


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _call(app: ASGIApp, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, _receive, send)
    return sent


async def _asgikit_calls(app: ASGIApp, scope: Scope) -> int:
    """Python functions of the asgikit package called while ``app`` answers ``scope``."""
    await _call(app, dict(scope))  # warm: nothing built lazily is counted
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            count += 1

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    sys.setprofile(profile)
    try:
        await app(dict(scope), _receive, send)
    finally:
        sys.setprofile(None)
    assert sent
    return count


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


def _twenty_routes() -> ASGIApp:
    routes = []
    for i in range(10):
        routes.append(route(f"/static{i}/page", hello, name=f"s{i}"))
        routes.append(route(f"/items{i}/{{id:int}}", hello, name=f"p{i}"))
    return router(*routes)


async def test_a_404_miss_in_a_twenty_route_table_makes_one_call_in_asgikit() -> None:
    # The router alone: the default 404 is sent inline.
    assert await _asgikit_calls(_twenty_routes(), _scope("/nope")) <= 1
    assert await _asgikit_calls(_twenty_routes(), _scope("/static3/nope/deeper")) <= 1


async def test_a_route_two_mounts_deep_costs_the_calls_of_the_same_route_at_top_level() -> None:
    top = router(route("/hello", hello))
    nested = router(mount("/a", router(mount("/b", router(route("/hello", hello))))))
    assert await _asgikit_calls(nested, _scope("/a/b/hello")) == await _asgikit_calls(
        top, _scope("/hello")
    )


async def test_a_pattern_route_two_mounts_deep_costs_no_more_calls_than_at_top_level() -> None:
    # The outer router matches the routes below both mounts by one
    # expression (``_routing_flat``) instead of running the mounted routers.
    def users() -> ASGIApp:
        return router(route("/users/{id:int}", hello), route("/other/{x}", hello))

    top = users()
    nested = router(mount("/a", router(mount("/b", users()))))
    assert await _asgikit_calls(nested, _scope("/a/b/users/7")) <= await _asgikit_calls(
        top, _scope("/users/7")
    )


# --- the prebuilt 404 answers as the long way does --------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
async def test_the_prebuilt_404_is_the_text_404_a_plain_accept_gets(method: str) -> None:
    app = _twenty_routes()
    fast = await _call(app, _scope("/nope", method))
    plain = await _call(
        app, _scope("/nope", method, headers=[(b"host", b"x"), (b"accept", b"text/plain")])
    )
    assert fast == plain
    assert fast[0]["status"] == 404
    assert (b"vary", b"Accept") in fast[0]["headers"]


async def test_a_miss_asking_for_json_still_gets_json_with_vary_accept() -> None:
    sent = await _call(
        _twenty_routes(),
        _scope("/nope", headers=[(b"accept", b"text/plain;q=0.5, application/json")]),
    )
    assert sent[0]["status"] == 404
    assert (b"content-type", b"application/json") in sent[0]["headers"]
    assert (b"vary", b"Accept") in sent[0]["headers"]
    assert sent[1]["body"] == b'{"detail":"Not Found"}'


async def test_a_miss_under_a_404_handler_reaches_the_handler() -> None:
    async def missing(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("gone fishing", 404)

    app = exception_handlers(_twenty_routes(), handlers={404: missing})
    sent = await _call(app, _scope("/nope"))
    assert sent[0]["status"] == 404
    assert sent[1]["body"] == b"gone fishing"


async def test_a_sent_404_headers_list_is_a_fresh_copy_each_time() -> None:
    app = _twenty_routes()
    first = await _call(app, _scope("/nope"))
    first[0]["headers"].append((b"x-mutated", b"1"))  # a middleware editing in place
    second = await _call(app, _scope("/nope"))
    assert (b"x-mutated", b"1") not in second[0]["headers"]


async def test_a_missing_trailing_slash_still_redirects_to_a_static_or_pattern_route() -> None:
    app = router(route("/static/", hello), route("/users/{id:int}/", hello))
    for path, location in [("/static", b"/static/"), ("/users/3", b"/users/3/")]:
        sent = await _call(app, _scope(path))
        assert sent[0]["status"] == 307
        assert (b"location", location) in sent[0]["headers"]
    # A toggled path that matches nothing: a plain 404.
    assert (await _call(app, _scope("/users/x")))[0]["status"] == 404


# --- joined mounts answer as the mounted routers would ----------------------


def _opaque(app: ASGIApp) -> ASGIApp:
    """``app`` behind a plain function: the outer router cannot look inside it."""

    async def passthrough(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return passthrough


def _seen(into: list[Scope]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> PlainTextResponse:
        into.append(dict(request.scope))
        return PlainTextResponse("ok")

    return endpoint


def _trees(seen: list[Scope]) -> tuple[ASGIApp, ASGIApp]:
    """The same tree twice: routers mounted plainly, and behind opaque functions."""

    def build(wrap: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
        endpoint = _seen(seen)
        inner = router(
            route("/", endpoint, name="root"),
            route("/hello", endpoint, methods=["GET", "POST"], name="hello"),
            route("/slash/", endpoint, name="slash"),
            route("/users/{id:int}", endpoint, name="user"),
        )
        middle = router(mount("/b", wrap(inner), name="b"), route("/own", endpoint))
        return router(
            route("/a/b/hello", endpoint, methods=["PUT"], name="shadow_put"),
            mount("/a", wrap(middle), name="a"),
            mount("/c/d", wrap(inner), name="cd"),
            mount("/t/{tenant}", wrap(inner), name="t"),
        )

    return build(lambda app: app), build(_opaque)


PATHS = [
    "/a/b/hello",
    "/a/b",
    "/a/b/",
    "/a/own",
    "/a/b/slash/",
    "/a/b/slash",
    "/c/d/hello",
    "/c/d",
    "/c/d/",
    "/a/b/nope",
    "/a/b/users/3",
    "/c/d/users/3",
    "/t/acme/users/3",
    "/t/acme/hello",
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST", "PUT", "DELETE"])
@pytest.mark.parametrize(
    "extra",
    [
        {},
        {"root_path": "/x"},
        {"root_path": "/x/"},
        {"path_params": {"tenant": "t1"}},
        {ROUTE_TEMPLATE_SINK: [None], "asgikit.route_prefix": "/outer"},
    ],
    ids=["plain", "root", "root-slash", "params", "sink"],
)
async def test_a_joined_mount_gives_the_endpoint_the_scope_and_answer_of_the_long_way(
    path: str, method: str, extra: dict[str, Any]
) -> None:
    seen: list[Scope] = []
    joined, opaque = _trees(seen)
    answers = []
    for app in (joined, opaque):
        scope = _scope(path, method, **extra)
        if scope["root_path"]:
            scope["path"] = scope["root_path"].rstrip("/") + path
        if ROUTE_TEMPLATE_SINK in scope:
            scope[ROUTE_TEMPLATE_SINK] = [None]
        answers.append((await _call(app, scope), scope.get(ROUTE_TEMPLATE_SINK)))
    assert answers[0] == answers[1]
    assert len(seen) in (0, 2)
    if seen:
        fast, slow = seen
        assert fast.pop("asgikit.router") is joined
        assert slow.pop("asgikit.router") is opaque
        assert fast == slow


async def test_a_server_giving_path_below_root_path_reaches_a_joined_mount() -> None:
    seen: list[Scope] = []
    joined, opaque = _trees(seen)
    for app in (joined, opaque):
        await _call(app, _scope("/c/d/hello", root_path="/x"))  # the older ASGI reading
    fast, slow = seen
    assert fast["path"] == slow["path"] == "/x/c/d/hello"
    assert fast["root_path"] == slow["root_path"] == "/x/c/d"


async def test_url_for_through_joined_mounts_is_unchanged() -> None:
    seen: list[Scope] = []
    joined, _ = _trees(seen)
    await _call(joined, _scope("/c/d/hello"))
    request = Request(seen[0], _receive)
    assert str(request.url_for("a:b:hello")).endswith("/a/b/hello")
    assert str(request.url_for("cd:slash")).endswith("/c/d/slash/")


async def test_a_pattern_route_before_a_mount_keeps_its_precedence() -> None:
    seen: list[Scope] = []
    app = router(
        route("/a/{rest:path}", _seen(seen), name="catch"),
        mount("/a", router(route("/hello", hello))),
    )
    sent = await _call(app, _scope("/a/hello"))
    assert sent[1]["body"] == b"ok"
    assert seen[0]["route_template"] == "/a/{rest:path}"


async def test_a_host_before_a_mount_still_decides_per_request() -> None:
    seen: list[Scope] = []
    app = router(
        host("api.example.org", router(route("/a/hello", _seen(seen)))),
        mount("/a", router(route("/hello", hello))),
    )
    sent = await _call(app, _scope("/a/hello", headers=[(b"host", b"api.example.org")]))
    assert sent[1]["body"] == b"ok"
    sent = await _call(app, _scope("/a/hello"))
    assert sent[1]["body"] == b"hello"


async def test_one_router_mounted_at_many_prefixes_many_levels_deep_builds_in_bounded_time() -> (
    None
):
    # 30 prefixes at 3 levels is 27,000 paths: past MAX_JOINED_ROUTES the
    # rest are routed router by router, and still answer.
    leaf = router(route("/hello", hello))
    middle = router(*(mount(f"/m{i}", leaf) for i in range(30)))
    upper = router(*(mount(f"/u{i}", middle) for i in range(30)))
    top = router(*(mount(f"/t{i}", upper) for i in range(30)))
    assert len(top._mounted_static) <= asgikit.routing.MAX_JOINED_ROUTES
    sent = await _call(top, _scope("/t29/u29/m29/hello"))
    assert sent[1]["body"] == b"hello"


def test_the_404_shortcut_spells_the_error_keys_of_asgikit_errors() -> None:
    # The router writes them as literals, for speed; they must stay the same.
    import inspect

    from asgikit import _errors, routing

    source = inspect.getsource(routing.Router.__call__)
    assert repr(_errors.HANDLERS_KEY).replace("'", '"') in source
    assert repr(_errors.RAISE_KEY).replace("'", '"') in source
    assert f'"{routing.ROUTE_TEMPLATE_SINK}" in scope' in source
    assert f'"{routing.ROUTE_TEMPLATE}" in scope' in source
