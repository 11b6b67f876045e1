"""Regression tests for the holes an attack on the HTTP API and ingest found (one per item of the
hardening issue, numbered as there). Each failed before its fix."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from copytrail import Library, samples
from copytrail.errors import Cancelled, InvalidInput, LimitExceeded, NotFound
from copytrail.guard import scope as guard_scope
from copytrail.guard.budget import Budget

from .conftest import EXAMPLES, run_cli
from .test_server import Server, _free_port

BOOK = EXAMPLES / "5200" / "5200.txt"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture(scope="module")
def guarded(tmp_path_factory) -> tuple[Library, Path]:
    """A library with one guard ('books') over one book, and a second library beside it whose
    guard ('secret') a caller of the first must never reach."""
    root = tmp_path_factory.mktemp("hard")
    lib = Library.init(root / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(BOOK)], source="pg", dataset="pg@1")
    lib.guard_index("books", all_datasets=True)
    other = Library.init(root / "other")
    other.add_source("pg", kind="public-domain")
    other.ingest([str(EXAMPLES / "11")], source="pg", dataset="alice@1")
    other.guard_index("secret", all_datasets=True)
    other.close()
    yield lib, root
    lib.close()


@pytest.fixture(scope="module")
def server(guarded):
    lib, root = guarded
    keys = {r: lib.add_key(f"h-{r}", r)["key"] for r in ("checker", "admin")}
    deleted = lib.ingest([str(EXAMPLES / "11")], source="pg", dataset="gone@1")
    assert deleted.copies_added
    gone_id = next(iter(lib.copies(dataset="gone@1")))["id"]
    lib.delete("test", dataset="gone@1")
    srv = Server(root / "lib", _free_port())
    srv.start()
    yield srv, keys, root, gone_id
    srv.kill()


def _h(keys: dict, role: str = "admin") -> dict[str, str]:
    return {"X-API-Key": keys[role]}


# ---- 1. a guard name resolves inside its own library only ---------------------------------------
def test_01_guard_names_cannot_reach_another_library(server):
    srv, keys, root, _ = server
    secret = root / "other" / "guard" / "secret"
    assert (secret / "manifest.json").exists()
    text = (EXAMPLES / "11" / "11-0.txt").read_text(encoding="utf-8-sig")[5000:8000]
    for name in (str(secret), "../../other/guard/secret", "../other/guard/secret", "./books"):
        r = httpx.post(
            srv.url + "/v1/check",
            json={"text": text, "guard": name, "min_words": 8},
            headers=_h(keys, "checker"),
        )
        assert r.status_code == 422, (name, r.text)
        r = httpx.get(
            srv.url + "/v1/search", params={"q": "alice", "guard": name}, headers=_h(keys)
        )
        assert r.status_code == 422, (name, r.text)
    ws_url = srv.url.replace("http", "ws") + "/v1/check/stream"
    with connect(ws_url, additional_headers=_h(keys, "checker")) as ws:
        ws.send(json.dumps({"guard": str(secret), "min_words": 8}))
        assert "must be" in json.loads(ws.recv())["error"]


# ---- 2. one canonical name, one cache entry, a bounded cache ------------------------------------
def test_02_guard_spellings_do_not_leak_descriptors(guarded, monkeypatch):
    lib, _ = guarded
    lib.guard("books")
    before = _fds()
    for k in range(1, 300):
        with pytest.raises(InvalidInput):
            lib.guard("./" * k + "books")
        with pytest.raises(NotFound):
            lib.guard(f"missing-{k}")
        assert lib.guard("books") is lib.guard("books")
    assert _fds() <= before + 2
    loaded = guard_scope._open_guards(lib.ctx)
    assert set(loaded) == {"books"}
    # The cache is bounded: the least recently used index is released.
    monkeypatch.setattr(guard_scope, "MAX_OPEN_GUARDS", 1)
    shutil.copytree(lib.path / "guard" / "books", lib.path / "guard" / "books-copy")
    lib.guard("books-copy")
    assert list(loaded) == ["books-copy"]


# ---- 3. bounded work per check ------------------------------------------------------------------
def test_03_a_check_has_a_budget(guarded, server):
    lib, _ = guarded
    hostile = "the " * 45_000  # under the test server's 200 KB body limit
    t0 = time.monotonic()
    with pytest.raises(LimitExceeded, match="min_words"):
        lib.check(hostile, "books", min_words=1, budget=Budget(max_examined=200_000))
    with pytest.raises(LimitExceeded, match="budget"):
        lib.check(hostile, "books", min_words=1, budget=Budget(seconds=0.2))
    assert time.monotonic() - t0 < 60  # bounded, not minutes (a generous bound, never tight)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        lib.check(hostile, "books", min_words=1, budget=Budget(cancel=cancel))
    # Over HTTP: tiny thresholds are refused, and the same text at the floor is answered.
    srv, keys, *_ = server
    r = httpx.post(
        srv.url + "/v1/check", json={"text": hostile, "min_words": 1}, headers=_h(keys, "checker")
    )
    assert r.status_code == 422 and "min_words" in r.text
    r = httpx.post(
        srv.url + "/v1/check",
        json={"text": hostile, "min_words": 8},
        headers=_h(keys, "checker"),
        timeout=60,
    )
    assert r.status_code in (200, 422), r.text


# ---- 4. WebSocket checks run off the event loop, with the HTTP limits ---------------------------
def test_04_a_streamed_check_does_not_block_the_server(tmp_path):
    from starlette.testclient import TestClient

    from copytrail.server.app import create_app

    health_answered = threading.Event()

    class SlowSession:
        index = type("I", (), {"name": "g"})()

        def feed(self, piece: str) -> dict:
            # If feed ran on the event loop, /healthz could not be answered: this would time out.
            assert health_answered.wait(20), "the server was blocked while a check ran"
            return {"flagged": False}

        def finish(self) -> dict:
            return {"final": True}

    class FakeLib:
        def authenticate(self, key: str) -> dict:
            return {"name": "k", "role": "checker"}

        def check_stream(self, *a, **kw) -> SlowSession:
            return SlowSession()

    client = TestClient(create_app(FakeLib(), default_guard="g"))
    with client.websocket_connect("/v1/check/stream", headers={"X-API-Key": "x"}) as ws:
        ws.send_text(json.dumps({"min_words": 1}))
        assert "min_words" in ws.receive_json()["error"]  # same bounds as HTTP
        ws.send_text(json.dumps({"min_words": 100_001}))
        assert "min_words" in ws.receive_json()["error"]
        ws.send_text(json.dumps({"min_words": 50}))
        assert ws.receive_json()["ready"]

        def health() -> None:
            assert client.get("/healthz").status_code == 200
            health_answered.set()

        ws.send_text(json.dumps({"text": "a piece"}))
        t = threading.Thread(target=health)
        t.start()
        assert ws.receive_json() == {"flagged": False}
        t.join(20)
        assert health_answered.is_set()


# ---- 5. EPUB spine amplification ----------------------------------------------------------------
def _epub_with_spine(repeats: int, chapter_bytes: int = 100_000) -> bytes:
    chapter = "<p>" + ("word " * (chapter_bytes // 5)) + "</p>"
    base = samples.make_epub("Amp", ["A"], ["x"])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.endswith(".opf"):
                spine = '<itemref idref="c0"/>' * repeats
                data = data.replace(b'<itemref idref="c0"/>', spine.encode())
            if info.filename.endswith("ch0.xhtml"):
                data = f"<html><body>{chapter}</body></html>".encode()
            zout.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def test_05_epub_spine_amplification_is_refused(lib: Library, tmp_path: Path):
    samples.write(tmp_path / "in" / "amp.epub", _epub_with_spine(1000))
    samples.write(tmp_path / "in" / "fine.epub", _epub_with_spine(1))
    s = lib.ingest([str(tmp_path / "in")], source="pg", dataset="e")
    c = {x["path"]: x for x in lib.copies()}
    amp = c["in/amp.epub"]
    assert amp["status"] == "refused" and "spine" in amp["reason"], amp
    assert amp["sha256"]  # the bytes are kept as evidence
    assert c["in/fine.epub"]["status"] == "ok"
    assert s.copies_added == 2 and lib.verify().ok


# ---- 6. one bad record or name never aborts an ingest -------------------------------------------
def test_06_lone_surrogates_and_undecodable_names(lib: Library, tmp_path: Path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "r.jsonl").write_bytes(
        b'{"text": "x \\ud800", "title": "t \\udfff"}\n{"text": "fine words here"}\n'
    )
    bad_name = os.fsencode(str(d)) + b"/bad\xff\xfe.txt"
    with open(bad_name, "wb") as f:
        f.write(b"some text in a file with an undecodable name")
    s = lib.ingest([str(d)], source="pg", dataset="u")
    assert s.items == 3 and s.copies_added == 3, s
    paths = {c["path"]: c for c in lib.copies()}
    assert "in/bad\\xff\\xfe.txt" in paths and paths["in/bad\\xff\\xfe.txt"]["status"] == "ok"
    assert paths["in/r.jsonl#L2"]["status"] == "ok"
    assert lib.verify().ok


# ---- 7. a JSON Lines record's original is its exact bytes ---------------------------------------
def test_07_records_keep_their_exact_bytes(lib: Library, tmp_path: Path):
    lines = [
        b'{"text": "big number", "n": 1e999}',
        b'{"text": "big number", "n": -1e999}',
        b'{"text": "big number", "n": NaN}',
        b'{"text": "big number", "n": ' + b"1234567890" * 6 + b"}",
        b'{"text": "big number", "n": 1, "n": 2}',
    ]
    (tmp_path / "r.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    s = lib.ingest([str(tmp_path / "r.jsonl")], source="pg", dataset="x")
    assert s.copies_added == 5
    got = sorted(lib.store.get(c["sha256"]) for c in lib.copies())
    assert got == sorted(lines)


# ---- 8. HTML parsing is bounded -----------------------------------------------------------------
def test_08_deep_html_is_refused_fast(lib: Library, tmp_path: Path):
    samples.write(tmp_path / "in" / "divs.html", b"<html><body>" + b"<div>" * 200_000 + b"x")
    samples.write(tmp_path / "in" / "tables.html", b"<table><tr><td>" * 100_000)
    samples.write(tmp_path / "in" / "ok.html", b"<html><body>" + b"<p>para" * 20_000)
    t0 = time.monotonic()
    lib.ingest([str(tmp_path / "in")], source="pg", dataset="h")
    assert time.monotonic() - t0 < 60  # minutes before the fix
    c = {x["path"]: x for x in lib.copies()}
    for name in ("divs.html", "tables.html"):
        assert c[f"in/{name}"]["status"] == "refused" and "deep" in c[f"in/{name}"]["reason"]
    assert c["in/ok.html"]["status"] == "ok"


# ---- 9. names cannot inject markup or terminal controls -----------------------------------------
def test_09_markup_and_escapes_in_names(tmp_path: Path):
    lib_dir = tmp_path / "lib"
    run_cli("init", library=lib_dir)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib_dir)
    archive = samples.make_zip(
        {"[/oops].txt": b"some words", "\x1b[31mred\x1b[0m.txt": b"more words", "[bold]b": b"w"}
    )
    samples.write(tmp_path / "a.zip", archive)
    run_cli(
        "ingest", str(tmp_path / "a.zip"), "--source", "pg", "--dataset", "[/x]", library=lib_dir
    )
    ls = run_cli("ls", "copies", library=lib_dir)
    assert "[/oops].txt" in ls.stdout and "\x1b" not in ls.stdout
    assert "\\x1b[31mred" in ls.stdout
    for ref in ("1", "2", "3"):
        shown = run_cli("show", ref, library=lib_dir)
        assert "\x1b" not in shown.stdout
    bad = run_cli("ls", "copies", "--dataset", "[/nope]", library=lib_dir, check=False)
    assert bad.returncode == 2 and "[/nope]" in bad.stderr and "Traceback" not in bad.stderr


# ---- 10. bad input gets a 4xx JSON error, never a 500 -------------------------------------------
def test_10_no_500s(server):
    srv, keys, _root, gone_id = server
    h = _h(keys)
    for path in ("/v1/copies/²", "/v1/copies/１", "/v1/copies/٣"):
        r = httpx.get(srv.url + path, headers=h)
        assert r.status_code == 422, (path, r.text)
    r = httpx.get(srv.url + f"/v1/copies/{gone_id}/text?reason=test", headers=h)
    assert r.status_code == 404 and "deleted" in r.json()["detail"]
    for body in (
        b'{"text": "x \\ud800"}',
        b'{"text": "fine", "guard": "x\\ud800"}',
        b'{"text": 1e999}',
        b'{"text": "x", "min_words": 1e999}',
        b'{"text": "x", "guard": "lib\\u0000"}',
        b'{"text": "x", "guard": "' + b"g" * 5000 + b'"}',
    ):
        r = httpx.post(
            srv.url + "/v1/check",
            content=body,
            headers={**h, "content-type": "application/json"},
        )
        assert 400 <= r.status_code < 500, (body[:40], r.status_code, r.text)
        assert r.json()["detail"]
    ws_url = srv.url.replace("http", "ws") + "/v1/check/stream"
    with connect(ws_url, additional_headers=_h(keys, "checker")) as ws:
        ws.send(b"\x00binary")
        assert "binary" in json.loads(ws.recv())["error"]
        ws.send(json.dumps({"guard": "g" * 5000}))
        assert "error" in json.loads(ws.recv())
        ws.send(json.dumps({"min_words": 50}))
        assert json.loads(ws.recv())["ready"]  # the connection survived all of it
    assert srv.alive()


# ---- 11. only regular files are read, every read is bounded -------------------------------------
def test_11_non_regular_files_are_refused(lib: Library, tmp_path: Path):
    d = tmp_path / "in"
    d.mkdir()
    (d / "a.txt").write_text("plain words")
    os.mkfifo(d / "pipe")
    outside = tmp_path / "outside.txt"
    outside.write_text("not part of the dataset")
    os.symlink(outside, d / "out-link")
    os.symlink(d / "nowhere", d / "dangling")
    os.symlink(d / "loop", d / "loop")
    os.symlink(d / "a.txt", d / "inside-link")
    t0 = time.monotonic()
    s = lib.ingest([str(d), "/dev/zero"], source="pg", dataset="f")
    assert time.monotonic() - t0 < 60  # a FIFO hung forever before
    c = {x["path"]: x for x in lib.copies()}
    assert c["in/a.txt"]["status"] == "ok"
    # A link inside the named directory is read: the same bytes as its target, one copy.
    assert "in/inside-link" not in c and s.copies_existing == 1
    assert "FIFO" in c["in/pipe"]["reason"] and c["in/pipe"]["status"] == "refused"
    assert "outside" in c["in/out-link"]["reason"]
    assert "link" in c["in/dangling"]["reason"] and "link" in c["in/loop"]["reason"]
    assert c["zero"]["status"] == "refused" and "device" in c["zero"]["reason"]
    assert lib.verify().ok


# ---- 12. overlapping zip entries and whole-archive inflation ------------------------------------
def _overlapping_zip(copies: int = 300) -> bytes:
    """One deflated 16 MiB member named by `copies` central-directory entries."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("m.txt", b"\0" * (16 << 20))
    data = buf.getvalue()
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12 : eocd + 20])
    entry = data[cd_offset : cd_offset + cd_size]
    name_len = struct.unpack("<H", entry[28:30])[0]
    entries = b"".join(
        entry[:28]
        + struct.pack("<H", len(f"m{i:04d}.txt"))
        + entry[30:46]
        + f"m{i:04d}.txt".encode()
        + entry[46 + name_len :]
        for i in range(copies)
    )
    head = data[:cd_offset]
    end = data[eocd : eocd + 22]
    end = end[:8] + struct.pack("<HHII", copies, copies, len(entries), len(head)) + end[20:]
    return head + entries + end


