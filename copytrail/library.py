"""The Library: the one entry point of the Python API. The CLI and HTTP API only call this.

lib = Library.init("./.copytrail")
lib.add_source("gutenberg", kind="public-domain", license="Public domain in the USA")
summary = lib.ingest(["books/"], source="gutenberg", dataset="pg@2024-01")
lib.checkpoint(); lib.verify().ok
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import and_, case, func, insert, or_, select

from copytrail.errors import CopytrailError, InvalidInput, LibraryNotFound, NotFound
from copytrail.ledger import checkpoint as cpmod
from copytrail.ledger.db import make_engine, read_connection, write_transaction
from copytrail.ledger.events import EventWriter, default_actor, iter_events, row_to_event
from copytrail.ledger.records import (
    add_source,
    dataset_label,
    get_or_create_dataset,
    parse_dataset_ref,
    record_copies,
)
from copytrail.ledger.schema import (
    SCHEMA_VERSION,
    copies,
    copy_isbns,
    datasets,
    events,
    meta,
    metadata,
    sources,
)
from copytrail.ledger.verify import VerifyReport, parse_json, verify_blobs, verify_ledger
from copytrail.store.blobs import BlobStore

CONFIG_NAME = "library.json"
DEFAULT_PATH = ".copytrail"


def resolve_path(path: str | os.PathLike | None) -> Path:
    return Path(path or os.environ.get("COPYTRAIL_LIBRARY") or DEFAULT_PATH)


class Library:
    def __init__(self, path: Path, db_url: str, store_url: str, actor: str | None = None) -> None:
        self.path = path
        self.db_url = db_url
        self.store_url = store_url
        self.actor = actor or default_actor()
        self.engine = make_engine(db_url)
        self.store = BlobStore(store_url)

    # ---- lifecycle -------------------------------------------------------------------------
    @classmethod
    def init(
        cls, path: str | os.PathLike | None = None, db: str | None = None, store: str | None = None
    ) -> Library:
        """Create a library (idempotent: an existing one is opened, never overwritten)."""
        p = resolve_path(path)
        cfg_file = p / CONFIG_NAME
        if cfg_file.exists():
            lib = cls.open(p, db=db)
            lib._migrate()
            return lib
        p.mkdir(parents=True, exist_ok=True)
        cfg = {
            "format": 1,
            "db": db or f"sqlite:///{(p / 'ledger.db').resolve()}",
            "store": store or str((p / "blobs").resolve()),
        }
        lib = cls(p, cfg["db"], cfg["store"])
        lib._migrate()
        tmp = cfg_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, cfg_file)  # the config appears last: a half-made library is not a library
        return lib

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, db: str | None = None) -> Library:
        p = resolve_path(path)
        cfg_file = p / CONFIG_NAME
        if not cfg_file.exists():
            raise LibraryNotFound(
                f"no copytrail library at {p}: run `copytrail init` there first, or point to one "
                "with --library PATH or COPYTRAIL_LIBRARY"
            )
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
        lib = cls(p, db or cfg["db"], cfg["store"])
        lib._check_schema()
        return lib

    def _migrate(self) -> None:
        metadata.create_all(self.engine)  # creates what is missing; never drops
        with write_transaction(self.engine) as conn:
            row = conn.execute(select(meta.c.value).where(meta.c.key == "schema_version")).first()
            if row is None:
                conn.execute(
                    insert(meta), [{"key": "schema_version", "value": str(SCHEMA_VERSION)}]
                )
            elif int(row.value) > SCHEMA_VERSION:
                raise CopytrailError(
                    f"this library has schema {row.value}, newer than this copytrail "
                    f"({SCHEMA_VERSION}); upgrade copytrail"
                )
            elif int(row.value) < SCHEMA_VERSION:
                # New tables come from create_all above; changes to existing tables run here,
                # in order, before the version moves.
                _migrate_columns(conn)
                conn.execute(
                    meta.update()
                    .where(meta.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )

    def _check_schema(self) -> None:
        try:
            with read_connection(self.engine) as conn:
                v = conn.execute(
                    select(meta.c.value).where(meta.c.key == "schema_version")
                ).scalar()
        except Exception as e:
            raise CopytrailError(f"cannot read the ledger at {self.db_url}: {e}") from e
        if v is None or int(v) != SCHEMA_VERSION:
            if v is not None and int(v) > SCHEMA_VERSION:
                raise CopytrailError(f"library schema {v} is newer than this copytrail; upgrade it")
            self._migrate()

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- sources and datasets --------------------------------------------------------------
    def add_source(
        self,
        name: str,
        kind: str,
        license: str | None = None,
        provided_by: str | None = None,
        acquired: str | None = None,
        url: str | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        fields = {
            "name": name,
            "kind": kind,
            "license": license,
            "provided_by": provided_by,
            "acquired": acquired,
            "url": url,
            "notes": notes,
        }
        with write_transaction(self.engine) as conn:
            return add_source(conn, EventWriter(conn, self.actor), fields)

    def ensure_dataset(self, ref: str, source: str) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            row, created = get_or_create_dataset(conn, EventWriter(conn, self.actor), ref, source)
        d = row._asdict()
        return {**d, "label": dataset_label(d["name"], d["version"]), "created_now": created}

    def record_copies(self, dataset_id: int, records: list[dict[str, Any]]) -> tuple[int, int]:
        """Record worker results; returns (added, already present)."""
        with write_transaction(self.engine) as conn:
            new_ids, existing = record_copies(
                conn, EventWriter(conn, self.actor), dataset_id, records
            )
        return len(new_ids), existing

    def record_ingest_run(self, dataset_id: int, summary: Any) -> int:
        payload = {k: v for k, v in summary.as_dict().items() if k != "problems"}
        with write_transaction(self.engine) as conn:
            ev = EventWriter(conn, self.actor)
            seq = ev.append(
                "ingested", {"dataset_id": dataset_id, "run_id": summary.run_id}, payload
            )
            ev.flush()
        return seq

    # ---- ingest ----------------------------------------------------------------------------
    def ingest(self, paths: list[str], source: str, dataset: str, **kw: Any) -> Any:
        from copytrail.ingest.run import ingest

        return ingest(self, paths, source, dataset, **kw)

    # ---- queries ---------------------------------------------------------------------------
    def sources(self) -> list[dict[str, Any]]:
        with read_connection(self.engine) as conn:
            return [r._asdict() for r in conn.execute(select(sources).order_by(sources.c.id))]

    def datasets(self) -> list[dict[str, Any]]:
        q = (
            select(
                datasets,
                sources.c.name.label("source"),
                sources.c.kind.label("source_kind"),
                func.count(copies.c.id).label("copies"),
                func.coalesce(func.sum(copies.c.size), 0).label("bytes"),
            )
            .join(sources, sources.c.id == datasets.c.source_id)
            .outerjoin(copies, copies.c.dataset_id == datasets.c.id)
            .group_by(datasets.c.id, sources.c.name, sources.c.kind)
            .order_by(datasets.c.id)
        )
        with read_connection(self.engine) as conn:
            out = []
            for r in conn.execute(q):
                d = r._asdict()
                d["label"] = dataset_label(d["name"], d["version"])
                out.append(d)
            return out

    def _dataset_id(self, conn: Any, ref: str) -> int:
        name, version = parse_dataset_ref(ref)
        row = conn.execute(
            select(datasets.c.id).where(
                and_(datasets.c.name == name, datasets.c.version == version)
            )
        ).first()
        if row is None:
            raise NotFound(f"no dataset {ref!r}; see `copytrail ls datasets`")
        return row.id

    def copies(
        self,
        dataset: str | None = None,
        status: str | None = None,
        limit: int | None = None,
        offset: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Copies in id order, streamed in pages so millions of rows never sit in memory."""
        with read_connection(self.engine) as conn:
            ds_id = self._dataset_id(conn, dataset) if dataset else None
        last, remaining, skip = 0, limit, offset
        while remaining is None or remaining > 0:
            page = 5000 if remaining is None else min(5000, remaining + skip)
            q = self._copy_query().where(copies.c.id > last)
            if ds_id is not None:
                q = q.where(copies.c.dataset_id == ds_id)
            if status:
                q = q.where(copies.c.status == status)
            with read_connection(self.engine) as conn:
                rows = conn.execute(q.order_by(copies.c.id).limit(page)).all()
            if not rows:
                return
            last = rows[-1].id
            for r in rows:
                if skip:
                    skip -= 1
                    continue
                yield _copy_dict(r)
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return

    def _copy_query(self):  # type: ignore[no-untyped-def]
        return (
            select(
                copies,
                datasets.c.name.label("dataset_name"),
                datasets.c.version.label("dataset_version"),
                sources.c.name.label("source"),
                sources.c.kind.label("source_kind"),
            )
            .join(datasets, datasets.c.id == copies.c.dataset_id)
            .join(sources, sources.c.id == datasets.c.source_id)
        )

    def copy(self, ref: str | int) -> dict[str, Any]:
        """A copy by id or by a SHA-256 prefix (of its bytes or of its text), with its events."""
        ref_s = str(ref).strip().lower()
        with read_connection(self.engine) as conn:
            if ref_s.isdigit() and len(ref_s) < 12:
                rows = conn.execute(self._copy_query().where(copies.c.id == int(ref_s))).all()
            else:
                if len(ref_s) < 6 or any(c not in "0123456789abcdef" for c in ref_s):
                    raise InvalidInput(
                        f"{ref!r} is neither a copy id nor a SHA-256 prefix of 6+ hex digits"
                    )
                rows = conn.execute(
                    self._copy_query()
                    .where(
                        or_(
                            copies.c.sha256.like(ref_s + "%"),
                            copies.c.text_sha256.like(ref_s + "%"),
                        )
                    )
                    .limit(20)
                ).all()
            if not rows:
                raise NotFound(f"no copy matches {ref!r}; list copies with `copytrail ls copies`")
            if len(rows) > 1:
                ids = ", ".join(str(r.id) for r in rows)
                raise InvalidInput(
                    f"{ref!r} matches several copies ({ids}); give a copy id or a longer prefix"
                )
            d = _copy_dict(rows[0])
            d["isbn_origins"] = [
                r._asdict()
                for r in conn.execute(
                    select(copy_isbns.c.isbn13, copy_isbns.c.origin).where(
                        copy_isbns.c.copy_id == d["id"]
                    )
                )
            ]
            evs = conn.execute(
                select(events)
                .where(events.c.subjects.like(f'%"copy_id":{d["id"]},%'))
                .order_by(events.c.seq)
            ).all()
            d["events"] = [row_to_event(e).as_dict() for e in evs]
            d["shared_with"] = (
                [
                    r.id
                    for r in conn.execute(
                        select(copies.c.id).where(
                            and_(copies.c.sha256 == d["sha256"], copies.c.id != d["id"])
                        )
                    )
                ]
                if d["sha256"]
                else []
            )
        return d

    def copy_text(self, ref: str | int) -> str:
        c = self.copy(ref)
        if not c.get("text_sha256"):
            raise NotFound(f"copy {c['id']} has no extracted text ({c['status']}: {c['reason']})")
        return self.store.get(c["text_sha256"]).decode("utf-8")

    def stats(self) -> dict[str, Any]:
        def grouped(key_cols: list, label: Any) -> list[dict[str, Any]]:
            q = (
                select(
                    *key_cols,
                    func.count(copies.c.id).label("copies"),
                    func.coalesce(func.sum(copies.c.size), 0).label("bytes"),
                    func.coalesce(func.sum(copies.c.words), 0).label("words"),
                    func.sum(case((copies.c.status != "ok", 1), else_=0)).label("not_ok"),
                )
                .select_from(
                    copies.join(datasets, datasets.c.id == copies.c.dataset_id).join(
                        sources, sources.c.id == datasets.c.source_id
                    )
                )
                .where(copies.c.status != "deleted")
                .group_by(*key_cols)
                .order_by(*key_cols)
            )
            out = []
            for r in conn.execute(q):
                d = r._asdict()
                d["unreadable"] = int(d.pop("not_ok") or 0)
                out.append(label(d))
            return out

        with read_connection(self.engine) as conn:
            by_dataset = grouped(
                [datasets.c.name, datasets.c.version, sources.c.kind],
                lambda d: {
                    "dataset": dataset_label(d.pop("name"), d.pop("version")),
                    "source_kind": d.pop("kind"),
                    **d,
                },
            )
            by_kind = grouped([sources.c.kind], lambda d: {"source_kind": d.pop("kind"), **d})
            totals = conn.execute(
                select(
                    func.count(copies.c.id),
                    func.coalesce(func.sum(copies.c.size), 0),
                    func.coalesce(func.sum(copies.c.words), 0),
                    func.count(func.distinct(copies.c.sha256)),
                ).where(copies.c.status != "deleted")
            ).one()
            by_status = {
                r.status: r.n
                for r in conn.execute(
                    select(copies.c.status, func.count().label("n")).group_by(copies.c.status)
                )
            }
            n_events = conn.execute(select(func.count()).select_from(events)).scalar_one()
            last_cp = cpmod.latest_checkpoint(conn)
        return {
            "copies": totals[0],
            "bytes": int(totals[1]),
            "words": int(totals[2]),
            "distinct_originals": totals[3],
            "by_status": by_status,
            "sources": len(self.sources()),
            "datasets": len(by_dataset),
            "events": n_events,
            "latest_checkpoint": (
                {"id": last_cp.id, "tree_size": last_cp.tree_size, "root_hash": last_cp.root_hash}
                if last_cp
                else None
            ),
            "by_dataset": by_dataset,
            "by_source_kind": by_kind,
        }

    def events(self, start: int = 1, limit: int | None = None) -> Iterator[dict[str, Any]]:
        with read_connection(self.engine) as conn:
            for i, ev in enumerate(iter_events(conn, start)):
                if limit is not None and i >= limit:
                    return
                yield ev.as_dict()

    # ---- works lists and audits ------------------------------------------------------------
    @property
    def fingerprints(self) -> Any:
        from copytrail.fingerprint.store import FingerprintStore

        if not hasattr(self, "_fingerprints"):
            self._fingerprints = FingerprintStore(
                self.path / "fingerprints", self.engine, self.store
            )
        return self._fingerprints

    def import_works(self, file: str | os.PathLike, list_name: str) -> Any:
        from copytrail.audit.works import import_works

        path = Path(file)
        if not path.is_file():
            raise NotFound(f"no works file at {path}")
        with write_transaction(self.engine) as conn:
            return import_works(conn, EventWriter(conn, self.actor), self.store, path, list_name)

    def works(self, list_name: str) -> list[dict[str, Any]]:
        from copytrail.audit.works import list_id_by_name, work_rows

        with read_connection(self.engine) as conn:
            return work_rows(conn, list_id_by_name(conn, list_name))

    def works_lists(self) -> list[dict[str, Any]]:
        from copytrail.ledger.schema import works as works_t
        from copytrail.ledger.schema import works_lists

        q = (
            select(
                works_lists.c.id,
                works_lists.c.name,
                works_lists.c.created,
                func.count(works_t.c.id).label("works"),
            )
            .outerjoin(works_t, works_t.c.list_id == works_lists.c.id)
            .group_by(works_lists.c.id)
            .order_by(works_lists.c.id)
        )
        with read_connection(self.engine) as conn:
            return [r._asdict() for r in conn.execute(q)]

    def _dataset_ids(self, refs: list[str] | None) -> list[int] | None:
        if not refs:
            return None
        with read_connection(self.engine) as conn:
            return [self._dataset_id(conn, r) for r in refs]

    def _match_dicts(self, found: list[Any], works_by_pk: dict[int, dict]) -> list[dict[str, Any]]:
        from copytrail.audit.match import copy_context

        with read_connection(self.engine) as conn:
            ctx = copy_context(conn, sorted({m.copy_id for m in found}))
        return [
            {
                "work_id": works_by_pk[m.work_pk]["work_id"],
                "work_pk": m.work_pk,
                "copy_id": m.copy_id,
                **ctx[m.copy_id],
                "method": m.method,
                "methods": sorted(
                    m.methods,
                    key=["exact", "near_duplicate", "partial", "isbn", "asin", "metadata"].index,
                ),
                "score": m.score,
                "coverage": m.coverage,
                "longest_span_words": m.longest_span_words,
                "spans": m.spans,
            }
            for m in found
        ]

    def audit(
        self,
        list_name: str,
        out: str | os.PathLike,
        datasets: list[str] | None = None,
        min_words: int = 200,
        workers: int | None = None,
        boilerplate_df: int | None = None,
        boilerplate: list[str] | None = None,
        progress: Any = None,
    ) -> dict[str, Any]:
        """Find every work of a list in the library; write the reports; record the audit."""
        from copytrail.audit.match import Auditor
        from copytrail.audit.report import write_reports
        from copytrail.audit.works import list_id_by_name
        from copytrail.canonical import canonical_json
        from copytrail.fingerprint.hashing import PARAMS_VERSION
        from copytrail.ledger.events import utc_now
        from copytrail.ledger.schema import audits, matches

        works = self.works(list_name)
        ds_ids = self._dataset_ids(datasets)
        auditor = Auditor(
            self,
            works,
            ds_ids,
            min_words=min_words,
            workers=workers,
            boilerplate_df=boilerplate_df,
            progress=progress,
            boilerplate_files=boilerplate,
        )
        found = auditor.run()
        by_pk = {w["id"]: w for w in works}
        match_dicts = self._match_dicts(found, by_pk)
        params = {
            "min_words": min_words,
            "boilerplate_df": auditor.stats.get("boilerplate_df"),
            "fingerprints": PARAMS_VERSION,
        }
        # Under the write lock, so the audit id and event number printed in the reports are the
        # ones the ledger gets; a kill before the commit leaves files but no record of them.
        with write_transaction(self.engine) as conn:
            list_id = list_id_by_name(conn, list_name)
            audit_id = (conn.execute(select(func.max(audits.c.id))).scalar() or 0) + 1
            ev = EventWriter(conn, self.actor)
            header = {
                "works_list": list_name,
                "datasets": datasets or [],
                "min_words": min_words,
                "time": utc_now(),
                "actor": self.actor,
                "audit_id": audit_id,
                "event_seq": ev.next_seq,
                "stats": auditor.stats,
            }
            hashes, summary, _rows = write_reports(
                Path(out), works, match_dicts, header, self.store
            )
            seq = ev.append(
                "matched",
                {"works_list_id": list_id, "audit_id": audit_id},
                {
                    "works_list": list_name,
                    "datasets": datasets or [],
                    "params": params,
                    "works": len(works),
                    "works_found": summary["works_found"],
                    "matches": len(match_dicts),
                    "matches_sha256": hashes["matches.jsonl"],
                },
            )
            ev.append(
                "produced",
                {"audit_id": audit_id},
                {"out_dir": str(Path(out).resolve()), "files": hashes},
            )
            ev.flush()
            conn.execute(
                insert(audits),
                [
                    {
                        "id": audit_id,
                        "list_id": list_id,
                        "datasets": canonical_json(datasets or []).decode(),
                        "params": canonical_json(params).decode(),
                        "out_dir": str(Path(out).resolve()),
                        "time": header["time"],
                        "actor": self.actor,
                        "event_seq": seq,
                    }
                ],
            )
            rows = [
                {
                    "audit_id": audit_id,
                    "work_pk": m["work_pk"],
                    "copy_id": m["copy_id"],
                    "method": m["method"],
                    "score": m["score"],
                    "coverage": m["coverage"],
                    "longest_span_words": m["longest_span_words"],
                    "spans": canonical_json(m["spans"]).decode(),
                }
                for m in match_dicts
            ]
            if rows:
                conn.execute(insert(matches), rows)
        return {
            **summary,
            "audit_id": audit_id,
            "event_seq": seq,
            "files": hashes,
            "out_dir": str(Path(out).resolve()),
        }

    def where(
        self, work_id: str, list_name: str | None = None, min_words: int = 200
    ) -> dict[str, Any]:
        """Every copy of one work, in every dataset, with the evidence."""
        from copytrail.audit.match import Auditor
        from copytrail.audit.works import find_work

        with read_connection(self.engine) as conn:
            work = find_work(conn, work_id, list_name)
        siblings = [w["text_sha256"] for w in self.works(work["list"]) if w.get("text_sha256")]
        auditor = Auditor(self, [work], None, min_words=min_words, df_work_texts=siblings)
        found = auditor.run()
        return {"work": work, "copies": self._match_dicts(found, {work["id"]: work})}

    def work(self, work_id: str, list_name: str | None = None) -> dict[str, Any]:
        """One work with the matches audits recorded for it (no new matching: see `where`)."""
        from copytrail.audit.works import find_work
        from copytrail.ledger.schema import audits, matches

        with read_connection(self.engine) as conn:
            w = find_work(conn, work_id, list_name)
            q = (
                select(
                    matches.c.audit_id,
                    matches.c.copy_id,
                    matches.c.method,
                    matches.c.score,
                    matches.c.coverage,
                    matches.c.longest_span_words,
                    datasets.c.name.label("dataset"),
                    datasets.c.version,
                    audits.c.time.label("audit_time"),
                )
                .select_from(
                    matches.join(copies, copies.c.id == matches.c.copy_id)
                    .join(datasets, datasets.c.id == copies.c.dataset_id)
                    .join(audits, audits.c.id == matches.c.audit_id)
                )
                .where(matches.c.work_pk == w["id"])
                .order_by(matches.c.audit_id, matches.c.copy_id)
            )
            found = []
            for r in conn.execute(q):
                d = r._asdict()
                version = d.pop("version")
                d["dataset"] = f"{d['dataset']}@{version}" if version else d["dataset"]
                found.append(d)
        return {**w, "matches": found}

    # ---- guard: protected-text indexes, verbatim check, excerpt search ---------------------
    def guard_index(
        self,
        name: str,
        lists: list[str] | None = None,
        datasets: list[str] | None = None,
        all_datasets: bool = False,
        rebuild: bool = False,
        progress: Any = None,
        workers: int | None = None,
    ) -> dict[str, Any]:
        """Build or refresh a guard index; with no scope given, refresh the saved one."""
        from copytrail.guard import service

        return service.build(self, name, lists, datasets, all_datasets, rebuild, progress, workers)

    def guards(self) -> list[dict[str, Any]]:
        from copytrail.guard import service

        return service.list_guards(self)

    def guard(self, name: str) -> Any:
        """The loaded index (memory-mapped), reloaded when a refresh replaced its manifest."""
        from copytrail.guard.index import MANIFEST, GuardIndex
        from copytrail.guard.service import guard_root

        path = guard_root(self) / name
        try:
            stamp = (path / MANIFEST).stat().st_mtime_ns
        except FileNotFoundError:
            stamp = None
        cache = self.__dict__.setdefault("_guards", {})
        hit = cache.get(name)
        if hit is None or hit[0] != stamp:
            hit = cache[name] = (stamp, GuardIndex.open(path))
        return hit[1]

    def forget_guard(self, name: str) -> None:
        self.__dict__.get("_guards", {}).pop(name, None)

    def check(
        self, text: str, guard: str, min_words: int = 50, evidence: bool = True
    ) -> dict[str, Any]:
        """Spans of `text` that reproduce indexed text verbatim for min_words words or more.
        `evidence=False` skips the copies, works and character offsets of each place."""
        from copytrail.guard import service

        return service.check_text(self, text, guard, min_words, evidence)

    def check_stream(self, guard: str, min_words: int = 50, evidence: bool = True) -> Any:
        """A check fed piece by piece (`feed(piece)`, then `finish()`), each answered at once."""
        from copytrail.guard.service import CheckSession

        return CheckSession(self, guard, min_words, evidence)

    def search(
        self,
        phrase: str,
        datasets: list[str] | None = None,
        guards: list[str] | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """Every copy holding the exact phrase, with counts and snippets."""
        from copytrail.guard import service

        return service.search(self, phrase, datasets, guards, limit)

    # ---- build: tokenizers, corpora ----------------------------------------------------------
    def train_tokenizer(
        self, datasets: list[str], vocab_size: int, out: str | os.PathLike
    ) -> dict[str, Any]:
        """Train a byte-level BPE tokenizer on the datasets' texts; write tokenizer.json."""
        from copytrail.build.tokenizer import train_tokenizer

        return train_tokenizer(self, datasets, vocab_size, out)

    def build(
        self, corpus: str, policy: str | os.PathLike, workers: int | None = None
    ) -> dict[str, Any]:
        """Build a corpus under a policy: fates for every copy, token shards, lineage."""
        from copytrail.build.run import build_corpus

        return build_corpus(self, corpus, policy, workers)

    def corpus(self, name: str) -> dict[str, Any]:
        """A corpus's composition: by source kind, dataset and license; exclusions by rule."""
        from copytrail.build.run import corpus_show

        return corpus_show(self, name)

    def record_run(
        self,
        model: str,
        corpus: str,
        shards: list[int] | None = None,
        started: str | None = None,
        finished: str | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        """Record a training run; call it from a training loop, or use `copytrail run record`."""
        from copytrail.build.trace import record_run

        return record_run(self, model, corpus, shards, started, finished, notes)

    def trace(
        self,
        copy: str | int | None = None,
        work: str | None = None,
        works_list: str | None = None,
        dataset: str | None = None,
        model: str | None = None,
        received_after: str | None = None,
    ) -> dict[str, Any]:
        """Forward (copy, work, dataset -> corpora, shards, runs, models) or backward (model ->
        tokens by dataset, source, source kind); or models that read data received after a date."""
        from copytrail.build import trace as tr

        given = [x is not None for x in (copy, work, dataset, model, received_after)]
        if sum(given) != 1:
            raise InvalidInput(
                "trace one thing: --copy ID, --work ID, --dataset D, --model NAME "
                "or --received-after DATE"
            )
        if model is not None:
            return tr.trace_model(self, model)
        if received_after is not None:
            return tr.models_after(self, received_after)
        if copy is not None:
            c = self.copy(copy)
            return tr.trace_copies(self, [c["id"]], {"copy": c["id"], "path": c["path"]})
        if work is not None:
            ids = tr.work_copy_ids(self, work, works_list)
            return tr.trace_copies(self, ids, {"work": work, "copy_ids": ids})
        return tr.trace_copies(self, tr.dataset_copy_ids(self, dataset), {"dataset": dataset})

    # ---- retention: holds, deletion ----------------------------------------------------------
    def add_hold(self, matter: str, scope: str, ref: str) -> dict[str, Any]:
        """Put a dataset, a source or a work (LIST:WORK_ID) under legal hold."""
        from copytrail.retention.holds import add_hold

        return add_hold(self, matter, scope, ref)

    def holds(self, active_only: bool = False) -> list[dict[str, Any]]:
        from copytrail.retention.holds import list_holds

        return list_holds(self, active_only)

    def release_hold(self, hold_id: int) -> dict[str, Any]:
        from copytrail.retention.holds import release_hold

        return release_hold(self, hold_id)

    def delete(
        self,
        reason: str,
        dataset: str | None = None,
        source: str | None = None,
        copies_file: str | None = None,
        rebuild: bool = False,
        keep_derived: bool = False,
    ) -> dict[str, Any]:
        """Delete copies (blobs, derived shards, guard entries) with a certificate; refused
        when a hold covers any of them."""
        from copytrail.retention.delete import delete_copies

        return delete_copies(self, reason, dataset, source, copies_file, rebuild, keep_derived)

    def retention_report(
        self, rules: str | os.PathLike | None = None, as_of: str | None = None
    ) -> dict[str, Any]:
        """Copies never used for training, and what each retention rule would delete or flag."""
        from copytrail.retention.report import retention_report

        return retention_report(self, rules, as_of)

    # ---- HTTP API keys -----------------------------------------------------------------------
    def add_key(self, name: str, role: str) -> dict[str, Any]:
        from copytrail.server import keys

        return keys.add_key(self.engine, name, role, self.actor)

    def keys(self) -> list[dict[str, Any]]:
        from copytrail.server import keys

        return keys.list_keys(self.engine)

    def revoke_key(self, name: str) -> dict[str, Any]:
        from copytrail.server import keys

        return keys.revoke_key(self.engine, name)

    def authenticate(self, key: str) -> dict[str, Any] | None:
        from copytrail.server import keys

        return keys.authenticate(self.engine, key)

    # ---- integrity -------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        with write_transaction(self.engine) as conn:
            return cpmod.make_checkpoint(conn, self.actor)

    def prove(self, event_seq: int, checkpoint_id: int | None = None) -> dict[str, Any]:
        with read_connection(self.engine) as conn:
            return cpmod.prove(conn, event_seq, checkpoint_id)

    def verify(self, quick: bool = False, progress: Any = None) -> VerifyReport:
        report = VerifyReport()
        with read_connection(self.engine) as conn:
            deleted = verify_ledger(conn, report, progress)
            verify_blobs(
                conn,
                self.store,
                deleted,
                report,
                quick=quick,
                progress=progress,
                unfinished=_unfinished_deletions(conn),
            )
        return report


def _unfinished_deletions(conn: Any) -> set[int]:
    """Copies of deletions whose certificate was never written (the run was killed after the
    deletion was recorded and before its files were finished)."""
    from copytrail.ledger.schema import deletions

    pending = {
        r.id: r.event_seq
        for r in conn.execute(
            select(deletions.c.id, deletions.c.certificate, deletions.c.event_seq)
        )
        if not (r.certificate and Path(r.certificate).exists())
    }
    out: set[int] = set()
    for seq in pending.values():
        ev = conn.execute(select(events.c.subjects).where(events.c.seq == seq)).scalar()
        out.update(json.loads(ev).get("copy_ids", []) if ev else [])
    return out


def _migrate_columns(conn: Any) -> None:
    """Columns added to tables that older libraries already have."""
    from sqlalchemy import inspect, text

    have = {c["name"] for c in inspect(conn).get_columns("works")}
    if "text_source_sha256" not in have:  # schema 2 -> 3
        conn.execute(text("ALTER TABLE works ADD COLUMN text_source_sha256 VARCHAR(64)"))


def _copy_dict(row: Any) -> dict[str, Any]:
    d = row._asdict()
    for k in ("authors", "isbns", "extra"):
        d[k] = parse_json(d.get(k)) or ([] if k != "extra" else {})
    d["dataset"] = dataset_label(d.pop("dataset_name"), d.pop("dataset_version"))
    return d
