"""Under uvicorn: raw ASGI vs asgikit vs Starlette, load from ``wrk``.

Each app runs in its own uvicorn (httptools + uvloop, one process, no access
log) pinned to CPU 0 with ``taskset``; ``wrk`` runs pinned to CPU 1, so the
server and the load generator never share a core.  Every run is bounded
(``--duration`` seconds, after a short warm-up per server) and the frameworks
alternate A B C A B C, so drift hits all alike; the median run is reported:
requests per second, the p99 latency ``wrk --latency`` measured, and the
server's CPU time per request (user + system, all its threads, from
``/proc``): on a shared machine that one moves far less than requests/s.

Files have two floors: ``raw`` reads the file whole on the event loop,
``raw-thread`` in one worker-thread hop (what an app that must not block
the loop does); ``asgikit-on-loop`` opts in to ``read_on_loop``.  Only the
file scenarios run those two.  ``--before
TREE`` adds ``before``, asgikit served from another checkout (``/work/main``,
say), in the same alternation; ``--only`` and ``--apps`` pick scenarios
(by a word of their title) and apps.

Needs Debian's ``wrk`` and ``taskset`` (util-linux) and at least two CPUs::

    .venv/bin/python benchmarks/bench_uvicorn.py [--duration 5] [--rounds 3] [--connections 64]
        [--only file] [--apps raw,raw-thread,asgikit] [--before /other/checkout]
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
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
APPS = {
    "raw": "raw_app",
    "raw-thread": "raw_thread_app",
    "asgikit": "asgikit_app",
    "asgikit-on-loop": "asgikit_on_loop_app",
    "starlette": "starlette_app",
}
# The apps that only the file scenarios run.
FILE_ONLY = {"raw-thread", "asgikit-on-loop"}
# The layered scenario's apps: each app name served by an app of its own.
LAYERED_APPS = {
    "raw": "raw_layered_app",
    "asgikit": "asgikit_layered_app",
    "starlette": "starlette_layered_app",
}
# (title, path, apps of its own or None for APPS, request headers for wrk).
SCENARIOS: list[tuple[str, str, dict[str, str] | None, tuple[str, ...]]] = [
    ("hello text", "/", None, ()),
    ("JSON, int path parameter, 20 routes", "/users/123", None, ()),
    ("1 KiB file", "/files/1k.bin", None, ()),
    ("1 MiB file", "/files/1m.bin", None, ()),
    ("1 KiB static file", "/static/1k.bin", None, ()),
    ("1 MiB static file", "/static/1m.bin", None, ()),
    (
        "JSON behind CORS + compress + a header layer (small: not compressed)",
        "/mw/small",
        LAYERED_APPS,
        ("Origin: https://example.com", "Accept-Encoding: gzip"),
    ),
]
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class Server(NamedTuple):
    """A running uvicorn: its URL and process id."""

    url: str
    pid: int


class Run(NamedTuple):
    """One wrk run: requests/s, p99 latency, server CPU microseconds per request."""

    rps: float
    p99_ms: float
    cpu_us: float


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and all its threads (0 without /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


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
def uvicorn(app: str, tree: Path = ROOT) -> Iterator[Server]:
    """Serve ``_server_apps:<app>`` (asgikit from ``tree``) under uvicorn on CPU 0."""
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
    env = {**os.environ, "PYTHONPATH": str(tree)}
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
        yield Server(f"http://127.0.0.1:{port}", process.pid)
    finally:
        process.terminate()
        process.wait(10)


def _latency_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"unexpected latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    server: Server, path: str, *, duration: float, connections: int, headers: tuple[str, ...] = ()
) -> Run:
    """One bounded wrk run against ``server``."""
    command = [
        *pin(1),
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--latency",
        *[part for header in headers for part in ("-H", header)],
        server.url + path,
    ]
    cpu = cpu_seconds(server.pid)
    output = subprocess.run(
        command, capture_output=True, text=True, check=True, timeout=duration + 30
    ).stdout
    cpu = cpu_seconds(server.pid) - cpu
    count = re.search(r"(\d+) requests in", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE)
    if rps is None or p99 is None or count is None:
        raise RuntimeError("could not read wrk's output:\n" + output)
    if re.search(r"Non-2xx or 3xx responses", output):
        raise RuntimeError("errors in the responses:\n" + output)
    return Run(float(rps.group(1)), _latency_ms(p99.group(1)), 1e6 * cpu / int(count.group(1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--json", help="also write the medians to this file")
    parser.add_argument("--only", help="only the scenarios whose title has this word")
    parser.add_argument("--apps", help="comma-separated apps (default: all)")
    parser.add_argument("--before", type=Path, help="also serve asgikit from this checkout")
    args = parser.parse_args()
    names = args.apps.split(",") if args.apps else list(APPS)
    apps: dict[str, tuple[str, Path]] = {name: (APPS[name], ROOT) for name in names}
    if args.before is not None:
        apps["before"] = ("asgikit_app", args.before.resolve())
    scenarios = [s for s in SCENARIOS if args.only is None or args.only in s[0]]
    results: dict[str, dict[str, dict[str, float]]] = {}
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install -y wrk): skipped")
        return
    print(
        f"uvicorn --http httptools --loop uvloop, one process on CPU 0; "
        f"wrk -t1 -c{args.connections} -d{args.duration:g}s on CPU 1; "
        f"{args.rounds} rounds alternated, median shown.\n"
    )
    with ExitStack() as stack:
        started: dict[tuple[str, Path], Server] = {}  # each (app, tree) served once

        def server_for(app: str, tree: Path) -> Server:
            if (app, tree) not in started:
                started[app, tree] = stack.enter_context(uvicorn(app, tree))
            return started[app, tree]

        for title, path, own, headers in scenarios:
            if own is None:
                here = {
                    n: spec
                    for n, spec in apps.items()
                    if n not in FILE_ONLY or path.startswith(("/files/", "/static/"))
                }
            else:
                here = {
                    n: (own["asgikit" if n == "before" else n], tree)
                    for n, (_, tree) in apps.items()
                    if n in own or n == "before"
                }
            servers = {name: server_for(*spec) for name, spec in here.items()}
            runs: dict[str, list[Run]] = {name: [] for name in here}
            for name in here:  # warm-up: imports, caches, JIT-free but still
                wrk(servers[name], path, duration=1, connections=args.connections, headers=headers)
            for _ in range(args.rounds):
                for name in here:
                    runs[name].append(
                        wrk(
                            servers[name],
                            path,
                            duration=args.duration,
                            connections=args.connections,
                            headers=headers,
                        )
                    )
            results[title] = {
                name: {
                    "rps": statistics.median(r.rps for r in values),
                    "p99_ms": statistics.median(r.p99_ms for r in values),
                    "cpu_us": statistics.median(r.cpu_us for r in values),
                }
                for name, values in runs.items()
            }
            print(table(title, runs))
            print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


def table(title: str, runs: dict[str, list[Run]]) -> str:
    """A markdown table; each ratio is the median of the rounds' own ratios (same round)."""
    floors = [name for name in ("raw", "raw-thread", "starlette") if name in runs]

    def median(name: str, field: str) -> float:
        return statistics.median(getattr(r, field) for r in runs[name])

    def ratio(name: str, floor: str, field: str = "rps") -> float:
        pairs = zip(runs[name], runs[floor], strict=True)
        return statistics.median(getattr(a, field) / getattr(b, field) for a, b in pairs)

    heads = {"raw": "% of raw", "raw-thread": "% of raw-thread", "starlette": "x Starlette"}
    lines = [
        f"### {title} (under uvicorn)",
        "",
        "| app | requests/s | "
        + "".join(heads[f] + " | " for f in floors)
        + "p99 ms | server CPU µs/request | CPU ÷ raw | all runs (req/s) |",
        "|---|---:|" + "---:|" * len(floors) + "---:|---:|---:|---|",
    ]
    for name in runs:
        every = ", ".join(f"{r.rps:.0f}" for r in runs[name])
        label = f"**{name}**" if name == "asgikit" else name
        cells = "".join(
            f"{ratio(name, f):.2f} | " if f == "starlette" else f"{100 * ratio(name, f):.1f} % | "
            for f in floors
        )
        cpu = median(name, "cpu_us")
        cpu_ratio = f"{ratio(name, 'raw', 'cpu_us'):.2f}" if "raw" in runs and cpu else ""
        lines.append(
            f"| {label} | {median(name, 'rps'):.0f} | {cells}{median(name, 'p99_ms'):.2f} "
            f"| {cpu:.0f} | {cpu_ratio} | {every} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
