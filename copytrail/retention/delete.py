"""`copytrail delete`: remove copies with proof.

Order of work, so that a kill at any point is finished by running the command again:
1. refuse, deleting nothing, when an active hold covers any selected copy;
2. one transaction marks the copies deleted and appends the `deleted` event;
3. the blobs (original and text) no live copy or work still names are removed, as are the shards
   of corpora that included the copies (tainted), and guard indexes are refreshed;
4. with `rebuild`, each tainted corpus is rebuilt under its own policy without them;
5. a checkpoint is made and the certificate (JSON and text) holds the copies, their hashes, what
   was removed and kept (shared), the derived artifacts, the events and the Merkle tree head
   with the inclusion proof of the deletion event.
A rerun first finishes step 3 for every copy already marked deleted.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from sqlalchemy import and_, insert, select, update

from copytrail.build.run import build_corpus
from copytrail.build.tokenizer import file_sha256
from copytrail.catalog.queries import copy_context, copy_rows, dataset_id, find_copy
from copytrail.catalog.records import next_id
from copytrail.catalog.schema import (
    copies,
    corpora,
    corpus_docs,
    deletions,
    sources,
    works,
)
from copytrail.context import Context
from copytrail.errors import Conflict, InvalidInput, NotFound
from copytrail.guard import scope as guard_scope
from copytrail.ledger.checkpoint import make_checkpoint, prove
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, append_event, utc_now
from copytrail.retention.holds import held_copies


def select_copies(
    ctx: Context, dataset: str | None, source: str | None, copies_file: str | None
) -> list[int]:
    if sum(x is not None for x in (dataset, source, copies_file)) != 1:
        raise InvalidInput("delete one selection: --dataset D, --source S or --copies FILE")
    with read_connection(ctx.db) as conn:
        if dataset is not None:
            ds = dataset_id(conn, dataset)
            q = select(copies.c.id).where(copies.c.dataset_id == ds)
        elif source is not None:
            if conn.execute(select(sources.c.id).where(sources.c.name == source)).first() is None:
                raise NotFound(f"no source {source!r}; see `copytrail ls sources`")
            q = copy_rows(copies.c.id).where(sources.c.name == source)
        else:
            q = None
        if q is not None:
            return [r.id for r in conn.execute(q.where(copies.c.status != "deleted"))]
    try:
        lines = Path(copies_file).read_text().split()  # type: ignore[arg-type]
    except OSError as e:
        raise InvalidInput(f"cannot read {copies_file}: {e.strerror}") from e
    ids = []
    with read_connection(ctx.db) as conn:
        for ref in lines:
            c = find_copy(conn, ref)
            if c["status"] != "deleted":
                ids.append(c["id"])
    return sorted(set(ids))


def _live_blobs(conn: Any, candidates: set[str]) -> set[str]:
    """Of the candidate blobs, those a present copy or a works list still names."""
    live: set[str] = set()
    cand = sorted(candidates)
    for i in range(0, len(cand), 500):
        part = cand[i : i + 500]
        for col in (copies.c.sha256, copies.c.text_sha256):
            q = select(col).where(and_(col.in_(part), copies.c.status != "deleted"))
            live.update(r[0] for r in conn.execute(q))
        for col in (works.c.text_sha256, works.c.text_source_sha256):
            live.update(r[0] for r in conn.execute(select(col).where(col.in_(part))))
    return live


def _remove_blobs(ctx: Context, copy_ids: list[int] | None) -> tuple[list[str], list[str]]:
    """Remove the blobs of deleted copies (these, or all deleted ones) no one else names.
    Returns (removed, kept because shared)."""
    with read_connection(ctx.db) as conn:
        q = select(copies.c.sha256, copies.c.text_sha256).where(copies.c.status == "deleted")
        if copy_ids is not None:
            q = q.where(copies.c.id.in_(copy_ids))
        blobs = {b for r in conn.execute(q) for b in r if b}
        shared = _live_blobs(conn, blobs)
    removed = sorted(blobs - shared)
    # One call: each pack holding any of them is rewritten once, not once per blob.
    ctx.store.remove_many(removed)
    return removed, sorted(shared)


def _tainted(conn: Any, copy_ids: list[int]) -> list[dict[str, Any]]:
    found: dict[int, dict[str, Any]] = {}
    q = (
        select(corpora.c.id, corpora.c.name, corpora.c.path, corpus_docs.c.shard)
        .join(corpus_docs, corpus_docs.c.corpus_id == corpora.c.id)
        .where(and_(corpus_docs.c.copy_id.in_(copy_ids), corpus_docs.c.fate == "included"))
    )
    for r in conn.execute(q):
        c = found.setdefault(r.id, {"corpus": r.name, "path": r.path, "shards": set()})
        c["shards"].add(r.shard)
    out = []
    for c in found.values():
        manifest = json.loads((Path(c["path"]) / "manifest.json").read_text())
        c["policy"] = manifest["policy"]
        c["shards"] = [
            {k: manifest["shards"][n][k] for k in ("file", "sha256", "index", "index_sha256")}
            | {"shard": n}
            for n in sorted(c["shards"])
        ]
        out.append(c)
    return out


def delete_copies(
    ctx: Context,
    reason: str,
    dataset: str | None = None,
    source: str | None = None,
    copies_file: str | None = None,
    rebuild: bool = False,
    keep_derived: bool = False,
) -> dict[str, Any]:
    if not reason.strip():
        raise InvalidInput("say why: --reason 'takedown notice 2026-114'")
    _remove_blobs(ctx, None)  # finish a deletion an earlier run was killed in the middle of
    ids = select_copies(ctx, dataset, source, copies_file)
    if not ids:
        raise NotFound("nothing to delete: the selection holds no present copy")
    with write_transaction(ctx.db) as conn:
        held = held_copies(conn, ids)
        if held:
            hs = {h["id"]: h for hs in held.values() for h in hs}
            names = "; ".join(
                f"hold #{h['id']} ({h['matter']}, {h['scope']} {h['ref']})" for h in hs.values()
            )
            raise Conflict(
                f"{len(held)} of the {len(ids)} copies are under legal hold: {names}. Nothing was "
                "deleted; release the hold (copytrail hold release ID) or narrow the selection"
            )
        # The same per-copy context audit evidence uses (dataset, path, hashes).
        context = copy_context(conn, ids)
        listed = [
            {
                "id": cid,
                "dataset": context[cid]["dataset"],
                "path": context[cid]["path"],
                "sha256": context[cid]["copy_sha256"],
                "text_sha256": context[cid]["text_sha256"],
            }
            for cid in sorted(ids)
        ]
        listing = hashlib.sha256(json.dumps(listed, sort_keys=True).encode()).hexdigest()
        tainted = _tainted(conn, ids)
        deletion_id = next_id(conn, deletions.c.id)
        cert_dir = ctx.root / "certificates"
        cert_path = cert_dir / f"deletion-{deletion_id}.json"
        ev = EventWriter(conn, ctx.actor)
        seq = ev.append(
            "deleted",
            {"deletion_id": deletion_id, "copy_ids": ids},
            {
                "reason": reason,
                "copies": len(ids),
                "copies_sha256": listing,
                "tainted_corpora": [c["corpus"] for c in tainted],
                # a batch event's leaf holds the status at ingest (catalog/batches.py)
                "prior_status": {
                    str(cid): context[cid]["status"]
                    for cid in ids
                    if context[cid].get("status", "ok") != "ok"
                },
            },
        )
        ev.flush()
        for i in range(0, len(ids), 5000):
            conn.execute(
                update(copies).where(copies.c.id.in_(ids[i : i + 5000])).values(status="deleted")
            )
        conn.execute(
            insert(deletions),
            [
                {
                    "id": deletion_id,
                    "reason": reason,
                    "copies": len(ids),
                    "certificate": str(cert_path),
                    "created": utc_now(),
                    "actor": ctx.actor,
                    "event_seq": seq,
                }
            ],
        )
    removed, shared = _remove_blobs(ctx, ids)
    derived_removed = []
    if not keep_derived:
        for c in tainted:
            for s in c["shards"]:
                for f in (s["file"], s["index"]):
                    p = Path(c["path"]) / f
                    if p.exists():
                        p.unlink()
                derived_removed.append(f"{c['corpus']}/{s['file']}")
    guards_refreshed = []
    gone_texts = {c["text_sha256"] for c in listed if c["text_sha256"]}
    for g in guard_scope.list_guards(ctx):
        if gone_texts & guard_scope.open_guard(ctx, g["name"]).texts():
            r = guard_scope.build(ctx, g["name"])
            guards_refreshed.append({"guard": g["name"], "removed_texts": r["removed"]})
    rebuilt = []
    if rebuild:
        for c in tainted:
            rebuilt.append(_rebuild(ctx, c, deletion_id))
    with write_transaction(ctx.db) as conn:
        head = make_checkpoint(conn, ctx.actor)
    with read_connection(ctx.db) as conn:
        proof = prove(conn, seq)
    certificate = {
        "certificate": "copytrail deletion",
        "deletion_id": deletion_id,
        "reason": reason,
        "actor": ctx.actor,
        "time": utc_now(),
        "copies": listed,
        "copies_sha256": listing,
        "blobs_removed": removed,
        "blobs_kept_shared": shared,
        "tainted_corpora": [
            {k: c[k] for k in ("corpus", "path", "shards", "policy")} for c in tainted
        ],
        "derived_files_removed": derived_removed,
        "guards_refreshed": guards_refreshed,
        "rebuilt": rebuilt,
        "event": {"seq": seq, "type": "deleted"},
        "tree_head": head,
        "inclusion_proof": proof,
    }
    cert_dir.mkdir(parents=True, exist_ok=True)
    body = json.dumps(certificate, indent=2, default=str).encode()
    cert_path.write_bytes(body)
    cert_path.with_suffix(".txt").write_text(_readable(certificate))
    proof_path = cert_path.with_suffix(".proof.json")
    proof_path.write_text(json.dumps(proof, indent=2))
    append_event(
        ctx.db,
        ctx.actor,
        "produced",
        {"deletion_id": deletion_id},
        {
            "artifact": "deletion-certificate",
            "path": str(cert_path.resolve()),
            "sha256": hashlib.sha256(body).hexdigest(),
        },
    )
    return {**certificate, "certificate_path": str(cert_path)}


def _rebuild(ctx: Context, corpus: dict[str, Any], deletion_id: int) -> dict[str, Any]:

    policy = Path(corpus["policy"]["path"])
    if not policy.is_file() or file_sha256(policy) != corpus["policy"]["sha256"]:
        return {
            "corpus": corpus["corpus"],
            "error": f"policy {policy} is gone or changed since the build; rebuild by hand",
        }
    name = f"{corpus['corpus']}-d{deletion_id}"
    r = build_corpus(ctx, name, policy)
    return {"corpus": corpus["corpus"], "rebuilt_as": name, "manifest_sha256": r["manifest_sha256"]}


def _readable(c: dict[str, Any]) -> str:
    lines = [
        f"DELETION CERTIFICATE #{c['deletion_id']}",
        f"reason: {c['reason']}",
        f"by: {c['actor']} at {c['time']}",
        f"copies deleted: {len(c['copies'])} (list SHA-256 {c['copies_sha256']})",
    ]
    for cp in c["copies"][:200]:
        lines.append(f"  copy {cp['id']} {cp['dataset']} {cp['path']} sha256 {cp['sha256']}")
    if len(c["copies"]) > 200:
        lines.append(f"  ... and {len(c['copies']) - 200} more (see the JSON certificate)")
    lines.append(f"blobs removed: {len(c['blobs_removed'])}")
    lines.append(
        f"blobs kept because another present copy or work holds them: {len(c['blobs_kept_shared'])}"
    )
    for t in c["tainted_corpora"]:
        shards = ", ".join(s["file"] for s in t["shards"])
        lines.append(f"tainted corpus {t['corpus']}: shards {shards}")
    for f in c["derived_files_removed"]:
        lines.append(f"removed derived shard {f}")
    for g in c["guards_refreshed"]:
        lines.append(f"guard index {g['guard']} refreshed ({g['removed_texts']} texts removed)")
    for r in c["rebuilt"]:
        lines.append(f"rebuilt {r['corpus']} as {r.get('rebuilt_as', '-')} {r.get('error', '')}")
    h = c["tree_head"]
    lines += [
        f"recorded as event {c['event']['seq']}, included in Merkle tree head",
        f"  size {h['tree_size']} root {h['root_hash']} (checkpoint #{h['id']})",
        "check the inclusion proof with nothing but Python's standard library:",
        f"  copytrail verify --proof deletion-{c['deletion_id']}.proof.json",
        f"  (or: python copytrail/ledger/merkle.py deletion-{c['deletion_id']}.proof.json)",
    ]
    return "\n".join(lines) + "\n"
