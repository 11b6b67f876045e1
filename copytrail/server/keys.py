"""API keys and roles for the HTTP API. A key is shown once when made; the ledger keeps its hash."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from sqlalchemy import Engine, insert, select, update

from copytrail.catalog.digest import key_check
from copytrail.catalog.records import next_id
from copytrail.catalog.schema import api_keys
from copytrail.errors import Conflict, InvalidInput, NotFound
from copytrail.ledger.db import read_connection, write_transaction
from copytrail.ledger.events import EventWriter, utc_now

# What each role may do. checker: the output filter only. auditor: also read the ledger,
# reports and search snippets, never the full text of a copy. admin: everything.
ROLES: dict[str, frozenset[str]] = {
    "checker": frozenset({"check"}),
    "auditor": frozenset({"check", "read"}),
    "admin": frozenset({"check", "read", "text", "admin"}),
}
KEY_PREFIX = "ct_"


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()


def add_key(engine: Engine, name: str, role: str, actor: str) -> dict[str, Any]:
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if not name.strip():
        raise InvalidInput("a key needs a name, e.g. the service or person that uses it")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    with write_transaction(engine) as conn:
        if conn.execute(select(api_keys.c.id).where(api_keys.c.name == name)).first():
            raise Conflict(f"a key named {name!r} exists; revoke it first or pick another name")
        key_id = next_id(conn, api_keys.c.id)
        row = {
            "id": key_id,
            "name": name,
            "role": role,
            "key_sha256": _hash(key),
            "prefix": key[:10],
            "created": utc_now(),
            "actor": actor,
            "revoked": None,
        }
        _record_access(conn, actor, "granted", row)
        conn.execute(insert(api_keys), [row])
    return {**_public(row), "key": key}


def _record_access(conn: Any, actor: str, action: str, row: Any) -> None:
    """Who could read what, and from when, is custody evidence: an `access` event in the same
    transaction as the change. Never the key, nor its hash: the prefix names it, and a hash of
    the stored hash (which cannot authenticate anyone) lets `verify` catch a swapped key."""
    r = dict(row._asdict() if hasattr(row, "_asdict") else row)
    ev = EventWriter(conn, actor)
    payload = {"action": action, "name": r["name"], "role": r["role"], "prefix": r["prefix"]}
    if action == "granted":
        payload["key_check"] = key_check(r["key_sha256"])
    ev.append("access", {"key_id": r["id"]}, payload)
    ev.flush()


def _public(row: Any) -> dict[str, Any]:
    d = dict(row._asdict() if hasattr(row, "_asdict") else row)
    d.pop("key_sha256", None)
    return d


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    with read_connection(engine) as conn:
        return [_public(r) for r in conn.execute(select(api_keys).order_by(api_keys.c.id))]


def revoke_key(engine: Engine, name: str, actor: str) -> dict[str, Any]:
    with write_transaction(engine) as conn:
        row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
        if row is None:
            raise NotFound(f"no key named {name!r}; see `copytrail key ls`")
        if row.revoked is None:
            _record_access(conn, actor, "revoked", row)
            conn.execute(update(api_keys).where(api_keys.c.name == name).values(revoked=utc_now()))
        row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
    return _public(row)


def authenticate(engine: Engine, key: str) -> dict[str, Any] | None:
    """The key's name and role, or None for an unknown or revoked key."""
    if not key or len(key) > 200:
        return None
    with read_connection(engine) as conn:
        row = conn.execute(
            select(api_keys.c.name, api_keys.c.role, api_keys.c.revoked).where(
                api_keys.c.key_sha256 == _hash(key)
            )
        ).first()
    if row is None or row.revoked is not None:
        return None
    return {"name": row.name, "role": row.role}
