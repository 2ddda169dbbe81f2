"""Routing: ``router``, ``route``, ``websocket_route``, ``mount``, ``host``, ``url_path_for``.

A router is compiled once.  Paths without parameters are found by one
dictionary look-up; parameterised routes, mounts and hosts are tried in the
order given, bucketed by their first literal path segment so that a request
tries only the patterns that can match it.  The first entry that matches
path and method wins; a static path is tried before the patterns.  A path
that matches only with another method answers 405 with ``Allow``.

A router mounted at a fixed prefix with nothing in between (``mount("/api",
router(...))``) has its static routes joined into the outer router's
look-up, where no earlier entry could take the path first: such a request
costs one look-up however deep it is mounted.  The pattern routes below such
a mount are matched from the outer router by one expression built with it
(``_routing_flat``), without the mounted routers' own scopes or calls.
Either way the endpoint sees the very scope the mounted routers would have
built.  Everything else (a 404 or 405
inside, redirects, hosts, other mounted apps, lifespan, WebSockets) goes
through each router in turn.
A miss with no ``exception_handlers`` table and no ``Accept`` field gets a
404 built once; any other miss is answered by ``asgikit._errors``.

Mounted apps see ``root_path`` grown by the mount's prefix and ``path`` kept
as the full path, as the current ASGI HTTP spec has it; a server that gives
``path`` relative to ``root_path`` is accepted too, and normalised at the mount.
A router answers ``lifespan`` for every app inside it, in order (see
``_lifespan_children``).  A ``root_path`` ending in ``/`` (``--root-path /x/``)
is read as ``/x``.

The matched route's template, through mounts (``/api/users/{id:int}`` for
``route("/users/{id:int}")`` in ``mount("/api", ...)``) and not counting a
server's ``root_path``, is left in the child scope as ``scope["route_template"]``
for logs, metrics and rate limits.  A mounted app that is not a router gets
the mount's template; nothing matched (404, 405, a slash redirect) leaves it
absent.  An observer *outside* the router cannot see the router's copy of
the scope: it puts a one-item list under ``ROUTE_TEMPLATE_SINK`` in the scope
it passes in, and the router writes the template there (``None`` when
nothing matched).

Where it differs from Starlette's router, on purpose: a static path is tried
before the patterns; a mount matches its bare prefix (``/users`` reaches the
app) instead of redirecting to ``/users/``; ``host()`` patterns with a port
match that port only, and a malformed Host matches nothing; reverse paths
are percent-encoded paths (never absolute URLs, never starting with ``//``)
and a parameter left unfilled is ``NoMatchFound``; routers are compiled once
(no ``add_route``) and take middleware by wrapping, not ``middleware=``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from asgikit._lifespan_children import serve_lifespan
from asgikit._reverse import RESOLVER_KEY, ROOT_PATH_KEY, encode_path, url_path_for
from asgikit._url import host_header, without_trailing_slash_root
from asgikit.convertors import compile_host
from asgikit.datastructures import full_path, route_path
from asgikit.responses import RedirectResponse
from asgikit.routes import (
    PLAIN_NOT_FOUND,
    BaseRoute,
    Host,
    Mount,
    Route,
    WebSocketRoute,
    method_not_allowed,
)
from asgikit.routes import not_found as _not_found
from asgikit.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from asgikit._routing_flat import FlatMount

# RFC 3986 §3.3: what a path segment may hold unencoded, plus "/".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
# A query keeps its printable ASCII (escapes included); "#" would start a fragment.
_QUERY_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != "#")


_NOT_FOUND_HEADERS = PLAIN_NOT_FOUND._raw_headers
_NOT_FOUND_BODY = PLAIN_NOT_FOUND.body

ROUTE_TEMPLATE = "route_template"
ROUTE_TEMPLATE_SINK = "asgikit.route_template_sink"
# The templates of the mounts already matched, for the routes below them.
_PREFIX_KEY = "asgikit.route_prefix"


#: How many static routes of mounted routers one router joins into its own
#: look-up: one router mounted at many prefixes, at many levels, multiplies.
MAX_JOINED_ROUTES = 10_000


class NoMatchFound(LookupError):
    """``url_path_for`` found no route with that name and those parameters."""


def _first_segment(template: str) -> str | None:
    """The literal first segment of a path template, or ``None`` if it has a parameter."""
    segment = template[1:].split("/", 1)[0]
    return None if "{" in segment else segment


class Router:
    """An ASGI app that sends each request to the first of its entries that matches."""

    def __init__(
        self,
        routes: Sequence[BaseRoute],
        *,
        redirect_slashes: bool = True,
        not_found: ASGIApp | None = None,
    ) -> None:
        self.routes = list(routes)
        self.redirect_slashes = redirect_slashes
        self.not_found: ASGIApp = not_found if not_found is not None else _not_found
        self._default_not_found = not_found is None
        self._http_static: dict[str, list[Route]] = {}
        self._ws_static: dict[str, list[WebSocketRoute]] = {}
        dynamic: list[tuple[str | None, BaseRoute]] = []
        for entry in self.routes:
            if not isinstance(entry, BaseRoute):
                raise TypeError(f"router() takes route(), mount(), host()...: got {entry!r}")
            if isinstance(entry, Route) and entry.path.regex is None:
                self._http_static.setdefault(entry.path.template, []).append(entry)
            elif isinstance(entry, WebSocketRoute) and entry.path.regex is None:
                self._ws_static.setdefault(entry.path.template, []).append(entry)
            elif isinstance(entry, Host) or (isinstance(entry, Mount) and not entry.prefix):
                dynamic.append((None, entry))
            else:
                dynamic.append((_first_segment(entry.path.template), entry))
        # The entries matched by pattern, in order, as the buckets hold them.
        self._patterns = tuple(entry for _, entry in dynamic)
        self._wildcards = [entry for key, entry in dynamic if key is None]
        self._buckets: dict[str, list[BaseRoute]] = {}
        for key in {key for key, _ in dynamic if key is not None}:
            self._buckets[key] = [e for k, e in dynamic if k in (key, None)]
        # The paths one trailing slash away from a static route.
        self._toggled_static = {_toggle(p) for p in self._http_static if p != "/"}
        # The same buckets with only the HTTP patterns, for the slash redirect:
        # a miss whose bucket has none costs one look-up there.
        self._route_wildcards = [e for e in self._wildcards if isinstance(e, Route)]
        self._route_buckets = {
            key: [e for e in entries if isinstance(e, Route)]
            for key, entries in self._buckets.items()
        }
        # For each static path, the app that answers each method: the first
        # entry (in order) that takes it; ``None`` keys the first any-method app.
        self._static_methods: dict[str, dict[str | None, ASGIApp]] = {}
        for path, entries in self._http_static.items():
            table: dict[str | None, ASGIApp] = {}
            for entry in entries:
                if entry.methods is None:
                    table.setdefault(None, entry.app)
                    break
                for method in entry.methods:
                    table.setdefault(method, entry.app)
            self._static_methods[path] = table
        # The static routes of routers mounted here, found by one look-up as
        # this router's own are: full path -> (method table, the mounts'
        # prefixes, the route's template).  Only where the mount is reached
        # for sure (see ``_reaches``); anything else takes the ordinary path.
        self._mounted_static: dict[str, tuple[dict[str | None, ASGIApp], str, str]] = {}
        # Those mounts, and the router each held when this one was built: a
        # pattern route inside one is found from here too, without the
        # mounted routers' own scopes.
        self._plain_mounts: dict[Mount, Router] = {}
        for entry in self.routes:
            if isinstance(entry, Mount) and _flattens(entry):
                self._add_mounted(entry)
                self._plain_mounts[entry] = entry.app  # type: ignore[assignment]
        # Their pattern routes: one expression for each mount (``_routing_flat``).
        self._flat: dict[BaseRoute, FlatMount] = {}
        if self._plain_mounts:
            # Loaded by a router that has such mounts only: the module's
            # classes would shift CPython's type cache for every app.
            from asgikit._routing_flat import MAX_FLAT_ENTRIES, flatten

            budget = [MAX_FLAT_ENTRIES]
            for entry in self.routes:
                if isinstance(entry, Mount) and entry in self._plain_mounts:
                    self._flat[entry] = flatten(entry, budget)
        # Host entries are matched here, by name without case and port by
        # number (see ``HostPattern``), so every router agrees on one rule.
        self._hosts = {
            entry: entry.host_pattern for entry in self.routes if isinstance(entry, Host)
        }
        self._lifespan_apps: list[tuple[str, ASGIApp]] = []
        for entry in self.routes:
            app = entry.lifespan_app()
            if app is not None:
                self._lifespan_apps.append((repr(entry), app))

    def _add_mounted(self, entry: Mount) -> None:
        inner: Router = entry.app  # type: ignore[assignment]
        reachable = [(sub, table, "", sub) for sub, table in inner._static_methods.items()]
        reachable += [(sub, *found) for sub, found in inner._mounted_static.items()]
        for sub, table, inner_prefix, template in reachable:
            # The bare prefix reaches the mounted router's "/" as well.
            paths = (entry.prefix, entry.prefix + "/") if sub == "/" else (entry.prefix + sub,)
            for path in paths:
                if len(self._mounted_static) >= MAX_JOINED_ROUTES:
                    return  # the rest go the ordinary way, router by router
                if path in self._http_static or path in self._mounted_static:
                    continue
                if self._reaches(entry, path):
                    self._mounted_static[path] = (table, entry.prefix + inner_prefix, template)

    def _reaches(self, entry: Mount, path: str) -> bool:
        """Whether a request for ``path`` (with no static route here) reaches ``entry`` surely."""
        for candidate in self._buckets.get(path[1:].split("/", 1)[0], self._wildcards):
            if candidate is entry:
                assert entry.path.regex is not None
                found = entry.path.regex.match(path)
                return found is not None and found.group(0) == entry.prefix
            if isinstance(candidate, WebSocketRoute):
                continue
            if isinstance(candidate, Route) and candidate.path.match(path) is None:
                continue
            if isinstance(candidate, Mount):
                regex = candidate.path.regex
                if regex is not None and regex.match(path) is None:
                    continue
            # It matches first (or answers 405), or a host decides per request.
            return False
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        root = scope.get("root_path")
        if root and root[-1] == "/" and kind != "lifespan":
            # "--root-path /x/": every child sees "/x", and paths below it.
            scope = without_trailing_slash_root(scope)
        if kind == "http":
            if root:
                # ``route_path`` inline for the common shape (``path`` under
                # ``root_path``, as a mount leaves it): one call less a level.
                path = scope.get("path", "/")
                base: str = scope["root_path"]
                end = len(base)
                if path.startswith(base) and path[end : end + 1] in ("", "/") and base[-1:] != "/":
                    path = path[end:] or "/"
                else:
                    path = route_path(scope)
            else:
                path = scope["path"]
            method = scope["method"]
            allowed: set[str] | None = None
            table = self._static_methods.get(path)
            if table is not None:
                # The hot path: a static route, one dictionary look-up each.
                app = table.get(method) or table.get(None)
                if app is not None:
                    child = {**scope}  # the fastest copy of a dict (a clone of its table)
                    if "path_params" not in child:
                        child["path_params"] = {}
                    if RESOLVER_KEY not in child:
                        child[RESOLVER_KEY] = self
                        child[ROOT_PATH_KEY] = child["root_path"] if root else ""
                    # Literal keys: two cheap look-ups on the hot path (see ROUTE_TEMPLATE).
                    child["route_template"] = path
                    if "asgikit.route_prefix" in child or "asgikit.route_template_sink" in child:
                        _record_template(child, path)
                    await app(child, receive, send)
                    return
                allowed = {m for m in table if m is not None}
            else:
                mounted = self._mounted_static.get(path)
                if mounted is not None:
                    table, prefix, template = mounted
                    app = table.get(method) or table.get(None)
                    if app is not None:
                        # The scope the mounted routers would build, built at once.
                        child = dict(scope)
                        outer = scope.get("path_params")
                        child["path_params"] = {**outer} if outer else {}
                        if RESOLVER_KEY not in child:
                            child[RESOLVER_KEY] = self
                            child[ROOT_PATH_KEY] = child.get("root_path", "")
                        prefixes = child[_PREFIX_KEY] = scope.get(_PREFIX_KEY, "") + prefix
                        template = child[ROUTE_TEMPLATE] = prefixes + template
                        sink = child.get(ROUTE_TEMPLATE_SINK)
                        if sink is not None:
                            sink[0] = template
                        if root:
                            child["path"] = full_path(scope)
                            child["root_path"] = scope["root_path"] + prefix
                        else:
                            child["root_path"] = prefix
                        await app(child, receive, send)
                        return
        elif kind == "lifespan":
            await serve_lifespan(self._lifespan_apps, scope, receive, send)
            return
        elif kind == "websocket":
            path = route_path(scope) if root else scope["path"]
            ws_static = self._ws_static.get(path)
            if ws_static is not None:
                await ws_static[0].app(self._child(scope, {}, path), receive, send)
                return
            method = ""
            allowed = None
        else:
            raise RuntimeError(f"router cannot handle scope type {kind!r}")

        # The first segment picks the bucket; toggling a trailing slash keeps it.
        segment = path[1:].partition("/")[0]
        for candidate in self._buckets.get(segment, self._wildcards):
            if isinstance(candidate, Route):
                if kind != "http":
                    continue
                params = candidate.path.match(path)
                if params is None:
                    continue
                if candidate.methods is not None and method not in candidate.methods:
                    allowed = (allowed or set()) | candidate.methods
                    continue
                await candidate.app(
                    self._child(scope, params, candidate.path.template), receive, send
                )
                return
            if isinstance(candidate, Mount):
                if allowed:
                    continue  # a route matched the path; its 405 comes first
                flat = self._flat.get(candidate) if kind == "http" else None
                if flat is not None:
                    # The routes below, by one expression (``_routing_flat``).
                    found = flat.regex.fullmatch(path)
                    if found is None:
                        continue  # not below this mount
                    hit = flat.take(path, found, method)
                    if hit is not None:
                        app, params, template, prefix = hit
                        child = self._mounted_child(scope, root, params, prefix, template)
                        await app(child, receive, send)
                        return
                await_app = self._mount_scope(candidate, scope, path)
                if await_app is None:
                    continue
                await candidate.app(await_app, receive, send)
                return
            if isinstance(candidate, WebSocketRoute):
                if kind != "websocket":
                    continue
                params = candidate.path.match(path)
                if params is None:
                    continue
                await candidate.app(
                    self._child(scope, params, candidate.path.template), receive, send
                )
                return
            if isinstance(candidate, Host):
                params = self._hosts[candidate].match(
                    host_header(scope)[0], scope.get("scheme") or "http"
                )
                if params is None:
                    continue
                await candidate.app(self._child(scope, params), receive, send)
                return

        if "asgikit.route_template_sink" in scope or "route_template" in scope:
            scope = _unmatched(scope)
        if allowed:
            await method_not_allowed(scope, receive, send, allowed)
            return
        if kind == "http" and self.redirect_slashes and path != "/":
            # The path with its trailing slash toggled: a static path is one
            # look-up, and patterns are tried only where some could match.
            routes = self._route_buckets.get(segment, self._route_wildcards)
            if path in self._toggled_static or (routes and _any_matches(routes, _toggle(path))):
                location = self._slash_redirect(scope, _toggle(path))
                if location is not None:
                    await RedirectResponse(location)(scope, receive, send)
                    return
        if (
            self._default_not_found
            and kind == "http"
            and "asgikit.exception_handlers" not in scope  # HANDLERS_KEY
            and "asgikit.raise_http_exceptions" not in scope  # RAISE_KEY
        ):
            # ``routes.not_found``'s own shortcut, inline: the answer without Accept.
            for name, _ in scope.get("headers", ()):
                if name == b"accept":
                    break
            else:
                headers = list(_NOT_FOUND_HEADERS)
                await send({"type": "http.response.start", "status": 404, "headers": headers})
                body = b"" if method == "HEAD" else _NOT_FOUND_BODY
                await send({"type": "http.response.body", "body": body})
                return
        await self.not_found(scope, receive, send)

    def _child(self, scope: Scope, params: dict[str, Any], template: str | None = None) -> Scope:
        child = {**scope}
        outer = scope.get("path_params")
        child["path_params"] = {**outer, **params} if outer else params
        if RESOLVER_KEY not in child:
            child[RESOLVER_KEY] = self
            child[ROOT_PATH_KEY] = child.get("root_path", "")
        if template is not None:  # a host adds nothing to the path's template
            # The mounts' prefix before it, and an observer's sink told.
            full = child[ROUTE_TEMPLATE] = child.get(_PREFIX_KEY, "") + template
            sink = child.get(ROUTE_TEMPLATE_SINK)
            if sink is not None:
                sink[0] = full
        return child

    def _mounted_child(
        self, scope: Scope, root: str | None, params: dict[str, Any], prefix: str, template: str
    ) -> dict[str, Any]:
        """The scope the mounted routers (at ``prefix``) would give a route's app, at once."""
        child = {**scope}  # the fastest copy of a dict (a clone of its table)
        outer = scope.get("path_params")
        child["path_params"] = {**outer, **params} if outer else params
        if RESOLVER_KEY not in child:
            child[RESOLVER_KEY] = self
            child[ROOT_PATH_KEY] = child.get("root_path", "")
        prefixes = child[_PREFIX_KEY] = scope.get(_PREFIX_KEY, "") + prefix
        template = child[ROUTE_TEMPLATE] = prefixes + template
        sink = child.get(ROUTE_TEMPLATE_SINK)
        if sink is not None:
            sink[0] = template
        if root:
            child["path"] = full_path(scope)
            child["root_path"] = scope["root_path"] + prefix
        else:
            child["root_path"] = prefix
        return child

    def _mount_scope(self, entry: Mount, scope: Scope, path: str) -> Scope | None:
        compiled = entry.path
        assert compiled.regex is not None
        found = compiled.regex.match(path)
        if found is None:
            return None
        if compiled.convertors:
            params = compiled.convert(found.groupdict())
            if params is None:
                return None
        else:
            params = {}
        # ``_child`` and ``full_path`` inline: this runs at every mount level.
        child = dict(scope)
        outer = scope.get("path_params")
        child["path_params"] = {**outer, **params} if outer else params
        if RESOLVER_KEY not in child:
            child[RESOLVER_KEY] = self
            child[ROOT_PATH_KEY] = child.get("root_path", "")
        prefixes = scope.get(_PREFIX_KEY, "")
        template = child[ROUTE_TEMPLATE] = prefixes + (compiled.template or "/")
        sink = child.get(ROUTE_TEMPLATE_SINK)
        if sink is not None:
            sink[0] = template
        child[_PREFIX_KEY] = prefixes + compiled.template
        root: str = scope.get("root_path", "")
        if root:
            full: str = scope.get("path", "/")
            end = len(root)
            if not (full.startswith(root) and full[end : end + 1] in ("", "/")):
                full = full_path(scope)
            child["path"] = full
        child["root_path"] = root + found.group(0)
        return child

    def _slash_redirect(self, scope: Scope, other: str) -> str | None:
        """The ``Location`` for the toggled path ``other``, which matches a route."""
        decoded: str = scope.get("root_path", "") + other
        if decoded.startswith(("//", "/\\")):
            return None  # would read as another host: never redirect there
        # ASGI paths are decoded; the Location must be encoded again, or a
        # decoded "?", "#", "%", CR/LF or tab would change what it points to.
        try:
            location = quote(decoded.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)
        except UnicodeEncodeError:
            return None
        query = scope.get("query_string", b"")
        if query:
            location += "?" + quote(query, safe=_QUERY_SAFE)
        # A relative reference keeps the client's scheme and host, right behind a proxy.
        return location

    def _url_path_for(self, name: str, params: dict[str, Any]) -> str | None:
        for entry in self.routes:
            path: str | None = entry.url_path_for(name, dict(params))
            if path is not None:
                return path
        return None

    def url_path_for(self, name: str, /, **path_params: Any) -> str:
        """The path, below this router and percent-encoded, of the route called ``name``."""
        return encode_path(self.resolve_path(name, path_params))

    def resolve_path(self, name: str, path_params: dict[str, Any], /) -> str:
        """The decoded path, below this router, of the route called ``name`` (``_reverse``)."""
        path = self._url_path_for(name, path_params)
        if path is None:
            given = ", ".join(sorted(path_params)) or "no parameters"
            raise NoMatchFound(f"no route named {name!r} takes {given}")
        return path

    def __repr__(self) -> str:
        return f"router({len(self.routes)} entries)"


