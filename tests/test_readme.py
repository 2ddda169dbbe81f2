"""Every Python block in README.md runs as written, and does what the text around it says.

Each block is a whole program: it is run on its own (``exec`` in a fresh
namespace, in a scratch folder holding the files it names), and then the
``app`` it builds is driven with the test client by the check for its
section.  A block without a check, or a check without a block, fails.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import itertools
import pkgutil
import re
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asgikit.testing import TestClient

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()  # read by pattern: no tomllib on 3.10
Namespace = dict[str, Any]


def python_blocks() -> Iterator[tuple[str, str]]:
    """``(section heading, code)`` for each ```python block, in order."""
    heading = ""
    lines = iter(README.splitlines())
    for line in lines:
        if line.startswith("#"):
            heading = line.lstrip("#").strip()
        elif line.strip() == "```python":
            code = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                code.append(inner)
            yield heading, "\n".join(code) + "\n"


BLOCKS = list(python_blocks())


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder with the files the blocks name."""
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "2026.pdf").write_bytes(b"%PDF-1.7 annual report")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "index.html").write_text("<h1>static</h1>")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SESSION_SECRET", raising=False)
    return tmp_path


def run_block(code: str, heading: str) -> Namespace:
    namespace: Namespace = {"__name__": f"readme_{heading}"}
    exec(compile(code, f"README.md: {heading}", "exec"), namespace)
    return namespace


# -- what each section's block must do ----------------------------------------


def check_routing(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        answer = client.get("/api/users/1")
        assert answer.json() == {"id": 1, "self": "http://testserver/api/users/1"}
        assert client.post("/api/users", json={"name": "ada"}).status_code == 201
        assert client.post("/api/users", content=b"{nope").status_code == 400
        assert client.get("/api/users/x").status_code == 404


def check_composition(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:  # runs the lifespan handler
        assert client.get("/").json() == {"answer": 42}


def check_files(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        report = client.get("/report")
        assert report.content == b"%PDF-1.7 annual report"
        assert 'filename="rapport annuel.pdf"' in report.headers["content-disposition"]
        assert client.get("/static/").text == "<h1>static</h1>"
        assert client.get("/static/../reports/2026.pdf").status_code == 404


def check_forms(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        sent = client.post("/upload", files={"file": ("notes.txt", b"hello")})
        assert sent.json() == {"name": "notes.txt", "size": 5}
        missing = client.post("/upload", files={"other": ("notes.txt", b"hello")})
        assert missing.status_code == 400
        assert client.post("/upload", data={"file": "not a file"}).status_code == 400


def check_websockets(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        with client.websocket_connect("/ws", subprotocols=["chat.v1"]) as ws:
            assert ws.accepted_subprotocol == "chat.v1"
            ws.send_text("hi")
            assert ws.receive_text() == "hi"
        with client.websocket_connect("/ws") as ws:
            assert ws.accepted_subprotocol is None
            ws.send_text("plain")
            assert ws.receive_text() == "plain"
        with client.stream("GET", "/ticks") as events:
            assert events.headers["content-type"].startswith("text/event-stream")
            first = next(events.iter_text())
        assert first == 'event: tick\nid: 0\ndata: {"n":0}\n\n'


def check_middleware(ns: Namespace) -> None:
    with TestClient(ns["app"], base_url="http://example.com") as client:
        answer = client.get(
            "/", headers={"Origin": "https://app.example.com", "Accept-Encoding": "gzip"}
        )
        assert answer.status_code == 200
        assert answer.headers["content-encoding"] == "gzip"
        assert answer.headers["access-control-allow-origin"] == "https://app.example.com"
        assert answer.text.startswith("hello hello")
    with TestClient(ns["app"], base_url="http://evil.example.org") as client:
        assert client.get("/").status_code == 400


def check_gateway(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        assert client.get("/elsewhere").status_code == 404
        too_big = client.post("/api/upload", content=b"x" * (2**20 + 1))
        assert too_big.status_code == 413


def check_traffic(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        first = client.get("/")
        assert first.status_code == 200
        assert "ratelimit-policy" in first.headers
        assert client.get("/").status_code == 200
        refused = client.get("/")
        assert refused.status_code == 429
        assert int(refused.headers["retry-after"]) > 0
        assert client.get("/health").status_code == 200  # excluded


def check_telemetry(ns: Namespace) -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    ns["provider"].add_span_processor(SimpleSpanProcessor(spans))
    with TestClient(ns["app"]) as client:
        assert client.get("/api/users/7").json() == {"id": 7}
    (span,) = spans.get_finished_spans()
    assert span.name == "GET /api/users/{id:int}"
    assert span.attributes is not None
    assert span.attributes["http.route"] == "/api/users/{id:int}"


def check_openapi(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {"/api/users/{id}", "/api/users"}
    (parameter,) = document["paths"]["/api/users/{id}"]["get"]["parameters"]
    assert parameter["schema"] == {"type": "integer"}
    assert "201" in document["paths"]["/api/users"]["post"]["responses"]


def check_wsgi(ns: Namespace) -> None:
    with TestClient(ns["app"]) as client:
        assert client.get("/").text == "asgikit"
        answer = client.get("/legacy/hello").json()
    assert answer == {"script_root": "/legacy", "url": "/legacy/hello"}


def check_testing(ns: Namespace) -> None:
    assert "client" in ns  # its own asserts ran inside the block


CHECKS: dict[str, Callable[[Namespace], None]] = {
    "Routing, requests, responses": check_routing,
    "Composition and lifespan": check_composition,
    "Files and static files": check_files,
    "Forms and uploads": check_forms,
    "WebSockets, server-sent events, broadcast": check_websockets,
    "Middleware": check_middleware,
    "Gateways": check_gateway,
    "Traffic control: deadlines and rate limits": check_traffic,
    "Observability: OpenTelemetry": check_telemetry,
    "OpenAPI from routes": check_openapi,
    "WSGI apps, mounted": check_wsgi,
    "Testing": check_testing,
}


def test_every_block_has_a_check_and_every_check_a_block() -> None:
    assert [heading for heading, _ in BLOCKS] == list(CHECKS)


@pytest.mark.parametrize(("heading", "code"), BLOCKS, ids=[h for h, _ in BLOCKS])
def test_readme_block_runs_as_written(scratch: Path, heading: str, code: str) -> None:
    namespace = run_block(code, heading)
    CHECKS[heading](namespace)


# -- the install section and the table of servers ------------------------------


def distribution_name() -> str:
    project = PYPROJECT.split("[project]")[1].split("\n[")[0]
    (name,) = re.findall(r'^name = "(.+)"', project, re.MULTILINE)
    return name


def test_install_section_comes_before_the_tour_and_names_the_distribution() -> None:
    assert README.index("## Install") < README.index("## A tour")
    assert f"pip install {distribution_name()}\n" in README
    extras = PYPROJECT.split("[project.optional-dependencies]")[1].split("\n[")[0]
    names = re.findall(r"^(\w+) = \[", extras, re.MULTILINE)
    assert "testing" in names
    for extra in names:
        if extra != "dev":
            assert f"`{extra}`" in README, f"extra {extra} is not described"


def test_every_install_hint_in_the_readme_names_this_distribution() -> None:
    hints = re.findall(r"pip install '?([A-Za-z0-9_.-]+)\[", README)
    assert hints
    assert set(hints) == {distribution_name()}


def test_python_versions_in_the_readme_match_pyproject() -> None:
    (requires,) = re.findall(r'^requires-python = "(.+)"', PYPROJECT, re.MULTILINE)
    assert f'`requires-python = "{requires}"`' in README
    assert requires == ">=3.10"
    assert '"Programming Language :: Python :: 3.10"' in PYPROJECT
    assert "CPython 3.10 or later" in README


def test_server_table_matches_the_server_matrix() -> None:
    matrix = pytest.importorskip("tests.servers.test_matrix")
    servers = {name.split("-")[0] for name in matrix.SERVERS}
    table = [line for line in README.splitlines() if line.startswith("| ")][1 : 1 + len(servers)]
    assert {row.split("|")[1].split()[0] for row in table} == servers
    gaps = {server for reasons in matrix.GAPS.values() for server in reasons}
    assert gaps == {"daphne"}  # the only server the table says lacks something
    daphne = next(row for row in table if row.startswith("| daphne"))
    for lacking in ("lifespan", "websocket.http.response", "close reason"):
        assert lacking in daphne
    for row in table:
        if not row.startswith("| daphne"):
            assert row.split("|")[3].strip().startswith("nothing")
    reasons = {reason for r in matrix.GAPS.values() for reason in r.values()}
    assert reasons == {matrix.LIFESPAN, matrix.WS_HTTP_RESPONSE, matrix.CLOSE_REASON}


# -- examples in docstrings ------------------------------------------------------

#: Docstring examples that are sketches (``router(...)``, names from around
#: them), not programs yet: each must fail, so the day one is made whole the
#: test says to drop it from here.
SKETCHES = {
    "asgikit.middleware.http_middleware",
}


def public_docstrings() -> Iterator[tuple[str, str]]:
    """``(qualified name, docstring)`` of each public module and each name in its ``__all__``."""
    import asgikit

    seen: set[int] = set()
    names = ["asgikit"] + [
        info.name
        for info in pkgutil.walk_packages(asgikit.__path__, "asgikit.")
        if not any(part.startswith("_") for part in info.name.split("."))
    ]
    for module_name in sorted(names):
        module = importlib.import_module(module_name)
        objects = [(module_name, module)]
        for attribute in module.__all__:
            obj = getattr(module, attribute)
            home = getattr(obj, "__module__", None) or module_name
            objects.append((f"{home}.{getattr(obj, '__qualname__', attribute)}", obj))
        for name, obj in objects:
            doc = getattr(obj, "__doc__", None)
            if isinstance(doc, str) and id(doc) not in seen:
                seen.add(id(doc))
                yield name, doc


def literal_blocks(doc: str) -> list[str]:
    """The reStructuredText literal blocks (after a ``::`` paragraph) in ``doc``."""
    blocks = []
    lines = inspect.cleandoc(doc).splitlines()
    for number, line in enumerate(lines):
        if line.rstrip().endswith("::"):
            body = list(
                itertools.takewhile(lambda s: not s or s.startswith(" "), lines[number + 1 :])
            )
            blocks.append(textwrap.dedent("\n".join(body)).strip() + "\n")
    return blocks


DOC_EXAMPLES = [(name, code) for name, doc in public_docstrings() for code in literal_blocks(doc)]


def test_the_docstring_examples_are_found() -> None:
    names = {name for name, _ in DOC_EXAMPLES}
    assert {"asgikit.composition.middleware", "asgikit.composition.stack"} <= names
    assert names >= SKETCHES


@pytest.mark.parametrize(("name", "code"), DOC_EXAMPLES, ids=[n for n, _ in DOC_EXAMPLES])
def test_docstring_example_runs(name: str, code: str) -> None:
    if name in SKETCHES:
        with pytest.raises(Exception):  # a sketch fails somehow
            run_block(code, name)
        return
    run_block(code, name)


def test_docstring_doctests_pass() -> None:
    failures = 0
    for name, doc in public_docstrings():
        if ">>>" in doc:
            test = doctest.DocTestParser().get_doctest(doc, {}, name, None, 0)
            runner = doctest.DocTestRunner()
            runner.run(test)
            failures += runner.failures
    assert failures == 0
