"""Parity with Starlette's ``tests/test_routing.py``: behaviour by behaviour.

Host routing is in ``test_host_routing.py``, reverse paths that could leave
the host in ``test_url_path_for.py``, a ``root_path`` ending in ``/`` in
``test_mounts.py``.

Deliberate differences (each pinned below):
- reverse paths are percent-encoded and never absolute (no
  ``make_absolute_url``: ``request.url_for`` gives the absolute URL);
- a static path is tried before the patterns (``/users/nomatch`` reaches
  ``/nomatch`` even after ``/{username}``);
- a WebSocket to an unknown path is refused with an HTTP 404 where the
  server has ``websocket.http.response`` (the test client does);
- a mount matches its bare prefix (``/users`` reaches the app as ``/``)
  instead of redirecting to ``/users/``; ``url_path_for`` of a named mount
  without ``path`` is its prefix with ``/``; a mount with a parameter left
  unfilled raises ``NoMatchFound`` (Starlette keeps ``{tenant}`` verbatim);
- a value its convertor refuses raises ``ValueError`` (Starlette: assert);
- ``route()`` used alone checks the method, not the path (matching paths is
  the router's job);
- no ``middleware=`` on routes and mounts and no ``Router.add_route``:
  middleware wraps the app (``mount("/x", cors(router(...)))``) and a router
  is compiled once;
- no ``Router(lifespan=)``: the ``lifespan()`` piece (``tests/test_lifespan.py``);
- reprs say less (``Route('/welcome', name='homepage')``).
"""

from __future__ import annotations

import functools
from typing import Any

import pytest

from asgikit.exceptions import HTTPException
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import NoMatchFound, mount, route, router, websocket_route
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from asgikit.websockets import WebSocket


