"""CLI for building training data: `tokenizer train`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.cli.render import emit_json, err, out

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def register(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    tok_app = typer.Typer(help="Tokenizers trained on the library's texts.", no_args_is_help=True)
    app.add_typer(tok_app, name="tokenizer")

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
                f"tokenizer [bold]{r['path']}[/]: {r['vocab_size']} tokens from "
                f"{r['texts']} texts, sha256 {r['sha256'][:16]}…, event {r['event_seq']}"
            )
