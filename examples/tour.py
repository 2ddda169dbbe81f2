"""The tour: the demo app that articles about Starlette build, made of asgikit pieces.

Run it with ``uvicorn examples.tour:app`` and open http://127.0.0.1:8000.

There is no application object.  Every route is an ASGI app, the router is
one, and each middleware wraps one; ``stack()`` at the bottom of this file
nests them, outermost first.  What each URL shows:

- ``/``: an HTML page from a template, with links built by ``url_for``;
- ``/health``: status, uptime and counters from the lifespan state;
- ``/api/users`` (GET with ``page``/``page_size``, POST with a background
  task), ``/api/users/{user_id:int}``;
- ``/redirect``: a 302 to the users API;
- ``/api/stream``: server-sent events; ``/api/stream/file``: a streamed body;
- ``/ws/chat`` and ``/ws/json``: WebSocket echoes, for pages of this site
  and of the CORS origins only (a handshake from any other origin is a 403);
- ``/static/...``: files from ``examples/static``;
- ``/hello?name=...``: a template page (autoescaped) with a session counter;
- ``/error``: an unexpected exception, answered by the JSON 500 handler.

Settings come from the environment: ``TOUR_SECRET_KEY`` signs the session
cookie, ``TOUR_ALLOW_ORIGINS`` lists the origins CORS lets read the API
(and lets open the WebSockets).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio

from asgikit import (
    BackgroundTask,
    EventSourceResponse,
    HTTPException,
    JSONResponse,
    RedirectResponse,
    Request,
    StreamingResponse,
    WebSocket,
    cors,
    exception_handlers,
    lifespan,
    mount,
    route,
    router,
    server_errors,
    sessions,
    stack,
    static_files,
    timing,
    websocket_origin,
    websocket_route,
)
from asgikit.composition import middleware, wrap_send
from asgikit.config import CommaSeparatedStrings, Config, Secret
from asgikit.endpoints import HTTPEndpoint, WebSocketEndpoint
from asgikit.templating import Jinja2Templates
from asgikit.types import ASGIApp, Message, Receive, Scope, Send

HERE = Path(__file__).parent
logger = logging.getLogger(__name__)

config = Config(env_prefix="TOUR_")
SECRET_KEY = config("SECRET_KEY", cast=Secret, default="tour-dev-secret-change-me")
ALLOW_ORIGINS = config(
    "ALLOW_ORIGINS", cast=CommaSeparatedStrings, default="http://localhost:3000"
)

#: Seconds between two streamed items (the tests set it to 0).
TICK = 0.2
MAX_PAGE_SIZE = 100
#: A user is a few hundred bytes; refuse bodies far past that (413).
MAX_USER_BODY = 16 * 1024

SEED_USERS = [
    {"id": 1, "name": "Ada Lovelace", "email": "ada@example.com"},
    {"id": 2, "name": "Alan Turing", "email": "alan@example.com"},
    {"id": 3, "name": "Grace Hopper", "email": "grace@example.com"},
]

templates = Jinja2Templates(
    HERE / "tour_templates",
    context_processors=[lambda request: {"site_name": "asgikit tour"}],
)


# -- Lifespan: the state every request sees as request.state ------------------


@asynccontextmanager
async def resources() -> AsyncIterator[dict[str, Any]]:
    """Set up the in-memory "database", cache and mail outbox; tear them down after."""
    users = {user["id"]: dict(user) for user in SEED_USERS}
    cache: dict[int, dict[str, Any]] = {}
    outbox: list[dict[str, str]] = []
    logger.info("tour: started with %d users", len(users))
    try:
        yield {"started": time.monotonic(), "users": users, "cache": cache, "outbox": outbox}
    finally:
        logger.info("tour: shut down; %d cached users, %d mails sent", len(cache), len(outbox))
        cache.clear()


# -- Pages -------------------------------------------------------------------


async def home(request: Request) -> Any:
    """The home page, linking to everything else."""
    return templates.TemplateResponse(request, "index.html")


async def hello(request: Request) -> Any:
    """A template page: ``name`` from the query string, a visit counter in the session."""
    visits = int(request.session.get("visits", 0)) + 1
    request.session["visits"] = visits
    name = request.query_params.get("name", "stranger")
    return templates.TemplateResponse(request, "hello.html", {"name": name, "visits": visits})


async def health(request: Request) -> JSONResponse:
    """Liveness, with the uptime and counters from the lifespan state."""
    state = request.state
    return JSONResponse(
        {
            "status": "ok",
            "uptime": round(time.monotonic() - state.started, 3),
            "cache": len(state.cache),
            "mails_sent": len(state.outbox),
        }
    )


async def to_users(request: Request) -> RedirectResponse:
    """A redirect built from a route name, not a hard-coded path."""
    return RedirectResponse(request.url_for("api:users"), status_code=302)


async def fail(request: Request) -> JSONResponse:
    """A bug on purpose: the JSON 500 handler answers it."""
    raise RuntimeError("the tour's deliberate error")


# -- The users API -----------------------------------------------------------


def int_param(request: Request, name: str, default: int, maximum: int) -> int:
    """A positive integer query parameter, or 400."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # isascii(): "²".isdigit() is true but int("²") fails; the length check keeps
    # int() off thousands of digits (a ValueError past Python's digit limit).
    digits = raw.isascii() and raw.isdigit() and len(raw) <= len(str(maximum))
    if not digits or not 1 <= int(raw) <= maximum:
        raise HTTPException(400, f"{name} must be an integer from 1 to {maximum}")
    return int(raw)


