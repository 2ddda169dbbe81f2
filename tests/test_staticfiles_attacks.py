"""static_files under attack: a tree that changes under a request, and hidden dotfiles.

The race tests swap a directory for a symlink to a secret tree at the exact
step between a look at the tree and the open (through a hook on the
file-system call), and then as a bounded loop in a thread while requests
run.  No request may ever answer with the secret, nor with a 500.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import asgikit._safeopen
import asgikit.staticfiles
from asgikit.staticfiles import static_files
from tests.conftest import make_scope, run_app

SECRET = b"TOP-SECRET-MARKER"
INSIDE = b"the inside page"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``static`` is served; ``outside`` mirrors its names with the secret."""
    outside = tmp_path / "outside"
    (outside / "sub").mkdir(parents=True)
    (outside / "sub" / "page.txt").write_bytes(SECRET)
    static = tmp_path / "static"
    (static / "sub").mkdir(parents=True)
    (static / "sub" / "page.txt").write_bytes(INSIDE)
    (static / "real").mkdir()
    (static / "real" / "page.txt").write_bytes(INSIDE)
    os.symlink(static / "real", static / "alias")  # a symlink that stays inside
    return static


def swap_for_symlink(directory: Path, target: Path) -> None:
    """Replace ``directory`` by a symlink to ``target`` (what an attacker or a deploy does)."""
    os.rename(directory, directory.with_name(directory.name + ".old"))
    os.symlink(target, directory)


def once(action: Callable[[], None]) -> Callable[[], None]:
    done: list[bool] = []

    def run() -> None:
        if not done:
            done.append(True)
            action()

    return run


async def get(app: Any, path: str) -> Any:
    return await run_app(app, make_scope(path=path))


