"""Trust that survives a dishonest operator: signed checkpoints, witnesses, `verify --against`,
time-stamps from a real (openssl) TSA, and evidence bundles checked by the stand-alone script.

The forgery tests rewrite the ledger database the way an operator with write access could:
edit an event, recompute every later hash, every tree node and checkpoint, and re-sign with the
log's own key. `verify` alone accepts that log; a witness's memory does not."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from copytrail import Library
from copytrail.canonical import canonical_json
from copytrail.ledger import note
from copytrail.ledger.db import write_transaction
from copytrail.ledger.events import GENESIS_HASH, EventWriter, chain_hash, event_body, row_to_event
from copytrail.ledger.schema import checkpoints, events, meta, tree_nodes
from copytrail.verify_bundle import verify_bundle
from copytrail.witness import Refused, Witness

from .conftest import EXAMPLES, REPO, run_cli
from .test_server import Server, _free_port


def _declare(lib: Library, n: int, tag: str = "x") -> None:
    with write_transaction(lib.engine) as conn:
        ev = EventWriter(conn, "test")
        for i in range(n):
            ev.append("declared", {"item": f"{tag}{i}"}, {"note": f"{tag} {i}"})
        ev.flush()


@pytest.fixture
def signed(tmp_path: Path):
    """A library with a signing key and a checkpoint, and a witness that cosigned it."""
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    _declare(lib, 20)
    ident = lib.signing_identity(create=True, origin="example.org/books")
    cp = lib.checkpoint()
    w = Witness(tmp_path / "witness")
    w.init("witness.example/w1")
    w.trust(ident["vkey"])
    w.cosign(cp["note"], None)
    yield lib, w, ident
    lib.close()


def _next_head(lib: Library, w: Witness) -> dict:
    """Checkpoint, then hand the head to the witness with the proof from what it holds."""
    cp = lib.checkpoint()
    held = w.held(note.parse_checkpoint(note.parse_note(cp["note"]).text).origin)
    proof = None
    if held and held.size < cp["tree_size"]:
        proof = [bytes.fromhex(h) for h in lib.consistency(held.size, cp["tree_size"])["path"]]
    return w.cosign(cp["note"], proof)


def _rewrite_history(lib: Library, seq: int, truncate_after: int | None = None) -> None:
    """What a dishonest operator can do with write access: change event `seq` (or drop every
    event after `truncate_after`), recompute all later hashes, the tree and the checkpoints,
    and sign again with the log's own key."""
    with write_transaction(lib.engine) as conn:
        if truncate_after is not None:
            conn.execute(delete(events).where(events.c.seq > truncate_after))
        else:
            prev = conn.execute(select(events.c.hash).where(events.c.seq == seq - 1)).scalar()
            prev = prev or GENESIS_HASH
            rows = conn.execute(
                select(events).where(events.c.seq >= seq).order_by(events.c.seq)
            ).all()
            for r in rows:
                ev = row_to_event(r)
                payload = {**ev.payload, "note": "rewritten"} if r.seq == seq else ev.payload
                h = chain_hash(
                    prev, event_body(r.seq, r.type, r.time, r.actor, ev.subjects, payload)
                )
                conn.execute(
                    update(events)
                    .where(events.c.seq == r.seq)
                    .values(payload=canonical_json(payload).decode(), prev_hash=prev, hash=h)
                )
                prev = h
        conn.execute(delete(checkpoints))
        conn.execute(delete(tree_nodes))
        conn.execute(delete(meta).where(meta.c.key == "tree_nodes_size"))
    lib.checkpoint()


def _held_folder(w: Witness) -> Path:
    (folder,) = (w.state / "logs").iterdir()
    return folder


def test_witness_cosigns_only_extensions(signed):
    lib, w, _ = signed
    _declare(lib, 5)
    r = _next_head(lib, w)
    assert r["previous_size"] == 22 and r["tree_size"] == 27
    cosigned = note.parse_note(r["cosigned_note"])
    assert cosigned.signed_by([w.signer().verifier])
    assert len(list((_held_folder(w) / "history").iterdir())) == 2


