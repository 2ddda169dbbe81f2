"""The shared raw-header edits of the middleware (asgikit/middleware/_http.py)."""

from __future__ import annotations

from asgikit.middleware._http import HeaderEdit, add_vary

ACAO = b"access-control-allow-origin"


def test_header_edit_drops_and_merges_names_in_any_case() -> None:
    edit = HeaderEdit(drop=frozenset({ACAO}), vary=b"Origin")
    headers = [(b"Content-Type", b"text/plain"), (b"Access-Control-Allow-Origin", b"*")]
    headers.append((b"Vary", b"Accept-Encoding"))
    assert edit.apply(headers, [(ACAO, b"https://a.example")]) == [
        (b"Content-Type", b"text/plain"),
        (b"Vary", b"Accept-Encoding, Origin"),
        (ACAO, b"https://a.example"),
    ]


def test_header_edit_leaves_a_listed_or_star_vary_alone_and_copies() -> None:
    edit = HeaderEdit(vary=b"Origin")
    for value in (b"origin", b"*", b"Accept, ORIGIN"):
        headers = [(b"vary", value)]
        edited = edit.apply(headers)
        assert edited == [(b"vary", value)]
        assert edited is not headers
    assert edit.apply([]) == [(b"vary", b"Origin")]


def test_add_vary_matches_whole_tokens_only() -> None:
    headers = [(b"vary", b"X-Origin-Hint")]
    add_vary(headers, b"Origin")
    assert headers == [(b"vary", b"X-Origin-Hint, Origin")]


def test_header_edit_appends_its_own_pairs_then_vary_when_nothing_needs_editing() -> None:
    edit = HeaderEdit(drop=frozenset({ACAO}), vary=b"Origin", add=[(ACAO, b"https://a.example")])
    headers = [(b"content-length", b"5"), (b"content-type", b"text/plain")]
    expected = [*headers, (ACAO, b"https://a.example"), (b"vary", b"Origin")]
    assert edit.apply(headers) == expected
    # Any iterable of pairs, read once.
    assert edit.apply(iter(headers)) == expected
    assert edit.apply(tuple(headers)) == expected
    # Pairs given to apply come after the edit's own, before a new Vary.
    extra = (b"x-extra", b"1")
    assert edit.apply(headers, [extra]) == [*expected[:3], extra, expected[3]]
    assert headers == [(b"content-length", b"5"), (b"content-type", b"text/plain")]


def test_header_edit_message_copies_the_start_and_keeps_every_other_key() -> None:
    edit = HeaderEdit(drop=frozenset({ACAO}), vary=b"Origin", add=[(ACAO, b"https://a.example")])
    for headers in ([(b"vary", b"Cookie"), (ACAO, b"*")], [(b"x-app", b"1")], ((b"x-app", b"1"),)):
        start = {
            "type": "http.response.start",
            "status": 200,
            "headers": headers,
            "trailers": True,
        }
        edited = edit.message(start)
        assert edited["headers"] == edit.apply(headers)
        assert {k: v for k, v in edited.items() if k != "headers"} == {
            "type": "http.response.start",
            "status": 200,
            "trailers": True,
        }
        assert start["headers"] is headers
    assert edit.message({"type": "http.response.start", "status": 204})["headers"] == [
        (ACAO, b"https://a.example"),
        (b"vary", b"Origin"),
    ]
