"""Which file a request path may name below a directory, decided without the file system.

``request_segments`` turns a decoded URL path (``scope["path"]`` below the
root path) into the list of names to join under the served directory, or
``None`` when the path must not be served.  It is strict on purpose: rather
than normalising a suspicious path into a harmless one, it refuses it, so
that what a request names is exactly what is served.  Refused are:

- empty segments (``//``), ``.`` and ``..`` segments; the server has already
  decoded ``%2e%2e`` to ``..``, and a path is never decoded twice here, so
  ``%252e%252e`` stays the literal (missing) name ``%2e%2e``;
- backslashes, NUL and other control characters, and text that is not
  valid Unicode (lone surrogates from a server's lossy decoding);
- with Windows semantics (``ntpath``): ``:`` (drive letters and NTFS
  alternate streams), ``<>"|?*``, names that end in a dot or a space (Windows
  drops those, so ``...`` and ``.. `` would mean ``..``), device names
  such as ``CON`` or ``nul.txt``, and 8.3 short names (``GIT~1``): NTFS
  answers them for long names, so ``/GIT~1/config`` would reach a hidden
  ``.git`` directory without naming it.

``safe_join`` joins the segments under the directory and checks the result
is still inside it; ``is_within`` is that check alone, and ``static_files``
uses it again on the resolved path to keep symlinks from leaving the
directory.  None of this touches the file system, so it is tested with both
``posixpath`` and ``ntpath`` on any machine.
"""

from __future__ import annotations

import ntpath
import os
import re
from types import ModuleType

#: The longest file name (one segment) accepted; common file systems stop at 255.
MAX_SEGMENT_LENGTH = 255

_CONTROL = frozenset(chr(c) for c in [*range(0x20), 0x7F])
_FORBIDDEN_ANYWHERE = _CONTROL | {"\\"}
_FORBIDDEN_WINDOWS = _FORBIDDEN_ANYWHERE | set('<>:"|?*')
# Device names Windows resolves in every directory, with any extension.
_WINDOWS_DEVICES = frozenset(
    {"con", "prn", "aux", "nul", "conin$", "conout$"}
    | {f"{kind}{n}" for kind in ("com", "lpt") for n in (*"123456789", "¹", "²", "³")}
)


# An 8.3 short name as NTFS makes them: up to six characters, "~", a number,
# and an extension of up to three.
_SHORT_NAME = re.compile(r"[^.~]{1,6}~[0-9]+(\.[^.]{0,3})?")


def _windows(pathmod: ModuleType) -> bool:
    return pathmod is ntpath


def request_segments(path: str, *, pathmod: ModuleType = os.path) -> list[str] | None:
    """The names a request path asks for below the served directory, or ``None``.

    ``path`` is the decoded path below the mount point (it starts with ``/``);
    one trailing slash is allowed (``"/docs/"`` is ``["docs"]``, and ``"/"``
    is ``[]``).  ``pathmod`` picks the rules: ``posixpath`` or ``ntpath``.
    """
    if not path.startswith("/"):
        return None
    body = path[1:-1] if path.endswith("/") and len(path) > 1 else path[1:]
    if not body:
        return []
    try:
        body.encode("utf-8")
    except UnicodeEncodeError:
        return None
    forbidden = _FORBIDDEN_WINDOWS if _windows(pathmod) else _FORBIDDEN_ANYWHERE
    if not forbidden.isdisjoint(body):
        return None
    segments = body.split("/")
    for segment in segments:
        if segment in ("", ".", "..") or len(segment) > MAX_SEGMENT_LENGTH:
            return None
        if _windows(pathmod) and not _windows_name_ok(segment):
            return None
    return segments


def _windows_name_ok(segment: str) -> bool:
    if segment[-1] in ". ":
        return False
    if "~" in segment and _SHORT_NAME.fullmatch(segment):
        return False
    stem = segment.split(".", 1)[0].rstrip(" ").lower()
    return stem not in _WINDOWS_DEVICES


def is_within(root: str, path: str, *, pathmod: ModuleType = os.path) -> bool:
    """Whether ``path`` is ``root`` or lies below it, comparing whole segments.

    Both are normalised lexically first, so ``/srv/static-old`` is not inside
    ``/srv/static``; on Windows the comparison ignores case.
    """
    root = pathmod.normcase(pathmod.normpath(root))
    path = pathmod.normcase(pathmod.normpath(path))
    if path == root:
        return True
    sep: str = pathmod.sep
    prefix = root if root.endswith(sep) else root + sep
    return path.startswith(prefix)


def safe_join(directory: str, path: str, *, pathmod: ModuleType = os.path) -> str | None:
    """``directory`` joined with the names in request path ``path``, or ``None`` if unsafe."""
    segments = request_segments(path, pathmod=pathmod)
    if segments is None:
        return None
    joined: str = pathmod.join(directory, *segments)
    # The segment rules already keep the join inside; this is the second lock.
    if not is_within(directory, joined, pathmod=pathmod):
        return None
    return joined


__all__ = ["MAX_SEGMENT_LENGTH", "is_within", "request_segments", "safe_join"]
