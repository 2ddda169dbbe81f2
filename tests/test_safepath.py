"""The pure path-safety rules, with POSIX and Windows (ntpath) semantics."""

from __future__ import annotations

import ntpath
import posixpath
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit._safepath import is_within, request_segments, safe_join

POSIX_ROOT = "/srv/static"
WINDOWS_ROOT = "C:\\site\\static"
FLAVOURS = [
    pytest.param(posixpath, POSIX_ROOT, id="posix"),
    pytest.param(ntpath, WINDOWS_ROOT, id="windows"),
]

# Paths no flavour may serve.
HOSTILE = [
    "/..",
    "/../secret.txt",
    "/a/../../secret.txt",
    "/a/..",
    "/./hello.txt",
    "/a/./b",
    "//etc/passwd",
    "/a//b",
    "///",
    "/a\\..\\..\\secret.txt",
    "/..\\secret.txt",
    "/\\\\server\\share\\file",
    "/hello.txt\0.png",
    "/\0",
    "/a\nb",
    "/a\x7fb",
    "/\ud800",
    "relative/path",
    "",
    "/" + "a" * 256,
]
# Paths only Windows must refuse (they are ordinary names on POSIX).
WINDOWS_ONLY = [
    "/C:/Windows/win.ini",
    "/C:",
    "/c:secret.txt",
    "/hello.txt::$DATA",
    "/a:b",
    "/CON",
    "/con.txt",
    "/nul",
    "/Com1.log",
    "/lpt9",
    "/AUX .txt",
    "/...",
    "/.. ",
    "/hello.txt.",
    "/hello.txt ",
    "/a<b",
    "/a|b",
    '/a"b',
    "/a?b",
    "/a*b",
    "/GIT~1/config",  # an 8.3 short name for .git
    "/env~12",
    "/HTPASS~1.TXT",
]


@pytest.mark.parametrize(("pathmod", "root"), FLAVOURS)
@pytest.mark.parametrize("path", HOSTILE)
def test_hostile_paths_are_refused_by_both_flavours(
    pathmod: ModuleType, root: str, path: str
) -> None:
    assert request_segments(path, pathmod=pathmod) is None
    assert safe_join(root, path, pathmod=pathmod) is None


@pytest.mark.parametrize("path", WINDOWS_ONLY)
def test_windows_specific_names_are_refused_with_ntpath(path: str) -> None:
    assert request_segments(path, pathmod=ntpath) is None


@pytest.mark.parametrize("path", ["/C:/Windows/win.ini", "/a:b", "/con.txt", "/...", "/GIT~1"])
def test_the_same_names_are_plain_file_names_on_posix(path: str) -> None:
    joined = safe_join(POSIX_ROOT, path, pathmod=posixpath)
    assert joined is not None
    assert joined.startswith(POSIX_ROOT + "/")


@pytest.mark.parametrize(("pathmod", "root"), FLAVOURS)
@pytest.mark.parametrize(
    ("path", "segments"),
    [
        ("/", []),
        ("/hello.txt", ["hello.txt"]),
        ("/docs/", ["docs"]),
        ("/a/b/c.css", ["a", "b", "c.css"]),
        ("/.well-known/x", [".well-known", "x"]),
        ("/..hidden", ["..hidden"]),
        ("/%2e%2e/x", ["%2e%2e", "x"]),
        ("/caf\u00e9.txt", ["caf\u00e9.txt"]),
    ],
)
def test_ordinary_paths_give_their_segments(
    pathmod: ModuleType, root: str, path: str, segments: list[str]
) -> None:
    assert request_segments(path, pathmod=pathmod) == segments
    assert safe_join(root, path, pathmod=pathmod) == pathmod.join(root, *segments)


def test_percent_encoded_dots_are_not_decoded_a_second_time() -> None:
    # The server decoded %252e to %2e; a name is never decoded twice.
    assert safe_join(POSIX_ROOT, "/%2e%2e/%2e%2e/etc/passwd", pathmod=posixpath) == (
        "/srv/static/%2e%2e/%2e%2e/etc/passwd"
    )


@pytest.mark.parametrize(
    ("pathmod", "root", "path", "inside"),
    [
        (posixpath, "/srv/static", "/srv/static", True),
        (posixpath, "/srv/static", "/srv/static/a/b", True),
        (posixpath, "/srv/static/", "/srv/static/a", True),
        (posixpath, "/srv/static", "/srv/static-private/secret", False),
        (posixpath, "/srv/static", "/srv/staticx", False),
        (posixpath, "/srv/static", "/srv/static/../secret", False),
        (posixpath, "/srv/static", "/srv", False),
        (posixpath, "/", "/anything", True),
        (ntpath, "C:\\site", "C:\\site\\a", True),
        (ntpath, "C:\\site", "c:\\SITE\\a", True),
        (ntpath, "C:\\site", "C:\\site-old\\a", False),
        (ntpath, "C:\\site", "D:\\site\\a", False),
        (ntpath, "C:\\site", "\\\\server\\share\\site\\a", False),
        (ntpath, "C:\\site", "C:\\site\\..\\x", False),
    ],
)
def test_is_within_compares_whole_segments(
    pathmod: ModuleType, root: str, path: str, inside: bool
) -> None:
    assert is_within(root, path, pathmod=pathmod) is inside


@pytest.mark.parametrize(("pathmod", "root"), FLAVOURS)
@given(path=st.text(max_size=40))
def test_any_path_either_is_refused_or_stays_inside(
    pathmod: ModuleType, root: str, path: str
) -> None:
    joined = safe_join(root, "/" + path, pathmod=pathmod)
    if joined is not None:
        assert is_within(root, joined, pathmod=pathmod)
        assert pathmod.normpath(joined) == joined
        assert ".." not in joined.split(pathmod.sep)


@pytest.mark.parametrize(("pathmod", "root"), FLAVOURS)
@given(
    parts=st.lists(
        st.sampled_from(["..", ".", "", "a", "\\", "C:", "%2e", "/", "\0", "con", " ", "b."]),
        max_size=8,
    )
)
def test_paths_built_from_dangerous_pieces_never_escape(
    pathmod: ModuleType, root: str, parts: list[str]
) -> None:
    joined = safe_join(root, "/" + "/".join(parts), pathmod=pathmod)
    if joined is not None:
        assert is_within(root, joined, pathmod=pathmod)
        assert not any(p in ("..", ".", "") for p in joined[len(root) :].split(pathmod.sep)[1:])
