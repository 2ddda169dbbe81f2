"""Tests for asgikit.routing: matching, 404/405, HEAD, trailing slashes, endpoints."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgikit.convertors import Convertor, register_convertor
from asgikit.exceptions import HTTPException
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import route, router, url_path_for
from asgikit.testing import TestClient
from asgikit.types import ASGIApp, Receive, Scope, Send
from tests.conftest import make_scope, run_app


async def echo_params(request: Request) -> Response:
    params = {k: [type(v).__name__, str(v)] for k, v in request.scope["path_params"].items()}
    return JSONResponse({"params": params, "path": request.scope["path"]})


def named(text: str) -> Any:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(text)

    endpoint.__name__ = text
    return endpoint


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse(f"raw {scope['method']}")(scope, receive, send)


# Typed parameters


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/int/42", {"v": ["int", "42"]}),
        ("/float/2.5", {"v": ["float", "2.5"]}),
        ("/float/3", {"v": ["float", "3.0"]}),
        ("/str/hello", {"v": ["str", "hello"]}),
        ("/path/a/b/c.txt", {"v": ["str", "a/b/c.txt"]}),
        (
            "/uuid/6f1c2f3a-0c1d-4a6e-9b7a-2f0d7c1e5a11",
            {"v": ["UUID", "6f1c2f3a-0c1d-4a6e-9b7a-2f0d7c1e5a11"]},
        ),
        ("/two/7/x", {"a": ["int", "7"], "b": ["str", "x"]}),
    ],
)
def test_typed_parameters_land_converted_in_scope_path_params(
    path: str, expected: dict[str, list[str]]
) -> None:
    app = router(
        route("/int/{v:int}", echo_params),
        route("/float/{v:float}", echo_params),
        route("/str/{v:str}", echo_params),
        route("/path/{v:path}", echo_params),
        route("/uuid/{v:uuid}", echo_params),
        route("/two/{a:int}/{b}", echo_params),
    )
    with TestClient(app) as client:
        response = client.get(path)
    assert response.status_code == 200
    assert response.json()["params"] == expected


class SlugListConvertor(Convertor[list[str]]):
    regex = "[a-z]+(?:,[a-z]+)*"

    def convert(self, value: str) -> list[str]:
        return value.split(",")

    def to_string(self, value: list[str]) -> str:
        return ",".join(value)


def test_user_registered_convertor_routes_and_converts() -> None:
    register_convertor("test_slugs", SlugListConvertor())

    async def endpoint(request: Request) -> Response:
        return JSONResponse(request.path_params["tags"])

    app = router(route("/tags/{tags:test_slugs}", endpoint))
    with TestClient(app) as client:
        assert client.get("/tags/a,bc,d").json() == ["a", "bc", "d"]
        assert client.get("/tags/A1").status_code == 404


def test_request_path_params_is_the_scope_entry() -> None:
    async def endpoint(request: Request) -> Response:
        return JSONResponse({"same": request.path_params is request.scope["path_params"]})

    with TestClient(router(route("/{x}", endpoint))) as client:
        assert client.get("/a").json() == {"same": True}


def test_static_route_has_empty_path_params() -> None:
    with TestClient(router(route("/", echo_params))) as client:
        assert client.get("/").json()["params"] == {}


# 404, 405, HEAD


def test_unknown_path_is_404() -> None:
    with TestClient(router(route("/", named("home")))) as client:
        response = client.get("/missing")
    assert response.status_code == 404
    assert response.text == "Not Found"


def test_404_is_json_when_the_client_asks_for_json() -> None:
    with TestClient(router(route("/", named("home")))) as client:
        response = client.get("/missing", headers={"accept": "application/json"})
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")


def test_wrong_method_is_405_with_sorted_allow_including_head_where_get() -> None:
    app = router(
        route("/items", named("list")),
        route("/items", named("create"), methods=["post"]),
        route("/items/{id:int}", named("put"), methods=["PUT", "DELETE"]),
    )
    with TestClient(app) as client:
        response = client.patch("/items")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD, POST"
        response = client.get("/items/3")
        assert response.status_code == 405
        assert response.headers["allow"] == "DELETE, PUT"


def test_allow_gathers_every_route_matching_the_path() -> None:
    app = router(
        route("/things/{id:int}", named("get_thing")),
        route("/things/{name}", named("post_thing"), methods=["POST"]),
    )
    with TestClient(app) as client:
        response = client.delete("/things/5")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"


def test_head_is_served_wherever_get_is_and_sends_no_body() -> None:
    app = router(
        route("/static", named("static")),
        route("/dynamic/{x}", named("dynamic")),
        route("/listed", named("listed"), methods=["GET"]),
    )
    with TestClient(app) as client:
        for path in ("/static", "/dynamic/1", "/listed"):
            response = client.head(path)
            assert response.status_code == 200, path
            assert response.content == b""
            assert response.headers["content-length"] == str(len(path.split("/")[1]))


def test_head_is_not_allowed_where_get_is_not() -> None:
    app = router(route("/submit", named("submit"), methods=["POST"]))
    with TestClient(app) as client:
        response = client.head("/submit")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_asgi_app_route_takes_any_method_unless_restricted() -> None:
    app = router(route("/any", raw_app), route("/only", raw_app, methods=["PUT"]))
    with TestClient(app) as client:
        assert client.request("PURGE", "/any").text == "raw PURGE"
        assert client.put("/only").text == "raw PUT"
        assert client.get("/only").status_code == 405


def test_custom_not_found_app_answers_unmatched_paths() -> None:
    app = router(route("/", named("home")), not_found=PlainTextResponse("nope", 404))
    with TestClient(app) as client:
        response = client.get("/missing")
    assert (response.status_code, response.text) == (404, "nope")


# Match order


def test_static_route_beats_a_parameterised_one_given_before_it() -> None:
    app = router(route("/users/{name}", named("param")), route("/users/me", named("static")))
    with TestClient(app) as client:
        assert client.get("/users/me").text == "static"
        assert client.get("/users/bob").text == "param"


def test_first_matching_pattern_wins() -> None:
    app = router(
        route("/n/{x:int}", named("int")),
        route("/n/{x}", named("str")),
        route("/n/{x:int}", named("shadowed")),
    )
    with TestClient(app) as client:
        assert client.get("/n/5").text == "int"
        assert client.get("/n/five").text == "str"


def test_pattern_order_holds_across_first_segments() -> None:
    app = router(
        route("/{anything:path}", named("catchall")),
        route("/api/{x}", named("api")),
    )
    with TestClient(app) as client:
        assert client.get("/api/x").text == "catchall"


def test_same_path_routes_are_chosen_by_method() -> None:
    app = router(
        route("/r/{x}", named("reader")),
        route("/r/{x}", named("writer"), methods=["POST"]),
    )
    with TestClient(app) as client:
        assert client.get("/r/1").text == "reader"
        assert client.post("/r/1").text == "writer"


# Trailing slashes


def slash_app(**options: Any) -> ASGIApp:
    return router(
        route("/with/", named("with")),
        route("/without", named("without")),
        route("/items/{id:int}/", named("item")),
        route("/n/{name}", named("name")),
        **options,
    )


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/with", "/with/"),
        ("/without/", "/without"),
        ("/items/3", "/items/3/"),
        ("/n/x/", "/n/x"),
    ],
)
def test_trailing_slash_redirects_both_ways_with_a_relative_location(
    path: str, location: str
) -> None:
    with TestClient(slash_app()) as client:
        response = client.get(path, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == location


def test_slash_redirect_keeps_root_path_and_query() -> None:
    with TestClient(slash_app(), root_path="/prefix") as client:
        response = client.get("/with?a=1&b=%20", follow_redirects=False)
    assert response.headers["location"] == "/prefix/with/?a=1&b=%20"


def test_no_redirect_when_the_other_form_does_not_match_either() -> None:
    with TestClient(slash_app()) as client:
        assert client.get("/items/x/", follow_redirects=False).status_code == 404
        assert client.get("/nothing/here/", follow_redirects=False).status_code == 404


def test_redirect_slashes_can_be_turned_off() -> None:
    with TestClient(slash_app(redirect_slashes=False)) as client:
        assert client.get("/with", follow_redirects=False).status_code == 404


@pytest.mark.parametrize("path", ["//evil.example/", "/\\evil.example/"])
async def test_slash_redirect_never_gives_a_location_that_leaves_the_host(path: str) -> None:
    app = router(route("/{p:path}x", named("p")), route("//evil.example", named("evil")))
    sent = await run_app(app, make_scope(path=path))
    for value in sent.header(b"location"):
        assert not value.startswith((b"//", b"/\\"))
    assert sent.status == 404


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/n/a\nb/", b"/n/a%0Ab"),
        ("/n/a\tb/", b"/n/a%09b"),
        ("/n/a?b/", b"/n/a%3Fb"),
        ("/n/a#b/", b"/n/a%23b"),
        ("/n/caf\u00e9/", b"/n/caf%C3%A9"),
        ("/n/100%/", b"/n/100%25"),
    ],
)
async def test_slash_redirect_location_is_the_percent_encoded_path(
    path: str, location: bytes
) -> None:
    # ASGI paths are decoded: what the redirect sends back must be encoded again.
    sent = await run_app(slash_app(), make_scope(path=path))
    assert sent.status == 307
    assert sent.header(b"location") == [location]


async def test_slash_redirect_encodes_query_bytes_that_are_not_printable_ascii() -> None:
    scope = make_scope(path="/with", query_string=b"a=\xff\n")
    sent = await run_app(slash_app(), scope)
    assert sent.status == 307
    assert sent.header(b"location") == [b"/with/?a=%FF%0A"]


# Endpoints


def test_http_exception_from_an_endpoint_becomes_its_response() -> None:
    async def endpoint(request: Request) -> Response:
        raise HTTPException(418, "short and stout", headers={"X-Tea": "yes"})

    with TestClient(router(route("/", endpoint))) as client:
        response = client.get("/")
    assert (response.status_code, response.text) == (418, "short and stout")
    assert response.headers["x-tea"] == "yes"


async def test_http_exceptions_are_raised_when_an_outer_layer_asks() -> None:
    async def endpoint(request: Request) -> Response:
        raise HTTPException(409)

    app = router(route("/", endpoint), route("/post", endpoint, methods=["POST"]))
    for path, status in (("/", 409), ("/missing", 404), ("/post", 405)):
        scope = make_scope(path=path, **{"asgikit.raise_http_exceptions": True})
        with pytest.raises(HTTPException) as caught:
            await run_app(app, scope)
        assert caught.value.status_code == status
    scope = make_scope(path="/post", **{"asgikit.raise_http_exceptions": True})
    with pytest.raises(HTTPException) as caught:
        await run_app(app, scope)
    assert caught.value.headers == {"Allow": "POST"}


def test_sync_endpoint_runs_in_a_worker_thread() -> None:
    main = threading.get_ident()

    def endpoint(request: Request) -> Response:
        return JSONResponse({"other_thread": threading.get_ident() != main})

    with TestClient(router(route("/", endpoint))) as client:
        assert client.get("/").json() == {"other_thread": True}


def test_class_endpoint_is_an_asgi_app() -> None:
    class Endpoint:
        def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
            self.scope, self.receive, self.send = scope, receive, send

        def __await__(self) -> Any:
            return PlainTextResponse("class")(self.scope, self.receive, self.send).__await__()

    with TestClient(router(route("/", Endpoint))) as client:
        assert client.get("/").text == "class"


def test_route_path_must_start_with_a_slash() -> None:
    with pytest.raises(ValueError):
        route("users", named("users"))


def test_router_refuses_something_that_is_not_a_route() -> None:
    with pytest.raises(TypeError):
        router(raw_app)  # type: ignore[arg-type]


# Bad input


def test_int_parameter_with_ten_thousand_digits_is_404_not_500() -> None:
    app = router(route("/n/{x:int}", echo_params))
    with TestClient(app) as client:
        assert client.get("/n/" + "9" * 10_000).status_code == 404


@pytest.mark.parametrize(
    "raw",
    [b"/%ff", b"/%zz", b"/%", b"/a%c3", b"/%00", b"/%2e%2e/%2e%2e/etc/passwd", b"/%c0%af"],
)
def test_invalid_percent_encoding_or_utf8_in_the_path_is_not_a_500(raw: bytes) -> None:
    app = router(route("/", named("home")), route("/{x}", echo_params))
    with TestClient(app, raise_server_exceptions=True) as client:
        response = client.get("http://testserver" + raw.decode("ascii"))
    assert response.status_code in (200, 404)


async def test_undecodable_path_from_a_server_is_answered_not_raised() -> None:
    # Servers decode with errors="replace" (uvicorn) or surrogateescape (others).
    app = router(route("/u/{x}", named("u")))
    for path in ("/u/\ufffd", "/u/\udcff", "/u/\x00", "/\udcff/"):
        scope = make_scope(path="/")
        scope["path"] = path
        sent = await run_app(app, scope)
        assert sent.status in (200, 404, 307), path


ROUTES = router(
    route("/", named("home")),
    route("/about", named("about")),
    route("/about/team/", named("team")),
    route("/users/{id:int}", named("user")),
    route("/users/{id:int}/posts/{slug}", named("post")),
    route("/users/me", named("me"), methods=["GET", "PATCH"]),
    route("/files/{rest:path}", named("files")),
    route("/price/{p:float}", named("price")),
    route("/things/{u:uuid}", named("thing"), methods=["DELETE"]),
    route("/raw", raw_app),
)

path_text = st.lists(
    st.one_of(
        st.sampled_from(["", "users", "me", "about", "team", "files", "price", "1", "x"]),
        st.text(max_size=12),
    ),
    max_size=6,
).map(lambda parts: "/" + "/".join(parts))


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    path=path_text,
    method=st.sampled_from(["GET", "HEAD", "POST", "PATCH", "DELETE", "OPTIONS"]),
    query=st.binary(max_size=20),
)
async def test_any_path_gets_a_normal_answer(path: str, method: str, query: bytes) -> None:
    scope = make_scope(method=method, path=path, query_string=query)
    sent = await run_app(ROUTES, scope)
    assert sent.status in (200, 307, 404, 405)
    assert sent.complete
    if sent.status == 307:
        (location,) = sent.header(b"location")
        assert location.startswith(b"/")
        assert not location.startswith((b"//", b"/\\"))
        location.decode("ascii")


def test_uuid_route_only_answers_its_method() -> None:
    with TestClient(ROUTES) as client:
        response = client.get(f"/things/{uuid.uuid4()}")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE"


async def test_a_client_leaving_mid_body_ends_the_request_quietly() -> None:
    reached: list[str] = []

    async def upload(request: Request) -> PlainTextResponse:
        try:
            await request.body()
        finally:
            reached.append("handler")
        return PlainTextResponse("never")

    messages = [
        {"type": "http.request", "body": b"part", "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    app = router(route("/up", upload, methods=["POST"]))
    scope = {"type": "http", "method": "POST", "path": "/up", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    assert reached == ["handler"]
    assert sent == []


def test_a_callable_object_endpoint_is_named_after_its_class() -> None:
    class Listing:
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            await PlainTextResponse("x")(scope, receive, send)

    app = router(route("/things", Listing()))
    assert url_path_for({"type": "http", "asgikit.router": app}, "Listing") == "/things"