def text(body: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(body)

    endpoint.__name__ = body.lower().replace(" ", "_").replace(",", "")
    return endpoint


async def homepage(request: Request) -> Response:
    return PlainTextResponse("Hello, world")


async def user(request: Request) -> Response:
    return PlainTextResponse("User " + request.path_params["username"])


async def disable_user(request: Request) -> Response:
    return PlainTextResponse("User " + request.path_params["username"] + " disabled")


async def param(request: Request) -> Response:
    value = request.path_params["param"]
    return JSONResponse({"value": value if isinstance(value, (int, float)) else str(value)})


async def partial_endpoint(arg: str, request: Request) -> Response:
    return JSONResponse({"arg": arg})


class PartialRoutes:
    @classmethod
    async def async_endpoint(cls, arg: str, request: Request) -> Response:
        return JSONResponse({"arg": arg})


async def partial_ws_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json({"url": str(websocket.url)})
    await websocket.close()


async def websocket_endpoint(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("Hello, world!")
    await websocket.close()


async def websocket_params(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"Hello, {websocket.path_params['room']}!")
    await websocket.close()


def make_app() -> ASGIApp:
    return router(
        route("/", homepage, methods=["GET"]),
        mount(
            "/users",
            router(
                route("/", text("All users")),
                route("/me", text("User fixed me")),
                route("/{username}", user),
                route("/{username}:disable", disable_user, methods=["PUT"]),
                route("/nomatch", text("User fixed no match")),
            ),
        ),
        mount(
            "/partial",
            router(
                route("/", functools.partial(partial_endpoint, "foo")),
                route("/cls", functools.partial(PartialRoutes.async_endpoint, "foo")),
                websocket_route("/ws", functools.partial(partial_ws_endpoint)),
            ),
        ),
        mount("/static", Response("xxxxx", media_type="image/png")),
        route("/func", text("Hello, world!"), methods=["GET"]),
        route("/func", text("Hello, POST!"), methods=["POST"]),
        route("/search", text("Hello, QUERY!"), methods=["QUERY"]),
        route("/int/{param:int}", param, name="int-convertor"),
        route("/float/{param:float}", param, name="float-convertor"),
        route("/path/{param:path}", param, name="path-convertor"),
        route("/uuid/{param:uuid}", param, name="uuid-convertor"),
        route("/path-with-parentheses({param:int})", param, name="path-with-parentheses"),
        websocket_route("/ws", websocket_endpoint),
        websocket_route("/ws/{room}", websocket_params),
    )


@pytest.fixture
def client() -> TestClient:
    return TestClient(make_app())


def test_router_matches_methods_mounts_and_order(client: TestClient) -> None:
    assert client.get("/").text == "Hello, world"
    response = client.post("/")
    assert response.status_code == 405
    assert response.text == "Method Not Allowed"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    response = client.get("/foo")
    assert (response.status_code, response.text) == (404, "Not Found")
    assert client.get("/users").text == "All users"
    assert client.get("/users/tomchristie").text == "User tomchristie"
    assert client.get("/users/me").text == "User fixed me"
    response = client.get("/users/tomchristie/")
    assert str(response.url) == "http://testserver/users/tomchristie"
    assert response.text == "User tomchristie"
    response = client.put("/users/tomchristie:disable")
    assert response.text == "User tomchristie disabled"
    # A static path is tried before the patterns (Starlette: strictly in order).
    assert client.get("/users/nomatch").text == "User fixed no match"
    assert client.get("/static/123").text == "xxxxx"


def test_convertors_route_and_build(client: TestClient) -> None:
    app = make_app()
    assert client.get("/int/5").json() == {"value": 5}
    assert app.url_path_for("int-convertor", param=5) == "/int/5"
    assert client.get("/path-with-parentheses(7)").json() == {"value": 7}
    assert app.url_path_for("path-with-parentheses", param=7) == "/path-with-parentheses(7)"
    assert client.get("/float/25.5").json() == {"value": 25.5}
    assert app.url_path_for("float-convertor", param=25.5) == "/float/25.5"
    assert client.get("/path/some/example").json() == {"value": "some/example"}
    assert app.url_path_for("path-convertor", param="some/example") == "/path/some/example"
    uid = "ec38df32-ceda-4cfa-9b4a-1aeb94ad551a"
    assert client.get(f"/uuid/{uid}").json() == {"value": uid}
    import uuid

    assert app.url_path_for("uuid-convertor", param=uuid.UUID(uid)) == f"/uuid/{uid}"


def test_url_path_for_names_errors_and_refused_values() -> None:
    app = make_app()
    assert app.url_path_for("homepage") == "/"
    assert app.url_path_for("user", username="tomchristie") == "/users/tomchristie"
    assert app.url_path_for("websocket_endpoint") == "/ws"
    with pytest.raises(NoMatchFound, match="'broken' takes no parameters"):
        app.url_path_for("broken")
    with pytest.raises(NoMatchFound, match="'broken' takes key, key2"):
        app.url_path_for("broken", key="value", key2="value2")
    with pytest.raises(ValueError):
        app.url_path_for("user", username="tom/christie")
    with pytest.raises(ValueError):
        app.url_path_for("user", username="")


def test_placeholder_like_value_is_not_substituted_and_is_encoded() -> None:
    app = router(route("/{category}/{id}", homepage, name="r"))
    assert app.url_path_for("r", category="{id}", id="42") == "/%7Bid%7D/42"


def test_mount_with_an_unfilled_parameter_is_no_match() -> None:
    app = router(mount("/{tenant}", router(route("/users", homepage, name="users"))))
    with pytest.raises(NoMatchFound):
        app.url_path_for("users")
    assert app.url_path_for("users", tenant="acme") == "/acme/users"


def test_same_path_by_method_and_a_query_method_route(client: TestClient) -> None:
    assert client.get("/func").text == "Hello, world!"
    assert client.post("/func").text == "Hello, POST!"
    assert client.request("QUERY", "/search").text == "Hello, QUERY!"
    response = client.get("/search")
    assert response.status_code == 405
    assert response.headers["allow"] == "QUERY"


def test_websocket_routes_with_and_without_parameters(client: TestClient) -> None:
    with client.websocket_connect("/ws") as session:
        assert session.receive_text() == "Hello, world!"
    with client.websocket_connect("/ws/test") as session:
        assert session.receive_text() == "Hello, test!"


def test_partial_endpoints(client: TestClient) -> None:
    assert client.get("/partial").json() == {"arg": "foo"}
    assert client.get("/partial/cls").json() == {"arg": "foo"}
    with client.websocket_connect("/partial/ws") as session:
        assert session.receive_json() == {"url": "ws://testserver/partial/ws"}


def test_http_and_websocket_routes_on_one_path() -> None:
    async def http_endpoint(request: Request) -> Response:
        return PlainTextResponse(f"URL: {request.url_for('http_endpoint')}")

    async def ws_endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"URL": str(websocket.url_for("ws_endpoint"))})
        await websocket.close()

    client = TestClient(router(route("/", http_endpoint), websocket_route("/", ws_endpoint)))
    assert client.get("/").text == "URL: http://testserver/"
    with client.websocket_connect("/") as session:
        assert session.receive_json() == {"URL": "ws://testserver/"}
    # Refused with an HTTP 404 where the server has websocket.http.response.
    with pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/404"):
        pass  # pragma: no cover
    assert denied.value.status_code == 404