def test_forged_history_is_caught_by_the_witness_and_verify_against(signed, tmp_path):
    lib, w, _ = signed
    _declare(lib, 10)
    _next_head(lib, w)  # the witness now holds tree size 32
    _rewrite_history(lib, seq=5)
    assert lib.verify().ok, "a self-consistent forgery passes verify alone (the threat)"

    report = lib.verify(against=[_held_folder(w)])
    assert not report.ok
    assert report.against["first_divergent_size"] == 22
    assert report.against["largest_consistent_size"] is None
    assert any("diverges from the held checkpoints at tree size 22" in p for p in report.problems)

    # Same size, other root: the witness calls it a fork.
    with pytest.raises(Refused, match="forked"):
        w.cosign(lib.checkpoint()["note"], None)
    # Grown past what the witness holds: the consistency proof fails.
    _declare(lib, 3)
    with pytest.raises(Refused, match="does not extend"):
        _next_head(lib, w)

    # Through the CLI: exit 1 and the divergent size named.
    p = run_cli("verify", "--against", str(_held_folder(w)), library=lib.path, check=False)
    assert p.returncode == 1
    assert "first divergent tree size 22" in p.stdout


def test_truncated_log_is_caught(signed):
    lib, w, _ = signed
    _declare(lib, 10)
    _next_head(lib, w)  # held: 32
    _rewrite_history(lib, seq=0, truncate_after=25)
    assert lib.verify().ok
    report = lib.verify(against=[_held_folder(w) / "checkpoint"])
    assert not report.ok
    assert report.against["first_divergent_size"] == 32
    assert any("events 26..32 were removed" in p for p in report.problems)
    with pytest.raises(Refused, match="smaller than the 32"):
        w.cosign(lib.checkpoint()["note"], None)
    _declare(lib, 20)  # regrow past the held size with other events
    with pytest.raises(Refused, match="does not extend"):
        _next_head(lib, w)
    # The earlier head the witness holds (size 22) is still a prefix of the truncated log.
    report = lib.verify(against=[_held_folder(w)])
    assert report.against["largest_consistent_size"] == 22


def test_forked_log_is_refused(signed, tmp_path):
    lib, w, _ = signed
    lib.close()
    fork = tmp_path / "fork"
    shutil.copytree(lib.path, fork)
    a, b = Library.open(lib.path), Library.open(fork)
    _declare(a, 4, "a")
    _declare(b, 7, "b")
    _next_head(a, w)
    with pytest.raises(Refused, match="does not extend"):
        _next_head(b, w)
    assert a.verify(against=[_held_folder(w)]).ok
    rb = b.verify(against=[_held_folder(w)])
    assert not rb.ok and rb.against["first_divergent_size"] == 26
    assert rb.against["largest_consistent_size"] == 22
    a.close()
    b.close()


def test_signing_key_rotation_is_an_endorsed_event(signed):
    lib, w, ident = signed
    rotated = lib.signing_identity(rotate=True)
    assert rotated["vkey"] != ident["vkey"]
    last = rotated["history"][-1]
    assert last["action"] == "rotated" and last["previous_vkey"] == ident["vkey"]
    endorsement = last["endorsement"]
    text = f"copytrail key rotation\n{rotated['vkey']}\n"
    assert note.parse_note(text + "\n" + endorsement + "\n").signed_by(
        [note.parse_vkey(ident["vkey"])]
    )
    _declare(lib, 2)
    cp = lib.checkpoint()
    assert note.parse_note(cp["note"]).signed_by([note.parse_vkey(rotated["vkey"])])
    assert lib.verify().ok
    # The witness follows only keys it was told about.
    with pytest.raises(Refused, match="not signed by a key"):
        _next_head(lib, w)
    w.trust(rotated["vkey"])
    assert _next_head(lib, w)["tree_size"] == cp["tree_size"]


def test_cosignatures_kept_and_checked_by_verify(signed):
    lib, w, _ = signed
    _declare(lib, 3)
    r = _next_head(lib, w)
    with pytest.raises(Exception, match="--witness VKEY"):
        lib.add_cosignatures(r["cosigned_note"].encode(), [])
    kept = lib.add_cosignatures(r["cosigned_note"].encode(), [r["witness_vkey"]])
    assert kept["cosigned_by"] == [r["witness_vkey"]]
    published = lib.published_checkpoint()
    assert published == (lib.path / "log" / "checkpoint").read_text()
    assert note.parse_note(published).signed_by([note.parse_vkey(r["witness_vkey"])])
    report = lib.verify()
    assert report.ok and report.counts["cosigned_checkpoints"] == 1
    # A cosignature edited in the database is a problem.
    with write_transaction(lib.engine) as conn:
        row = conn.execute(select(checkpoints).order_by(checkpoints.c.id.desc())).first()
        broken = row.note[:-10] + ("A" if row.note[-10] != "A" else "B") + row.note[-9:]
        conn.execute(update(checkpoints).where(checkpoints.c.id == row.id).values(note=broken))
    assert not lib.verify().ok


