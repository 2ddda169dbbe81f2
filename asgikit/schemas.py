"""OpenAPI from routes: ``SchemaGenerator(base).get_schema(app)`` and ``OpenAPIResponse``.

The generator walks a router — through mounts, hosts, and middleware
wrapped around routers (each asgikit middleware records its app) — and
makes one OpenAPI operation for each endpoint and method that describes
itself: a mapping given with ``@schema({...})`` on the endpoint, or the YAML
that follows a ``---`` line in its docstring (PyYAML needed then).  An
``HTTPEndpoint`` class describes each method in that method's docstring.
HEAD is left out (it is GET without a body), and so are WebSocket routes,
apps mounted that are not routers, and endpoints that describe nothing.

Paths come out in OpenAPI form (OpenAPI 3.1 §4.8.8 "Path Templating"):
``/users/{id:int}`` is ``/users/{id}``, and each path parameter the
operation does not declare itself is added, required, with the type its
convertor gives: ``int`` an integer, ``float`` a number, ``uuid`` a string
of format ``uuid``, ``str``, ``path`` and user convertors a string.  A
``QUERY`` operation is kept only for an ``openapi`` of 3.2 or later, the
first to know it.  Response codes read from YAML as numbers become strings.

Where it differs from Starlette's, on purpose: only what follows ``---``
is YAML (a prose docstring such as ``Returns: the user`` is a valid YAML
mapping, and would become a broken operation); path parameters are
declared (OpenAPI requires each templated parameter to be, and a validator
refuses the document otherwise); ``OpenAPIResponse`` is JSON
(``application/vnd.oai.openapi+json``), so serving needs no PyYAML;
``get_schema`` takes the app or a list of routes; there is no
``include_in_schema`` (an endpoint without a description is not listed).
"""

from __future__ import annotations

import copy
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

from asgikit.convertors import (
    CompiledPath,
    FloatConvertor,
    IntegerConvertor,
    UUIDConvertor,
)
from asgikit.requests import Request
from asgikit.responses import Response
from asgikit.routes import BaseRoute, Host, Mount, Route, _find_router
from asgikit.types import ASGIApp

_F = TypeVar("_F", bound=Callable[..., Any])
_SCHEMA_ATTRIBUTE = "__openapi_operation__"
# OpenAPI's operation names, in the order a path item lists them.
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace", "query")
_CONVERTOR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[^}]*\}")
_MARKER = re.compile(r"^\s*---\s*$", re.MULTILINE)


class EndpointInfo(NamedTuple):
    """One operation found in the routes: OpenAPI path, lower-case method, the callable."""

    path: str
    http_method: str
    func: Callable[..., Any]
    parameters: Mapping[str, str]  # path parameter -> convertor type name
    operation: Mapping[str, Any] | None = None  # ``route(schema=...)``, when given


def schema(operation: Mapping[str, Any]) -> Callable[[_F], _F]:
    """Describe an endpoint (or an ``HTTPEndpoint`` method) with an OpenAPI operation mapping.

    Takes precedence over the docstring; ``route(path, endpoint, schema={...})``
    takes precedence over both (it describes that one route).
    """
    if not isinstance(operation, Mapping):
        raise TypeError("schema() takes a mapping: an OpenAPI operation object")

    def decorate(func: _F) -> _F:
        setattr(func, _SCHEMA_ATTRIBUTE, dict(operation))
        return func

    return decorate


def _parameter_types(compiled: CompiledPath) -> dict[str, str]:
    types: dict[str, str] = {}
    for name, convertor in compiled.convertors.items():
        if isinstance(convertor, IntegerConvertor):
            types[name] = "integer"
        elif isinstance(convertor, FloatConvertor):
            types[name] = "number"
        elif isinstance(convertor, UUIDConvertor):
            types[name] = "uuid"
        else:
            types[name] = "string"
    return types


def _openapi_path(template: str) -> str:
    return _CONVERTOR.sub(r"{\1}", template)


def _routes_of(app: Any) -> list[BaseRoute] | None:
    found = _find_router(app)
    return None if found is None else list(found.routes)


def _parse_docstring(func: Callable[..., Any]) -> dict[str, Any]:
    docstring = inspect.getdoc(func)
    if not docstring:
        return {}
    parts = _MARKER.split(docstring, maxsplit=1)
    if len(parts) < 2:
        return {}
    try:
        import yaml
    except ImportError:
        name = getattr(func, "__qualname__", repr(func))
        raise RuntimeError(
            f"the docstring of {name} holds OpenAPI YAML after '---': pip install pyyaml"
        ) from None
    parsed = yaml.safe_load(parts[1])
    return parsed if isinstance(parsed, dict) else {}


def _string_codes(operation: dict[str, Any]) -> dict[str, Any]:
    responses = operation.get("responses")
    if isinstance(responses, dict):
        operation["responses"] = {str(code): value for code, value in responses.items()}
    return operation


