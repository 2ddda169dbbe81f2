"""Users' files type-check: the good ones pass mypy --strict and pyright, the bad ones fail so.

``good/`` holds apps written as a user would (plain asgikit, Starlette,
FastAPI, Litestar); ``bad/`` holds mistakes, each line after an
``# expect mypy: ...`` / ``# expect pyright: ...`` comment must be reported
by that checker with that text, and no other line may be.  Both checkers run
once per folder, so the whole module takes a few seconds per checker.
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


def run_mypy(folder: Path) -> tuple[int, Errors]:
    # No cache: the checks must not depend on what a previous run left behind.
    command = [sys.executable, "-m", "mypy", "--strict", "--no-incremental"]
    command += ["--cache-dir", "/dev/null", "--hide-error-context", "--no-error-summary"]
    done = subprocess.run(
        [*command, str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    errors: Errors = defaultdict(list)
    for line in done.stdout.splitlines():
        match = _MYPY_LINE.match(line)
        if match:
            key = (Path(match["file"]).name, int(match["line"]))
            errors[key].append(match["text"])
    return done.returncode, errors


def run_pyright(folder: Path) -> tuple[int, Errors]:
    command = [sys.executable, "-m", "pyright", "--outputjson", "--pythonpath", sys.executable]
    done = subprocess.run(
        [*command, str(folder)], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    errors: Errors = defaultdict(list)
    for diagnostic in json.loads(done.stdout)["generalDiagnostics"]:
        if diagnostic["severity"] == "error":
            key = (Path(diagnostic["file"]).name, diagnostic["range"]["start"]["line"] + 1)
            errors[key].append(diagnostic["message"])
    return done.returncode, errors


RUNNERS = {"mypy": run_mypy, "pyright": run_pyright}


def expected_errors(checker: str) -> dict[tuple[str, int], list[str]]:
    """``(file, line) -> texts``: each ``# expect <checker>: text`` names the next code line."""
    expected: dict[tuple[str, int], list[str]] = defaultdict(list)
    for path in sorted(BAD.glob("*.py")):
        pending: list[str] = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            stripped = line.strip()
            if stripped.startswith("# expect "):
                name, _, text = stripped.removeprefix("# expect ").partition(": ")
                if name == checker:
                    pending.append(text)
            elif stripped and not stripped.startswith("#") and pending:
                expected[(path.name, number)] = pending
                pending = []
    return expected


@pytest.mark.parametrize("checker", CHECKERS)
def test_users_files_pass_the_checker(checker: str) -> None:
    returncode, errors = RUNNERS[checker](GOOD)
    assert dict(errors) == {}
    assert returncode == 0


@pytest.mark.parametrize("checker", CHECKERS)
def test_mistakes_fail_the_checker_for_the_right_reason(checker: str) -> None:
    expected = expected_errors(checker)
    assert len(expected) >= 10, "the bad files lost their expectations"
    returncode, errors = RUNNERS[checker](BAD)
    assert returncode != 0
    assert sorted(errors) == sorted(expected), "errors on other lines than expected"
    for key, texts in expected.items():
        reported = "\n".join(errors[key])
        for text in texts:
            assert text in reported, f"{key}: {text!r} not in {reported!r}"


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
