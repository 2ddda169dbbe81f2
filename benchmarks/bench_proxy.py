"""Requests per second through ``reverse_proxy`` versus nginx, to one upstream.

Every server is a subprocess on loopback: the upstream is a raw ASGI hello
app under uvicorn (one worker); in front of it, in turn, are nothing (the
ceiling), nginx (Debian's package, one worker process, keep-alive to the
upstream), a minimal hand-written asyncio + h11 proxy (the floor for pure
Python) and asgikit's ``reverse_proxy`` under uvicorn (one worker).  The
load comes from ``wrk`` when it is installed, else from a small httpx loop;
each run is time-bounded.  Then one more proxy run under cProfile says
where the proxy's time goes, summed by package.

    apt-get install -y nginx-light wrk      # nginx-light or nginx
    .venv/bin/python benchmarks/bench_proxy.py [--seconds 5] [--connections 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile  # noqa: F401  (the profiled run is ``python -m cProfile``)
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HELLO = b"Hello, world!"


# -- the apps the subprocesses import ---------------------------------------


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The upstream: raw ASGI, a fixed 13-byte answer."""
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
        }
    )
    await send({"type": "http.response.body", "body": HELLO})


def _proxy_app(*, httpx_transport: bool = False) -> Any:
    from asgikit.proxy import reverse_proxy

    upstream = os.environ.get("BENCH_PROXY_UPSTREAM", "http://127.0.0.1:8001")
    if httpx_transport:
        from asgikit._httpx import httpx

        return reverse_proxy(upstream, client=httpx.AsyncClient(trust_env=False))
    return reverse_proxy(upstream)


if os.environ.get("BENCH_PROXY_UPSTREAM"):
    proxy_app = _proxy_app()


# -- the floor: a minimal hand-written asyncio + h11 proxy --------------------
# Not a usable proxy (GET-sized bodies only, no timeouts, no checks): the
# least pure Python can do per request with h11 on both sides, on the same
# event loop as uvicorn, to size what is left to win.  It does the header
# work every proxy does, cheaply: hop-by-hop fields dropped both ways,
# ``Host`` set to the upstream's, and the forwarding headers asgikit sets
# (``X-Forwarded-For`` appended, ``X-Real-IP``, ``X-Forwarded-Proto/Host/Port``,
# ``Forwarded``) written from the connection, the client's own dropped.  It
# keeps its upstream connections alive in a LIFO list, as asgikit does.

_FLOOR_DROP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"transfer-encoding",
        b"upgrade",
        b"trailer",
        b"host",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"x-real-ip",
        b"forwarded",
    }
)


async def _floor_exchange(
    pool: list[Any], upstream: tuple[str, int], request: Any, peer: tuple[str, int], port: int
) -> list[Any]:
    import h11

    if pool:
        reader, writer, conn = pool.pop()
    else:
        reader, writer = await asyncio.open_connection(*upstream)
        conn = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"%s:%d" % (upstream[0].encode(), upstream[1]))]
    client_host = b""
    trail = b""
    for name, value in request.headers:
        if name not in _FLOOR_DROP:
            headers.append((name, value))
        elif name == b"host":
            client_host = value
        elif name == b"x-forwarded-for":
            trail += value + b", "
    ip = peer[0].encode()
    headers += [
        (b"x-forwarded-for", trail + ip),
        (b"x-real-ip", ip),
        (b"x-forwarded-proto", b"http"),
        (b"x-forwarded-host", client_host),
        (b"x-forwarded-port", b"%d" % port),
        (b"forwarded", b"for=%s;host=%s;proto=http" % (ip, client_host)),
    ]
    writer.write(
        conn.send(h11.Request(method=request.method, target=request.target, headers=headers))
    )
    writer.write(conn.send(h11.EndOfMessage()))
    events: list[Any] = []
    while not isinstance(events[-1:] and events[-1], h11.EndOfMessage):
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            headers = [(k, v) for k, v in event.headers if k not in _FLOOR_DROP]
            events.append(h11.Response(status_code=event.status_code, headers=headers))
        else:
            events.append(event)
    if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
        conn.start_next_cycle()
        pool.append((reader, writer, conn))
    else:
        writer.close()
    return events


def _floor_hello() -> list[Any]:
    import h11

    headers = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    return [
        h11.Response(status_code=200, headers=headers),
        h11.Data(data=HELLO),
        h11.EndOfMessage(),
    ]


