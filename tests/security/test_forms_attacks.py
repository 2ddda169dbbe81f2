"""Attacks on forms: multipart and urlencoded bodies built to cost CPU, memory or files."""

from __future__ import annotations

import os
from typing import Any

import pytest

from asgikit.exceptions import HTTPException
from asgikit.forms import FormData, UploadFile
from asgikit.requests import Request
from tests.conftest import body_receive, make_scope

pytestmark = pytest.mark.anyio

BOUNDARY = "a2-boundary"


def part(name: str, value: bytes, *, extra: str = "", filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"'
    if filename is not None:
        disposition += f'; filename="{filename}"'
    head = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n{extra}\r\n"
    return head.encode() + value + b"\r\n"


def body(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


async def read(data: bytes, content_type: str | None = None, **limits: Any) -> FormData:
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY}"
    scope = make_scope("POST", headers=[(b"content-type", content_type.encode("latin-1"))])
    form: FormData = await Request(scope, body_receive(data)).form(**limits)
    return form


# Punycode decoding is quadratic in CPython: 256 KiB of "a" after a "-" cost
# 7 s of event-loop CPU, a 1 MiB field (max_part_size) minutes.  It is a
# transform of host names, not a charset; nor are idna and the escape codecs.
PUNY = b"a" * 64 + b"-" + b"9" * 64


@pytest.mark.parametrize(
    "codec", ["punycode", "PUNYCODE", "idna", "unicode_escape", "raw-unicode-escape", "utf-7"]
)
async def test_a_part_charset_that_is_a_transform_not_a_charset_is_refused(codec: str) -> None:
    data = body(part("a", PUNY, extra=f"Content-Type: text/plain; charset={codec}\r\n"))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400
    assert "charset" in str(caught.value.detail)


@pytest.mark.parametrize("codec", ["punycode", " Punycode ", "idna", "utf-7", "UTF7", "U7"])
async def test_a_charset_field_that_is_a_transform_not_a_charset_is_refused(codec: str) -> None:
    data = body(part("_charset_", codec.encode()), part("a", PUNY))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400


# Charsets outside the WHATWG Encoding Standard's list are refused: EBCDIC
# (cp037, cp500) turns bytes a filter in front reads as harmless into "<"
# and quotes; UTF-16/32 hide ASCII from the same filter; neither is a form
# encoding any browser submits (HTML §4.10.21.8: UTF-16 forms go as UTF-8).
@pytest.mark.parametrize(
    "codec", ["cp037", "IBM500", "ebcdic-cp-us", "utf-16", "UTF-16LE", "utf-32", "hz", "rot13"]
)
async def test_a_part_charset_outside_the_encoding_standard_is_refused(codec: str) -> None:
    data = body(part("a", b"Lo", extra=f"Content-Type: text/plain; charset={codec}\r\n"))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400
    assert "charset" in str(caught.value.detail)


@pytest.mark.parametrize("codec", ["cp037", "utf-16", "utf-32-be"])
async def test_a_charset_field_outside_the_encoding_standard_is_refused(codec: str) -> None:
    data = body(part("_charset_", codec.encode()), part("a", b"x"))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("codec", "raw", "text"),
    [
        ("utf-8", "é".encode(), "é"),
        ("ISO-8859-1", b"\xe9", "é"),
        ("latin1", b"\xe9", "é"),
        ("us-ascii", b"abc", "abc"),
        ("windows-1252", b"\x80", "€"),
        ("iso-8859-15", b"\xa4", "€"),
        ("koi8-r", b"\xc1", "\u0430"),  # Cyrillic a
        ("Shift_JIS", "日本".encode("shift_jis"), "日本"),
        ("gb18030", "中文".encode("gb18030"), "中文"),
        ("big5", "中文".encode("big5"), "中文"),
        ("euc-kr", "한국".encode("euc-kr"), "한국"),
        ("macintosh", b"\x8e", "é"),
    ],
)
async def test_charsets_of_the_encoding_standard_are_decoded(
    codec: str, raw: bytes, text: str
) -> None:
    data = body(part("a", raw, extra=f"Content-Type: text/plain; charset={codec}\r\n"))
    form = await read(data)
    assert form["a"] == text


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


