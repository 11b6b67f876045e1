"""Check a copytrail evidence bundle offline, trusting neither copytrail nor the log's operator.

    python -m copytrail.verify_bundle BUNDLE.zip [--log-key VKEY] [--witness-key VKEY ...]
    python tools/verify_bundle.py BUNDLE.zip ...   (the same checks in one file, no copytrail)

It needs the standard library and `cryptography` only: the Merkle and signed-note code it uses
(copytrail/ledger/merkle.py, copytrail/ledger/note.py) is pasted into tools/verify_bundle.py by
tools/build_verifier.py, so the stand-alone file and this module cannot drift apart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import zipfile
from typing import Any

from copytrail.ledger.merkle import leaf_hash, verify_inclusion
from copytrail.ledger.note import NoteError, Verifier, parse_checkpoint, parse_note, parse_vkey

MAX_MEMBER_BYTES = 1 << 30  # a bundle of a deletion of a million copies stays far below this
GENESIS = "0" * 64


class BundleReport:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def ok(self, msg: str) -> None:
        self.lines.append(("ok", msg))

    def fail(self, msg: str) -> None:
        self.lines.append(("FAIL", msg))

    def note(self, msg: str) -> None:
        self.lines.append(("note", msg))

    @property
    def passed(self) -> bool:
        return not any(kind == "FAIL" for kind, _ in self.lines)


def _read_members(z: zipfile.ZipFile, report: BundleReport) -> dict[str, bytes] | None:
    files: dict[str, bytes] = {}
    for info in z.infolist():
        if info.file_size > MAX_MEMBER_BYTES:
            report.fail(f"{info.filename!r} is larger than any bundle file should be")
            return None
        files[info.filename] = z.read(info)
    return files


def event_body(ev: dict[str, Any]) -> bytes:
    """The bytes an event's hash covers: its canonical JSON, rebuilt from the stored canonical
    subjects and payload strings so no JSON library's formatting can change a byte."""

    def s(v: str) -> str:
        return json.dumps(v, ensure_ascii=False)

    return (
        f'{{"actor":{s(ev["actor"])},"payload":{ev["payload"]},"seq":{int(ev["seq"])},'
        f'"subjects":{ev["subjects"]},"time":{s(ev["time"])},"type":{s(ev["type"])}}}'
    ).encode()


def event_hash(ev: dict[str, Any]) -> str:
    return hashlib.sha256(ev["prev_hash"].encode("ascii") + event_body(ev)).hexdigest()


def verify_bundle(
    path: str, log_keys: list[str] | None = None, witness_keys: list[str] | None = None
) -> tuple[BundleReport, dict[str, Any]]:
    report = BundleReport()
    facts: dict[str, Any] = {}
    try:
        with zipfile.ZipFile(path) as z:
            files = _read_members(z, report)
    except (OSError, zipfile.BadZipFile) as e:
        report.fail(f"cannot read {path}: {e}")
        return report, facts
    if files is None:
        return report, facts
    try:
        manifest = json.loads(files["manifest.json"])
        listed = dict(manifest.get("files", {}))
    except (KeyError, ValueError, TypeError, AttributeError):
        report.fail("manifest.json is missing or not a JSON object listing the files")
        return report, facts
    facts["subject"] = manifest.get("subject")
    bad = [
        n for n, h in listed.items() if n not in files or hashlib.sha256(files[n]).hexdigest() != h
    ]
    extra = sorted(set(files) - set(listed) - {"manifest.json"})
    if bad or extra:
        report.fail(f"files changed or missing: {bad}; files not in the manifest: {extra}")
    else:
        report.ok(f"all {len(listed)} files match the SHA-256 in manifest.json")

    head, note_ok = _check_checkpoint(files, manifest, log_keys, witness_keys, report, facts)
    if head is None:
        return report, facts
    try:
        events = _check_events(files, report)
        _check_proofs(files, events, head, report)
        _check_records(files, events, report, facts)
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        report.fail(f"the bundle's events, proofs or records are malformed: {e!r}"[:300])
        return report, facts
    if note_ok and report.passed:
        report.ok(
            f"the {len(events)} events were in the log's tree of {head.size} events when it "
            "was signed; the operator cannot change them without the change showing against "
            "this checkpoint"
        )
    return report, facts


