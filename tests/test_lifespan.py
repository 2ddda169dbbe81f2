"""Tests for lifespan: ``lifespan(app, handler)`` layers and routers forwarding to mounts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

from asgikit.composition import stack
from asgikit.lifespan import lifespan
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse, Response
from asgikit.routing import host, mount, route, router
from asgikit.testing import LifespanFailed, TestClient
from asgikit.types import ASGIApp, Message, Receive, Scope, Send


async def run_lifespan(app: ASGIApp, state: dict[str, Any] | None = None) -> list[str]:
    """Play the server's part: startup, then (if it completed) shutdown.

    Returns the types of the answers, with ``: message`` for failures.
    """
    to_app, app_inbox = anyio.create_memory_object_stream[Message](2)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](2)
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.4"}}
    scope["state"] = state if state is not None else {}
    answers: list[str] = []

    def describe(message: Message) -> str:
        if message["type"].endswith(".failed"):
            return f"{message['type']}: {message['message']}"
        return str(message["type"])

    async with to_app, app_inbox, app_outbox, from_app, anyio.create_task_group() as group:

        async def run() -> None:
            await app(scope, app_inbox.receive, app_outbox.send)

        group.start_soon(run)
        await to_app.send({"type": "lifespan.startup"})
        answers.append(describe(await from_app.receive()))
        if answers[-1] == "lifespan.startup.complete":
            await to_app.send({"type": "lifespan.shutdown"})
            answers.append(describe(await from_app.receive()))
    return answers


def recorder(events: list[str], name: str, *, fail: str | None = None) -> ASGIApp:
    """An app with its own lifespan that records it; with ``fail`` its startup fails."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            if fail == "startup":
                await send({"type": "lifespan.startup.failed", "message": f"{name} is broken"})
                return
            events.append(f"{name} up")
            await send({"type": "lifespan.startup.complete"})
            await receive()
            events.append(f"{name} down")
            if fail == "shutdown":
                await send({"type": "lifespan.shutdown.failed", "message": f"{name} leaked"})
                return
            await send({"type": "lifespan.shutdown.complete"})
            return
        await PlainTextResponse(name)(scope, receive, send)

    return app


def handler(
    events: list[str], name: str, state: dict[str, Any] | None = None, *, fail: bool = False
) -> Callable[[], Any]:
    @asynccontextmanager
    async def context() -> AsyncIterator[dict[str, Any] | None]:
        if fail:
            raise ConnectionError(f"{name} cannot connect")
        events.append(f"{name} up")
        try:
            yield state
        finally:
            events.append(f"{name} down")

    return context


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """An app written for HTTP only: it breaks on any other scope."""
    assert scope["type"] == "http"
    await PlainTextResponse("plain")(scope, receive, send)


async def endpoint(request: Request) -> Response:
    return PlainTextResponse("handler")


# Routers forward lifespan


async def test_router_starts_mounted_apps_and_route_apps_in_order_and_stops_in_reverse() -> None:
    events: list[str] = []
    app = router(
        route("/h", endpoint),
        mount("/a", recorder(events, "a")),
        route("/b", recorder(events, "b")),
        host("c.example", recorder(events, "c")),
        mount("/d", router(mount("/e", recorder(events, "e")))),
    )
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["a up", "b up", "c up", "e up", "e down", "c down", "b down", "a down"]


async def test_failing_child_reports_its_message_and_stops_the_started_ones() -> None:
    events: list[str] = []
    app = router(
        mount("/a", recorder(events, "a")),
        mount("/b", recorder(events, "b")),
        mount("/broken", recorder(events, "broken", fail="startup")),
        mount("/never", recorder(events, "never")),
    )
    answers = await run_lifespan(app)
    assert len(answers) == 1
    assert answers[0].startswith("lifespan.startup.failed: ")
    assert "broken is broken" in answers[0]
    assert "/broken" in answers[0]
    assert events == ["a up", "b up", "b down", "a down"]


async def test_failing_shutdown_is_reported_after_stopping_the_others() -> None:
    events: list[str] = []
    app = router(
        mount("/a", recorder(events, "a")), mount("/b", recorder(events, "b", fail="shutdown"))
    )
    answers = await run_lifespan(app)
    assert answers[0] == "lifespan.startup.complete"
    assert answers[1].startswith("lifespan.shutdown.failed: ")
    assert "b leaked" in answers[1]
    assert events == ["a up", "b up", "b down", "a down"]


async def test_router_with_nothing_needing_lifespan_completes_by_itself() -> None:
    app = router(route("/", endpoint), mount("/plain", no_lifespan))
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_empty_router_completes_lifespan() -> None:
    assert await run_lifespan(router()) == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]


