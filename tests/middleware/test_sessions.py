"""sessions: signed-cookie and server-side sessions, on their own and as a drop-in."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import Request as FastAPIRequest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.lifespan import lifespan
from asgikit.middleware.server_errors import server_errors
from asgikit.middleware.session_stores import MemoryStore
from asgikit.middleware.sessions import (
    Session,
    SessionCookieTooLarge,
    Signer,
    regenerate_session_id,
    sessions,
)
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router, websocket_route
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from asgikit.websockets import WebSocket
from tests.conftest import SendRecorder, make_scope, run_app
from tests.servers.live import serve

SECRET = "s3cret"


async def show(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def set_value(request: Request) -> PlainTextResponse:
    for key, value in request.query_params.multi_items():
        request.session[key] = value
    return PlainTextResponse("set")


async def clear(request: Request) -> PlainTextResponse:
    request.session.clear()
    return PlainTextResponse("cleared")


async def login(request: Request) -> PlainTextResponse:
    request.session["user"] = "alice"
    regenerate_session_id(request)
    return PlainTextResponse("in")


async def big(request: Request) -> PlainTextResponse:
    request.session["blob"] = "x" * 5000
    return PlainTextResponse("big")


async def read_ws(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_json(dict(websocket.scope["session"]))
    await websocket.close()


routes = router(
    route("/", show),
    route("/set", set_value),
    route("/clear", clear),
    route("/login", login),
    route("/big", big),
    websocket_route("/ws", read_ws),
)


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


def signed(payload: bytes, *, key: str = SECRET, timestamp: int | None = None) -> str:
    return Signer(key, salt=b"asgikit.sessions").sign(payload, timestamp=timestamp)


# -- signed cookies --------------------------------------------------------


def test_changed_session_sets_a_signed_httponly_lax_cookie() -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        response = client.get("/set", params={"user": "alice"})
    [cookie] = set_cookies(response)
    assert cookie.startswith("session=")
    attributes = cookie.split("; ")[1:]
    assert set(attributes) == {"Max-Age=1209600", "Path=/", "HttpOnly", "SameSite=Lax"}
    value = cookie.split(";")[0].removeprefix("session=")
    assert Signer(SECRET, salt=b"asgikit.sessions").unsign(value, max_age=60) == (
        b'{"user":"alice"}'
    )


def test_session_round_trips_through_the_cookie() -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.get("/set", params={"user": "alice", "n": "1"})
        assert client.get("/").json() == {"user": "alice", "n": "1"}


def test_unchanged_session_sends_no_cookie() -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.get("/set", params={"user": "alice"})
        response = client.get("/")
    assert response.json() == {"user": "alice"}
    assert set_cookies(response) == []


def test_emptied_session_clears_the_cookie() -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.get("/set", params={"user": "alice"})
        response = client.get("/clear")
        [cookie] = set_cookies(response)
        assert "Max-Age=0" in cookie
        assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in cookie
        assert client.get("/").json() == {}


def test_clearing_an_absent_session_sends_no_cookie() -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        assert set_cookies(client.get("/clear")) == []


@pytest.mark.parametrize(
    "cookie",
    [
        pytest.param(signed(b'{"user":"alice"}')[:-2] + "AA", id="tampered-signature"),
        pytest.param(signed(b'{"user":"alice"}').replace("eyJ", "eyK", 1), id="tampered-payload"),
        pytest.param(signed(b'{"user":"alice"}', key="other"), id="unknown-key"),
        pytest.param(
            signed(b'{"user":"alice"}', timestamp=int(time.time()) - 15 * 24 * 3600),
            id="expired",
        ),
        pytest.param(signed(b"not json"), id="payload-not-json"),
        pytest.param(signed(b"[1, 2]"), id="payload-not-an-object"),
        pytest.param(signed(b"\xff\xfe"), id="payload-not-utf8"),
        pytest.param("garbage", id="garbage"),
        pytest.param("a.b.c", id="three-parts"),
        pytest.param("é.1.é", id="non-ascii"),
    ],
)
def test_bad_cookie_gives_an_empty_session(cookie: str) -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        response = client.get("/", headers={"cookie": f"session={cookie}".encode("latin-1")})
    assert response.status_code == 200
    assert response.json() == {}


def test_max_age_none_makes_a_browser_session_cookie_that_never_expires_by_age() -> None:
    old = signed(b'{"user":"alice"}', timestamp=1)
    app = sessions(routes, secret_key=SECRET, max_age=None)
    with TestClient(app, cookies={"session": old}) as client:
        assert client.get("/").json() == {"user": "alice"}
        [cookie] = set_cookies(client.get("/set", params={"x": "1"}))
    assert "Max-Age" not in cookie


def test_key_rotation_first_key_signs_every_key_verifies() -> None:
    old_cookie = signed(b'{"user":"alice"}', key="old")
    app = sessions(routes, secret_key=["new", "old"])
    with TestClient(app, cookies={"session": old_cookie}) as client:
        assert client.get("/").json() == {"user": "alice"}
        [cookie] = set_cookies(client.get("/set", params={"n": "2"}))
    value = cookie.split(";")[0].removeprefix("session=")
    assert Signer("new", salt=b"asgikit.sessions").unsign(value, max_age=60) is not None
    assert Signer("old", salt=b"asgikit.sessions").unsign(value, max_age=60) is None


def test_cookie_attributes_follow_the_options() -> None:
    app = sessions(
        routes,
        secret_key=SECRET,
        session_cookie="sid",
        max_age=60,
        same_site="strict",
        https_only=True,
        path="/app",
        domain="example.com",
    )
    with TestClient(app, base_url="https://testserver") as client:
        [cookie] = set_cookies(client.get("/set", params={"a": "b"}))
    assert cookie.startswith("sid=")
    assert set(cookie.split("; ")[1:]) == {
        "Max-Age=60",
        "Domain=example.com",
        "Path=/app",
        "Secure",
        "HttpOnly",
        "SameSite=Strict",
    }


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"secret_key": ""}, id="empty-key"),
        pytest.param({"secret_key": []}, id="no-keys"),
        pytest.param({"secret_key": SECRET, "same_site": "none"}, id="samesite-none-no-secure"),
        pytest.param({"secret_key": SECRET, "same_site": "sometimes"}, id="bad-samesite"),
        pytest.param({"secret_key": SECRET, "session_cookie": "a b"}, id="bad-name"),
    ],
)
def test_bad_options_are_refused_when_the_middleware_is_built(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        sessions(routes, **options)


def test_cookie_over_the_browser_limit_is_an_error_naming_the_limit() -> None:
    client = TestClient(sessions(routes, secret_key=SECRET))
    with client, pytest.raises(SessionCookieTooLarge, match="4096"):
        client.get("/big")


def test_cookie_over_the_limit_becomes_a_500_inside_server_errors() -> None:
    app = server_errors(sessions(routes, secret_key=SECRET))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/big")
    assert response.status_code == 500
    assert set_cookies(response) == []


def test_session_values_must_be_json_serializable() -> None:
    async def bad(request: Request) -> PlainTextResponse:
        request.session["when"] = object()
        return PlainTextResponse("x")

    client = TestClient(sessions(router(route("/", bad)), secret_key=SECRET))
    with client, pytest.raises(TypeError, match="JSON-serializable"):
        client.get("/")


# -- the Session dict ------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "modified"),
    [
        pytest.param(lambda s: s.__setitem__("b", 2), True, id="setitem"),
        pytest.param(lambda s: s.__delitem__("a"), True, id="delitem"),
        pytest.param(lambda s: s.pop("a"), True, id="pop"),
        pytest.param(lambda s: s.pop("zz", None), False, id="pop-missing"),
        pytest.param(lambda s: s.popitem(), True, id="popitem"),
        pytest.param(lambda s: s.setdefault("a", 5), False, id="setdefault-present"),
        pytest.param(lambda s: s.setdefault("c", 5), True, id="setdefault-missing"),
        pytest.param(lambda s: s.update(c=3), True, id="update"),
        pytest.param(lambda s: s.__ior__({"c": 3}), True, id="ior"),
        pytest.param(lambda s: s.clear(), True, id="clear"),
        pytest.param(lambda s: s.get("a"), False, id="get"),
        pytest.param(lambda s: s["a"].append(1), False, id="nested-change"),
        pytest.param(lambda s: s.regenerate_id(), True, id="regenerate"),
    ],
)
def test_session_notices_changes_made_through_its_methods(change: Any, modified: bool) -> None:
    session = Session({"a": []})
    change(session)
    assert session.modified is modified


def test_session_is_a_dict() -> None:
    assert isinstance(Session(), dict)


# -- scope, exclude, shapes ------------------------------------------------


async def test_scope_is_copied_and_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        if scope["type"] == "http":
            await PlainTextResponse("ok")(scope, receive, send)

    app = sessions(inner, secret_key=SECRET)
    scope = make_scope()
    await run_app(app, scope)
    assert "session" not in scope
    assert isinstance(seen[0]["session"], Session)
    lifespan_scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    await app(lifespan_scope, None, None)  # type: ignore[arg-type]
    assert seen[1] is lifespan_scope


async def test_other_response_messages_pass_through_untouched() -> None:
    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        scope["session"]["a"] = 1
        await send({"type": "http.response.start", "status": 200, "headers": [], "x": 1})
        await send({"type": "http.response.pathsend", "path": "/tmp/x"})

    recorder = SendRecorder()
    await sessions(inner, secret_key=SECRET)(make_scope(), None, recorder)  # type: ignore[arg-type]
    start, pathsend = recorder.messages
    assert start["x"] == 1
    assert [k for k, _ in start["headers"]] == [b"vary", b"set-cookie"]
    assert pathsend == {"type": "http.response.pathsend", "path": "/tmp/x"}


def test_excluded_paths_get_no_session() -> None:
    async def probe(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str("session" in request.scope))

    app = router(route("/health", probe), route("/x", probe))
    with TestClient(sessions(app, secret_key=SECRET, exclude=["/health"])) as client:
        assert client.get("/health").text == "False"
        assert client.get("/x").text == "True"


def test_middleware_shape_layer_and_app_keyword() -> None:
    layer = sessions(secret_key=SECRET)
    for app in (layer(routes), sessions(app=routes, secret_key=SECRET)):
        with TestClient(app) as client:
            client.get("/set", params={"a": "1"})
            assert client.get("/").json() == {"a": "1"}


def test_websocket_gets_the_session_to_read() -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.get("/set", params={"user": "alice"})
        with client.websocket_connect("/ws") as websocket:
            assert websocket.receive_json() == {"user": "alice"}


@settings(max_examples=60, deadline=None)
@given(cookie=st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\0")))
async def test_arbitrary_cookie_headers_never_raise(cookie: str) -> None:
    app = sessions(routes, secret_key=SECRET)
    for header in (cookie, f"session={cookie}"):
        scope = make_scope(headers=[(b"cookie", header.encode("latin-1"))])
        recorder = await run_app(app, scope)
        assert recorder.status == 200


# -- server-side store -----------------------------------------------------


def cookie_value(response: httpx.Response) -> str:
    [cookie] = set_cookies(response)
    return cookie.split(";")[0].split("=", 1)[1]


def test_store_cookie_holds_only_a_signed_random_id() -> None:
    store = MemoryStore()
    with TestClient(sessions(routes, secret_key=SECRET, store=store)) as client:
        value = cookie_value(client.get("/set", params={"user": "alice"}))
        assert client.get("/").json() == {"user": "alice"}
    payload = Signer(SECRET, salt=b"asgikit.sessions").unsign(value, max_age=60)
    assert payload is not None
    assert b"alice" not in payload
    assert len(payload) >= 40
    assert len(store) == 1


def test_store_unchanged_session_writes_nothing() -> None:
    store = MemoryStore()
    with TestClient(sessions(routes, secret_key=SECRET, store=store)) as client:
        client.get("/set", params={"user": "alice"})
        assert set_cookies(client.get("/")) == []


def test_store_emptied_session_is_deleted_and_cookie_cleared() -> None:
    store = MemoryStore()
    with TestClient(sessions(routes, secret_key=SECRET, store=store)) as client:
        client.get("/set", params={"user": "alice"})
        [cookie] = set_cookies(client.get("/clear"))
    assert "Max-Age=0" in cookie
    assert len(store) == 0


def test_regenerate_moves_the_data_to_a_new_id_and_forgets_the_old() -> None:
    store = MemoryStore()
    with TestClient(sessions(routes, secret_key=SECRET, store=store)) as client:
        before = cookie_value(client.get("/set", params={"cart": "3"}))
        after = cookie_value(client.get("/login"))
        assert client.get("/").json() == {"cart": "3", "user": "alice"}
    assert before != after
    assert len(store) == 1
    old_id = Signer(SECRET, salt=b"asgikit.sessions").unsign(before, max_age=60)
    assert old_id is not None


async def test_an_id_the_store_does_not_know_is_not_adopted() -> None:
    store = MemoryStore()
    planted = signed(b"attacker-chosen-id")
    app = sessions(routes, secret_key=SECRET, store=store)
    with TestClient(app, cookies={"session": planted}) as client:
        value = cookie_value(client.get("/set", params={"user": "alice"}))
    assert value != planted
    assert await store.load("attacker-chosen-id") is None


def test_store_taken_from_lifespan_state() -> None:
    store = MemoryStore()

    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        yield {"session_store": store}

    app = lifespan(
        sessions(routes, secret_key=SECRET, store_from_state="session_store"), resources
    )
    with TestClient(app) as client:
        client.get("/set", params={"user": "alice"})
        assert client.get("/").json() == {"user": "alice"}
    assert len(store) == 1


def test_store_and_store_from_state_together_are_refused() -> None:
    with pytest.raises(TypeError):
        sessions(routes, secret_key=SECRET, store=MemoryStore(), store_from_state="x")


def test_regenerate_session_id_without_sessions_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="sessions"):
        regenerate_session_id({"session": {}})


# -- drop-in and real servers ----------------------------------------------


def test_starlette_request_session_works_with_asgikit_sessions() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import JSONResponse as StarletteJSON
    from starlette.routing import Route

    async def count(request: StarletteRequest) -> StarletteJSON:
        request.session["n"] = request.session.get("n", 0) + 1
        return StarletteJSON(request.session)

    app = Starlette(
        routes=[Route("/", count)], middleware=[Middleware(sessions, secret_key=SECRET)]
    )
    with TestClient(app) as client:
        assert client.get("/").json() == {"n": 1}
        assert client.get("/").json() == {"n": 2}


def test_litestar_define_middleware_gives_the_session() -> None:
    from litestar import Litestar, get
    from litestar import Request as LitestarRequest
    from litestar.middleware import DefineMiddleware

    @get("/", sync_to_thread=False, signature_namespace={"LitestarRequest": LitestarRequest})
    def count(request: LitestarRequest[Any, Any, Any]) -> dict[str, int]:
        request.session["n"] = request.session.get("n", 0) + 1
        return dict(request.session)

    app = Litestar([count], middleware=[DefineMiddleware(sessions, secret_key=SECRET)])
    with TestClient(app) as client:
        assert client.get("/").json() == {"n": 1}
        assert client.get("/").json() == {"n": 2}


def test_sessions_through_uvicorn_with_httpx() -> None:
    with (
        serve(sessions(routes, secret_key=SECRET)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        first = client.get("/set", params={"user": "alice"})
        assert "HttpOnly" in first.headers["set-cookie"]
        assert client.get("/").json() == {"user": "alice"}
        client.get("/clear")
        assert client.get("/").json() == {}


def test_payload_is_base64url_json() -> None:
    token = signed(b'{"a":1}')
    encoded = token.split(".")[0]
    assert json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))) == {"a": 1}


def test_fastapi_add_middleware_gives_starlette_request_session() -> None:
    from fastapi import FastAPI

    api = FastAPI()
    api.add_middleware(sessions, secret_key=SECRET)

    @api.get("/")
    async def count(request: FastAPIRequest) -> dict[str, int]:
        request.session["n"] = request.session.get("n", 0) + 1
        return dict(request.session)

    with TestClient(api) as client:
        assert client.get("/").json() == {"n": 1}
        assert client.get("/").json() == {"n": 2}


def test_a_session_value_with_a_lone_surrogate_round_trips() -> None:
    async def remember(request: Request) -> PlainTextResponse:
        request.session["name"] = (await request.json())["name"]  # JSON may hold "\ud800"
        return PlainTextResponse("ok")

    app = sessions(
        router(route("/", show), route("/remember", remember, methods=["POST"])), secret_key=SECRET
    )
    with TestClient(app) as client:
        assert client.post("/remember", content=b'{"name": "\\ud800"}').status_code == 200
        assert client.get("/").json() == {"name": "\ud800"}


# -- Vary: Cookie ------------------------------------------------------------


async def untouched(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no session")


async def with_vary(request: Request) -> PlainTextResponse:
    request.session["seen"] = True
    return PlainTextResponse("x", headers={"vary": request.query_params.get("vary", "")})


vary_routes = router(
    route("/", show),
    route("/set", set_value),
    route("/clear", clear),
    route("/untouched", untouched),
    route("/with-vary", with_vary),
)


@pytest.mark.parametrize("store", [None, MemoryStore()], ids=["cookie", "store"])
def test_answers_that_read_or_write_the_session_vary_on_cookie(store: MemoryStore | None) -> None:
    with TestClient(sessions(vary_routes, secret_key=SECRET, store=store)) as client:
        assert client.get("/").headers["vary"] == "Cookie"  # read, empty
        assert client.get("/set", params={"a": "1"}).headers["vary"] == "Cookie"
        assert client.get("/").headers["vary"] == "Cookie"  # read, not empty
        assert client.get("/clear").headers["vary"] == "Cookie"
        assert "vary" not in client.get("/untouched").headers


@pytest.mark.parametrize(
    ("existing", "expected"),
    [
        pytest.param("Accept-Encoding", ["Accept-Encoding, Cookie"], id="merged"),
        pytest.param("accept-encoding, COOKIE", ["accept-encoding, COOKIE"], id="listed"),
        pytest.param("*", ["*"], id="star"),
    ],
)
def test_vary_cookie_merges_with_an_existing_vary(existing: str, expected: list[str]) -> None:
    with TestClient(sessions(vary_routes, secret_key=SECRET)) as client:
        response = client.get("/with-vary", params={"vary": existing})
    assert response.headers.get_list("vary") == expected


def test_starlette_request_session_access_varies_on_cookie() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse as StarlettePlainText
    from starlette.routing import Route

    async def peek(request: StarletteRequest) -> StarlettePlainText:
        request.session  # noqa: B018 - touching it is a read, as in Starlette
        return StarlettePlainText("x")

    app = Starlette(
        routes=[Route("/", peek)], middleware=[Middleware(sessions, secret_key=SECRET)]
    )
    with TestClient(app) as client:
        assert client.get("/").headers["vary"] == "Cookie"


@pytest.mark.parametrize(
    "read",
    [
        pytest.param(lambda s: s.get("a"), id="get"),
        pytest.param(lambda s: s["a"], id="getitem"),
        pytest.param(lambda s: "a" in s, id="contains"),
        pytest.param(lambda s: list(s), id="iter"),
        pytest.param(lambda s: len(s), id="len"),
        pytest.param(lambda s: bool(s), id="bool"),
        pytest.param(lambda s: dict(s), id="dict"),
        pytest.param(lambda s: {**s}, id="unpack"),
        pytest.param(lambda s: s | {}, id="or"),
        pytest.param(lambda s: json.dumps(s), id="json"),
        pytest.param(lambda s: s.items(), id="items"),
        pytest.param(lambda s: s.values(), id="values"),
        pytest.param(lambda s: s.copy(), id="copy"),
        pytest.param(lambda s: s == {}, id="eq"),
    ],
)
def test_every_way_of_reading_the_session_counts_as_access(read: Any) -> None:
    session = Session({"a": 1})
    assert not session.accessed
    read(session)
    assert session.accessed
    assert not session.modified


# -- Litestar's set_session / clear_session ----------------------------------


def litestar_app(store: MemoryStore | None) -> Any:
    from litestar import Litestar, get
    from litestar import Request as LitestarRequest
    from litestar.middleware import DefineMiddleware

    names = {"LitestarRequest": LitestarRequest}

    @get("/", sync_to_thread=False, signature_namespace=names)
    def whoami(request: LitestarRequest[Any, Any, Any]) -> dict[str, Any]:
        return dict(request.session)

    @get("/login", sync_to_thread=False, signature_namespace=names)
    def log_in(request: LitestarRequest[Any, Any, Any]) -> str:
        request.set_session({"user_id": 7})
        return "in"

    @get("/logout", sync_to_thread=False, signature_namespace=names)
    def log_out(request: LitestarRequest[Any, Any, Any]) -> str:
        request.clear_session()
        return "out"

    @get("/none", sync_to_thread=False, signature_namespace=names)
    def set_none(request: LitestarRequest[Any, Any, Any]) -> str:
        request.set_session(None)  # type: ignore[arg-type]
        return "out"

    middleware = DefineMiddleware(sessions, secret_key=SECRET, store=store)
    return Litestar([whoami, log_in, log_out, set_none], middleware=[middleware])


@pytest.mark.parametrize("store", [None, MemoryStore()], ids=["cookie", "store"])
@pytest.mark.parametrize("logout", ["/logout", "/none"])
def test_litestar_set_session_and_clear_session_are_honoured(
    store: MemoryStore | None, logout: str
) -> None:
    with TestClient(litestar_app(store)) as client:
        assert client.get("/login").status_code == 200
        assert client.get("/").json() == {"user_id": 7}
        response = client.get(logout)
        [cookie] = set_cookies(response)
        assert "Max-Age=0" in cookie
        assert client.get("/").json() == {}
    if store is not None:
        assert len(store) == 0


# -- session fixation: a login moves the session to a new id -----------------


async def login_forgetting_to_regenerate(request: Request) -> PlainTextResponse:
    request.session["user_id"] = request.query_params["as"]
    return PlainTextResponse("in")


async def logout_keeping_the_cart(request: Request) -> PlainTextResponse:
    request.session.pop("user_id", None)
    return PlainTextResponse("out")


fixation_routes = router(
    route("/", show),
    route("/set", set_value),
    route("/login", login_forgetting_to_regenerate),
    route("/logout", logout_keeping_the_cart),
)


def test_planted_session_id_gets_no_access_after_the_victim_logs_in() -> None:
    store = MemoryStore()
    app = sessions(fixation_routes, secret_key=SECRET, store=store)
    with TestClient(app) as attacker:
        planted = cookie_value(attacker.get("/set", params={"cart": "1"}))
    with TestClient(app, cookies={"session": planted}) as victim:
        victims = cookie_value(victim.get("/login", params={"as": "alice"}))
    assert victims != planted
    with TestClient(app, cookies={"session": victims}) as victim:
        assert victim.get("/").json() == {"cart": "1", "user_id": "alice"}
    with TestClient(app, cookies={"session": planted}) as attacker:
        assert attacker.get("/").json() == {}
    assert len(store) == 1


@pytest.mark.parametrize(
    ("path", "params"),
    [
        pytest.param("/login", {"as": "mallory"}, id="another-user-logs-in"),
        pytest.param("/logout", {}, id="logout-keeping-other-data"),
    ],
)
def test_every_change_of_identity_moves_the_session_to_a_new_id(
    path: str, params: dict[str, str]
) -> None:
    store = MemoryStore()
    app = sessions(fixation_routes, secret_key=SECRET, store=store)
    with TestClient(app) as client:
        client.get("/set", params={"cart": "1"})
        before = cookie_value(client.get("/login", params={"as": "alice"}))
        after = cookie_value(client.get(path, params=params))
    assert after != before
    with TestClient(app, cookies={"session": before}) as old:
        assert old.get("/").json() == {}


def test_writes_that_keep_the_identity_keep_the_id() -> None:
    store = MemoryStore()
    app = sessions(fixation_routes, secret_key=SECRET, store=store)
    with TestClient(app) as client:
        first = cookie_value(client.get("/login", params={"as": "alice"}))
        assert cookie_value(client.get("/set", params={"cart": "2"})) == first
        assert cookie_value(client.get("/login", params={"as": "alice"})) == first


def test_identity_keys_name_what_a_login_changes() -> None:
    store = MemoryStore()
    app = sessions(fixation_routes, secret_key=SECRET, store=store, identity_keys=["account"])
    with TestClient(app) as client:
        first = cookie_value(client.get("/set", params={"cart": "1"}))
        assert cookie_value(client.get("/login", params={"as": "alice"})) == first
        assert cookie_value(client.get("/set", params={"account": "7"})) != first


def test_flood_of_anonymous_writers_does_not_evict_a_logged_in_session() -> None:
    store = MemoryStore(max_entries=20)
    app = sessions(fixation_routes, secret_key=SECRET, store=store)
    with TestClient(app) as user:
        user.get("/login", params={"as": "alice"})
        with TestClient(app) as flood:
            for n in range(200):
                flood.cookies.clear()
                flood.get("/set", params={"n": str(n)})
        assert user.get("/").json() == {"user_id": "alice"}
    assert len(store) == 20


# -- parity with Starlette's tests/middleware/test_session.py ----------------


async def merge_in(request: Request) -> JSONResponse:
    session = request.session
    session |= dict(request.query_params)
    return JSONResponse(dict(session))


async def pop_last(request: Request) -> JSONResponse:
    request.session.popitem()
    return JSONResponse(dict(request.session))


parity_routes = router(
    route("/", show),
    route("/set", set_value),
    route("/clear", clear),
    route("/merge", merge_in),
    route("/popitem", pop_last),
)


@pytest.mark.parametrize(
    ("path", "params", "expected"),
    [
        pytest.param("/merge", {"c": "3"}, {"a": "1", "b": "2", "c": "3"}, id="in-place-or"),
        pytest.param("/popitem", {}, {"a": "1"}, id="popitem"),
    ],
)
def test_in_place_changes_are_saved(
    path: str, params: dict[str, str], expected: dict[str, str]
) -> None:
    with TestClient(sessions(parity_routes, secret_key=SECRET)) as client:
        client.get("/set", params={"a": "1", "b": "2"})
        assert client.get(path, params=params).json() == expected
        assert client.get("/").json() == expected


@pytest.mark.parametrize("partitioned", [False, True])
def test_partitioned_marks_the_set_and_the_clearing_cookie(partitioned: bool) -> None:
    app = sessions(
        parity_routes,
        secret_key=SECRET,
        https_only=True,
        same_site="none",
        partitioned=partitioned,
    )
    with TestClient(app, base_url="https://testserver") as client:
        [set_it] = set_cookies(client.get("/set", params={"a": "1"}))
        [clear_it] = set_cookies(client.get("/clear"))
    assert ("Partitioned" in set_it.split("; ")) is partitioned
    assert ("Partitioned" in clear_it.split("; ")) is partitioned


def test_partitioned_without_https_only_is_refused() -> None:
    with pytest.raises(ValueError, match="partitioned"):
        sessions(parity_routes, secret_key=SECRET, partitioned=True)


def test_negative_max_age_expires_the_session_at_once() -> None:
    app = sessions(parity_routes, secret_key=SECRET, max_age=-1)
    with TestClient(app) as client:
        value = cookie_value(client.get("/set", params={"a": "1"}))
    with TestClient(app, cookies={"session": value}) as client:
        assert client.get("/").json() == {}


def test_zero_max_age_is_sent_as_is() -> None:
    with TestClient(sessions(parity_routes, secret_key=SECRET, max_age=0)) as client:
        [cookie] = set_cookies(client.get("/set", params={"a": "1"}))
    assert "Max-Age=0" in cookie.split("; ")


def test_https_only_session_is_not_sent_back_over_plain_http() -> None:
    app = sessions(parity_routes, secret_key=SECRET, https_only=True)
    with TestClient(app, base_url="http://testserver") as client:
        client.get("/set", params={"a": "1"})
        assert client.get("/").json() == {}
    with TestClient(app, base_url="https://testserver") as client:
        client.get("/set", params={"a": "1"})
        assert client.get("/").json() == {"a": "1"}


def test_session_under_a_mount_uses_the_cookie_path() -> None:
    from asgikit.routing import mount

    inner = sessions(parity_routes, secret_key=SECRET, path="/second")
    with TestClient(router(mount("/second", inner))) as client:
        [cookie] = set_cookies(client.get("/second/set", params={"a": "1"}))
        assert client.get("/second/").json() == {"a": "1"}
    assert "Path=/second" in cookie.split("; ")


def test_popping_a_missing_key_is_a_read_not_a_change() -> None:
    # Starlette counts it as neither; it is a read (the answer may depend on
    # the key's absence), so it varies on the cookie.
    session = Session({"a": 1})
    session.pop("missing", None)
    assert (session.accessed, session.modified) == (True, False)


def test_litestar_set_session_on_a_planted_id_moves_the_login_to_a_new_id() -> None:
    store = MemoryStore()
    app = litestar_app(store)
    with TestClient(sessions(fixation_routes, secret_key=SECRET, store=store)) as attacker:
        planted = cookie_value(attacker.get("/set", params={"cart": "1"}))
    with TestClient(app, cookies={"session": planted}) as victim:
        victims = cookie_value(victim.get("/login"))
    assert victims != planted
    with TestClient(app, cookies={"session": planted}) as attacker:
        assert attacker.get("/").json() == {}


async def test_a_regeneration_asked_before_the_session_was_replaced_still_happens() -> None:
    store = MemoryStore()

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        regenerate_session_id(scope)
        scope["session"] = {"cart": "2"}
        await PlainTextResponse("ok")(scope, receive, send)

    await store.save("known-id", {"cart": "1"}, None)
    app = sessions(inner, secret_key=SECRET, store=store, identity_keys=())
    headers = [(b"cookie", f"session={signed(b'known-id')}".encode())]
    recorder = await run_app(app, make_scope(headers=headers))
    assert await store.load("known-id") is None
    assert len(store) == 1
    assert any(k == b"set-cookie" for k, _ in recorder.headers)
