"""The optional fast JSON codec (``asgikit._json``, ``FastJSONResponse``): stdlib's meaning."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit import JSONResponse
from asgikit import _json as codec
from asgikit.responses import FastJSONResponse

pytestmark = pytest.mark.skipif(not codec.FAST, reason="msgspec (the fast extra) not installed")

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    # Equal values of equal types all the way down (1 == 1.0 == True would hide a change).
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b)


@settings(max_examples=200)
@given(json_values)
def test_loads_gives_what_json_loads_gives(value: Any) -> None:
    data = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        expected = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        return
    assert _same(codec.loads(data), expected)


@pytest.mark.parametrize(
    "data",
    [
        b"1e999",
        b"-1e999",
        b"NaN",
        b"[Infinity]",
        b'"\\ud800"',
        b'{"a": 1e400}',
        b"[" * 3000 + b"]" * 3000,
    ],
)
def test_loads_accepts_what_only_the_standard_library_accepts(data: bytes) -> None:
    try:
        expected: Any = json.loads(data.decode("utf-8"))
    except RecursionError:
        with pytest.raises(RecursionError):
            codec.loads(data)
        return
    assert _same(codec.loads(data), expected)


@pytest.mark.parametrize(
    "data", [b"", b"nul", b"[1,]", b'"a\x01"', b'"\xff"', b"nan", b"01", b"9" * 5000]
)
def test_loads_refuses_what_json_refuses_with_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        codec.loads(data)


def _body(response: JSONResponse) -> Any:
    return json.loads(response.body.decode("utf-8"))


@settings(max_examples=200)
@given(json_values)
def test_fast_json_response_means_what_json_response_means(value: Any) -> None:
    assert _same(_body(FastJSONResponse(value)), _body(JSONResponse(value)))


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_fast_json_response_refuses_nan_and_infinity_even_beside_none(bad: float) -> None:
    with pytest.raises(ValueError):
        FastJSONResponse({"a": None, "b": [bad]})
    with pytest.raises(ValueError):
        FastJSONResponse([bad])


def test_fast_json_response_escapes_a_lone_surrogate_like_json_response() -> None:
    response = FastJSONResponse({"text": "\ud800"})
    assert response.body == JSONResponse({"text": "\ud800"}).body == b'{"text":"\\ud800"}'


def test_fast_json_response_writes_bool_and_none_keys_as_json_response_does() -> None:
    value = {True: 1, None: 2, 3: 4}
    assert _body(FastJSONResponse(value)) == _body(JSONResponse(value))


@dataclasses.dataclass
class Event:
    when: datetime.date
    note: str | None


def test_fast_json_response_encodes_msgspec_types_the_same_with_or_without_null() -> None:
    # With null in the output the standard library encodes (it alone tells None
    # from NaN), with msgspec's conversions: the same answer either way.
    day = datetime.date(2026, 1, 2)
    assert _body(FastJSONResponse(Event(day, "x"))) == {"when": "2026-01-02", "note": "x"}
    assert _body(FastJSONResponse(Event(day, None))) == {"when": "2026-01-02", "note": None}


def test_json_response_stays_on_the_standard_library_when_msgspec_is_installed() -> None:
    with pytest.raises(TypeError):
        JSONResponse({"when": datetime.date(2026, 1, 2)})


def test_fast_json_response_without_msgspec_is_json_response(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(codec, "_encode", None)
    value = {"a": [1, 2.5, "é"], "b": None}
    assert (
        FastJSONResponse(value).body
        == JSONResponse(value).body
        == b'{"a":[1,2.5,"\xc3\xa9"],"b":null}'
    )
