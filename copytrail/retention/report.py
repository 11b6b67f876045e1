"""`copytrail retention report`: copies kept but never used for training (the "central library"
question), and what each retention rule would delete or flag today.

Rules file (TOML):

    [[rule]]
    name = "shadow-library originals"
    source_kind = "shadow-library"          # optional filters: source_kind, source, dataset
    delete_after_last_inclusion_days = 30   # originals go N days after their last build

    [[rule]]
    name = "never used"
    flag_never_included_after_days = 180    # held N days and never in any build
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from copytrail.catalog.queries import (
    DATASET_NAME,
    DATASET_VERSION,
    copy_rows,
    labelled,
    purpose_of_datasets,
)
from copytrail.catalog.schema import copies, corpora, corpus_docs, sources
from copytrail.context import Context
from copytrail.errors import InvalidInput
from copytrail.ledger.db import read_connection
from copytrail.retention.holds import held_copies

RULE_KEYS = {
    "name",
    "source_kind",
    "source",
    "dataset",
    "delete_after_last_inclusion_days",
    "flag_never_included_after_days",
}
LISTED = 200  # copies listed per group; counts are always exact


def load_rules(path: str | Path) -> list[dict[str, Any]]:
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise InvalidInput(f"cannot read retention rules {p}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise InvalidInput(f"retention rules {p}: not valid TOML ({e})") from e
    rules = raw.get("rule", [])
    if not rules:
        raise InvalidInput(f"retention rules {p}: no [[rule]] tables")
    for i, r in enumerate(rules):
        unknown = set(r) - RULE_KEYS
        if unknown:
            raise InvalidInput(f"rule {i + 1}: unknown key(s) {sorted(unknown)}")
        actions = {"delete_after_last_inclusion_days", "flag_never_included_after_days"} & set(r)
        if len(actions) != 1:
            raise InvalidInput(
                f"rule {i + 1}: give one of delete_after_last_inclusion_days or "
                "flag_never_included_after_days"
            )
        r.setdefault("name", f"rule {i + 1}")
    return rules


def _parse_time(value: str) -> datetime:
    t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def retention_report(
    ctx: Context, rules_path: str | Path | None = None, as_of: str | None = None
) -> dict[str, Any]:
    rules = load_rules(rules_path) if rules_path else []
    try:
        now = _parse_time(as_of) if as_of else datetime.now(UTC)
    except ValueError as e:
        raise InvalidInput(f"--as-of {as_of!r} is not an ISO date") from e
    with read_connection(ctx.db) as conn:
        last_inclusion = dict(
            conn.execute(
                select(corpus_docs.c.copy_id, func.max(corpora.c.created))
                .join(corpora, corpora.c.id == corpus_docs.c.corpus_id)
                .where(corpus_docs.c.fate == "included")
                .group_by(corpus_docs.c.copy_id)
            ).all()
        )
        rows = [
            labelled(r)
            for r in conn.execute(
                copy_rows(
                    copies.c.id,
                    copies.c.dataset_id,
                    copies.c.created,
                    copies.c.size,
                    copies.c.path,
                    DATASET_NAME,
                    DATASET_VERSION,
                    sources.c.name.label("source"),
                    sources.c.kind,
                )
                .where(copies.c.status != "deleted")
                .order_by(copies.c.id)
            )
        ]
        held = held_copies(conn, [r["id"] for r in rows])
        purpose = purpose_of_datasets(conn, now.isoformat())
    for r in rows:
        r["last_inclusion"] = last_inclusion.get(r["id"])
    never = [r for r in rows if r["last_inclusion"] is None]
    by_group: dict[tuple[str, str], list[int]] = {}
    by_purpose: dict[str, dict[str, Any]] = {}
    for r in never:
        g = by_group.setdefault((r["dataset"], r["kind"]), [0, 0])
        g[0] += 1
        g[1] += r["size"] or 0
        p = by_purpose.setdefault(
            purpose.get(r["dataset_id"], "undeclared"),
            {"copies": 0, "bytes": 0, "kept_since": r["created"]},
        )
        p["copies"] += 1
        p["bytes"] += r["size"] or 0
        p["kept_since"] = min(p["kept_since"], r["created"])
    out_rules = []
    for rule in rules:
        matched = [
            r
            for r in rows
            if all(
                rule.get(k) is None or rule[k] == r[col]
                for k, col in (
                    ("source_kind", "kind"),
                    ("source", "source"),
                    ("dataset", "dataset"),
                )
            )
        ]
        if "delete_after_last_inclusion_days" in rule:
            limit = timedelta(days=rule["delete_after_last_inclusion_days"])
            due = [
                r
                for r in matched
                if r["last_inclusion"] and now - _parse_time(r["last_inclusion"]) >= limit
            ]
            action = "delete"
        else:
            limit = timedelta(days=rule["flag_never_included_after_days"])
            due = [
                r
                for r in matched
                if r["last_inclusion"] is None and now - _parse_time(r["created"]) >= limit
            ]
            action = "flag"
        blocked = [r for r in due if r["id"] in held]
        free = [r for r in due if r["id"] not in held]
        out_rules.append(
            {
                "rule": rule["name"],
                "action": action,
                "copies": len(free),
                "bytes": sum(r["size"] or 0 for r in free),
                "held": len(blocked),
                "holds": sorted({h["id"] for r in blocked for h in held[r["id"]]}),
                "listed": [
                    {k: r[k] for k in ("id", "dataset", "path", "kind", "last_inclusion")}
                    for r in free[:LISTED]
                ],
            }
        )
    return {
        "as_of": now.isoformat(),
        "copies": len(rows),
        "never_included": len(never),
        "never_included_by": [
            {"dataset": d, "source_kind": k, "copies": n, "bytes": b}
            for (d, k), (n, b) in sorted(by_group.items())
        ],
        # Kept with no training use, by the purpose declared for them, and for how long.
        "never_included_by_purpose": [
            {
                "purpose": k,
                **v,
                "kept_days": (now - _parse_time(v["kept_since"])).days,
            }
            for k, v in sorted(by_purpose.items())
        ],
        "rules": out_rules,
    }
