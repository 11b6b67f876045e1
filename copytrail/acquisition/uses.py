"""Every use the ledger records of a copy, or of a dataset's copies: the corpora that included or
excluded them, the training runs that read them and the models those made, the audits that found
works in them, their deletion, and the purpose they were kept for."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import func, select

from copytrail.build.trace import dataset_copy_ids, trace_copies
from copytrail.catalog.queries import find_copy, purpose_of_datasets
from copytrail.catalog.schema import audits, copies, matches, works_lists
from copytrail.context import Context
from copytrail.errors import InvalidInput
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import utc_now
from copytrail.ledger.schema import events

CHUNK = 5000


def uses(ctx: Context, copy: str | int | None = None, dataset: str | None = None) -> dict[str, Any]:
    if (copy is None) == (dataset is None):
        raise InvalidInput("name one: --copy ID or --dataset D")
    if copy is not None:
        with read_connection(ctx.db) as conn:
            c = find_copy(conn, copy)
        ids, label = [c["id"]], {"copy": c["id"], "path": c["path"], "dataset": c["dataset"]}
    else:
        ids, label = dataset_copy_ids(ctx, dataset), {"dataset": dataset}
    traced = trace_copies(ctx, ids, label)
    audited: dict[int, dict[str, Any]] = {}
    with read_connection(ctx.db) as conn:
        for i in range(0, len(ids), CHUNK):
            part = ids[i : i + CHUNK]
            q = (
                select(
                    matches.c.audit_id,
                    works_lists.c.name,
                    audits.c.time,
                    func.count().label("matches"),
                    func.count(func.distinct(matches.c.work_pk)).label("works"),
                    func.count(func.distinct(matches.c.copy_id)).label("copies"),
                )
                .join(audits, audits.c.id == matches.c.audit_id)
                .join(works_lists, works_lists.c.id == audits.c.list_id)
                .where(matches.c.copy_id.in_(part))
                .group_by(matches.c.audit_id, works_lists.c.name, audits.c.time)
            )
            for r in conn.execute(q):
                a = audited.setdefault(
                    r.audit_id,
                    {
                        "audit_id": r.audit_id,
                        "works_list": r.name,
                        "time": r.time,
                        "matches": 0,
                        "works": 0,
                        "copies": 0,
                    },
                )
                a["matches"] += r.matches
                a["works"] += r.works  # a work matched in two chunks counts twice: rare, noted
                a["copies"] += r.copies
        wanted = set(ids)
        deleted = []
        for e in conn.execute(
            select(events.c.seq, events.c.time, events.c.subjects).where(events.c.type == "deleted")
        ):
            hit = wanted.intersection(orjson.loads(e.subjects).get("copy_ids", []))
            if hit:
                deleted.append({"event_seq": e.seq, "time": e.time, "copies": len(hit)})
        kept = {}
        for i in range(0, len(ids), CHUNK):
            for r in conn.execute(
                select(copies.c.dataset_id, func.count(), func.min(copies.c.created))
                .where(copies.c.id.in_(ids[i : i + CHUNK]))
                .where(copies.c.status != "deleted")
                .group_by(copies.c.dataset_id)
            ):
                k = kept.setdefault(r[0], [0, r[2]])
                k[0] += r[1]
                k[1] = min(k[1], r[2])
        purpose = purpose_of_datasets(conn, utc_now())
    return {
        **label,
        "copies": len(ids),
        "included_in": [
            {k: c[k] for k in ("corpus", "included", "excluded", "tokens", "shards", "runs")}
            for c in traced["corpora"]
        ],
        "excluded_by_rule": {
            rule: sum(c["excluded_by_rule"].get(rule, 0) for c in traced["corpora"])
            for rule in sorted({r for c in traced["corpora"] for r in c["excluded_by_rule"]})
        },
        "models": traced["models"],
        "audited": sorted(audited.values(), key=lambda a: a["audit_id"]),
        "deleted": deleted,
        "kept": [
            {"dataset_id": d, "copies": n, "since": since, "purpose": purpose.get(d)}
            for d, (n, since) in sorted(kept.items())
        ],
        "inclusions": sum(c["included"] for c in traced["corpora"]),
    }
