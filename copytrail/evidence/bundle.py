"""Evidence bundles: one zip that lets someone who trusts neither copytrail nor its operator check
a copy's history, a work's presence, or a deletion, offline.

    README.txt         what the bundle claims and how to check it
    manifest.json      the subject, and the SHA-256 of every other file
    checkpoint.note    the signed (and cosigned) tree head every proof is against
    checkpoint.tsr     its RFC 3161 time-stamp token, when it has one
    keys.json          the log's and the witnesses' verifier keys, as the log announced them
    events.jsonl       the events involved, exactly as stored (canonical JSON fields)
    proofs.jsonl       an RFC 9162 inclusion proof per event
    records/...        the catalog rows the events vouch for (copy, work, matches, deletion)
    excerpts.jsonl     for a work: the matched passages, work side and copy side

The bundle holds hashes and short excerpts, never a whole text. `copytrail/verify_bundle.py`
(and the single file tools/verify_bundle.py built from it) checks everything but the records'
meaning, which the README spells out.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select

from copytrail.atomic import write_atomic
from copytrail.audit.browse import excerpts
from copytrail.audit.works import find_work
from copytrail.catalog.batches import batch_proofs, copy_proof
from copytrail.catalog.queries import find_copy
from copytrail.catalog.schema import (
    audits,
    copies,
    corpora,
    corpus_docs,
    datasets,
    deletions,
    matches,
    runs,
    sources,
)
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger import checkpoint, note, signing, timestamp, tree
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import seqs_about
from copytrail.ledger.schema import checkpoints, events

FORMAT = "copytrail-evidence/1"
MAX_EXCERPTS = 50
MAX_EVENTS = 100_000


def write_bundle(
    ctx: Context,
    out: str | os.PathLike,
    copy: str | int | None = None,
    work: str | None = None,
    list_name: str | None = None,
    deletion: int | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Write the bundle of one subject to `out`; `progress(phase, advance, total)` is told of
    the events proven."""
    chosen = [x is not None for x in (copy, work, deletion)]
    if sum(chosen) != 1:
        raise InvalidInput("name one subject: --copy ID, --work ID --list L, or --deletion N")
    files: dict[str, bytes] = {}
    with read_connection(ctx.db) as conn:
        cp = checkpoint.latest_checkpoint(conn)
        if cp is None or not cp.note:
            raise InvalidInput(
                "evidence is proven against a signed checkpoint: run `copytrail key identity "
                "--create` (once) and `copytrail checkpoint`"
            )
        if copy is not None:
            subject, seqs = _copy_subject(conn, copy, files)
        elif work is not None:
            subject, seqs = _work_subject(ctx, conn, work, list_name, files)
        else:
            subject, seqs = _deletion_subject(ctx, conn, int(deletion or 0), files)
        seqs = sorted(s for s in set(seqs) if s)
        if seqs and seqs[-1] > cp.tree_size:
            raise InvalidInput(
                f"event {seqs[-1]} is after the latest checkpoint (tree size {cp.tree_size}): "
                "run `copytrail checkpoint` first"
            )
        cp = _best_checkpoint(conn, seqs[-1] if seqs else 1) or cp
        if len(seqs) > MAX_EVENTS:
            raise InvalidInput(f"{len(seqs)} events are more than one bundle holds ({MAX_EVENTS})")
        ev_lines, proof_lines = [], []
        cache: dict[Any, bytes] = {}  # nodes shared by the proofs of neighbouring events
        if progress:
            progress("events", 0, len(seqs))
        for i in range(0, len(seqs), 500):
            part = seqs[i : i + 500]
            for r in conn.execute(select(events).where(events.c.seq.in_(part)).order_by("seq")):
                ev_lines.append(_event_line(r))
                path = tree.inclusion_path(conn, r.seq - 1, cp.tree_size, cache)
                proof_lines.append(
                    orjson.dumps(
                        {
                            "seq": r.seq,
                            "leaf_index": r.seq - 1,
                            "tree_size": cp.tree_size,
                            "path": [p.hex() for p in path],
                        }
                    )
                )
            if len(cache) > 1_000_000:
                cache.clear()
            if progress:
                progress("events", len(part), None)
        keys = {
            "log": [v.vkey for v in signing.log_verifiers(conn)],
            "witnesses": [v.vkey for v in signing.witness_verifiers(conn)],
        }
    files["events.jsonl"] = b"\n".join(ev_lines) + b"\n"
    files["proofs.jsonl"] = b"\n".join(proof_lines) + b"\n"
    files["checkpoint.note"] = cp.note.encode()
    if cp.timestamp_token:
        files["checkpoint.tsr"] = timestamp.decode(cp.timestamp_token)
    files["keys.json"] = _json(keys)
    files["README.txt"] = _readme(subject, cp.tree_size, bool(cp.timestamp_token)).encode()
    manifest = {
        "format": FORMAT,
        "subject": subject,
        "tree_size": cp.tree_size,
        "root_hash": cp.root_hash,
        "events": len(ev_lines),
        "files": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
    }
    files["manifest.json"] = _json(manifest)
    path = Path(out)
    _write_zip(path, files)
    return {
        "path": str(path),
        "subject": subject,
        "events": len(ev_lines),
        "tree_size": cp.tree_size,
        "files": len(files),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
    }