def test_mount_urls_and_reverse_mount_urls() -> None:
    ok = PlainTextResponse("OK")
    client = TestClient(router(mount("/users", ok, name="users")), follow_redirects=False)
    assert client.get("/users").status_code == 200  # no redirect to /users/
    assert client.get("/users/").status_code == 200
    assert client.get("/users/a").status_code == 200
    assert client.get("/usersa").status_code == 404
    mounted = router(mount("/users", ok, name="users"))
    assert mounted.url_path_for("users", path="/a") == "/users/a"
    assert mounted.url_path_for("users") == "/users/"
    with pytest.raises(NoMatchFound):
        mounted.url_path_for("users", path="/a", foo="bar")
    users = router(route("/{username}", ok, name="user"))
    nested = router(mount("/{subpath}/users", users, name="users"))
    assert nested.url_path_for("users:user", subpath="test", username="tom") == "/test/users/tom"
    assert nested.url_path_for("users", subpath="test", path="/tom") == "/test/users/tom"


def test_mount_at_root() -> None:
    client = TestClient(router(mount("/", PlainTextResponse("OK"), name="users")))
    assert client.get("/").status_code == 200
    assert client.get("/anything/below").status_code == 200


async def echo_urls(request: Request) -> Response:
    return JSONResponse(
        {
            "index": str(request.url_for("index")),
            "submount": str(request.url_for("mount:submount")),
        }
    )


@pytest.mark.parametrize("root_path", ["/sub_path", "/sub_path/"])
def test_url_for_with_root_path(root_path: str) -> None:
    app = router(
        route("/", echo_urls, name="index"),
        mount("/submount", router(route("/", echo_urls, name="submount")), name="mount"),
    )
    # asgikit's test client puts root_path in front of the path, as a server does.
    client = TestClient(app, base_url="https://www.example.org/", root_path=root_path)
    expected = {
        "index": "https://www.example.org/sub_path/",
        "submount": "https://www.example.org/sub_path/submount/",
    }
    assert client.get("/").json() == expected
    assert client.get("/submount/").json() == expected


def test_url_path_for_through_a_double_mount() -> None:
    async def stub(scope: Scope, receive: Receive, send: Send) -> None: ...

    app = router(mount("/mount", router(mount("/static", stub, name="static")), name="mount"))
    assert app.url_path_for("mount:static", path="123") == "/mount/static/123"


def test_a_route_alone_checks_the_method_not_the_path() -> None:
    client = TestClient(route("/", homepage))
    assert client.get("/").text == "Hello, world"
    assert client.get("/invalid").text == "Hello, world"
    assert client.post("/").status_code == 405
    ws = TestClient(websocket_route("/", websocket_endpoint))
    with ws.websocket_connect("/") as session:
        assert session.receive_text() == "Hello, world!"


def test_duplicated_parameter_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate parameter 'id'"):
        route("/{id}/{id}", user)
    with pytest.raises(ValueError, match="duplicate parameter"):
        route("/{id}/{name}/{id}/{name}", user)


class Endpoint:
    async def my_method(self, request: Request) -> Response: ...  # pragma: no cover

    @classmethod
    async def my_classmethod(cls, request: Request) -> Response: ...  # pragma: no cover

    @staticmethod
    async def my_staticmethod(request: Request) -> Response: ...  # pragma: no cover


@pytest.mark.parametrize(
    ("endpoint", "name"),
    [
        (homepage, "homepage"),
        (Endpoint().my_method, "my_method"),
        (Endpoint.my_classmethod, "my_classmethod"),
        (Endpoint.my_staticmethod, "my_staticmethod"),
        (lambda request: None, "<lambda>"),
    ],
)
def test_route_name_defaults_to_the_endpoint_name(endpoint: Any, name: str) -> None:
    assert route("/", endpoint).name == name


