"""Work that runs after the response body has been sent.

A response runs its ``background`` once its last body message is out, still
inside the ASGI call: the client has its answer, and the app returns when the
task is done.  Async functions are awaited; sync ones run in a worker
thread.  Nothing here retries, queues across requests or
outlives the process: use a job queue for that.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec

import anyio.to_thread

_P = ParamSpec("_P")


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
    """Several background tasks, run one after the other in the order added."""

    __slots__ = ("tasks",)

    def __init__(self, tasks: Sequence[BackgroundTask] | None = None) -> None:
        self.tasks = list(tasks) if tasks else []

    def add_task(self, func: Callable[_P, Any], *args: _P.args, **kwargs: _P.kwargs) -> None:
        """Queue ``func(*args, **kwargs)`` to run after the response."""
        self.tasks.append(BackgroundTask(func, *args, **kwargs))

    async def __call__(self) -> None:
        for task in self.tasks:
            await task()


__all__ = ["BackgroundTask", "BackgroundTasks"]