async def test_app_that_raises_or_returns_on_lifespan_is_unsupported_and_left_alone() -> None:
    events: list[str] = []

    async def returns(scope: Scope, receive: Receive, send: Send) -> None:
        return

    async def sends_http(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("confused")(scope, receive, send)

    app = router(
        mount("/raises", no_lifespan),
        mount("/returns", returns),
        mount("/http", sends_http),
        mount("/ok", recorder(events, "ok")),
    )
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["ok up", "ok down"]


async def test_app_crashing_during_shutdown_is_a_failed_shutdown() -> None:
    async def crashes(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise RuntimeError("pool already closed")

    answers = await run_lifespan(router(mount("/x", crashes)))
    assert answers[0] == "lifespan.startup.complete"
    assert answers[1].startswith("lifespan.shutdown.failed: ")
    assert "pool already closed" in answers[1]


async def test_nested_routers_share_the_one_state() -> None:
    async def sets_state(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        scope["state"]["deep"] = True
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    state: dict[str, Any] = {}
    app = router(mount("/a", router(mount("/b", sets_state))))
    await run_lifespan(app, state)
    assert state == {"deep": True}


# lifespan() layers


async def test_lifespan_layers_start_in_order_and_stop_in_reverse_around_the_app() -> None:
    events: list[str] = []
    app = stack(
        lifespan(handler=handler(events, "db")),
        lifespan(handler=handler(events, "cache")),
        router(mount("/sub", recorder(events, "sub"))),
    )
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["db up", "cache up", "sub up", "sub down", "cache down", "db down"]


async def test_lifespan_takes_the_app_by_position_and_the_handler_by_keyword() -> None:
    events: list[str] = []
    app = lifespan(
        lifespan(no_lifespan, handler(events, "inner")), handler=handler(events, "outer")
    )
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["outer up", "inner up", "inner down", "outer down"]


async def test_failing_handler_reports_the_error_and_starts_nothing_inside() -> None:
    events: list[str] = []
    app = lifespan(
        router(mount("/sub", recorder(events, "sub"))), handler(events, "db", fail=True)
    )
    (answer,) = await run_lifespan(app)
    assert answer == "lifespan.startup.failed: ConnectionError: db cannot connect"
    assert events == []


async def test_failing_inner_app_stops_the_handler_and_reports_the_inner_message() -> None:
    events: list[str] = []
    app = lifespan(
        router(mount("/sub", recorder(events, "sub", fail="startup"))), handler(events, "db")
    )
    (answer,) = await run_lifespan(app)
    assert answer.startswith("lifespan.startup.failed: ")
    assert "sub is broken" in answer
    assert events == ["db up", "db down"]


async def test_failing_teardown_is_a_failed_shutdown() -> None:
    @asynccontextmanager
    async def leaky() -> AsyncIterator[None]:
        yield
        raise OSError("socket stuck")

    answers = await run_lifespan(lifespan(no_lifespan, leaky))
    assert answers == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed: OSError: socket stuck",
    ]


async def test_yielded_state_is_merged_into_the_lifespan_state() -> None:
    events: list[str] = []
    state: dict[str, Any] = {"server": 1}
    app = stack(
        lifespan(handler=handler(events, "a", {"db": "conn"})),
        lifespan(handler=handler(events, "b", {"cache": "redis"})),
        no_lifespan,
    )
    await run_lifespan(app, state)
    assert state == {"server": 1, "db": "conn", "cache": "redis"}


async def test_state_without_server_support_fails_startup_and_runs_teardown() -> None:
    events: list[str] = []
    app = lifespan(no_lifespan, handler(events, "a", {"db": "conn"}))
    to_app, app_inbox = anyio.create_memory_object_stream[Message](1)
    app_outbox, from_app = anyio.create_memory_object_stream[Message](1)
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
    async with to_app, app_inbox, app_outbox, from_app:
        await to_app.send({"type": "lifespan.startup"})
        await app(scope, app_inbox.receive, app_outbox.send)
        answer = await from_app.receive()
    assert answer["type"] == "lifespan.startup.failed"
    assert "lifespan state" in answer["message"]
    assert events == ["a up", "a down"]


def test_yielded_state_reaches_request_state_in_mounted_apps() -> None:
    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        yield {"greeting": "hello", "counter": [0]}

    async def show(request: Request) -> Response:
        request.state.counter[0] += 1
        return JSONResponse({"greeting": request.state.greeting, "n": request.state.counter[0]})

    app = lifespan(router(mount("/api", router(route("/show", show)))), resources)
    with TestClient(app) as client:
        assert client.get("/api/show").json() == {"greeting": "hello", "n": 1}
        assert client.get("/api/show").json() == {"greeting": "hello", "n": 2}


def test_test_client_sees_the_startup_failure_message() -> None:
    app = lifespan(router(), handler([], "db", fail=True))
    with pytest.raises(LifespanFailed, match="db cannot connect"), TestClient(app):
        pass


async def test_lifespan_layer_passes_other_scopes_straight_through() -> None:
    from tests.conftest import run_app

    app = lifespan(router(route("/", endpoint)), handler([], "x"))
    assert (await run_app(app)).body == b"handler"


async def test_an_app_mounted_twice_starts_once() -> None:
    events: list[str] = []
    shared = recorder(events, "shared")
    sub = router(mount("/s", shared))
    app = router(mount("/a", shared), mount("/b", shared), mount("/c", sub), host("x.test", sub))
    assert await run_lifespan(app) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["shared up", "shared down"]
