"""static_files: lookup, html mode, precompressed siblings, caching, hostile paths, servers."""

from __future__ import annotations

import gzip
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import brotli
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asgikit import _fileio, staticfiles
from asgikit.exceptions import HTTPException
from asgikit.staticfiles import accepted_encodings, static_files
from asgikit.testing import TestClient
from asgikit.types import ASGIApp
from tests.conftest import SendRecorder, body_receive, make_scope, run_app
from tests.servers.live import serve

SECRET = b"TOP-SECRET-MARKER"
BIG = bytes(range(251)) * 1000  # ~245 KiB: several chunks, not a round number
CSS = b"body { color: red; }\n" * 20


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/static`` is served; everything else under ``root`` is secret."""
    root = tmp_path_factory.mktemp("site")
    (root / "secret.txt").write_bytes(SECRET)
    (root / "static-private").mkdir()
    (root / "static-private" / "secret.txt").write_bytes(SECRET)
    static = root / "static"
    (static / "sub" / "deeper").mkdir(parents=True)
    (static / "empty-dir").mkdir()
    (static / "hello.txt").write_bytes(b"hello")
    (static / "big.bin").write_bytes(BIG)
    (static / "index.html").write_bytes(b"<h1>home</h1>")
    (static / "404.html").write_bytes(b"<h1>not here</h1>")
    (static / "sub" / "index.html").write_bytes(b"<h1>sub</h1>")
    (static / "style.css").write_bytes(CSS)
    (static / "style.css.gz").write_bytes(gzip.compress(CSS))
    (static / "style.css.br").write_bytes(brotli.compress(CSS))
    (static / "app.js").write_bytes(b"js")
    (static / "app.js.gz").write_bytes(gzip.compress(b"js"))
    (static / "sp ace & \u00e9.txt").write_bytes(b"unicode")
    os.symlink(root / "secret.txt", static / "link-out.txt")
    os.symlink(root / "static-private", static / "dir-out")
    os.symlink(static / "hello.txt", static / "link-in.txt")
    locked = static / "locked.txt"
    locked.write_bytes(b"locked")
    locked.chmod(0)
    os.mkfifo(static / "fifo")
    return static


def app_for(site: Path, **options: Any) -> ASGIApp:
    return static_files(site, **options)


def client(app: ASGIApp) -> TestClient:
    return TestClient(app, extensions={}, follow_redirects=False)


async def test_files_are_served_with_validators(site: Path) -> None:
    async with client(app_for(site)) as http:
        response = await http.get("/hello.txt")
        big = await http.get("/big.bin")
        spaced = await http.get("/sp%20ace%20%26%20%C3%A9.txt")
    assert (response.status_code, response.content) == (200, b"hello")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == "5"
    assert {"etag", "last-modified", "accept-ranges"} <= set(response.headers)
    assert big.content == BIG
    assert spaced.content == b"unicode"


async def test_conditionals_and_ranges_work_as_in_file_response(site: Path) -> None:
    async with client(app_for(site)) as http:
        etag = (await http.get("/big.bin")).headers["etag"]
        not_modified = await http.get("/big.bin", headers={"If-None-Match": etag})
        failed = await http.get("/big.bin", headers={"If-Match": '"x"'})
        part = await http.get("/big.bin", headers={"Range": "bytes=1000-1999"})
        unsatisfiable = await http.get("/big.bin", headers={"Range": "bytes=999999-"})
    assert not_modified.status_code == 304
    assert failed.status_code == 412
    assert (part.status_code, part.content) == (206, BIG[1000:2000])
    assert unsatisfiable.headers["content-range"] == f"bytes */{len(BIG)}"


async def test_only_get_and_head_are_allowed(site: Path) -> None:
    async with client(app_for(site)) as http:
        head = await http.head("/hello.txt")
        post = await http.post("/hello.txt")
        delete = await http.delete("/missing")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "5")
    for response in (post, delete):
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, HEAD"


async def test_missing_files_directories_and_specials_are_404(site: Path) -> None:
    async with client(app_for(site)) as http:
        for path in ("/missing.txt", "/sub", "/sub/", "/", "/fifo", "/fifo/", "/empty-dir/"):
            response = await http.get(path)
            assert response.status_code == 404, path
            assert b"not here" not in response.content


async def test_an_unreadable_file_is_403_not_401(site: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files whatever their mode")
    async with client(app_for(site)) as http:
        assert (await http.get("/locked.txt")).status_code == 403


async def test_a_permission_error_on_open_is_403(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asgikit.staticfiles

    def refuse(root: str, names: Any, hidden: Any = None) -> Any:
        raise PermissionError(root)

    monkeypatch.setattr(asgikit.staticfiles, "open_inside", refuse)
    sent = await run_app(app_for(site), make_scope(path="/hello.txt"))
    assert sent.status == 403


async def test_html_mode_serves_index_redirects_and_404_page(site: Path) -> None:
    app = app_for(site, html=True)
    async with client(app) as http:
        home = await http.get("/")
        sub = await http.get("/sub/")
        redirect = await http.get("/sub?x=1")
        missing = await http.get("/nope")
        empty = await http.get("/empty-dir/")
    assert home.content == b"<h1>home</h1>"
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    assert sub.content == b"<h1>sub</h1>"
    assert (redirect.status_code, redirect.headers["location"]) == (307, "/sub/?x=1")
    assert (missing.status_code, missing.content) == (404, b"<h1>not here</h1>")
    assert empty.status_code == 404
    async with TestClient(app, root_path="/static", follow_redirects=False) as http:
        mounted = await http.get("/sub")
    assert mounted.headers["location"] == "/static/sub/"
    mounted_root = await run_app(app, make_scope(path="/static", root_path="/static"))
    assert mounted_root.header(b"location") == [b"/static/"]


async def test_it_works_mounted_below_a_root_path(site: Path) -> None:
    scope = make_scope(path="/assets/hello.txt", root_path="/assets")
    sent = await run_app(app_for(site), scope)
    assert (sent.status, sent.body) == (200, b"hello")


async def test_fallback_serves_the_spa_page_for_unknown_paths(site: Path) -> None:
    async with client(app_for(site, fallback="index.html", max_age=60)) as http:
        route = await http.get("/app/users/42")
        real = await http.get("/hello.txt")
    assert (route.status_code, route.content) == (200, b"<h1>home</h1>")
    assert "cache-control" not in route.headers
    assert real.content == b"hello"


def test_fallback_must_name_a_file_inside() -> None:
    with pytest.raises(ValueError, match="fallback"):
        static_files(".", fallback="../x.html")


async def test_precompressed_siblings_follow_accept_encoding(site: Path) -> None:
    async with client(app_for(site)) as http:
        gz = await http.get("/style.css", headers={"Accept-Encoding": "gzip"})
        br = await http.get("/style.css", headers={"Accept-Encoding": "gzip, br"})
        prefer_gz = await http.get("/style.css", headers={"Accept-Encoding": "br;q=0.5, gzip"})
        refused = await http.get("/style.css", headers={"Accept-Encoding": "br;q=0, gzip;q=0"})
        plain = await http.get("/style.css", headers={"Accept-Encoding": "identity"})
        star = await http.get("/app.js", headers={"Accept-Encoding": "*"})
        no_sibling = await http.get("/hello.txt", headers={"Accept-Encoding": "gzip, br"})
    assert gz.headers["content-encoding"] == "gzip"
    assert gz.content == CSS  # httpx decodes gzip
    assert gz.headers["content-type"] == "text/css; charset=utf-8"
    assert br.headers["content-encoding"] == "br"
    assert br.content == CSS
    assert prefer_gz.headers["content-encoding"] == "gzip"
    for response in (refused, plain):
        assert "content-encoding" not in response.headers
        assert response.content == CSS
    assert star.headers["content-encoding"] == "gzip"
    etags = {r.headers["etag"] for r in (gz, br, plain)}
    assert len(etags) == 3
    for response in (gz, br, refused, plain, star):
        assert response.headers["vary"] == "Accept-Encoding"
    assert "vary" not in no_sibling.headers


async def test_precompressed_can_be_turned_off(site: Path) -> None:
    async with client(app_for(site, precompressed=False)) as http:
        response = await http.get("/style.css", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gzip, deflate, br, zstd", ("br", "gzip")),
        ("gzip", ("gzip",)),
        ("x-gzip", ("gzip",)),
        ("GZIP;Q=0.9, br;q=0.8", ("gzip", "br")),
        ("br;q=0, *", ("gzip",)),
        ("*;q=0", ()),
        ("gzip;q=1.5", ()),
        ("gzip;q=abc, br", ("br",)),
        ("gzip;q=0.0001", ()),
        ("identity", ()),
        ("", ()),
    ],
)
def test_accept_encoding_q_values(value: str, expected: tuple[str, ...]) -> None:
    assert accepted_encodings(value) == expected


async def test_cache_control_max_age_and_immutable(site: Path) -> None:
    hashed = app_for(site, max_age=3600, immutable=lambda path: path.endswith(".css"))
    async with client(hashed) as http:
        css = await http.get("/style.css")
        txt = await http.get("/hello.txt")
        missing = await http.get("/missing")
        not_modified = await http.get("/style.css", headers={"If-None-Match": css.headers["etag"]})
    assert css.headers["cache-control"] == "public, max-age=3600, immutable"
    assert txt.headers["cache-control"] == "public, max-age=3600"
    assert "cache-control" not in missing.headers
    assert not_modified.headers["cache-control"] == "public, max-age=3600, immutable"


def test_a_missing_directory_is_refused_unless_check_dir_is_off(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="does not exist"):
        static_files(tmp_path / "nope")
    static_files(tmp_path / "nope", check_dir=False)


async def test_raise_http_exceptions_hands_404_and_405_to_an_outer_layer(site: Path) -> None:
    app = app_for(site)
    with pytest.raises(HTTPException) as info:
        await run_app(app, make_scope(path="/missing", **{"asgikit.raise_http_exceptions": True}))
    assert info.value.status_code == 404
    with pytest.raises(HTTPException) as info:
        await run_app(app, make_scope("PUT", **{"asgikit.raise_http_exceptions": True}))
    assert info.value.status_code == 405


async def test_lifespan_and_websocket_scopes_are_declined(site: Path) -> None:
    app = app_for(site)
    await app({"type": "lifespan"}, _never, _no_send)  # returns at once
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    async def send(message: Any) -> None:
        sent.append(message)

    await app({"type": "websocket", "path": "/"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1000}]


async def _never() -> Any:
    raise AssertionError("lifespan must not be read")


async def _no_send(message: Any) -> None:
    raise AssertionError("nothing must be sent")


# -- hostile paths ----------------------------------------------------------------

HOSTILE = [
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e/secret.txt",
    "/..\\secret.txt",
    "//secret.txt",
    "/" + "/".join([".."] * 10) + "/etc/passwd",
    "/../static-private/secret.txt",
    "/link-out.txt",
    "/dir-out/secret.txt",
    "/hello.txt\0",
    "/C:/Windows/win.ini",
    "/\\\\server\\share",
    "/" + "x" * 5000,
]


@pytest.mark.parametrize("path", HOSTILE)
async def test_hostile_paths_answer_404_and_never_the_secret(site: Path, path: str) -> None:
    # Straight into the app: an HTTP client would normalise the path first.
    sent = await run_app(app_for(site, html=True), make_scope(path=path))
    assert sent.status == 404
    assert SECRET not in sent.body


async def test_symlinks_inside_are_served_and_outside_only_when_followed(site: Path) -> None:
    strict = await run_app(app_for(site), make_scope(path="/link-in.txt"))
    assert strict.body == b"hello"
    follow = app_for(site, follow_symlink=True)
    assert (await run_app(follow, make_scope(path="/link-out.txt"))).body == SECRET
    assert (await run_app(follow, make_scope(path="/../secret.txt"))).status == 404


_segment = st.sampled_from(
    [
        "..",
        ".",
        "",
        "sub",
        "hello.txt",
        "link-out.txt",
        "dir-out",
        "secret.txt",
        "%2e%2e",
        "\\..",
        "static-private",
        "index.html",
        "\0",
        "C:",
        "fifo",
        "locked.txt",
    ]
)
_paths = st.one_of(
    st.lists(_segment, max_size=6).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=30).map(lambda text: "/" + text),
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(path=_paths, html=st.booleans())
async def test_no_path_gives_500_or_reads_outside(site: Path, path: str, html: bool) -> None:
    sent = await run_app(app_for(site, html=html), make_scope(path=path))
    assert sent.status in (200, 307, 403, 404)
    assert SECRET not in sent.body


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    header=st.one_of(
        st.text(max_size=40),
        st.lists(
            st.tuples(st.integers(0, 300_000) | st.none(), st.integers(0, 300_000) | st.none()),
            min_size=1,
            max_size=5,
        ).map(
            lambda specs: (
                "bytes="
                + ",".join(f"{'' if a is None else a}-{'' if b is None else b}" for a, b in specs)
            )
        ),
    )
)
async def test_every_206_body_is_the_slice_it_claims(site: Path, header: str) -> None:
    try:
        raw = header.encode("latin-1")
    except UnicodeEncodeError:
        raw = header.encode("utf-8")
    sent = await run_app(app_for(site), make_scope(path="/big.bin", headers=[(b"range", raw)]))
    assert sent.status in (200, 206, 416)
    if sent.status == 200:
        assert sent.body == BIG
    elif sent.status == 416:
        assert sent.header(b"content-range") == [f"bytes */{len(BIG)}".encode()]
    else:
        assert sent.header(b"content-length") == [str(len(sent.body)).encode()]
        for first, last, part in _parts(sent.header(b"content-type")[0], sent.header, sent.body):
            assert part == BIG[first : last + 1]


def _parts(content_type: bytes, header: Any, body: bytes) -> Iterator[tuple[int, int, bytes]]:
    if not content_type.startswith(b"multipart/byteranges"):
        first, last = _content_range(header(b"content-range")[0])
        yield first, last, body
        return
    boundary = content_type.split(b"boundary=")[1]
    chunks = body.split(b"--" + boundary)
    assert chunks[0] == b""
    assert chunks[-1] == b"--\r\n"
    for chunk in chunks[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        lines = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
        first, last = _content_range(lines[b"content-range"])
        assert data.endswith(b"\r\n")
        yield first, last, data[:-2]


def _content_range(value: bytes) -> tuple[int, int]:
    unit, _, rest = value.decode().partition(" ")
    span, _, size = rest.partition("/")
    first, _, last = span.partition("-")
    assert unit == "bytes"
    assert size == str(len(BIG))
    return int(first), int(last)


# -- real servers: uvicorn with httpx and curl ----------------------------------------


def test_static_files_under_uvicorn_with_httpx(site: Path) -> None:
    with serve(app_for(site, html=True)) as base, httpx.Client(base_url=base) as http:
        home = http.get("/")
        big = http.get("/big.bin")
        part = http.get("/big.bin", headers={"Range": "bytes=-100"})
        redirect = http.get("/sub", follow_redirects=False)
        missing = http.get("/missing")
        encoded = http.get("/%2e%2e/secret.txt")
    assert home.content == b"<h1>home</h1>"
    assert big.content == BIG
    assert (part.status_code, part.content) == (206, BIG[-100:])
    assert redirect.headers["location"] == "/sub/"
    assert (missing.status_code, missing.content) == (404, b"<h1>not here</h1>")
    assert encoded.status_code == 404
    assert SECRET not in encoded.content


@pytest.fixture(scope="module")
def curl() -> str:
    path = shutil.which("curl")
    if path is None:
        pytest.skip("curl is not installed (Debian package: curl)")
    return path


def test_curl_resumes_a_download_with_c_dash(site: Path, curl: str, tmp_path: Path) -> None:
    out = tmp_path / "big.bin"
    out.write_bytes(BIG[:100_000])  # an interrupted earlier download
    with serve(app_for(site)) as base:
        result = subprocess.run(
            [curl, "-sS", "-f", "-C", "-", "-o", str(out), "-D", "-", base + "/big.bin"],
            capture_output=True,
            check=True,
            timeout=30,
        )
        raw = subprocess.run(
            [
                curl,
                "-sS",
                "--path-as-is",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                base + "/../secret.txt",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        )
    assert b"HTTP/1.1 206" in result.stdout
    assert f"content-range: bytes 100000-{len(BIG) - 1}/{len(BIG)}".encode() in result.stdout
    assert out.read_bytes() == BIG
    assert raw.stdout == b"404"


def test_curl_conditional_and_range_requests(site: Path, curl: str) -> None:
    with serve(app_for(site)) as base:
        head = subprocess.run(
            [curl, "-sS", "-I", base + "/hello.txt"], capture_output=True, check=True, timeout=30
        ).stdout.decode()
        etag = next(
            line.split(": ", 1)[1].strip()
            for line in head.splitlines()
            if line.lower().startswith("etag:")
        )
        cached = subprocess.run(
            [
                curl,
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                f"If-None-Match: {etag}",
                base + "/hello.txt",
            ],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
        ranged = subprocess.run(
            [curl, "-sS", "-r", "1-3", base + "/hello.txt"],
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout
    assert "accept-ranges: bytes" in head.lower()
    assert cached == b"304"
    assert ranged == b"ell"


async def test_directory_redirect_keeps_raw_query_bytes(site: Path) -> None:
    app = static_files(site, html=True)
    answer = await run_app(app, make_scope(path="/sub", query_string=b"q=\xe9&x=%41"))
    assert answer.status == 307
    assert answer.header(b"location") == [b"/sub/?q=%E9&x=%41"]


# -- trailing slashes, and mounted inside Litestar ------------------------------------


async def test_a_file_asked_for_with_a_trailing_slash_is_served(site: Path) -> None:
    # Starlette's StaticFiles does the same, and Litestar adds the slash itself.
    for app in (app_for(site), app_for(site, html=True)):
        sent = await run_app(app, make_scope(path="/hello.txt/"))
        assert (sent.status, sent.body) == (200, b"hello")
    assert (await run_app(app_for(site), make_scope(path="/hello.txt//"))).status == 404
    assert (await run_app(app_for(site), make_scope(path="/fifo/"))).status == 404


def test_static_files_mounted_in_litestar_serves_files_and_indexes(site: Path) -> None:
    from litestar import Litestar
    from litestar.handlers import asgi
    from litestar.testing import TestClient as LitestarClient

    files = app_for(site, html=True)

    @asgi("/static", is_mount=True, copy_scope=True)
    async def mounted(scope: Any, receive: Any, send: Any) -> None:
        await files(scope, receive, send)

    with LitestarClient(Litestar([mounted])) as http:
        css = http.get("/static/style.css", headers={"accept-encoding": "identity"})
        sub = http.get("/static/sub/")
        head = http.head("/static/hello.txt")
        missing = http.get("/static/missing.txt")
        outside = http.get("/static/link-out.txt")
    assert (css.status_code, css.content) == (200, CSS)
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    assert sub.text == "<h1>sub</h1>"
    assert (head.status_code, head.headers["content-length"]) == (200, "5")
    assert (missing.status_code, missing.content) == (404, b"<h1>not here</h1>")
    assert outside.status_code == 404
    assert SECRET not in outside.content


# -- worker-thread hops ------------------------------------------------------------


def count_thread_hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the name of every function a request runs in a worker thread (and where)."""
    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync
    submit = _fileio._pool.submit

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append("anyio:" + func.__name__)
        return await run_sync(func, *args, **kwargs)

    def counting_submit(loop: Any, future: Any, release: Any, func: Any, args: Any) -> None:
        hops.append("pool:" + func.__name__)
        submit(loop, future, release, func, args)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    monkeypatch.setattr(_fileio._pool, "submit", counting_submit)
    return hops


