"""The tour (examples/tour.py), route by route: in-process and under a real uvicorn.

The first half drives every route through ``asgikit.testing`` (on asyncio and
trio); the second half drives them again through uvicorn with httpx and the
``websockets`` client, so that what a real server does — lifespan state
copied per request, streamed bodies, WebSocket frames — is part of the proof.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect
from websockets.typing import Origin

from asgikit import WebSocketDisconnect
from asgikit.testing import AsyncTestClient, TestClient, WebSocketDenialResponse
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from examples import tour
from tests.servers.live import serve

ORIGIN = "http://localhost:3000"  # the tour's default allowed origin
RESPONSE_TIME = re.compile(r"^\d+\.\d{3}ms$")
HOSTILE = "<script>alert('x')</script>"


@pytest.fixture(autouse=True)
def no_ticks(monkeypatch: pytest.MonkeyPatch) -> None:
    # The streams pause between items so a browser shows them arriving; not here.
    monkeypatch.setattr(tour, "TICK", 0)


@pytest.fixture
async def client() -> AsyncIterator[AsyncTestClient]:
    async with TestClient(tour.app, follow_redirects=False) as client:
        yield client


def parse_sse(text: str) -> list[dict[str, str]]:
    """The events of a ``text/event-stream`` body, each as a dict of its fields."""
    events = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if fields:
            events.append(fields)
    return events


def check_events(events: list[dict[str, str]]) -> None:
    numbered = [e for e in events if "event" not in e]
    assert [e["id"] for e in numbered] == ["1", "2", "3", "4", "5"]
    assert [json.loads(e["data"]) for e in numbered] == [{"number": n} for n in range(1, 6)]
    assert events[-1] == {"event": "done", "data": "done"}
    assert len(events) == 6


def check_timestamp(value: str) -> None:
    stamp = datetime.fromisoformat(value)
    assert abs(datetime.now(timezone.utc) - stamp) < timedelta(minutes=5)


# -- Pages, health, redirect ---------------------------------------------------


async def test_home_page_is_html_linking_to_the_users_api(client: AsyncTestClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert 'href="http://testserver/api/users"' in response.text
    assert 'href="http://testserver/static/style.css"' in response.text


async def test_links_and_redirects_follow_the_root_path() -> None:
    async with TestClient(tour.app, root_path="/tour", follow_redirects=False) as client:
        home = await client.get("/")
        redirect = await client.get("/redirect")
    links = re.findall(r'href="([^"]+)"', home.text)
    assert "http://testserver/tour/api/users" in links
    assert "http://testserver/tour/static/style.css" in links
    assert all(link.startswith("http://testserver/tour/") for link in links)
    assert redirect.headers["location"] == "http://testserver/tour/api/users"


async def test_health_reports_uptime_and_counts_the_cache(client: AsyncTestClient) -> None:
    first = (await client.get("/health")).json()
    assert first["status"] == "ok"
    assert first["uptime"] >= 0
    assert first["cache"] == 0
    await client.get("/api/users/1")
    await client.get("/api/users/2")
    await client.get("/api/users/1")
    second = (await client.get("/health")).json()
    assert second["cache"] == 2
    assert second["uptime"] >= first["uptime"]


async def test_redirect_is_a_302_to_the_users_api(client: AsyncTestClient) -> None:
    response = await client.get("/redirect")
    assert response.status_code == 302
    assert response.headers["location"] == "http://testserver/api/users"
    followed = await client.get("/redirect", follow_redirects=True)
    assert followed.json()["total"] == 3


# -- The users API -----------------------------------------------------------


async def test_users_list_pages_and_reports_the_total(client: AsyncTestClient) -> None:
    everyone = (await client.get("/api/users")).json()
    assert [u["id"] for u in everyone["users"]] == [1, 2, 3]
    assert (everyone["page"], everyone["page_size"], everyone["total"]) == (1, 10, 3)
    page = (await client.get("/api/users", params={"page": 2, "page_size": 2})).json()
    assert [u["id"] for u in page["users"]] == [3]
    assert (page["page"], page["page_size"], page["total"]) == (2, 2, 3)
    beyond = (await client.get("/api/users", params={"page": 9})).json()
    assert beyond["users"] == []
    assert beyond["total"] == 3


@pytest.mark.parametrize(
    "query",
    [
        "page=0", "page=x", "page=-1", "page=", "page=1.5", "page_size=0", "page_size=101",
        # "²".isdigit() is true but int("²") fails; int() refuses 5000 digits.
        "page=%C2%B2", "page_size=" + "1" * 5000,
    ],
)  # fmt: skip
async def test_invalid_pagination_is_a_json_400(client: AsyncTestClient, query: str) -> None:
    response = await client.get("/api/users?" + query)
    assert response.status_code == 400
    assert "must be an integer" in response.json()["error"]


async def test_one_user_by_id_or_a_json_404(client: AsyncTestClient) -> None:
    response = await client.get("/api/users/2")
    assert response.json() == {"id": 2, "name": "Alan Turing", "email": "alan@example.com"}
    missing = await client.get("/api/users/99")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/json"
    assert missing.json() == {"error": "Not Found", "path": "/api/users/99"}
    # Not an int: the route does not match at all; the same JSON 404.
    assert (await client.get("/api/users/ada")).json()["path"] == "/api/users/ada"


async def test_creating_a_user_answers_201_and_lists_them(client: AsyncTestClient) -> None:
    response = await client.post("/api/users", json={"name": "Barbara", "email": "b@example.com"})
    assert response.status_code == 201
    assert response.json() == {"id": 4, "name": "Barbara", "email": "b@example.com"}
    assert (await client.get("/api/users/4")).json()["name"] == "Barbara"
    assert (await client.get("/api/users")).json()["total"] == 4


async def test_malformed_json_is_a_json_400(client: AsyncTestClient) -> None:
    response = await client.post(
        "/api/users", content=b"{name", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("Malformed JSON body")


async def test_an_oversized_body_is_a_json_413(client: AsyncTestClient) -> None:
    name = "x" * (tour.MAX_USER_BODY + 1)
    response = await client.post("/api/users", json={"name": name, "email": "e@example.com"})
    assert response.status_code == 413
    assert "larger than" in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [{}, {"name": "x"}, {"email": "x@example.com"}, {"name": "", "email": "e"}, {"name": 1}, []],
)
async def test_missing_name_or_email_is_a_422(client: AsyncTestClient, body: Any) -> None:
    response = await client.post("/api/users", json=body)
    assert response.status_code == 422
    assert "error" in response.json()
    assert (await client.get("/api/users")).json()["total"] == 3


def watch_last_byte(app: ASGIApp, seen: list[int]) -> ASGIApp:
    """Records how many mails the outbox held when the response's last byte was sent."""

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        async def on_send(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                seen.append(len(scope["state"]["outbox"]))

        await app(scope, receive, on_send)

    return watched


async def test_welcome_mail_is_sent_after_the_response() -> None:
    seen: list[int] = []
    async with TestClient(watch_last_byte(tour.app, seen)) as client:
        response = await client.post("/api/users", json={"name": "Kay", "email": "k@example.com"})
        assert response.status_code == 201
        assert seen == [0]  # nothing sent when the client had the whole response...
        assert (await client.get("/health")).json()["mails_sent"] == 1  # ...but right after


async def test_a_failing_post_sends_no_mail(client: AsyncTestClient) -> None:
    await client.post("/api/users", json={"name": "No email"})
    assert (await client.get("/health")).json()["mails_sent"] == 0


# -- Streams -----------------------------------------------------------------


async def test_stream_sends_five_numbered_events_then_done(client: AsyncTestClient) -> None:
    async with client.stream("GET", "/api/stream") as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        text = "".join([chunk async for chunk in response.aiter_text()])
    check_events(parse_sse(text))


async def test_stream_file_is_text_sent_line_by_line(client: AsyncTestClient) -> None:
    async with client.stream("GET", "/api/stream/file", params={"lines": 3}) as response:
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert "content-length" not in response.headers
        chunks = [chunk async for chunk in response.aiter_raw()]
    assert chunks == [b"line 1 of 3\n", b"line 2 of 3\n", b"line 3 of 3\n"]
    default = await client.get("/api/stream/file")
    assert default.text.splitlines()[-1] == "line 10 of 10"
    assert (await client.get("/api/stream/file?lines=0")).status_code == 400
    assert (await client.get("/api/stream/file?lines=%C2%B9")).status_code == 400


# -- WebSockets --------------------------------------------------------------


async def test_chat_echoes_with_a_prefix(client: AsyncTestClient) -> None:
    async with client.websocket_connect("/ws/chat") as ws:
        await ws.send_text("hello")
        assert await ws.receive_text() == "Message text was: hello"
        await ws.send_text("again")
        assert await ws.receive_text() == "Message text was: again"


async def test_json_echo_adds_a_timestamp(client: AsyncTestClient) -> None:
    async with client.websocket_connect("/ws/json") as ws:
        await ws.send_json({"n": 1, "tags": ["a"]})
        reply = await ws.receive_json()
    assert reply["echo"] == {"n": 1, "tags": ["a"]}
    check_timestamp(reply["timestamp"])


async def test_json_echo_closes_1003_on_malformed_json(client: AsyncTestClient) -> None:
    async with client.websocket_connect("/ws/json") as ws:
        await ws.send_text("{not json")
        with pytest.raises(WebSocketDisconnect) as info:
            await ws.receive_text()
    assert info.value.code == 1003


async def test_unknown_websocket_path_is_refused_with_404(client: AsyncTestClient) -> None:
    with pytest.raises(WebSocketDenialResponse) as info:
        async with client.websocket_connect("/ws/nope"):
            pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 404


@pytest.mark.parametrize("path", ["/ws/chat", "/ws/json"])
async def test_a_websocket_from_another_origin_is_refused_with_403(
    client: AsyncTestClient, path: str
) -> None:
    # A hostile page would open the socket with the visitor's session cookie.
    with pytest.raises(WebSocketDenialResponse) as info:
        async with client.websocket_connect(path, headers={"origin": "https://evil.example"}):
            pass  # pragma: no cover - the handshake is refused
    assert info.value.status_code == 403


@pytest.mark.parametrize("path", ["/ws/chat", "/ws/json"])
@pytest.mark.parametrize("origin", ["http://testserver", ORIGIN])
async def test_a_websocket_from_the_sites_own_or_a_cors_origin_is_accepted(
    client: AsyncTestClient, path: str, origin: str
) -> None:
    async with client.websocket_connect(path, headers={"origin": origin}) as ws:
        await ws.send_text('"hi"')
        assert "hi" in await ws.receive_text()


# -- Static files and the template page ----------------------------------------


async def test_static_files_are_served_with_ranges(client: AsyncTestClient) -> None:
    css = await client.get("/static/style.css")
    assert css.status_code == 200
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    part = await client.get("/static/notes.txt", headers={"range": "bytes=0-9"})
    assert part.status_code == 206
    assert part.content == b"0123456789"
    missing = await client.get("/static/missing.css")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found", "path": "/static/missing.css"}


async def test_template_page_escapes_the_user_value(client: AsyncTestClient) -> None:
    response = await client.get("/hello", params={"name": HOSTILE})
    assert response.status_code == 200
    assert HOSTILE not in response.text
    assert "<h1>Hello, &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;!</h1>" in response.text


async def test_template_page_counts_visits_in_the_session(client: AsyncTestClient) -> None:
    first = await client.get("/hello")
    assert 'id="visits">1<' in first.text
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("session=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert 'id="visits">2<' in (await client.get("/hello")).text
    client.cookies.clear()
    assert 'id="visits">1<' in (await client.get("/hello")).text


# -- Middleware: CORS, timing --------------------------------------------------


async def test_cors_answers_a_preflight_for_the_allowed_origin(client: AsyncTestClient) -> None:
    preflight = await client.options(
        "/api/users",
        headers={
            "origin": ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    refused = await client.options(
        "/api/users",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
    )
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


async def test_cors_headers_on_simple_requests(client: AsyncTestClient) -> None:
    allowed = await client.get("/api/users", headers={"origin": ORIGIN})
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "X-Response-Time" in allowed.headers["access-control-expose-headers"]
    other = await client.get("/api/users", headers={"origin": "https://evil.example"})
    assert other.status_code == 200
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    "path", ["/", "/health", "/api/users/99", "/api/stream", "/static/style.css", "/nope"]
)
async def test_every_response_carries_x_response_time(client: AsyncTestClient, path: str) -> None:
    response = await client.get(path)
    assert RESPONSE_TIME.match(response.headers["x-response-time"])
    assert response.headers["server-timing"].startswith("app;dur=")


# -- Errors ------------------------------------------------------------------


async def test_unknown_path_is_a_json_404(client: AsyncTestClient) -> None:
    response = await client.get("/no/such/page")
    assert response.status_code == 404
    assert response.json() == {"error": "Not Found", "path": "/no/such/page"}


async def test_wrong_method_is_a_json_405_with_allow(client: AsyncTestClient) -> None:
    response = await client.delete("/api/users")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert response.json() == {"error": "Method Not Allowed"}


async def test_an_unexpected_exception_is_a_json_500() -> None:
    async with TestClient(tour.app, raise_server_exceptions=False) as client:
        response = await client.get("/error", headers={"origin": ORIGIN})
    assert response.status_code == 500
    assert response.json() == {"error": "Internal Server Error"}
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert RESPONSE_TIME.match(response.headers["x-response-time"])


async def test_the_500_still_reaches_the_server_to_be_logged() -> None:
    async with TestClient(tour.app) as client:
        with pytest.raises(RuntimeError, match="deliberate"):
            await client.get("/error")


# -- Lifespan ------------------------------------------------------------------


def test_lifespan_sets_up_fresh_state_and_tears_it_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=tour.__name__)
    with TestClient(tour.app) as client:
        client.post("/api/users", json={"name": "Lin", "email": "lin@example.com"})
        client.get("/api/users/1")
        assert client.get("/api/users").json()["total"] == 4
        assert "tour: shut down" not in caplog.text
    assert "tour: started with 3 users" in caplog.text
    assert "tour: shut down; 1 cached users, 1 mails sent" in caplog.text
    with TestClient(tour.app) as client:  # a new start-up: the seed data again
        assert client.get("/api/users").json()["total"] == 3


def test_the_trio_backend_runs_the_tour(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=tour.__name__)
    with TestClient(tour.app, backend="trio") as client:
        assert client.get("/health").json()["status"] == "ok"
        with client.websocket_connect("/ws/chat") as ws:
            ws.send_text("trio")
            assert ws.receive_text() == "Message text was: trio"
    assert "tour: shut down" in caplog.text


# -- The same routes through a real uvicorn -----------------------------------


@pytest.fixture(scope="module")
def live() -> Iterator[str]:
    with serve(tour.app) as base_url:
        yield base_url


@pytest.fixture
def http(live: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live, timeout=10) as client:
        yield client


def ws_url(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.01)


def test_live_home_health_and_redirect(http: httpx.Client, live: str) -> None:
    home = http.get("/")
    assert home.status_code == 200
    assert f'href="{live}/api/users"' in home.text
    health = http.get("/health").json()
    assert health["status"] == "ok"
    assert health["uptime"] >= 0
    redirect = http.get("/redirect")
    assert redirect.status_code == 302
    assert redirect.headers["location"] == f"{live}/api/users"


def test_live_users_api(http: httpx.Client) -> None:
    before = http.get("/api/users").json()["total"]
    page = http.get("/api/users", params={"page": 1, "page_size": 2}).json()
    assert len(page["users"]) == 2
    assert page["total"] == before
    assert http.get("/api/users", params={"page": "x"}).status_code == 400
    assert http.get("/api/users/1").json()["name"] == "Ada Lovelace"
    assert http.get("/api/users/999").json() == {"error": "Not Found", "path": "/api/users/999"}
    cached = http.get("/health").json()["cache"]
    assert cached >= 1
    assert http.post("/api/users", content=b"{").status_code == 400
    assert http.post("/api/users", json={"name": "x"}).status_code == 422
    created = http.post("/api/users", json={"name": "Live", "email": "live@example.com"})
    assert created.status_code == 201
    assert http.get(f"/api/users/{created.json()['id']}").json()["name"] == "Live"
    wait_until(lambda: http.get("/health").json()["mails_sent"] >= 1, "the welcome mail")


def test_live_streams(http: httpx.Client) -> None:
    with http.stream("GET", "/api/stream") as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        text = "".join(response.iter_text())
    check_events(parse_sse(text))
    with http.stream("GET", "/api/stream/file") as response:
        assert response.headers["transfer-encoding"] == "chunked"
        lines = list(response.iter_lines())
    assert lines == [f"line {n} of 10" for n in range(1, 11)]


def test_live_static_and_template(http: httpx.Client) -> None:
    assert http.get("/static/style.css").headers["content-type"] == "text/css; charset=utf-8"
    assert http.get("/static/notes.txt", headers={"range": "bytes=0-3"}).content == b"0123"
    assert http.get("/static/missing").json()["error"] == "Not Found"
    page = http.get("/hello", params={"name": HOSTILE})
    assert HOSTILE not in page.text
    assert "&lt;script&gt;" in page.text
    assert 'id="visits">1<' in page.text
    assert 'id="visits">2<' in http.get("/hello").text  # the session cookie came back


def test_live_middleware_and_errors(http: httpx.Client) -> None:
    preflight = http.options(
        "/api/users", headers={"origin": ORIGIN, "access-control-request-method": "POST"}
    )
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    simple = http.get("/health", headers={"origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert RESPONSE_TIME.match(simple.headers["x-response-time"])
    assert http.get("/nope").json() == {"error": "Not Found", "path": "/nope"}
    assert http.put("/api/users").headers["allow"] == "GET, HEAD, POST"
    error = http.get("/error")  # uvicorn logs the exception server_errors raises again
    assert error.status_code == 500
    assert error.json() == {"error": "Internal Server Error"}
    assert RESPONSE_TIME.match(error.headers["x-response-time"])


def test_live_websockets(live: str) -> None:
    with connect(ws_url(live, "/ws/chat")) as chat:
        chat.send("over the wire")
        assert chat.recv(timeout=5) == "Message text was: over the wire"
    with connect(ws_url(live, "/ws/json")) as echo:
        echo.send(json.dumps({"hello": [1, 2]}))
        reply = json.loads(echo.recv(timeout=5))
        assert reply["echo"] == {"hello": [1, 2]}
        check_timestamp(reply["timestamp"])
        echo.send("{broken")
        with pytest.raises(ConnectionClosed):
            echo.recv(timeout=5)
        assert echo.close_code == 1003
    with pytest.raises(InvalidStatus) as refused:
        connect(ws_url(live, "/ws/chat"), origin=Origin("https://evil.example"))
    assert refused.value.response.status_code == 403
    with connect(ws_url(live, "/ws/chat"), origin=Origin(live)) as same_site:
        same_site.send("same site")
        assert same_site.recv(timeout=5) == "Message text was: same site"


def test_live_lifespan_tears_down(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=tour.__name__)
    with serve(tour.app) as base_url:
        assert httpx.get(base_url + "/api/users/3", timeout=10).status_code == 200
        assert "tour: shut down" not in caplog.text
    assert "tour: shut down; 1 cached users, 0 mails sent" in caplog.text
