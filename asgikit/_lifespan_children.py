"""Running the lifespan protocol of apps nested inside another app.

A router plays the server's part for every app mounted in it: it sends each
one ``lifespan.startup`` in order, and ``lifespan.shutdown`` in reverse, all
sharing the one ``state`` dict of the outer lifespan scope.  An app that
raises or returns at once on a lifespan scope, or answers with messages that
are not lifespan messages, does not support lifespan and is left alone, as
the ASGI lifespan spec tells servers to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from asgikit.types import ASGIApp, Message, Scope


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


_SEEN_KEY = "asgikit.lifespan_apps"


class LifespanError(Exception):
    """A nested app failed its startup or shutdown; the message says which and why."""


class _NotLifespan(Exception):
    """Raised into an app that sends non-lifespan messages on a lifespan scope."""


class _Child:
    """One nested app, driven through its lifespan."""

    def __init__(self, app: ASGIApp, label: str, scope: Scope) -> None:
        self.app = app
        self.label = label
        self.scope = scope
        self.to_app, self.app_inbox = anyio.create_memory_object_stream[Message](1)
        self.app_outbox, self.from_app = anyio.create_memory_object_stream[Message](1)
        self.supported = True

    async def run(self) -> None:
        async def send(message: Message) -> None:
            if not message["type"].startswith("lifespan."):
                raise _NotLifespan(message["type"])
            await self.app_outbox.send(message)

        error: Exception | None = None
        try:
            await self.app(self.scope, self.app_inbox.receive, send)
        except Exception as exc:
            error = exc
        finally:
            self.app_inbox.close()
        try:
            await self.app_outbox.send({"type": "asgikit.exited", "error": error})
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass
        finally:
            self.app_outbox.close()

    def close(self) -> None:
        """Close all four stream ends (closing twice is harmless)."""
        for stream in (self.to_app, self.app_inbox, self.app_outbox, self.from_app):
            stream.close()

    async def _exchange(self, kind: str) -> Message | None:
        """Send ``lifespan.<kind>`` and wait for the answer (``None``: unsupported)."""
        if not self.supported:
            return None
        try:
            await self.to_app.send({"type": f"lifespan.{kind}"})
            answer = await self.from_app.receive()
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            answer = {"type": "asgikit.exited", "error": None}
        if answer["type"] == "asgikit.exited":
            self.supported = False
            error = answer["error"]
            if kind == "shutdown" and error is not None:
                # It ran its startup, so it does support lifespan: a crash
                # while shutting down is a failed shutdown, not "unsupported".
                return {"type": "lifespan.shutdown.failed", "message": _describe(error)}
            return None
        return answer

    async def startup(self) -> None:
        answer = await self._exchange("startup")
        if answer is not None and answer["type"] == "lifespan.startup.failed":
            raise LifespanError(f"{self.label}: {answer.get('message', '') or 'startup failed'}")

    async def shutdown(self) -> None:
        answer = await self._exchange("shutdown")
        if answer is not None and answer["type"] == "lifespan.shutdown.failed":
            raise LifespanError(f"{self.label}: {answer.get('message', '') or 'shutdown failed'}")


class LifespanChildren:
    """The lifespans of several nested apps, started in order and stopped in reverse."""

    def __init__(self, apps: Sequence[tuple[str, ASGIApp]], scope: Scope) -> None:
        child_scope: dict[str, Any] = dict(scope)
        # One set for the whole tree (nested copies of the scope share it), so
        # an app mounted in two places starts once, not twice.
        self.seen: set[int] = child_scope.setdefault(_SEEN_KEY, set())
        self.children = [_Child(app, label, child_scope) for label, app in apps]
        self.started: list[_Child] = []

    async def startup(self, group: TaskGroup) -> None:
        """Start each app in order; on a failure stop the started ones and raise."""
        for child in self.children:
            if id(child.app) in self.seen:
                child.supported = False
                continue
            self.seen.add(id(child.app))
            group.start_soon(child.run)
            try:
                await child.startup()
            except LifespanError:
                await self.shutdown()
                raise
            if child.supported:
                self.started.append(child)

    def close(self) -> None:
        """Release every child's streams; call once their tasks are done or cancelled."""
        for child in self.children:
            child.close()

    async def shutdown(self) -> None:
        """Stop the started apps in reverse order; raise one error naming every failure."""
        failures: list[str] = []
        while self.started:
            child = self.started.pop()
            try:
                await child.shutdown()
            except LifespanError as exc:
                failures.append(str(exc))
        if failures:
            raise LifespanError("; ".join(failures))


async def run_lifespans(
    apps: Sequence[tuple[str, ASGIApp]], scope: Scope, receive: Any, send: Any
) -> tuple[bool, str | None]:
    """After ``lifespan.startup``: start ``apps``, answer, wait for shutdown, stop them.

    Returns whether start-up succeeded (on failure ``lifespan.startup.failed``
    was sent) and the shutdown failure, if any.  The shutdown answer is the
    caller's, which may have more to stop first.
    """
    children = LifespanChildren(apps, scope)
    started = False
    failure: str | None = None
    try:
        async with anyio.create_task_group() as group:
            try:
                await children.startup(group)
            except LifespanError as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
            else:
                started = True
                await send({"type": "lifespan.startup.complete"})
                await receive()
                try:
                    await children.shutdown()
                except LifespanError as exc:
                    failure = str(exc)
            group.cancel_scope.cancel()
    finally:
        children.close()
    return started, failure


async def answer_shutdown(send: Any, failure: str | None) -> None:
    """Send ``lifespan.shutdown.complete``, or ``.failed`` with ``failure``."""
    if failure is not None:
        await send({"type": "lifespan.shutdown.failed", "message": failure})
    else:
        await send({"type": "lifespan.shutdown.complete"})


async def serve_lifespan(
    apps: Sequence[tuple[str, ASGIApp]],
    scope: Scope,
    receive: Any,
    send: Any,
) -> None:
    """Answer a lifespan scope on behalf of ``apps``: what a router does with its mounts."""
    message = await receive()
    if message["type"] != "lifespan.startup":
        return
    started, failure = await run_lifespans(apps, scope, receive, send)
    if started:
        await answer_shutdown(send, failure)


__all__ = [
    "LifespanChildren",
    "LifespanError",
    "answer_shutdown",
    "run_lifespans",
    "serve_lifespan",
]
