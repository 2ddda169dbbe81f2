"""The middleware as drop-ins (Starlette ``Middleware(...)``, FastAPI) and all in one stack()."""

from __future__ import annotations

import gzip

import httpx
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse as StarletteJSON
from starlette.routing import Route

from asgikit.composition import stack
from asgikit.middleware.body_limit import body_limit
from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.middleware.https_redirect import https_redirect
from asgikit.middleware.proxy_headers import proxy_headers
from asgikit.middleware.request_id import request_id
from asgikit.middleware.security_headers import security_headers
from asgikit.middleware.timing import timing
from asgikit.middleware.trusted_host import trusted_host
from asgikit.requests import Request
from asgikit.responses import JSONResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from tests.servers.live import serve

SITE = "https://site.example"
BIG = {"items": ["some repeated text"] * 100}


def starlette_middleware() -> list[Middleware]:
    return [
        Middleware(proxy_headers, trusted_hosts=["127.0.0.1"]),
        Middleware(trusted_host, allowed_hosts=["testserver", "127.0.0.1"]),
        Middleware(cors, allow_origins=[SITE], allow_methods=["GET", "POST"]),
        Middleware(compress, minimum_size=100),
    ]


def check(client: httpx.Client, prefix: str = "") -> None:
    response = client.get(prefix + "/data", headers={"origin": SITE, "accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["vary"]
    assert "Origin" in response.headers["vary"]
    assert response.json()["items"] == BIG["items"]
    preflight = client.options(
        prefix + "/data", headers={"origin": SITE, "access-control-request-method": "POST"}
    )
    assert preflight.status_code == 200
    assert client.get(prefix + "/data", headers={"host": "evil.com"}).status_code == 400


def test_inside_starlette_via_middleware() -> None:
    async def data(request: StarletteRequest) -> StarletteJSON:
        return StarletteJSON({**BIG, "client": request.client.host if request.client else None})

    app = Starlette(routes=[Route("/data", data)], middleware=starlette_middleware())
    with TestClient(app, client=("127.0.0.1", 5000)) as client:
        check(client)
        forwarded = client.get("/data", headers={"x-forwarded-for": "203.0.113.1"})
        assert forwarded.json()["client"] == "203.0.113.1"


def test_inside_fastapi() -> None:
    api = FastAPI()
    for middleware in reversed(starlette_middleware()):
        api.add_middleware(middleware.cls, *middleware.args, **middleware.kwargs)  # type: ignore[arg-type]

    @api.get("/data")
    async def data() -> dict[str, list[str]]:
        return BIG

    with TestClient(api, client=("127.0.0.1", 5000)) as client:
        check(client)


def full_stack() -> object:
    async def data(request: Request) -> JSONResponse:
        return JSONResponse({**BIG, "scheme": request.url.scheme})

    async def upload(request: Request) -> JSONResponse:
        return JSONResponse({"size": len(await request.body())})

    return stack(
        proxy_headers(trusted_hosts=["127.0.0.1"]),
        trusted_host(allowed_hosts=["testserver", "127.0.0.1"]),
        https_redirect(exclude=["/data", "/upload"]),
        request_id(),
        timing(),
        security_headers(),
        cors(allow_origins=[SITE], allow_methods=["GET", "POST"]),
        body_limit(max_size=1000),
        compress(minimum_size=100),
        router(
            route("/data", data), route("/upload", upload, methods=["POST"]), route("/other", data)
        ),
    )


def test_all_together_in_one_stack() -> None:
    client = TestClient(
        full_stack(),
        follow_redirects=False,
        client=("127.0.0.1", 5000),  # type: ignore[arg-type]
    )
    check(client)
    response = client.get("/data", headers={"origin": SITE})
    for header in ("x-request-id", "server-timing", "x-content-type-options"):
        assert header in response.headers
    assert client.post("/upload", content=b"x" * 1001).status_code == 413
    assert client.post("/upload", content=b"x" * 10).json() == {"size": 10}
    assert client.get("/other").status_code == 307


def test_all_together_through_uvicorn() -> None:
    with serve(full_stack(), lifespan="off") as base:
        with httpx.Client(base_url=base) as client:
            check(client)
        raw = httpx.get(
            base + "/data",
            headers={"accept-encoding": "gzip", "x-forwarded-proto": "https"},
        )
        assert raw.json()["scheme"] == "https"
        with httpx.stream("GET", base + "/data", headers={"accept-encoding": "gzip"}) as r:
            body = b"".join(r.iter_raw())
        assert gzip.decompress(body).startswith(b'{"items"')
