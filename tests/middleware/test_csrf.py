"""csrf: origin check plus signed double-submit token on unsafe requests."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.middleware.csrf import csrf, csrf_token
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.servers.live import serve

SECRET = "csrf-secret"


async def page(request: Request) -> PlainTextResponse:
    return PlainTextResponse(csrf_token(request))


async def echo(request: Request) -> PlainTextResponse:
    body = await request.body()
    return PlainTextResponse(b"got " + body)


routes = router(
    route("/", page),
    route("/submit", echo, methods=["POST", "PUT", "DELETE", "PATCH"]),
    route("/webhook", echo, methods=["POST"]),
)


def make_client(**options: Any) -> TestClient:
    return TestClient(csrf(routes, secret_key=SECRET, **options))


def unmask(token: str) -> str:
    """The cookie value a masked token stands for: ``pad + (pad XOR secret)``, base64url."""
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    pad, masked = raw[: len(raw) // 2], raw[len(raw) // 2 :]
    return bytes(a ^ b for a, b in zip(pad, masked, strict=True)).decode("ascii")


def fetch_token(client: TestClient) -> str:
    response = client.get("/")
    token = response.text
    assert unmask(token) == client.cookies["csrftoken"]
    return token


def test_a_safe_request_gets_the_token_cookie_and_the_app_gets_the_token() -> None:
    with make_client() as client:
        response = client.get("/")
        cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"csrftoken={unmask(response.text)};")
    assert "HttpOnly" not in cookie  # scripts must read it to send the header
    assert "SameSite=Lax" in cookie
    assert "Path=/" in cookie


def test_a_valid_cookie_is_kept_and_not_set_again() -> None:
    with make_client() as client:
        token = fetch_token(client)
        response = client.get("/")
    assert unmask(response.text) == unmask(token)
    assert "set-cookie" not in response.headers


def test_token_is_masked_afresh_on_every_response_against_breach() -> None:
    with make_client() as client:
        tokens = [fetch_token(client) for _ in range(20)]
        secret = client.cookies["csrftoken"]
        assert len(set(tokens)) == 20
        assert not any(secret in token for token in tokens)
        for token in tokens[:3]:
            assert client.post("/submit", data={"csrf_token": token}).status_code == 200
            response = client.post("/submit", headers={"x-csrf-token": token})
            assert response.status_code == 200


def test_the_unmasked_cookie_value_is_accepted_in_the_header() -> None:
    # What a page's script does: copy the (not HttpOnly) cookie into the header.
    with make_client() as client:
        fetch_token(client)
        secret = client.cookies["csrftoken"]
        assert client.post("/submit", headers={"x-csrf-token": secret}).status_code == 200


def test_a_masked_token_of_another_cookie_is_refused() -> None:
    with make_client() as other:
        foreign = fetch_token(other)
    with make_client() as client:
        fetch_token(client)
        response = client.post("/submit", headers={"x-csrf-token": foreign})
    assert response.status_code == 403
    assert "does not match" in response.text


@pytest.mark.parametrize(
    "sent",
    [
        pytest.param("A" * 3, id="odd-length"),
        pytest.param("A" * 10_000, id="too-long"),
        pytest.param("*not base64*", id="not-base64"),
        pytest.param("", id="empty"),
        pytest.param("é" * 50, id="non-ascii"),
    ],
)
def test_malformed_masked_tokens_are_refused_with_403(sent: str) -> None:
    with make_client() as client:
        fetch_token(client)
        response = client.post("/submit", headers={"x-csrf-token": sent.encode("utf-8")})
    assert response.status_code == 403
    assert "does not match" in response.text


def test_matching_header_token_passes() -> None:
    with make_client() as client:
        token = fetch_token(client)
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            response = client.request(
                method, "/submit", content=b"data", headers={"x-csrf-token": token}
            )
            assert (response.status_code, response.text) == (200, "got data")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        pytest.param({"x-csrf-token": None}, "the token is missing", id="no-token"),
        pytest.param({"x-csrf-token": "other.value"}, "does not match", id="wrong-token"),
        pytest.param(
            {"origin": "https://evil.example"},
            "'https://evil.example' is not trusted",
            id="origin",
        ),
        pytest.param(
            {"sec-fetch-site": "cross-site"}, "without an Origin header", id="fetch-site-no-origin"
        ),
        pytest.param(
            {"sec-fetch-site": "same-site", "origin": "http://sub.testserver"},
            "not trusted",
            id="same-site-sibling",
        ),
        pytest.param({"origin": "null"}, "'null' is not trusted", id="null-origin"),
    ],
)
def test_failures_are_403_with_the_reason(headers: dict[str, str | None], reason: str) -> None:
    with make_client() as client:
        token = fetch_token(client)
        merged = {"x-csrf-token": token, **headers}
        sent = {k: v for k, v in merged.items() if v is not None}
        response = client.post("/submit", content=b"x", headers=sent)
    assert response.status_code == 403
    assert response.text.startswith("CSRF check failed: ")
    assert reason in response.text


def test_unsafe_request_without_the_cookie_is_refused_and_gets_one() -> None:
    with make_client() as client:
        response = client.post("/submit", headers={"x-csrf-token": "a.b"})
    assert response.status_code == 403
    assert "csrftoken cookie is missing or invalid" in response.text
    assert response.headers["set-cookie"].startswith("csrftoken=")


def test_a_forged_unsigned_cookie_is_refused_even_when_the_header_matches() -> None:
    app = csrf(routes, secret_key=SECRET)
    with TestClient(app, cookies={"csrftoken": "made.up"}) as client:
        response = client.post("/submit", headers={"x-csrf-token": "made.up"})
    assert response.status_code == 403
    assert "cookie is missing or invalid" in response.text


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"origin": "http://testserver"}, id="own-origin"),
        pytest.param({"origin": "http://testserver:80"}, id="own-origin-default-port"),
        pytest.param({"origin": "https://app.example.com"}, id="trusted"),
        pytest.param({"sec-fetch-site": "same-origin"}, id="fetch-same-origin"),
        pytest.param({"sec-fetch-site": "none"}, id="fetch-user-initiated"),
        pytest.param(
            {"sec-fetch-site": "same-site", "origin": "https://APP.example.com:443"},
            id="fetch-same-site-trusted",
        ),
    ],
)
def test_own_and_trusted_origins_pass(headers: dict[str, str]) -> None:
    with make_client(trusted_origins=["https://app.example.com"]) as client:
        token = fetch_token(client)
        response = client.post("/submit", headers={"x-csrf-token": token, **headers})
    assert response.status_code == 200


def test_urlencoded_form_field_passes_and_the_app_gets_the_whole_body() -> None:
    with make_client() as client:
        token = fetch_token(client)
        response = client.post("/submit", data={"name": "alice", "csrf_token": token})
    assert response.status_code == 200
    assert response.text == f"got name=alice&csrf_token={token.replace('=', '%3D')}"


def test_multipart_form_field_passes_and_the_app_gets_the_whole_body() -> None:
    with make_client() as client:
        token = fetch_token(client)
        response = client.post(
            "/submit",
            data={"csrf_token": token},
            files={"upload": ("a.txt", b"file-content" * 100, "text/plain")},
        )
    assert response.status_code == 200
    assert b"file-content" * 100 in response.content
    assert token.encode() in response.content


def test_a_token_beyond_the_peek_limit_must_come_in_the_header() -> None:
    with make_client(max_body_peek=100) as client:
        token = fetch_token(client)
        response = client.post("/submit", data={"padding": "p" * 200, "csrf_token": token})
        assert response.status_code == 403
        assert "x-csrf-token header or the csrf_token form field" in response.text
        response = client.post(
            "/submit", data={"padding": "p" * 200}, headers={"x-csrf-token": token}
        )
        assert response.status_code == 200


def test_form_field_none_accepts_the_header_only() -> None:
    with make_client(form_field=None) as client:
        token = fetch_token(client)
        response = client.post("/submit", data={"csrf_token": token})
    assert response.status_code == 403
    assert "x-csrf-token header." in response.text


def test_excluded_paths_are_exempt() -> None:
    with make_client(exclude=["/webhook"]) as client:
        assert client.post("/webhook", content=b"hook").text == "got hook"
        assert client.post("/submit", content=b"x").status_code == 403


def test_key_rotation_accepts_tokens_signed_with_an_old_key() -> None:
    with TestClient(csrf(routes, secret_key="old")) as old_client:
        token = fetch_token(old_client)
        cookie = old_client.cookies["csrftoken"]
    app = csrf(routes, secret_key=["new", "old"])
    with TestClient(app, cookies={"csrftoken": cookie}) as client:
        response = client.post("/submit", headers={"x-csrf-token": token})
    assert response.status_code == 200


def test_cookie_options() -> None:
    app = csrf(
        routes,
        secret_key=SECRET,
        cookie_name="xsrf",
        cookie_secure=True,
        cookie_samesite="strict",
        cookie_domain="example.com",
        cookie_max_age=None,
    )
    with TestClient(app) as client:
        cookie = client.get("/").headers["set-cookie"]
    assert cookie.startswith("xsrf=")
    assert set(cookie.split("; ")[1:]) == {
        "Domain=example.com",
        "Path=/",
        "Secure",
        "SameSite=Strict",
    }


def test_csrf_token_without_the_middleware_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="csrf"):
        csrf_token({})


async def test_websocket_and_lifespan_pass_through_and_scope_is_copied() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        if scope["type"] == "http":
            await PlainTextResponse("ok")(scope, receive, send)

    app = csrf(inner, secret_key=SECRET)
    for kind in ("websocket", "lifespan"):
        other: Scope = {"type": kind, "headers": []}
        await app(other, None, None)  # type: ignore[arg-type]
        assert seen[-1] is other
    scope = make_scope()
    await run_app(app, scope)
    assert "csrf_token" not in scope
    assert "csrf_token" in seen[-1]


@settings(max_examples=60, deadline=None)
@given(
    cookie=st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\0")),
    token=st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\0")),
    origin=st.text(st.characters(max_codepoint=255, exclude_characters="\r\n\0")),
    body=st.binary(max_size=200),
)
async def test_arbitrary_headers_and_bodies_give_200_or_403(
    cookie: str, token: str, origin: str, body: bytes
) -> None:
    app = csrf(routes, secret_key=SECRET)
    headers = [
        (b"cookie", f"csrftoken={cookie}".encode("latin-1")),
        (b"x-csrf-token", token.encode("latin-1")),
        (b"origin", origin.encode("latin-1")),
    ]
    recorder = await run_app(app, make_scope("POST", "/submit", headers=headers), body=body)
    assert recorder.status == 403
    form_headers = [
        (b"cookie", f"csrftoken={cookie}".encode("latin-1")),
        (b"content-type", b"application/x-www-form-urlencoded"),
    ]
    recorder = await run_app(app, make_scope("POST", "/submit", headers=form_headers), body=body)
    assert recorder.status == 403
    multipart_headers = [
        (b"cookie", f"csrftoken={cookie}".encode("latin-1")),
        (b"content-type", b"multipart/form-data; boundary=xyz"),
    ]
    recorder = await run_app(
        app, make_scope("POST", "/submit", headers=multipart_headers), body=body
    )
    assert recorder.status == 403


def test_starlette_drop_in() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse as StarlettePlain
    from starlette.routing import Route

    async def form_page(request: StarletteRequest) -> StarlettePlain:
        if request.method == "POST":
            form = await request.form()
            return StarlettePlain(f"hello {form['name']}")
        return StarlettePlain(request.scope["csrf_token"])

    app = Starlette(
        routes=[Route("/", form_page, methods=["GET", "POST"])],
        middleware=[Middleware(csrf, secret_key=SECRET)],
    )
    with TestClient(app) as client:
        token = client.get("/").text
        ok = client.post("/", data={"csrf_token": token, "name": "alice"})
        assert (ok.status_code, ok.text) == (200, "hello alice")
        assert client.post("/", data={"name": "alice"}).status_code == 403


def test_through_uvicorn_with_a_form_post() -> None:
    with (
        serve(csrf(routes, secret_key=SECRET)) as base_url,
        httpx.Client(base_url=base_url) as client,
    ):
        token = client.get("/").text
        response = client.post("/submit", data={"csrf_token": token, "a": "b"})
        assert response.status_code == 200
        assert response.text.startswith("got csrf_token=")
        response = client.post(
            "/submit", data={"csrf_token": token}, headers={"origin": "http://evil.test"}
        )
        assert response.status_code == 403


def test_in_a_stack_with_sessions_errors_handlers_and_websocket_origin() -> None:
    from asgikit.composition import stack
    from asgikit.exceptions import HTTPException
    from asgikit.middleware.exception_handlers import exception_handlers
    from asgikit.middleware.server_errors import server_errors
    from asgikit.middleware.sessions import sessions
    from asgikit.middleware.websocket_origin import websocket_origin

    async def on_404(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse("custom 404", 404)

    async def remember(request: Request) -> PlainTextResponse:
        form = await request.body()
        request.session["last"] = form.decode()
        return PlainTextResponse(request.session["last"])

    app = stack(
        server_errors(),
        sessions(secret_key="s"),
        csrf(secret_key=SECRET),
        websocket_origin(),
        exception_handlers(handlers={404: on_404}),
        router(route("/", page), route("/remember", remember, methods=["POST"])),
    )
    with TestClient(app) as client:
        token = client.get("/").text
        response = client.post("/remember", data={"csrf_token": token, "x": "1"})
        assert response.text == f"csrf_token={token}&x=1"
        assert "session=" in response.headers["set-cookie"]
        assert client.post("/remember", data={"x": "1"}).status_code == 403
        assert client.get("/missing").text == "custom 404"
