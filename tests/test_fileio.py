"""_fileio: the file threads (``in_thread``) and the read buffers."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import threading
import time
from typing import Any

import anyio
import pytest

from asgikit import _fileio
from asgikit._fileio import SPARE_BUFFERS, SPARE_SIZES, give_back, in_thread, take_buffer


@pytest.fixture
def fresh_pool(monkeypatch: pytest.MonkeyPatch) -> _fileio._Pool:
    pool = _fileio._Pool()
    monkeypatch.setattr(_fileio, "_pool", pool)
    return pool


async def test_a_call_runs_in_a_worker_thread_and_returns_its_result(anyio_backend: str) -> None:
    name = await in_thread(lambda: threading.current_thread().name)
    assert name != threading.current_thread().name
    assert name.startswith("asgikit-files-") == (anyio_backend == "asyncio")
    assert await in_thread(divmod, 7, 2) == (3, 1)


async def test_an_error_in_the_call_is_raised_in_the_task() -> None:
    with pytest.raises(FileNotFoundError):
        await in_thread(os.stat, "/no/such/file/anywhere")


async def test_on_asyncio_a_cancelled_calls_result_is_released_when_it_ends(
    anyio_backend: str,
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("anyio's hop waits for the call, shielded, and hands the result back")
    entered, proceed = threading.Event(), threading.Event()
    released: list[str] = []

    def slow() -> str:
        entered.set()
        proceed.wait(10)
        return "an open file"

    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(lambda: in_thread(slow, release=released.append))
            while not entered.is_set():
                await anyio.sleep(0.001)
            group.cancel_scope.cancel()  # the task does not wait for the call
        proceed.set()
        while not released:
            await anyio.sleep(0.001)
    assert released == ["an open file"]


async def test_threads_are_started_as_needed_up_to_file_threads(
    anyio_backend: str, fresh_pool: _fileio._Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("the pool is asyncio's")
    monkeypatch.setattr(_fileio, "FILE_THREADS", 2)
    gate = threading.Barrier(2, timeout=10)  # two calls must run at once
    with anyio.fail_after(10):
        results = await asyncio.gather(*(in_thread(gate.wait) for _ in range(4)))
    assert sorted(results) == [0, 0, 1, 1]
    assert fresh_pool.threads == 2


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads running
def test_after_fork_the_child_gets_threads_of_its_own() -> None:
    asyncio.run(in_thread(int))  # the parent's pool has a thread now
    deadline = time.monotonic() + 10
    while _fileio._pool.idle == 0 and time.monotonic() < deadline:
        time.sleep(0.001)  # until it waits for the next call
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.write(write_end, str(asyncio.run(in_thread(int, "42"))).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        ready, _, _ = select.select([read_end], [], [], 10)
        answer = os.read(read_end, 16) if ready else b"hung"
    finally:
        os.close(read_end)
        if not ready:
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert answer == b"42"


def test_buffers_have_a_byte_more_and_are_kept_a_few_of_a_few_sizes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_fileio, "_SPARE", {})
    buffer = take_buffer(1000)
    assert len(buffer) == 1001
    give_back(buffer)
    assert take_buffer(1000) is buffer
    for _ in range(SPARE_BUFFERS + 3):
        give_back(bytearray(1001))
    for size in range(SPARE_SIZES + 3):
        give_back(bytearray(10 + size))
    spare: dict[int, list[Any]] = _fileio._SPARE
    assert len(spare) == SPARE_SIZES
    assert len(spare[1001]) == SPARE_BUFFERS


async def test_calls_queued_together_with_one_thread_idle_get_threads_of_their_own(
    anyio_backend: str, fresh_pool: _fileio._Pool
) -> None:
    if anyio_backend != "asyncio":
        pytest.skip("the pool is asyncio's")
    await in_thread(int)  # one thread, idle once it has answered
    with anyio.fail_after(10):
        while fresh_pool.idle == 0:
            await anyio.sleep(0.001)
    # Three calls in one pass of the loop, each waiting for the others: a
    # stale count of idle threads would queue them all behind one thread.
    gate = threading.Barrier(3, timeout=5)
    with anyio.fail_after(10):
        results = await asyncio.gather(*(in_thread(gate.wait) for _ in range(3)))
    assert sorted(results) == [0, 1, 2]  # three ran at once
    assert 3 <= fresh_pool.threads <= _fileio.FILE_THREADS


def test_a_release_that_raises_after_the_loop_closed_leaves_the_thread_serving(
    fresh_pool: _fileio._Pool, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(_fileio, "FILE_THREADS", 1)
    entered, proceed = threading.Event(), threading.Event()
    released: list[str] = []

    def slow() -> str:
        entered.set()
        proceed.wait(10)
        return "an open file"

    def failing_release(result: str) -> None:
        released.append(result)
        raise OSError("close failed")

    async def abandon() -> None:
        asyncio.get_running_loop().create_task(in_thread(slow, release=failing_release))
        while not entered.is_set():
            await asyncio.sleep(0.001)
        # asyncio.run cancels the task and closes the loop while the call runs.

    asyncio.run(abandon())
    proceed.set()

    async def again() -> int:
        return await asyncio.wait_for(in_thread(int, "7"), 10)

    assert asyncio.run(again()) == 7  # the one thread still takes calls
    assert released == ["an open file"]
    assert "close failed" in caplog.text  # reported, not swallowed


@pytest.mark.parametrize("release_fails", [False, True])
def test_a_result_delivered_in_the_pass_the_task_is_cancelled_is_released(
    fresh_pool: _fileio._Pool, monkeypatch: pytest.MonkeyPatch, release_fails: bool
) -> None:
    monkeypatch.setattr(_fileio, "FILE_THREADS", 1)
    entered, proceed, done = threading.Event(), threading.Event(), threading.Event()
    released: list[str] = []

    def release(result: str) -> None:
        released.append(result)
        if release_fails:
            raise OSError("close failed")  # reported; the task is still cancelled

    def slow() -> str:
        entered.set()
        proceed.wait(10)
        return "an open file"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(in_thread(slow, release=release))
        while not entered.is_set():
            await asyncio.sleep(0.001)
        after = loop.create_task(in_thread(done.set))  # queued behind it on the one thread
        await asyncio.sleep(0)
        proceed.set()
        # Blocking the loop until the thread has handed the result back and
        # moved on: the result is queued, the task is cancelled right after.
        assert done.wait(10)
        loop.call_soon(task.cancel)
        with pytest.raises(asyncio.CancelledError):
            await task
        await after

    asyncio.run(main())
    assert released == ["an open file"]


def test_spare_buffers_of_a_large_chunk_size_are_kept_within_a_byte_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Eight responses with 16 MiB chunks end at once: the process must not
    # keep 128 MiB of buffers for ever (calloc'ed: no page is touched here).
    monkeypatch.setattr(_fileio, "_SPARE", {})
    for size in (16 << 20, 8 << 20, 4 << 20, 1 << 20):
        for _ in range(SPARE_BUFFERS):
            give_back(bytearray(size))
    spare: dict[int, list[Any]] = _fileio._SPARE
    assert sum(len(b) for buffers in spare.values() for b in buffers) <= _fileio.SPARE_BYTES
    assert {size: len(buffers) for size, buffers in spare.items()} == {
        8 << 20: 1,
        4 << 20: 2,
        1 << 20: 8,
    }
    taken = take_buffer((4 << 20) - 1)
    give_back(taken)  # taken and given back: kept again
    assert spare[4 << 20][-1] is taken