async def test_inside_symlink_retargeted_outside_after_it_was_resolved_is_404(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # /alias -> real is allowed; once resolved, "real" becomes a symlink out.
    swap = once(lambda: swap_for_symlink(tree / "real", tree.parent / "outside" / "sub"))
    real_realpath = os.path.realpath

    def realpath_then_swap(path: Any, **kwargs: Any) -> Any:
        resolved = real_realpath(path, **kwargs)
        swap()
        return resolved

    monkeypatch.setattr(os.path, "realpath", realpath_then_swap)
    sent = await get(static_files(tree), "/alias/page.txt")
    assert sent.status == 404
    assert SECRET not in sent.body


async def test_directory_swapped_for_an_outside_symlink_just_before_the_open_is_404(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swap = once(lambda: swap_for_symlink(tree / "sub", tree.parent / "outside" / "sub"))
    real_open = os.open

    def swap_then_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        swap()  # between whatever was looked at before and this open
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swap_then_open)
    sent = await get(static_files(tree), "/sub/page.txt")
    assert sent.status == 404
    assert SECRET not in sent.body


async def test_inside_symlinks_are_still_served(tree: Path) -> None:
    sent = await get(static_files(tree), "/alias/page.txt")
    assert (sent.status, sent.body) == (200, INSIDE)
    os.symlink(tree.parent / "outside" / "sub", tree / "out")
    assert (await get(static_files(tree), "/out/page.txt")).status == 404
    followed = await get(static_files(tree, follow_symlink=True), "/out/page.txt")
    assert followed.body == SECRET  # follow_symlink=True: the operator's choice


async def test_the_fallback_open_checks_the_file_it_opened(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Where openat is missing (Windows), the open is compared with a second resolution.
    monkeypatch.setattr(asgikit._safeopen, "WALK", False)
    app = static_files(tree)
    assert (await get(app, "/alias/page.txt")).body == INSIDE
    swap = once(lambda: swap_for_symlink(tree / "sub", tree.parent / "outside" / "sub"))
    real_open = os.open

    def swap_then_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        swap()
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", swap_then_open)
    sent = await get(app, "/sub/page.txt")
    assert sent.status == 404
    assert SECRET not in sent.body


async def test_the_fallback_serves_directory_indexes_without_opening_directories(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(asgikit._safeopen, "WALK", False)
    (tree / "sub" / "index.html").write_bytes(b"<p>sub</p>")
    app = static_files(tree, html=True)
    index = await get(app, "/sub/")
    assert (index.status, index.body) == (200, b"<p>sub</p>")
    assert (await get(app, "/sub")).status == 307
    assert (await get(app, "/real/")).status == 404
    assert (await get(static_files(tree), "/sub/")).status == 404


@pytest.fixture
def churn(tree: Path) -> Iterator[Callable[[Callable[[], None]], None]]:
    """Run a change to the tree in a loop in a thread until the test's requests are done."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(step: Callable[[], None]) -> None:
        def loop() -> None:
            for _ in range(1_000_000):  # bounded even if stop is never set
                if stop.is_set():
                    return
                step()

        thread = threading.Thread(target=loop, daemon=True)
        threads.append(thread)
        thread.start()

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


async def test_tight_symlink_swap_race_never_serves_outside_nor_500(
    tree: Path, churn: Callable[[Callable[[], None]], None]
) -> None:
    sub, old = tree / "sub", tree / "sub.real"
    outside = tree.parent / "outside" / "sub"

    def flip() -> None:
        os.rename(sub, old)
        os.symlink(outside, sub)
        os.unlink(sub)
        os.rename(old, sub)

    app = static_files(tree)
    churn(flip)
    statuses: dict[int, int] = {}
    for _ in range(400):
        sent = await get(app, "/sub/page.txt")  # a 500 would raise here
        statuses[sent.status] = statuses.get(sent.status, 0) + 1
        assert SECRET not in sent.body
        assert sent.status in (200, 404)
        if sent.status == 200:
            assert sent.body == INSIDE
    assert sum(statuses.values()) == 400


async def test_file_rewritten_in_place_during_a_deploy_is_never_a_500(
    tree: Path, churn: Callable[[Callable[[], None]], None]
) -> None:
    page = tree / "sub" / "page.txt"
    versions = [b"a" * 3000, b"b" * 100]

    def rewrite() -> None:
        for version in versions:
            with open(page, "wb") as file:  # truncate, then write: not atomic
                file.write(version[:50])
                file.flush()
                file.write(version[50:])

    app = static_files(tree)
    churn(rewrite)
    for _ in range(300):
        sent = await get(app, "/sub/page.txt")
        assert sent.status in (200, 404)
        if sent.status == 200:
            assert sent.header(b"content-length") == [str(len(sent.body)).encode()]


async def test_a_small_file_that_changed_size_while_read_is_read_again_not_sent_short(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_adopt = asgikit.staticfiles.adopt_regular

    def stale_stat(fd: int, path: str) -> Any:
        file, info = real_adopt(fd, path)
        fields = list(info)
        fields[6] += 1000  # st_size: as it was before a deploy rewrote the file
        return file, os.stat_result(fields, {"st_mtime_ns": info.st_mtime_ns})

    monkeypatch.setattr(asgikit.staticfiles, "adopt_regular", stale_stat)
    sent = await get(static_files(tree), "/sub/page.txt")
    assert (sent.status, sent.body) == (200, INSIDE)
    assert sent.header(b"content-length") == [str(len(INSIDE)).encode()]


async def test_a_mid_size_file_read_into_the_buffer_that_changed_size_is_read_again(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Above READ_INTO_ABOVE a whole file is read into the loop's buffer: same rule.
    content = bytes(range(256)) * 100  # 25,600 bytes
    (tree / "sub" / "mid.bin").write_bytes(content)
    real_adopt = asgikit.staticfiles.adopt_regular

    def stale_stat(fd: int, path: str) -> Any:
        file, info = real_adopt(fd, path)
        fields = list(info)
        fields[6] -= 1000  # st_size: as it was before a deploy rewrote the file
        return file, os.stat_result(fields, {"st_mtime_ns": info.st_mtime_ns})

    monkeypatch.setattr(asgikit.staticfiles, "adopt_regular", stale_stat)
    sent = await get(static_files(tree), "/sub/mid.bin")
    assert (sent.status, sent.body) == (200, content)
    assert sent.header(b"content-length") == [str(len(content)).encode()]
    assert type(sent.messages[-1]["body"]) is bytes


# -- dotfiles -------------------------------------------------------------------


@pytest.fixture
def dotted(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_bytes(SECRET)
    (tmp_path / ".env").write_bytes(SECRET)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".htpasswd").write_bytes(SECRET)
    (tmp_path / ".well-known").mkdir()
    (tmp_path / ".well-known" / "security.txt").write_bytes(b"Contact: x")
    (tmp_path / ".well-known" / ".private").write_bytes(SECRET)
    (tmp_path / "index.html").write_bytes(b"<p>home</p>")
    (tmp_path / "404.html").write_bytes(b"<p>not here</p>")
    return tmp_path


@pytest.mark.parametrize(
    "path",
    ["/.env", "/.git/config", "/.git/", "/sub/.htpasswd", "/.well-known/.private", "/.env/"],
)
@pytest.mark.parametrize("html", [False, True])
async def test_dotfiles_like_env_and_git_config_are_not_served_by_default(
    dotted: Path, path: str, html: bool
) -> None:
    sent = await get(static_files(dotted, html=html), path)
    assert sent.status == 404
    assert SECRET not in sent.body


async def test_well_known_is_served_and_a_fallback_never_reveals_a_dotfile(dotted: Path) -> None:
    well_known = await get(static_files(dotted), "/.well-known/security.txt")
    assert (well_known.status, well_known.body) == (200, b"Contact: x")
    spa = await get(static_files(dotted, fallback="index.html"), "/.env")
    assert (spa.status, spa.body) == (200, b"<p>home</p>")


async def test_allow_dotfiles_serves_them(dotted: Path) -> None:
    app = static_files(dotted, allow_dotfiles=True)
    for path in ("/.env", "/.git/config", "/sub/.htpasswd"):
        sent = await get(app, path)
        assert (sent.status, sent.body) == (200, SECRET), path
