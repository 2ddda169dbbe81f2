"""Attacks on serving files: reads cancelled mid-hop, reused buffers, leaks, odd files."""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from asgikit import _fileio, _sendfile
from asgikit.files import FileResponse
from asgikit.staticfiles import static_files
from asgikit.types import ASGIApp, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, disconnect_after, make_scope

CHUNK = 32 * 1024
# Around the thresholds: read as bytes (16 KiB), read whole into a buffer
# (one chunk), a head and the rest streamed.
SIZES = [0, 1, 16 * 1024, 16 * 1024 + 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 5, 4 * CHUNK]


@pytest.fixture(autouse=True)
def no_spare_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_fileio, "_SPARE", {})


@pytest.fixture
def tree(tmp_path: Path) -> dict[str, bytes]:
    files = {}
    for index, size in enumerate(SIZES):
        content = hashlib.shake_256(str(index).encode()).digest(size)
        (tmp_path / f"f{index}.bin").write_bytes(content)
        files[f"f{index}.bin"] = content
    return files


def apps(root: Path, names: list[str]) -> list[tuple[str, ASGIApp, str]]:
    """(name, app, request path) pairs: each file through FileResponse and static_files."""
    site = static_files(root, chunk_size=CHUNK)

    def file_app(name: str) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await FileResponse(root / name, chunk_size=CHUNK)(scope, receive, send)

        return app

    pairs = [(name, file_app(name), "/") for name in names]
    return pairs + [(name, site, "/" + name) for name in names]


