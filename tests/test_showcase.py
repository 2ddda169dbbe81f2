"""The showcase app works end to end: through the test client and a real uvicorn."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from websockets.sync.client import connect

from asgikit import (
    WebSocket,
    lifespan,
    mount,
    route,
    router,
    stack,
    static_files,
    websocket_route,
)
from asgikit.broadcast import Broadcast, Event, Gap
from asgikit.testing import AsyncTestClient, TestClient, WebSocketDenialResponse
from examples import showcase
from examples.showcase import BIG_FILE_SIZE, HERE, app
from examples.showcase_live import chat_page, chat_socket
from tests.servers.chromium import Browser, chromium
from tests.servers.live import free_port, serve, serve_process

STATIC = HERE / "static"


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(app) as client:
        yield client  # type: ignore[misc]


def test_home_counts_visits_in_the_session(client: TestClient) -> None:
    first = client.get("/")
    second = client.get("/")
    assert "visited this page 1 time" in first.text
    assert "visited this page 2 time" in second.text
    assert second.headers["x-request-id"]
    assert "server-timing" in second.headers
    assert second.headers["x-content-type-options"] == "nosniff"


def test_users_api_round_trip(client: TestClient) -> None:
    created = client.post("/api/users", json={"name": "Grace", "email": "grace@example.com"})
    assert created.status_code == 201
    user = created.json()
    assert client.get(f"/api/users/{user['id']}").json() == user
    assert client.get("/api/users/9999").status_code == 404
    assert client.post("/api/users", json={"name": "x"}).status_code == 422
    assert client.post("/api/users", content=b"{nope").status_code == 400
    assert (
        client.get("/redirect", follow_redirects=False).headers["location"].endswith("/api/users")
    )


def test_upload_api_hashes_the_file(client: TestClient) -> None:
    data = b"x" * 100_000
    answer = client.post("/api/upload", files={"file": ("a.bin", data, "application/x-test")})
    assert answer.json() == {
        "filename": "a.bin",
        "content_type": "application/x-test",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    page = client.post("/upload", data={"title": "<b>t</b>"}, files={"files": ("n.txt", b"hi")})
    assert "&lt;b&gt;t&lt;/b&gt;" in page.text
    assert "n.txt: 2 bytes" in page.text


def test_files_ranges_and_download(client: TestClient) -> None:
    part = client.get("/big.bin", headers={"Range": "bytes=256-511"})
    assert part.status_code == 206
    assert part.content == bytes(range(256))
    assert part.headers["content-range"] == f"bytes 256-511/{BIG_FILE_SIZE}"
    download = client.get("/download")
    assert download.headers["content-disposition"] == (
        'attachment; filename="asgikit-showcase-notes.txt"'
    )
    assert client.get("/static/").headers["content-type"].startswith("text/html")
    assert client.get("/static/nope").status_code == 404


def test_chat_room_fans_out(client: TestClient) -> None:
    with client.websocket_connect("/chat/test/ws") as alice:
        assert alice.receive_json() == {"type": "joined"}
        with client.websocket_connect("/chat/test/ws") as bob:
            assert bob.receive_json() == {"type": "joined"}
            alice.send_json({"name": "alice", "text": "hello"})
            assert bob.receive_json() == {"name": "alice", "text": "hello"}
            assert alice.receive_json() == {"name": "alice", "text": "hello"}


def test_showcase_under_uvicorn() -> None:
    with serve(app) as base, httpx.Client(base_url=base) as http:
        assert http.get("/health").json()["status"] == "ok"
        assert http.get("/api/users/1").json()["name"] == "Ada"
        compressed = http.get("/", headers={"Accept-Encoding": "gzip"})
        assert compressed.headers["content-encoding"] == "gzip"
        assert "asgikit showcase" in compressed.text
        with http.stream("GET", "/clock/events?interval=0.05") as events:
            lines = []
            for line in events.iter_lines():
                lines.append(line)
                if line.startswith("data:") and '"n":2' in line:
                    break
        assert "event: tick" in lines
        ws_url = base.replace("http", "ws") + "/chat/live/ws"
        with connect(ws_url) as one, connect(ws_url) as two:
            assert json.loads(one.recv(5)) == {"type": "joined"}
            assert json.loads(two.recv(5)) == {"type": "joined"}
            one.send(json.dumps({"name": "one", "text": "hi"}))
            assert json.loads(two.recv(5)) == {"name": "one", "text": "hi"}


# -- the polish a first-time visitor sees ---------------------------------------

PAGES = ["/", "/upload", "/chat/lobby", "/clock/", "/static/", "/static/nope"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_the_favicon_the_stylesheet_and_a_way_home(
    client: TestClient, path: str
) -> None:
    page = client.get(path)
    assert page.headers["content-type"].startswith("text/html")
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page.text
    if path != "/":
        assert '<a href="/">' in page.text
    if path not in ("/chat/lobby", "/clock/"):  # those two carry their own styles
        assert 'rel="stylesheet"' in page.text
        assert "style.css" in page.text


def test_the_favicon_is_served_where_browsers_look(client: TestClient) -> None:
    for path in ("/favicon.ico", "/static/favicon.svg"):
        icon = client.get(path)
        assert icon.status_code == 200
        assert icon.headers["content-type"].startswith("image/svg+xml")
        assert icon.content.startswith(b"<svg")


def test_the_upload_page_is_styled_like_the_rest(client: TestClient) -> None:
    for page in (client.get("/upload"), client.post("/upload", data={"title": "t"})):
        assert page.text.startswith("<!doctype html>")
        assert '<link rel="stylesheet" href="/static/style.css">' in page.text
        assert "<h1>Upload files</h1>" in page.text
        assert 'enctype="multipart/form-data"' in page.text


def test_the_chat_refuses_a_handshake_from_another_origin(client: TestClient) -> None:
    with (
        pytest.raises(WebSocketDenialResponse) as refused,
        client.websocket_connect("/chat/x/ws", headers={"Origin": "https://evil.example"}),
    ):
        pass
    assert refused.value.status_code == 403
    with client.websocket_connect("/chat/x/ws", headers={"Origin": "http://testserver"}) as ws:
        assert ws.receive_json() == {"type": "joined"}


def test_the_tour_shows_its_websockets_as_ws_urls() -> None:
    from examples.tour import app as tour

    with TestClient(tour) as tour_client:
        index = tour_client.get("/").text
    assert "<code>ws://testserver/ws/chat</code>" in index
    assert "<code>ws://testserver/ws/json</code>" in index
    assert "http://testserver/ws/" not in index


def test_the_curl_hints_work_as_written(tmp_path: Path) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    notes = (STATIC / "notes.txt").read_text()
    index = (STATIC / "index.html").read_text()
    hints = re.findall(r"curl (-r [0-9-]+|-OJ|-C - -O) (http://127\.0\.0\.1:8000\S+?)[<\s]", index)
    hints += re.findall(r"curl (-r [0-9-]+) (http://127\.0\.0\.1:8000\S+)", notes)
    assert len(hints) == 4
    with serve(app) as base:
        for options, url in hints:
            live = url.replace("http://127.0.0.1:8000", base)
            done = subprocess.run(
                [curl, "-sS", "-f", *options.split(), live],
                cwd=tmp_path,
                capture_output=True,
                timeout=30,
            )
            assert done.returncode == 0, (options, url, done.stderr)
            if options.startswith("-r"):
                first, last = (int(n) for n in options.split()[1].split("-"))
                assert done.stdout == notes.encode()[first : last + 1]
    assert (tmp_path / "asgikit-showcase-notes.txt").read_bytes() == notes.encode()
    assert (tmp_path / "big.bin").stat().st_size == BIG_FILE_SIZE


# -- in a real browser -------------------------------------------------------------


class RecordingBrowser(Browser):
    """A ``Browser`` that keeps the events (console, log, exceptions) it reads past."""

    def __init__(self, browser: Browser) -> None:
        super().__init__(browser.connection)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.connection.send(json.dumps(message))
        deadline = time.monotonic() + 10
        while True:
            left = max(0.01, deadline - time.monotonic())
            reply = json.loads(self.connection.recv(timeout=left))
            if reply.get("id") != message_id:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def errors(self, session: str) -> list[str]:
        """What the page's console, log and uncaught exceptions reported as errors."""
        found = []
        for event in self.events:
            if event.get("sessionId") != session:
                continue
            params = event.get("params", {})
            if event.get("method") == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"]))
            elif event.get("method") == "Runtime.consoleAPICalled" and params["type"] == "error":
                found.append(str(params["args"]))
            elif event.get("method") == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"{params['entry']['text']} ({params['entry'].get('url')})")
        return found

    def load(self, url: str) -> str:
        """Open a blank page, start recording, then go to ``url``; returns the session."""
        session = self.open("about:blank")
        for domain in ("Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=WIDTH,
            height=HEIGHT,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", session, url=url)
        self.wait_for(session, f"location.href === {json.dumps(url)}")
        self.wait_for(session, "document.readyState === 'complete'")
        return session


WIDTH, HEIGHT = 1000, 700
#: What each page shows once it has done its work (a socket open, a tick in).
READY = {
    "/chat/lobby": "document.getElementById('status').textContent === 'connected'",
    "/clock/": "Number(document.getElementById('count').textContent) >= 1",
}


def test_every_page_renders_in_chromium_without_console_errors(tmp_path: Path) -> None:
    shots = Path(os.environ.get("SHOWCASE_SCREENSHOTS") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with serve(app) as base, chromium() as plain:
        browser = RecordingBrowser(plain)
        for path in PAGES:
            url = base + path
            session = browser.load(url)
            browser.wait_for(session, READY.get(path, "document.body.innerText.length > 0"))
            assert browser.evaluate(session, "!!document.querySelector('link[rel=icon]')")
            if path != "/":
                assert browser.evaluate(session, "!!document.querySelector('a[href=\"/\"]')")
            font = browser.evaluate(session, "getComputedStyle(document.body).fontFamily")
            assert "system-ui" in font, path  # a stylesheet applied
            picture = base64.b64decode(browser.call("Page.captureScreenshot", session)["data"])
            name = path.strip("/").replace("/", "_") or "home"
            (shots / f"{name}.png").write_bytes(picture)
            assert picture.startswith(b"\x89PNG\r\n\x1a\n")
            assert struct.unpack(">II", picture[16:24]) == (WIDTH, HEIGHT)
            errors = browser.errors(session)
            if path == "/static/nope":  # the 404 itself is the page's point
                errors = [e for e in errors if "404" not in e or url not in e]
            assert errors == [], (path, errors)


def test_a_page_on_another_origin_cannot_open_the_chat_in_chromium() -> None:
    with serve(app) as base, chromium() as plain:
        browser = RecordingBrowser(plain)
        # Same server, other origin: localhost is not 127.0.0.1 to a browser.
        other = base.replace("127.0.0.1", "localhost") + "/static/"
        session = browser.load(other)
        target = json.dumps(base.replace("http", "ws") + "/chat/x/ws")
        browser.evaluate(
            session,
            f"window.outcome = 'pending'; const s = new WebSocket({target});"
            "s.onopen = () => { window.outcome = 'opened'; };"
            "s.onclose = () => { if (window.outcome === 'pending') window.outcome = 'refused'; };",
        )
        assert browser.wait_for(session, "window.outcome !== 'pending' && window.outcome") == (
            "refused"
        )


# -- scripts/showcase.sh -------------------------------------------------------------

ROOT = HERE.parent


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the script in a tree whose ``.venv/bin/python`` logs pip and runs the rest.

    The real interpreter serves the app; ``pip`` is only recorded, so the
    test installs nothing and never touches a real venv.
    """
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "showcase.sh", tmp_path / "scripts")
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    for name in ("asgikit", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1 $2" = "-m pip" ]; then echo "$*" >>"{tmp_path}/pip.log"; exit 0; fi\n'
        f'PYTHONPATH="{tmp_path}" exec "{sys.executable}" "$@"\n'
    )
    python.chmod(0o755)
    return tmp_path


def start_script(tree: Path, port: int) -> subprocess.Popen[bytes]:
    with (tree / "server.log").open("ab") as log:
        return subprocess.Popen(
            ["bash", str(tree / "scripts" / "showcase.sh"), "--port", str(port)],
            stdout=log,
            stderr=log,
        )


def wait_until_up(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30  # a hang guard, not a speed check
    while True:
        assert process.poll() is None, "the showcase exited early"
        try:
            httpx.get(base + "/health", timeout=1)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the showcase did not start"
            time.sleep(0.1)


def test_showcase_script_installs_once_then_only_when_pyproject_changes(checkout: Path) -> None:
    def run_once() -> None:
        port = free_port()
        process = start_script(checkout, port)
        try:
            wait_until_up(f"http://127.0.0.1:{port}", process)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(30)

    run_once()
    assert (checkout / "pip.log").read_text().count("install -q -e") == 1
    run_once()
    assert (checkout / "pip.log").read_text().count("install -q -e") == 1
    with (checkout / "pyproject.toml").open("a") as pyproject:
        pyproject.write("\n# changed\n")
    run_once()
    assert (checkout / "pip.log").read_text().count("install -q -e") == 2


def test_showcase_script_stops_on_ctrl_c_with_the_clock_and_chat_open(checkout: Path) -> None:
    (checkout / "pip.log").touch()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    process = start_script(checkout, port)
    try:
        wait_until_up(base, process)
        # A browser, as a visitor has it: uvicorn then waits on the open
        # EventSource and WebSocket until its graceful-shutdown bound.
        with chromium() as plain:
            browser = RecordingBrowser(plain)
            clock = browser.load(base + "/clock/")
            browser.wait_for(clock, READY["/clock/"])
            chat = browser.load(base + "/chat/lobby")
            browser.wait_for(chat, READY["/chat/lobby"])
            process.send_signal(signal.SIGINT)  # what Ctrl+C sends
            assert process.wait(30) == 0  # a hang guard: unbounded, it never exits
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# -- the API's rate limit ---------------------------------------------------------------


def test_the_api_answers_429_past_its_rate_limit_and_pages_stay_open() -> None:
    # A client address of its own: the limit counts per client, and no other test uses it.
    with TestClient(app, client=("198.51.100.7", 40000)) as client:
        first = client.get("/api/users/1")
        assert first.status_code == 200
        assert first.headers["ratelimit-policy"] == '"default";q=120;w=60'
        assert first.headers["ratelimit"].startswith('"default";r=119;')
        # The quota refills (one request every 0.5 s) while the loop runs, so
        # count the answers until the first refusal instead of timing them.
        allowed = 1
        while (answer := client.get("/api/users")).status_code == 200:
            allowed += 1
            assert allowed < 1000, "never limited"
        assert answer.status_code == 429
        assert allowed >= 120
        assert int(answer.headers["retry-after"]) >= 1
        page = client.get("/health")  # only the API is limited
        assert page.status_code == 200
        assert "ratelimit" not in page.headers
    with TestClient(app, client=("198.51.100.8", 40000)) as other:
        assert other.get("/api/users/1").status_code == 200  # each client has its own


# -- spans to an OTLP collector ---------------------------------------------------------


class Collector(http.server.BaseHTTPRequestHandler):
    """A stand-in OTLP/HTTP collector: keeps each POST (path, content type, body)."""

    posts: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        self.posts.append((self.path, self.headers.get("content-type", ""), body))
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[tuple[str, list[tuple[str, str, bytes]]]]:
    posts: list[tuple[str, str, bytes]] = []
    handler = type("Recorder", (Collector,), {"posts": posts})
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}", posts
        finally:
            server.shutdown()
            thread.join(10)


def test_spans_reach_the_otlp_endpoint_and_shutdown_flushes_them(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    url, posts = collector
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SERVICE_NAME", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    # Ten minutes between scheduled exports: only the shutdown's flush can send the span.
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "600000")
    traced = showcase.traced(showcase.site)
    assert traced is not showcase.site
    with TestClient(traced, client=("198.51.100.20", 1)) as client:
        assert client.get("/api/users/1").json()["name"] == "Ada"
        assert posts == []  # batched, not sent yet
    assert [(path, kind) for path, kind, _ in posts] == [("/v1/traces", "application/x-protobuf")]
    assert b"/api/users/{user_id:int}" in posts[0][2]
    sent = ExportTraceServiceRequest.FromString(posts[0][2])
    spans = [span for rs in sent.resource_spans for ss in rs.scope_spans for span in ss.spans]
    assert [span.name for span in spans] == ["GET /api/users/{user_id:int}"]
    attributes = {a.key: a.value for a in spans[0].attributes}
    assert attributes["http.route"].string_value == "/api/users/{user_id:int}"
    assert attributes["http.response.status_code"].int_value == 200
    service = {a.key: a.value.string_value for a in sent.resource_spans[0].resource.attributes}
    assert service["service.name"] == "asgikit-showcase"


def test_under_uvicorn_the_variable_alone_turns_the_export_on(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, list[tuple[str, str, bytes]]]
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
    url, posts = collector
    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_SDK_DISABLED"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": url,
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # only the shutdown's flush sends
        "OTEL_SERVICE_NAME": "showcase-under-uvicorn",
    }
    with serve_process("examples.showcase:app", env=env, probe="/health") as base:
        assert httpx.get(base + "/api/users/1", timeout=10).status_code == 200
        assert posts == []
    # uvicorn stopped (SIGTERM): its lifespan shutdown flushed the batch.
    bodies = [body for path, kind, body in posts if path == "/v1/traces"]
    assert bodies
    assert any(b"/api/users/{user_id:int}" in body for body in bodies)
    assert any(b"showcase-under-uvicorn" in body for body in bodies)


def test_without_an_otlp_endpoint_nothing_of_opentelemetry_is_imported() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = str(ROOT)
    code = (
        "import sys, examples.showcase as s\n"
        "assert s.app is s.site\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


# -- the chat after a broadcast outage --------------------------------------------------


class ReconnectingBackend:
    """A broadcast backend in memory that can do what RedisBackend does on reconnecting.

    ``reconnected(channel)`` delivers a ``Gap``: every subscriber of the
    channel then reads ``MessagesLost`` once, as after a Redis outage.
    """

    async def connect(self) -> None:
        self._send, self._receive = anyio.create_memory_object_stream[Event | Gap](64)

    async def disconnect(self) -> None:
        self._send.close()
        self._receive.close()

    async def subscribe(self, channel: str) -> None:
        pass

    async def unsubscribe(self, channel: str) -> None:
        pass

    async def publish(self, channel: str, message: str | bytes) -> None:
        await self._send.send(Event(channel, message))

    async def next_published(self) -> Event | Gap:
        return await self._receive.receive()

    async def reconnected(self, channel: str) -> None:
        await self._send.send(Gap(channel))


async def test_the_chat_tells_its_clients_of_a_gap_and_goes_on() -> None:
    backend = ReconnectingBackend()

    @asynccontextmanager
    async def resources() -> AsyncIterator[dict[str, Any]]:
        async with Broadcast(backend=backend) as broadcast:
            yield {"broadcast": broadcast}

    chat = stack(
        lifespan(handler=resources), router(websocket_route("/chat/{room}/ws", chat_socket))
    )
    async with (
        AsyncTestClient(chat) as client,
        client.websocket_connect("/chat/r/ws") as alice,
        client.websocket_connect("/chat/r/ws") as bob,
    ):
        with anyio.fail_after(10):  # a hang guard
            assert await alice.receive_json() == {"type": "joined"}
            assert await bob.receive_json() == {"type": "joined"}
            await backend.reconnected("chat:r")
            assert await alice.receive_json() == {"type": "gap"}
            assert await bob.receive_json() == {"type": "gap"}
            await alice.send_json({"name": "alice", "text": "still here"})
            assert await bob.receive_json() == {"name": "alice", "text": "still here"}
            assert await alice.receive_json() == {"name": "alice", "text": "still here"}


def test_the_chat_page_shows_a_gap_as_a_system_line_in_chromium() -> None:
    async def gap_socket(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"type": "joined"})
        await websocket.send_json({"type": "gap"})
        await websocket.send_json({"name": "bob", "text": "after"})
        await websocket.receive()  # until the page goes

    page = router(
        route("/chat/{room}", chat_page),
        websocket_route("/chat/{room}/ws", gap_socket),
        mount("/static", static_files(directory=STATIC)),
    )
    with serve(page) as base, chromium() as plain:
        browser = RecordingBrowser(plain)
        session = browser.load(base + "/chat/x")
        browser.wait_for(session, "document.querySelectorAll('#log li').length >= 2")
        lines = browser.evaluate(
            session,
            "[...document.querySelectorAll('#log li')].map(li => [li.className, li.textContent])",
        )
        assert lines[0][0] == "system"
        assert "missed" in lines[0][1]
        assert lines[1] == ["", "bob: after"]
        assert browser.errors(session) == []
