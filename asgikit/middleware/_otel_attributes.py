"""The request's OpenTelemetry attributes, read from an ASGI scope in one pass.

Names and rules follow the stable HTTP semantic conventions
(https://opentelemetry.io/docs/specs/semconv/http/http-spans/): a method
outside the known set is ``_OTHER`` with the original kept beside it; the
server's address and port come from ``Host`` (the port implied by the scheme
when absent), else from the scope's ``server``; captured headers are
string arrays under ``http.request.header.<lower-case name>``; values of
the query parameters the conventions list as sensitive are ``REDACTED``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asgikit.types import Scope

Attributes = dict[str, Any]

# RFC 9110 §9 and RFC 5789's PATCH: the methods the conventions call known.
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
# url.query: "the values of these query parameters SHOULD be redacted".
_SENSITIVE_QUERY_KEYS = ("AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature")


def header_names(names: Iterable[str] | None, what: str) -> dict[bytes, str]:
    """The header names to capture, as ASGI's lower-case bytes → attribute name."""
    if names is None:
        return {}
    if isinstance(names, (str, bytes)):
        raise TypeError(f"{what} takes a list of header names, not a single string")
    table: dict[bytes, str] = {}
    for name in names:
        lower = name.strip().lower()
        if not lower or any(c in lower for c in " :\r\n\t"):
            raise ValueError(f"not a header name: {name!r}")
        table[lower.encode("latin-1")] = lower
    return table


def redact_query(query: str) -> str:
    """``query`` with the values of the conventions' sensitive parameters redacted."""
    if not any(key in query for key in _SENSITIVE_QUERY_KEYS):
        return query
    parts = []
    for part in query.split("&"):
        key, eq, _ = part.partition("=")
        parts.append(f"{key}=REDACTED" if eq and key in _SENSITIVE_QUERY_KEYS else part)
    return "&".join(parts)


def _host_and_port(host: str, scheme: str) -> tuple[str, int | None]:
    # RFC 3986 §3.2.2: an IPv6 literal is bracketed and holds colons.
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        port_text = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port_text = host.partition(":")
    if port_text.isdigit() and len(port_text) <= 5:
        return name, int(port_text)
    return name, _DEFAULT_PORTS.get(scheme)


def request_attributes(
    scope: Scope,
    method: str,
    scheme: str,
    fields: frozenset[bytes],
    capture: dict[bytes, str],
) -> tuple[Attributes, dict[str, str]]:
    """The span's request attributes, and the propagation fields found in the headers.

    ``fields`` are the header names the propagator reads (``traceparent``,
    ``tracestate``...); ``capture`` the headers to record.
    """
    attributes: Attributes = {
        "http.request.method": method if method in KNOWN_METHODS else "_OTHER",
        "url.scheme": scheme,
        "url.path": scope.get("path") or "/",
    }
    if method not in KNOWN_METHODS:
        attributes["http.request.method_original"] = method
    query: bytes = scope.get("query_string") or b""
    if query:
        attributes["url.query"] = redact_query(query.decode("latin-1"))
    version = scope.get("http_version")
    if version:
        attributes["network.protocol.version"] = version
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
        if len(client) > 1 and client[1] is not None:
            attributes["client.port"] = client[1]
    carrier: dict[str, str] = {}
    host: str | None = None
    for raw_name, raw_value in scope.get("headers") or ():
        name = raw_name.lower()
        if name == b"host":
            if host is None:
                host = raw_value.decode("latin-1")
        elif name == b"user-agent":
            attributes["user_agent.original"] = raw_value.decode("latin-1")
        elif name in fields:
            carrier[name.decode("latin-1")] = raw_value.decode("latin-1")
        if name in capture:
            key = "http.request.header." + capture[name]
            attributes.setdefault(key, []).append(raw_value.decode("latin-1"))
    if host:
        address, port = _host_and_port(host, scheme)
        attributes["server.address"] = address
        if port is not None:
            attributes["server.port"] = port
    else:
        server = scope.get("server")
        if server:
            attributes["server.address"] = server[0]
            if len(server) > 1 and server[1] is not None:
                attributes["server.port"] = server[1]
    return attributes, carrier


def response_header_attributes(
    headers: Iterable[tuple[bytes, bytes]], capture: dict[bytes, str]
) -> Attributes:
    """``http.response.header.<name>`` string arrays for the captured response headers."""
    found: Attributes = {}
    for raw_name, raw_value in headers:
        name = bytes(raw_name).lower()
        if name in capture:
            key = "http.response.header." + capture[name]
            found.setdefault(key, []).append(bytes(raw_value).decode("latin-1"))
    return found


__all__ = [
    "KNOWN_METHODS",
    "Attributes",
    "header_names",
    "redact_query",
    "request_attributes",
    "response_header_attributes",
]
