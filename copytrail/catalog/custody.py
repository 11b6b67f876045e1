"""Every catalog row that carries custody meaning, checked against the events that made it.

Copies, sources and datasets are checked in checker.py as the log streams past. The rest are
few rows per operation (a build, an audit, a hold, a key), so their events are collected while
the log streams and the tables are then checked row by row:

    corpora       the build's included/excluded/produced events (counts, hashes, path)
    corpus_docs   the row digest in the build's excluded event (every fate of every copy)
    runs          the trained event (model, corpus, shards, times, notes)
    holds         the held events (add, and release when released)
    works_lists   the acquired event of each import; works rows: the list's row digest
    audits        the matched and produced events (list, datasets, params, out_dir);
    matches       the row digest in the matched event
    api_keys      the access events (name, role, prefix, a check of the key's hash, revoked)

Rows written before their event carried a digest are counted in a note, not a problem.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from copytrail.canonical import parse_json
from copytrail.catalog.digest import (
    DOC_COLUMNS,
    MATCH_COLUMNS,
    READ_COLUMNS,
    WORK_COLUMNS,
    key_check,
    table_digest,
)
from copytrail.catalog.schema import (
    api_keys,
    audits,
    corpora,
    corpus_docs,
    holds,
    matches,
    run_reads,
    runs,
    works,
    works_lists,
)
from copytrail.ledger.events import Event
from copytrail.ledger.verify import VerifyReport

# (event type, subject key) -> what it vouches for
_WATCHED = {
    ("included", "corpus_id"),
    ("excluded", "corpus_id"),
    ("produced", "corpus_id"),
    ("trained", "run_id"),
    ("held", "hold_id"),
    ("acquired", "works_list_id"),
    ("matched", "audit_id"),
    ("produced", "audit_id"),
    ("access", "key_id"),
}


class CustodyEvents:
    """Collects the events that vouch for the small custody tables while the log streams."""

    def __init__(self) -> None:
        self.by: dict[tuple[str, str], dict[Any, list[Event]]] = defaultdict(
            lambda: defaultdict(list)
        )

    def see(self, ev: Event) -> None:
        for key in ev.subjects:
            if (ev.type, key) in _WATCHED:
                self.by[(ev.type, key)][ev.subjects[key]].append(ev)

    def _one(self, type_: str, key: str, ident: Any) -> Event | None:
        found = self.by[(type_, key)].get(ident)
        return found[-1] if found else None

    def check(self, conn: Connection, report: VerifyReport) -> None:
        undigested = 0
        undigested += self._corpora(conn, report)
        self._runs(conn, report)
        self._holds(conn, report)
        undigested += self._works(conn, report)
        undigested += self._audits(conn, report)
        undigested += self._keys(conn, report)
        if undigested:
            report.notes.append(
                f"{undigested} rows were written before their events carried a digest of them "
                "(an older copytrail); they are checked by their summary fields only"
            )

    def _missing(self, report: VerifyReport, table: str, ident: Any, what: str) -> None:
        report.problem(f"{table} {ident}: no {what} event records it")

    def _corpora(self, conn: Connection, report: VerifyReport) -> int:
        old = 0
        for row in conn.execute(select(corpora)):
            inc = self._one("included", "corpus_id", row.id)
            exc = self._one("excluded", "corpus_id", row.id)
            made = self._one("produced", "corpus_id", row.id)
            if inc is None or exc is None or made is None:
                self._missing(report, "corpus", row.id, "included/excluded/produced")
                continue
            claims = {
                "name": (row.name, inc.subjects.get("corpus")),
                "event_seq": (row.event_seq, inc.seq),
                "documents": (row.documents, inc.payload.get("documents")),
                "tokens": (row.tokens, inc.payload.get("tokens")),
                "manifest_sha256": (row.manifest_sha256, made.payload.get("manifest_sha256")),
                "policy_sha256": (row.policy_sha256, made.payload.get("policy_sha256")),
                "tokenizer_sha256": (row.tokenizer_sha256, made.payload.get("tokenizer_sha256")),
                "path": (row.path, made.payload.get("path")),
            }
            _differs(report, f"corpus {row.id}", claims)
            want = exc.payload.get("docs_sha256")
            if want is None:
                old += 1
            elif table_digest(conn, corpus_docs, DOC_COLUMNS, corpus_id=row.id) != want:
                report.problem(
                    f"corpus {row.id}: its documents' fates differ from the build's event "
                    f"{exc.seq} (rows of corpus_docs were changed, added or removed)"
                )
        return old

    def _runs(self, conn: Connection, report: VerifyReport) -> None:
        for row in conn.execute(select(runs)):
            ev = self._one("trained", "run_id", row.id)
            if ev is None:
                self._missing(report, "run", row.id, "trained")
                continue
            claims = {
                "model": (row.model, ev.subjects.get("model")),
                "corpus_id": (row.corpus_id, ev.subjects.get("corpus_id")),
                "shards": (parse_json(row.shards), ev.payload.get("shards")),
                "started": (row.started, ev.payload.get("started")),
                "finished": (row.finished, ev.payload.get("finished")),
                "notes": (row.notes, ev.payload.get("notes")),
                "event_seq": (row.event_seq, ev.seq),
            }
            _differs(report, f"run {row.id}", claims)
            want = ev.payload.get("reads_sha256")
            if (
                want is not None
                and table_digest(conn, run_reads, READ_COLUMNS, run_id=row.id) != want
            ):
                report.problem(
                    f"run {row.id}: the token ranges it read differ from its event {ev.seq} "
                    "(rows of run_reads were changed, added or removed)"
                )

    def _holds(self, conn: Connection, report: VerifyReport) -> None:
        for row in conn.execute(select(holds)):
            evs = self.by[("held", "hold_id")].get(row.id, [])
            added = next((e for e in evs if e.payload.get("action") == "add"), None)
            released = next((e for e in evs if e.payload.get("action") == "release"), None)
            if added is None:
                self._missing(report, "hold", row.id, "held")
                continue
            claims = {
                "matter": (row.matter, added.payload.get("matter")),
                "scope": (row.ref, added.payload.get(row.scope)),
                "event_seq": (row.event_seq, added.seq),
                "released": (row.released is not None, released is not None),
            }
            if released is not None:
                claims["released_by"] = (row.released_by, released.actor)
            _differs(report, f"hold {row.id}", claims)

    def _works(self, conn: Connection, report: VerifyReport) -> int:
        old = 0
        for row in conn.execute(select(works_lists)):
            ev = self._one("acquired", "works_list_id", row.id)
            if ev is None:
                self._missing(report, "works list", row.id, "acquired")
                continue
            _differs(
                report, f"works list {row.id}", {"name": (row.name, ev.payload.get("works_list"))}
            )
            want = ev.payload.get("works_sha256")
            if want is None:
                old += 1
            elif table_digest(conn, works, WORK_COLUMNS, list_id=row.id) != want:
                report.problem(
                    f"works list {row.name!r}: its works differ from its last import "
                    f"(event {ev.seq}): rows were edited, added or removed"
                )
        return old

    def _audits(self, conn: Connection, report: VerifyReport) -> int:
        old = 0
        for row in conn.execute(select(audits)):
            ev = self._one("matched", "audit_id", row.id)
            made = self._one("produced", "audit_id", row.id)
            if ev is None or made is None:
                self._missing(report, "audit", row.id, "matched/produced")
                continue
            claims = {
                "works list": (row.list_id, ev.subjects.get("works_list_id")),
                "datasets": (parse_json(row.datasets), ev.payload.get("datasets")),
                "params": (parse_json(row.params), ev.payload.get("params")),
                "out_dir": (row.out_dir, made.payload.get("out_dir")),
                "event_seq": (row.event_seq, ev.seq),
            }
            _differs(report, f"audit {row.id}", claims)
            want = ev.payload.get("rows_sha256")
            if want is None:
                old += 1
            elif table_digest(conn, matches, MATCH_COLUMNS, audit_id=row.id) != want:
                report.problem(
                    f"audit {row.id}: its matches differ from its event {ev.seq} "
                    "(rows of matches were changed, added or removed)"
                )
        return old

    def _keys(self, conn: Connection, report: VerifyReport) -> int:
        old = 0
        for row in conn.execute(select(api_keys)):
            evs = self.by[("access", "key_id")].get(row.id, [])
            granted = next((e for e in evs if e.payload.get("action") == "granted"), None)
            revoked = next((e for e in evs if e.payload.get("action") == "revoked"), None)
            if granted is None:
                self._missing(report, "API key", row.id, "access")
                continue
            claims = {
                "name": (row.name, granted.payload.get("name")),
                "role": (row.role, granted.payload.get("role")),
                "prefix": (row.prefix, granted.payload.get("prefix")),
                "revoked": (row.revoked is not None, revoked is not None),
            }
            check = granted.payload.get("key_check")
            if check is None:
                old += 1
            else:
                claims["key hash"] = (key_check(row.key_sha256), check)
            _differs(report, f"API key {row.id} ({row.name})", claims)
        return old


def _differs(report: VerifyReport, what: str, claims: dict[str, tuple[Any, Any]]) -> None:
    wrong = sorted(k for k, (row, ev) in claims.items() if row != ev)
    if wrong:
        report.problem(f"{what}: table differs from its events in {', '.join(wrong)}")
