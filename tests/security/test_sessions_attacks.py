"""Attacks on sessions and MemoryStore: tampered cookies, planted ids, eviction floods."""

from __future__ import annotations

import json

import pytest

from asgikit.middleware.session_stores import MemoryStore
from asgikit.middleware.sessions import Signer, sessions
from asgikit.requests import Request
from asgikit.responses import JSONResponse, PlainTextResponse
from asgikit.routing import route, router
from asgikit.testing import TestClient
from tests.conftest import make_scope, run_app

SECRET = "attack-secret"


async def show(request: Request) -> JSONResponse:
    return JSONResponse(dict(request.session))


async def login(request: Request) -> PlainTextResponse:
    request.session["user_id"] = request.query_params["as"]
    return PlainTextResponse("in")


async def cart(request: Request) -> PlainTextResponse:
    request.session["cart"] = request.query_params.get("item", "x")
    return PlainTextResponse("added")


routes = router(route("/", show), route("/login", login), route("/cart", cart))


# -- holes found by this review ---------------------------------------------


def test_one_account_logging_in_again_and_again_does_not_evict_other_users() -> None:
    # An attacker with one account (free sign-up) logs in 200 times: each login
    # is a new logged-in session.  Only that account's own oldest ones go.
    store = MemoryStore(max_entries=20, max_sessions_per_identity=5)
    app = sessions(routes, secret_key=SECRET, store=store)
    with TestClient(app) as alice:
        alice.get("/login", params={"as": "alice"})
        with TestClient(app) as mallory:
            for _ in range(200):
                mallory.cookies.clear()
                mallory.get("/login", params={"as": "mallory"})
        assert alice.get("/").json() == {"user_id": "alice"}
    assert len(store) == 6  # alice's one, and mallory's latest five


async def test_max_sessions_per_identity_keeps_the_latest_and_forgets_the_rest() -> None:
    store = MemoryStore(max_sessions_per_identity=2)
    for n in range(4):
        await store.save(f"s{n}", {"user": "bob"}, None)
    await store.save("other", {"user": "carol"}, None)
    assert [await store.load(f"s{n}") for n in range(4)] == [
        None,
        None,
        {"user": "bob"},
        {"user": "bob"},
    ]
    assert await store.load("other") == {"user": "carol"}
    # Logging out (no identity any more) or deleting releases the slot.
    await store.save("s3", {"cart": 1}, None)
    await store.delete("s2")
    await store.save("s4", {"user": "bob"}, None)
    await store.save("s5", {"user": "bob"}, None)
    assert await store.load("s4") == {"user": "bob"}
    assert await store.load("s5") == {"user": "bob"}
    assert len(store) == 4


def test_max_sessions_per_identity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_sessions_per_identity"):
        MemoryStore(max_sessions_per_identity=0)


# -- defences that hold ------------------------------------------------------


def valid_cookie() -> str:
    payload = json.dumps({"user_id": "alice"}).encode()
    return Signer(SECRET, salt=b"asgikit.sessions").sign(payload)


def tampered() -> list[str]:
    good = valid_cookie()
    body, _, signature = good.rpartition(".")
    payload, _, stamp = body.rpartition(".")
    other = Signer("another-secret", salt=b"asgikit.sessions").sign(b'{"user_id":"alice"}')
    wrong_salt = Signer(SECRET, salt=b"asgikit.csrf").sign(b'{"user_id":"alice"}')
    return [
        good[:-1],  # a truncated signature
        f"{body}.{signature[:10]}",
        f"{body}.",
        f"{payload}.{int(stamp) + 1}.{signature}",  # a moved timestamp
        f"{payload}A.{stamp}.{signature}",  # a changed payload
        other,
        wrong_salt,
        good.replace(".", "", 1),
        "." * 100,
        "A" * 100_000,
        "%" + good,
    ]


@pytest.mark.parametrize("cookie", tampered())
def test_a_tampered_cookie_gives_an_empty_session(cookie: str) -> None:
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.cookies.set("session", cookie)
        response = client.get("/")
        assert (response.status_code, response.json()) == (200, {})


@pytest.mark.parametrize("quoted", [False, True])
def test_the_untampered_cookie_passes(quoted: bool) -> None:
    cookie = valid_cookie()
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.cookies.set("session", f'"{cookie}"' if quoted else cookie)
        assert client.get("/").json() == {"user_id": "alice"}


@pytest.mark.anyio
@pytest.mark.parametrize("cookie", ["é{}", "{}\udcff", "²³", "\x00{}"])
async def test_non_ascii_cookie_bytes_give_an_empty_session(cookie: str) -> None:
    value = cookie.format(valid_cookie()).encode("utf-8", "surrogateescape")
    scope = make_scope(headers=[(b"cookie", b"session=" + value)])
    sent = await run_app(sessions(routes, secret_key=SECRET), scope)
    assert (sent.status, json.loads(sent.body)) == (200, {})


@pytest.mark.parametrize(
    "payload", [b"[" * 100_000, b'{"a":' * 50_000, b"1e999999", b"\xff\xfe", b"[]", b"null"]
)
def test_a_signed_payload_that_is_no_session_gives_an_empty_one(payload: bytes) -> None:
    # Only the key's holder can sign: a leaked key or a bug must still not be a 500.
    cookie = Signer(SECRET, salt=b"asgikit.sessions").sign(payload)
    with TestClient(sessions(routes, secret_key=SECRET)) as client:
        client.cookies.set("session", cookie)
        response = client.get("/")
        assert response.status_code == 200
        assert response.json() in ({}, {"a": None})


def test_a_forged_store_id_signed_elsewhere_is_not_adopted() -> None:
    store = MemoryStore()
    app = sessions(routes, secret_key=SECRET, store=store)
    forged = Signer("guess", salt=b"asgikit.sessions").sign(b"planted-id")
    with TestClient(app) as client:
        client.cookies.set("session", forged)
        response = client.get("/cart")
    assert forged not in response.headers["set-cookie"]
    assert len(store) == 1
