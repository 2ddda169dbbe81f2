"""Attacks on forms: multipart and urlencoded bodies built to cost CPU, memory or files."""

from __future__ import annotations

from typing import Any

import pytest

from asgikit.exceptions import HTTPException
from asgikit.forms import FormData
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
    "codec", ["punycode", "PUNYCODE", "idna", "unicode_escape", "raw-unicode-escape"]
)
async def test_a_part_charset_that_is_a_transform_not_a_charset_is_refused(codec: str) -> None:
    data = body(part("a", PUNY, extra=f"Content-Type: text/plain; charset={codec}\r\n"))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400
    assert "charset" in str(caught.value.detail)


@pytest.mark.parametrize("codec", ["punycode", " Punycode ", "idna"])
async def test_a_charset_field_that_is_a_transform_not_a_charset_is_refused(codec: str) -> None:
    data = body(part("_charset_", codec.encode()), part("a", PUNY))
    with pytest.raises(HTTPException) as caught:
        await read(data)
    assert caught.value.status_code == 400
