"""Users' files type-check: the good ones pass mypy --strict and pyright, the bad ones fail so.

``good/`` holds apps written as a user would (plain asgikit, Starlette,
FastAPI, Litestar); ``bad/`` holds mistakes, each line after an
``# expect mypy: ...`` / ``# expect pyright: ...`` comment must be reported
by that checker with that text, and no other line may be.  Both checkers run
once over both folders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
GOOD = HERE / "good"
BAD = HERE / "bad"
CHECKERS = ("mypy", "pyright")

Errors = dict[tuple[str, int], list[str]]
_MYPY_LINE = re.compile(r"^(?P<file>[^:]+\.py):(?P<line>\d+): (?:error|note): (?P<text>.*)$")


def run_mypy() -> Errors:
    # mypy's own cache (.mypy_cache, as `mypy` in the test command uses) keeps
    # the third-party packages' analysis between runs; results do not depend on it.
    command = [sys.executable, "-m", "mypy", "--strict", "--hide-error-context"]
    command += ["--no-error-summary", str(GOOD), str(BAD)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 2 is a crash
    errors: Errors = defaultdict(list)
    for line in done.stdout.splitlines():
        match = _MYPY_LINE.match(line)
        if match:
            errors[(match["file"], int(match["line"]))].append(match["text"])
    return errors


def run_pyright() -> Errors:
    command = [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable]
    done = subprocess.run(
        [*command, str(GOOD), str(BAD)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr
    errors: Errors = defaultdict(list)
    for diagnostic in json.loads(done.stdout)["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            file = str(Path(diagnostic["file"]).relative_to(ROOT))
            errors[(file, diagnostic["range"]["start"]["line"] + 1)].append(diagnostic["message"])
    return errors


RUNNERS = {"mypy": run_mypy, "pyright": run_pyright}


@pytest.fixture(scope="module", params=CHECKERS)
def checked(request: pytest.FixtureRequest) -> tuple[str, Errors]:
    """``(checker, errors)`` from one run of the checker over both folders."""
    checker = str(request.param)
    return checker, RUNNERS[checker]()


def in_folder(errors: Errors, folder: Path) -> Errors:
    prefix = str(folder.relative_to(ROOT)) + "/"
    return {key: texts for key, texts in errors.items() if key[0].startswith(prefix)}


def expected_errors(checker: str) -> Errors:
    """``(file, line) -> texts``: each ``# expect <checker>: text`` names the next code line."""
    expected: Errors = defaultdict(list)
    for path in sorted(BAD.glob("*.py")):
        pending: list[str] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith("# expect "):
                name, _, text = stripped.removeprefix("# expect ").partition(": ")
                if name == checker:
                    pending.append(text)
            elif stripped and not stripped.startswith("#") and pending:
                expected[(str(path.relative_to(ROOT)), number)] = pending
                pending = []
    return expected


def test_users_files_pass_the_checker(checked: tuple[str, Errors]) -> None:
    _, errors = checked
    assert in_folder(errors, GOOD) == {}


def test_mistakes_fail_the_checker_for_the_right_reason(checked: tuple[str, Errors]) -> None:
    checker, errors = checked
    expected = expected_errors(checker)
    assert len(expected) >= 10, "the bad files lost their expectations"
    reported = in_folder(errors, BAD)
    assert sorted(reported) == sorted(expected), "errors on other lines than expected"
    for key, texts in expected.items():
        found = "\n".join(reported[key])
        for text in texts:
            assert text in found, f"{key}: {text!r} not in {found!r}"


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.py")), ids=lambda path: path.stem)
def test_users_files_also_run(path: Path) -> None:
    # What the checkers accept must hold at run time too (``auth.BaseUser``).
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("version", ["3.10", "3.13"])
def test_the_package_type_checks_on_the_oldest_and_newest_supported_python(version: str) -> None:
    # Only one CPython runs the suite here; mypy's stubs know what each
    # version's standard library has (3.10: no tomllib, no ExceptionGroup;
    # 3.13: no cgi), which the README's "3.10 or later" depends on.
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--python-version", version, "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