needs_proc = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")

LONG_BOUNDARY = "b" * 70
OPEN = f"--{BOUNDARY}\r\nContent-Disposition: "
CLOSE = f"\r\n--{BOUNDARY}--\r\n"


# Malformed multipart bodies: each a clear 4xx, never a 500 or a hang.
@pytest.mark.parametrize(
    ("attack", "data", "status"),
    [
        ("no Content-Disposition", f"--{BOUNDARY}\r\nX-A: b\r\n\r\nv\r\n--{BOUNDARY}--\r\n", 400),
        (
            "disposition not form-data",
            OPEN + "attachment; name=a\r\n\r\nv" + CLOSE,
            400,
        ),
        (
            "part without a name",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data\r\n\r\nv\r\n--{BOUNDARY}--\r\n",
            400,
        ),
        (
            "bare LF line breaks",
            f"--{BOUNDARY}\nContent-Disposition: form-data; name=a\n\nv\n--{BOUNDARY}--\n",
            400,
        ),
        (
            "no closing boundary",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n",
            400,
        ),
        ("nothing but the preamble", "hello, no boundary at all", 400),
        ("empty body", "", 400),
        (
            "unknown charset",
            OPEN + "form-data; name=a\r\nContent-Type: text/plain; charset=nope\r\n\r\nv" + CLOSE,
            400,
        ),
        (
            "bytes-to-bytes codec as charset",
            OPEN + "form-data; name=_charset_\r\n\r\nzlib" + CLOSE,
            400,
        ),
        (
            "part header of 64 KiB",
            OPEN + f'form-data; name="{"n" * 65536}"\r\n\r\nv' + CLOSE,
            413,
        ),
        (
            "a hundred part headers",
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n"
            + "X-A: b\r\n" * 100
            + f"\r\nv\r\n--{BOUNDARY}--\r\n",
            400,
        ),
    ],
)
async def test_a_malformed_multipart_body_is_a_clear_4xx(
    attack: str, data: str, status: int
) -> None:
    with pytest.raises(HTTPException) as caught:
        await read(data.encode("latin-1"))
    assert caught.value.status_code == status, attack


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("multipart/form-data", 400),  # no boundary
        ("multipart/form-data; boundary=", 400),
        (f"multipart/form-data; boundary={'b' * 201}", 400),
        ('multipart/form-data; boundary="a\r\nb"', 400),
    ],
)
async def test_a_missing_or_hostile_boundary_is_a_400(content_type: str, status: int) -> None:
    with pytest.raises(HTTPException) as caught:
        await read(body(part("a", b"v")), content_type=content_type)
    assert caught.value.status_code == status


async def test_a_70_character_boundary_and_one_inside_the_data_are_read_exactly() -> None:
    # RFC 2046 §5.1.1: up to 70 characters; the boundary text without its
    # leading CRLF "--" inside a value is data.
    inner = f"--{LONG_BOUNDARY[:-1]}\r\n{LONG_BOUNDARY}".encode()
    data = (
        f"--{LONG_BOUNDARY}\r\nContent-Disposition: form-data; name=a\r\n\r\n".encode()
        + inner
        + f"\r\n--{LONG_BOUNDARY}--\r\n".encode()
    )
    form = await read(data, content_type=f"multipart/form-data; boundary={LONG_BOUNDARY}")
    assert form["a"] == inner.decode()


@pytest.mark.parametrize(
    "filename",
    ["../../etc/passwd", "..\\..\\boot.ini", "/abs/path", "a\x00b.txt", "x" * 2000, "C:con"],
)
async def test_a_hostile_filename_is_kept_as_sent_and_never_used_as_a_path(filename: str) -> None:
    # The file lives in an anonymous temporary file; the name is only data.
    form = await read(body(part("f", b"data", filename=filename)))
    upload = form["f"]
    assert isinstance(upload, UploadFile)
    assert upload.filename == filename
    assert await upload.read() == b"data"
    await form.close()


