"""Attacks on static_files: encoded traversal, hidden names, devices, ranges, HEAD."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from asgikit.staticfiles import static_files
from tests.conftest import SendRecorder, make_scope, run_app

pytestmark = pytest.mark.anyio

SECRET = b"TOP-SECRET"
BODY = b"0123456789" * 10


@pytest.fixture
def served(tmp_path: Path) -> Path:
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "static"
    (root / "sub").mkdir(parents=True)
    (root / ".well-known").mkdir()
    (root / ".git").mkdir()
    (root / "a.txt").write_bytes(BODY)
    (root / "sub" / "b.txt").write_bytes(BODY)
    (root / ".env").write_bytes(SECRET)
    (root / ".git" / "config").write_bytes(SECRET)
    (root / ".well-known" / "security.txt").write_bytes(b"contact")
    os.symlink(tmp_path / "secret.txt", root / "out.txt")
    return root


async def get(
    root: Path, path: str, *headers: tuple[bytes, bytes], method: str = "GET"
) -> SendRecorder:
    scope = make_scope(method, headers=list(headers))
    scope["path"] = path  # as a server decoded it, lone surrogates and all
    scope["raw_path"] = b"/raw"
    return await run_app(static_files(root), scope)


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/sub/../../secret.txt",
        "/%2e%2e/secret.txt",  # decoded once by the server; never twice here
        "/%252e%252e/secret.txt",
        "/..%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/sub\\..\\..\\secret.txt",
        "/\u00c0\u00ae\u00c0\u00ae/secret.txt",  # overlong UTF-8 "." as a server may pass it
        "/\udcc0\udcae\udcc0\udcae/secret.txt",
        "/a.txt\x00.png",
        "/a.txt%00",
        "//etc/passwd",
        "/sub//b.txt",
        "/./a.txt",
        "/sub/./b.txt",
        "/a.txt//",
        "/.env",
        "/.ENV",
        "/.git/config",
        "/sub/../.env",
        "/.well-known/../.env",
        "/.well-known/../.git/config",
        "/out.txt",  # a symlink that leaves the root
        "/CON",
        "/a.txt.",
        "/a.txt ",
        "/" + "a" * 300,
        "/" + "a/" * 2000 + "b",
        "/\udcff",
        "/sub/\ud800.txt",
        "relative/a.txt",
        "",
    ],
)
async def test_paths_that_never_reach_a_file_outside_or_hidden(served: Path, path: str) -> None:
    sent = await get(served, path)
    assert sent.status == 404, sent.body
    assert SECRET not in sent.body


@pytest.mark.parametrize(
    ("link", "target"),
    [
        ("env.txt", ".env"),  # a symlink inside the root naming a dotfile
        ("cfg", ".git/config"),  # one into a hidden directory
        ("gitdir", ".git"),  # a link to the hidden directory itself
    ],
)
async def test_a_symlink_inside_the_root_never_reveals_a_hidden_name(
    served: Path, link: str, target: str
) -> None:
    os.symlink(served / target, served / link)
    path = "/" + link + ("/config" if link == "gitdir" else "")
    sent = await get(served, path)
    assert sent.status == 404, sent.body
    assert SECRET not in sent.body
    # With allow_dotfiles=True the link is served like its target.
    scope = make_scope("GET")
    scope["path"] = path
    allowed = await run_app(static_files(served, allow_dotfiles=True), scope)
    assert (allowed.status, allowed.body) == (200, SECRET)


async def test_a_symlink_inside_the_root_to_a_plain_file_is_served(served: Path) -> None:
    os.symlink(served / "sub" / "b.txt", served / "alias.txt")
    sent = await get(served, "/alias.txt")
    assert (sent.status, sent.body) == (200, BODY)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/a.txt", BODY),
        ("/a.txt/", BODY),
        ("/sub/b.txt", BODY),
        ("/.well-known/security.txt", b"contact"),
    ],
)
async def test_what_is_served(served: Path, path: str, body: bytes) -> None:
    sent = await get(served, path)
    assert (sent.status, sent.body) == (200, body)


@pytest.mark.parametrize(
    ("value", "status", "length"),
    [
        (b"bytes=0-0," * 5_000, 200, 100),  # too many ranges: the whole file, once
        (b"bytes=" + b"0-1," * 200 + b"0-1", 206, 2),  # overlapping ranges coalesce
        (b"bytes=0-" + b"9" * 5_000, 206, 100),  # a huge number is "to the end"
        (b"bytes=-0", 416, 0),
        (b"bytes=100-", 416, 0),
        (b"bytes=1-0", 200, 100),
        (b"bytes = 0-1", 200, 100),
        (b"items=0-1", 200, 100),
        (b"bytes=-" + b"9" * 5_000, 206, 100),
    ],
)
async def test_range_abuse_is_bounded(
    served: Path, value: bytes, status: int, length: int
) -> None:
    sent = await get(served, "/a.txt", (b"range", value))
    assert (sent.status, len(sent.body)) == (status, length)


async def test_an_if_range_that_does_not_match_gets_the_whole_file(served: Path) -> None:
    for validator in (b"garbage", b'W/"weak"', b'"other"', b"Thu, 01 Jan 1970 00:00:00 GMT"):
        sent = await get(served, "/a.txt", (b"range", b"bytes=0-1"), (b"if-range", validator))
        assert (sent.status, sent.body) == (200, BODY), validator


@pytest.mark.parametrize("path", ["/a.txt", "/.env", "/../secret.txt", "/missing"])
async def test_head_answers_like_get_without_a_body(served: Path, path: str) -> None:
    got = await get(served, path)
    head = await get(served, path, method="HEAD")
    assert head.status == got.status
    assert head.body == b""
    assert head.header(b"content-length") == got.header(b"content-length")


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "get", "TRACE", "OPTIONS"])
async def test_other_methods_are_405(served: Path, method: str) -> None:
    sent = await get(served, "/a.txt", method=method)
    assert sent.status == 405
    assert SECRET not in sent.body


@pytest.mark.parametrize("walk", [True, False], ids=["openat-walk", "resolve-and-compare"])
async def test_a_chain_of_symlinks_ending_at_a_dotfile_is_hidden_on_both_open_paths(
    served: Path, walk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # link.txt -> hop.txt -> .env: each link stays inside the root, the name
    # it ends at is hidden; also where openat is missing (the fallback).
    from asgikit import _safeopen

    monkeypatch.setattr(_safeopen, "WALK", walk)
    os.symlink(served / ".env", served / "hop.txt")
    os.symlink(served / "hop.txt", served / "link.txt")
    sent = await get(served, "/link.txt")
    assert sent.status == 404, sent.body
    assert SECRET not in sent.body
    plain = await get(served, "/a.txt")
    assert (plain.status, plain.body) == (200, BODY)
