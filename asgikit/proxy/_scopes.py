"""Cancel scopes for the proxy's hot path: anyio's, or a lighter one on asyncio.

An exchange waits under up to three scopes (the wait for the client's
first message, the deadline on the upstream's answer, the disconnect
watch).  anyio's ``CancelScope`` is made for nesting across task groups and
costs several Python calls to build, enter and leave; these scopes nest in
nothing of the proxy's own and are rarely cancelled.  On asyncio,
:class:`LoopScope` does the same job with one loop timer (none without a
deadline) and ``Task.cancel``: the task is cancelled at the deadline or on
``cancel()``, and leaving the scope turns that cancellation, and only that
one, back into a normal exit with ``cancelled_caught`` set.  A cancellation
from anywhere else (the server, an outer scope) goes on through.  On trio,
and on Python 3.10, anyio's scope is used: a 3.10 task has no ``uncancel``,
so a cancellation that came with the scope's own could not be told apart
and would be swallowed (anyio tells them apart by their messages).
"""

from __future__ import annotations

import asyncio
import math
from types import TracebackType

import anyio


class LoopScope:
    """A cancel scope for one asyncio task: ``with``, ``cancel()``, ``cancelled_caught``."""

    __slots__ = ("_cancelled", "_deadline", "_handle", "_loop", "_task", "cancelled_caught")

    def __init__(self, loop: asyncio.AbstractEventLoop, deadline: float = math.inf) -> None:
        self._loop = loop
        self._deadline = deadline
        self._task: asyncio.Task[object] | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._cancelled = False
        self.cancelled_caught = False

    def __enter__(self) -> LoopScope:
        self._task = asyncio.current_task(self._loop)
        if self._deadline != math.inf:
            self._handle = self._loop.call_at(self._deadline, self.cancel)
        return self

    def cancel(self) -> None:
        """Cancel what runs inside the scope (nothing once it is left)."""
        if self._task is not None and not self._cancelled:
            self._cancelled = True
            self._task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        if self._handle is not None:
            self._handle.cancel()
        task, self._task = self._task, None
        if not self._cancelled or task is None:
            return False
        # Our cancellation is spent here: take it back from the task's count
        # (Python 3.11+), so that only others' are left.
        uncancel = getattr(task, "uncancel", None)
        others = uncancel() if uncancel is not None else 0
        if exc_type is not None and issubclass(exc_type, asyncio.CancelledError) and not others:
            self.cancelled_caught = True
            return True
        return False


Scope = LoopScope | anyio.CancelScope

_UNCANCEL = hasattr(asyncio.Task, "uncancel")  # Python 3.11+


def cancel_scope(loop: asyncio.AbstractEventLoop | None, deadline: float = math.inf) -> Scope:
    """A scope ending at ``deadline`` (anyio's clock): a :class:`LoopScope` on ``loop``."""
    if loop is None or not _UNCANCEL:
        return anyio.CancelScope(deadline=deadline)
    return LoopScope(loop, deadline)


__all__ = ["LoopScope", "Scope", "cancel_scope"]
