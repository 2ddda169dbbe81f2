"""Shared fixtures: every async test runs on asyncio and on trio."""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, settings

from asgikit.types import ASGIApp, Message, Receive, Scope

# Property tests judge behaviour, never speed: on a loaded 2-core CI machine a
# fixed per-example deadline only produces flaky failures.
settings.register_profile(
    "asgikit", deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile("asgikit")


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Mark every coroutine test for anyio's plugin, so no test forgets it.
    for item in items:
        function = getattr(item, "function", None)
        if function is not None and inspect.iscoroutinefunction(function):
            item.add_marker(pytest.mark.anyio)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    # Mark coroutine tests already while they are collected (this conftest's
    # hook runs before anyio's), so anyio parametrizes them through the
    # ``anyio_backend`` fixture above.  A marker added only after collection
    # makes anyio rebuild the items and drop their ``@pytest.mark.parametrize``.
    if collector.istestfunction(obj, name):
        hypothesis = getattr(obj, "hypothesis", None)
        inner = getattr(hypothesis, "inner_test", obj)
        if inspect.iscoroutinefunction(inner):
            pytest.mark.anyio(obj)


# -- Hand-written ASGI fakes, shared by the core tests ----------------------


def make_scope(
    method: str = "GET",
    path: str = "/",
    *,
    query_string: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    **extra: Any,
) -> Scope:
    """An ``http`` scope as a server would build it (headers as raw byte pairs)."""
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "root_path": "",
        "query_string": query_string,
        "headers": list(headers),
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
    }
    scope.update(extra)
    return scope


def body_receive(*chunks: bytes, disconnect: bool = False) -> Receive:
    """Each chunk as ``http.request`` (``more_body`` until the last), then wait.

    With ``disconnect=True`` the body is followed by ``http.disconnect``;
    otherwise, like a server whose client stays, the next call never returns
    (until cancelled).  No chunks means one empty, final body message.
    """
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
        for i, chunk in enumerate(chunks or (b"",))
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        if disconnect:
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


def disconnect_after(*chunks: bytes) -> Receive:
    """Chunks with ``more_body=True`` then ``http.disconnect``: a client gone mid-body."""
    messages: list[Message] = [
        {"type": "http.request", "body": chunk, "more_body": True} for chunk in chunks
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    return receive


class SendRecorder:
    """A ``send`` that keeps every message, with helpers to read the response."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def status(self) -> int:
        status: int = self.start["status"]
        return status

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self.start["headers"])

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]

    @property
    def body(self) -> bytes:
        return b"".join(
            m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"
        )

    @property
    def complete(self) -> bool:
        bodies = [m for m in self.messages if m["type"] == "http.response.body"]
        return bool(bodies) and not bodies[-1].get("more_body", False)


async def run_app(
    app: ASGIApp,
    scope: Scope | None = None,
    receive: Receive | None = None,
    *,
    body: bytes | Iterable[bytes] = b"",
) -> SendRecorder:
    """Run ``app`` once with ``body`` (bytes or an iterable of chunks); record what it sent."""
    if receive is None:
        chunks = (body,) if isinstance(body, bytes) else tuple(body)
        receive = body_receive(*chunks)
    send = SendRecorder()
    await app(scope if scope is not None else make_scope(), receive, send)
    return send
