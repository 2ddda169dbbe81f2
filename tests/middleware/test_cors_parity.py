"""cors against the behaviours Starlette 1.10's tests/middleware/test_cors.py checks.

Matched behaviours are tested here or in test_cors.py; each deliberate
difference is pinned with its reason.
"""

from __future__ import annotations

import httpx

from asgikit.middleware.compress import compress
from asgikit.middleware.cors import cors
from asgikit.responses import PlainTextResponse
from asgikit.testing import TestClient
from asgikit.types import Receive, Scope, Send

ORIGIN = "https://example.org"


async def homepage(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("Homepage")(scope, receive, send)


def client(**options: object) -> TestClient:
    return TestClient(cors(homepage, **options))  # type: ignore[arg-type]


def ask(
    c: TestClient, method: str = "GET", headers: str | None = None, **more: str
) -> httpx.Response:
    sent = {"origin": ORIGIN, "access-control-request-method": method, **more}
    if headers is not None:
        sent["access-control-request-headers"] = headers
    return c.options("/", headers=sent)


def vary_of(response: httpx.Response) -> set[str]:
    return {v.strip() for v in response.headers.get("vary", "").split(",") if v.strip()}


def test_allow_all_without_credentials() -> None:
    c = client(
        allow_origins=["*"], allow_headers=["*"], allow_methods=["*"], expose_headers=["X-Status"]
    )
    answer = ask(c, "GET", "X-Example")
    assert (answer.status_code, answer.text) == (200, "OK")
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["access-control-allow-headers"] == "x-example"
    assert "access-control-allow-credentials" not in answer.headers
    # Deliberate difference: a wildcard answer is the same for every origin,
    # so it varies only on what it echoes (Starlette also lists Origin and
    # Access-Control-Request-Private-Network).
    assert vary_of(answer) == {"Access-Control-Request-Method", "Access-Control-Request-Headers"}
    simple = c.get("/", headers={"origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert simple.headers["access-control-expose-headers"] == "X-Status"
    plain = c.get("/")
    assert plain.text == "Homepage"
    assert "access-control-allow-origin" not in plain.headers
    # Deliberate difference: no Vary: Origin on a wildcard's answers (Starlette adds it).
    assert "vary" not in plain.headers


def test_an_options_request_without_origin_reaches_the_app() -> None:
    c = client(allow_origins=[ORIGIN], allow_methods=["*"])
    answer = c.options("/", headers={"access-control-request-method": "GET"})
    assert (answer.status_code, answer.text) == (200, "Homepage")
    assert answer.headers["vary"] == "Origin"


def test_specific_origin_preflight_lists_the_safelisted_and_allowed_headers() -> None:
    c = client(allow_origins=[ORIGIN], allow_headers=["X-Example", "Content-Type"])
    answer = ask(c, "GET", "X-Example, Content-Type")
    assert (answer.status_code, answer.text) == (200, "OK")
    assert answer.headers["access-control-allow-origin"] == ORIGIN
    # Deliberate difference: the names are listed lower-case (they are
    # case-insensitive, RFC 9110 §5.1); Starlette title-cases them.
    assert answer.headers["access-control-allow-headers"] == (
        "accept, accept-language, content-language, content-type, x-example"
    )
    assert "access-control-allow-credentials" not in answer.headers


def test_refused_preflight_names_every_reason_once() -> None:
    c = client(allow_origins=[ORIGIN], allow_headers=["X-Example"])
    sent = {
        "origin": "https://another.org",
        "access-control-request-method": "POST",
        "access-control-request-headers": "X-Nope",
    }
    answer = c.options("/", headers=sent)
    assert (answer.status_code, answer.text) == (400, "Disallowed CORS origin, method, headers")
    assert "access-control-allow-origin" not in answer.headers
    assert ask(c, "GET", "X-Nope-1, X-Nope-2").text == "Disallowed CORS headers"


def test_credentials_with_a_regex_preflight_and_simple_answers() -> None:
    c = client(
        allow_headers=["X-Example", "Content-Type"],
        allow_origin_regex="https://.*",
        allow_credentials=True,
    )
    for headers in ({"origin": ORIGIN}, {"origin": ORIGIN, "cookie": "star_cookie=sugar"}):
        response = c.get("/", headers=headers)
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert response.headers["access-control-allow-credentials"] == "true"
    assert (
        "access-control-allow-origin"
        not in c.get("/", headers={"origin": "http://example.org"}).headers
    )
    answer = c.options(
        "/",
        headers={
            "origin": "https://another.com",
            "access-control-request-method": "GET",
            "access-control-request-headers": "X-Example, content-type",
        },
    )
    assert answer.headers["access-control-allow-origin"] == "https://another.com"
    assert answer.headers["access-control-allow-credentials"] == "true"
    refused = c.options(
        "/", headers={"origin": "http://another.com", "access-control-request-method": "GET"}
    )
    assert (refused.status_code, refused.text) == (400, "Disallowed CORS origin")


def test_any_method_allows_every_standard_method_and_query() -> None:
    c = client(allow_origins=["*"], allow_methods=["*"])
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY"):
        answer = ask(c, method)
        assert answer.status_code == 200, method
        assert method in answer.headers["access-control-allow-methods"]
    # Deliberate difference: any other token is echoed too (Starlette refuses
    # CUSTOM); allow_methods=["*"] means what it says.
    assert ask(c, "CUSTOM").headers["access-control-allow-methods"] == "CUSTOM"


def test_simple_requests_of_every_method_reach_the_app() -> None:
    c = client(allow_origins=["*"], allow_methods=["*"])
    for method in ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"):
        response = c.request(method, "/", headers={"origin": ORIGIN})
        assert response.status_code == 200, method


def test_several_app_vary_fields_keep_every_token() -> None:
    async def varied(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"text/plain"), (b"vary", b"Accept-Encoding")]
        headers.append((b"vary", b"Accept-Language"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"Homepage"})

    response = TestClient(cors(varied, allow_origins=[ORIGIN])).get(
        "/", headers={"origin": ORIGIN}
    )
    assert vary_of(response) == {"Accept-Encoding", "Accept-Language", "Origin"}


def test_an_allowed_origin_does_not_leak_into_the_next_request() -> None:
    c = client(allow_origins=[ORIGIN])
    assert c.get("/", headers={"origin": ORIGIN}).headers["access-control-allow-origin"] == ORIGIN
    other = c.get("/", headers={"origin": "https://other.org"})
    assert "access-control-allow-origin" not in other.headers
    assert other.headers["vary"] == "Origin"
    assert c.get("/", headers={"origin": ORIGIN}).headers["access-control-allow-origin"] == ORIGIN


def test_private_network_header_only_on_a_preflight_that_asks() -> None:
    pna = {"access-control-request-private-network": "true"}
    allowed = client(allow_origins=["*"], allow_methods=["*"], allow_private_network=True)
    assert ask(allowed, **pna).headers["access-control-allow-private-network"] == "true"
    assert "access-control-allow-private-network" not in ask(allowed).headers
    simple = allowed.get("/", headers={"origin": ORIGIN, **pna})
    assert "access-control-allow-private-network" not in simple.headers
    assert simple.headers["access-control-allow-origin"] == "*"
    refused = client(allow_origins=["*"], allow_methods=["*"])
    assert ask(refused).status_code == 200
    answer = ask(refused, **pna)
    assert (answer.status_code, answer.text) == (400, "Disallowed CORS private-network")


def test_vary_origin_survives_compression_inside() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await PlainTextResponse("Homepage", headers={"vary": "Accept-Language"})(
            scope, receive, send
        )

    stacked = cors(compress(app, minimum_size=0), allow_origins=["https://allowed.example"])
    headers = {"origin": "https://allowed.example", "accept-encoding": "gzip"}
    response = TestClient(stacked).get("/", headers=headers)
    assert response.text == "Homepage"
    assert response.headers["content-encoding"] == "gzip"
    assert response.headers["access-control-allow-origin"] == "https://allowed.example"
    assert vary_of(response) == {"Accept-Language", "Accept-Encoding", "Origin"}
