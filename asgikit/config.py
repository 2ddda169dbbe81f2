"""Settings from the environment: ``Config``, ``Secret``, ``CommaSeparatedStrings``.

``config = Config(".env")`` reads a variable with ``config("NAME", cast=int,
default=8000)``.  The process environment wins over the ``.env`` file, as it
does for every twelve-factor tool.  A missing variable without a default, or a
value the cast refuses, raises :class:`ConfigError` naming the variable, at
start-up rather than in the middle of a request.

``environ`` wraps ``os.environ`` and refuses to change a key once a
``Config`` has looked it up, so a test that sets ``DEBUG`` after the settings
were read fails loudly instead of silently testing the old value.

The ``.env`` format is the common subset: ``KEY=VALUE`` lines, an optional
``export`` in front, ``#`` comments, single quotes (literal) and double quotes
(with ``\\n``, ``\\t``, ``\\"`` and ``\\\\`` escapes).  No variable expansion, no
multi-line values: those are where the many dialects disagree.

Unlike Starlette's ``Config``: an unterminated quote in ``.env`` is an error
naming the file and line (not a literal quote character), the bool cast also
takes ``yes``/``no`` and ``on``/``off``, and a default that is not a string is
returned as it is, never cast.
"""

from __future__ import annotations

import os
import re
import shlex
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

_T = TypeVar("_T")
_D = TypeVar("_D")


class ConfigError(ValueError):
    """A variable is missing or malformed; ``name`` is the variable (prefix included)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name


class MissingConfigError(ConfigError, KeyError):
    """A variable is missing and has no default (also a ``KeyError``)."""

    def __str__(self) -> str:
        # KeyError's own __str__ would show the message in quotes.
        return str(self.args[0])


class EnvironError(Exception):
    """A key of ``environ`` was changed after a ``Config`` had read it."""


class Environ(MutableMapping[str, str]):
    """A view of ``os.environ`` (or another mapping) that remembers what was read.

    Setting or deleting a key that was already read raises ``EnvironError``:
    the settings built from it would no longer match the environment.
    """

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        self._environ = environ
        self._read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self._read.add(key)
        return self._environ[key]

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            # A key looked up and found missing was read too: a default was used.
            self._read.add(key)
        return key in self._environ

    def __setitem__(self, key: str, value: str) -> None:
        if key in self._read:
            raise EnvironError(f"environ[{key!r}] was already read; it cannot be changed now")
        self._environ[key] = value

    def __delitem__(self, key: str) -> None:
        if key in self._read:
            raise EnvironError(f"environ[{key!r}] was already read; it cannot be deleted now")
        del self._environ[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)

    def __repr__(self) -> str:
        return f"Environ({len(self)} variables, {len(self._read)} read)"


#: The process environment, guarded: use it (``environ["X"] = ...``) in tests.
environ = Environ()


class Secret:
    """A string that keeps out of logs: ``repr`` hides it, ``str(secret)`` gives it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def __repr__(self) -> str:
        return f"{type(self).__name__}('**********')"

    def __str__(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)


class CommaSeparatedStrings(Sequence[str]):
    """``"a, b,c"`` as the list ``["a", "b", "c"]`` (blanks around items dropped).

    Items may be quoted, as a shell quotes (``"'a,b', c"`` is ``["a,b", "c"]``);
    an unbalanced quote raises ``ValueError``.  ``str()`` joins the items with
    ``", "`` (Starlette quotes each one).
    """

    def __init__(self, value: str | Iterable[str]) -> None:
        if isinstance(value, str):
            splitter = shlex.shlex(value, posix=True)
            splitter.whitespace = ","
            splitter.whitespace_split = True
            self._items = [item.strip() for item in splitter if item.strip()]
        else:
            self._items = list(value)

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[str]: ...
    def __getitem__(self, index: int | slice) -> str | Sequence[str]:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CommaSeparatedStrings):
            return self._items == other._items
        if isinstance(other, (list, tuple)):
            return self._items == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"

    def __str__(self) -> str:
        return ", ".join(self._items)


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _to_bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("not a boolean (use true/false, 1/0, yes/no or on/off)")


class _Undefined:
    def __repr__(self) -> str:
        return "<undefined>"


_UNDEFINED: Any = _Undefined()

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\"}
_ESCAPE = re.compile(r"\\(.)")


