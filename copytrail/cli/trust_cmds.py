"""CLI for trust that does not rest on the operator: `consistency`, `witness init|trust|cosign|
show`, and `evidence` bundles."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.cli.options import JsonOpt, read_small
from copytrail.cli.render import emit_json, err, out, safe
from copytrail.errors import InvalidInput

StateOpt = Annotated[
    Path, typer.Option("--state", help="The witness's own folder (its key and memory).")
]


def register(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    witness_app = typer.Typer(
        help="Witness a log: cosign its checkpoints only when they extend the last one seen.",
        no_args_is_help=True,
    )
    app.add_typer(witness_app, name="witness")

    @app.command()
    def consistency(
        old: Annotated[int, typer.Argument(help="Tree size someone holds.")],
        new: Annotated[
            int | None, typer.Argument(help="Larger tree size (default: latest checkpoint).")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Prove (RFC 9162 section 2.1.4) that the tree of NEW events extends the tree of OLD."""
        with open_lib() as lib:
            p = lib.consistency(old, new)
        if json_out:
            emit_json(p)
            return
        out.print(f"tree size {p['old_size']} root {p['old_root']}")
        out.print(f"is a prefix of tree size {p['new_size']} root {p['new_root']}; proof:")
        for h in p["path"]:
            out.print(f"  {h}")
        out.print("[green]proof verifies[/]" if p["verified"] else "[red]proof does NOT verify[/]")

    @witness_app.command("init")
    def witness_init(
        state: StateOpt,
        name: Annotated[str, typer.Option("--name", help="The witness's name, e.g. w.example/1")],
        json_out: JsonOpt = False,
    ) -> None:
        """Make a witness: a cosigning key (C2SP tlog-cosignature) in its own folder."""
        from copytrail.witness import Witness

        r = Witness(state).init(name)
        if json_out:
            emit_json(r)
            return
        out.print(f"witness {safe(r['name'])} at {safe(r['state'])}")
        out.print(f"vkey {safe(r['vkey'])}")
        err.print("give the vkey to the log (`checkpoint --cosigned FILE --witness VKEY`)")

    @witness_app.command("trust")
    def witness_trust(
        state: StateOpt,
        vkey: Annotated[str, typer.Argument(help="The log's verifier key (`key identity`).")],
        json_out: JsonOpt = False,
    ) -> None:
        """Watch a log: its checkpoints must be signed by this key."""
        from copytrail.witness import Witness

        r = Witness(state).trust(vkey)
        if json_out:
            emit_json(r)
            return
        out.print(f"watching log {safe(r['origin'])} ({len(r['vkeys'])} keys)")

    @witness_app.command("show")
    def witness_show(state: StateOpt, json_out: JsonOpt = False) -> None:
        """The witness's key and, per log, the checkpoint it holds."""
        from copytrail.witness import Witness

        r = Witness(state).show()
        if json_out:
            emit_json(r)
            return
        out.print(f"vkey {safe(r['vkey'])}")
        for lg in r["logs"]:
            held = (
                f"holds tree size {lg['tree_size']} root {lg['root'][:16]}..."
                if lg["tree_size"] is not None
                else "holds nothing yet"
            )
            out.print(f"log {safe(lg['origin'])}: {held} ({safe(lg['folder'])})")

    @witness_app.command("cosign")
    def witness_cosign(
        state: StateOpt,
        url: Annotated[
            str | None,
            typer.Option("--url", help="A `copytrail serve` address to fetch the checkpoint from."),
        ] = None,
        checkpoint: Annotated[
            Path | None, typer.Option("--checkpoint", help="A signed checkpoint file.")
        ] = None,
        proof: Annotated[
            Path | None,
            typer.Option(
                "--proof", help="Consistency proof JSON from the held size (`consistency --json`)."
            ),
        ] = None,
        out_file: Annotated[
            Path | None, typer.Option("--out", help="Write the cosigned checkpoint here.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Cosign a log's new checkpoint if, and only if, it extends the one this witness holds.
        Exit 1 with the reason when it refuses."""
        from copytrail.ledger import note
        from copytrail.witness import Witness, fetch_from_url
        from copytrail.witness.state import read_proof

        w = Witness(state)
        if (url is None) == (checkpoint is None):
            raise InvalidInput("give the checkpoint with --url or with --checkpoint FILE")
        if url is not None:
            body, path = fetch_from_url(url, w)
        else:
            body = read_small(checkpoint)
            path = None
            if proof is not None:
                try:
                    head = note.parse_checkpoint(note.parse_note(body).text)
                except note.NoteError as e:
                    raise InvalidInput(f"{checkpoint}: not a checkpoint: {e}") from None
                held = w.held(head.origin)
                try:
                    doc = json.loads(read_small(proof))
                except ValueError:
                    raise InvalidInput(
                        f"{proof} is not JSON: write it with `copytrail consistency OLD --json`"
                    ) from None
                if not isinstance(doc, dict):
                    raise InvalidInput(f"{proof} is not a consistency proof")
                path = read_proof(doc, held.size if held else 0, head.size)
        r = w.cosign(body, path)
        if out_file is not None:
            out_file.write_text(r["cosigned_note"], encoding="utf-8")
        if json_out:
            emit_json(r)
            return
        was = f" (extends size {r['previous_size']})" if r["previous_size"] else " (first seen)"
        out.print(f"[green]cosigned[/] {safe(r['origin'])} tree size {r['tree_size']}{was}")
        if out_file is None:
            out.print(safe(r["cosigned_note"]), end="")

    @app.command()
    def evidence(
        out_path: Annotated[Path, typer.Option("--out", help="The bundle to write (.zip).")],
        copy: Annotated[str | None, typer.Option("--copy", help="A copy (id or hash).")] = None,
        work: Annotated[str | None, typer.Option("--work", help="A work id (with --list).")] = None,
        list_name: Annotated[str | None, typer.Option("--list", help="Its works list.")] = None,
        deletion: Annotated[
            int | None, typer.Option("--deletion", help="A deletion number.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Write a self-contained evidence bundle: records, events, inclusion proofs, the signed
        checkpoint; `python -m copytrail.verify_bundle FILE` (or tools/verify_bundle.py)
        checks it offline."""
        from copytrail.cli.progress import RichPhaseProgress

        with open_lib() as lib, RichPhaseProgress() as progress:
            r = lib.evidence(
                out_path,
                copy=copy,
                work=work,
                list_name=list_name,
                deletion=deletion,
                progress=progress,
            )
        if json_out:
            emit_json(r)
            return
        out.print(
            f"bundle {safe(r['path'])}: {r['events']} events with inclusion proofs against "
            f"tree size {r['tree_size']}, {r['files']} files"
        )
        out.print(f"check it: python tools/verify_bundle.py {safe(r['path'])}")
