"""The ``exclude`` option every middleware takes: which requests skip it.

``exclude`` is either an iterable of path prefixes or a predicate on the
scope.  A prefix matches at a segment boundary of the path below
``root_path`` (what a router matches): ``"/health"`` matches ``/health`` and
``/health/live`` but not ``/healthz``.  The prefixes are compiled once, when
the middleware is built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from asgikit.datastructures import route_path
from asgikit.types import Scope

ScopePredicate = Callable[[Scope], bool]
Exclude = Iterable[str] | ScopePredicate | None


def compile_exclude(exclude: Exclude) -> ScopePredicate | None:
    """A predicate telling whether a scope skips the middleware, or ``None`` for none.

    ``None`` (or an empty iterable) means nothing is excluded, and lets the
    middleware keep its hot path free of the check.  A callable is returned
    as it is.  A single string is refused: it is almost always a forgotten
    list, and iterating it would exclude every path starting with its letters.
    """
    if exclude is None:
        return None
    if callable(exclude):
        return exclude
    if isinstance(exclude, (str, bytes)):
        raise TypeError("exclude must be a list of paths or a predicate, not a single string")
    exact: set[str] = set()
    prefixes: list[str] = []
    for entry in exclude:
        if not isinstance(entry, str) or not entry.startswith("/"):
            raise ValueError(f"exclude paths must be strings starting with '/': {entry!r}")
        root = entry.rstrip("/")
        if not root:  # "/" excludes everything
            return _always
        exact.add(root)
        prefixes.append(root + "/")
    if not exact:
        return None
    prefix_tuple = tuple(prefixes)

    def excluded(scope: Scope) -> bool:
        path = route_path(scope)
        return path in exact or path.startswith(prefix_tuple)

    return excluded


def _always(scope: Scope) -> bool:
    return True


__all__ = ["Exclude", "ScopePredicate", "compile_exclude"]
