"""``stack()`` and the ``Middleware`` shape: app by position or keyword, options keyword-only."""

from __future__ import annotations

import inspect
import pydoc

import pytest

from asgikit import authentication, compress, cors, lifespan, sessions
from asgikit.composition import Middleware, middleware, stack
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import make_scope, run_app


async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
    trail = "/".join(scope.get("trail", []))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": trail.encode()})


@middleware
def tag(app: ASGIApp, *, name: str, suffix: str = "") -> ASGIApp:
    """Appends ``name + suffix`` to ``scope["trail"]`` (on a copy of the scope)."""

    async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
        scope = {**scope, "trail": [*scope.get("trail", []), name + suffix]}
        await app(scope, receive, send)

    return tagged


async def test_stack_runs_layers_outermost_first() -> None:
    app = stack(tag(name="a"), tag(name="b"), tag(name="c"), endpoint)
    assert (await run_app(app)).body == b"a/b/c"


async def test_stack_with_app_keyword_is_the_same() -> None:
    app = stack(tag(name="a"), tag(name="b"), app=endpoint)
    assert (await run_app(app)).body == b"a/b"


async def test_stack_of_only_the_app_is_the_app() -> None:
    assert stack(endpoint) is endpoint
    assert stack(app=endpoint) is endpoint


def test_stack_without_an_app_is_an_error() -> None:
    with pytest.raises(TypeError, match="needs the app"):
        stack()


async def test_middleware_takes_the_app_by_position_or_keyword() -> None:
    by_position = tag(endpoint, name="x", suffix="!")
    by_keyword = tag(app=endpoint, name="x", suffix="!")
    assert (await run_app(by_position)).body == b"x!"
    assert (await run_app(by_keyword)).body == b"x!"


async def test_middleware_without_the_app_returns_a_layer() -> None:
    layer = tag(name="x")
    assert callable(layer)
    assert layer.__name__ == "tag_layer"
    assert (await run_app(layer(endpoint))).body == b"x"


async def test_a_layer_can_be_applied_twice() -> None:
    layer = tag(name="x")
    assert (await run_app(layer(layer(endpoint)))).body == b"x/x"


async def test_middleware_does_not_change_the_callers_scope() -> None:
    scope = make_scope()
    await run_app(tag(endpoint, name="x"), scope)
    assert "trail" not in scope


def test_middleware_keeps_the_builders_name_and_doc() -> None:
    assert tag.__name__ == "tag"
    assert tag.__doc__ is not None
    assert "trail" in tag.__doc__
    assert "tag" in repr(tag)


def test_signature_shows_the_options_and_the_app_as_optional() -> None:
    signature = inspect.signature(tag)
    assert list(signature.parameters) == ["app", "name", "suffix"]
    assert signature.parameters["app"].default is None
    assert signature.parameters["name"].kind is inspect.Parameter.KEYWORD_ONLY
    assert signature.parameters["suffix"].default == ""


def test_a_required_positional_option_keeps_the_builders_signature() -> None:
    assert str(inspect.signature(lifespan)).startswith("(app: 'ASGIApp', handler: 'Handler'")


@pytest.mark.parametrize("piece", [cors, compress, sessions, lifespan, authentication])
def test_help_shows_a_middlewares_parameters_and_docstring(piece: Middleware[...]) -> None:
    text = pydoc.render_doc(piece, renderer=pydoc.plaintext)
    assert "<middleware" not in text
    assert str(inspect.signature(piece)) in text
    doc = piece.__doc__
    assert doc is not None
    assert doc.splitlines()[0] in text


def test_help_of_cors_names_its_options() -> None:
    text = pydoc.render_doc(cors, renderer=pydoc.plaintext)
    assert "cors(app: 'ASGIApp | None' = None, *, allow_origins: 'Sequence[str]' = ()" in text


def test_options_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        tag(endpoint, "x")  # type: ignore[call-arg]


async def test_works_as_starlette_style_middleware_factory() -> None:
    # Starlette's Middleware(cls, **options) calls cls(app, **options).
    factory, options = tag, {"name": "s"}
    app = factory(endpoint, **options)
    assert (await run_app(app)).body == b"s"


async def test_the_layer_passes_messages_through() -> None:
    messages: list[Message] = (await run_app(tag(endpoint, name="q"))).messages
    assert [m["type"] for m in messages] == ["http.response.start", "http.response.body"]


def test_a_middleware_drops_into_a_real_starlette_middleware_list() -> None:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware as StarletteMiddleware
    from starlette.requests import Request as StarletteRequest
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from asgikit.testing import TestClient

    async def show(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("/".join(request.scope.get("trail", [])))

    app = Starlette(
        routes=[Route("/", show)],
        middleware=[
            StarletteMiddleware(tag, name="outer"),
            StarletteMiddleware(tag, name="inner", suffix="!"),
        ],
    )
    with TestClient(app) as client:
        assert client.get("/").text == "outer/inner!"
