"""URL: parts, userinfo, replace, query helpers, and the Host rules of from_scope.

Parity with Starlette's ``tests/test_datastructures.py`` (the URL tests).
Deliberate differences: asgikit builds a URL from a scope with
``URL.from_scope(scope)`` (not ``URL(scope=...)``), a scope without Host or
server gives ``localhost`` (a URL is always absolute), and IPvFuture hosts
(``[v1.foo]``) are refused like any other non-IPv6 bracket.
"""

from __future__ import annotations

import pytest

from asgikit.datastructures import URL, Headers
from asgikit.requests import Request
from tests.conftest import make_scope


def test_parts_of_a_parsed_url() -> None:
    url = URL("https://example.org:123/path/to/somewhere?abc=123#anchor")
    assert (url.scheme, url.hostname, url.port, url.netloc) == (
        "https",
        "example.org",
        123,
        "example.org:123",
    )
    assert (url.username, url.password) == (None, None)
    assert (url.path, url.query, url.fragment) == ("/path/to/somewhere", "abc=123", "anchor")


def test_username_and_password() -> None:
    url = URL("https://alice:s3cret@example.org/x")
    assert url.username == "alice"
    assert url.password == "s3cret"
    assert URL("https://alice@example.org/").password is None


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.org/p", "URL('https://example.org/p')"),
        ("https://alice@example.org/p", "URL('https://alice@example.org/p')"),
        ("https://alice:s3cret@example.org/p", "URL('https://alice:********@example.org/p')"),
        ("https://alice:@example.org/p", "URL('https://alice:********@example.org/p')"),
    ],
)
def test_repr_masks_the_password(url: str, shown: str) -> None:
    assert repr(URL(url)) == shown
    assert str(URL(url)) == url  # str is the URL itself


def test_replace_scheme_host_port_and_userinfo() -> None:
    url = URL("https://example.org:123/path?abc=123#anchor")
    assert url.replace(scheme="http") == "http://example.org:123/path?abc=123#anchor"
    assert url.replace(port=None) == "https://example.org/path?abc=123#anchor"
    assert url.replace(port=None).port is None
    assert url.replace(hostname="example.com") == "https://example.com:123/path?abc=123#anchor"
    ipv6 = URL("https://[fe::2]:12345")
    assert ipv6.replace(hostname=ipv6.hostname) == ipv6
    assert ipv6.replace(port=8080) == "https://[fe::2]:8080"
    with_user = ipv6.replace(username="username", password="password")
    assert with_user == "https://username:password@[fe::2]:12345"
    assert with_user.netloc == "username:password@[fe::2]:12345"
    assert URL("https://[fe::2]").replace(port=123) == "https://[fe::2]:123"
    url = URL("https://example.org:8443/path")
    assert url.replace(hostname="[::1]") == "https://[::1]:8443/path"
    assert url.replace(hostname="[::1]:8080", port=None) == "https://[::1]:8080/path"
    assert URL("http://u:p@host/").replace(hostname="bar") == "http://u:p@bar/"
    assert URL("http://u:p@host:80").replace(port=88) == "http://u:p@host:88"
    assert URL("http://host:80").replace(username="u") == "http://u@host:80"
    assert URL("/path?a=1").replace(port=8080) == "//:8080/path?a=1"
    assert URL("/path?a=1").replace(port=8080).port == 8080
    with pytest.raises(TypeError):
        url.replace(netloc="a", port=1)


def test_query_param_helpers() -> None:
    url = URL("https://example.org/path/?page=3")
    url = url.include_query_params(page=4)
    assert str(url) == "https://example.org/path/?page=4"
    url = url.include_query_params(search="testing")
    assert str(url) == "https://example.org/path/?page=4&search=testing"
    url = url.replace_query_params(order="name")
    assert str(url) == "https://example.org/path/?order=name"
    assert str(url.remove_query_params("order")) == "https://example.org/path/"
    url = url.include_query_params(page=4, search="testing")
    assert (
        str(url.remove_query_params(["page", "search"])) == "https://example.org/path/?order=name"
    )


def test_from_scope_host_port_with_leading_zeros_is_valid() -> None:
    url = URL.from_scope(make_scope(path="/p", headers=[(b"host", b"example.com:000080")]))
    assert str(url) == "http://example.com:000080/p"
    assert url.port == 80


@pytest.mark.parametrize(
    "host",
    [
        b"foo/?x=",
        b"foo/#",
        b"foo/bar",
        b"user@foo",
        b"foo\\bar",
        b"foo bar",
        b"foo:65536",
        b"foo:100000",
        b"foo:evil",
        b"[::1]:65536",
        b"[:::]",
        b"[::ffff:999.999.999.999]",
        b"[V1.foo]",
        b"[v1.foo]",
    ],
)
def test_from_scope_ignores_an_invalid_host_for_the_server_address(host: bytes) -> None:
    scope = make_scope(path="/admin", headers=[(b"host", host)], server=("example.com", 80))
    url = URL.from_scope(scope)
    assert url.netloc == "example.com"
    assert url.path == "/admin"


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("@google.com", "/@google.com"),
        ("user:pass@google.com", "/user:pass@google.com"),
        ("//google.com/x", "//google.com/x"),
        ("http://google.com/x", "/http://google.com/x"),
        ("/\\example.org/a", "/%5Cexample.org/a"),
        ("/a?b#c", "/a%3Fb%23c"),
    ],
)
@pytest.mark.parametrize("host_header", [True, False])
def test_from_scope_path_never_bleeds_into_the_authority(
    path: str, expected: str, host_header: bool
) -> None:
    headers = [(b"host", b"localhost")] if host_header else []
    scope = make_scope(path=path, query_string=b"a=b", headers=headers, server=("localhost", 80))
    url = URL.from_scope(scope)
    assert (url.hostname, url.path, url.query) == ("localhost", expected, "a=b")


@pytest.mark.parametrize(
    ("server", "netloc"), [(("::1", 80), "[::1]"), (("::1", 8000), "[::1]:8000")]
)
def test_from_scope_brackets_an_ipv6_server(server: tuple[str, int], netloc: str) -> None:
    url = URL.from_scope(make_scope(headers=[(b"host", b"[:::]")], server=server))
    assert url.hostname == "::1"
    assert url.netloc == netloc


def test_every_reader_of_host_takes_the_first_of_two() -> None:
    # trusted_host, https_redirect and proxy_headers refuse two Host headers;
    # where a request with two gets through, every view agrees on the first.
    scope = make_scope(headers=[(b"host", b"first.example"), (b"Host", b"second.example")])
    assert URL.from_scope(scope).netloc == "first.example"
    assert Request(scope).url.netloc == "first.example"
    assert Headers(scope=scope).get("host") == "first.example"


def test_a_host_header_name_in_capitals_is_read() -> None:
    scope = make_scope(headers=[(b"Host", b"example.com")])
    assert URL.from_scope(scope).netloc == "example.com"