async def _floor_client(
    reader: Any, writer: Any, pool: list[Any], upstream: tuple[str, int] | None
) -> None:
    """Serve one client connection; with no ``upstream``, answer a hello without one."""
    import h11

    conn = h11.Connection(h11.SERVER)
    peer = writer.get_extra_info("peername")
    port = writer.get_extra_info("sockname")[1]
    # CancelledError: the server stopping under open connections ends them quietly.
    with contextlib.suppress(OSError, h11.ProtocolError, asyncio.CancelledError):
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                if not data:
                    break
                conn.receive_data(data)
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.EndOfMessage):
                if upstream is None:
                    answers = _floor_hello()
                else:
                    answers = await _floor_exchange(pool, upstream, request, peer, port)
                for answer in answers:
                    writer.write(conn.send(answer))
                if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
            else:
                break
    writer.close()


def floor_proxy(port: int, upstream_port: int) -> None:
    """Run the floor proxy on ``port`` until interrupted."""
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    pool: list[Any] = []
    target = ("127.0.0.1", upstream_port)

    async def serve() -> None:
        server = await asyncio.start_server(
            lambda r, w: _floor_client(r, w, pool, target), "127.0.0.1", port
        )
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())


# -- instructions per request under callgrind ---------------------------------
# Each server runs in a child under ``valgrind --tool=callgrind`` that counts
# only inside ``functools.reduce`` (``--toggle-collect``) and writes one count
# each time it leaves it (``--dump-after``).  The child starts its server and
# serves a warm-up uncounted, then serves two counted phases, each one call of
# ``loop.run_until_complete`` inside ``functools.reduce``, that end when the
# parent writes a line to its stdin.  The parent sends ``N`` requests in the
# first phase and ``2N`` in the second, on the same keep-alive connections:
# ``(I(2N) - I(N)) / N`` is one request's cost in that process, with whatever
# a phase costs besides its requests (waking up, ending) cancelled out.

CALLGRIND_SERVERS = {
    "floor": "the minimal asyncio + h11 proxy (floor)",
    "asgikit": "uvicorn + reverse_proxy",
    "asgikit-httpx": "uvicorn + reverse_proxy(client=httpx.AsyncClient()) (httpx's own transport)",
    "floor-hello": "the floor's server half answering itself (its share of the floor)",
    "hello": "uvicorn + a raw ASGI hello (uvicorn's share of asgikit's figure)",
}


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


async def _start_uvicorn(app: Any, port: int) -> None:
    import uvicorn as uvicorn_module

    config = uvicorn_module.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        # Kept-alive connections wait between phases: never time them out.
        timeout_keep_alive=3600,
    )
    config.load()
    server = uvicorn_module.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    await server.on_tick(0)  # the Date header, which its main loop would set (not run here)


def measured_server(kind: str, port: int, upstream_port: int) -> None:
    """The child: start ``kind`` on ``port``, then serve phases that stdin ends."""
    import functools

    loop = _new_loop()
    asyncio.set_event_loop(loop)
    if kind in ("floor", "floor-hello"):
        pool: list[Any] = []
        target = ("127.0.0.1", upstream_port) if kind == "floor" else None

        async def start() -> None:
            await asyncio.start_server(
                lambda r, w: _floor_client(r, w, pool, target), "127.0.0.1", port
            )
    else:
        os.environ["BENCH_PROXY_UPSTREAM"] = f"http://127.0.0.1:{upstream_port}"
        app = upstream_app
        if kind.startswith("asgikit"):
            app = _proxy_app(httpx_transport=kind == "asgikit-httpx")

        async def start() -> None:
            await _start_uvicorn(app, port)

    loop.run_until_complete(start())
    told: list[asyncio.Future[None]] = []

    def on_stdin() -> None:
        os.read(0, 64)
        if told and not told[-1].done():
            told[-1].set_result(None)

    loop.add_reader(0, on_stdin)

    async def until_told() -> None:
        told.append(loop.create_future())
        await told[-1]

    def phase() -> None:
        print("ready", flush=True)
        loop.run_until_complete(until_told())

    phase()  # warm-up, not counted
    for _ in range(2):
        functools.reduce(lambda _a, _b: phase(), [0, 0])
    print("ready", flush=True)


async def _drive(port: int, total: int, connections: int, streams: list[Any]) -> None:
    """Send ``total`` GETs over ``connections`` kept-alive connections, each waiting its answer."""
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: bench\r\n\r\n" % port
    while len(streams) < connections:
        streams.append(await asyncio.open_connection("127.0.0.1", port))
    left = [total]

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while left[0] > 0:
            left[0] -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(f"answered {head!r}")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            if length is None:
                raise RuntimeError(f"no Content-Length in {head!r}")
            body = await reader.readexactly(int(length[1]))
            if body != HELLO:
                raise RuntimeError(f"answered {body!r}")

    await asyncio.gather(*(one(r, w) for r, w in streams))


