"""Opening a file below a directory so that no symlink can lead the open out of it.

Checking a resolved path and then opening it by name leaves a gap: a
directory swapped for a symlink in between sends the open somewhere else.
``open_inside`` closes that gap by opening the file itself, one name at a
time from a descriptor of the root (``openat`` with ``O_NOFOLLOW``, and
``O_DIRECTORY`` for every directory on the way), so each step is an entry
of the directory opened before it and never a symlink.  What it opens is
therefore inside the root at the moment it is opened, whatever the tree
does meanwhile; a tree that changed under it gives ``OSError`` (so a 404),
never another file.

Symlinks whose target stays inside the root are still served: when the
walk meets one, the path is resolved (``realpath``), checked to lie inside
the root, and the resolved path is walked the same way, where any symlink
that appeared since the resolution stops the walk.

Where the platform has no ``openat`` (Windows), the file is opened by its
resolved path and then compared with a second resolution: the open counts
only if the path still resolves inside the root to the same file
(``st_dev``/``st_ino``).  Hard links are out of scope everywhere: a hard
link inside the root is a file of the root.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence

from asgikit._safepath import is_within

_BASE = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# O_NONBLOCK: opening a FIFO must not wait for a writer.
_FILE_FLAGS = _BASE | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0)
_DIR_FLAGS = _BASE | _NOFOLLOW | _DIRECTORY

# A symlink met with O_NOFOLLOW (EMLINK on FreeBSD), or a file where a directory should be.
_DETOUR = frozenset({errno.ELOOP, errno.EMLINK, errno.ENOTDIR})
# What says "nothing to serve under that name, now", besides _DETOUR.
_ABSENT = _DETOUR | {errno.ENOENT, errno.EISDIR, errno.ENAMETOOLONG, errno.ENXIO}

#: The descriptor ``open_inside`` gives for a directory it did not open (the fallback's).
NOT_OPENED = -1

#: Whether the descriptor walk is available here (POSIX); otherwise the fallback.
WALK = bool(_NOFOLLOW and _DIRECTORY) and os.open in os.supports_dir_fd


def open_beneath(root: str, names: Sequence[str]) -> int:
    """A descriptor of ``root/names...``, opened without following any symlink below ``root``.

    ``names`` are plain names (no ``/``, ``.`` or ``..``).  An empty
    ``names`` opens ``root`` itself.  Raises ``OSError`` (``ELOOP`` or
    ``ENOTDIR`` for a symlink on the way, ``ENOENT`` for a missing name).
    """
    fd = os.open(root, _BASE | _DIRECTORY)
    try:
        for name in names[:-1]:
            parent, fd = fd, -1
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
            finally:
                os.close(parent)
        if not names:
            opened, fd = fd, -1
            return opened
        return os.open(names[-1], _FILE_FLAGS, dir_fd=fd)
    finally:
        if fd != -1:
            os.close(fd)


def open_inside(
    root: str, names: Sequence[str], refuse: Callable[[list[str]], bool] | None = None
) -> tuple[int, str]:
    """Open ``root/names...`` if it is (or, through symlinks, resolves to) a file inside ``root``.

    ``root`` must be a resolved absolute path (``os.path.realpath``).
    Returns the descriptor and the symlink-free path it was opened by; for
    a directory, the descriptor may be ``NOT_OPENED`` (where the platform
    cannot open one).
    Raises ``FileNotFoundError`` when the name leads out of ``root`` or
    through a symlink to names ``refuse`` refuses (below ``root``), and
    ``OSError`` for anything missing or changed meanwhile; a
    ``PermissionError`` is passed on as it is.
    """
    if not WALK:
        return _open_and_compare(root, names, refuse)
    try:
        return open_beneath(root, names), os.path.join(root, *names)
    except OSError as exc:
        if exc.errno not in _DETOUR:
            raise  # nothing of that name, not ours to read, or a real failure
    real = os.path.realpath(os.path.join(root, *names))
    inside = _names_below(root, real)
    if inside is None:
        raise FileNotFoundError(f"leads out of the served directory: {'/'.join(names)}")
    if refuse is not None and refuse(inside):
        raise FileNotFoundError(f"a symlink to a refused name: {'/'.join(names)}")
    return open_beneath(root, inside), real


def is_absent(exc: OSError) -> bool:
    """Whether ``exc`` means "no file to serve there" (a 404), not a failure to report.

    Missing names, symlinks refused on the way, directories, over-long
    names, and files that changed while read (``FileNotFoundError``
    subclasses) are absent; ``EIO``, ``EMFILE`` and the like are not, so
    they surface as errors instead of being cached as 404s.
    """
    return isinstance(exc, FileNotFoundError) or exc.errno in _ABSENT


def _names_below(root: str, real: str) -> list[str] | None:
    if not is_within(root, real):
        return None
    relative = os.path.relpath(real, root)
    return [] if relative == os.curdir else relative.split(os.sep)


def _open_and_compare(
    root: str, names: Sequence[str], refuse: Callable[[list[str]], bool] | None
) -> tuple[int, str]:
    real = os.path.realpath(os.path.join(root, *names))
    inside = _names_below(root, real)
    if inside is None:
        raise FileNotFoundError(f"leads out of the served directory: {'/'.join(names)}")
    if refuse is not None and refuse(inside):
        raise FileNotFoundError(f"a symlink to a refused name: {'/'.join(names)}")
    if os.path.isdir(real):
        return NOT_OPENED, real  # Windows cannot open a directory; nothing is read from it
    fd = os.open(real, _FILE_FLAGS)
    try:
        opened = os.fstat(fd)
        again = os.path.realpath(real)
        now = os.stat(again)
        if _names_below(root, again) is None or (opened.st_dev, opened.st_ino) != (
            now.st_dev,
            now.st_ino,
        ):
            raise FileNotFoundError(f"changed while it was opened: {'/'.join(names)}")
    except BaseException:
        os.close(fd)
        raise
    return fd, real


__all__ = ["NOT_OPENED", "WALK", "is_absent", "open_beneath", "open_inside"]
