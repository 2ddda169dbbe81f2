"""Tests for asgikit.config: Config, its casts, the .env reader and the guarded environ."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from asgikit.config import (
    CommaSeparatedStrings,
    Config,
    ConfigError,
    Environ,
    EnvironError,
    MissingConfigError,
    Secret,
    environ,
    read_env_file,
)


def write_env(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_strings_from_the_environ() -> None:
    config = Config(environ={"NAME": "asgikit"})
    assert config("NAME") == "asgikit"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("True", True),
        ("1", True),
        ("yes", True),
        ("ON", True),
        ("false", False),
        ("FALSE", False),
        ("0", False),
        ("no", False),
        ("off", False),
    ],
)
def test_bool_cast_accepts_the_usual_spellings(raw: str, expected: bool) -> None:
    assert Config(environ={"DEBUG": raw})("DEBUG", cast=bool) is expected


def test_int_float_and_comma_separated_casts() -> None:
    config = Config(environ={"PORT": "8000", "RATIO": "0.5", "HOSTS": " a.com, b.com ,,c "})
    assert config("PORT", cast=int) == 8000
    assert config("RATIO", cast=float) == 0.5
    assert list(config("HOSTS", cast=CommaSeparatedStrings)) == ["a.com", "b.com", "c"]


def test_a_missing_variable_without_default_names_it() -> None:
    config = Config(environ={}, env_prefix="APP_")
    with pytest.raises(MissingConfigError, match="'APP_SECRET_KEY' is missing") as info:
        config("SECRET_KEY")
    assert info.value.name == "APP_SECRET_KEY"
    assert isinstance(info.value, KeyError)


@pytest.mark.parametrize(("cast", "raw"), [(bool, "maybe"), (int, "eighty"), (float, "x1")])
def test_a_malformed_value_names_the_variable_and_the_cast(cast: type, raw: str) -> None:
    config = Config(environ={"VALUE": raw})
    with pytest.raises(
        ConfigError, match=f"'VALUE' has value '{raw}': not a valid {cast.__name__}"
    ):
        config("VALUE", cast=cast)


def test_string_defaults_are_cast_other_defaults_are_returned_as_they_are() -> None:
    config = Config(environ={})
    assert config("PORT", cast=int, default="80") == 80
    assert config("DEBUG", cast=bool, default="off") is False
    assert config("TIMEOUT", cast=float, default=None) is None
    assert config("NAME", default="x") == "x"


def test_prefix_is_put_in_front_of_every_name() -> None:
    config = Config(environ={"APP_PORT": "1", "PORT": "2"}, env_prefix="APP_")
    assert config("PORT", cast=int) == 1


def test_secret_hides_its_value_in_repr() -> None:
    secret = Config(environ={"KEY": "hunter2"})("KEY", cast=Secret)
    assert "hunter2" not in repr(secret)
    assert "hunter2" not in f"{[secret]}"
    assert str(secret) == "hunter2"


def test_comma_separated_strings_behave_as_a_sequence() -> None:
    items = CommaSeparatedStrings("a, b")
    assert (len(items), items[0], items[-1], str(items)) == (2, "a", "b", "a, b")
    assert items == ["a", "b"]
    assert CommaSeparatedStrings(["x"]) == CommaSeparatedStrings("x")
    assert repr(items) == "CommaSeparatedStrings(['a', 'b'])"


# .env files


def test_env_file_values_are_used_and_the_environ_wins(tmp_path: Path) -> None:
    path = write_env(tmp_path, "PORT=8000\nDEBUG=true\n")
    config = Config(path, environ={"PORT": "9000"})
    assert config("PORT", cast=int) == 9000
    assert config("DEBUG", cast=bool) is True


def test_env_file_syntax(tmp_path: Path) -> None:
    path = write_env(
        tmp_path,
        "# a comment\n"
        "\n"
        "PLAIN = value with spaces   # trailing comment\n"
        "export EXPORTED=1\n"
        "SINGLE='lit\\n # not a comment'\n"
        'DOUBLE="line\\nnext \\"quoted\\" # kept"\n'
        "EMPTY=\n"
        "HASH=a#b\n"
        "URL=postgres://u:p@h/db?x=1\n",
    )
    assert read_env_file(path) == {
        "PLAIN": "value with spaces",
        "EXPORTED": "1",
        "SINGLE": "lit\\n # not a comment",
        "DOUBLE": 'line\nnext "quoted" # kept',
        "EMPTY": "",
        "HASH": "a#b",
        "URL": "postgres://u:p@h/db?x=1",
    }


@pytest.mark.parametrize(
    "line", ["NO_EQUALS", "1BAD=x", "OPEN='unterminated", 'OPEN="no end', "Q='a' trailing"]
)
def test_a_malformed_env_line_names_the_file_and_line(tmp_path: Path, line: str) -> None:
    path = write_env(tmp_path, f"GOOD=1\n{line}\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        Config(path, environ={})


def test_a_missing_env_file_warns(tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="not found"):
        config = Config(tmp_path / "absent.env", environ={"A": "1"})
    assert config("A") == "1"


@given(
    st.dictionaries(
        st.from_regex(r"[A-Z_][A-Z0-9_]{0,10}", fullmatch=True),
        st.text(
            alphabet=st.characters(
                codec="utf-8",
                # Line breaks end a line; no multi-line values in this format.
                exclude_characters="\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029",
            ),
            max_size=20,
        ),
        max_size=5,
    )
)
def test_double_quoted_values_round_trip(values: dict[str, str]) -> None:
    escaped = {k: v.replace("\\", "\\\\").replace('"', '\\"') for k, v in values.items()}
    text = "".join(f'{k}="{v}"\n' for k, v in escaped.items())
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / ".env"
        path.write_text(text, encoding="utf-8")
        assert read_env_file(path) == values


# The guarded environ


def test_environ_refuses_to_change_a_key_after_it_was_read() -> None:
    backing = {"DEBUG": "false"}
    guarded = Environ(backing)
    config = Config(environ=guarded)
    assert config("DEBUG", cast=bool) is False
    guarded["OTHER"] = "fine"
    with pytest.raises(EnvironError, match="DEBUG"):
        guarded["DEBUG"] = "true"
    with pytest.raises(EnvironError, match="DEBUG"):
        del guarded["DEBUG"]
    assert backing == {"DEBUG": "false", "OTHER": "fine"}


def test_a_key_read_as_missing_cannot_be_set_later() -> None:
    guarded = Environ({})
    assert Config(environ=guarded)("FEATURE", default="off") == "off"
    with pytest.raises(EnvironError, match="FEATURE"):
        guarded["FEATURE"] = "on"


def test_the_default_environ_wraps_os_environ() -> None:
    assert isinstance(environ, Environ)
    name = "ASGIKIT_TEST_CONFIG_UNUSED"
    os.environ[name] = "1"
    try:
        assert environ[name] == "1"
        assert Config()(name, cast=int) == 1
    finally:
        del os.environ[name]


# -- Parity with Starlette's tests/test_config.py ------------------------------
# Deliberate differences: an unterminated quote in .env is an error naming the
# file and line (Starlette keeps it as a literal character); the bool cast also
# takes yes/no and on/off; a default that is not a string is returned as it
# is, never cast.  Starlette's test_csv (test_datastructures.py) is here too.


def test_a_settings_module_as_starlette_documents_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from asgikit.datastructures import URL

    path = write_env(
        tmp_path,
        "# Do not commit to source control\n"
        "DATABASE_URL=postgres://user:pass@localhost/dbname\n"
        "REQUEST_HOSTNAME=example.com\nSECRET_KEY=12345\nBOOL_AS_INT=0\n\n\n",
    )
    config = Config(path, environ={"DEBUG": "true"})
    assert config("DEBUG", cast=bool) is True
    database_url = config("DATABASE_URL", cast=URL)
    assert (database_url.path, database_url.username, database_url.password) == (
        "/dbname",
        "user",
        "pass",
    )
    assert "pass" not in repr(database_url)
    assert config("REQUEST_TIMEOUT", cast=int, default=10) == 10
    assert config("REQUEST_HOSTNAME") == "example.com"
    assert config("MAIL_HOSTNAME", default=None) is None
    secret = config("SECRET_KEY", cast=Secret)
    assert (repr(secret), str(secret), bool(secret)) == ("Secret('**********')", "12345", True)
    assert not config("EMPTY_SECRET", cast=Secret, default="")
    assert config("UNSET_SECRET", cast=Secret, default=None) is None
    assert config("BOOL_AS_INT", cast=bool) is False
    assert config("BOOL_AS_INT", cast=int) == 0
    with pytest.raises(KeyError):
        config.get("MISSING")
    with pytest.raises(ValueError):
        config.get("DEBUG", cast=int)
    with pytest.raises(ValueError):
        config.get("REQUEST_HOSTNAME", cast=bool)
    with pytest.raises(ValueError):
        config("INT_DEFAULT_STR", cast=int, default="true")
    assert Config(Path(path))("REQUEST_HOSTNAME") == "example.com"


def test_the_process_environment_through_the_default_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ASGIKIT_EXAMPLE_TEST", "123")
    monkeypatch.setenv("ASGIKIT_BOOL_AS_INT", "1")
    config = Config()
    assert config.get("ASGIKIT_EXAMPLE_TEST", cast=int) == 123
    assert config.get("ASGIKIT_BOOL_AS_INT", cast=bool) is True
    monkeypatch.setenv("ASGIKIT_BOOL_AS_INT", "2")
    with pytest.raises(ValueError):
        config.get("ASGIKIT_BOOL_AS_INT", cast=bool)


def test_environ_mutable_until_read_and_a_full_mapping() -> None:
    guarded = Environ({})
    guarded["TESTING"] = "True"
    guarded["GONE"] = "123"
    del guarded["GONE"]
    assert guarded["TESTING"] == "True"
    assert "GONE" not in guarded
    with pytest.raises(EnvironError):
        guarded["TESTING"] = "False"
    with pytest.raises(EnvironError):
        del guarded["GONE"]
    whole = Environ()
    assert list(whole) == list(os.environ)
    assert len(whole) == len(os.environ)


def test_env_prefix_hides_unprefixed_names() -> None:
    config = Config(environ={"APP_DEBUG": "value", "ENVIRONMENT": "dev"}, env_prefix="APP_")
    assert config.get("DEBUG") == "value"
    with pytest.raises(KeyError):
        config.get("ENVIRONMENT")


def test_env_file_encoding(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text("MESSAGE=Hello 世界\n", encoding="utf-8")
    assert Config(path, encoding="utf-8").get("MESSAGE") == "Hello 世界"
    path.write_text("MESSAGE=caf\u00e9\n", encoding="latin-1")
    assert Config(path, encoding="latin-1").get("MESSAGE") == "caf\u00e9"


def test_env_file_quotes(tmp_path: Path) -> None:
    path = write_env(
        tmp_path, 'SINGLE=\'say "hi"\'\nDOUBLE="it\'s"\nTRAILING="secret\'"\nUNQUOTED=abc\n'
    )
    config = Config(path)
    assert config.get("SINGLE") == 'say "hi"'
    assert config.get("DOUBLE") == "it's"
    assert config.get("TRAILING") == "secret'"
    assert config.get("UNQUOTED") == "abc"
    with pytest.raises(ConfigError, match=r"\.env:1: unterminated"):
        Config(write_env(tmp_path, 'QUOTE="\n'))


@pytest.mark.parametrize(
    "value",
    [
        '"localhost", "127.0.0.1", 0.0.0.0',
        "'localhost', '127.0.0.1', 0.0.0.0",
        "localhost, 127.0.0.1, 0.0.0.0",
    ],
)
def test_comma_separated_strings_parse_quoted_items(value: str) -> None:
    csv = CommaSeparatedStrings(value)
    assert list(csv) == ["localhost", "127.0.0.1", "0.0.0.0"]
    assert repr(csv) == "CommaSeparatedStrings(['localhost', '127.0.0.1', '0.0.0.0'])"
    assert str(csv) == "localhost, 127.0.0.1, 0.0.0.0"  # Starlette quotes each item
    assert csv[0] == "localhost"
    assert len(csv) == 3
    assert list(CommaSeparatedStrings(["localhost", "127.0.0.1", "0.0.0.0"])) == list(csv)


def test_comma_separated_strings_keep_a_quoted_comma_and_refuse_an_open_quote() -> None:
    assert list(CommaSeparatedStrings("'a,b', c")) == ["a,b", "c"]
    with pytest.raises(ValueError):
        CommaSeparatedStrings("'a, b")
    with pytest.raises(ConfigError, match="HOSTS"):
        Config(environ={"HOSTS": "'a, b"})("HOSTS", cast=CommaSeparatedStrings)