def test_stored_tree_nodes_are_checked(signed):
    lib, _, _ = signed
    _declare(lib, 40)
    lib.checkpoint()
    with write_transaction(lib.engine) as conn:
        conn.execute(update(tree_nodes).where(tree_nodes.c.level == 4).values(hash="00" * 32))
    report = lib.verify()
    assert any("tree node level 4" in p for p in report.problems)


def test_witness_over_http_from_serve(tmp_path):
    root = tmp_path / "lib"
    lib = Library.init(root)
    lib.add_source("pg", kind="public-domain")
    vkey = lib.signing_identity(create=True)["vkey"]
    lib.checkpoint()
    server = Server(root, _free_port(), guard=None)
    server.start()
    try:
        state = tmp_path / "w"
        run_cli("witness", "init", "--state", str(state), "--name", "w.example/http")
        run_cli("witness", "trust", "--state", str(state), vkey)
        first = json.loads(
            run_cli(
                "witness", "cosign", "--state", str(state), "--url", server.url, "--json"
            ).stdout
        )
        assert first["previous_size"] is None
        _declare(lib, 9)
        lib.checkpoint()
        second = json.loads(
            run_cli(
                "witness", "cosign", "--state", str(state), "--url", server.url, "--json"
            ).stdout
        )
        assert (second["previous_size"], second["tree_size"]) == (first["tree_size"], 11)
        import httpx

        key = httpx.get(server.url + "/v1/log/key").json()
        assert key["vkey"] == vkey and "key_file" not in key
        assert httpx.get(server.url + "/v1/log/inclusion?seq=3").json()["verified"]
        assert httpx.get(server.url + "/v1/log/consistency?old=0").status_code == 422
        # The log rewrites itself while serving: the witness refuses, exit 1, with the reason.
        _rewrite_history(lib, seq=2)
        _declare(lib, 1)
        lib.checkpoint()
        p = run_cli("witness", "cosign", "--state", str(state), "--url", server.url, check=False)
        assert p.returncode == 1 and "does not extend" in p.stderr
    finally:
        server.kill()
        lib.close()


# ---- RFC 3161 time-stamps from a real openssl TSA ---------------------------------------------
TS_CONF = """
[ tsa ]
default_tsa = tsa1
[ tsa1 ]
dir = {d}
serial = {d}/serial
crypto_device = builtin
signer_cert = {d}/tsa.pem
signer_key = {d}/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture
def tsa(tmp_path: Path):
    """A time-stamping authority: openssl's `ts -reply` behind a loopback HTTP endpoint."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (apt-get install -y openssl)")
    d = tmp_path / "tsa"
    d.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-subj", "/CN=copytrail test TSA CA", "-days", "2",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign", cwd=d)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "tsa.key", "-out", "tsa.csr",
             "-subj", "/CN=copytrail test TSA", cwd=d)  # fmt: skip
    (d / "ext.cnf").write_text("extendedKeyUsage=critical,timeStamping\n")
    _openssl("x509", "-req", "-in", "tsa.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "tsa.pem", "-days", "2", "-extfile", "ext.cnf",
             cwd=d)  # fmt: skip
    (d / "serial").write_text("01\n")
    (d / "ts.cnf").write_text(TS_CONF.format(d=d))
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                (d / "req.tsq").write_bytes(body)
                _openssl("ts", "-reply", "-config", "ts.cnf", "-queryfile", "req.tsq",
                         "-out", "resp.tsr", cwd=d)  # fmt: skip
                reply = (d / "resp.tsr").read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/", d
    httpd.shutdown()


