"""Middleware: one module per piece, each a standalone function of an ASGI app.

Import a piece from its module (``asgikit.middleware.cors``) or from
``asgikit`` itself; this package deliberately re-exports nothing.
"""

__all__: list[str] = []
