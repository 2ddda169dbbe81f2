"""Typed path parameters: ``/users/{id:int}``, ``{name}``, ``{slug:path}``, ``{id:uuid}``.

A path template is compiled once, when the route is built, into a regular
expression, a format string for reverse URLs and the convertor of each
parameter.  Users add their own convertors with ``register_convertor``.

A template may hold one parameter that spans segments (``path``, or a
convertor whose expression matches a ``/``): with two, every split of the
path between them is a candidate, so matching would be quadratic in the
path's length; such a template is a ``ValueError`` when built.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar, Generic, TypeVar

from asgikit._url import valid_host

_T = TypeVar("_T")


class Convertor(Generic[_T]):
    """Turns one path segment (or more, for ``path``) into a value and back.

    ``regex`` is what the segment must match; ``convert`` may still raise
    ``ValueError`` to refuse a match (the route then does not match).
    """

    regex: ClassVar[str] = ""

    def convert(self, value: str) -> _T:
        """The value a matched segment stands for; ``ValueError`` refuses the match."""
        raise NotImplementedError

    def to_string(self, value: _T) -> str:
        """The path text for ``value`` (reverse URLs); ``ValueError`` if it has none."""
        raise NotImplementedError


def _refuse_dot_segment(segment: str, what: str) -> None:
    # WHATWG URL §4.4 resolves "." and ".." (and their %2e spellings, so
    # encoding cannot save them) in every path a browser follows:
    # "/u/../settings" would be "/settings", another route.
    if segment in (".", ".."):
        raise ValueError(f"a {what} path parameter cannot hold the dot segment {segment!r}")


class StringConvertor(Convertor[str]):
    """One non-empty path segment (built back, never ``.`` or ``..``)."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        value = str(value)
        if not value or "/" in value:
            raise ValueError(f"a str path parameter must be non-empty without '/': {value!r}")
        _refuse_dot_segment(value, "str")
        return value


class PathConvertor(Convertor[str]):
    """The rest of the path, slashes included (possibly empty; built back without ``.``/``..``)."""

    regex = ".*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        value = str(value)
        if "." in value:
            for segment in value.split("/"):
                _refuse_dot_segment(segment, "path")
        return value


class IntegerConvertor(Convertor[int]):
    """A non-negative decimal integer of at most 64 digits."""

    regex = "[0-9]{1,64}"

    def convert(self, value: str) -> int:
        # With the base given, int() parses the str directly; int(value) first
        # looks up str.__trunc__ (CPython 3.11's PyNumber_Long), a type-cache
        # probe whose slot other names can evict: +600 instructions a request.
        return int(value, 10)

    def to_string(self, value: int) -> str:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"an int path parameter must be a non-negative int: {value!r}")
        return str(value)


class FloatConvertor(Convertor[float]):
    """A non-negative decimal number (``1``, ``2.5``)."""

    regex = r"[0-9]{1,64}(?:\.[0-9]{1,64})?"

    def convert(self, value: str) -> float:
        return float(value)

    def to_string(self, value: float) -> str:
        number = float(value)
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"a float path parameter must be finite and >= 0: {value!r}")
        # repr() is the shortest text that reads back as the same float; Decimal
        # writes it out without an exponent, which the pattern does not allow.
        text = format(Decimal(repr(number)), "f")
        return text.removesuffix(".0")


class UUIDConvertor(Convertor[uuid.UUID]):
    """A UUID: 32 hex digits, with or without the hyphens of its 8-4-4-4-12 form.

    It is built back in the hyphenated form.
    """

    regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def convert(self, value: str) -> uuid.UUID:
        return uuid.UUID(value)

    def to_string(self, value: uuid.UUID) -> str:
        return str(uuid.UUID(str(value)))


CONVERTORS: dict[str, Convertor[Any]] = {
    "str": StringConvertor(),
    "path": PathConvertor(),
    "int": IntegerConvertor(),
    "float": FloatConvertor(),
    "uuid": UUIDConvertor(),
}


