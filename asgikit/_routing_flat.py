"""The pattern routes of a plainly mounted router, matched from the outer router at once.

A router mounted at a fixed prefix with nothing in between (``mount("/a",
router(...))``, see ``routing._flattens``) is looked through: for each such
mount the outer router compiles, once, one regular expression over the full
path.  It holds, in the order the mounted routers would try them, the
pattern routes below the mount (through further plain mounts), each ending
in an empty group that names it; ``lastindex`` of a match is that group.
Entries filed under a first segment are held as a tree of the segments'
characters, so a path tries the entries of its own segment only, as a
router's bucket does.

The expression answers only where it is sure to agree with the mounted
routers run one by one; everything else ends in a group that names no route,
and ``find_route`` looks through the routers (without their scopes), or the
request goes the ordinary way:

- a path that is a static route's at any level of the chain (``statics``:
  those are tried before the patterns, and answered by look-up);
- the bare prefix of any level (the router below sees ``/`` there);
- an entry that decides otherwise than by the path: a host, a mount of an
  app that is not a plain router (over the first segment its bucket is
  keyed by, or every path when it has none), a route whose convertor's
  expression would see the prefix (an anchor, a look-behind);
- whatever is inside a mount and matched by no route below it (a 404, or a
  slash redirect, of the router below).

A route that matches the path but not the method, or whose convertor
refuses the value, is a match the request cannot take here either: it goes
the same way, which answers 405 with ``Allow``, or tries the next route.
So the first alternative that matches decides, exactly as the first entry
that matches does router by router.

WebSocket routes are skipped (only HTTP requests are looked through).  The
routers are read when the outer router is built: routers are compiled once
(a mount's app or a router's ``routes`` changed later is not seen by the
expression, and what it leaves goes the ordinary way, to the mount's app of
the moment; a route's ``app`` and ``methods`` are read per request, as
router by router).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

from asgikit.convertors import regex_source
from asgikit.routes import Host, Mount, Route, WebSocketRoute

#: How many entries (routes, static paths, mounts) of mounted routers one
#: router joins into its expressions: one router mounted at many prefixes,
#: at many levels, multiplies.  Past it, a mount's routes are looked for
#: router by router (``find_route``).
MAX_FLAT_ENTRIES = 2_000


class Leaf:
    """A route below a mount: the scope parts its app gets, and how its parameters convert."""

    __slots__ = ("params", "prefix", "route", "template")

    def __init__(
        self,
        route: Route,
        prefix: str,
        params: tuple[tuple[str, int, Callable[[str], Any]], ...],
    ) -> None:
        self.route = route
        #: The mounts' prefixes from the outer router down to the route.
        self.prefix = prefix
        self.template = route.path.template
        #: ``(parameter, group index, convert)`` for each path parameter.
        self.params = params


class FlatMount:
    """One mount's expression, and what a match of it gives."""

    __slots__ = ("leaves", "mount", "prefix", "regex", "router", "statics")

    def __init__(
        self, mount: Mount, regex: re.Pattern[str], leaves: list[Leaf | None], statics: set[str]
    ) -> None:
        self.mount = mount
        self.prefix = mount.prefix
        #: The router the expression was built from: the mount's ``app`` may
        #: be replaced later, by anything, and ``find_route`` reads a router.
        self.router = mount.app
        #: Matches every path below the mount (and its bare prefix), no other.
        self.regex = regex
        #: By the marker group that ended the match (``lastindex``).
        self.leaves = leaves
        self.statics = frozenset(statics)

    def take(
        self, path: str, found: re.Match[str], method: str
    ) -> tuple[Any, dict[str, Any], str, str] | None:
        """``(app, path parameters, template, prefix)`` for a path ``regex`` matched, or ``None``.

        ``None`` is an answer of some other kind (a 404, a 405, a redirect):
        the request goes the ordinary way, router by router.
        """
        leaf = self.leaves[found.lastindex or 0]
        if leaf is not None and path not in self.statics:
            route = leaf.route
            if route.methods is None or method in route.methods:
                params: dict[str, Any] = {}
                try:
                    for name, group, convert in leaf.params:
                        params[name] = convert(found[group])
                except ValueError:
                    pass  # refused: a later route may take the path
                else:
                    return route.app, params, leaf.template, leaf.prefix
        # Routers one by one, without their scopes: a static route, a route
        # after one whose convertor refused, or an answer of another kind.
        prefix = self.prefix
        hit = find_route(self.router, path[len(prefix) :] or "/", method)
        return None if hit is None else (*hit[:3], prefix + hit[3])


# Any rest of a path: a decoded path may hold a newline.  (The routes' own
# expressions keep their flags: "." in a convertor stops at a newline.)
_REST = "(?s:.*)"