def test_checkpoint_timestamped_by_a_real_tsa(signed, tsa, tmp_path):
    lib, _, _ = signed
    url, d = tsa
    _declare(lib, 2)
    cp = lib.checkpoint(tsa=url)
    assert cp["timestamp"]["tsa"].endswith("copytrail test TSA")
    report = lib.verify(tsa_ca=d / "ca.pem")
    assert report.ok and report.counts["timestamped_checkpoints"] == 1
    tsr = lib.path / "log" / "checkpoints" / f"{cp['tree_size']}.tsr"
    # openssl agrees that the token covers the checkpoint text and chains to the CA.
    text = tmp_path / "text"
    text.write_bytes(note.parse_note(cp["note"]).text)
    out = subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(tsr), "-token_in", "-data", str(text),
         "-CAfile", str(d / "ca.pem")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert "Verification: OK" in out.stdout, out.stderr
    # Another CA, or a token moved to another checkpoint, is rejected.
    other = tmp_path / "other"
    other.mkdir()
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "k", "-out", "ca.pem",
             "-subj", "/CN=other", "-days", "1", cwd=other)  # fmt: skip
    assert not lib.verify(tsa_ca=other / "ca.pem").ok
    _declare(lib, 1)
    lib.checkpoint()
    with write_transaction(lib.engine) as conn:
        conn.execute(
            update(checkpoints)
            .where(checkpoints.c.tree_size == cp["tree_size"] + 1)
            .values(timestamp_token=cp["timestamp_token"])
        )
    bad = lib.verify(tsa_ca=d / "ca.pem")
    assert any("imprint differs" in p for p in bad.problems)


def test_tsa_that_does_not_answer_is_a_clear_error(signed):
    lib, _, _ = signed
    port = _free_port()
    with pytest.raises(Exception, match="did not answer"):
        lib.checkpoint(tsa=f"http://127.0.0.1:{port}/")
    assert lib.verify().ok  # the checkpoint itself was recorded


# ---- evidence bundles ---------------------------------------------------------------------
@pytest.fixture
def bundled(tmp_path: Path):
    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    lib.ingest([str(EXAMPLES)], source="pg", dataset="pg@1")
    ident = lib.signing_identity(create=True, origin="example.org/books")
    w = Witness(tmp_path / "w")
    w.init("w.example/1")
    w.trust(ident["vkey"])
    cp = lib.checkpoint()
    cosigned = w.cosign(cp["note"], None)
    lib.add_cosignatures(cosigned["cosigned_note"].encode(), [cosigned["witness_vkey"]])
    lib.checkpoint()  # covers the witness announcement; the cosigned head stays published
    yield lib, ident["vkey"], cosigned["witness_vkey"]
    lib.close()


def test_copy_bundle_verifies_and_tampering_shows(bundled, tmp_path):
    lib, log_key, wit_key = bundled
    copy_id = next(iter(lib.copies()))["id"]
    r = lib.evidence(tmp_path / "copy.zip", copy=copy_id)
    assert r["events"] >= 3
    report, facts = verify_bundle(str(tmp_path / "copy.zip"), [log_key])
    assert report.passed, report.lines
    assert facts["subject"]["copy_id"] == copy_id
    # A wrong log key, an edited event, a dropped proof: each fails.
    other = note.Signer.generate("example.org/books").verifier.vkey
    assert not verify_bundle(str(tmp_path / "copy.zip"), [other])[0].passed
    with zipfile.ZipFile(tmp_path / "copy.zip") as z:
        files = {n: z.read(n) for n in z.namelist()}
    edited = files["events.jsonl"].replace(b'"pg@1', b'"pg@2', 1)
    for name, data in (("events.jsonl", edited), ("proofs.jsonl", b"\n")):
        changed = {**files, name: data}
        manifest = json.loads(changed["manifest.json"])
        import hashlib

        manifest["files"][name] = hashlib.sha256(data).hexdigest()  # a careful forger
        changed["manifest.json"] = json.dumps(manifest).encode()
        with zipfile.ZipFile(tmp_path / "bad.zip", "w") as z:
            for n, b in changed.items():
                z.writestr(n, b)
        bad, _ = verify_bundle(str(tmp_path / "bad.zip"), [log_key])
        assert not bad.passed, name