class ReadGate:
    """``_sendfile``'s reads into buffers, watched: which buffers are being read into, and traps.

    A read of a trapped file waits for ``release`` before it reads (as a
    slow disk would), after its request was cancelled.  A buffer handed to
    a second read while the first still runs is recorded in ``shared``.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.lock = threading.Lock()
        self.busy: set[int] = set()
        self.shared: list[int] = []
        self.traps: set[int] = set()  # inode numbers
        self.trapped = 0
        self.release = threading.Event()
        read_into, read_whole = _sendfile._read_into, _sendfile._read_whole

        def gated_read_into(file: Any, start: int, target: memoryview, close: bool = False) -> int:
            return self.watch(file, target.obj, lambda: read_into(file, start, target, close))

        def gated_read_whole(file: Any, size: int, buffer: bytearray | None) -> Any:
            if buffer is None:
                return read_whole(file, size, buffer)
            return self.watch(file, buffer, lambda: read_whole(file, size, buffer))

        monkeypatch.setattr(_sendfile, "_read_into", gated_read_into)
        monkeypatch.setattr(_sendfile, "_read_whole", gated_read_whole)

    def watch(self, file: Any, buffer: object, read: Any) -> Any:
        key = id(buffer)
        with self.lock:
            if key in self.busy:
                self.shared.append(key)
            self.busy.add(key)
            trapped = os.fstat(file.fileno()).st_ino in self.traps
            self.trapped += trapped
        try:
            if trapped:
                self.release.wait(10)
            return read()
        finally:
            with self.lock:
                self.busy.discard(key)


async def test_reads_cancelled_mid_hop_never_write_into_another_responses_buffer(
    tmp_path: Path, tree: dict[str, bytes], monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    # Threads enough for every trapped read and the honest ones (a blocked
    # read holds its thread).
    monkeypatch.setattr(_fileio, "FILE_THREADS", 20)
    monkeypatch.setattr(_fileio, "_pool", _fileio._Pool())
    gate = ReadGate(monkeypatch)
    names = sorted(tree)
    large = [name for name in names if len(tree[name]) > 16 * 1024]
    gate.traps = {(tmp_path / name).stat().st_ino for name in large}
    victims = apps(tmp_path, large)
    with anyio.fail_after(20):
        async with anyio.create_task_group() as group:
            scopes = [anyio.CancelScope() for _ in victims]

            async def victim(scope: anyio.CancelScope, app: ASGIApp, path: str) -> None:
                with scope:
                    await app(make_scope(path=path), body_receive(), SendRecorder())

            for scope, (_, app, path) in zip(scopes, victims, strict=True):
                group.start_soon(victim, scope, app, path)
            while gate.trapped < len(victims):  # every victim is in a read hop
                await anyio.sleep(0.001)
            gate.traps = set()
            for scope in scopes:
                scope.cancel()  # on asyncio nobody waits for the reads
            if anyio_backend != "asyncio":
                gate.release.set()  # anyio's hop waits for its read, shielded
        # Honest clients take the buffers while the cancelled reads still run.
        results: list[tuple[str, str, SendRecorder]] = []

        async def honest(name: str, app: ASGIApp, path: str, byte_range: str) -> None:
            headers = [(b"range", byte_range.encode())] if byte_range else []
            sent = SendRecorder()
            await app(make_scope(path=path, headers=headers), body_receive(), sent)
            results.append((name, byte_range, sent))

        async with anyio.create_task_group() as group:
            for _ in range(2):
                for name, app, path in apps(tmp_path, names):
                    group.start_soon(honest, name, app, path, "")
                    group.start_soon(honest, name, app, path, "bytes=7-40000")
            await anyio.lowlevel.checkpoint()
            gate.release.set()
    assert gate.shared == []
    for name, byte_range, sent in results:
        content = tree[name]
        if byte_range and len(content) > 7:
            assert (sent.status, sent.body) == (206, content[7:40001]), name
        elif not byte_range:
            assert (sent.status, sent.body) == (200, content), name


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts /proc/self/fd")
async def test_no_descriptor_is_left_open_after_many_cancelled_and_abandoned_downloads(
    tmp_path: Path, tree: dict[str, bytes]
) -> None:
    names = sorted(tree)
    served = apps(tmp_path, names)
    before = len(os.listdir("/proc/self/fd"))
    with anyio.fail_after(30):
        for round_ in range(12):
            for index, (_, app, path) in enumerate(served):
                scope = make_scope(path=path)
                if index % 3 == 0:
                    await app(scope, disconnect_after(), SendRecorder())
                    continue
                async with anyio.create_task_group() as group:

                    async def cancel_after(passes: int) -> None:
                        for _ in range(passes):
                            await anyio.lowlevel.checkpoint()
                        group.cancel_scope.cancel()

                    group.start_soon(cancel_after, 1 + (index + round_) % 5)
                    await app(scope, body_receive(), SendRecorder())
                    group.cancel_scope.cancel()
        # Cancelled hops close what they opened when they end.
        while len(os.listdir("/proc/self/fd")) > before:
            await anyio.sleep(0.005)
    pool = _fileio._pool
    assert pool.threads <= _fileio.FILE_THREADS


async def test_a_fifo_is_refused_without_blocking_with_read_on_loop(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with anyio.fail_after(10), pytest.raises(RuntimeError, match="not a file"):
        await FileResponse(tmp_path / "fifo", read_on_loop=1000)(
            make_scope(), body_receive(), SendRecorder()
        )
    sent = SendRecorder()
    with anyio.fail_after(10):
        await static_files(tmp_path, read_on_loop=1000)(
            make_scope(path="/fifo"), body_receive(), sent
        )
    assert sent.status == 404


@pytest.mark.parametrize("new_size", [25_000, 18_000, 0])
@pytest.mark.parametrize("via", ["static_files", "FileResponse"])
async def test_a_file_rewritten_between_its_open_and_its_read_is_sent_whole_never_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_size: int, via: str
) -> None:
    # A deploy rewrites a 20 KB file (above 16 KiB, within one chunk) after
    # the hop that opened it, before the hop that reads it (no spare buffer
    # yet, so the open did not read it).  The client must get one whole
    # version with its own length, or a 404 from static_files: never the
    # new file cut to the old length, nor a 500.
    page = tmp_path / "page.bin"
    old = hashlib.shake_256(b"old").digest(20_000)
    new = hashlib.shake_256(b"new").digest(new_size)
    page.write_bytes(old)
    read_into, read_whole = _sendfile._read_into, _sendfile._read_whole
    rewritten: list[bool] = []

    def rewrite() -> None:
        if not rewritten:
            rewritten.append(True)
            with open(page, "r+b") as file:  # in place: the open file sees it
                file.truncate(0)
                file.write(new)

    def late_read_into(file: Any, start: int, target: memoryview, close: bool = False) -> int:
        rewrite()
        return read_into(file, start, target, close)

    def late_read_whole(file: Any, size: int, buffer: bytearray | None) -> Any:
        rewrite()
        return read_whole(file, size, buffer)

    monkeypatch.setattr(_sendfile, "_read_into", late_read_into)
    monkeypatch.setattr(_sendfile, "_read_whole", late_read_whole)
    if via == "static_files":
        app = static_files(tmp_path, chunk_size=CHUNK)
    else:
        app = FileResponse(page, chunk_size=CHUNK)
    sent = SendRecorder()
    await app(make_scope(path="/page.bin"), body_receive(), sent)
    assert rewritten
    if via == "static_files" and sent.status == 404:
        return
    assert sent.status == 200
    assert sent.body in (old, new)
    assert sent.header(b"content-length") == [str(len(sent.body)).encode()]


@pytest.mark.parametrize(
    "byte_range", ["bytes=50000-60000", "bytes=40000-60000", "bytes=0-9,50000-50100"]
)
async def test_a_range_of_a_file_truncated_before_its_read_is_a_404_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, byte_range: str
) -> None:
    # static_files: "a tree that changes under a request answers 404, never a 500".
    page = tmp_path / "big.bin"
    page.write_bytes(hashlib.shake_256(b"big").digest(100_000))
    read_into, read_pieces = _sendfile._read_into, _sendfile._read_pieces

    def truncate() -> None:
        os.truncate(page, 45_000)

    def late_read_into(file: Any, start: int, target: memoryview, close: bool = False) -> int:
        truncate()
        return read_into(file, start, target, close)

    def late_read_pieces(file: Any, pieces: Any, trailer: bytes) -> bytes:
        truncate()
        return read_pieces(file, pieces, trailer)

    monkeypatch.setattr(_sendfile, "_read_into", late_read_into)
    monkeypatch.setattr(_sendfile, "_read_pieces", late_read_pieces)
    sent = SendRecorder()
    headers = [(b"range", byte_range.encode())]
    await static_files(tmp_path, chunk_size=CHUNK)(
        make_scope(path="/big.bin", headers=headers), body_receive(), sent
    )
    assert sent.status == 404
    page.write_bytes(hashlib.shake_256(b"big").digest(100_000))
    with pytest.raises(RuntimeError, match="shrank"):
        await FileResponse(page, chunk_size=CHUNK)(
            make_scope(headers=headers), body_receive(), SendRecorder()
        )


@pytest.mark.parametrize("new_size", [0, 10_000, CHUNK - 1])
async def test_a_large_file_truncated_before_its_head_is_read_is_a_404_not_a_cut_200(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, new_size: int
) -> None:
    # Stat says 100 KB; the file is cut before the open's hop reads its
    # first chunk: nothing is sent yet, so static_files can still say 404.
    # (Cut to more than a chunk, it is seen only once the headers are sent.)
    page = tmp_path / "big.bin"
    page.write_bytes(hashlib.shake_256(b"big").digest(100_000))
    monkeypatch.setattr(_fileio, "_SPARE", {CHUNK + 1: [bytearray(CHUNK + 1)]})
    read_into = _sendfile._read_into

    def late_read_into(file: Any, start: int, target: memoryview, close: bool = False) -> int:
        if start == 0:
            os.truncate(page, new_size)
        return read_into(file, start, target, close)

    monkeypatch.setattr(_sendfile, "_read_into", late_read_into)
    sent = SendRecorder()
    await static_files(tmp_path, chunk_size=CHUNK)(
        make_scope(path="/big.bin"), body_receive(), sent
    )
    assert sent.status == 404
