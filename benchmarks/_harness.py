"""A tiny in-process harness: drive ASGI apps with fixed messages, interleaved.

Every app sees the same scope, the same ``receive`` and a ``send`` that only
counts bytes, on one event loop, so the numbers compare the apps and nothing
else.  Rounds alternate between apps so that machine drift hits all alike;
the median of the rounds is reported.
"""

from __future__ import annotations

import asyncio
import gc
import platform
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

App = Callable[..., Any]


def http_scope(
    method: str = "GET",
    path: str = "/",
    *,
    headers: list[tuple[bytes, bytes]] | None = None,
    query_string: bytes = b"",
) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query_string,
        "root_path": "",
        "headers": [(b"host", b"bench.local"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


def make_receive(body: bytes = b"") -> Callable[[], Any]:
    """A request's ``receive``: the body in one message, then wait like a live client.

    After the body a real server's ``receive`` blocks until the client leaves;
    apps that watch for ``http.disconnect`` while they stream (file and
    streaming responses) need that, or their listener would spin.
    """
    message = {"type": "http.request", "body": body, "more_body": False}
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return message
        await asyncio.get_running_loop().create_future()  # until cancelled
        raise AssertionError("unreachable")

    return receive


class Sink:
    """A ``send`` that checks the status and counts body bytes."""

    def __init__(self) -> None:
        self.status = 0
        self.bytes = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.bytes += len(message.get("body", b""))


async def _time_app(app: App, scope: dict[str, Any], body: bytes, n: int) -> float:
    sink = Sink()
    start = time.perf_counter_ns()
    for _ in range(n):
        await app(dict(scope), make_receive(body), sink)
    elapsed = time.perf_counter_ns() - start
    if sink.status >= 400 or sink.status == 0:
        raise RuntimeError(f"{app!r} answered {sink.status}")
    return elapsed / n / 1000  # µs per request


def header_layer(app: Any) -> Any:
    """The same trivial pure-ASGI middleware for every framework (adds ``x-layer: 1``)."""

    async def layered(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def tagged(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], (b"x-layer", b"1")]}
            await send(message)

        await app(scope, receive, tagged)

    return layered


def compare(
    apps: dict[str, App],
    scope: dict[str, Any],
    body: bytes = b"",
    *,
    n: int = 3000,
    rounds: int = 7,
    startup: Sequence[Callable[[], Awaitable[Any]]] = (),
) -> dict[str, float]:
    """Median µs per request for each app, rounds interleaved.

    ``startup`` coroutine functions run first on the benchmark's event loop
    (BlackSheep's ``Application.start()``, say).
    """

    async def run() -> dict[str, list[float]]:
        for start in startup:
            await start()
        results: dict[str, list[float]] = {name: [] for name in apps}
        for app in apps.values():  # warm-up
            await _time_app(app, scope, body, max(n // 10, 50))
        for _ in range(rounds):
            for name, app in apps.items():
                gc.collect()
                results[name].append(await _time_app(app, scope, body, n))
        return results

    raw = asyncio.run(run())
    return {name: statistics.median(values) for name, values in raw.items()}


async def call_once(
    app: App, scope: dict[str, Any], body: bytes = b""
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Run ``app`` once and return ``(status, headers, body)``, to check an app's answer."""
    status = 0
    headers: list[tuple[bytes, bytes]] = []
    chunks: list[bytes] = []

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, headers
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = [(bytes(k).lower(), bytes(v)) for k, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(dict(scope), make_receive(body), send)
    return status, headers, b"".join(chunks)


def cpu_model() -> str:
    """The CPU model from /proc/cpuinfo (``unknown`` elsewhere)."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """Python implementation and version, architecture, OS."""
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return f"{python}, {platform.machine()}, {platform.system()}"


def report(title: str, timings: dict[str, float], *, floor: str = "raw") -> str:
    lines = [
        f"### {title}",
        "",
        "| app | µs/request | × raw | Starlette ÷ this |",  # noqa: RUF001
        "|---|---:|---:|---:|",
    ]
    base = timings.get(floor)
    starlette = timings.get("starlette")
    for name, value in timings.items():
        ratio = f"{value / base:.2f}" if base else "-"
        vs = f"{starlette / value:.2f}" if starlette else "-"
        lines.append(f"| {name} | {value:.2f} | {ratio} | {vs} |")
    return "\n".join(lines)


def ratio_table(
    title: str,
    timings: dict[str, float],
    *,
    floor: str = "raw",
    subject: str = "asgikit",
    against: Sequence[str] = ("starlette", "blacksheep"),
) -> str:
    """A table of µs/request, the ratio to the floor, and each app's speed-up on the others."""
    head = ["app", "µs/request", f"x {floor}"]
    head += [f"{other} ÷ this" for other in against if other in timings]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |"]
    lines.append("|---|" + "---:|" * (len(head) - 1))
    base = timings.get(floor)
    for name, value in timings.items():
        cells = [f"**{name}**" if name == subject else name, f"{value:.2f}"]
        cells.append(f"{value / base:.2f}" if base else "-")
        cells += [f"{timings[other] / value:.2f}" for other in against if other in timings]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
