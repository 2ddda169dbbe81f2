"""_safeopen: opening below a directory without a symlink leading out of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import asgikit._safeopen
from asgikit._safeopen import open_beneath, open_inside


@pytest.fixture
def root(tmp_path: Path) -> str:
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"secret")
    static = tmp_path / "static"
    (static / "dir").mkdir(parents=True)
    (static / "dir" / "file").write_bytes(b"file")
    os.symlink(static / "dir", static / "dir-link")
    os.symlink(static / "dir" / "file", static / "file-link")
    os.symlink(tmp_path / "outside", static / "out")
    os.symlink(tmp_path / "outside" / "secret", static / "secret-link")
    os.symlink(static / "missing", static / "dangling")
    return os.path.realpath(static)


def read(fd: int) -> bytes:
    with open(fd, "rb") as file:
        return file.read()


@pytest.mark.skipif(not asgikit._safeopen.WALK, reason="no openat here")
@pytest.mark.parametrize("names", [["dir-link", "file"], ["file-link"], ["out", "secret"]])
def test_open_beneath_refuses_every_symlink(root: str, names: list[str]) -> None:
    with pytest.raises(OSError):
        os.close(open_beneath(root, names))


@pytest.mark.parametrize("walk", [True, False])
def test_open_inside_follows_only_symlinks_that_stay_inside(
    root: str, walk: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if walk and not asgikit._safeopen.WALK:
        pytest.skip("no openat here")
    monkeypatch.setattr(asgikit._safeopen, "WALK", walk)
    fd, path = open_inside(root, ["dir", "file"])
    assert (read(fd), path) == (b"file", os.path.join(root, "dir", "file"))
    fd, path = open_inside(root, ["dir-link", "file"])
    assert (read(fd), path) == (b"file", os.path.join(root, "dir", "file"))
    assert read(open_inside(root, ["file-link"])[0]) == b"file"
    for names in (["out", "secret"], ["secret-link"], ["dangling"], ["dir", "file", "x"]):
        with pytest.raises(OSError):
            os.close(open_inside(root, names)[0])


def test_no_names_open_the_root_itself(root: str) -> None:
    fd, path = open_inside(root, [])
    try:
        assert os.path.samestat(os.fstat(fd), os.stat(root))
        assert path == root
    finally:
        os.close(fd)
