"""The router leaves the matched route's full template in the scope (and in a sink)."""

from __future__ import annotations

from typing import Any

from asgikit import JSONResponse, Request, host, mount, route, router, websocket_route
from asgikit.routing import ROUTE_TEMPLATE_SINK
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from asgikit.websockets import WebSocket
from tests.conftest import make_scope, run_app


async def template(request: Request) -> JSONResponse:
    return JSONResponse({"template": request.scope.get("route_template", "<absent>")})


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"template": scope.get("route_template", "<absent>")})(scope, receive, send)


async def ws_template(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.scope["route_template"])
    await websocket.close()


users = router(
    route("/users/{id:int}", template),
    route("/users/me", template),
    websocket_route("/live/{room}", ws_template),
)
app = router(
    route("/", template),
    route("/items/{slug}", template),
    mount("/api", users),
    mount("/t/{tenant}", router(mount("/v1", users))),
    mount("/static", raw_app),
    host("{sub}.example.org", router(route("/hello/{name}", template))),
)


def got(path: str, **kwargs: Any) -> Any:
    return TestClient(app).get(path, **kwargs).json()["template"]


def test_static_and_parameterised_routes_give_their_template() -> None:
    assert got("/") == "/"
    assert got("/items/shoes") == "/items/{slug}"


def test_template_is_the_full_one_through_mounts() -> None:
    assert got("/api/users/42") == "/api/users/{id:int}"
    assert got("/api/users/me") == "/api/users/me"
    assert got("/t/acme/v1/users/7") == "/t/{tenant}/v1/users/{id:int}"


def test_a_mounted_app_that_is_not_a_router_gets_the_mount_template() -> None:
    assert got("/static/css/site.css") == "/static"


def test_a_host_adds_nothing_to_the_path_template() -> None:
    assert got("/hello/ann", headers={"host": "www.example.org"}) == "/hello/{name}"


def test_websocket_routes_give_their_template() -> None:
    with TestClient(app).websocket_connect("/api/live/lobby") as ws:
        assert ws.receive_text() == "/api/live/{room}"


async def test_no_match_leaves_the_template_absent_and_tells_the_sink() -> None:
    seen: list[Any] = []

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope.get("route_template", "<absent>"))
        await JSONResponse({}, status_code=404)(scope, receive, send)

    inner = router(route("/users/{id:int}", template), not_found=not_found)
    outer = router(mount("/api", inner), not_found=not_found)
    for path in ("/nowhere", "/api/users/not-a-number"):
        sink: list[str | None] = ["stale"]
        assert await _call(outer, path, {ROUTE_TEMPLATE_SINK: sink}) == 404
        assert sink == [None]
    assert seen == ["<absent>", "<absent>"]


async def test_the_sink_sees_the_full_template_from_outside_the_router() -> None:
    sink: list[str | None] = [None]
    assert await _call(app, "/t/acme/v1/users/7", {ROUTE_TEMPLATE_SINK: sink}) == 200
    assert sink == ["/t/{tenant}/v1/users/{id:int}"]
    sink = [None]
    assert await _call(app, "/", {ROUTE_TEMPLATE_SINK: sink}) == 200
    assert sink == ["/"]


async def test_405_and_slash_redirects_leave_no_template() -> None:
    app = router(route("/x/{n:int}", template), route("/y/", template))
    sink: list[str | None] = ["stale"]
    assert await _call(app, "/x/1", {ROUTE_TEMPLATE_SINK: sink}, method="POST") == 405
    assert sink == [None]
    sink = ["stale"]
    assert await _call(app, "/y", {ROUTE_TEMPLATE_SINK: sink}) == 307
    assert sink == [None]


async def _call(target: Any, path: str, extra: dict[str, Any], method: str = "GET") -> int:
    sent = await run_app(target, make_scope(method, path, **extra))
    return sent.status
