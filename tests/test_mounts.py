"""Tests for mounts and hosts: nesting, ``root_path``/``path`` both ways, reverse URLs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse as StarlettePlainText
from starlette.routing import Mount as StarletteMount
from starlette.routing import Route as StarletteRoute

from asgikit.composition import middleware
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import NoMatchFound, host, mount, route, router, url_path_for
from asgikit.testing import TestClient
from asgikit.types import ASGIApp, Receive, Scope, Send
from tests.conftest import make_scope, run_app


async def where(request: Request) -> Response:
    """What a mounted endpoint sees of its place in the URL space."""
    return JSONResponse(
        {
            "path": request.scope["path"],
            "root_path": request.scope["root_path"],
            "route_path": request.path,
            "params": {k: str(v) for k, v in request.path_params.items()},
            "url": str(request.url),
        }
    )


async def raw_where(scope: Scope, receive: Receive, send: Send) -> None:
    await JSONResponse({"path": scope["path"], "root_path": scope["root_path"]})(
        scope, receive, send
    )


def deep_app() -> ASGIApp:
    level3 = router(route("/leaf/{id:int}", where, name="leaf"), route("/", where, name="top"))
    level2 = router(mount("/c", level3, name="c"), route("/mid", where, name="mid"))
    level1 = router(mount("/b/{tenant}", level2, name="b"))
    return router(
        mount("/a", level1, name="a"),
        host("{sub}.example.com", router(mount("/h", level2, name="hm")), name="sub"),
        route("/", where, name="home"),
    )


# Nesting: root_path grows, path stays full


def test_three_mounts_deep_grow_root_path_and_keep_the_full_path() -> None:
    with TestClient(deep_app()) as client:
        body = client.get("/a/b/acme/c/leaf/7").json()
    assert body == {
        "path": "/a/b/acme/c/leaf/7",
        "root_path": "/a/b/acme/c",
        "route_path": "/leaf/7",
        "params": {"tenant": "acme", "id": "7"},
        "url": "http://testserver/a/b/acme/c/leaf/7",
    }


def test_host_then_two_mounts_reach_the_route_with_host_params() -> None:
    with TestClient(deep_app(), base_url="http://shop.example.com") as client:
        body = client.get("/h/c/leaf/1").json()
        assert client.get("/h/c/leaf/1", headers={"host": "other.test"}).status_code == 404
    assert body["params"] == {"sub": "shop", "id": "1"}
    assert body["root_path"] == "/h/c"
    assert body["path"] == "/h/c/leaf/1"


def test_host_match_ignores_the_port_and_case() -> None:
    app = router(host("api.example.com", router(route("/", where))))
    with TestClient(app, base_url="http://API.Example.com:8080") as client:
        assert client.get("/").status_code == 200


def test_mount_prefix_matches_only_at_a_segment_boundary() -> None:
    app = router(mount("/api", router(route("/", where), route("/x", where))))
    with TestClient(app) as client:
        assert client.get("/api/x").status_code == 200
        assert client.get("/api/").json()["root_path"] == "/api"
        assert client.get("/apix").status_code == 404


def test_mounted_raw_asgi_app_sees_root_path_and_full_path() -> None:
    app = router(mount("/static", raw_where))
    with TestClient(app, root_path="/proxy") as client:
        body = client.get("/static/css/site.css").json()
    assert body == {"path": "/proxy/static/css/site.css", "root_path": "/proxy/static"}


@pytest.mark.parametrize(
    "path",
    ["/srv/a/b/acme/c/leaf/7", "/a/b/acme/c/leaf/7"],
    ids=["path-includes-root_path", "path-relative-to-root_path"],
)
async def test_server_may_give_path_with_or_without_root_path(path: str) -> None:
    scope = make_scope(path=path, root_path="/srv")
    sent = await run_app(deep_app(), scope)
    assert sent.status == 200
    seen = json.loads(sent.body)
    assert seen["path"] == "/srv/a/b/acme/c/leaf/7"
    assert seen["root_path"] == "/srv/a/b/acme/c"
    assert seen["route_path"] == "/leaf/7"
    assert seen["url"] == "http://testserver/srv/a/b/acme/c/leaf/7"


async def test_mounts_under_a_root_path_still_404_outside_them() -> None:
    sent = await run_app(deep_app(), make_scope(path="/srv/zzz", root_path="/srv"))
    assert sent.status == 404


# Reverse URLs


def url_for_app(inner_wrap: Any = None) -> ASGIApp:
    async def links(request: Request) -> Response:
        names: dict[str, Any] = dict(request.query_params)
        name = names.pop("name")
        params = {k: int(v) if v.isdigit() else v for k, v in names.items()}
        return PlainTextResponse(str(request.url_for(name, **params)))

    api = router(route("/users/{id:int}", where, name="user"), route("/links", links))
    api_app = inner_wrap(api) if inner_wrap else api
    return router(
        mount("/api", api_app, name="api"),
        mount("/static", raw_where, name="static"),
        route("/links", links),
        route("/", where, name="home"),
    )


def test_request_url_for_through_a_named_mount() -> None:
    with TestClient(url_for_app()) as client:
        response = client.get("/links", params={"name": "api:user", "id": "3"})
        assert response.text == "http://testserver/api/users/3"
        # From inside the mount, names still start at the outermost router.
        response = client.get("/api/links", params={"name": "home"})
        assert response.text == "http://testserver/"


def test_url_for_includes_the_servers_root_path() -> None:
    with TestClient(url_for_app(), root_path="/proxy") as client:
        response = client.get("/api/links", params={"name": "api:user", "id": "3"})
    assert response.text == "http://testserver/proxy/api/users/3"


@middleware
def tag(app: ASGIApp, *, value: str = "x") -> ASGIApp:
    async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    return tagged


def test_url_for_reaches_a_router_wrapped_in_middleware() -> None:
    with TestClient(url_for_app(tag(value="y"))) as client:
        response = client.get("/links", params={"name": "api:user", "id": "9"})
    assert response.text == "http://testserver/api/users/9"


class Capture:
    """An endpoint that keeps the scope it was called with."""

    def __init__(self) -> None:
        self.scope: Scope = {}

    async def __call__(self, request: Request) -> Response:
        self.scope = request.scope
        return PlainTextResponse("")


def reverse_app(capture: Capture) -> ASGIApp:
    files = router(route("/{name}", where, name="file"))
    shop = router(
        route("/items/{id:int}", where, name="item"),
        route("/search", where, name="search"),
        mount("/files", tag(files, value="f"), name="files"),
    )
    return router(
        route("/capture", capture.__call__),
        mount("/{lang}/shop", shop, name="shop"),
        mount("/assets", raw_where, name="assets"),
        host("{sub}.example.com", router(route("/p/{n:int}", where, name="page")), name="sub"),
        route("/u/{v:uuid}", where, name="by_uuid"),
        route("/f/{x:float}", where, name="by_float"),
        route("/s/{word}", where, name="word"),
    )


async def reverse(**extra: Any) -> Scope:
    capture = Capture()
    sent = await run_app(reverse_app(capture), make_scope(path="/capture", **extra))
    assert sent.status == 200
    return capture.scope


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("shop:item", {"lang": "en", "id": 5}, "/en/shop/items/5"),
        ("shop:files:file", {"lang": "de", "name": "a.txt"}, "/de/shop/files/a.txt"),
        ("assets", {"path": "css/site.css"}, "/assets/css/site.css"),
        ("assets", {}, "/assets/"),
        ("sub:page", {"sub": "x", "n": 2}, "/p/2"),
        ("by_float", {"x": 2.5}, "/f/2.5"),
        ("by_float", {"x": 3.0}, "/f/3"),
        ("word", {"word": "a b?c#d%e"}, "/s/a%20b%3Fc%23d%25e"),
        ("word", {"word": "caf\u00e9"}, "/s/caf%C3%A9"),
    ],
)
async def test_url_path_for_builds_paths_through_mounts_and_hosts(
    name: str, params: dict[str, Any], expected: str
) -> None:
    assert url_path_for(await reverse(), name, **params) == expected


async def test_url_path_for_round_trips_an_encoded_value() -> None:
    scope = await reverse()
    path = url_path_for(scope, "word", word="a b/c".replace("/", "?"))
    app = router(route("/s/{word}", where))
    from urllib.parse import unquote

    sent = await run_app(app, make_scope(path=unquote(path)))
    assert json.loads(sent.body)["params"] == {"word": "a b?c"}


async def test_url_path_for_adds_a_query() -> None:
    scope = await reverse()
    path = url_path_for(scope, "shop:search", lang="en", query={"q": "a b", "tag": ["x", "y"]})
    assert path == "/en/shop/search?q=a+b&tag=x&tag=y"


@pytest.mark.parametrize("root_path", ["/proxy", "/proxy/"])
async def test_url_path_for_starts_at_the_servers_root_path(root_path: str) -> None:
    scope = await reverse(root_path=root_path)
    assert url_path_for(scope, "shop:item", lang="en", id=1) == "/proxy/en/shop/items/1"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("nope", {}),
        ("item", {"lang": "en", "id": 1}),  # not reachable without its mount's name
        ("shop:item", {"id": 1}),  # the mount's parameter is missing
        ("shop:item", {"lang": "en", "id": 1, "extra": 2}),
        ("shop:nope", {"lang": "en"}),
    ],
)
async def test_unknown_name_or_parameters_raise_no_match_found(
    name: str, params: dict[str, Any]
) -> None:
    scope = await reverse()
    with pytest.raises(NoMatchFound):
        url_path_for(scope, name, **params)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("shop:item", {"lang": "en", "id": -1}),
        ("shop:item", {"lang": "en", "id": "seven"}),
        ("shop:item", {"lang": "a/b", "id": 1}),
        ("by_uuid", {"v": "not-a-uuid"}),
        ("by_float", {"x": float("nan")}),
        ("word", {"word": ""}),
    ],
)
async def test_parameter_its_convertor_refuses_raises_value_error(
    name: str, params: dict[str, Any]
) -> None:
    scope = await reverse()
    with pytest.raises(ValueError):
        url_path_for(scope, name, **params)


def test_no_match_found_is_a_lookup_error_naming_the_route() -> None:
    with pytest.raises(LookupError, match="nope"):
        router(route("/", where)).url_path_for("nope")


def test_url_path_for_needs_a_scope_from_a_router() -> None:
    with pytest.raises(RuntimeError):
        url_path_for(make_scope(), "home")


def test_request_url_for_with_a_query() -> None:
    async def links(request: Request) -> Response:
        url = request.url_for("user", id=4, query={"tab": "posts"})
        return JSONResponse({"url": str(url), "path": url.path, "query": url.query})

    app = router(route("/users/{id:int}", where, name="user"), route("/", links))
    with TestClient(app) as client:
        assert client.get("/").json() == {
            "url": "http://testserver/users/4?tab=posts",
            "path": "/users/4",
            "query": "tab=posts",
        }


# Living inside and around Starlette


def test_starlette_app_mounted_in_a_router_keeps_its_own_url_for() -> None:
    async def page(request: StarletteRequest) -> StarlettePlainText:
        return StarlettePlainText(str(request.url_for("page")))

    starlette_app = Starlette(routes=[StarletteRoute("/page", page, name="page")])
    app = router(mount("/legacy", starlette_app), route("/", where, name="home"))
    with TestClient(app) as client:
        response = client.get("/legacy/page")
    assert response.status_code == 200
    assert response.text == "http://testserver/legacy/page"


def test_router_mounted_in_starlette_builds_its_own_urls() -> None:
    async def links(request: Request) -> Response:
        return PlainTextResponse(str(request.url_for("user", id=2)))

    inner = router(route("/users/{id:int}", where, name="user"), route("/links", links))
    app = Starlette(routes=[StarletteMount("/kit", app=inner)])
    with TestClient(app) as client:
        assert client.get("/kit/users/2").json()["root_path"] == "/kit"
        assert client.get("/kit/links").text == "http://testserver/kit/users/2"


def test_unnamed_mount_passes_names_through_unprefixed() -> None:
    inner = router(route("/users/{id:int}", where, name="user"))
    outer = router(mount("/v1", tag(inner)), route("/", where, name="home"))
    assert outer.url_path_for("user", id=5) == "/v1/users/5"
    with pytest.raises(NoMatchFound):
        outer.url_path_for("v1:user", id=5)


# -- A root_path that ends in "/" (uvicorn --root-path /x/) -------------------


def trailing_root_app() -> ASGIApp:
    async def link(request: Request) -> Response:
        return PlainTextResponse(str(request.url_for("leaf", id=3)))

    return router(
        route("/", where, name="top"),
        route("/users", where, name="users"),
        route("/link", link),
        mount("/api", router(route("/leaf/{id:int}", where, name="leaf"))),
    )


@pytest.mark.parametrize("root_path", ["/x/", "/x//"])
def test_root_path_with_a_trailing_slash_serves_every_route(root_path: str) -> None:
    # The test client joins root_path and path as uvicorn does: "/x/" + "/users".
    with TestClient(trailing_root_app(), root_path=root_path, follow_redirects=False) as client:
        top = client.get("/")
        users = client.get("/users")
        leaf = client.get("/api/leaf/7")
        link = client.get("/link")
        missing = client.get("/nothing")
    assert top.status_code == 200
    assert top.json()["root_path"] == "/x"
    assert top.json()["route_path"] == "/"
    assert users.status_code == 200
    assert users.json()["path"] == "/x/users"
    assert leaf.status_code == 200
    assert leaf.json()["root_path"] == "/x/api"
    assert leaf.json()["path"] == "/x/api/leaf/7"
    assert link.text == "http://testserver/x/api/leaf/3"
    assert missing.status_code == 404


async def test_root_path_with_a_trailing_slash_and_a_relative_path() -> None:
    # An older server gives path relative to root_path.
    sent = await run_app(trailing_root_app(), make_scope(path="/users", root_path="/x/"))
    assert sent.status == 200
    assert json.loads(sent.body)["root_path"] == "/x"
    assert json.loads(sent.body)["url"] == "http://testserver/x/users"


async def test_slash_redirect_under_a_trailing_slash_root_path_stays_below_it() -> None:
    app = router(route("/users/", where))
    sent = await run_app(app, make_scope(path="/x//users", root_path="/x/"))
    assert sent.status == 307
    assert sent.header(b"location") == [b"/x/users/"]


async def test_root_path_of_a_single_slash_is_no_root() -> None:
    sent = await run_app(trailing_root_app(), make_scope(path="//users", root_path="/"))
    assert sent.status == 200
    assert json.loads(sent.body)["root_path"] == ""
