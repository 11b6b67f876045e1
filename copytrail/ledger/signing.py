"""The log's signing identity: an Ed25519 key kept in a file outside the ledger database, whose
public half (a C2SP verifier key) and every rotation are `signing` events in the log.

A rotation event carries the new verifier key signed by the old key, so someone who trusted the
old key can follow the log to the new one without asking the operator.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, select

from copytrail.atomic import write_atomic
from copytrail.errors import Conflict, InvalidInput, NotFound
from copytrail.ledger.events import EventWriter
from copytrail.ledger.note import (
    COSIGNATURE_V1,
    ED25519,
    NoteError,
    Signer,
    Verifier,
    check_key_name,
    parse_vkey,
)
from copytrail.ledger.schema import events

KEY_FILE_ENV = "COPYTRAIL_SIGNING_KEY"


def key_path(root: Path) -> Path:
    """Where the private key lives: $COPYTRAIL_SIGNING_KEY, else signing/log.key beside the
    ledger (move it to a secrets store and point the variable at it for production)."""
    env = os.environ.get(KEY_FILE_ENV)
    return Path(env) if env else root / "signing" / "log.key"


def history(conn: Connection) -> list[dict[str, Any]]:
    """Every signing key the log has announced, oldest first, with the event that did."""
    rows = conn.execute(
        select(events.c.seq, events.c.time, events.c.payload)
        .where(events.c.type == "signing")
        .order_by(events.c.seq)
    ).all()
    return [{"event_seq": r.seq, "time": r.time, **orjson.loads(r.payload)} for r in rows]


def log_verifiers(conn: Connection) -> list[Verifier]:
    return [parse_vkey(h["vkey"]) for h in history(conn) if h.get("vkey")]


def witness_verifiers(conn: Connection) -> list[Verifier]:
    """The witnesses whose cosignatures the log keeps (announced when first attached)."""
    return [parse_vkey(h["witness_vkey"]) for h in history(conn) if h.get("witness_vkey")]


def trust_witness(conn: Connection, ev: EventWriter, vkey: str) -> Verifier:
    """Announce a witness key in the log the first time one of its cosignatures is kept."""
    v = parse_vkey(vkey)
    if v.sig_type != COSIGNATURE_V1:
        raise InvalidInput(
            "a witness key is a cosignature key (type 0x04), as `witness init` prints"
        )
    if v.vkey not in {w.vkey for w in witness_verifiers(conn)}:
        ev.append(
            "signing", {"key_id": v.key_id.hex()}, {"action": "witness", "witness_vkey": v.vkey}
        )
    return v


def current(conn: Connection, root: Path) -> Signer | None:
    """The signer for new checkpoints, or None when the log has no identity yet. Refuses a key
    file that is not the key the log announced last."""
    keys = [h for h in history(conn) if h.get("vkey")]
    if not keys:
        return None
    path = key_path(root)
    if not path.exists():
        raise NotFound(
            f"the log signs with {keys[-1]['vkey']} but its private key is not at {path}; "
            f"set {KEY_FILE_ENV} to the key file"
        )
    signer = _read_key(path)
    if signer.verifier.vkey != keys[-1]["vkey"]:
        raise Conflict(
            f"the key at {path} ({signer.verifier.vkey}) is not the log's current key "
            f"({keys[-1]['vkey']}); point {KEY_FILE_ENV} at the right file"
        )
    return signer


def _read_key(path: Path) -> Signer:
    try:
        return Signer.from_skey(path.read_text(encoding="ascii"))
    except (NoteError, ValueError, UnicodeDecodeError) as e:
        raise InvalidInput(f"{path} is not a copytrail signing key: {e}") from None


def _write_key(path: Path, signer: Signer) -> None:
    write_atomic(path, (signer.skey() + "\n").encode("ascii"), 0o600)


def default_origin(conn: Connection) -> str:
    """A name unique to this log: the first event's hash names it (copies of a library share
    it, which is right: they are the same log until they fork)."""
    first = conn.execute(select(events.c.hash).where(events.c.seq == 1)).scalar()
    return f"copytrail.invalid/log-{(first or secrets.token_hex(32))[:16]}"


def create(
    conn: Connection, ev: EventWriter, root: Path, origin: str | None, rotate: bool
) -> dict[str, Any]:
    """Make the log's key (or, with `rotate`, replace it) and announce it in the log."""
    known = [h for h in history(conn) if h.get("vkey")]
    if known and not rotate:
        raise Conflict(
            f"the log already signs as {known[-1]['vkey']}; use --rotate to replace the key"
        )
    if rotate and not known:
        raise NotFound("the log has no signing key to rotate; create one first")
    old = current(conn, root) if rotate else None
    name = check_key_name(origin or (old.name if old else default_origin(conn)))
    signer = Signer.generate(name, ED25519)
    payload: dict[str, Any] = {
        "action": "rotated" if old else "created",
        "origin": name,
        "vkey": signer.verifier.vkey,
    }
    if old:
        payload["previous_vkey"] = old.verifier.vkey
        # The old key vouches for the new one: "copytrail key rotation\n<new vkey>\n".
        endorsement = old.sign_line(f"copytrail key rotation\n{signer.verifier.vkey}\n".encode())
        payload["endorsement"] = endorsement.strip()
    path = key_path(root)
    if path.exists():
        backup = path.with_name(f"{path.name}.{old.verifier.key_id.hex() if old else 'old'}")
        os.replace(path, backup)
    _write_key(path, signer)
    seq = ev.append("signing", {"key_id": signer.verifier.key_id.hex()}, payload)
    return {**payload, "event_seq": seq, "key_file": str(path)}


def describe(conn: Connection, root: Path) -> dict[str, Any]:
    events_ = history(conn)
    keys = [h for h in events_ if h.get("vkey")]
    if not keys:
        raise NotFound("the log has no signing key yet: run `copytrail key identity --create`")
    return {
        "origin": keys[-1]["origin"],
        "vkey": keys[-1]["vkey"],
        "key_file": str(key_path(root)),
        "key_file_present": key_path(root).exists(),
        "witnesses": [h["witness_vkey"] for h in events_ if h.get("witness_vkey")],
        "history": events_,
    }
