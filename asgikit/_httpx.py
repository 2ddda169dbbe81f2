"""The HTTP client library behind ``asgikit.testing`` and ``asgikit.proxy``.

``httpx2`` (the maintained continuation of httpx, same API) when it is
installed, else ``httpx``.  Both expose the same names, so the rest of
asgikit writes ``httpx.Client`` and works with either.  This is a plain
import: nothing is aliased in ``sys.modules`` and no import hook is
installed, so an application that imports ``httpx`` itself gets exactly
the package it installed.  Exceptions and types are those of the library
found here: a test that catches ``httpx.ReadTimeout`` from a
``TestClient`` catches ``asgikit._httpx.httpx.ReadTimeout``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx2 as httpx
else:
    try:
        import httpx2 as httpx
    except ImportError:
        try:
            import httpx
        except ImportError:
            raise ImportError(
                "asgikit.testing and asgikit.proxy need an HTTP client library: "
                "pip install httpx2 (Python 3.11+) or pip install httpx"
            ) from None

__all__ = ["httpx"]
