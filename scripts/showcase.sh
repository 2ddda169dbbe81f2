#!/usr/bin/env bash
# Set everything up and serve examples/showcase.py on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[server,templates]'
# SSE streams and WebSockets end by themselves on Ctrl+C/SIGTERM; the graceful
# timeout bounds whatever else is still open (a long download).
exec .venv/bin/python -m uvicorn examples.showcase:app --host 127.0.0.1 --port 8000 \
    --timeout-graceful-shutdown 10 "$@"
