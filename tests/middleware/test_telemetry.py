"""telemetry: OpenTelemetry server spans and HTTP metrics, per the stable HTTP semconv."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from asgikit import (
    JSONResponse,
    PlainTextResponse,
    Request,
    mount,
    route,
    router,
    stack,
    telemetry,
    websocket_route,
)
from asgikit.routing import ROUTE_TEMPLATE_SINK
from asgikit.testing import TestClient
from asgikit.websockets import WebSocket
from tests.conftest import make_scope, run_app
from tests.servers.live import serve


class Otel:
    """An SDK tracer provider and meter provider that keep everything in memory."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    @property
    def options(self) -> dict[str, Any]:
        return {"tracer_provider": self.tracer_provider, "meter_provider": self.meter_provider}

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def server_span(self) -> ReadableSpan:
        servers = [s for s in self.spans() if s.kind is SpanKind.SERVER]
        assert len(servers) == 1, servers
        return servers[0]

    def points(self, name: str) -> list[Any]:
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend((metric, p) for p in metric.data.data_points)
        return found


@pytest.fixture
def otel() -> Iterator[Otel]:
    kit = Otel()
    yield kit
    kit.tracer_provider.shutdown()
    kit.meter_provider.shutdown()


async def user(request: Request) -> JSONResponse:
    return JSONResponse({"id": request.path_params["id"]})


async def broken(request: Request) -> JSONResponse:
    raise ValueError("boom")


async def five_hundred(request: Request) -> PlainTextResponse:
    return PlainTextResponse("down", status_code=503)


