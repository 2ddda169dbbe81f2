"""Precondition evaluation (RFC 9110 §13): validators, parsing and the §13.2.2 order."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit._conditional import (
    FileRequest,
    evaluate,
    http_date,
    if_range_holds,
    make_etag,
    parse_etags,
    parse_http_date,
)

ETAG = '"abc-10"'
MODIFIED = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
AT = "Sun, 06 Nov 1994 08:49:37 GMT"
BEFORE = "Sun, 06 Nov 1994 08:49:36 GMT"
AFTER = "Sun, 06 Nov 1994 08:49:38 GMT"


def request(**fields: str) -> FileRequest:
    headers = [(name.replace("_", "-").encode(), value.encode()) for name, value in fields.items()]
    return FileRequest.from_headers(headers)


def test_make_etag_is_strong_and_changes_with_size_and_time() -> None:
    tag = make_etag(10, 1_000_000)
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert tag != make_etag(11, 1_000_000)
    assert tag != make_etag(10, 1_000_001)


@pytest.mark.parametrize(
    "value", [AT, "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"]
)
def test_the_three_http_date_forms_parse(value: str) -> None:
    assert parse_http_date(value) == MODIFIED


@pytest.mark.parametrize("value", ["", "yesterday", "\0", "Sun, 06 Nov", "x" * 500])
def test_bad_dates_are_none(value: str) -> None:
    assert parse_http_date(value) is None


def test_http_date_round_trips() -> None:
    assert http_date(MODIFIED) == AT
    assert parse_http_date(http_date(MODIFIED)) == MODIFIED


@pytest.mark.parametrize(
    ("value", "tags"),
    [
        ("*", None),
        (" * ", None),
        ('"a"', ['"a"']),
        ('"a", W/"b" ,"c"', ['"a"', 'W/"b"', '"c"']),
        ('"a,b", "c"', ['"a,b"', '"c"']),
        ('junk, "a"', ['"a"']),
        ('"unterminated', []),
        ("", []),
    ],
)
def test_parse_etags(value: str, tags: list[str] | None) -> None:
    assert parse_etags(value) == tags


@given(st.text(max_size=60))
def test_parse_etags_never_fails(value: str) -> None:
    result = parse_etags(value)
    assert result is None or all(tag.endswith('"') for tag in result)


@pytest.mark.parametrize(
    ("method", "fields", "expected"),
    [
        # If-None-Match: weak comparison; 304 for GET/HEAD, 412 otherwise.
        ("GET", {"if_none_match": ETAG}, 304),
        ("HEAD", {"if_none_match": ETAG}, 304),
        ("GET", {"if_none_match": "W/" + ETAG}, 304),
        ("GET", {"if_none_match": '"other", ' + ETAG}, 304),
        ("GET", {"if_none_match": "*"}, 304),
        ("GET", {"if_none_match": '"other"'}, None),
        ("POST", {"if_none_match": ETAG}, 412),
        # If-Modified-Since: only GET/HEAD, <= is "not modified".
        ("GET", {"if_modified_since": AT}, 304),
        ("GET", {"if_modified_since": AFTER}, 304),
        ("GET", {"if_modified_since": BEFORE}, None),
        ("GET", {"if_modified_since": "garbage"}, None),
        ("POST", {"if_modified_since": AFTER}, None),
        # If-None-Match wins over If-Modified-Since (§13.2.2 step 3 vs 4).
        ("GET", {"if_none_match": '"other"', "if_modified_since": AFTER}, None),
        ("GET", {"if_none_match": ETAG, "if_modified_since": BEFORE}, 304),
        # If-Match: strong comparison.
        ("GET", {"if_match": ETAG}, None),
        ("GET", {"if_match": "*"}, None),
        ("GET", {"if_match": '"other"'}, 412),
        ("GET", {"if_match": "W/" + ETAG}, 412),
        # If-Unmodified-Since.
        ("GET", {"if_unmodified_since": AT}, None),
        ("GET", {"if_unmodified_since": BEFORE}, 412),
        ("GET", {"if_unmodified_since": "garbage"}, None),
        # If-Match present: If-Unmodified-Since is not looked at (step 2).
        ("GET", {"if_match": ETAG, "if_unmodified_since": BEFORE}, None),
        # A failed If-Match is 412 even if If-None-Match would say 304 (step 1 first).
        ("GET", {"if_match": '"other"', "if_none_match": ETAG}, 412),
        ("GET", {"if_unmodified_since": BEFORE, "if_none_match": ETAG}, 412),
        # Passing step 1, step 3 still applies.
        ("GET", {"if_match": ETAG, "if_none_match": ETAG}, 304),
    ],
)
def test_precedence_of_rfc_9110_13_2_2(
    method: str, fields: dict[str, str], expected: int | None
) -> None:
    assert evaluate(method, request(**fields), ETAG, MODIFIED) == expected


def test_list_fields_sent_twice_are_joined() -> None:
    req = FileRequest.from_headers([(b"if-none-match", b'"x"'), (b"if-none-match", ETAG.encode())])
    assert evaluate("GET", req, ETAG, MODIFIED) == 304


def test_a_date_field_sent_twice_is_ignored() -> None:
    req = FileRequest.from_headers(
        [(b"if-modified-since", AFTER.encode()), (b"if-modified-since", AFTER.encode())]
    )
    assert evaluate("GET", req, ETAG, MODIFIED) is None


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        (ETAG, True),
        ("W/" + ETAG, False),
        ('"stale"', False),
        (AT, True),
        (AFTER, False),
        (BEFORE, False),
        ("garbage", False),
        ("", False),
    ],
)
def test_if_range(value: str, holds: bool) -> None:
    assert if_range_holds(value, ETAG, MODIFIED) is holds


def test_if_range_never_holds_for_a_weak_etag() -> None:
    assert if_range_holds('W/"x"', 'W/"x"', MODIFIED) is False
