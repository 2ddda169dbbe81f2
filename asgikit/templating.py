"""Jinja2 templates rendered into ordinary HTML responses.

``templates = Jinja2Templates(directory="templates")`` and then, in a handler,
``return templates.TemplateResponse(request, "page.html", {"user": user})``.
The result is an :class:`~asgikit.responses.HTMLResponse`, so it passes
through every middleware like any other response; it keeps ``template`` and
``context`` for tests to look at.

Every template sees ``request`` and ``url_for(name, **params)`` (the absolute
URL of a named route, as a string).  Autoescaping is on for every template
built from ``directory`` — ``.html``, ``.xml``, ``.jinja`` and any other
extension, and templates made from strings — except ``.txt`` files, which
are plain text.  An ``env=`` you build yourself keeps its own settings.

Rendering is synchronous (Jinja2's own), and async Jinja2 environments are
refused: their ``render`` would start an asyncio loop of its own.
Needs the ``templates`` extra (``jinja2``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jinja2

from asgikit.background import BackgroundTask
from asgikit.requests import HTTPConnection
from asgikit.responses import HTMLResponse

ContextProcessor = Callable[[HTTPConnection], Mapping[str, Any]]
Directory = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


class TemplateResponse(HTMLResponse):
    """An HTML response rendered from a template; ``template`` and ``context`` are kept."""

    def __init__(
        self,
        template: jinja2.Template,
        context: dict[str, Any],
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> None:
        self.template = template
        self.context = context
        super().__init__(template.render(context), status_code, headers, media_type, background)


@jinja2.pass_context
def _url_for(context: Mapping[str, Any], name: str, /, **path_params: Any) -> str:
    """``url_for`` in a template: the absolute URL of route ``name``."""
    request: HTTPConnection = context["request"]
    return str(request.url_for(name, **path_params))


def _autoescape(template_name: str | None) -> bool:
    # Escape everything but plain-text templates; strings (no name) included.
    return template_name is None or not template_name.lower().endswith(".txt")


class Jinja2Templates:
    """Renders templates from ``directory`` (or from a ready ``env``) into responses.

    ``context_processors`` are functions of the request returning extra
    context; the context given to ``TemplateResponse`` wins over theirs.
    """

    def __init__(
        self,
        directory: Directory | None = None,
        *,
        env: jinja2.Environment | None = None,
        context_processors: Sequence[ContextProcessor] = (),
    ) -> None:
        if (directory is None) == (env is None):
            raise TypeError("Jinja2Templates needs exactly one of directory= and env=")
        if env is None:
            env = jinja2.Environment(
                loader=jinja2.FileSystemLoader(directory),  # type: ignore[arg-type]
                autoescape=_autoescape,
            )
        if env.is_async:
            raise ValueError("Jinja2Templates renders synchronously; pass a non-async env")
        env.globals.setdefault("url_for", _url_for)
        self.env = env
        self.context_processors = tuple(context_processors)

    def get_template(self, name: str) -> jinja2.Template:
        """The template called ``name`` (``jinja2.TemplateNotFound`` if there is none)."""
        return self.env.get_template(name)

    def TemplateResponse(  # Starlette's name, so code moves over unchanged
        self,
        request: HTTPConnection,
        name: str,
        context: Mapping[str, Any] | None = None,
        status_code: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
        background: BackgroundTask | None = None,
    ) -> TemplateResponse:
        """Render template ``name`` with ``context`` (plus ``request``) into a response."""
        full: dict[str, Any] = {}
        for processor in self.context_processors:
            full.update(processor(request))
        if context:
            full.update(context)
        full["request"] = request
        return TemplateResponse(
            self.get_template(name), full, status_code, headers, media_type, background
        )


__all__ = ["ContextProcessor", "Directory", "Jinja2Templates", "TemplateResponse"]
