"""Attacks through the query string: too many parameters, wherever a query is parsed."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from asgikit.datastructures import QueryParams
from asgikit.requests import Request
from asgikit.responses import PlainTextResponse, Response
from asgikit.routing import route, router
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio

FLOOD = b"a=1&" * 1001


@pytest.mark.parametrize(
    "query",
    [FLOOD, b"&" * 5000 + b"a=1&" * 1001, b"a&" * 1001],
)
async def test_request_query_params_past_the_limit_answer_400(query: bytes) -> None:
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(str(len(request.query_params)))

    sent = await run_app(router(route("/", endpoint)), make_scope(query_string=query))
    assert sent.status == 400


def test_ampersands_alone_do_not_count_as_parameters() -> None:
    assert len(QueryParams(b"&" * 100_000 + b"a=1")) == 1


PAGINATION: list[Callable[[Request], str]] = [
    lambda request: str(request.url.include_query_params(page=2)),
    lambda request: str(request.url.remove_query_params("page")),
]


@pytest.mark.parametrize("link", PAGINATION, ids=["include_query_params", "remove_query_params"])
async def test_a_pagination_link_over_a_flooded_query_is_no_500(
    link: Callable[[Request], str],
) -> None:
    # The everyday "next page" link: a client's 1001 parameters made it raise.
    async def endpoint(request: Request) -> Response:
        return PlainTextResponse(link(request)[:40])

    sent = await run_app(router(route("/", endpoint)), make_scope(query_string=FLOOD))
    assert sent.status == 200
