"""Forms: asgikit against Starlette, in one process, on the same bodies.

Three workloads, each run through a router endpoint that reads the form and
answers with a short text: a 100-field urlencoded form, a 20-file multipart
body (16 KiB a file), and one large file upload (100 MiB; ``--size-mib`` to
change, e.g. 1024).  Bodies arrive in 64 KiB ``http.request`` messages, as
uvicorn delivers them, and the large one is generated as it is sent, so
memory measures the parser, not the test.

Time is the best of several rounds (``time.perf_counter``); peak memory is
measured in a separate round under ``tracemalloc`` (which slows Python down).

    python benchmarks/bench_forms.py [--size-mib 100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse as StarlettePlainText
from starlette.routing import Route as StarletteRoute

from asgikit.forms import UploadFile
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import route, router

CHUNK = 64 * 1024
BOUNDARY = "----benchBoundary7MA4YWxkTrZu0gW"
MiB = 1024 * 1024

# Each framework lifts its limits for the large upload (asgikit's body cap is
# 1 GiB by default; Starlette has none for files).
LIMITS = {"max_body_size": None}


async def asgikit_endpoint(request: Request) -> PlainTextResponse:
    total = 0
    async with request.form(**LIMITS) as form:
        for _, value in form.multi_items():
            total += value.size or 0 if isinstance(value, UploadFile) else len(value)
    return PlainTextResponse(str(total))


async def starlette_endpoint(request: StarletteRequest) -> StarlettePlainText:
    total = 0
    async with request.form(max_files=1000, max_fields=1000) as form:
        for _, value in form.multi_items():
            total += value.size or 0 if not isinstance(value, str) else len(value)
    return StarlettePlainText(str(total))


APPS: dict[str, Any] = {
    "asgikit": router(route("/", asgikit_endpoint, methods=["POST"])),
    "starlette": Starlette(routes=[StarletteRoute("/", starlette_endpoint, methods=["POST"])]),
}


def urlencoded_body() -> tuple[str, Callable[[], Iterator[bytes]]]:
    body = "&".join(f"field{i}=value+number+{i}%21" for i in range(100)).encode()
    return "application/x-www-form-urlencoded", lambda: iter([body])


def multipart_files_body() -> tuple[str, Callable[[], Iterator[bytes]]]:
    content = bytes(range(256)) * 64  # 16 KiB
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file{i}"; '
        f'filename="f{i}.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content
        + b"\r\n"
        for i in range(20)
    ]
    body = b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()
    chunks = [body[i : i + CHUNK] for i in range(0, len(body), CHUNK)]
    return f"multipart/form-data; boundary={BOUNDARY}", lambda: iter(chunks)


def large_file_body(size_mib: int) -> tuple[str, Callable[[], Iterator[bytes]]]:
    block = bytes(range(256)) * (CHUNK // 256)
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="upload"; '
        f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for _ in range(size_mib * MiB // CHUNK):
            yield block
        yield tail

    return f"multipart/form-data; boundary={BOUNDARY}", chunks


async def run_once(app: Any, content_type: str, chunks: Iterator[bytes]) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", content_type.encode()), (b"host", b"bench")],
        "server": ("bench", 80),
        "client": ("127.0.0.1", 50000),
    }
    pending = next(chunks, b"")

    async def receive() -> dict[str, Any]:
        nonlocal pending
        chunk, pending = pending, next(chunks, None)
        if chunk is None:
            await anyio.sleep_forever()
        return {"type": "http.request", "body": chunk, "more_body": pending is not None}

    status = []

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    assert status == [200], status


async def measure(
    app: Any, body: tuple[str, Callable[[], Iterator[bytes]]], repeat: int, rounds: int
) -> tuple[float, int]:
    content_type, make = body
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeat):
            await run_once(app, content_type, make())
        best = min(best, (time.perf_counter() - start) / repeat)
    tracemalloc.start()
    await run_once(app, content_type, make())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best, peak


def fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:8.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds:8.2f} s "


async def main(size_mib: int, rounds: int) -> None:
    workloads = [
        ("urlencoded, 100 fields", urlencoded_body(), 2000),
        ("multipart, 20 files x 16 KiB", multipart_files_body(), 200),
        (f"multipart, 1 file x {size_mib} MiB", large_file_body(size_mib), 1),
    ]
    print(f"{'workload':32} {'framework':10} {'time/request':>13} {'peak memory':>12}")
    for name, body, repeat in workloads:
        for framework, app in APPS.items():
            best, peak = await measure(app, body, repeat, rounds)
            print(f"{name:32} {framework:10} {fmt_time(best):>13} {peak / MiB:9.2f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.size_mib, args.rounds)
