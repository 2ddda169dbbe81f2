"""The asgikit showcase: one small real app that uses every piece.

Run it with ``bash scripts/showcase.sh`` and open http://127.0.0.1:8000.
There is no application object: the app is a ``stack`` of middleware around
a ``router``, and every piece is an ASGI app of its own.

Environment: ``SESSION_SECRET`` (sign the session cookie), ``SESSION_STORE``
(``redis://...`` keeps sessions in Redis), ``BROADCAST_URL`` (``redis://...``
shares chat rooms between processes), ``SHOWCASE_DEBUG=1`` (debug error pages),
``SHOWCASE_API_RATE`` (each client's limit on ``/api``, ``120/minute`` by
default), and ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``http://collector:4318``:
send a span per request there, OTLP over HTTP; needs the
``opentelemetry-exporter-otlp-proto-http`` package, and the usual ``OTEL_*``
variables tune the exporter).  Without that variable nothing of
OpenTelemetry is imported.
"""

from __future__ import annotations

import hashlib
import html
import os
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from asgikit import (
    FileResponse,
    HTMLResponse,
    HTTPException,
    JSONResponse,
    RedirectResponse,
    Request,
    StreamingResponse,
    UploadFile,
    compress,
    cors,
    lifespan,
    mount,
    rate_limit,
    request_id,
    route,
    router,
    security_headers,
    server_errors,
    sessions,
    stack,
    static_files,
    timeout,
    timing,
    websocket_origin,
    websocket_route,
)
from asgikit.types import ASGIApp
from examples.showcase_live import chat_page, chat_socket, clock_events, clock_page, make_broadcast

HERE = Path(__file__).resolve().parent
BIG_FILE_SIZE = 8 * 1024 * 1024
#: Each client's requests to the API (the pages are not limited).
API_RATE = os.environ.get("SHOWCASE_API_RATE", "120/minute")

HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/static/style.css">
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml"></head>
<body>
"""
HOME_LINK = '<nav><a href="/">← asgikit showcase</a></nav>\n'

HOME = (
    HEAD.format(title="asgikit showcase")
    + """<h1>asgikit showcase</h1>
<p>You have visited this page {visits} time(s) (a signed-cookie session).</p>
<ul>
  <li><a href="{users}">the users API</a>: JSON, typed path parameters, reverse URLs,
      a rate limit per client (<code>RateLimit</code> headers, then 429)</li>
  <li><a href="/upload">upload files</a>: streaming multipart, spooled to disk</li>
  <li><a href="/chat/lobby">a chat room</a> over WebSockets</li>
  <li><a href="/clock/">a live clock</a> over server-sent events</li>
  <li><a href="/static/">static files</a>, <a href="/big.bin">a large file</a>
      (try <code>curl -C - -O</code>) and <a href="/download">a download</a>
      (<code>curl -OJ</code> keeps its name)</li>
  <li><a href="/stream">a streamed response</a> and <a href="/health">health</a></li>
</ul>
</body></html>
"""
)

UPLOAD_FORM = """<form method="post" enctype="multipart/form-data">
  <input name="title" placeholder="Title"> <input type="file" name="files" multiple>
  <button>Upload</button>
</form>"""
UPLOAD_PAGE = (
    HEAD.format(title="Upload files") + HOME_LINK + "<h1>Upload files</h1>{body}</body></html>"
)
#: ASCII on purpose: ``curl -OJ`` reads only ``filename=``, never RFC 6266's ``filename*``.
DOWNLOAD_NAME = "asgikit-showcase-notes.txt"


@asynccontextmanager
async def resources() -> AsyncIterator[dict[str, Any]]:
    """Start-up and shutdown: the user table, a large file, the broadcast, sessions."""
    async with AsyncExitStack() as stack_:
        folder = Path(stack_.enter_context(tempfile.TemporaryDirectory(prefix="showcase-")))
        big = folder / "big.bin"
        with big.open("wb") as file:
            block = bytes(range(256)) * 4096
            for _ in range(BIG_FILE_SIZE // len(block)):
                file.write(block)
        broadcast = await stack_.enter_async_context(make_broadcast())
        state: dict[str, Any] = {
            "broadcast": broadcast,
            "started": time.time(),
            "users": {1: {"id": 1, "name": "Ada", "email": "ada@example.com"}},
            "big_file": big,
        }
        store_url = os.environ.get("SESSION_STORE")
        if store_url:
            from asgikit.middleware.session_stores import RedisStore

            store = RedisStore.from_url(store_url)
            stack_.push_async_callback(store.aclose)
            state["session_store"] = store
        yield state


async def home(request: Request) -> HTMLResponse:
    session = request.session
    session["visits"] = session.get("visits", 0) + 1
    return HTMLResponse(HOME.format(visits=session["visits"], users=request.url_for("api:users")))


async def session_counter(request: Request) -> JSONResponse:
    """A session counter as JSON, with the process id, for the scale-out test."""
    session = request.session
    session["count"] = session.get("count", 0) + 1
    return JSONResponse({"count": session["count"], "pid": os.getpid()})


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok", "uptime": round(time.time() - request.state.started, 3)})


async def list_users(request: Request) -> JSONResponse:
    users = list(request.state.users.values())
    return JSONResponse({"users": users, "total": len(users)})


async def get_user(request: Request) -> JSONResponse:
    user = request.state.users.get(request.path_params["user_id"])
    if user is None:
        raise HTTPException(404, "No such user")
    return JSONResponse(user)


async def create_user(request: Request) -> JSONResponse:
    data = await request.json()
    if not isinstance(data, dict) or not data.get("name") or not data.get("email"):
        raise HTTPException(422, "name and email are required")
    users = request.state.users
    user = {
        "id": max(users, default=0) + 1,
        "name": str(data["name"]),
        "email": str(data["email"]),
    }
    users[user["id"]] = user
    return JSONResponse(user, status_code=201)


async def upload_page(request: Request) -> HTMLResponse:
    """GET: the form.  POST: what was uploaded, then the form again."""
    if request.method != "POST":
        return HTMLResponse(UPLOAD_PAGE.format(body=UPLOAD_FORM))
    async with request.form(max_files=10, max_file_size=50 * 1024 * 1024) as form:
        title = html.escape(str(form.get("title", "")))
        items = "".join(
            f"<li>{html.escape(f.filename or '')}: {f.size} bytes</li>"
            for f in form.getlist("files")
            if isinstance(f, UploadFile) and f.filename
        )
    body = f"<h2>{title}</h2><ul>{items}</ul>{UPLOAD_FORM}"
    return HTMLResponse(UPLOAD_PAGE.format(body=body))


async def upload_api(request: Request) -> JSONResponse:
    """POST a multipart field named ``file``: its name, type, size and SHA-256."""
    async with request.form(max_files=1, max_file_size=50 * 1024 * 1024) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(400, "send the file in a multipart field named 'file'")
        digest = hashlib.sha256()
        while chunk := await upload.read(64 * 1024):
            digest.update(chunk)
        return JSONResponse(
            {
                "filename": upload.filename,
                "content_type": upload.content_type,
                "size": upload.size,
                "sha256": digest.hexdigest(),
            }
        )


async def big_file(request: Request) -> FileResponse:
    return FileResponse(request.state.big_file, media_type="application/octet-stream")


async def download(request: Request) -> FileResponse:
    return FileResponse(HERE / "static" / "notes.txt", filename=DOWNLOAD_NAME)


async def favicon(request: Request) -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links; the same SVG."""
    return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")


