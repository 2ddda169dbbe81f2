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
