"""Fuzzing: hostile documents, archives and records through the real ingest path, and hostile
requests to a real `copytrail serve` on loopback.

`make test` runs a bounded number of cases (HYPOTHESIS_PROFILE=ci, the default); `make fuzz` runs
many more (HYPOTHESIS_PROFILE=fuzz). Invariants: ingest never raises for any input and records
every item as ok, unreadable or refused with a reason, in bounded time; the server never answers
5xx, never closes a WebSocket abnormally, and stays up.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
import zipfile
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from copytrail import Library, samples
from copytrail.ingest.limits import Limits
from copytrail.ingest.plan import Input, Planner
from copytrail.ingest.work import IngestContext, run_task
from copytrail.store.blobs import BlobStore

from .conftest import EXAMPLES
from .test_server import Server, _free_port

# The archive generator writes duplicate member names on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Duplicate name:UserWarning")

settings.register_profile(
    "ci",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,  # the same cases on every CI run; `make fuzz` explores
)
settings.register_profile(
    "fuzz",
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Small limits, so limits fire often and every case stays cheap.
LIMITS = Limits(
    max_file_bytes=4 << 20,
    max_member_bytes=1 << 20,
    max_archive_bytes=8 << 20,
    ratio_floor=64 << 10,
    max_depth=3,
    max_record_bytes=256 << 10,
    max_html_depth=200,
)
SECONDS_PER_CASE = 20  # generous: a case is milliseconds; minutes would mean a hang
STATUSES = {"ok", "unreadable", "refused"}

BOOK = (EXAMPLES / "5200" / "5200.txt").read_bytes()[:20_000]
SEEDS = {
    "book.txt": BOOK,
    "book.html": b"<html><head><title>T</title></head><body><p>"
    + BOOK[:5000]
    + b"</p></body></html>",
    "book.epub": samples.make_epub("T", ["A"], [BOOK[:3000].decode("utf-8", "replace")]),
    "book.pdf": samples.make_pdf([["a page of words", "another line"]]),
    "r.jsonl": samples.make_jsonl([{"text": "words " * 20, "title": "t"}] * 3),
    "a.zip": samples.make_zip({"x.txt": BOOK[:2000], "y.html": b"<p>hi</p>"}),
    "a.tar.gz": samples.make_tar({"x.txt": BOOK[:2000]}, gz=True),
}


def ingest_bytes(tmp_path, name: str, data: bytes) -> list[dict]:
    """The real planner and worker code, inline, over one file."""
    path = tmp_path / name
    path.write_bytes(data)
    store = BlobStore(f"memory://fuzz-{os.getpid()}-{time.monotonic_ns()}")
    planner = Planner(LIMITS, "text")
    ctx = IngestContext(store, LIMITS)
    t0 = time.monotonic()
    records = []
    for task in planner.tasks([Input(str(path), name, len(data))]):
        recs, _n = run_task(ctx, task)
        records.extend(recs)
        assert time.monotonic() - t0 < SECONDS_PER_CASE, f"{name}: over {SECONDS_PER_CASE} s"
    for r in records:
        assert r["status"] in STATUSES, r
        assert r["status"] == "ok" or r["reason"], r
        orjson.dumps(r)  # valid UTF-8 and JSON all the way to the ledger
    return records


@st.composite
def mutated(draw) -> tuple[str, bytes]:
    """A seed document with bytes flipped, cut, repeated or spliced."""
    name = draw(st.sampled_from(sorted(SEEDS)))
    data = bytearray(SEEDS[name])
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "repeat"]))
        i = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[i] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[i : i + draw(st.integers(1, 4096))]
        elif op == "insert":
            data[i:i] = draw(st.binary(max_size=64))
        elif op == "repeat" and data:
            chunk = data[i : i + draw(st.integers(1, 256))]
            data[i:i] = chunk * draw(st.integers(1, 200))
    return name, bytes(data)


@given(mutated())
def test_mutated_documents_never_break_ingest(tmp_path_factory, case):
    name, data = case
    ingest_bytes(tmp_path_factory.mktemp("m"), name, data)


TAGS = st.sampled_from(["div", "table", "tr", "td", "p", "span", "b", "li", "ul", "svg", "x:y"])


@st.composite
def hostile_html(draw) -> bytes:
    parts = []
    for _ in range(draw(st.integers(0, 40))):
        tag = draw(TAGS)
        kind = draw(st.sampled_from(["open", "close", "text", "nest", "attr"]))
        if kind == "open":
            parts.append(f"<{tag}>")
        elif kind == "close":
            parts.append(f"</{tag}>")
        elif kind == "nest":
            parts.append(f"<{tag}>" * draw(st.integers(1, 3000)))
        elif kind == "attr":
            parts.append(f'<{tag} a="{draw(st.text(max_size=30))}">')
        else:
            parts.append(draw(st.text(max_size=200)))
    return "".join(parts).encode("utf-8", "surrogatepass")


@given(hostile_html())
def test_hostile_html(tmp_path_factory, html):
    ingest_bytes(tmp_path_factory.mktemp("h"), "x.html", html)


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**40), 10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
RAW_LINES = st.sampled_from(
    [
        b'{"text": "x \\ud800"}',
        b'{"text": "a", "text": "b"}',
        b'{"text": 1e999}',
        b"[" * 1500 + b"]" * 1500,
        b'{"text": "\\u0000\\u001b[31m"}',
        b"\xff\xfe{not json",
        b"",
    ]
)


@given(
    st.lists(
        st.one_of(
            JSON_VALUES.map(lambda v: json.dumps(v).encode("utf-8", "surrogatepass")), RAW_LINES
        ),
        max_size=30,
    )
)
def test_hostile_json_lines(tmp_path_factory, lines):
    data = b"\n".join(lines) + b"\n"
    records = ingest_bytes(tmp_path_factory.mktemp("j"), "r.jsonl", data)
    assert len(records) <= len(lines)


MEMBER_NAMES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["../../x", "/abs", "C:\\w\\x", "[/oops]", "\x1b[2J", "a/" * 50 + "b", "."]),
)


@st.composite
def hostile_archive(draw) -> tuple[str, bytes]:
    members = draw(
        st.lists(
            st.tuples(
                MEMBER_NAMES,
                st.one_of(st.binary(max_size=2000), st.sampled_from(list(SEEDS.values()))),
            ),
            max_size=12,
        )
    )
    buf = io.BytesIO()
    if draw(st.booleans()):
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in members:
                # zipfile cuts a name at NUL; an empty name it cannot write at all
                clean = name.encode("utf-8", "replace").decode("utf-8").split("\x00")[0]
                zf.writestr(clean or "_", data)
        return "a.zip", buf.getvalue()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members:
            info = tarfile.TarInfo(name.encode("utf-8", "replace").decode("utf-8") or "_")
            info.size = len(data)
            info.type = draw(
                st.sampled_from([tarfile.REGTYPE] * 4 + [tarfile.SYMTYPE, tarfile.FIFOTYPE])
            )
            if info.type == tarfile.SYMTYPE:
                info.linkname, info.size = "../../../etc/passwd", 0
                data = b""
            tf.addfile(info, io.BytesIO(data) if info.type == tarfile.REGTYPE else None)
    return "a.tar.gz", buf.getvalue()


@given(hostile_archive())
def test_hostile_archives(tmp_path_factory, case):
    name, data = case
    root = tmp_path_factory.mktemp("a")
    ingest_bytes(root, name, data)
    assert sorted(p.name for p in root.iterdir()) == [name]  # no member reached the filesystem


# ---- the HTTP API and the WebSocket --------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzzsrv") / "lib"
    lib = Library.init(root)
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES / "5200")], source="pg", dataset="pg@1")
    lib.guard_index("books", all_datasets=True)
    key = lib.add_key("fuzz", "admin")["key"]
    lib.close()
    server = Server(root, _free_port())
    server.start()
    yield server, key
    server.kill()


def _json_bytes(value: object) -> bytes:
    """JSON as a hostile client may send it: integers past 64 bits, NaN, lone surrogates."""
    return json.dumps(value).encode("utf-8", "surrogatepass")


PATHS = st.sampled_from(
    [
        "/v1/check",
        "/v1/search",
        "/v1/copies/{x}",
        "/v1/copies/{x}/text?reason=fuzz",
        "/v1/works/{x}",
        "/v1/guards",
        "/v1/stats",
        "/v1/keys",
        "/healthz",
        "/{x}",
    ]
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(), st.text(max_size=300)
)
BODIES = st.one_of(
    st.dictionaries(
        st.sampled_from(["text", "guard", "min_words", "evidence", "x"]), SCALARS, max_size=4
    ).map(_json_bytes),
    st.binary(max_size=200),
    st.sampled_from(
        [b'{"text": "\\ud800"}', b'{"text": 1e999}', b"[" * 1500, b'{"guard": "\\u0000"}', b"{}"]
    ),
)


@given(
    path=PATHS,
    x=st.text(min_size=1, max_size=60),
    body=BODIES,
    method=st.sampled_from(["GET", "POST"]),
    auth=st.sampled_from(["good", "none", "bad", "bearer", "empty+bearer"]),
    query=st.dictionaries(
        st.sampled_from(["q", "guard", "dataset", "limit", "list"]),
        st.text(max_size=40),
        max_size=3,
    ),
)
def test_hostile_http_requests(served, path, x, body, method, auth, query):
    server, key = served
    headers = {
        "good": {"X-API-Key": key},
        "none": {},
        "bad": {"X-API-Key": "ct_" + "x" * 40},
        "bearer": {"Authorization": f"Bearer {key}"},
        "empty+bearer": {"X-API-Key": "", "Authorization": f"Bearer {key}"},
    }[auth]
    url = server.url + path.replace("{x}", quote(x, safe="") or "_")
    try:
        r = httpx.request(
            method,
            url,
            params=query,
            content=body,
            headers={**headers, "content-type": "application/json"},
            timeout=30,
        )
    except httpx.InvalidURL:
        return
    assert r.status_code < 500, (method, url, body[:80], r.status_code, r.text[:300])
    if r.status_code >= 400:
        assert "detail" in r.json()
    assert server.alive()


FRAMES = st.one_of(
    st.binary(max_size=100).map(lambda b: ("bytes", b)),
    st.dictionaries(
        st.sampled_from(["text", "guard", "min_words", "evidence", "end"]), SCALARS, max_size=4
    ).map(lambda d: ("text", _json_bytes(d).decode("utf-8", "replace"))),
    st.text(max_size=100).map(lambda t: ("text", t)),
)


@given(st.lists(FRAMES, min_size=1, max_size=8))
def test_hostile_websocket_frames(served, frames):
    server, key = served
    ws_url = server.url.replace("http", "ws") + "/v1/check/stream"
    with connect(ws_url, additional_headers={"X-API-Key": key}, open_timeout=30) as ws:
        for _kind, frame in frames:
            try:
                ws.send(frame)
                answer = json.loads(ws.recv(timeout=30))
            except Exception as e:  # only a normal close is acceptable
                assert "1000" in str(e) or "1008" in str(e) or "1009" in str(e), e
                break
            assert isinstance(answer, dict)
            if answer.get("final"):
                break
    assert server.alive()
    assert httpx.get(server.url + "/healthz").status_code == 200