async def stream(request: Request) -> StreamingResponse:
    async def lines() -> AsyncIterator[str]:
        for number in range(1, 6):
            yield f"line {number}\n"
            await anyio.sleep(0.2)

    return StreamingResponse(lines(), media_type="text/plain")


async def old_users(request: Request) -> RedirectResponse:
    return RedirectResponse(request.url_for("api:users"), status_code=302)


api = router(
    route("/users", list_users, name="users"),
    route("/users", create_user, methods=["POST"], name="create_user"),
    route("/users/{user_id:int}", get_user, name="user"),
    route("/upload", upload_api, methods=["POST"], name="upload"),
)

routes = router(
    route("/", home),
    route("/favicon.ico", favicon),
    route("/health", health),
    route("/session", session_counter),
    route("/stream", stream),
    route("/redirect", old_users),
    route("/upload", upload_page, methods=["GET", "POST"]),
    route("/big.bin", big_file),
    route("/download", download),
    route("/chat/{room}", chat_page),
    websocket_route("/chat/{room}/ws", chat_socket),
    route("/clock/", clock_page),
    route("/clock/events", clock_events),
    # Counted per client address: behind a proxy, put proxy_headers outside.
    mount("/api", rate_limit(api, limits=API_RATE, key="client"), name="api"),
    mount("/static", static_files(directory=HERE / "static", html=True), name="static"),
)
# A page on another origin must not open the chat with the visitor's cookies
# (CORS does not cover WebSockets): only this site's own pages may.
routes = websocket_origin(routes)

session_options: dict[str, Any] = {
    "secret_key": os.environ.get("SESSION_SECRET", "change-me: showcase only"),
}
if os.environ.get("SESSION_STORE"):
    session_options["store_from_state"] = "session_store"

site = stack(
    lifespan(handler=resources),
    server_errors(debug=os.environ.get("SHOWCASE_DEBUG") == "1"),
    request_id(),
    timing(),
    security_headers(),
    timeout(request=60.0, body_idle=30.0, exclude=["/clock/events", "/big.bin"]),
    cors(allow_origins=["http://localhost:8000", "http://127.0.0.1:8000"]),
    compress(),
    sessions(**session_options),
    routes,
)


def traced(app: ASGIApp) -> ASGIApp:
    """``app`` sending its spans to ``OTEL_EXPORTER_OTLP_ENDPOINT``, or ``app`` itself when unset.

    The SDK batches spans; lifespan shutdown flushes the last ones.
    """
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return app
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from asgikit import telemetry

    name = os.environ.get("OTEL_SERVICE_NAME") or "asgikit-showcase"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    # The exporter reads the endpoint (and OTEL_EXPORTER_OTLP_* options) itself.
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))

    @asynccontextmanager
    async def flush_on_shutdown() -> AsyncIterator[None]:
        try:
            yield
        finally:
            # A blocking HTTP call: in a thread, so the event loop runs on meanwhile.
            await anyio.to_thread.run_sync(provider.shutdown)

    # Outermost, so that a span covers every layer (a 429 from the limit too).
    return stack(lifespan(handler=flush_on_shutdown), telemetry(tracer_provider=provider), app)


app = traced(site)
