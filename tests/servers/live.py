"""Run an ASGI app under a real server on a free loopback port, for tests.

``with serve(app) as base_url:`` starts uvicorn in a background thread (its
own event loop) and stops it on exit.  ``serve_process`` starts a server in
a subprocess from an import string, for servers that want their own process
(hypercorn, granian, daphne) or for tests that measure the process.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(app: Any, *, lifespan: str = "on", **config: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a thread; yields ``http://127.0.0.1:PORT``."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            lifespan=lifespan,
            log_level="warning",
            **config,
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn took too long to start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)


def wait_until_up(url: str, *, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers (any status), or fail after 20 seconds."""
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing answered at {url}") from None
            time.sleep(0.05)


@contextlib.contextmanager
def serve_process(
    target: str,
    *,
    server: str = "uvicorn",
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
    probe: str = "/",
) -> Iterator[str]:
    """Run ``module:app`` under ``server`` in a subprocess; yields the base URL."""
    port = free_port()
    python = sys.executable
    commands = {
        "uvicorn": [
            python,
            "-m",
            "uvicorn",
            target,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        "hypercorn": [python, "-m", "hypercorn", target, "--bind", f"127.0.0.1:{port}"],
        "granian": [
            python,
            "-m",
            "granian",
            "--interface",
            "asgi",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            target,
        ],
        "daphne": [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), target],
    }
    command = commands[server] + (args or [])
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    full_env = {**os.environ, "PYTHONPATH": root, **(env or {})}
    process = subprocess.Popen(command, env=full_env, cwd=root)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + probe, process=process)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
