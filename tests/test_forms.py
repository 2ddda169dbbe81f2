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
    # The upload pauses after 4 MiB until the ping is answered: the server
    # must answer another request while the upload is being parsed.  (No
    # race with the upload's speed: it cannot finish before the ping.)
    size_mib = 48
    halfway = threading.Event()
    pinged = threading.Event()

    def progress(sent: int) -> None:
        if sent == 4:
            halfway.set()
            assert pinged.wait(60), "the ping was not answered during the upload"

    with serve(server_app) as base_url, ThreadPoolExecutor(1) as pool:
        upload = pool.submit(
            httpx.post,
            base_url + "/upload",
            content=streamed_upload(size_mib, progress),
            headers={"content-type": MULTIPART.decode()},
            timeout=120,
        )
        assert halfway.wait(60)
        try:
            answer = httpx.get(base_url + "/ping", timeout=60)
        finally:
            pinged.set()
        assert upload.result().json() == {"size": size_mib * MIB}
    assert answer.json() == {"parsing": True}


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


# -- Starlette's test_formparsers.py, behaviour by behaviour --------------------
#
# Deliberate differences: a size limit answers 413 and a count limit 400,
# each naming the limit (Starlette: 400 for both, other wording); a text
# part is decoded with its own charset, else the form's _charset_ field, else
# UTF-8 with U+FFFD for bad bytes (RFC 7578 §4.6, §5.1.2; Starlette takes a
# charset parameter on the form's Content-Type and falls back to latin-1);
# a repeated name gives its first value to form[...] and form.items()
# (Starlette: the last).  Starlette's FormMessage deprecation and codec-lookup
# counting test its own internals (no counterpart).


async def form_echo(scope: Any, receive: Any, send: Any) -> None:
    request = Request(scope, receive)
    form = await request.form(max_fields=2000, max_files=2000)
    out: dict[str, list[Any]] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            value = {
                "filename": value.filename,
                "size": value.size,
                "content": (await value.read()).decode(),
                "content_type": value.content_type,
                "headers": [list(h) for h in value.headers.multi_items()],
            }
        out.setdefault(name, []).append(value)
    await request.close()
    await JSONResponse(out)(scope, receive, send)


def form_client() -> TestClient:
    # Not entered: form_echo answers http only, so no lifespan.
    return TestClient(router(route("/", form_echo, methods=["POST"])))


MULTIPART_B = {"content-type": "multipart/form-data; boundary=B"}


def test_multipart_fields_and_files_as_httpx_sends_them() -> None:
    client = form_client()
    response = client.post(
        "/",
        data={"field": "abc"},
        files=[
            ("files", ("test1.txt", io.BytesIO(b"<file1 content>"))),
            ("files", ("test2.txt", io.BytesIO(b"<file2 content>"), "text/plain")),
            ("plain", (None, io.BytesIO(b"not a file"))),
            ("custom", ("c.txt", io.BytesIO(b"c"), "text/plain", {"x-custom": "f2"})),
        ],
    )
    data = response.json()
    assert data["field"] == ["abc"]
    assert data["plain"] == ["not a file"]
    assert [f["filename"] for f in data["files"]] == ["test1.txt", "test2.txt"]
    assert [f["size"] for f in data["files"]] == [15, 15]
    assert [f["content"] for f in data["files"]] == ["<file1 content>", "<file2 content>"]
    assert [f["content_type"] for f in data["files"]] == ["text/plain", "text/plain"]
    assert data["custom"][0]["headers"] == [
        ["content-disposition", 'form-data; name="custom"; filename="c.txt"'],
        ["x-custom", "f2"],
        ["content-type", "text/plain"],
    ]


def test_multipart_mixed_files_and_fields_utf8_filenames_and_values() -> None:
    body = (
        b'--B\r\nContent-Disposition: form-data; name="field0"\r\n\r\nvalue0\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; '
        b'filename="\xe6\x96\x87\xe6\x9b\xb8.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\n<file content>\r\n"
        b'--B\r\nContent-Disposition: form-data; name="value"\r\n\r\nTransf\xc3\xa9rer\r\n'
        b"--B--\r\n"
    )
    data = form_client().post("/", content=body, headers=MULTIPART_B).json()
    assert data["field0"] == ["value0"]
    assert data["value"] == ["Transférer"]
    assert data["file"][0]["filename"] == "文書.txt"
    assert data["file"][0]["size"] == 14


