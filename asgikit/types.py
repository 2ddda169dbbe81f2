"""The ASGI 3 types every piece speaks.

A piece is ``async def app(scope, receive, send) -> None``; a *layer* is a
function from an app to an app, which is what :func:`asgikit.stack` composes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
#: An ASGI 3 app, written with any framework's types.  Its parameters are
#: ``Any`` on purpose: Litestar types a scope as a ``TypedDict`` and messages
#: as ``TypedDict`` unions, which are not ``MutableMapping`` s, so with
#: ``Scope``-typed parameters a Litestar app could not be wrapped and an
#: asgikit piece could not go into ``DefineMiddleware``.  Write your own apps
#: with ``Scope``, ``Receive`` and ``Send``; pass them anywhere as ``ASGIApp``.
ASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
Layer = Callable[[ASGIApp], ASGIApp]

__all__ = ["ASGIApp", "Layer", "Message", "Receive", "Scope", "Send"]
