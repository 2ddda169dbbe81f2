"""``lifespan(app, handler)``: run set-up and tear-down code around an app's life.

``handler`` is an async context manager function.  What it yields (a mapping,
or ``None``) is merged into the lifespan ``state`` of the ASGI lifespan spec,
which servers copy into every request's scope, so it reaches
``request.state``.  Lifespan layers nest: the outer one starts first and
stops last, and the app inside (a router forwarding to its mounts, another
lifespan layer...) is started after the handler and stopped before it.
A failing start-up answers ``lifespan.startup.failed`` with the error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

from asgikit._lifespan_children import answer_shutdown, run_lifespans
from asgikit.composition import middleware
from asgikit.types import ASGIApp, Receive, Scope, Send

Handler = Callable[[], AbstractAsyncContextManager[Mapping[str, Any] | None]]

_logger = logging.getLogger("asgikit.lifespan")


def _describe(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if exc.__cause__ is not None:
        text += f" (caused by {type(exc.__cause__).__name__}: {exc.__cause__})"
    return text


@middleware
def lifespan(app: ASGIApp, handler: Handler) -> ASGIApp:
    """Wrap ``app`` so that ``handler()`` is entered at start-up and left at shutdown."""

    async def lifespan_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        context = handler()
        try:
            state = await context.__aenter__()
        except Exception as exc:
            _logger.exception("lifespan start-up failed")
            await send({"type": "lifespan.startup.failed", "message": _describe(exc)})
            return
        if state:
            if "state" not in scope:
                # The handler did start: let it clean up before reporting.
                try:
                    await context.__aexit__(None, None, None)
                except Exception:
                    _logger.exception("lifespan shutdown failed")
                reason = (
                    "the handler yielded state but the server does not support "
                    "lifespan state (ASGI spec 2.3)"
                )
                await send({"type": "lifespan.startup.failed", "message": reason})
                return
            scope["state"].update(state)
        started = False
        shutdown_error: str | None = None
        try:
            started, shutdown_error = await run_lifespans([("app", app)], scope, receive, send)
        finally:
            try:
                await context.__aexit__(None, None, None)
            except Exception as exc:
                _logger.exception("lifespan shutdown failed")
                shutdown_error = _describe(exc)
        if started:
            await answer_shutdown(send, shutdown_error)

    return lifespan_app


__all__ = ["Handler", "lifespan"]
