"""OpenLineage run events for ingest, audit, build, training-run recording and deletion.

Off unless the `openlineage-python` client is configured the client's own way (an
`openlineage.yml` in the working folder or ~/.openlineage/, $OPENLINEAGE_CONFIG,
$OPENLINEAGE__TRANSPORT__* variables, or $OPENLINEAGE_URL); $OPENLINEAGE_DISABLED=true turns it
off. Each operation sends START, then COMPLETE with its input and output datasets and facets, or
FAIL with the error. A `copytrail` run facet carries the ledger event's sequence number and hash,
so a lineage graph links back to `copytrail prove N`. The ledger stays the record: an event that
cannot be sent is logged and the operation goes on.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import select

from copytrail.catalog.records import dataset_label
from copytrail.catalog.schema import copies, corpora, corpus_docs, datasets, sources
from copytrail.context import Context
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import utc_now
from copytrail.ledger.schema import events

log = logging.getLogger("copytrail.lineage")
T = TypeVar("T")
JOB_NAMESPACE = "copytrail"
PRODUCER = "https://github.com/copytrail/copytrail"
FACET_SCHEMA = "https://copytrail.invalid/spec/facets/1-0-0/CopytrailRunFacet.json"
COPY_FIELDS = [("id", "integer"), ("sha256", "string"), ("text_sha256", "string"),
               ("path", "string"), ("media_type", "string"), ("status", "string"),
               ("size", "integer")]  # fmt: skip
LINEAGE_FIELDS = [("copy_id", "integer"), ("shard", "integer"), ("token_start", "integer"),
                  ("token_end", "integer"), ("dataset", "string"), ("source", "string"),
                  ("source_kind", "string"), ("license", "string")]  # fmt: skip


def configured() -> bool:
    """Whether the OpenLineage client would find a transport (mirrors its own lookup, without
    importing it or letting it fall back to printing events on the console)."""
    if os.environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return False
    if os.environ.get("OPENLINEAGE_URL") or os.environ.get("OPENLINEAGE_CONFIG"):
        return True
    if any(k.startswith("OPENLINEAGE__TRANSPORT") for k in os.environ):
        return True
    return any(
        p.is_file()
        for p in (Path.cwd() / "openlineage.yml", Path.home() / ".openlineage" / "openlineage.yml")
    )


def _client(ctx: Context) -> Any:
    if not configured():
        return None

    def make() -> Any:
        from openlineage.client import OpenLineageClient

        return OpenLineageClient()

    return ctx.caches.get("openlineage:" + _config_key(), make)


def _config_key() -> str:
    """The client is remade when its configuration in the environment changes."""
    return "|".join(
        sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith("OPENLINEAGE"))
    )


def tracked(ctx: Context, job: str, fn: Callable[[], T], **facts: Any) -> T:
    """Run `fn` as the OpenLineage job `job` (ingest, audit, build, run-record, delete)."""
    client = _client(ctx)
    if client is None:
        return fn()
    from openlineage.client.uuid import generate_new_uuid

    run_id = str(generate_new_uuid())
    name = _job_name(job, facts)
    _send(client, _event(ctx, "START", run_id, name, job, facts, None))
    try:
        result = fn()
    except BaseException as e:
        _send(client, _event(ctx, "FAIL", run_id, name, job, facts, None, error=e))
        raise
    _send(client, _event(ctx, "COMPLETE", run_id, name, job, facts, result))
    return result


def _send(client: Any, event: Any) -> None:
    try:
        client.emit(event)
    except Exception as e:  # the ledger is the record; lineage is a copy of it
        log.warning("OpenLineage event not sent: %s", e)


def _job_name(job: str, facts: dict[str, Any]) -> str:
    what = facts.get("dataset") or facts.get("corpus") or facts.get("works_list") or ""
    return f"{job}.{what}" if what else job


def namespace(ctx: Context) -> str:
    return f"copytrail://{ctx.root.resolve()}"


def _event(
    ctx: Context,
    state: str,
    run_id: str,
    name: str,
    job: str,
    facts: dict[str, Any],
    result: Any,
    error: BaseException | None = None,
) -> Any:
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.facet_v2 import error_message_run, job_type_job

    run_facets: dict[str, Any] = {}
    if error is not None:
        run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
            message=str(error)[:2000], programmingLanguage="python"
        )
    inputs: list[Any] = []
    outputs: list[Any] = []
    if result is not None:
        inputs, outputs, seq = _DESCRIBE[job](ctx, facts, result)
        if seq:
            run_facets["copytrail"] = _ledger_facet(ctx, seq)
    job_facets = {
        "jobType": job_type_job.JobTypeJobFacet(
            processingType="BATCH", integration="COPYTRAIL", jobType=job.upper()
        )
    }
    return RunEvent(
        eventType=getattr(RunState, state),
        eventTime=utc_now(),
        run=Run(runId=run_id, facets=run_facets),
        job=Job(namespace=JOB_NAMESPACE, name=name, facets=job_facets),
        inputs=inputs,
        outputs=outputs,
        producer=PRODUCER,
    )


def _facet_class() -> Any:
    import attr  # with openlineage-python, which is only imported when lineage is configured
    from openlineage.client.facet_v2 import RunFacet

    @attr.define
    class CopytrailRunFacet(RunFacet):
        """The ledger event this run recorded: `copytrail prove eventSeq` proves it."""

        eventSeq: int  # noqa: N815
        eventHash: str  # noqa: N815
        ledger: str

        @staticmethod
        def _get_schema() -> str:
            return FACET_SCHEMA

    return CopytrailRunFacet


_FACET: list[Any] = []


def _ledger_facet(ctx: Context, seq: int) -> Any:
    if not _FACET:
        _FACET.append(_facet_class())
    with read_connection(ctx.db) as conn:
        h = conn.execute(select(events.c.hash).where(events.c.seq == seq)).scalar()
    return _FACET[0](eventSeq=seq, eventHash=h or "", ledger=namespace(ctx), producer=PRODUCER)


# ---- what each job read and wrote ------------------------------------------------------------
def _dataset(ctx: Context, name: str, fields: list[tuple[str, str]] | None = None,
             source: Any = None, drop: bool = False, rows: int | None = None,
             output: bool = False) -> Any:  # fmt: skip
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        datasource_dataset,
        lifecycle_state_change_dataset,
        output_statistics_output_dataset,
        schema_dataset,
    )

    facets: dict[str, Any] = {}
    if fields:
        facets["schema"] = schema_dataset.SchemaDatasetFacet(
            fields=[schema_dataset.SchemaDatasetFacetFields(name=n, type=t) for n, t in fields]
        )
    if source is not None:
        facets["dataSource"] = datasource_dataset.DatasourceDatasetFacet(
            name=source.name, uri=source.url or f"{namespace(ctx)}/source/{source.name}"
        )
    if drop:
        lc = lifecycle_state_change_dataset
        facets["lifecycleStateChange"] = lc.LifecycleStateChangeDatasetFacet(
            lifecycleStateChange=lc.LifecycleStateChange.DROP
        )
    if output:
        extra = {}
        if rows is not None:
            extra["outputStatistics"] = (
                output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)
            )
        return OutputDataset(namespace=namespace(ctx), name=name, facets=facets, outputFacets=extra)
    return InputDataset(namespace=namespace(ctx), name=name, facets=facets)


def _source_row(ctx: Context, name: str) -> Any:
    with read_connection(ctx.db) as conn:
        return conn.execute(select(sources).where(sources.c.name == name)).first()


def _describe_ingest(ctx: Context, facts: dict[str, Any], r: Any) -> tuple:
    src = _source_row(ctx, facts["source"])
    inputs = [_dataset(ctx, f"source/{facts['source']}", source=src)]
    outputs = [
        _dataset(ctx, f"dataset/{r.dataset}", COPY_FIELDS, source=src, rows=r.copies_added,
                 output=True)
    ]  # fmt: skip
    return inputs, outputs, r.event_seq


def _describe_audit(ctx: Context, facts: dict[str, Any], r: dict[str, Any]) -> tuple:
    inputs = [_dataset(ctx, f"works-list/{facts['works_list']}")]
    inputs += [_dataset(ctx, f"dataset/{d}") for d in facts.get("datasets") or []]
    fields = [("work_id", "string"), ("copy_id", "integer"), ("method", "string"),
              ("coverage", "double"), ("longest_span_words", "integer")]  # fmt: skip
    outputs = [_dataset(ctx, f"audit/{r['audit_id']}", fields, output=True)]
    return inputs, outputs, r.get("event_seq")


def _describe_build(ctx: Context, facts: dict[str, Any], r: dict[str, Any]) -> tuple:
    with read_connection(ctx.db) as conn:
        cid = conn.execute(select(corpora.c.id).where(corpora.c.name == facts["corpus"])).scalar()
        rows = conn.execute(
            select(datasets.c.name, datasets.c.version, sources)
            .join(sources, sources.c.id == datasets.c.source_id)
            .where(
                datasets.c.id.in_(
                    select(copies.c.dataset_id)
                    .join(corpus_docs, corpus_docs.c.copy_id == copies.c.id)
                    .where(corpus_docs.c.corpus_id == cid)
                )
            )
        ).all()
    inputs = [
        _dataset(ctx, f"dataset/{dataset_label(d.name, d.version)}", COPY_FIELDS, source=d)
        for d in rows
    ]
    outputs = [
        _dataset(ctx, f"corpus/{facts['corpus']}", LINEAGE_FIELDS, rows=r.get("documents"),
                 output=True)
    ]  # fmt: skip
    return inputs, outputs, r.get("event_seq")


def _describe_run(ctx: Context, facts: dict[str, Any], r: dict[str, Any]) -> tuple:
    inputs = [_dataset(ctx, f"corpus/{facts['corpus']}", LINEAGE_FIELDS)]
    outputs = [_dataset(ctx, f"model/{facts['model']}", output=True)]
    return inputs, outputs, r.get("event_seq")


def _describe_delete(ctx: Context, facts: dict[str, Any], r: dict[str, Any]) -> tuple:
    labels = sorted({c["dataset"] for c in r.get("copies", [])})
    inputs = [_dataset(ctx, f"dataset/{d}", COPY_FIELDS) for d in labels]
    outputs = [_dataset(ctx, f"dataset/{d}", COPY_FIELDS, drop=True, output=True) for d in labels]
    outputs.append(_dataset(ctx, f"deletion/{r['deletion_id']}", output=True))
    return inputs, outputs, (r.get("event") or {}).get("seq")


_DESCRIBE: dict[str, Callable[..., tuple]] = {
    "ingest": _describe_ingest,
    "audit": _describe_audit,
    "build": _describe_build,
    "run-record": _describe_run,
    "delete": _describe_delete,
}
