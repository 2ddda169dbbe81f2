"""Composition without an application object: ``stack()`` and the middleware shape.

Every asgikit middleware is a function whose first parameter is the ``app``
(by position or keyword) and whose options are keyword-only.  Called without
the app it returns a *layer*, ``app -> app``, which is what ``stack`` takes.
``wrap_send`` and ``message_headers`` (from ``_send``) are the tools to write
one: wrap ``send`` for the message types you change, pass the rest through.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Generic, ParamSpec, overload

from asgikit._send import message_headers, wrap_send
from asgikit.types import ASGIApp, Layer

_P = ParamSpec("_P")


class Middleware(Generic[_P]):
    """Turns ``build(app, **options) -> app`` into a middleware of the asgikit shape.

    ``mw(app, **options)`` and ``mw(app=app, **options)`` give the wrapped app;
    ``mw(**options)`` gives a layer for ``stack``.  Options are checked when the
    layer is made, not when it is applied.
    """

    def __init__(self, build: Callable[..., ASGIApp]) -> None:
        self._build = build
        functools.update_wrapper(self, build)

    @overload
    def __call__(self, app: ASGIApp, *args: _P.args, **kwargs: _P.kwargs) -> ASGIApp: ...
    @overload
    def __call__(self, app: None = None, *args: _P.args, **kwargs: _P.kwargs) -> Layer: ...
    def __call__(self, app: ASGIApp | None = None, *args: Any, **kwargs: Any) -> Any:
        if app is not None:
            return _record_inner(self._build(app, *args, **kwargs), app)
        build = self._build

        def layer(app: ASGIApp) -> ASGIApp:
            return _record_inner(build(app, *args, **kwargs), app)

        layer.__name__ = f"{getattr(build, '__name__', 'middleware')}_layer"
        return layer

    def __repr__(self) -> str:
        return f"<middleware {getattr(self._build, '__qualname__', self._build)!r}>"


def _record_inner(wrapped: ASGIApp, app: ASGIApp) -> ASGIApp:
    # Lets a router find a router inside middleware, for reverse URLs.
    try:
        wrapped.__asgikit_app__ = app  # type: ignore[attr-defined]
    except (AttributeError, TypeError):
        pass
    return wrapped


def middleware(build: Callable[..., ASGIApp]) -> Middleware[Any]:
    """Decorate ``def build(app, *, option=...) -> ASGIApp`` to give it the asgikit shape."""
    return Middleware(build)


def stack(*layers: Layer | ASGIApp, app: ASGIApp | None = None) -> ASGIApp:
    """Compose layers around the app given last: outermost first.

    ``stack(a(), b(), app)`` is ``a(b(app))``; so is ``stack(a(), b(), app=app)``.
    """
    outer = list(layers)
    if app is None:
        if not outer:
            raise TypeError("stack() needs the app, last or as app=")
        app = outer.pop()  # type: ignore[assignment]
    result: ASGIApp = app  # type: ignore[assignment]
    for layer in reversed(outer):
        result = layer(result)  # type: ignore[call-arg, arg-type, assignment]
    return result


__all__ = ["Middleware", "message_headers", "middleware", "stack", "wrap_send"]
