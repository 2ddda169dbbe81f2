"""Apps whose lifespan startup fails, importable by a server in a subprocess."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgikit.lifespan import lifespan
from asgikit.responses import PlainTextResponse
from asgikit.routing import mount, route, router
from asgikit.types import Receive, Scope, Send


@asynccontextmanager
async def _broken() -> AsyncIterator[None]:
    raise ConnectionRefusedError("database at db:5432 refused")
    yield


async def _broken_sub(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "sub-app has no config"})
        return
    await PlainTextResponse("unreachable")(scope, receive, send)


#: A lifespan handler that cannot connect.
failing_handler = lifespan(router(route("/", PlainTextResponse("up"))), _broken)

#: A router whose mounted app fails its own startup.
failing_mount = router(route("/", PlainTextResponse("up")), mount("/sub", _broken_sub))
