"""``server_errors``: whatever escapes the app becomes a 500, then goes on to the server.

Put it wherever the 500 should be made: outermost, or inside ``cors`` so that
the error response still carries the CORS headers.  The response is plain
text, a ``handler``'s response (an ``async def`` or a plain function, which
runs in a worker thread), or with ``debug=True`` the traceback with local
variables: HTML when the client's ``Accept`` prefers ``text/html`` to
``text/plain`` (q-values honoured, RFC 9110 §12.5.1), plain text otherwise,
with ``Vary: Accept``.  After the
response is sent, the exception is raised again so the server logs it.  If the
app had already started its response, nothing can be sent: the exception goes
straight on and the server closes the connection (ASGI spec: an exception
after ``http.response.start`` aborts the response).

Unlike ``exception_handlers``, which answers where the exception is raised,
the 500 is made here, where the exception arrives: layers it crossed on its
way out (``cors`` inside this one) do not see the answer.  Starlette's
``ServerErrorMiddleware`` does the same; put ``server_errors`` inside the
layers whose headers a 500 must carry.

WebSocket and lifespan scopes pass through untouched: a server already turns
an error there into a refused handshake, a 1011 close or a failed startup.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import anyio.to_thread

from asgikit._accept import accept_values, preferred
from asgikit._errors import is_async_callable
from asgikit._send import SentWatch
from asgikit.composition import middleware
from asgikit.requests import Request, shared_body
from asgikit.responses import HTMLResponse, PlainTextResponse
from asgikit.types import ASGIApp, Receive, Scope, Send

#: ``async def handler(request, exc) -> response`` (or a plain function);
#: a response is an ASGI app.
ErrorHandler = Callable[[Request, Exception], Awaitable[ASGIApp] | ASGIApp]

_logger = logging.getLogger("asgikit.server_errors")
_DEBUG_SHAPES = ("text/plain", "text/html")
_VARY_ACCEPT = {"Vary": "Accept"}


def _wants_html(scope: Scope) -> bool:
    return preferred(accept_values(scope.get("headers", ())), _DEBUG_SHAPES) == "text/html"


@middleware
def server_errors(
    app: ASGIApp, *, debug: bool = False, handler: ErrorHandler | None = None
) -> ASGIApp:
    """Answer 500 for any exception the app lets out, then re-raise it.

    ``handler(request, exc)`` makes the response instead of the default one; if
    it fails too, its failure is logged (``asgikit.server_errors``) and the
    plain 500 is sent (and the original exception raised).
    """
    if handler is not None and not callable(handler):
        raise TypeError(f"server_errors(handler=...) takes a callable, not {handler!r}")
    handler_is_async = handler is not None and is_async_callable(handler)

    async def error_response(scope: Scope, receive: Receive, exc: Exception) -> ASGIApp:
        if handler is not None:
            request = Request(scope, receive)
            try:
                if handler_is_async:
                    response: ASGIApp = await handler(request, exc)  # type: ignore[misc]
                else:
                    response = await anyio.to_thread.run_sync(handler, request, exc)  # type: ignore[arg-type]
                return response
            except Exception:
                # The app's exception is the one raised below; this one is logged.
                _logger.exception("server_errors: the handler failed for %r", exc)
        if debug:
            from asgikit.middleware._debug_page import debug_page, debug_text

            if _wants_html(scope):
                return HTMLResponse(debug_page(exc), 500, _VARY_ACCEPT)
            return PlainTextResponse(debug_text(exc), 500, _VARY_ACCEPT)
        return PlainTextResponse("Internal Server Error", 500)

    async def server_errors_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        if handler is not None:
            shared_body(scope)  # so the handler's Request gets the body the app read
        watch = SentWatch(send, ("http.response.start",))
        try:
            await app(scope, receive, watch)
        except Exception as exc:
            if not watch.sent:
                response = await error_response(scope, receive, exc)
                try:
                    await response(scope, receive, send)
                except Exception:
                    pass  # the client may be gone; the app's exception is the one to report
            raise

    return server_errors_app


__all__ = ["ErrorHandler", "server_errors"]
