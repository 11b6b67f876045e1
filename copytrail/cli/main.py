"""The `copytrail` command: parse, call Library, render. No logic of its own lives here."""

from __future__ import annotations

import sys
from enum import Enum, StrEnum
from pathlib import Path
from typing import Annotated

import typer

from copytrail.catalog.records import SOURCE_KINDS
from copytrail.cli.acquisition_cmds import register as register_acquisition_commands
from copytrail.cli.build_cmds import register as register_build_commands
from copytrail.cli.guard_cmds import register as register_guard_commands
from copytrail.cli.interop_cmds import register as register_interop_commands
from copytrail.cli.interop_cmds import register_production as register_production_commands
from copytrail.cli.models_cmds import register as register_model_commands
from copytrail.cli.options import JsonOpt, WorkersOpt, open_library, read_small, state
from copytrail.cli.render import emit_json, emit_json_lines, err, human_bytes, out, safe, table
from copytrail.cli.retention_cmds import register as register_retention_commands
from copytrail.cli.trust_cmds import register as register_trust_commands
from copytrail.engine import ENGINE_HELP
from copytrail.errors import CopytrailError

app = typer.Typer(
    help="copytrail: the chain of custody for LLM training data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
source_app = typer.Typer(help="Register where data came from.", no_args_is_help=True)
app.add_typer(source_app, name="source")
works_app = typer.Typer(help="Works lists: class lists, opt-outs, takedowns.", no_args_is_help=True)
app.add_typer(works_app, name="works")


@app.callback()
def _global(
    library: Annotated[
        str | None,
        typer.Option(
            "--library",
            "-L",
            envvar="COPYTRAIL_LIBRARY",
            help="Library directory (default ./.copytrail).",
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            envvar="COPYTRAIL_DB",
            help="Ledger database URL (sqlite:///..., postgresql://...).",
        ),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", envvar="COPYTRAIL_ENGINE", help=ENGINE_HELP),
    ] = None,
) -> None:
    state.library, state.db, state.engine = library, db, engine


# ---- init / sources ------------------------------------------------------------------------
@app.command()
def init(
    store: Annotated[
        str | None, typer.Option(help="Blob store URL (default LIBRARY/blobs).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a library (ledger + blob store). Running it again on an existing one is harmless."""
    from copytrail.library import Library

    lib = Library.init(state.library, db=state.db, store=store)
    info = {"library": str(lib.path.resolve()), "db": lib.db_url, "store": lib.store_url}
    if json_out:
        emit_json(info)
    else:
        out.print(f"library ready at [bold]{safe(info['library'])}[/] (ledger {safe(info['db'])})")


KindEnum = Enum("SourceKind", {k.replace("-", "_"): k for k in SOURCE_KINDS}, type=str)  # type: ignore[misc]


@source_app.command("add")
def source_add(
    name: str,
    kind: Annotated[KindEnum, typer.Option("--kind", help="Kind of source.")],  # type: ignore[valid-type]
    license: Annotated[str | None, typer.Option(help="License or terms of use.")] = None,
    provided_by: Annotated[
        str | None, typer.Option("--provided-by", help="Who provided it.")
    ] = None,
    acquired: Annotated[str | None, typer.Option(help="When it was acquired (ISO date).")] = None,
    url: Annotated[str | None, typer.Option(help="Where it came from.")] = None,
    notes: Annotated[str | None, typer.Option(help="Free text.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Register a source of data."""
    with open_library() as lib:
        s = lib.add_source(
            name,
            kind.value,
            license=license,
            provided_by=provided_by,
            acquired=acquired,
            url=url,
            notes=notes,
        )
    if json_out:
        emit_json(s)
    else:
        out.print(
            f"source [bold]{safe(s['name'])}[/] ({safe(s['kind'])}) added as #{s['id']}, "
            f"event {s['event_seq']}"
        )


# ---- ingest ----------------------------------------------------------------------------------
@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to ingest.")],
    source: Annotated[str, typer.Option(help="Source name (see `copytrail ls sources`).")],
    dataset: Annotated[str, typer.Option(help="Dataset as NAME or NAME@VERSION.")],
    workers: WorkersOpt = None,
    text_field: Annotated[
        str, typer.Option("--text-field", help="Record field holding the text (dots for nesting).")
    ] = "text",
    max_file_bytes: Annotated[
        int | None, typer.Option(help="Refuse files larger than this.")
    ] = None,
    max_member_bytes: Annotated[
        int | None, typer.Option(help="Refuse archive members larger than this.")
    ] = None,
    max_archive_bytes: Annotated[
        int | None, typer.Option(help="Stop an archive past this many bytes.")
    ] = None,
    max_ratio: Annotated[
        int | None, typer.Option(help="Refuse members inflating more than N:1.")
    ] = None,
    max_depth: Annotated[int | None, typer.Option(help="Deepest archive nesting to open.")] = None,
    max_record_bytes: Annotated[
        int | None, typer.Option(help="Refuse JSON Lines records larger than this.")
    ] = None,
    max_html_depth: Annotated[
        int | None, typer.Option(help="Refuse HTML nesting elements deeper than this.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Ingest files, directories, archives and record datasets as copies of a dataset."""
    from copytrail.cli.progress import RichIngestProgress
    from copytrail.ingest.limits import Limits

    limits = Limits.from_options(
        max_file_bytes=max_file_bytes,
        max_member_bytes=max_member_bytes,
        max_archive_bytes=max_archive_bytes,
        max_ratio=max_ratio,
        max_depth=max_depth,
        max_record_bytes=max_record_bytes,
        max_html_depth=max_html_depth,
    )
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise CopytrailError(f"no such file or directory: {', '.join(missing)}")
    with open_library(workers) as lib:
        progress = RichIngestProgress(f"ingest → {safe(dataset)}")
        s = lib.ingest(
            [str(p) for p in paths],
            source=source,
            dataset=dataset,
            text_field=text_field,
            limits=limits,
            progress=progress,
        )
    d = s.as_dict()
    if json_out:
        emit_json(d)
        return
    rate = s.bytes / s.seconds / 1e6 if s.seconds else 0
    out.print(
        f"[bold]{safe(s.dataset)}[/]: {s.files} files, {s.items} items, "
        f"[green]{s.copies_added} copies added[/], {s.copies_existing} already present, "
        f"[red]{s.unreadable} unreadable[/], {human_bytes(s.bytes)} in {s.seconds:.1f}s "
        f"({rate:.1f} MB/s)"
    )
    for p in s.problems[:20]:
        out.print(f"  [red]{safe(p['status'])}[/] {safe(p['path'])}: {safe(p['reason'])}")
    if len(s.problems) > 20 or s.unreadable > len(s.problems[:20]):
        out.print(
            f"  … see all with `copytrail ls copies --dataset {safe(s.dataset)} "
            "--status unreadable`"
        )


# ---- listing -------------------------------------------------------------------------------
class What(StrEnum):
    sources = "sources"
    datasets = "datasets"
    copies = "copies"


@app.command("ls")
def ls(
    what: What,
    dataset: Annotated[str | None, typer.Option(help="Only copies of this dataset.")] = None,
    status: Annotated[
        str | None,
        typer.Option(help="Only copies with this status (ok, unreadable, refused, deleted)."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="At most this many rows (default 50 for tables, all for --json)."),
    ] = None,
    offset: Annotated[int, typer.Option(help="Skip this many rows.")] = 0,
    json_out: JsonOpt = False,
) -> None:
    """List sources, datasets or copies."""
    with open_library() as lib:
        if what is What.sources:
            rows = lib.sources()
            if json_out:
                return emit_json(rows)
            table(
                "sources",
                ["id", "name", "kind", "license", "provided by", "acquired", "url"],
                [
                    (
                        r["id"],
                        r["name"],
                        r["kind"],
                        r["license"],
                        r["provided_by"],
                        r["acquired"],
                        r["url"],
                    )
                    for r in rows
                ],
            )
        elif what is What.datasets:
            rows = lib.datasets()
            if json_out:
                return emit_json(rows)
            table(
                "datasets",
                ["id", "dataset", "source", "kind", "copies", "bytes", "created"],
                [
                    (
                        r["id"],
                        r["label"],
                        r["source"],
                        r["source_kind"],
                        r["copies"],
                        human_bytes(r["bytes"]),
                        r["created"],
                    )
                    for r in rows
                ],
            )
        else:
            n = limit if (limit is not None or json_out) else 50
            it = lib.copies(dataset=dataset, status=status, limit=n, offset=offset)
            if json_out:
                return emit_json_lines(it)
            rows = list(it)
            table(
                "copies",
                ["id", "dataset", "path", "status", "size", "words", "title", "sha256"],
                [
                    (
                        r["id"],
                        r["dataset"],
                        r["path"],
                        r["status"],
                        human_bytes(r["size"]),
                        r["words"],
                        r["title"] or (r["reason"] or "")[:60],
                        (r["sha256"] or "")[:12],
                    )
                    for r in rows
                ],
            )
            if limit is None and len(rows) == n:
                out.print(f"(first {n}; use --limit, --offset or --json for more)")


@app.command()
def show(
    copy: Annotated[str, typer.Argument(help="Copy id, or a SHA-256 prefix of its bytes or text.")],
    text: Annotated[bool, typer.Option("--text", help="Print the extracted text.")] = False,
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="Why the text is read (required with --text; recorded)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Everything recorded about one copy, with its events."""
    with open_library() as lib:
        if text:
            sys.stdout.write(lib.copy_text(copy, reason or "", channel="cli")["text"])
            return
        c = lib.copy(copy)
    if json_out:
        return emit_json(c)
    fields = [
        "id",
        "dataset",
        "source",
        "source_kind",
        "path",
        "status",
        "reason",
        "media_type",
        "size",
        "sha256",
        "text_sha256",
        "text_size",
        "title",
        "authors",
        "isbns",
        "language",
        "words",
        "replacements",
        "created",
        "shared_with",
    ]
    table(
        f"copy {c['id']}",
        ["field", "value"],
        [
            (f, ", ".join(map(str, c[f])) if isinstance(c[f], list) else c[f])
            for f in fields
            if c.get(f) not in (None, [], "")
        ],
    )
    if c["extra"]:
        table("other metadata", ["key", "value"], [(k, v) for k, v in c["extra"].items()])
    table(
        "events",
        ["seq", "type", "time", "actor", "hash"],
        [(e["seq"], e["type"], e["time"], e["actor"], e["hash"][:16]) for e in c["events"]],
    )


@app.command()
def stats(json_out: JsonOpt = False) -> None:
    """Copies, bytes and words by dataset and by source kind."""
    with open_library() as lib:
        s = lib.stats()
    if json_out:
        return emit_json(s)
    out.print(
        f"{s['copies']} copies ({s['distinct_originals']} distinct originals), "
        f"{human_bytes(s['bytes'])}, {s['words']:,} words, {s['sources']} sources, "
        f"{s['datasets']} datasets, {s['events']} events; by status {safe(s['by_status'])}"
    )
    cols = ["copies", "bytes", "words", "unreadable"]
    table(
        "by dataset",
        ["dataset", "source kind", *cols],
        [
            (
                r["dataset"],
                r["source_kind"],
                r["copies"],
                human_bytes(r["bytes"]),
                f"{r['words']:,}",
                r["unreadable"],
            )
            for r in s["by_dataset"]
        ],
    )
    table(
        "by source kind",
        ["source kind", *cols],
        [
            (
                r["source_kind"],
                r["copies"],
                human_bytes(r["bytes"]),
                f"{r['words']:,}",
                r["unreadable"],
            )
            for r in s["by_source_kind"]
        ],
    )
    cp = s["latest_checkpoint"]
    out.print(
        f"latest checkpoint: {cp['tree_size']} events, root {cp['root_hash']}"
        if cp
        else "no checkpoint yet (run `copytrail checkpoint`)"
    )


@app.command()
def log(
    start: Annotated[int, typer.Option(help="First event number.")] = 1,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """The event log, in order."""
    with open_library() as lib:
        evs = list(lib.events(start, limit))
    if json_out:
        return emit_json(evs)
    table(
        "events",
        ["seq", "type", "time", "actor", "subjects", "hash"],
        [(e["seq"], e["type"], e["time"], e["actor"], e["subjects"], e["hash"][:16]) for e in evs],
    )


# ---- works lists and audits ----------------------------------------------------------------
@works_app.command("import")
def works_import(
    file: Annotated[
        Path, typer.Argument(help="CSV or JSON Lines: work_id, title, authors, isbn, asin, text.")
    ],
    list_name: Annotated[str, typer.Option("--list", help="Name of the works list.")],
    json_out: JsonOpt = False,
) -> None:
    """Import (or update) a works list. Bad rows are reported with line numbers; good rows load."""
    with open_library() as lib:
        r = lib.import_works(file, list_name)
    if json_out:
        return emit_json(r.as_dict())
    out.print(
        f"works list [bold]{safe(r.list)}[/]: {r.rows} rows, [green]{r.imported} imported[/], "
        f"{r.updated} updated, {r.unchanged} unchanged, [red]{len(r.errors)} refused[/]"
    )
    for e in r.errors[:50]:
        out.print(
            f"  [red]line {e['line']}[/] ({safe(e['work_id'] or 'no id')}): {safe(e['reason'])}"
        )
    if len(r.errors) > 50:
        out.print(f"  … {len(r.errors) - 50} more; see them all with --json")


@works_app.command("ls")
def works_ls(
    list_name: Annotated[
        str | None, typer.Option("--list", help="Works of this list (default: the lists).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List works lists, or the works of one list."""
    with open_library() as lib:
        rows = lib.works(list_name) if list_name else lib.works_lists()
    if json_out:
        return emit_json(rows)
    if list_name:
        table(
            f"works of {list_name}",
            ["work id", "title", "authors", "isbns", "asin", "reference text"],
            [
                (
                    r["work_id"],
                    r["title"],
                    "; ".join(r["authors"]),
                    " ".join(r["isbns"]),
                    r["asin"],
                    r["text_path"],
                )
                for r in rows
            ],
        )
    else:
        table(
            "works lists",
            ["id", "name", "works", "created"],
            [(r["id"], r["name"], r["works"], r["created"]) for r in rows],
        )


@app.command()
def audit(
    list_name: Annotated[str, typer.Option("--list", help="Works list to look for.")],
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out", help="Directory for works.csv, matches.jsonl, summary.json, report.html."
        ),
    ],
    dataset: Annotated[
        list[str] | None, typer.Option("--dataset", help="Audit only these datasets (repeat).")
    ] = None,
    min_words: Annotated[
        int, typer.Option("--min-words", help="Shortest excerpt reported, in words.")
    ] = 200,
    workers: WorkersOpt = None,
    boilerplate_df: Annotated[
        int | None,
        typer.Option(
            help="Ignore passages found in more than N texts (default: max(50, 1% of texts))."
        ),
    ] = None,
    boilerplate: Annotated[
        list[Path] | None,
        typer.Option("--boilerplate", help="A file of boilerplate text, never evidence (repeat)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Find every work of a list in the library, with evidence, and record the audit."""
    from copytrail.cli.progress import RichCountProgress

    with open_library(workers) as lib:
        s = lib.audit(
            list_name,
            out_dir,
            datasets=dataset or None,
            min_words=min_words,
            boilerplate_df=boilerplate_df,
            boilerplate=[str(b) for b in boilerplate or []],
            progress=RichCountProgress,
        )
    if json_out:
        return emit_json(s)
    out.print(
        f"[bold]{s['works_found']}[/] of {s['works']} works found ({s['matches']} matches); "
        f"audit #{s['audit_id']} recorded as event {s['event_seq']}"
    )
    table(
        "works present by dataset",
        ["dataset", "works present", "by best method"],
        [
            (ds, d["works_present"], ", ".join(f"{k} {v}" for k, v in d["by_best_method"].items()))
            for ds, d in s["by_dataset"].items()
        ],
    )
    for name, sha in s["files"].items():
        out.print(f"  {safe(Path(s['out_dir']) / name)}  sha256 {sha}")


@app.command()
def where(
    work_id: Annotated[str, typer.Argument(help="Work id from a works list.")],
    list_name: Annotated[
        str | None,
        typer.Option("--list", help="The works list (needed when the id is in several)."),
    ] = None,
    min_words: Annotated[
        int, typer.Option("--min-words", help="Shortest excerpt reported, in words.")
    ] = 200,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help="Match every copy now, not only those no recorded audit has seen."
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Every copy of one work, with its dataset, source and evidence. Recorded audits answer
    for the copies they covered; copies recorded since are matched now."""
    with open_library() as lib:
        r = lib.where(work_id, list_name, min_words=min_words, live=live)
    if json_out:
        return emit_json(r)
    w = r["work"]
    b = r["basis"]
    how = (
        "matched now"
        if b["live"]
        else f"from audit {', '.join(map(str, b['audits']))}"
        + f", {b['copies_matched_now']} newer copies matched now"
    )
    out.print(
        f"[bold]{safe(w['work_id'])}[/] {safe(w['title'] or '')} "
        f"({safe('; '.join(w['authors']))}): "
        f"{len(r['copies'])} copies ({how})"
    )
    table(
        None,
        ["copy", "dataset", "source", "kind", "method", "coverage", "longest span", "path"],
        [
            (
                c["copy_id"],
                c["dataset"],
                c["source"],
                c["source_kind"],
                c["method"],
                c["coverage"],
                c["longest_span_words"],
                c["path"],
            )
            for c in r["copies"]
        ],
    )


# ---- integrity -----------------------------------------------------------------------------
@app.command()
def checkpoint(
    tsa: Annotated[
        str | None,
        typer.Option("--tsa", help="Also get an RFC 3161 time-stamp from this TSA URL."),
    ] = None,
    cosigned: Annotated[
        Path | None,
        typer.Option(
            "--cosigned", help="Keep the cosignatures in this note (from `witness cosign`)."
        ),
    ] = None,
    witness: Annotated[
        list[str] | None,
        typer.Option("--witness", help="Verifier key of a witness whose cosignature to keep."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Record an RFC 9162 Merkle tree head over all events so far; signed as a C2SP checkpoint
    (published under LIBRARY/log/) once the log has a key (`key identity --create`)."""
    with open_library() as lib:
        if cosigned is not None:
            r = lib.add_cosignatures(read_small(cosigned), witness or [])
            if json_out:
                return emit_json(r)
            who = ", ".join(safe(w) for w in r["cosigned_by"])
            out.print(
                f"checkpoint #{r['checkpoint_id']} (tree size {r['tree_size']}) now "
                f"carries the cosignature of {who}"
            )
            return None
        cp = lib.checkpoint(tsa)
    if json_out:
        return emit_json(cp)
    what = "new checkpoint" if cp["new"] else "no new events; latest checkpoint"
    out.print(f"{safe(what)} #{cp['id']}: tree size {cp['tree_size']}, root {cp['root_hash']}")
    if cp.get("published"):
        out.print(f"signed checkpoint written to {safe(cp['published'])}")
    else:
        out.print("not signed: `copytrail key identity --create` gives the log a signing key")
    if cp.get("timestamp"):
        ts = cp["timestamp"]
        out.print(f"time-stamped {safe(ts['gen_time'])} by {safe(ts['tsa'])}")


@app.command()
def prove(
    event_id: Annotated[
        int | None, typer.Argument(help="Event number (see `copytrail log`).")
    ] = None,
    copy: Annotated[
        str | None,
        typer.Option(
            "--copy",
            help="Prove a copy's ingest instead: its event's proof and its path in the batch.",
        ),
    ] = None,
    checkpoint_id: Annotated[
        int | None,
        typer.Option(
            "--checkpoint",
            help="Prove against this checkpoint (default: the latest covering the event).",
        ),
    ] = None,
    out_file: Annotated[
        Path | None, typer.Option("--out", help="Also write the proof JSON here.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Print an inclusion proof that an event is in a checkpointed tree head."""
    import json

    if (event_id is None) == (copy is None):
        raise typer.BadParameter("name an event number or --copy ID (one of them)")
    if copy is not None:
        with open_library() as lib:
            doc = lib.prove_copy(copy, checkpoint_id)
        if out_file:
            out_file.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        if json_out:
            return emit_json(doc)
        b = doc["in_batch"]
        if b is not None:
            out.print(
                f"copy {doc['copy_id']} is leaf {b['leaf_index']} of {b['batch_size']} in "
                f"ingested event {b['event_seq']} (copies root {b['copies_root']}); path:"
            )
            for h in b["path"]:
                out.print(f"  {h}")
        p = doc["event"]
    else:
        with open_library() as lib:
            p = lib.prove(event_id, checkpoint_id)
    if out_file and copy is None:
        out_file.write_text(json.dumps(p, indent=2) + "\n", encoding="utf-8")
    if json_out:
        return emit_json(p)
    out.print(f"event {p['event_seq']} (hash {p['event_hash']})")
    out.print(
        f"is leaf {p['leaf_index']} of the tree of size {p['tree_size']} with root {p['root_hash']}"
    )
    out.print(f"(checkpoint #{p['checkpoint_id']}, {safe(p['checkpoint_time'])}); audit path:")
    for h in p["path"]:
        out.print(f"  {h}")
    ok = p["verified"] and (copy is None or doc["verified"])
    out.print("[green]proof verifies[/]" if ok else "[red]proof does NOT verify[/]")


@app.command()
def verify(
    quick: Annotated[
        bool, typer.Option("--quick", help="Check that blobs exist without re-hashing them.")
    ] = False,
    proof: Annotated[
        Path | None,
        typer.Option(
            "--proof", help="Only check a saved inclusion proof file (no library needed)."
        ),
    ] = None,
    against: Annotated[
        list[Path] | None,
        typer.Option(
            "--against",
            help="A checkpoint someone else holds (file, or a witness's folder): the log must "
            "extend it. Repeatable.",
        ),
    ] = None,
    tsa_ca: Annotated[
        Path | None,
        typer.Option("--tsa-ca", help="CA certificate (PEM) time-stamp tokens must chain to."),
    ] = None,
    workers: WorkersOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check the event chain, tree, signed checkpoints, tables and blobs. Exit 0 when intact,
    1 when not."""
    if proof is not None:
        import json

        from copytrail.ledger.merkle import verify_proof_document

        ok = verify_proof_document(json.loads(proof.read_text(encoding="utf-8")))
        if json_out:
            emit_json({"ok": ok})
        else:
            out.print(
                "[green]inclusion proof verifies[/]"
                if ok
                else "[red]inclusion proof does NOT verify[/]"
            )
        raise typer.Exit(0 if ok else 1)
    from copytrail.cli.progress import RichPhaseProgress

    with open_library(workers) as lib, RichPhaseProgress() as progress:
        r = lib.verify(quick=quick, progress=progress, against=against, tsa_ca=tsa_ca)
    if json_out:
        emit_json(r.as_dict())
    else:
        c = r.counts
        out.print(
            f"checked {c.get('events', 0)} events, {c.get('checkpoints', 0)} checkpoints, "
            f"{c.get('blobs_referenced', 0)} blobs"
        )
        if r.against is not None:
            a = r.against
            out.print(
                f"against {a['held']} held checkpoints: {a['consistent']} consistent"
                + (f", largest size {a['largest_consistent_size']}" if a["consistent"] else "")
                + (
                    f"; [red]first divergent tree size {a['first_divergent_size']}[/]"
                    if a["first_divergent_size"]
                    else ""
                )
            )
        for note in r.notes:
            out.print(f"[yellow]note[/]: {safe(note)}")
        for p in r.problems:
            out.print(f"[red]problem[/]: {safe(p)}")
        if r.problem_count > len(r.problems):
            out.print(f"… and {r.problem_count - len(r.problems)} more problems")
        out.print(
            "[green]library intact[/]" if r.ok else f"[red]{r.problem_count} problems found[/]"
        )
    raise typer.Exit(0 if r.ok else 1)


register_guard_commands(app, open_library)
register_build_commands(app, open_library)
register_retention_commands(app, open_library)
register_acquisition_commands(app, open_library)
register_trust_commands(app, open_library)
register_interop_commands(app, open_library)
register_production_commands(app, open_library)
register_model_commands(app, open_library)


def main() -> None:
    try:
        app()
    except CopytrailError as e:
        err.print(f"[red]error:[/] {safe(e)}")
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err.print(
            "[red]interrupted[/]: what was committed stays; run the same command again to finish"
        )
        sys.exit(130)


if __name__ == "__main__":
    main()
