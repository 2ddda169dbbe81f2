"""Blocking file calls off the event loop, cheaply: worker threads and read buffers.

``in_thread(func, *args)`` runs a blocking call (open, stat, read) in a
worker thread: one hop.  On asyncio the hop goes to a small pool of this
module's own threads, which hands the result back with one
``call_soon_threadsafe``: less than half the CPU of an
``anyio.to_thread.run_sync`` hop, which adds two event-loop passes (its
checkpoint and its capacity limiter), a cancel scope, a context copy and
a lock-based queue per thread, and so wakes one thread per call where
this pool's threads take the calls queued meanwhile in turn.  So anyio's
default thread limiter does not bound these threads: ``FILE_THREADS``
does.  On trio (or any other library) the hop is anyio's.

A hop whose task is cancelled is not waited for (anyio's is, shielded):
its call runs to its end in the thread, and ``release`` disposes of what
it returned (closes the file it opened).

Memory a worker thread allocates comes from its own malloc arena, whose
freed pages go back to the system and are faulted in again for every
chunk: about 215 page faults for each 1 MiB response, three times the CPU
of copying the bytes.  So chunks are read into a buffer the event loop's
thread allocated (``take_buffer``), and copied out there; a few buffers
are kept for the next responses (``give_back``).
"""

from __future__ import annotations

import asyncio
import os
import queue
import threading
from collections.abc import Callable
from typing import Any, BinaryIO, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")

#: At most this many threads read files for the responses of one process (on asyncio).
FILE_THREADS = min(32, (os.cpu_count() or 1) + 4)


