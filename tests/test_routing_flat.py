"""Pattern routes of mounted routers, found from the outer router, answer as the long way.

A router mounted plainly (``mount("/a", router(...))``) has its pattern
routes matched from the outer router.  Every behaviour below is checked
against the same tree with each mounted router hidden behind a plain
function, which the outer router cannot look into: the reference, router by
router.  The trees hold what makes that hard: a 405 before a mount, routes
sharing a path by method, a convertor that refuses, static routes beside
patterns, hosts, WebSocket routes, mounted apps that are not routers,
``redirect_slashes`` off, and mounts at a parameterised prefix.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

import asgikit
from asgikit import (
    PlainTextResponse,
    Request,
    host,
    mount,
    route,
    router,
    websocket_route,
)
from asgikit.convertors import Convertor, register_convertor
from asgikit.routing import ROUTE_TEMPLATE_SINK
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from asgikit.websockets import WebSocket


class _EvenConvertor(Convertor[int]):
    """Digits, but only an even number: an odd one is refused after the regex matched."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        number = int(value, 10)
        if number % 2:
            raise ValueError("odd")
        return number

    def to_string(self, value: int) -> str:
        return str(value)


register_convertor("flat_even", _EvenConvertor())


def _scope(path: str, method: str = "GET", **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"q=1",
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


def _opaque(app: ASGIApp) -> ASGIApp:
    """``app`` behind a plain function: the outer router cannot look inside it."""

    async def passthrough(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return passthrough


Seen = list[tuple[str, Scope]]


def _endpoint(seen: Seen, name: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> PlainTextResponse:
        seen.append((name, dict(request.scope)))
        return PlainTextResponse(name)

    return endpoint


def _raw(seen: Seen, name: str) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((name, dict(scope)))
        await PlainTextResponse(name)(scope, receive, send)

    return app


def _tree(seen: Seen, wrap: Callable[[ASGIApp], ASGIApp]) -> ASGIApp:
    def ep(name: str) -> Callable[[Request], Any]:
        return _endpoint(seen, name)

    async def ws(websocket: WebSocket) -> None:
        seen.append(("ws", dict(websocket.scope)))
        await websocket.accept()
        await websocket.close()

    def leaf(*, redirect_slashes: bool = True) -> ASGIApp:
        return router(
            route("/", ep("leaf-root"), name="root"),
            route("/users/{id:int}", ep("user-get"), methods=["GET"], name="user"),
            route("/users/{id:int}", ep("user-post"), methods=["POST"], name="user-post"),
            route("/users/me", ep("me"), name="me"),
            route("/users/{name}", ep("user-name"), methods=["GET", "PUT"], name="user-name"),
            route("/even/{n:flat_even}", ep("even"), name="even"),
            route("/even/{rest:path}", ep("even-rest"), name="even-rest"),
            route("/files/{p:path}", ep("files"), name="files"),
            route("/slashy/{x}/", ep("slashy"), name="slashy"),
            websocket_route("/ws/{x}", ws, name="ws"),
            route("/ws/{x}", ep("ws-http"), name="ws-http"),
            mount("/raw", _raw(seen, "raw"), name="raw"),
            route("/raw/{x}", ep("after-raw")),
            route("/{any}/tail", ep("wild-tail"), name="wild"),
            route("/after/{x}", ep("after-wild"), methods=["GET", "DELETE"]),
            # First segments sharing characters, and a wildcard between them.
            route("/r1/{x}", ep("r1")),
            route("/r10/{x}", ep("r10"), methods=["GET"]),
            route("/r/{x}", ep("r")),
            route("/{a}/{b}/deep", ep("wild-deep")),
            route("/r1/{x}/y", ep("r1-y")),
            route("/r10/{x}", ep("r10-post"), methods=["POST"]),
            mount("/r1x", wrap(router(route("/{x}", ep("r1x")))), name="r1x"),
            mount("/r2", _raw(seen, "r2")),
            route("/r2x/{x}", ep("r2x")),
            route("//{x}", ep("empty-first-segment")),
            redirect_slashes=redirect_slashes,
        )

    middle = router(
        route("/p/{x}", ep("mid-put"), methods=["PUT"], name="mid-put"),
        mount("/p", wrap(leaf()), name="p"),
        route("/late/{x}", ep("late"), name="late"),
        mount("/b", wrap(leaf()), name="b"),
        mount("/nr", wrap(leaf(redirect_slashes=False)), name="nr"),
        route("/b/{x}/shadowed", ep("shadowed-by-mount")),
        host("h.example.org", router(route("/hosted/{x}", ep("hosted"))), name="h"),
        route("/after-host/{x}", ep("after-host")),
    )
    return router(
        route("/a/b/even/{n:int}", ep("shadow-delete"), methods=["DELETE"], name="shadow"),
        mount("/a", wrap(middle), name="a"),
        mount("/c/d", wrap(leaf()), name="cd"),
        mount("/t/{tenant}", wrap(leaf()), name="t"),
        # Mounts sharing a first segment: a path below the second passes the first.
        mount("/v/1", wrap(leaf()), name="v1"),
        mount("/v/2", wrap(leaf()), name="v2"),
        route("/a/{x}/late-outer", ep("never")),
    )


LEAF_PATHS = [
    "",
    "/",
    "/users/7",
    "/users/8/",
    "/users/me",
    "/users/bob",
    "/users/",
    "/users",
    "/even/4",
    "/even/5",
    "/even/5/x",
    "/files/",
    "/files/a/b.txt",
    "/files",
    "/slashy/z",
    "/slashy/z/",
    "/ws/room",
    "/raw",
    "/raw/x",
    "/zz/tail",
    "/zz/tail/",
    "/after/1",
    "/nothing",
    "//users/7",
    "/users//7",
    "/users/7\n",
    "/files/a\nb",
    "/r1/a",
    "/r10/a",
    "/r/a",
    "/r1/a/y",
    "/r1/a/deep",
    "/r10/a/deep",
    "/r1x/q",
    "/r1x",
    "/r2/q",
    "/r2x/q",
    "/r3/a",
    "/r100/a",
    "/raw\n/x",
]
PATHS = [
    *(f"/a/b{p}" for p in LEAF_PATHS),
    *(f"/a/p{p}" for p in LEAF_PATHS),
    *(f"/a/nr{p}" for p in LEAF_PATHS),
    *(f"/c/d{p}" for p in LEAF_PATHS),
    *(f"/t/acme{p}" for p in LEAF_PATHS),
    "/a/b//q",
    "/v/1/users/7",
    "/v/2/users/7",
    "/v/2/files/x",
    "/v/3/users/7",
    "/v/22/users/7",
    "/v/2",
    "/a/late/1",
    "/a/hosted/1",
    "/a/after-host/1",
    "/a/b/x/shadowed",
    "/a/bb/users/7",
    "/a/x/late-outer",
    "/a",
    "/a/",
    "/c",
    "/c/d/../d/users/7",
]

EXTRAS: list[dict[str, Any]] = [
    {},
    {"root_path": "/x"},
    {"root_path": "/x/"},
    {"path_params": {"tenant": "t1", "id": "outer"}},
    {ROUTE_TEMPLATE_SINK: [None], "asgikit.route_prefix": "/outer"},
    {"headers": [(b"host", b"h.example.org")]},
]


_TREES: dict[str, tuple[ASGIApp, Seen]] = {}


def _trees() -> tuple[tuple[ASGIApp, Seen], tuple[ASGIApp, Seen]]:
    """The tree with routers mounted plainly, and the reference; built once."""
    if not _TREES:
        for kind, wrap in (("joined", lambda app: app), ("opaque", _opaque)):
            seen: Seen = []
            _TREES[kind] = (_tree(seen, wrap), seen)
    return _TREES["joined"], _TREES["opaque"]


async def _both(path: str, method: str, extra: dict[str, Any]) -> None:
    """The tree answers ``path`` as the reference does, and its endpoint sees the same scope."""
    (joined, seen_joined), (opaque, seen_opaque) = _trees()
    seen_joined.clear()
    seen_opaque.clear()
    answers = []
    for app in (joined, opaque):
        scope = _scope(path, method, **extra)
        if scope["root_path"]:
            scope["path"] = scope["root_path"].rstrip("/") + path
        if ROUTE_TEMPLATE_SINK in scope:
            scope[ROUTE_TEMPLATE_SINK] = [None]
        answers.append((await _call(app, scope), scope.get(ROUTE_TEMPLATE_SINK)))
    assert answers[0] == answers[1], (path, method, extra)
    assert len(seen_joined) == len(seen_opaque) <= 1
    if seen_joined:
        (name, fast), (other, slow) = seen_joined[0], seen_opaque[0]
        assert name == other
        assert fast.pop("asgikit.router") is joined
        assert slow.pop("asgikit.router") is opaque
        assert fast == slow


@pytest.mark.parametrize("path", PATHS)
async def test_a_mounted_pattern_route_answers_and_builds_the_scope_as_router_by_router(
    path: str,
) -> None:
    for method in ("GET", "HEAD", "POST", "PUT", "DELETE"):
        await _both(path, method, {})
    for extra in EXTRAS:
        await _both(path, "GET", extra)


# --- the same behaviours, named -----------------------------------------------


def _app() -> tuple[ASGIApp, Seen]:
    seen: Seen = []
    return _tree(seen, lambda app: app), seen


async def _answer(path: str, method: str = "GET", **extra: Any) -> tuple[int, bytes, Seen]:
    app, seen = _app()
    sent = await _call(app, _scope(path, method, **extra))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return sent[0]["status"], body, seen


def _allow(sent: list[Message]) -> bytes:
    return dict(sent[0]["headers"])[b"allow"]


async def test_mounted_patterns_keep_declaration_order_and_choose_by_method() -> None:
    assert (await _answer("/a/b/users/7"))[1] == b"user-get"
    assert (await _answer("/a/b/users/7", "POST"))[1] == b"user-post"
    # The int route takes only GET and POST: the later str route takes PUT.
    assert (await _answer("/a/b/users/7", "PUT"))[1] == b"user-name"
    assert (await _answer("/a/b/users/bob"))[1] == b"user-name"
    # A static route is tried before the patterns, wherever it is declared.
    assert (await _answer("/a/b/users/me"))[1] == b"me"


async def test_a_mounted_route_whose_convertor_refuses_falls_to_the_next_route() -> None:
    assert (await _answer("/c/d/even/4"))[1] == b"even"
    assert (await _answer("/c/d/even/5"))[1] == b"even-rest"


async def test_a_mounted_path_matched_only_by_other_methods_is_405_with_allow() -> None:
    app, _ = _app()
    sent = await _call(app, _scope("/a/b/users/7", "PATCH"))
    assert sent[0]["status"] == 405
    assert _allow(sent) == b"GET, HEAD, POST, PUT"
    sent = await _call(app, _scope("/a/b/after/1", "POST"))
    assert _allow(sent) == b"DELETE, GET, HEAD"


async def test_a_405_from_a_route_before_a_mount_beats_the_mount() -> None:
    # "/a/p/{x}" (PUT) in the middle router comes before mount("/p", ...).
    app, seen = _app()
    sent = await _call(app, _scope("/a/p/anything", "GET"))
    assert sent[0]["status"] == 405
    assert _allow(sent) == b"PUT"
    assert seen == []
    assert (await _answer("/a/p/anything", "PUT"))[1] == b"mid-put"
    # A path deeper than the route's pattern reaches the mount.
    assert (await _answer("/a/p/users/7"))[1] == b"user-get"


async def test_a_405_from_an_outer_route_before_the_mount_beats_the_mount() -> None:
    app, seen = _app()
    sent = await _call(app, _scope("/a/b/even/4", "GET"))
    assert sent[0]["status"] == 405
    assert _allow(sent) == b"DELETE"
    assert seen == []
    assert (await _answer("/a/b/even/4", "DELETE"))[1] == b"shadow-delete"


async def test_a_mounted_router_redirects_a_toggled_slash_unless_told_not_to() -> None:
    app, _ = _app()
    sent = await _call(app, _scope("/a/b/slashy/z"))
    assert sent[0]["status"] == 307
    assert dict(sent[0]["headers"])[b"location"] == b"/a/b/slashy/z/?q=1"
    assert (await _call(app, _scope("/a/nr/slashy/z")))[0]["status"] == 404
    assert (await _answer("/a/nr/slashy/z/"))[1] == b"slashy"


async def test_a_mounted_route_sees_root_path_path_and_merged_params() -> None:
    status, _, seen = await _answer(
        "/x/a/b/users/7", root_path="/x", path_params={"tenant": "t1", "id": "outer"}
    )
    assert status == 200
    scope = seen[0][1]
    assert scope["root_path"] == "/x/a/b"
    assert scope["path"] == "/x/a/b/users/7"
    assert scope["path_params"] == {"tenant": "t1", "id": 7}
    assert scope["route_template"] == "/a/b/users/{id:int}"


async def test_a_mounted_route_tells_the_sink_its_full_template() -> None:
    app, _ = _app()
    sink: list[str | None] = [None]
    await _call(app, _scope("/a/b/files/x/y", **{ROUTE_TEMPLATE_SINK: sink}))
    assert sink == ["/a/b/files/{p:path}"]
    await _call(app, _scope("/a/b/users/7", "PATCH", **{ROUTE_TEMPLATE_SINK: sink}))
    assert sink == [None]


async def test_url_for_from_a_mounted_pattern_route_reaches_every_route() -> None:
    _, _, seen = await _answer("/a/b/users/7")
    request = Request(seen[0][1], _receive)
    assert request.url_for("a:b:user", id=9).path == "/a/b/users/9"
    assert request.url_for("cd:files", p="x/y").path == "/c/d/files/x/y"
    assert request.url_for("t:user", tenant="z", id=1).path == "/t/z/users/1"


async def test_a_host_inside_a_mounted_router_still_decides_per_request() -> None:
    assert (await _answer("/a/hosted/1", headers=[(b"host", b"h.example.org")]))[1] == b"hosted"
    assert (await _answer("/a/hosted/1"))[0] == 404
    # A route after the host is reached when the host does not match.
    assert (await _answer("/a/after-host/1"))[1] == b"after-host"


async def test_a_mount_of_a_plain_app_inside_a_mounted_router_takes_its_prefix() -> None:
    _, body, seen = await _answer("/a/b/raw/x")
    assert body == b"raw"
    assert seen[0][1]["root_path"] == "/a/b/raw"
    assert seen[0][1]["route_template"] == "/a/b/raw"


async def test_a_websocket_route_in_a_mounted_router_is_not_an_http_route() -> None:
    assert (await _answer("/a/b/ws/room"))[1] == b"ws-http"
    app, seen = _app()
    sent: list[Message] = []
    incoming = iter([{"type": "websocket.connect"}, {"type": "websocket.disconnect"}])

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = _scope("/a/b/ws/room")
    scope["type"] = "websocket"
    del scope["method"]
    await app(scope, receive, send)
    assert sent[0]["type"] == "websocket.accept"
    assert seen[0][0] == "ws"
    assert seen[0][1]["path_params"] == {"x": "room"}
    assert seen[0][1]["route_template"] == "/a/b/ws/{x}"


async def test_a_route_added_to_a_mounted_router_after_building_is_not_routed() -> None:
    # Routers are compiled once, mounted or not: a later ``routes`` edit
    # changes reverse URLs only.
    inner = router(route("/users/{id:int}", _endpoint([], "user")))
    app = router(mount("/a", inner))
    inner.routes.append(route("/late/{x}", _endpoint([], "late"), name="late"))
    assert (await _call(app, _scope("/a/late/1")))[0]["status"] == 404
    assert (await _call(inner, _scope("/late/1")))[0]["status"] == 404
    assert inner.url_path_for("late", x="1") == "/late/1"


async def test_a_mounted_routes_app_replaced_after_building_is_the_one_called() -> None:
    seen: Seen = []
    user = route("/users/{id:int}", _endpoint(seen, "old"))
    app = router(mount("/a", router(mount("/b", router(user)))))
    user.app = _raw(seen, "new")
    sent = await _call(app, _scope("/a/b/users/1"))
    assert sent[1]["body"] == b"new"


# --- the outer router looks through the mounted routers ----------------------

PACKAGE = asgikit.__file__.rsplit("/", 1)[0]


async def _asgikit_calls(app: ASGIApp, scope: Scope) -> int:
    """Python functions of the asgikit package called while ``app`` answers ``scope``."""
    await _call(app, dict(scope))  # warm: nothing built lazily is counted
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            count += 1

    sys.setprofile(profile)
    try:
        sent = await _call(app, dict(scope))
    finally:
        sys.setprofile(None)
    assert sent[0]["status"] == 200
    return count


async def test_a_pattern_route_mounts_deep_costs_no_more_calls_than_at_top_level() -> None:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    fill = [route(f"/f{i}/{{x:int}}", hello) for i in range(6)]
    top = router(*fill, route("/a/b/users/{id:int}", hello))
    nested = router(
        *fill,
        mount("/a", router(*fill, mount("/b", router(*fill, route("/users/{id:int}", hello))))),
    )
    assert await _asgikit_calls(nested, _scope("/a/b/users/7")) <= await _asgikit_calls(
        top, _scope("/a/b/users/7")
    )


class _AfterB(Convertor[str]):
    """An ``x`` that must follow ``b/``: a look-behind, which sees what is before the route."""

    regex = "(?<=b/)x"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


class _OneOf(Convertor[str]):
    """``a`` or ``b``: an alternation at the top of the convertor's expression."""

    regex = "a|b"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_convertor("flat_after_b", _AfterB())
register_convertor("flat_one_of", _OneOf())


async def test_a_convertor_whose_expression_sees_the_prefix_matches_as_router_by_router() -> None:
    # Router by router the route sees "/x", with no "b/" before it: no match.
    app = router(mount("/b", router(route("/{v:flat_after_b}", _endpoint([], "after-b")))))
    assert (await _call(app, _scope("/b/x")))[0]["status"] == 404


async def test_a_convertor_with_an_alternation_keeps_it_inside_its_parameter() -> None:
    app = router(mount("/m", router(route("/{v:flat_one_of}/end", _endpoint([], "one-of")))))
    assert (await _call(app, _scope("/m/a/end")))[1]["body"] == b"one-of"
    assert (await _call(app, _scope("/m/a")))[0]["status"] == 404
    assert (await _call(app, _scope("/m/b/end")))[1]["body"] == b"one-of"


async def test_a_route_added_to_a_router_before_it_is_mounted_is_not_routed_either() -> None:
    inner = router(route("/users/{id:int}", _endpoint([], "user")))
    inner.routes.append(route("/late/{x}", _endpoint([], "late")))
    app = router(mount("/a", inner))
    assert (await _call(app, _scope("/a/late/1")))[0]["status"] == 404
    assert (await _call(app, _scope("/a/users/1")))[1]["body"] == b"user"


async def test_mounts_past_the_joined_entries_limit_are_routed_router_by_router() -> None:

    many = router(*(route(f"/r{i}/{{x:int}}", _endpoint([], f"r{i}")) for i in range(600)))
    app = router(*(mount(f"/m{i}", many) for i in range(6)))
    joined = [flat for flat in app._flat.values() if any(flat.leaves)]
    assert 0 < len(joined) < 6  # the limit joins some of the mounts, not all
    assert (await _call(app, _scope("/m5/r599/1")))[1]["body"] == b"r599"
    assert (await _call(app, _scope("/m0/r0/1")))[1]["body"] == b"r0"
    assert (await _call(app, _scope("/m5/r599/x")))[0]["status"] == 404


async def test_a_newline_after_a_mount_prefix_does_not_reach_the_mount() -> None:
    # "$" also matches before a final newline: "/c/d\n" once reached the
    # mount at "/c/d" router by router (whose router then matched the whole
    # path as its own) but not through the joined expression.  The segment
    # is "d\n": no mount, either way.
    for wrap in (lambda app: app, _opaque):
        seen: Seen = []
        inner = router(route("/{a}/{b}", _endpoint(seen, "inner")))
        app = router(mount("/c/d", wrap(inner)), mount("/u/{uid:int}", inner))
        for path in ("/c/d\n", "/u/7\n"):
            assert (await _call(app, _scope(path)))[0]["status"] == 404, (path, wrap)
        assert seen == []


class _Conditional(Convertor[str]):
    """``ab`` if group 1 matched before, else ``ac``: a conditional counts the groups before."""

    regex = "a(?(1)b|c)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_convertor("flat_conditional", _Conditional())


async def test_a_convertor_with_a_numbered_conditional_matches_as_router_by_router() -> None:
    # Router by router group 1 is the route's own first parameter; in the
    # joined expression it was another route's, so "/m/v/ac" matched there.
    for wrap in (lambda app: app, _opaque):
        inner = router(
            route("/k/{x}", _endpoint([], "k")),
            route("/{x}/{v:flat_conditional}", _endpoint([], "conditional")),
        )
        app = router(mount("/m", wrap(inner)))
        assert (await _call(app, _scope("/m/v/ab")))[1]["body"] == b"conditional", wrap
        assert (await _call(app, _scope("/m/v/ac")))[0]["status"] == 404, wrap


async def test_a_mounts_app_replaced_after_building_does_not_fail_a_request() -> None:
    # Routers are compiled once: the routes joined from the router that was
    # mounted still answer; anything they leave goes to the mount's app of
    # the moment, router by router.  It raised AttributeError (a 500): the
    # look-up behind the expression read the mount's new app as a router.
    seen: Seen = []
    entry = mount("/a", router(route("/u/{x}", _endpoint(seen, "old"))))
    app = router(entry)
    entry.app = _raw(seen, "new")
    assert (await _call(app, _scope("/a/u/1")))[1]["body"] == b"old"
    assert (await _call(app, _scope("/a/elsewhere")))[1]["body"] == b"new"
    assert (await _call(app, _scope("/a")))[1]["body"] == b"new"


async def test_a_nested_mounts_app_replaced_after_building_does_not_fail_a_request() -> None:
    seen: Seen = []
    inner = mount("/b", router(route("/u/{x}", _endpoint(seen, "old"))))
    app = router(mount("/a", router(inner)))
    inner.app = _raw(seen, "new")
    assert (await _call(app, _scope("/a/b/u/1")))[1]["body"] == b"old"
    assert (await _call(app, _scope("/a/b/elsewhere")))[1]["body"] == b"new"
    assert (await _call(app, _scope("/a/b")))[1]["body"] == b"new"
