"""request_id: safe incoming ids pass, others are replaced; header, scope and context var."""

from __future__ import annotations

import contextvars

import httpx
import pytest

from asgikit.composition import stack
from asgikit.middleware.request_id import SCOPE_KEY, RequestIDApp, request_id
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.middleware._fast_send import messages_through
from tests.servers.live import serve

holder: list[RequestIDApp] = []


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    current = holder[0].current() if holder else None
    await PlainTextResponse(f"{scope[SCOPE_KEY]}|{current}")(scope, receive, send)


def make(**options: object) -> TestClient:
    holder.clear()
    app = request_id(echo, **options)  # type: ignore[arg-type]
    holder.append(app)
    return TestClient(app)


def test_new_id_is_generated_and_matches_scope_var_and_header() -> None:
    response = make().get("/")
    rid = response.headers["x-request-id"]
    assert len(rid) == 32
    assert response.text == f"{rid}|{rid}"


def test_safe_incoming_id_is_passed_on() -> None:
    response = make().get("/", headers={"x-request-id": "abc-123:x/y=+@."})
    assert response.headers["x-request-id"] == "abc-123:x/y=+@."
    assert response.text.startswith("abc-123:x/y=+@.|")


@pytest.mark.parametrize("bad", ["a b", "x" * 129, "<script>", 'a"b', "é", "a,b"])
def test_malformed_incoming_id_is_replaced(bad: str) -> None:
    response = make().get("/", headers={"x-request-id": bad.encode("utf-8")})
    assert response.headers["x-request-id"] != bad
    assert len(response.headers["x-request-id"]) == 32


def test_trust_incoming_off_custom_header_and_generator() -> None:
    client = make(trust_incoming=False, header="X-Trace", generator=lambda: "fixed-id")
    response = client.get("/", headers={"x-trace": "mine"})
    assert response.headers["x-trace"] == "fixed-id"
    with pytest.raises(ValueError, match="unsafe"):
        make(generator=lambda: "not safe").get("/")


def test_two_instances_do_not_share_the_variable() -> None:
    first = request_id(echo)
    second = request_id(echo)
    assert first.context_var is not second.context_var
    assert first.current() is None


def test_own_context_var_works_inside_stack() -> None:
    var: contextvars.ContextVar[str | None] = contextvars.ContextVar("rid", default=None)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse(str(var.get()))(scope, receive, send)

    response = TestClient(stack(request_id(context_var=var), app)).get("/")
    assert response.text == response.headers["x-request-id"]
    assert var.get() is None


async def test_websocket_accept_carries_the_header() -> None:
    async def ws(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept", "headers": [(b"x-other", b"1")]})

    sent = await run_app(request_id(ws), make_scope(type="websocket"))
    headers = dict(sent.messages[0]["headers"])
    assert headers[b"x-other"] == b"1"
    assert len(headers[b"x-request-id"]) == 32


def test_through_uvicorn_with_httpx() -> None:
    holder.clear()
    holder.append(request_id(echo))
    with serve(holder[0], lifespan="off") as base:
        response = httpx.get(base, headers={"x-request-id": "from-client"})
    assert response.headers["x-request-id"] == "from-client"
    assert response.text == "from-client|from-client"


async def test_a_generated_id_is_the_hex_of_a_version_4_uuid() -> None:
    import uuid

    from asgikit.middleware.request_id import _new_id

    ids = {_new_id() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        parsed = uuid.UUID(hex=value)
        assert parsed.hex == value
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


async def test_an_id_header_the_app_set_in_any_case_is_replaced_by_the_request_id() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"X-Request-ID", b"from-app"), (b"content-type", b"text/plain")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"hi"})

    scope = make_scope(headers=[(b"x-request-id", b"abc-123")])
    sent = await run_app(request_id(app), scope)
    ids = [v for k, v in sent.start["headers"] if k.lower() == b"x-request-id"]
    assert ids == [b"abc-123"]
    assert (b"content-type", b"text/plain") in sent.start["headers"]


async def test_the_apps_send_hands_back_the_servers_awaitable_and_copies_the_start() -> None:
    sent = await messages_through(request_id)
    names = [name for name, _ in sent[0]["headers"]]
    assert names == [b"content-type", b"x-request-id"]


def test_ids_are_made_in_batches_of_one_random_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from asgikit.middleware import request_id as module

    reads: list[int] = []
    real = os.urandom

    def urandom(size: int) -> bytes:
        reads.append(size)
        return real(size)

    monkeypatch.setattr(module.os, "urandom", urandom)
    ids = {module._new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert len(reads) <= 1000 // module._BATCH + 1


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs os.fork")
def test_a_forked_child_never_hands_out_the_parents_ready_ids() -> None:
    import os

    from asgikit.middleware.request_id import _new_id

    _new_id()  # the parent now holds ids ready
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its ids and leave at once
        try:
            os.write(write, "".join(_new_id() for _ in range(10)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(pid, 0)
    child = {text[i : i + 32] for i in range(0, len(text), 32)}
    parent = {_new_id() for _ in range(10)}
    assert len(child) == 10
    assert not child & parent
