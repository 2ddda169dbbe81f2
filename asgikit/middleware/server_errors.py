"""``server_errors``: whatever escapes the app becomes a 500, then goes on to the server.

Put it wherever the 500 should be made: outermost, or inside ``cors`` so that
the error response still carries the CORS headers.  The response is plain
text, a ``handler``'s response, or with ``debug=True`` the traceback with local
variables (HTML for clients that accept it, plain text otherwise).  After the
response is sent, the exception is raised again so the server logs it.  If the
app had already started its response, nothing can be sent: the exception goes
straight on and the server closes the connection (ASGI spec: an exception
after ``http.response.start`` aborts the response).

WebSocket and lifespan scopes pass through untouched: a server already turns
an error there into a refused handshake, a 1011 close or a failed startup.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgikit._send import SentWatch
from asgikit.composition import middleware
from asgikit.requests import Request
from asgikit.responses import HTMLResponse, PlainTextResponse
from asgikit.types import ASGIApp, Receive, Scope, Send

#: ``async def handler(request, exc) -> response`` (a response is an ASGI app).
ErrorHandler = Callable[[Request, Exception], Awaitable[ASGIApp]]


def _accepts_html(scope: Scope) -> bool:
    return any(k == b"accept" and b"text/html" in v for k, v in scope.get("headers", ()))


@middleware
def server_errors(
    app: ASGIApp, *, debug: bool = False, handler: ErrorHandler | None = None
) -> ASGIApp:
    """Answer 500 for any exception the app lets out, then re-raise it.

    ``handler(request, exc)`` makes the response instead of the default one; if
    it fails too, the plain 500 is sent (and the original exception raised).
    """

    async def error_response(scope: Scope, receive: Receive, exc: Exception) -> ASGIApp:
        if handler is not None:
            try:
                return await handler(Request(scope, receive), exc)
            except Exception:
                pass  # the original exception is what matters; it is raised below
        if debug:
            from asgikit.middleware._debug_page import debug_page, debug_text

            if _accepts_html(scope):
                return HTMLResponse(debug_page(exc), 500)
            return PlainTextResponse(debug_text(exc), 500)
        return PlainTextResponse("Internal Server Error", 500)

    async def server_errors_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
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
