"""Tests for asgikit.templating: Jinja2Templates and its TemplateResponse."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import jinja2
import pytest

from asgikit.background import BackgroundTask
from asgikit.requests import HTTPConnection, Request
from asgikit.responses import HTMLResponse, Response
from asgikit.routing import mount, route, router
from asgikit.templating import Jinja2Templates, TemplateResponse
from asgikit.testing import TestClient
from asgikit.types import ASGIApp
from tests.conftest import make_scope
from tests.servers.live import serve

HOSTILE = "<script>alert('x')</script>&"
ESCAPED = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;"


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    (tmp_path / "page.html").write_text(
        "<p>{{ value }}</p><a href=\"{{ url_for('user', id=7) }}\">u</a> {{ request.method }}"
    )
    (tmp_path / "feed.xml").write_text("<v>{{ value }}</v>")
    (tmp_path / "part.jinja").write_text("{{ value }}")
    (tmp_path / "Page.HTM").write_text("{{ value }}")
    (tmp_path / "note.txt").write_text("{{ value }}")
    (tmp_path / "who.html").write_text("{{ site }}|{{ user }}")
    return tmp_path


def page_app(templates: Jinja2Templates, name: str, **options: Any) -> ASGIApp:
    """A router with the template page at ``/`` and a named route to link to."""

    async def page(request: Request) -> Response:
        return templates.TemplateResponse(request, name, **options)

    async def user(request: Request) -> Response:
        return HTMLResponse("user")

    return router(route("/", page), mount("/api", router(route("/users/{id:int}", user))))


async def test_page_is_an_html_response_with_request_and_url_for(templates_dir: Path) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    app = page_app(templates, "page.html", context={"value": "hi"})
    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == '<p>hi</p><a href="http://testserver/api/users/7">u</a> GET'


@pytest.mark.parametrize("name", ["page.html", "feed.xml", "part.jinja", "Page.HTM"])
async def test_hostile_values_are_escaped_in_markup_templates(
    templates_dir: Path, name: str
) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    async with TestClient(page_app(templates, name, context={"value": HOSTILE})) as client:
        response = await client.get("/")
    assert ESCAPED in response.text
    assert "<script>" not in response.text


def test_hostile_values_are_escaped_in_templates_made_from_strings(templates_dir: Path) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    assert templates.env.from_string("{{ v }}").render(v=HOSTILE) == ESCAPED


async def test_plain_text_templates_are_not_escaped(templates_dir: Path) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    app = page_app(templates, "note.txt", context={"value": "a & b"}, media_type="text/plain")
    async with TestClient(app) as client:
        response = await client.get("/")
    assert response.text == "a & b"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


async def test_status_headers_and_background_are_passed_on(templates_dir: Path) -> None:
    ran: list[str] = []
    templates = Jinja2Templates(directory=templates_dir)
    app = page_app(
        templates,
        "part.jinja",
        context={"value": "gone"},
        status_code=410,
        headers={"x-extra": "1"},
        background=BackgroundTask(ran.append, "bg"),
    )
    async with TestClient(app) as client:
        response = await client.get("/")
    assert (response.status_code, response.text, response.headers["x-extra"]) == (
        410,
        "gone",
        "1",
    )
    assert ran == ["bg"]


async def test_context_processors_add_context_and_the_call_context_wins(
    templates_dir: Path,
) -> None:
    def site(request: HTTPConnection) -> dict[str, str]:
        return {"site": "asgikit", "user": "from-processor"}

    templates = Jinja2Templates(directory=templates_dir, context_processors=[site])
    async with TestClient(page_app(templates, "who.html", context={"user": "ann"})) as client:
        response = await client.get("/")
    assert response.text == "asgikit|ann"


def test_response_keeps_template_and_context(templates_dir: Path) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    request = Request(make_scope())
    response = templates.TemplateResponse(request, "part.jinja", {"value": "v"})
    assert isinstance(response, TemplateResponse)
    assert isinstance(response, HTMLResponse)
    assert response.template.name == "part.jinja"
    assert response.context == {"value": "v", "request": request}
    assert response.body == b"v"


def test_a_ready_environment_is_used_as_given() -> None:
    env = jinja2.Environment(loader=jinja2.DictLoader({"t.html": "{{ v }}"}), autoescape=False)
    templates = Jinja2Templates(env=env)
    assert templates.get_template("t.html").render(v="<b>") == "<b>"
    assert "url_for" in env.globals


def test_needs_exactly_one_of_directory_and_env(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="exactly one"):
        Jinja2Templates()
    with pytest.raises(TypeError, match="exactly one"):
        Jinja2Templates(directory=tmp_path, env=jinja2.Environment())


def test_an_async_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="non-async"):
        Jinja2Templates(env=jinja2.Environment(enable_async=True))


def test_a_missing_template_raises_template_not_found(templates_dir: Path) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    with pytest.raises(jinja2.TemplateNotFound):
        templates.TemplateResponse(Request(make_scope()), "../secret.html")


def test_a_template_page_through_a_real_uvicorn_server(templates_dir: Path) -> None:
    templates = Jinja2Templates(directory=templates_dir)
    with serve(page_app(templates, "page.html", context={"value": HOSTILE})) as base_url:
        response = httpx.get(base_url + "/")
    assert response.status_code == 200
    assert ESCAPED in response.text
    assert f'href="{base_url}/api/users/7"' in response.text
