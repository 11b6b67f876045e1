"""Training runs, and tracing data through corpora to models and back.

Forward: a copy (or a work's copies, or a dataset) -> the corpora that included it, the shards,
the runs that read those shards, the models. Backward: a model -> its runs' corpora -> the tokens
by dataset, source and source kind ("12% of this model's tokens came from shadow-library
sources"). A date answers "which models could have used data received after it".
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, func, insert, select

from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now
from copytrail.ledger.records import dataset_label
from copytrail.ledger.schema import copies, corpora, corpus_docs, datasets, runs, sources

if TYPE_CHECKING:
    from copytrail.library import Library


def _iso(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as e:
        raise InvalidInput(f"{what} {value!r} is not an ISO date or time, e.g. 2025-03-01") from e
    return value


def record_run(
    lib: Library,
    model: str,
    corpus: str,
    shards: list[int] | None = None,
    started: str | None = None,
    finished: str | None = None,
    notes: str | None = None,
) -> dict[str, Any]:
    """Record that `model` was trained on `corpus` (all shards, or the ones listed)."""
    if not model.strip():
        raise InvalidInput("name the model, e.g. --model acme-7b-v2")
    started, finished = _iso(started, "--started"), _iso(finished, "--finished")
    with write_transaction(lib.engine) as conn:
        c = conn.execute(select(corpora).where(corpora.c.name == corpus)).first()
        if c is None:
            raise NotFound(f"no corpus {corpus!r}; see `copytrail corpus show NAME`")
        n_shards = len(json.loads(Path(c.path, "manifest.json").read_text())["shards"])
        if shards is not None:
            bad = [s for s in shards if not 0 <= s < n_shards]
            if bad:
                raise InvalidInput(f"corpus {corpus!r} has shards 0..{n_shards - 1}, not {bad}")
            shards = sorted(set(shards))
        run_id = (conn.execute(select(func.max(runs.c.id))).scalar() or 0) + 1
        ev = EventWriter(conn, lib.actor)
        seq = ev.append(
            "trained",
            {"run_id": run_id, "model": model, "corpus_id": c.id},
            {
                "corpus": corpus,
                "manifest_sha256": c.manifest_sha256,
                "shards": shards,
                "started": started,
                "finished": finished,
                "notes": notes,
            },
        )
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
            "actor": lib.actor,
            "event_seq": seq,
        }
        conn.execute(insert(runs), [row])
    return {**row, "corpus": corpus, "shards": shards}


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


def trace_copies(lib: Library, copy_ids: list[int], label: dict[str, Any]) -> dict[str, Any]:
    """Forward trace of a set of copies: corpora, shards, runs, models."""
    with read_connection(lib.engine) as conn:
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


def trace_model(lib: Library, model: str) -> dict[str, Any]:
    """Backward trace: the model's runs, corpora, and its tokens by dataset, source and kind."""
    with read_connection(lib.engine) as conn:
        model_runs = [r for rs in _runs_by_corpus(conn).values() for r in rs if r["model"] == model]
        if not model_runs:
            raise NotFound(f"no run recorded for model {model!r}; see `copytrail run record`")
        totals: dict[str, dict[str, int]] = {"dataset": {}, "source": {}, "source_kind": {}}
        all_tokens = 0
        corpora_used = []
        for run in model_runs:
            q = (
                select(
                    corpus_docs.c.token_start,
                    corpus_docs.c.token_end,
                    corpus_docs.c.shard,
                    datasets.c.name,
                    datasets.c.version,
                    sources.c.name.label("source"),
                    sources.c.kind,
                )
                .join(copies, copies.c.id == corpus_docs.c.copy_id)
                .join(datasets, datasets.c.id == copies.c.dataset_id)
                .join(sources, sources.c.id == datasets.c.source_id)
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
            for d in conn.execute(q):
                n = d.token_end - d.token_start
                run_tokens += n
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
    }


def models_after(lib: Library, date: str) -> dict[str, Any]:
    """Models whose runs read copies received (ingested, or acquired per their source) on or
    after `date`, with how many such copies and tokens."""
    _iso(date, "--received-after")
    with read_connection(lib.engine) as conn:
        by_corpus = _runs_by_corpus(conn)
        q = (
            select(
                corpus_docs.c.corpus_id,
                corpus_docs.c.shard,
                corpus_docs.c.token_start,
                corpus_docs.c.token_end,
                copies.c.id,
            )
            .join(copies, copies.c.id == corpus_docs.c.copy_id)
            .join(datasets, datasets.c.id == copies.c.dataset_id)
            .join(sources, sources.c.id == datasets.c.source_id)
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


def work_copy_ids(lib: Library, work_id: str, list_name: str | None) -> list[int]:
    """Copies audits matched to a work (exact, near-duplicate, partial, identifiers)."""
    w = lib.work(work_id, list_name)
    return sorted({m["copy_id"] for m in w["matches"] if m["method"] != "metadata"})


def dataset_copy_ids(lib: Library, ref: str) -> list[int]:
    with read_connection(lib.engine) as conn:
        ds = lib._dataset_id(conn, ref)
        return [r.id for r in conn.execute(select(copies.c.id).where(copies.c.dataset_id == ds))]
