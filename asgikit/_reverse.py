"""Reverse URLs from a scope: what ``url_path_for`` and ``Request.url_for`` need.

The outermost asgikit router a request goes through leaves itself in the
scope (``"asgikit.router"``) with the ``root_path`` it saw
(``"asgikit.app_root_path"``): it is the resolver, anything with a
``resolve_path(name, path_params)`` method.  Building a reverse URL then
needs the scope only, so a ``Request`` never imports the router (the router
is above it), and writing the keys costs a request nothing more than it did.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from asgikit.types import Scope

#: Where the outermost router leaves itself, the resolver.  Not Starlette's
#: "router"/"app_root_path" keys: a Starlette app mounted below (or one
#: around) must keep finding its own router under those.
RESOLVER_KEY = "asgikit.router"
#: Where it leaves the ``root_path`` it saw, which every reverse path starts with.
ROOT_PATH_KEY = "asgikit.app_root_path"

# Characters kept as they are when a decoded path is encoded again.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


class PathResolver(Protocol):
    """What the router in the scope does for ``url_path_for``."""

    def resolve_path(self, name: str, path_params: dict[str, Any], /) -> str:
        """The decoded path, below the resolver, of the route called ``name``."""
        ...


def encode_path(decoded: str) -> str:
    """A decoded absolute path (as ASGI's ``path`` is) percent-encoded for a URL.

    The result always stays on this host: a path that would start with
    ``//`` (RFC 3986 §4.2: a network-path reference, another host) has its
    second slash encoded, and a backslash is always encoded (browsers read
    ``/\\`` as ``//``, WHATWG URL §4.4).  Routing decodes ``%2F`` back to
    ``/``, so the path leads to the same route and value.
    """
    path = quote(decoded.encode("utf-8", "surrogateescape"), safe=_PATH_SAFE)
    if path.startswith("//"):
        path = "/%2F" + path[2:]
    return path


def url_path_for(
    scope: Scope, name: str, /, *, query: Mapping[str, Any] | None = None, **path_params: Any
) -> str:
    """The full path of the route called ``name``, from this request's outermost router.

    Names go through named mounts as ``"mount:route"``.  ``query`` adds a
    query string.  Raises ``NoMatchFound`` for an unknown name or parameters
    that do not fit, and ``ValueError`` for a value its convertor refuses.
    """
    resolver: PathResolver | None = scope.get(RESOLVER_KEY)
    if resolver is None:
        raise RuntimeError("url_path_for needs a scope that went through an asgikit router")
    decoded = scope.get(ROOT_PATH_KEY, "").rstrip("/") + resolver.resolve_path(name, path_params)
    path = encode_path(decoded)
    if query:
        path += "?" + urlencode(list(query.items()), doseq=True)
    return path


__all__ = ["RESOLVER_KEY", "ROOT_PATH_KEY", "PathResolver", "encode_path", "url_path_for"]
