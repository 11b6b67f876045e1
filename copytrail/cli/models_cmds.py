"""CLI for models: `train`, `probe`, `generate`, `model tokenizer`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from copytrail.cli.options import JsonOpt
from copytrail.cli.render import emit_json, err, out, safe


def register(app: typer.Typer, open_lib: Callable[[], Any]) -> None:
    model_app = typer.Typer(help="Model helpers (a model's own tokenizer).", no_args_is_help=True)
    app.add_typer(model_app, name="model")

    @app.command()
    def train(
        model: Annotated[str, typer.Option("--model", help="The model's name in the ledger.")],
        corpus: Annotated[str, typer.Option("--corpus", help="The corpus to train on.")],
        out_dir: Annotated[Path, typer.Option("--out", help="A new folder for the model.")],
        config: Annotated[
            str | None,
            typer.Option("--config", help="tiny or small: a GPT-2 style model from scratch."),
        ] = None,
        init: Annotated[
            Path | None,
            typer.Option("--init", help="Fine-tune this model (a folder or a .gguf file)."),
        ] = None,
        steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 300,
        seq_len: Annotated[int, typer.Option("--seq-len", help="Tokens per window.")] = 128,
        batch: Annotated[int, typer.Option(help="Windows per step.")] = 8,
        lr: Annotated[float | None, typer.Option(help="Learning rate.")] = None,
        seed: Annotated[int, typer.Option(help="Seed for initialisation and order.")] = 0,
        json_out: JsonOpt = False,
    ) -> None:
        """Train a causal LM on a corpus's shards with PyTorch and transformers; the run is
        recorded with the exact token ranges read and the saved model's hash."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        if config is None and init is None:
            config = "tiny"
        with open_lib() as lib, Progress(
            TextColumn("training"), BarColumn(), TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("loss {task.fields[loss]:.3f}"), TimeRemainingColumn(), console=err,
            transient=True,
        ) as bar:  # fmt: skip
            task = bar.add_task("train", total=steps, loss=0.0)
            r = lib.train(
                model, corpus, out_dir, config=config, init=init, steps=steps, seq_len=seq_len,
                batch=batch, lr=lr, seed=seed,
                progress=lambda done, total, loss: bar.update(task, completed=done, loss=loss),
            )  # fmt: skip
        if json_out:
            emit_json(r)
            return
        out.print(
            f"trained {safe(model)} ({r['steps']} steps, loss {r['first_loss']:.3f} -> "
            f"{r['final_loss']:.3f}) into {safe(r['path'])}; read {r['tokens_read']:,} tokens in "
            f"{r['reads']} ranges; run {r['run_id']}, ledger event {r['event_seq']}"
        )
        out.print(f"model SHA-256 {r['model_sha256']}")

    @app.command()
    def probe(
        model: Annotated[Path, typer.Option("--model", help="A model folder (or .gguf).")],
        out_dir: Annotated[Path, typer.Option("--out", help="Folder for the report (resumable).")],
        work: Annotated[str | None, typer.Option("--work", help="A work id (with --list).")] = None,
        list_name: Annotated[str | None, typer.Option("--list", help="Its works list.")] = None,
        copy: Annotated[str | None, typer.Option("--copy", help="A copy.")] = None,
        corpus: Annotated[str | None, typer.Option("--corpus", help="Sample this corpus.")] = None,
        sample: Annotated[int, typer.Option(help="Copies sampled from --corpus.")] = 5,
        prefix: Annotated[int, typer.Option(help="Prefix tokens per window.")] = 50,
        suffix: Annotated[int, typer.Option(help="Suffix tokens per window.")] = 50,
        stride: Annotated[int, typer.Option(help="Tokens between windows.")] = 50,
        threshold: Annotated[float, typer.Option(help="p_z threshold.")] = 0.5,
        controls: Annotated[int, typer.Option(help="Unseen control texts.")] = 3,
        json_out: JsonOpt = False,
    ) -> None:
        """Has the model memorized the work? p_z share, greedy extraction, longest verbatim run,
        Min-K%++, beside controls the lineage says it never read. Writes probe.json and
        report.html; a `probed` event."""
        from copytrail.cli.progress import RichPhaseProgress

        with open_lib() as lib, RichPhaseProgress("scoring windows") as progress:
            r = lib.probe(model, out_dir, work=work, list_name=list_name, copy=copy, corpus=corpus,
                          sample=sample, prefix=prefix, suffix=suffix, stride=stride,
                          threshold=threshold, controls=controls, progress=progress)  # fmt: skip
        if json_out:
            emit_json(r)
            return
        for x in r["results"]:
            if "error" in x:
                out.print(f"{safe(x['role'])} {safe(x['label'])}: {safe(x['error'])}")
                continue
            out.print(
                f"{safe(x['role']):<8} {safe(x['label'])}: {x.get('windows', 0)} windows, p_z>= "
                f"{threshold} in {x.get('pz_share', 0):.0%}, greedy exact "
                f"{x.get('greedy_exact_rate', 0):.0%}, longest run {x.get('longest_run_words', 0)} "
                f"words, Min-K%++ {x.get('min_k_pp', 0):.2f}"
            )
        out.print(f"report: {safe(r['out'])}/report.html (ledger event {r['event_seq']})")

    @app.command()
    def generate(
        model: Annotated[Path, typer.Option("--model", help="A model folder (or .gguf).")],
        prompt: Annotated[str, typer.Option("--prompt", help="The text to continue.")],
        guard: Annotated[
            str | None, typer.Option("--guard", "-g", help="Block verbatim runs of this index.")
        ] = None,
        min_words: Annotated[
            int, typer.Option("--min-words", min=2, help="Longest run allowed + 1.")
        ] = 50,
        max_tokens: Annotated[int, typer.Option("--max-tokens", help="Tokens to generate.")] = 100,
        json_out: JsonOpt = False,
    ) -> None:
        """Greedy generation; with --guard, a token that would complete a verbatim run of
        min-words protected words is masked and the next best taken (MemFree decoding)."""
        with open_lib() as lib:
            r = lib.guarded_generate(model, prompt, guard, min_words, max_tokens)
        if json_out:
            emit_json(r)
            return
        out.print(safe(r["text"]))
        g = r["guard"]
        cost = f"; guard masked {g['masked']} tokens, {g['ms_per_token']} ms per token" if g else ""
        err.print(f"{r['tokens']} tokens, {r['ms_per_token']} ms per token{cost}")

    @model_app.command("tokenizer")
    def model_tokenizer(
        init: Annotated[Path, typer.Option("--init", help="The model (folder or .gguf).")],
        out_path: Annotated[Path, typer.Option("--out", help="tokenizer.json to write.")],
        json_out: JsonOpt = False,
    ) -> None:
        """Write a model's own tokenizer as tokenizer.json, to build a corpus that feeds it."""
        from copytrail.models.train import export_tokenizer

        r = export_tokenizer(init, out_path)
        if json_out:
            emit_json(r)
            return
        out.print(f"wrote {safe(r['path'])} ({r['vocab_size']} tokens)")
