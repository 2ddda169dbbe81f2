"""exception_handlers: exceptions from the apps inside mapped to responses."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from asgikit.composition import stack
from asgikit.exceptions import HTTPException
from asgikit.middleware.exception_handlers import exception_handlers
from asgikit.middleware.server_errors import server_errors
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient, WebSocketDenialResponse
from asgikit.types import Receive, Scope, Send
from tests.conftest import SendRecorder, make_scope
from tests.servers.live import serve


class AppError(Exception):
    pass


class PaymentError(AppError):
    pass


async def app_error(request: Request) -> PlainTextResponse:
    raise AppError("generic")


async def payment_error(request: Request) -> PlainTextResponse:
    raise PaymentError("card declined")


async def teapot(request: Request) -> PlainTextResponse:
    raise HTTPException(418, "short and stout")


async def forbidden(request: Request) -> PlainTextResponse:
    raise HTTPException(403, "nope", headers={"X-Why": "because"})


async def other(request: Request) -> PlainTextResponse:
    raise KeyError("unhandled")


async def ok(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def streaming_then_fail(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    raise AppError("late")


routes = router(
    route("/app", app_error),
    route("/payment", payment_error),
    route("/teapot", teapot),
    route("/forbidden", forbidden),
    route("/other", other),
    route("/late", streaming_then_fail),
    route("/ok", ok, methods=["GET"]),
)


async def on_app_error(request: Request, exc: AppError) -> JSONResponse:
    return JSONResponse({"handler": "app", "error": str(exc)}, 400)


async def on_payment_error(request: Request, exc: PaymentError) -> JSONResponse:
    return JSONResponse({"handler": "payment", "error": str(exc)}, 402)


async def on_404(request: Request, exc: HTTPException) -> PlainTextResponse:
    return PlainTextResponse(f"no page at {request.url.path}", 404)


async def on_405(request: Request, exc: HTTPException) -> PlainTextResponse:
    assert exc.headers is not None
    return PlainTextResponse("wrong method", 405, headers=exc.headers)


async def on_418(request: Request, exc: HTTPException) -> PlainTextResponse:
    return PlainTextResponse(f"teapot: {exc.detail}", 418)


def client_for(handlers: dict[Any, Any]) -> TestClient:
    return TestClient(exception_handlers(routes, handlers))


def test_a_class_key_catches_its_exception_and_subclasses_closest_class_first() -> None:
    with client_for({AppError: on_app_error, PaymentError: on_payment_error}) as client:
        assert client.get("/app").json() == {"handler": "app", "error": "generic"}
        response = client.get("/payment")
    assert response.status_code == 402
    assert response.json() == {"handler": "payment", "error": "card declined"}


def test_a_base_class_key_catches_subclasses_too() -> None:
    with client_for({AppError: on_app_error}) as client:
        assert client.get("/payment").json() == {"handler": "app", "error": "card declined"}


def test_status_keys_catch_router_404_and_405_and_endpoint_http_exceptions() -> None:
    with client_for({404: on_404, 405: on_405, 418: on_418}) as client:
        missing = client.get("/nowhere")
        assert (missing.status_code, missing.text) == (404, "no page at /nowhere")
        wrong = client.post("/ok")
        assert (wrong.status_code, wrong.text) == (405, "wrong method")
        assert wrong.headers["allow"] == "GET, HEAD"
        assert client.get("/teapot").text == "teapot: short and stout"


def test_http_exceptions_without_a_key_are_answered_as_the_router_would() -> None:
    with client_for({404: on_404}) as client:
        response = client.get("/forbidden")
        assert (response.status_code, response.text) == (403, "nope")
        assert response.headers["x-why"] == "because"
        assert client.get("/forbidden", headers={"accept": "application/json"}).json() == {
            "detail": "nope"
        }


def test_the_status_key_goes_before_a_class_key() -> None:
    async def on_http(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse("class", exc.status_code)

    with client_for({HTTPException: on_http, 418: on_418}) as client:
        assert client.get("/teapot").text == "teapot: short and stout"
        assert client.get("/forbidden").text == "class"


def test_unmatched_exceptions_go_on_unchanged() -> None:
    client = client_for({AppError: on_app_error})
    with client, pytest.raises(KeyError):
        client.get("/other")


def test_only_class_keys_leave_http_exceptions_to_the_router() -> None:
    seen: list[Scope] = []

    async def spy(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        await routes(scope, receive, send)

    with TestClient(exception_handlers(spy, {AppError: on_app_error})) as client:
        assert client.get("/nowhere").status_code == 404
    assert "asgikit.raise_http_exceptions" not in seen[0]


async def test_after_the_response_started_the_exception_goes_on() -> None:
    recorder = SendRecorder()
    app = exception_handlers(routes, {AppError: on_app_error})
    with pytest.raises(AppError):
        await app(make_scope(path="/late"), None, recorder)  # type: ignore[arg-type]
    assert recorder.status == 200


async def test_scope_is_copied_and_lifespan_passes_through() -> None:
    seen: list[Scope] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)
        if scope["type"] == "http":
            await PlainTextResponse("x")(scope, receive, send)

    app = exception_handlers(inner, {404: on_404})
    scope = make_scope()
    await app(scope, None, SendRecorder())  # type: ignore[arg-type]
    assert "asgikit.raise_http_exceptions" not in scope
    assert seen[0]["asgikit.raise_http_exceptions"] is True
    lifespan_scope: Scope = {"type": "lifespan"}
    await app(lifespan_scope, None, None)  # type: ignore[arg-type]
    assert seen[1] is lifespan_scope


def test_sync_handlers_run_in_a_thread() -> None:
    def sync_handler(request: Request, exc: Exception) -> PlainTextResponse:
        return PlainTextResponse("sync", 400)

    with client_for({AppError: sync_handler}) as client:
        assert client.get("/app").text == "sync"


def test_bad_keys_are_refused_when_built() -> None:
    with pytest.raises(TypeError):
        exception_handlers(routes, {"nope": on_404})
    with pytest.raises(TypeError):
        exception_handlers(routes, {True: on_404})


def test_websocket_http_exception_before_accept_refuses_the_handshake() -> None:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        raise HTTPException(401, "log in first")

    client = TestClient(exception_handlers(refuse, {404: on_404}))
    with client, pytest.raises(WebSocketDenialResponse) as denied, client.websocket_connect("/ws"):
        pass
    assert denied.value.status_code == 401
    assert denied.value.content == b"log in first"


def test_in_a_stack_inside_server_errors_and_as_a_layer() -> None:
    app = stack(server_errors(), exception_handlers(handlers={AppError: on_app_error}), routes)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/app").status_code == 400
        assert client.get("/other").status_code == 500


def test_starlette_drop_in_keeps_handling_starlette_routes() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route

    async def starlette_fail(request: Any) -> Any:
        raise AppError("from starlette")

    app = Starlette(
        routes=[Route("/", starlette_fail)],
        middleware=[Middleware(exception_handlers, handlers={AppError: on_app_error})],
    )
    with TestClient(app) as client:
        assert client.get("/").json() == {"handler": "app", "error": "from starlette"}


def test_through_uvicorn() -> None:
    app = exception_handlers(routes, {404: on_404, PaymentError: on_payment_error})
    with serve(app) as base_url, httpx.Client(base_url=base_url) as client:
        assert client.get("/missing").text == "no page at /missing"
        assert client.get("/payment").status_code == 402


# -- Handlers run where the exception is raised (issue 13 #2, #3) -----------


class Gone(HTTPException):
    def __init__(self) -> None:
        super().__init__(410, "gone for good")


async def gone(request: Request) -> PlainTextResponse:
    raise Gone()


async def on_gone(request: Request, exc: Gone) -> PlainTextResponse:
    return PlainTextResponse(f"handled {type(exc).__name__}", exc.status_code)


def test_a_key_for_an_http_exception_subclass_catches_it_in_a_route() -> None:
    app = exception_handlers(router(route("/gone", gone)), {Gone: on_gone})
    with TestClient(app) as client:
        response = client.get("/gone")
    assert (response.status_code, response.text) == (410, "handled Gone")


def test_the_most_specific_http_exception_class_wins_along_the_mro() -> None:
    async def on_http(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse("base", exc.status_code)

    handlers = {HTTPException: on_http, Gone: on_gone}
    app = exception_handlers(router(route("/gone", gone), route("/teapot", teapot)), handlers)
    with TestClient(app) as client:
        assert client.get("/gone").text == "handled Gone"
        assert client.get("/teapot").text == "base"


def test_an_http_exception_subclass_raised_by_a_middleware_reaches_its_handler() -> None:
    async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
        raise Gone()

    with TestClient(exception_handlers(refuse, {Gone: on_gone})) as client:
        assert client.get("/").text == "handled Gone"


CORS_ORIGIN = "https://app.example"


def api_behind_cors() -> Any:
    from asgikit.middleware.cors import cors
    from asgikit.routing import mount

    api = router(
        route("/teapot", teapot),
        route("/forbidden", forbidden),
        route("/app", app_error),
        route("/gone", gone),
    )
    return router(mount("/api", cors(api, allow_origins=[CORS_ORIGIN])))


@pytest.mark.parametrize(
    "path",
    [
        "/api/teapot",  # an HTTPException with a status key
        "/api/gone",  # an HTTPException subclass with a class key
        "/api/app",  # another exception with a class key
        "/api/forbidden",  # an HTTPException no key matches: the default answer
        "/api/missing",  # the mounted router's 404
    ],
)
def test_error_answers_from_a_mounted_api_keep_its_cors_headers(path: str) -> None:
    handlers = {418: on_418, Gone: on_gone, AppError: on_app_error, 404: on_404}
    with TestClient(exception_handlers(api_behind_cors(), handlers)) as client:
        response = client.get(path, headers={"origin": CORS_ORIGIN})
    assert response.status_code >= 400
    assert response.headers.get("access-control-allow-origin") == CORS_ORIGIN


def test_the_answer_to_an_http_exception_in_a_route_keeps_inner_layers_headers() -> None:
    from asgikit.middleware.security_headers import security_headers

    inner = security_headers(router(route("/teapot", teapot)))
    with TestClient(exception_handlers(inner, {418: on_418})) as client:
        response = client.get("/teapot")
    assert response.text == "teapot: short and stout"
    assert "x-content-type-options" in response.headers


def test_a_handler_at_the_route_reads_the_body_the_endpoint_read() -> None:
    async def read_then_fail(request: Request) -> PlainTextResponse:
        await request.body()
        raise AppError("after reading")

    async def echo_body(request: Request, exc: AppError) -> PlainTextResponse:
        return PlainTextResponse(b"got " + await request.body(), 400)  # type: ignore[arg-type]

    app = exception_handlers(
        router(route("/", read_then_fail, methods=["POST"])), {AppError: echo_body}
    )
    with TestClient(app) as client:
        response = client.post("/", content=b"payload")
    assert (response.status_code, response.text) == (400, "got payload")


def test_the_innermost_layer_wins_and_outer_keys_still_apply_at_the_route() -> None:
    async def inner_418(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse("inner", 418)

    async def outer_app_error(request: Request, exc: AppError) -> PlainTextResponse:
        return PlainTextResponse("outer", 400)

    from asgikit.middleware.security_headers import security_headers

    inner = exception_handlers(
        router(route("/teapot", teapot), route("/app", app_error)), {418: inner_418}
    )
    app = exception_handlers(security_headers(inner), {418: on_418, AppError: outer_app_error})
    with TestClient(app) as client:
        assert client.get("/teapot").text == "inner"
        response = client.get("/app")
    assert response.text == "outer"
    assert "x-content-type-options" in response.headers


def test_a_failing_handler_runs_once_and_its_error_goes_on() -> None:
    calls: list[str] = []

    async def broken(request: Request, exc: AppError) -> PlainTextResponse:
        calls.append("broken")
        raise exc

    client = TestClient(exception_handlers(routes, {AppError: broken}))
    with client, pytest.raises(AppError):
        client.get("/app")
    assert calls == ["broken"]


def test_an_object_with_an_async_call_and_a_plain_function_are_both_handlers() -> None:
    class OnAppError:
        async def __call__(self, request: Request, exc: AppError) -> PlainTextResponse:
            return PlainTextResponse("object", 400)

    def on_teapot(request: Request, exc: HTTPException) -> PlainTextResponse:
        return PlainTextResponse("plain", 418)

    with client_for({AppError: OnAppError(), 418: on_teapot}) as client:
        assert client.get("/app").text == "object"
        assert client.get("/teapot").text == "plain"


def test_a_handler_that_is_not_callable_is_refused_when_built() -> None:
    with pytest.raises(TypeError, match="not callable"):
        exception_handlers(routes, {404: "not a function"})  # type: ignore[dict-item]
