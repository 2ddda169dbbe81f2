"""Real-time throughput through uvicorn: asgikit vs Starlette, in the same run.

* WebSocket echo: sequential round trips per second (one client, text frames).
* SSE: events per second one client reads from an endless stream.

Starlette has no SSE response of its own; its side is a ``StreamingResponse``
of pre-formatted ``data:`` lines (what sse-starlette builds on).  Both event
generators yield to the event loop every 32 events: a generator that never
awaits, behind a ``send`` that never suspends, starves uvicorn's loop, and
Starlette's stream then never hears the client leave (asgikit's
``EventSourceResponse`` checkpoints every 32 events for that reason).

    python -m benchmarks.bench_realtime [--messages 5000] [--events 50000]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import connect

from asgikit.requests import Request
from asgikit.routing import route, router, websocket_route
from asgikit.sse import EventSourceResponse
from asgikit.websockets import WebSocket

# -- the apps -----------------------------------------------------------------


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


async def _events(request: Request) -> EventSourceResponse:
    async def events() -> AsyncIterator[str]:
        n = 0
        while True:
            n += 1
            if not n & 31:
                await asyncio.sleep(0)
            yield f"event {n}"

    return EventSourceResponse(events(), ping=None)


asgikit_app = router(websocket_route("/ws", _echo), route("/sse", _events))


def _starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route, WebSocketRoute
    from starlette.websockets import WebSocket as StarletteWebSocket

    async def echo(websocket: StarletteWebSocket) -> None:
        await websocket.accept()
        async for text in websocket.iter_text():
            await websocket.send_text(text)

    async def sse(request: Any) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            n = 0
            while True:
                n += 1
                if not n & 31:
                    await asyncio.sleep(0)
                yield f"data: event {n}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[WebSocketRoute("/ws", echo), Route("/sse", sse)])


starlette_app = _starlette_app()


# -- the clients ----------------------------------------------------------------


async def ws_round_trips(url: str, count: int) -> float:
    async with connect(url) as client:
        for _ in range(100):  # warm-up
            await client.send("ping")
            await client.recv()
        start = time.perf_counter()
        for _ in range(count):
            await client.send("ping")
            await client.recv()
        return count / (time.perf_counter() - start)


async def sse_events(url: str, count: int) -> float:
    async with httpx.AsyncClient(timeout=30) as client, client.stream("GET", url) as response:
        seen = 0
        start = time.perf_counter()
        async for chunk in response.aiter_bytes():
            seen += chunk.count(b"\n\n")
            if seen >= count:
                break
        return seen / (time.perf_counter() - start)


def main() -> None:
    import contextlib
    import statistics
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.servers.live import serve_process

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="round trips per round")
    parser.add_argument("--events", type=int, default=20000, help="events per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    names = ("asgikit", "starlette")
    ws_rates: dict[str, list[float]] = {name: [] for name in names}
    sse_rates: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        bases = {
            name: stack.enter_context(
                serve_process(f"benchmarks.bench_realtime:{name}_app", probe="/probe")
            )
            for name in names
        }
        # Rounds interleaved, so that machine drift hits both apps alike.
        for _ in range(args.rounds):
            for name, base in bases.items():
                ws_url = "ws" + base.removeprefix("http") + "/ws"
                ws_rates[name].append(asyncio.run(ws_round_trips(ws_url, args.messages)))
                sse_rates[name].append(asyncio.run(sse_events(base + "/sse", args.events)))
    print(f"uvicorn, median of {args.rounds} interleaved rounds")
    print(f"{'app':<10} {'ws round trips/s':>18} {'sse events/s':>14}")
    for name in names:
        ws_median = statistics.median(ws_rates[name])
        sse_median = statistics.median(sse_rates[name])
        print(f"{name:<10} {ws_median:>18,.0f} {sse_median:>14,.0f}")


if __name__ == "__main__":
    main()