async def test_an_rfc_2231_filename_star_is_not_taken_as_the_filename() -> None:
    # RFC 7578 §4.2: filename* is not to be used in form-data; a part with
    # only filename* is a text field, never a file named "../x".
    data = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=a; filename*=UTF-8''..%2Fx\r\n\r\n"
        f"v\r\n--{BOUNDARY}--\r\n"
    ).encode()
    form = await read(data)
    assert form["a"] == "v"


async def test_thousands_of_tiny_parts_stop_at_max_fields() -> None:
    data = body(*(part(f"f{i}", b"") for i in range(1001)))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400
    assert "max_fields" in str(caught.value.detail)


@needs_proc
async def test_too_many_files_close_every_spooled_file_at_once() -> None:
    before = open_fds()
    data = body(*(part(f"f{i}", b"x" * 2048, filename="a") for i in range(6)))
    with pytest.raises(HTTPException):
        await read(data, max_files=5, spool_max_size=1024)
    assert open_fds() == before


@needs_proc
async def test_a_client_gone_mid_upload_leaves_no_spooled_file_open() -> None:
    from asgikit.requests import ClientDisconnect

    head = part("f", b"x" * 4096, filename="a")[:-2]
    messages = iter(
        [
            {"type": "http.request", "body": head, "more_body": True},
            {"type": "http.disconnect"},
        ]
    )

    async def receive() -> dict[str, Any]:
        return next(messages)

    before = open_fds()
    content_type = f"multipart/form-data; boundary={BOUNDARY}".encode()
    scope = make_scope("POST", headers=[(b"content-type", content_type)])
    with pytest.raises(ClientDisconnect):
        await Request(scope, receive).form(spool_max_size=1024)  # type: ignore[arg-type]
    assert open_fds() == before


@needs_proc
async def test_files_forced_to_disk_by_max_memory_size_hold_at_most_max_files_descriptors() -> (
    None
):
    # Fields that fill max_memory_size push every later file to disk, each an
    # open descriptor until the response: bounded by max_files (lower it where
    # the process has few descriptors), and all closed with the form.
    before = open_fds()
    fields = [part(f"t{i}", b"y" * 1000) for i in range(4)]
    files = [part(f"f{i}", b"x" * 200, filename="a") for i in range(20)]
    form = await read(body(*fields, *files), max_memory_size=4100, max_files=20)
    assert 0 < open_fds() - before <= 20
    await form.close()
    assert open_fds() == before
    with pytest.raises(HTTPException) as caught:
        await read(
            body(*fields, *files, part("f", b"x", filename="a")),
            max_memory_size=4100,
            max_files=20,
        )
    assert caught.value.status_code == 400
    assert open_fds() == before


URLENCODED = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("attack", "data", "status"),
    [
        ("a name of 2 MiB", b"n" * (2 * 1024 * 1024) + b"=v", 413),
        ("a flood of %", b"a=" + b"%" * (2 * 1024 * 1024), 413),
        ("a flood of &", b"&" * (2 * 1024 * 1024) + b"a=b" + b"&c=d" * 1001, 400),
        ("a flood of +", b"a=" + b"+" * (2 * 1024 * 1024), 413),
        ("= and & pairs past max_fields", b"a=&" * 1001, 400),
    ],
)
async def test_an_urlencoded_flood_stops_at_a_named_limit(
    attack: str, data: bytes, status: int
) -> None:
    with pytest.raises(HTTPException) as caught:
        await read(data, content_type=URLENCODED)
    assert caught.value.status_code == status, attack


async def test_semicolons_do_not_separate_urlencoded_pairs() -> None:
    # URL standard §5.1: only "&" separates ("a=1;b=2" is one pair), so a
    # proxy and the app cannot disagree on where "b" is (Python's old bug).
    form = await read(b"a=1;b=2", content_type=URLENCODED)
    assert form.multi_items() == [("a", "1;b=2")]


