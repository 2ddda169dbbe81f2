"""``telemetry``: an OpenTelemetry server span and HTTP metrics for every request.

Follows the stable HTTP semantic conventions
(https://opentelemetry.io/docs/specs/semconv/http/): one ``SERVER`` span per
HTTP request and per WebSocket session, named ``{method} {http.route}`` once
a router matched (``{method}`` before, ``HTTP`` for a method outside the
known set), with the request's attributes (see ``_otel_attributes``), the
response's ``http.response.status_code``, and ``error.type`` with the span
status ``ERROR`` on a 5xx or an exception (recorded on the span).  A 4xx is
the client's error, not the server's: its span status stays unset.

``http.route`` is the route *template* with its mounts
(``/api/users/{id:int}``), never the raw path: an asgikit router writes it
into a sink this middleware puts in the scope; inside Starlette, FastAPI or
Litestar their own matched route is read instead.  No route matched: no ``http.route``.

The parent context comes from the request's headers (``traceparent``,
``tracestate``...) through the global propagator, and the span is current
while the app runs, so the app's own spans are its children.  Metrics:
``http.server.request.duration`` (a histogram in seconds) and
``http.server.active_requests``, for HTTP requests only — a WebSocket
session's length is not a request's duration.

Providers: given ones are used as they are; otherwise the global ones are
read once, when the app behind reports lifespan startup complete (so a
lifespan handler may configure the SDK) or at the first request without
lifespan; configure the SDK before serving.  While the providers are the
API's no-op defaults a request costs one check.

One request makes one span, however many telemetry layers it crosses (a
mounted sub-app with its own): the outermost layer marks the scope, and an
excluded request stays excluded below.  A WebSocket handshake is answered
``101`` when accepted, the denial's status when refused through
``websocket.http.response``, and ``403`` when closed before accepting (as
servers answer it).

Where it differs from Starlette's ``OpenTelemetryMiddleware``, on purpose:
``exclude`` takes path prefixes or a predicate, like every asgikit
middleware, not URL regexes; a method is case-sensitive (``get`` is
``_OTHER``, as the conventions say, not ``GET``); a 404 below a mount has
no ``http.route`` (no route matched; the mount's prefix would lump every
miss together); WebSocket sessions are traced; the metrics are recorded;
``http.route`` leaves out the server's ``root_path`` (a proxy's prefix is
not a route of the app).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "asgikit's telemetry needs opentelemetry-api: pip install 'asgikit-toolkit[otel]'"
    ) from None

from asgikit._version import __version__
from asgikit.composition import middleware
from asgikit.middleware._exclude import Exclude, compile_exclude
from asgikit.middleware._otel_attributes import (
    Attributes,
    header_names,
    request_attributes,
    response_header_attributes,
)
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

# The key asgikit's router writes the matched template to (routing.ROUTE_TEMPLATE_SINK);
# spelled here so that this piece does not load the router.
_SINK_KEY = "asgikit.route_template_sink"
# Set in the scope by the outermost telemetry layer: one span per request,
# however many layers (a mounted sub-app with its own) the request crosses.
_ACTIVE_KEY = "asgikit.telemetry"
# The conventions' advisory buckets for http.server.request.duration, in seconds.
_DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
# The metric attributes: low cardinality only (no path, no address).
_METRIC_KEYS = ("http.request.method", "url.scheme", "network.protocol.version")


class _Instruments:
    """What a resolved set of providers gives: a tracer and the two instruments, or ``None``."""

    def __init__(
        self, tracer_provider: trace.TracerProvider | None, meter_provider: Any | None
    ) -> None:
        tracer_provider = tracer_provider or trace.get_tracer_provider()
        self.tracer: trace.Tracer | None = None
        if not isinstance(tracer_provider, (trace.NoOpTracerProvider, trace.ProxyTracerProvider)):
            self.tracer = tracer_provider.get_tracer("asgikit", __version__)
        meter_provider = meter_provider or metrics.get_meter_provider()
        self.duration: metrics.Histogram | None = None
        self.active: metrics.UpDownCounter | None = None
        # The API's default (a proxy, until the SDK is set) has no public class.
        if not isinstance(meter_provider, metrics.NoOpMeterProvider) and (
            type(meter_provider).__name__ != "_ProxyMeterProvider"
        ):
            meter = meter_provider.get_meter("asgikit", __version__)
            self.duration = meter.create_histogram(
                "http.server.request.duration",
                unit="s",
                description="Duration of HTTP server requests.",
                explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            )
            self.active = meter.create_up_down_counter(
                "http.server.active_requests",
                unit="{request}",
                description="Number of active HTTP server requests.",
            )
        self.off = self.tracer is None and self.duration is None
        textmap = propagate.get_global_textmap()
        self.fields = frozenset(name.lower().encode("latin-1") for name in textmap.fields)


def _error_type(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _framework_route(scope: Scope) -> str | None:
    # Starlette's and Litestar's routers write their match into the scope they are given.
    path_format = getattr(scope.get("route"), "path_format", None)
    if isinstance(path_format, str):
        return scope.get("root_path", "").rstrip("/") + path_format or "/"
    template = scope.get("path_template")
    return template if isinstance(template, str) else None


@middleware
def telemetry(
    app: ASGIApp,
    *,
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    exclude: Exclude = None,
    capture_request_headers: Iterable[str] | None = None,
    capture_response_headers: Iterable[str] | None = None,
) -> ASGIApp:
    """A server span per request and the HTTP server metrics (OpenTelemetry).

    ``tracer_provider`` / ``meter_provider`` default to the global ones.
    ``exclude`` (path prefixes or a predicate on the scope) skips requests,
    such as health checks.  ``capture_request_headers`` and
    ``capture_response_headers`` name headers recorded as
    ``http.request.header.<name>`` / ``http.response.header.<name>``
    (mind what they may hold: never capture credentials).
    """
    excluded = compile_exclude(exclude)
    capture_in = header_names(capture_request_headers, "capture_request_headers")
    capture_out = header_names(capture_response_headers, "capture_response_headers")
    resolved: _Instruments | None = None
    off = False  # resolved, and nothing to record: the one check a request pays

    def resolve() -> _Instruments:
        nonlocal resolved, off
        if resolved is None:
            resolved = _Instruments(tracer_provider, meter_provider)
            off = resolved.off
        return resolved

    if tracer_provider is not None and meter_provider is not None:
        resolve()  # nothing global to wait for

    async def observe(scope: Scope, receive: Receive, send: Send, tools: _Instruments) -> None:
        http = scope["type"] == "http"
        scheme: str = scope.get("scheme") or ("http" if http else "ws")
        method: str = (scope.get("method") or "GET") if http else "GET"
        attributes, carrier = request_attributes(scope, method, scheme, tools.fields, capture_in)
        span_method = attributes["http.request.method"]
        if span_method == "_OTHER":
            span_method = "HTTP"
        sink: list[str | None] = [None]
        child = dict(scope)
        child[_SINK_KEY] = sink
        child[_ACTIVE_KEY] = True
        status: int | None = None
        failure: str | None = None
        tracer = tools.tracer
        span: trace.Span | None = None
        token: object = None
        if tracer is not None:
            parent = propagate.extract(carrier) if carrier else None
            span = tracer.start_span(
                span_method, context=parent, kind=SpanKind.SERVER, attributes=attributes
            )
            token = otel_context.attach(trace.set_span_in_context(span, parent))
        active_attributes = {key: attributes[key] for key in _METRIC_KEYS[:2]}
        if tools.active is not None and http:
            tools.active.add(1, active_attributes)
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.http.response.start":
                status = message["status"]
                if capture_out and span is not None:
                    span.set_attributes(
                        response_header_attributes(message.get("headers", ()), capture_out)
                    )
            elif kind == "websocket.accept":
                status = 101
                if capture_out and span is not None:
                    span.set_attributes(
                        response_header_attributes(message.get("headers", ()), capture_out)
                    )
            elif kind == "websocket.close" and status is None:
                status = 403
            await send(message)

        try:
            await app(child, receive, observed_send)
        except Exception as exc:
            failure = _error_type(exc)
            if span is not None:
                span.record_exception(exc)
            raise
        finally:
            elapsed = time.perf_counter() - started
            route = sink[0] or _framework_route(child)
            if failure is None and status is not None and status >= 500:
                failure = str(status)
            if span is not None:
                otel_context.detach(token)  # type: ignore[arg-type]
                result: Attributes = {}
                if status is not None:
                    result["http.response.status_code"] = status
                if route is not None:
                    result["http.route"] = route
                    span.update_name(f"{span_method} {route}")
                if failure is not None:
                    result["error.type"] = failure
                    span.set_status(Status(StatusCode.ERROR))
                span.set_attributes(result)
                span.end()
            if http:
                if tools.active is not None:
                    tools.active.add(-1, active_attributes)
                if tools.duration is not None:
                    measured = {key: attributes[key] for key in _METRIC_KEYS if key in attributes}
                    if status is not None:
                        measured["http.response.status_code"] = status
                    if route is not None:
                        measured["http.route"] = route
                    if failure is not None:
                        measured["error.type"] = failure
                    tools.duration.record(elapsed, measured)

    async def telemetry_app(scope: Scope, receive: Receive, send: Send) -> None:
        if off:
            await app(scope, receive, send)
            return
        kind = scope["type"]
        if kind == "http" or kind == "websocket":
            tools = resolved if resolved is not None else resolve()
            if tools.off or _ACTIVE_KEY in scope:
                await app(scope, receive, send)
            elif excluded is not None and excluded(scope):
                # Excluded here is excluded below too, by a nested layer.
                await app({**scope, _ACTIVE_KEY: False}, receive, send)
            else:
                await observe(scope, receive, send, tools)
            return
        if kind == "lifespan" and resolved is None:

            async def lifespan_send(message: Message) -> None:
                if message["type"] == "lifespan.startup.complete":
                    resolve()  # the app's startup may have configured the SDK
                await send(message)

            await app(scope, receive, lifespan_send)
            return
        await app(scope, receive, send)

    return telemetry_app


__all__ = ["telemetry"]
