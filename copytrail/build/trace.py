"""Training runs, and tracing data through corpora to models and back.

Forward: a copy (or a work's copies, or a dataset) -> the corpora that included it, the shards,
the runs that read those shards, the models. Backward: a model -> its runs' corpora -> the tokens
by dataset, source and source kind ("12% of this model's tokens came from shadow-library
sources"). A date answers "which models could have used data received after it".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import and_, insert, select

from copytrail.catalog.digest import READ_COLUMNS, rows_digest, sort_key
from copytrail.catalog.queries import COPY_FROM, dataset_id, find_copy
from copytrail.catalog.records import checked_iso, dataset_label, next_id
from copytrail.catalog.schema import (
    copies,
    corpora,
    corpus_docs,
    datasets,
    run_reads,
    runs,
    sources,
)
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now


def record_run(
    ctx: Context,
    model: str,
    corpus: str,
    shards: list[int] | None = None,
    started: str | None = None,
    finished: str | None = None,
    notes: str | None = None,
    reads: list[dict[str, int]] | None = None,
    model_sha256: str | None = None,
    training: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Record that `model` was trained on `corpus` (all shards, or the ones listed). A trainer
    that knows exactly what it read passes `reads`: (shard, token_start, token_end, times)
    intervals, kept in run_reads and committed to by the event's row digest."""
    if not model.strip():
        raise InvalidInput("name the model, e.g. --model acme-7b-v2")
    started, finished = checked_iso(started, "--started"), checked_iso(finished, "--finished")
    with write_transaction(ctx.db) as conn:
        c = conn.execute(select(corpora).where(corpora.c.name == corpus)).first()
        if c is None:
            raise NotFound(f"no corpus {corpus!r}; see `copytrail corpus show NAME`")
        n_shards = len(json.loads(Path(c.path, "manifest.json").read_text())["shards"])
        if shards is not None:
            bad = [s for s in shards if not 0 <= s < n_shards]
            if bad:
                raise InvalidInput(f"corpus {corpus!r} has shards 0..{n_shards - 1}, not {bad}")
            shards = sorted(set(shards))
        run_id = next_id(conn, runs.c.id)
        ev = EventWriter(conn, ctx.actor)
        payload: dict[str, Any] = {
            "corpus": corpus,
            "manifest_sha256": c.manifest_sha256,
            "shards": shards,
            "started": started,
            "finished": finished,
            "notes": notes,
        }
        read_rows = []
        if reads is not None:
            read_rows = sorted(
                ({"run_id": run_id, **{k: int(r[k]) for k in READ_COLUMNS}} for r in reads),
                key=sort_key("run_reads"),
            )
            if any(r["shard"] not in range(n_shards) for r in read_rows):
                raise InvalidInput("a read names a shard the corpus does not have")
            payload["reads_sha256"] = rows_digest(read_rows, READ_COLUMNS)
            payload["tokens_read"] = sum(
                (r["token_end"] - r["token_start"]) * r["times"] for r in read_rows
            )
        if model_sha256:
            payload["model_sha256"] = model_sha256
        if training:
            payload["training"] = training
        seq = ev.append("trained", {"run_id": run_id, "model": model, "corpus_id": c.id}, payload)
        ev.flush()
        row = {
            "id": run_id,
            "model": model,
            "corpus_id": c.id,
            "shards": json.dumps(shards) if shards is not None else None,
            "started": started,
            "finished": finished,
            "notes": notes,
            "created": utc_now(),
            "actor": ctx.actor,
            "event_seq": seq,
        }
        conn.execute(insert(runs), [row])
        for i in range(0, len(read_rows), 5000):
            conn.execute(insert(run_reads), read_rows[i : i + 5000])
    return {**row, "corpus": corpus, "shards": shards, "model_sha256": model_sha256}


def _runs_by_corpus(conn: Any) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    q = select(runs, corpora.c.name.label("corpus")).join(corpora).order_by(runs.c.id)
    for r in conn.execute(q):
        d = r._asdict()
        d["shards"] = json.loads(d["shards"]) if d["shards"] else None
        out.setdefault(d["corpus_id"], []).append(d)
    return out


def _doc_query() -> Any:
    return (
        select(
            corpus_docs.c.copy_id,
            corpus_docs.c.fate,
            corpus_docs.c.rule,
            corpus_docs.c.kept_copy_id,
            corpus_docs.c.shard,
            corpus_docs.c.token_start,
            corpus_docs.c.token_end,
            corpora.c.id.label("corpus_id"),
            corpora.c.name.label("corpus"),
        )
        .join(corpora, corpora.c.id == corpus_docs.c.corpus_id)
        .order_by(corpora.c.id, corpus_docs.c.copy_id)
    )


