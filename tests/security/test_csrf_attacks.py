"""Attacks on csrf: origins, tokens and methods that must not get a write through."""

from __future__ import annotations

import base64

import pytest

from asgikit.middleware.csrf import csrf, csrf_token
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app

pytestmark = pytest.mark.anyio

SECRET = "csrf-attack-secret"
HOST = b"good.example"


async def page(scope: Scope, receive: Receive, send: Send) -> None:
    body = csrf_token(scope).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


APP = csrf(page, secret_key=SECRET)


async def issued() -> tuple[str, str]:
    """A cookie value the layer signed, and a masked token for it."""
    sent = await run_app(APP, make_scope(headers=[(b"host", HOST)]))
    cookie = sent.header(b"set-cookie")[0].split(b";")[0].partition(b"=")[2].decode()
    return cookie, sent.body.decode()


async def status(
    method: str = "POST",
    *,
    token: str | None,
    cookie: str | None,
    headers: tuple[tuple[bytes, bytes], ...] = (),
    body: bytes = b"",
) -> int:
    sent_headers = [(b"host", HOST), *headers]
    if cookie is not None:
        sent_headers.append((b"cookie", f"csrftoken={cookie}".encode()))
    if token is not None:
        sent_headers.append((b"x-csrf-token", token.encode("latin-1")))
    sent = await run_app(APP, make_scope(method, headers=sent_headers), body=body)
    return sent.status


def xor(token: str, flip: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[flip] ^= 1
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


async def test_tokens_that_are_not_the_cookies_are_refused() -> None:
    cookie, masked = await issued()
    other_cookie, other_masked = await issued()
    half = len(base64.urlsafe_b64decode(masked + "=" * (-len(masked) % 4))) // 2
    refused = [
        other_masked,  # a masked token of another (valid) secret
        other_cookie,
        masked[:-2],  # cut short
        masked + "AA",
        xor(masked, 0),  # a bit of the pad
        xor(masked, half),  # a bit of the masked half
        cookie[:-1],
        cookie + "x",
        cookie.upper(),
        "",
        " " + masked,
        "A" * 10_000,
        "." * 64,
        "é" * 40,
    ]
    for token in refused:
        assert await status(token=token, cookie=cookie) == 403, token
    assert await status(token=masked, cookie=cookie) == 200
    assert await status(token=cookie, cookie=cookie) == 200


async def test_a_cookie_the_layer_did_not_sign_is_refused_with_itself_as_token() -> None:
    cookie, _ = await issued()
    nonce, _, signature = cookie.partition(".")
    flipped = "B" if signature.endswith("A") else "A"  # always another signature
    for forged in (f"{nonce}.", f"{nonce}.{signature[:-1]}{flipped}", nonce, f"x{cookie}", "a.b"):
        assert await status(token=forged, cookie=forged) == 403, forged


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([(b"origin", b"https://evil.example")], 403),
        ([(b"origin", b"null")], 403),
        ([(b"origin", b"http://good.example.evil.example")], 403),
        ([(b"origin", b"http://good.example:8080")], 403),
        ([(b"origin", b"https://good.example")], 403),  # another scheme is another origin
        ([(b"sec-fetch-site", b"cross-site")], 403),  # cross-site without Origin
        ([(b"sec-fetch-site", b"same-site"), (b"origin", b"http://a.good.example")], 403),
        ([(b"origin", b"http://good.example")], 200),
        ([(b"origin", b"HTTP://Good.Example:80/")], 200),
        ([(b"sec-fetch-site", b"same-origin")], 200),
        ([], 200),  # no browser headers: the token decides
    ],
)
async def test_origin_table(headers: list[tuple[bytes, bytes]], expected: int) -> None:
    cookie, masked = await issued()
    assert await status(token=masked, cookie=cookie, headers=tuple(headers)) == expected


@pytest.mark.parametrize("method", ["POST", "post", "PUT", "DELETE", "PATCH", "QUERY", "GETX"])
async def test_every_method_but_the_safe_ones_needs_the_token(method: str) -> None:
    cookie, _ = await issued()
    assert await status(method, token=None, cookie=cookie) == 403


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE"])
async def test_safe_methods_pass_without_a_token(method: str) -> None:
    assert await status(method, token=None, cookie=None) == 200


async def test_a_form_field_cut_off_by_the_peek_limit_is_not_read() -> None:
    cookie, masked = await issued()
    form = [(b"content-type", b"application/x-www-form-urlencoded")]
    whole = f"csrf_token={masked}".encode()
    assert await status(token=None, cookie=cookie, headers=tuple(form), body=whole) == 200
    padded = b"a=" + b"x" * (64 * 1024 - 20) + b"&" + whole
    assert await status(token=None, cookie=cookie, headers=tuple(form), body=padded) == 403


@pytest.mark.parametrize(
    "boundary", [b"x" * 200, b"", b'"', b"a b", b"\xff", b"--", b"x;boundary=y"]
)
async def test_odd_multipart_boundaries_are_a_403_not_an_error(boundary: bytes) -> None:
    cookie, _ = await issued()
    headers = ((b"content-type", b"multipart/form-data; boundary=" + boundary),)
    body = b"--" + boundary + b"\r\n\r\n"
    assert await status(token=None, cookie=cookie, headers=headers, body=body) == 403
