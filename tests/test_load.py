"""A short load run on loopback (bench/load.py): checks, searches and WebSocket streams against a
real server while an ingest writes to the same library. Errors must be 0; latency is reported by
`make bench`, never asserted here."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import REPO


def test_mixed_load_has_no_errors():
    p = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "load.py"),
            "--requests",
            "80",
            "--clients",
            "4",
            "--seconds",
            "120",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert p.stdout.strip(), p.stderr[-2000:]
    r = json.loads(p.stdout.strip().splitlines()[-1])
    assert r["errors"] == 0, r["error_samples"]
    assert r["completed"] == r["requests"]
    assert set(r["latency_ms"]) == {"check", "search", "stream"}
