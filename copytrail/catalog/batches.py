"""Copies recorded in batches: one `ingested` event commits to many copies by a Merkle root.

A million copies as a million events is a million canonical JSON bodies, hashes and rows in the
log. Instead one event per batch names the copy range (`first_copy_id`..`last_copy_id`) and holds:

- `copies_root`: the RFC 9162 Merkle root over the batch's copy leaves, in copy id order, where a
  copy's leaf is the canonical JSON of {copy_id, dataset_id, and the fields `copy_event_payload`
  commits to}. A copy's ingest is proved by the event's inclusion proof plus the copy's audit path
  inside the batch (`copy_proof`).
- `leaf_prefixes`: the first 8 bytes of every leaf hash, so `verify` names the exact copy whose
  row was changed (the root alone would only say that one of the batch was).

A deleted copy's row says `deleted`; its leaf used the status it had at ingest, which the
`deleted` event records in `prior_status` when it was not `ok`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, select

from copytrail.canonical import canonical_json
from copytrail.catalog.schema import copies
from copytrail.ledger import merkle
from copytrail.ledger.schema import events

PREFIX_BYTES = 8


def copy_event_payload(rec: dict[str, Any]) -> dict[str, Any]:
    """The fields of a copy that the ledger commits to (and `verify` checks the table against)."""
    return {
        k: v
        for k, v in {
            "sha256": rec["sha256"],
            "size": rec["size"],
            "media_type": rec["media_type"],
            "path": rec["path"],
            "status": rec["status"],
            "reason": rec.get("reason"),
            "text_sha256": rec.get("text_sha256"),
            "text_size": rec.get("text_size"),
        }.items()
        if v is not None
    }


def copy_leaf(copy_id: int, dataset_id: int, payload: dict[str, Any]) -> bytes:
    return canonical_json({"copy_id": copy_id, "dataset_id": dataset_id, **payload})


def batch_payload(leaves: Sequence[bytes]) -> dict[str, Any]:
    hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    return {
        "copies": len(leaves),
        "copies_root": merkle.root_from_leaf_hashes(hashes).hex(),
        "leaf_prefixes": "".join(h[:PREFIX_BYTES].hex() for h in hashes),
    }


def is_batch(subjects: dict[str, Any]) -> bool:
    return "first_copy_id" in subjects and "last_copy_id" in subjects


def row_leaf(row: Any, prior_status: dict[int, str]) -> bytes:
    """A table row's leaf, as its batch event committed to it."""
    d = row._asdict()
    payload = copy_event_payload(d)
    if payload.get("status") == "deleted":
        payload["status"] = prior_status.get(d["id"], "ok")
    return copy_leaf(d["id"], d["dataset_id"], payload)


def prior_statuses(conn: Connection) -> dict[int, str]:
    """Status before deletion of every deleted copy that was not `ok` (from `deleted` events)."""
    out: dict[int, str] = {}
    for (payload,) in conn.execute(select(events.c.payload).where(events.c.type == "deleted")):
        for cid, status in (orjson.loads(payload).get("prior_status") or {}).items():
            out[int(cid)] = status
    return out


def batch_mismatches(
    rows: Sequence[Any], ev_subjects: dict[str, Any], ev_payload: dict[str, Any],
    prior_status: dict[int, str],
) -> list[str]:
    """What is wrong between the table rows of a batch and its event (empty when they agree)."""
    first, last = ev_subjects["first_copy_id"], ev_subjects["last_copy_id"]
    problems = []
    ids = [r.id for r in rows]
    missing = sorted(set(range(first, last + 1)) - set(ids))
    if missing:
        problems += [f"copy {cid} it records is missing from the table" for cid in missing[:20]]
        return problems
    leaves = [row_leaf(r, prior_status) for r in rows]
    for r in rows:
        if r.dataset_id != ev_subjects.get("dataset_id"):
            problems.append(f"copy {r.id}: table differs from its ingested event in ['dataset']")
    got = batch_payload(leaves)
    if got["copies_root"] == ev_payload.get("copies_root") and not problems:
        return []
    recorded = ev_payload.get("leaf_prefixes", "")
    width = PREFIX_BYTES * 2
    named = False
    for i, r in enumerate(rows):
        mine = got["leaf_prefixes"][i * width : (i + 1) * width]
        if recorded[i * width : (i + 1) * width] != mine:
            problems.append(f"copy {r.id}: table differs from its ingested batch event")
            named = True
    if not named:
        problems.append(
            f"copies {first}..{last}: the table does not give the Merkle root of their ingested "
            "batch event"
        )
    return problems


def copy_proof(conn: Connection, copy_id: int) -> dict[str, Any] | None:
    """The copy's leaf and audit path inside its batch event (None for a copy recorded by an
    event of its own, as libraries before batches did)."""
    return batch_proofs(conn, [copy_id]).get(copy_id)


def batch_proofs(conn: Connection, copy_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """`copy_proof` for many copies; each batch's leaves are computed once, however many of
    its copies are asked for."""
    wanted: dict[int, list[int]] = {}
    for i in range(0, len(copy_ids), 500):
        q = select(copies.c.id, copies.c.event_seq).where(copies.c.id.in_(copy_ids[i : i + 500]))
        for cid, seq in conn.execute(q):
            wanted.setdefault(seq, []).append(cid)
    out: dict[int, dict[str, Any]] = {}
    prior: dict[int, str] | None = None
    for seq, cids in sorted(wanted.items()):
        ev = conn.execute(select(events).where(events.c.seq == seq)).first()
        subjects = orjson.loads(ev.subjects) if ev is not None else {}
        if not is_batch(subjects):
            continue
        first, last = subjects["first_copy_id"], subjects["last_copy_id"]
        rows = conn.execute(
            select(copies).where(copies.c.id >= first, copies.c.id <= last).order_by(copies.c.id)
        ).all()
        if prior is None and any(r.status == "deleted" for r in rows):
            prior = prior_statuses(conn)
        leaves = [row_leaf(r, prior or {}) for r in rows]
        hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        root = bytes.fromhex(orjson.loads(ev.payload)["copies_root"])
        for cid in cids:
            index = cid - first
            if not 0 <= index < len(leaves):
                continue
            path = merkle.inclusion_path(hashes, index)
            out[cid] = {
                "event_seq": seq,
                "copy_id": cid,
                "leaf": leaves[index].decode(),
                "leaf_hash": hashes[index].hex(),
                "leaf_index": index,
                "batch_size": len(leaves),
                "copies_root": root.hex(),
                "path": [p.hex() for p in path],
                "verified": merkle.verify_inclusion(index, len(leaves), hashes[index], path, root),
                "how_to_verify": (
                    "leaf_hash = SHA-256(0x00 || leaf); fold the path per RFC 9162 section "
                    "2.1.3.2 to copies_root, which is in the payload of the ingested event "
                    "event_seq; that event's own inclusion proof ties it to a signed tree head"
                ),
            }
    return out


def prove_copy(
    conn: Connection, ref: str | int, checkpoint_id: int | None = None
) -> dict[str, Any]:
    """That a copy's ingest is in a checkpointed tree: its ingested event's inclusion proof and,
    for a batch event, the copy's path inside the batch."""
    from copytrail.catalog.queries import find_copy
    from copytrail.ledger.checkpoint import prove

    c = find_copy(conn, ref)
    proof = prove(conn, c["event_seq"], checkpoint_id)
    batch = copy_proof(conn, c["id"])
    verified = proof["verified"] and (batch is None or batch["verified"])
    return {"copy_id": c["id"], "event": proof, "in_batch": batch, "verified": verified}
