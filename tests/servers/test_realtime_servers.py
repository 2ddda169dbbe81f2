"""WebSockets, SSE, streaming and broadcast through real servers, clients and a browser.

The app is ``tests/servers/realtime_app.py``; its ``/state`` route reports
counters (streams opened and closed), the event loop's task count and the
process's open file descriptors, so the tests can see the server side.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.servers.chromium import chromium
from tests.servers.live import free_port, serve_process, wait_until_up
from tests.servers.redis_server import redis_server
from tests.test_broadcast import RestartableRedis

APP = "tests.servers.realtime_app:app"


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with serve_process(APP, server=request.param) as url:
        yield url


def ws(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


def state(base: str) -> dict[str, Any]:
    result: dict[str, Any] = httpx.get(base + "/state", timeout=5).json()
    return result


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.01)


# -- WebSockets with the `websockets` client ---------------------------------


def test_subprotocol_is_negotiated(base_url: str) -> None:
    with connect(ws(base_url, "/echo"), subprotocols=["x", "chat.v2"]) as client:  # type: ignore[list-item]
        assert client.subprotocol == "chat.v2"
    with connect(ws(base_url, "/echo")) as client:
        assert client.subprotocol is None


def test_close_code_and_reason_reach_the_client(base_url: str) -> None:
    with connect(ws(base_url, "/echo")) as client:
        client.send("close:4321:see you")
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
        assert (client.close_code, client.close_reason) == (4321, "see you")


def test_close_before_accept_is_a_403(base_url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws(base_url, "/refuse"), open_timeout=5)
    assert info.value.response.status_code == 403


def test_deny_is_a_real_http_response(base_url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws(base_url, "/deny"), open_timeout=5)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert bytes(response.body or b"") == b"who are you?"


def test_unknown_path_is_refused_with_404(base_url: str) -> None:
    with pytest.raises(InvalidStatus) as info:
        connect(ws(base_url, "/nowhere"), open_timeout=5)
    assert info.value.response.status_code == 404


def test_a_thousand_messages_each_way_in_order(base_url: str) -> None:
    with connect(ws(base_url, "/echo")) as client:
        for i in range(1000):
            client.send(f"m{i}" if i % 2 else f"m{i}".encode())
        received = [client.recv(timeout=10) for _ in range(1000)]
    assert received == [f"m{i}" if i % 2 else f"m{i}".encode() for i in range(1000)]


def raw_websocket(base: str, path: str) -> socket.socket:
    """A WebSocket opened by hand, so that it can vanish without a close frame."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_a_client_that_vanishes_without_a_close_frame_ends_the_handler(base_url: str) -> None:
    before = state(base_url)["ws_closed"]
    sock = raw_websocket(base_url, "/echo")
    # Abort: RST, no close frame, no FIN handshake.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    sock.close()
    wait_until(lambda: state(base_url)["ws_closed"] > before, 5, "the handler's finally ran")


# -- SSE and streaming with httpx -------------------------------------------


def test_sse_events_reach_an_httpx_client(base_url: str) -> None:
    with httpx.stream(
        "GET", base_url + "/clock/events?interval=0.05", headers={"Last-Event-ID": "41"}, timeout=5
    ) as response:
        assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if len(lines) >= 8:
                break
    assert lines[:3] == ["event: tick", "id: 42", lines[2]]
    assert json.loads(lines[2].removeprefix("data: "))["n"] == 42
    assert lines[4:6] == ["event: tick", "id: 43"]


@pytest.mark.parametrize(
    ("path", "counter"),
    [("/clock/events?interval=0.01", "sse_closed"), ("/stream", "stream_closed")],
)
def test_streams_stop_within_a_second_of_the_client_leaving(
    base_url: str, path: str, counter: str
) -> None:
    before = state(base_url)
    with httpx.stream("GET", base_url + path, timeout=5) as response:
        for _ in response.iter_bytes():
            break
    wait_until(lambda: state(base_url)[counter] > before[counter], 1.0, "the generator was closed")


# -- server shutdown -------------------------------------------------------


