#!/usr/bin/env bash
# Set everything up and serve examples/showcase.py on http://127.0.0.1:8000.
# Installs only when pyproject.toml changed since the last install (a stamp in
# .venv keyed on its hash).  Ctrl+C stops it within seconds, clock or chat open.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.showcase-installed
wanted="$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())') [server,templates]"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[server,templates]'
    echo "$wanted" >"$stamp"
fi
# SSE streams and WebSockets end by themselves on Ctrl+C/SIGTERM; the graceful
# timeout bounds whatever else is still open (a long download).
exec .venv/bin/python -m uvicorn examples.showcase:app --host 127.0.0.1 --port 8000 \
    --timeout-graceful-shutdown 10 "$@"
