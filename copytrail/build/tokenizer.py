"""Byte-level BPE tokenizers trained on the library's own texts (Hugging Face `tokenizers`).

Nothing is downloaded: a tokenizer is trained here or loaded from a `tokenizer.json` file. The
file's SHA-256 is what a corpus manifest records, so a build names the exact tokenizer it used.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select

from copytrail.catalog.queries import dataset_id
from copytrail.catalog.schema import copies
from copytrail.context import Context
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger.db import read_connection
from copytrail.ledger.events import append_event

EOS = "<|endoftext|>"  # separates documents in shards; always token id 0
PIECE_CHARS = 1 << 20  # texts reach the trainer in pieces of about a million characters


def load_tokenizer(path: str | os.PathLike) -> Any:
    from tokenizers import Tokenizer

    p = Path(path)
    if not p.is_file():
        raise NotFound(
            f"no tokenizer at {p}; train one: copytrail tokenizer train --dataset D --out {p}"
        )
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as e:  # the library raises plain Exception on a malformed file
        raise InvalidInput(f"{p} is not a tokenizer.json file ({e})") from e
    if tok.token_to_id(EOS) is None:
        raise InvalidInput(
            f"{p} has no {EOS} token to separate documents; train one with "
            "`copytrail tokenizer train`, or add it as a special token"
        )
    return tok


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def train_tokenizer(
    ctx: Context, dataset_refs: list[str], vocab_size: int, out: str | os.PathLike
) -> dict[str, Any]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    if not dataset_refs:
        raise InvalidInput("train on at least one dataset: --dataset NAME@VERSION")
    if not 257 <= vocab_size <= 1_000_000:
        raise InvalidInput("--vocab must be between 257 (the bytes and EOS) and 1,000,000")
    with read_connection(ctx.db) as conn:
        ids = [dataset_id(conn, d) for d in dataset_refs]
        shas = sorted(
            {
                r.text_sha256
                for r in conn.execute(
                    select(copies.c.text_sha256).where(
                        and_(
                            copies.c.dataset_id.in_(ids),
                            copies.c.status == "ok",
                            copies.c.text_sha256.is_not(None),
                        )
                    )
                )
            }
        )
    if not shas:
        raise InvalidInput("those datasets hold no readable text to train on")

    def pieces() -> Iterator[str]:
        for sha in shas:  # sorted: the same library state gives the same training order
            text = ctx.store.get(sha).decode("utf-8")
            for i in range(0, len(text), PIECE_CHARS):
                yield text[i : i + PIECE_CHARS]

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(pieces(), trainer=trainer)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    tok.save(str(tmp))
    os.replace(tmp, out_path)
    sha = file_sha256(out_path)
    seq = append_event(
        ctx.db,
        ctx.actor,
        "produced",
        {"tokenizer_sha256": sha},
        {
            "artifact": "tokenizer",
            "path": str(out_path.resolve()),
            "datasets": sorted(dataset_refs),
            "texts": len(shas),
            "vocab_size": tok.get_vocab_size(),
        },
    )
    return {
        "path": str(out_path),
        "sha256": sha,
        "vocab_size": tok.get_vocab_size(),
        "texts": len(shas),
        "datasets": dataset_refs,
        "event_seq": seq,
    }