async def send_welcome_mail(outbox: list[dict[str, str]], user: dict[str, Any]) -> None:
    """Runs after the response: a real app would talk to a mail server here."""
    outbox.append({"to": user["email"], "subject": f"Welcome, {user['name']}!"})


class Users(HTTPEndpoint):
    """``/api/users``: list them, or add one."""

    async def get(self, request: Request) -> JSONResponse:
        """A page of users: ``?page=2&page_size=10``, with the total."""
        page = int_param(request, "page", 1, 1_000_000)
        page_size = int_param(request, "page_size", 10, MAX_PAGE_SIZE)
        users = list(request.state.users.values())
        start = (page - 1) * page_size
        return JSONResponse(
            {
                "users": users[start : start + page_size],
                "page": page,
                "page_size": page_size,
                "total": len(users),
            }
        )

    async def post(self, request: Request) -> JSONResponse:
        """Add a user from a JSON body with ``name`` and ``email``; mail them afterwards."""
        # Malformed JSON is HTTPException(400), a body past the limit 413.
        data = await request.json(max_size=MAX_USER_BODY)
        if not isinstance(data, dict):
            raise HTTPException(422, "the body must be a JSON object")
        missing = [key for key in ("name", "email") if not isinstance(data.get(key), str)]
        if missing or not data["name"].strip() or not data["email"].strip():
            raise HTTPException(422, "name and email are required")
        users = request.state.users
        user = {"id": max(users, default=0) + 1, "name": data["name"], "email": data["email"]}
        users[user["id"]] = user
        mail = BackgroundTask(send_welcome_mail, request.state.outbox, user)
        return JSONResponse(user, status_code=201, background=mail)


async def get_user(request: Request) -> JSONResponse:
    """One user; found users are remembered in the cache that ``/health`` counts."""
    user_id: int = request.path_params["user_id"]
    cache = request.state.cache
    user = cache.get(user_id) or request.state.users.get(user_id)
    if user is None:
        raise HTTPException(404, f"no user with id {user_id}")
    cache[user_id] = user
    return JSONResponse(user)


# -- Streams -----------------------------------------------------------------


async def stream_events(request: Request) -> EventSourceResponse:
    """Server-sent events: five numbered events, then ``done``."""

    async def events() -> AsyncIterator[dict[str, Any]]:
        for number in range(1, 6):
            yield {"id": str(number), "data": {"number": number}}
            await anyio.sleep(TICK)
        yield {"event": "done", "data": "done"}

    return EventSourceResponse(events())


