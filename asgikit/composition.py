"""Composition without an application object: ``stack()`` and the middleware shape.

Every asgikit middleware is a function whose first parameter is the ``app``
(by position or keyword) and whose options are keyword-only.  Called without
the app it returns a *layer*, ``app -> app``, which is what ``stack`` takes.
``wrap_send`` and ``message_headers`` (from ``_send``) are the tools to write
one: wrap ``send`` for the message types you change, pass the rest through.

Type checkers see the builder's own options through the decorator (a
``ParamSpec``): ``cors(allow_origin=...)`` is an error in mypy and pyright
alike, and ``Middleware(cors, ...)`` in Starlette and FastAPI checks the
options against ``cors``.  The app given *by keyword*
(``cors(app=app, ...)``, as Litestar's ``DefineMiddleware`` does) works at
run time, but a checker sees its options unchecked: a ``ParamSpec`` cannot
carry a keyword parameter before the options.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec, Protocol, overload

from asgikit._send import message_headers, wrap_send
from asgikit.types import ASGIApp, Layer

_P = ParamSpec("_P")


class Middleware(Protocol[_P]):
    """The type of a function made by :func:`middleware`: options ``_P``.

    ``mw(app, **options)`` and ``mw(app=app, **options)`` give the wrapped app;
    ``mw(**options)`` gives a layer for ``stack``.
    """

    @overload
    def __call__(self, app: ASGIApp, /, *args: _P.args, **kwargs: _P.kwargs) -> ASGIApp: ...
    @overload
    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Layer: ...
    @overload
    def __call__(self, *, app: ASGIApp, **kwargs: Any) -> ASGIApp: ...


def _record_inner(wrapped: ASGIApp, app: ASGIApp) -> ASGIApp:
    # Lets a router find a router inside middleware, for reverse URLs.
    try:
        wrapped.__asgikit_app__ = app  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass
    return wrapped


def middleware(build: Callable[Concatenate[ASGIApp, _P], ASGIApp]) -> Middleware[_P]:
    """Decorate ``def build(app, *, option=...) -> ASGIApp`` to give it the asgikit shape.

    The result is a plain function with the builder's name, docstring and
    signature (``app`` shown as optional), so ``help()``, ``inspect.signature``
    and IDEs show the real options.  Options are checked when the layer is
    made, not when it is applied.  Example::

        from asgikit import PlainTextResponse, stack
        from asgikit.composition import middleware
        from asgikit.testing import TestClient
        from asgikit.types import ASGIApp, Receive, Scope, Send


        @middleware
        def only_get(app: ASGIApp, *, status_code: int = 405) -> ASGIApp:
            refuse = PlainTextResponse("GET only", status_code=status_code)

            async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
                if scope["type"] == "http" and scope["method"] != "GET":
                    await refuse(scope, receive, send)
                else:
                    await app(scope, receive, send)

            return guarded


        app = stack(only_get(status_code=403), PlainTextResponse("hello"))
        client = TestClient(app)
        assert client.get("/").text == "hello"
        assert client.post("/").status_code == 403
    """
    name = getattr(build, "__name__", "middleware")

    @functools.wraps(build)
    def shaped(app: ASGIApp | None = None, *args: Any, **kwargs: Any) -> Any:
        if app is not None:
            return _record_inner(build(app, *args, **kwargs), app)

        def layer(app: ASGIApp) -> ASGIApp:
            return _record_inner(build(app, *args, **kwargs), app)

        layer.__name__ = layer.__qualname__ = f"{name}_layer"
        return layer

    shaped.__signature__ = _optional_app_signature(build)  # type: ignore[attr-defined]
    return shaped  # type: ignore[return-value]


def _optional_app_signature(build: Callable[..., ASGIApp]) -> inspect.Signature | None:
    try:
        signature = inspect.signature(build)
    except (TypeError, ValueError):
        return None
    params = list(signature.parameters.values())
    # ``lifespan(app, handler)``: a required positional after the app keeps
    # the builder's own signature (a default may not come before it).
    required_positional = [
        p
        for p in params[1:]
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if required_positional:
        return signature
    if params and params[0].kind is not inspect.Parameter.KEYWORD_ONLY:
        annotation = params[0].annotation
        if isinstance(annotation, str):
            annotation = f"{annotation} | None"
        params[0] = params[0].replace(default=None, annotation=annotation)
    return signature.replace(parameters=params)


def stack(*layers: Layer | ASGIApp, app: ASGIApp | None = None) -> ASGIApp:
    """Compose layers around the app given last: outermost first.

    ``stack(a(), b(), app)`` is ``a(b(app))``; so is ``stack(a(), b(), app=app)``::

        from asgikit import PlainTextResponse, compress, cors, stack
        from asgikit.testing import TestClient

        app = stack(cors(allow_origins=["*"]), compress(), PlainTextResponse("hi " * 300))
        headers = {"Origin": "https://a.example", "Accept-Encoding": "gzip"}
        answer = TestClient(app).get("/", headers=headers)
        assert answer.headers["access-control-allow-origin"] == "*"
        assert answer.headers["content-encoding"] == "gzip"
    """
    outer = list(layers)
    if app is None:
        if not outer:
            raise TypeError("stack() needs the app, last or as app=")
        app = outer.pop()  # type: ignore[assignment]
    result: ASGIApp = app  # type: ignore[assignment]
    for layer in reversed(outer):
        result = layer(result)  # type: ignore[call-arg, assignment]
    return result


__all__ = ["Middleware", "message_headers", "middleware", "stack", "wrap_send"]
