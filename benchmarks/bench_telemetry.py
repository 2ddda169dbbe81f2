"""What ``telemetry`` costs: the JSON scenario of bench_core, with and without it.

Side by side, in-process, rounds interleaved: the bare asgikit router; with
``telemetry`` and the OpenTelemetry API's default (no-op) providers; with
the SDK (in-memory span exporter, with and without the metrics); and
Starlette bare and with its own ``OpenTelemetryMiddleware`` and the SDK
(which records spans only).  Time is this process's CPU time, not wall
time: on a shared machine a sub-microsecond difference drowns in the
scheduler's noise otherwise.  Run:

    .venv/bin/python benchmarks/bench_telemetry.py
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import Sink, http_scope, machine, make_receive
from bench_core import asgikit_app, starlette_apps
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from asgikit import telemetry


class BoundedExporter(InMemorySpanExporter):
    """The SDK's in-memory exporter, emptied now and then so memory stays bounded."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if len(self._finished_spans) > 5000:
            self.clear()
        return super().export(spans)


def sdk_tracer() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(BoundedExporter()))
    return provider


def cpu_compare(
    apps: dict[str, Any], scope: dict[str, Any], *, n: int = 2000, rounds: int = 9
) -> dict[str, float]:
    """Median CPU µs per request for each app, rounds interleaved after a warm-up."""

    async def run() -> dict[str, list[float]]:
        results: dict[str, list[float]] = {name: [] for name in apps}
        for round_ in range(rounds + 1):
            for name, app in apps.items():
                gc.collect()
                sink = Sink()
                started = time.process_time_ns()
                for _ in range(n):
                    await app(dict(scope), make_receive(b""), sink)
                if sink.status != 200:
                    raise RuntimeError(f"{name} answered {sink.status}")
                if round_:  # the first round warms up
                    results[name].append((time.process_time_ns() - started) / n / 1000)
        return results

    return {name: statistics.median(v) for name, v in asyncio.run(run()).items()}


def main() -> None:
    starlette_app, _ = starlette_apps()
    from starlette.middleware.opentelemetry import OpenTelemetryMiddleware

    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    apps: dict[str, Any] = {
        "asgikit": asgikit_app,
        "asgikit + telemetry, no-op API": telemetry(asgikit_app),
        "asgikit + telemetry, SDK spans": telemetry(
            asgikit_app, tracer_provider=sdk_tracer(), meter_provider=NoOpMeterProvider()
        ),
        "asgikit + telemetry, SDK spans + metrics": telemetry(
            asgikit_app, tracer_provider=sdk_tracer(), meter_provider=meter_provider
        ),
        "starlette": starlette_app,
        "starlette + OpenTelemetryMiddleware, SDK spans": OpenTelemetryMiddleware(
            starlette_app, tracer_provider=sdk_tracer()
        ),
    }
    scope = http_scope("GET", "/users/123", headers=[(b"user-agent", b"bench/1.0")])
    timings = cpu_compare(apps, scope)
    bare = {"asgikit": timings["asgikit"], "starlette": timings["starlette"]}
    print(f"Machine: {machine()}\n")
    print("### JSON, int path parameter, 24 routes: the cost of telemetry\n")
    print("| app | µs/request | × its bare app | added µs |")  # noqa: RUF001
    print("|---|---:|---:|---:|")
    for name, value in timings.items():
        base = bare["starlette" if name.startswith("starlette") else "asgikit"]
        print(f"| {name} | {value:.2f} | {value / base:.3f} | {value - base:+.2f} |")


if __name__ == "__main__":
    main()
