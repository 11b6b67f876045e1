"""CLI for building training data: `tokenizer train`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.cli.options import JsonOpt, WorkersOpt
from copytrail.cli.render import emit_json, err, out, safe, table
from copytrail.errors import InvalidInput


def register(app: typer.Typer, open_lib: Callable[..., Any]) -> None:
    tok_app = typer.Typer(help="Tokenizers trained on the library's texts.", no_args_is_help=True)
    app.add_typer(tok_app, name="tokenizer")

    corpus_app = typer.Typer(help="Corpora built under a policy.", no_args_is_help=True)
    app.add_typer(corpus_app, name="corpus")

    @app.command()
    def build(
        corpus: str,
        policy: Annotated[Path, typer.Option("--policy", help="Policy TOML file.")],
        workers: WorkersOpt = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Build a training corpus: every copy of the policy's datasets gets a recorded fate;
        included copies are tokenized into shards with a lineage table."""
        with open_lib(workers) as lib:
            err.print(f"building {safe(corpus)}…")
            r = lib.build(corpus, policy)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"corpus [bold]{safe(corpus)}[/]: {r['documents']} documents, "
            f"{r['tokens']:,} tokens in "
            f"{len(r['shards'])} shard(s) of {safe(r['dtype'])} at {safe(r['path'])}; "
            f"{safe(r['considered'] - r['documents'])} of {r['considered']} copies excluded"
        )
        if r["excluded_by_rule"]:
            table(
                "excluded",
                ["rule", "copies"],
                [[k, v] for k, v in r["excluded_by_rule"].items()],
            )

    @corpus_app.command("show")
    def corpus_show(name: str, json_out: JsonOpt = False) -> None:
        """What a corpus is made of: tokens and documents by source kind, dataset, license."""
        with open_lib() as lib:
            r = lib.corpus(name)
        if json_out:
            emit_json(r)
            return
        out.print(
            f"corpus [bold]{safe(name)}[/]: {r['documents']} documents, {r['tokens']:,} tokens, "
            f"{len(r['shards'])} shard(s); policy {r['policy_sha256'][:12]}, "
            f"tokenizer {r['tokenizer_sha256'][:12]}, manifest {r['manifest_sha256'][:12]}"
        )
        for key, label in (
            ("by_source_kind", "source_kind"),
            ("by_dataset", "dataset"),
            ("by_license", "license"),
        ):
            table(
                key.replace("_", " "),
                [label, "documents", "tokens", "share"],
                [
                    [g[label], g["documents"], f"{g['tokens']:,}", f"{100 * g['share']:.1f}%"]
                    for g in r[key]
                ],
            )
        table("excluded", ["rule", "copies"], [[k, v] for k, v in r["excluded_by_rule"].items()])

    run_app = typer.Typer(
        help="Training runs: which model read which corpus.", no_args_is_help=True
    )
    app.add_typer(run_app, name="run")

    @run_app.command("record")
    def run_record(
        model: Annotated[str, typer.Option("--model", help="The model trained.")],
        corpus: Annotated[str, typer.Option("--corpus", help="The corpus it was trained on.")],
        shards: Annotated[
            str | None,
            typer.Option("--shards", help="Shard numbers read, e.g. 0,1,2 (default all)."),
        ] = None,
        started: Annotated[str | None, typer.Option(help="ISO time the run started.")] = None,
        finished: Annotated[str | None, typer.Option(help="ISO time the run finished.")] = None,
        notes: Annotated[str | None, typer.Option(help="Free text.")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Record a training run made by any trainer."""
        shard_list = None
        if shards:
            try:
                shard_list = [int(x) for x in shards.split(",") if x.strip()]
            except ValueError as e:
                raise InvalidInput(f"--shards {shards!r}: give shard numbers like 0,1,2") from e
        with open_lib() as lib:
            r = lib.record_run(model, corpus, shard_list, started, finished, notes)
        if json_out:
            emit_json(r)
        else:
            which = "all shards" if r["shards"] is None else f"shards {r['shards']}"
            out.print(
                f"run #{r['id']}: model [bold]{safe(model)}[/] trained on {safe(corpus)} "
                f"({safe(which)}), "
                f"event {r['event_seq']}"
            )

    @app.command()
    def trace(
        copy: Annotated[
            str | None, typer.Option("--copy", help="Copy id or SHA-256 prefix.")
        ] = None,
        work: Annotated[
            str | None, typer.Option("--work", help="Work id (of a works list).")
        ] = None,
        works_list: Annotated[str | None, typer.Option("--list", help="The work's list.")] = None,
        dataset: Annotated[str | None, typer.Option("--dataset", "-d", help="A dataset.")] = None,
        model: Annotated[str | None, typer.Option("--model", help="A model (backward).")] = None,
        received_after: Annotated[
            str | None,
            typer.Option("--received-after", help="Models that read data received after a date."),
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Where data went (copy, work, dataset -> corpora, shards, runs, models) or where a
        model's tokens came from (by dataset, source, source kind)."""
        with open_lib() as lib:
            r = lib.trace(copy, work, works_list, dataset, model, received_after)
        if json_out:
            emit_json(r)
            return
        if model is not None:
            out.print(
                f"model [bold]{safe(model)}[/]: {r['tokens']:,} tokens over {len(r['runs'])} run(s)"
            )
            for key, label in (("by_source_kind", "source_kind"), ("by_dataset", "dataset")):
                table(
                    key.replace("_", " "),
                    [label, "tokens", "share"],
                    [[g[label], f"{g['tokens']:,}", f"{100 * g['share']:.1f}%"] for g in r[key]],
                )
            if r.get("copies_read"):
                table(
                    "copies whose tokens the model read (recorded by `copytrail train`)",
                    ["copy", "dataset", "tokens", "read", "times (max)"],
                    [
                        [c["copy_id"], c["dataset"], f"{c['tokens']:,}", f"{c['tokens_seen']:,}",
                         c["max_times"]]
                        for c in r["copies_read"][:200]
                    ],
                )  # fmt: skip
        elif received_after is not None:
            table(
                f"models that read data received on or after {received_after}",
                ["model", "copies", "tokens"],
                [[m["model"], m["copies"], f"{m['tokens']:,}"] for m in r["models"]],
            )
        else:
            table(
                f"where {r['copies']} copies went",
                ["corpus", "included", "tokens", "shards", "excluded (rule)", "runs -> models"],
                [
                    [
                        c["corpus"],
                        c["included"],
                        f"{c['tokens']:,}",
                        ",".join(map(str, c["shards"])),
                        ", ".join(f"{k} {v}" for k, v in c["excluded_by_rule"].items()),
                        ", ".join(f"#{u['run_id']} {u['model']}" for u in c["runs"]),
                    ]
                    for c in r["corpora"]
                ],
            )
            out.print(f"models: {safe(', '.join(r['models']) or 'none')}")

    @tok_app.command("train")
    def tokenizer_train(
        dataset: Annotated[
            list[str], typer.Option("--dataset", "-d", help="Train on this dataset (repeatable).")
        ],
        vocab: Annotated[int, typer.Option("--vocab", help="Vocabulary size.")] = 32_000,
        out_path: Annotated[
            Path, typer.Option("--out", help="Where to write tokenizer.json.")
        ] = Path("tokenizer.json"),
        json_out: JsonOpt = False,
    ) -> None:
        """Train a byte-level BPE tokenizer (Hugging Face tokenizers) on the datasets' texts."""
        with open_lib() as lib:
            err.print("training (texts are read in SHA-256 order)…")
            r = lib.train_tokenizer(dataset, vocab, out_path)
        if json_out:
            emit_json(r)
        else:
            out.print(
                f"tokenizer [bold]{safe(r['path'])}[/]: {r['vocab_size']} tokens from "
                f"{r['texts']} texts, sha256 {r['sha256'][:16]}…, event {r['event_seq']}"
            )
