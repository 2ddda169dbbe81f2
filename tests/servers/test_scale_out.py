"""The showcase scaled out: two uvicorn processes behind an nginx load balancer.

asgikit keeps no per-process state by default, so more processes behind a
load balancer is all it takes to scale.  These tests run
``examples.showcase:app`` in two uvicorn processes with one ``SESSION_SECRET``,
put nginx in front as a round-robin balancer (one worker, so the rotation is
strict), and show that

- requests alternate between the two processes while one client's session
  counter keeps counting: with signed-cookie sessions (no shared store at
  all) and with sessions kept in Redis (``SESSION_STORE``);
- a chat room spans both processes through the Redis broadcast
  (``BROADCAST_URL``): two WebSocket clients that nginx sent to different
  processes hear each other.

nginx names the backend that answered in an ``X-Upstream`` response header
(``$upstream_addr``), also on the 101 of a WebSocket handshake, so a test
knows where each request landed without the app's help.  The tests skip only
when the ``nginx`` or ``redis-server`` program is missing (Debian packages
``nginx-light`` and ``redis-server``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from tests.servers.live import free_port, serve_process, wait_until_up
from tests.servers.redis_server import redis_server

pytestmark = pytest.mark.servers

SHOWCASE = "examples.showcase:app"
SECRET = "scale-out test secret: the same in every process"

NGINX_CONF = """\
{user}
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;

events {{
    worker_connections 256;
}}

