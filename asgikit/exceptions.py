"""Exceptions that carry a protocol meaning.

``HTTPException`` is raised by application code (and by the request parsers)
to answer with an HTTP error; the route that runs the endpoint turns it into a
response, with an ``exception_handlers`` handler if one is registered for its
class or status code (subclass it to give an error its own handler).
``WebSocketDisconnect`` tells a WebSocket endpoint that the peer is gone,
with the close code the peer (or the server) gave.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus


def _reason(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return ""


class HTTPException(Exception):
    """An HTTP error answer: ``status_code``, a human ``detail`` and extra ``headers``."""

    def __init__(
        self,
        status_code: int,
        detail: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if detail is None:
            detail = _reason(status_code)
        super().__init__(status_code, detail)
        self.status_code = status_code
        self.detail = detail
        self.headers = dict(headers) if headers else None

    def __str__(self) -> str:
        return f"{self.status_code}: {self.detail}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status_code={self.status_code!r}, detail={self.detail!r})"


class WebSocketDisconnect(Exception):
    """The WebSocket peer closed the connection (or the server lost it)."""

    def __init__(self, code: int = 1000, reason: str | None = None) -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason or ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, reason={self.reason!r})"


class ClientDisconnect(Exception):
    """The HTTP client went away while the request body was being read."""


__all__ = ["ClientDisconnect", "HTTPException", "WebSocketDisconnect"]