def test_12_overlapping_zip_entries_are_refused(lib: Library, tmp_path: Path):
    bomb = _overlapping_zip()
    assert len(bomb) < 100_000
    samples.write(tmp_path / "bomb.zip", bomb)
    lib.ingest([str(tmp_path / "bomb.zip")], source="pg", dataset="z")
    c = {x["path"]: x for x in lib.copies()}
    assert c["bomb.zip"]["status"] == "refused" and "overlap" in c["bomb.zip"]["reason"]
    assert len(c) == 1  # nothing inflated


# ---- 13. workers die with their parent ----------------------------------------------------------
def test_13_workers_exit_when_the_parent_is_killed(tmp_path: Path):
    script = tmp_path / "parent.py"
    script.write_text(
        "import time\n"
        "from copytrail.engine.local import LocalEngine\n"
        "def nap(ctx, t):\n    time.sleep(t)\n    return t\n"
        "if __name__ == '__main__':\n"
        "    for _ in LocalEngine(2, inline_bytes=0).map(nap, [120] * 4):\n        pass\n"
    )
    parent = subprocess.Popen([sys.executable, str(script)], start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = [
                int(p)
                for p in os.listdir("/proc")
                if p.isdigit() and _ppid(int(p)) == parent.pid and _is_python(int(p))
            ]
        assert len(workers) >= 2, "the pool did not start"
        os.kill(parent.pid, signal.SIGKILL)  # the parent only, as the OOM killer does
        parent.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.2)
        assert not any(_alive(w) for w in workers), "workers outlived their parent"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)