def callgrind_per_request(
    kind: str, n: int, connections: int, upstream_port: int, *, warm_up: int = 200
) -> float:
    """Instructions per request in the process serving ``kind``, under callgrind."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        command = [
            "valgrind",
            "--tool=callgrind",
            *os.environ.get("BENCH_PROXY_VALGRIND_ARGS", "").split(),  # e.g. --cache-sim=yes
            "--collect-atstart=no",
            "--toggle-collect=functools_reduce",
            "--dump-after=functools_reduce",
            f"--callgrind-out-file={out}",
            sys.executable,
            os.path.abspath(__file__),
            "--measured-server",
            kind,
            str(port),
            str(upstream_port),
        ]
        env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", "PYTHONHASHSEED": "0"}
        child = subprocess.Popen(
            command,
            env=env,
            cwd=HERE,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert child.stdin is not None
        assert child.stdout is not None
        loop = asyncio.new_event_loop()
        streams: list[Any] = []
        failure: BaseException | None = None
        try:
            for total in (warm_up, n, 2 * n):
                line = child.stdout.readline()
                if line != b"ready\n":
                    raise RuntimeError(f"{kind}: child said {line!r}")
                loop.run_until_complete(_drive(port, total, connections, streams))
                child.stdin.write(b"next\n")
                child.stdin.flush()
            if child.stdout.readline() != b"ready\n":
                raise RuntimeError(f"{kind}: the child did not finish its phases")
        except (OSError, RuntimeError, asyncio.IncompleteReadError) as exc:
            failure = exc
        finally:
            for _, writer in streams:
                writer.close()
            loop.close()
            child.send_signal(signal.SIGINT)
            try:
                _, stderr = child.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
                _, stderr = child.communicate()
        if failure is not None:
            tail = stderr.decode(errors="replace")[-3000:]
            raise RuntimeError(f"{kind} failed under load: {failure!r}\n{tail}") from failure
        counts = []
        for number in (1, 2):
            path = f"{out}.{number}"
            if not os.path.exists(path):
                raise RuntimeError(f"{kind}: no dump {number}\n{stderr.decode()[-2000:]}")
            with open(path) as file:
                found = re.search(r"^totals: (\d+)", file.read(), re.MULTILINE)
            assert found, path
            counts.append(int(found[1]))
        if os.path.exists(f"{out}.3"):
            raise RuntimeError(f"{kind}: functools.reduce was called inside a phase")
        keep = os.environ.get("BENCH_PROXY_KEEP_DUMPS")  # a directory, for callgrind_annotate
        if keep:
            for number in (1, 2):
                shutil.copy(f"{out}.{number}", os.path.join(keep, f"callgrind.{kind}.{number}"))
    return (counts[1] - counts[0]) / n


def callgrind_main(kinds: list[str], n: int, connections: int) -> None:
    up_port = free_port()
    print(
        f"instructions per request in the serving process, callgrind, {n} and {2 * n} "
        f"requests over {connections} kept-alive connections",
        file=sys.stderr,
    )
    results: dict[str, float] = {}
    # Under valgrind a phase takes long: the upstream keeps its connections
    # (the floor has no check for a connection closed while idle).
    upstream = [*uvicorn("bench_proxy:upstream_app", up_port), "--timeout-keep-alive", "3600"]
    with running(upstream, up_port):
        for kind in kinds:
            results[kind] = callgrind_per_request(kind, n, connections, up_port)
            print(f"  {kind}: {results[kind]:,.0f}", file=sys.stderr, flush=True)
    print()
    print("| server | instructions/request |")
    print("|---|---:|")
    for kind, value in results.items():
        print(f"| {CALLGRIND_SERVERS[kind]} | {value:,.0f} |")
    if {"asgikit", "floor"} <= results.keys():
        print(f"\nasgikit / floor, whole process: {results['asgikit'] / results['floor']:.2f}")
    if {"asgikit", "floor", "hello", "floor-hello"} <= results.keys():
        own = results["asgikit"] - results["hello"]
        floor_own = results["floor"] - results["floor-hello"]
        print(
            f"proxy's own work (minus its server's hello): asgikit {own:,.0f}, "
            f"floor {floor_own:,.0f}, ratio {own / floor_own:.2f}"
        )


# -- process plumbing --------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def running(
    command: list[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}", **(env or {})}
    process = subprocess.Popen(command, env=full_env, cwd=HERE)
    try:
        wait_for(port, process)
        yield process
    finally:
        process.send_signal(signal.SIGINT)  # uvicorn and cProfile both finish cleanly on it
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def uvicorn(target: str, port: int, *, prefix: list[str] | None = None) -> list[str]:
    return [
        *(prefix or [sys.executable]),
        "-m",
        "uvicorn",
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--log-level",
        "warning",
        "--no-access-log",
    ]


NGINX_CONF = """
worker_processes 1;
daemon off;
error_log {tmp}/error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream backend {{
        server 127.0.0.1:{upstream};
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $proxy_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"""


def nginx_command(tmp: str, upstream: int, port: int) -> list[str]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as file:
        user = "user root;\n" if os.geteuid() == 0 else ""
        file.write(user + NGINX_CONF.format(tmp=tmp, upstream=upstream, port=port))
    return [nginx, "-p", tmp, "-c", conf, "-e", os.path.join(tmp, "error.log")]


# -- load --------------------------------------------------------------------


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds ``pid`` has used so far (Linux), else None."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            fields = file.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(
    url: str, seconds: float, connections: int, process: subprocess.Popen[bytes]
) -> tuple[float, float | None]:
    """Requests per second at ``url``, and the CPU µs per request ``process`` spent on them.

    CPU per request moves much less than requests per second when other
    work shares the machine: the cross-check of the two proxies' costs.
    """
    before = cpu_seconds(process.pid)
    rate = load(url, seconds, connections)
    after = cpu_seconds(process.pid)
    if before is None or after is None or not rate:
        return rate, None
    return rate, (after - before) / (rate * seconds) * 1e6


def load(url: str, seconds: float, connections: int) -> float:
    """Requests per second at ``url``, after a one-second warm-up."""
    wrk = shutil.which("wrk")
    if wrk:
        subprocess.run([wrk, "-t1", f"-c{connections}", "-d1s", url], capture_output=True)
        out = subprocess.run(
            [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", url],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        if errors:
            raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{out}")
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert match, out
        return float(match.group(1))
    asyncio.run(_httpx_load(url, 1.0, connections))
    return asyncio.run(_httpx_load(url, seconds, connections))


async def _httpx_load(url: str, seconds: float, connections: int) -> float:
    import httpx

    done = 0
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(limits=limits) as client:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < deadline:
                response = await client.get(url)
                assert response.status_code == 200
                done += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        return done / (time.perf_counter() - start)


def check(url: str) -> None:
    import httpx

    response = httpx.get(url)
    if response.status_code != 200 or response.content != HELLO:
        raise RuntimeError(f"{url} answered {response.status_code} {response.content!r}")


# -- where the time goes -----------------------------------------------------


def in_process(upstream: str, n: int = 1000, rounds: int = 5) -> dict[str, float]:
    """CPU µs per sequential request: a bare httpx GET versus the proxy app called directly."""

    import httpx

    from asgikit.proxy import reverse_proxy

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench.local"), (b"user-agent", b"bench")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }

    async def run() -> dict[str, float]:
        proxy: Any = reverse_proxy(upstream)
        request = {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            pass

        async def via_proxy() -> None:
            messages = [request]

            async def receive() -> dict[str, Any]:
                if messages:
                    return messages.pop()
                await asyncio.Event().wait()  # a client that stays until cancelled
                raise AssertionError

            await proxy(dict(scope), receive, send)

        results: dict[str, list[float]] = {"httpx": [], "proxy": []}
        async with httpx.AsyncClient() as client:

            async def bare() -> None:
                await client.get(upstream + "/")

            steps = {"httpx": bare, "proxy": via_proxy}
            for step in steps.values():
                for _ in range(100):
                    await step()
            for _ in range(rounds):
                for name, step in steps.items():
                    start = time.process_time()
                    for _ in range(n):
                        await step()
                    results[name].append((time.process_time() - start) / n * 1e6)
        await proxy.aclose()
        return {name: statistics.median(values) for name, values in results.items()}

    return asyncio.run(run())


_PACKAGES = ("asgikit", "httpx", "httpcore", "h11", "anyio", "uvicorn", "httptools", "uvloop")


def by_package(profile: str) -> list[tuple[str, float]]:
    stats = pstats.Stats(profile)
    totals: dict[str, float] = {}
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        parts = re.split(r"[\\/]", filename)
        group = next((p for p in _PACKAGES if p in parts), None)
        if group is None:
            group = "asyncio" if "asyncio" in parts else "other (stdlib, builtins)"
        totals[group] = totals.get(group, 0.0) + tottime
    whole = sum(totals.values()) or 1.0
    return sorted(((name, t / whole) for name, t in totals.items()), key=lambda x: -x[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best of)")
    parser.add_argument(
        "--callgrind",
        metavar="SERVERS",
        nargs="?",
        const=",".join(CALLGRIND_SERVERS),
        help="instead: instructions per request in each serving process, under callgrind "
        f"(comma-separated, from {', '.join(CALLGRIND_SERVERS)}; default all)",
    )
    parser.add_argument("--n", type=int, default=400, help="requests in the shorter counted phase")
    args = parser.parse_args()
    seconds, connections = args.seconds, args.connections
    if args.callgrind:
        callgrind_main(args.callgrind.split(","), args.n, connections)
        return

    up_port, nginx_port, proxy_port = free_port(), free_port(), free_port()
    upstream = f"http://127.0.0.1:{up_port}"
    env = {"BENCH_PROXY_UPSTREAM": upstream}
    results: dict[str, float] = {}
    tool = "wrk" if shutil.which("wrk") else "httpx loop"
    print(
        f"load: {tool}, {connections} connections, {seconds:g} s per run; {args.rounds} runs each"
    )
    with (
        tempfile.TemporaryDirectory() as tmp,
        running(uvicorn("bench_proxy:upstream_app", up_port), up_port),
    ):
        for name in ("direct", "nginx", "floor", "asgikit"):
            results[name] = 0.0
        cpu: dict[str, list[float]] = {"floor": [], "asgikit": []}
        for _ in range(args.rounds):  # interleaved, best of the rounds
            check(f"{upstream}/")
            results["direct"] = max(results["direct"], load(f"{upstream}/", seconds, connections))
            if shutil.which("nginx") or os.path.exists("/usr/sbin/nginx"):
                with running(nginx_command(tmp, up_port, nginx_port), nginx_port):
                    check(f"http://127.0.0.1:{nginx_port}/")
                    rate = load(f"http://127.0.0.1:{nginx_port}/", seconds, connections)
                    results["nginx"] = max(results["nginx"], rate)
            floor = [sys.executable, os.path.join(HERE, "bench_proxy.py"), "--floor"]
            floor += [str(proxy_port), str(up_port)]
            proxy = uvicorn("bench_proxy:proxy_app", proxy_port)
            for name, command, extra in (("floor", floor, None), ("asgikit", proxy, env)):
                with running(command, proxy_port, extra) as process:
                    url = f"http://127.0.0.1:{proxy_port}/"
                    check(url)
                    rate, per_request = measured_load(url, seconds, connections, process)
                    results[name] = max(results[name], rate)
                    if per_request is not None:
                        cpu[name].append(per_request)

        print()
        print("| path | requests/s | ÷ nginx | ÷ floor | proxy CPU µs/request (median) |")
        print("|---|---:|---:|---:|---:|")
        labels = {
            "direct": "client → upstream (no proxy)",
            "nginx": "client → nginx → upstream",
            "floor": "client → minimal asyncio + h11 proxy (floor) → upstream",
            "asgikit": "client → uvicorn + reverse_proxy → upstream",
        }
        for name, rate in results.items():
            ratio = f"{rate / results['nginx']:.2f}" if results.get("nginx") else "-"
            to_floor = f"{rate / results['floor']:.2f}" if results.get("floor") else "-"
            spent = f"{statistics.median(cpu[name]):.0f}" if cpu.get(name) else "-"
            print(f"| {labels[name]} | {rate:,.0f} | {ratio} | {to_floor} | {spent} |")

        sequential = in_process(upstream)
        print()
        print(
            f"In process, sequential, CPU per request: bare httpx.AsyncClient GET "
            f"{sequential['httpx']:.0f} µs, reverse_proxy app {sequential['proxy']:.0f} µs "
            f"({sequential['proxy'] / sequential['httpx'] - 1:+.0%})."
        )
        if args.no_profile:
            return
        profile = os.path.join(tmp, "proxy.prof")
        prefix = [sys.executable, "-m", "cProfile", "-o", profile]
        with running(uvicorn("bench_proxy:proxy_app", proxy_port, prefix=prefix), proxy_port, env):
            load(f"http://127.0.0.1:{proxy_port}/", seconds, connections)
        print()
        print("Proxy process under cProfile, own time by package:")
        print()
        print("| package | share of CPU time |")
        print("|---|---:|")
        for name, share in by_package(profile):
            if share >= 0.005:
                print(f"| {name} | {share:.0%} |")
        print()
        stats = pstats.Stats(profile)
        stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--floor"]:
        floor_proxy(int(sys.argv[2]), int(sys.argv[3]))
    elif sys.argv[1:2] == ["--measured-server"]:
        measured_server(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
