"""CLI for retention: `hold add|ls|release`, `delete`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from copytrail.cli.options import JsonOpt
from copytrail.cli.render import emit_json, out, safe, table
from copytrail.errors import InvalidInput


def register(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    hold_app = typer.Typer(
        help="Legal holds: what they cover cannot be deleted.", no_args_is_help=True
    )
    app.add_typer(hold_app, name="hold")

    @hold_app.command("add")
    def hold_add(
        matter: Annotated[str, typer.Option("--matter", help="The case or matter.")],
        dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
        source: Annotated[str | None, typer.Option("--source")] = None,
        work: Annotated[
            str | None, typer.Option("--work", help="Work id; LIST:ID if in several lists.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Put a dataset, a source or a work (the copies audits matched to it) under hold."""
        given = [(k, v) for k, v in (("dataset", dataset), ("source", source), ("work", work)) if v]
        if len(given) != 1:
            raise InvalidInput("a hold covers one thing: --dataset D, --source S or --work ID")
        with open_lib() as lib:
            h = lib.add_hold(matter, *given[0])
        if json_out:
            emit_json(h)
        else:
            out.print(
                f"hold #{h['id']} ({safe(h['matter'])}) on {safe(h['scope'])} {safe(h['ref'])}, "
                f"event {h['event_seq']}"
            )

    @hold_app.command("ls")
    def hold_ls(
        active: Annotated[bool, typer.Option("--active", help="Only holds not released.")] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Holds, active and released."""
        with open_lib() as lib:
            rows = lib.holds(active)
        if json_out:
            emit_json(rows)
            return
        table(
            "holds",
            ["id", "matter", "scope", "ref", "created", "released"],
            [
                [h["id"], h["matter"], h["scope"], h["ref"], h["created"], h["released"]]
                for h in rows
            ],
        )

    @hold_app.command("release")
    def hold_release(hold_id: int, json_out: JsonOpt = False) -> None:
        """Release a hold (recorded; the hold stays listed)."""
        with open_lib() as lib:
            h = lib.release_hold(hold_id)
        if json_out:
            emit_json(h)
        else:
            out.print(f"hold #{h['id']} released at {safe(h['released'])}")

    ret_app = typer.Typer(help="Retention rules and reports.", no_args_is_help=True)
    app.add_typer(ret_app, name="retention")

    @ret_app.command("report")
    def retention_report(
        rules: Annotated[
            str | None, typer.Option("--rules", help="Retention rules TOML file.")
        ] = None,
        as_of: Annotated[
            str | None, typer.Option("--as-of", help="ISO date (default now).")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Copies kept but never used for training; copies past their retention, per rule."""
        with open_lib() as lib:
            r = lib.retention_report(rules, as_of)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"{r['never_included']} of {r['copies']} present copies were never included in "
            f"any build (as of {safe(r['as_of'])})"
        )
        table(
            "kept but never used for training",
            ["dataset", "source kind", "copies", "bytes"],
            [
                [g["dataset"], g["source_kind"], g["copies"], g["bytes"]]
                for g in r["never_included_by"]
            ],
        )
        table(
            "kept but never used for training, by declared purpose",
            ["purpose", "copies", "bytes", "kept since", "days kept"],
            [
                [g["purpose"], g["copies"], g["bytes"], g["kept_since"], g["kept_days"]]
                for g in r["never_included_by_purpose"]
            ],
        )
        table(
            "retention rules",
            ["rule", "action", "copies", "bytes", "held back", "by holds"],
            [
                [x["rule"], x["action"], x["copies"], x["bytes"], x["held"], x["holds"]]
                for x in r["rules"]
            ],
        )

    @app.command()
    def delete(
        reason: Annotated[str, typer.Option("--reason", help="Why (a takedown, a court order).")],
        dataset: Annotated[str | None, typer.Option("--dataset", "-d")] = None,
        source: Annotated[str | None, typer.Option("--source")] = None,
        copies_file: Annotated[
            str | None, typer.Option("--copies", help="File of copy ids or SHA-256 prefixes.")
        ] = None,
        rebuild: Annotated[
            bool, typer.Option("--rebuild", help="Rebuild tainted corpora without the copies.")
        ] = False,
        keep_derived: Annotated[
            bool, typer.Option("--keep-derived", help="List tainted shards but do not remove them.")
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Delete copies: their blobs (unless shared), the shards built from them, their guard
        entries; write a certificate. Refused, deleting nothing, when a hold covers any copy."""
        with open_lib() as lib:
            r = lib.delete(reason, dataset, source, copies_file, rebuild, keep_derived)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"deleted {len(r['copies'])} copies: {len(r['blobs_removed'])} blobs removed, "
            f"{len(r['blobs_kept_shared'])} kept (shared), "
            f"{len(r['derived_files_removed'])} derived shards removed"
        )
        for t in r["tainted_corpora"]:
            out.print(f"tainted corpus {safe(t['corpus'])}: {len(t['shards'])} shard(s)")
        for b in r["rebuilt"]:
            out.print(
                f"rebuilt {safe(b['corpus'])} as {safe(b.get('rebuilt_as') or b.get('error'))}"
            )
        out.print(f"certificate: {safe(r['certificate_path'])} (and .txt, .proof.json)")
