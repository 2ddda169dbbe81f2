#!/usr/bin/env bash
# Set everything up and run the whole test suite: ruff, mypy --strict, pytest.
# Works in a fresh clone with only python3; as root with apt-get it also
# installs the Debian programs some tests drive (curl, redis-server, nginx,
# chromium, openssl).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES="curl openssl redis-server nginx-light chromium"
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    missing=""
    for pkg in $DEBIAN_PACKAGES; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
    done
    if [ -n "$missing" ]; then
        echo "installing Debian packages:$missing"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
    fi
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[dev]'

.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"

# asgikit.testing and asgikit.proxy run on httpx2 (above) and on plain httpx:
# a small second venv, made once, with only what their tests import.
if [ "$#" -eq 0 ]; then
    if [ ! -x .venv-httpx/bin/python ]; then
        python3 -m venv .venv-httpx
        .venv-httpx/bin/python -m pip install -q 'httpx>=0.27' 'anyio>=4.4' 'multipart>=1.2' \
            'h11>=0.14' 'websockets>=13' 'pytest>=8' 'hypothesis>=6.100' 'trio>=0.25' \
            'uvicorn>=0.30' 'hypercorn>=0.17'
    fi
    PYTHONPATH="$PWD" .venv-httpx/bin/python -m pytest -q -p no:cacheprovider \
        tests/proxy tests/test_testing.py
fi
