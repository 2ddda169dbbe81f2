"""The built wheel and sdist: name, SPDX licence, licence file, URLs; twine check --strict passes.

The wheel is built with flit_core's PEP 517 hooks straight from this tree,
in a temporary folder, so the test needs no network and no build isolation.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
NAME = "asgikit-toolkit"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    code = (
        "import sys, flit_core.buildapi as b\n"
        "b.build_wheel(sys.argv[1]); b.build_sdist(sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True, timeout=120)
    return out


def wheel_metadata(dist: Path) -> tuple[zipfile.ZipFile, str]:
    (wheel_path,) = dist.glob("*.whl")
    wheel = zipfile.ZipFile(wheel_path)
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    return wheel, wheel.read(metadata).decode()


def test_wheel_is_named_for_pypi_and_installs_the_asgikit_package(dist: Path) -> None:
    wheel, text = wheel_metadata(dist)
    metadata = Parser().parsestr(text)
    assert metadata["Name"] == NAME
    assert "asgikit/__init__.py" in wheel.namelist()
    assert "asgikit/py.typed" in wheel.namelist()


def test_wheel_metadata_has_the_spdx_licence_and_its_file(dist: Path) -> None:
    wheel, text = wheel_metadata(dist)
    metadata = Parser().parsestr(text)
    assert metadata["Metadata-Version"] == "2.4"
    assert metadata["License-Expression"] == "BSD-3-Clause"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["License"] is None  # the free-text form flit used to drop
    (licence,) = [n for n in wheel.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    assert b"BSD 3-Clause License" in wheel.read(licence)
    assert b"the asgikit authors" in wheel.read(licence)


def test_wheel_metadata_links_the_readme_and_the_changelog(dist: Path) -> None:
    _, text = wheel_metadata(dist)
    urls = dict(
        value.split(", ", 1) for value in Parser().parsestr(text).get_all("Project-URL", [])
    )
    assert set(urls) == {"Documentation", "Changelog"}
    assert all(url.startswith("https://") and NAME in url for url in urls.values())


def test_sdist_carries_the_licence_the_changelog_and_the_tests(dist: Path) -> None:
    (sdist_path,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist_path) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"} <= names
    assert "tests/typing/test_typing.py" in names
    assert not any("__pycache__" in name for name in names)


def test_twine_check_strict_passes(dist: Path) -> None:
    files = sorted(str(path) for path in dist.iterdir())
    done = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *files],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("PASSED") == 2


_HINT = re.compile(r"pip install ['\"]?([A-Za-z0-9_.-]+)(\[[^\]'\"]*\])?")


def test_every_install_hint_names_an_installable_thing() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    section = pyproject.split("[project.optional-dependencies]")[1].split("\n[")[0]
    extras = re.findall(r"^(\w+) = \[", section, re.MULTILINE)
    assert "proxy" in extras
    wrong: set[str] = set()
    for path in sorted([*ROOT.glob("asgikit/**/*.py"), *ROOT.glob("examples/**/*.py")]):
        for package, extra in _HINT.findall(path.read_text()):
            if package == "asgikit" or (extra and package != NAME):
                wrong.add(str(path.relative_to(ROOT)))
            elif package == NAME:
                assert extra.strip("[]") in extras, (path, extra)
    assert not wrong, f"install hints naming another project: {sorted(wrong)}"