def test_work_and_deletion_bundles(bundled, tmp_path):
    lib, log_key, wit_key = bundled
    lib.import_works(REPO / "examples" / "works.csv", "class")
    work_id = lib.works("class")[0]["work_id"]
    lib.audit("class", tmp_path / "audit")
    d = lib.delete("test deletion", dataset="pg@1")
    lib.checkpoint()
    r = lib.evidence(tmp_path / "work.zip", work=work_id, list_name="class")
    report, facts = verify_bundle(str(tmp_path / "work.zip"), [log_key])
    assert report.passed, report.lines
    with zipfile.ZipFile(tmp_path / "work.zip") as z:
        assert "records/matches.json" in z.namelist()
    r = lib.evidence(tmp_path / "del.zip", deletion=d["deletion_id"])
    report, facts = verify_bundle(str(tmp_path / "del.zip"), [log_key])
    assert report.passed, report.lines
    assert facts["subject"]["copies"] == len(d["copies"]) > 0
    assert r["events"] == 2  # the deletion and the one batch event that recorded the copies
    with zipfile.ZipFile(tmp_path / "del.zip") as z:
        proofs = json.loads(z.read("proofs/copies-in-batches.json"))
    assert sorted(p["copy_id"] for p in proofs) == sorted(c["id"] for c in d["copies"])
    with pytest.raises(Exception, match="name one subject"):
        lib.evidence(tmp_path / "x.zip")