@contextlib.contextmanager
def server_process(server: str, args: list[str], marker: Path) -> Iterator[tuple[Any, str]]:
    """The real-time app under ``server`` in a session of its own (for a Ctrl+C to its group)."""
    port = free_port()
    command = {
        "uvicorn": ["-m", "uvicorn", APP, "--host", "127.0.0.1", "--port", str(port)],
        "hypercorn": ["-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}"],
    }[server]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "SHUTDOWN_MARKER": str(marker)}
    with (marker.parent / "stderr").open("w+") as stderr:
        process = subprocess.Popen(
            [sys.executable, *command, *args],
            cwd=root,
            env=env,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(base + "/", process=process)
            yield process, base
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.mark.parametrize(
    ("server", "args", "how"),
    [
        ("uvicorn", [], "SIGTERM"),
        ("uvicorn", [], "Ctrl+C"),
        ("hypercorn", ["--workers", "0"], "SIGTERM"),
        ("hypercorn", [], "Ctrl+C"),
    ],
)
def test_open_sse_and_websockets_do_not_hold_the_server_at_shutdown(
    tmp_path: Path, server: str, args: list[str], how: str
) -> None:
    # No graceful timeout given: uvicorn would wait for ever for these.
    marker = tmp_path / "marker"
    with (
        server_process(server, args, marker) as (process, url),
        httpx.stream("GET", url + "/clock/events?interval=0.05", timeout=20) as sse,
        connect(ws(url, "/echo"), open_timeout=5) as echo,
        connect(ws(url, "/chat/shutdown/ws"), open_timeout=5) as chat,
        connect(ws(url, "/feed"), open_timeout=5) as feed,
    ):
        events = sse.iter_lines()
        assert next(events) == "event: tick"
        echo.send("x")
        assert echo.recv(timeout=5) == "x"
        assert json.loads(chat.recv(timeout=5)) == {"type": "joined"}
        assert json.loads(feed.recv(timeout=5)) == {"type": "joined"}
        if how == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        else:
            os.killpg(process.pid, signal.SIGINT)  # what a terminal does on Ctrl+C
        returncode = process.wait(20)  # hang guard only
        list(events)  # the stream ended cleanly: no error while reading its end
        for client in (echo, chat):
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=5)
            assert client.close_code in (1001, 1012)  # going away, or uvicorn's service restart
        with pytest.raises(ConnectionClosed):
            feed.recv(timeout=5)
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr, stderr
    # uvicorn re-raises SIGTERM once it has shut down cleanly, so that the
    # process reports how it was stopped; otherwise a clean stop is 0.
    assert returncode == (-signal.SIGTERM if (server, how) == ("uvicorn", "SIGTERM") else 0)
    assert {"sse_closed", "ws_closed", "feed_closed"} <= set(marker.read_text().split())


def test_an_endless_plain_stream_is_cut_by_the_graceful_timeout_without_a_traceback(
    tmp_path: Path,
) -> None:
    # A StreamingResponse is left to finish (a download must not look complete
    # when cut short); uvicorn's graceful timeout is the backstop.
    marker = tmp_path / "marker"
    args = ["--timeout-graceful-shutdown", "1"]
    with (
        server_process("uvicorn", args, marker) as (process, url),
        httpx.stream("GET", url + "/stream", timeout=20) as stream,
    ):
        chunks = stream.iter_bytes()
        next(chunks)
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        with pytest.raises(httpx.RemoteProtocolError):  # visibly incomplete
            list(chunks)
    stderr = (tmp_path / "stderr").read_text()
    assert "Traceback" not in stderr, stderr
    assert "stream_closed" in marker.read_text().split()


# -- broadcast across processes through Redis ---------------------------------


def test_chat_reaches_clients_of_another_process_through_redis() -> None:
    with redis_server() as redis_url:
        env = {"BROADCAST_URL": redis_url}
        with (
            serve_process(APP, env=env) as one,
            serve_process(APP, server="hypercorn", env=env) as two,
            connect(ws(one, "/chat/r/ws")) as alice,
            connect(ws(two, "/chat/r/ws")) as bob,
        ):
            assert json.loads(alice.recv(timeout=5)) == {"type": "joined"}
            assert json.loads(bob.recv(timeout=5)) == {"type": "joined"}
            alice.send(json.dumps({"name": "alice", "text": "hi bob"}))
            expected = {"name": "alice", "text": "hi bob"}
            assert json.loads(bob.recv(timeout=5)) == expected
            assert json.loads(alice.recv(timeout=5)) == expected
            bob.send(json.dumps({"name": "bob", "text": "hi"}))
            assert json.loads(alice.recv(timeout=5))["name"] == "bob"


