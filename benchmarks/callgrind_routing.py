"""Instructions per request for routing and ``http_middleware``, with callgrind.

Each scenario runs in its own process under ``valgrind --tool=callgrind``
twice, for N and for 2N requests in-process on one asyncio loop;
instructions per request are ``(I(2N) - I(N)) / N``, so start-up, imports
and the app's building cancel out.  The count repeats to a few hundredths
of a percent on any machine, busy or not (wall-clock does not).

    python benchmarks/callgrind_routing.py                 # every scenario
    python benchmarks/callgrind_routing.py miss raw404     # some of them
    python benchmarks/callgrind_routing.py --n 500

Ratios printed at the end are the issue's targets: a 404 miss in a 20-route
table against a raw ASGI 404; a route two mounts deep against the same
route at top level; a header-adding ``http_middleware`` against the same
layer written with ``wrap_send`` and against Starlette's
``BaseHTTPMiddleware`` (extra cost over the bare endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from _harness import Sink, make_receive  # noqa: E402

# The tree measured: this checkout, or another one (``--root``, a baseline).
ROOT = os.path.dirname(HERE)

App = Callable[..., Any]


def _scope(path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench.local"), *(headers or [])],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


# --- the apps -------------------------------------------------------------


async def raw404(scope: dict[str, Any], receive: App, send: App) -> None:
    body = b"Not Found"
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _table() -> App:
    from asgikit import PlainTextResponse, route, router

    async def endpoint(request: Any) -> Any:
        return PlainTextResponse("x")

    routes = []
    for i in range(10):
        routes.append(route(f"/static{i}/page", endpoint, name=f"s{i}"))
        routes.append(route(f"/items{i}/{{id:int}}", endpoint, name=f"p{i}"))
    return router(*routes)


def _hello_routes() -> list[Any]:
    from asgikit import PlainTextResponse, route

    async def hello(request: Any) -> Any:
        return PlainTextResponse("Hello, world!")

    async def user(request: Any) -> Any:
        return PlainTextResponse("user")

    return [route("/hello", hello), route("/users/{id:int}", user)]


def _top() -> App:
    from asgikit import router

    return router(*_hello_routes())


def _nested() -> App:
    from asgikit import mount, router

    return router(mount("/a", router(mount("/b", router(*_hello_routes())))))


def _json_app() -> App:
    from asgikit import JSONResponse, route, router

    async def endpoint(request: Any) -> Any:
        return JSONResponse({"hello": "world"})

    return router(route("/json", endpoint))


def _mw_wrap_send() -> App:
    from asgikit._send import wrap_send

    inner = _json_app()

    async def layer(scope: dict[str, Any], receive: App, send: App) -> None:
        if scope["type"] != "http":
            await inner(scope, receive, send)
            return

        async def on_start(message: dict[str, Any]) -> None:
            headers = list(message.get("headers", ()))
            headers.append((b"x-layer", b"1"))
            await send({**message, "headers": headers})

        await inner(scope, receive, wrap_send(send, {"http.response.start": on_start}))

    return layer


def _mw_http() -> App:
    from asgikit import http_middleware

    async def add_header(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Layer"] = "1"
        return response

    return http_middleware(add_header, _json_app())


def _mw_starlette() -> App:
    from starlette.middleware.base import BaseHTTPMiddleware

    async def add_header(request: Any, call_next: Any) -> Any:
        response = await call_next(request)
        response.headers["X-Layer"] = "1"
        return response

    return BaseHTTPMiddleware(_json_app(), dispatch=add_header)


SCENARIOS: dict[str, tuple[Callable[[], App], str]] = {
    "raw404": (lambda: raw404, "/nope"),
    "miss": (_table, "/nope"),
    "miss_deep": (_table, "/static3/nope/deeper"),
    "top": (_top, "/hello"),
    "nested": (_nested, "/a/b/hello"),
    "top_param": (_top, "/users/7"),
    "nested_param": (_nested, "/a/b/users/7"),
    "json": (_json_app, "/json"),
    "mw_wrap_send": (_mw_wrap_send, "/json"),
    "mw_http": (_mw_http, "/json"),
    "mw_starlette": (_mw_starlette, "/json"),
}


def run_scenario(name: str, n: int) -> None:
    """Serve ``n`` requests to the scenario's app (the process callgrind counts)."""
    factory, path = SCENARIOS[name]
    app = factory()
    template = _scope(path)
    sink = Sink()  # the harness bench_core uses, so figures compare with its

    async def main() -> None:
        for _ in range(n):
            await app(dict(template), make_receive(b""), sink)

    asyncio.run(main())
    assert sink.status in (200, 404), (name, sink.status)


def _instructions(name: str, n: int, root: str) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "cg.out")
        env = {**os.environ, "PYTHONPATH": root, "PYTHONHASHSEED": "0"}
        done = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                os.path.abspath(__file__),
                "--run",
                name,
                "--n",
                str(n),
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found, done.stderr[-2000:]
        return int(found.group(1))


def per_request(name: str, n: int, root: str = ROOT) -> float:
    """Instructions per request: the difference between 2n and n requests, over n."""
    return (_instructions(name, 2 * n, root) - _instructions(name, n, root)) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenarios", nargs="*", default=list(SCENARIOS))
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--root", default=ROOT, help="the checkout whose asgikit is measured")
    parser.add_argument("--run", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        run_scenario(args.run, args.n)
        return
    results: dict[str, float] = {}
    for name in args.scenarios:
        results[name] = per_request(name, args.n, args.root)
        print(f"{name:14} {results[name] / 1000:9.1f}k instructions/request", flush=True)

    def ratio(label: str, a: str, b: str, base: str | None = None) -> None:
        if a in results and b in results and (base is None or base in results):
            extra = results[base] if base else 0.0
            value = (results[a] - extra) / (results[b] - extra)
            print(f"{label:44} {value:6.2f}x")

    print()
    ratio("404 miss / raw 404 (target <= 1.5)", "miss", "raw404")
    ratio("deep 404 miss / raw 404", "miss_deep", "raw404")
    ratio("two mounts deep / top level (target <= 1.25)", "nested", "top")
    ratio("two mounts deep / top level, a parameter", "nested_param", "top_param")
    ratio("http_middleware / wrap_send extra (<= 3)", "mw_http", "mw_wrap_send", "json")
    ratio("Starlette / http_middleware extra (>= 3)", "mw_starlette", "mw_http", "json")


if __name__ == "__main__":
    main()
