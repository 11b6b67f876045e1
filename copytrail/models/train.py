"""`copytrail train`: train or fine-tune a causal language model on a corpus's token shards and
record the run with exactly which token ranges of which shards it read, and how many times.

The shards are read as a nanoGPT loader reads them (numpy memmap); windows of seq_len + 1 tokens
never cross a shard. Every window a step consumes is counted in a difference array per shard,
so the record is a short list of (shard, start, end, times) intervals however long the run.
`trace --model` turns them into the copies whose tokens the model saw.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from copytrail.build.trace import record_run
from copytrail.catalog.schema import corpora
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import utc_now
from copytrail.models import loading

CONFIGS = {
    "tiny": {"n_embd": 128, "n_layer": 2, "n_head": 4},
    "small": {"n_embd": 256, "n_layer": 4, "n_head": 8},
}
RUN_FILE = "copytrail-run.json"


def _corpus(ctx: Context, name: str) -> tuple[Any, dict[str, Any]]:
    with read_connection(ctx.db) as conn:
        c = conn.execute(corpora.select().where(corpora.c.name == name)).first()
    if c is None:
        raise NotFound(f"no corpus {name!r}; build one with `copytrail build`")
    return c, json.loads((Path(c.path) / "manifest.json").read_text(encoding="utf-8"))


def _windows(shards: list[np.ndarray], seq_len: int, offset: int = 0) -> list[tuple[int, int]]:
    """One epoch's windows: a grid of seq_len steps shifted by `offset` (a new one each epoch,
    so the model sees text at every alignment, as it will be prompted), plus the head and the
    tail window so every token is read every epoch."""
    out = []
    for s, arr in enumerate(shards):
        n = len(arr)
        if n < 2:
            continue
        span = min(seq_len + 1, n)
        starts = {0, n - span, *range(offset % max(1, n - span + 1), n - span + 1, seq_len)}
        out += [(s, st) for st in sorted(starts)]
    return out


def reads_from_counts(counts: list[np.ndarray]) -> list[dict[str, int]]:
    """Difference arrays per shard -> (shard, start, end, times) intervals of equal count."""
    out = []
    for s, diff in enumerate(counts):
        cover = np.cumsum(diff[:-1])
        if not cover.any():
            continue
        change = np.flatnonzero(np.diff(cover)) + 1
        bounds = np.concatenate([[0], change, [len(cover)]])
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if cover[a]:
                out.append({"shard": s, "token_start": int(a), "token_end": int(b),
                            "times": int(cover[a])})  # fmt: skip
    return out


def train(
    ctx: Context,
    model_name: str,
    corpus: str,
    out: str | os.PathLike,
    config: str | None = "tiny",
    init: str | os.PathLike | None = None,
    steps: int = 300,
    seq_len: int = 128,
    batch: int = 8,
    lr: float | None = None,
    seed: int = 0,
    progress: Callable[[int, int, float], None] | None = None,
) -> dict[str, Any]:
    loading.offline()
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    if (config is None) == (init is None):
        raise InvalidInput(
            "start from --config tiny|small or from --init MODEL (a folder or .gguf)"
        )
    if config is not None and config not in CONFIGS:
        raise InvalidInput(f"--config is one of {', '.join(CONFIGS)}")
    if not (1 <= steps <= 10_000_000 and 8 <= seq_len <= 8192 and 1 <= batch <= 4096):
        raise InvalidInput("steps 1..10^7, seq-len 8..8192, batch 1..4096")
    out_dir = Path(out)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(f"{out_dir} is not empty: a trained model goes to a new folder")
    c, manifest = _corpus(ctx, corpus)
    folder = Path(c.path)
    dtype = np.dtype(manifest.get("dtype", "uint16"))
    shards = [np.memmap(folder / s["file"], dtype=dtype, mode="r") for s in manifest["shards"]]
    windows = _windows(shards, seq_len)
    if not windows:
        raise InvalidInput(f"corpus {corpus!r} has no tokens to train on")
    vocab = int(manifest["tokenizer"]["vocab_size"])
    tok_file = _tokenizer_file(manifest, folder) if init is None else None  # before any training
    torch.manual_seed(seed)
    rng = random.Random(seed)
    if init is not None:
        model, _tok = loading.load(init)
        if model.config.vocab_size < vocab:
            raise InvalidInput(
                f"the corpus was tokenized with a vocabulary of {vocab}, larger than the model's "
                f"{model.config.vocab_size}: build it with the model's tokenizer "
                "(`copytrail model tokenizer --init MODEL --out tokenizer.json`)"
            )
        model.train()
        lr = lr or 5e-5
    else:
        from transformers import GPT2Config, GPT2LMHeadModel

        eos = int(manifest["tokenizer"].get("eos_id", 0))
        cfg = GPT2Config(vocab_size=vocab, n_positions=max(seq_len + 1, 1024), bos_token_id=eos,
                         eos_token_id=eos, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
                         **CONFIGS[config])  # fmt: skip
        model = GPT2LMHeadModel(cfg)
        lr = lr or 5e-3
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    # Linear warm-up over the first 5% of steps, then cosine decay to a tenth of the rate.
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda i: (
            min(1.0, (i + 1) / warm)
            * (0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, i / max(1, steps - 1)))))
        ),
    )
    counts = [np.zeros(len(a) + 1, dtype=np.int64) for a in shards]
    order: list[tuple[int, int]] = []
    started, t0 = utc_now(), time.monotonic()
    losses = []
    span = seq_len + 1
    for step in range(steps):
        rows = []
        for _ in range(batch):
            if not order:
                order = _windows(shards, seq_len, rng.randrange(seq_len))
                rng.shuffle(order)
            s, st = order.pop()
            end = min(st + span, len(shards[s]))
            rows.append(np.asarray(shards[s][st:end], dtype=np.int64))
            counts[s][st] += 1
            counts[s][end] -= 1
        width = min(len(r) for r in rows)
        x = torch.from_numpy(np.stack([r[:width] for r in rows]))
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if progress:
            progress(step + 1, steps, losses[-1])
    finished = utc_now()
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    if init is None:
        shutil.copyfile(str(tok_file), out_dir / "tokenizer.json")
    elif Path(init).is_dir():
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
            if (Path(init) / name).exists():
                shutil.copyfile(Path(init) / name, out_dir / name)
    else:
        _tok.save_pretrained(out_dir)
    sha = loading.model_sha256(out_dir)
    reads = reads_from_counts(counts)
    tokens_read = sum((r["token_end"] - r["token_start"]) * r["times"] for r in reads)
    run = record_run(
        ctx, model_name, corpus, started=started, finished=finished,
        notes=f"copytrail train: {steps} steps of {batch} x {seq_len} tokens",
        reads=reads, model_sha256=sha,
        training={"steps": steps, "batch": batch, "seq_len": seq_len, "lr": lr, "seed": seed,
                  "config": config, "init": str(init) if init else None,
                  "final_loss": round(losses[-1], 4), "seconds": round(time.monotonic() - t0, 1)},
    )  # fmt: skip
    info = {"model": model_name, "model_sha256": sha, "corpus": corpus, "run_id": run["id"],
            "event_seq": run["event_seq"], "reads": reads, "tokens_read": tokens_read,
            "final_loss": losses[-1], "first_loss": losses[0], "steps": steps}  # fmt: skip
    (out_dir / RUN_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
    return {**info, "path": str(out_dir), "reads": len(reads)}


def _tokenizer_file(manifest: dict[str, Any], folder: Path) -> Path:
    """The tokenizer the corpus was built with, found by its recorded path (as given to the
    build, relative to where it ran, or to the corpus) and checked by its SHA-256."""
    import hashlib

    tok = manifest["tokenizer"]
    p = Path(tok["path"])
    for candidate in (p, Path.cwd() / p, folder / p, folder / p.name):
        if (
            candidate.is_file()
            and hashlib.sha256(candidate.read_bytes()).hexdigest() == tok["sha256"]
        ):
            return candidate
    raise NotFound(
        f"the corpus's tokenizer {p} (SHA-256 {tok['sha256'][:12]}...) is not where the build "
        "found it; run train from the folder the build ran in, or rebuild the corpus"
    )


def export_tokenizer(init: str | os.PathLike, out: str | os.PathLike) -> dict[str, Any]:
    """The model's own tokenizer as a tokenizer.json, so a corpus built with it feeds the model
    directly (name it as the policy's `tokenizer`)."""
    _model, tok = loading.load(init)
    if not getattr(tok, "is_fast", False):
        raise InvalidInput("the model's tokenizer has no fast (tokenizer.json) form")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    tok.backend_tokenizer.save(str(out))
    return {"path": str(out), "vocab_size": tok.backend_tokenizer.get_vocab_size()}
