"""Under uvicorn: raw ASGI vs asgikit vs Starlette, load from ``wrk``.

Each app runs in its own uvicorn (httptools + uvloop, one process, no access
log) pinned to CPU 0 with ``taskset``; ``wrk`` runs pinned to CPU 1, so the
server and the load generator never share a core.  Every run is bounded
(``--duration`` seconds, after a short warm-up per server) and the frameworks
alternate A B C A B C, so drift hits all alike; the median run is reported:
requests per second and the p99 latency ``wrk --latency`` measured.

Needs Debian's ``wrk`` and ``taskset`` (util-linux) and at least two CPUs::

    .venv/bin/python benchmarks/bench_uvicorn.py [--duration 5] [--rounds 3] [--connections 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = {"raw": "raw_app", "asgikit": "asgikit_app", "starlette": "starlette_app"}
SCENARIOS = [
    ("hello text", "/"),
    ("JSON, int path parameter, 20 routes", "/users/123"),
    ("1 KiB file", "/files/1k.bin"),
    ("1 MiB file", "/files/1m.bin"),
]
# Scenarios served by apps of their own, with the request headers they need:
# (title, path, {name: app in _server_apps}, headers).
LAYERED_APPS = {
    "raw": "raw_layered_app",
    "asgikit": "asgikit_layered_app",
    "starlette": "starlette_layered_app",
}
OWN_APPS_SCENARIOS = [
    (
        "JSON behind CORS + compress + a header layer (small: not compressed)",
        "/mw/small",
        LAYERED_APPS,
        ("Origin: https://example.com", "Accept-Encoding: gzip"),
    ),
]
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pin(cpu: int) -> list[str]:
    """``taskset -c CPU`` when there are CPUs to spare, else nothing."""
    if shutil.which("taskset") and (os.cpu_count() or 1) >= 2:
        return ["taskset", "-c", str(cpu)]
    return []


@contextmanager
def uvicorn(app: str) -> Iterator[str]:
    """Serve ``_server_apps:<app>`` under uvicorn pinned to CPU 0; yield its URL."""
    port = free_port()
    command = [
        *pin(0),
        sys.executable,
        "-m",
        "uvicorn",
        f"_server_apps:{app}",
        "--app-dir",
        str(HERE),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--http",
        "httptools",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(command, env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn for {app} did not start") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str, *, duration: float, connections: int, headers: tuple[str, ...] = ()
) -> tuple[float, float]:
    """One bounded wrk run: ``(requests per second, p99 latency in ms)``."""
    command = [
        *pin(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        *[part for header in headers for part in ("-H", header)],
        url,
    ]
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p99 is None:
        raise RuntimeError("could not read wrk's output:\n" + output)
    if re.search(r"Non-2xx or 3xx responses", output):
        raise RuntimeError("errors in the responses:\n" + output)
    return float(rps.group(1)), _latency_ms(p99.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument("--only", help="run only the scenarios whose title contains this")
    args = parser.parse_args()
    results: dict[str, dict[str, dict[str, float]]] = {}
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk): skipped")
        return
    print(
        f"uvicorn --http httptools --loop uvloop, one process on CPU 0; "
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s on CPU 1; "
        f"{args.rounds} rounds alternated, median shown.\n"
    )
    scenarios = [(title, path, APPS, ()) for title, path in SCENARIOS] + OWN_APPS_SCENARIOS
    if args.only:
        scenarios = [s for s in scenarios if args.only in s[0]]
    with ExitStack() as stack:
        servers: dict[str, str] = {}  # app name in _server_apps -> its URL, started once
        for title, path, apps, headers in scenarios:
            for app in apps.values():
                if app not in servers:
                    servers[app] = stack.enter_context(uvicorn(app))
            urls = {name: servers[app] for name, app in apps.items()}
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in apps}
            for name in apps:  # warm-up: imports, caches, JIT-free but still
                wrk(urls[name] + path, duration=1, connections=args.connections, headers=headers)
            for _ in range(args.rounds):
                for name in apps:
                    runs[name].append(
                        wrk(
                            urls[name] + path,
                            duration=args.duration,
                            connections=args.connections,
                            headers=headers,
                        )
                    )
            results[title] = {
                name: {
                    "rps": statistics.median(r for r, _ in values),
                    "p99_ms": statistics.median(p for _, p in values),
                }
                for name, values in runs.items()
            }
            print(table(title, runs))
            print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def table(title: str, runs: dict[str, list[tuple[float, float]]]) -> str:
    rps = {name: statistics.median(r for r, _ in values) for name, values in runs.items()}
    p99 = {name: statistics.median(p for _, p in values) for name, values in runs.items()}
    lines = [
        f"### {title} (under uvicorn)",
        "",
        "| app | requests/s | % of raw | x Starlette | p99 ms | all runs (req/s) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name in runs:
        every = ", ".join(f"{r:.0f}" for r, _ in runs[name])
        label = f"**{name}**" if name == "asgikit" else name
        lines.append(
            f"| {label} | {rps[name]:.0f} | {100 * rps[name] / rps['raw']:.1f} % "
            f"| {rps[name] / rps['starlette']:.2f} | {p99[name]:.2f} | {every} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