@pytest.mark.parametrize(
    ("declared", "sent"),
    [("5", b"a=1&b=2&c=3"), ("100000", b"a=1")],
)
async def test_a_content_length_that_lies_changes_nothing_the_form_reads(
    declared: str, sent: bytes
) -> None:
    # The server frames the body; the form reads what arrives, and the
    # declared length only refuses early what is declared too large.
    scope = make_scope(
        "POST",
        headers=[(b"content-type", URLENCODED.encode()), (b"content-length", declared.encode())],
    )
    form = await Request(scope, body_receive(sent)).form()
    assert len(form.multi_items()) == sent.count(b"&") + 1


async def test_a_declared_content_length_past_max_body_size_is_refused_before_reading() -> None:
    scope = make_scope(
        "POST", headers=[(b"content-type", URLENCODED.encode()), (b"content-length", b"9" * 400)]
    )

    async def receive() -> dict[str, Any]:
        raise AssertionError("read a body it had to refuse")

    with pytest.raises(HTTPException) as caught:
        await Request(scope, receive).form(max_body_size=1024)  # type: ignore[arg-type]
    assert caught.value.status_code == 413


# Parser differentials: where two readings of one body are possible, a proxy or
# WAF that inspects it and the app may see different fields.  Refused.
@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=XB; boundary=other",
        "multipart/form-data; boundary=other; boundary=XB",
        "multipart/form-data; Boundary=XB; BOUNDARY=other",
        'multipart/form-data; boundary="XB"; boundary=XB',
    ],
)
async def test_a_content_type_with_two_boundaries_is_a_400(content_type: str) -> None:
    data = b"--XB\r\nContent-Disposition: form-data; name=a\r\n\r\nv\r\n--XB--\r\n"
    with pytest.raises(HTTPException) as caught:
        await read(data, content_type=content_type)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "headers",
    [
        'Content-Disposition: form-data; name="a"; name="b"',
        'Content-Disposition: form-data; name="a"; NAME="b"',
        'Content-Disposition: form-data; name=a; filename="x.txt"; filename="x.php"',
        'Content-Disposition: form-data; name="a"\r\nContent-Disposition: form-data; name="b"',
        'Content-Disposition: form-data; name="a"\r\ncontent-disposition: form-data; name="b"',
    ],
)
async def test_a_part_that_names_itself_twice_is_a_400(headers: str) -> None:
    data = f"--{BOUNDARY}\r\n{headers}\r\n\r\nv{CLOSE}".encode()
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("disposition", "name", "filename"),
    [
        ('form-data; name="a;name=b"', "a;name=b", None),
        ('form-data; name="a\\"; name=b"', 'a"; name=b', None),
        ('form-data; name="a"; filename="x;filename=y"', "a", "x;filename=y"),
    ],
)
async def test_a_quoted_value_that_looks_like_a_second_parameter_is_one_value(
    disposition: str, name: str, filename: str | None
) -> None:
    data = f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\nv{CLOSE}".encode()
    form = await read(data)
    [(key, value)] = form.multi_items()
    assert key == name
    assert (value.filename if isinstance(value, UploadFile) else None) == filename
    await form.close()


@pytest.mark.parametrize(
    "types",
    [
        (URLENCODED, f"multipart/form-data; boundary={BOUNDARY}"),
        (f"multipart/form-data; boundary={BOUNDARY}", URLENCODED),
        (f"multipart/form-data; boundary={BOUNDARY}", "multipart/form-data; boundary=other"),
    ],
)
async def test_a_request_with_two_content_types_has_no_form_to_guess(
    types: tuple[str, str],
) -> None:
    headers = [(b"content-type", value.encode()) for value in types]
    request = Request(make_scope("POST", headers=headers), body_receive(body(part("a", b"v"))))
    with pytest.raises(HTTPException) as caught:
        await request.form()
    assert caught.value.status_code == 400
