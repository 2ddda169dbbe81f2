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
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Layer = Callable[[ASGIApp], ASGIApp]

__all__ = ["ASGIApp", "Layer", "Message", "Receive", "Scope", "Send"]
