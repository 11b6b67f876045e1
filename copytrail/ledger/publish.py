"""Tree heads for others to hold: sign the checkpoint, time-stamp it, write it where it can be
published, and keep the cosignatures witnesses return.

Files under ROOT/log/ (safe to publish: hashes only):
    checkpoint                 the latest signed checkpoint, with any cosignatures
    checkpoints/<size>.note    every signed checkpoint
    checkpoints/<size>.tsr     its RFC 3161 time-stamp token, when one was asked for
    log.vkey                   the log's current verifier key
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from copytrail.atomic import write_atomic as _write
from copytrail.errors import InvalidInput, NotFound
from copytrail.ledger import checkpoint, note, signing, timestamp
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter

PUBLISH_DIR = "log"


def make(db: Engine, root: Path, actor: str, tsa_url: str | None = None) -> dict[str, Any]:
    """Record a checkpoint over every event, signed when the log has a key, and publish it."""
    with write_transaction(db) as conn:
        signer = signing.current(conn, root)
        cp = checkpoint.make_checkpoint(conn, actor, signer)
    if tsa_url:
        if not cp.get("note"):
            raise InvalidInput(
                "a time-stamp is put on a signed checkpoint: run `copytrail key identity "
                "--create` first"
            )
        text = note.parse_note(cp["note"]).text
        token = timestamp.encode(timestamp.request_token(tsa_url, text))
        with write_transaction(db) as conn:
            checkpoint.set_timestamp(conn, cp["id"], token)
        cp["timestamp_token"] = token
        cp["timestamp"] = timestamp.verify_token(timestamp.decode(token), text)
    if cp.get("note"):
        cp["published"] = str(write_files(root, cp))
    return cp


def write_files(root: Path, cp: dict[str, Any]) -> Path:
    folder = root / PUBLISH_DIR
    size = cp["tree_size"]
    _write(folder / "checkpoints" / f"{size}.note", cp["note"].encode())
    if cp.get("timestamp_token"):
        _write(folder / "checkpoints" / f"{size}.tsr", timestamp.decode(cp["timestamp_token"]))
    _write(folder / "checkpoint", cp["note"].encode())
    return folder / "checkpoint"


def identity(
    db: Engine,
    root: Path,
    actor: str,
    create: bool = False,
    rotate: bool = False,
    origin: str | None = None,
) -> dict[str, Any]:
    """Show the log's signing identity; create it, or rotate its key (an event either way)."""
    if create or rotate:
        with write_transaction(db) as conn:
            ev = EventWriter(conn, actor)
            made = signing.create(conn, ev, root, origin, rotate)
            ev.flush()
        _write(root / PUBLISH_DIR / "log.vkey", (made["vkey"] + "\n").encode())
    elif origin:
        raise InvalidInput("--origin names a new key: use it with --create")
    with read_connection(db) as conn:
        return signing.describe(conn, root)


def add_cosignatures(
    db: Engine, root: Path, actor: str, cosigned: bytes, witness_vkeys: list[str]
) -> dict[str, Any]:
    """Keep the cosignatures of the given witnesses on the checkpoint they signed; each witness
    key is announced in the log the first time."""
    if not witness_vkeys:
        raise InvalidInput("name the witness's key with --witness VKEY (`witness show` prints it)")
    with write_transaction(db) as conn:
        ev = EventWriter(conn, actor)
        witnesses = [signing.trust_witness(conn, ev, k) for k in witness_vkeys]
        ev.flush()
        try:
            out = checkpoint.add_cosignatures(conn, cosigned.decode("utf-8"), witnesses)
        except (note.NoteError, UnicodeDecodeError) as e:
            raise InvalidInput(f"not a cosigned checkpoint: {e}") from None
        row = checkpoint.checkpoint_by_id(conn, out["checkpoint_id"])
        latest = checkpoint.latest_checkpoint(conn)
    cp = {"tree_size": row.tree_size, "note": row.note, "timestamp_token": row.timestamp_token}
    if latest.id == row.id:
        write_files(root, cp)
    else:
        _write(root / PUBLISH_DIR / "checkpoints" / f"{row.tree_size}.note", row.note.encode())
    return out


def latest_note(db: Engine) -> str:
    with read_connection(db) as conn:
        cp = checkpoint.latest_checkpoint(conn)
    if cp is None or not cp.note:
        raise NotFound("this log has published no signed checkpoint yet")
    return cp.note