def _unquote(raw: str, where: str) -> str:
    if raw[:1] in ("'", '"'):
        quote = raw[0]
        end = raw.find(quote, 1)
        if quote == '"':
            # Double quotes take backslash escapes (as a shell does), so an
            # escaped quote does not end the value.
            end = 1
            while end < len(raw) and raw[end] != '"':
                end += 2 if raw[end] == "\\" else 1
        if end >= len(raw) or end < 1:
            raise ConfigError(where, f"{where}: unterminated {quote} quote")
        rest = raw[end + 1 :].strip()
        if rest and not rest.startswith("#"):
            raise ConfigError(where, f"{where}: unexpected text after the closing quote")
        inner = raw[1:end]
        if quote == '"':
            inner = _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), inner)
        return inner
    # Unquoted: a '#' after whitespace starts a comment.
    comment = re.search(r"\s#", raw)
    return (raw[: comment.start()] if comment else raw).strip()


def read_env_file(path: str | os.PathLike[str], encoding: str = "utf-8") -> dict[str, str]:
    """The variables a ``.env`` file sets; a malformed line raises ``ConfigError``."""
    values: dict[str, str] = {}
    with open(path, encoding=encoding) as file:
        for number, line in enumerate(file, start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            where = f"{os.fspath(path)}:{number}"
            if stripped.startswith("export "):
                stripped = stripped[len("export ") :].lstrip()
            key, sep, raw = stripped.partition("=")
            key = key.strip()
            if not sep or not _KEY.fullmatch(key):
                raise ConfigError(where, f"{where}: expected KEY=VALUE, got {stripped[:40]!r}")
            values[key] = _unquote(raw.strip(), where)
    return values


class Config:
    """Typed settings from the environment, then from an optional ``.env`` file.

    ``environ`` is the mapping read first (by default the guarded
    :data:`environ`); ``env_prefix`` is put in front of every name;
    ``encoding`` is the ``.env`` file's (UTF-8 by default).  A missing
    ``env_file`` gives a warning and is otherwise ignored, so the same code runs
    where the environment is set by other means.
    """

    def __init__(
        self,
        env_file: str | os.PathLike[str] | None = None,
        environ: Mapping[str, str] = environ,
        env_prefix: str = "",
        encoding: str = "utf-8",
    ) -> None:
        self.environ = environ
        self.env_prefix = env_prefix
        self.file_values: dict[str, str] = {}
        if env_file is not None:
            if Path(env_file).is_file():
                self.file_values = read_env_file(env_file, encoding)
            else:
                warnings.warn(f"config file {os.fspath(env_file)!r} not found", stacklevel=2)

    @overload
    def __call__(self, key: str) -> str: ...
    @overload
    def __call__(self, key: str, cast: Callable[[str], _T]) -> _T: ...
    @overload
    def __call__(self, key: str, *, default: _D) -> str | _D: ...
    @overload
    def __call__(self, key: str, cast: Callable[[str], _T], default: _D) -> _T | _D: ...
    def __call__(
        self, key: str, cast: Callable[[str], Any] | None = None, default: Any = _UNDEFINED
    ) -> Any:
        """The value of ``key`` (with the prefix), through ``cast``.

        A string ``default`` is cast like a value from the environment; any
        other default (``None``, say) is returned as it is.
        """
        return self.get(key, cast, default)

    def get(
        self, key: str, cast: Callable[[str], Any] | None = None, default: Any = _UNDEFINED
    ) -> Any:
        """Same as calling the config."""
        name = self.env_prefix + key
        if name in self.environ:
            value = self.environ[name]
        elif name in self.file_values:
            value = self.file_values[name]
        elif default is _UNDEFINED:
            raise MissingConfigError(
                name, f"config variable {name!r} is missing and has no default"
            )
        elif isinstance(default, str):
            value = default
        else:
            return default
        return self._cast(name, value, cast)

    @staticmethod
    def _cast(name: str, value: str, cast: Callable[[str], Any] | None) -> Any:
        if cast is None:
            return value
        convert = _to_bool if cast is bool else cast
        try:
            return convert(value)
        except (ValueError, TypeError) as exc:
            cast_name = getattr(cast, "__name__", repr(cast))
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise ConfigError(
                name,
                f"config variable {name!r} has value {shown!r}: not a valid {cast_name} ({exc})",
            ) from None


__all__ = [
    "CommaSeparatedStrings",
    "Config",
    "ConfigError",
    "Environ",
    "EnvironError",
    "MissingConfigError",
    "Secret",
    "environ",
    "read_env_file",
]