def _flattens(entry: Mount) -> bool:
    """Whether ``entry`` is a plain router at a fixed prefix, whose routes can join ours."""
    return type(entry.app) is Router and bool(entry.prefix) and not entry.path.convertors


def _toggle(path: str) -> str:
    """``path`` with its trailing slash removed, or added."""
    return path[:-1] if path[-1] == "/" else path + "/"


def _any_matches(routes: list[Route], path: str) -> bool:
    return any(entry.path.match(path) is not None for entry in routes)


def _record_template(child: Scope, template: str) -> None:
    """Put the mounts' prefix before ``template``, and tell an observer's sink."""
    full = child.get(_PREFIX_KEY, "") + template
    child[ROUTE_TEMPLATE] = full
    sink = child.get(ROUTE_TEMPLATE_SINK)
    if sink is not None:
        sink[0] = full


def _unmatched(scope: Scope) -> Scope:
    """``scope`` for an answer where nothing matched: no template, and the sink told so."""
    sink = scope.get(ROUTE_TEMPLATE_SINK)
    if sink is not None:
        sink[0] = None
    if ROUTE_TEMPLATE not in scope:
        return scope
    scope = dict(scope)
    del scope[ROUTE_TEMPLATE]
    return scope


def router(
    *routes: BaseRoute, redirect_slashes: bool = True, not_found: ASGIApp | None = None
) -> Router:
    """An ASGI app that routes to ``routes``: 404 when nothing matches, 405 with ``Allow``.

    HEAD is served wherever GET is.  With ``redirect_slashes`` a path that
    matches only with the trailing slash toggled is redirected there.
    ``not_found`` replaces the default 404 answer.
    """
    return Router(routes, redirect_slashes=redirect_slashes, not_found=not_found)


