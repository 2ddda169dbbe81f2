"""Attacks on Accept negotiation of error bodies: odd q-values, huge and hostile headers."""

from __future__ import annotations

import pytest

from asgikit.routing import router
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio

TEXT = b"text/plain; charset=utf-8"
JSON = b"application/json"


@pytest.mark.parametrize(
    ("accept", "kind"),
    [
        (b"application/json;q=NaN", TEXT),  # not a qvalue (RFC 9110 12.4.2): skipped
        (b"application/json;q=inf", TEXT),
        (b"application/json;q=1e0", TEXT),
        (b"application/json;q=-0", TEXT),
        (b"application/json;q=1.0000", TEXT),  # four decimals: not a qvalue
        (b"application/json;q=1.001", TEXT),
        (b"application/json;q=0.", TEXT),  # "0." is q=0: not acceptable
        (b"application/json;q=1.", JSON),
        (b"application/json;q=0, */*;q=0", TEXT),  # nothing acceptable: the default
        (b"*/*;q=0, application/json", JSON),
        (b"application/json;q=0.001, text/plain;q=0", JSON),
        (b"APPLICATION/JSON", JSON),
        (b"application/json ; q = 0.5 , text/plain ; q=0.4", JSON),
        (b"application/problem+json", JSON),
        (b"application/json-seq", TEXT),
        (b"application/jsonx", TEXT),
        (b"application/*json", TEXT),
        # RFC 9110 5.6.6: a quoted parameter value may hold "," and ";".
        (b'application/json;x="a,b";q=0, text/plain;q=0.5', TEXT),
        (b'application/json;x="a;q=0";q=1', JSON),
        (b'text/plain;x="a\\",b";q=0, application/json;q=0.1', JSON),
        (b'application/json;x="unterminated,q=0', JSON),
        (b";;;,,,//,*/*;;q=;", TEXT),
        (b"\xff\xfe/json", TEXT),
    ],
)
async def test_an_odd_accept_header_picks_a_sound_error_body(accept: bytes, kind: bytes) -> None:
    sent = await run_app(router(), make_scope(headers=[(b"accept", accept)]))
    assert sent.status == 404
    assert sent.header(b"content-type")[0].startswith(kind)
    assert b"Accept" in b",".join(sent.header(b"vary"))


@pytest.mark.parametrize(
    "accept",
    [
        b"application/json;q=0.5," * 50_000,
        b"a/b;" * 200_000,
        b"," * 500_000,
        b"x" * 1_000_000,
        b'a/b;x="' + b"\\" * 1_000_000,
        b'"' * 1_000_000,
    ],
    ids=["50k-ranges", "200k-parameters", "500k-commas", "1MB-token", "1MB-escapes", "1MB-quotes"],
)
async def test_a_megabyte_accept_header_is_answered(accept: bytes) -> None:
    # Linear in the header; a server caps it long before this (h11: 16 KiB).
    sent = await run_app(router(), make_scope(headers=[(b"accept", accept)]))
    assert sent.status == 404
