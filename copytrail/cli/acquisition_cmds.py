"""CLI for acquisition records: `purchases import`, `scans record`, `reconcile`, `purpose set|ls`,
`uses`."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.acquisition.purpose import PURPOSES
from copytrail.cli.options import JsonOpt
from copytrail.cli.render import emit_json, out, safe, table
from copytrail.errors import InvalidInput

PurposeEnum = Enum("Purpose", {p.replace("-", "_"): p for p in PURPOSES}, type=str)  # type: ignore[misc]


def _errors(errors: list[dict[str, Any]], key: str) -> None:
    for e in errors[:50]:
        out.print(f"  [red]line {e['line']}[/] ({safe(e.get(key) or '-')}): {safe(e['reason'])}")
    if len(errors) > 50:
        out.print(f"  … {len(errors) - 50} more; see them all with --json")


def register(app: typer.Typer, open_lib: Callable[..., Any]) -> None:
    purchases_app = typer.Typer(
        help="Purchases: the books bought behind scans.", no_args_is_help=True
    )
    app.add_typer(purchases_app, name="purchases")
    scans_app = typer.Typer(
        help="Scans: which purchase each scanned copy came from.", no_args_is_help=True
    )
    app.add_typer(scans_app, name="scans")
    purpose_app = typer.Typer(
        help="Declared purposes of sources and datasets.", no_args_is_help=True
    )
    app.add_typer(purpose_app, name="purpose")

    @purchases_app.command("import")
    def purchases_import(
        file: Annotated[Path, typer.Argument(help="Order export: CSV (header row) or JSON Lines.")],
        source: Annotated[str, typer.Option(help="The source the purchases belong to.")],
        json_out: JsonOpt = False,
    ) -> None:
        """Import purchase lines (order_id, vendor, date, isbn or title/author, quantity, format
        print/ebook, price, currency). Bad rows are reported with their line; re-import updates."""
        with open_lib() as lib:
            r = lib.import_purchases(file, source)
        if json_out:
            return emit_json(r.as_dict())
        out.print(
            f"purchases of [bold]{safe(source)}[/]: {r.rows} rows, "
            f"[green]{r.imported} imported[/], {r.updated} updated, {r.unchanged} unchanged, "
            f"[red]{len(r.errors)} refused[/]; "
            f"event {r.event_seq}"
        )
        _errors(r.errors, "order_id")

    @scans_app.command("record")
    def scans_record(
        file: Annotated[
            Path, typer.Argument(help="CSV or JSON Lines: copy, scan_date, print_fate, fate_date.")
        ],
        dataset: Annotated[str, typer.Option(help="The dataset holding the scanned copies.")],
        json_out: JsonOpt = False,
    ) -> None:
        """Record scans: each copy (id or path) with its scan date and the print copy's fate
        (destroyed, kept, resold, unknown); its purchase line is found by ISBN or title/author."""
        with open_lib() as lib:
            r = lib.record_scans(file, dataset)
        if json_out:
            return emit_json(r.as_dict())
        out.print(
            f"scans of [bold]{safe(dataset)}[/]: {r.recorded} recorded ({r.matched_isbn} by ISBN, "
            f"{r.matched_title} by title/author, {r.unmatched} with no purchase), "
            f"[red]{len(r.errors)} refused[/]; event {r.event_seq}"
        )
        _errors(r.errors, "copy")

    @app.command()
    def reconcile(
        source: Annotated[str, typer.Option(help="The source whose purchases and scans to match.")],
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="Write reconciliation.{json,csv,html} here.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Purchases against scans, per book: copies bought, scans made, print copies destroyed,
        kept or resold, and what does not add up."""
        with open_lib() as lib:
            r = lib.reconcile(source, out_dir)
        if json_out:
            return emit_json(r)
        flagged = [row for row in r["rows"] if row["flags"]]
        table(
            f"reconciliation of {source}: {r['books']} books, {len(flagged)} with findings",
            ["book", "title", "bought", "scans", "destroyed", "kept", "resold", "findings"],
            [
                [
                    b["book"],
                    b["title"],
                    b["bought_print"],
                    b["scans"],
                    b["destroyed"],
                    b["kept"],
                    b["resold"],
                    "; ".join(b["flags"]),
                ]
                for b in flagged[:200]
            ],
        )
        t = r["totals"]
        out.print(
            f"{t['bought_print']} print copies bought, {t['scans']} scans, {t['destroyed']} print "
            f"copies destroyed; findings: "
            + ", ".join(f"{safe(k)} {v}" for k, v in r["findings"].items())
            + f"; event {r['event_seq']}"
        )
        for name, sha in r["files"].items():
            out.print(f"  {safe(Path(out_dir or '.') / name)}  sha256 {sha}")

    @purpose_app.command("set")
    def purpose_set(
        purpose: Annotated[PurposeEnum, typer.Option("--purpose", help="Why it is kept.")],  # type: ignore[valid-type]
        source: Annotated[str | None, typer.Option(help="A source.")] = None,
        dataset: Annotated[str | None, typer.Option(help="A dataset (NAME@VERSION).")] = None,
        text: Annotated[str | None, typer.Option(help="What 'other' means, or a note.")] = None,
        document: Annotated[
            Path | None, typer.Option(help="The licence, invoice or approval that declares it.")
        ] = None,
        effective: Annotated[
            str | None, typer.Option(help="From when it holds (ISO date; default now).")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Declare the purpose of a source or a dataset (an event; a later one supersedes)."""
        if (source is None) == (dataset is None):
            raise InvalidInput("name one: --source S or --dataset D")
        scope, ref = ("source", source) if source is not None else ("dataset", dataset)
        with open_lib() as lib:
            r = lib.declare_purpose(scope, ref, purpose.value, text, document, effective)
        if json_out:
            return emit_json(r)
        out.print(
            f"{scope} [bold]{safe(ref)}[/]: purpose {safe(r['purpose'])} from "
            f"{safe(r['effective'])}"
            + (f", declared by {safe(r['document_name'])}" if r["document_name"] else "")
            + f"; event {r['event_seq']}"
        )

    @purpose_app.command("ls")
    def purpose_ls(
        history: Annotated[
            bool, typer.Option(help="Every declaration, not only the latest.")
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Declared purposes of sources and datasets."""
        with open_lib() as lib:
            rows = lib.purposes(history)
        if json_out:
            return emit_json(rows)
        table(
            "declared purposes",
            ["scope", "name", "purpose", "text", "document", "effective", "event"],
            [
                [
                    p["scope"],
                    p["ref"],
                    p["purpose"],
                    p["text"],
                    p["document_name"],
                    p["effective"],
                    p["event_seq"],
                ]
                for p in rows
            ],
        )

    @app.command()
    def uses(
        copy: Annotated[str | None, typer.Option(help="A copy id or SHA-256 prefix.")] = None,
        dataset: Annotated[str | None, typer.Option(help="A dataset (NAME@VERSION).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Every recorded use of a copy or a dataset: corpora, training runs and models, audits,
        deletion, and the purpose it is kept for."""
        with open_lib() as lib:
            r = lib.uses(copy, dataset)
        if json_out:
            return emit_json(r)
        what = f"copy {r['copy']} ({r['path']})" if "copy" in r else f"dataset {r['dataset']}"
        out.print(f"[bold]{safe(what)}[/]: {r['copies']} copies")
        if r["included_in"]:
            table(
                "included in corpora",
                ["corpus", "included", "excluded", "tokens", "read by runs"],
                [
                    [
                        c["corpus"],
                        c["included"],
                        c["excluded"],
                        c["tokens"],
                        ", ".join(f"{u['model']} (run {u['run_id']})" for u in c["runs"]) or "-",
                    ]
                    for c in r["included_in"]
                ],
            )
        else:
            out.print("not considered by any corpus build")
        if r["audited"]:
            table(
                "audited",
                ["audit", "works list", "time", "matches", "copies"],
                [
                    [a["audit_id"], a["works_list"], a["time"], a["matches"], a["copies"]]
                    for a in r["audited"]
                ],
            )
        else:
            out.print("no audit found a listed work in it")
        table(
            "kept",
            ["dataset id", "copies", "since", "purpose"],
            [[k["dataset_id"], k["copies"], k["since"], k["purpose"]] for k in r["kept"]],
        )
        if r["deleted"]:
            table(
                "deleted",
                ["event", "time", "copies"],
                [[d["event_seq"], d["time"], d["copies"]] for d in r["deleted"]],
            )
        out.print(f"models trained on it: {safe(', '.join(r['models']) or 'none')}")
