"""Load test on loopback: checks, searches and WebSocket streams against a real `copytrail serve`
while an ingest writes to the same library. Bounded in requests and time; it stops by itself.

    python bench/load.py                     # 600 requests, 8 clients
    python bench/load.py --requests 120 --json

Prints errors (must be 0) and p50/p99 latency per kind. Only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from websockets.sync.client import connect

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from copytrail import Library  # noqa: E402
from copytrail.samples import gutenberg_body  # noqa: E402

EXAMPLES = REPO / "examples" / "gutenberg"
CLI = [sys.executable, "-m", "copytrail.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _books() -> list[str]:
    return [
        gutenberg_body(p.read_text(encoding="utf-8-sig", errors="replace"))
        for p in sorted(EXAMPLES.rglob("*.txt"))
    ]


def _query(books: list[str], rng: random.Random) -> str:
    words = rng.choice(books).split()
    i = rng.randrange(0, max(1, len(words) - 120))
    own = "this sentence is the model's own and appears in no book at all " * 3
    return own + " ".join(words[i : i + rng.choice([20, 60, 100])]) + " " + own


def start_server(lib_dir: Path, port: int) -> subprocess.Popen:
    cmd = [*CLI, "--library", str(lib_dir), "serve", "--port", str(port), "--guard", "books"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not come up within 60 s")


def run(requests: int, clients: int, seconds: float, work: Path) -> dict:
    lib_dir = work / "lib"
    lib = Library.init(lib_dir)
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    lib.guard_index("books", all_datasets=True)
    key = lib.add_key("load", "admin")["key"]
    lib.close()
    books = _books()
    port = _free_port()
    server = start_server(lib_dir, port)
    url = f"http://127.0.0.1:{port}"
    headers = {"X-API-Key": key}
    latencies: dict[str, list[float]] = defaultdict(list)
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def one(i: int) -> None:
        if time.monotonic() > deadline:
            return
        rng = random.Random(i)
        kind = rng.choices(["check", "search", "stream"], weights=[6, 3, 1])[0]
        t0 = time.perf_counter()
        try:
            with httpx.Client(timeout=60) as http:
                if kind == "check":
                    r = http.post(
                        url + "/v1/check", json={"text": _query(books, rng)}, headers=headers
                    )
                    ok = r.status_code == 200
                elif kind == "search":
                    phrase = " ".join(rng.choice(books).split()[100:104])
                    r = http.get(
                        url + "/v1/search", params={"q": phrase, "limit": 5}, headers=headers
                    )
                    ok = r.status_code in (200, 422)  # 422: a phrase of punctuation only
                else:
                    text = _query(books, rng)
                    ws_url = url.replace("http", "ws") + "/v1/check/stream"
                    with connect(ws_url, additional_headers=headers, open_timeout=60) as ws:
                        ws.send(json.dumps({"min_words": 50}))
                        ok = json.loads(ws.recv(timeout=60)).get("ready", False)
                        for j in range(0, len(text), 200):
                            ws.send(json.dumps({"text": text[j : j + 200]}))
                            ok = ok and "error" not in json.loads(ws.recv(timeout=60))
                        ws.send(json.dumps({"end": True}))
                        ok = ok and json.loads(ws.recv(timeout=60)).get("final", False)
                    r = None
                if not ok:
                    detail = r.text[:200] if r is not None else "stream"
                    raise RuntimeError(f"{kind}: {getattr(r, 'status_code', '')} {detail}")
        except Exception as e:
            with lock:
                errors.append(f"{kind}: {type(e).__name__}: {e}"[:300])
            return
        with lock:
            latencies[kind].append(time.perf_counter() - t0)

    # An ingest writing to the same library while the server answers.
    extra = work / "more"
    extra.mkdir()
    for n, text in enumerate(books[:3]):
        (extra / f"edited-{n}.txt").write_text(text.replace(" the ", " a "), encoding="utf-8")
    ingest = subprocess.Popen(
        [
            *CLI,
            "--library",
            str(lib_dir),
            "ingest",
            str(extra),
            "--source",
            "pg",
            "--dataset",
            "more@1",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    t0 = time.monotonic()
    try:
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, range(requests)))
        out, err = ingest.communicate(timeout=max(10, deadline - time.monotonic() + 60))
        if ingest.returncode != 0:
            errors.append(f"ingest exited {ingest.returncode}: {err.decode()[-300:]}")
        alive = server.poll() is None and httpx.get(url + "/healthz").status_code == 200
        if not alive:
            errors.append("server down after the run")
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
        if ingest.poll() is None:
            ingest.kill()
    wall = time.monotonic() - t0

    def pct(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return round(1000 * xs[min(len(xs) - 1, int(p * len(xs)))], 1) if xs else 0.0

    done = sum(len(v) for v in latencies.values())
    return {
        "requests": requests,
        "completed": done,
        "errors": len(errors),
        "error_samples": errors[:10],
        "seconds": round(wall, 2),
        "requests_per_second": round(done / wall, 1) if wall else 0,
        "latency_ms": {
            k: {"n": len(v), "p50": pct(v, 0.5), "p99": pct(v, 0.99)} for k, v in latencies.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=300, help="stop sending after this long")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="copytrail-load-") as tmp:
        r = run(args.requests, args.clients, args.seconds, Path(tmp))
    if args.json:
        print(json.dumps(r))
    else:
        print(
            f"load: {r['completed']}/{r['requests']} requests in {r['seconds']} s "
            f"({r['requests_per_second']}/s, {args.clients} clients), errors: {r['errors']}"
        )
        for k, v in r["latency_ms"].items():
            print(f"  {k:7} n={v['n']:4}  p50 {v['p50']:7.1f} ms  p99 {v['p99']:7.1f} ms")
        for e in r["error_samples"]:
            print("  error:", e)
    sys.exit(1 if r["errors"] else 0)


if __name__ == "__main__":
    os.environ.setdefault("COPYTRAIL_ACTOR", "load-test")
    main()