class _TooBig(Exception):
    """Past ``MAX_FLAT_ENTRIES``, or a source not shaped as expected."""


class _Builder:
    """Builds one mount's expression, spending from its router's budget."""

    def __init__(self, budget: list[int]) -> None:
        self.budget = budget
        self.statics: set[str] = set()
        # Marker group name -> the leaf it names (None: the ordinary way).
        self.markers: dict[str, tuple[Route, str] | None] = {}
        self.groups: dict[str, tuple[str, str]] = {}  # group name -> (marker, parameter)

    def _spend(self) -> None:
        self.budget[0] -= 1
        if self.budget[0] < 0:
            raise _TooBig

    def _marker(self, leaf: tuple[Route, str] | None) -> str:
        """A new marker group's name, naming ``leaf``."""
        name = f"m{len(self.markers)}"
        self.markers[name] = leaf
        return name

    def region(self, prefix: str, inner: Any, full: str) -> str:
        """The source matching what ``inner``, mounted at ``prefix``, is given.

        ``full`` is the prefix from the outer router down to ``inner``.  The
        source matches every path below the prefix (and the prefix itself).
        """
        self._spend()
        for sub in (*inner._static_methods, *inner._mounted_static):
            self._spend()
            self.statics.add(full + sub)
            if sub == "/":
                self.statics.add(full)
        # What follows the "/" after the prefix, in order, by the first
        # segment it needs (``None``: any).  A keyed entry's source is what
        # follows its first segment.
        entries: list[tuple[str | None, str]] = []
        for entry in inner._patterns:
            if isinstance(entry, WebSocketRoute):
                continue
            key = _bucket_key(entry)
            if isinstance(entry, Route) and _joinable(entry):
                self._spend()
                mark = self._marker((entry, full))
                source = regex_source(entry.path, functools.partial(self._group, mark))
                source = _after(key, source)
                # In a group of its own: a "|" in a convertor's expression stays inside.
                entries.append((key, f"(?:{source})(?P<{mark}>)"))
            elif isinstance(entry, Mount) and entry in inner._plain_mounts:
                assert key is not None  # a plain mount has a literal prefix
                below = inner._plain_mounts[entry]
                sub = self.region(entry.prefix, below, full + entry.prefix)
                entries.append((key, _after(key, sub)))
            else:
                # A host or another app: router by router it decides every
                # path of its bucket, whether it matches or not.  (A route
                # that cannot be joined is left, with its bucket, to the
                # routers too.)
                if key is None:
                    entries.append((None, f"{_REST}(?P<{self._marker(None)}>)"))
                    break  # nothing after it is reached
                entries.append((key, f"(?:/{_REST})?(?P<{self._marker(None)}>)"))
        entries.append((None, f"{_REST}(?P<{self._marker(None)}>)"))  # a miss inside the mount
        # The bare prefix: the router below sees "/".
        bare = self._marker(None)
        return f"{re.escape(prefix)}(?:/{_in_order(entries)}|(?P<{bare}>))"

    def _group(self, marker: str, name: str) -> str:
        group = f"{marker}_{len(self.groups)}"
        self.groups[group] = (marker, name)
        return group


def _after(key: str | None, source: str) -> str:
    """What follows ``"/" + key`` at the start of ``source`` (a path's expression)."""
    head = "/" + re.escape(key or "")
    if not source.startswith(head):
        raise _TooBig  # never: a template's first literal is escaped character by character
    return source[len(head) :]


def _in_order(entries: list[tuple[str | None, str]]) -> str:
    """One source trying ``entries`` in order, each keyed one only after its first segment.

    Entries under different first segments never match the same path, so
    a run of keyed entries (between two that take any segment) becomes one
    tree of their segments' characters: the regex engine skips a branch by
    its first character, and a path tries the few entries of its own
    segment, as a router's bucket does, not every entry.
    """
    alternatives: list[str] = []
    run: list[tuple[str, str]] = []
    for key, source in entries:
        if key is None:
            if run:
                alternatives.append(_tree(run))
                run = []
            alternatives.append(source)
        else:
            run.append((key, source))
    if run:
        alternatives.append(_tree(run))
    return _either(alternatives)


def _tree(run: list[tuple[str, str]]) -> str:
    """``run`` (first segment, what follows it) as a tree of the segments' characters."""
    # A segment ends where a "/" or the path's end follows (every source
    # starts so), and holds no "/": the ends and the branches never overlap.
    ends = [source for key, source in run if not key]
    branches: dict[str, list[tuple[str, str]]] = {}
    for key, source in run:
        if key:
            branches.setdefault(key[0], []).append((key, source))
    alternatives = []
    for below in branches.values():
        # The characters every key of the branch shares, taken at once.
        common = below[0][0]
        for key, _ in below[1:]:
            while not key.startswith(common):
                common = common[:-1]
        rest = [(key[len(common) :], source) for key, source in below]
        alternatives.append(re.escape(common) + _tree(rest))
    return _either(alternatives + ends)


