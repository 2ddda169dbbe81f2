"""File serving benchmark: asgikit vs Starlette, in-process, same run.

Serves a 1 KiB and a 1 MiB file with ``FileResponse`` and with the static
files app of each, driven by the same minimal fake ``receive``/``send`` on
one event loop (rounds interleaved, median reported).  No pathsend is
offered, so both really read the file.  Run:

    .venv/bin/python benchmarks/bench_files.py [--quick]
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import http_scope, machine
from starlette.responses import FileResponse as StarletteFileResponse
from starlette.staticfiles import StaticFiles

from asgikit.files import FileResponse
from asgikit.staticfiles import static_files

App = Any


class Sink:
    """A ``send`` that counts body bytes and checks the status."""

    def __init__(self) -> None:
        self.status = 0
        self.bytes = 0

    async def __call__(self, message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.bytes += len(message.get("body", b""))


def make_receive() -> Any:
    """The request, then (like a client that stays) nothing until cancelled."""
    request = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        nonlocal served
        if not served:
            served = True
            return request
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    served = False
    return receive


async def time_app(app: App, scope: dict[str, Any], size: int, n: int) -> float:
    sink = Sink()
    start = time.perf_counter_ns()
    for _ in range(n):
        sink.bytes = 0
        await app(dict(scope), make_receive(), sink)
    elapsed = time.perf_counter_ns() - start
    if sink.status != 200 or sink.bytes != size:
        raise RuntimeError(f"{app!r} answered {sink.status} with {sink.bytes} bytes")
    return elapsed / n / 1000


def compare(apps: dict[str, App], path: str, size: int, n: int, rounds: int) -> dict[str, float]:
    scope = http_scope("GET", path)

    async def run() -> dict[str, list[float]]:
        results: dict[str, list[float]] = {name: [] for name in apps}
        for app in apps.values():
            await time_app(app, scope, size, max(n // 10, 10))
        for _ in range(rounds):
            for name, app in apps.items():
                gc.collect()
                results[name].append(await time_app(app, scope, size, n))
        return results

    return {name: statistics.median(v) for name, v in asyncio.run(run()).items()}


def file_response_app(cls: Any, path: Path) -> App:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await cls(path)(scope, receive, send)

    return app


def main() -> None:
    quick = "--quick" in sys.argv
    rounds = 3 if quick else 7
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sizes = {"small.bin": 1024, "large.bin": 1024 * 1024}
        for name, size in sizes.items():
            (root / name).write_bytes(bytes(range(256)) * (size // 256))
        print(f"# File serving, in-process ({machine()})\n")
        for name, size in sizes.items():
            n = (300 if quick else 2000) if size < 65536 else (30 if quick else 200)
            for kind in ("FileResponse", "static files"):
                if kind == "FileResponse":
                    apps = {
                        "asgikit": file_response_app(FileResponse, root / name),
                        "starlette": file_response_app(StarletteFileResponse, root / name),
                    }
                else:
                    apps = {
                        "asgikit": static_files(root),
                        "starlette": StaticFiles(directory=root),
                    }
                timings = compare(apps, "/" + name, size, n, rounds)
                ratio = timings["starlette"] / timings["asgikit"]
                print(f"### {kind}, {size // 1024} KiB file")
                print("| app | µs/request |\n|---|---:|")
                for app_name, value in timings.items():
                    print(f"| {app_name} | {value:.1f} |")
                print(f"\nStarlette ÷ asgikit: {ratio:.2f} (above 1: asgikit is faster)\n")


if __name__ == "__main__":
    main()