def register_convertor(name: str, convertor: Convertor[Any]) -> None:
    """Make ``{param:name}`` available in route paths built from now on."""
    if not name.isidentifier():
        raise ValueError(f"convertor name must be an identifier: {name!r}")
    CONVERTORS[name] = convertor


# Starlette's name for the same function.
register_url_convertor = register_convertor

_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::([a-zA-Z_][a-zA-Z0-9_]*))?}")


@dataclass(frozen=True)
class CompiledPath:
    """A path template, compiled: how to match it and how to build it back."""

    template: str
    regex: re.Pattern[str] | None  # None for a path without parameters
    format: str
    convertors: dict[str, Convertor[Any]]

    def match(self, path: str) -> dict[str, Any] | None:
        """The converted parameters if ``path`` matches the whole template, else ``None``."""
        if self.regex is None:
            return {} if path == self.template else None
        found = self.regex.fullmatch(path)
        if found is None:
            return None
        return self.convert(found.groupdict())

    def convert(self, raw: dict[str, str]) -> dict[str, Any] | None:
        """The raw matched strings converted; ``None`` when a convertor refuses one."""
        try:
            return {key: self.convertors[key].convert(value) for key, value in raw.items()}
        except ValueError:
            return None

    def build(self, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The path for ``params``, and the parameters not used by this template."""
        missing = set(self.convertors) - set(params)
        if missing:
            raise KeyError(", ".join(sorted(missing)))
        strings: dict[str, str] = {}
        for key, convertor in self.convertors.items():
            text = convertor.to_string(params[key])
            if re.fullmatch(convertor.regex, text) is None:
                # The route could never match this path back: refuse to build it.
                raise ValueError(f"{key}={params[key]!r} does not fit {self.template!r}")
            strings[key] = text
        # Literals hold no braces (compile_path checks), so format_map is exact,
        # and a value that itself contains "{name}" is not substituted again.
        path = self.format.format_map(strings)
        rest = {k: v for k, v in params.items() if k not in self.convertors}
        return path, rest


def _literal(template: str, start: int, end: int) -> str:
    literal = template[start:end]
    if "{" in literal or "}" in literal:
        raise ValueError(f"malformed parameter in path {template!r}")
    return literal


def _pieces(template: str) -> tuple[list[tuple[str, str, Convertor[Any]]], str]:
    """``template`` split into (literal, parameter, convertor) triples and the literal left."""
    pieces: list[tuple[str, str, Convertor[Any]]] = []
    names: set[str] = set()
    end = 0
    for found in _PARAM.finditer(template):
        name, kind = found.group(1), found.group(2) or "str"
        if kind not in CONVERTORS:
            raise ValueError(f"unknown convertor {kind!r} in {template!r}")
        if name in names:
            raise ValueError(f"duplicate parameter {name!r} in {template!r}")
        names.add(name)
        pieces.append((_literal(template, end, found.start()), name, CONVERTORS[kind]))
        end = found.end()
    return pieces, _literal(template, end, len(template))


def compile_path(template: str, *, prefix: bool = False) -> CompiledPath:
    """Compile ``template``; with ``prefix=True`` it may match the start of a longer path."""
    pieces, literal = _pieces(template)
    spanning = [name for _, name, convertor in pieces if _spans_segments(convertor)]
    if len(spanning) > 1:
        # Each split of the path between them is a candidate: matching costs
        # time quadratic in the path's length (a 100k-character path of
        # slashes took 28 s), and which split wins is arbitrary anyway.
        raise ValueError(
            f"path template {template!r}: parameters {', '.join(spanning)} can each span "
            "several segments (like 'path'); a template may have one such parameter"
        )
    convertors = {name: convertor for _, name, convertor in pieces}
    format_ = "".join(text + "{" + name + "}" for text, name, _ in pieces) + literal
    if not convertors and not prefix:
        return CompiledPath(template, None, format_, {})
    regex = _regex_source(pieces, literal, lambda name: name)
    if prefix:
        # \Z, not $: "$" also matches before a final newline, and "/api\n"
        # is the segment "api\n", not the prefix "/api".
        regex += "(?=/|\\Z)"
    return CompiledPath(template, re.compile(regex), format_, convertors)


def _spans_segments(convertor: Convertor[Any]) -> bool:
    """Whether ``convertor`` matches text with a ``/`` in it (as ``path`` does)."""
    try:
        return re.fullmatch(f"(?:{convertor.regex})", "a/b") is not None
    except re.error:  # refers to groups around it: compiled with the template, not alone
        return False


def _regex_source(
    pieces: list[tuple[str, str, Convertor[Any]]], literal: str, group: Callable[[str], str]
) -> str:
    regex = "".join(
        re.escape(text) + f"(?P<{group(name)}>{convertor.regex})"
        for text, name, convertor in pieces
    )
    return regex + re.escape(literal)


def regex_source(path: CompiledPath, group: Callable[[str], str]) -> str:
    """The regular expression of ``path`` with parameter ``name`` captured as ``group(name)``.

    For joining patterns into one expression, where group names must differ.
    """
    pieces, literal = _pieces(path.template)
    # The convertors the path was compiled with, should a name be registered again since.
    pieces = [(text, name, path.convertors[name]) for text, name, _ in pieces]
    return _regex_source(pieces, literal, group)


_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


@dataclass(frozen=True)
class HostPattern:
    """A compiled ``host()`` pattern: ``"{sub}.example.org"``, ``"api.example.org:8443"``.

    Names compare without case (RFC 9110 §4.2.3; literals are lower-cased
    when compiled, the request's host when matched).  A pattern with a port
    matches only that port, as a number (``:03600`` is ``3600``; no port is
    the scheme's default); one without a port matches any valid port.  A
    Host that is not a valid ``host[:port]`` (RFC 9110 §7.2: a port that is
    not a number up to 65535, say), or whose name has an empty label or a
    percent-escape, never matches.
    """

    template: str
    name: CompiledPath
    port: int | None

    def match(self, host: str, scheme: str = "http") -> dict[str, Any] | None:
        """The host parameters if ``host`` (a Host header value) matches, else ``None``."""
        if not valid_host(host):
            return None
        name, port = _split_host(host)
        if self.port is not None:
            number = int(port) if port else _DEFAULT_PORTS.get(scheme)
            if number != self.port:
                return None
        # A fully qualified name may end in a dot (RFC 1034 §3.1): the same host.
        name = name.lower().removesuffix(".")
        # No empty label, no percent-escape: "..example.com" would give a "."
        # parameter, "%61dmin" an "admin" that a check on the name misses.
        if not name or name[0] == "." or name[-1] == "." or ".." in name or "%" in name:
            return None
        return self.name.match(name)


def _split_host(host: str) -> tuple[str, str]:
    if host.startswith("["):
        end = host.find("]") + 1
        return host[:end], host[end + 1 :]
    name, _, port = host.partition(":")
    return name, port


def compile_host(template: str) -> HostPattern:
    """Compile a ``host()`` pattern; ``ValueError`` for one no valid Host could match."""
    name, port = _split_host(template)
    if "/" in template or (port and not (port.isascii() and port.isdigit())):
        raise ValueError(f"invalid host pattern (name[:port], port a number): {template!r}")
    if (port and int(port) > 65535) or template.endswith(":"):
        raise ValueError(f"invalid host pattern (port up to 65535): {template!r}")
    # Lower-case the literal parts only: parameter names keep their case.
    pieces: list[str] = []
    end = 0
    for found in _PARAM.finditer(name):
        pieces.append(name[end : found.start()].lower())
        pieces.append(found.group(0))
        end = found.end()
    pieces.append(name[end:].lower())
    compiled = compile_path("".join(pieces).removesuffix("."))
    if compiled.regex is None and not valid_host(compiled.template):
        raise ValueError(f"invalid host pattern: {template!r}")
    return HostPattern(template, compiled, int(port) if port else None)


__all__ = [
    "CONVERTORS",
    "CompiledPath",
    "Convertor",
    "FloatConvertor",
    "HostPattern",
    "IntegerConvertor",
    "PathConvertor",
    "StringConvertor",
    "UUIDConvertor",
    "compile_host",
    "compile_path",
    "regex_source",
    "register_convertor",
    "register_url_convertor",
]
