"""The package's shape, enforced: imports go one way, each option list lives once.

``scripts/import_cycles.py`` counts import cycles over every ``import
asgikit...`` (type-only and function-level ones included); import-linter's
contracts (``[tool.importlinter]`` in pyproject.toml, see ARCHITECTURE.md)
hold the layers.  A factory's signature is the one place its options are
declared: a class it builds takes them checked, as one object.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

import asgikit

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "import_cycles.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_package_has_no_import_cycles() -> None:
    done = _run(sys.executable, str(SCRIPT))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("0 import cycle(s)")


def test_the_cycle_counter_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "asgikit"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    # A type-only import, a relative import of a submodule by name, and an
    # import inside a function: each closes a cycle.
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from asgikit.b import B\n"
    )
    (package / "b.py").write_text("from .sub import c\nB = 1\n")
    (package / "sub" / "c.py").write_text("def f():\n    import asgikit.a\n")
    (package / "d.py").write_text("import asgikit.a\n")  # on no cycle
    done = _run(sys.executable, str(SCRIPT), str(package))
    assert done.returncode == 1
    assert "cycle 1: 3 modules: asgikit.a, asgikit.b, asgikit.sub.c" in done.stdout
    assert "asgikit.b -> asgikit.sub.c  (asgikit/b.py:1)" in done.stdout
    assert "asgikit.d" not in done.stdout
    assert done.stdout.endswith("1 import cycle(s) among 6 modules\n")


def test_import_linter_contracts_hold() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    if not lint_imports.exists():
        pytest.skip("import-linter is not installed (dev extra)")
    done = _run(str(lint_imports), "--no-cache")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


# router(*routes, ...) is the spelling of the public class Router(routes, ...)
# with the routes as arguments, not a middleware over a private helper.
_NOT_A_HELPER = {"router"}


def _factories() -> list[object]:
    found: list[object] = []
    for name, module in asgikit._EXPORTS.items():
        value = getattr(importlib.import_module(module), name)
        if inspect.isfunction(value) and name not in _NOT_A_HELPER:
            found.append(pytest.param(name, value, id=name))
    return found


@pytest.mark.parametrize(("name", "factory"), _factories())
def test_no_option_list_is_declared_twice(name: str, factory: object) -> None:
    """A class beside a factory takes its options as one checked object, not as keywords."""
    options = {
        p.name
        for p in inspect.signature(factory).parameters.values()  # type: ignore[arg-type]
        if p.kind is p.KEYWORD_ONLY
    }
    module = sys.modules[factory.__module__]
    for value in vars(module).values():
        if not inspect.isclass(value) or value.__module__ != module.__name__:
            continue
        if dataclasses.is_dataclass(value):
            continue  # the one object the options travel in
        keywords = {
            p.name
            for p in inspect.signature(value.__init__).parameters.values()
            if p.kind is p.KEYWORD_ONLY
        }
        repeated = options & keywords
        assert len(repeated) < 2, f"{name}() and {value.__name__} both declare {sorted(repeated)}"


def test_static_files_has_one_signature_and_help_shows_it() -> None:
    from asgikit.staticfiles import StaticFiles, static_files

    options = list(inspect.signature(static_files).parameters)
    assert options[:2] == ["directory", "html"]
    assert list(inspect.signature(StaticFiles).parameters) == ["settings"]
    assert isinstance(static_files(ROOT), StaticFiles)


def test_form_limits_are_declared_once_in_form_limits() -> None:
    from asgikit.forms import FormContext, FormLimits

    assert list(inspect.signature(FormContext).parameters) == ["read", "limits"]
    assert "max_memory_size" in {f.name for f in dataclasses.fields(FormLimits)}
