"""Work that runs after the response body has been sent.

A response runs its ``background`` once its last body message is out, still
inside the ASGI call: the client has its answer, and the app returns when the
task is done.  Async functions are awaited; sync ones run in a worker
thread.  Nothing here retries, queues across requests or
outlives the process: use a job queue for that.

``BackgroundTasks`` runs every task even when one fails: each failure is
logged (logger ``asgikit.background``, with its traceback), and once all
have run the first failure is raised again, so that the server (and
``TestClient``) report the request's work as failed, as they would for a
single failing ``BackgroundTask``.  A cancellation is not a failure: it
stops the remaining tasks at once.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec

import anyio.to_thread

_P = ParamSpec("_P")

_logger = logging.getLogger("asgikit.background")


class BackgroundTask:
    """A function (sync or async) to call once the response is complete.

    A sync function runs in a worker thread, so it cannot block the event loop.
    """

    __slots__ = ("args", "func", "is_async", "kwargs")

    def __init__(self, func: Callable[_P, Any], *args: _P.args, **kwargs: _P.kwargs) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        target = func.func if isinstance(func, functools.partial) else func
        self.is_async = inspect.iscoroutinefunction(target) or inspect.iscoroutinefunction(
            getattr(target, "__call__", None)  # noqa: B004 - async __call__ objects
        )

    async def __call__(self) -> None:
        if self.is_async:
            await self.func(*self.args, **self.kwargs)
        else:
            await anyio.to_thread.run_sync(functools.partial(self.func, *self.args, **self.kwargs))


class BackgroundTasks(BackgroundTask):
    """Several background tasks, run one after the other in the order added.

    A failing task does not skip the others; see the module's docstring.
    """

    __slots__ = ("tasks",)

    def __init__(self, tasks: Sequence[BackgroundTask] | None = None) -> None:
        self.tasks = list(tasks) if tasks else []

    def add_task(self, func: Callable[_P, Any], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """Queue ``func(*args, **kwargs)`` to run after the response."""
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def __call__(self) -> None:
        first: Exception | None = None
        for task in self.tasks:
            try:
                await task()
            except Exception as exc:
                _logger.exception("background task %s failed", _describe(task.func))
                if first is None:
                    first = exc
        if first is not None:
            raise first


def _describe(func: Callable[..., Any]) -> str:
    target = func.func if isinstance(func, functools.partial) else func
    module = getattr(target, "__module__", None)
    name = getattr(target, "__qualname__", None) or repr(target)
    return f"{module}.{name}" if module else name


__all__ = ["BackgroundTask", "BackgroundTasks"]
