"""FileResponse: headers, HEAD, preconditions, ranges, streaming, pathsend, disconnects."""

from __future__ import annotations

import email.parser
import email.policy
import mimetypes
import os
import threading
from email.utils import formatdate
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from asgikit import _fileio, _sendfile
from asgikit.background import BackgroundTask
from asgikit.files import FileResponse, content_disposition, guess_media_type
from asgikit.requests import Request
from asgikit.testing import TestClient
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from tests.conftest import SendRecorder, body_receive, disconnect_after, make_scope, run_app
from tests.servers.live import serve

DATA = bytes(range(256)) * 40  # 10 KiB, every byte value
PATHSEND = {"http.response.pathsend": {}}


@pytest.fixture(autouse=True)
def no_spare_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with no spare read buffer (see asgikit._fileio)."""
    monkeypatch.setattr(_fileio, "_SPARE", {})


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(DATA)
    os.utime(path, (784111777, 784111777))
    return path


def file_app(path: Path, **options: Any) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":  # lifespan: not supported
            await FileResponse(path, **options)(scope, receive, send)

    return app


def client(app: ASGIApp, **options: Any) -> TestClient:
    return TestClient(app, extensions=options.pop("extensions", {}), **options)


def multipart_parts(response: httpx.Response) -> list[tuple[str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: "
        + response.headers["content-type"].encode()
        + b"\r\n\r\n"
        + response.content
    )
    return [(p["content-range"], p.get_payload(decode=True)) for p in message.iter_parts()]


def test_a_names_media_type_is_guessed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = mimetypes.guess_type

    def counted(url: str, strict: bool = True) -> Any:
        calls.append(url)
        return real(url, strict)

    monkeypatch.setattr(mimetypes, "guess_type", counted)
    name = "/some/dir/a-name-seen-by-this-test-only.css"
    first = [guess_media_type(name) for _ in range(3)]
    assert first == ["text/css"] * 3
    assert FileResponse(name).media_type == "text/css"
    assert len(calls) == 1


def test_long_download_names_from_clients_are_not_kept_by_the_media_type_cache() -> None:
    # FileResponse(path, filename=<from the query string>): a thousand
    # distinct 64 KiB names must not leave 64 MiB in the cache.
    import tracemalloc

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(200):
            name = f"{index}-" + "x" * 64 * 1024 + ".pdf"
            assert guess_media_type(name) == "application/pdf"
            del name
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 1024 * 1024


# -- headers -----------------------------------------------------------------


async def test_a_file_gets_length_validators_and_accept_ranges(data_file: Path) -> None:
    async with client(file_app(data_file)) as http:
        response = await http.get("/")
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["last-modified"] == "Sun, 06 Nov 1994 08:49:37 GMT"
    assert response.headers["accept-ranges"] == "bytes"
    etag = response.headers["etag"]
    assert etag.startswith('"')
    assert not etag.startswith("W/")


async def test_the_etag_changes_when_the_file_does(data_file: Path) -> None:
    async with client(file_app(data_file)) as http:
        first = (await http.get("/")).headers["etag"]
        data_file.write_bytes(DATA + b"!")
        second = (await http.get("/")).headers["etag"]
    assert first != second


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("a.html", "text/html"),
        ("a.css", "text/css"),
        ("a.png", "image/png"),
        ("a.json", "application/json"),
        ("a.unknownext", "application/octet-stream"),
        ("a.css.gz", "application/gzip"),
        ("data:text/html,x.txt", "text/plain"),
    ],
)
def test_media_types_are_guessed_from_the_name(name: str, media_type: str) -> None:
    assert guess_media_type(name) == media_type


async def test_text_gets_a_charset_and_media_type_can_be_given(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hi")
    async with client(file_app(path)) as http:
        assert (await http.get("/")).headers["content-type"] == "text/plain; charset=utf-8"
    async with client(file_app(path, media_type="application/x-custom")) as http:
        assert (await http.get("/")).headers["content-type"] == "application/x-custom"


@pytest.mark.parametrize(
    ("kind", "filename", "expected"),
    [
        ("attachment", "report.pdf", 'attachment; filename="report.pdf"'),
        ("inline", "a b.txt", 'inline; filename="a b.txt"'),
        (
            "attachment",
            "r\u00e9sum\u00e9.txt",
            "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt",
        ),
        (
            "attachment",
            'evil"\r\nx.txt',
            "attachment; filename=\"evil___x.txt\"; filename*=UTF-8''evil%22%0D%0Ax.txt",
        ),
        (
            "attachment",
            "\u6587\u4ef6",
            "attachment; filename=\"__\"; filename*=UTF-8''%E6%96%87%E4%BB%B6",
        ),
    ],
)
def test_content_disposition_has_an_ascii_fallback_and_rfc_8187_name(
    kind: str, filename: str, expected: str
) -> None:
    assert content_disposition(kind, filename) == expected


async def test_filename_sets_content_disposition(data_file: Path) -> None:
    app = file_app(data_file, filename="d\u00e9j\u00e0 vu.bin", content_disposition_type="inline")
    async with client(app) as http:
        response = await http.get("/")
    assert response.headers["content-disposition"] == (
        "inline; filename=\"d_j_ vu.bin\"; filename*=UTF-8''d%C3%A9j%C3%A0%20vu.bin"
    )


async def test_head_sends_the_headers_of_get_without_a_body(data_file: Path) -> None:
    async with client(file_app(data_file)) as http:
        response = await http.head("/", headers={"Range": "bytes=0-9"})
    assert response.status_code == 200  # Range means nothing for HEAD.
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert "etag" in response.headers


async def test_a_missing_file_or_a_directory_is_a_runtime_error(tmp_path: Path) -> None:
    for path in (tmp_path / "missing", tmp_path):
        for method in ("GET", "HEAD"):
            with pytest.raises(RuntimeError, match="File at path"):
                await run_app(file_app(path), make_scope(method))


async def test_the_background_task_runs_after_the_body(data_file: Path) -> None:
    done: list[str] = []

    async def task() -> None:
        done.append("ran")

    sent = await run_app(file_app(data_file, background=BackgroundTask(task)))
    assert sent.body == DATA
    assert done == ["ran"]


# -- preconditions -------------------------------------------------------------


async def test_conditional_get_answers_304_with_validators_and_no_body(data_file: Path) -> None:
    async with client(file_app(data_file, headers={"Cache-Control": "max-age=60"})) as http:
        etag = (await http.get("/")).headers["etag"]
        by_tag = await http.get("/", headers={"If-None-Match": etag})
        by_date = await http.get(
            "/", headers={"If-Modified-Since": "Sun, 06 Nov 1994 08:49:37 GMT"}
        )
        changed = await http.get(
            "/", headers={"If-Modified-Since": "Sat, 05 Nov 1994 08:49:37 GMT"}
        )
    for response in (by_tag, by_date):
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == etag
        assert response.headers["cache-control"] == "max-age=60"
        assert "last-modified" in response.headers
        assert "content-length" not in response.headers
        assert "content-type" not in response.headers
    assert changed.status_code == 200


async def test_failed_if_match_or_if_unmodified_since_is_412(data_file: Path) -> None:
    async with client(file_app(data_file)) as http:
        etag = (await http.get("/")).headers["etag"]
        wrong = await http.get("/", headers={"If-Match": '"nope"'})
        right = await http.get("/", headers={"If-Match": etag})
        old = await http.get("/", headers={"If-Unmodified-Since": "Sat, 05 Nov 1994 08:49:37 GMT"})
        post = await http.post("/", headers={"If-None-Match": etag})
    assert (wrong.status_code, wrong.content) == (412, b"")
    assert right.status_code == 200
    assert old.status_code == 412
    assert post.status_code == 412


async def test_a_given_etag_is_the_one_compared(data_file: Path) -> None:
    async with client(file_app(data_file, headers={"ETag": '"v1"'})) as http:
        response = await http.get("/", headers={"If-None-Match": '"v1"'})
    assert response.status_code == 304
    assert response.headers["etag"] == '"v1"'


async def test_preconditions_and_ranges_do_not_apply_to_a_non_2xx_status(data_file: Path) -> None:
    async with client(file_app(data_file, status_code=404)) as http:
        etag = (await http.get("/")).headers["etag"]
        response = await http.get("/", headers={"If-None-Match": etag, "Range": "bytes=0-1"})
    assert response.status_code == 404
    assert response.content == DATA
    assert "accept-ranges" not in response.headers


# -- ranges ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "stop"),
    [
        ("bytes=10-19", 10, 20),
        ("bytes=-5", len(DATA) - 5, len(DATA)),
        ("bytes=10000-", 10000, len(DATA)),
        ("bytes=10000-999999", 10000, len(DATA)),
        ("bytes=0-9,5-14,15-20", 0, 21),
    ],
)
async def test_a_single_range_is_206_with_content_range(
    data_file: Path, header: str, start: int, stop: int
) -> None:
    async with client(file_app(data_file)) as http:
        response = await http.get("/", headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[start:stop]
    assert response.headers["content-range"] == f"bytes {start}-{stop - 1}/{len(DATA)}"
    assert response.headers["content-length"] == str(stop - start)
    assert response.headers["content-type"] == "application/octet-stream"


async def test_multiple_ranges_are_multipart_byteranges(data_file: Path) -> None:
    async with client(file_app(data_file, chunk_size=64)) as http:
        response = await http.get("/", headers={"Range": "bytes=-3, 0-9,100-299"})
    assert response.status_code == 206
    assert response.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert response.headers["content-length"] == str(len(response.content))
    size = len(DATA)
    assert multipart_parts(response) == [
        (f"bytes 0-9/{size}", DATA[0:10]),
        (f"bytes 100-299/{size}", DATA[100:300]),
        (f"bytes {size - 3}-{size - 1}/{size}", DATA[-3:]),
    ]


async def test_an_unsatisfiable_range_is_416_with_the_size(data_file: Path) -> None:
    async with client(file_app(data_file)) as http:
        response = await http.get("/", headers={"Range": f"bytes={len(DATA)}-"})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=5-1", "bytes=abc", "lines=1-2", "bytes=1-2,x"])
async def test_an_invalid_range_is_ignored(data_file: Path, header: str) -> None:
    async with client(file_app(data_file)) as http:
        response = await http.get("/", headers={"Range": header})
    assert response.status_code == 200
    assert response.content == DATA


async def test_if_range_sends_the_range_only_for_the_current_file(data_file: Path) -> None:
    async with client(file_app(data_file)) as http:
        first = await http.get("/")
        etag, date = first.headers["etag"], first.headers["last-modified"]
        fresh_tag = await http.get("/", headers={"Range": "bytes=0-3", "If-Range": etag})
        fresh_date = await http.get("/", headers={"Range": "bytes=0-3", "If-Range": date})
        stale = await http.get("/", headers={"Range": "bytes=0-3", "If-Range": '"old"'})
        old_date = formatdate(784111000, usegmt=True)
        stale_date = await http.get("/", headers={"Range": "bytes=0-3", "If-Range": old_date})
    assert (fresh_tag.status_code, fresh_tag.content) == (206, DATA[:4])
    assert fresh_date.status_code == 206
    assert (stale.status_code, stale.content) == (200, DATA)
    assert stale_date.status_code == 200


async def test_an_empty_file_serves_200_and_refuses_int_ranges(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    async with client(file_app(path)) as http:
        whole = await http.get("/")
        suffix = await http.get("/", headers={"Range": "bytes=-5"})
        start = await http.get("/", headers={"Range": "bytes=0-"})
    assert (whole.status_code, whole.content, whole.headers["content-length"]) == (200, b"", "0")
    assert suffix.status_code == 200
    assert (start.status_code, start.headers["content-range"]) == (416, "bytes */0")


# -- sending: chunks, pathsend, disconnects --------------------------------------


async def test_a_large_file_is_streamed_in_chunks(data_file: Path) -> None:
    sent = await run_app(file_app(data_file, chunk_size=1000))
    bodies = [m for m in sent.messages if m["type"] == "http.response.body"]
    assert len(bodies) == 11
    assert all(len(m["body"]) <= 1000 for m in bodies)
    assert all(m["more_body"] for m in bodies[:-1])
    assert not bodies[-1]["more_body"]
    assert sent.body == DATA


def count_thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every function a response runs in a worker thread.

    On asyncio the hops go to asgikit's own file threads, elsewhere to anyio's.
    """
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync
    submit = _fileio._pool.submit

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append("anyio:" + func.__name__)
        return await run_sync(func, *args, **kwargs)

    def counting_submit(loop: Any, future: Any, release: Any, func: Any, args: Any) -> None:
        hops.append("pool:" + func.__name__)
        submit(loop, future, release, func, args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    monkeypatch.setattr(_fileio._pool, "submit", counting_submit)
    return hops


async def test_on_asyncio_files_are_read_by_asgikits_threads_not_anyios(
    data_file: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    hops = count_thread_hops(monkeypatch)
    sent = await run_app(file_app(data_file, chunk_size=4096))
    assert sent.body == DATA
    kind = "pool" if anyio_backend == "asyncio" else "anyio"
    assert hops
    assert all(hop.startswith(kind + ":") for hop in hops), hops


async def test_a_large_file_takes_one_worker_thread_hop_per_chunk(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Opening the file and reading its first chunk share a hop: 11 chunks, 11
    # hops, once a buffer is spare (the first response leaves one).
    hops = count_thread_hops(monkeypatch)
    cold = await run_app(file_app(data_file, chunk_size=1000))
    assert cold.body == DATA
    assert len(hops) == 12, hops  # no buffer yet: the open reads nothing
    hops.clear()
    sent = await run_app(file_app(data_file, chunk_size=1000))
    assert sent.body == DATA
    assert len(hops) == 11, hops


async def test_a_small_file_takes_one_worker_thread_hop(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = count_thread_hops(monkeypatch)
    sent = await run_app(file_app(data_file))
    assert sent.body == DATA
    assert len(hops) == 1, hops


async def test_a_conditional_get_of_a_large_file_reads_no_chunk_for_its_304(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[int] = []
    real_open = _sendfile.open_regular

    def recording_open(path: str) -> Any:
        file, info = real_open(path)
        read = file.read

        def counted(size: int = -1) -> bytes:
            data = read(size)
            reads.append(len(data))
            return data

        file.read = counted  # type: ignore[method-assign]
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", recording_open)
    first = await run_app(file_app(data_file, chunk_size=1000))
    etag = first.header(b"etag")[0]
    reads.clear()
    sent = await run_app(
        file_app(data_file, chunk_size=1000), make_scope(headers=[(b"if-none-match", etag)])
    )
    assert sent.status == 304
    assert reads == []


async def test_a_small_file_is_read_asking_for_its_size_not_a_chunk(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read allocates what it asks for: a 10 KiB file must not cost a 1 MiB buffer.
    asked: list[int] = []
    real_open = _sendfile.open_regular

    def recording_open(path: str) -> Any:
        file, info = real_open(path)
        read = file.read

        def recorded(size: int = -1) -> bytes:
            asked.append(size)
            return read(size)

        file.read = recorded  # type: ignore[method-assign]
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", recording_open)
    sent = await run_app(file_app(data_file, chunk_size=1024 * 1024))
    assert sent.body == DATA
    assert asked == [len(DATA) + 1]


async def test_chunks_are_read_into_one_reused_buffer_and_sent_as_bytes_of_their_own(
    data_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The buffer is the event loop's (see _sendfile); every body is a copy,
    # so a later response reading into the same buffer changes no body sent.
    other = tmp_path / "other.bin"
    other.write_bytes(DATA[::-1])
    targets: list[Any] = []
    real_open = _sendfile.open_regular

    def recording_open(path: str) -> Any:
        file, info = real_open(path)
        readinto = file.readinto

        def recorded(target: Any) -> int:
            targets.append(target.obj)
            return readinto(target)

        file.readinto = recorded  # type: ignore[method-assign]
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", recording_open)
    first = await run_app(file_app(data_file, chunk_size=1000))
    second = await run_app(file_app(other, chunk_size=1000))
    assert (first.body, second.body) == (DATA, DATA[::-1])
    assert len(targets) == 22  # 11 chunks each, the first read with the open
    assert all(target is targets[0] for target in targets)
    bodies = [m["body"] for m in first.messages + second.messages if "body" in m]
    assert all(type(body) is bytes for body in bodies)


async def test_a_mid_size_file_is_read_whole_into_the_reused_buffer_in_one_hop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(DATA) * 4 > _sendfile.READ_INTO_ABOVE
    paths = [tmp_path / "a.bin", tmp_path / "b.bin"]
    paths[0].write_bytes(DATA * 4)
    paths[1].write_bytes(DATA[::-1] * 4)
    targets: list[Any] = []
    real_open = _sendfile.open_regular

    def recording_open(path: str) -> Any:
        file, info = real_open(path)
        readinto = file.readinto

        def recorded(target: Any) -> int:
            targets.append(target.obj)
            return readinto(target)

        file.readinto = recorded  # type: ignore[method-assign]
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", recording_open)
    hops = count_thread_hops(monkeypatch)
    first = await run_app(file_app(paths[0]))
    second = await run_app(file_app(paths[1]))
    assert (first.body, second.body) == (DATA * 4, DATA[::-1] * 4)
    # The first: opened (nothing allocated in the thread), then read into a
    # new buffer; the second: opened and read into that one, one hop.
    assert [hop.split(":")[1] for hop in hops] == ["_open_or_fail", "prefetch", "_open_or_fail"]
    assert len(targets) == 2
    assert targets[0] is targets[1]
    bodies = [m["body"] for m in first.messages + second.messages if "body" in m]
    assert len(bodies) == 2
    assert all(type(body) is bytes for body in bodies)


async def test_a_small_file_allocates_no_read_buffer(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load many small files are in flight at once: a chunk-sized buffer
    # each, taken before the size is known, cost more than the hop.
    allocated: list[int] = []
    real = _fileio.take_buffer

    def recording(size: int) -> bytearray:
        allocated.append(size)
        return real(size)

    monkeypatch.setattr(_fileio, "take_buffer", recording)
    monkeypatch.setattr(_sendfile, "take_buffer", recording)
    for _ in range(3):
        assert (await run_app(file_app(data_file))).body == DATA
    assert allocated == []
    assert _fileio._SPARE == {}


async def test_a_large_file_is_closed_in_the_worker_thread_of_its_last_read(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed_in: list[str] = []
    real_open = _sendfile.open_regular

    def recording_open(path: str) -> Any:
        file, info = real_open(path)
        close = file.close

        def recorded() -> None:
            if not file.closed:
                closed_in.append(threading.current_thread().name)
            close()

        file.close = recorded  # type: ignore[method-assign]
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", recording_open)
    sent = await run_app(file_app(data_file, chunk_size=1000))
    assert sent.body == DATA
    assert len(closed_in) == 1
    assert closed_in[0] != threading.main_thread().name


async def test_pathsend_is_used_for_a_whole_file_when_offered(data_file: Path) -> None:
    sent = await run_app(file_app(data_file), make_scope(extensions=PATHSEND))
    assert sent.messages[-1] == {"type": "http.response.pathsend", "path": str(data_file)}
    assert sent.header(b"content-length") == [str(len(DATA)).encode()]


async def test_pathsend_is_not_used_for_a_range_or_a_head(data_file: Path) -> None:
    ranged = make_scope(extensions=PATHSEND, headers=[(b"range", b"bytes=0-1")])
    sent = await run_app(file_app(data_file), ranged)
    assert sent.status == 206
    assert sent.body == DATA[:2]
    head = await run_app(file_app(data_file), make_scope("HEAD", extensions=PATHSEND))
    assert all(m["type"] != "http.response.pathsend" for m in head.messages)


async def test_the_test_client_serves_the_file_through_pathsend(data_file: Path) -> None:
    async with TestClient(file_app(data_file)) as http:  # advertises pathsend
        response = await http.get("/")
    assert response.content == DATA


@pytest.fixture
def opened_files(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    files: list[Any] = []
    original = _sendfile.open_regular

    def recording(path: str) -> Any:
        file, info = original(path)
        files.append(file)
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", recording)
    return files


async def test_the_file_is_closed_when_the_client_disconnects(
    data_file: Path, opened_files: list[Any]
) -> None:
    send = SendRecorder()
    await file_app(data_file, chunk_size=100)(make_scope(), disconnect_after(), send)
    assert not send.complete
    assert len(send.body) < len(DATA)
    assert [f.closed for f in opened_files] == [True]


async def test_the_file_is_closed_when_the_request_is_cancelled_while_it_is_opened(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    entered, proceed = threading.Event(), threading.Event()
    original = _sendfile.open_regular

    def slow_open(path: str) -> Any:
        entered.set()
        proceed.wait(10)
        file, info = original(path)
        opened.append(file)
        return file, info

    monkeypatch.setattr(_sendfile, "open_regular", slow_open)
    send = SendRecorder()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(file_app(data_file), make_scope(), body_receive(), send)
            while not entered.is_set():
                await anyio.sleep(0.001)
            group.cancel_scope.cancel()
            proceed.set()  # the open finishes after its request is cancelled
        while not opened or not opened[0].closed:
            await anyio.sleep(0.001)


async def test_the_file_is_closed_when_send_fails_with_oserror(
    data_file: Path, opened_files: list[Any]
) -> None:
    count = 0

    async def failing_send(message: Message) -> None:
        nonlocal count
        count += 1
        if count == 3:
            raise OSError("client gone")

    async def receive() -> Message:
        import anyio

        await anyio.sleep_forever()
        raise AssertionError

    await file_app(data_file, chunk_size=100)(make_scope(), receive, failing_send)
    assert count == 3
    assert [f.closed for f in opened_files] == [True]


async def test_small_files_and_answers_without_body_close_the_file(
    data_file: Path, opened_files: list[Any]
) -> None:
    app = file_app(data_file)
    await run_app(app)
    await run_app(app, make_scope(headers=[(b"range", b"bytes=0-5,10-20")]))
    await run_app(app, make_scope(headers=[(b"if-match", b'"x"')]))
    assert opened_files
    assert all(f.closed for f in opened_files)


# -- a real server -----------------------------------------------------------------


def test_file_response_under_uvicorn(data_file: Path) -> None:
    app = file_app(data_file, filename="\u00fcber.bin")
    with serve(app) as base, httpx.Client(base_url=base) as http:
        whole = http.get("/")
        part = http.get("/", headers={"Range": "bytes=100-199"})
        multi = http.get("/", headers={"Range": "bytes=0-0,-1"})
        cached = http.get("/", headers={"If-None-Match": whole.headers["etag"]})
        head = http.head("/")
    assert whole.content == DATA
    assert whole.headers["content-disposition"].endswith("filename*=UTF-8''%C3%BCber.bin")
    assert (part.status_code, part.content) == (206, DATA[100:200])
    assert multipart_parts(multi) == [
        (f"bytes 0-0/{len(DATA)}", DATA[:1]),
        (f"bytes {len(DATA) - 1}-{len(DATA) - 1}/{len(DATA)}", DATA[-1:]),
    ]
    assert (cached.status_code, cached.content) == (304, b"")
    assert (head.status_code, head.content) == (200, b"")
    assert head.headers["content-length"] == str(len(DATA))


# -- read_on_loop: opted in, no worker thread for a small file ----------------------


def on_loop_app(path: Path, **options: Any) -> ASGIApp:
    return file_app(path, read_on_loop=64 * 1024, **options)


async def test_read_on_loop_answers_a_small_file_without_a_worker_thread(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = count_thread_hops(monkeypatch)
    sent = await run_app(on_loop_app(data_file))
    head = await run_app(on_loop_app(data_file), make_scope("HEAD"))
    assert (sent.status, sent.body) == (200, DATA)
    assert sent.header(b"content-length") == [str(len(DATA)).encode()]
    assert (head.status, head.body, head.header(b"content-length")) == (
        200,
        b"",
        [str(len(DATA)).encode()],
    )
    assert hops == []


async def test_read_on_loop_keeps_ranges_and_conditional_requests(
    data_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = count_thread_hops(monkeypatch)
    app = on_loop_app(data_file)
    etag = (await run_app(app)).header(b"etag")[0]
    one = await run_app(app, make_scope(headers=[(b"range", b"bytes=10-19")]))
    many = await run_app(app, make_scope(headers=[(b"range", b"bytes=0-0,-1")]))
    stale_if_range = [(b"range", b"bytes=10-19"), (b"if-range", b'"other"')]
    whole = await run_app(app, make_scope(headers=stale_if_range))
    unsatisfiable = await run_app(app, make_scope(headers=[(b"range", b"bytes=99999-")]))
    cached = await run_app(app, make_scope(headers=[(b"if-none-match", etag)]))
    failed = await run_app(app, make_scope(headers=[(b"if-match", b'"other"')]))
    assert (one.status, one.body) == (206, DATA[10:20])
    assert one.header(b"content-range") == [f"bytes 10-19/{len(DATA)}".encode()]
    assert many.status == 206
    assert many.header(b"content-type")[0].startswith(b"multipart/byteranges")
    assert (whole.status, whole.body) == (200, DATA)
    assert unsatisfiable.status == 416
    assert (cached.status, cached.body) == (304, b"")
    assert failed.status == 412
    assert hops == []


async def test_read_on_loop_reads_a_larger_file_in_worker_threads(
    data_file: Path, monkeypatch: pytest.MonkeyPatch, opened_files: list[Any]
) -> None:
    hops = count_thread_hops(monkeypatch)
    sent = await run_app(file_app(data_file, read_on_loop=1000, chunk_size=4096))
    assert sent.body == DATA
    assert [hop.split(":")[1] for hop in hops] == ["_read_into"] * 3  # opened on the loop
    assert [f.closed for f in opened_files] == [True]


async def test_read_on_loop_of_a_missing_file_is_the_same_error(tmp_path: Path) -> None:
    for method in ("GET", "HEAD"):
        with pytest.raises(RuntimeError, match="does not exist"):
            await run_app(on_loop_app(tmp_path / "missing.bin"), make_scope(method))


def test_read_on_loop_must_not_be_negative(data_file: Path) -> None:
    with pytest.raises(ValueError, match="read_on_loop"):
        FileResponse(data_file, read_on_loop=-1)


async def test_read_on_loop_closes_the_file_when_the_client_disconnects(
    data_file: Path, opened_files: list[Any]
) -> None:
    send = SendRecorder()
    app = file_app(data_file, read_on_loop=100, chunk_size=100)
    await app(make_scope(), disconnect_after(), send)
    assert not send.complete
    assert [f.closed for f in opened_files] == [True]


# -- the disconnect watcher ------------------------------------------------------------


async def test_on_asyncio_the_disconnect_watcher_is_a_plain_task_not_a_task_group(
    data_file: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    groups: list[str] = []
    real = anyio.create_task_group

    def recording() -> Any:
        groups.append("task group")
        return real()

    monkeypatch.setattr(anyio, "create_task_group", recording)
    sent = await run_app(file_app(data_file, chunk_size=1000))
    assert sent.body == DATA
    assert groups == ([] if anyio_backend == "asyncio" else ["task group"])


async def test_a_receive_that_fails_while_a_file_streams_raises_and_closes_the_file(
    data_file: Path, opened_files: list[Any]
) -> None:
    async def failing_receive() -> Message:
        raise ValueError("receive failed")

    # On trio the error comes in an exception group.
    with pytest.raises(Exception) as raised:
        await file_app(data_file, chunk_size=100)(make_scope(), failing_receive, SendRecorder())
    errors = [raised.value, *getattr(raised.value, "exceptions", ())]
    assert any(str(error) == "receive failed" for error in errors)
    assert [f.closed for f in opened_files] == [True]


async def test_a_client_gone_before_the_body_starts_gets_nothing_and_the_file_is_closed(
    data_file: Path, opened_files: list[Any]
) -> None:
    send = SendRecorder()
    app = file_app(data_file, chunk_size=100)
    scope = make_scope()
    request = Request(scope, disconnect_after())
    assert await request.is_disconnected()  # the connection's state says: gone
    await app(scope, disconnect_after(), send)
    assert send.messages == []
    assert [f.closed for f in opened_files] == [True]


async def test_a_receive_that_replays_the_body_without_waiting_does_not_starve_the_stream(
    data_file: Path,
) -> None:
    # A body-caching wrapper that answers every call at once: the watcher
    # must neither spin on the loop (nothing else would run) nor take it
    # for a disconnect.
    calls = 0

    async def replaying_receive() -> Message:
        nonlocal calls
        calls += 1
        if calls > 10_000:  # a guard a blocked loop cannot reach with fail_after
            raise AssertionError("the watcher spun on the receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    send = SendRecorder()
    await file_app(data_file, chunk_size=1000)(make_scope(), replaying_receive, send)
    assert send.complete
    assert send.body == DATA
    assert calls <= 2  # the second body message ended the watch


async def test_a_receive_of_unknown_messages_that_never_waits_does_not_starve_the_stream(
    data_file: Path,
) -> None:
    calls = 0

    async def odd_receive() -> Message:
        nonlocal calls
        calls += 1
        if calls > 1_000_000:  # one a pass of the loop: far more than ten reads take
            raise AssertionError("the watcher spun on the receive")
        return {"type": "http.something"}

    send = SendRecorder()
    await file_app(data_file, chunk_size=1000)(make_scope(), odd_receive, send)
    assert send.complete
    assert send.body == DATA
