"""``tests/PARITY.md`` stays true: every row names test files that exist and test something."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
TABLE = (ROOT / "tests" / "PARITY.md").read_text()

#: The peers' test files issue 13 asks the table to cover, at the least.
REQUIRED = {
    "tests/test_datastructures.py", "tests/test_requests.py", "tests/test_responses.py",
    "tests/test_routing.py", "tests/test_staticfiles.py", "tests/test_formparsers.py",
    "tests/middleware/test_cors.py", "tests/middleware/test_gzip.py",
    "tests/middleware/test_session.py", "tests/middleware/test_trusted_host.py",
    "tests/middleware/test_https_redirect.py", "tests/test_websockets.py",
    "tests/test_endpoints.py", "tests/test_authentication.py", "tests/test_config.py",
    "tests/test_exceptions.py", "tests/middleware/test_base.py", "tests/test_testclient.py",
}  # fmt: skip


def rows() -> list[tuple[str, list[str], str]]:
    found = []
    for line in TABLE.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        peer = re.findall(r"`([^`]+)`", cells[0])[0]
        ours = re.findall(r"`(tests/[^`]+\.py)`", cells[1])
        found.append((peer, ours, cells[2]))
    return found


def test_the_table_covers_every_peer_file_the_issue_names() -> None:
    assert {peer for peer, _, _ in rows()} >= REQUIRED


def test_every_row_names_existing_test_files_with_tests() -> None:
    for peer, ours, differences in rows():
        assert ours, f"{peer}: no asgikit test file named"
        assert differences, f"{peer}: say 'None.' when nothing differs"
        for name in ours:
            path = ROOT / name
            assert path.is_file(), f"{peer}: {name} does not exist"
            assert re.search(r"^(async )?def test_", path.read_text(), re.MULTILINE), name