def numbered_lines(count: int) -> Iterator[str]:
    """A plain generator: ``StreamingResponse`` steps it in a worker thread."""
    for number in range(1, count + 1):
        yield f"line {number} of {count}\n"


async def stream_file(request: Request) -> StreamingResponse:
    """A text file produced line by line (``?lines=`` of them), never held whole."""
    count = int_param(request, "lines", 10, 10_000)
    return StreamingResponse(
        numbered_lines(count),
        media_type="text/plain",
        headers={"Content-Disposition": 'inline; filename="lines.txt"'},
    )


# -- WebSockets --------------------------------------------------------------


async def chat(websocket: WebSocket) -> None:
    """Echo every text message with a prefix, until the client leaves."""
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(f"Message text was: {text}")


class JSONEcho(WebSocketEndpoint):
    """Echo each JSON message back with the server's time (malformed JSON closes 1003)."""

    encoding = "json"

    async def on_receive(self, websocket: WebSocket, data: Any) -> None:
        now = datetime.now(timezone.utc).isoformat()
        await websocket.send_json({"echo": data, "timestamp": now})


# -- Errors: every error is JSON -----------------------------------------------


async def not_found(request: Request, exc: HTTPException) -> JSONResponse:
    """404 for any path or object that does not exist."""
    return JSONResponse({"error": "Not Found", "path": request.url.path}, 404)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """Any other ``HTTPException`` (400, 405, 422...), keeping its headers (``Allow``)."""
    return JSONResponse({"error": exc.detail}, exc.status_code, exc.headers)


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    """An unexpected exception: a JSON 500 that tells the client nothing internal."""
    return JSONResponse({"error": "Internal Server Error"}, 500)


@middleware
def response_time(app: ASGIApp, *, header: str = "X-Response-Time") -> ASGIApp:
    """A pure ASGI middleware: ``X-Response-Time`` (ms until the response started)."""
    name = header.lower().encode("latin-1")

    async def response_time_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()

        async def on_start(message: Message) -> None:
            value = f"{(time.perf_counter() - started) * 1000:.3f}ms".encode("ascii")
            await send({**message, "headers": [*message.get("headers", ()), (name, value)]})

        await app(scope, receive, wrap_send(send, {"http.response.start": on_start}))

    return response_time_app


# -- The app -------------------------------------------------------------------

api = router(
    route("/users", Users, methods=["GET", "POST"], name="users"),
    route("/users/{user_id:int}", get_user, name="user"),
    route("/stream", stream_events, name="stream"),
    route("/stream/file", stream_file, name="stream_file"),
)

routes = router(
    route("/", home, name="home"),
    route("/health", health, name="health"),
    route("/hello", hello, name="hello"),
    route("/redirect", to_users, name="redirect"),
    route("/error", fail, name="error"),
    mount("/api", api, name="api"),
    mount("/static", static_files(HERE / "static"), name="static"),
    websocket_route("/ws/chat", chat, name="chat"),
    websocket_route("/ws/json", JSONEcho, name="json_echo"),
)
# CORS does not cover WebSockets, and a browser sends the visitor's cookies
# with a handshake from any page: only this site's pages and the origins
# CORS lets read the API may open the sockets (others get a 403).
routes = websocket_origin(routes, allowed_origins=list(ALLOW_ORIGINS))

app = stack(
    lifespan(handler=resources),
    response_time(),
    timing(),  # Server-Timing, which browsers' developer tools show
    cors(
        allow_origins=list(ALLOW_ORIGINS),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        expose_headers=["X-Response-Time"],
    ),
    # Inside cors, so that a 500 still carries the CORS headers.
    server_errors(handler=server_error),
    sessions(secret_key=str(SECRET_KEY)),
    exception_handlers(handlers={404: not_found, HTTPException: http_error}),
    routes,
)
