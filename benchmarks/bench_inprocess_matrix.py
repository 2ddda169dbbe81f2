"""In-process matrix: asgikit vs raw ASGI vs Starlette vs BlackSheep, same run.

Every framework is driven as a plain ASGI callable on one event loop by
``_harness.compare``: same scope, same ``receive``, a ``send`` that only
counts bytes; rounds interleave the frameworks and the median round counts.
BlackSheep's ``Application`` is started (``await app.start()``) on that loop
first.  Before timing, each app's answer is checked once, so every framework
does the same work (status, body, and the headers that matter).

Scenarios (issue 7):

1. hello text;
2. JSON with an ``int`` path parameter in a table of 20 routes;
3. that JSON behind CORS + compression + a trivial header middleware — once
   small (below every framework's 500-byte compression threshold: the layers'
   overhead) and once ~2 KB (gzip level 6 everywhere: mostly zlib);
4. a ~1 KB JSON echo;
5. a 20-field urlencoded form;
6. a 1 MiB file from disk (64 KiB chunks).

The raw app is hand-written ASGI: the floor for pure Python.  Run::

    .venv/bin/python benchmarks/bench_inprocess_matrix.py [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import anyio.to_thread
from _harness import call_once, compare, header_layer, http_scope, machine, ratio_table

# BlackSheep resolves handler annotations in this module's globals.
from blacksheep import Request as BRequest
from blacksheep import Response as BResponse

from asgikit import JSONResponse, PlainTextResponse, Request, route, router

FILE_SIZE = 1024 * 1024
CHUNK = 64 * 1024
DIRECTORY = Path(tempfile.mkdtemp(prefix="asgikit-bench-"))
FILE_PATH = DIRECTORY / "one-mib.bin"
FILE_PATH.write_bytes(os.urandom(FILE_SIZE))

ORIGIN = "https://example.com"
FILLER = [f"/section{i}/{{item:int}}" for i in range(18)]  # + /users + / = 20 routes
BIG = {"items": [{"id": i, "name": f"item number {i}", "ok": True} for i in range(40)]}


def small_json(user_id: int) -> dict[str, Any]:
    return {"id": user_id, "name": "user"}


def dumps(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


# --- raw ASGI: the floor -------------------------------------------------------------

HELLO_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]


async def _send_json(send: Any, body: bytes, extra: list[tuple[bytes, bytes]] = []) -> None:  # noqa: B006
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _read_file() -> bytes:
    with open(FILE_PATH, "rb") as file:
        return file.read()


async def raw_app(scope: Any, receive: Any, send: Any) -> None:
    path = scope["path"]
    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": HELLO_HEADERS})
        await send({"type": "http.response.body", "body": b"Hello, world!"})
    elif path.startswith("/users/") and path[7:].isdigit():
        await _send_json(send, dumps(small_json(int(path[7:]))))
    elif path.startswith("/mw/"):
        # What CORS + compression + the header layer add, written inline.
        big = path == "/mw/big"
        body = dumps(BIG) if big else dumps(small_json(7))
        origin = next((v for k, v in scope["headers"] if k == b"origin"), None)
        extra = [(b"vary", b"Accept-Encoding, Origin"), (b"x-layer", b"1")]
        if origin == ORIGIN.encode():
            extra.append((b"access-control-allow-origin", origin))
        if big:
            body = gzip.compress(body, 6)
            extra.append((b"content-encoding", b"gzip"))
        await _send_json(send, body, extra)
    elif path == "/echo":
        await _send_json(send, dumps(json.loads(await _read_body(receive))))
    elif path == "/form":
        fields = parse_qsl((await _read_body(receive)).decode(), keep_blank_values=True)
        body = str(len(fields)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
    elif path == "/file":
        data = await anyio.to_thread.run_sync(_read_file)
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            chunk = bytes(view[start : start + CHUNK])
            more = start + CHUNK < len(data)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
    else:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})


# --- asgikit -------------------------------------------------------------------------


def asgikit_apps() -> tuple[Any, Any]:
    """(the plain app, the app behind the middleware layers)."""
    from asgikit.files import FileResponse

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("Hello, world!")

    async def user(request: Request) -> JSONResponse:
        return JSONResponse(small_json(request.path_params["id"]))

    async def small(request: Request) -> JSONResponse:
        return JSONResponse(small_json(7))

    async def big(request: Request) -> JSONResponse:
        return JSONResponse(BIG)

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    async def form(request: Request) -> PlainTextResponse:
        data = await request.form()
        return PlainTextResponse(str(len(data.multi_items())))

    async def file(request: Request) -> FileResponse:
        return FileResponse(FILE_PATH)

    async def other(request: Request) -> PlainTextResponse:
        return PlainTextResponse("other")

    layered: Any = router(route("/mw/small", small), route("/mw/big", big))
    try:
        from asgikit.middleware.compress import compress
        from asgikit.middleware.cors import cors

        layered = cors(compress(header_layer(layered)), allow_origins=[ORIGIN])
    except ImportError:
        print("(asgikit cors/compress not importable: the middleware row is header-only)")
        layered = header_layer(layered)
    return router(
        route("/", hello),
        *[route(path, other) for path in FILLER],
        route("/users/{id:int}", user),
        route("/echo", echo, methods=["POST"]),
        route("/form", form, methods=["POST"]),
        route("/file", file),
    ), layered


# --- Starlette -----------------------------------------------------------------------


def starlette_apps() -> tuple[Any, Any]:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.cors import CORSMiddleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.requests import Request as SRequest
    from starlette.responses import FileResponse as SFile
    from starlette.responses import JSONResponse as SJSON
    from starlette.responses import PlainTextResponse as SText
    from starlette.routing import Route

    async def hello(request: SRequest) -> SText:
        return SText("Hello, world!")

    async def user(request: SRequest) -> SJSON:
        return SJSON(small_json(request.path_params["id"]))

    async def small(request: SRequest) -> SJSON:
        return SJSON(small_json(7))

    async def big(request: SRequest) -> SJSON:
        return SJSON(BIG)

    async def echo(request: SRequest) -> SJSON:
        return SJSON(await request.json())

    async def form(request: SRequest) -> SText:
        data = await request.form()
        return SText(str(len(data.multi_items())))

    async def file(request: SRequest) -> SFile:
        return SFile(FILE_PATH)

    async def other(request: SRequest) -> SText:
        return SText("other")

    layered = Starlette(
        routes=[Route("/mw/small", small), Route("/mw/big", big)],
        middleware=[
            Middleware(CORSMiddleware, allow_origins=[ORIGIN]),
            Middleware(GZipMiddleware, minimum_size=500, compresslevel=6),
            Middleware(header_layer),
        ],
    )
    return Starlette(
        routes=[
            Route("/", hello),
            *[Route(path, other) for path in FILLER],
            Route("/users/{id:int}", user),
            Route("/echo", echo, methods=["POST"]),
            Route("/form", form, methods=["POST"]),
            Route("/file", file),
        ]
    ), layered


# --- BlackSheep ----------------------------------------------------------------------


def blacksheep_apps() -> tuple[Any, Any, Callable[[], Awaitable[Any]]]:
    """(plain app, layered app, a coroutine function that starts both)."""
    from blacksheep import Application
    from blacksheep import json as bjson
    from blacksheep import text as btext
    from blacksheep.server.compression import GzipMiddleware
    from blacksheep.server.responses import file as bfile
    from blacksheep.server.routing import Router as BRouter

    app = Application(show_error_details=False, router=BRouter())
    layered = Application(show_error_details=False, router=BRouter())
    get = app.router.add_get
    post = app.router.add_post

    async def hello(request: BRequest) -> BResponse:
        return btext("Hello, world!")

    async def user(request: BRequest, id: int) -> BResponse:
        return bjson(small_json(id))

    async def echo(request: BRequest) -> BResponse:
        return bjson(await request.json())

    async def form(request: BRequest) -> BResponse:
        data = await request.form()
        return btext(str(sum(len(v) if isinstance(v, list) else 1 for v in data.values())))

    async def file(request: BRequest) -> BResponse:
        return bfile(str(FILE_PATH), "application/octet-stream")

    async def other(request: BRequest) -> BResponse:
        return btext("other")

    async def small(request: BRequest) -> BResponse:
        return bjson(small_json(7))

    async def big(request: BRequest) -> BResponse:
        return bjson(BIG)

    get("/", hello)
    for path in FILLER:
        get(path.replace("{item:int}", "{int:item}"), other)
    get("/users/{int:id}", user)
    post("/echo", echo)
    post("/form", form)
    get("/file", file)
    layered.router.add_get("/mw/small", small)
    layered.router.add_get("/mw/big", big)

    async def add_header(request: BRequest, handler: Any) -> BResponse:
        response: BResponse = await handler(request)
        response.add_header(b"x-layer", b"1")
        return response

    layered.use_cors(allow_methods="GET", allow_origins=ORIGIN)
    layered.middlewares.append(GzipMiddleware(min_size=500, comp_level=6))
    layered.middlewares.append(add_header)

    async def start() -> None:
        await app.start()
        await layered.start()

    return app, layered, start


# --- the run -------------------------------------------------------------------------


def scenarios() -> list[tuple[str, dict[str, Any], bytes, int]]:
    """(title, scope, body, requests per round)."""
    echo_payload = dumps(
        {"items": [{"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(24)]}
    )
    form_body = "&".join(f"field{i}=value+{i}%21" for i in range(20)).encode()
    mw_headers = [(b"origin", ORIGIN.encode()), (b"accept-encoding", b"gzip")]
    return [
        ("hello text", http_scope("GET", "/"), b"", 3000),
        ("JSON, int path parameter, 20 routes", http_scope("GET", "/users/123"), b"", 3000),
        (
            "JSON behind CORS + compress + header layer (small: not compressed)",
            http_scope("GET", "/mw/small", headers=mw_headers),
            b"",
            2000,
        ),
        (
            f"JSON behind CORS + compress + header layer ({len(dumps(BIG))} B, gzipped)",
            http_scope("GET", "/mw/big", headers=mw_headers),
            b"",
            1000,
        ),
        (
            f"JSON echo ({len(echo_payload)} bytes)",
            http_scope("POST", "/echo", headers=[(b"content-type", b"application/json")]),
            echo_payload,
            2000,
        ),
        (
            "20-field urlencoded form",
            http_scope(
                "POST",
                "/form",
                headers=[
                    (b"content-type", b"application/x-www-form-urlencoded"),
                    (b"content-length", str(len(form_body)).encode()),
                ],
            ),
            form_body,
            2000,
        ),
        ("1 MiB file", http_scope("GET", "/file"), b"", 150),
    ]


async def _check(apps: dict[str, Any], startup: Any, title: str, scope: Any, body: bytes) -> None:
    """Every app answers the same: status 200, same body once decoded, same key headers."""
    await startup()
    answers = {}
    for name, app in apps.items():
        status, headers, content = await call_once(app, scope, body)
        header = dict(headers)
        if header.get(b"content-encoding") == b"gzip":
            content = gzip.decompress(content)
        keys = (b"access-control-allow-origin", b"x-layer", b"content-encoding")
        answers[name] = (status, content, tuple(header.get(k) for k in keys))
    reference = answers["raw"]
    for name, answer in answers.items():
        if answer[0] != 200:
            raise RuntimeError(f"{title}: {name} answered {answer[0]}: {answer[1][:200]!r}")
        if answer[2] != reference[2]:
            raise RuntimeError(f"{title}: {name} headers {answer[2]} != raw {reference[2]}")
        if "JSON" in title and json.loads(answer[1]) != json.loads(reference[1]):
            raise RuntimeError(f"{title}: {name} body differs")
        if "JSON" not in title and answer[1] != reference[1]:
            raise RuntimeError(f"{title}: {name} body differs: {answer[1][:80]!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="a tenth of the requests")
    parser.add_argument("--json", help="also write the medians (µs/request) to this file")
    args = parser.parse_args()
    results: dict[str, dict[str, float]] = {}
    blacksheep, blacksheep_layered, start_blacksheep = blacksheep_apps()
    asgikit, asgikit_layered = asgikit_apps()
    starlette, starlette_layered = starlette_apps()
    plain = {"raw": raw_app, "asgikit": asgikit, "starlette": starlette, "blacksheep": blacksheep}
    layered = {
        "raw": raw_app,
        "asgikit": asgikit_layered,
        "starlette": starlette_layered,
        "blacksheep": blacksheep_layered,
    }
    print(f"Machine: {machine()}\n")
    for title, scope, body, n in scenarios():
        apps = layered if scope["path"].startswith("/mw/") else plain
        asyncio.run(_check(apps, start_blacksheep, title, scope, body))
        count = max(n // 10, 20) if args.quick else n
        timings = compare(
            apps, scope, body, n=count, rounds=args.rounds, startup=[start_blacksheep]
        )
        results[title] = timings
        print(ratio_table(title, timings))
        print(flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
