"""Tests for asgikit.authentication: the middleware, ``requires`` and the two backends."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit.authentication import (
    AuthCredentials,
    AuthenticationError,
    BaseUser,
    BasicAuthBackend,
    BearerAuthBackend,
    SimpleUser,
    UnauthenticatedUser,
    authentication,
    requires,
)
from asgikit.composition import stack
from asgikit.endpoints import HTTPEndpoint, WebSocketEndpoint
from asgikit.exceptions import WebSocketDisconnect
from asgikit.requests import HTTPConnection, Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import route, router, websocket_route
from asgikit.testing import TestClient
from asgikit.types import ASGIApp
from asgikit.websockets import WebSocket
from tests.conftest import make_scope, run_app
from tests.servers.live import serve

USERS = {"ann": ("s3cret", ["authenticated", "admin"]), "bob": ("pw", ["authenticated"])}
TOKENS = {"tok-ann": "ann", "tok-bob": "bob"}


def verify_password(username: str, password: str) -> tuple[AuthCredentials, BaseUser] | None:
    known = USERS.get(username)
    if known is None or known[0] != password:
        return None
    return AuthCredentials(known[1]), SimpleUser(username)


async def verify_token(token: str) -> tuple[AuthCredentials, BaseUser] | None:
    username = TOKENS.get(token)
    return (
        None if username is None else (AuthCredentials(USERS[username][1]), SimpleUser(username))
    )


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def whoami(request: Request) -> Response:
    user = request.user
    return JSONResponse(
        {
            "user": user.display_name,
            "authenticated": user.is_authenticated,
            "scopes": request.auth.scopes,
        }
    )


@requires("admin")
async def admin(request: Request) -> Response:
    return PlainTextResponse("admin area")


@requires("authenticated", redirect="login")
async def dashboard(request: Request) -> Response:
    return PlainTextResponse(f"hello {request.user.display_name}")


@requires("admin", status_code=404)
def hidden(request: Request) -> Response:
    return PlainTextResponse("hidden")


async def login(request: Request) -> Response:
    return PlainTextResponse("log in first")


class Settings(HTTPEndpoint):
    @requires("admin")
    async def get(self, request: Request) -> Response:
        return PlainTextResponse("settings")


@requires("admin")
async def admin_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(f"hi {websocket.user.display_name}")
    await websocket.close()


class AdminEcho(WebSocketEndpoint):
    encoding = "text"

    @requires("admin")
    async def on_connect(self, websocket: WebSocket) -> None:
        await websocket.accept()

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        await websocket.send_text(data)


async def open_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(websocket.user.display_name or "anonymous")
    await websocket.close()


routes = router(
    route("/me", whoami),
    route("/admin", admin),
    route("/dashboard", dashboard),
    route("/hidden", hidden),
    route("/login", login),
    route("/settings", Settings),
    websocket_route("/ws/admin", admin_socket),
    websocket_route("/ws/open", open_socket),
    websocket_route("/ws/endpoint", AdminEcho),
)
basic_app = authentication(routes, backend=BasicAuthBackend(verify_password))
bearer_app = stack(authentication(backend=BearerAuthBackend(verify_token)), routes)


# The middleware


async def test_anonymous_client_gets_an_unauthenticated_user_and_no_scopes() -> None:
    async with TestClient(basic_app) as client:
        response = await client.get("/me")
    assert response.json() == {"user": "", "authenticated": False, "scopes": []}


async def test_valid_basic_credentials_set_user_and_scopes() -> None:
    async with TestClient(basic_app) as client:
        response = await client.get("/me", headers=basic("ann", "s3cret"))
    assert response.json() == {
        "user": "ann",
        "authenticated": True,
        "scopes": ["authenticated", "admin"],
    }


async def test_wrong_password_leaves_the_client_anonymous() -> None:
    async with TestClient(basic_app) as client:
        response = await client.get("/me", headers=basic("ann", "nope"))
    assert response.json()["authenticated"] is False


async def test_bearer_token_sets_the_user() -> None:
    async with TestClient(bearer_app) as client:
        known = await client.get("/me", headers={"Authorization": "bearer tok-bob"})
        unknown = await client.get("/me", headers={"Authorization": "Bearer other"})
    assert known.json()["user"] == "bob"
    assert unknown.json()["authenticated"] is False


async def test_another_scheme_is_left_alone() -> None:
    async with TestClient(bearer_app) as client:
        response = await client.get("/me", headers=basic("ann", "s3cret"))
    assert response.json()["authenticated"] is False


@pytest.mark.parametrize(
    "header",
    [
        "Basic not*base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Basic ünïcode",
        "Basic ",
    ],
)
async def test_malformed_basic_credentials_answer_400_not_500(header: str) -> None:
    async with TestClient(basic_app) as client:
        response = await client.get("/me", headers={b"authorization": header.encode("utf-8")})
    assert response.status_code == 400
    assert response.text == "Invalid basic auth credentials"


@pytest.mark.parametrize("token", ["a b", "tok,en", "=abc", "", "tök"])
async def test_malformed_bearer_token_answers_400(token: str) -> None:
    async with TestClient(bearer_app) as client:
        header = f"Bearer {token}".encode()
        response = await client.get("/me", headers={b"authorization": header})
    assert response.status_code == 400


@given(st.binary(max_size=64))
async def test_any_basic_header_is_a_user_or_an_authentication_error(raw: bytes) -> None:
    value = "Basic " + raw.decode("latin-1")
    scope = make_scope(headers=[(b"authorization", value.encode("latin-1"))])
    backend = BasicAuthBackend(verify_password)
    try:
        result = await backend.authenticate(HTTPConnection(scope))
    except AuthenticationError:
        return
    assert result is None or isinstance(result[1], SimpleUser)


async def test_on_error_builds_the_answer() -> None:
    def on_error(conn: HTTPConnection, exc: AuthenticationError) -> ASGIApp:
        return JSONResponse({"error": str(exc)}, status_code=401)

    app = authentication(routes, backend=BasicAuthBackend(verify_password), on_error=on_error)
    async with TestClient(app) as client:
        response = await client.get("/me", headers={"Authorization": "Basic !!"})
    assert (response.status_code, response.json()) == (
        401,
        {"error": "Invalid basic auth credentials"},
    )


async def test_the_scope_is_copied_not_changed() -> None:
    seen: list[Any] = []

    async def inner(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)
        await PlainTextResponse("ok")(scope, receive, send)

    scope = make_scope()
    await run_app(authentication(inner, backend=BasicAuthBackend(verify_password)), scope)
    assert "user" not in scope
    assert isinstance(seen[0]["user"], UnauthenticatedUser)


# requires


async def connect(client: Any, path: str, headers: dict[str, str]) -> None:
    async with client.websocket_connect(path, headers=headers):
        pass


async def test_requires_lets_a_client_with_the_scope_in() -> None:
    async with TestClient(basic_app) as client:
        response = await client.get("/admin", headers=basic("ann", "s3cret"))
    assert (response.status_code, response.text) == (200, "admin area")


@pytest.mark.parametrize("headers", [{}, basic("bob", "pw")])
async def test_requires_refuses_with_403(headers: dict[str, str]) -> None:
    async with TestClient(basic_app) as client:
        response = await client.get("/admin", headers=headers)
    assert response.status_code == 403


async def test_requires_with_a_status_code_and_a_sync_handler() -> None:
    async with TestClient(basic_app) as client:
        refused = await client.get("/hidden", headers=basic("bob", "pw"))
        allowed = await client.get("/hidden", headers=basic("ann", "s3cret"))
    assert refused.status_code == 404
    assert allowed.text == "hidden"


async def test_requires_with_redirect_sends_to_the_named_route_with_next() -> None:
    async with TestClient(basic_app, follow_redirects=False) as client:
        refused = await client.get("/dashboard?tab=1")
        allowed = await client.get("/dashboard", headers=basic("bob", "pw"))
    assert refused.status_code == 303
    location = httpx.URL(refused.headers["location"])
    assert location.path == "/login"
    assert location.params["next"] == "http://testserver/dashboard?tab=1"
    assert allowed.text == "hello bob"


async def test_requires_on_an_endpoint_method() -> None:
    async with TestClient(basic_app) as client:
        refused = await client.get("/settings")
        allowed = await client.get("/settings", headers=basic("ann", "s3cret"))
    assert refused.status_code == 403
    assert allowed.text == "settings"


async def test_requires_on_a_websocket_allows_the_right_user() -> None:
    async with (
        TestClient(bearer_app) as client,
        client.websocket_connect("/ws/admin", headers={"Authorization": "Bearer tok-ann"}) as ws,
    ):
        assert await ws.receive_text() == "hi ann"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer tok-bob"}])
async def test_requires_on_a_websocket_closes_with_1008(headers: dict[str, str]) -> None:
    async with TestClient(bearer_app) as client:
        with pytest.raises(WebSocketDisconnect) as info:
            await connect(client, "/ws/admin", headers)
    assert info.value.code == 1008


async def test_websocket_gets_the_user_and_bad_credentials_close_with_1008() -> None:
    async with TestClient(bearer_app) as client:
        async with client.websocket_connect(
            "/ws/open", headers={"Authorization": "Bearer tok-bob"}
        ) as ws:
            assert await ws.receive_text() == "bob"
        with pytest.raises(WebSocketDisconnect) as info:
            await connect(client, "/ws/open", {"Authorization": "Bearer a b"})
    assert info.value.code == 1008


async def test_requires_on_a_websocket_endpoint_on_connect() -> None:
    async with TestClient(bearer_app) as client:
        async with client.websocket_connect(
            "/ws/endpoint", headers={"Authorization": "Bearer tok-ann"}
        ) as ws:
            await ws.send_text("echo")
            assert await ws.receive_text() == "echo"
        with pytest.raises(WebSocketDisconnect) as info:
            await connect(client, "/ws/endpoint", {"Authorization": "Bearer tok-bob"})
    assert info.value.code == 1008


def test_requires_needs_a_request_or_websocket_parameter() -> None:
    with pytest.raises(TypeError, match="takes no request"):

        @requires("x")
        async def nothing() -> None:
            pass


def test_basic_auth_through_a_real_uvicorn_server() -> None:
    with serve(basic_app) as base_url:
        allowed = httpx.get(base_url + "/admin", auth=("ann", "s3cret"))
        refused = httpx.get(base_url + "/admin", auth=("bob", "pw"))
        malformed = httpx.get(base_url + "/me", headers={"Authorization": "Basic %%%"})
    assert (allowed.status_code, refused.status_code, malformed.status_code) == (200, 403, 400)


def test_backend_may_be_given_by_position_after_the_app() -> None:
    class Everyone:
        async def authenticate(self, conn: Any) -> Any:
            return AuthCredentials(["read"]), SimpleUser("ada")

    async def whoami(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.user.display_name)

    app = authentication(router(route("/", whoami)), Everyone())
    with TestClient(app) as client:
        assert client.get("/").text == "ada"


# Parity with Starlette's tests/test_authentication.py


def test_users_have_an_identity_an_anonymous_one_empty() -> None:
    assert SimpleUser("ann").identity == "ann"
    assert (UnauthenticatedUser().identity, UnauthenticatedUser().display_name) == ("", "")
    assert UnauthenticatedUser().is_authenticated is False


def injecting(**extra: Any) -> Any:
    """An outer decorator that calls the handler with the request by keyword."""

    def wrap(handler: Any) -> Any:
        async def app(request: Request) -> Response:
            result = handler(request=request, **extra)
            return result if isinstance(result, Response) else await result

        return app

    return wrap


def injecting_socket(**extra: Any) -> Any:
    """The same for a WebSocket handler."""

    def wrap(handler: Any) -> Any:
        async def app(websocket: WebSocket) -> None:
            await handler(websocket=websocket, **extra)

        return app

    return wrap


@injecting(extra="payload")
@requires("authenticated")
async def injected_async(request: Request, extra: str) -> Response:
    return PlainTextResponse(f"{request.user.display_name} {extra}")


@injecting(extra="payload")
@requires("authenticated")
def injected_sync(request: Request, extra: str) -> Response:
    return PlainTextResponse(f"{request.user.display_name} {extra}")


@injecting_socket(extra="payload")
@requires("authenticated")
async def injected_socket(websocket: WebSocket, extra: str) -> None:
    await websocket.accept()
    await websocket.send_text(f"{websocket.user.display_name} {extra}")
    await websocket.close()


injected_app = authentication(
    router(
        route("/async", injected_async),
        route("/sync", injected_sync),
        websocket_route("/ws", injected_socket),
    ),
    backend=BasicAuthBackend(verify_password),
)


@pytest.mark.parametrize("path", ["/async", "/sync"])
async def test_requires_finds_a_request_passed_by_keyword(path: str) -> None:
    async with TestClient(injected_app) as client:
        refused = await client.get(path)
        allowed = await client.get(path, headers=basic("bob", "pw"))
    assert refused.status_code == 403
    assert (allowed.status_code, allowed.text) == (200, "bob payload")


async def test_requires_finds_a_websocket_passed_by_keyword() -> None:
    async with TestClient(injected_app) as client:
        async with client.websocket_connect("/ws", headers=basic("bob", "pw")) as ws:
            assert await ws.receive_text() == "bob payload"
        with pytest.raises(WebSocketDisconnect) as info:
            await connect(client, "/ws", {})
    assert info.value.code == 1008