http {{
    access_log off;
{temp_paths}
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    upstream showcase {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://showcase;
            proxy_http_version 1.1;
            proxy_set_header Host $host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    """The nginx program; Debian puts it in /usr/sbin, which a user's PATH may lack."""
    found = shutil.which("nginx")
    if found is None and os.access("/usr/sbin/nginx", os.X_OK):
        found = "/usr/sbin/nginx"
    return found


def temp_path_directives(binary: str, tmp: Path) -> str:
    """Move every temp path the build configured (``--http-*-temp-path``) under ``tmp``.

    Distributions build nginx with temp paths under /var/lib/nginx, which nginx
    creates at start-up; naming only the ones this build has keeps the config
    valid for builds without, say, the uwsgi module.
    """
    built = subprocess.run([binary, "-V"], capture_output=True, text=True, timeout=10, check=True)
    names = sorted(set(re.findall(r"--http-([a-z-]+)-temp-path=", built.stderr + built.stdout)))
    lines = []
    for name in names:
        directory = tmp / name
        directory.mkdir()
        lines.append(f"    {name.replace('-', '_')}_temp_path {directory};")
    return "\n".join(lines)


@contextlib.contextmanager
def nginx(backends: list[str]) -> Iterator[str]:
    """nginx balancing round-robin over ``backends`` (``host:port``); yields its base URL."""
    binary = nginx_binary()
    if binary is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nginx-") as directory:
        tmp = Path(directory)
        conf = tmp / "nginx.conf"
        conf.write_text(
            NGINX_CONF.format(
                # As root, nginx would start its workers as "nobody", who cannot
                # use this private directory; as anyone else "user" is ignored.
                user="user root;" if os.geteuid() == 0 else "",
                tmp=tmp,
                temp_paths=temp_path_directives(binary, tmp),
                servers="\n".join(f"        server {backend};" for backend in backends),
                port=port,
            )
        )
        # -e: the log for before the config is read (the built-in path may not be writable).
        process = subprocess.Popen(
            [binary, "-p", str(tmp), "-c", str(conf), "-e", str(tmp / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            try:
                wait_until_up(base + "/health", process=process)
            except RuntimeError as exc:
                log = (tmp / "error.log").read_text() if (tmp / "error.log").exists() else ""
                raise RuntimeError(f"nginx did not start: {exc}\n{log}") from None
            yield base
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@dataclasses.dataclass
class Cluster:
    """The balancer's URL, each backend's ``host:port`` with its pid, and Redis if used."""

    url: str
    pids: dict[str, int]
    redis_url: str | None = None


@contextlib.contextmanager
def cluster(env: dict[str, str]) -> Iterator[Cluster]:
    """Two showcase processes with ``env`` behind nginx."""
    if nginx_binary() is None:
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    env = {"SESSION_SECRET": SECRET, **env}
    with (
        serve_process(SHOWCASE, env=env, probe="/health") as one,
        serve_process(SHOWCASE, env=env, probe="/health") as two,
    ):
        pids = {}
        for base in (one, two):
            # A client of its own, so these visits start no session of the tests.
            answer = httpx.get(base + "/session", timeout=5).json()
            pids[base.removeprefix("http://")] = answer["pid"]
        assert len(set(pids.values())) == 2
        with nginx(list(pids)) as url:
            yield Cluster(url, pids)


@pytest.fixture(scope="module")
def cookie_cluster() -> Iterator[Cluster]:
    """Signed-cookie sessions and the in-memory broadcast: nothing shared at all."""
    with cluster({}) as running:
        yield running


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[Cluster]:
    """Sessions in Redis and chat rooms through Redis pub/sub."""
    with (
        redis_server() as redis_url,
        cluster({"SESSION_STORE": redis_url, "BROADCAST_URL": redis_url}) as running,
    ):
        yield dataclasses.replace(running, redis_url=redis_url)


def ws(base: str, path: str) -> str:
    return "ws" + base.removeprefix("http") + path


@pytest.mark.parametrize("kind", ["cookie_cluster", "redis_cluster"])
def test_session_counts_on_whichever_process_answers_in_turn(
    request: pytest.FixtureRequest, kind: str
) -> None:
    running: Cluster = request.getfixturevalue(kind)
    answers = []
    with httpx.Client(base_url=running.url, timeout=5) as client:
        for number in range(1, 9):
            response = client.get("/session")
            assert response.status_code == 200
            answers.append((response.json(), response.headers["x-upstream"]))
            if number == 4:
                cookie_after_four = client.cookies["session"]

    assert [body["count"] for body, _ in answers] == list(range(1, 9))
    pids = [body["pid"] for body, _ in answers]
    # Round robin: never the same process twice in a row, and both take turns.
    assert all(a != b for a, b in itertools.pairwise(pids))
    assert set(pids) == set(running.pids.values())
    # nginx's record of the backend agrees with the pid the app reported.
    assert all(running.pids[upstream] == body["pid"] for body, upstream in answers)

    # Where the session lives: replaying the cookie of the fourth visit resumes
    # from 4 when the data rides in the cookie, but from 8 when the cookie only
    # names a session kept in Redis.
    with httpx.Client(base_url=running.url, timeout=5) as replay:
        replay.cookies.set("session", cookie_after_four)
        count = replay.get("/session").json()["count"]
    assert count == (5 if running.redis_url is None else 9)
    if running.redis_url is not None:
        import redis

        with redis.Redis.from_url(running.redis_url) as store:
            counts = sorted(
                json.loads(store.get(key) or b"{}")["count"] for key in store.keys("session:*")
            )
        # This client's session, and one for each pid probe of ``cluster``.
        assert counts == [1, 1, 9]


def test_chat_room_spans_processes_through_redis(redis_cluster: Cluster) -> None:
    room = ws(redis_cluster.url, "/chat/scale-out/ws")
    with connect(room, open_timeout=5) as alice, connect(room, open_timeout=5) as bob:
        assert alice.response is not None
        assert bob.response is not None
        alice_on = alice.response.headers["X-Upstream"]
        bob_on = bob.response.headers["X-Upstream"]
        assert alice_on != bob_on
        assert {alice_on, bob_on} == set(redis_cluster.pids)

        # "joined" comes after the server subscribed, so no message can be missed.
        assert json.loads(alice.recv(timeout=5)) == {"type": "joined"}
        assert json.loads(bob.recv(timeout=5)) == {"type": "joined"}

        alice.send(json.dumps({"name": "alice", "text": "hello from one process"}))
        expected = {"name": "alice", "text": "hello from one process"}
        assert json.loads(bob.recv(timeout=5)) == expected
        assert json.loads(alice.recv(timeout=5)) == expected

        bob.send(json.dumps({"name": "bob", "text": "and back from the other"}))
        expected = {"name": "bob", "text": "and back from the other"}
        assert json.loads(alice.recv(timeout=5)) == expected
        assert json.loads(bob.recv(timeout=5)) == expected
