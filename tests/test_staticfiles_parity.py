"""static_files against the behaviours Starlette 1.10's tests/test_staticfiles.py checks.

Matched behaviours are tested here (or in test_staticfiles.py where noted in
PARITY.md); deliberate differences are pinned with the reason in the test.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest

import asgikit._sendfile
import asgikit.staticfiles
from asgikit.staticfiles import static_files
from asgikit.testing import TestClient
from tests.conftest import make_scope, run_app

PAGE = b"<file content>"


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "example.txt").write_bytes(PAGE)
    return tmp_path


def client(app: Any, **options: Any) -> TestClient:
    return TestClient(app, follow_redirects=False, **options)


async def test_post_is_405_with_allow_and_a_plain_body(files: Path) -> None:
    async with client(static_files(files)) as http:
        response = await http.post("/example.txt")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"
    assert response.text == "Method Not Allowed"


@pytest.mark.parametrize("path", ["/", "/404.txt", "/foo/example.txt", "/example.txt/foo"])
async def test_directories_missing_names_and_files_used_as_directories_are_404(
    files: Path, path: str
) -> None:
    async with client(static_files(files)) as http:
        response = await http.get(path)
    assert (response.status_code, response.text) == (404, "Not Found")


async def test_a_directory_missing_at_request_time_is_404_not_an_error(tmp_path: Path) -> None:
    # Deliberate difference: Starlette raises RuntimeError per request.
    # check_dir=False means "it may appear later"; until then nothing is there.
    app = static_files(tmp_path / "later", check_dir=False)
    assert (await run_app(app, make_scope(path="/example.txt"))).status == 404
    (tmp_path / "later").mkdir()
    (tmp_path / "later" / "example.txt").write_bytes(PAGE)
    assert (await run_app(app, make_scope(path="/example.txt"))).body == PAGE


async def test_a_file_given_as_the_directory_is_refused_when_built(files: Path) -> None:
    with pytest.raises(RuntimeError, match="is not a directory"):
        static_files(files / "example.txt")
    # Unchecked (deliberate difference: Starlette raises per request): 404.
    app = static_files(files / "example.txt", check_dir=False)
    assert (await run_app(app, make_scope(path="/example.txt"))).status == 404


async def test_head_never_reads_the_file(files: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_read(*args: Any) -> Any:
        raise AssertionError("HEAD read the file")

    monkeypatch.setattr(asgikit._sendfile, "_read_into", no_read)
    monkeypatch.setattr(asgikit._sendfile, "_read_pieces", no_read)
    (files / "big.bin").write_bytes(b"x" * 300_000)
    async with client(static_files(files, chunk_size=1024)) as http:
        small = await http.head("/example.txt")
        big = await http.head("/big.bin")
    assert (small.status_code, small.content, small.headers["content-length"]) == (200, b"", "14")
    assert (big.status_code, big.headers["content-length"]) == (200, "300000")


async def test_if_none_match_and_if_modified_since(files: Path) -> None:
    page = files / "example.txt"
    stamp = time.mktime(time.strptime("2013-10-10 23:40:00", "%Y-%m-%d %H:%M:%S"))
    os.utime(page, (stamp, stamp))
    async with client(static_files(files)) as http:
        first = await http.get("/example.txt")
        etag, last_modified = first.headers["etag"], first.headers["last-modified"]
        answers = {
            "match": await http.get("/example.txt", headers={"if-none-match": etag}),
            "weak list": await http.get(
                "/example.txt", headers={"if-none-match": f'W/{etag}, "123"'}
            ),
            "tab list": await http.get(
                "/example.txt", headers={"if-none-match": f'"123",\tW/{etag}'}
            ),
            "star": await http.get("/example.txt", headers={"if-none-match": "*"}),
            "star head": await http.head("/example.txt", headers={"if-none-match": "*"}),
            "later": await http.get(
                "/example.txt", headers={"if-modified-since": "Fri, 11 Oct 2013 15:30:19 GMT"}
            ),
        }
        mismatch = await http.get("/example.txt", headers={"if-none-match": '"123"'})
        # RFC 9110 §13.2.2: If-None-Match wins over If-Modified-Since.
        both = await http.get(
            "/example.txt",
            headers={"if-none-match": '"123"', "if-modified-since": last_modified},
        )
        earlier = await http.get(
            "/example.txt", headers={"if-modified-since": "Mon, 20 Feb 2012 15:30:19 GMT"}
        )
    for name, answer in answers.items():
        assert (answer.status_code, answer.content) == (304, b""), name
    for answer in (mismatch, both, earlier):
        assert (answer.status_code, answer.content) == (200, PAGE)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "index.html").write_bytes(b"<h1>Hello</h1>")
    (tmp_path / "bare").mkdir()
    (tmp_path / "hello.html").write_bytes(b"<h1>Hi</h1>")
    return tmp_path


async def test_html_mode_indexes_redirects_and_the_404_page(site: Path) -> None:
    (site / "404.html").write_bytes(b"<h1>Custom not found page</h1>")
    async with client(static_files(site, html=True)) as http:
        index = await http.get("/dir/")
        redirect = await http.get("/dir")
        direct = await http.get("/dir/index.html")
        missing = await http.get("/missing")
        no_index = await http.get("/bare/")
        no_index_no_slash = await http.get("/bare")
    assert (index.status_code, index.text) == (200, "<h1>Hello</h1>")
    assert (redirect.status_code, redirect.headers["location"]) == (307, "/dir/")
    assert direct.text == "<h1>Hello</h1>"
    # A directory without an index is not redirected first: a 404 at once.
    for response in (missing, no_index, no_index_no_slash):
        assert (response.status_code, response.text) == (404, "<h1>Custom not found page</h1>")


async def test_html_mode_without_a_404_page_or_an_index(site: Path) -> None:
    async with client(static_files(site, html=True)) as http:
        missing = await http.get("/missing")
        root = await http.get("/")
        page = await http.get("/hello.html")
    assert (missing.status_code, missing.text) == (404, "Not Found")
    assert root.status_code == 404
    assert (page.status_code, page.text) == (200, "<h1>Hi</h1>")


async def test_a_deleted_file_is_404_not_304_in_html_mode(site: Path) -> None:
    (site / "404.html").write_bytes(b"<p>404 file</p>")
    app = static_files(site, html=True)
    async with client(app) as http:
        exists = await http.get("/hello.html")
        since = {"if-modified-since": exists.headers["last-modified"]}
        cached = await http.get("/hello.html", headers=since)
        (site / "hello.html").unlink()
        deleted = await http.get("/hello.html", headers=since)
    assert cached.status_code == 304
    assert (deleted.status_code, deleted.text) == (404, "<p>404 file</p>")


@pytest.mark.parametrize(
    "error", [TimeoutError(), OSError(errno.EIO, "I/O error"), OSError(errno.EMFILE, "too many")]
)
async def test_an_unexpected_os_error_is_an_error_not_a_404(
    files: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    # A 404 here would hide a failing disk or a descriptor leak, and be cached.
    def fail(root: str, names: Any, hidden: Any = None) -> Any:
        raise error

    monkeypatch.setattr(asgikit.staticfiles, "open_inside", fail)
    with pytest.raises(type(error)):
        await run_app(static_files(files), make_scope(path="/example.txt"))


async def test_follow_symlink_follows_files_and_directories_outside(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "page.html").write_bytes(b"<h1>Hello</h1>")
    statics = tmp_path / "statics"
    statics.mkdir()
    os.symlink(source / "page.html", statics / "index.html")
    os.symlink(source, statics / "html")
    app = static_files(statics, follow_symlink=True)
    for path in ("/index.html", "/html/page.html"):
        sent = await run_app(app, make_scope(path=path))
        assert (sent.status, sent.body) == (200, b"<h1>Hello</h1>"), path
    strict = static_files(statics)
    assert (await run_app(strict, make_scope(path="/html/page.html"))).status == 404
    traversal = await run_app(app, make_scope(path="/../source/page.html"))
    assert traversal.status == 404


@pytest.mark.parametrize("follow_symlink", [False, True])
async def test_the_directory_itself_may_be_a_symlink_or_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, follow_symlink: bool
) -> None:
    statics = tmp_path / "statics"
    statics.mkdir()
    (statics / "index.html").write_bytes(b"<h1>Hello</h1>")
    os.symlink(statics, tmp_path / "statics_symlink")
    monkeypatch.chdir(tmp_path)
    for directory in (tmp_path / "statics_symlink", "statics", "statics_symlink"):
        app = static_files(directory, follow_symlink=follow_symlink)
        sent = await run_app(app, make_scope(path="/index.html"))
        assert (sent.status, sent.body) == (200, b"<h1>Hello</h1>"), directory


def test_packages_are_not_an_option(tmp_path: Path) -> None:
    # Deliberate difference: no packages=; pass the directory, e.g.
    # importlib.resources.files("mypkg") / "statics" (one way to name it).
    with pytest.raises(TypeError):
        static_files(tmp_path, packages=["tests"])  # type: ignore[call-arg]


async def test_head_through_function_middleware_keeps_the_length(files: Path) -> None:
    from asgikit.middleware.http_middleware import http_middleware
    from asgikit.routing import mount, router

    async def does_nothing(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    (files / "hundred.txt").write_bytes(b"x" * 100)
    app = http_middleware(does_nothing, router(mount("/static", static_files(files))))
    async with client(app) as http:
        response = await http.head("/static/hundred.txt")
    assert (response.status_code, response.headers["content-length"]) == (200, "100")
