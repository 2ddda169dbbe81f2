"""``multipart/form-data`` forms: fields, files, charsets, limits, malformed bodies, no leaks."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import tracemalloc
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import asgikit.forms
from asgikit.exceptions import HTTPException
from asgikit.forms import FormData, UploadFile
from asgikit.requests import Request
from asgikit.responses import JSONResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from tests.conftest import body_receive, make_scope
from tests.servers.live import serve

BOUNDARY = "----asgikit-test-7MA4YWxkTrZu0gW"

# A part: (name, str value) for a field, (name, (filename, content, content type)) for a file.
Part = tuple[str, "str | tuple[str, bytes, str | None]"]


def quote_param(value: str) -> str:
    # What browsers do (HTML standard, multipart/form-data encoding algorithm).
    return value.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")


def build(parts: list[Part], boundary: str = BOUNDARY) -> bytes:
    out = []
    for name, value in parts:
        out.append(f"--{boundary}\r\n".encode())
        if isinstance(value, str):
            out.append(
                f'Content-Disposition: form-data; name="{quote_param(name)}"\r\n\r\n'.encode()
            )
            out.append(value.encode())
        else:
            filename, content, content_type = value
            out.append(
                f'Content-Disposition: form-data; name="{quote_param(name)}"; '
                f'filename="{quote_param(filename)}"\r\n'.encode()
            )
            if content_type is not None:
                out.append(f"Content-Type: {content_type}\r\n".encode())
            out.append(b"\r\n" + content)
        out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)] or [b""]


def form_request(*chunks: bytes, content_type: str | None = None) -> Request:
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    headers = [(b"content-type", content_type.encode("latin-1"))]
    return Request(make_scope("POST", headers=headers), body_receive(*chunks))


async def read(*chunks: bytes, content_type: str | None = None, **limits: Any) -> FormData:
    form: FormData = await form_request(*chunks, content_type=content_type).form(**limits)
    return form


async def snapshot(form: FormData) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            out.append((name, (value.filename, await value.read(), value.content_type)))
        else:
            out.append((name, value))
    return out


async def status_of(*chunks: bytes, content_type: str | None = None, **limits: Any) -> str:
    with pytest.raises(HTTPException) as info:
        await read(*chunks, content_type=content_type, **limits)
    return f"{info.value.status_code} {info.value.detail}"


# -- Fields and files -----------------------------------------------------------


async def test_multipart_fields_and_files_in_order() -> None:
    body = build(
        [
            ("title", "Hello"),
            ("doc", ("a.txt", b"first file", "text/plain")),
            ("title", "again"),
            ("doc", ("b.bin", b"\x00\xff", None)),
        ]
    )
    form = await read(body)
    assert await snapshot(form) == [
        ("title", "Hello"),
        ("doc", ("a.txt", b"first file", "text/plain")),
        ("title", "again"),
        ("doc", ("b.bin", b"\x00\xff", None)),
    ]
    upload = form["doc"]
    assert isinstance(upload, UploadFile)
    assert upload.size == 10
    assert upload.headers["content-type"] == "text/plain"
    assert "a.txt" in upload.headers["content-disposition"]
    await form.close()


async def test_multipart_empty_filename_is_still_a_file() -> None:
    # What a browser sends for a file input left empty.
    form = await read(build([("f", ("", b"", "application/octet-stream"))]))
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert (upload.filename, upload.size) == ("", 0)
    await form.close()


async def test_multipart_names_and_filenames_are_utf8_and_unescaped() -> None:
    body = build([('prénom"x"', "v"), ("f", ('日本\r\n".txt', b"", None))])
    form = await read(body)
    assert form['prénom"x"'] == "v"
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert upload.filename == '日本\r\n".txt'
    await form.close()


async def test_multipart_field_charset_from_part_header() -> None:
    body = (
        (
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n"
            f"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"
        ).encode()
        + b"caf\xe9\r\n"
        + f"--{BOUNDARY}--\r\n".encode()
    )
    assert (await read(body))["a"] == "café"


@pytest.mark.parametrize("charset_first", [True, False])
async def test_multipart_charset_field_sets_the_default(charset_first: bool) -> None:
    # RFC 7578 §4.6: a "_charset_" field names the charset of the others.
    latin = build([("a", "X")]).replace(b"X", b"caf\xe9")
    charset = build([("_charset_", "iso-8859-1")])
    parts = [charset, latin] if charset_first else [latin, charset]
    body = (
        b"".join(p[: -len(f"--{BOUNDARY}--\r\n")] for p in parts) + f"--{BOUNDARY}--\r\n".encode()
    )
    assert (await read(body))["a"] == "café"


async def test_multipart_invalid_utf8_in_a_field_is_replaced() -> None:
    body = build([("a", "X")]).replace(b"X", b"\xff")
    assert (await read(body))["a"] == "\ufffd"


@pytest.mark.parametrize("charset", ["no-such-charset", "base64", "rot13"])
async def test_multipart_unknown_charset_is_a_400(charset: str) -> None:
    body = build([("a", "x")]).replace(
        b'name="a"\r\n', f'name="a"\r\nContent-Type: text/plain; charset={charset}\r\n'.encode()
    )
    assert (await status_of(body)).startswith("400 ")
    assert (await status_of(build([("_charset_", charset), ("a", "x")]))).startswith("400 ")


async def test_multipart_preamble_and_epilogue_are_ignored() -> None:
    body = b"preamble\r\n" + build([("a", "1")]) + b"epilogue"
    assert (await read(body))["a"] == "1"


async def test_multipart_quoted_boundary_parameter() -> None:
    body = build([("a", "1")], boundary="b:o=u?nd (x)")
    form = await read(
        body, content_type='multipart/form-data; charset=utf-8; boundary="b:o=u?nd (x)"'
    )
    assert form["a"] == "1"


async def test_multipart_files_spool_to_disk_past_the_threshold() -> None:
    body = build([("small", ("s", b"x" * 100, None)), ("big", ("b", b"y" * 5000, None))])
    form = await read(body, spool_max_size=1000)
    small, big = form["small"], form["big"]
    assert isinstance(small, UploadFile)
    assert isinstance(big, UploadFile)
    assert not small.file._rolled  # type: ignore[attr-defined]
    assert big.file._rolled  # type: ignore[attr-defined]
    assert await big.read(3) == b"yyy"
    await big.seek(4998)
    assert await big.read() == b"yy"
    await form.close()
    assert small.file.closed
    assert big.file.closed


async def test_multipart_disk_writes_run_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    on_loop_disk_writes = []

    class Watched(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
        def write(self, data: Any) -> int:
            rolls = self._rolled or self.tell() + len(data) > self._max_size  # type: ignore[attr-defined]
            if rolls and threading.get_ident() == loop_thread:
                on_loop_disk_writes.append(len(data))
            return super().write(data)

    monkeypatch.setattr(asgikit.forms, "SpooledTemporaryFile", Watched)
    body = build([("f", ("f", bytes(range(256)) * 64, None))])
    form = await read(*split(body, list(range(0, len(body), 999))), spool_max_size=4000)
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert upload.file._rolled  # type: ignore[attr-defined]
    assert on_loop_disk_writes == []
    await form.close()


# -- Memory held by one form (issue 12 #6) -------------------------------------

KIB = 1024
MIB = 1024 * KIB


async def peak_memory_to_read(*chunks: bytes, **limits: Any) -> tuple[int, str | FormData]:
    """Peak bytes allocated while the form is read, and the form or the error."""
    request = form_request(*chunks)
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        try:
            outcome: str | FormData = await request.form(**limits)
        except HTTPException as exc:
            outcome = f"{exc.status_code} {exc.detail}"
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    return peak, outcome


def in_chunks(body: bytes, size: int = 64 * KIB) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


async def test_many_large_text_fields_are_a_413_naming_max_memory_size_not_unbounded_memory() -> (
    None
):
    # 40 fields just under max_part_size (1 MiB): each within every per-field
    # limit, 40 MiB in all, past the default 16 MiB held in memory per form.
    field = "x" * (MIB - KIB)
    body = build([(f"f{i}", field) for i in range(40)])
    peak, outcome = await peak_memory_to_read(*in_chunks(body))
    assert outcome == ("413 Form fields larger than 16777216 bytes in all (max_memory_size)"), (
        outcome
    )
    assert peak < 24 * MIB, f"peak {peak / MIB:.1f} MiB"


async def test_text_fields_within_max_memory_size_are_read() -> None:
    body = build([(f"f{i}", "y" * (60 * KIB)) for i in range(4)])
    form = await read(*in_chunks(body), max_memory_size=256 * KIB)
    assert [len(v) for v in form.values()] == [60 * KIB] * 4
    detail = await status_of(*in_chunks(body), max_memory_size=200 * KIB)
    assert detail.startswith("413 ")
    assert "max_memory_size" in detail


async def test_many_small_files_under_the_spool_size_spool_past_max_memory_size() -> None:
    # 200 files of 48 KiB, each under spool_max_size (1 MiB): 9.4 MiB that
    # would all stay in memory; past max_memory_size they go to disk instead.
    content = bytes(range(256)) * (48 * 4)
    body = build([("f", (f"{i}.bin", content, None)) for i in range(200)])
    peak, form = await peak_memory_to_read(*in_chunks(body), max_memory_size=MIB, max_files=200)
    assert isinstance(form, FormData), form
    try:
        files = form.getlist("f")
        assert len(files) == 200
        in_memory = [f for f in files if isinstance(f, UploadFile) and not f.file._rolled]  # type: ignore[attr-defined]
        assert sum(f.size or 0 for f in in_memory) <= MIB
        for upload in (files[0], files[-1]):
            assert isinstance(upload, UploadFile)
            assert await upload.read() == content
    finally:
        await form.close()
    assert peak < 4 * MIB, f"peak {peak / MIB:.1f} MiB"


async def test_fields_after_files_push_the_files_to_disk_not_a_413() -> None:
    files: list[Part] = [("f", (f"{i}", b"z" * (100 * KIB), None)) for i in range(3)]
    body = build([*files, ("t", "w" * (200 * KIB))])
    form = await read(*in_chunks(body), max_memory_size=256 * KIB, max_part_size=MIB)
    try:
        assert form["t"] == "w" * (200 * KIB)
        uploads = [f for f in form.getlist("f") if isinstance(f, UploadFile)]
        assert [await f.read() for f in uploads] == [b"z" * (100 * KIB)] * 3
        held = sum(f.size or 0 for f in uploads if not f.file._rolled)  # type: ignore[attr-defined]
        assert held + 200 * KIB <= 256 * KIB
    finally:
        await form.close()


# -- Limits ---------------------------------------------------------------------


async def test_multipart_max_files_is_a_400() -> None:
    files: list[Part] = [("f", (f"{i}.txt", b"x", None)) for i in range(3)]
    form = await read(build(files), max_files=3)
    assert len(form.getlist("f")) == 3
    await form.close()
    assert (await status_of(build(files), max_files=2)).startswith("400 Too many files")
    assert "max_files" in await status_of(build(files), max_files=2)


async def test_multipart_max_fields_is_a_400() -> None:
    fields: list[Part] = [("a", "1"), ("b", "2"), ("c", "3")]
    assert len(await read(build(fields), max_fields=3)) == 3
    detail = await status_of(build(fields), max_fields=2)
    assert detail.startswith("400 ")
    assert "max_fields" in detail


async def test_multipart_max_part_size_limits_fields_not_files() -> None:
    assert (await read(build([("a", "12345")]), max_part_size=5))["a"] == "12345"
    detail = await status_of(build([("a", "123456")]), max_part_size=5)
    assert detail.startswith("413 ")
    assert "max_part_size" in detail
    form = await read(build([("f", ("f", b"x" * 100, None))]), max_part_size=5)
    await form.close()


async def test_multipart_max_file_size_is_a_413() -> None:
    body = build([("f", ("f", b"x" * 100, None))])
    form = await read(body, max_file_size=100)
    await form.close()
    detail = await status_of(body, max_file_size=99)
    assert detail.startswith("413 ")
    assert "max_file_size" in detail


async def test_multipart_max_body_size_is_a_413() -> None:
    body = build([("f", ("f", b"x" * 100, None))])
    detail = await status_of(*split(body, [50, 100]), max_body_size=len(body) - 1)
    assert detail.startswith("413 ")
    assert "max_body_size" in detail
    form = await read(body, max_body_size=len(body))
    await form.close()


async def test_multipart_oversized_part_header_is_a_413_and_many_headers_a_400() -> None:
    long = build([("a", "1")]).replace(b"name=", b"x=" + b"y" * 5000 + b"; name=")
    assert (await status_of(long)).startswith("413 ")
    many = build([("a", "1")]).replace(b"\r\n\r\n", b"\r\n" + b"X-A: 1\r\n" * 10 + b"\r\n", 1)
    assert (await status_of(many)).startswith("400 ")


# -- Malformed bodies -----------------------------------------------------------

GOOD = build([("a", "1")])


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(GOOD, "multipart/form-data", id="no-boundary"),
        pytest.param(GOOD, "multipart/form-data; boundary=", id="empty-boundary"),
        pytest.param(GOOD, 'multipart/form-data; boundary=""', id="empty-quoted-boundary"),
        pytest.param(b"", None, id="empty-body"),
        pytest.param(GOOD[:-10], None, id="unterminated"),
        pytest.param(GOOD.replace(b"\r\n", b"\n"), None, id="bare-lf"),
        pytest.param(
            GOOD.replace(b"Content-Disposition:", b"Content-Disposition"), None, id="broken-header"
        ),
        pytest.param(GOOD.replace(b"Content-Disposition", b"X-Nope"), None, id="no-disposition"),
        pytest.param(GOOD.replace(b'; name="a"', b""), None, id="no-name"),
        pytest.param(GOOD.replace(b"form-data;", b"attachment;"), None, id="not-form-data"),
        pytest.param(
            GOOD.replace(b"\r\n1\r\n", b"\r\n1\r\nX"), None, id="junk-after-boundary-start"
        ),
    ],
)
async def test_multipart_malformed_body_is_a_400(body: bytes, content_type: str | None) -> None:
    detail = await status_of(body, content_type=content_type)
    assert detail.startswith("400 Malformed multipart body")


# -- Nothing leaks --------------------------------------------------------------


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[tempfile.SpooledTemporaryFile[bytes]]:
    files: list[tempfile.SpooledTemporaryFile[bytes]] = []

    class Recorded(tempfile.SpooledTemporaryFile):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            files.append(self)

    monkeypatch.setattr(asgikit.forms, "SpooledTemporaryFile", Recorded)
    return files


@pytest.mark.parametrize(
    "tail",
    [
        pytest.param(b"", id="unterminated"),
        pytest.param(build([("f", ("3", b"x" * 4000, None))]), id="file-too-large"),
        pytest.param(build([("a", "1")] * 5), id="too-many-fields"),
        pytest.param(build([("", ("", b"", None))]).replace(b"name", b"nom"), id="no-name"),
    ],
)
async def test_multipart_errors_close_every_spooled_file(
    opened: list[tempfile.SpooledTemporaryFile[bytes]], tail: bytes
) -> None:
    head = build([("f", ("1", b"a" * 3000, None)), ("f", ("2", b"b", None))])
    body = head[: -len(f"--{BOUNDARY}--\r\n")] + tail
    with pytest.raises(HTTPException):
        await read(body, spool_max_size=1000, max_file_size=3500, max_fields=4)
    assert len(opened) >= 2
    assert all(f.closed for f in opened)


async def test_multipart_client_disconnect_closes_files(
    opened: list[tempfile.SpooledTemporaryFile[bytes]],
) -> None:
    from asgikit.exceptions import ClientDisconnect
    from tests.conftest import disconnect_after

    head = build([("f", ("1", b"a" * 10, None))])[:-20]
    request = Request(
        make_scope(
            "POST",
            headers=[(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())],
        ),
        disconnect_after(head),
    )
    with pytest.raises(ClientDisconnect):
        await request.form()
    assert len(opened) == 1
    assert opened[0].closed


# -- Properties -----------------------------------------------------------------

_name = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="%\\"), max_size=12)
_file = st.tuples(
    _name, st.binary(max_size=300), st.sampled_from([None, "text/plain", "image/png"])
)
_parts = st.lists(st.tuples(_name, st.one_of(_name, _file)), max_size=8)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parts=_parts,
    cuts=st.lists(st.integers(min_value=0), max_size=10),
    spool=st.integers(min_value=1, max_value=400),
)
async def test_multipart_round_trips_whatever_the_chunking(
    parts: list[Part], cuts: list[int], spool: int
) -> None:
    body = build(parts)
    assume(body.count(f"--{BOUNDARY}".encode()) == len(parts) + 1)
    form = await read(*split(body, cuts), spool_max_size=spool)
    try:
        assert await snapshot(form) == parts
    finally:
        await form.close()


_token = st.sampled_from(
    [
        b"--B",
        b"--B--",
        b"\r\n",
        b"--",
        b"Content-Disposition: form-data; name=a",
        b"; filename=f",
        b"Content-Type: text/plain; charset=latin-1",
        b"\n",
        b":",
        b"\r\n\r\n",
        b"x" * 40,
    ]
)
_content_type = st.sampled_from(
    [
        "multipart/form-data; boundary=B",
        "multipart/form-data; boundary=",
        "multipart/form-data",
        'multipart/form-data; boundary="B"; charset=nope',
        "MULTIPART/FORM-DATA;BOUNDARY=B",
        "application/x-www-form-urlencoded",
        "text/plain",
        "",
        "multipart/form-data; boundary=" + "B" * 300,
    ]
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    pieces=st.lists(st.one_of(_token, st.binary(max_size=20)), max_size=25),
    content_type=_content_type,
    cuts=st.lists(st.integers(min_value=0), max_size=5),
)
async def test_multipart_any_body_parses_or_is_a_4xx(
    pieces: list[bytes], content_type: str, cuts: list[int]
) -> None:
    body = b"".join(pieces)
    try:
        form = await read(
            *split(body, cuts), content_type=content_type, max_fields=10, max_files=3
        )
    except HTTPException as exc:
        status = exc.status_code
    else:
        status = 200
        await form.close()
    assert status in (200, 400, 413)


# -- Through a route, the test client and a real server ---------------------------


async def describe(request: Request) -> JSONResponse:
    async with request.form(max_files=2) as form:
        out = []
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                content = await value.read()
                out.append(
                    [
                        name,
                        value.filename,
                        value.content_type,
                        len(content),
                        content[:20].decode("latin-1"),
                    ]
                )
            else:
                out.append([name, value])
    return JSONResponse(out)


app = router(route("/upload", describe, methods=["POST"]))


def test_multipart_through_test_client() -> None:
    with TestClient(app) as client:
        response = client.post(
            "/upload",
            data={"title": "x"},
            files=[("f", ("a.txt", b"hello", "text/plain")), ("f", ("b.txt", b"bye", "text/csv"))],
        )
        assert response.status_code == 200
        assert response.json() == [
            ["title", "x"],
            ["f", "a.txt", "text/plain", 5, "hello"],
            ["f", "b.txt", "text/csv", 3, "bye"],
        ]
        response = client.post("/upload", files=[("f", ("x", b"1", None))] * 3)
        assert response.status_code == 400
        assert "max_files" in response.text


def test_multipart_through_uvicorn_with_httpx() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, spooled to disk
    with serve(app) as base_url:
        response = httpx.post(
            base_url + "/upload",
            data={"é": "ü"},
            files={"f": ("données.bin", payload, "application/octet-stream")},
        )
    assert response.status_code == 200
    assert response.json() == [
        ["é", "ü"],
        [
            "f",
            "données.bin",
            "application/octet-stream",
            len(payload),
            payload[:20].decode("latin-1"),
        ],
    ]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_multipart_through_uvicorn_with_curl(tmp_path: Any) -> None:
    upload = tmp_path / "report.csv"
    upload.write_bytes(b"a,b\n1,2\n")
    with serve(app) as base_url:
        result = subprocess.run(
            [
                "curl",
                "-sS",
                "--fail-with-body",
                "-F",
                "name=Ada Lovelace",
                "-F",
                f"data=@{upload};type=text/csv",
                base_url + "/upload",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        )
    assert json.loads(result.stdout) == [
        ["name", "Ada Lovelace"],
        ["data", "report.csv", "text/csv", 8, "a,b\n1,2\n"],
    ]
