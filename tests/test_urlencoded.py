"""``application/x-www-form-urlencoded`` forms: URL-standard decoding, limits, chunking."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any
from urllib.parse import quote, unquote_to_bytes, urlencode

import anyio
import anyio.lowlevel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgikit.exceptions import HTTPException
from asgikit.forms import FormData
from asgikit.requests import Request
from asgikit.responses import JSONResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from asgikit.types import Message, Receive
from tests.conftest import body_receive, make_scope

URLENCODED = b"application/x-www-form-urlencoded"


def form_request(
    receive: Receive, *, content_type: bytes = URLENCODED, length: int | None = None
) -> Request:
    headers = [(b"content-type", content_type)]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    return Request(make_scope("POST", headers=headers), receive)


async def read(*chunks: bytes, **limits: Any) -> FormData:
    form: FormData = await form_request(body_receive(*chunks)).form(**limits)
    return form


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(body) + 1) for c in cuts} | {0, len(body)})
    return [body[a:b] for a, b in itertools.pairwise(points)] or [b""]


# -- Decoding (URL standard §5.1) ---------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"a=1&a=2&b", [("a", "1"), ("a", "2"), ("b", "")]),
        (b"a+b=c+d", [("a b", "c d")]),
        (b"x=%41%zz%4", [("x", "A%zz%4")]),
        (b"x=%2B%26%3D", [("x", "+&=")]),
        (b"x=%FF", [("x", "\ufffd")]),
        (b"&&a=1&&", [("a", "1")]),
        (b"a=1;b=2", [("a", "1;b=2")]),
        (b"a==b", [("a", "=b")]),
        (b"=v", [("", "v")]),
        (b"\xc3\xa9=%C3%A9", [("é", "é")]),
        (b"", []),
    ],
)
async def test_urlencoded_decodes_per_url_standard(
    body: bytes, expected: list[tuple[str, str]]
) -> None:
    form = await read(body)
    assert form.multi_items() == expected


async def test_urlencoded_ignores_charset_parameter() -> None:
    request = form_request(
        body_receive(b"x=%C3%A9"), content_type=URLENCODED + b"; charset=latin-1"
    )
    form = await request.form()
    assert form["x"] == "é"


async def test_urlencoded_form_is_a_multidict() -> None:
    form = await read(b"a=1&b=2&a=3")
    assert form["a"] == "1"
    assert form.get("b") == "2"
    assert form.getlist("a") == ["1", "3"]
    assert form.get("missing") is None
    assert list(form) == ["a", "b"]


async def test_urlencoded_pairs_split_across_chunks() -> None:
    form = await read(b"na", b"me=va", b"l", b"ue&", b"&x", b"=%4", b"1")
    assert form.multi_items() == [("name", "value"), ("x", "A")]


# -- Limits ---------------------------------------------------------------------


async def test_urlencoded_max_fields_is_a_400_naming_the_limit() -> None:
    assert len(await read(b"a=1&b=2", max_fields=2)) == 2
    with pytest.raises(HTTPException) as info:
        await read(b"a=1&b=2&c=3", max_fields=2)
    assert info.value.status_code == 400
    assert "max_fields" in info.value.detail


async def test_urlencoded_max_part_size_is_a_413_naming_the_limit() -> None:
    assert (await read(b"a=123&b=1", max_part_size=5))["a"] == "123"
    for chunks in ([b"a=1234&b=1"], [b"b=1&a=1234"], [bytes([c]) for c in b"a=1234"]):
        with pytest.raises(HTTPException) as info:
            await read(*chunks, max_part_size=5)
        assert info.value.status_code == 413
        assert "max_part_size" in info.value.detail


async def test_urlencoded_stops_reading_an_endless_field_at_the_limit() -> None:
    # The body never ends: the parser must give up without waiting for it.
    async def endless() -> Message:
        return {"type": "http.request", "body": b"a" * 1000, "more_body": True}

    with pytest.raises(HTTPException) as info:
        await form_request(endless).form(max_part_size=64 * 1024, max_body_size=None)
    assert info.value.status_code == 413


async def test_many_large_urlencoded_fields_are_a_413_naming_max_memory_size() -> None:
    # Each field is within max_part_size; together they pass the default 16 MiB.
    field = b"a=" + b"x" * (1024 * 1024 - 3)
    body = b"&".join([field] * 17)
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    with pytest.raises(HTTPException) as info:
        await read(*chunks)
    assert info.value.status_code == 413
    assert info.value.detail == ("Form fields larger than 16777216 bytes in all (max_memory_size)")
    assert len(await read(b"a=123&b=456", max_memory_size=10)) == 2
    with pytest.raises(HTTPException, match="max_memory_size"):
        await read(b"a=123&b=456&c", max_memory_size=10)


async def test_urlencoded_max_body_size_is_a_413() -> None:
    with pytest.raises(HTTPException) as info:
        await read(b"a=1&", b"b=2&", b"c=3", max_body_size=10)
    assert info.value.status_code == 413
    assert "max_body_size" in info.value.detail


async def test_urlencoded_declared_length_over_limit_is_refused_unread() -> None:
    async def receive() -> Message:
        raise AssertionError("the body must not be read")

    with pytest.raises(HTTPException) as info:
        await form_request(receive, length=11).form(max_body_size=10)
    assert info.value.status_code == 413


def test_limits_must_be_sane() -> None:
    request = form_request(body_receive(b""))
    with pytest.raises(ValueError, match="max_fields"):
        request.form(max_fields=-1)
    with pytest.raises(ValueError, match="spool_max_size"):
        request.form(spool_max_size=0)
    with pytest.raises(ValueError, match="max_body_size"):
        request.form(max_body_size=-5)


# -- Work per byte (issue 12 #4) --------------------------------------------------


async def python_lines_to_read(body: bytes) -> int:
    """How many lines of Python run while the form is read (a deterministic cost)."""
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    request = form_request(body_receive(*chunks))
    lines = 0

    def tracer(frame: FrameType, event: str, arg: Any) -> Callable[..., Any]:
        nonlocal lines
        if event == "line":
            lines += 1
        return tracer

    sys.settrace(tracer)
    try:
        form = await request.form(max_part_size=len(body))
    finally:
        sys.settrace(None)
    assert len(form.multi_items()) >= 1
    return lines


@pytest.mark.parametrize(
    "hostile",
    [b"%", b"%4", b"%4x", b"%41", b"%%41", b"+%"],
    ids=["percent", "half-escape", "almost-escape", "escape", "percent-escape", "plus-percent"],
)
async def test_urlencoded_percent_flood_costs_no_more_python_work_than_plain_text(
    hostile: bytes,
) -> None:
    # 192 KiB in one field and in many: a decoder that loops in Python over
    # each "%" runs ~200,000 lines here; the plain text of the same size a few
    # hundred.  Counted lines, not seconds, so the machine's load cannot matter.
    size = 192 * 1024
    plain = await python_lines_to_read(b"a=" + b"x" * size)
    one_field = await python_lines_to_read(b"a=" + hostile * (size // len(hostile)))
    many = b"&".join([b"a=" + hostile * (4096 // len(hostile))] * (size // 4096))
    many_fields = await python_lines_to_read(many)
    many_plain = await python_lines_to_read(b"&".join([b"a=" + b"x" * 4096] * (size // 4096)))
    assert one_field <= 3 * plain + 200
    assert many_fields <= 3 * many_plain + 200


async def test_urlencoded_one_huge_field_lets_other_tasks_run_while_it_is_decoded() -> None:
    # One 4 MiB field that arrives in a single message: decoding must hand the
    # event loop back between slices rather than hold it for the whole field.
    body = b"a=" + b"%41" * (4 * 1024 * 1024 // 3)
    ticks = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks
        while not done:
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(ticker)
        await anyio.lowlevel.checkpoint()
        start = ticks
        form = await read(body, max_part_size=len(body))
        done = True
    assert form["a"] == "A" * (len(body) // 3)
    assert ticks - start >= 16


# -- Through a route ----------------------------------------------------------


async def echo(request: Request) -> JSONResponse:
    form = await request.form(max_fields=3, max_part_size=100)
    return JSONResponse(form.multi_items())


def test_urlencoded_through_test_client() -> None:
    with TestClient(router(route("/", echo, methods=["POST"]))) as client:
        response = client.post("/", data={"name": "Ada Lovelace", "tags": ["a&b", "ç"]})
        assert response.json() == [["name", "Ada Lovelace"], ["tags", "a&b"], ["tags", "ç"]]
        response = client.post(
            "/", content=b"a&b&c&d", headers={"content-type": "application/x-www-form-urlencoded"}
        )
        assert response.status_code == 400
        assert "max_fields" in response.text
        response = client.post("/", data={"big": "x" * 200})
        assert response.status_code == 413


# -- Properties -----------------------------------------------------------------

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)


def _percent_all(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode("utf-8"))


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    fields=st.lists(st.tuples(_text, _text), max_size=12),
    style=st.sampled_from(["plus", "percent", "every-byte"]),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
async def test_urlencoded_round_trips_whatever_the_chunking(
    fields: list[tuple[str, str]], style: str, cuts: list[int]
) -> None:
    if style == "plus":
        body = urlencode(fields).encode()
    elif style == "percent":
        body = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in fields).encode()
    else:
        body = "&".join(f"{_percent_all(k)}={_percent_all(v)}" for k, v in fields).encode()
    form = await read(*split(body, cuts))
    # An empty name and value still make a pair ("="), so nothing is lost.
    assert form.multi_items() == fields


def _reference(raw: bytes) -> str:
    return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8", "replace")


@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.lists(
        st.sampled_from([b"%", b"4", b"1", b"A", b"f", b"x", b"+", b"=", b"&", b"\xc3", b"\xa9"]),
        max_size=60,
    ).map(b"".join),
    cuts=st.lists(st.integers(min_value=0), max_size=8),
)
async def test_urlencoded_decodes_like_unquote_to_bytes_whatever_the_chunking(
    body: bytes, cuts: list[int]
) -> None:
    expected = []
    for piece in body.split(b"&"):
        if piece:
            name, _, value = piece.partition(b"=")
            expected.append((_reference(name), _reference(value)))
    form = await read(*split(body, cuts), max_fields=100)
    assert form.multi_items() == expected


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300), cuts=st.lists(st.integers(min_value=0), max_size=6))
async def test_urlencoded_any_body_parses_or_is_a_4xx(body: bytes, cuts: list[int]) -> None:
    try:
        form = await read(*split(body, cuts), max_fields=20, max_part_size=50)
    except HTTPException as exc:
        status = exc.status_code
    else:
        status = 200
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in form.multi_items())
    assert status in (200, 400, 413)