class SchemaGenerator:
    """Builds an OpenAPI document: ``base_schema`` (``openapi``, ``info``...) plus the paths.

    ``openapi`` defaults to ``"3.1.0"``.
    """

    def __init__(self, base_schema: Mapping[str, Any]) -> None:
        self.base_schema = dict(base_schema)

    def get_endpoints(self, routes: ASGIApp | Sequence[BaseRoute]) -> list[EndpointInfo]:
        """Every (path, method, function) below ``routes``, in route order."""
        found: list[EndpointInfo] = []
        self._walk(self._entries(routes), "", {}, found)
        return found

    def _entries(self, routes: ASGIApp | Sequence[BaseRoute]) -> list[BaseRoute]:
        if isinstance(routes, Sequence):
            return list(routes)
        entries = _routes_of(routes)
        if entries is None:
            raise TypeError(f"no asgikit router found in {routes!r}")
        return entries

    def _walk(
        self,
        entries: list[BaseRoute],
        prefix: str,
        parameters: dict[str, str],
        found: list[EndpointInfo],
    ) -> None:
        for entry in entries:
            if isinstance(entry, (Mount, Host)):
                inner = _routes_of(entry.app)
                if inner is None:
                    continue  # static files, a WSGI app...: nothing to describe
                if isinstance(entry, Mount):
                    below = {**parameters, **_parameter_types(entry.path)}
                    self._walk(inner, prefix + entry.prefix, below, found)
                else:
                    self._walk(inner, prefix, parameters, found)
            elif isinstance(entry, Route):
                path = _openapi_path(prefix + entry.path.template)
                params = {**parameters, **_parameter_types(entry.path)}
                for method, func in self._operations(entry):
                    found.append(EndpointInfo(path, method, func, params, entry.schema))

    def _operations(self, entry: Route) -> list[tuple[str, Callable[..., Any]]]:
        endpoint = entry.endpoint
        handlers = getattr(endpoint, "_handlers", None)
        if inspect.isclass(endpoint) and isinstance(handlers, dict):
            # An HTTPEndpoint: one operation per method it defines.
            return [
                (verb.lower(), getattr(endpoint, name))
                for verb, (name, _) in handlers.items()
                if verb != "HEAD" and verb.lower() in _METHODS
            ]
        if entry.methods is None:
            return []  # an ASGI app taking any method: nothing says which
        return [
            (method.lower(), endpoint)
            for method in sorted(entry.methods)
            if method != "HEAD" and method.lower() in _METHODS
        ]

    def parse_operation(self, func: Callable[..., Any]) -> dict[str, Any]:
        """The OpenAPI operation ``func`` describes: its ``@schema`` mapping or docstring YAML."""
        given = getattr(func, _SCHEMA_ATTRIBUTE, None)
        if given is not None:
            return copy.deepcopy(dict(given))
        return _parse_docstring(func)

    def get_schema(self, routes: ASGIApp | Sequence[BaseRoute]) -> dict[str, Any]:
        """The OpenAPI document for an app (a router, or middleware around one) or routes."""
        document = copy.deepcopy(self.base_schema)
        document.setdefault("openapi", "3.1.0")
        paths: dict[str, Any] = document.setdefault("paths", {})
        version = re.match(r"(\d+)\.(\d+)", str(document["openapi"]))
        query_known = version is not None and (int(version[1]), int(version[2])) >= (3, 2)
        for info in self.get_endpoints(routes):
            if info.http_method == "query" and not query_known:
                continue
            if info.operation is not None:
                operation = copy.deepcopy(dict(info.operation))
            else:
                operation = self.parse_operation(info.func)
            if not operation:
                continue
            _add_path_parameters(operation, info.parameters)
            paths.setdefault(info.path, {})[info.http_method] = _string_codes(operation)
        for path, item in paths.items():
            paths[path] = {m: item[m] for m in _METHODS if m in item} | {
                k: v for k, v in item.items() if k not in _METHODS
            }
        return document

    def OpenAPIResponse(self, request: Request) -> Response:  # Starlette's name
        """The document of the app that ``request`` went through, as a JSON response.

        Use it as an endpoint: ``route("/openapi.json", generator.OpenAPIResponse)``.
        """
        app = request.scope.get("asgikit.router")
        if app is None:
            raise RuntimeError("OpenAPIResponse needs a request that went through a router")
        return OpenAPIResponse(self.get_schema(app))


def _add_path_parameters(operation: dict[str, Any], types: Mapping[str, str]) -> None:
    declared = operation.setdefault("parameters", [])
    if not isinstance(declared, list):
        return
    named = {(p.get("name"), p.get("in")) for p in declared if isinstance(p, dict)}
    for name, kind in types.items():
        if (name, "path") in named:
            continue
        described = {"type": "string", "format": "uuid"} if kind == "uuid" else {"type": kind}
        declared.append({"name": name, "in": "path", "required": True, "schema": described})
    if not declared:
        del operation["parameters"]


class OpenAPIResponse(Response):
    """An OpenAPI document as JSON, ``application/vnd.oai.openapi+json``."""

    media_type = "application/vnd.oai.openapi+json"

    def render(self, content: Any) -> bytes:
        """The document as compact UTF-8 JSON."""
        if not isinstance(content, Mapping):
            raise TypeError("OpenAPIResponse takes the document as a mapping")
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


__all__ = ["EndpointInfo", "OpenAPIResponse", "SchemaGenerator", "schema"]
