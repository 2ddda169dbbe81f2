"""Routes: what a route does with what its endpoint gives back (errors and wrong returns)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit.endpoints import HTTPEndpoint
from asgikit.exceptions import HTTPException
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse
from asgikit.routing import route, router
from tests.conftest import make_scope, run_app


async def teapot(request: Request) -> PlainTextResponse:
    raise HTTPException(418, "short and stout")


async def vary_origin(request: Request) -> PlainTextResponse:
    raise HTTPException(403, "nope", headers={"Vary": "Origin"})


async def not_modified(request: Request) -> PlainTextResponse:
    raise HTTPException(304)


app = router(route("/teapot", teapot), route("/vary", vary_origin), route("/304", not_modified))


# -- The default answer to an HTTPException: JSON or text by Accept (issue 13 #18)

JSON = b"application/json"
TEXT = b"text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ([], TEXT),
        ([b"application/json"], JSON),
        ([b"application/json;q=0"], TEXT),
        ([b"application/json; q=0.0, text/plain"], TEXT),
        ([b"text/plain, application/json;q=0.5"], TEXT),
        ([b"text/plain;q=0.5, application/json"], JSON),
        ([b"*/*"], TEXT),
        ([b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"], TEXT),
        ([b"application/*"], JSON),
        ([b"application/json, */*"], JSON),
        ([b"application/problem+json"], JSON),
        ([b"image/png"], TEXT),
        ([b"application/json;q=banana"], TEXT),
        ([b"application/json;q=1.5"], TEXT),
        ([b"APPLICATION/JSON;Q=1"], JSON),
        ([b"text/plain;q=0.1", b"application/json"], JSON),  # two Accept fields, one list
    ],
)
async def test_the_error_body_follows_accept_with_q_values(
    accept: list[bytes], content_type: bytes
) -> None:
    scope = make_scope(path="/teapot", headers=[(b"accept", value) for value in accept])
    sent = await run_app(app, scope)
    assert sent.status == 418
    assert sent.header(b"content-type") == [content_type]
    expected = b'{"detail":"short and stout"}' if content_type == JSON else b"short and stout"
    assert sent.body == expected


async def test_the_error_answer_varies_on_accept() -> None:
    sent = await run_app(app, make_scope(path="/teapot"))
    assert sent.header(b"vary") == [b"Accept"]


async def test_a_vary_of_the_exception_is_kept_and_accept_added_once() -> None:
    sent = await run_app(app, make_scope(path="/vary"))
    assert sent.header(b"vary") == [b"Origin, Accept"]


async def test_an_error_status_without_a_body_gets_neither_body_nor_vary() -> None:
    sent = await run_app(app, make_scope(path="/304"))
    assert (sent.status, sent.body, sent.header(b"vary")) == (304, b"", [])


async def test_the_router_404_and_405_vary_on_accept_too() -> None:
    missing = await run_app(app, make_scope(path="/missing", headers=[(b"accept", JSON)]))
    assert (missing.status, missing.body) == (404, b'{"detail":"Not Found"}')
    assert missing.header(b"vary") == [b"Accept"]
    wrong = await run_app(app, make_scope("POST", path="/teapot"))
    assert wrong.status == 405
    assert wrong.header(b"vary") == [b"Accept"]


# -- An endpoint that returns something other than a response (issue 13 #16)


async def returns_dict(request: Request) -> Any:
    return {"id": 1}


async def returns_none(request: Request) -> Any:
    pass


def sync_returns_dict(request: Request) -> Any:
    return {"id": 1}


@pytest.mark.parametrize(
    ("endpoint", "said"),
    [
        (returns_dict, "returned a dict"),
        (returns_none, "returned None"),
        (sync_returns_dict, "returned a dict"),
    ],
)
async def test_an_endpoint_returning_a_non_response_gets_a_clear_type_error(
    endpoint: Any, said: str
) -> None:
    with pytest.raises(TypeError) as info:
        await run_app(router(route("/", endpoint)), make_scope())
    message = str(info.value)
    assert f"{__name__}.{endpoint.__qualname__}" in message
    assert said in message
    assert "return JSONResponse(" in message


async def test_an_http_endpoint_method_returning_a_dict_gets_a_clear_type_error() -> None:
    class Items(HTTPEndpoint):
        async def get(self, request: Request) -> Any:
            return {"items": []}

    with pytest.raises(TypeError) as info:
        await run_app(router(route("/", Items)), make_scope())
    message = str(info.value)
    assert "Items.get" in message
    assert "returned a dict" in message


async def test_a_type_error_from_a_real_response_is_not_rewritten() -> None:
    class Broken(PlainTextResponse):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            raise TypeError("the response's own bug")

    async def endpoint(request: Request) -> PlainTextResponse:
        return Broken("x")

    with pytest.raises(TypeError, match="the response's own bug"):
        await run_app(router(route("/", endpoint)), make_scope())


@given(accept=st.lists(st.binary(max_size=200), max_size=4))
async def test_any_accept_header_gets_a_text_or_json_error_answer(accept: list[bytes]) -> None:
    # Bad input never turns the error answer into a 500 or an exception.
    scope = make_scope(path="/teapot", headers=[(b"accept", value) for value in accept])
    sent = await run_app(app, scope)
    assert sent.status == 418
    assert sent.header(b"content-type") in ([TEXT], [JSON])