def _either(alternatives: list[str]) -> str:
    return f"(?:{'|'.join(alternatives)})"


# What makes a convertor's expression match otherwise after a prefix: an
# anchor or a look-behind sees the prefix, a numbered back-reference or a
# conditional ("(?(1)b|c)") counts the groups before it.  ("^" first in a
# character class is a negation.)
_POSITIONAL = re.compile(r"(?<!\[)\^|\\[AbB0-9]|\(\?<[=!]|\(\?P=|\(\?\(")


def _joinable(entry: Route) -> bool:
    """Whether ``entry``'s expression matches the same after a mount's prefix."""
    return not any(_POSITIONAL.search(c.regex) for c in entry.path.convertors.values())


def _bucket_key(entry: Any) -> str | None:
    """The first segment a router files ``entry`` under (``None``: every bucket)."""
    if isinstance(entry, Host) or (isinstance(entry, Mount) and not entry.prefix):
        return None
    segment: str = entry.path.template[1:].split("/", 1)[0]
    return None if "{" in segment else segment


def find_route(router: Any, path: str, method: str) -> tuple[Any, dict[str, Any], str, str] | None:
    """The route ``router`` would run for an HTTP ``path`` and ``method``, router by router.

    ``(app, path parameters, template, prefix of the mounts below)``, or
    ``None`` when the answer would be anything else (a 404, a 405, a
    redirect, a host, a mount that is not a plain router): then the request
    goes the ordinary way.  For what a mount's expression leaves to others
    (a static path, a mount past ``MAX_FLAT_ENTRIES``).
    """
    table = router._static_methods.get(path)
    if table is not None:
        app = table.get(method) or table.get(None)
        return None if app is None else (app, {}, path, "")
    mounted = router._mounted_static.get(path)
    if mounted is not None:
        app = mounted[0].get(method) or mounted[0].get(None)
        return None if app is None else (app, {}, mounted[2], mounted[1])
    allowed = False
    for candidate in router._buckets.get(path[1:].partition("/")[0], router._wildcards):
        if isinstance(candidate, Route):
            params = candidate.path.match(path)
            if params is None:
                continue
            if candidate.methods is not None and method not in candidate.methods:
                allowed = True  # a 405 unless a later route takes the method
                continue
            return candidate.app, params, candidate.path.template, ""
        if isinstance(candidate, WebSocketRoute):
            continue
        if isinstance(candidate, Mount) and candidate in router._plain_mounts and not allowed:
            assert candidate.path.regex is not None
            if candidate.path.regex.match(path) is None:
                continue
            # The router mounted when ``router`` was built: the mount's app may
            # have been replaced since (by anything).
            inner = router._plain_mounts[candidate]
            hit = find_route(inner, path[len(candidate.prefix) :] or "/", method)
            if hit is None:
                return None
            app, params, template, below = hit
            return app, params, template, candidate.prefix + below
        return None
    return None


def flatten(entry: Mount, budget: list[int]) -> FlatMount:
    """The expression for a plain mount.

    ``budget`` is one number in a list, shared by a router's mounts and
    lowered by what each spends.  Past it, the expression only tells the
    paths below the mount, for ``find_route`` to look through.
    """
    builder = _Builder(budget)
    try:
        source = builder.region(entry.prefix, entry.app, entry.prefix)
        regex = re.compile(source)
    except (_TooBig, re.error, RecursionError, OverflowError):
        builder = _Builder([0])
        bare = builder._marker(None)
        source = f"{re.escape(entry.prefix)}(?:/{_REST}|(?P<{bare}>))"
        regex = re.compile(source)
    leaves: list[Leaf | None] = [None] * (regex.groups + 1)
    params: dict[str, list[tuple[str, int, Callable[[str], Any]]]] = {}
    for group, (marker, name) in builder.groups.items():
        found = builder.markers[marker]
        assert found is not None
        convertor = found[0].path.convertors[name]
        params.setdefault(marker, []).append((name, regex.groupindex[group], convertor.convert))
    for marker, leaf in builder.markers.items():
        if leaf is not None:
            route, prefix = leaf
            leaves[regex.groupindex[marker]] = Leaf(route, prefix, tuple(params.get(marker, ())))
    return FlatMount(entry, regex, leaves, builder.statics)


__all__ = ["MAX_FLAT_ENTRIES", "FlatMount", "Leaf", "find_route", "flatten"]
