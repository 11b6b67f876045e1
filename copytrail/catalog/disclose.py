"""Disclosure of a copy's text is custody evidence: every read of a text through the API, the
console, `produce` or the Python API is a `disclosed` event saying who, what, when and why,
written before the text is handed over."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine

from copytrail.catalog.queries import copy_text
from copytrail.errors import InvalidInput
from copytrail.ledger.events import append_event
from copytrail.store.blobs import BlobStore

MAX_REASON = 2000
CHANNELS = ("python", "api", "console", "produce", "cli")


def check_reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise InvalidInput(
            "say why the text is disclosed (a reason is required and recorded in the ledger)"
        )
    if len(text) > MAX_REASON:
        raise InvalidInput(f"a reason of at most {MAX_REASON} characters")
    return text


def record(
    db: Engine,
    who: str,
    copy_ids: Sequence[int],
    reason: str,
    channel: str,
    request: str | None = None,
) -> int:
    """The `disclosed` event for texts about to be handed over; returns its sequence number."""
    if channel not in CHANNELS:
        raise InvalidInput(f"unknown disclosure channel {channel!r}")
    payload: dict[str, Any] = {"reason": check_reason(reason), "channel": channel}
    if request:
        payload["request"] = request
    return append_event(db, who, "disclosed", {"copy_ids": sorted(copy_ids)}, payload)


def disclose_text(
    db: Engine, store: BlobStore, who: str, ref: str | int, reason: str, channel: str
) -> dict[str, Any]:
    """A copy's text, with the event that records its disclosure."""
    from copytrail.catalog.queries import find_copy
    from copytrail.ledger.db import read_connection

    check_reason(reason)
    with read_connection(db) as conn:
        cid = find_copy(conn, ref)["id"]
    text = copy_text(db, store, cid)  # raises before anything is recorded if the text is gone
    seq = record(db, who, [cid], reason, channel)
    return {"copy": cid, "text": text, "event_seq": seq}