async def test_a_small_file_takes_one_worker_thread_hop(
    site: Path, monkeypatch: pytest.MonkeyPatch, anyio_backend: str
) -> None:
    hops = count_thread_hops(monkeypatch)
    sent = await run_app(static_files(site), make_scope(path="/style.css"))
    assert sent.body == CSS
    kind = "pool" if anyio_backend == "asyncio" else "anyio"
    assert hops == [kind + ":_find"]


async def test_a_large_file_takes_one_worker_thread_hop_per_chunk(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_fileio, "_SPARE", {})
    hops = count_thread_hops(monkeypatch)
    app = static_files(site, chunk_size=100_000)
    cold = await run_app(app, make_scope(path="/big.bin"))
    assert cold.body == BIG
    assert len(hops) == 4, hops  # no buffer spare yet: the lookup reads nothing
    hops.clear()
    sent = await run_app(app, make_scope(path="/big.bin"))
    assert sent.body == BIG
    assert len(hops) == 3, hops  # the lookup reads the first chunk into the spare buffer


async def test_the_file_is_closed_when_the_request_is_cancelled_during_the_lookup(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[Any] = []
    entered, proceed = threading.Event(), threading.Event()
    original = staticfiles.adopt_regular

    def slow_adopt(fd: int, path: str) -> Any:
        file, info = original(fd, path)
        opened.append(file)
        entered.set()
        proceed.wait(10)
        return file, info

    monkeypatch.setattr(staticfiles, "adopt_regular", slow_adopt)
    app = static_files(site, chunk_size=100_000)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            group.start_soon(app, make_scope(path="/big.bin"), body_receive(), SendRecorder())
            while not entered.is_set():
                await anyio.sleep(0.001)
            group.cancel_scope.cancel()
            proceed.set()
        while not opened[0].closed:
            await anyio.sleep(0.001)


# -- read_on_loop: opted in, no worker thread for a small file ----------------------


async def test_read_on_loop_answers_small_files_and_misses_without_a_worker_thread(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = count_thread_hops(monkeypatch)
    app = static_files(site, html=True, read_on_loop=64 * 1024)
    css = await run_app(app, make_scope(path="/style.css"))
    gz = await run_app(app, make_scope(path="/style.css", headers=[(b"accept-encoding", b"gzip")]))
    head = await run_app(app, make_scope("HEAD", path="/hello.txt"))
    index = await run_app(app, make_scope(path="/sub/"))
    redirect = await run_app(app, make_scope(path="/sub"))
    missing = await run_app(app, make_scope(path="/nothing.txt"))
    assert (css.status, css.body) == (200, CSS)
    assert (gz.status, gzip.decompress(gz.body)) == (200, CSS)
    assert gz.header(b"content-encoding") == [b"gzip"]
    assert (head.status, head.body, head.header(b"content-length")) == (200, b"", [b"5"])
    assert (index.status, index.body) == (200, b"<h1>sub</h1>")
    assert redirect.status == 307
    assert (missing.status, missing.body) == (404, b"<h1>not here</h1>")
    assert hops == []


async def test_read_on_loop_keeps_the_walk_safe_and_hides_dotfiles(site: Path) -> None:
    app = static_files(site, read_on_loop=64 * 1024)
    for path in ("/link-out.txt", "/dir-out/secret.txt", "/../secret.txt", "/fifo", "/.hidden"):
        sent = await run_app(app, make_scope(path=path))
        assert sent.status == 404, path
        assert SECRET not in sent.body
    inside = await run_app(app, make_scope(path="/link-in.txt"))
    assert (inside.status, inside.body) == (200, b"hello")


async def test_read_on_loop_keeps_ranges_and_conditional_requests(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = count_thread_hops(monkeypatch)
    app = static_files(site, read_on_loop=64 * 1024)
    etag = (await run_app(app, make_scope(path="/style.css"))).header(b"etag")[0]
    ranged = await run_app(app, make_scope(path="/style.css", headers=[(b"range", b"bytes=0-3")]))
    cached = await run_app(app, make_scope(path="/style.css", headers=[(b"if-none-match", etag)]))
    assert (ranged.status, ranged.body) == (206, CSS[:4])
    assert (cached.status, cached.body) == (304, b"")
    assert hops == []


async def test_read_on_loop_reads_a_larger_file_in_worker_threads(
    site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = count_thread_hops(monkeypatch)
    app = static_files(site, read_on_loop=1000, chunk_size=100_000)
    sent = await run_app(app, make_scope(path="/big.bin"))
    assert sent.body == BIG
    assert [hop.split(":")[1] for hop in hops] == ["_read_into"] * 3  # looked up on the loop


def test_read_on_loop_must_not_be_negative(site: Path) -> None:
    with pytest.raises(ValueError, match="read_on_loop"):
        static_files(site, read_on_loop=-1)