def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _is_python(pid: int) -> bool:
    try:
        return b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


# ---- 14. a library folder is relocatable --------------------------------------------------------
def test_14_a_copied_library_is_its_own(tmp_path: Path):
    a = Library.init(tmp_path / "a")
    a.add_source("pg", kind="public-domain")
    a.close()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b = Library.open(tmp_path / "b")
    b.add_source("only-in-b", kind="licensed")
    b.ingest([str(BOOK)], source="pg", dataset="b@1")
    b.close()
    a = Library.open(tmp_path / "a")
    assert [s["name"] for s in a.sources()] == ["pg"] and not list(a.copies())
    a.close()
    # A library written by an older copytrail (absolute paths in library.json) moves too.
    cfg = tmp_path / "b" / "library.json"
    old = {
        "format": 1,
        "db": f"sqlite:///{(tmp_path / 'a' / 'ledger.db').resolve()}",
        "store": str((tmp_path / "a" / "blobs").resolve()),
    }
    cfg.write_text(json.dumps(old))
    b = Library.open(tmp_path / "b")
    assert "only-in-b" in [s["name"] for s in b.sources()] and b.verify().ok
    b.close()


# ---- 15. the smaller ones -----------------------------------------------------------------------
def test_15_keys_in_headers_only_and_empty_headers_ignored(server):
    srv, keys, *_ = server
    r = httpx.get(srv.url + "/v1/stats", params={"api_key": keys["admin"]})
    assert r.status_code == 401
    r = httpx.get(
        srv.url + "/v1/stats",
        headers={"X-API-Key": "", "Authorization": f"Bearer {keys['admin']}"},
    )
    assert r.status_code == 200
    ws_url = srv.url.replace("http", "ws") + "/v1/check/stream"
    with pytest.raises(Exception, match="401"), connect(f"{ws_url}?api_key={keys['checker']}"):
        pass


