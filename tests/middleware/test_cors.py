"""cors: simple and preflight requests per the Fetch standard, alone and as a drop-in."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asgikit.composition import stack
from asgikit.middleware.cors import cors
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send
from tests.conftest import make_scope, run_app
from tests.middleware._fast_send import messages_through
from tests.servers.live import serve

SITE = "https://site.example"


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("hello", headers={"x-app": "1"})(scope, receive, send)


def client(**options: object) -> TestClient:
    return TestClient(cors(hello, **options))  # type: ignore[arg-type]


def preflight(
    c: TestClient, method: str = "GET", headers: str | None = None, **extra: str
) -> httpx.Response:
    sent = {"origin": SITE, "access-control-request-method": method, **extra}
    if headers is not None:
        sent["access-control-request-headers"] = headers
    return c.options("/", headers=sent)


def test_simple_request_from_allowed_origin_gets_origin_and_vary() -> None:
    response = client(allow_origins=[SITE]).get("/", headers={"origin": SITE})
    assert response.status_code == 200
    assert response.text == "hello"
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers


def test_simple_request_from_other_origin_gets_no_cors_headers_but_vary() -> None:
    response = client(allow_origins=[SITE]).get("/", headers={"origin": "https://evil.example"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_request_without_origin_still_varies_on_origin() -> None:
    response = client(allow_origins=[SITE]).get("/")
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-origin" not in response.headers


def test_wildcard_without_credentials_answers_star_and_no_vary() -> None:
    c = client(allow_origins=["*"])
    response = c.get("/", headers={"origin": SITE})
    assert response.headers["access-control-allow-origin"] == "*"
    assert "vary" not in response.headers
    assert "vary" not in c.get("/").headers


def test_wildcard_origins_with_credentials_is_refused_when_built() -> None:
    # Echoing every origin, "null" included, with credentials lets any page
    # (or a sandboxed iframe) read a logged-in user's answers.
    with pytest.raises(ValueError, match="allow_origin_regex") as info:
        cors(hello, allow_origins=["*"], allow_credentials=True)
    assert "list the origins" in str(info.value)
    with pytest.raises(ValueError):  # the layer form: when the stack is built
        stack(cors(allow_origins=["*"], allow_credentials=True), hello)


def test_credentials_with_a_regex_echoes_the_origin_never_star() -> None:
    c = client(
        allow_origin_regex=r"https://[a-z]+\.example",
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
    )
    response = c.get("/", headers={"origin": SITE})
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["vary"] == "Origin"
    answer = preflight(c, "PUT", "x-custom")
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SITE
    assert answer.headers["access-control-allow-methods"] == "PUT"
    assert answer.headers["access-control-allow-headers"] == "x-custom"
    assert "*" not in answer.headers.get("access-control-allow-headers", "")
    null = c.get("/", headers={"origin": "null"})
    assert "access-control-allow-origin" not in null.headers


def test_any_method_echoes_a_method_outside_the_standard_set() -> None:
    c = client(allow_origins=[SITE], allow_methods=["*"])
    for method in ("QUERY", "PROPFIND", "PURGE"):
        answer = preflight(c, method)
        assert answer.status_code == 200, method
        assert answer.headers["access-control-allow-methods"] == method


def test_any_method_still_refuses_a_method_that_is_not_a_token() -> None:
    c = client(allow_origins=[SITE], allow_methods=["*"])
    for method in ("GE T", "GET,PUT", "", 'G"ET'):
        answer = preflight(c, method)
        assert answer.status_code == 400, method
        assert "method" in answer.text


def test_expose_headers_listed_on_simple_responses() -> None:
    c = client(allow_origins=[SITE], expose_headers=["X-App", "X-Total"])
    response = c.get("/", headers={"origin": SITE})
    assert response.headers["access-control-expose-headers"] == "X-App, X-Total"


def test_vary_merges_with_the_apps_vary() -> None:
    async def varied(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("x", headers={"vary": "Accept-Encoding"})(scope, receive, send)

    c = TestClient(cors(varied, allow_origins=[SITE]))
    assert c.get("/", headers={"origin": SITE}).headers["vary"] == "Accept-Encoding, Origin"


def test_app_cors_headers_are_replaced_for_allowed_origin() -> None:
    async def own(scope: Scope, receive: Receive, send: Send) -> None:
        headers = {"access-control-allow-origin": "https://other.example"}
        await PlainTextResponse("x", headers=headers)(scope, receive, send)

    response = TestClient(cors(own, allow_origins=[SITE])).get("/", headers={"origin": SITE})
    assert response.headers.get_list("access-control-allow-origin") == [SITE]


def test_preflight_allowed_is_answered_without_calling_the_app() -> None:
    c = client(allow_origins=[SITE], allow_methods=["GET", "POST"], allow_headers=["X-Token"])
    response = preflight(c, "POST", "x-token, content-type")
    assert response.status_code == 200
    assert "x-app" not in response.headers  # the app did not run
    assert response.headers["access-control-allow-origin"] == SITE
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    allowed = {h.strip() for h in response.headers["access-control-allow-headers"].split(",")}
    assert {"x-token", "content-type", "accept"} <= allowed
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["vary"] == "Origin"


@pytest.mark.parametrize(
    ("origin", "method", "headers", "reason"),
    [
        ("https://evil.example", "GET", None, "origin"),
        (SITE, "DELETE", None, "method"),
        (SITE, "GET", "x-secret", "headers"),
        (SITE, "get", None, "method"),  # methods are case-sensitive
    ],
)
def test_preflight_refused_for_disallowed_origin_method_or_header(
    origin: str, method: str, headers: str | None, reason: str
) -> None:
    c = client(allow_origins=[SITE], allow_methods=["GET"], allow_headers=["x-token"])
    sent = {"origin": origin, "access-control-request-method": method}
    if headers:
        sent["access-control-request-headers"] = headers
    response = c.options("/", headers=sent)
    assert response.status_code == 400
    assert reason in response.text
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"


def test_options_without_request_method_is_a_simple_request() -> None:
    response = client(allow_origins=[SITE]).options("/", headers={"origin": SITE})
    assert response.headers["x-app"] == "1"
    assert response.headers["access-control-allow-origin"] == SITE


def test_private_network_preflight_refused_unless_allowed() -> None:
    extra = {"access-control-request-private-network": "true"}
    refused = preflight(client(allow_origins=[SITE]), **extra)
    assert refused.status_code == 400
    assert refused.text == "Disallowed CORS private-network"
    allowed = preflight(client(allow_origins=[SITE], allow_private_network=True), **extra)
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-private-network"] == "true"


def test_origin_regex_must_match_the_whole_origin() -> None:
    c = client(allow_origin_regex=r"https://[a-z]+\.site\.example")
    ok = c.get("/", headers={"origin": "https://app.site.example"})
    assert ok.headers["access-control-allow-origin"] == "https://app.site.example"
    bad = c.get("/", headers={"origin": "https://app.site.example.evil.com"})
    assert "access-control-allow-origin" not in bad.headers


def test_regex_origins_each_get_their_own_answer_every_time() -> None:
    c = client(allow_origin_regex=r"https://[a-z]+\.site\.example", expose_headers=["X-App"])
    for _ in range(2):
        for name in ("app", "admin"):
            origin = f"https://{name}.site.example"
            response = c.get("/", headers={"origin": origin})
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["access-control-expose-headers"] == "X-App"
            assert response.headers["vary"] == "Origin"
        refused = c.get("/", headers={"origin": "https://evil.example"})
        assert "access-control-allow-origin" not in refused.headers
        assert refused.headers["vary"] == "Origin"


async def test_two_different_origins_are_refused_but_still_vary() -> None:
    app = cors(hello, allow_origins=[SITE, "https://other.example"])
    headers = [(b"origin", SITE.encode()), (b"origin", b"https://other.example")]
    sent = await run_app(app, make_scope(headers=headers))
    assert sent.header(b"access-control-allow-origin") == []
    assert sent.header(b"vary") == [b"Origin"]


async def test_unlisted_origins_are_not_kept_in_memory_without_bound() -> None:
    import tracemalloc

    app = cors(hello, allow_origin_regex=r"https://[a-z0-9.-]+")
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(3000):
            origin = b"https://host-%d.example" % n + (b".x" * 200 if n % 2 else b"")
            sent = await run_app(app, make_scope(headers=[(b"origin", origin)]))
            assert sent.header(b"access-control-allow-origin") == [origin]
        retained = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # A few hundred short origins may be remembered; thousands may not.
    assert retained < 600_000


def test_configured_origin_is_normalised_case_and_trailing_slash() -> None:
    c = client(allow_origins=["HTTPS://Site.Example/"])
    assert c.get("/", headers={"origin": SITE}).headers["access-control-allow-origin"] == SITE


def test_null_origin_only_when_listed() -> None:
    assert (
        "access-control-allow-origin"
        not in client(allow_origins=[SITE]).get("/", headers={"origin": "null"}).headers
    )
    listed = client(allow_origins=["null"]).get("/", headers={"origin": "null"})
    assert listed.headers["access-control-allow-origin"] == "null"


def test_excluded_path_passes_through_untouched() -> None:
    c = client(allow_origins=[SITE], exclude=["/health"])
    response = c.get("/health/live", headers={"origin": SITE})
    assert "access-control-allow-origin" not in response.headers
    assert "vary" not in response.headers


def test_bad_configuration_is_refused_when_built() -> None:
    with pytest.raises(TypeError):
        cors(hello, allow_origins="https://a.example")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="allow_headers"):
        cors(hello, allow_headers=["bad header"])
    with pytest.raises(ValueError, match="max_age"):
        cors(hello, max_age=-1)


async def test_lifespan_and_websocket_scopes_pass_through() -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])

    wrapped = cors(app, allow_origins=[SITE])
    await wrapped({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    await wrapped(make_scope(type="websocket", headers=[(b"origin", SITE.encode())]), None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan", "websocket"]


async def test_other_message_types_and_keys_pass_through() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [], "trailers": True})
        await send({"type": "http.response.pathsend", "path": "/tmp/x"})

    sent = await run_app(
        cors(app, allow_origins=[SITE]), make_scope(headers=[(b"origin", SITE.encode())])
    )
    assert sent.messages[0]["trailers"] is True
    assert sent.messages[1] == {"type": "http.response.pathsend", "path": "/tmp/x"}


@settings(max_examples=200, deadline=None)
@given(origin=st.binary(max_size=80), method=st.binary(max_size=20), hdrs=st.binary(max_size=80))
async def test_any_origin_and_preflight_headers_never_give_a_500(
    origin: bytes, method: bytes, hdrs: bytes
) -> None:
    app = cors(hello, allow_origins=[SITE], allow_origin_regex=r"https://.*", allow_headers=["*"])
    headers = [
        (b"origin", origin),
        (b"access-control-request-method", method),
        (b"access-control-request-headers", hdrs),
    ]
    sent = await run_app(app, make_scope("OPTIONS", headers=headers))
    assert sent.status in (200, 400)
    sent = await run_app(app, make_scope("GET", headers=headers))
    assert sent.status == 200


def test_through_uvicorn_with_httpx() -> None:
    with serve(cors(hello, allow_origins=[SITE], allow_credentials=True), lifespan="off") as base:
        response = httpx.get(base, headers={"origin": SITE})
        assert response.headers["access-control-allow-origin"] == SITE
        assert response.headers["access-control-allow-credentials"] == "true"
        answer = httpx.options(
            base, headers={"origin": SITE, "access-control-request-method": "GET"}
        )
        assert answer.status_code == 200
        assert answer.headers["access-control-allow-origin"] == SITE


async def test_the_apps_send_hands_back_the_servers_awaitable_and_copies_the_start() -> None:
    scope = make_scope(headers=[(b"origin", b"https://a.example")])
    sent = await messages_through(
        lambda app: cors(app, allow_origins=["https://a.example"]), scope
    )
    assert dict(sent[0]["headers"])[b"access-control-allow-origin"] == b"https://a.example"
