"""Tests for asgikit.convertors: typed path parameters, compiled once, built back."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit.convertors import (
    CONVERTORS,
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    StringConvertor,
    UUIDConvertor,
    compile_path,
    register_convertor,
)
from asgikit.routing import route

# Matching


def test_path_without_parameters_matches_only_itself() -> None:
    compiled = compile_path("/users/me")
    assert compiled.match("/users/me") == {}
    assert compiled.match("/users/me/") is None
    assert compiled.match("/users") is None


def test_each_builtin_convertor_converts_its_segment() -> None:
    compiled = compile_path("/{i:int}/{f:float}/{s}/{u:uuid}/{rest:path}")
    some_uuid = uuid.uuid4()
    params = compiled.match(f"/42/2.5/word/{some_uuid}/a/b/c.txt")
    assert params == {"i": 42, "f": 2.5, "s": "word", "u": some_uuid, "rest": "a/b/c.txt"}
    assert type(params["i"]) is int
    assert type(params["f"]) is float
    assert isinstance(params["u"], uuid.UUID)


@pytest.mark.parametrize(
    ("template", "path"),
    [
        ("/{i:int}", "/-1"),
        ("/{i:int}", "/1.5"),
        ("/{i:int}", "/abc"),
        ("/{i:int}", "/" + "9" * 65),
        ("/{f:float}", "/nan"),
        ("/{f:float}", "/inf"),
        ("/{f:float}", "/1e5"),
        ("/{u:uuid}", "/not-a-uuid"),
        ("/{s}", "/"),
        ("/{s}", "/a/b"),
    ],
)
def test_segment_its_convertor_refuses_does_not_match(template: str, path: str) -> None:
    assert compile_path(template).match(path) is None


def test_int_with_ten_thousand_digits_does_not_match_and_does_not_convert() -> None:
    assert compile_path("/{i:int}").match("/" + "7" * 10_000) is None


def test_path_convertor_may_be_empty_and_spans_slashes() -> None:
    compiled = compile_path("/files/{rest:path}")
    assert compiled.match("/files/") == {"rest": ""}
    assert compiled.match("/files/a//b/") == {"rest": "a//b/"}


def test_literal_parts_are_not_regular_expressions() -> None:
    compiled = compile_path("/a.b/{x}+")
    assert compiled.match("/a.b/1+") == {"x": "1"}
    assert compiled.match("/aXb/1+") is None
    assert compiled.match("/a.b/1") is None


def test_prefix_template_matches_only_at_a_segment_boundary() -> None:
    compiled = compile_path("/api", prefix=True)
    assert compiled.regex is not None
    assert compiled.regex.match("/api/users") is not None
    assert compiled.regex.match("/api") is not None
    assert compiled.regex.match("/apiary") is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("/{x:nope}", "unknown convertor"),
        ("/{x}/{x}", "duplicate parameter"),
        ("/{x", "malformed"),
        ("/x}", "malformed"),
        ("/{x/{y}", "malformed"),
    ],
)
def test_bad_templates_are_refused_when_compiled(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compile_path(template)


# User-registered convertors


class HexConvertor(Convertor[int]):
    regex = "[0-9a-f]{1,8}"

    def convert(self, value: str) -> int:
        return int(value, 16)

    def to_string(self, value: int) -> str:
        return format(value, "x")


class EvenConvertor(Convertor[int]):
    regex = "[0-9]{1,8}"

    def convert(self, value: str) -> int:
        number = int(value)
        if number % 2:
            raise ValueError("odd")
        return number

    def to_string(self, value: int) -> str:
        return str(value)


def test_registered_convertor_is_usable_in_later_templates() -> None:
    register_convertor("test_hex", HexConvertor())
    compiled = compile_path("/colour/{c:test_hex}")
    assert compiled.match("/colour/ff") == {"c": 255}
    assert compiled.match("/colour/zz") is None
    assert compiled.build({"c": 255}) == ("/colour/ff", {})


def test_convertor_raising_value_error_refuses_the_match() -> None:
    register_convertor("test_even", EvenConvertor())
    compiled = compile_path("/{n:test_even}")
    assert compiled.match("/4") == {"n": 4}
    assert compiled.match("/3") is None


def test_convertor_name_must_be_an_identifier() -> None:
    with pytest.raises(ValueError):
        register_convertor("no-dash", HexConvertor())
    assert "no-dash" not in CONVERTORS


# Building paths back


def test_build_fills_parameters_and_returns_the_unused_ones() -> None:
    compiled = compile_path("/users/{id:int}/posts/{slug}")
    assert compiled.build({"id": 3, "slug": "hi", "extra": 1}) == (
        "/users/3/posts/hi",
        {"extra": 1},
    )


def test_build_with_a_missing_parameter_raises_key_error() -> None:
    with pytest.raises(KeyError):
        compile_path("/users/{id:int}").build({})


@pytest.mark.parametrize(
    ("convertor", "value"),
    [
        (IntegerConvertor(), -1),
        (IntegerConvertor(), True),
        (IntegerConvertor(), "12"),
        (FloatConvertor(), -0.5),
        (FloatConvertor(), float("nan")),
        (FloatConvertor(), float("inf")),
        (StringConvertor(), ""),
        (StringConvertor(), "a/b"),
        (UUIDConvertor(), "not-a-uuid"),
    ],
)
def test_to_string_refuses_values_the_route_could_not_match(
    convertor: Convertor[Any], value: Any
) -> None:
    with pytest.raises(ValueError):
        convertor.to_string(value)


def test_build_refuses_a_value_whose_string_would_not_match_back() -> None:
    # 1e-300 written out needs 300 decimals; the float pattern allows 64.
    with pytest.raises(ValueError):
        compile_path("/{f:float}").build({"f": 1e-300})


@given(st.integers(min_value=0, max_value=10**64 - 1))
def test_int_round_trips(number: int) -> None:
    compiled = compile_path("/{i:int}")
    path, _ = compiled.build({"i": number})
    assert compiled.match(path) == {"i": number}


@given(st.floats(min_value=0, max_value=1e30, allow_nan=False, allow_infinity=False))
def test_float_round_trips_exactly(number: float) -> None:
    compiled = compile_path("/{f:float}")
    try:
        path, _ = compiled.build({"f": number})
    except ValueError:
        return  # too many decimals for the pattern: refused, never built wrong
    assert compiled.match(path) == {"f": number}


@given(st.uuids())
def test_uuid_round_trips(value: uuid.UUID) -> None:
    compiled = compile_path("/{u:uuid}")
    path, _ = compiled.build({"u": value})
    assert compiled.match(path) == {"u": value}


@given(st.text(min_size=1).filter(lambda s: "/" not in s and s not in (".", "..")))
def test_str_round_trips_through_its_decoded_form(value: str) -> None:
    # build() gives the path the router sees: decoded, as ASGI's ``path`` is.
    # (A dot segment is refused: tests/security/test_redirect_and_url_attacks.py.)
    compiled = compile_path("/{s}")
    path, _ = compiled.build({"s": value})
    assert compiled.match(path) == {"s": value}


def test_a_value_that_looks_like_a_parameter_is_not_substituted_again() -> None:
    compiled = compile_path("/{a}/{b}")
    assert compiled.build({"a": "{b}", "b": "x"}) == ("/{b}/x", {})


# -- Parity with Starlette's tests/test_convertors.py --------------------------
# Deliberate difference: none in behaviour; ``register_convertor`` is also
# importable under Starlette's name, ``register_url_convertor``.


def test_a_registered_datetime_convertor_routes_and_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import datetime

    from asgikit.convertors import CONVERTORS, register_url_convertor
    from asgikit.requests import Request
    from asgikit.responses import JSONResponse, Response
    from asgikit.routing import route, router
    from asgikit.testing import TestClient

    class DateTimeConvertor(Convertor[datetime]):
        regex = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"

        def convert(self, value: str) -> datetime:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S")

        def to_string(self, value: datetime) -> str:
            return value.strftime("%Y-%m-%dT%H:%M:%S")

    monkeypatch.setitem(CONVERTORS, "datetime", CONVERTORS["str"])  # restored afterwards
    register_url_convertor("datetime", DateTimeConvertor())

    async def show(request: Request) -> Response:
        value = request.path_params["param"]
        assert isinstance(value, datetime)
        return JSONResponse({"datetime": value.strftime("%Y-%m-%dT%H:%M:%S")})

    app = router(route("/datetime/{param:datetime}", show, name="dt"))
    response = TestClient(app).get("/datetime/2020-01-01T00:00:00")
    assert response.json() == {"datetime": "2020-01-01T00:00:00"}
    built = app.url_path_for("dt", param=datetime(1996, 1, 22, 23, 0, 0))
    assert built == "/datetime/1996-01-22T23:00:00"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/f/1.0", 200),
        ("/f/1-0", 404),
        ("/u/00000000-aaaa-ffff-9999-000000000000", 200),
        ("/u/00000000aaaaffff9999000000000000", 200),
        ("/u/00000000-AAAA-FFFF-9999-000000000000", 200),
        ("/u/00000000AAAAFFFF9999000000000000", 200),
        ("/u/not-a-uuid", 404),
    ],
)
def test_default_float_and_uuid_convertors(path: str, status: int) -> None:
    import uuid as uuid_module

    from asgikit.requests import Request
    from asgikit.responses import PlainTextResponse, Response
    from asgikit.routing import route, router
    from asgikit.testing import TestClient

    async def show(request: Request) -> Response:
        value = request.path_params["v"]
        assert isinstance(value, (float, uuid_module.UUID))
        return PlainTextResponse(str(value))

    app = router(route("/f/{v:float}", show), route("/u/{v:uuid}", show))
    response = TestClient(app).get(path)
    assert response.status_code == status
    if path.startswith("/u/") and status == 200:
        assert response.text == "00000000-aaaa-ffff-9999-000000000000"


@pytest.mark.parametrize(
    "template", ["/{a:path}/{b:path}/z", "/{a:path}-{b:path}", "/x/{a:path}/{b:slashy}"]
)
def test_a_template_with_two_parameters_spanning_segments_is_refused(
    template: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Matching it is quadratic in the path's length (each split between the
    # two is a candidate), and which split wins is arbitrary.
    monkeypatch.setitem(CONVERTORS, "slashy", _Slashy())
    with pytest.raises(ValueError, match="may have one such parameter"):
        compile_path(template)
    with pytest.raises(ValueError, match="may have one such parameter"):
        route(template, lambda request: None)


def test_one_spanning_parameter_beside_segment_parameters_is_fine() -> None:
    compiled = compile_path("/{a:path}/{b}/{c:int}")
    assert compiled.match("/x/y/z/7") == {"a": "x/y", "b": "z", "c": 7}


class _Slashy(Convertor[str]):
    regex = "[a-z/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value
