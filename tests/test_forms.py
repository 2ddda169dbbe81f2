"""``request.form()``: await or ``async with``, files' lifetime, ``UploadFile``, real servers."""

from __future__ import annotations

import io
import threading
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import aclosing
from typing import Any

import httpx
import pytest

from asgikit.background import BackgroundTask
from asgikit.exceptions import HTTPException
from asgikit.forms import FormData, UploadFile
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from asgikit.types import Message
from tests.conftest import body_receive, make_scope
from tests.servers.live import serve

BOUNDARY = "XyZzY"
MULTIPART = f"multipart/form-data; boundary={BOUNDARY}".encode()


def file_body(*files: tuple[str, bytes]) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"; filename="{name}.txt"\r\n'
        f"Content-Type: text/plain\r\n\r\n".encode()
        + content
        + b"\r\n"
        for name, content in files
    ]
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


def multipart_request(body: bytes) -> Request:
    return Request(make_scope("POST", headers=[(b"content-type", MULTIPART)]), body_receive(body))


# -- Awaitable and async context manager -------------------------------------------


async def test_form_twice_returns_the_same_formdata() -> None:
    request = multipart_request(file_body(("a", b"1")))
    first = await request.form()
    assert await request.form() is first
    await first.close()


async def test_async_with_form_closes_every_file_on_exit() -> None:
    request = multipart_request(file_body(("a", b"1"), ("b", b"2" * 5000)))
    async with request.form(spool_max_size=100) as form:
        files = [v for _, v in form.multi_items() if isinstance(v, UploadFile)]
        assert [await f.read() for f in files] == [b"1", b"2" * 5000]
    assert len(files) == 2
    assert all(f.file.closed for f in files)


async def test_async_with_form_closes_files_when_the_block_raises() -> None:
    request = multipart_request(file_body(("a", b"1")))
    uploads = []

    async def fail_inside() -> None:
        async with request.form() as form:
            uploads.append(form["a"])
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        await fail_inside()
    upload = uploads[0]
    assert isinstance(upload, UploadFile)
    assert upload.file.closed


async def test_other_content_types_give_an_empty_form_and_leave_the_body() -> None:
    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    for headers in ([(b"content-type", b"application/json")], []):
        form = await Request(make_scope("POST", headers=headers), receive).form()
        assert isinstance(form, FormData)
        assert len(form) == 0


async def test_form_after_stream_is_a_clear_error() -> None:
    request = multipart_request(file_body(("a", b"1")))
    async with aclosing(request.stream()) as chunks:  # type: ignore[type-var]
        async for _ in chunks:
            break
    with pytest.raises(RuntimeError, match="stream"):
        await request.form()


async def test_stream_after_form_is_a_clear_error() -> None:
    request = multipart_request(file_body(("a", b"1")))
    async with request.form():
        pass
    # The form read the body through stream(), and says so.
    with pytest.raises(RuntimeError, match="already consumed"):
        async for _ in request.stream():
            pass


async def test_form_after_body_and_peek_reads_the_kept_body() -> None:
    body = file_body(("a", b"hello"))
    request = multipart_request(body)
    assert await request.peek(4) == body[:4]
    assert await request.body() == body
    async with request.form() as form:
        upload = form["a"]
        assert isinstance(upload, UploadFile)
        assert await upload.read() == b"hello"


# -- UploadFile -------------------------------------------------------------------


async def test_upload_file_write_seek_read_and_size() -> None:
    request = multipart_request(file_body(("a", b"abc")))
    async with request.form(spool_max_size=8) as form:
        upload = form["a"]
        assert isinstance(upload, UploadFile)
        assert (upload.filename, upload.content_type, upload.size) == ("a.txt", "text/plain", 3)
        await upload.seek(3)
        await upload.write(b"defghijkl")  # crosses the spool threshold
        assert upload.size == 12
        await upload.seek(0)
        assert await upload.read(2) == b"ab"
        assert await upload.read() == b"cdefghijkl"
        assert "a.txt" in repr(upload)
        await upload.close()
        await upload.close()  # twice is fine
        assert upload.file.closed


async def test_upload_file_over_any_binary_file() -> None:
    upload = UploadFile(io.BytesIO(), filename="x")
    assert upload.content_type is None
    assert upload.size is None
    await upload.write(b"data")
    await upload.seek(0)
    assert await upload.read() == b"data"
    await upload.close()
    assert upload.file.closed


