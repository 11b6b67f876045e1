"""The HTTP API through a real `copytrail serve` process on loopback: the role matrix, bad input,
streaming over WebSocket, a restart in the middle of requests, and the committed OpenAPI spec."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from copytrail import Library
from copytrail.fingerprint.normalize import tokens

from .conftest import EXAMPLES, REPO, run_cli

SPEC = REPO / "docs" / "openapi.json"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, library: Path, port: int, guard: str | None = "books") -> None:
        self.library, self.port, self.guard = library, port, guard
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "copytrail.cli.main", "--library", str(self.library)]
        cmd += ["serve", "--port", str(self.port), "--max-body", "200000"]
        cmd += ["--guard", self.guard] if self.guard else []
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise AssertionError("server did not come up within 60 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served") / "lib"
    lib = Library.init(root)
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    lib.guard_index("books", all_datasets=True)
    keys = {role: lib.add_key(f"k-{role}", role)["key"] for role in ("checker", "auditor", "admin")}
    revoked = lib.add_key("k-revoked", "admin")["key"]
    lib.revoke_key("k-revoked")
    copy_id = next(iter(lib.copies()))["id"]
    lib.close()
    server = Server(root, _free_port())
    server.start()
    yield server, keys, revoked, copy_id
    server.kill()


def _query() -> tuple[str, int]:
    text = (EXAMPLES / "5200" / "5200.txt").read_text(encoding="utf-8-sig")
    _w, starts, ends = tokens(text)
    c0, c1 = starts[2000], ends[2059]
    lead = "Here is something I wrote myself, honestly. "
    return lead + text[c0:c1] + " The end.", len(lead)


def test_role_matrix(served):
    server, keys, revoked, copy_id = served
    text, _ = _query()
    routes = {
        "check": ("POST", "/v1/check", {"text": text}),
        "search": ("GET", "/v1/search?q=gregor+samsa", None),
        "guards": ("GET", "/v1/guards", None),
        "copy": ("GET", f"/v1/copies/{copy_id}", None),
        "work": ("GET", "/v1/works/anything", None),
        "stats": ("GET", "/v1/stats", None),
        "text": ("GET", f"/v1/copies/{copy_id}/text?reason=role+matrix", None),
        "keys": ("GET", "/v1/keys", None),
    }
    allowed = {
        "checker": {"check"},
        "auditor": {"check", "search", "guards", "copy", "work", "stats"},
        "admin": set(routes),
    }
    for who, key in [
        ("none", None),
        ("wrong", "ct_not-a-key"),
        ("revoked", revoked),
        *keys.items(),
    ]:
        for name, (method, path, body) in routes.items():
            headers = {"X-API-Key": key} if key else {}
            r = httpx.request(method, server.url + path, json=body, headers=headers, timeout=30)
            if who in ("none", "wrong", "revoked"):
                assert r.status_code == 401, (who, name, r.text)
            elif name in allowed[who]:
                # 404 for the made-up work id is an answer, not a refusal
                assert r.status_code == (404 if name == "work" else 200), (who, name, r.text)
            else:
                assert r.status_code == 403, (who, name, r.text)
            if r.status_code in (401, 403):
                assert set(r.json()) == {"detail"}  # never data
    # Bearer works too
    r = httpx.get(server.url + "/v1/guards", headers={"Authorization": f"Bearer {keys['auditor']}"})
    assert r.status_code == 200


def test_check_over_http_finds_the_passage(served):
    server, keys, *_ = served
    text, lead = _query()
    r = httpx.post(
        server.url + "/v1/check", json={"text": text}, headers={"X-API-Key": keys["checker"]}
    )
    body = r.json()
    assert r.status_code == 200 and body["flagged"]
    span = body["spans"][0]
    assert span["words"] == 60 and span["start"] == lead
    assert span["sources"][0]["copies"]


def test_bad_input_never_kills_the_server(served):
    server, keys, *_ = served
    h = {"X-API-Key": keys["admin"]}
    u = server.url
    bad = [
        httpx.post(
            u + "/v1/check", content=b"{not json", headers={**h, "content-type": "application/json"}
        ),
        httpx.post(u + "/v1/check", json={"text": 12}, headers=h),
        httpx.post(u + "/v1/check", json={"txt": "x"}, headers=h),
        httpx.post(u + "/v1/check", json={"text": "x", "min_words": 0}, headers=h),
        httpx.post(u + "/v1/check", json=["a", "list"], headers=h),
        httpx.get(u + "/v1/search?q=", headers=h),
        httpx.get(u + "/v1/search?q=a&limit=-3", headers=h),
    ]
    for r in bad:
        assert r.status_code == 422, r.text
        assert r.json()["detail"]
    big = httpx.post(u + "/v1/check", json={"text": "word " * 60_000}, headers=h)
    assert big.status_code == 413

    def chunks():
        for _ in range(100):
            yield b"x" * 10_000

    chunked = httpx.post(
        u + "/v1/check", content=chunks(), headers={**h, "content-type": "application/json"}
    )
    assert chunked.status_code == 413
    r = httpx.post(u + "/v1/check", json={"text": "x", "guard": "nope"}, headers=h)
    assert r.status_code == 404 and "guard index" in r.json()["detail"]
    r = httpx.get(u + "/v1/copies/zzzz", headers=h)
    assert r.status_code == 422
    r = httpx.get(u + "/v1/search?q=%21%21%21", headers=h)  # punctuation only: no words
    assert r.status_code == 422
    assert server.alive()
    assert httpx.get(u + "/healthz").status_code == 200


def test_stream_over_websocket_stops_at_the_threshold(served):
    server, keys, *_ = served
    text, _ = _query()
    ws_url = server.url.replace("http", "ws") + "/v1/check/stream"
    with connect(ws_url, additional_headers={"X-API-Key": keys["checker"]}) as ws:
        ws.send(json.dumps({"min_words": 50}))
        assert json.loads(ws.recv())["ready"]
        hit_at = None
        for i in range(0, len(text), 25):
            ws.send(json.dumps({"text": text[i : i + 25]}))
            r = json.loads(ws.recv())
            if r["flagged"]:
                hit_at = r["words"]
                break
        assert hit_at is not None and hit_at <= 60  # long before the 70-word reply ends
        ws.send("garbage")
        assert "error" in json.loads(ws.recv())
        ws.send(json.dumps({"end": True}))
        assert json.loads(ws.recv())["final"]
    for key in ("bad-key", None):
        with pytest.raises(Exception, match="401"):
            headers = {"X-API-Key": key} if key else {}
            with connect(ws_url, additional_headers=headers) as ws:
                ws.recv()


def test_restart_in_the_middle_of_requests(served, tmp_path):
    server, keys, *_ = served
    text, _ = _query()
    results: list[int | str] = []
    stop = threading.Event()

    def client() -> None:
        with httpx.Client(timeout=5) as c:
            while not stop.is_set():
                try:
                    r = c.post(
                        server.url + "/v1/check",
                        json={"text": text},
                        headers={"X-API-Key": keys["checker"]},
                    )
                    results.append(r.status_code if r.json().get("flagged") else "clean")
                except httpx.HTTPError:
                    results.append("down")
                    time.sleep(0.05)

    threads = [threading.Thread(target=client) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    server.kill()
    time.sleep(0.5)
    server.start()
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(10)
    assert "down" in results  # the kill did interrupt requests
    after = results[len(results) - 3 :]
    assert results.count(200) > 3 and after == [200, 200, 200], results[-10:]
    assert set(results) <= {200, "down"}  # every answer given was right
    v = run_cli("verify", "--json", library=server.library)
    assert json.loads(v.stdout)["ok"]


def test_openapi_spec_is_committed_and_current():
    from copytrail.server.app import create_app

    current = create_app().openapi()
    assert SPEC.exists(), "write it: copytrail serve --openapi > docs/openapi.json"
    committed = json.loads(SPEC.read_text())
    assert committed == json.loads(json.dumps(current)), (
        "docs/openapi.json is stale; regenerate: copytrail serve --openapi > docs/openapi.json"
    )
    paths = set(committed["paths"])
    assert {
        "/v1/check",
        "/v1/search",
        "/v1/works/{work_id}",
        "/v1/copies/{copy_ref}",
        "/healthz",
    } <= paths
