"""Range parsing (RFC 9110 §14.1) and multipart/byteranges framing (§14.6)."""

from __future__ import annotations

import email.parser
import email.policy

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit._ranges import MAX_RANGES, Multipart, content_range, parse_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=10-19", [(10, 20)]),
        ("bytes=0-0", [(0, 1)]),
        ("bytes=-5", [(95, 100)]),
        ("bytes=10-", [(10, 100)]),
        ("bytes=0-", [(0, 100)]),
        ("bytes=-500", [(0, 100)]),
        ("bytes=90-500", [(90, 100)]),
        ("bytes=99-99", [(99, 100)]),
        ("BYTES=1-2", [(1, 3)]),
        ("bytes=0-9, 20-29", [(0, 10), (20, 30)]),
        ("bytes=20-29,0-9", [(0, 10), (20, 30)]),
        ("bytes=0-9,5-14", [(0, 15)]),
        ("bytes=0-9,10-19", [(0, 20)]),
        ("bytes=0-9,11-19", [(0, 10), (11, 20)]),
        ("bytes=0-50,10-20", [(0, 51)]),
        ("bytes=-10,0-4", [(0, 5), (90, 100)]),
        ("bytes=0-1,,2-3", [(0, 4)]),
        ("bytes=5-9,200-300", [(5, 10)]),
        ("bytes=00010-00019", [(10, 20)]),
        ("bytes=0-99999999999999999999999", [(0, 100)]),
    ],
)
def test_satisfiable_ranges_are_clipped_sorted_and_coalesced(
    header: str, expected: list[tuple[int, int]]
) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [
        "bytes=100-",
        "bytes=100-200",
        "bytes=-0",
        "bytes=200-300,150-",
        "bytes=99999999999999999999999-",
    ],
)
def test_nothing_satisfiable_is_an_empty_list(header: str) -> None:
    assert parse_range(header, 100) == []


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes",
        "bytes=",
        "bytes=,",
        "items=0-5",
        "bytes 0-5",
        "bytes=5",
        "bytes=a-b",
        "bytes=5-3",
        "bytes=0-5,5-3",
        "bytes=-",
        "bytes=+1-2",
        "bytes=1-+2",
        "bytes=--5",
        "bytes=0x10-20",
        "bytes=1 -2",
        "bytes=\u0661-\u0662",
        "bytes=\u00b2-3",
        "bytes = 0-5",
    ],
)
def test_invalid_headers_are_ignored(header: str) -> None:
    assert parse_range(header, 100) is None


def test_an_empty_file_has_no_satisfiable_int_range() -> None:
    assert parse_range("bytes=0-", 0) == []
    assert parse_range("bytes=0-0", 0) == []


def test_a_suffix_range_of_an_empty_file_sends_the_whole_empty_file() -> None:
    assert parse_range("bytes=-5", 0) is None


def test_more_ranges_than_the_cap_after_coalescing_are_ignored() -> None:
    disjoint = ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES + 1))
    assert parse_range("bytes=" + disjoint, 10_000) is None
    at_cap = ",".join(f"{i * 2}-{i * 2}" for i in range(MAX_RANGES))
    assert len(parse_range("bytes=" + at_cap, 10_000) or []) == MAX_RANGES


def test_thousands_of_overlapping_parts_coalesce_to_one() -> None:
    header = "bytes=" + ",".join(f"{i}-{i + 10}" for i in range(20_000))
    assert parse_range(header, 1_000_000) == [(0, 20_010)]


def test_thousands_of_tiny_disjoint_parts_are_refused_not_served() -> None:
    header = "bytes=" + ",".join(f"{i * 3}-{i * 3}" for i in range(20_000))
    assert parse_range(header, 1_000_000) is None


def test_content_range_is_inclusive() -> None:
    assert content_range(0, 10, 100) == "bytes 0-9/100"


def _parse_multipart(body: bytes, content_type: str) -> list[tuple[str, str, bytes]]:
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    return [
        (part["content-type"], part["content-range"], part.get_payload(decode=True))
        for part in message.iter_parts()
    ]


def test_multipart_layout_matches_its_content_length_and_parses() -> None:
    data = bytes(range(256)) * 4
    ranges = [(0, 10), (100, 300), (1000, 1024)]
    layout = Multipart(ranges, len(data), "application/octet-stream", "BOUNDARY123")
    body = b"".join(head + data[a:b] for head, a, b in layout.parts) + layout.trailer
    assert len(body) == layout.content_length
    assert body.startswith(b"--BOUNDARY123\r\n")
    assert body.endswith(b"\r\n--BOUNDARY123--\r\n")
    parts = _parse_multipart(body, layout.content_type)
    assert [p[1] for p in parts] == [
        "bytes 0-9/1024",
        "bytes 100-299/1024",
        "bytes 1000-1023/1024",
    ]
    assert all(p[0] == "application/octet-stream" for p in parts)


def test_multipart_parts_omit_content_type_when_unknown() -> None:
    layout = Multipart([(0, 1), (5, 6)], 10, None, "b")
    assert all(b"content-type" not in head for head, _, _ in layout.parts)


_range_text = st.one_of(
    st.text(alphabet="bytes=0123456789-, \t", max_size=40),
    st.text(max_size=30),
    st.lists(
        st.tuples(
            st.one_of(st.none(), st.integers(0, 300)), st.one_of(st.none(), st.integers(0, 300))
        ),
        min_size=1,
        max_size=8,
    ).map(
        lambda specs: (
            "bytes="
            + ",".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in specs)
        )
    ),
)


@given(header=_range_text, size=st.integers(0, 200))
def test_any_header_gives_ignore_unsatisfiable_or_sane_ranges(header: str, size: int) -> None:
    result = parse_range(header, size)
    if result is None or result == []:
        return
    assert len(result) <= MAX_RANGES
    previous_stop = -1
    for start, stop in result:
        assert 0 <= start < stop <= size
        # Sorted and coalesced: a gap of at least one byte between ranges.
        assert start > previous_stop
        previous_stop = stop
