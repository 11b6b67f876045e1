"""CLI for other tools' formats: `export croissant`, `export hf`, and `produce` (discovery
productions with Concordance load files). (OpenLineage needs no command:
configure the openlineage-python client and ingest, audit, build, run record and delete emit.)"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.cli.options import JsonOpt
from copytrail.cli.render import emit_json, out, safe


def register(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    export_app = typer.Typer(
        help="Describe datasets and corpora in other tools' formats.", no_args_is_help=True
    )
    app.add_typer(export_app, name="export")

    @export_app.command("croissant")
    def export_croissant(
        out_path: Annotated[Path, typer.Option("--out", help="The JSON-LD file to write.")],
        dataset: Annotated[
            str | None, typer.Option("--dataset", help="A dataset (NAME@VERSION).")
        ] = None,
        corpus: Annotated[str | None, typer.Option("--corpus", help="A built corpus.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Croissant 1.1 (MLCommons) JSON-LD: files with SHA-256, record sets, Responsible-AI
        fields and provenance. Check it with `mlcroissant validate --jsonld FILE`."""
        with open_lib() as lib:
            r = lib.export_croissant(out_path, dataset=dataset, corpus=corpus)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"wrote {safe(r['path'])}: {safe(r['name'])}, {r['files']} files, record sets "
            f"{', '.join(safe(n) for n in r['record_sets'])}"
        )

    @export_app.command("hf")
    def export_hf(
        corpus: Annotated[str, typer.Option("--corpus", help="A built corpus.")],
        out_path: Annotated[Path, typer.Option("--out", help="Folder for save_to_disk.")],
        json_out: JsonOpt = False,
    ) -> None:
        """A corpus's documents with their lineage columns (copy_id, dataset, source, ...) as a
        Hugging Face dataset on disk; `datasets.load_from_disk(OUT)` reads it."""
        with open_lib() as lib:
            r = lib.save_corpus_dataset(corpus, out_path)
        if json_out:
            emit_json(r)
            return
        out.print(f"wrote {r['rows']} documents of corpus {safe(corpus)} to {safe(r['path'])}")


def register_production(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    @app.command()
    def produce(
        request: Annotated[
            str, typer.Option("--request", help="The request answered, e.g. 'RFP 12'.")
        ],
        out_path: Annotated[Path, typer.Option("--out", help="A new folder for the production.")],
        list_name: Annotated[
            str | None, typer.Option("--list", help="Copies an audit matched to this works list.")
        ] = None,
        work: Annotated[
            list[str] | None,
            typer.Option("--work", help="Copies matched to this work (repeatable)."),
        ] = None,
        dataset: Annotated[
            list[str] | None,
            typer.Option("--dataset", help="Every copy of this dataset (repeatable)."),
        ] = None,
        with_text: Annotated[
            bool, typer.Option("--with-text", help="Include the texts (a recorded disclosure).")
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """A production for discovery: manifest (CSV, JSON) with Bates numbers, a Concordance
        DAT load file, the texts when asked; recorded as a `produced` event."""
        with open_lib() as lib:
            r = lib.produce(request, out_path, list_name, work, dataset, with_text)
        if json_out:
            emit_json(r)
            return
        rng = f" ({r['bates'][0]}-{r['bates'][1]})" if r["bates"] else ""
        out.print(
            f"produced {r['items']} copies{rng} for {safe(r['request'])} in {safe(r['out'])}; "
            f"{r['texts']} texts; ledger event {r['event_seq']}"
        )