@pytest.mark.parametrize(
    ("content_type", "value", "expected"),
    [
        ("multipart/form-data; charset=utf-8; boundary=B", b"\xc4\x99\xc5\xbc\xc4\x87", "ężć"),
        ("multipart/form-data; charset=utf-8; boundary=B", b"\xe9", "\ufffd"),
        ("multipart/form-data; charset=invalid-charset; boundary=B", b"\xe9", "\ufffd"),
    ],
)
def test_multipart_text_is_utf8_whatever_the_form_content_type_says(
    content_type: str, value: bytes, expected: str
) -> None:
    body = b'--B\r\nContent-Disposition: form-data; name="v"\r\n\r\n' + value + b"\r\n--B--\r\n"
    response = form_client().post("/", content=body, headers={"content-type": content_type})
    assert response.json() == {"v": [expected]}


def test_urlencoded_and_empty_forms_through_the_test_client() -> None:
    client = form_client()
    assert client.post("/", data={"some": "da ta", "so me": "data"}).json() == {
        "some": ["da ta"],
        "so me": ["data"],
    }
    assert client.post("/").json() == {}


@pytest.mark.parametrize("multipart", [False, True])
async def test_form_after_body_parses_the_kept_body(multipart: bool) -> None:
    if multipart:
        body = b'--B\r\nContent-Disposition: form-data; name="some"\r\n\r\ndata\r\n--B--\r\n'
        content_type = b"multipart/form-data; boundary=B"
    else:
        body = b"some=data&second=key+pair"
        content_type = b"application/x-www-form-urlencoded"
    scope = make_scope("POST", headers=[(b"content-type", content_type)])
    request = Request(scope, body_receive(body[:7], body[7:]))
    assert await request.body() == body
    form = await request.form()
    assert form["some"] == "data"


async def count_default(request: Request) -> JSONResponse:
    form = await request.form()
    return JSONResponse(len(form.multi_items()))


@pytest.mark.parametrize(
    ("content_type", "body", "status", "limit"),
    [
        (
            "application/x-www-form-urlencoded",
            "&".join(f"N{i}=" for i in range(1001)),
            400,
            "max_fields",
        ),
        (
            "application/x-www-form-urlencoded",
            "field=" + "x" * (1024 * 1024 + 1),
            413,
            "max_part_size",
        ),
        (
            "application/x-www-form-urlencoded",
            "x" * (1024 * 1024 + 1) + "=value",
            413,
            "max_part_size",
        ),
        (
            "multipart/form-data; boundary=B",
            "".join(
                f'--B\r\nContent-Disposition: form-data; name="N{i}";\r\n\r\n\r\n'
                for i in range(1001)
            ),
            400,
            "max_fields",
        ),
        (
            "multipart/form-data; boundary=B",
            "".join(
                f'--B\r\nContent-Disposition: form-data; name="N"; filename="F{i}";\r\n\r\n\r\n'
                for i in range(1001)
            ),
            400,
            "max_files",
        ),
        (
            "multipart/form-data; boundary=B",
            "".join(
                f'--B\r\nContent-Disposition: form-data; name="F{i}"; filename="F{i}";\r\n\r\n\r\n'
                f'--B\r\nContent-Disposition: form-data; name="N{i}";\r\n\r\n\r\n'
                for i in range(1001)
            ),
            400,
            "max_files",
        ),
        (
            "multipart/form-data; boundary=B",
            '--B\r\nContent-Disposition: form-data; name="small"\r\n\r\nsmall\r\n'
            '--B\r\nContent-Disposition: form-data; name="large"\r\n\r\n'
            + "x" * (1024 * 1024 + 1)
            + "\r\n--B--\r\n",
            413,
            "max_part_size",
        ),
    ],
    ids=[
        "urlencoded-fields",
        "urlencoded-value",
        "urlencoded-name",
        "multipart-fields",
        "multipart-files-one-name",
        "multipart-files-and-fields",
        "multipart-part",
    ],
)
def test_default_limits_answer_with_the_limit_named(
    content_type: str, body: str, status: int, limit: str
) -> None:
    with TestClient(router(route("/", count_default, methods=["POST"]))) as client:
        response = client.post("/", content=body.encode(), headers={"content-type": content_type})
    assert response.status_code == status
    assert limit in response.text


