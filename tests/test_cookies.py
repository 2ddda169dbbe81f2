"""``Set-Cookie`` values (RFC 6265 §4.1.1) and their round trip through the ``Cookie`` parser."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit._cookies import format_set_cookie
from asgikit.datastructures import parse_cookie_header

_TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_COOKIE_OCTETS = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')


def test_format_set_cookie_defaults() -> None:
    assert format_set_cookie("a", "1") == "a=1; Path=/; SameSite=Lax"


def test_expires_from_an_aware_or_naive_datetime_is_gmt() -> None:
    aware = datetime(2030, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert "Expires=Wed, 02 Jan 2030 03:04:05 GMT" in format_set_cookie("a", expires=aware)
    naive = datetime(2030, 1, 2, 3, 4, 5)
    assert "Expires=Wed, 02 Jan 2030 03:04:05 GMT" in format_set_cookie("a", expires=naive)


def test_expires_in_seconds_is_from_now() -> None:
    cookie = format_set_cookie("a", expires=3600, path=None, samesite=None)
    when = parsedate_to_datetime(cookie.removeprefix("a=; Expires="))
    assert timedelta(minutes=59) < when - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_expires_string_with_a_semicolon_is_refused() -> None:
    with pytest.raises(ValueError, match="expires"):
        format_set_cookie("a", expires="Wed; Secure")


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a;b", "a,b", 'a"b', "é", "a\tb"])
def test_invalid_cookie_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="cookie name"):
        format_set_cookie(name, "v")


@pytest.mark.parametrize("value", ["a b", "a;b", "a,b", 'a"b', "a\\b", "é", "a\r\nb", "\x7f"])
def test_invalid_cookie_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="cookie value"):
        format_set_cookie("a", value)


@pytest.mark.parametrize("domain", ["ex.com; Secure", "ex\n.com", "ex\0"])
def test_invalid_domains_are_refused(domain: str) -> None:
    with pytest.raises(ValueError, match="domain"):
        format_set_cookie("a", "1", domain=domain)


@pytest.mark.parametrize("samesite", ["lax", "LAX", "Strict"])
def test_samesite_is_case_insensitive(samesite: str) -> None:
    assert format_set_cookie("a", samesite=samesite).endswith("SameSite=" + samesite.capitalize())


@given(
    name=st.text(alphabet=_TOKEN, min_size=1, max_size=20),
    value=st.text(alphabet=_COOKIE_OCTETS, max_size=40),
)
def test_a_cookie_set_is_read_back_unchanged(name: str, value: str) -> None:
    set_cookie = format_set_cookie(name, value, secure=True, httponly=True)
    # The browser sends back only "name=value", the part before the attributes.
    sent_back = set_cookie.split("; ", 1)[0]
    assert parse_cookie_header(sent_back) == {name: value}
    assert parse_cookie_header(f"other=1; {sent_back}")[name] == value


@given(name=st.text(max_size=10), value=st.text(max_size=10))
def test_format_set_cookie_raises_only_value_error(name: str, value: str) -> None:
    try:
        cookie = format_set_cookie(name, value)
    except ValueError:
        return
    assert "\r" not in cookie
    assert "\n" not in cookie
