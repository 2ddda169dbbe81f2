"""Random routing trees: mounted routers looked through answer as router by router.

A router mounted plainly (``mount("/a", router(...))``) has its pattern
routes matched from the outer router (``asgikit._routing_flat``).  Here
Hypothesis builds random trees (mounts up to three deep, static and pattern
routes with every convertor and a refusing custom one, method subsets,
overlapping patterns, prefixes sharing characters, trailing slashes, mounts
at a parameterised prefix, WebSocket routes, hosts, plain apps, slash
redirects on and off) and random requests (paths shaped like the routes and
arbitrary text: escapes, ``//``, newlines, ``..``, unicode, long segments;
odd methods; ``root_path`` variants).  Each request goes to the tree as
built and to the same tree with every mounted router hidden behind a plain
function, which the outer router cannot look into: the reference.  The
answers (status, headers, body), the endpoint's scope and the reverse URLs
seen from inside it must be the same.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from asgikit import PlainTextResponse, Request, host, mount, route, router, websocket_route
from asgikit.convertors import Convertor, register_convertor
from asgikit.routes import BaseRoute
from asgikit.routing import ROUTE_TEMPLATE_SINK, url_path_for
from asgikit.types import ASGIApp, Message, Receive, Scope, Send
from asgikit.websockets import WebSocket


class _EvenConvertor(Convertor[int]):
    """Digits, but an odd number is refused after the expression matched."""

    regex = "[0-9]+"

    def convert(self, value: str) -> int:
        number = int(value, 10)
        if number % 2:
            raise ValueError("odd")
        return number

    def to_string(self, value: int) -> str:
        return str(value)


class _OneOfConvertor(Convertor[str]):
    """``a`` or ``ab``, with a group of its own: an alternation and a numbered group."""

    regex = "(a)b?|b"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_convertor("fuzz_even", _EvenConvertor())
register_convertor("fuzz_one_of", _OneOfConvertor())

CONVERTORS = ["str", "int", "float", "uuid", "fuzz_one_of", "path", "fuzz_even"]
LITERALS = ["a", "ab", "b", "u", "v1", "x.y", "é", "a b"]
METHODS = ["GET", "HEAD", "POST", "PUT", "OPTIONS", "DELETE", "BREW"]
UUID = "12345678-1234-5678-1234-567812345678"
VALUES = [
    "7",
    "8",
    "01",
    "1.5",
    UUID,
    UUID.replace("-", ""),
    "x",
    "a",
    "ab",
    "..",
    ".",
    "%2F",
    "%",
    "é",
    "a\nb",
    "\n",
    "",
    "a" * 300,
    "0" * 70,
]

# --- the tree, as data --------------------------------------------------------


@dataclass
class RouterSpec:
    entries: list[Any]
    redirect_slashes: bool = True


@dataclass
class RouteSpec:
    template: str
    methods: list[str] | None
    websocket: bool = False
    raw: bool = False


@dataclass
class MountSpec:
    prefix: str
    inner: RouterSpec | None  # None: a plain app, not a router
    #: Mount the very app of the router's previous mount again (one router at two prefixes).
    again: bool = False


@dataclass
class HostSpec:
    pattern: str
    inner: RouterSpec


@dataclass
class Built:
    app: ASGIApp
    seen: list[tuple[str, Scope]] = field(default_factory=list)
    #: Every entry's name as ``url_path_for`` takes it from the outer router.
    names: list[str] = field(default_factory=list)


def _segments(draw: Any, *, params: bool, allow_path: bool) -> list[str]:
    count = draw(st.sampled_from([1, 1, 2, 2, 2, 3] if not params else [0, 1, 1, 2, 2, 3]))
    segments = []
    used = 0
    for index in range(count):
        if params and draw(st.booleans()):
            kinds = (
                CONVERTORS
                if allow_path and index == count - 1
                else [*CONVERTORS[:-2], "fuzz_even"]
            )
            kind = draw(st.sampled_from(kinds))
            segments.append(f"{{p{used}:{kind}}}")
            used += 1
        else:
            segments.append(draw(st.sampled_from([*LITERALS[:3], *LITERALS[:3], *LITERALS, ""])))
    return segments


@st.composite
def route_templates(draw: Any) -> str:
    segments = _segments(draw, params=True, allow_path=True)
    template = "/" + "/".join(segments)
    if draw(st.integers(0, 4)) == 0 and not template.endswith("/"):
        template += "/"
    return template


@st.composite
def mount_prefixes(draw: Any) -> str:
    choice = draw(st.integers(0, 9))
    if choice == 0 and draw(st.booleans()):
        return "/"  # stripped to "": a mount that takes every path
    if choice == 1 and draw(st.booleans()):
        return "/u/{uid:int}"
    literals = draw(st.lists(st.sampled_from(["a", "ab", "b", *LITERALS]), min_size=1, max_size=2))
    return "/" + "/".join(literals) + ("/" if draw(st.integers(0, 5)) == 0 else "")


def router_specs(depth: int) -> st.SearchStrategy[RouterSpec]:
    @st.composite
    def build(draw: Any) -> RouterSpec:
        entries: list[Any] = []
        for _ in range(draw(st.integers(0, 6))):
            kind = draw(st.integers(0, 11))
            if kind <= 5 or (depth == 0 and kind >= 8):
                methods = draw(
                    st.none() | st.lists(st.sampled_from(METHODS[:6]), min_size=1, max_size=3)
                )
                entries.append(RouteSpec(draw(route_templates()), methods, raw=kind == 5))
            elif kind == 6:
                entries.append(RouteSpec(draw(route_templates()), None, websocket=True))
            elif kind == 7 and depth > 0:
                entries.append(HostSpec("h.example.org", draw(router_specs(0))))
            elif depth > 0:
                previous = [e for e in entries if isinstance(e, MountSpec)]
                if previous and draw(st.integers(0, 5)) == 0:
                    entries.append(MountSpec(draw(mount_prefixes()), previous[-1].inner, True))
                elif draw(st.integers(0, 7)) == 0:
                    entries.append(MountSpec(draw(mount_prefixes()), None))
                else:
                    entries.append(
                        MountSpec(draw(mount_prefixes()), draw(router_specs(depth - 1)))
                    )
        return RouterSpec(entries, draw(st.booleans()))

    return build()


# --- the tree, built -----------------------------------------------------------


def _opaque(app: ASGIApp) -> ASGIApp:
    """``app`` behind a plain function: the outer router cannot look inside it."""

    async def passthrough(scope: Scope, receive: Receive, send: Send) -> None:
        await app(scope, receive, send)

    passthrough.__asgikit_app__ = app  # type: ignore[attr-defined]  # url_for looks through
    return passthrough


def build(spec: RouterSpec, *, opaque: bool) -> Built:
    built = Built(app=None)  # type: ignore[arg-type]
    counter = iter(range(10_000))

    def endpoint(name: str) -> Callable[[Request], Any]:
        async def handler(request: Request) -> PlainTextResponse:
            built.seen.append((name, dict(request.scope)))
            return PlainTextResponse(name)

        return handler

    def raw(name: str) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            built.seen.append((name, dict(scope)))
            await PlainTextResponse(name)(scope, receive, send)

        return app

    def ws(name: str) -> Callable[[WebSocket], Any]:
        async def handler(websocket: WebSocket) -> None:
            built.seen.append((name, dict(websocket.scope)))
            await websocket.close()

        return handler

    def make(spec: RouterSpec, mounted: bool, outer: str) -> ASGIApp:
        entries: list[BaseRoute] = []
        last: Any = None
        for entry in spec.entries:
            name = f"e{next(counter)}"
            built.names.append(outer + name)
            if isinstance(entry, RouteSpec) and entry.methods and "PUT" in entry.methods:
                name = "dup"  # the first route of that name is the one url_for builds
            if isinstance(entry, RouteSpec):
                if entry.websocket:
                    entries.append(websocket_route(entry.template, ws(name), name=name))
                else:
                    app: Any = raw(name) if entry.raw else endpoint(name)
                    entries.append(route(entry.template, app, methods=entry.methods, name=name))
            elif isinstance(entry, MountSpec) and entry.again:
                entries.append(mount(entry.prefix, last, name=name))
            elif isinstance(entry, MountSpec):
                last = (
                    raw(name)
                    if entry.inner is None
                    else make(entry.inner, True, f"{outer}{name}:")
                )
                entries.append(mount(entry.prefix, last, name=name))
            else:
                entries.append(
                    host(entry.pattern, make(entry.inner, False, f"{outer}{name}:"), name=name)
                )
        made = router(*entries, redirect_slashes=spec.redirect_slashes)
        return _opaque(made) if opaque and mounted else made

    built.app = make(spec, False, "")
    return built


# --- requests --------------------------------------------------------------------


GOOD = {
    "str": ["x", "ab", "7", "é", "a b"],
    "int": ["7", "8", "01", "0" * 70],
    "float": ["1.5", "2", "0.25"],
    "uuid": [UUID, UUID.replace("-", "")],
    "path": ["", "x", "x/y", "a/b/", "..", "x/../y"],
    "fuzz_even": ["8", "7", "10"],
    "fuzz_one_of": ["a", "ab", "b", "ba"],
}


def _fill(template: str, draw: Any) -> str:
    """``template`` with each parameter replaced by a value, mostly one its convertor takes."""
    out = []
    rest = template
    while "{" in rest:
        before, _, after = rest.partition("{")
        inside, _, rest = after.partition("}")
        kind = inside.partition(":")[2] or "str"
        out.append(before)
        if draw(st.integers(0, 4)) == 0:
            value: str = draw(st.sampled_from(VALUES) | st.text(max_size=4))
        else:
            value = draw(st.sampled_from(GOOD[kind]))
        out.append(value)
    out.append(rest)
    return "".join(out)


def _shapes(spec: RouterSpec, prefix: str = "", depth: int = 0) -> list[tuple[str, int]]:
    """Every route and mount path in the tree, from the outer router, and how deep."""
    found = []
    for entry in spec.entries:
        if isinstance(entry, RouteSpec):
            found.append((prefix + entry.template, depth))
        elif isinstance(entry, MountSpec):
            below = prefix + entry.prefix.rstrip("/")
            found.append((below, depth))
            if entry.inner is not None:
                found.extend(_shapes(entry.inner, below, depth + 1))
        else:
            found.extend(_shapes(entry.inner, prefix, depth))
    return found


@st.composite
def request_paths(draw: Any, spec: RouterSpec) -> str:
    shapes = _shapes(spec)
    deep = [shape for shape, depth in shapes if depth] or [shape for shape, _ in shapes]
    choice = draw(st.integers(0, 11))
    if deep and choice <= 8:
        path = _fill(draw(st.sampled_from(deep)), draw) or "/"
        tweak = draw(st.integers(0, 9))
        if tweak == 0:
            path = path + "/" if not path.endswith("/") else path[:-1] or "/"
        elif tweak == 1:
            path += draw(st.sampled_from(["\n", "//", "/..", "/%2e", "/x", "\n/x"]))
        elif tweak == 2:
            cut = draw(st.integers(1, max(1, len(path))))
            path = path[:cut]
        return path
    if choice <= 10:
        pieces = draw(st.lists(st.sampled_from(LITERALS + VALUES), max_size=5))
        return "/" + "/".join(pieces)
    text: str = draw(st.text(max_size=12))
    return "/" + text


def _drive(awaitable: Awaitable[None]) -> None:
    """Run a coroutine that never waits on the event loop (these apps do not)."""
    coroutine: Any = awaitable
    try:
        coroutine.send(None)
    except StopIteration:
        return
    coroutine.close()
    raise AssertionError("the app waited on the event loop")


def _answer(built: Built, scope: Scope) -> tuple[Any, ...]:
    sent: list[Message] = []
    incoming: Iterator[Message] = iter(
        [{"type": "websocket.connect"}, {"type": "websocket.disconnect", "code": 1000}]
        if scope["type"] == "websocket"
        else [{"type": "http.request", "body": b"", "more_body": False}]
    )

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        sent.append(message)

    built.seen.clear()
    try:
        _drive(built.app(scope, receive, send))
    except Exception as exc:  # the same failure either way is the same answer
        sent.append({"raised": type(exc).__name__, "text": str(exc)})
    return sent, scope.get(ROUTE_TEMPLATE_SINK)


def _reverse(scope: Scope, names: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """``url_path_for`` from inside the endpoint, for a few names, as text or the error."""
    request = Request(scope)
    out = []
    for name, params in names:
        try:
            out.append(
                url_path_for(scope, name, **params) + " " + str(request.url_for(name, **params))
            )
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    return out


ROOTS = ["", "/x", "/x/", "/", "relative:/x", "relative:/x/", "/é"]


def _scope(path: str, method: str, root: str, extra: dict[str, Any], kind: str) -> Scope:
    scope: Scope = {
        "type": kind,
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "http" if kind == "http" else "ws",
        "path": path,
        "raw_path": path.encode("utf-8", "surrogateescape"),
        "query_string": b"q=1",
        "root_path": "",
        "headers": [(b"host", b"example.org")],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }
    if kind == "http":
        scope["method"] = method
    if root.startswith("relative:"):
        scope["root_path"] = root.removeprefix("relative:")  # path given below root_path
    elif root:
        scope["root_path"] = root
        scope["path"] = root + path if root != "/" else path
    scope.update(extra)
    if ROUTE_TEMPLATE_SINK in scope:
        scope[ROUTE_TEMPLATE_SINK] = [None]
    return scope


EXTRAS: list[dict[str, Any]] = [
    {},
    {"path_params": {"p0": "outer", "uid": "outer"}},
    {ROUTE_TEMPLATE_SINK: [None], "asgikit.route_prefix": "/outer"},
    {"headers": [(b"host", b"h.example.org")]},
    {"route_template": "/before", "asgikit.route_prefix": "/outer", "path_params": {}},
]

_NAME_PARAMS: list[dict[str, Any]] = [
    {},
    {"p0": 8},
    {"p0": "x", "uid": 3},
    {"p0": 8, "p1": 2, "uid": 1},
    {"path": "z"},
]


def check(spec: RouterSpec, requests: list[tuple[str, str, str, int, str]]) -> None:
    """Each request answers the same from the tree and from the reference."""
    joined = build(spec, opaque=False)
    reference = build(spec, opaque=True)
    for path, method, root, extra, kind in requests:
        answers = []
        for built in (joined, reference):
            scope = _scope(path, method, root, EXTRAS[extra], kind)
            answers.append((_answer(built, scope), [dict(s) for _, s in built.seen], built))
        (fast, fast_seen, _), (slow, slow_seen, _) = answers
        where = (path, method, root, EXTRAS[extra], kind)
        assert fast == slow, where
        assert len(fast_seen) == len(slow_seen) <= 1, where
        if fast_seen:
            assert fast_seen[0].pop("asgikit.router") is joined.app, where
            assert slow_seen[0].pop("asgikit.router") is reference.app, where
            fast_seen[0]["asgikit.router"] = joined.app
            slow_seen[0]["asgikit.router"] = reference.app
            reverse = [(n, p) for n in [*joined.names, "dup"] for p in _NAME_PARAMS]
            assert _reverse(fast_seen[0], reverse) == _reverse(slow_seen[0], reverse), where
            for scope in (fast_seen[0], slow_seen[0]):
                del scope["asgikit.router"]
            assert fast_seen[0] == slow_seen[0], where


@st.composite
def cases(draw: Any) -> tuple[RouterSpec, list[tuple[str, str, str, int, str]]]:
    spec = draw(router_specs(3))
    requests = draw(
        st.lists(
            st.tuples(
                request_paths(spec),
                st.sampled_from(["GET"] * 4 + METHODS),
                st.sampled_from(ROOTS),
                st.integers(0, len(EXTRAS) - 1),
                st.sampled_from(["http"] * 7 + ["websocket"]),
            ),
            min_size=8,
            max_size=24,
        )
    )
    return spec, requests


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(cases())
# A newline after a two-segment mount prefix ("$" matched before it).
@example(
    (
        RouterSpec([MountSpec("/c/d", RouterSpec([RouteSpec("/{p0}/{p1}", None)]))]),
        [("/c/d\n", "GET", "", 0, "http")],
    )
)
# A static route behind a pattern in a mount that a host before it keeps
# out of the outer router's look-up: the expression must leave it alone.
@example(
    (
        RouterSpec(
            [
                HostSpec("h.example.org", RouterSpec([])),
                MountSpec("/m", RouterSpec([RouteSpec("/{p0}", None), RouteSpec("/a", None)])),
            ]
        ),
        [("/m/a", "GET", "", 0, "http"), ("/m/a", "POST", "/x", 0, "http")],
    )
)
def test_random_trees_answer_as_router_by_router(case: Any) -> None:
    check(*case)


def focused_specs(depth: int) -> st.SearchStrategy[RouterSpec]:
    """Routers of pattern routes and plain mounts only: what the expression answers itself."""

    @st.composite
    def build(draw: Any) -> RouterSpec:
        entries: list[Any] = []
        for _ in range(draw(st.integers(1, 5))):
            if depth > 0 and draw(st.integers(0, 2)) == 0:
                prefix = "/" + draw(st.sampled_from(["a", "ab", "b", "a/b", "a/"]))
                entries.append(MountSpec(prefix, draw(focused_specs(depth - 1))))
            else:
                first = draw(st.sampled_from(["a", "ab", "b", "{p9}", "{p9:int}"]))
                rest = draw(route_templates())
                methods = draw(st.none() | st.sampled_from([["GET"], ["POST"], ["GET", "PUT"]]))
                entries.append(RouteSpec("/" + first + rest, methods))
        return RouterSpec(entries, draw(st.booleans()))

    return build()


@st.composite
def _focused_path(draw: Any, shapes: list[str]) -> str:
    return _fill(draw(st.sampled_from(shapes)), draw) or "/"


@st.composite
def focused_cases(draw: Any) -> tuple[RouterSpec, list[tuple[str, str, str, int, str]]]:
    spec = draw(focused_specs(3))
    shapes = [shape for shape, depth in _shapes(spec) if depth] or ["/"]
    requests = draw(
        st.lists(
            st.tuples(
                _focused_path(shapes),
                st.sampled_from(["GET", "GET", "POST", "PUT", "HEAD"]),
                st.sampled_from(ROOTS),
                st.integers(0, len(EXTRAS) - 1),
                st.just("http"),
            ),
            min_size=8,
            max_size=16,
        )
    )
    return spec, requests


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(focused_cases())
def test_random_trees_of_plain_mounts_answer_as_router_by_router(case: Any) -> None:
    check(*case)


# --- CPU: a long path through many mounted pattern routes -------------------------


def _work(app: ASGIApp, path: str) -> tuple[int, int]:
    """(status, calls) for ``path``: Python functions and C functions (regex searches) called."""
    import sys

    built = Built(app)
    calls = 0

    def profile(frame: Any, event: str, arg: object) -> None:
        nonlocal calls
        if event in ("call", "c_call"):
            calls += 1

    scope = _scope(path, "GET", "", {}, "http")
    sys.setprofile(profile)
    try:
        sent, _ = _answer(built, scope)
    finally:
        sys.setprofile(None)
    return sent[0]["status"], calls


def test_a_long_path_through_many_mounted_pattern_routes_costs_calls_independent_of_length() -> (
    None
):
    # Every expression is tried once per request, whatever the path holds:
    # the calls (Python and C: each regex search is one) do not grow with
    # the path's segments.  Each expression is linear in the path (no route
    # here nests unbounded repeats), so the work stays linear.
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    def leaf() -> ASGIApp:
        return router(
            *(route(f"/r{j}/{{x:int}}", hello) for j in range(20)),
            route("/{a}/{b}/x", hello),
            route("/{p:path}/end", hello),
            route("/{a}/tail", hello),
            route("/f/{x:float}/{y:uuid}", hello),
            route("/{x:fuzz_even}/e", hello),
        )

    middle = router(*(mount(f"/n{i}", leaf()) for i in range(10)), route("/{q}/w", hello))
    app = router(*(mount(f"/m{i}", middle) for i in range(10)), mount("/z", leaf()))
    for shape in ("a/", "a", "1.", "/"):
        counts = set()
        for size in (1_000, 100_000):
            path = "/m3/n4/" + shape * (size // len(shape))
            _work(app, path)  # warm: nothing built lazily is counted
            counts.add(_work(app, path))
        assert len(counts) == 1, (shape, counts)
