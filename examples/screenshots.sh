#!/usr/bin/env bash
# Serve the demo library on loopback, sign in to the console with a fresh admin key, and save
# screenshots of its main pages into docs/screenshots/ (with each page's load time).
set -euo pipefail
cd "$(dirname "$0")/.."
LIB=build/demo-library
CT=".venv/bin/copytrail -L $LIB"
PORT=$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
$CT key revoke screenshots >/dev/null 2>&1 || true
KEY=$($CT key add "screenshots-$(date +%s)" --role admin --json | .venv/bin/python -c "import json,sys; print(json.load(sys.stdin)['key'])")
$CT serve --port "$PORT" --guard demo-class >/dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do .venv/bin/python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/healthz')" 2>/dev/null && break; sleep 0.1; done
.venv/bin/python tools/screenshots.py --url "http://127.0.0.1:$PORT" --key "$KEY" --out docs/screenshots