def route(
    path: str,
    endpoint: Any,
    *,
    methods: Sequence[str] | None = None,
    name: str | None = None,
    schema: Mapping[str, Any] | None = None,
) -> Route:
    """An HTTP route: ``endpoint`` is ``async def (request) -> response`` or an ASGI app.

    ``methods`` defaults to GET (and so HEAD) for request handlers and to any
    method for ASGI apps.  ``name`` defaults to the endpoint's ``__name__``.
    ``schema`` is the route's OpenAPI operation for ``asgikit.schemas``.
    """
    return Route(path, endpoint, methods=methods, name=name, schema=schema)


def websocket_route(path: str, endpoint: Any, *, name: str | None = None) -> WebSocketRoute:
    """A WebSocket route: ``endpoint`` is ``async def (websocket)`` or an ASGI app."""
    return WebSocketRoute(path, endpoint, name=name)


def mount(prefix: str, app: ASGIApp, *, name: str | None = None) -> Mount:
    """Mount ``app`` below ``prefix``: it sees ``root_path`` grown by the prefix."""
    return Mount(prefix, app, name=name)


def host(pattern: str, app: ASGIApp, *, name: str | None = None) -> Host:
    """Send requests whose ``Host`` matches ``pattern`` (``"{sub}.example.com"``) to ``app``.

    Names compare without case; a pattern with a port (``"api.example.org:8443"``)
    matches only that port, compared as a number, and one without a port any
    valid port.  A Host that is malformed (``api.example.org:evil``, a port
    past 65535) never matches.  An invalid pattern raises ``ValueError``.
    """
    compile_host(pattern)  # refuse a bad pattern here, where it is written
    return Host(pattern, app, name=name)


__all__ = [
    "ROUTE_TEMPLATE",
    "ROUTE_TEMPLATE_SINK",
    "NoMatchFound",
    "Router",
    "encode_path",
    "host",
    "mount",
    "route",
    "router",
    "url_path_for",
    "websocket_route",
]