def _best_checkpoint(conn: Connection, needed: int) -> Any:
    """The head to prove against: the largest one a witness cosigned that covers every event of
    the bundle (a reader trusts a witnessed head more), else the latest signed one."""
    witnesses = signing.witness_verifiers(conn)
    rows = conn.execute(
        select(checkpoints)
        .where(checkpoints.c.tree_size >= needed, checkpoints.c.note.is_not(None))
        .order_by(checkpoints.c.tree_size.desc(), checkpoints.c.id.desc())
    ).all()
    for row in rows:
        try:
            if witnesses and note.parse_note(row.note).signed_by(witnesses):
                return row
        except note.NoteError:
            continue
    return rows[0] if rows else None


def _event_line(r: Any) -> bytes:
    # subjects and payload stay the exact canonical strings the hash covers, so the verifier
    # never re-serialises JSON (where two libraries could disagree on a byte).
    return orjson.dumps(
        {
            "seq": r.seq,
            "type": r.type,
            "time": r.time,
            "actor": r.actor,
            "subjects": r.subjects,
            "payload": r.payload,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str).encode()


def _copy_subject(conn: Connection, ref: str | int, files: dict[str, bytes]) -> Any:
    c = find_copy(conn, ref)
    cid = c["id"]
    seqs = [c.get("event_seq")]
    seqs += _dataset_events(conn, [c["dataset_id"]])
    seqs += seqs_about(conn, ("copy_id", "copy_ids"), cid)  # includes its deletion, if any
    batch = copy_proof(conn, cid)
    if batch is not None:  # recorded by a batch event: the copy's path inside the batch
        files["proofs/copy-in-batch.json"] = _json(batch)
    audit_rows = conn.execute(
        select(audits.c.id, audits.c.event_seq)
        .join(matches, matches.c.audit_id == audits.c.id)
        .where(matches.c.copy_id == cid)
        .distinct()
    ).all()
    seqs += [a.event_seq for a in audit_rows]
    docs = [
        r._asdict()
        for r in conn.execute(
            select(corpus_docs, corpora.c.name.label("corpus"), corpora.c.event_seq)
            .join(corpora, corpora.c.id == corpus_docs.c.corpus_id)
            .where(corpus_docs.c.copy_id == cid)
        )
    ]
    seqs += [d["event_seq"] for d in docs]
    corpus_ids = sorted({d["corpus_id"] for d in docs})
    run_rows = [
        r._asdict() for r in conn.execute(select(runs).where(runs.c.corpus_id.in_(corpus_ids)))
    ]
    seqs += [r["event_seq"] for r in run_rows]
    files["records/copy.json"] = _json(c)
    files["records/corpus_docs.json"] = _json(docs)
    files["records/runs.json"] = _json(run_rows)
    return {"kind": "copy", "copy_id": cid, "sha256": c.get("sha256")}, seqs


def _dataset_events(conn: Connection, dataset_ids: list[int]) -> list[int]:
    out = []
    for d in conn.execute(select(datasets).where(datasets.c.id.in_(sorted(set(dataset_ids))))):
        out.append(d.event_seq)
        out += [
            s.event_seq for s in conn.execute(select(sources).where(sources.c.id == d.source_id))
        ]
    return out


def _work_subject(
    ctx: Context, conn: Connection, work_id: str, list_name: str | None, files: dict[str, bytes]
) -> Any:
    if not list_name:
        raise InvalidInput("a work is named with its list: --work ID --list L")
    w = find_work(conn, work_id, list_name)
    listed = seqs_about(conn, ("works_list_id",), w["list_id"])
    seqs = [
        r.seq
        for r in conn.execute(
            select(events.c.seq).where(events.c.type == "acquired", events.c.seq.in_(listed))
        )
    ]
    rows = conn.execute(
        select(matches, audits.c.event_seq.label("audit_event_seq"))
        .join(audits, audits.c.id == matches.c.audit_id)
        .where(matches.c.work_pk == w["id"])
        .order_by(matches.c.audit_id, matches.c.copy_id)
    ).all()
    found = [r._asdict() for r in rows]
    seqs += [m["audit_event_seq"] for m in found]
    copy_ids = sorted({m["copy_id"] for m in found})
    copy_rows = []
    for i in range(0, len(copy_ids), 500):
        part = copy_ids[i : i + 500]
        copy_rows += [
            r._asdict() for r in conn.execute(select(copies).where(copies.c.id.in_(part)))
        ]
    seqs += [c["event_seq"] for c in copy_rows]
    batched = list(batch_proofs(conn, [c["id"] for c in copy_rows]).values())
    if batched:
        files["proofs/copies-in-batches.json"] = _json(batched)
    seqs += _dataset_events(conn, [c["dataset_id"] for c in copy_rows])
    files["records/work.json"] = _json(w)
    files["records/matches.json"] = _json(found)
    files["records/copies.json"] = _json(copy_rows)
    files["excerpts.jsonl"] = _excerpts(ctx, w, found, {c["id"]: c for c in copy_rows})
    subject = {"kind": "work", "works_list": list_name, "work_id": work_id, "title": w["title"]}
    return subject, seqs


def _excerpts(
    ctx: Context, w: dict[str, Any], found: list[dict[str, Any]], copy_rows: dict[int, Any]
) -> bytes:
    """The matched passages side by side (work and copy), one JSON line each."""
    shas = {
        cid: c.get("text_sha256") for cid, c in copy_rows.items() if c.get("status") != "deleted"
    }
    rows = excerpts(ctx.store, w.get("text_sha256"), found, shas, MAX_EXCERPTS)
    return b"".join(orjson.dumps(r) + b"\n" for r in rows)


def _deletion_subject(
    ctx: Context, conn: Connection, deletion_id: int, files: dict[str, bytes]
) -> Any:
    d = conn.execute(select(deletions).where(deletions.c.id == deletion_id)).first()
    if d is None:
        raise NotFound(f"no deletion #{deletion_id}; see `copytrail log --type deleted`")
    ev = conn.execute(select(events.c.subjects).where(events.c.seq == d.event_seq)).scalar()
    ids = orjson.loads(ev).get("copy_ids", []) if ev else []
    seqs = [d.event_seq]
    copy_rows = []
    for i in range(0, len(ids), 500):
        part = ids[i : i + 500]
        copy_rows += [
            r._asdict() for r in conn.execute(select(copies).where(copies.c.id.in_(part)))
        ]
    seqs += [c["event_seq"] for c in copy_rows]
    batched = list(batch_proofs(conn, [c["id"] for c in copy_rows]).values())
    if batched:
        files["proofs/copies-in-batches.json"] = _json(batched)
    files["records/deletion.json"] = _json(d._asdict())
    files["records/copies.json"] = _json(copy_rows)
    if d.certificate and Path(d.certificate).is_file():
        files["records/certificate.json"] = Path(d.certificate).read_bytes()
    subject = {"kind": "deletion", "deletion_id": deletion_id, "copies": len(ids)}
    return subject, seqs


def _write_zip(path: Path, files: dict[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, files[name])
    write_atomic(path, buf.getvalue())


def _readme(subject: dict[str, Any], size: int, stamped: bool) -> str:
    what = {
        "copy": "the custody of one copy: where it came from (its dataset and source), its "
        "ingestion with the hashes of its bytes and text, the audits that matched it, the corpora "
        "that included or excluded it, the training runs on those corpora, and its deletion",
        "work": "where one work of a works list was found: the list's import, every audit match "
        "with its character spans and excerpts, and the ingestion of each matching copy",
        "deletion": "one deletion: the event that recorded it, the copies it covered with their "
        "ingestion events, and the certificate written for it",
    }[subject["kind"]]
    tsr = (
        "5. checkpoint.tsr is an RFC 3161 time-stamp over the checkpoint's text (its first three\n"
        "   lines): openssl ts -verify -in checkpoint.tsr -token_in -data checkpoint-text.txt\n"
        "   -CAfile TSA-CA.pem (the verifier writes checkpoint-text.txt next to the bundle).\n"
        if stamped
        else ""
    )
    return f"""copytrail evidence bundle ({FORMAT})

Subject: {json.dumps(subject, ensure_ascii=False)}
This bundle records {what}.

How to check it, without copytrail:
    python verify_bundle.py THIS.zip --log-key VKEY [--witness-key VKEY]
(verify_bundle.py is tools/verify_bundle.py in copytrail's repository: one file that needs only
Python 3.11+ and the `cryptography` package.) It checks:
1. every file's SHA-256 against manifest.json;
2. every event in events.jsonl hashes to its stored hash (SHA-256 of the previous event's hash
   and the event's canonical JSON), so no event was edited after it was written;
3. every event is leaf (seq - 1) of the Merkle tree of {size} events whose root checkpoint.note
   states (RFC 9162 inclusion proofs in proofs.jsonl);
4. checkpoint.note is signed by the log's key and, when present, cosigned by witnesses. Pass
   the keys you obtained yourself (--log-key, --witness-key); keys.json is what the log says.
{tsr}
What this proves: the events were in the log when the checkpoint was signed, and the log's
operator cannot later change them without the change showing against this checkpoint (ask a
witness, or run `copytrail verify --against checkpoint.note` on the live log). What it does not
prove: that the events tell the truth about the world (a copy's recorded source is what the
operator recorded), nor anything about events the bundle does not include.
"""