def trace_copies(ctx: Context, copy_ids: list[int], label: dict[str, Any]) -> dict[str, Any]:
    """Forward trace of a set of copies: corpora, shards, runs, models."""
    with read_connection(ctx.db) as conn:
        by_corpus = _runs_by_corpus(conn)
        per_corpus: dict[str, dict[str, Any]] = {}
        for i in range(0, len(copy_ids), 5000):
            part = copy_ids[i : i + 5000]
            for d in conn.execute(_doc_query().where(corpus_docs.c.copy_id.in_(part))):
                c = per_corpus.setdefault(
                    d.corpus,
                    {
                        "corpus": d.corpus,
                        "included": 0,
                        "excluded": 0,
                        "tokens": 0,
                        "shards": set(),
                        "excluded_by_rule": {},
                        "corpus_id": d.corpus_id,
                    },
                )
                if d.fate == "included":
                    c["included"] += 1
                    c["tokens"] += d.token_end - d.token_start
                    c["shards"].add(d.shard)
                else:
                    c["excluded"] += 1
                    c["excluded_by_rule"][d.rule] = c["excluded_by_rule"].get(d.rule, 0) + 1
    models: set[str] = set()
    out_corpora = []
    for c in per_corpus.values():
        used = []
        for run in by_corpus.get(c["corpus_id"], []):
            read = c["shards"] if run["shards"] is None else c["shards"] & set(run["shards"])
            if read:
                used.append({"run_id": run["id"], "model": run["model"], "shards": sorted(read)})
                models.add(run["model"])
        c["shards"] = sorted(c["shards"])
        c["runs"] = used
        del c["corpus_id"]
        out_corpora.append(c)
    return {**label, "copies": len(copy_ids), "corpora": out_corpora, "models": sorted(models)}


def trace_model(ctx: Context, model: str) -> dict[str, Any]:
    """Backward trace: the model's runs, corpora, and its tokens by dataset, source and kind."""
    with read_connection(ctx.db) as conn:
        model_runs = [r for rs in _runs_by_corpus(conn).values() for r in rs if r["model"] == model]
        if not model_runs:
            raise NotFound(f"no run recorded for model {model!r}; see `copytrail run record`")
        totals: dict[str, dict[str, int]] = {"dataset": {}, "source": {}, "source_kind": {}}
        all_tokens = 0
        copies_read: dict[int, dict[str, Any]] = {}
        corpora_used = []
        for run in model_runs:
            q = (
                select(
                    corpus_docs.c.copy_id,
                    corpus_docs.c.token_start,
                    corpus_docs.c.token_end,
                    corpus_docs.c.shard,
                    datasets.c.name,
                    datasets.c.version,
                    sources.c.name.label("source"),
                    sources.c.kind,
                )
                .select_from(corpus_docs.join(COPY_FROM, copies.c.id == corpus_docs.c.copy_id))
                .where(
                    and_(
                        corpus_docs.c.corpus_id == run["corpus_id"],
                        corpus_docs.c.fate == "included",
                    )
                )
            )
            if run["shards"] is not None:
                q = q.where(corpus_docs.c.shard.in_(run["shards"]))
            run_tokens = 0
            reads = _reads_of(conn, run["id"])
            for d in conn.execute(q):
                n = d.token_end - d.token_start
                run_tokens += n
                if reads is not None:
                    seen, token_reads, times = _seen(reads.get(d.shard), d.token_start, d.token_end)
                    if seen:
                        r = copies_read.setdefault(
                            d.copy_id,
                            {"copy_id": d.copy_id, "dataset": dataset_label(d.name, d.version),
                             "tokens": n, "tokens_seen": 0, "token_reads": 0, "max_times": 0,
                             "runs": []},
                        )  # fmt: skip
                        r["tokens_seen"] = max(r["tokens_seen"], seen)
                        r["token_reads"] += token_reads
                        r["max_times"] = max(r["max_times"], times)
                        r["runs"].append(run["id"])
                for key, val in (
                    ("dataset", dataset_label(d.name, d.version)),
                    ("source", d.source),
                    ("source_kind", d.kind),
                ):
                    totals[key][val] = totals[key].get(val, 0) + n
            all_tokens += run_tokens
            corpora_used.append(
                {
                    "run_id": run["id"],
                    "corpus": run["corpus"],
                    "shards": run["shards"],
                    "tokens": run_tokens,
                    "started": run["started"],
                    "finished": run["finished"],
                    "reads_recorded": reads is not None,
                }
            )

    def shares(key: str) -> list[dict[str, Any]]:
        return [
            {key: k, "tokens": v, "share": round(v / all_tokens, 4) if all_tokens else 0.0}
            for k, v in sorted(totals[key].items(), key=lambda kv: -kv[1])
        ]

    return {
        "model": model,
        "tokens": all_tokens,
        "runs": corpora_used,
        "by_source_kind": shares("source_kind"),
        "by_source": shares("source"),
        "by_dataset": shares("dataset"),
        # Runs that recorded their reads (`copytrail train`): each copy whose tokens the model
        # saw, how many of its tokens, and at most how many times.
        "copies_read": [copies_read[k] for k in sorted(copies_read)],
    }


