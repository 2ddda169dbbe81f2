"""The showcase app works end to end: through the test client and a real uvicorn."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest
from websockets.sync.client import connect

from asgikit.testing import TestClient
from examples.showcase import BIG_FILE_SIZE, app
from tests.servers.live import serve


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
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9" in download.headers["content-disposition"]
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