class AddHeader:
    """A plain ASGI middleware, as Starlette users write them: it keeps ``.app``."""

    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_header(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.accept"):
                pair = (f"x-{self.name}".encode(), b"true")
                message["headers"] = [*message.get("headers", ()), pair]
            await send(message)

        await self.app({**scope, self.name: True}, receive, send_with_header)


def add_header(name: str) -> Any:
    return lambda app: AddHeader(app, name)


def test_middleware_on_one_route_or_one_mount_only() -> None:
    async def checked(request: Request) -> Response:
        assert request.scope["inner"] is True
        return Response()

    inner = add_header("inner")
    for app in (
        router(route("/http", inner(router(route("/http", checked)))), route("/home", homepage)),
        router(
            mount("/http", inner(router(route("/", checked, name="r")))), route("/home", homepage)
        ),
    ):
        client = TestClient(app)
        assert "x-inner" not in client.get("/home").headers
        response = client.get("/http")
        assert response.status_code == 200
        assert response.headers["x-inner"] == "true"


def test_url_path_for_through_middleware_reaches_a_router_not_a_bare_route() -> None:
    inner = add_header("inner")
    through_router = router(mount("/http", inner(router(route("/", homepage, name="r")))))
    assert through_router.url_path_for("r") == "/http/"
    bare = router(mount("/http", inner(route("/", homepage, name="r"))))
    with pytest.raises(NoMatchFound):
        bare.url_path_for("r")


def test_exception_in_a_mounted_app_reaches_the_caller() -> None:
    async def fail(request: Request) -> Response:
        raise RuntimeError("Exc")

    client = TestClient(router(mount("/sub", router(route("/", fail)))))
    with pytest.raises(RuntimeError, match="Exc"):
        client.get("/sub/")


def test_http_exception_answer_passes_through_every_layer_around_it() -> None:
    async def forbidden(request: Request) -> Response:
        raise HTTPException(403, "auth")

    inner_routes = router(route("/err", forbidden), route("/home", homepage))
    app = add_header("outer")(
        router(
            mount("/mount", add_header("mounted")(inner_routes)),
            route("/err", forbidden),
            route("/home", homepage),
        )
    )
    client = TestClient(app)
    for path, header in [("/home", "x-outer"), ("/err", "x-outer"), ("/mount/home", "x-mounted")]:
        assert header in client.get(path).headers
    response = client.get("/mount/err")
    assert response.status_code == 403
    assert "x-mounted" in response.headers
    assert "x-outer" in response.headers


def test_websocket_route_with_middleware_adds_accept_headers() -> None:
    app = router(
        websocket_route(
            "/ws", add_header("test")(router(websocket_route("/ws", websocket_endpoint)))
        )
    )
    with TestClient(app).websocket_connect("/ws") as session:
        assert session.receive_text() == "Hello, world!"
        assert session.extra_headers == [(b"x-test", b"true")]


def test_reprs_name_path_and_name() -> None:
    assert repr(route("/welcome", homepage)) == "Route('/welcome', name='homepage')"
    assert repr(websocket_route("/ws", websocket_endpoint)) == (
        "WebSocketRoute('/ws', name='websocket_endpoint')"
    )
    assert repr(mount("/app", router(), name="app")) == "Mount('/app', name='app')"


async def echo_paths(request: Request, name: str) -> Response:
    return JSONResponse(
        {"name": name, "path": request.scope["path"], "root_path": request.scope["root_path"]}
    )


async def pure_asgi_echo_paths(scope: Scope, receive: Receive, send: Send, name: str) -> None:
    body = {"name": name, "path": scope["path"], "root_path": scope["root_path"]}
    await JSONResponse(body)(scope, receive, send)


def test_paths_and_root_paths_under_a_server_root_path() -> None:
    app = router(
        route("/path", functools.partial(echo_paths, name="path"), methods=["GET"]),
        route(
            "/root-queue/path", functools.partial(echo_paths, name="queue_path"), methods=["POST"]
        ),
        mount("/asgipath", functools.partial(pure_asgi_echo_paths, name="asgipath")),
        mount(
            "/sub",
            router(route("/path", functools.partial(echo_paths, name="subpath"))),
            name="mount",
        ),
    )
    client = TestClient(app, base_url="https://www.example.org/", root_path="/root")
    assert client.get("/path").json() == {
        "name": "path",
        "path": "/root/path",
        "root_path": "/root",
    }
    assert client.get("/asgipath/").json() == {
        "name": "asgipath",
        "path": "/root/asgipath/",
        "root_path": "/root/asgipath",
    }
    assert client.get("/sub/path").json() == {
        "name": "subpath",
        "path": "/root/sub/path",
        "root_path": "/root/sub",
    }
    assert client.post("/root-queue/path").json() == {
        "name": "queue_path",
        "path": "/root/root-queue/path",
        "root_path": "/root",
    }