def test_15_nesting_past_the_limit_is_refused(lib: Library, tmp_path: Path):
    nested = samples.make_zip({"a.zip": samples.make_zip({"b.zip": samples.make_zip({"c": b"x"})})})
    samples.write(tmp_path / "n.zip", nested)
    from copytrail.ingest.limits import Limits

    lib.ingest([str(tmp_path / "n.zip")], source="pg", dataset="n", limits=Limits(max_depth=2))
    c = {x["path"]: x for x in lib.copies()}
    deep = c["n.zip!/a.zip!/b.zip"]
    assert deep["status"] == "refused" and "nested deeper" in deep["reason"]


def test_15_billion_laughs_opf_is_refused_with_its_reason(lib: Library, tmp_path: Path):
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE package [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<package xmlns="http://www.idpf.org/2007/opf"><metadata>&lol3;</metadata>'
        "<manifest/><spine/></package>"
    )
    base = samples.make_epub("L", ["A"], ["x"])
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(base)) as zin, zipfile.ZipFile(out, "w") as zout:
        for info in zin.infolist():
            data = laughs.encode() if info.filename.endswith(".opf") else zin.read(info)
            zout.writestr(info, data)
    samples.write(tmp_path / "laughs.epub", out.getvalue())
    lib.ingest([str(tmp_path / "laughs.epub")], source="pg", dataset="l")
    c = next(iter(lib.copies()))
    assert c["status"] == "refused" and "entit" in c["reason"], c


def test_15_key_grants_and_revocations_are_events(lib: Library):
    made = lib.add_key("auditor-1", "auditor")
    lib.revoke_key("auditor-1")
    access = [e for e in lib.events() if e["type"] == "access"]
    assert [e["payload"]["action"] for e in access] == ["granted", "revoked"]
    assert all(made["key"] not in json.dumps(e) for e in access)
    assert access[0]["payload"]["prefix"] == made["prefix"]
    assert lib.verify().ok