async def teapot(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no", status_code=418)


async def chat(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text("hi")
    await websocket.close()


def api() -> Any:
    return router(
        mount(
            "/api",
            router(
                route("/users/{id:int}", user),
                route("/broken", broken),
                route("/down", five_hundred),
                route("/teapot", teapot),
                route("/any", teapot, methods=["FOO", "get", "GET"]),
                websocket_route("/chat/{room}", chat),
            ),
        ),
        route("/health", teapot),
    )


def test_one_server_span_with_the_semconv_attributes_and_the_full_template(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    response = client.get("/api/users/42?sort=name", headers={"user-agent": "probe/1.0"})
    assert response.status_code == 200
    span = otel.server_span()
    assert span.name == "GET /api/users/{id:int}"
    assert span.status.status_code is StatusCode.UNSET
    assert dict(span.attributes or {}) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "url.path": "/api/users/42",
        "url.query": "sort=name",
        "http.route": "/api/users/{id:int}",
        "http.response.status_code": 200,
        "server.address": "testserver",
        "server.port": 80,
        "client.address": "testclient",
        "client.port": 50000,
        "network.protocol.version": "1.1",
        "user_agent.original": "probe/1.0",
    }


def test_http_route_is_the_template_never_the_raw_path_and_absent_on_404(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    assert client.get("/api/nowhere/7").status_code == 404
    span = otel.server_span()
    assert span.name == "GET"
    assert "http.route" not in (span.attributes or {})
    assert span.attributes["http.response.status_code"] == 404  # type: ignore[index]


def test_5xx_sets_error_type_and_span_status_error_but_4xx_does_not(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    client.get("/api/down")
    client.get("/api/teapot")
    down, teapot_span = otel.spans()
    assert down.status.status_code is StatusCode.ERROR
    assert down.attributes["error.type"] == "503"  # type: ignore[index]
    assert teapot_span.status.status_code is StatusCode.UNSET
    assert "error.type" not in (teapot_span.attributes or {})


def test_an_exception_is_recorded_with_its_type_and_error_status(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    with pytest.raises(ValueError, match="boom"):
        client.get("/api/broken")
    span = otel.server_span()
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"  # type: ignore[index]
    assert span.attributes["http.route"] == "/api/broken"  # type: ignore[index]
    assert [event.name for event in span.events] == ["exception"]
    [(_, point)] = otel.points("http.server.request.duration")
    assert point.attributes["error.type"] == "ValueError"


async def test_unknown_methods_are_other_with_the_original_kept(otel: Otel) -> None:
    app = telemetry(api(), **otel.options)
    await run_app(app, make_scope("FOO", "/api/any"))
    await run_app(app, make_scope("get", "/api/any"))  # httpx would upper-case it
    foo, lower = otel.spans()
    assert foo.name == "HTTP /api/any"
    assert foo.attributes["http.request.method"] == "_OTHER"  # type: ignore[index]
    assert foo.attributes["http.request.method_original"] == "FOO"  # type: ignore[index]
    # Method names are case-sensitive: "get" is not GET.
    assert lower.attributes["http.request.method_original"] == "get"  # type: ignore[index]


def test_trace_context_is_taken_from_traceparent_and_tracestate(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    client.get(
        "/api/users/1",
        headers={
            "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "tracestate": "vendor=opaque",
        },
    )
    span = otel.server_span()
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert span.parent.is_remote
    assert span.context.trace_state.get("vendor") == "opaque"


def test_the_span_is_current_while_the_app_runs_so_app_spans_nest(otel: Otel) -> None:
    tracer = otel.tracer_provider.get_tracer("app")

    async def work(request: Request) -> PlainTextResponse:
        with tracer.start_as_current_span("query database"):
            pass
        return PlainTextResponse("ok")

    TestClient(telemetry(router(route("/work", work)), **otel.options)).get("/work")
    inner = next(s for s in otel.spans() if s.name == "query database")
    server = otel.server_span()
    assert inner.parent is not None
    assert inner.parent.span_id == server.context.span_id
    assert inner.context.trace_id == server.context.trace_id


def test_duration_histogram_and_active_requests(otel: Otel) -> None:
    seen_active: list[int] = []

    async def peek(request: Request) -> PlainTextResponse:
        [(_, point)] = otel.points("http.server.active_requests")
        seen_active.append(point.value)
        return PlainTextResponse("ok")

    app = telemetry(router(mount("/v1", router(route("/peek/{n:int}", peek)))), **otel.options)
    TestClient(app).get("/v1/peek/3")
    assert seen_active == [1]
    [(metric, point)] = otel.points("http.server.request.duration")
    assert metric.unit == "s"
    assert point.count == 1
    assert 0 <= point.sum < 10
    assert dict(point.attributes) == {
        "http.request.method": "GET",
        "url.scheme": "http",
        "network.protocol.version": "1.1",
        "http.response.status_code": 200,
        "http.route": "/v1/peek/{n:int}",
    }
    [(_, active)] = otel.points("http.server.active_requests")
    assert active.value == 0
    assert dict(active.attributes) == {"http.request.method": "GET", "url.scheme": "http"}


def test_excluded_paths_and_predicates_make_no_span(otel: Otel) -> None:
    client = TestClient(telemetry(api(), exclude=["/health"], **otel.options))
    client.get("/health")
    assert otel.spans() == []
    only_api = telemetry(api(), exclude=lambda scope: scope["path"] != "/health", **otel.options)
    TestClient(only_api).get("/api/users/1")
    assert otel.spans() == []
    with pytest.raises(TypeError):
        telemetry(api(), exclude="/health")


def test_captured_headers_are_string_arrays_under_lower_case_names(otel: Otel) -> None:
    async def tagged(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok", headers={"X-Cache": "miss"})

    app = telemetry(
        router(route("/", tagged)),
        capture_request_headers=["X-Request-ID", "accept"],
        capture_response_headers=["x-cache"],
        **otel.options,
    )
    TestClient(app).get("/", headers={"x-request-id": "abc", "accept": "text/plain"})
    attributes = otel.server_span().attributes or {}
    assert attributes["http.request.header.x-request-id"] == ("abc",)
    assert attributes["http.request.header.accept"] == ("text/plain",)
    assert attributes["http.response.header.x-cache"] == ("miss",)
    with pytest.raises(TypeError):
        telemetry(app, capture_request_headers="x-request-id")
    with pytest.raises(ValueError):
        telemetry(app, capture_request_headers=["bad name"])


def test_sensitive_query_values_are_redacted(otel: Otel) -> None:
    TestClient(telemetry(api(), **otel.options)).get("/api/users/1?sig=secret&page=2")
    assert otel.server_span().attributes["url.query"] == "sig=REDACTED&page=2"  # type: ignore[index]


def test_server_address_and_port_come_from_the_host_header(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    client.get("/api/users/1", headers={"host": "[::1]:8443"})
    client.get("https://example.org/api/users/1")
    v6, named = otel.spans()
    assert (v6.attributes or {})["server.address"] == "::1"
    assert (v6.attributes or {})["server.port"] == 8443
    assert (named.attributes or {})["server.address"] == "example.org"
    assert (named.attributes or {})["server.port"] == 443
    assert (named.attributes or {})["url.scheme"] == "https"


def test_a_websocket_session_is_one_span_with_its_template(otel: Otel) -> None:
    client = TestClient(telemetry(api(), **otel.options))
    with client.websocket_connect("/api/chat/lobby") as ws:
        assert ws.receive_text() == "hi"
    span = otel.server_span()
    assert span.name == "GET /api/chat/{room}"
    assert span.attributes["http.response.status_code"] == 101  # type: ignore[index]
    assert span.attributes["url.scheme"] == "ws"  # type: ignore[index]
    # A WebSocket session's length is no request duration: no HTTP metrics.
    assert otel.points("http.server.request.duration") == []


def test_a_layer_for_stack_and_the_sink_key_is_the_routers(otel: Otel) -> None:
    app = stack(telemetry(**otel.options), api())
    TestClient(app).get("/api/users/5")
    assert otel.server_span().name == "GET /api/users/{id:int}"
    assert ROUTE_TEMPLATE_SINK == "asgikit.route_template_sink"


def test_inside_starlette_the_route_comes_from_starlettes_router(otel: Otel) -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Route

    async def item(request: Any) -> SText:
        return SText(str(request.path_params["n"]))

    app = Starlette(
        routes=[Route("/items/{n:int}", item)],
        middleware=[Middleware(telemetry, **otel.options)],
    )
    with TestClient(app) as client:
        assert client.get("/items/3").text == "3"
    span = otel.server_span()
    assert span.name == "GET /items/{n}"  # Starlette's own path_format, as its middleware has it
    assert span.attributes["http.route"] == "/items/{n}"  # type: ignore[index]


def test_through_uvicorn(otel: Otel) -> None:
    with serve(telemetry(api(), **otel.options), lifespan="on") as base:
        response = httpx.get(base + "/api/users/9", headers={"user-agent": "live"})
    assert response.json() == {"id": 9}
    span = otel.server_span()
    attributes = span.attributes or {}
    assert span.name == "GET /api/users/{id:int}"
    assert attributes["server.address"] == "127.0.0.1"
    assert attributes["client.address"] == "127.0.0.1"
    assert attributes["user_agent.original"] == "live"
    assert attributes["network.protocol.version"] == "1.1"


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_with_the_api_default_providers_the_request_passes_through_untouched() -> None:
    # No SDK configured: the app gets the very scope the server gave, no span work.
    out = _run(
        """
        import asyncio
        from asgikit import telemetry
        seen = []
        async def app(scope, receive, send):
            seen.append(scope)
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        async def main():
            async def send(message): pass
            scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
            await telemetry(app)(scope, None, send)
            print(seen[0] is scope)
        asyncio.run(main())
        """
    )
    assert out == "True"


def test_global_providers_set_in_a_lifespan_startup_are_used() -> None:
    out = _run(
        """
        from contextlib import asynccontextmanager
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from asgikit import PlainTextResponse, lifespan, route, router, telemetry
        from asgikit.testing import TestClient
        exporter = InMemorySpanExporter()
        @asynccontextmanager
        async def configure():
            provider = TracerProvider()
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            trace.set_tracer_provider(provider)
            yield
        async def hello(request):
            return PlainTextResponse("hi")
        app = telemetry(lifespan(router(route("/hello/{name}", hello)), configure))
        with TestClient(app) as client:
            client.get("/hello/ann")
        print([s.name for s in exporter.get_finished_spans()])
        """
    )
    assert out == "['GET /hello/{name}']"


def test_global_trace_and_explicit_noop_providers() -> None:
    spans = trace.NoOpTracerProvider()
    app = telemetry(api(), tracer_provider=spans)
    assert TestClient(app).get("/api/users/1").status_code == 200


# -- Parity with Starlette's tests/middleware/test_opentelemetry.py ----------------


def test_nested_telemetry_layers_make_one_span(otel: Otel) -> None:
    inner = telemetry(router(route("/users/{id:int}", user)), **otel.options)
    app = telemetry(router(mount("/api", inner)), **otel.options)
    TestClient(app).get("/api/users/1")
    assert otel.server_span().name == "GET /api/users/{id:int}"


def test_an_exclusion_holds_for_nested_telemetry_layers(otel: Otel) -> None:
    inner = telemetry(router(route("/health", teapot)), **otel.options)
    app = telemetry(router(mount("/api", inner)), exclude=["/api/health"], **otel.options)
    TestClient(app).get("/api/health")
    assert otel.spans() == []


def test_a_nested_in_process_request_makes_its_own_span(otel: Otel) -> None:
    inner_app = telemetry(router(route("/inner", teapot)), **otel.options)

    async def call_inner(request: Request) -> PlainTextResponse:
        transport = httpx.ASGITransport(app=inner_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://inner") as client:
            answer = await client.get("/inner")
        return PlainTextResponse(answer.text)

    TestClient(telemetry(router(route("/outer", call_inner)), **otel.options)).get("/outer")
    outer_span, inner_span = sorted(otel.spans(), key=lambda s: s.start_time or 0)
    assert (outer_span.name, inner_span.name) == ("GET /outer", "GET /inner")
    assert inner_span.parent is not None
    assert inner_span.parent.span_id == outer_span.context.span_id


def test_the_route_is_the_one_matched_after_a_path_rewriting_layer(otel: Otel) -> None:
    target = router(route("/target", teapot))

    async def rewrite(scope: Any, receive: Any, send: Any) -> None:
        await target({**scope, "path": "/target"}, receive, send)

    TestClient(telemetry(rewrite, **otel.options)).get("/source")
    span = otel.server_span()
    assert span.name == "GET /target"
    assert (span.attributes or {})["url.path"] == "/source"


def test_no_route_for_a_raw_app_behind_a_host_or_without_a_router(otel: Otel) -> None:
    from asgikit import host

    raw = PlainTextResponse("raw")
    TestClient(telemetry(router(host("testserver", raw)), **otel.options)).get("/")
    TestClient(telemetry(raw, **otel.options)).get("/raw")
    hosted, bare = otel.spans()
    assert (hosted.name, bare.name) == ("GET", "GET")
    assert "http.route" not in (hosted.attributes or {})
    assert "http.route" not in (bare.attributes or {})


async def test_optional_scope_values_may_be_missing(otel: Otel) -> None:
    app = telemetry(PlainTextResponse("raw"), **otel.options)
    scope: dict[str, Any] = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [],
        "server": ("example.com", 8000),
    }
    await run_app(app, scope)
    attributes = otel.server_span().attributes or {}
    assert (attributes["server.address"], attributes["server.port"]) == ("example.com", 8000)
    assert "network.protocol.version" not in attributes
    assert "client.address" not in attributes
    otel.exporter.clear()
    await run_app(app, {**scope, "server": None})
    assert "server.address" not in (otel.server_span().attributes or {})


def test_a_websocket_closed_before_accept_is_403_and_lifespan_passes(otel: Otel) -> None:
    async def refuse(websocket: WebSocket) -> None:
        await websocket.close()

    app = telemetry(router(websocket_route("/no", refuse)), **otel.options)
    with TestClient(app) as client, pytest.raises(Exception), client.websocket_connect("/no"):
        pass
    assert otel.server_span().attributes["http.response.status_code"] == 403  # type: ignore[index]


def test_without_opentelemetry_installed_the_import_error_says_what_to_install() -> None:
    out = _run(
        """
        import sys
        sys.modules["opentelemetry"] = None
        try:
            from asgikit import telemetry
        except ImportError as exc:
            print(exc)
        """
    )
    assert "pip install 'asgikit-toolkit[otel]'" in out


def test_metrics_without_tracing_when_only_a_meter_provider_is_real(otel: Otel) -> None:
    app = telemetry(
        api(), tracer_provider=trace.NoOpTracerProvider(), meter_provider=otel.meter_provider
    )
    TestClient(app).get("/api/users/3")
    assert otel.spans() == []
    [(_, point)] = otel.points("http.server.request.duration")
    assert point.attributes["http.route"] == "/api/users/{id:int}"