def _check_checkpoint(
    files: dict[str, bytes],
    manifest: dict[str, Any],
    log_keys: list[str] | None,
    witness_keys: list[str] | None,
    report: BundleReport,
    facts: dict[str, Any],
) -> tuple[Any, bool]:
    try:
        note = parse_note(files["checkpoint.note"])
        head = parse_checkpoint(note.text)
    except (KeyError, NoteError) as e:
        report.fail(f"checkpoint.note is missing or malformed: {e}")
        return None, False
    if (head.size, head.root.hex()) != (manifest.get("tree_size"), manifest.get("root_hash")):
        report.fail("the manifest names another tree head than checkpoint.note")
    try:
        bundled = json.loads(files.get("keys.json", b"{}"))
        bundled = bundled if isinstance(bundled, dict) else {}
    except ValueError:
        bundled = {}
    pinned = bool(log_keys)
    try:
        logs: list[Verifier] = [parse_vkey(k) for k in (log_keys or bundled.get("log", []))]
        wits: list[Verifier] = [
            parse_vkey(k) for k in (witness_keys or bundled.get("witnesses", []))
        ]
    except NoteError as e:
        report.fail(f"a verifier key is malformed: {e}")
        return head, False
    try:
        signed = note.signed_by(logs)
        cosigned = note.signed_by(wits)
    except NoteError as e:
        report.fail(f"checkpoint.note: {e}")
        return head, False
    facts.update(origin=head.origin, tree_size=head.size, root=head.root.hex())
    if not signed:
        report.fail(f"checkpoint.note is not signed by the log key{'s given' if pinned else ''}")
        return head, False
    src = "the key you gave" if pinned else "keys.json (compare it with the key the log publishes)"
    report.ok(f"checkpoint (log {head.origin}, tree size {head.size}) signed by {src}")
    for vkey, ts in cosigned.items():
        report.ok(f"cosigned by witness {vkey.split('+')[0]} at POSIX time {ts}")
    if witness_keys and len(cosigned) < len(witness_keys):
        report.fail(f"only {len(cosigned)} of the {len(witness_keys)} witnesses given cosigned")
    if not cosigned:
        report.note("no witness cosignature: the checkpoint rests on the log's key alone")
    if "checkpoint.tsr" in files:
        report.note(
            "checkpoint.tsr is an RFC 3161 time-stamp over the checkpoint text (the note up to "
            "its blank line); check it with `openssl ts -verify -in checkpoint.tsr -token_in "
            "-data TEXT -CAfile TSA-CA.pem`"
        )
    facts["signed_by"] = sorted(signed)
    facts["cosigned_by"] = sorted(cosigned)
    return head, True


def _check_events(files: dict[str, bytes], report: BundleReport) -> dict[int, dict[str, Any]]:
    events: dict[int, dict[str, Any]] = {}
    edited = []
    for line in files.get("events.jsonl", b"").splitlines():
        if not line.strip():
            continue
        ev = json.loads(line)
        json.loads(ev["subjects"]), json.loads(ev["payload"])  # both must be JSON
        if event_hash(ev) != ev["hash"]:
            edited.append(ev["seq"])
        events[int(ev["seq"])] = ev
    broken = [
        s
        for s, ev in events.items()
        if s - 1 in events and events[s - 1]["hash"] != ev["prev_hash"]
    ]
    if 1 in events and events[1]["prev_hash"] != GENESIS:
        broken.append(1)
    if edited or broken:
        report.fail(f"events that do not hash to their hash: {edited}; broken links: {broken}")
    else:
        report.ok(f"all {len(events)} events hash to their recorded hashes")
    return events


def _check_proofs(
    files: dict[str, bytes], events: dict[int, dict[str, Any]], head: Any, report: BundleReport
) -> None:
    proofs = {}
    for line in files.get("proofs.jsonl", b"").splitlines():
        if line.strip():
            p = json.loads(line)
            proofs[int(p["seq"])] = p
    failed = []
    for seq, ev in events.items():
        p = proofs.get(seq)
        ok = (
            p is not None
            and int(p["tree_size"]) == head.size
            and int(p["leaf_index"]) == seq - 1
            and verify_inclusion(
                seq - 1,
                head.size,
                leaf_hash(bytes.fromhex(ev["hash"])),
                [bytes.fromhex(h) for h in p["path"]],
                head.root,
            )
        )
        if not ok:
            failed.append(seq)
    if failed:
        report.fail(f"events whose inclusion proof fails: {failed[:20]}")
    else:
        report.ok(f"every event is in the signed tree (RFC 9162 inclusion proofs, {len(events)})")