async def test_custom_limits_low_and_high() -> None:
    scope_type = [(b"content-type", b"application/x-www-form-urlencoded")]
    with pytest.raises(HTTPException, match="max_fields"):
        await Request(make_scope("POST", headers=scope_type), body_receive(b"a=1&b=2")).form(
            max_fields=1
        )
    with pytest.raises(HTTPException, match="max_part_size"):
        await Request(
            make_scope("POST", headers=scope_type), body_receive(b"f=" + b"x" * 10241)
        ).form(max_part_size=10240)
    parts = "".join(
        f'--B\r\nContent-Disposition: form-data; name="N{i}";\r\n\r\n\r\n'
        f'--B\r\nContent-Disposition: form-data; name="F{i}"; filename="F{i}";\r\n\r\n\r\n'
        for i in range(2000)
    )
    data = form_client().post("/", content=(parts + "--B--\r\n").encode(), headers=MULTIPART_B)
    assert data.status_code == 200
    assert data.json()["N1999"] == [""]
    assert data.json()["F1999"][0]["size"] == 0
    assert data.json()["F1999"][0]["content_type"] is None


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        (
            "multipart/form-data; charset=utf-8",
            b'Content-Disposition: form-data; name="f"\r\n\r\nx\r\n',
        ),
        (
            "multipart/form-data; boundary=" + "X" * 257,
            b"--" + b"X" * 257 + b"\r\n\r\n--" + b"X" * 257 + b"--\r\n",
        ),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; name="field"\r\n'
            + b"".join(b"X-Extra-%d: value\r\n" % i for i in range(8))
            + b"\r\nvalue\r\n--B--\r\n",
        ),
        (
            "multipart/form-data; boundary=B",
            b'--B\r\nContent-Disposition: form-data; ="field0"\r\n\r\nv\r\n',
        ),
    ],
    ids=["missing-boundary", "boundary-too-long", "too-many-part-headers", "part-without-name"],
)
def test_malformed_multipart_is_a_400(content_type: str, body: bytes) -> None:
    with TestClient(router(route("/", count_default, methods=["POST"]))) as client:
        response = client.post("/", content=body, headers={"content-type": content_type})
    assert response.status_code == 400
    assert response.text.startswith("Malformed multipart body")


async def test_urlencoded_limits_stop_within_one_large_chunk() -> None:
    content_type = [(b"content-type", b"application/x-www-form-urlencoded")]
    too_many = b"&".join(b"f%d=" % i for i in range(100_000))
    with pytest.raises(HTTPException, match="max_fields"):
        await Request(make_scope("POST", headers=content_type), body_receive(too_many)).form(
            max_fields=10
        )
    too_big = b"field=" + b"x" * (8 * 1024 * 1024)
    with pytest.raises(HTTPException, match="max_part_size"):
        await Request(make_scope("POST", headers=content_type), body_receive(too_big)).form(
            max_part_size=1024
        )


async def test_multipart_closes_its_spooled_file_when_the_disk_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import tempfile

    import asgikit.forms

    opened: list[Any] = []

    class DiskFull(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            opened.append(self)

        def write(self, data: Any) -> int:
            raise OSError("disk full")

    monkeypatch.setattr(asgikit.forms, "SpooledTemporaryFile", DiskFull)
    body = file_body(("f", b"file content"))
    with pytest.raises(OSError, match="disk full"):
        await multipart_request(body).form()
    assert len(opened) == 1
    assert opened[0].closed
