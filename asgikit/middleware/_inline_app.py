"""``http_middleware``'s inline path: the app run in ``func``'s own task, stepped by hand.

No task, no event: ``call_next`` calls the app and drives its coroutine
itself (``coro.send`` / ``coro.throw``), passing whatever the app yields on
to the event loop unchanged, which asyncio and trio both accept from any
depth of the coroutine stack.  When the app sends ``http.response.start``
its ``send`` pauses it (yields a marker only the driver sees), and
``call_next`` returns; calling the response sends the start and drives the
app on, its body going straight to where the start went.  Each step runs in
a copy of the caller's context taken at ``call_next``, as a task would.

The catch is cancel scopes (anyio's, trio's; a task group holds one): they
belong to a task and must close in the reverse order they opened.  The app
may pause at its start inside a scope of its own (``StreamingResponse``
does, its disconnect watch is a task group) while ``func`` holds the
response; if ``func`` had opened a scope before ``call_next`` and closed it
then, the two would interleave.  So this path is taken only when ``func``
holds no scope of its own at ``call_next`` (compared with the scope the
request entered ``func`` in); otherwise the app gets a task
(``_app_task``).  A half-run coroutine cannot move to a task later (its
scopes and the event loop's wake-ups name this task), so that is decided
before the app runs.  When the app does hold a scope at its start:

- a cancellation of that scope while ``func`` holds the response surfaces
  in ``func`` and is handed back to the app at its start, where its scope
  catches it;
- the response must be sent from where ``call_next`` returned (not inside
  a cancel scope ``func``'s returned app opens around it, nor from another
  task): a clear ``RuntimeError`` otherwise.

The app's start may come from another task of the app (Starlette's
``StreamingResponse`` sends from a task of its own under servers older than
ASGI 2.4, uvicorn's included): on asyncio the driver waits for the app's
futures through a future of its own, which that start sets, so
``call_next`` returns with the app still waiting where it was, and the
other task's messages wait for the response to be sent on.  trio's waits
cannot be stood in for like that, so on trio a request whose server is
older than ASGI 2.4 takes the task path, and a start from another task
otherwise is a clear ``RuntimeError``.  Body messages from other tasks are
fine (before the response is sent on, they wait for it).

Which scope a task is in is private on both backends: trio's
``Task._cancel_status`` and anyio's asyncio ``_task_states``.  Both are
read through ``scope_probe``; if either ever goes, every request takes the
task path (still correct, only slower), and the tests that check this path
is taken fail.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import sys
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import Any, Protocol

import anyio
import anyio.abc

from asgikit.middleware._app_task import Dropped, TaskRunner, only_dropped
from asgikit.requests import Request
from asgikit.types import ASGIApp, Message, Send

Probe = Callable[[], object]

_PAUSE = object()  # yielded by the app's send at its start: the driver stops there


_task_states: Any = None  # anyio's, once its asyncio backend is loaded


def _asyncio_scope() -> object:
    # The task itself when it is in no anyio scope: two plain asyncio tasks
    # (a server's request task, the one asyncio.wait_for or create_task
    # makes for call_next) must not look alike.
    task = asyncio.current_task()
    global _task_states
    states = _task_states
    if states is None:
        backend = sys.modules.get("anyio._backends._asyncio")
        if backend is None:  # no anyio cancel scope was ever entered
            return task
        states = _task_states = getattr(backend, "_task_states", None)
        if states is None:  # anyio changed: no inline path
            return object()
    state = states.get(task)
    if state is None:
        return task
    try:
        scope = state.cancel_scope
    except AttributeError:  # anyio changed: a fresh object matches no other
        return object()
    return task if scope is None else scope


def trio_scope() -> object:
    import trio.lowlevel

    try:
        return trio.lowlevel.current_task()._cancel_status
    except AttributeError:  # trio changed: a fresh object matches no other
        return object()


def _no_loop() -> object:
    return None


def scope_probe() -> Probe:
    """For the event loop running this task: a function giving the cancel scope it is in.

    The same object means the same scope in the same task (under asyncio,
    the task itself when it is in no anyio scope; a fresh object when it
    cannot tell, which matches none).
    ``_no_loop`` when nothing runs an event loop (a request driven by hand,
    ``coro.send(None)``): then nothing can wait either.
    """
    try:
        if asyncio.current_task() is not None:
            return _asyncio_scope
    except RuntimeError:  # no asyncio loop runs at all
        pass
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_task()
        except RuntimeError:
            pass
        else:
            return trio_scope
    return _no_loop


async def _awaiting(awaitable: Awaitable[None]) -> None:
    await awaitable  # an app whose call returns an awaitable that is not a coroutine


async def _never_started() -> None:
    return None


_NOT_STARTED = _never_started()
_NOT_STARTED.close()


@types.coroutine
def _pause() -> Generator[object, None, None]:
    yield _PAUSE


def _settled(proxy: asyncio.Future[None], _: object) -> None:
    if not proxy.done():
        proxy.set_result(None)


def _wait_for(runner: AppCaller, future: asyncio.Future[Any]) -> Generator[Any, Any, bool]:
    """Wait, as the app's task would, for an asyncio future the app yielded.

    Through a future of the driver's own, which a start sent from another
    task of the app also sets (see ``_app_send``).  True when that woke it
    with the app's future still pending.  A cancellation cancels the app's
    future, as asyncio's task does with what it waits for, and goes on.
    """
    future._asyncio_future_blocking = False
    proxy: asyncio.Future[None] = future.get_loop().create_future()
    settled = functools.partial(_settled, proxy)
    future.add_done_callback(settled)
    runner._wake = proxy
    try:
        proxy._asyncio_future_blocking = True
        yield proxy
    except BaseException:
        future.remove_done_callback(settled)
        future.cancel()
        raise
    finally:
        runner._wake = None
    if future.done():
        return False
    future.remove_done_callback(settled)
    return True


@types.coroutine
def _drive(runner: AppCaller, error: BaseException | None) -> Generator[Any, Any, None]:
    """Step the app until it pauses at its start or ends; pass its other yields on."""
    coro = runner.coro
    run = runner.context.run
    value: Any = None
    pending, runner._pending = runner._pending, None
    if pending is not None:
        # The app still waits for this future (its start came from another task).
        if error is not None:
            pending.cancel()
        else:
            try:
                while (yield from _wait_for(runner, pending)):
                    pass
            except BaseException as exc:
                error = exc
    while True:
        runner.stepping = True
        try:
            if error is None:
                yielded = run(coro.send, value)
            else:
                try:
                    yielded = run(coro.throw, error)
                finally:
                    # Not kept here: its traceback holds this frame (a cycle).
                    error = None
        except StopIteration:
            runner.done = True
            return
        except BaseException:
            runner.done = True
            raise
        finally:
            runner.stepping = False
        if yielded is _PAUSE:
            return
        value = None
        try:
            if runner._wake_on_start and getattr(yielded, "_asyncio_future_blocking", None):
                if (yield from _wait_for(runner, yielded)):
                    runner._pending = yielded  # the start came from another task
                    return
            else:
                value = yield yielded
        except BaseException as exc:  # a cancellation, delivered to the app where it waits
            error = exc
            continue
        if runner._wake_on_start and runner._start is not None:
            return  # the start came from another task while the app took a bare yield


class Runner(Protocol):
    """What the response ``call_next`` returns needs from where the app runs."""

    async def relay(self, send: Send, start: Message) -> None: ...


class AppCaller:
    """``call_next`` for one request: runs the app inline (see the module docstring).

    Or, when ``func`` holds a cancel scope around the call, in a task
    (``_app_task.TaskRunner``).  ``respond`` makes the response from the
    runner and the app's start.
    """

    __slots__ = (
        "_app",
        "_go",
        "_held",
        "_outside",
        "_pending",
        "_probe",
        "_relay_send",
        "_respond",
        "_send",
        "_send_error",
        "_sending",
        "_start",
        "_task_group",
        "_wake",
        "_wake_on_start",
        "called",
        "context",
        "coro",
        "done",
        "raised",
        "runner",
        "stepping",
    )

    def __init__(
        self,
        app: ASGIApp,
        send: Send,
        probe: Probe,
        task_group: anyio.abc.TaskGroup | None,
        respond: Callable[[Runner, Message], Any],
    ) -> None:
        self._app = app
        self._send = send  # the server's, for messages before the response start
        self._probe = probe
        self._task_group = task_group
        self._respond = respond
        self._outside = probe()  # the cancel scope func was called in
        self._start: Message | None = None
        self._relay_send: Send | None = None
        self._send_error: Exception | None = None
        self._sending = False  # relay was called: the response goes out once
        self._held: object = None  # the app's own scope at its start, if it holds one
        self._go: anyio.Event | None = None  # for the app's other tasks, made on demand
        # While call_next drives the app on asyncio: a start from another task
        # sets _wake (what the driver waits on) and leaves the app's own
        # future in _pending (see _wait_for).
        self._wake_on_start = False
        self._wake: asyncio.Future[None] | None = None
        self._pending: asyncio.Future[Any] | None = None
        self.coro: Coroutine[Any, Any, None] = _NOT_STARTED
        self.done = False  # nothing left to finish: the app ended, or never ran
        self.stepping = False
        self.called = False
        # Only the task path's runner: the inline one is this object itself,
        # and naming it here would be a cycle keeping each request's
        # coroutine, context and start until the next collection.
        self.runner: TaskRunner | None = None
        self.raised: Exception | None = None  # the app's error, once call_next raised it

    async def __call__(self, request: Request) -> Any:
        if self.called:
            raise RuntimeError("call_next() can be called only once per request")
        self.called = True
        if self._probe() is not self._outside or (  # func holds a cancel scope of its own
            self._probe is trio_scope and _before_asgi_2_4(request.scope)
        ):
            task_runner = self.runner = TaskRunner(self._app, self._send, self._task_group)
            try:
                start = await task_runner.start(request)
            except Exception as exc:
                self.raised = exc
                raise
            return self._respond(task_runner, start)
        # A copy of the context, as a task gets: what func set before
        # call_next is seen by the app, not what the app sets by func.
        self.context = contextvars.copy_context()
        called = self._app(request.scope, request.receive, self._app_send)
        self.coro = called if type(called) is types.CoroutineType else _awaiting(called)
        self._wake_on_start = self._probe is _asyncio_scope
        try:
            await _drive(self, None)
        except Exception as exc:
            self.raised = exc
            raise
        finally:
            self._wake_on_start = False
        if self._start is None:
            raise RuntimeError("the app returned without sending a response")
        inside = self._probe()
        if inside is not self._outside:
            self._held = inside
        return self._respond(self, self._start)

    async def _app_send(self, message: Message) -> None:
        relay = self._relay_send
        if relay is None:
            if self._start is None:
                if message["type"] != "http.response.start":
                    # Not part of the response proper (an extension's message
                    # before the start): nothing for func to change, so pass it on.
                    await self._send(message)
                    return
                if not self.stepping and self._wake_on_start:
                    # From another task of the app: wake the driver (call_next
                    # returns), then wait, as the app's other tasks do, for
                    # the response to be sent on.
                    self._start = message
                    wake = self._wake
                    if wake is not None and not wake.done():
                        wake.set_result(None)
                    if self._go is None:
                        self._go = anyio.Event()
                    await self._go.wait()
                    if self._relay_send is None:
                        raise Dropped()
                    return
                if not self.stepping:
                    raise RuntimeError(
                        "http_middleware: the app sent its response start from another task "
                        "than the one it was called in; open a cancel scope around call_next "
                        "to run the app in a task of its own"
                    )
                self._start = message
                await _pause()  # until func's response sent the start on
                return
            if not self.done:
                # Another task of the app, while func holds the response.
                if self._go is None:
                    self._go = anyio.Event()
                await self._go.wait()
                relay = self._relay_send
            if relay is None:
                raise Dropped()
        if self._send_error is not None:
            raise OSError("the response could not be sent: the client is gone")
        try:
            await relay(message)
        except Exception as exc:
            # Also raised from the middleware, even if the app swallows it.
            self._send_error = exc
            raise

    async def relay(self, send: Send, start: Message) -> None:
        """Send ``start``, then the rest of the response on ``send``: drive the app to its end.

        Refused before ``start`` goes out, so a server can still answer.
        """
        if self._sending or self.done:
            raise RuntimeError("the app's response can be sent only once")
        if self._held is not None and self._probe() is not self._held:
            raise RuntimeError(
                "http_middleware: the app holds a cancel scope (or task group) open at its "
                "response start, so its response must be sent where call_next returned, "
                "not inside a cancel scope or task opened after it"
            )
        self._sending = True
        await send(start)
        self._relay_send = send
        if self._go is not None:
            self._go.set()
        try:
            await _drive(self, None)
        except BaseException:
            # Not kept here: the frames its traceback holds name this object.
            self._send_error = None
            raise
        send_error, self._send_error = self._send_error, None
        if send_error is not None:
            try:
                raise send_error
            finally:
                send_error = None  # its traceback holds this frame: no cycle

    async def finish(self, interrupt: BaseException | None) -> Exception | None:
        """After the answer: end an app still paused at its start; an error nobody saw yet.

        A cancellation (``interrupt``) is handed to the app where it waits, so
        its cleanup runs and its own cancel scopes catch what is theirs;
        otherwise (func answered with another response, or failed) the app's
        ``send`` raises ``Dropped`` there, as if its task were cancelled: in a
        cancelled scope when it holds none of its own, else with its own
        outermost scope cancelled.
        """
        if self.runner is not None:
            return await self.runner.finish(interrupt)
        if not self.called:
            if interrupt is not None:
                raise interrupt
            return None
        if self.done:
            if interrupt is not None:
                raise interrupt
            return None
        if self._go is not None:
            self._go.set()  # the app's other tasks see the response dropped
        if interrupt is not None:
            await _drive(self, interrupt)  # raises unless the app caught it
            if _still_cancelled(interrupt):
                raise interrupt
            return None
        try:
            if self._held is None and self._probe is not _no_loop:
                with anyio.CancelScope() as stop:
                    stop.cancel()
                    await _drive(self, Dropped())
            else:
                if self._held is not None:
                    # A scope of ours would interleave with the app's: its
                    # own outermost one is cancelled instead, as its task's
                    # would be on the task path.
                    _cancel_app_scopes(self._held, self._outside)
                await _drive(self, Dropped())
        except Exception as exc:
            if not only_dropped(exc):
                return exc
        return None


def _before_asgi_2_4(scope: Any) -> bool:
    """Whether the server speaks an ASGI spec older than 2.4 (where apps send from tasks)."""
    version = (scope.get("asgi") or {}).get("spec_version", "2.0")
    try:
        return tuple(int(part) for part in str(version).split(".")[:2]) < (2, 4)
    except ValueError:
        return True


_MISSING = object()


def _cancel_app_scopes(held: object, outside: object) -> None:
    """Cancel the outermost cancel scope the app holds (``held`` is its innermost).

    Scopes are linked to their parent: anyio's asyncio ``CancelScope`` by
    ``_parent_scope``, trio's ``CancelStatus`` by ``parent`` (the scope it
    stands for in ``_scope``).  The walk stops at the scope ``func`` is in
    (``outside``), or the top.  When the links cannot be read, nothing is
    cancelled: the app then only sees ``Dropped``.
    """
    node = held
    for _ in range(10_000):  # scopes nest a few deep: a bound, never a loop
        parent = getattr(node, "_parent_scope", _MISSING)
        if parent is _MISSING:
            parent = getattr(node, "parent", _MISSING)
        if parent is _MISSING:
            return
        if parent is None or parent is outside:
            break
        node = parent
    cancel = getattr(getattr(node, "_scope", node), "cancel", None)
    if callable(cancel):
        cancel()


def _still_cancelled(interrupt: BaseException) -> bool:
    """After the app caught ``interrupt``: does it still stop the request?

    A cancellation the app's own scope caught is spent: trio's would be raised
    again at the next checkpoint if it was not the app's, and under asyncio a
    request still to cancel shows in ``Task.cancelling()`` (Python 3.11+; on
    3.10 a cancellation the app caught is taken as spent).  Anything else
    (``KeyboardInterrupt``, ``GeneratorExit``) goes on.
    """
    if isinstance(interrupt, asyncio.CancelledError):
        task = asyncio.current_task()
        return getattr(task, "cancelling", int)() > 0
    trio = sys.modules.get("trio")
    return trio is None or not isinstance(interrupt, trio.Cancelled)