def test_standalone_script_checks_a_bundle_without_copytrail(bundled, tmp_path):
    """tools/verify_bundle.py in a fresh process that can import `cryptography` and nothing
    of copytrail (no site-packages at all: -S)."""
    lib, log_key, wit_key = bundled
    copy_id = next(iter(lib.copies()))["id"]
    lib.evidence(tmp_path / "b.zip", copy=copy_id)
    assert (
        subprocess.run(
            [sys.executable, str(REPO / "tools" / "build_verifier.py"), "--check"]
        ).returncode
        == 0
    ), "tools/verify_bundle.py is stale: run python tools/build_verifier.py"
    iso = tmp_path / "iso"
    iso.mkdir()
    shutil.copy(REPO / "tools" / "verify_bundle.py", iso / "verify_bundle.py")
    import cryptography

    (iso / "cryptography").symlink_to(Path(cryptography.__file__).parent)
    for dep in ("cffi", "_cffi_backend"):  # cryptography's optional helpers, if present
        try:
            mod = __import__(dep)
            (iso / Path(mod.__file__).name).symlink_to(mod.__file__)
        except ImportError:
            pass
    cmd = [sys.executable, "-S", "-E", "verify_bundle.py"]
    probe = subprocess.run([sys.executable, "-S", "-E", "-c", "import copytrail"], cwd=iso)
    assert probe.returncode != 0, "copytrail must not be importable in the isolated process"
    ok = subprocess.run(
        [*cmd, str(tmp_path / "b.zip"), "--log-key", log_key, "--witness-key", wit_key],
        cwd=iso, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "BUNDLE VERIFIES" in ok.stdout and "cosigned by witness w.example/1" in ok.stdout
    wrong = note.Signer.generate("example.org/books").verifier.vkey
    bad = subprocess.run(
        [*cmd, str(tmp_path / "b.zip"), "--log-key", wrong],
        cwd=iso, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 1 and "DOES NOT VERIFY" in bad.stdout


def test_cli_signs_witnesses_and_bundles(tmp_path):
    lib_dir = tmp_path / "lib"
    run_cli("init", library=lib_dir)
    run_cli("source", "add", "pg", "--kind", "public-domain", library=lib_dir)
    run_cli("ingest", str(EXAMPLES), "--source", "pg", "--dataset", "pg@1", library=lib_dir)
    ident = json.loads(run_cli("key", "identity", "--create", "--json", library=lib_dir).stdout)
    cp = json.loads(run_cli("checkpoint", "--json", library=lib_dir).stdout)
    assert cp["published"] and (lib_dir / "log" / "checkpoint").exists()
    state = str(tmp_path / "w")
    wit = json.loads(
        run_cli("witness", "init", "--state", state, "--name", "w.ex/1", "--json").stdout
    )
    run_cli("witness", "trust", "--state", state, ident["vkey"])
    run_cli(
        "witness", "cosign", "--state", state, "--checkpoint", str(lib_dir / "log" / "checkpoint")
    )
    run_cli("source", "add", "more", "--kind", "licensed", library=lib_dir)
    cp2 = json.loads(run_cli("checkpoint", "--json", library=lib_dir).stdout)
    proof = tmp_path / "proof.json"
    proof.write_text(run_cli("consistency", str(cp["tree_size"]), "--json", library=lib_dir).stdout)
    out = tmp_path / "cosigned.note"
    head = str(lib_dir / "log" / "checkpoint")
    run_cli("witness", "cosign", "--state", state, "--checkpoint", head,
            "--proof", str(proof), "--out", str(out))  # fmt: skip
    run_cli("checkpoint", "--cosigned", str(out), "--witness", wit["vkey"], library=lib_dir)
    shown = json.loads(run_cli("witness", "show", "--state", state, "--json").stdout)
    assert shown["logs"][0]["tree_size"] == cp2["tree_size"]
    run_cli("verify", "--against", state, library=lib_dir)
    run_cli("checkpoint", library=lib_dir)
    run_cli("evidence", "--copy", "1", "--out", str(tmp_path / "e.zip"), library=lib_dir)
    p = subprocess.run(
        [sys.executable, "-m", "copytrail.verify_bundle", str(tmp_path / "e.zip"),
         "--log-key", ident["vkey"], "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert json.loads(p.stdout)["ok"]


def test_hostile_inputs_to_the_witness_and_verify_against(signed, tmp_path):
    lib, w, ident = signed
    for bad in (
        b"",
        b"\x00" * 10,
        b"not a note\n",
        "x\n\n\u2014 k AAAA\n".encode(),
        b"a" * 3_000_000,
    ):
        with pytest.raises(Refused):
            w.cosign(bad, None)
    other = note.Signer.generate("example.org/other")
    text = note.Checkpoint("example.org/other", 5, bytes(32)).text()
    stranger = text.decode() + "\n" + other.sign_line(text)
    with pytest.raises(Refused, match="not watched"):
        w.cosign(stranger, None)
    # A note claiming this log's origin but signed by another key.
    impostor = note.Signer.generate("example.org/books")
    text = note.Checkpoint("example.org/books", 99, bytes(32)).text()
    with pytest.raises(Refused, match="not signed by a key"):
        w.cosign(text.decode() + "\n" + impostor.sign_line(text), None)
    held = tmp_path / "held.note"
    held.write_text(stranger)
    r = lib.verify(against=[held])
    assert not r.ok and any("not of this log" in p for p in r.problems)
    (tmp_path / "junk.note").write_bytes(b"\xff\xfe junk")
    with pytest.raises(Exception, match="not a signed checkpoint"):
        lib.verify(against=[tmp_path / "junk.note"])
    from copytrail.witness.state import read_proof

    with pytest.raises(Refused, match="longer than any tree"):
        read_proof({"old_size": 1, "new_size": 2, "path": ["00" * 32] * 65}, 1, 2)
    with pytest.raises(Refused, match="not a list of hex"):
        read_proof({"old_size": 1, "new_size": 2, "path": "zz"}, 1, 2)


def test_library_from_before_tree_nodes_and_signatures_migrates(tmp_path):
    from sqlalchemy import text as sql

    lib = Library.init(tmp_path / "lib")
    lib.add_source("pg", kind="public-domain")
    _declare(lib, 40)
    lib.checkpoint()
    _declare(lib, 3)
    with lib.engine.begin() as conn:  # what a schema-9 library looks like
        conn.execute(sql("DROP TABLE tree_nodes"))
        conn.execute(sql("ALTER TABLE checkpoints DROP COLUMN note"))
        conn.execute(sql("ALTER TABLE checkpoints DROP COLUMN timestamp_token"))
        conn.execute(sql("DELETE FROM meta WHERE key = 'tree_nodes_size'"))
        conn.execute(sql("UPDATE meta SET value = '9' WHERE key = 'schema_version'"))
    lib.close()
    lib = Library.open(tmp_path / "lib")
    assert lib.prove(7)["verified"]  # nodes rebuilt up to the existing checkpoint
    assert lib.consistency(10)["verified"]
    assert lib.verify().ok
    lib.signing_identity(create=True)
    assert lib.checkpoint()["note"]
    assert lib.verify().ok
    lib.close()