class _Pool:
    """Worker threads for blocking file calls, started as needed up to ``FILE_THREADS``."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self.threads = 0
        self.idle = 0
        self.lock = threading.Lock()

    def submit(
        self,
        loop: asyncio.AbstractEventLoop,
        future: asyncio.Future[Any],
        release: Callable[[Any], None] | None,
        func: Callable[..., Any],
        args: tuple[Any, ...],
    ) -> None:
        # A thread is started unless an idle one is left for this call: calls
        # queued in one pass of the loop each count against the idle threads
        # (one slow read must not hold up calls a new thread could take).
        jobs = self.jobs
        jobs.put((loop, future, release, func, args))
        if jobs.qsize() > self.idle and self.threads < FILE_THREADS:
            self._start()

    def _start(self) -> None:
        with self.lock:
            if self.threads >= FILE_THREADS:
                return
            self.threads += 1
            name = f"asgikit-files-{self.threads}"
        threading.Thread(target=self._work, name=name, daemon=True).start()

    def _work(self) -> None:
        jobs = self.jobs
        while True:
            with self.lock:
                self.idle += 1
            job = jobs.get()
            with self.lock:
                self.idle -= 1
            # Calls queued while this thread still counted as idle get their
            # thread here (submit saw one idle thread too many).
            if jobs.qsize() > self.idle and self.threads < FILE_THREADS:
                self._start()
            loop, future, release, func, args = job
            del job
            try:
                result, error = func(*args), None
            except BaseException as exc:  # handed to the awaiting task
                result, error = None, exc
            try:
                loop.call_soon_threadsafe(_deliver, future, release, result, error)
            except RuntimeError:  # the loop is closed: nobody will take the result
                if error is None and release is not None:
                    _release(loop, release, result)
            del loop, future, release, func, args, result, error


def _release(loop: asyncio.AbstractEventLoop, release: Callable[[Any], None], result: Any) -> None:
    # Reported, not raised: raised in a worker thread it would end the
    # thread, and the pool would never start another in its place.
    try:
        release(result)
    except Exception as exc:
        message = "releasing the result of a cancelled file call failed"
        loop.call_exception_handler({"message": message, "exception": exc})


def _deliver(
    future: asyncio.Future[Any],
    release: Callable[[Any], None] | None,
    result: Any,
    error: BaseException | None,
) -> None:
    if future.cancelled():
        # The task was cancelled while the call ran: what it opened is closed here.
        if error is None and release is not None:
            release(result)
    elif error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_pool = _Pool()


def _new_pool_after_fork() -> None:
    global _pool
    _pool = _Pool()  # the parent's threads do not exist in the child


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_pool_after_fork)


async def in_thread(
    func: Callable[..., T], *args: Any, release: Callable[[T], None] | None = None
) -> T:
    """``func(*args)`` run in a worker thread: one hop (see the module docs).

    ``release`` is called with the result when the awaiting task was
    cancelled while ``func`` ran, or before it took the result, and nothing
    else will see it (a file it opened is closed).  On anyio's hop the task
    waits, shielded, instead.
    """
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no asyncio loop in this thread
        task = None
    if task is None:
        return await anyio.to_thread.run_sync(func, *args)
    loop = task.get_loop()
    future: asyncio.Future[T] = loop.create_future()
    _pool.submit(loop, future, release, func, args)
    try:
        return await future
    except asyncio.CancelledError:
        # Cancelled after the result came, before the task took it: released here.
        taken = future.done() and not future.cancelled() and future.exception() is None
        if release is not None and taken:
            _release(loop, release, future.result())  # the cancellation goes on
        raise


async def close_after_read(file: BinaryIO) -> None:
    """Close ``file``, which a cancelled hop may still be reading, in a worker thread.

    Closing a buffered file waits for its read to end: not on the event
    loop.  Shielded: the file is closed before the cancellation goes on.
    """
    with anyio.CancelScope(shield=True):
        await in_thread(file.close)


def close_opened(result: tuple[Any, ...]) -> None:
    """The ``release`` of an ``in_thread`` call that returns ``(file, ...)``."""
    if result[0] is not None:
        result[0].close()


# Spare read buffers by length (see the module docs).
_SPARE: dict[int, list[bytearray]] = {}
#: Buffers kept for reuse: at most this many chunk sizes, this many of each.
SPARE_SIZES, SPARE_BUFFERS = 4, 8
#: And at most this many bytes of them in all, a ``SPARE_SIZES``-th of it
#: for each size: eight 1 MiB buffers fit, one of 8 MiB, none larger (a
#: large ``chunk_size`` must not keep hundreds of MiB for ever).
SPARE_BYTES = 32 * 1024 * 1024


def take_spare(size: int) -> bytearray | None:
    """A spare buffer to read chunks of up to ``size`` bytes into, or ``None``.

    It has one byte more, to read a whole file of ``size`` bytes and see
    whether it grew.  Nothing is allocated: taken before it is known whether
    a buffer is needed at all (a small file is read as it is).
    """
    spare = _SPARE.get(size + 1)
    if spare:
        try:
            return spare.pop()
        except IndexError:  # another thread's loop took it meanwhile
            pass
    return None


def take_buffer(size: int) -> bytearray:
    """``take_spare``, or a new buffer (allocated here, on the event loop's thread)."""
    buffer = take_spare(size)
    return bytearray(size + 1) if buffer is None else buffer


def give_back(buffer: bytearray) -> None:
    """Keep ``buffer`` for ``take_buffer``, unless enough are kept (no thread may write to it)."""
    spare = _SPARE.get(len(buffer))
    if spare is None:
        if len(_SPARE) >= SPARE_SIZES or len(buffer) > SPARE_BYTES // SPARE_SIZES:
            return
        spare = _SPARE.setdefault(len(buffer), [])
    if len(spare) < SPARE_BUFFERS and (len(spare) + 1) * len(buffer) <= SPARE_BYTES // SPARE_SIZES:
        spare.append(buffer)


__all__ = [
    "FILE_THREADS",
    "SPARE_BUFFERS",
    "SPARE_BYTES",
    "SPARE_SIZES",
    "close_after_read",
    "close_opened",
    "give_back",
    "in_thread",
    "take_buffer",
    "take_spare",
]
