"""Building ``Set-Cookie`` values by RFC 6265 §4.1.1, refusing what would break them.

A name outside the token grammar, a value outside ``cookie-octet``, an
attribute with a control character or ``;``, and combinations browsers drop
(``SameSite=None`` or ``Partitioned`` without ``Secure``) raise
``ValueError`` when the header is built, never at the client.  Values are not
quoted or encoded here: the caller chooses an encoding (base64, percent).
Parsing the ``Cookie`` request header lives in ``datastructures``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

# RFC 6265 §4.1.1 cookie-octet: printable US-ASCII less DQUOTE, comma, semicolon,
# backslash and space.
_COOKIE_OCTETS = frozenset(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '",;\\')
# RFC 9110 §5.6.2 token characters, for the cookie name.
_TOKEN = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
# Attribute values (path, domain) may hold any CHAR except CTLs and ';'.
_ATTRIBUTE_BAD = frozenset([chr(c) for c in range(0x20)] + ["\x7f", ";"])
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}


def format_set_cookie(
    key: str,
    value: str = "",
    *,
    max_age: int | None = None,
    expires: Any = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = False,
    samesite: str | None = "lax",
    partitioned: bool = False,
) -> str:
    """A ``Set-Cookie`` value; raises ``ValueError`` for what a browser would drop."""
    if not key or not _TOKEN.issuperset(key):
        raise ValueError(f"invalid cookie name: {key!r}")
    if not _COOKIE_OCTETS.issuperset(value):
        raise ValueError(
            f"invalid cookie value for {key!r}: use only printable ASCII without "
            "space, '\"', ',', ';' or '\\' (percent-encode or base64 the value)"
        )
    parts = [f"{key}={value}"]
    if expires is not None:
        parts.append(f"Expires={_format_expires(expires)}")
    if max_age is not None:
        parts.append(f"Max-Age={int(max_age)}")
    if domain is not None:
        parts.append(f"Domain={_attribute(domain, 'domain')}")
    if path is not None:
        parts.append(f"Path={_attribute(path, 'path')}")
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        site = _SAMESITE.get(samesite.lower())
        if site is None:
            raise ValueError("samesite must be 'lax', 'strict' or 'none'")
        if site == "None" and not secure:
            # Browsers reject SameSite=None without Secure.
            raise ValueError("samesite='none' needs secure=True")
        parts.append(f"SameSite={site}")
    if partitioned:
        if not secure:
            raise ValueError("partitioned cookies need secure=True")
        parts.append("Partitioned")
    return "; ".join(parts)


def _attribute(value: str, what: str) -> str:
    if any(c in _ATTRIBUTE_BAD for c in value):
        raise ValueError(f"invalid cookie {what}: {value!r}")
    return value


def _format_expires(expires: Any) -> str:
    if isinstance(expires, datetime):
        if expires.tzinfo is None:
            expires = expires.replace(tzinfo=timezone.utc)
        return format_datetime(expires.astimezone(timezone.utc), usegmt=True)
    if isinstance(expires, (int, float)):
        when = datetime.now(timezone.utc).timestamp() + float(expires)
        return format_datetime(datetime.fromtimestamp(when, timezone.utc), usegmt=True)
    return _attribute(str(expires), "expires")


__all__ = ["format_set_cookie"]