def _reads_of(conn: Any, run_id: int) -> dict[int, tuple[Any, Any, Any]] | None:
    """shard -> (starts, ends, times) arrays of a run's recorded reads; None if none recorded."""
    import numpy as np

    rows = conn.execute(
        select(run_reads.c.shard, run_reads.c.token_start, run_reads.c.token_end, run_reads.c.times)
        .where(run_reads.c.run_id == run_id)
        .order_by(run_reads.c.shard, run_reads.c.token_start)
    ).all()
    if not rows:
        return None
    by: dict[int, list] = {}
    for r in rows:
        by.setdefault(r.shard, []).append((r.token_start, r.token_end, r.times))
    return {s: tuple(np.asarray(col) for col in zip(*v, strict=True)) for s, v in by.items()}


def _seen(reads: tuple[Any, Any, Any] | None, start: int, end: int) -> tuple[int, int, int]:
    """Of tokens [start, end): how many were read, how many token reads fell there, and the
    most times any one was read."""
    if reads is None:
        return 0, 0, 0
    import numpy as np

    starts, ends, times = reads
    lo, hi = np.searchsorted(ends, start, "right"), np.searchsorted(starts, end, "left")
    if hi <= lo:
        return 0, 0, 0
    overlap = np.minimum(ends[lo:hi], end) - np.maximum(starts[lo:hi], start)
    keep = overlap > 0
    t = times[lo:hi][keep]
    return int(overlap[keep].sum()), int((overlap[keep] * t).sum()), int(t.max(initial=0))


def models_after(ctx: Context, date: str) -> dict[str, Any]:
    """Models whose runs read copies received (ingested, or acquired per their source) on or
    after `date`, with how many such copies and tokens."""
    checked_iso(date, "--received-after")
    with read_connection(ctx.db) as conn:
        by_corpus = _runs_by_corpus(conn)
        q = (
            select(
                corpus_docs.c.corpus_id,
                corpus_docs.c.shard,
                corpus_docs.c.token_start,
                corpus_docs.c.token_end,
                copies.c.id,
            )
            .select_from(corpus_docs.join(COPY_FROM, copies.c.id == corpus_docs.c.copy_id))
            .where(
                and_(
                    corpus_docs.c.fate == "included",
                    (copies.c.created >= date) | (sources.c.acquired >= date),
                )
            )
        )
        found: dict[str, dict[str, Any]] = {}
        for d in conn.execute(q):
            for run in by_corpus.get(d.corpus_id, []):
                if run["shards"] is not None and d.shard not in run["shards"]:
                    continue
                m = found.setdefault(
                    run["model"], {"model": run["model"], "copies": set(), "tokens": 0}
                )
                if d.id not in m["copies"]:
                    m["copies"].add(d.id)
                    m["tokens"] += d.token_end - d.token_start
    return {
        "received_after": date,
        "models": [
            {"model": m["model"], "copies": len(m["copies"]), "tokens": m["tokens"]}
            for m in sorted(found.values(), key=lambda m: m["model"])
        ],
    }


def work_copy_ids(ctx: Context, work_id: str, list_name: str | None) -> list[int]:
    """Copies audits matched to a work (exact, near-duplicate, partial, identifiers)."""
    from copytrail.audit.run import work

    w = work(ctx, work_id, list_name)
    return sorted({m["copy_id"] for m in w["matches"] if m["method"] != "metadata"})


def dataset_copy_ids(ctx: Context, ref: str) -> list[int]:
    with read_connection(ctx.db) as conn:
        ds = dataset_id(conn, ref)
        return [r.id for r in conn.execute(select(copies.c.id).where(copies.c.dataset_id == ds))]


def trace(
    ctx: Context,
    copy: str | int | None = None,
    work: str | None = None,
    works_list: str | None = None,
    dataset: str | None = None,
    model: str | None = None,
    received_after: str | None = None,
) -> dict[str, Any]:
    """Trace exactly one thing: a copy, a work, a dataset (forward), a model (backward), or
    the models that read data received after a date."""
    given = [x is not None for x in (copy, work, dataset, model, received_after)]
    if sum(given) != 1:
        raise InvalidInput(
            "trace one thing: --copy ID, --work ID, --dataset D, --model NAME "
            "or --received-after DATE"
        )
    if model is not None:
        return trace_model(ctx, model)
    if received_after is not None:
        return models_after(ctx, received_after)
    if copy is not None:
        with read_connection(ctx.db) as conn:
            c = find_copy(conn, copy)
        return trace_copies(ctx, [c["id"]], {"copy": c["id"], "path": c["path"]})
    if work is not None:
        ids = work_copy_ids(ctx, work, works_list)
        return trace_copies(ctx, ids, {"work": work, "copy_ids": ids})
    return trace_copies(ctx, dataset_copy_ids(ctx, dataset), {"dataset": dataset})
