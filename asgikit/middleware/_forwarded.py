"""RFC 7239 parsing for ``proxy_headers``: ``Forwarded`` elements and node addresses.

Pure functions of strings, never raising on any input: a malformed element
or node is ``None``, and the caller treats it as an unknown hop.
"""

from __future__ import annotations

import ipaddress

MAX_HOPS = 64  # right-most entries looked at; a longer chain is cut on the left
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_LENIENT_TOKEN = _TOKEN | frozenset(":[]")


def parse_node(value: str) -> tuple[str, int] | None:
    """An RFC 7239 §6 node (``1.2.3.4``, ``"[2001:db8::1]:80"``, bare IPv6) as ``(ip, port)``.

    ``None`` for ``unknown``, obfuscated identifiers and anything malformed.
    The port is 0 when absent or obfuscated.
    """
    value = value.strip()
    port = ""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif value.count(":") == 1:
        host, _, port = value.partition(":")
    else:
        host = value
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    # isascii(): "²".isdigit() is true, but int("²") fails.
    if port.isascii() and port.isdigit() and len(port) <= 5 and int(port) <= 65535:
        return (str(address), int(port))
    if port and not port.startswith("_"):
        return None
    return (str(address), 0)


def _split(text: str, separator: str) -> list[str] | None:
    """``text`` split at ``separator`` outside quoted strings; ``None`` if a quote is open."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for i, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted:
            if char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == separator:
            parts.append(text[start:i])
            start = i + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def parse_forwarded(header: str) -> list[dict[str, str] | None]:
    """The elements of a ``Forwarded`` header (RFC 7239 §4), left to right.

    Each element maps lower-cased parameter names to values (quotes and
    escapes removed); a malformed or empty element is ``None``, and so is a
    header with an unbalanced quote (as one element).  Only the right-most
    64 elements are kept.  Never raises.
    """
    elements = _split(header, ",")
    if elements is None:
        return [None]
    return [_parse_element(element) for element in elements[-MAX_HOPS:]]


def _parse_element(element: str) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for pair in _split(element, ";") or ():
        pair = pair.strip()
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        name = name.strip().lower()
        value = value.strip()
        # §4: each parameter at most once per element.
        if not eq or not name or not _TOKEN.issuperset(name) or name in params:
            return None
        if value.startswith('"'):
            if len(value) < 2 or not value.endswith('"'):
                return None
            value = _unquote(value[1:-1])
        # Unquoted "1.2.3.4:80" and "[::1]" break the grammar but are common.
        elif not value or not _LENIENT_TOKEN.issuperset(value):
            return None
        params[name] = value
    return params or None


def _unquote(inner: str) -> str:
    # RFC 9110 §5.6.4: a backslash takes the next character as it is.
    out: list[str] = []
    escaped = False
    for char in inner:
        if char == "\\" and not escaped:
            escaped = True
            continue
        out.append(char)
        escaped = False
    return "".join(out)


__all__ = ["MAX_HOPS", "parse_forwarded", "parse_node"]