def _check_records(
    files: dict[str, bytes],
    events: dict[int, dict[str, Any]],
    report: BundleReport,
    facts: dict[str, Any],
) -> None:
    """The catalog rows must say what their events say (the rows are the readable summary; the
    events are what the proofs cover)."""
    ingested = {}
    batches = {}  # event seq -> (first copy id, last copy id, payload)
    for ev in events.values():
        subjects = json.loads(ev["subjects"])
        if ev["type"] == "ingested" and "copy_id" in subjects:
            ingested[subjects["copy_id"]] = (ev, json.loads(ev["payload"]))
        elif ev["type"] == "ingested" and "first_copy_id" in subjects:
            batches[ev["seq"]] = (
                subjects["first_copy_id"],
                subjects["last_copy_id"],
                json.loads(ev["payload"]),
            )
    in_batch = {}
    for name in ("proofs/copy-in-batch.json", "proofs/copies-in-batches.json"):
        if name in files:
            doc = json.loads(files[name])
            for proof in doc if isinstance(doc, list) else [doc]:
                in_batch[proof["copy_id"]] = proof
    rows: list[dict[str, Any]] = []
    if "records/copy.json" in files:
        rows.append(json.loads(files["records/copy.json"]))
    if "records/copies.json" in files:
        rows += json.loads(files["records/copies.json"])
    differ = []
    for r in rows:
        if r.get("event_seq") in batches:
            if not _copy_in_batch(r, batches[r["event_seq"]], in_batch.get(r["id"])):
                differ.append(r["id"])
            continue
        got = ingested.get(r["id"])
        if got is None:
            differ.append(r["id"])
            continue
        ev, payload = got
        if (r.get("sha256"), r.get("text_sha256"), r.get("path")) != (
            payload.get("sha256"),
            payload.get("text_sha256"),
            payload.get("path"),
        ) or r.get("event_seq") != ev["seq"]:
            differ.append(r["id"])
    if differ:
        report.fail(f"copy records that their ingested events do not vouch for: {differ[:20]}")
    elif rows:
        report.ok(f"{len(rows)} copy records match the hashes and paths of their ingested events")
    facts["events"] = [
        {"seq": ev["seq"], "type": ev["type"], "time": ev["time"], "actor": ev["actor"]}
        for _, ev in sorted(events.items())
    ]


def _copy_in_batch(row: dict[str, Any], batch: tuple, proof: dict[str, Any] | None) -> bool:
    """A copy recorded by a batch event: its leaf names the row's hashes and path, and the
    leaf's audit path folds to the Merkle root the event holds."""
    first, last, payload = batch
    if proof is None or not first <= row["id"] <= last:
        return False
    leaf = json.loads(proof["leaf"])
    if (leaf.get("copy_id"), leaf.get("sha256"), leaf.get("text_sha256"), leaf.get("path")) != (
        row["id"],
        row.get("sha256"),
        row.get("text_sha256"),
        row.get("path"),
    ):
        return False
    size = payload.get("copies", 0)
    if size != last - first + 1 or proof.get("leaf_index") != row["id"] - first:
        return False
    try:
        root = bytes.fromhex(payload["copies_root"])
        path = [bytes.fromhex(p) for p in proof["path"]]
    except (KeyError, ValueError, TypeError):
        return False
    return verify_inclusion(row["id"] - first, size, leaf_hash(proof["leaf"].encode()), path, root)


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("bundle")
    ap.add_argument("--log-key", action="append", help="The log's verifier key (pin it).")
    ap.add_argument("--witness-key", action="append", help="A witness's key; all must cosign.")
    ap.add_argument("--json", action="store_true", help="Print the findings as JSON.")
    args = ap.parse_args(argv)
    report, facts = verify_bundle(args.bundle, args.log_key, args.witness_key)
    if args.json:
        out = {"ok": report.passed, "findings": report.lines, **facts}
        print(json.dumps(out, indent=2, ensure_ascii=True))
    else:
        print(f"bundle: {_printable(args.bundle)}")
        print(f"subject: {_printable(json.dumps(facts.get('subject')))}")
        for ev in facts.get("events", [])[:50]:
            print(
                _printable(f"  event {ev['seq']:>8} {ev['type']:<10} {ev['time']} by {ev['actor']}")
            )
        for kind, msg in report.lines:
            print(f"[{kind}] {_printable(msg)}")
        print("BUNDLE VERIFIES" if report.passed else "BUNDLE DOES NOT VERIFY")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
