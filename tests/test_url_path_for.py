"""url_path_for: a built path can never point at another host (issue 13 #4)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.requests import Request
from asgikit.responses import PlainTextResponse, RedirectResponse, Response
from asgikit.routing import mount, route, router, url_path_for
from asgikit.testing import TestClient
from asgikit.types import Scope
from tests.conftest import make_scope, run_app


async def show(request: Request) -> Response:
    return PlainTextResponse(str(request.path_params.get("rest", "")))


def build(app: Any, name: str, root_path: str = "", **params: Any) -> str:
    """url_path_for as an endpoint inside ``app`` would call it."""
    found: list[str] = []

    async def capture(scope: Scope, receive: Any, send: Any) -> None:
        found.append(url_path_for(scope, name, **params))
        await PlainTextResponse("")(scope, receive, send)

    import anyio

    async def go() -> None:
        outer = router(route("/__capture", capture), mount("", app))
        await run_app(outer, make_scope(path=root_path + "/__capture", root_path=root_path))

    anyio.run(go)
    return found[0]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/evil.example/x", "/%2Fevil.example/x"),
        ("\\evil.example/x", "/%5Cevil.example/x"),
        ("/\\evil.example/x", "/%2F%5Cevil.example/x"),
        ("//evil.example", "/%2F/evil.example"),
        ("ok/a", "/ok/a"),
    ],
)
def test_path_parameter_starting_with_a_slash_never_builds_a_protocol_relative_path(
    value: str, expected: str
) -> None:
    app = router(route("/{rest:path}", show, name="any"))
    assert build(app, "any", rest=value) == expected


def test_through_an_unprefixed_mount_and_a_named_mount() -> None:
    inner = router(route("/{rest:path}", show, name="any"))
    app = router(mount("", inner, name="m"))
    assert build(app, "m:any", rest="/evil.example/x") == "/%2Fevil.example/x"
    static = router(mount("", inner, name="files"))
    assert build(static, "files", path="/evil.example/x") == "/evil.example/x"


def test_root_path_keeps_the_path_on_this_host() -> None:
    app = router(route("/{rest:path}", show, name="any"))
    assert build(app, "any", root_path="/x", rest="/evil.example/y") == "/x//evil.example/y"


def test_router_method_gives_the_encoded_path_too() -> None:
    app = router(route("/{rest:path}", show, name="any"))
    assert app.url_path_for("any", rest="/evil.example/x") == "/%2Fevil.example/x"
    assert app.url_path_for("any", rest="a b") == "/a%20b"


def test_an_encoded_path_leads_back_to_the_same_value() -> None:
    async def bounce(request: Request) -> Response:
        return RedirectResponse(request.url_for("any", rest="/evil.example/x"))

    app = router(route("/bounce", bounce), route("/{rest:path}", show, name="any"))
    client = TestClient(app, follow_redirects=False)
    location = client.get("/bounce").headers["location"]
    assert location == "http://testserver/%2Fevil.example/x"
    assert client.get("/%2Fevil.example/x").text == "/evil.example/x"


@settings(max_examples=200)
@given(st.text(max_size=20))
def test_any_value_builds_a_path_on_this_host(value: str) -> None:
    app = router(route("/{rest:path}", show, name="any"))
    try:
        path = app.url_path_for("any", rest=value)
    except ValueError:
        return
    assert path.startswith("/")
    assert not path.startswith(("//", "/\\"))
    assert "\\" not in path