def test_chat_survives_a_redis_restart_and_tells_clients_of_the_gap(tmp_path: Path) -> None:
    redis = RestartableRedis(str(tmp_path))
    redis.start()
    try:
        with (
            serve_process(APP, env={"BROADCAST_URL": redis.url}) as url,
            connect(ws(url, "/chat/restart/ws")) as alice,
        ):
            assert json.loads(alice.recv(timeout=5)) == {"type": "joined"}
            alice.send(json.dumps({"name": "alice", "text": "before"}))
            assert json.loads(alice.recv(timeout=5))["text"] == "before"
            redis.stop()
            redis.start()
            assert json.loads(alice.recv(timeout=20)) == {"type": "gap"}
            with connect(ws(url, "/chat/restart/ws")) as bob:
                assert json.loads(bob.recv(timeout=5)) == {"type": "joined"}
                bob.send(json.dumps({"name": "bob", "text": "after"}))
                assert json.loads(alice.recv(timeout=5)) == {"name": "bob", "text": "after"}
    finally:
        redis.stop()


# -- the showcase pages in a headless Chromium --------------------------------


def test_chat_and_clock_pages_work_in_chromium() -> None:
    with serve_process(APP) as url, chromium() as browser:
        page = browser.open(url + "/chat/lobby")
        browser.wait_for(page, "document.getElementById('status').textContent === 'connected'")
        with connect(ws(url, "/chat/lobby/ws")) as other:
            assert json.loads(other.recv(timeout=5)) == {"type": "joined"}
            browser.evaluate(
                page,
                "document.getElementById('name').value = 'browser';"
                "document.getElementById('text').value = 'hello from chromium';"
                "document.getElementById('send').click(); true",
            )
            assert json.loads(other.recv(timeout=10)) == {
                "name": "browser",
                "text": "hello from chromium",
            }
            other.send(json.dumps({"name": "py", "text": "<b>hi</b>"}))
            browser.wait_for(
                page,
                "[...document.querySelectorAll('#log li')].map(li => li.textContent)"
                ".includes('py: <b>hi</b>')",
            )
        clock = browser.open(url + "/clock/?interval=0.1")
        browser.wait_for(clock, "Number(document.getElementById('count').textContent) >= 3")
        assert browser.evaluate(clock, "document.getElementById('status').textContent") == "open"
        last_id = browser.evaluate(clock, "document.getElementById('last-id').textContent")
        assert int(last_id) >= 3


# -- soak -----------------------------------------------------------------------


def test_connect_disconnect_cycles_leave_no_tasks_or_files_behind() -> None:
    with serve_process(APP) as url, httpx.Client(timeout=5) as http:

        def cycle() -> None:
            with connect(ws(url, "/echo")) as client:
                client.send("x")
                assert client.recv(timeout=5) == "x"
            with http.stream("GET", url + "/clock/events?interval=0.01") as sse:
                next(sse.iter_bytes())

        for _ in range(20):  # warm up: imports, caches, pools
            cycle()
        wait_until(lambda: (s := state(url))["sse_open"] == s["sse_closed"], 5, "warm-up done")
        before = state(url)
        # 1,500 cycles: 3,000 connections opened and dropped (a WebSocket and an SSE stream).
        for _ in range(1500):
            cycle()
        wait_until(
            lambda: (s := state(url))["sse_open"] == s["sse_closed"], 5, "all streams closed"
        )
        wait_until(
            lambda: state(url)["ws_open"] == state(url)["ws_closed"], 5, "all sockets closed"
        )
        wait_until(lambda: state(url)["tasks"] <= before["tasks"], 5, "no task left behind")
        after = state(url)
    assert after["fds"] <= before["fds"] + 2
    assert after["maxrss_kb"] < before["maxrss_kb"] + 20_000