# -- Through a route ---------------------------------------------------------------


def test_route_closes_files_after_the_response_and_its_background() -> None:
    seen: list[UploadFile] = []
    in_background: list[bytes] = []

    async def later(upload: UploadFile) -> None:
        await upload.seek(0)
        in_background.append(await upload.read())

    async def keep(request: Request) -> PlainTextResponse:
        form = await request.form()
        upload = form["doc"]
        assert isinstance(upload, UploadFile)
        seen.append(upload)
        return PlainTextResponse("ok", background=BackgroundTask(later, upload))

    with TestClient(router(route("/", keep, methods=["POST"]))) as client:
        response = client.post("/", files={"doc": ("d.txt", b"content")})
    assert response.text == "ok"
    assert in_background == [b"content"]
    assert seen[0].file.closed


def test_route_answers_form_errors_with_their_status() -> None:
    async def endpoint(request: Request) -> PlainTextResponse:
        await request.form(max_file_size=3)
        return PlainTextResponse("ok")

    with TestClient(router(route("/", endpoint, methods=["POST"]))) as client:
        response = client.post("/", files={"f": ("f", b"1234")})
        assert response.status_code == 413
        assert "max_file_size" in response.text
        response = client.post(
            "/", content=b"garbage", headers={"content-type": "multipart/form-data; boundary=B"}
        )
        assert response.status_code == 400


# -- A real server: flat memory and a free event loop ------------------------------

MIB = 1024 * 1024
parsing = threading.Event()


async def upload_size(request: Request) -> JSONResponse:
    parsing.set()
    try:
        async with request.form(max_body_size=None) as form:
            upload = form["f"]
            assert isinstance(upload, UploadFile)
            return JSONResponse({"size": upload.size})
    finally:
        parsing.clear()


async def ping(request: Request) -> JSONResponse:
    return JSONResponse({"parsing": parsing.is_set()})


server_app = router(route("/upload", upload_size, methods=["POST"]), route("/ping", ping))


def streamed_upload(size_mib: int, on_progress: Any = None) -> Iterator[bytes]:
    block = bytes(range(256)) * 4096  # 1 MiB, allocated once
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="big"\r\n\r\n'
    yield head.encode()
    for i in range(size_mib):
        yield block
        if on_progress is not None:
            on_progress(i + 1)
    yield f"\r\n--{BOUNDARY}--\r\n".encode()


def test_large_upload_keeps_memory_flat() -> None:
    size_mib = 64
    with serve(server_app) as base_url, httpx.Client(timeout=60) as client:
        tracemalloc.start()
        try:
            baseline = tracemalloc.get_traced_memory()[0]
            response = client.post(
                base_url + "/upload",
                content=streamed_upload(size_mib),
                headers={"content-type": MULTIPART.decode()},
            )
            peak = tracemalloc.get_traced_memory()[1] - baseline
        finally:
            tracemalloc.stop()
    assert response.json() == {"size": size_mib * MIB}
    # Client and server share this process; both stay far below the upload size.
    print(f"peak {peak / MIB:.1f} MiB")
    assert peak < 12 * MIB, f"peak {peak / MIB:.1f} MiB"


def test_other_requests_are_answered_while_an_upload_is_parsed() -> None:
    size_mib = 48
    halfway = threading.Event()

    def progress(sent: int) -> None:
        if sent == 4:
            halfway.set()

    with serve(server_app) as base_url, ThreadPoolExecutor(1) as pool:
        upload = pool.submit(
            httpx.post,
            base_url + "/upload",
            content=streamed_upload(size_mib, progress),
            headers={"content-type": MULTIPART.decode()},
            timeout=60,
        )
        assert halfway.wait(30)
        answer = httpx.get(base_url + "/ping", timeout=30)
        upload_finished_first = upload.done()
        assert upload.result().json() == {"size": size_mib * MIB}
    assert answer.json() == {"parsing": True}
    assert not upload_finished_first


@pytest.mark.parametrize("declared", [b"\xb2", b"1" * 5000])
async def test_a_content_length_python_cannot_int_is_no_500_in_forms(declared: bytes) -> None:
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", declared),
    ]
    request = Request(make_scope("POST", headers=headers), body_receive(b"a=1"))
    if declared == b"\xb2":
        assert (await request.form()).get("a") == "1"
    else:
        with pytest.raises(HTTPException) as caught:
            await request.form(max_body_size=1024)
        assert caught.value.status_code == 413
