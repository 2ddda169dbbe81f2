"""Peak memory of an asgikit app under uvicorn: big bodies and many idle connections.

The app (``benchmarks/_memory_app.py``) runs under uvicorn (httptools) in a
fresh subprocess for every measurement; the client is this process.  After a
warm-up request the server's peak RSS so far (``VmHWM`` in
``/proc/PID/status``) is the baseline; the scenario runs; ``VmHWM`` again is
the peak.  The difference is what the scenario cost.

- upload: a multipart form with one file of SIZE (``request.form()``, which
  spools files to disk), and the same bytes as a raw body (``request.stream()``);
- download: ``FileResponse`` of a SIZE file;
- N idle WebSockets, all open at once;
- N SSE clients, all connected (each got its first event) at once;
- for scale, N idle WebSockets on a hand-written ASGI app: what the server
  and its WebSocket library cost alone.

Two sizes and two counts, so that "flat in body size" and "linear in
connections" can be read off the table.  Scale down for a quick run::

    .venv/bin/python benchmarks/bench_memory.py [--sizes-mib 64,1024] [--clients 100,1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MiB = 1024 * 1024
BOUNDARY = "memoryBenchBoundary7MA4YWxk"


def status_kib(pid: int, field: str) -> int:
    """``VmHWM``/``VmRSS`` of ``pid`` in KiB."""
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


@contextmanager
def server(env: dict[str, str] | None = None, app: str = "app") -> Iterator[tuple[str, int]]:
    """uvicorn serving ``_memory_app:<app>``; yields (base URL, server PID)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"_memory_app:{app}",
        "--app-dir",
        str(HERE),
        "--port",
        str(port),
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        "4096",
    ]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(command, env=full_env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.05)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(10)


def body_chunks(size: int, multipart: bool) -> Iterator[bytes]:
    chunk = bytes(range(256)) * 4096  # 1 MiB
    if multipart:
        yield (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.bin"\r\nContent-Type: application/octet-stream\r\n\r\n'
        ).encode()
    left = size
    while left > 0:
        yield chunk[: min(left, len(chunk))]
        left -= len(chunk)
    if multipart:
        yield f"\r\n--{BOUNDARY}--\r\n".encode()


def measure_upload(size: int, multipart: bool) -> tuple[int, int]:
    with server() as (url, pid):
        baseline = status_kib(pid, "VmHWM")
        length = sum(len(c) for c in body_chunks(size, multipart))
        content_type = (
            f"multipart/form-data; boundary={BOUNDARY}"
            if multipart
            else "application/octet-stream"
        )
        response = httpx.post(
            url + ("/upload" if multipart else "/stream"),
            content=body_chunks(size, multipart),
            headers={"content-type": content_type, "content-length": str(length)},
            timeout=600,
        )
        response.raise_for_status()
        if int(response.text) != size:
            raise RuntimeError(f"server counted {response.text}, sent {size}")
        return baseline, status_kib(pid, "VmHWM")


def measure_download(size: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "big.bin"
        with open(path, "wb") as file:
            file.truncate(size)  # sparse: reads as zeros, costs no disk
        with server({"MEMORY_FILE": str(path)}) as (url, pid):
            baseline = status_kib(pid, "VmHWM")
            received = 0
            with httpx.stream("GET", url + "/download", timeout=600) as response:
                for chunk in response.iter_raw(1024 * 1024):
                    received += len(chunk)
            if received != size:
                raise RuntimeError(f"received {received} of {size}")
            return baseline, status_kib(pid, "VmHWM")


async def _hold_websockets(url: str, pid: int, count: int) -> tuple[int, int]:
    from websockets.asyncio.client import connect

    baseline = status_kib(pid, "VmHWM")
    ws_url = "ws" + url.removeprefix("http") + "/ws"
    limit = asyncio.Semaphore(100)

    async def one() -> object:
        async with limit:
            return await connect(ws_url, open_timeout=60, ping_interval=None)

    sockets = await asyncio.gather(*(one() for _ in range(count)))
    await asyncio.sleep(0.5)
    peak = status_kib(pid, "VmHWM")
    await asyncio.gather(*(s.close() for s in sockets))  # type: ignore[attr-defined]
    return baseline, peak


async def _hold_sse(url: str, pid: int, count: int) -> tuple[int, int]:
    baseline = status_kib(pid, "VmHWM")
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        streams = []
        limit = asyncio.Semaphore(100)

        async def one() -> None:
            async with limit:
                request = client.build_request("GET", url + "/events")
                response = await client.send(request, stream=True)
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        break
                streams.append(response)

        await asyncio.gather(*(one() for _ in range(count)))
        await asyncio.sleep(0.5)
        peak = status_kib(pid, "VmHWM")
        await asyncio.gather(*(r.aclose() for r in streams))
    return baseline, peak


def measure_connections(kind: str, count: int, app: str = "app") -> tuple[int, int]:
    with server(app=app) as (url, pid):
        hold = _hold_websockets if kind == "ws" else _hold_sse
        return asyncio.run(hold(url, pid, count))


RESULTS: dict[str, dict[str, float]] = {}


def row(what: str, baseline: int, peak: int, per: int | None = None) -> str:
    delta = peak - baseline
    RESULTS[what] = {"baseline_kib": baseline, "peak_kib": peak, "delta_kib": delta}
    if per:
        RESULTS[what]["connections"] = per
    each = f"{delta / per:.1f}" if per else "-"
    return f"| {what} | {baseline / 1024:.1f} | {peak / 1024:.1f} | {delta / 1024:.1f} | {each} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes-mib", default="64,1024", help="body sizes, comma-separated")
    parser.add_argument("--clients", default="100,1000", help="connection counts")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--only",
        choices=["upload", "download", "connections"],
        action="append",
        help="run only these parts (repeatable); all by default",
    )
    args = parser.parse_args()
    parts = set(args.only or ["upload", "download", "connections"])
    sizes = [int(s) for s in args.sizes_mib.split(",")]
    counts = [int(c) for c in args.clients.split(",")]
    print("uvicorn --http httptools, one process; RSS of the server process in MiB.\n")
    print("| scenario | baseline VmHWM | peak VmHWM | Δ MiB | Δ KiB per connection |")
    print("|---|---:|---:|---:|---:|")
    for size in sizes:
        label = f"{size} MiB" if size < 1024 else f"{size / 1024:g} GiB"
        if "upload" in parts:
            multipart = measure_upload(size * MiB, True)
            print(row(f"upload {label}, multipart form", *multipart), flush=True)
            streamed = measure_upload(size * MiB, False)
            print(row(f"upload {label}, request.stream()", *streamed), flush=True)
        if "download" in parts:
            download = measure_download(size * MiB)
            print(row(f"download {label}, FileResponse", *download), flush=True)
    for count in counts if "connections" in parts else ():
        print(
            row(f"{count} idle WebSockets", *measure_connections("ws", count), count), flush=True
        )
        raw = measure_connections("ws", count, "raw_ws_app")
        print(row(f"{count} idle WebSockets, raw ASGI app", *raw, count), flush=True)
        print(row(f"{count} SSE clients", *measure_connections("sse", count), count), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(RESULTS, indent=2))


if __name__ == "__main__":
    main()
